#!/bin/bash
# On the GPU machine: builds bench/kernels/attention.cu (seconds), checks the tensor-core
# attention kernels against a float64 reference, and times them beside PyTorch at the same
# sizes on the same card: the bfloat16 kernels beside SDPA, then the float32 kernels (3xTF32
# and TF32) beside SDPA's float32 backend and the materialised eager formula. Output: the
# check lines, then the tables. Run from the repo root.
set -e
out=${OUT:-/tmp}
nvcc -std=c++20 -O3 -arch=sm_90a --expt-relaxed-constexpr -I. bench/kernels/attention.cu -o "$out/attn_bench"
"$out/attn_bench" > "$out/attn_wavspa.txt" || { cat "$out/attn_wavspa.txt"; exit 1; }
python3 bench/kernels/attention_sdpa.py > "$out/attn_sdpa.txt"
python3 bench/kernels/attention_sdpa.py f32 > "$out/attn_torch_f32.txt"
grep -v "^wavspa" "$out/attn_wavspa.txt" | tail -30
echo "## $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
grep "^#" "$out/attn_sdpa.txt"
paste -d'\n' <(grep -E "^wavspa (bf16|f32 )" "$out/attn_wavspa.txt") <(grep "^sdpa" "$out/attn_sdpa.txt")
echo "## float32 tensors"
grep -E "^wavspa (3xtf32|tf32)" "$out/attn_wavspa.txt"
grep -E "^(sdpa|eager)" "$out/attn_torch_f32.txt"
