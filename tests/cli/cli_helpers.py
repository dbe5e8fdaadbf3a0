#!/usr/bin/env python3
"""Helpers for the mae CLI shell tests (tests/cli/test_*.sh): make input files, read and
compare the files that `mae` writes. Each subcommand prints what it checked and exits 1 on a
failed check (2 on bad usage).

  make-idx DIR N [--gz] [--side S]     IDX images (and labels) with N random SxS images
  make-imagefolder DIR N               ImageFolder DIR/<class>/ of N real-photo crops (JPEG, PNG in
                                       several modes) plus bad files (see make_imagefolder)
  tty-run OUT CMD...                    runs CMD on a pseudo-terminal, its output to OUT; exits with its code
  make-npy-cases DIR C H L             .npy inputs for `mae reconstruct` error cases
  make-corrupt-st SRC DIR              corrupt variants of a safetensors file
  log-steps DIR OUT                    the records of DIR/steps.jsonl as exact strings
  check-log DIR                        DIR/log.txt and DIR/steps.jsonl: JSON lines, finite values
  loss-drop DIR RATIO                  last epoch's mean train_loss < RATIO * first step loss
  loss-parity A B RTOL                 A/steps.jsonl and B/steps.jsonl: same steps and lr, the last
                                       epoch's mean loss within RTOL (relative), losses not all equal
  check-png PATH W H                   a valid PNG (chunk CRCs, IHDR, IDAT size) of W x H
  check-official FILE                  official MAE state-dict names, float32, finite
  same-tensors A B                     the tensors of two safetensors files are byte-identical
"""
import json
import os
import re
import struct
import sys
import zlib


def die(msg):
    print("FAIL " + msg)
    sys.exit(1)


# --------------------------------------------------------------------------- inputs

def make_idx(argv):
    import gzip
    import numpy as np
    d, n = argv[0], int(argv[1])
    gz = "--gz" in argv
    side = int(argv[argv.index("--side") + 1]) if "--side" in argv else 28
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(0)
    # blobs on a dark background so the data is learnable and not pure noise
    img = np.zeros((n, side, side), np.uint8)
    yy, xx = np.mgrid[0:side, 0:side]
    for i in range(n):
        cy, cx, r = rng.uniform(side * 0.3, side * 0.7, 2).tolist() + [rng.uniform(3, side / 3)]
        img[i] = np.where((yy - cy) ** 2 + (xx - cx) ** 2 < r * r, 200, 10).astype(np.uint8)
    lab = rng.integers(0, 10, n).astype(np.uint8)
    ib = struct.pack(">IIII", 2051, n, side, side) + img.tobytes()
    lb = struct.pack(">II", 2049, n) + lab.tobytes()
    op = gzip.open if gz else open
    suf = ".gz" if gz else ""
    with op(os.path.join(d, "train-images-idx3-ubyte" + suf), "wb") as f:
        f.write(ib)
    with op(os.path.join(d, "train-labels-idx1-ubyte" + suf), "wb") as f:
        f.write(lb)
    print(f"wrote {n} {side}x{side} IDX images to {d}{' (gzip)' if gz else ''}")


PHOTOS = ["/usr/lib/python3/dist-packages/skimage/data/" + f for f in
          ("astronaut.png", "chelsea.png", "coffee.png", "camera.png", "rocket.jpg", "motorcycle_left.png")] + \
         ["/usr/lib/python3/dist-packages/sklearn/datasets/images/" + f for f in ("china.jpg", "flower.jpg")]


def make_imagefolder(argv):
    """DIR/<class>/ with N crops of Debian's sample photos in 3 classes: JPEG q90 (RGB, grey,
    progressive, CMYK) and PNG (RGB, RGBA, grey, palette, 16-bit), varied sizes; plus bad files:
    class_b/zz_truncated.jpg (cut in half), class_c/zz_empty.png (0 bytes), class_a/zz_text.jpg
    (text named .jpg) and a notes.txt (not an image extension: never listed). Prints the count of
    good and bad image files."""
    import numpy as np
    from PIL import Image
    d, n = argv[0], int(argv[1])
    photos = [Image.open(p).convert("RGB") for p in PHOTOS if os.path.exists(p)]
    if not photos:
        die("no sample photos (apt-get install python3-skimage python3-sklearn)")
    rng = np.random.default_rng(0)
    classes = ["class_a", "class_b", "class_c"]
    for c in classes:
        os.makedirs(os.path.join(d, c), exist_ok=True)
    for i in range(n):
        im = photos[i % len(photos)]
        w, h = int(rng.integers(40, 160)), int(rng.integers(40, 160))
        x, y = int(rng.integers(0, im.width - w)), int(rng.integers(0, im.height - h))
        crop = im.crop((x, y, x + w, y + h))
        kind = i % 9
        base = os.path.join(d, classes[i % 3], f"img{i:04d}")
        if kind == 0: crop.save(base + ".jpg", quality=90)
        elif kind == 1: crop.convert("L").save(base + ".jpeg", quality=90)
        elif kind == 2: crop.save(base + ".JPG", quality=90, progressive=True)
        elif kind == 3: crop.convert("CMYK").save(base + ".jpg", quality=90)
        elif kind == 4: crop.save(base + ".png")
        elif kind == 5: crop.convert("RGBA").save(base + ".png")
        elif kind == 6: crop.convert("L").save(base + ".png")
        elif kind == 7: crop.convert("P").save(base + ".png")
        else: Image.fromarray((np.asarray(crop.convert("L")).astype(np.uint16) * 257)).save(base + ".png")
    good = open(os.path.join(d, "class_a", sorted(os.listdir(os.path.join(d, "class_a")))[0]), "rb").read()
    open(os.path.join(d, "class_b", "zz_truncated.jpg"), "wb").write(
        open(os.path.join(d, "class_a", "img0000.jpg"), "rb").read()[:1500])
    open(os.path.join(d, "class_c", "zz_empty.png"), "wb").write(b"")
    open(os.path.join(d, "class_a", "zz_text.jpg"), "w").write("this is not a JPEG\n")
    open(os.path.join(d, "class_a", "notes.txt"), "w").write("not an image extension\n")
    print(f"wrote {n} images (+3 bad files, 1 non-image) in 3 classes to {d}; {len(good)} bytes first")


def tty_run(argv):
    import pty
    out, cmd = argv[0], argv[1:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(cmd[0], cmd)
    buf = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
    _, status = os.waitpid(pid, 0)
    open(out, "wb").write(buf)
    sys.exit(os.waitstatus_to_exitcode(status))


def make_npy_cases(argv):
    import numpy as np
    d, C, H, L = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(1)
    N = 3
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    np.save(os.path.join(d, "x.npy"), x)
    np.save(os.path.join(d, "noise.npy"), rng.random((N, L)).astype(np.float32))
    np.save(os.path.join(d, "x_f64.npy"), x.astype(np.float64))
    np.save(os.path.join(d, "x_wrong_size.npy"), rng.standard_normal((N, C, H + 4, H + 4)).astype(np.float32))
    np.save(os.path.join(d, "x_wrong_chans.npy"), rng.standard_normal((N, C + 2, H, H)).astype(np.float32))
    np.save(os.path.join(d, "x_3d.npy"), rng.standard_normal((N, H, H)).astype(np.float32))
    np.save(os.path.join(d, "x_empty.npy"), np.zeros((0, C, H, H), np.float32))
    np.save(os.path.join(d, "x_int16.npy"), np.zeros((N, C, H, H), np.int16))
    np.save(os.path.join(d, "x_str.npy"), np.array(["a", "b"]))
    np.save(os.path.join(d, "x_bool.npy"), np.zeros((N, C, H, H), bool))
    np.save(os.path.join(d, "x_c64.npy"), np.zeros((N, C, H, H), np.complex64))
    np.save(os.path.join(d, "x_bigendian.npy"), x.astype(">f4"))
    np.save(os.path.join(d, "x_fortran.npy"), np.asfortranarray(x))
    nan = x.copy()
    nan[1, 0, 2, 3] = np.nan
    np.save(os.path.join(d, "x_nan.npy"), nan)
    inf = x.copy()
    inf[0, 0, 0, 0] = np.inf
    np.save(os.path.join(d, "x_inf.npy"), inf)
    big = x.astype(np.float64)
    big[0, 0, 1, 1] = 1e300  # finite in float64, inf in float32
    np.save(os.path.join(d, "x_f64_overflow.npy"), big)
    raw = open(os.path.join(d, "x.npy"), "rb").read()
    open(os.path.join(d, "x_truncated.npy"), "wb").write(raw[:-100])
    open(os.path.join(d, "x_trailing.npy"), "wb").write(raw + b"\0" * 8)
    open(os.path.join(d, "x_header_cut.npy"), "wb").write(raw[:40])
    open(os.path.join(d, "x_not_npy.npy"), "wb").write(b"this is not a numpy file\n")
    open(os.path.join(d, "x_zero_bytes.npy"), "wb").write(b"")
    hdr = b"{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4611686018427387904), }"
    hdr = hdr + b" " * (127 - 10 - len(hdr)) + b"\n"
    open(os.path.join(d, "x_shape_overflow.npy"), "wb").write(
        b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr + b"\0" * 64)
    hdr = b"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999, %d, %d, %d), }" % (C, H, H)
    hdr = hdr + b" " * (127 - 10 - len(hdr)) + b"\n"
    open(os.path.join(d, "x_huge_claim.npy"), "wb").write(
        b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr + b"\0" * 64)
    hdr = b"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 1, 28, 28) 'junk' }"
    hdr = hdr + b" " * (127 - 10 - len(hdr)) + b"\n"
    open(os.path.join(d, "x_bad_dict.npy"), "wb").write(
        b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr)
    np.save(os.path.join(d, "noise_wrong_L.npy"), rng.random((N, L + 1)).astype(np.float32))
    np.save(os.path.join(d, "noise_wrong_N.npy"), rng.random((N - 1, L)).astype(np.float32))
    np.save(os.path.join(d, "noise_3d.npy"), rng.random((N, L, 1)).astype(np.float32))
    nn = rng.random((N, L)).astype(np.float32)
    nn[2, 5] = np.nan
    np.save(os.path.join(d, "noise_nan.npy"), nn)
    print(f"wrote reconstruct inputs to {d} (N={N}, C={C}, H={H}, L={L})")


def make_corrupt_st(argv):
    src, d = argv[0], argv[1]
    os.makedirs(d, exist_ok=True)
    raw = open(src, "rb").read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    out = {
        "truncated_header.safetensors": raw[: 8 + hlen // 2],
        "truncated_data.safetensors": raw[: len(raw) - len(raw) // 3],
        "short.safetensors": raw[:5],
        "empty.safetensors": b"",
        "text.safetensors": b"hello, I am not a safetensors file at all\n",
        "huge_header_len.safetensors": struct.pack("<Q", 1 << 60) + raw[8:],
        "bad_json.safetensors": raw[:8] + b"[" + raw[9:],  # '{' -> '[': not valid JSON
    }
    for name, data in out.items():
        open(os.path.join(d, name), "wb").write(data)
    # a header that is valid JSON but describes an absurd tensor
    hdr = json.dumps({"cls_token": {"dtype": "F32", "shape": [1, 1, 1 << 40], "data_offsets": [0, 4 << 40]}}).encode()
    open(os.path.join(d, "absurd_tensor.safetensors"), "wb").write(struct.pack("<Q", len(hdr)) + hdr + b"\0" * 16)
    # one weight flipped to NaN
    from safetensors.numpy import load_file, save_file
    import numpy as np
    from safetensors import safe_open
    with safe_open(src, "np") as f:
        meta = f.metadata()
    t = load_file(src)
    t["norm.weight"] = t["norm.weight"].copy()
    t["norm.weight"][0] = np.nan
    save_file(t, os.path.join(d, "nan_weight.safetensors"), metadata=meta)
    # a tensor missing
    t = load_file(src)
    del t["decoder_pred.bias"]
    save_file(t, os.path.join(d, "missing_tensor.safetensors"), metadata=meta)
    # an extra tensor
    t = load_file(src)
    t["extra.weight"] = np.zeros(3, np.float32)
    save_file(t, os.path.join(d, "extra_tensor.safetensors"), metadata=meta)
    # an int tensor where a float one belongs
    t = load_file(src)
    t["norm.bias"] = t["norm.bias"].astype(np.int32)
    save_file(t, os.path.join(d, "int_tensor.safetensors"), metadata=meta)
    print(f"wrote corrupt variants of {src} to {d}")


# --------------------------------------------------------------------------- logs

STEP_RE = re.compile(r'"(epoch|step|update|loss|lr)":([^,}]*)')


def log_steps(argv):
    """The step records of DIR/steps.jsonl as exact strings (the numbers as printed)."""
    d, out = argv[0], argv[1]
    rows = []
    for line in open(os.path.join(d, "steps.jsonl")):
        json.loads(line)
        f = dict(STEP_RE.findall(line))
        rows.append(" ".join(f"{k}={f.get(k, '?')}" for k in ("epoch", "step", "update", "loss", "lr")))
    with open(out, "w") as f:
        f.write("\n".join(rows) + "\n")
    print(f"{d}/steps.jsonl: {len(rows)} step records")


def read_jsonl(path):
    recs = []
    for i, line in enumerate(open(path), 1):
        if not line.strip():
            die(f"{path}:{i}: empty line")
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            die(f"{path}:{i}: not JSON ({e}): {line[:200]!r}")
        if not isinstance(r, dict):
            die(f"{path}:{i}: not an object: {line[:200]!r}")
        recs.append(r)
    return recs


def read_logs(d):
    """(steps, epochs): DIR/steps.jsonl and DIR/log.txt (main_pretrain.py's per-epoch log)."""
    return read_jsonl(os.path.join(d, "steps.jsonl")), read_jsonl(os.path.join(d, "log.txt"))


def check_log(argv):
    import math
    d = argv[0]
    steps, epochs = read_logs(d)
    if not steps or not epochs:
        die(f"{d}: {len(steps)} step and {len(epochs)} epoch records, expected both")
    for r in steps:
        for k in ("epoch", "step", "update", "loss", "lr"):
            if k not in r or not isinstance(r[k], (int, float)) or not math.isfinite(r[k]):
                die(f"{d}/steps.jsonl: record without a finite '{k}': {r}")
    for r in epochs:
        for k in ("epoch", "train_loss", "train_lr"):
            if k not in r or not math.isfinite(r[k]):
                die(f"{d}/log.txt: epoch record without a finite '{k}': {r}")
    ep = [r["epoch"] for r in epochs]
    if ep != list(range(ep[0], ep[0] + len(ep))):
        die(f"{d}/log.txt: epoch records not consecutive: {ep}")
    ups = [r["update"] for r in steps]
    if ups != sorted(ups):
        die(f"{d}/steps.jsonl: update counters decrease: {ups[:20]}")
    print(f"ok   {d}: log.txt has {len(epochs)} epoch records (epochs {ep[0]}..{ep[-1]}), "
          f"steps.jsonl {len(steps)} step records, all valid JSON with finite values")


def loss_drop(argv):
    d, ratio = argv[0], float(argv[1])
    steps, epochs = read_logs(d)
    first, last = steps[0], epochs[-1]
    got = last["train_loss"] / first["loss"]
    print(f"first step loss {first['loss']:.4f} (epoch {first['epoch']} step {first['step']}), "
          f"last epoch ({last['epoch']}) mean train_loss {last['train_loss']:.4f}: ratio {got:.3f} "
          f"(must be < {ratio})")
    if not got < ratio:
        die(f"{d}: the loss did not fall enough (ratio {got:.3f} >= {ratio})")
    print("ok   loss falls")


def loss_parity(argv):
    """Two runs of the same schedule that differ in one numerical detail (e.g. --precision):
    the same (epoch, step, update, lr) records, the last epoch's mean step loss within RTOL of
    each other, and the losses not bitwise identical (the detail must have an effect)."""
    a, b, rtol = argv[0], argv[1], float(argv[2])
    ra = read_jsonl(os.path.join(a, "steps.jsonl"))
    rb = read_jsonl(os.path.join(b, "steps.jsonl"))
    key = lambda r: (r["epoch"], r["step"], r["update"], r["lr"])
    if [key(r) for r in ra] != [key(r) for r in rb]:
        die(f"{a} and {b}: the (epoch, step, update, lr) records differ ({len(ra)} vs {len(rb)} steps)")
    if not ra:
        die(f"{a}: no step records")
    last = ra[-1]["epoch"]
    la = [r["loss"] for r in ra if r["epoch"] == last]
    lb = [r["loss"] for r in rb if r["epoch"] == last]
    ma, mb = sum(la) / len(la), sum(lb) / len(lb)
    rel = abs(ma - mb) / abs(ma)
    same = sum(x["loss"] == y["loss"] for x, y in zip(ra, rb))
    step_rel = max(abs(x["loss"] - y["loss"]) / abs(x["loss"]) for x, y in zip(ra, rb))
    print(f"{len(ra)} steps; last epoch ({last}) mean loss {ma:.6f} vs {mb:.6f}: relative "
          f"difference {rel:.2e} (must be <= {rtol:.1e}); largest per-step relative difference "
          f"{step_rel:.2e}; {same} of {len(ra)} step losses bitwise equal")
    if not rel <= rtol:
        die(f"{a} vs {b}: last-epoch mean loss differs by {rel:.2e} > {rtol:.1e}")
    if same == len(ra):
        die(f"{a} vs {b}: all {len(ra)} step losses are bitwise identical (no effect)")
    print("ok   losses agree within the tolerance and are not identical")


# --------------------------------------------------------------------------- PNG

def check_png(argv):
    path, W, H = argv[0], int(argv[1]), int(argv[2])
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        die(f"{path}: bad PNG signature")
    pos, chunks, idat = 8, [], b""
    ihdr = None
    while pos < len(data):
        if pos + 8 > len(data):
            die(f"{path}: truncated chunk header at byte {pos}")
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        typ = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + n]
        if len(body) != n or pos + 12 + n > len(data):
            die(f"{path}: truncated {typ!r} chunk")
        (crc,) = struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])
        if zlib.crc32(typ + body) & 0xFFFFFFFF != crc:
            die(f"{path}: bad CRC in {typ!r} chunk")
        chunks.append(typ)
        if typ == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif typ == b"IDAT":
            idat += body
        pos += 12 + n
    if not chunks or chunks[0] != b"IHDR" or chunks[-1] != b"IEND" or b"IDAT" not in chunks:
        die(f"{path}: chunk order {chunks}")
    w, h, depth, ctype, comp, filt, inter = ihdr
    if (w, h) != (W, H):
        die(f"{path}: size {w}x{h}, expected {W}x{H}")
    chans = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(ctype)
    if chans is None or depth not in (8, 16) or inter != 0:
        die(f"{path}: unexpected IHDR (depth {depth}, color type {ctype}, interlace {inter})")
    raw = zlib.decompress(idat)
    want = h * (1 + w * chans * depth // 8)
    if len(raw) != want:
        die(f"{path}: image data has {len(raw)} bytes, expected {want}")
    try:  # a real decoder too, when Pillow is around
        from PIL import Image
        with Image.open(path) as im:
            im.load()
            if im.size != (W, H):
                die(f"{path}: Pillow reads size {im.size}")
    except ImportError:
        pass
    print(f"ok   {path}: valid PNG {w}x{h}, {depth}-bit color type {ctype}, {len(chunks)} chunks")


# --------------------------------------------------------------------------- safetensors

def official_names(cfg):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import mae_parity as mp
    return mp.official_shapes(cfg)


def check_official(argv):
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file
    path = argv[0]
    with safe_open(path, "np") as f:
        meta = f.metadata() or {}
    if "config" not in meta:
        die(f"{path}: no 'config' in the metadata ({sorted(meta)})")
    cfg = json.loads(meta["config"])
    cfg["norm_pix_loss"] = int(bool(cfg.get("norm_pix_loss")))
    shapes = official_names(cfg)
    t = load_file(path)
    missing = sorted(set(shapes) - set(t))
    extra = sorted(set(t) - set(shapes))
    if missing or extra:
        die(f"{path}: names differ from the official state dict: missing {missing[:5]}, extra {extra[:5]}")
    for k, s in shapes.items():
        if tuple(t[k].shape) != tuple(s):
            die(f"{path}: {k} has shape {t[k].shape}, official {s}")
        if t[k].dtype != np.float32:
            die(f"{path}: {k} is {t[k].dtype}")
        if not np.isfinite(t[k]).all():
            die(f"{path}: {k} has non-finite values")
    print(f"ok   {path}: {len(t)} tensors with the official names and shapes, float32, finite; "
          f"config {meta['config']}")


def same_tensors(argv):
    from safetensors import safe_open
    a, b = argv[0], argv[1]
    with safe_open(a, "np") as fa, safe_open(b, "np") as fb:
        ka, kb = sorted(fa.keys()), sorted(fb.keys())
        if ka != kb:
            die(f"{a} and {b} hold different tensor names")
        ndiff = []
        for k in ka:
            x, y = fa.get_tensor(k), fb.get_tensor(k)
            if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                ndiff.append(k)
    if ndiff:
        die(f"{a} vs {b}: {len(ndiff)} of {len(ka)} tensors differ, e.g. {ndiff[:4]}")
    print(f"ok   {os.path.basename(a)}: all {len(ka)} tensors byte-identical to {b}")


CMDS = {
    "make-idx": make_idx, "make-imagefolder": make_imagefolder, "tty-run": tty_run, "make-npy-cases": make_npy_cases, "make-corrupt-st": make_corrupt_st,
    "log-steps": log_steps, "check-log": check_log, "loss-drop": loss_drop, "loss-parity": loss_parity,
    "check-png": check_png, "check-official": check_official, "same-tensors": same_tensors,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in CMDS:
        print(__doc__)
        sys.exit(2)
    CMDS[sys.argv[1]](sys.argv[2:])
