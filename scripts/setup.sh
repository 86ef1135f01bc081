#!/usr/bin/env bash
# Installs what is missing (Debian 12 packages only), then configures and builds anvil into ./build.
# Idempotent: a second run installs nothing and rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config
  libsystemc-dev            # SystemC 2.3.4 with TLM-2.0: the hardware model
  libonnx-dev libprotobuf-dev protobuf-compiler   # ONNX 1.12 protobuf classes, checker, shape inference
  libtbb-dev libdnnl-dev                          # parallelism and fast kernels (reference executor, MAC array)
  ocl-icd-opencl-dev        # only a Recommends of libdnnl-dev, but dnnl-config.cmake fails without OpenCL
  libspdlog-dev libcli11-dev nlohmann-json3-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  dataset-fashion-mnist     # /usr/share/datasets/fashion-mnist: the demo's data
  libonnx-testdata          # /usr/share/libonnx-testdata: the ONNX backend test suite (reference executor conformance)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: run as root or install sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo_cmd=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${ANVIL_CMAKE_ARGS:-} >/dev/null
cmake --build build -j"$(nproc)"
