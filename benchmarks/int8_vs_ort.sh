#!/usr/bin/env bash
# The reference executor's int8 run vs ONNX Runtime on the same QDQ file, every output element
# (the open issue: "agree to within one quantization step on every output element").
#
# Per model: calibrate once; per method: quantize, compile at --batch, `anvil run` the first --count
# Fashion-MNIST test images (the int8 output; the project's tests keep it bit-identical to the
# reference executor's integer run), then run the same QDQ file under ONNX Runtime (CPU execution
# provider, graphOptimizationLevel 'disabled': 'all' fuses QDQ into QLinear kernels whose U8S8 path
# saturates on CPUs without VNNI, which is not the file's semantics) on the same float32 .npy inputs.
# ORT's output is the final DequantizeLinear's y = (q - zp) * scale; its int8 q is recovered exactly
# as round(y / scale) + zp, with scale and zp read from that DequantizeLinear in the .onnx
# (benchmarks/int8_vs_ort.js parses the protobuf; the run stops if the program's output scale and
# zero point, from `anvil disasm`, differ). Both int8 tensors are then on one grid, so |difference|
# is in quantization steps. Top-1 agreement: the first largest logit's index is the same on both sides.
# Prints a Markdown table and one verdict line per model. Benchmarks never gate CI.
#
# usage: benchmarks/int8_vs_ort.sh [--count N] [--batch B] [--methods M1,M2,...] [--json FILE]
#                                  [--work DIR] [--quantize-flag FLAG ...] [MODEL.onnx ...]
#   default models: the five ../shared/models/{cnn,mlp,resnet,mobilenetv2,vit}.onnx; --count 1000
#   (the first N test images); --batch 100 (the last batch is filled up, its extra rows not compared);
#   --methods: all ten; --work DIR keeps every intermediate file (ranges, QDQ files, programs,
#   inputs, outputs) in DIR, otherwise a temporary folder is removed at exit. --quantize-flag (repeatable)
#   passes a flag of `anvil quantize` on, e.g. --quantize-flag --float-residual-sums.
#   Calibration: the first 500 training images, --mean 0.286 --std 0.353 (the models' .json).
# env: ANVIL (the anvil binary, default build/tools/anvil), ORT_NODE_PATH (folder holding
#      onnxruntime-node, default /tmp/ort/node_modules), THREADS (anvil run --threads and ORT's
#      intraOpNumThreads, default 2), DATASET (default /usr/share/datasets/fashion-mnist)
set -euo pipefail
usage() { sed -n '/^# usage:/,/^set /{/^set /!p}' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
source "$(dirname "$0")/int8_vs_ort_setup.sh"
ALL_METHODS=MIN_MAX_ASYM,MIN_MAX_SYM,ENTROPY_ASYM,ENTROPY_SYM,PERCENTILE_ASYM,PERCENTILE_SYM,SQNR_ASYM,SQNR_SYM,MSE_ASYM,MSE_SYM
count=1000 batch=100 methods=$ALL_METHODS json="" work="" models=() qflags=()
while [ $# -gt 0 ]; do
  case $1 in
    --count|--batch|--methods|--json|--work|--quantize-flag) [ $# -ge 2 ] || { echo "int8_vs_ort.sh: $1 needs a value" >&2; exit 2; } ;;&
    --count) count=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --methods) methods=$2; shift 2 ;;
    --json) json=$(realpath -m "$2"); shift 2 ;;
    --work) work=$(realpath -m "$2"); shift 2 ;;
    --quantize-flag) qflags+=("$2"); shift 2 ;;
    -h|--help) usage ;;
    -*) echo "int8_vs_ort.sh: unknown option $1" >&2; usage ;;
    *) models+=("$(realpath -m "$1")"); shift ;;
  esac
done
cd "$(dirname "$0")/.."
ANVIL=${ANVIL:-build/tools/anvil}
[ ${#models[@]} -gt 0 ] || for m in cnn mlp resnet mobilenetv2 vit; do models+=("../shared/models/$m.onnx"); done

check_tools
for m in "${models[@]}"; do [ -f "$m" ] || die "model not found: $m"; done
[ -n "$methods" ] || die "--methods: empty list"
helper=$PWD/benchmarks/int8_vs_ort.js

if [ -n "$work" ]; then mkdir -p "$work"; else work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; fi
log=$work/anvil.log
: > "$log"
# run COMMAND...: its output goes to the log; on failure, the end of its output and the command.
run() {
  local out
  out=$("$@" 2>&1) || { printf '%s\n' "$out" | tail -3 >&2; die "failed: $*"; }
  printf '%s\n' "$out" >> "$log"
}

mkdir -p "$work/inputs"
node "$helper" inputs "$DATASET" "$count" "$batch" "$MEAN" "$STD" "$work/inputs"
results=$work/results.jsonl
: > "$results"
t0=$SECONDS
for model in "${models[@]}"; do
  name=$(basename "$model" .onnx)
  dir=$work/$name
  mkdir -p "$dir"
  run "$ANVIL" calibrate "$model" --calib "fashion-mnist:$DATASET" --calib-count "$CALIB_COUNT" \
      --mean "$MEAN" --std "$STD" -o "$dir/ranges.json"
  for method in ${methods//,/ }; do
    tm=$SECONDS
    qdq=$dir/$method.onnx prog=$dir/$method.anvil out=$dir/$method
    run "$ANVIL" quantize "$model" -o "$qdq" --ranges "$dir/ranges.json" --method "$method" ${qflags[@]+"${qflags[@]}"}
    run "$ANVIL" compile "$qdq" -o "$prog" --batch "$batch"
    # the program's output line: "  output NAME int8[...] LAYOUT scale=S zero_point=Z io+..."
    grid=$("$ANVIL" disasm "$prog" | sed -n 's/^ *output .* scale=\([^ ]*\) zero_point=\([^ ]*\) .*/\1 \2/p' | head -1)
    [ -n "$grid" ] || die "$name $method: no int8 output in \`anvil disasm $prog\`"
    mkdir -p "$out"
    for x in "$work"/inputs/x_*.npy; do
      y=$out/y_${x##*/x_}
      run "$ANVIL" run "$prog" --input "$x" -o "$y" --threads "$THREADS"
    done
    r=$(NODE_PATH="$ORT_NODE_PATH" node "$helper" compare "$qdq" "$count" "$work/inputs" "$out" "$THREADS" $grid)
    echo "${r%\}},\"model\":\"$name\",\"method\":\"$method\",\"seconds\":$((SECONDS - tm))}" >> "$results"
    echo "$name $method: $r ($((SECONDS - tm)) s)" >&2
  done
done

echo "anvil: $ANVIL, onnxruntime-node" \
     "$(node -p "require('$ORT_NODE_PATH/onnxruntime-node/package.json').version")" \
     "(optimizations disabled), first $count test images, batch $batch, threads $THREADS${qflags[*]+, anvil quantize ${qflags[*]}}," \
     "wall time $((SECONDS - t0)) s"
echo
node "$helper" report "$results" ${json:+"$json"}
