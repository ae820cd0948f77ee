#!/usr/bin/env bash
# Everything CUDA on the GPU machine (the `device` tool), in two halves, because that machine
# has CUDA and PyTorch but none of our Debian libraries (OpenBLAS, SLEEF, KissFFT, libpng,
# libcsv) and no package registry:
#
#   bash bench/gpu.sh pack          # here: make CUDA=1 the test binary, the tools and the
#                                   #       examples; bundle them with their shared libraries
#                                   #       into .gpu/bundle.txz (git-ignored; xz -9, because
#                                   #       the device tool carries at most 64 MiB: each
#                                   #       program holds its own 27 MB copy of the library,
#                                   #       and only -9's 64 MiB window sees the copies as
#                                   #       repeats, 28 MB in all against 70 at -6)
#   bash bench/gpu.sh run STAGES    # there (carry .gpu), STAGES from:
#       tests      the whole test suite (CPU and CUDA cases)
#       memcheck   compute-sanitizer --tool memcheck on the CUDA cases (and the op table's)
#       racecheck  compute-sanitizer --tool racecheck on the CUDA cases (sanitize: both)
#       initcheck  compute-sanitizer --tool initcheck (reads of device memory never written)
#                  and --tool synccheck (barriers in divergent code) on the CUDA cases
#       soak       bench/soak.sh --device cuda: 10,000 training steps of a small WavSpA,
#                  host and device memory after warm-up (must stay flat)
#       train      tools/train --device cuda on a small ListOps set, every model preset
#       mixed      the same set, Transformer and WavSpA-ada, fp32 against --precision bf16
#       bench      one training step of the LRA ListOps WavSpA and Transformer (batch 32,
#                  length 2000, emb 128, 8 layers, 1 head, qkv 64, mlp 128; WavSpA wlen 16,
#                  level 1) and of the Text WavSpA config (length 1000, emb 256, 4 layers,
#                  4 heads, qkv 256, mlp 1024): wavspa fp32/tf32/bf16 beside PyTorch eager
#                  fp32/bf16, bf16 + SDPA and bf16 + SDPA + torch.compile (and wavspa fp32
#                  and bf16 with --cuda-graphs), after
#                  bench/torch_step.py has shown its model computes what ours does; then
#                  one table of them all (bench/step_table.py)
#       kernels    the attention kernel against SDPA (bench/kernels/attention.sh)
#       cpu        issue 19's CPU step table (bench/cpu_step.sh) on two cores of this machine's
#                  CPU, beside the PyTorch installed there
#       wavspa     issue 16's tables: the ListOps WavSpA bf16 step for every parametrization
#                  and levels 1-3 (bench_step --set), and the wavelet path alone
#                  (tools/bench_wavelet: wavedec + waverec forward and backward on
#                  (32, 2000, 128), per-channel F = 16) in fp32 and bf16 against a device copy
#                  and PyTorch's conv1d formulation (bench/torch_step.py wavelet), eager and
#                  torch.compile (bench/wavspa_table.py)
#
# Each stage keeps its logs in $OUT (or .gpu/out) and adds rows to a table printed last.
# One `run` call may take 10 minutes at most: give tests, memcheck, racecheck and
# train+bench a call each.
set -uo pipefail
cd "$(dirname "$0")/.."

pack() {
  make -j2 CUDA=1 BUILD=build-cuda build-cuda/wavspa_tests build-cuda/train build-cuda/gen-data \
    build-cuda/bench_step build-cuda/bench_wavelet build-cuda/inspect_checkpoint build-cuda/bench examples || exit 1
  rm -rf .gpu && mkdir -p .gpu/stage/lib .gpu/stage/examples
  for b in wavspa_tests train gen-data bench_step bench_wavelet inspect_checkpoint bench; do
    [ -f build-cuda/$b ] && strip -o .gpu/stage/$b build-cuda/$b
  done
  for e in build-cuda/examples/*; do strip -o .gpu/stage/examples/$(basename "$e") "$e"; done
  # Everything the programs link that is not CUDA's or the C/C++ runtime's.
  ldd build-cuda/wavspa_tests | awk '/=>/ {print $3}' |
    grep -E 'sleef|kissfft|png|csv|openblas|gomp|gfortran|quadmath' |
    xargs -I{} cp -L {} .gpu/stage/lib/
  tar cf - -C .gpu/stage . | xz -9 -T2 > .gpu/bundle.txz && rm -rf .gpu/stage
  ls -la .gpu/bundle.txz
}

out=${OUT:-.gpu/out}
bin=.gpu/x
table=()
# Rows also go to $out/rows.md as they come, so a run cut off by the time limit keeps them.
row() { table+=("| $1 | $2 |"); echo "| $1 | $2 |" >>"$out/rows.md"; }

stage_tests() {
  # The suite runs the tools and examples from $WAVSPA_BUILD, as `make test` does.
  WAVSPA_BUILD=$bin OMP_NUM_THREADS=8 $bin/wavspa_tests >"$out/tests.log" 2>&1
  row "test suite" "$(grep -E '^\[doctest\] test cases' "$out/tests.log")"
  row "  assertions" "$(grep -E '^\[doctest\] assertions' "$out/tests.log")"
  grep -E 'ERROR|FAILED|error:' "$out/tests.log" | head -30
}

# The 64-bit-index case allocates ~9 GB and runs too long under the sanitizer. The
# allocator case asks cudaMalloc for 1 PiB on purpose (the out-of-memory message): memcheck
# reports that API error and its retry as 4 errors, so it runs alone with API errors off
# (its kernels are still checked). The every-preset case only repeats kernels of the op
# cases and, with the 20-step CPU-vs-CUDA training case, takes racecheck past 10 minutes.
# The graph case that makes a capture fail on purpose (a host read while recording) is an
# API error for memcheck too, so it runs with the allocator case.
sanitize_args=(-tc='cuda*,op table: CUDA*,op table: inputs on two*,graph:*' -tce='*2^31*,*caching allocator*,*waits for the device*')
alloc_case=(-tc='*caching allocator*,*waits for the device*')

stage_memcheck() {
  compute-sanitizer --tool memcheck --error-exitcode 9 $bin/wavspa_tests "${sanitize_args[@]}" >"$out/memcheck.log" 2>&1
  row "memcheck (cuda cases)" "rc $? / $(grep -E 'ERROR SUMMARY' "$out/memcheck.log" | tail -1)"
  compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 9 $bin/wavspa_tests "${alloc_case[@]}" \
    >"$out/memcheck-alloc.log" 2>&1
  row "memcheck (allocator and failed-capture cases, API errors off)" "rc $? / $(grep -E 'ERROR SUMMARY' "$out/memcheck-alloc.log" | tail -1)"
  grep -B2 -A12 -m3 -E '^========= (Invalid|Program hit|Error)' "$out"/memcheck*.log | head -60
}

stage_racecheck() {
  compute-sanitizer --tool racecheck --error-exitcode 9 $bin/wavspa_tests -tc='op table: CUDA*,cuda*' \
    -tce='*2^31*,*every model preset*,*trains alike*' >"$out/racecheck.log" 2>&1
  row "racecheck (cuda cases)" "rc $? / $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' "$out/racecheck.log" | tail -1)"
  grep -B2 -A12 -m3 -E '^========= (Race|Error)' "$out/racecheck.log" | head -60
}

stage_sanitize() { stage_memcheck; stage_racecheck; }

# initcheck: a kernel that reads device memory nothing wrote (the poison of the allocator
# cases would hide it, so those stay out); synccheck: __syncthreads in divergent code.
stage_initcheck() {
  for tool in initcheck synccheck; do
    compute-sanitizer --tool $tool --error-exitcode 9 $bin/wavspa_tests "${sanitize_args[@]}" >"$out/$tool.log" 2>&1
    row "$tool (cuda cases)" "rc $? / $(grep -E 'ERROR SUMMARY' "$out/$tool.log" | tail -1)"
    grep -B2 -A12 -m3 -E '^========= (Uninitialized|Barrier|Error|Invalid)' "$out/$tool.log" | head -40
  done
}

stage_soak() {
  BUILD=$bin bash bench/soak.sh --device cuda --steps 10000 >"$out/soak.log" 2>&1
  row "soak (10,000 steps, cuda)" "rc $? / $(grep -E '^growth' "$out/soak.log")"
  cat "$out/soak.log"
  # Out of device memory: a batch that cannot fit ends the run with status 1 and one message
  # (size, allocator statistics, a hint); the checkpoint written before stays readable.
  local d=.gpu/runs/oom
  rm -rf $d && $bin/gen-data --task listops --out $d/data --train 300 --val 50 --test 50 --min-length 500 \
    --max-length 2000 >/dev/null
  $bin/train --task listops --data $d/data --out $d/run --device cuda --set batch_size=300 --set max_len=1000000 \
    --set steps=2 >"$out/oom.log" 2>&1
  local rc=$?
  $bin/inspect_checkpoint $d/run/initial.safetensors >/dev/null 2>&1
  row "cuda out of memory" "train rc $rc, initial.safetensors readable: rc $? / $(grep -c 'error: ' "$out/oom.log") error line(s)"
  grep 'error: ' "$out/oom.log" | cut -c1-400
}

stage_train() {
  local data=.gpu/listops-small
  $bin/gen-data --task listops --out $data --train 20000 --val 1000 --test 1000 \
    --min-length 10 --max-length 100 --max-depth 5 --seed 1 >/dev/null 2>&1 || { row train "gen-data failed"; return; }
  for m in transformer wavspa-ada wavspa-ortho wavspa-lift wavspa-adalift wavspa-fixed fourier fnet \
           linear performer linformer local; do
    $bin/train --config configs/run_listops_small.json --model $m --device cuda --data $data \
      --set steps=600 --set eval_every=300 --set log_every=100 --out .gpu/runs/$m \
      >".gpu/runs-$m.json" 2>"$out/train-$m.log"
    local rc=$?
    row "train cuda $m" "rc $rc $(python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print("test %.3f majority %.3f steps %d wall %.1fs %.0f tok/s" % (r["test_accuracy"], r["majority_accuracy"], r["steps"], r["wall_s"], r["tokens_per_s"]))' ".gpu/runs-$m.json" 2>&1 | tail -1)"
  done
  # Mixed precision trains too.
  $bin/train --config configs/run_listops_small.json --device cuda --precision bf16 --data $data \
    --set steps=600 --set eval_every=300 --out .gpu/runs/bf16 >.gpu/runs-bf16.json 2>"$out/train-bf16.log"
  row "train cuda wavspa-ada bf16" "rc $? $(tail -c 400 .gpu/runs-bf16.json)"
}

# Issue 15's training equivalence: ListOps-small, the same seed and steps, float32 against
# --precision bf16 (autocast), for the Transformer and WavSpA-ada; test accuracy side by side.
stage_mixed() {
  local data=.gpu/listops-small
  [ -d $data ] || $bin/gen-data --task listops --out $data --train 20000 --val 1000 --test 1000 \
    --min-length 10 --max-length 100 --max-depth 5 --seed 1 >/dev/null 2>&1 || { row mixed "gen-data failed"; return; }
  for m in transformer wavspa-ada; do
    for p in fp32 bf16; do
      $bin/train --config configs/run_listops_small.json --model $m --device cuda --precision $p --data $data \
        ${MIXED_STEPS:+--set steps=$MIXED_STEPS} --out .gpu/runs/mixed-$m-$p \
        >".gpu/runs-mixed-$m-$p.json" 2>"$out/mixed-$m-$p.log"
      row "train cuda $m $p" "rc $? $(python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print("test %.4f val %.4f steps %d wall %.1fs" % (r["test_accuracy"], r.get("best_val_accuracy", float("nan")), r["steps"], r["wall_s"]))' ".gpu/runs-mixed-$m-$p.json" 2>&1 | tail -1)"
    done
  done
}

stage_bench() {
  local b=bench/torch_step.py
  # name, config, length: the two ListOps models and the Text WavSpA config of issue 15.
  local runs=("wavspa configs/listops_wavspa.json 2000" "transformer configs/listops_transformer.json 2000"
              "text-wavspa configs/text_wavspa.json 1000")
  for r in "${runs[@]}"; do
    read -r name cfg len <<<"$r"
    # The PyTorch twin must compute our model before its times mean anything.
    $bin/bench_step --config $cfg --device cpu --batch 2 --len $len --steps 1 --warmup 0 \
      --threads 16 --dump .gpu/ref-$name >/dev/null 2>>"$out/bench.log"
    row "torch twin $name" "$(python3 $b check .gpu/ref-$name 2>>"$out/bench.log" | tail -1)"
    for p in fp32 tf32 bf16; do
      row "wavspa $name $p" "$($bin/bench_step --config $cfg --len $len --device cuda --precision $p 2>>"$out/bench.log" | tail -1)"
    done
    for p in fp32 bf16; do
      row "wavspa $name $p graphs" \
        "$($bin/bench_step --config $cfg --len $len --device cuda --precision $p --cuda-graphs 2>>"$out/bench.log" | tail -1)"
    done
    for p in fp32 bf16; do
      row "pytorch $name $p" "$(python3 $b time --config $cfg --len $len --precision $p 2>>"$out/bench.log" | tail -1)"
    done
    row "pytorch-sdpa $name bf16" "$(python3 $b time --config $cfg --len $len --precision bf16 --sdpa 2>>"$out/bench.log" | tail -1)"
    row "pytorch-sdpa+compile $name bf16" \
      "$(python3 $b time --config $cfg --len $len --precision bf16 --sdpa --compile 2>>"$out/bench.log" | tail -1)"
  done
  python3 bench/step_table.py "$out/rows.md" | tee "$out/step_table.md"
}

stage_wavspa() {
  local cfg=configs/listops_wavspa.json
  for p in ada ortho lift adalift fixed; do
    for l in 1 2 3; do
      row "param $p L$l" "$($bin/bench_step --config $cfg --len 2000 --device cuda --precision bf16 \
        --set parametrization=$p --set levels=$l 2>>"$out/wavspa.log" | tail -1)"
    done
  done
  for d in fp32 bf16; do
    for l in 1 2 3; do
      row "wavelet wavspa $d L$l" "$($bin/bench_wavelet --dtype $d --levels $l 2>>"$out/wavspa.log" | tail -1)"
      row "wavelet wavspa graphs $d L$l" \
        "$($bin/bench_wavelet --dtype $d --levels $l --cuda-graphs 2>>"$out/wavspa.log" | tail -1)"
      row "wavelet pytorch $d L$l" "$(python3 bench/torch_step.py wavelet --dtype $d --levels $l 2>>"$out/wavspa.log" | tail -1)"
    done
    row "wavelet pytorch+compile $d L1" \
      "$(python3 bench/torch_step.py wavelet --dtype $d --levels 1 --compile 2>>"$out/wavspa.log" | tail -1)"
  done
  python3 bench/wavspa_table.py "$out/rows.md" | tee "$out/wavspa_table.md"
}

# The attention kernel against PyTorch's SDPA at issue 15's sizes (bench/kernels/attention.sh:
# builds in seconds, checks against a float64 reference first).
stage_kernels() {
  OUT=$out bash bench/kernels/attention.sh >"$out/kernels.log" 2>&1
  row "attention kernel checks" "rc $? $(grep -E '^checks' "$out/kernels.log")"
  grep -E "^(wavspa|sdpa|##)" "$out/kernels.log"
}

# Issue 19's table on the GPU machine's CPU: two of its cores, beside its PyTorch.
stage_cpu() {
  BUILD=$bin REPS=${REPS:-5} bash bench/cpu_step.sh 2>"$out/cpu.log" | tee "$out/cpu_table.md"
  row "cpu step table" "rc $? (cpu_table.md)"
}

case "${1:-}" in
  pack) pack ;;
  run)
    shift
    mkdir -p "$out" $bin .gpu/runs
    tar xJf .gpu/bundle.txz -C $bin || exit 1
    export LD_LIBRARY_PATH=$PWD/$bin/lib:/usr/local/cuda/lib64
    row card "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"
    stages=("$@")
    [ ${#stages[@]} -gt 0 ] || stages=(tests sanitize)
    for s in "${stages[@]}"; do
      start=$SECONDS
      "stage_$s"
      row "  ($s took)" "$((SECONDS - start)) s"
    done
    printf '%s\n' "${table[@]}" | tee "$out/table.md"
    ;;
  *) echo "usage: bash bench/gpu.sh pack | run tests|memcheck|racecheck|sanitize|initcheck|soak|train|mixed|bench|kernels|wavspa|cpu ..."; exit 2 ;;
esac
