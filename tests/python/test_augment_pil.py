"""Parity of the fine-tuning augmentations with PIL 9.4 / torchvision 0.14 (what timm 0.3.2's
create_transform calls underneath in main_finetune.py):

1. every RandAugment op (src/data/randaug.c, mae_randaug_op) against the PIL call timm makes for
   it: ImageOps.autocontrast/equalize/invert/posterize/solarize, the SolarizeAdd lut,
   ImageEnhance.Color/Contrast/Brightness/Sharpness(f).enhance, Image.rotate(deg, BICUBIC,
   fillcolor) and Image.transform(AFFINE, (1, f, 0, 0, 1, 0) etc., BICUBIC, fillcolor); RGB and
   L images of odd sizes, arguments over their whole ranges. Expected: bit-exact uint8.
2. MAE_AUG_EVAL (images.c) against torchvision Resize(int(size / crop_pct), BICUBIC) +
   CenterCrop(size) + ToTensor + Normalize on PIL images: max |diff| <= 1e-6 (the tolerance of
   test_transform_tv.py for the pretraining transform).

  test_augment_pil.py --driver build/tests/transform_driver --workdir DIR
Exit 1 on any failure.
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import torchvision.transforms as T
from PIL import Image, ImageEnhance, ImageOps

FILL = (124, 116, 104)
MEAN3, STD3 = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
MEAN1, STD1 = [0.449], [0.226]
OPS = ["AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd",
       "Color", "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX",
       "TranslateY"]
failures = []


def check(ok, msg):
    print(("ok   " if ok else "FAIL ") + msg)
    if not ok:
        failures.append(msg)


def pil_op(img, name, arg):
    fill = FILL if img.mode == "RGB" else FILL[0]
    kw = dict(resample=Image.BICUBIC, fillcolor=fill)
    if name == "AutoContrast":
        return ImageOps.autocontrast(img)
    if name == "Equalize":
        return ImageOps.equalize(img)
    if name == "Invert":
        return ImageOps.invert(img)
    if name == "Rotate":
        return img.rotate(arg, **kw)
    if name == "Posterize":
        return img if arg >= 8 else ImageOps.posterize(img, int(arg))
    if name == "Solarize":
        return ImageOps.solarize(img, int(arg))
    if name == "SolarizeAdd":
        lut = [min(255, i + int(arg)) if i < 128 else i for i in range(256)]
        return img.point(lut * (3 if img.mode == "RGB" else 1))
    if name in ("Color", "Contrast", "Brightness", "Sharpness"):
        return getattr(ImageEnhance, name)(img).enhance(arg)
    m = {"ShearX": (1, arg, 0, 0, 1, 0), "ShearY": (1, 0, 0, arg, 1, 0),
         "TranslateX": (1, 0, arg, 0, 1, 0), "TranslateY": (1, 0, 0, 0, 1, arg)}[name]
    return img.transform(img.size, Image.AFFINE, m, **kw)


def cases(w, h):
    out = [("AutoContrast", 0), ("Equalize", 0), ("Invert", 0)]
    for f in [0.0, 0.1, 0.37, 0.5, 0.9, 1.0]:
        out += [("Rotate", f * 30), ("Rotate", -f * 30), ("ShearX", f * 0.3), ("ShearX", -f * 0.3),
                ("ShearY", f * 0.3), ("ShearY", -f * 0.3), ("TranslateX", f * 0.45 * w),
                ("TranslateX", -f * 0.45 * w), ("TranslateY", f * 0.45 * h),
                ("TranslateY", -f * 0.45 * h), ("SolarizeAdd", int(f * 110))]
        for e in ("Color", "Contrast", "Brightness", "Sharpness"):
            out += [(e, 1 + f * 0.9), (e, 1 - f * 0.9), (e, f * 1.8 + 0.1)]
    out += [("Rotate", 90.0), ("Rotate", 180.0), ("Rotate", -123.4)]
    out += [("Posterize", b) for b in range(0, 9)]
    out += [("Solarize", t) for t in (0, 1, 26, 128, 230, 255, 256)]
    return out


def run(args, *cmd):
    subprocess.run([args.driver] + [str(x) for x in cmd], check=True)


def images():
    rng = np.random.default_rng(0)
    out = []
    for shape in [(23, 37, 3), (28, 28), (28, 28, 3), (50, 31, 3), (7, 5), (2, 2, 3)]:
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        out.append(("noise%s" % (shape,), a))
    # smooth images (gradients + blobs), where the bicubic and the enhance rounding matter more
    y, x = np.mgrid[0:40, 0:53]
    g = (127 + 100 * np.sin(x / 5.0) * np.cos(y / 7.0)).astype(np.uint8)
    out.append(("smooth(40, 53, 3)", np.stack([g, g[::-1], 255 - g], axis=2).copy()))
    out.append(("low-contrast(40, 53)", (60 + g // 4).astype(np.uint8)))
    return out


def test_ops(args):
    for name, a in images():
        h, w = a.shape[:2]
        cs = cases(w, h)
        ip, op = os.path.join(args.workdir, "img.npy"), os.path.join(args.workdir, "ra.npy")
        np.save(ip, a)
        cmd = []
        for n, arg in cs:
            cmd += [OPS.index(n), repr(float(arg))]
        run(args, "raop", ip, op, *cmd)
        got = np.load(op).reshape((len(cs),) + a.shape)
        bad = []
        for k, (n, arg) in enumerate(cs):
            ref = np.asarray(pil_op(Image.fromarray(a), n, arg))
            d = np.abs(got[k].astype(int) - ref.astype(int))
            if d.max() > 0:
                bad.append("%s(%.4g): %d differ, max %d" % (n, arg, (d > 0).sum(), d.max()))
        for b in bad[:5]:
            print("   " + b)
        check(not bad, "%-22s %d RandAugment op cases == PIL, %d differ" % (name, len(cs), len(bad)))


def test_eval(args):
    rng = np.random.default_rng(2)
    worst = 0.0
    for shape in [(23, 37, 3), (28, 28, 3), (200, 300, 3), (28, 28), (37, 23), (301, 199, 3),
                  (32, 32, 3), (5, 90, 3)]:
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        ip, op = os.path.join(args.workdir, "img.npy"), os.path.join(args.workdir, "ev.npy")
        np.save(ip, a)
        mean, std = (MEAN3, STD3) if a.ndim == 3 else (MEAN1, STD1)
        for size, crop_pct in [(28, 0.875), (28, 1.0), (24, 0.9), (7, 0.875)]:
            if min(shape[:2]) < 1:
                continue
            run(args, "eval", ip, size, crop_pct, op)
            got = np.load(op)
            tf = T.Compose([T.Resize(int(size / crop_pct), interpolation=T.InterpolationMode.BICUBIC),
                            T.CenterCrop(size), T.ToTensor(), T.Normalize(mean, std)])
            ref = tf(Image.fromarray(a)).numpy()
            d = float(np.abs(got - ref).max()) if got.shape == ref.shape else float("inf")
            worst = max(worst, d)
            check(d <= 1e-6, "eval %-14s size %d crop_pct %.3f: shape %s vs %s, max |diff| %.3g"
                  % (shape, size, crop_pct, got.shape, ref.shape, d))
    print("eval: max |diff| %.3g" % worst)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    test_ops(args)
    test_eval(args)
    print("test_augment_pil: %s" % ("%d FAILED" % len(failures) if failures else "all passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
