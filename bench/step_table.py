#!/usr/bin/env python3
"""The step table of `bash bench/gpu.sh run bench`: reads the rows that stage writes
($OUT/rows.md: one row per timing, a JSON object from tools/bench_step or
bench/torch_step.py) and prints one markdown table, a line per model config, with the
ratios the speed issues track.

    python3 bench/step_table.py .gpu/out/rows.md
"""
import json
import re
import sys

COLUMNS = [  # (row label prefix, column title)
    ("wavspa {} fp32", "wavspa fp32"),
    ("wavspa {} tf32", "wavspa tf32"),
    ("wavspa {} bf16", "wavspa bf16"),
    ("wavspa {} fp32 graphs", "wavspa fp32 graphs"),
    ("wavspa {} bf16 graphs", "wavspa bf16 graphs"),
    ("pytorch {} fp32", "PyTorch eager fp32"),
    ("pytorch {} bf16", "PyTorch eager bf16"),
    ("pytorch-sdpa {} bf16", "bf16 + SDPA"),
    ("pytorch-sdpa+compile {} bf16", "bf16 + SDPA + compile"),
]


def read_rows(path):
    rows, checks, card = {}, {}, ""
    for line in open(path):
        m = re.match(r"\|\s*(.*?)\s*\|\s*(.*?)\s*\|\s*$", line)
        if not m:
            continue
        label, value = m.group(1), m.group(2)
        if label == "card":
            card = value
        elif label.startswith("torch twin "):
            checks[label[len("torch twin "):]] = value
        elif value.startswith("{"):
            try:
                rows[label] = json.loads(value)
            except json.JSONDecodeError:
                pass
    return rows, checks, card


def main():
    rows, checks, card = read_rows(sys.argv[1] if len(sys.argv) > 1 else ".gpu/out/rows.md")
    models = []
    for label in rows:
        name = label.split(" ")[1]
        if name not in models:
            models.append(name)
    print(f"{card}: median ms per training step (peak MB)\n")
    head = ["model", "twin check"] + [t for _, t in COLUMNS] + [
        "fp32 / eager fp32", "bf16 / compile", "bf16 graphs / compile"]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for name in models:
        cells, ms = [name, "ok" if " ok " in checks.get(name, "") else checks.get(name, "not run")], {}
        for pattern, title in COLUMNS:
            r = rows.get(pattern.format(name))
            if r is None:
                cells.append("")
                continue
            ms[title] = r["median_ms"]
            cells.append(f"{r['median_ms']:.1f} ({r['peak_mem_mb']:,.0f})")
        ratio = lambda a, b: f"{ms[a] / ms[b]:.2f}" if a in ms and b in ms else ""
        cells += [ratio("wavspa fp32", "PyTorch eager fp32"), ratio("wavspa bf16", "bf16 + SDPA + compile"),
                  ratio("wavspa bf16 graphs", "bf16 + SDPA + compile")]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
