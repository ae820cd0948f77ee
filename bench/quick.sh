#!/usr/bin/env bash
# A short sitting on the GPU machine for the WavSpA step (after `bash bench/gpu.sh pack` here,
# carrying .gpu/bundle.txz): the whole test suite (SKIP_TESTS=1 leaves it out), the ListOps and
# Text WavSpA bf16 steps plain and as CUDA graphs (batch 32, median of 20, twice), then ncu's
# per-kernel table of one step of each (TOP kernels). Logs and ncu CSVs go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.gpu/out}
mkdir -p .gpu/x "$OUT" && tar xJf .gpu/bundle.txz -C .gpu/x
export LD_LIBRARY_PATH=$PWD/.gpu/x/lib:/usr/local/cuda/lib64 WAVSPA_BUILD=.gpu/x
[ "${SKIP_TESTS:-0}" = 1 ] || .gpu/x/wavspa_tests 2>&1 | tee "$OUT/tests.log" | grep -E "FAILED|ERROR|test cases|assertions" | head -30
step() {
  .gpu/x/bench_step --config "configs/$1" --device cuda --precision bf16 --batch 32 --steps 20 --warmup 3 "${@:2}" 2>&1 |
    tail -1 | python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print('$1 ${*:2}:', round(d['median_ms'],3), 'ms, host', round(d['host_ms'],2), 'ms, peak', round(d['peak_mem_mb']), 'MB')"
}
for _ in 1 2; do
  step listops_wavspa.json --len 2000; step listops_wavspa.json --len 2000 --cuda-graphs
  step text_wavspa.json --len 1000; step text_wavspa.json --len 1000 --cuda-graphs
done
for c in "listops_wavspa.json --len 2000" "text_wavspa.json --len 1000"; do
  n=${c%%_*}
  ncu --csv --metrics gpu__time_duration.sum .gpu/x/bench_step --config configs/$c --device cuda --precision bf16 \
    --batch 32 --steps 1 --warmup 1 > "$OUT/$n.csv" 2>/dev/null
  python3 bench/ncu_summary.py "$OUT/$n.csv" --steps 2 --top "${TOP:-14}"
done
