#!/usr/bin/env bash
# Hardware model vs ONNX Runtime int8, side by side in one run: the wall time of simulating one
# int8 inference on the SystemC model (values and timing; `anvil run --repeat`) against ONNX
# Runtime's CPU execution provider running the same quantized QDQ model (benchmarks/ort_bench.js),
# with the same host thread count, back to back. Both time steady-state runs after one warm-up run
# (the session / program load is not timed on either side). Prints a Markdown table for
# docs/performance.md. Benchmarks never gate CI.
#
# usage: benchmarks/sim_vs_ort.sh QDQ.onnx PROGRAM.anvil INPUT.npy
#   QDQ.onnx     the quantized model (anvil quantize); PROGRAM.anvil the same model compiled (anvil compile)
#   INPUT.npy    one float32 input of the model's shape (quantized on the host by anvil run)
# env: ANVIL (default build/tools/anvil), THREADS (default 2), REPEAT (default 5),
#      ORT_NODE_PATH (folder holding onnxruntime-node, default /tmp/ort/node_modules)
set -euo pipefail
[ $# -eq 3 ] || { sed -n 2,13p "$0" >&2; exit 2; }
qdq=$1; program=$2; input=$3
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
REPEAT=${REPEAT:-5}
ORT_NODE_PATH=${ORT_NODE_PATH:-/tmp/ort/node_modules}
ANVIL=${ANVIL:-build/tools/anvil}
[ -x "$ANVIL" ] || { echo "build anvil first (set ANVIL=path/to/anvil)" >&2; exit 1; }
[ -d "$ORT_NODE_PATH/onnxruntime-node" ] || { echo "onnxruntime-node not found in $ORT_NODE_PATH" >&2; exit 1; }
stats=$(mktemp)
trap 'rm -f "$stats"' EXIT

"$ANVIL" run "$program" --input "$input" --repeat "$REPEAT" --threads "$THREADS" --stats "$stats" >&2
dims=$(node -e "const j = JSON.parse(require('fs').readFileSync(process.argv[1]));
  console.log(JSON.stringify(j.input_shape))" "$stats")
o=$(NODE_PATH="$ORT_NODE_PATH" node benchmarks/ort_bench.js "$qdq" "$dims" "$REPEAT" "$THREADS")

echo "threads $THREADS, repeat $REPEAT (median after one warm-up run), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| model | simulated PE cycles | hardware model ms | ONNX Runtime ms | model / ORT | simulated cycles per host second |"
echo "|---|---|---|---|---|---|"
node -e '
  const a = JSON.parse(require("fs").readFileSync(process.argv[1])), o = JSON.parse(process.argv[2]);
  const name = process.argv[3].split("/").pop();
  const ms = a.host.median_ms;
  console.log(`| ${name} | ${a.cycles} | ${ms.toFixed(1)} | ${o.ms_median.toFixed(1)} | ${(ms / o.ms_median).toFixed(2)} | ${(a.cycles / (ms / 1e3)).toExponential(3)} |`);
' "$stats" "$o" "$qdq"
