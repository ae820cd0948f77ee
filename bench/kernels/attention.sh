#!/bin/bash
# On the GPU machine: builds bench/kernels/attention.cu (seconds), checks the tensor-core
# attention kernels against a float64 reference, and times them beside PyTorch's SDPA at the
# same sizes on the same card. Output: the check lines, then one table. Run from the repo root.
set -e
out=${OUT:-/tmp}
nvcc -std=c++20 -O3 -arch=sm_90 --expt-relaxed-constexpr -I. bench/kernels/attention.cu -o "$out/attn_bench"
"$out/attn_bench" > "$out/attn_wavspa.txt" || { cat "$out/attn_wavspa.txt"; exit 1; }
python3 bench/kernels/attention_sdpa.py > "$out/attn_sdpa.txt"
grep -v "^wavspa" "$out/attn_wavspa.txt" | tail -30
echo "## $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
grep "^#" "$out/attn_sdpa.txt"
paste -d'\n' <(grep "^wavspa" "$out/attn_wavspa.txt") <(grep "^sdpa" "$out/attn_sdpa.txt")
