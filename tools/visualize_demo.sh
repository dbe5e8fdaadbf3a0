#!/usr/bin/env bash
# The README picture: pretrains a small MAE (ViT 192/6/3, patch 8, 64x64 RGB, decoder 128/2/4,
# plain pixel loss) with `mae pretrain` on random crops of the photos Debian's python3-skimage and
# python3-sklearn ship (astronaut, chelsea and coffee held out), then draws the demo's 4-panel grid
# of the three held-out photos with `mae visualize`.
# Usage: tools/visualize_demo.sh [WORKDIR] [EPOCHS]   (default /tmp/mae_visualize_demo, 150)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/mae_visualize_demo}
epochs=${2:-150}
mae=./build/mae
[ -x "$mae" ] || { echo "build first: cmake -B build -S . && cmake --build build" >&2; exit 1; }
mkdir -p "$work"
[ -d "$work/crops/photos" ] || /usr/bin/python3 tools/make_photo_crops.py "$work/crops" 4000 96
"$mae" pretrain --data_path "$work/crops" --model mae_vit_tiny_patch16 --input_size 64 \
  --patch_size 8 --depth 6 --decoder_depth 2 --batch_size 128 --epochs "$epochs" \
  --warmup_epochs 10 --blr 1e-3 --num_workers 1 --output_dir "$work/out" --save_every 50 \
  --recon_images 4
sk=/usr/lib/python3/dist-packages/skimage/data
"$mae" visualize --checkpoint "$work/out/checkpoint-last.safetensors" --output docs/visualize_demo.png \
  --seed 1 --scale 3 "$sk/astronaut.png" "$sk/chelsea.png" "$sk/coffee.png"
echo "wrote docs/visualize_demo.png"
