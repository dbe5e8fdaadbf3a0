#!/usr/bin/env python3
"""Image decoding (src/data/image.h) against PIL 9.4: exact equality with
np.asarray(Image.open(f).convert("RGB")) and .convert("L") for every source kind.

Files are written into --workdir:
  * JPEG by PIL from real photos (skimage's astronaut/chelsea/coffee, sklearn's china/flower,
    which are also used as they are): qualities 75/90/95, 4:4:4 / 4:2:2 / 4:2:0, baseline and
    progressive, grey, CMYK (PIL writes Adobe-style inverted CMYK), one with an EXIF orientation
    tag (ignored by both);
  * PNG written by hand (this script), so that every colour type and bit depth is covered, each
    both plain and Adam7-interlaced: grey 1/2/4/8/16, RGB 8/16, palette 1/2/4/8 (a short PLTE
    whose missing entries PIL fills with a grey ramp, and tRNS), grey+alpha 8/16, RGBA 8/16,
    grey and RGB with tRNS; plus PIL's own PNGs of the photos;
  * BMP: PIL's 1-bit, 8-bit grey, 8-bit palette and 24-bit; by hand: 4-bit, 16-bit 5-5-5 and
    5-6-5 bit fields, 32-bit BGRX and bit-field RGBA, top-down, the OS/2 core header, V4 and V5
    headers, a short palette, a pixel offset that forgot the palette (PIL skips the palette);
  * WebP by PIL: lossy and lossless, with and without alpha.

Checks (the driver decodes one file per run and writes .npy):
  1. full size, chans 3 and 1: equal to PIL's convert("RGB") / convert("L"). The one deliberate
     difference: 16-bit grey PNG, which PIL opens as mode "I" and clips to 255 on conversion;
     we take the high byte (v >> 8), so the expectation is PIL's 16-bit values >> 8;
  2. JPEG DCT scaling 1/2, 1/4, 1/8 (scale_num 4, 2, 1): equal to PIL after im.draft("RGB",
     size), which makes libjpeg scale the same way;
  3. regions at every scale 1..8 (all formats; scale is ignored except for JPEG): the returned
     block covers the requested region and equals the matching slice of the full decode at that
     scale (of PIL's, where PIL can decode at that scale).
Prints what it checked; exits 1 on any mismatch.
"""
import argparse
import io
import os
import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
from PIL import Image

PHOTOS = [
    "/usr/lib/python3/dist-packages/skimage/data/astronaut.png",
    "/usr/lib/python3/dist-packages/skimage/data/chelsea.png",
    "/usr/lib/python3/dist-packages/skimage/data/coffee.png",
    "/usr/lib/python3/dist-packages/sklearn/datasets/images/china.jpg",
    "/usr/lib/python3/dist-packages/sklearn/datasets/images/flower.jpg",
]

failures = []
checked = {"full": 0, "scaled": 0, "region": 0}


def fail(msg):
    failures.append(msg)
    print("FAIL", msg)


# ------------------------------------------------------------------ driver

def run_driver(driver, path, out, chans=3, scale=0, region=None):
    cmd = [driver, path, "--chans", str(chans), "--scale", str(scale), "--out", out]
    if region:
        cmd += ["--region"] + [str(v) for v in region]
    r = subprocess.run(cmd, capture_output=True, text=True)
    line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    if r.returncode != 0 or not line.startswith("ok"):
        return None, f"driver rc {r.returncode}: {line} {r.stderr.strip()}"
    w, h, c, fw, fh, x0, y0, s = (int(v) for v in line.split()[1:])
    px = np.load(out)
    return dict(px=px, w=w, h=h, c=c, full_w=fw, full_h=fh, x0=x0, y0=y0, scale=s), None


def as_hwc(a):
    a = np.asarray(a)
    return a[:, :, None] if a.ndim == 2 else a


# ------------------------------------------------------------------ PNG by hand

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]
SPP = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_pack_row(row, depth):
    """row: (n, spp) ints -> the PNG's packed bytes."""
    if depth == 16:
        return row.astype(">u2").tobytes()
    if depth == 8:
        return row.astype(np.uint8).tobytes()
    bits = np.unpackbits(row.astype(np.uint8).reshape(-1, 1), axis=1)[:, 8 - depth:]
    return np.packbits(bits.reshape(-1)).tobytes()


def png_bytes(samples, color_type, depth, interlace=False, plte=None, trns=None):
    h, w, _ = samples.shape
    raw = bytearray()
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for row in sub:
            raw += b"\0" + png_pack_row(row, depth)
    out = b"\x89PNG\r\n\x1a\n"
    out += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0,
                                          1 if interlace else 0))
    if plte is not None:
        out += png_chunk(b"PLTE", plte.astype(np.uint8).tobytes())
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    out += png_chunk(b"IDAT", zlib.compress(bytes(raw), 6))
    return out + png_chunk(b"IEND", b"")


def make_pngs(wd, rgb):
    """Every colour type / depth, plain and interlaced, from an RGB photo crop."""
    rng = np.random.default_rng(1)
    h, w, _ = rgb.shape
    lum = np.asarray(Image.fromarray(rgb).convert("L")).astype(np.int64)
    noise = rng.integers(0, 256, (h, w, 4))
    alpha = rng.integers(0, 256, (h, w, 1))
    files = []
    for interlace in (False, True):
        tag = "_i" if interlace else ""
        cases = []
        for d in (1, 2, 4, 8):
            cases.append((f"grey{d}", 0, d, (lum >> (8 - d))[:, :, None], None, None))
        cases.append(("grey16", 0, 16, (lum * 256 + noise[:, :, 0])[:, :, None], None, None))
        cases.append(("rgb8", 2, 8, rgb, None, None))
        cases.append(("rgb16", 2, 16, rgb.astype(np.int64) * 256 + noise[:, :, :3], None, None))
        for d, n in ((1, 2), (2, 3), (4, 16), (8, 200)):
            idx = ((lum ^ rgb[:, :, 2]) >> (8 - d))[:, :, None]
            plte = rng.integers(0, 256, (n, 3))
            trns = bytes(rng.integers(0, 256, n // 2).astype(np.uint8)) if d == 4 else None
            cases.append((f"pal{d}", 3, d, idx, plte, trns))
        cases.append(("ga8", 4, 8, np.concatenate([lum[:, :, None], alpha], 2), None, None))
        cases.append(("ga16", 4, 16, np.concatenate([lum[:, :, None] * 256 + noise[:, :, :1],
                                                     alpha * 257], 2), None, None))
        cases.append(("rgba8", 6, 8, np.concatenate([rgb, alpha], 2), None, None))
        cases.append(("rgba16", 6, 16, np.concatenate([rgb.astype(np.int64) * 256 +
                                                       noise[:, :, :3], alpha * 257], 2),
                      None, None))
        cases.append(("grey8_trns", 0, 8, lum[:, :, None], None, struct.pack(">H", 17)))
        cases.append(("rgb8_trns", 2, 8, rgb, None, struct.pack(">HHH", 1, 2, 3)))
        for name, ct, d, samples, plte, trns in cases:
            path = os.path.join(wd, f"png_{name}{tag}.png")
            with open(path, "wb") as f:
                f.write(png_bytes(np.asarray(samples), ct, d, interlace, plte, trns))
            files.append((path, "grey16" in name))
    return files


# ------------------------------------------------------------------ BMP by hand

def bmp_bytes(w, h, bits, vals, pal=None, hsize=40, top_down=False, compression=0, masks=None,
              colors=None, offset_quirk=False):
    """vals: (h, w) indices (bits <= 8) or packed pixel values; pal: (n, 3) RGB."""
    core = hsize == 12
    entry = 3 if core else 4
    n_pal = (len(pal) if colors is None else colors) if bits <= 8 else 0
    mask_bytes = 12 if (compression == 3 and hsize == 40) else 0
    off = 14 + hsize + mask_bytes + n_pal * entry
    stride = ((w * bits + 31) // 32) * 4
    if core:
        hdr = struct.pack("<IHHHH", 12, w, h, 1, bits)
    else:
        hdr = struct.pack("<IiiHHIIiiII", hsize, w, -h if top_down else h, 1, bits, compression,
                          stride * h, 2835, 2835, n_pal if bits <= 8 else 0, 0)
        if hsize >= 52:
            m = masks if (masks and compression == 3) else (0, 0, 0)
            hdr += struct.pack("<III", *m[:3])
            if hsize >= 56:
                hdr += struct.pack("<I", m[3] if len(m) > 3 else 0)
        hdr += bytes(hsize - len(hdr))
    body = bytearray()
    if mask_bytes:
        body += struct.pack("<III", *masks[:3])
    for i in range(n_pal):
        r, g, b = (int(v) for v in pal[i])
        body += bytes([b, g, r] + ([0] if entry == 4 else []))
    pix = bytearray(stride * h)
    for y in range(h):
        fy = y if top_down else h - 1 - y
        row = vals[y]
        if bits <= 8:
            packed = png_pack_row(row.reshape(-1, 1), bits) if bits < 8 else row.astype(
                np.uint8).tobytes()
        else:
            packed = b"".join(int(v).to_bytes(bits // 8, "little") for v in row)
        pix[fy * stride:fy * stride + len(packed)] = packed
    data_off = 14 + hsize if offset_quirk else off
    head = b"BM" + struct.pack("<IHHI", off + len(pix), 0, 0, data_off)
    return head + hdr + bytes(body) + bytes(pix)


def pack_masks(rgb, masks):
    out = np.zeros(rgb.shape[:2], np.int64)
    for k, m in enumerate(masks[:3]):
        sh = (m & -m).bit_length() - 1
        n = bin(m).count("1")
        v = rgb[:, :, k].astype(np.int64)
        v = (v >> (8 - n)) if n <= 8 else ((v << (n - 8)) | (v & ((1 << (n - 8)) - 1)))
        out |= v << sh
    return out


def make_bmps(wd, rgb):
    rng = np.random.default_rng(2)
    h, w, _ = rgb.shape
    lum = np.asarray(Image.fromarray(rgb).convert("L"))
    pal256 = rng.integers(0, 256, (256, 3))
    files = []

    def put(name, data):
        path = os.path.join(wd, f"bmp_{name}.bmp")
        with open(path, "wb") as f:
            f.write(data)
        files.append((path, False))

    # PIL's own
    for mode in ("1", "L", "P", "RGB"):
        im = Image.fromarray(rgb)
        im = im.convert(mode) if mode != "P" else im.quantize(100)
        path = os.path.join(wd, f"bmp_pil_{mode}.bmp")
        im.save(path)
        files.append((path, False))
    idx4 = lum >> 4
    put("pal4", bmp_bytes(w, h, 4, idx4, pal256[:16]))
    put("pal1_topdown", bmp_bytes(w, h, 1, lum >> 7, pal256[:2], top_down=True))
    put("pal8_v5_short", bmp_bytes(w, h, 8, lum, pal256[:100], hsize=124))
    put("pal8_os2", bmp_bytes(w, h, 8, lum, pal256, hsize=12))
    put("pal8_offset_quirk", bmp_bytes(w, h, 8, lum, pal256, offset_quirk=True))
    put("rgb555", bmp_bytes(w, h, 16, pack_masks(rgb, (0x7C00, 0x3E0, 0x1F))))
    put("rgb565_bitfields", bmp_bytes(w, h, 16, pack_masks(rgb, (0xF800, 0x7E0, 0x1F)),
                                      compression=3, masks=(0xF800, 0x7E0, 0x1F)))
    put("rgb555_bitfields_v4", bmp_bytes(w, h, 16, pack_masks(rgb, (0x7C00, 0x3E0, 0x1F)),
                                         hsize=108, compression=3,
                                         masks=(0x7C00, 0x3E0, 0x1F, 0x8000)))
    put("bgr24_topdown", bmp_bytes(w, h, 24, pack_masks(rgb, (0xFF0000, 0xFF00, 0xFF)),
                                   top_down=True))
    put("bgr24_v4", bmp_bytes(w, h, 24, pack_masks(rgb, (0xFF0000, 0xFF00, 0xFF)), hsize=108))
    bgrx = pack_masks(rgb, (0xFF0000, 0xFF00, 0xFF)) | (rng.integers(0, 256, (h, w)) << 24)
    put("bgrx32", bmp_bytes(w, h, 32, bgrx))
    rgba = pack_masks(rgb, (0xFF, 0xFF00, 0xFF0000)) | (rng.integers(0, 256, (h, w)) << 24)
    put("rgba32_bitfields_v5", bmp_bytes(w, h, 32, rgba, hsize=124, compression=3,
                                         masks=(0xFF, 0xFF00, 0xFF0000, 0xFF000000)))
    put("xbgr32_bitfields", bmp_bytes(w, h, 32, pack_masks(rgb, (0xFF000000, 0xFF0000, 0xFF00)),
                                      compression=3, masks=(0xFF000000, 0xFF0000, 0xFF00)))
    return files


# ------------------------------------------------------------------ JPEG / WebP by PIL

def make_jpegs(wd, photos):
    files = []
    for p in photos:
        base = os.path.splitext(os.path.basename(p))[0]
        im = Image.open(p).convert("RGB")
        if p.endswith(".jpg"):
            files.append(p)
        for q, sub, prog in ((90, 2, False), (90, 2, True), (75, 1, False), (95, 0, True)):
            path = os.path.join(wd, f"jpg_{base}_q{q}_s{sub}{'_prog' if prog else ''}.jpg")
            im.save(path, quality=q, subsampling=sub, progressive=prog)
            files.append(path)
        if base in ("astronaut", "china"):
            path = os.path.join(wd, f"jpg_{base}_grey.jpg")
            im.convert("L").save(path, quality=90)
            files.append(path)
            path = os.path.join(wd, f"jpg_{base}_cmyk.jpg")
            im.convert("CMYK").save(path, quality=90)
            files.append(path)
            exif = Image.Exif()
            exif[0x0112] = 6  # orientation: rotate 90 (ignored, as PIL's plain open)
            path = os.path.join(wd, f"jpg_{base}_exif6.jpg")
            im.save(path, quality=85, exif=exif.tobytes())
            files.append(path)
            # junk bytes between two header segments: libjpeg warns "extraneous bytes before
            # marker"; the pixels are intact and PIL decodes it, so must we
            raw = open(os.path.join(wd, f"jpg_{base}_q90_s2.jpg"), "rb").read()
            app0 = 4 + struct.unpack(">H", raw[4:6])[0]
            path = os.path.join(wd, f"jpg_{base}_extraneous.jpg")
            open(path, "wb").write(raw[:app0] + b"\x00\x17\x2a" + raw[app0:])
            files.append(path)
    return files


def make_webps(wd, rgb):
    rng = np.random.default_rng(3)
    files = []
    rgba = np.concatenate([rgb, rng.integers(0, 256, rgb.shape[:2] + (1,)).astype(np.uint8)], 2)
    for name, arr, kw in (("lossy", rgb, dict(quality=90)), ("lossless", rgb, dict(lossless=True)),
                          ("lossy_alpha", rgba, dict(quality=80)),
                          ("lossless_alpha", rgba, dict(lossless=True))):
        path = os.path.join(wd, f"webp_{name}.webp")
        Image.fromarray(arr).save(path, **kw)
        files.append((path, False))
    return files


# ------------------------------------------------------------------ checks

def pil_expected(path, chans, grey16=False):
    im = Image.open(path)
    if grey16:  # mode "I" with the 16-bit values; our documented choice is the high byte
        v = np.asarray(im).astype(np.int64) >> 8
        return as_hwc(v.astype(np.uint8) if chans == 1 else np.repeat(v[:, :, None], 3, 2)
                      .astype(np.uint8))
    return as_hwc(im.convert("RGB" if chans == 3 else "L"))


def check_full(driver, wd, path, grey16=False):
    name = os.path.basename(path)
    out = os.path.join(wd, "out.npy")
    for chans in (3, 1):
        got, err = run_driver(driver, path, out, chans)
        if err:
            fail(f"{name} chans {chans}: {err}")
            continue
        exp = pil_expected(path, chans, grey16)
        checked["full"] += 1
        if got["px"].shape != exp.shape or (got["x0"], got["y0"]) != (0, 0):
            fail(f"{name} chans {chans}: shape {got['px'].shape} at ({got['x0']},{got['y0']}),"
                 f" PIL {exp.shape}")
        elif not np.array_equal(got["px"], exp):
            d = np.abs(got["px"].astype(int) - exp.astype(int))
            fail(f"{name} chans {chans}: {np.count_nonzero(d)} values differ from PIL "
                 f"(max {d.max()})")
        if grey16 and chans == 1:  # show PIL's own clipped conversion, for the record
            pil = as_hwc(Image.open(path).convert("L"))
            print(f"  {name}: PIL's clipped L differs from v>>8 in "
                  f"{np.count_nonzero(pil != exp)} of {exp.size} pixels (documented)")


def pil_draft(path, d, chans):
    """PIL's decode at 1/d through libjpeg's DCT scaling (draft), converted."""
    im = Image.open(path)
    W, H = im.size
    im.draft("RGB", (max(1, W // d), max(1, H // d)))
    want = ((W + d - 1) // d, (H + d - 1) // d)
    if im.size != want:
        return None
    return as_hwc(im.convert("RGB" if chans == 3 else "L"))


def check_scaled(driver, wd, path):
    name = os.path.basename(path)
    out = os.path.join(wd, "out.npy")
    for s in (4, 2, 1):
        for chans in (3, 1):
            exp = pil_draft(path, 8 // s, chans)
            if exp is None:
                fail(f"{name}: PIL's draft did not give scale {s}/8")
                continue
            got, err = run_driver(driver, path, out, chans, s)
            checked["scaled"] += 1
            if err:
                fail(f"{name} scale {s}/8 chans {chans}: {err}")
            elif got["px"].shape != exp.shape or got["scale"] != s:
                fail(f"{name} scale {s}/8: shape {got['px'].shape}, PIL {exp.shape}")
            elif not np.array_equal(got["px"], exp):
                fail(f"{name} scale {s}/8 chans {chans}: "
                     f"{np.count_nonzero(got['px'] != exp)} values differ from PIL's draft")


def check_regions(driver, wd, path, is_jpeg, rng, n=6, grey16=False):
    name = os.path.basename(path)
    out = os.path.join(wd, "out.npy")
    W, H = Image.open(path).size
    fulls = {}
    for t in range(n):
        s = int(rng.integers(1, 9)) if is_jpeg else 8
        chans = 3 if t % 3 else 1
        x0, y0 = int(rng.integers(0, W)), int(rng.integers(0, H))
        x1, y1 = int(rng.integers(x0 + 1, W + 1)), int(rng.integers(y0 + 1, H + 1))
        if t == 0:
            x0, y0, x1, y1 = 0, 0, W, min(H, 3)  # a thin top strip
        got, err = run_driver(driver, path, out, chans, s, (x0, y0, x1, y1))
        checked["region"] += 1
        if err:
            fail(f"{name} region {(x0, y0, x1, y1)} scale {s}: {err}")
            continue
        key = (s, chans)
        if key not in fulls:
            if not is_jpeg:
                fulls[key] = pil_expected(path, chans, grey16)
            elif s in (8, 4, 2, 1):
                fulls[key] = pil_expected(path, chans) if s == 8 else pil_draft(path, 8 // s,
                                                                                 chans)
            else:  # scales PIL cannot draft: our own full decode at that scale
                full, err = run_driver(driver, path, os.path.join(wd, "full.npy"), chans, s)
                fulls[key] = full["px"] if full else None
        ref = fulls[key]
        rx0, ry0 = x0 * s // 8, y0 * s // 8
        rx1, ry1 = -(-x1 * s // 8), -(-y1 * s // 8)
        gx0, gy0, gh, gw = got["x0"], got["y0"], got["h"], got["w"]
        if ref is None or not (gx0 <= rx0 and gy0 <= ry0 and gx0 + gw >= rx1 and
                               gy0 + gh >= ry1 and gx0 + gw <= ref.shape[1] and
                               gy0 + gh <= ref.shape[0]):
            fail(f"{name} region {(x0, y0, x1, y1)} scale {s}: block {gw}x{gh} at "
                 f"({gx0},{gy0}) does not cover the scaled region")
            continue
        mine = got["px"][ry0 - gy0:ry1 - gy0, rx0 - gx0:rx1 - gx0]
        if not np.array_equal(mine, ref[ry0:ry1, rx0:rx1]):
            fail(f"{name} region {(x0, y0, x1, y1)} scale {s} chans {chans}: differs from the "
                 f"slice of the full decode")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    # PIL's advice about palette images with tRNS, irrelevant here
    warnings.filterwarnings("ignore", message="Palette images with Transparency")
    os.makedirs(a.workdir, exist_ok=True)
    photos = [p for p in PHOTOS if os.path.exists(p)]
    if len(photos) < len(PHOTOS):
        print("missing photos:", sorted(set(PHOTOS) - set(photos)))
    if not photos:
        print("no photos to test with")
        return 1
    crop = np.asarray(Image.open(photos[0]).convert("RGB"))[100:197, 150:281]  # 131 x 97
    jpegs = make_jpegs(a.workdir, photos)
    others = make_pngs(a.workdir, crop) + make_bmps(a.workdir, crop) + make_webps(a.workdir, crop)
    for p in photos:
        if p.endswith(".png"):
            others.append((p, False))
    rng = np.random.default_rng(0)
    for p in jpegs:
        check_full(a.driver, a.workdir, p)
        check_scaled(a.driver, a.workdir, p)
        check_regions(a.driver, a.workdir, p, True, rng)
    for p, grey16 in others:
        check_full(a.driver, a.workdir, p, grey16)
        check_regions(a.driver, a.workdir, p, False, rng, 3, grey16)
    exts = [os.path.splitext(p)[1] for p, _ in others]
    print(f"checked {len(jpegs)} JPEG, {exts.count('.png')} PNG, {exts.count('.bmp')} BMP and "
          f"{exts.count('.webp')} WebP files: {checked['full']} full decodes, "
          f"{checked['scaled']} DCT-scaled decodes against PIL's draft, {checked['region']} "
          f"regions")
    if failures:
        print(f"{len(failures)} mismatches")
        return 1
    print("all equal to PIL")
    return 0


if __name__ == "__main__":
    sys.exit(main())
