#!/bin/bash
# On the GPU machine, after the bundle is unpacked into $BIN (bench/gpu.sh): where the
# wavelet path's time goes. (1) every kernel of bench_wavelet's pass (wavedec + waverec,
# forward and backward, (32, 2000, 128), F = 16, level 1) by name and time, bf16 and fp32;
# (2) the wavelet kernels' compact ncu table (bench/kernels/ncu_table.py: registers,
# occupancy, issue slots, DRAM, stall reasons) for one bf16 pass.
#   BIN=.gpu/x bash bench/kernels/wavelet_profile.sh
set -u
out=${OUT:-/tmp}
bin=${BIN:-.gpu/x}
args=(--device cuda --batch 32 --len 2000 --dim 128 --wlen 16 --levels 1 --samples 1 --group 1 --warmup 2)
for dt in bf16 fp32; do
  ncu --csv --metrics gpu__time_duration.sum "$bin/bench_wavelet" "${args[@]}" --dtype $dt \
    >"$out/wavelet-$dt.csv" 2>"$out/wavelet-$dt.err" || tail -5 "$out/wavelet-$dt.err"
  echo "== bench_wavelet $dt: kernels per pass (4 passes profiled: 2 warm-up, 1 timed, 1 copy group)"
  python3 bench/ncu_summary.py "$out/wavelet-$dt.csv" --steps 4 --top 30
done
metrics=$(tr -d '\n' < bench/kernels/ncu_metrics.txt)
ncu --metrics "$metrics" -k regex:'analysis|synthesis|filter_grad' -s 12 -c 8 --csv --page raw \
  "$bin/bench_wavelet" "${args[@]}" --dtype bf16 >"$out/wavelet-metrics.csv" 2>"$out/wavelet-metrics.err" ||
  tail -5 "$out/wavelet-metrics.err"
python3 bench/kernels/ncu_table.py "$out/wavelet-metrics.csv"
