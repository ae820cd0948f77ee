#!/usr/bin/env python3
"""Where the host's time goes: self time per scope name in a profiler trace
(WAVSPA_PROFILE=1 WAVSPA_PROFILE_TRACE=t.json, best with WAVSPA_PROFILE_DEVICE=0 so that
every scope is host time).

    WAVSPA_PROFILE=1 WAVSPA_PROFILE_DEVICE=0 WAVSPA_PROFILE_TRACE=t.json build/bench_step ...
    python3 bench/trace_self.py t.json --skip 2 [--top 30]

A scope's self time is its duration less that of the scopes directly inside it (an op's own
work and its launches, not the ops it calls). --skip N leaves out everything up to the end of
the N-th backward pass (warm-up steps: the first allocates, builds cuBLAS's plans); the steps
are the backward passes after those. Prints calls and self milliseconds per step, largest
first."""
import argparse
import collections
import json


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--skip", type=int, default=0, help="backward passes to leave out (warm-up)")
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args()
    with open(a.trace) as f:
        events = json.load(f)
    if isinstance(events, dict):
        events = events.get("traceEvents", [])
    events = [e for e in events if e.get("ph") == "X" and e.get("pid") == 1]
    passes = sorted((e for e in events if e.get("cat") == "backward_pass"), key=lambda e: e["ts"])
    start = passes[a.skip - 1]["ts"] + passes[a.skip - 1]["dur"] if a.skip > 0 else float("-inf")
    a.steps = max(1, len(passes) - a.skip)
    by_tid = collections.defaultdict(list)
    for e in events:
        if e["ts"] >= start:
            by_tid[e.get("tid")].append(e)
    self_us = collections.Counter()
    calls = collections.Counter()
    for evs in by_tid.values():
        evs.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []  # [end, name, self]
        def close(item):
            self_us[item[1]] += item[2]
        for e in evs:
            while stack and e["ts"] >= stack[-1][0] - 1e-3:
                close(stack.pop())
            if stack:
                stack[-1][2] -= e["dur"]
            key = ("bwd " if e.get("cat") == "backward_node" else "") + e["name"]
            calls[key] += 1
            stack.append([e["ts"] + e["dur"], key, e["dur"]])
        while stack:
            close(stack.pop())
    total = sum(v for k, v in self_us.items())
    print("| scope | calls/step | self ms/step | share |\n| --- | --- | --- | --- |")
    for k, v in self_us.most_common(a.top):
        print(f"| {k} | {calls[k] / a.steps:.0f} | {v / 1000 / a.steps:.3f} | {100 * v / total:.1f}% |")
    print(f"| all scopes | {sum(calls.values()) / a.steps:.0f} | {total / 1000 / a.steps:.3f} | 100% |")


if __name__ == "__main__":
    main()
