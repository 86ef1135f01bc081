# Sourced by int8_vs_ort.sh and int8_vs_ort_layers.sh (not run on its own): the defaults both take
# from the environment, the calibration they share, and the checks before any work starts.
ORT_NODE_PATH=${ORT_NODE_PATH:-/tmp/ort/node_modules}
THREADS=${THREADS:-2}
DATASET=${DATASET:-/usr/share/datasets/fashion-mnist}
MEAN=0.286 STD=0.353 CALIB_COUNT=500

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# After the options are read and the working directory is the repository: the binary, node, ONNX
# Runtime, the dataset and --count/--batch ($count, $batch), each a one-line error.
check_tools() {
  [ -x "$ANVIL" ] || die "anvil binary not found: $ANVIL (build it, or set ANVIL=path/to/anvil)"
  command -v node >/dev/null || die "node not found on PATH"
  [ -d "$ORT_NODE_PATH/onnxruntime-node" ] ||
    die "onnxruntime-node not found in $ORT_NODE_PATH (npm install --ignore-scripts onnxruntime-node, or set ORT_NODE_PATH)"
  [ -f "$DATASET/t10k-images-idx3-ubyte.gz" ] || die "Fashion-MNIST not found in $DATASET (set DATASET)"
  [[ $count =~ ^[1-9][0-9]*$ && $batch =~ ^[1-9][0-9]*$ ]] || die "--count and --batch take positive integers"
}
