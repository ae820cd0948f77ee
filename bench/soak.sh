#!/usr/bin/env bash
# Long-run memory hygiene: trains a small WavSpA (configs/run_listops_small.json, batch 8,
# length 64) on generated ListOps for STEPS steps (default 10,000) with tools/train, validating
# and writing checkpoints every 1,000 steps as a real run does, and reads the memory the
# training line reports every 250 steps (tools/train's "mem MiB" part): the process's
# resident size, the bytes in live host tensors / held by the host allocator, and on CUDA the
# same for the device. After a warm-up (the first tenth of the steps), nothing may grow:
# the table ends with each column's growth from the end of the warm-up to the end.
#
#   bash bench/soak.sh                       # CPU, build/
#   BUILD=build-cuda bash bench/soak.sh --device cuda --steps 10000
#
# The last line is a JSON object with the growths in MiB. Exit status 1 when the live
# tensors of either allocator grew after the warm-up (a leak), or the run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
device=cpu
steps=10000
while [ $# -gt 0 ]; do
  case $1 in
    --device) device=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    *) echo "error: bench/soak.sh: unknown argument '$1' (valid: --device cpu|cuda, --steps N)" >&2; exit 1 ;;
  esac
done
for tool in train gen-data; do
  [ -x "$build/$tool" ] || { echo "error: $build/$tool is missing: run make $build/$tool" >&2; exit 1; }
done
work=$(mktemp -d /tmp/wavspa-soak.XXXXXX)
trap 'rm -rf "$work"' EXIT

"$build/gen-data" --task listops --out "$work/data" --train 20000 --val 500 --test 500 \
  --min-length 10 --max-length 100 --max-depth 5 --seed 1 >/dev/null || exit 1
start=$(date +%s)
"$build/train" --config configs/run_listops_small.json --data "$work/data" --out "$work/run" --device "$device" \
  --set steps="$steps" --set batch_size=8 --set max_len=64 --set log_every=250 --set eval_every=1000 --set eval_limit=500 \
  2>"$work/log" >/dev/null
rc=$?
seconds=$(( $(date +%s) - start ))
[ $rc -eq 0 ] || { tail -3 "$work/log" >&2; echo "error: bench/soak.sh: the run failed (exit $rc)" >&2; exit 1; }

# "step 250/10000 ... mem MiB rss 180  host 12/40  cuda:0 30/64"
awk -v steps="$steps" -v device="$device" -v seconds="$seconds" '
  /^step [0-9]+\/[0-9]+ .* mem MiB / {
    split($2, s, "/"); step = s[1]
    line = $0; sub(/.* mem MiB /, "", line); n = split(line, f, /[ \/]+/)
    # f: rss R host A R [dev A R]
    rss = f[2]; ha = f[4]; hr = f[5]; da = (n >= 8) ? f[7] : ""; dr = (n >= 8) ? f[8] : ""
    rows++; S[rows] = step; RSS[rows] = rss; HA[rows] = ha; HR[rows] = hr; DA[rows] = da; DR[rows] = dr
    if (warm == 0 && step >= steps / 10) warm = rows
  }
  END {
    if (rows < 3 || warm == 0) { print "error: bench/soak.sh: too few memory lines in the log" > "/dev/stderr"; exit 1 }
    dev = DA[rows] != ""
    printf "| step | rss MiB | host tensors MiB | host held MiB |%s\n", dev ? " device tensors MiB | device held MiB |" : ""
    printf "| --- | --- | --- | --- |%s\n", dev ? " --- | --- |" : ""
    for (i = 1; i <= rows; i++)
      if (i == 1 || i == warm || i == rows || i % 4 == 0)
        printf "| %d%s | %d | %d | %d |%s\n", S[i], i == warm ? " (warm)" : "", RSS[i], HA[i], HR[i], dev ? sprintf(" %d | %d |", DA[i], DR[i]) : ""
    # growth: the largest value after the warm-up against the value at its end
    for (i = warm; i <= rows; i++) {
      if (RSS[i] - RSS[warm] > g_rss) g_rss = RSS[i] - RSS[warm]
      if (HA[i] - HA[warm] > g_ha) g_ha = HA[i] - HA[warm]
      if (HR[i] - HR[warm] > g_hr) g_hr = HR[i] - HR[warm]
      if (dev && DA[i] - DA[warm] > g_da) g_da = DA[i] - DA[warm]
      if (dev && DR[i] - DR[warm] > g_dr) g_dr = DR[i] - DR[warm]
    }
    printf "growth after step %d (MiB): rss %d, host tensors %d, host held %d%s; %d steps in %d s on %s\n", S[warm], g_rss, g_ha, g_hr,
           dev ? sprintf(", device tensors %d, device held %d", g_da, g_dr) : "", steps, seconds, device
    printf "{\"steps\": %d, \"device\": \"%s\", \"seconds\": %d, \"warm_step\": %d, \"rss_growth_mib\": %d, \"host_tensor_growth_mib\": %d, \"host_held_growth_mib\": %d, \"device_tensor_growth_mib\": %d, \"device_held_growth_mib\": %d}\n",
           steps, device, seconds, S[warm], g_rss, g_ha, g_hr, g_da + 0, g_dr + 0
    # live tensors must not grow (1 MiB of rounding slack); rss may move a few MiB with glibc
    exit (g_ha > 1 || g_da > 1) ? 1 : 0
  }' "$work/log"
