#!/usr/bin/env bash
# Installs what mae needs on Debian 12: the build (CMake, OpenMP, OpenBLAS's OpenMP build, cJSON,
# zlib, libpng, libjpeg-turbo, libspng, libwebp), the data (dataset-fashion-mnist) and, with
# "test", the Python side of the tests (Debian's PyTorch, torchvision, PIL and the sample photos
# of skimage/sklearn + a venv with transformers, safetensors and timm from PyPI) and Open MPI
# (mpirun, and the headers that make cmake build the data-parallel code: tests/python/test_dist.py).
# Usage: tools/install_deps.sh [build|test]
set -euo pipefail
what=${1:-build}
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake pkg-config libopenblas-openmp-dev libcjson-dev zlib1g-dev libpng-dev
      libjpeg62-turbo-dev libspng-dev libwebp-dev dataset-fashion-mnist)
if [ "$what" = test ]; then
  # PIL/torchvision: the references of the image tests; skimage/sklearn ship the real photos
  pkgs+=(python3 python3-venv python3-pip python3-numpy python3-torch python3-pil
         python3-torchvision python3-skimage python3-sklearn
         openmpi-bin libopenmpi-dev)  # mae pretrain under mpirun (py_dist)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "$what" = test ]; then
  # Debian's torch (CPU) through --system-site-packages; transformers 4.46.3 is the newest
  # release that supports Debian's torch 1.13 and has ViTMAEForPreTraining with noise=.
  # timm 1.0.31 (works with torch 1.13): the reference for timm export/import and the blocks
  # of the official model in test_foreign_ckpt.py.
  if ! .venv/bin/python -c "import transformers, safetensors, torch, numpy, timm" 2>/dev/null; then
    rm -rf .venv
    /usr/bin/python3 -m venv --system-site-packages .venv
    .venv/bin/pip install -q --disable-pip-version-check "transformers==4.46.3" "safetensors>=0.4" \
      "timm==1.0.31"
  fi
fi
