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
metrics=gpu__time_duration.sum,launch__registers_per_thread,launch__shared_mem_per_block_dynamic,\
launch__grid_size,launch__block_size,sm__warps_active.avg.pct_of_peak_sustained_active,\
smsp__issue_active.avg.pct_of_peak_sustained_active,\
sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,\
l1tex__data_pipe_lsu_wavefronts_mem_shared.avg.pct_of_peak_sustained_elapsed,\
l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,\
dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active,\
smsp__average_warp_latency_issue_stalled_barrier.ratio,smsp__average_warp_latency_issue_stalled_short_scoreboard.ratio,\
smsp__average_warp_latency_issue_stalled_long_scoreboard.ratio,smsp__average_warp_latency_issue_stalled_math_pipe_throttle.ratio,\
smsp__average_warp_latency_issue_stalled_mio_throttle.ratio,smsp__average_warp_latency_issue_stalled_wait.ratio,\
smsp__average_warp_latency_issue_stalled_not_selected.ratio,smsp__average_warp_latency_issue_stalled_selected.ratio,\
smsp__average_warp_latency_issue_stalled_dispatch_stall.ratio,smsp__average_warp_latency_issue_stalled_lg_throttle.ratio,\
smsp__average_warp_latency_issue_stalled_tex_throttle.ratio,smsp__average_warp_latency_issue_stalled_no_instruction.ratio
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
