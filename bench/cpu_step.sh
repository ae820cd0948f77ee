#!/usr/bin/env bash
# The CPU training step of issue 19, wavspa beside PyTorch on the same pinned cores:
#
#   bash bench/cpu_step.sh                 # `make bench` runs it after the kernel table
#   BUILD=build CORES=2,3 REPS=5 bash bench/cpu_step.sh
#
# Models: configs/cpu_wavspa.json and configs/cpu_transformer.json (batch 8, length 512,
# emb 64, 2 layers, 2 heads, qkv 64, mlp 128; WavSpA ada, wlen 8, level 2, periodization;
# dropout 0.1), float32, one training step = forward, cross-entropy, backward, AdamW.
#
# Both programs run under `taskset -c $CORES` with as many threads as cores. The two are
# timed in turns (wavspa, PyTorch, wavspa, ...) REPS times, and each turn's median over
# STEPS steps is kept: a shared machine's noise then falls on both alike. The table gives
# the median of the turns' medians and the ratio wavspa / PyTorch (below 1: wavspa faster).
# PyTorch is the first of $PYTHON, python3 and /usr/bin/python3 that imports torch (Debian's
# python3-torch 1.13 here, PyTorch 2.11 on the GPU machine); without it the column says so.
#
# Under load: a busy loop pinned to the first core runs beside the step, and wavspa's step
# is timed with one thread (on the second core) and with one per core (all of CORES), the
# latter also with libgomp's default wait (spinning, GOMP_SPINCOUNT=300000; the tools wait
# passively unless told, core/runtime.h). The issue asks that the threaded run is never the slower one.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
REPS=${REPS:-3}
STEPS=${STEPS:-20}
WARMUP=${WARMUP:-3}
allowed=$(taskset -pc $$ 2>/dev/null | sed 's/.*: //')
# The first two cores this process may use, unless CORES says otherwise.
CORES=${CORES:-$(python3 -c 'import os; c=sorted(os.sched_getaffinity(0)); print(",".join(map(str, c[:2])))')}
ncores=$(awk -F, '{print NF}' <<<"$CORES")
first=${CORES%%,*}
second=${CORES#*,}; second=${second%%,*}
[ -x "$BUILD/bench_step" ] || { echo "cpu_step: $BUILD/bench_step is missing (make $BUILD/bench_step)" >&2; exit 1; }

median() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print("%.1f" % statistics.median(v) if v else "n/a")' "$@"; }
field() { python3 -c 'import json,sys; print("%.1f" % json.loads(sys.stdin.read().strip().splitlines()[-1])[sys.argv[1]])' "$1"; }

wavspa_ms() {  # config threads cores -> median ms of one turn
  OMP_NUM_THREADS=$2 taskset -c "$3" "$BUILD/bench_step" --config "$1" --device cpu --batch 8 --len 512 \
    --steps "$STEPS" --warmup "$WARMUP" --threads "$2" 2>/dev/null | field median_ms
}
torch_ms() {
  taskset -c "$CORES" $PY bench/torch_step.py time --config "$1" --device cpu --batch 8 --len 512 \
    --steps "$STEPS" --warmup "$WARMUP" --threads "$ncores" 2>/dev/null | field median_ms
}

# The first Python that has torch: PATH's, else Debian's (python3-torch installs there).
has_torch=0 torch_version="not installed (apt install python3-torch)" PY=python3
for py in ${PYTHON:-python3 /usr/bin/python3}; do
  if v=$($py -c 'import torch; print(torch.__version__)' 2>/dev/null); then
    has_torch=1 torch_version=$v PY=$py; break
  fi
done
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)

rows=()
for model in wavspa transformer; do
  cfg=configs/cpu_$model.json
  # The twin must compute our model (logits, loss, gradient norm) before its time means anything.
  twin="n/a"
  if [ $has_torch = 1 ]; then
    ref=$(mktemp -d)
    "$BUILD/bench_step" --config "$cfg" --device cpu --batch 2 --len 512 --steps 1 --warmup 0 \
      --dump "$ref" >/dev/null 2>&1
    twin=$($PY bench/torch_step.py check "$ref" --device cpu 2>/dev/null | tail -1 | awk '{print $3}')
    rm -rf "$ref"
  fi
  ours=() theirs=()
  for ((r = 0; r < REPS; ++r)); do
    ours+=("$(wavspa_ms "$cfg" "$ncores" "$CORES")")
    [ $has_torch = 1 ] && theirs+=("$(torch_ms "$cfg")")
    echo "cpu_step: $model turn $((r + 1)): wavspa ${ours[-1]} ms${theirs:+, PyTorch ${theirs[-1]} ms}" >&2
  done
  a=$(median "${ours[@]}")
  if [ $has_torch = 1 ]; then
    b=$(median "${theirs[@]}")
    ratio=$(python3 -c "print('%.2f' % ($a / $b))")
  else b="n/a"; ratio="n/a"; fi
  rows+=("| $model | ${twin:-FAILED} | $a | $b | $ratio | ${ours[*]} | ${theirs[*]:-} |")
done

# Under load: the busy loop holds the first core.
taskset -c "$first" bash -c 'while :; do :; done' &
busy=$!
trap 'kill $busy 2>/dev/null' EXIT
sleep 1
one=() all=() spin=()
for ((r = 0; r < REPS; ++r)); do
  one+=("$(wavspa_ms configs/cpu_wavspa.json 1 "$second")")
  all+=("$(wavspa_ms configs/cpu_wavspa.json "$ncores" "$CORES")")
  # libgomp's own default, spinning 300000 times before sleeping (what the tools did before
  # they chose passive waiting; a GOMP_SPINCOUNT in the environment stops them choosing)
  spin+=("$(GOMP_SPINCOUNT=300000 wavspa_ms configs/cpu_wavspa.json "$ncores" "$CORES")")
  echo "cpu_step: under load turn $((r + 1)): 1 thread ${one[-1]} ms, $ncores threads ${all[-1]} ms, spinning ${spin[-1]} ms" >&2
done
kill $busy 2>/dev/null
m1=$(median "${one[@]}")
mn=$(median "${all[@]}")
ms=$(median "${spin[@]}")

echo
echo "CPU: $cpu; cores $CORES (of $allowed); PyTorch $torch_version; OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset (the tools wait passively)}"
echo "median ms per training step (batch 8, length 512, float32), median of $REPS turns of $STEPS steps"
echo
echo "| model | twin check | wavspa | PyTorch | wavspa / PyTorch | wavspa turns | PyTorch turns |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
echo
echo "under load (a busy loop on core $first), WavSpA:"
echo
echo "| threads | ms | turns |"
echo "| --- | --- | --- |"
echo "| 1 (core $second) | $m1 | ${one[*]} |"
echo "| $ncores (cores $CORES) | $mn | ${all[*]} |"
echo "| $ncores threads / 1 thread | $(python3 -c "print('%.2f' % ($mn / $m1))") | |"
echo "| $ncores, libgomp's default wait (GOMP_SPINCOUNT=300000) | $ms | ${spin[*]} |"
echo "| that / 1 thread | $(python3 -c "print('%.2f' % ($ms / $m1))") | |"
