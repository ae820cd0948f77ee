#!/usr/bin/env bash
# Runs each libFuzzer target of `make fuzz` for a while and prints one table:
#   bash fuzz/run.sh BUILD SECONDS TARGET...
# Each target starts from a seed corpus (the test fixtures, the shipped configs and a few
# files written here) kept in BUILD/corpus/<target>, so later runs go on from what earlier
# ones found. A finding is saved as BUILD/findings/<target>/{crash,leak,timeout,oom}-* and
# makes the exit status 1; add it to the test suite as a fixture once it is fixed.
# FUZZ_FLAGS (environment) adds libFuzzer flags, e.g. -seed=1 for CI's repeatable runs.
set -uo pipefail
build=$1 seconds=$2
shift 2
cd "$(dirname "$0")/.."
fx=tests/fixtures/readers

seed() {  # seed TARGET: fill BUILD/corpus/TARGET the first time
  local dir=$build/corpus/$1
  [ -d "$dir" ] && return
  mkdir -p "$dir"
  case $1 in
    safetensors)
      # a float32 (2) tensor without and with metadata (the 8-byte length, the JSON, the data)
      local h='{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
      printf '%b' "\\x$(printf %02x ${#h})\\x00\\x00\\x00\\x00\\x00\\x00\\x00$h\\x00\\x00\\xc0\\x3f\\x00\\x00\\x00\\xc0" >"$dir/plain"
      h='{"__metadata__":{"wavspa.step":"3"},"b":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}'
      printf '%b' "\\x$(printf %02x ${#h})\\x00\\x00\\x00\\x00\\x00\\x00\\x00$h\\x04\\x00\\x00\\x00\\x00\\x00\\x00\\x00" >"$dir/meta" ;;
    listops)
      printf 'Source\tTarget\n[MAX 2 9 [MIN 4 7 ] 0 ]\t9\n( ( [SM 5 ) 7 ] )\t2\n' >"$dir/tsv"
      printf '[MED 3 [MAX 1 2 ] 8 ]' >"$dir/expr" ;;
    text_csv)
      cp $fx/*.csv $fx/*.tsv "$dir/" ;;
    binary_images)
      cp $fx/*.bin $fx/*idx* "$dir/" ;;
    configs)
      cp configs/*.json "$dir/"
      printf 'lr=0.001' >"$dir/set"
      printf 'constant * linear_warmup * rsqrt_decay' >"$dir/schedule" ;;
  esac
}

status=0
rows=()
for bin in "$@"; do
  name=$(basename "$bin")
  seed "$name"
  mkdir -p "$build/findings/$name"
  log=$build/findings/$name.log
  touch "$log.start"  # findings of this run are the files newer than it
  "$bin" "$build/corpus/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 ${FUZZ_FLAGS:-} \
    -artifact_prefix="$build/findings/$name/" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  corpus=$(find "$build/corpus/$name" -type f | wc -l)
  found=$(find "$build/findings/$name" -type f -newer "$log.start" | wc -l)
  [ "$rc" -eq 0 ] && [ "$found" -eq 0 ] || status=1
  rows+=("| $name | ${execs:-?} | $corpus | $found | $rc |")
  [ "$rc" -eq 0 ] || grep -E "ERROR|SUMMARY|==[0-9]+==" "$log" | head -5
done
echo "| target | executions in ${seconds}s | corpus files | findings | exit |"
echo "| --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
exit $status
