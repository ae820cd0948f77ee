#!/bin/bash
# On the GPU machine: ncu of the bfloat16 attention kernels and of PyTorch SDPA's at one size
# (B*H 32, N 2000, d 64, no dropout), a compact table of where each kernel's time goes:
# duration, registers, occupancy, issue slots busy, tensor pipe busy, shared-memory wavefronts
# and bank conflicts, and the warp stall reasons. Run from the repo root.
#   bash bench/kernels/profile.sh                 # the mma.sync kernels and SDPA's
#   SDPA=0 bash bench/kernels/profile.sh wgone wgbwd1   # another mode of attention.cu alone
# KERNELS (a regex) picks the kernels and SKIP how many of their launches to pass first.
set -e
out=${OUT:-/tmp}
nvcc -std=c++20 -O3 -arch=sm_90a --expt-relaxed-constexpr -I. -lineinfo bench/kernels/attention.cu -o "$out/attn_bench"
metrics=$(tr -d '\n' < bench/kernels/ncu_metrics.txt)  # what ncu_table.py prints
# one forward + backward (forward, rowdot, key pass, dQ) after 35 forwards and 5 fwd+bwd
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(one)
ncu --metrics $metrics -k regex:"${KERNELS:-forward_mma|rowdot|grad_kv|grad_q}" -s "${SKIP:-55}" -c 4 --csv --page raw \
  "$out/attn_bench" "${args[@]}" > "$out/ncu_wavspa.csv" 2> "$out/ncu_wavspa.err" || { tail -20 "$out/ncu_wavspa.err"; }
if [ "${SDPA:-1}" = 0 ]; then python3 bench/kernels/ncu_table.py "$out/ncu_wavspa.csv"; exit 0; fi
cat > "$out/sdpa_one.py" <<'PY'
import torch, torch.nn.functional as F
q, k, v, go = (torch.randn(4, 8, 2000, 64, device="cuda", dtype=torch.bfloat16) for _ in range(4))
for t in (q, k, v): t.requires_grad_(True)
for _ in range(6):
    out = F.scaled_dot_product_attention(q, k, v)
    torch.autograd.grad(out, (q, k, v), go)
torch.cuda.synchronize()
PY
ncu --metrics $metrics -k regex:'flash|fmha|attention|cudnn|sdpa' -s 8 -c 5 --csv --page raw \
  python3 "$out/sdpa_one.py" > "$out/ncu_sdpa.csv" 2> "$out/ncu_sdpa.err" || { tail -20 "$out/ncu_sdpa.err"; }
python3 bench/kernels/ncu_table.py "$out/ncu_wavspa.csv" "$out/ncu_sdpa.csv"
