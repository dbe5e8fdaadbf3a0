#!/usr/bin/env python3
"""Fixtures for the C PyTorch checkpoint reader (src/io/pth.h), made with torch.save itself.

usage: make_pth_fixtures.py OUTDIR        (test_pth_reader.py imports make())

Writes OUTDIR/<name>.pth, the expected float32 values OUTDIR/expected/<name>/<i>.npy (torch's
own .float() for F32/F16/BF16, numpy's astype(float32) for F64) and OUTDIR/manifest.json:
  good:  {name: {names, dtypes, shapes, dict_key, epoch, args}}  must read exactly like this
  bad:   {name: [words the error message must contain]}          must be refused cleanly
  fuzz:  {name: good fixture it was damaged from, or None}  may be refused, never crash; if
         read, must equal that fixture (None: a damaged pickle, may read as something else)
  marker: a file the hostile pickles try to create (must never exist)
"""
import argparse
import collections
import io
import json
import os
import pickle
import random
import struct
import sys
import types
import zipfile
import zlib

import numpy as np
import torch

DT = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
      torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}


def expected_f32(t):
    if t.dtype == torch.float64:
        with np.errstate(over="ignore"):  # 1e300 -> inf is the point
            return t.numpy().astype(np.float32)
    return t.float().numpy()


def all_halves(dtype):
    """Every 16-bit pattern reinterpreted as dtype (float16 or bfloat16), as a 256x256 tensor."""
    return torch.arange(65536, dtype=torch.int32).to(torch.int16).view(dtype).reshape(256, 256)


def plain_sd():
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.BatchNorm1d(3))
    sd = model.state_dict()  # an OrderedDict with _metadata (BUILD), I64 num_batches_tracked
    base = torch.randn(10, 8, generator=g)
    shared = torch.randn(12, generator=g)
    sd["wt"] = torch.randn(4, 6, generator=g).t()                 # transposed view, stride (1, 6)
    sd["slice"] = base[2:5, 1:7]                                   # offset 17, stride (8, 1)
    sd["tail"] = base.view(-1)[70:]                                # 1-d with an offset
    sd["scalar"] = torch.tensor(3.25)                              # 0-d
    sd["perm"] = torch.randn(2, 3, 4, 5, generator=g).permute(0, 2, 3, 1)
    sd["expand"] = torch.randn(3, 1, generator=g).expand(3, 4)     # stride 0
    sd["shared_a"] = shared[:6].view(2, 3)                         # two views of one storage
    sd["shared_b"] = shared[3:]
    sd["empty"] = torch.zeros(0, 4)
    sd["special"] = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), float("nan"),
                                  1e-45, 3.4028235e38, -1.17549435e-38])
    sd["f64"] = torch.tensor([0.1, 1 / 3, 1e300, -1e300, 1e-320, 2.0 ** -149 * 1.5,
                              1 + 2.0 ** -24, 1 + 3 * 2.0 ** -24, float("nan")],
                             dtype=torch.float64)
    sd["f64_t"] = torch.randn(3, 4, generator=g, dtype=torch.float64).t()
    return sd


def half_sd(dtype):
    g = torch.Generator().manual_seed(1)
    allh = all_halves(dtype)
    return collections.OrderedDict([
        ("all", allh), ("all_t", allh.t()),
        ("w", torch.randn(6, 7, generator=g).to(dtype)),
        ("w_t", torch.randn(6, 7, generator=g).to(dtype).t()),
        ("special", torch.tensor([0.0, -0.0, 1.0, 65504.0, 6e-8, 3e-5, 6.1e-5, float("inf"),
                                  float("nan")]).to(dtype)),
    ])


def train_ckpt(sd):
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05, betas=(0.9, 0.95))
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    args = argparse.Namespace(
        model="mae_vit_base_patch16", batch_size=64, epochs=400, accum_iter=1, input_size=224,
        mask_ratio=0.75, norm_pix_loss=True, weight_decay=0.05, lr=None, blr=1.5e-4,
        min_lr=0.0, warmup_epochs=40, data_path="/datasets01/imagenet_full_size/061417/",
        output_dir="./output_dir", device="cuda", seed=0, resume="", start_epoch=0,
        num_workers=10, pin_mem=False, world_size=1, local_rank=-1, dist_on_itp=False,
        dist_url="env://", distributed=False, neg=-7, big=2 ** 40, ratio=40.0, tiny=1e-8,
        huge=1.5e16, neg_zero=-0.0, third=1 / 3, inf=float("inf"), int_min=-2 ** 63,
        list_arg=[1, 2], tuple_arg=(0.9, 0.95), none_arg=None, bytes_arg=b"xy\xff",
        np_arg=np.float64(0.5), huge_int=2 ** 70, unicode_arg="vit \u00e9\u4e2d")
    scaler = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
              "growth_interval": 2000, "_growth_tracker": 0}  # GradScaler().state_dict() on GPU
    return {"model": sd, "optimizer": opt.state_dict(), "epoch": 3, "scaler": scaler,
            "args": args}


def expected_args(ns):
    out = {}
    for k, v in vars(ns).items():
        if type(v) in (str, bool, float) or (type(v) is int and -2 ** 63 <= v < 2 ** 63):
            out[k] = v
    return out


class Evil:
    """A pickle that runs cmd when loaded (what a hostile checkpoint does)."""
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


class StorageRef:
    """Pickled (by crafted_pickle) as the persistent id of storage key of the plain fixture."""
    def __init__(self, key, numel, stype=torch.FloatStorage):
        self.pid = ("storage", stype, key, "cpu", numel)


class FakeTensor:
    """Pickled as torch.save pickles a tensor, with whatever sizes/strides it is given."""
    def __init__(self, *args):
        self.args = args

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args + (False, collections.OrderedDict()))


def crafted_pickle(obj, protocol=2):
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=protocol)
    p.persistent_id = lambda o: o.pid if isinstance(o, StorageRef) else None
    p.dump(obj)
    return buf.getvalue()


def fake(*args, key="0", numel=15):
    return crafted_pickle({"t": FakeTensor(StorageRef(key, numel), *args)})


def rezip(src, dst, replace=None, compression=zipfile.ZIP_STORED):
    """Copies the members of zip src into dst (Python's zipfile), data.pkl replaced if given."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if replace is not None and info.filename.endswith("/data.pkl"):
                data = replace
            zout.writestr(info.filename, data, compress_type=compression)


def zip64_copy(src, dst):
    """Re-writes zip src by hand with every size/offset in ZIP64 extra fields (0xFFFFFFFF in
    the 32-bit fields) and a ZIP64 end record; checked below to be readable by Python's zipfile."""
    with zipfile.ZipFile(src) as zin:
        members = [(i.filename, zin.read(i.filename)) for i in zin.infolist()]
    out, central = io.BytesIO(), []
    for name, data in members:
        off, nm, crc = out.tell(), name.encode(), zlib.crc32(data)
        extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034b50, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF,
                              0xFFFFFFFF, len(nm), len(extra)) + nm + extra + data)
        cextra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), off)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 45, 45, 0, 0, 0, 0, crc,
                                   0xFFFFFFFF, 0xFFFFFFFF, len(nm), len(cextra), 0, 0, 0, 0,
                                   0xFFFFFFFF) + nm + cextra)
    cd_off = out.tell()
    for c in central:
        out.write(c)
    cd_size, e64 = out.tell() - cd_off, out.tell()
    n = len(members)
    out.write(struct.pack("<IQHHIIQQQQ", 0x06064b50, 44, 45, 45, 0, 0, n, n, cd_size, cd_off))
    out.write(struct.pack("<IIQI", 0x07064b50, 0, e64, 1))
    out.write(struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                          0xFFFFFFFF, 0))
    with open(dst, "wb") as f:
        f.write(out.getvalue())
    with zipfile.ZipFile(dst) as z:  # an independent reader agrees that it is a valid zip
        assert z.testzip() is None and [(i.filename, z.read(i)) for i in z.infolist()] == members


def make(outdir):
    os.makedirs(outdir, exist_ok=True)
    P = lambda name: os.path.join(outdir, name + ".pth")  # noqa: E731
    marker = os.path.join(outdir, "PWNED_MARKER")
    if os.path.exists(marker):
        os.remove(marker)
    man = {"good": {}, "bad": {}, "fuzz": {}, "marker": marker}

    def good(name, obj, sd, dict_key="", epoch=None, args=None):
        exp_dir = os.path.join(outdir, "expected", name)
        os.makedirs(exp_dir, exist_ok=True)
        names, dtypes, shapes = [], [], []
        for i, (k, t) in enumerate((k, t) for k, t in sd.items() if isinstance(t, torch.Tensor)):
            names.append(k)
            dtypes.append(DT[t.dtype])
            shapes.append(list(t.shape))
            if t.dtype.is_floating_point:
                np.save(os.path.join(exp_dir, f"{i}.npy"), expected_f32(t))
        man["good"][name] = {"names": names, "dtypes": dtypes, "shapes": shapes,
                             "dict_key": dict_key, "epoch": epoch, "args": args or {}}
        if obj is not None:
            torch.save(obj, P(name))

    sd = plain_sd()
    good("plain", sd, sd)                                                           # (a)
    good("fp16", half_sd(torch.float16), half_sd(torch.float16))                    # (b)
    good("bf16", half_sd(torch.bfloat16), half_sd(torch.bfloat16))
    ck = train_ckpt(sd)                                                             # (c)
    good("train", ck, sd, "model", 3, expected_args(ck["args"]))
    good("train_state_dict", {"state_dict": sd, "epoch": 7}, sd, "state_dict", 7)
    good("deflated", None, sd)                                                      # (h)
    rezip(P("plain"), P("deflated"), compression=zipfile.ZIP_DEFLATED)
    good("zip64", None, sd)
    zip64_copy(P("plain"), P("zip64"))
    # protocol 4 pickle (FRAME, STACK_GLOBAL, MEMOIZE, SHORT_BINUNICODE), torch.save's own pickler
    good("proto4", None, sd)
    torch.save(sd, P("proto4"), pickle_protocol=4)

    torch.save(sd, P("legacy"), _use_new_zipfile_serialization=False)              # (d)
    man["bad"]["legacy"] = ["legacy (pre-1.6)", "torch >= 1.6"]
    # (e) hostile pickles; torch.save happily writes them, torch.load would run them
    cmd = f"touch {marker}"
    torch.save({"model": sd, "x": Evil(os.system, cmd)}, P("evil_system"))
    man["bad"]["evil_system"] = ["forbidden global", "posix.system"]
    torch.save({"model": sd, "x": Evil(eval, f"__import__('os').system({cmd!r})")},
               P("evil_eval"))
    man["bad"]["evil_eval"] = ["forbidden global", "__builtin__.eval"]  # protocol 2 names
    mod = types.ModuleType("evilmod")
    mod.run = lambda s: os.system(s)
    mod.run.__module__, mod.run.__qualname__ = "evilmod", "run"
    sys.modules["evilmod"] = mod
    torch.save({"model": sd, "x": Evil(mod.run, cmd)}, P("evil_unknown"))
    man["bad"]["evil_unknown"] = ["forbidden global", "evilmod.run"]
    # the same layout written by Python's zipfile, data.pkl a plain protocol-4 pickle
    rezip(P("plain"), P("evil_zipfile"),
          replace=pickle.dumps({"w": Evil(os.system, cmd)}, protocol=4))
    man["bad"]["evil_zipfile"] = ["forbidden global", "posix.system"]
    # an opcode outside the restricted set (INT, protocol 0)
    rezip(P("plain"), P("bad_opcode"), replace=b"\x80\x02}q\x00X\x01\x00\x00\x00aI1\ns.")
    man["bad"]["bad_opcode"] = ["unsupported pickle opcode 'I' (INT)", "byte 11"]
    torch.save({"c": torch.zeros(3, dtype=torch.complex64)}, P("complex"))          # (g)
    man["bad"]["complex"] = ["unsupported storage type", "torch.ComplexFloatStorage"]
    torch.save([torch.zeros(2)], P("not_dict"))
    man["bad"]["not_dict"] = ["holds a list, not a dict"]
    # a storage shorter than its persistent id says: data/<key> cut short, CRC recomputed
    with zipfile.ZipFile(P("plain")) as z, zipfile.ZipFile(P("short_storage"), "w") as out:
        for i in z.infolist():
            d = z.read(i.filename)
            out.writestr(i.filename, d[:-4] if i.filename.endswith("/data/0") else d)
    man["bad"]["short_storage"] = ["storage '0' has", "corrupt"]
    # crafted pickles inside the plain fixture's archive (its storage '0' holds 15 floats)
    crafted = {
        "tensor_oob": (fake(0, (4, 4), (4, 1)), ["reaches element 15", "15 elements"]),
        "tensor_offset_oob": (fake(15, (1,), (1,)), ["reaches element 15"]),
        "tensor_neg_stride": (fake(0, (3,), (-1,)), ["size/stride 0"]),
        "tensor_9d": (fake(0, (1,) * 9, (1,) * 9), ["9 dimensions"]),
        "tensor_overflow": (fake(0, (2 ** 40, 2 ** 40), (1, 1)), ["too many elements"]),
        "tensor_stride_overflow": (fake(0, (4, 4), (2 ** 63 - 1,) * 2), ["overflow"]),
        "storage_missing": (fake(0, (1,), (1,), key="999"), ["storage '999' is missing"]),
        "storage_too_big": (fake(0, (1,), (1,), numel=2 ** 40), ["storage '0' has 60 bytes"]),
        "storage_absurd": (fake(0, (1,), (1,), numel=2 ** 62), ["too many"]),
        "marks_deep": (b"\x80\x02" + b"(" * 5000 + b".", ["deeper than 4096 MARKs"]),
        "memo_unset": (b"\x80\x02h\x07.", ["memo index 7 was never set"]),
        "memo_huge": (b"\x80\x02}r\xff\xff\xff\xff.", ["memo index 4294967295"]),
        "str_huge": (b"\x80\x02\x8d" + struct.pack("<Q", 2 ** 63) + b"ab.", ["truncated"]),
        "stack_underflow": (b"\x80\x02(s.", ["underflow"]),
        "cycle": (b"\x80\x02]q\x00h\x00h\x00a}q\x01X\x01\x00\x00\x00ah\x00s.",
                  ["no state dict"]),
        "no_stop": (b"\x80\x02}q\x00", ["truncated"]),
        # a 100 kB string encoded 2000 times through the memo (200 MB): bounded, refused
        "expansion": (b"\x80\x02c_codecs\nencode\nq\x00X" + struct.pack("<I", 100000) +
                      b"a" * 100000 + b"q\x01X\x06\x00\x00\x00latin1q\x02(" +
                      b"h\x00h\x01h\x02\x86R" * 2000 + b"l.", ["MB of values"]),
        "reduce_storage": (b"\x80\x02ctorch\nFloatStorage\n)R.",
                           ["calling torch.FloatStorage is not supported"]),
        "proto0": (b"(dp0\n.", ["unsupported pickle opcode 'p' (PUT)"]),
        "proto6": (b"\x80\x06}.", ["protocol 6"]),
    }
    for name, (pkl, words) in crafted.items():
        rezip(P("plain"), P(name), replace=pkl)
        man["bad"][name] = words
    # a valid crafted tensor (transposed 3x5 view of storage '0'): the crafting itself is sound
    good("crafted_ok", None, collections.OrderedDict(
        [("t", torch.load(P("plain"))["0.weight"].reshape(-1)[:15].view(3, 5).t())]))
    rezip(P("plain"), P("crafted_ok"), replace=fake(0, (5, 3), (1, 5)))

    with open(P("plain"), "rb") as f:
        raw = f.read()
    with open(P("not_zip"), "wb") as f:
        f.write(b"hello, this is not a checkpoint at all\n" * 4)
    man["bad"]["not_zip"] = ["not a PyTorch checkpoint"]

    # (f) truncations (every 97 bytes, the last 100 one by one) and byte flips of the raw file
    cuts = sorted(set(range(0, len(raw), 97)) | set(range(max(0, len(raw) - 100), len(raw))))
    for c in cuts:
        with open(P(f"trunc_{c}"), "wb") as f:
            f.write(raw[:c])
        man["bad"][f"trunc_{c}"] = [f"trunc_{c}.pth"]  # the message names the file
    rng = random.Random(1234)
    for k in range(30):
        b = bytearray(raw)
        pos = rng.randrange(len(b))
        b[pos] ^= 1 << rng.randrange(8)
        with open(P(f"flip_{k}"), "wb") as f:
            f.write(b)
        man["fuzz"][f"flip_{k}"] = "plain"
    # damaged pickles with a valid zip around them (the CRC no longer hides the damage): the
    # unpickler itself must cope with byte flips, truncation and garbage
    with zipfile.ZipFile(P("plain")) as z:
        pkl = z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))
    for k in range(60):
        b = bytearray(pkl)
        if k < 40:
            for _ in range(1 + k % 3):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif k < 50:
            b = b[:rng.randrange(len(b))]
        else:
            pos = rng.randrange(len(b))
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        rezip(P("plain"), P(f"pkl_{k}"), replace=bytes(b))
        man["fuzz"][f"pkl_{k}"] = None  # a valid pickle may now say something else

    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(man, f, indent=1)
    return man


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    make(sys.argv[1])
