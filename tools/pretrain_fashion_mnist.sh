#!/usr/bin/env bash
# The main job: installs the build dependencies, builds mae, and pretrains an MAE (tiny-28:
# ViT 192/12/3, decoder 128/4/4, patch 4) on Fashion-MNIST from Debian's dataset-fashion-mnist,
# ending with output_dir/reconstruction.png. Extra arguments are passed to `mae pretrain`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh build
cmake -B build -S . -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
exec ./build/mae pretrain --model tiny-28 --norm_pix_loss --batch_size 128 --epochs 5 \
  --warmup_epochs 1 --output_dir output_dir --save_every 5 "$@"
