#!/usr/bin/env python3
"""`mae reconstruct` against HF transformers' ViTMAEForPreTraining on a plain official-named
checkpoint.

For each configuration a random HF ViTMAEForPreTraining (float32, layer_norm_eps 1e-6, exact
GELU, seeded weights moved away from their init values) is converted to the official
facebookresearch/mae state-dict names (mapping from mae_parity.py) and written as a plain
safetensors file WITHOUT metadata, so `mae reconstruct` has to infer the architecture from the
tensor shapes. The widths have no default head count, so:

  * omitting --num_heads / --decoder_num_heads must fail with a clear error naming the flag;
  * with them, `mae reconstruct --checkpoint W --input X --noise NOISE --out DIR` must give
    pred.npy (N,L,P), mask.npy (N,L) and ids_restore.npy (N,L) int64 and a printed `loss` equal
    to HF's logits / mask / ids_restore / loss: relative error <= 1e-4 for pred and loss
    (||a-b|| / ||b||), mask and ids_restore exactly.

Runs: without and with --norm_pix_loss, and with --mask_ratio 0.5; N = 70 in the first
configuration, so the CLI's chunks of 64 are crossed. One more run without --noise checks the
seeded-noise path: ids_restore must be a permutation with the right number of removed patches,
and HF fed the noise implied by ids_restore must reproduce pred and loss.
Exit status 1 on any failure.
"""
import argparse
import os
import re
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mae_parity as mp  # noqa: E402
from clitest import Checks, crashed, run  # noqa: E402

TOL = 1e-4


def run_mae(mae, args):
    return run(mae, "reconstruct", args)


CONFIGS = {
    # 3 channels, L = 16, P = 48; widths 48 / 32 have no default head count
    "c3": dict(img_size=16, patch_size=4, in_chans=3, embed_dim=48, depth=2, num_heads=3,
               decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, mlp_ratio=4.0,
               mask_ratio=0.75, norm_pix_loss=0, N=70),
    # 1 channel 28x28 patch 4 (Fashion-MNIST shape), L = 49 (len_keep 12, or 24 at 0.5),
    # 8 encoder heads of 8, decoder 40 / 5 heads, mlp_ratio 2
    "c1": dict(img_size=28, patch_size=4, in_chans=1, embed_dim=64, depth=2, num_heads=8,
               decoder_embed_dim=40, decoder_depth=2, decoder_num_heads=5, mlp_ratio=2.0,
               mask_ratio=0.75, norm_pix_loss=0, N=5),
}


def hf_outputs(cfg, weights, X, noise):
    model = mp.hf_model(cfg, weights)
    with torch.no_grad():
        out = model(pixel_values=X, noise=noise)
    return (out.loss.item(), out.logits.numpy(), out.mask.numpy(),
            out.ids_restore.numpy())


def compare(ck, tag, outdir, stdout, ref):
    loss_ref, pred_ref, mask_ref, ids_ref = ref
    m = re.search(r"^loss (\S+)$", stdout, re.M)
    if not ck.ok(m is not None, f"{tag}: printed 'loss <value>'"):
        return
    loss = float(m.group(1))
    try:
        pred = np.load(os.path.join(outdir, "pred.npy"))
        mask = np.load(os.path.join(outdir, "mask.npy"))
        ids = np.load(os.path.join(outdir, "ids_restore.npy"))
    except Exception as e:  # missing or unreadable output
        ck.ok(False, f"{tag}: read outputs: {e}")
        return
    ck.ok(pred.dtype == np.float32 and pred.shape == pred_ref.shape,
          f"{tag}: pred.npy float32 {pred.shape} (HF {pred_ref.shape})")
    ck.ok(mask.dtype == np.float32 and mask.shape == mask_ref.shape,
          f"{tag}: mask.npy float32 {mask.shape}")
    ck.ok(ids.dtype == np.int64 and ids.shape == ids_ref.shape,
          f"{tag}: ids_restore.npy int64 {ids.shape}")
    e = mp.rel_err(loss, loss_ref)
    ck.ok(e <= TOL, f"{tag}: loss {loss:.7g} vs HF {loss_ref:.7g}: rel {e:.2e} <= {TOL}")
    e = mp.rel_err(pred, pred_ref)
    ck.ok(e <= TOL, f"{tag}: pred rel {e:.2e} <= {TOL}")
    if pred.shape == pred_ref.shape and pred.shape[0] > 64:
        e64 = mp.rel_err(pred[64:], pred_ref[64:])
        ck.ok(e64 <= TOL, f"{tag}: pred of the second chunk (samples 64..{pred.shape[0] - 1}) "
                          f"rel {e64:.2e} <= {TOL}")
    if mask.shape == mask_ref.shape:
        nbad = int((mask != mask_ref).sum())
        ck.ok(nbad == 0, f"{tag}: mask identical ({nbad} entries differ)")
    if ids.shape == ids_ref.shape:
        nbad = int((ids != ids_ref).sum())
        ck.ok(nbad == 0, f"{tag}: ids_restore identical ({nbad} entries differ)")


def run_config(mae, workdir, name, cfg, seed, ck):
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    N, L = cfg["N"], mp.num_patches(cfg)
    weights = mp.random_official_weights(cfg, seed)
    w_path = os.path.join(d, "weights.safetensors")
    mp.write_official(w_path, weights, metadata=None)
    from safetensors import safe_open
    with safe_open(w_path, "np") as f:
        ck.ok(not f.metadata() and sorted(f.keys()) == sorted(mp.official_shapes(cfg)),
              f"[{name}] {w_path}: official names only, no metadata")
    gen = torch.Generator().manual_seed(seed + 1)
    X = torch.randn(N, cfg["in_chans"], cfg["img_size"], cfg["img_size"], generator=gen)
    noise = torch.rand(N, L, generator=gen)
    x_path, n_path = os.path.join(d, "x.npy"), os.path.join(d, "noise.npy")
    mp.write_npy(x_path, X.numpy())
    mp.write_npy(n_path, noise.numpy())
    base = ["--checkpoint", w_path, "--input", x_path, "--threads", 2]
    heads = ["--num_heads", cfg["num_heads"], "--decoder_num_heads", cfg["decoder_num_heads"]]

    # ---- the head counts cannot be inferred from the shapes
    for missing, args, flag in (
            ("both", [], "--num_heads"),
            ("decoder", ["--num_heads", cfg["num_heads"]], "--decoder_num_heads"),
            ("encoder", ["--decoder_num_heads", cfg["decoder_num_heads"]], "--num_heads")):
        r, cmd = run_mae(mae, base + ["--noise", n_path, "--out", os.path.join(d, "noheads")] + args)
        want = "encoder heads" if flag == "--num_heads" else "decoder heads"
        good = (0 < r.returncode < 128 and not crashed(r) and flag in r.stderr
                and want in r.stderr and "weights.safetensors" in r.stderr)
        ck.ok(good, f"[{name}] without {'--num_heads/--decoder_num_heads' if missing == 'both' else flag}:"
                    f" exit {r.returncode}: {r.stderr.strip()[:160]}")
        ck.ok(not os.path.exists(os.path.join(d, "noheads", "pred.npy")),
              f"[{name}] ... and no pred.npy written")

    # ---- parity runs
    runs = [("plain", {}, []), ("norm_pix", {"norm_pix_loss": 1}, ["--norm_pix_loss"]),
            ("mask0.5", {"mask_ratio": 0.5}, ["--mask_ratio", 0.5])]
    if name == "c3":
        runs.append(("norm_pix+mask0.5", {"norm_pix_loss": 1, "mask_ratio": 0.5},
                     ["--norm_pix_loss", "--mask_ratio", 0.5]))
    for tag, over, flags in runs:
        c = dict(cfg, **over)
        out = os.path.join(d, "out_" + tag)
        r, cmd = run_mae(mae, base + heads + ["--noise", n_path, "--out", out] + flags)
        t = f"[{name} N={N} {tag}]"
        if not ck.ok(r.returncode == 0 and not crashed(r), f"{t} exit {r.returncode}"):
            print(cmd + "\n" + r.stdout[-1000:] + r.stderr[-1000:])
            continue
        compare(ck, t, out, r.stdout, hf_outputs(c, weights, X, noise))

    # ---- seeded noise (no --noise): consistent with HF fed the implied noise
    out = os.path.join(d, "out_seeded")
    r, cmd = run_mae(mae, base + heads + ["--out", out, "--seed", 7])
    t = f"[{name} seeded noise]"
    if ck.ok(r.returncode == 0 and not crashed(r), f"{t} exit {r.returncode}"):
        ids = np.load(os.path.join(out, "ids_restore.npy"))
        mask = np.load(os.path.join(out, "mask.npy"))
        K = mp.len_keep(cfg)
        perm_ok = all(sorted(row.tolist()) == list(range(L)) for row in ids)
        ck.ok(perm_ok, f"{t} every ids_restore row is a permutation of 0..{L - 1}")
        ck.ok(bool((mask.sum(1) == L - K).all()), f"{t} every mask row removes L - len_keep = {L - K}")
        ids_shuffle = np.argsort(ids, axis=1)
        implied = np.empty((N, L), np.float32)
        np.put_along_axis(implied, ids_shuffle, (np.arange(L, dtype=np.float32) + 0.5) / L, axis=1)
        compare(ck, t, out, r.stdout, hf_outputs(cfg, weights, X, torch.from_numpy(implied)))
        r2, _ = run_mae(mae, base + heads + ["--out", out + "_again", "--seed", 7])
        same = r2.returncode == 0 and np.array_equal(
            np.load(os.path.join(out + "_again", "pred.npy")), np.load(os.path.join(out, "pred.npy")))
        ck.ok(same, f"{t} the same --seed gives the same pred again")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mae", required=True, help="path of the mae executable")
    ap.add_argument("--workdir", required=True, help="scratch directory")
    ap.add_argument("--seed", type=int, default=4321)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    os.makedirs(args.workdir, exist_ok=True)
    ck = Checks()
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        try:
            run_config(args.mae, args.workdir, name, cfg, args.seed + 10 * i, ck)
        except Exception as e:  # unexpected failure of the harness or an unreadable output
            import traceback
            traceback.print_exc()
            ck.ok(False, f"[{name}] {type(e).__name__}: {e}")
    print(f"---- test_reconstruct_hf: {ck.passed} checks passed, {ck.failed} failed")
    return 1 if ck.failed else 0


if __name__ == "__main__":
    sys.exit(main())
