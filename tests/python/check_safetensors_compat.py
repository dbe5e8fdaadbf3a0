#!/usr/bin/env python3
"""Cross-check our C safetensors/npy code against Python's safetensors, torch and numpy.

usage: check_safetensors_compat.py PATH/TO/st_write_sample

1. C writes a sample file -> safetensors.torch.load_file / safe_open().metadata() read it, values
   match, and Python's own save_file of the same tensors produces byte-identical output.
2. Python writes F32/F16/BF16/F64/I64/I32/U8 tensors + metadata -> our reader converts them
   (dumped as .npy by the helper) and they equal torch's own conversion to float32 / int64.
3. numpy writes .npy files (<f4 <f8 <i8 <i4 |u1, format 1.0 and 2.0) -> our npy_load_f32 +
   npy_save round trip equals arr.astype(float32).
Exits non-zero on any mismatch.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(helper, *args):
    r = subprocess.run([helper, *args], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        raise SystemExit(f"helper {' '.join(args)} failed with {r.returncode}")
    return r.stdout


def c_to_python(helper, tmp):
    path = os.path.join(tmp, "c_written.safetensors")
    run(helper, "write", path)
    t = load_file(path)
    expected = {
        "blocks.0.attn.qkv.weight": ((torch.arange(24, dtype=torch.float64) - 10) / 8).float().reshape(6, 4),
        "pos_embed": ((torch.arange(20) * 3 % 17 - 8).double() / 4).float().reshape(1, 5, 4),
        "cls_token": torch.tensor([0.1, -1e-30, 3.0e38, 0.0], dtype=torch.float32).reshape(1, 1, 4),
        "step": torch.tensor(123456789012345, dtype=torch.int64),
        "ids": torch.tensor([-3, 0, 1 << 40, -(2**63), 2**63 - 1, 42], dtype=torch.int64).reshape(2, 3),
        "empty": torch.zeros(0, 4, dtype=torch.float32),
    }
    check(sorted(t) == sorted(expected), f"C->py tensor names {sorted(t)}")
    for k, v in expected.items():
        got = t.get(k)
        ok = got is not None and got.dtype == v.dtype and got.shape == v.shape and torch.equal(got, v)
        check(ok, f"C->py tensor {k}: got {got!r} want {v!r}")
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    want_meta = {"format": "pt", "config": '{"img_size": 32, "name": "tiny \\"q\\""}', "unicode": "h\u00e9llo \u2713"}
    check(meta == want_meta, f"C->py metadata {meta!r}")
    check(json.loads(meta["config"])["img_size"] == 32, "config metadata is JSON")

    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    check(n % 8 == 0, f"header length {n} is a multiple of 8")
    # Python's save_file of the same tensors: same tensor order, offsets and data bytes
    # (metadata key order differs: Python keeps it in a hash map).
    ref = os.path.join(tmp, "py_rewritten.safetensors")
    save_file(t, ref, metadata=meta)
    ref_raw = open(ref, "rb").read()
    m = struct.unpack("<Q", ref_raw[:8])[0]
    ours_h = json.loads(raw[8 : 8 + n], object_pairs_hook=list)
    ref_h = json.loads(ref_raw[8 : 8 + m], object_pairs_hook=list)
    check([k for k, _ in ours_h] == [k for k, _ in ref_h], f"header key order {[k for k, _ in ours_h]}")
    check([e for e in ours_h if e[0] != "__metadata__"] == [e for e in ref_h if e[0] != "__metadata__"],
          "tensor header entries equal Python's")
    check(n == m and raw[8 + n :] == ref_raw[8 + m :], "header size and data bytes equal Python's save_file")
    print(f"C writer -> Python: {len(t)} tensors, metadata and bytes checked")


def python_to_c(helper, tmp):
    g = torch.Generator().manual_seed(0)
    f16 = torch.tensor([1.0, -2.0, 65504.0, 2**-24, float("inf"), -0.0, 1 / 3, float("-inf"), float("nan")],
                       dtype=torch.float16)
    tensors = {
        "f32": torch.randn(3, 4, generator=g),
        "f16": f16,
        "f16_rand": torch.randn(2, 3, 5, generator=g).half(),
        "bf16": (torch.randn(7, generator=g) * 1e3).bfloat16(),
        "f64": torch.cat([torch.randn(5, generator=g, dtype=torch.float64) * 1e10,
                          torch.tensor([1e300, -1e300, 1e-320, 0.1], dtype=torch.float64)]),
        "i64": torch.tensor([[1, -2], [2**62, -(2**63)]], dtype=torch.int64),
        "i32": torch.tensor([-(2**31), 2**31 - 1, 0], dtype=torch.int32),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(3, 0),
        "u8": torch.tensor([1, 2, 255], dtype=torch.uint8),
    }
    meta = {"format": "pt", "config": json.dumps({"img_size": 224, "s": "a\"b"}), "x": "\u00e9\u2713"}
    path = os.path.join(tmp, "py_written.safetensors")
    save_file(tensors, path, metadata=meta)
    out = os.path.join(tmp, "dump")
    os.makedirs(out, exist_ok=True)
    log = run(helper, "read", path, out)
    check("skip u8 U8" in log, "U8 tensor is reported as not convertible")
    for k, v in tensors.items():
        if k == "u8":
            continue
        want = (v.to(torch.int64) if not v.is_floating_point() else v.float()).numpy()
        got = np.load(os.path.join(out, k + ".npy"))
        ok = got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want, equal_nan=want.dtype.kind == "f")
        check(ok, f"py->C tensor {k}: got {got!r} want {want!r}")
    got_meta = json.load(open(os.path.join(out, "__metadata__.json"), encoding="utf-8"))
    check(got_meta == meta, f"py->C metadata {got_meta!r}")
    print(f"Python -> C reader: {len(tensors)} tensors (F32/F16/BF16/F64/I64/I32/U8) and metadata checked")


def npy_compat(helper, tmp):
    rng = np.random.default_rng(0)
    arrays = {
        "f4": rng.standard_normal((2, 3, 4)).astype("<f4"),
        "f8": rng.standard_normal(7) * 1e5,
        "i8": np.array([[-(2**40), 3], [0, 2**52]], dtype="<i8"),
        "i4": np.array([-(2**31), 5, 2**31 - 1], dtype="<i4"),
        "u1": rng.integers(0, 256, (4, 4, 3)).astype(np.uint8),
        "scalar": np.array(1.5, dtype="<f4"),
        "empty": np.zeros((0, 5), dtype="<f4"),
    }
    n = 0
    for name, a in arrays.items():
        for version in [(1, 0), (2, 0)]:
            src = os.path.join(tmp, f"{name}_v{version[0]}.npy")
            with open(src, "wb") as fh:
                np.lib.format.write_array(fh, a, version=version)
            dst = os.path.join(tmp, f"{name}_v{version[0]}_c.npy")
            run(helper, "npy", src, dst)
            got = np.load(dst)
            want = a.astype(np.float32)
            check(got.dtype == np.float32 and got.shape == want.shape and np.array_equal(got, want),
                  f"npy {name} v{version}: got {got!r} want {want!r}")
            with open(dst, "rb") as fh:
                major, minor = np.lib.format.read_magic(fh)
                np.lib.format.read_array_header_1_0(fh)
                check((major, minor) == (1, 0) and fh.tell() % 64 == 0, f"npy {name}: v1.0, 64-byte aligned")
            n += 1
    print(f"numpy .npy -> C -> numpy: {n} files checked")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    helper = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        c_to_python(helper, tmp)
        python_to_c(helper, tmp)
        npy_compat(helper, tmp)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("safetensors/npy compatibility: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
