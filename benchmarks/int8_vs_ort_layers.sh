#!/usr/bin/env bash
# Where anvil's int8 run and ONNX Runtime part on one QDQ file: every quantized activation, whole network
# and layer alone (the per-layer view of benchmarks/int8_vs_ort.sh; read its header first).
#
# One model, one method: calibrate, quantize, then for each quantized activation (each QuantizeLinear
# of a computed tensor, in graph order; the name is its DequantizeLinear's output) two models are cut
# from the QDQ file by editing its protobuf (benchmarks/int8_vs_ort.js layers-ort):
#   whole network: the model up to that activation, its DequantizeLinear the output; both sides run the
#     first --count test images, so differences made upstream are carried in;
#   layer alone: only the nodes since the upstream activations, whose quantized float tensors become the
#     inputs; both sides are fed ORT's own upstream activations (exactly on their grids, so anvil's host
#     quantization recovers ORT's int8), so only this layer's arithmetic and requantization can differ.
# Each cut is compiled at --batch and run with `anvil run` (the int8 output); ORT's int8 is
# round(y / scale) + zp with the activation's scale and zero point (the compare refuses a program whose
# output grid differs). A cut the compiler refuses is a "not cut" row with its one-line error.
# Prints one Markdown row per activation (the op that computed it, the layer's ops, elements compared,
# % exactly equal, max |diff| in steps and elements over one step for both modes) and two summary
# lines. Benchmarks never gate CI.
#
# usage: benchmarks/int8_vs_ort_layers.sh [--count N] [--batch B] [--method M] [--json FILE]
#                                         [--work DIR] MODEL.onnx
#   --count 100 (the first N test images); --batch 100; --method MIN_MAX_ASYM; --json FILE writes the rows;
#   --work DIR keeps every cut model, program and output (at 100 images about 300 MB for mobilenetv2,
#   100 MB for vit), otherwise a temporary folder is removed at exit. Calibration as in int8_vs_ort.sh.
# env: ANVIL, ORT_NODE_PATH, THREADS, DATASET as in int8_vs_ort.sh
set -euo pipefail
usage() { sed -n 20,25p "$0" >&2; exit 2; }
source "$(dirname "$0")/int8_vs_ort_setup.sh"
METHODS=" MIN_MAX_ASYM MIN_MAX_SYM ENTROPY_ASYM ENTROPY_SYM PERCENTILE_ASYM PERCENTILE_SYM SQNR_ASYM SQNR_SYM MSE_ASYM MSE_SYM "
count=100 batch=100 method=MIN_MAX_ASYM json="" work="" model=""
while [ $# -gt 0 ]; do
  case $1 in
    --count|--batch|--method|--json|--work) [ $# -ge 2 ] || die "$1 needs a value" ;;&
    --count) count=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --method) method=$2; shift 2 ;;
    --json) json=$(realpath -m "$2"); shift 2 ;;
    --work) work=$(realpath -m "$2"); shift 2 ;;
    -h|--help) usage ;;
    -*) echo "int8_vs_ort_layers.sh: unknown option $1" >&2; usage ;;
    *) [ -z "$model" ] || die "one model at a time ($model, $1)"; model=$(realpath -m "$1"); shift ;;
  esac
done
cd "$(dirname "$0")/.."
ANVIL=${ANVIL:-build/tools/anvil}

[ -n "$model" ] || { echo "int8_vs_ort_layers.sh: no model given" >&2; usage; }
check_tools
[ -f "$model" ] || die "model not found: $model"
[[ $METHODS == *" $method "* ]] || die "--method $method: not one of$METHODS"
helper=$PWD/benchmarks/int8_vs_ort.js

if [ -n "$work" ]; then mkdir -p "$work"; else work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; fi
log=$work/anvil.log
: > "$log"
run() {  # as in int8_vs_ort.sh: output to the log; on failure, its end and the command
  local out
  out=$("$@" 2>&1) || { printf '%s\n' "$out" | tail -3 >&2; die "failed: $*"; }
  printf '%s\n' "$out" >> "$log"
}

t0=$SECONDS
mkdir -p "$work/inputs"
node "$helper" inputs "$DATASET" "$count" "$batch" "$MEAN" "$STD" "$work/inputs"
run "$ANVIL" calibrate "$model" --calib "fashion-mnist:$DATASET" --calib-count "$CALIB_COUNT" \
    --mean "$MEAN" --std "$STD" -o "$work/ranges.json"
qdq=$work/$method.onnx
run "$ANVIL" quantize "$model" -o "$qdq" --ranges "$work/ranges.json" --method "$method"
NODE_PATH="$ORT_NODE_PATH" node "$helper" layers-ort "$qdq" "$work/inputs" "$work/cuts" "$THREADS" > "$work/activations.tsv"

status=$work/status.tsv
: > "$status"
while IFS=$'\t' read -r index name op whole_inputs layer_inputs; do
  dir=$work/cuts/$(printf %03d "$index")
  for mode in whole layer; do
    inputs=$whole_inputs; [ $mode = whole ] || inputs=$layer_inputs
    [ "$inputs" != - ] || continue
    if ! out=$("$ANVIL" compile "$dir/$mode.onnx" -o "$dir/$mode.anvil" --batch "$batch" 2>&1); then
      printf '%s\t%s\tnot cut\t%s\n' "$index" $mode "$(printf '%s\n' "$out" | grep . | tail -1)" >> "$status"
      continue
    fi
    printf '%s\n' "$out" >> "$log"
    grid=$("$ANVIL" disasm "$dir/$mode.anvil" | sed -n 's/^ *output .* scale=\([^ ]*\) zero_point=\([^ ]*\) .*/\1\t\2/p' | head -1)
    [ -n "$grid" ] || die "$name ($mode): no int8 output in \`anvil disasm $dir/$mode.anvil\`"
    mkdir -p "$dir/anvil_$mode"
    for x in "$work"/inputs/x_*.npy; do
      k=${x##*/x_}; k=${k%.npy}
      run "$ANVIL" run "$dir/$mode.anvil" --input ${inputs//%K/$k} -o "$dir/anvil_$mode/x_$k.npy" --threads "$THREADS"
    done
    printf '%s\t%s\tok\t%s\n' "$index" $mode "$grid" >> "$status"
  done
done < "$work/activations.tsv"

echo "$(basename "$model" .onnx) $method: anvil $ANVIL, onnxruntime-node" \
     "$(node -p "require('$ORT_NODE_PATH/onnxruntime-node/package.json').version")" \
     "(optimizations disabled), first $count test images, batch $batch, threads $THREADS, wall time $((SECONDS - t0)) s"
echo
node "$helper" layers-report "$qdq" "$count" "$work/cuts" "$status" ${json:+"$json"}
