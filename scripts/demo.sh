#!/usr/bin/env bash
# The main job: set up, build, then quantize the shipped Fashion-MNIST CNN with both MIN_MAX
# methods, compile it for one Warboy PE, run 1,000 test images on the SystemC model through the
# runtime, and print accuracy and cycles side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec ./build/tools/anvil eval examples/demo/demo_cnn.onnx \
  --dataset fashion-mnist:/usr/share/datasets/fashion-mnist --mean 0.2860 --std 0.3530 \
  --methods MIN_MAX_ASYM,MIN_MAX_SYM --target warboy --calib-count 500 --count 1000 \
  --json build/demo_report.json "$@"
