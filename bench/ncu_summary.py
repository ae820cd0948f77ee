#!/usr/bin/env python3
"""Where a step's GPU time goes: sums an `ncu --csv --metrics gpu__time_duration.sum` log
by kernel name (the device machine has ncu but not nsys).

    ncu --csv --metrics gpu__time_duration.sum build/bench_step ... --steps 1 --warmup 1 >prof.csv
    python3 bench/ncu_summary.py prof.csv --steps 2 [--top 25]

Prints, per kernel name, the launches and the milliseconds per step (the log's totals
divided by --steps: warmup and timed steps alike), largest first, and the total."""
import argparse
import collections
import csv
import io
import re
import sys


def short(name):
    # Template arguments, parameter lists and namespaces say little in a table: keep the
    # kernel's own name, with <> where it had template arguments.
    name = name.replace("(anonymous namespace)::", "")
    while True:  # innermost <...> first, so nested arguments go too
        shorter = re.sub(r"<[^<>]*>", "\x00", name)
        if shorter == name:
            break
        name = shorter
    name = re.sub(r"\(.*$", "", name).replace("\x00", "<>")
    name = name.replace("void ", "").strip()
    return name.split("::")[-1] if "::" in name else name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--steps", type=float, default=1.0)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    text = open(args.csv, errors="replace").read()
    start = text.find('"ID"')
    if start < 0:
        sys.exit("no ncu CSV table in " + args.csv)
    total = collections.Counter()
    count = collections.Counter()
    for row in csv.DictReader(io.StringIO(text[start:])):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        value = float(row["Metric Value"].replace(",", ""))
        unit = row.get("Metric Unit", "nsecond")
        scale = {"nsecond": 1e-6, "usecond": 1e-3, "msecond": 1.0, "second": 1e3}.get(unit, 1e-6)
        k = short(row["Kernel Name"])
        total[k] += value * scale
        count[k] += 1
    all_ms = sum(total.values()) / args.steps
    launches = sum(count.values()) / args.steps
    print(f"| kernel | launches/step | ms/step | share |")
    print(f"| --- | --- | --- | --- |")
    for k, ms in total.most_common(args.top):
        print(f"| {k[:70]} | {count[k] / args.steps:.0f} | {ms / args.steps:.3f} | {100 * ms / args.steps / all_ms:.1f}% |")
    print(f"| all kernels | {launches:.0f} | {all_ms:.3f} | 100% |")


if __name__ == "__main__":
    main()
