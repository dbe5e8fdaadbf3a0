#!/usr/bin/env python3
"""`mae pretrain` data parallel under mpirun (src/dist) against the single-process run.

Data: Fashion-MNIST (Debian's dataset-fashion-mnist) when present, else a generated IDX set.
Model: tiny-28 with --depth 2 --decoder_depth 1, --num_samples 160, --epochs 2 (10 steps of a
global batch of 16 per epoch), --warmup_epochs 1, --norm_pix_loss, --weight_decay 0.05,
--threads 1 per rank (pretrain has no --clip_grad: main_pretrain.py has none either).
Checks (each prints what it measured):
  1. equivalence: 1 process x --batch_size 16 vs mpirun -np 2 x --batch_size 8, 20 steps: every
     step's loss (relative difference <= 1e-5) and every tensor of checkpoint-last (relative L2
     <= 1e-5; the AdamW moments too), except the attention key biases, whose gradient is 0 but
     for rounding noise (split_qkv: compared in absolute terms, <= 1e-4), with the weights moved
     from their init (a 1-step run at lr 0 gives the init) far more than the two runs differ;
     rank 1 (launched MPMD with its own --output_dir) writes nothing and prints no config;
  2. MAE_DIST_OVERLAP=0 and MAE_DIST_BUCKET_MB=0.01 (hundreds of buckets): the default 2-rank
     run's weights bit for bit (each element a sum of 2 values);
  3. --accum_iter 2: 2 ranks x 8 vs 1 process x 16 (effective batch 32), within 1e-5;
  4. MAE_FAULT_INJECT=kill:1:15: mpirun exits non-zero within 60 s; the epoch-1 checkpoint-last
     is intact (metadata epoch 0, loads in `mae reconstruct`), no temporary file is left;
  5. a rank that fails alone: (a) rank 1 stopped (SIGSTOP) with MAE_DIST_TIMEOUT=5: rank 0
     reports the timed-out collective naming itself and the job ends; (b) --strict with a bad
     image file in one rank's shard: that rank's message names it ("mae [rank R/2]");
  6. resume with another world size: (a) 2 ranks --stop_after_epochs 1 -> 1 process;
     (b) 1 process stopped mid-epoch by SIGTERM -> 2 ranks; (c) 2 ranks, SIGTERM to rank 1 alone
     mid-epoch (the stop is agreed over ranks) -> 1 process; each resumed run reaches the end
     with the uninterrupted run's weights (<= 1e-5). From (c)'s checkpoint: 1 process x 8 resumes
     at the converted step, and a batch size that does not divide the samples is a clear error.
     (The SIGTERM lands at whichever step is running: the step is read from the checkpoint; if
     it lands on an epoch's last step the checkpoint is end-of-epoch and that is said.)
  7. errors: --world_size 3 under -np 2 (exit 2, naming both), --world_size 2 in one process,
     `mpirun -np 2 mae reconstruct` (exit 2, "runs in one process"); nothing crashes.
Exit 77 (skipped) when mpirun is missing or this build of mae has no MPI; 1 on any failure.
"""
import argparse
import glob
import gzip
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
from safetensors.numpy import load_file
from safetensors import safe_open

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clitest import Checks  # noqa: E402

TOL = 1e-5
FMNIST = os.environ.get("MAE_FMNIST_DIR", "/usr/share/datasets/fashion-mnist")


class Res:
    """The result of one run: returncode (None if it had to be killed), out = stdout + stderr."""

    def __init__(self, cmd, rc, stdout, stderr, secs):
        self.cmd, self.returncode, self.stdout, self.stderr, self.secs = cmd, rc, stdout, stderr, secs
        self.out = stdout + stderr


class Env:
    def __init__(self, mae, mpirun, work, data):
        self.mae, self.mpirun, self.work, self.data = mae, mpirun, work, data
        self.base = ["--model", "tiny-28", "--depth", 2, "--decoder_depth", 1, "--num_samples", 160,
                     "--epochs", 2, "--warmup_epochs", 1, "--norm_pix_loss", "--weight_decay", 0.05,
                     "--threads", 1, "--num_workers", 1, "--recon_images", 0, "--seed", 3,
                     "--data_path", data]

    def dir(self, name):
        d = os.path.join(self.work, name)
        shutil.rmtree(d, ignore_errors=True)
        return d

    def cmd(self, np_, args, command="pretrain"):
        a = [str(x) for x in args]
        if np_ == 0:
            return [self.mae, command] + a
        return [self.mpirun, "--oversubscribe", "-np", str(np_), self.mae, command] + a

    def start(self, np_, args, env=None, command="pretrain", cmd=None):
        """Starts the run in a new process group; cmd: a whole command line instead."""
        e = dict(os.environ)
        e.update(env or {})
        cmd = cmd or self.cmd(np_, args, command)
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e,
                             start_new_session=True)
        p.t0, p.argv = time.monotonic(), cmd
        return p

    @staticmethod
    def finish(p, timeout):
        """Waits for p; past timeout the whole process group (mpirun and its ranks) is killed."""
        try:
            out, err = p.communicate(timeout=timeout)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = p.communicate()
            rc = None
        return Res(" ".join(p.argv), rc, out, err, time.monotonic() - p.t0)

    def run(self, np_, args, env=None, timeout=300, command="pretrain"):
        """np_ = 0: one process without mpirun; else mpirun -np np_."""
        return self.finish(self.start(np_, args, env, command), timeout)


def show_fail(r):
    print(f"  $ {r.cmd}\n  exit {r.returncode} after {r.secs:.1f} s; output tail:")
    for line in r.out.replace("\r", "\n").splitlines()[-25:]:
        print("  | " + line)


def crashed(r):
    """A signal (other than the expected exit code), an abort, or a sanitizer report."""
    sig = re.search(r"Segmentation|internal error|Sanitizer|runtime error:|Assertion|Aborted|signal 11",
                    r.out)
    return r.returncode is None or r.returncode < 0 or sig is not None


def ok_run(ck, r, what, expect=0):
    good = r.returncode == expect and not crashed(r)
    ck.ok(good, f"{what}: exit {r.returncode} (expected {expect}) in {r.secs:.1f} s")
    if not good:
        show_fail(r)
    return good


# --------------------------------------------------------------------------- files

def steps(d):
    """(epoch, step) -> record of d/steps.jsonl; a resumed run's records replace earlier ones."""
    recs = {}
    path = os.path.join(d, "steps.jsonl")
    if not os.path.exists(path):
        return recs
    for line in open(path):
        if line.strip():
            r = json.loads(line)
            recs[(r["epoch"], r["step"])] = r
    return recs


def nlines(path):
    return sum(1 for line in open(path) if line.strip()) if os.path.exists(path) else -1


def meta(path):
    with safe_open(path, "numpy") as f:
        return f.metadata() or {}


def rel_l2(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    nb = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / (nb if nb > 0 else 1.0))


def compare_losses(ck, a, b, what, tol=TOL, n=20):
    sa, sb = steps(a), steps(b)
    same_keys = sorted(sa) == sorted(sb) and len(sa) == n
    worst, at = 0.0, None
    for k in sa:
        if k not in sb:
            continue
        la, lb = sa[k]["loss"], sb[k]["loss"]
        d = abs(la - lb) / max(abs(lb), 1e-30)
        if not (np.isfinite(la) and np.isfinite(lb)):
            d = float("inf")
        if d > worst or at is None:
            worst, at = d, k
    lr_same = all(sa[k]["lr"] == sb[k]["lr"] and sa[k]["update"] == sb[k]["update"] for k in sa if k in sb)
    ck.ok(same_keys and lr_same and worst <= tol,
          f"{what}: {len(sa)} vs {len(sb)} steps (expected {n}), same epoch/step/update/lr {lr_same}, "
          f"max relative loss difference {worst:.3g} at (epoch, step) {at} (<= {tol:g})")
    return worst


def split_qkv(t):
    """The tensors with each attn.qkv.bias cut in its q, k and v parts ("NAME[k]"). The key bias
    gets a gradient of 0 in exact arithmetic (softmax(q.(k + b)) does not depend on b), so its
    gradient is rounding noise (~1e-11 here) that any change of summation order changes
    completely, and AdamW's m / sqrt(v) turns that noise into steps of lr size: the part is
    compared in absolute terms (it moves ~1e-5 in all), the rest relatively."""
    out = {}
    for k, v in t.items():
        if k.endswith("attn.qkv.bias"):
            D = v.shape[0] // 3
            for j, n in enumerate("qkv"):
                out[f"{k}[{n}]"] = v[j * D:(j + 1) * D]
        else:
            out[k] = v
    return out


def compare_ckpt(ck, a, b, what, tol=TOL, name="checkpoint-last.safetensors", ktol=1e-4):
    """Every tensor of a/name vs b/name: relative L2 <= tol; the attention key biases (see
    split_qkv) max absolute difference <= ktol. Returns (max, tensors of a, bitwise) or None."""
    pa, pb = os.path.join(a, name), os.path.join(b, name)
    if not (os.path.exists(pa) and os.path.exists(pb)):
        ck.ok(False, f"{what}: {pa} and {pb} exist")
        return None
    ta, tb = load_file(pa), load_file(pb)
    bitwise = sorted(ta) == sorted(tb) and all(np.array_equal(ta[k], tb[k]) for k in tb)
    sa, sb = split_qkv(ta), split_qkv(tb)
    worst, at, kworst = 0.0, None, 0.0
    for k in sorted(sb):
        if k not in sa or sa[k].shape != sb[k].shape:
            worst, at = float("inf"), k
            break
        if not np.all(np.isfinite(sa[k])):
            worst, at = float("inf"), k
        elif k.endswith("[k]"):
            kworst = max(kworst, float(np.max(np.abs(sa[k].astype(np.float64) - sb[k]))))
        else:
            d = rel_l2(sa[k], sb[k])
            if d > worst or at is None:
                worst, at = d, k
    nk = sum(k.endswith("[k]") for k in sb)
    ck.ok(sorted(ta) == sorted(tb) and worst <= tol and kworst <= ktol,
          f"{what}: {len(tb)} tensors of {name}, max relative L2 difference {worst:.3g} ({at}) "
          f"(<= {tol:g}); {nk} attention key biases: max |difference| {kworst:.3g} (<= {ktol:g}); "
          f"bitwise equal {bitwise}")
    return worst, ta, bitwise


def write_png(path, img):
    """8-bit greyscale PNG, no filter."""
    h, w = img.shape
    raw = b"".join(b"\0" + img[y].tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def make_idx(d, n):
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:28, 0:28]
    img = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        cy, cx, r = rng.uniform(8, 20), rng.uniform(8, 20), rng.uniform(3, 9)
        img[i] = np.where((yy - cy) ** 2 + (xx - cx) ** 2 < r * r, 200, 10)
    with gzip.open(os.path.join(d, "train-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 2051, n, 28, 28) + img.tobytes())
    with gzip.open(os.path.join(d, "train-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">II", 2049, n) + bytes(n))


def rank_pids(mpirun_pid):
    """{rank: pid} of the processes mpirun started (their OMPI_COMM_WORLD_RANK)."""
    out = {}
    for st in glob.glob("/proc/[0-9]*/stat"):
        try:
            s = open(st).read()
            ppid = int(s[s.rindex(")") + 2:].split()[1])
            if ppid != mpirun_pid:
                continue
            pid = int(st.split("/")[2])
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        except (OSError, ValueError):
            continue
        for v in env:
            if v.startswith(b"OMPI_COMM_WORLD_RANK="):
                out[int(v.split(b"=")[1])] = pid
    return out


def wait_lines(path, n, p, limit=60):
    """Waits until path has n lines (or p ended, or limit s): True when it has."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit and p.poll() is None:
        if nlines(path) >= n:
            return True
        time.sleep(0.005)
    return nlines(path) >= n


def no_temp_files(d):
    return [f for f in os.listdir(d) if ".tmp" in f or f.startswith(".")] if os.path.isdir(d) else []


# --------------------------------------------------------------------------- checks

def check_equivalence(E, ck, dirs):
    print("== 1. equivalence: 1 process x batch 16 vs 2 ranks x batch 8, 20 steps")
    init = E.dir("init")  # one step at lr 0 (warmup starts at 0): the checkpoint holds the init
    r = E.run(0, E.base + ["--batch_size", 16, "--epochs", 1, "--num_samples", 16, "--output_dir", init])
    ok_run(ck, r, "init (1 step at lr 0)")
    s0 = steps(init)
    ck.ok(len(s0) == 1 and s0[(0, 0)]["lr"] == 0,
          f"the init run's one step has lr {[v['lr'] for v in s0.values()]}")

    ref = dirs["ref"] = E.dir("ref1")
    r = E.run(0, E.base + ["--batch_size", 16, "--output_dir", ref])
    ok_run(ck, r, "1 process x batch 16")
    dp, dp_r1 = E.dir("dp2"), E.dir("dp2_rank1_outdir")
    dirs["dp2"] = dp
    # MPMD: the same flags, but rank 1 gets its own --output_dir, which must not come to exist
    a = [str(x) for x in E.base + ["--batch_size", 8]]
    cmd = ([E.mpirun, "--oversubscribe", "-np", "1", E.mae, "pretrain"] + a + ["--output_dir", dp, ":"]
           + ["-np", "1", E.mae, "pretrain"] + a + ["--output_dir", dp_r1])
    r = E.finish(E.start(2, None, cmd=cmd), 300)
    ok_run(ck, r, "mpirun -np 2 x batch 8")
    ck.ok(r.out.count("; config:") == 1 and "data parallel: 2 processes (MPI)" in r.out,
          f"the config is printed once (rank 0): {r.out.count('; config:')} times; "
          f"'data parallel: 2 processes' {'data parallel: 2 processes (MPI)' in r.out}")
    ck.ok(not os.path.exists(dp_r1), f"rank 1's --output_dir {dp_r1} was not created")
    fa, fb = sorted(os.listdir(ref)), sorted(os.listdir(dp)) if os.path.isdir(dp) else []
    ck.ok(fa == fb, f"the same files as the 1-process run: {fb}")
    ck.ok(nlines(os.path.join(dp, "steps.jsonl")) == 20 and nlines(os.path.join(dp, "log.txt")) == 2,
          f"steps.jsonl has {nlines(os.path.join(dp, 'steps.jsonl'))} records (20), log.txt "
          f"{nlines(os.path.join(dp, 'log.txt'))} (2)")
    compare_losses(ck, dp, ref, "losses 2 ranks vs 1 process")
    res = compare_ckpt(ck, dp, ref, "weights 2 ranks vs 1 process")
    compare_ckpt(ck, dp, ref, "AdamW state 2 ranks vs 1 process", name="checkpoint-last.state.safetensors")
    if os.path.exists(os.path.join(dp, "checkpoint-last.state.safetensors")):
        tc = json.loads(meta(os.path.join(dp, "checkpoint-last.state.safetensors")).get("train_config", "{}"))
        ck.ok(tc.get("world_size") == 2 and tc.get("batch_size") == 8,
              f"the state records world_size {tc.get('world_size')}, batch_size {tc.get('batch_size')}")
    # the weights moved from the init, by far more than the two runs differ
    pi = os.path.join(init, "checkpoint-last.safetensors")
    if res and os.path.exists(pi):
        t0, tdp = split_qkv(load_file(pi)), split_qkv(res[1])
        tref = split_qkv(load_file(os.path.join(ref, "checkpoint-last.safetensors")))
        fixed = [k for k in t0 if "pos_embed" in k]  # sin-cos tables, not trained
        moves = {k: rel_l2(tref[k], t0[k]) for k in t0 if k not in fixed and not k.endswith("[k]")}
        ratio = max(np.linalg.norm(tdp[k].astype(np.float64) - tref[k]) /
                    max(np.linalg.norm(tref[k].astype(np.float64) - t0[k]), 1e-30) for k in moves)
        kmin = min(moves, key=moves.get)
        total = rel_l2(np.concatenate([tref[k].ravel() for k in moves]),
                       np.concatenate([t0[k].ravel() for k in moves]))
        ck.ok(min(moves.values()) > 0 and total > 1e-3 and ratio < 1e-3,
              f"weights moved from the init: all {len(moves)} trained tensors (key biases aside; "
              f"least {kmin} "
              f"{moves[kmin]:.3g} relative), {total:.3g} overall; fixed {fixed} unchanged "
              f"{all(np.array_equal(t0[k], tref[k]) for k in fixed)}; max ||2 ranks - 1 process|| / "
              f"||moved|| per tensor {ratio:.3g} (< 1e-3)")
    sr = steps(ref)
    if len(sr) == 20:
        print(f"  loss: step 0 {sr[(0, 0)]['loss']:.6f} -> last {sr[(1, 9)]['loss']:.6f}")


def check_overlap(E, ck, dirs):
    print("== 2. MAE_DIST_OVERLAP=0 and MAE_DIST_BUCKET_MB=0.01 vs the default 2-rank run")
    for name, env, note in [("ov0", {"MAE_DIST_OVERLAP": "0"}, "no, MAE_DIST_OVERLAP=0"),
                            ("bucket", {"MAE_DIST_BUCKET_MB": "0.01"}, "yes")]:
        d = E.dir("dp2_" + name)
        r = E.run(2, E.base + ["--batch_size", 8, "--output_dir", d], env=env)
        ok_run(ck, r, f"mpirun -np 2 {env}")
        ck.ok(f"buckets started during it: {note})" in r.out,
              f"{env}: the run reports 'buckets started during it: {note}'")
        res = compare_ckpt(ck, d, dirs["dp2"], f"{env} weights vs default", tol=1e-7)
        if res and not res[2]:
            print(f"  note: {env} is within 1e-7 but not bitwise equal to the default run")
        compare_losses(ck, d, dirs["dp2"], f"{env} losses vs default", tol=0.0)


def check_accum(E, ck):
    print("== 3. --accum_iter 2: 2 ranks x 8 vs 1 process x 16 (effective batch 32)")
    a, b = E.dir("acc1"), E.dir("acc2")
    r = E.run(0, E.base + ["--batch_size", 16, "--accum_iter", 2, "--output_dir", a])
    ok_run(ck, r, "1 process x 16 x accum 2")
    r = E.run(2, E.base + ["--batch_size", 8, "--accum_iter", 2, "--world_size", 2, "--output_dir", b])
    ok_run(ck, r, "mpirun -np 2 x 8 x accum 2 (--world_size 2 accepted)")
    ck.ok("effective batch size: 32" in r.out, "the 2-rank run's effective batch is 32")
    compare_losses(ck, b, a, "accum 2 losses")
    compare_ckpt(ck, b, a, "accum 2 weights")
    sa = steps(a)
    ck.ok(len(sa) == 20 and sa[(1, 9)]["update"] == 10,
          f"10 updates in 20 steps: {sa.get((1, 9), {}).get('update')}")


def check_fault(E, ck):
    print("== 4. MAE_FAULT_INJECT=kill:1:15 (in epoch 2)")
    d = E.dir("fault")
    r = E.run(2, E.base + ["--batch_size", 8, "--output_dir", d], env={"MAE_FAULT_INJECT": "kill:1:15"},
              timeout=60)
    ck.ok(r.returncode is not None and r.returncode != 0 and r.secs < 60,
          f"mpirun exits non-zero ({r.returncode}; None = killed at the 60 s limit) in {r.secs:.1f} s")
    ck.ok("killing this rank at step 15" in r.out and not crashed(r),
          "rank 1 says it kills itself at step 15; no segfault")
    if r.returncode == 0 or r.returncode is None:
        show_fail(r)
    files = sorted(os.listdir(d)) if os.path.isdir(d) else []
    want = ["checkpoint-last.safetensors", "checkpoint-last.state.safetensors", "log.txt", "steps.jsonl"]
    ck.ok(files == want and not no_temp_files(d), f"output_dir holds {files}, no temporary files")
    ck.ok(nlines(os.path.join(d, "steps.jsonl")) == 15,
          f"steps.jsonl has {nlines(os.path.join(d, 'steps.jsonl'))} records (steps 0-14)")
    w = os.path.join(d, "checkpoint-last.safetensors")
    if not os.path.exists(w):
        return
    m, ms = meta(w), meta(os.path.join(d, "checkpoint-last.state.safetensors"))
    ck.ok(m.get("epoch") == "0" and m.get("resume_epoch") == "1" and m.get("resume_step") == "0"
          and ms.get("epoch") == "0" and ms.get("step") == "10",
          f"checkpoint-last: epoch {m.get('epoch')} done, resume_epoch {m.get('resume_epoch')} step "
          f"{m.get('resume_step')}; state epoch {ms.get('epoch')} update {ms.get('step')} (0, 10)")
    t = load_file(w)
    ck.ok(len(t) == 50 and all(np.all(np.isfinite(v)) for v in t.values()), f"{len(t)} finite tensors")
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    np.save(os.path.join(E.work, "recon_in.npy"), x)
    out = E.dir("fault_recon")
    r2 = E.run(0, ["--checkpoint", w, "--input", os.path.join(E.work, "recon_in.npy"), "--out", out,
                   "--threads", 1], command="reconstruct")
    if ok_run(ck, r2, "mae reconstruct --checkpoint fault/checkpoint-last.safetensors"):
        pred = np.load(os.path.join(out, "pred.npy"))
        ck.ok(pred.shape == (2, 49, 16) and np.all(np.isfinite(pred)), f"pred.npy {pred.shape}, finite")


def check_rank_failure(E, ck):
    print("== 5a. rank 1 stopped (SIGSTOP), MAE_DIST_TIMEOUT=5")
    d = E.dir("hang")
    p = E.start(2, E.base + ["--batch_size", 8, "--epochs", 30, "--output_dir", d],
                env={"MAE_DIST_TIMEOUT": "5"})
    stopped = None
    if wait_lines(os.path.join(d, "steps.jsonl"), 3, p):
        pids = rank_pids(p.pid)
        if 1 in pids:
            stopped = pids[1]
            os.kill(stopped, signal.SIGSTOP)
    t_stop = time.monotonic()
    r = E.finish(p, 60)
    after = time.monotonic() - t_stop
    state = "gone"
    if stopped:  # gone, or a zombie (reparented to init) within 10 s; if left stopped, end it
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            try:
                state = open(f"/proc/{stopped}/stat").read().rsplit(")", 1)[1].split()[0]
            except OSError:
                state = "gone"
            if state in ("gone", "Z"):
                break
            time.sleep(0.05)
        if state not in ("gone", "Z"):
            os.kill(stopped, signal.SIGKILL)
            os.kill(stopped, signal.SIGCONT)
    ck.ok(stopped is not None, f"found rank 1's pid ({stopped}) and stopped it")
    ck.ok(r.returncode not in (None, 0) and after < 30,
          f"the job ends {after:.1f} s after the stop, exit {r.returncode}")
    msg = "did not complete within 5 s (MAE_DIST_TIMEOUT) on rank 0 of 2"
    ck.ok("mae [rank 0/2]" in r.out and msg in r.out, f"rank 0 reports '{msg}'")
    if stopped:
        ck.ok(state in ("gone", "Z"), f"the stopped rank ended with the job (state: {state})")
    if r.returncode in (None, 0) or msg not in r.out:
        show_fail(r)

    print("== 5b. --strict and a bad image file in one rank's shard")
    data = os.path.join(E.work, "imgs")
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    rng = np.random.default_rng(1)
    for i in range(47):
        write_png(os.path.join(data, f"img{i:03d}.png"), rng.integers(0, 255, (28, 28), dtype=np.uint8))
    with open(os.path.join(data, "zz_bad.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\nthis is not a PNG")
    d = E.dir("strict")
    args = [a for a in E.base]
    args[args.index("--data_path") + 1] = data
    args[args.index("--num_samples") + 1] = 0
    args[args.index("--seed") + 1] = 4  # (the bad file then falls in rank 1's shard; either will do)
    r = E.run(2, args + ["--batch_size", 8, "--strict", "--output_dir", d], timeout=60)
    who = [rk for rk in (0, 1) if f"mae [rank {rk}/2]: mae pretrain:" in r.out]
    ck.ok(r.returncode not in (None, 0) and len(who) == 1 and "zz_bad.png" in r.out and not crashed(r),
          f"exit {r.returncode} in {r.secs:.1f} s; the failing rank names itself: ranks {who}; "
          f"zz_bad.png named {'zz_bad.png' in r.out}")
    if len(who) != 1:
        show_fail(r)
    else:
        line = [ln for ln in r.out.splitlines() if f"mae [rank {who[0]}/2]" in ln][0]
        print(f"  {line.strip()}")


def sigterm_run(E, ck, np_, d, target_rank, what):
    """Starts the 20-step run, SIGTERMs (rank target_rank of) it once 2 steps are logged."""
    bs = 16 if np_ == 0 else 8
    p = E.start(np_, E.base + ["--batch_size", bs, "--output_dir", d])
    sent = False
    if wait_lines(os.path.join(d, "steps.jsonl"), 2, p):
        pid = p.pid if np_ == 0 else rank_pids(p.pid).get(target_rank)
        if pid:
            os.kill(pid, signal.SIGTERM)
            sent = True
    r = E.finish(p, 120)
    ck.ok(sent, f"{what}: SIGTERM sent after 2 logged steps")
    ok_run(ck, r, what, expect=130)
    w = os.path.join(d, "checkpoint-last.safetensors")
    m = meta(w) if os.path.exists(w) else {}
    print(f"  {what}: stopped at epoch {m.get('resume_epoch')} step {m.get('resume_step')} "
          f"(resume_samples {m.get('resume_samples')}), {nlines(os.path.join(d, 'steps.jsonl'))} "
          "steps logged")
    return m


def resume(E, ck, np_, src, what, ref):
    bs = 16 if np_ == 0 else 8
    r = E.run(np_, E.base + ["--batch_size", bs, "--output_dir", src, "--resume",
                             os.path.join(src, "checkpoint-last.safetensors")])
    ok_run(ck, r, what)
    s = steps(src)
    ck.ok(len(s) == 20 and all(np.isfinite(v["loss"]) for v in s.values()),
          f"{what}: reaches the end: {len(s)} steps, finite losses")
    compare_losses(ck, src, ref, f"{what}: losses vs the uninterrupted run")
    compare_ckpt(ck, src, ref, f"{what}: final weights vs the uninterrupted run")
    return r


def check_resume(E, ck, dirs):
    ref = dirs["ref"]
    print("== 6a. 2 ranks --stop_after_epochs 1 -> resume in 1 process")
    d = E.dir("res_a")
    r = E.run(2, E.base + ["--batch_size", 8, "--stop_after_epochs", 1, "--output_dir", d])
    ok_run(ck, r, "mpirun -np 2 --stop_after_epochs 1")
    resume(E, ck, 0, d, "resume in 1 process x 16", ref)

    print("== 6b. 1 process, SIGTERM mid-epoch -> resume with 2 ranks")
    d = E.dir("res_b")
    m = sigterm_run(E, ck, 0, d, 0, "1 process + SIGTERM")
    if m:
        resume(E, ck, 2, d, "resume with mpirun -np 2 x 8", ref)

    print("== 6c. 2 ranks, SIGTERM to rank 1 alone -> resume in 1 process")
    d = E.dir("res_c")
    m = sigterm_run(E, ck, 2, d, 1, "mpirun -np 2 + SIGTERM to rank 1")
    if not m:
        return
    keep = E.dir("res_c_ckpt")
    os.makedirs(keep)
    for f in ("checkpoint-last.safetensors", "checkpoint-last.state.safetensors"):
        shutil.copy(os.path.join(d, f), keep)
    resume(E, ck, 0, d, "resume in 1 process x 16", ref)
    ep, st = int(m.get("resume_epoch", -1)), int(m.get("resume_step", -1))
    smp = int(m.get("resume_samples", -1))
    ck.ok(smp == 16 * st, f"resume_samples {smp} = step {st} x 2 ranks x 8")
    if st == 0:
        print("  note: the SIGTERM landed on the epoch's last step: an end-of-epoch checkpoint, so the "
              "mid-epoch conversion checks do not apply this time")
        return
    w = os.path.join(keep, "checkpoint-last.safetensors")
    out = E.dir("res_c_b8")
    r = E.run(0, E.base + ["--batch_size", 8, "--output_dir", out, "--resume", w])
    ok_run(ck, r, "resume in 1 process x 8 (a job of another size and batch)")
    want = f"resuming epoch {ep} at step {2 * st}"
    s = steps(out)
    ck.ok(want in r.out and min(s, default=(-1, -1)) == (ep, 2 * st) and len(s) == 40 - 2 * st - 20 * ep
          and all(np.isfinite(v["loss"]) for v in s.values()),
          f"'{want}' (samples {smp} / 8), then {len(s)} steps to the end, finite losses")
    bad = next(b for b in (3, 5, 7, 9, 11) if smp % b)
    out = E.dir("res_c_bad")
    r = E.run(0, E.base + ["--batch_size", bad, "--output_dir", out, "--resume", w])
    msg = "not a whole number of this job's steps"
    ck.ok(r.returncode not in (0, None) and not crashed(r) and msg in r.stderr and str(smp) in r.stderr,
          f"--batch_size {bad}: exit {r.returncode}, '{msg}' ({smp} samples)")
    print("  " + r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "  (no message)")


def check_errors(E, ck):
    print("== 7. errors")
    d = E.dir("err")
    r = E.run(2, E.base + ["--batch_size", 8, "--world_size", 3, "--output_dir", d], timeout=60)
    good = (r.returncode == 2 and not crashed(r) and "--world_size 3" in r.stderr
            and "this job has 2 processes" in r.stderr and r.stderr.count("--world_size 3") == 1)
    ck.ok(good, f"mpirun -np 2 --world_size 3: exit {r.returncode}, names --world_size 3 and the "
                "job's 2, once")
    if not good:
        show_fail(r)
    else:
        print("  " + [ln for ln in r.stderr.splitlines() if "--world_size 3" in ln][0])
    r = E.run(0, E.base + ["--batch_size", 8, "--world_size", 2, "--output_dir", d], timeout=60)
    ck.ok(r.returncode == 2 and not crashed(r) and "this job has 1 process " in r.stderr,
          f"one process --world_size 2: exit {r.returncode}, 'this job has 1 process'")
    ck.ok(not os.path.exists(d), "neither wrote output_dir")
    x = os.path.join(E.work, "recon_in.npy")
    np.save(x, np.zeros((1, 1, 28, 28), np.float32))
    r = E.run(2, ["--checkpoint", "none.safetensors", "--input", x, "--out", d], command="reconstruct",
              timeout=60)
    good = r.returncode == 2 and not crashed(r) and "runs in one process" in r.stderr
    ck.ok(good, f"mpirun -np 2 mae reconstruct: exit {r.returncode}, 'runs in one process'")
    if not good:
        show_fail(r)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mae", required=True, help="path of the mae executable")
    ap.add_argument("--workdir", required=True, help="scratch directory")
    ap.add_argument("--mpirun", default=shutil.which("mpirun"), help="the MPI launcher")
    args = ap.parse_args()
    if not args.mpirun:
        print("skipped: no mpirun (apt-get install openmpi-bin libopenmpi-dev)")
        return 77
    if os.geteuid() == 0:  # Open MPI refuses root without these
        os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    os.makedirs(args.workdir, exist_ok=True)
    mae = os.path.abspath(args.mae)
    r = subprocess.run([args.mpirun, "--oversubscribe", "-np", "2", mae, "devices"], capture_output=True,
                       text=True, timeout=120)
    if "has no MPI" in r.stderr:
        print("skipped: this build of mae has no MPI (reconfigure with libopenmpi-dev installed)")
        return 77
    if "runs in one process" not in r.stderr:
        print(f"FAIL mpirun -np 2 mae devices did not start a job of 2 (exit {r.returncode}):")
        print(r.stdout + r.stderr)
        return 1
    if os.path.exists(os.path.join(FMNIST, "train-images-idx3-ubyte.gz")):
        data = FMNIST
    else:
        data = os.path.join(args.workdir, "idx")
        make_idx(data, 200)
    print(f"data: {data}; mpirun {args.mpirun}")
    E = Env(mae, args.mpirun, args.workdir, data)
    ck = Checks()
    dirs = {}
    t_all = time.monotonic()
    for f in (lambda: check_equivalence(E, ck, dirs), lambda: check_overlap(E, ck, dirs),
              lambda: check_accum(E, ck), lambda: check_fault(E, ck), lambda: check_rank_failure(E, ck),
              lambda: check_resume(E, ck, dirs), lambda: check_errors(E, ck)):
        t0 = time.monotonic()
        try:
            f()
        except Exception as e:  # an unexpected failure of the harness or an unreadable output
            import traceback
            traceback.print_exc()
            ck.ok(False, f"{type(e).__name__}: {e}")
        print(f"  ({time.monotonic() - t0:.1f} s)")
    print(f"---- test_dist: {ck.passed} checks passed, {ck.failed} failed ({time.monotonic() - t_all:.0f} s)")
    return 1 if ck.failed else 0


if __name__ == "__main__":
    sys.exit(main())
