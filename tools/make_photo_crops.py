#!/usr/bin/env python3
"""Random crops of the photos Debian's python3-skimage and python3-sklearn ship, as a small
ImageFolder for tools/visualize_demo.sh. astronaut, chelsea and coffee are held out (they are
the pictures the demo reconstructs). Usage: make_photo_crops.py OUT_DIR [N] [SIZE]"""
import os
import sys

import numpy as np
from PIL import Image

SK = "/usr/lib/python3/dist-packages/skimage/data"
SL = "/usr/lib/python3/dist-packages/sklearn/datasets/images"
TRAIN = [f"{SK}/{n}" for n in ("brick.png", "camera.png", "coins.png", "color.png", "grass.png",
                               "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png",
                               "motorcycle_left.png", "motorcycle_right.png", "retina.jpg",
                               "rocket.jpg", "page.png", "cell.png", "microaneurysms.png",
                               "clock_motion.png")] + [f"{SL}/china.jpg", f"{SL}/flower.jpg"]


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 96
    os.makedirs(os.path.join(out, "photos"), exist_ok=True)
    rng = np.random.default_rng(0)
    ims = [Image.open(p).convert("RGB") for p in TRAIN if os.path.exists(p)]
    for i in range(n):
        im = ims[rng.integers(len(ims))]
        w, h = im.size
        s = int(rng.integers(min(48, w, h), min(w, h) + 1))
        x, y = int(rng.integers(w - s + 1)), int(rng.integers(h - s + 1))
        crop = im.crop((x, y, x + s, y + s)).resize((size, size), Image.BICUBIC)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        crop.save(os.path.join(out, "photos", f"{i:05d}.png"))
    print(f"{n} crops of {len(ims)} photos in {out}/photos")


if __name__ == "__main__":
    main()
