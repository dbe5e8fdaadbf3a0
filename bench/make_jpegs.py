#!/usr/bin/python3
"""Writes N ImageNet-like JPEGs (about 500x375 or 375x500, quality 90, 4:2:0 as PIL saves by
default) made from the real photos that Debian's python3-skimage and python3-sklearn ship:
random crops of random scale, resized with PIL's bicubic. Deterministic (seed 0).

usage: bench/make_jpegs.py OUT_DIR [N=200] [LONG_SIDE=500]
LONG_SIDE scales the size: 2000 gives 2000x1500 / 1500x2000 "phone photos"."""
import glob, os, sys
import numpy as np
from PIL import Image

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
long_side = int(sys.argv[3]) if len(sys.argv) > 3 else 500
srcs = sorted(glob.glob("/usr/lib/python3/dist-packages/skimage/data/*.png") +
              glob.glob("/usr/lib/python3/dist-packages/skimage/data/*.jpg") +
              glob.glob("/usr/lib/python3/dist-packages/sklearn/datasets/images/*.jpg"))
photos = []
for p in srcs:
    try:
        im = Image.open(p)
        if im.mode in ("RGB", "RGBA", "L", "P") and min(im.size) >= 256:
            photos.append(im.convert("RGB"))
    except OSError:  # skimage ships a few deliberately broken test files
        pass
if not photos:
    sys.exit("no photos: apt-get install python3-skimage python3-sklearn")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
for i in range(n):
    im = photos[i % len(photos)]
    W, H = (long_side, long_side * 3 // 4) if rng.random() < 0.75 else (long_side * 3 // 4, long_side)
    s = rng.uniform(0.6, 1.0)
    cw, ch = int(min(im.width, im.height * W / H) * s), int(min(im.height, im.width * H / W) * s)
    x, y = int(rng.integers(0, im.width - cw + 1)), int(rng.integers(0, im.height - ch + 1))
    im.crop((x, y, x + cw, y + ch)).resize((W, H), Image.BICUBIC).save(
        os.path.join(out, f"img{i:04d}.jpg"), quality=90)
print(f"{n} JPEGs from {len(photos)} photos in {out}")
