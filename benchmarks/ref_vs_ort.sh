#!/usr/bin/env bash
# Reference executor (FP32) vs ONNX Runtime's CPU execution provider, side by side in one run:
# same machine, same thread count, same batch, same input shape. Prints a Markdown table for
# docs/performance.md. Benchmarks never gate CI.
#
# usage: benchmarks/ref_vs_ort.sh [MODEL.onnx[:BATCH] ...]
#   default: every ../shared/models/*.onnx at batch 100, and $TV/resnet50.onnx, $TV/mobilenet_v2.onnx
#   at batch 1 when present (TV defaults to /tmp/tv; write them with ../shared/tools/export_torchvision.py).
# env: ANVIL (the anvil binary, default build/tools/anvil), THREADS (default: nproc), REPEAT (default 5), ORT_NODE_PATH (folder holding onnxruntime-node;
#      default ./node_modules, installed with `npm install --ignore-scripts onnxruntime-node`)
set -euo pipefail
case ${1:-} in
  -h|--help) sed -n '/^# usage:/,/^set /{/^set /!p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  -*) echo "ref_vs_ort.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
THREADS=${THREADS:-$(nproc)}
REPEAT=${REPEAT:-5}
ORT_NODE_PATH=${ORT_NODE_PATH:-$PWD/node_modules}
TV=${TV:-/tmp/tv}
ANVIL=${ANVIL:-build/tools/anvil}
[ -x "$ANVIL" ] || { echo "build anvil first (bash scripts/setup.sh)" >&2; exit 1; }
[ -d "$ORT_NODE_PATH/onnxruntime-node" ] || { echo "npm install --ignore-scripts onnxruntime-node (or set ORT_NODE_PATH)" >&2; exit 1; }
models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  for m in ../shared/models/*.onnx; do [ -e "$m" ] && models+=("$m:100"); done
  for m in resnet50 mobilenet_v2; do [ -e "$TV/$m.onnx" ] && models+=("$TV/$m.onnx:1"); done
fi
echo "threads $THREADS, repeat $REPEAT (median), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
echo
echo "| model | batch | anvil ms | ONNX Runtime ms | anvil / ORT | anvil peak RSS MB |"
echo "|---|---|---|---|---|---|"
for spec in "${models[@]}"; do
  model=${spec%%:*}; batch=${spec##*:}; [ "$batch" = "$spec" ] && batch=100
  a=$("$ANVIL" bench "$model" --batch "$batch" --repeat "$REPEAT" --threads "$THREADS")
  dims=$(node -e "console.log(JSON.stringify(JSON.parse(process.argv[1]).input_shape))" "$a")
  o=$(NODE_PATH="$ORT_NODE_PATH" node benchmarks/ort_bench.js "$model" "$dims" "$REPEAT" "$THREADS")
  node -e '
    const a = JSON.parse(process.argv[1]), o = JSON.parse(process.argv[2]);
    const name = a.model.split("/").pop().replace(".onnx", "");
    console.log(`| ${name} | ${a.batch} | ${a.ms_median.toFixed(2)} | ${o.ms_median.toFixed(2)} | ${(a.ms_median / o.ms_median).toFixed(2)} | ${a.peak_rss_mb.toFixed(0)} |`);
  ' "$a" "$o"
done
