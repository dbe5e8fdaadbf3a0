#!/usr/bin/env python3
"""The C PyTorch checkpoint reader (src/io/pth.h, through tests/pth_driver) against torch.

usage: test_pth_reader.py --driver PATH/TO/pth_driver --workdir DIR

Fixtures come from make_pth_fixtures.py (torch.save, zipfile, pickle). For every good fixture
the driver's float32 dump must equal torch's .float() bit for bit (numpy's astype(float32) for
float64; NaN payloads included), in the same order, names, dtypes and shapes, and its info must
give the dict key, epoch and args. Every bad fixture must exit with status 1 (not a signal),
with an error naming what is wrong, and the hostile ones must not have run (no marker file; as
a control, torch.load of one of them does create it). Damaged fixtures (truncated or flipped
files, whose zip CRCs catch most damage; damaged pickles re-zipped with valid CRCs) may be read
or refused, but never crash; a damaged file that is read must equal the original (a re-zipped
damaged pickle may be a valid pickle of something else). Exits non-zero on failure.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_pth_fixtures  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


# Under the sanitizer build a finding must not pass for a clean error exit (both exit 1 by
# default): findings exit 99 here, and their reports are looked for in stderr too.
ENV = dict(os.environ)
for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
    ENV[var] = ":".join(filter(None, [ENV.get(var), "exitcode=99"]))


def run(driver, *args):
    r = subprocess.run([driver, *args], capture_output=True, text=True, errors="replace",
                       timeout=60, env=ENV)
    check("Sanitizer" not in r.stderr and "runtime error" not in r.stderr,
          f"sanitizer report for {args}: {r.stderr[-2000:]}")
    return r


def dump(driver, path, outdir):
    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    return run(driver, "dump", path, outdir)


def same_f32(a, b):
    """Bit for bit, NaN payloads included (torch quiets signalling NaNs of float16)."""
    return (a.shape == b.shape and a.dtype == b.dtype == np.float32 and
            np.array_equal(a.view(np.uint32), b.view(np.uint32)))


def compare_dump(name, outdir, exp, exp_dir):
    with open(os.path.join(outdir, "names.txt"), errors="surrogateescape") as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    check([r[1] for r in rows] == exp["names"], f"{name}: names {[r[1] for r in rows]}")
    check([r[2] for r in rows] == exp["dtypes"], f"{name}: dtypes {[r[2] for r in rows]}")
    shapes = [[int(x) for x in r[3].split(",")] if r[3] else [] for r in rows]
    check(shapes == exp["shapes"], f"{name}: shapes {shapes}")
    for i, dt in enumerate(exp["dtypes"]):
        if dt not in ("F32", "F16", "BF16", "F64"):
            continue
        got = np.load(os.path.join(outdir, f"{i}.npy"))
        want = np.load(os.path.join(exp_dir, f"{i}.npy"))
        check(same_f32(got, want), f"{name}: tensor {exp['names'][i]} ({dt}) differs")


def check_info(driver, name, path, exp):
    r = run(driver, "info", path)
    check(r.returncode == 0, f"{name}: info failed: {r.stderr}")
    lines = [line.split("\t") for line in r.stdout.splitlines()]
    top = {l[0]: l[1] for l in lines if l[0] != "arg"}
    args = {l[1]: l[2] for l in lines if l[0] == "arg"}
    check(top.get("dict_key") == exp["dict_key"], f"{name}: dict_key {top.get('dict_key')!r}")
    want_epoch = "none" if exp["epoch"] is None else str(exp["epoch"])
    check(top.get("epoch") == want_epoch, f"{name}: epoch {top.get('epoch')!r}")
    check(top.get("tensors") == str(len(exp["names"])), f"{name}: tensors {top.get('tensors')}")
    check(sorted(args) == sorted(exp["args"]), f"{name}: arg keys {sorted(args)} != "
          f"{sorted(exp['args'])}")
    for k, v in exp["args"].items():
        got = args.get(k)
        ok = got == (repr(v) if isinstance(v, float) else str(v))  # floats as Python's repr
        check(ok, f"{name}: arg {k} = {got!r}, want {v!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    fix = os.path.join(a.workdir, "fixtures")
    shutil.rmtree(a.workdir, ignore_errors=True)
    man = make_pth_fixtures.make(fix)
    marker = man["marker"]
    out = os.path.join(a.workdir, "out")
    P = lambda n: os.path.join(fix, n + ".pth")  # noqa: E731

    for name, exp in man["good"].items():
        r = dump(a.driver, P(name), out)
        check(r.returncode == 0, f"{name}: dump failed ({r.returncode}): {r.stderr.strip()}")
        if r.returncode == 0:
            compare_dump(name, out, exp, os.path.join(fix, "expected", name))
        check_info(a.driver, name, P(name), exp)

    nbad = 0
    for name, words in man["bad"].items():
        r = dump(a.driver, P(name), out)
        msg = r.stderr.strip()
        check(r.returncode == 1, f"{name}: exit status {r.returncode} (want 1): {msg}")
        check(all(w in msg for w in words), f"{name}: message {msg!r} lacks {words}")
        nbad += 1
        if not name.startswith("trunc_"):
            print(f"{name}: {msg}")
    check(not os.path.exists(marker), "a hostile pickle ran: the marker file exists")

    nread = 0
    for name, ref in man["fuzz"].items():
        r = dump(a.driver, P(name), out)
        check(r.returncode in (0, 1), f"{name}: exit status {r.returncode}: {r.stderr.strip()}")
        check(r.returncode == 0 or P(name) in r.stderr, f"{name}: message {r.stderr!r}")
        nread += r.returncode == 0
        if r.returncode == 0 and ref is not None:
            compare_dump(name, out, man["good"][ref], os.path.join(fix, "expected", ref))
    check(not os.path.exists(marker), "a hostile pickle ran: the marker file exists")
    print(f"{len(man['good'])} good, {nbad} refused, {len(man['fuzz'])} damaged "
          f"({nread} read, the rest refused)")

    # control: the hostile fixture is live, torch.load (which unpickles freely) runs it
    import torch
    torch.load(P("evil_system"))
    check(os.path.exists(marker), "control: torch.load of evil_system did not run os.system")
    if os.path.exists(marker):
        os.remove(marker)

    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("all pth reader checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
