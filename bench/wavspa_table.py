#!/usr/bin/env python3
"""The tables of `bash bench/gpu.sh run wavspa` (issue 16), from the rows that stage writes
($OUT/rows.md, each a JSON object of tools/bench_step, tools/bench_wavelet or
bench/torch_step.py wavelet):

1. the ListOps WavSpA bf16 training step for every parametrization and levels 1-3, with the
   time per token against ada at level 1 (the issue asks for every one within 1.3x);
2. the wavelet path alone (wavedec + waverec forward and backward), wavspa beside PyTorch's
   conv1d formulation, as ms, GB/s of the minimum traffic and the fraction of the device copy
   bandwidth measured in the same process.

    python3 bench/wavspa_table.py .gpu/out/rows.md
"""
import sys

from step_table import read_rows  # the rows.md reader of bench/step_table.py


def fmt(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def main():
    rows, _, card = read_rows(sys.argv[1] if len(sys.argv) > 1 else ".gpu/out/rows.md")
    print(f"{card}: ListOps WavSpA (batch 32, length 2000), bf16, median ms per training step\n")
    print("| parametrization | level 1 | level 2 | level 3 | worst / ada level 1 |")
    print("| --- | --- | --- | --- | --- |")
    base = rows.get("param ada L1", {}).get("median_ms")
    for p in ("ada", "ortho", "lift", "adalift", "fixed"):
        ms = [rows.get(f"param {p} L{l}", {}).get("median_ms") for l in (1, 2, 3)]
        have = [m for m in ms if m is not None]
        ratio = max(have) / base if have and base else None
        print(f"| {p} | " + " | ".join(fmt(m) for m in ms) + f" | {fmt(ratio)} |")

    print(f"\n{card}: wavedec + waverec, forward + backward with the filter gradient, "
          "(32, 2000, 128), per-channel F = 16\n")
    print("| impl | dtype | levels | ms | GB/s of minimum traffic | copy GB/s | fraction of copy |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, r in rows.items():
        if not label.startswith("wavelet "):
            continue
        print(f"| {r.get('impl')} | {r.get('dtype')} | {r.get('levels')} | {fmt(r.get('median_ms'), 3)} | "
              f"{fmt(r.get('gb_per_s'), 0)} | {fmt(r.get('copy_gb_per_s'), 0)} | "
              f"{fmt(r.get('fraction_of_copy'), 3)} |")


if __name__ == "__main__":
    main()
