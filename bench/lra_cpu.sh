#!/usr/bin/env bash
# The training runs of docs/results.md, on the CPU: small ListOps and sequential
# Fashion-MNIST (784 pixels), Transformer and WavSpA-ada (and more models if named).
# Prints one markdown row per run; run folders go to runs/results/.
#
#   bash bench/lra_cpu.sh                      # the four rows of the table
#   MODELS="wavspa-ortho wavspa-lift" TASKS=listops bash bench/lra_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
make -j2 build/train build/gen-data >/dev/null
mkdir -p runs/results
MODELS=${MODELS:-"transformer wavspa-ada"}
TASKS=${TASKS:-"listops fashion-mnist"}
DATA=runs/data/listops-small
[ -f $DATA/basic_test.tsv ] || ./build/gen-data --task listops --out $DATA --train 20000 --val 1000 \
  --test 1000 --min-length 10 --max-length 100 --max-depth 5 --seed 1 >/dev/null
field() { grep -o "\"$1\":[^,}]*" "$2" | head -1 | cut -d: -f2- | tr -d '"'; }
echo "| task | model | params | steps | test acc | majority | best val | wall s | tokens/s |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for task in $TASKS; do
  for model in $MODELS; do
    out=runs/results/$task-$model
    rm -rf "$out"
    if [ "$task" = listops ]; then
      ./build/train --config configs/run_listops_small.json --data $DATA --model "$model" --out "$out" >/dev/null 2>"$out.log" || true
    else
      ./build/train --config configs/run_fmnist_small.json --model "$model" --out "$out" >/dev/null 2>"$out.log" || true
    fi
    s=$out/summary.json
    echo "| $task | $model | $(field parameters $s) | $(field steps $s) | $(field test_accuracy $s) | $(field majority_accuracy $s) | $(field best_val_accuracy $s) | $(field wall_s $s) | $(field tokens_per_s $s) |"
  done
done
