#!/usr/bin/env python3
"""Checkpoint round trip: a checkpoint written by libmae (mae_model_init + mae_model_save, via
tests/parity_driver --save) is read with safetensors.torch and checked against the official
facebookresearch/mae model:

  * every tensor name/shape of the official MaskedAutoencoderViT state dict is present (and
    nothing else), all float32, the config is stored in the metadata;
  * initialisation statistics follow models_mae.py initialize_weights():
      - nn.Linear weights and the patch embedding viewed as (D, C*p*p): xavier_uniform, i.e.
        max |w| <= sqrt(6 / (fan_in + fan_out)) and std ~ bound / sqrt(3) (5%, or 4.5 standard
        errors for small tensors), mean ~ 0, uniform-like kurtosis for large tensors;
      - nn.Linear biases 0, LayerNorm weight 1 and bias 0;
      - cls_token, mask_token ~ normal(std 0.02);
      - patch_embed.proj.bias: nn.Conv2d keeps PyTorch's default bias init in the official code
        (its _init_weights only touches nn.Linear and nn.LayerNorm), uniform(+-1/sqrt(C*p*p));
        --patch_bias zero|either relaxes this;
      - pos_embed / decoder_pos_embed equal HF's fixed 2-D sin-cos tables;
    the same seed gives the same tensors and another seed different ones; no two weight matrices
    (nor the q/k/v slices of a qkv weight) are equal;
  * mapped to HF ViTMAEForPreTraining, the checkpoint gives the same loss as the C driver on the
    same input and noise (<= 1e-5 relative).
Exit status 1 on any failure.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mae_parity as mp  # noqa: E402

CONFIGS = {
    # bigger than the parity configs so that the init statistics are tight
    "c": dict(img_size=64, patch_size=8, in_chans=3, embed_dim=192, depth=2, num_heads=3,
              decoder_embed_dim=128, decoder_depth=2, decoder_num_heads=4, mlp_ratio=4.0,
              mask_ratio=0.75, norm_pix_loss=0, B=2),
    "b": dict(mp.CONFIGS["b"], norm_pix_loss=1),
}


def std_tol(n, kind):
    """Allowed relative deviation of the sample std: 5%, widened to 4.5 standard errors for
    small tensors (the relative SE of a sample std is sqrt((kurt - 1) / (4n)): uniform kurt 1.8,
    normal 3)."""
    kurt = 1.8 if kind == "uniform" else 3.0
    return max(0.05, 4.5 * math.sqrt((kurt - 1.0) / (4.0 * n)))


def check_uniform(rep, run, name, w, bound, require_nonzero=True):
    w = w.astype(np.float64).ravel()
    n = w.size
    mx = float(np.abs(w).max())
    rep.add(run, f"  {name} max|w|/bound", mx / bound, 1.0 + 1e-6)
    if require_nonzero and mx == 0:
        rep.fail(run, f"  {name}", "all zero")
        return
    sd = float(w.std())
    target = bound / math.sqrt(3.0)
    rep.add(run, f"  {name} |std/(b/sqrt3)-1|", abs(sd / target - 1.0), std_tol(n, "uniform"))
    rep.add(run, f"  {name} |mean|/(std/sqrt n)", abs(float(w.mean())) / (target / math.sqrt(n)),
            4.5)
    if n >= 4096:
        kurt = float(((w - w.mean()) ** 4).mean() / w.var() ** 2)
        rep.add(run, f"  {name} |kurtosis-1.8|", abs(kurt - 1.8), 0.2,
                note="" if abs(kurt - 1.8) <= 0.2 else "not uniform (normal has 3.0)")


def check_normal(rep, run, name, w, std):
    w = w.astype(np.float64).ravel()
    n = w.size
    sd = float(w.std())
    rep.add(run, f"  {name} |std/{std}-1|", abs(sd / std - 1.0), std_tol(n, "normal"))
    rep.add(run, f"  {name} |mean|/(std/sqrt n)", abs(float(w.mean())) / (std / math.sqrt(n)),
            4.5)


def check_init(rep, run, cfg, sd, patch_bias):
    ref = mp.hf_to_official(mp.hf_model(cfg).state_dict(), cfg)
    C, p = cfg["in_chans"], cfg["patch_size"]
    for name, shape in mp.official_shapes(cfg).items():
        if name not in sd:
            continue  # reported by the name check
        w = sd[name].numpy()
        if name in mp.FROZEN:
            mx = float(np.abs(w - ref[name].numpy()).max())
            rep.add(run, f"{name} == HF sin-cos (max abs)", mx, 1e-5,
                    note="" if mx <= 1e-5 else mp.first_bad_pos(w, ref[name].numpy()))
        elif name in ("cls_token", "mask_token"):
            check_normal(rep, run, name, w, 0.02)
        elif name == "patch_embed.proj.bias":
            is_zero = not np.any(w)
            bound = 1.0 / math.sqrt(C * p * p)
            if patch_bias == "zero" or (patch_bias == "either" and is_zero):
                rep.add(run, f"{name} == 0", float(np.abs(w).max()), 0.0, ok=is_zero)
            else:
                if is_zero:
                    rep.fail(run, name, "all zero; official models_mae.py leaves the Conv2d "
                             "bias at PyTorch's default uniform(+-1/sqrt(C*p*p)) init")
                else:
                    check_uniform(rep, run, name + " (conv default)", w, bound)
        elif name.endswith(".bias"):
            rep.add(run, f"  {name} == 0", float(np.abs(w).max()), 0.0, ok=not np.any(w))
        elif len(shape) == 1:  # LayerNorm weight
            ok = bool(np.all(w == 1.0))
            rep.add(run, f"  {name} == 1", float(np.abs(w - 1).max()), 0.0, ok=ok)
        else:  # Linear weights and the patch embedding viewed as (D, C*p*p)
            fan_out, fan_in = shape[0], int(np.prod(shape[1:]))
            check_uniform(rep, run, name, w, math.sqrt(6.0 / (fan_in + fan_out)))
    # independent draws: no two weight tensors / q,k,v slices are equal
    mats = [(n, sd[n].numpy()) for n in sd if sd[n].ndim >= 2 and n not in mp.FROZEN]
    dup = []
    for i in range(len(mats)):
        for j in range(i + 1, len(mats)):
            if mats[i][1].shape == mats[j][1].shape and np.array_equal(mats[i][1], mats[j][1]):
                dup.append(f"{mats[i][0]}=={mats[j][0]}")
        n, w = mats[i]
        if n.endswith("attn.qkv.weight"):
            q, k, v = np.split(w, 3, axis=0)
            if np.array_equal(q, k) or np.array_equal(k, v) or np.array_equal(q, v):
                dup.append(f"{n} q/k/v slices")
    rep.add(run, "weights drawn independently", float(len(dup)), 0.0, ok=not dup,
            note=", ".join(dup[:4]))


def check_metadata(rep, run, cfg, meta):
    found = None
    for v in (meta or {}).values():
        try:
            d = json.loads(v)
        except (ValueError, TypeError):
            continue
        if isinstance(d, dict) and "embed_dim" in d:
            found = d
            break
    if found is None:
        rep.fail(run, "config in metadata", f"no config JSON in metadata {meta}")
        return
    bad = []
    for k in mp.CFG_KEYS:
        want = cfg[k]
        got = found.get(k)
        if got is None or abs(float(got) - float(want)) > 1e-6:
            bad.append(f"{k}: {got} != {want}")
    rep.add(run, "config in metadata", float(len(bad)), 0.0, ok=not bad, note="; ".join(bad))


def roundtrip(driver, workdir, run, cfg, rep, seed, patch_bias):
    from safetensors import safe_open
    from safetensors.torch import load_file

    d = os.path.join(workdir, run)
    os.makedirs(d, exist_ok=True)
    cfg_path = os.path.join(d, "config.json")
    with open(cfg_path, "w") as f:
        f.write(mp.config_json(cfg))
    ck = os.path.join(d, "ckpt.safetensors")
    ck_same = os.path.join(d, "ckpt_same_seed.safetensors")
    ck_other = os.path.join(d, "ckpt_other_seed.safetensors")
    for path, s in ((ck, seed), (ck_same, seed), (ck_other, seed + 1)):
        mp.run_driver(driver, ["--config", cfg_path, "--save", path, "--seed", s],
                      os.path.join(d, os.path.basename(path) + ".log"))

    with safe_open(ck, framework="pt") as f:
        meta = f.metadata()
    sd = load_file(ck)
    check_metadata(rep, run, cfg, meta)

    # ---- names, shapes, dtypes
    shapes = mp.official_shapes(cfg)
    missing = [n for n in shapes if n not in sd]
    extra = [n for n in sd if n not in shapes]
    rep.add(run, "names: missing", float(len(missing)), 0.0, ok=not missing,
            note=", ".join(missing[:6]))
    rep.add(run, "names: unexpected", float(len(extra)), 0.0, ok=not extra,
            note=", ".join(extra[:6]))
    bad = [f"{n} {tuple(sd[n].shape)}!={s}" for n, s in shapes.items()
           if n in sd and tuple(sd[n].shape) != tuple(s)]
    rep.add(run, "shapes", float(len(bad)), 0.0, ok=not bad, note=", ".join(bad[:4]))
    bad = [n for n in sd if sd[n].dtype != torch.float32]
    rep.add(run, "dtype float32", float(len(bad)), 0.0, ok=not bad, note=", ".join(bad[:4]))
    if missing or bad:
        return

    # ---- determinism across seeds
    same = load_file(ck_same)
    other = load_file(ck_other)
    ok = all(torch.equal(sd[n], same[n]) for n in sd)
    rep.add(run, "same seed -> same tensors", 0.0 if ok else 1.0, 0.0, ok=ok)
    random_init = [n for n in sd if n not in mp.FROZEN and
                   (sd[n].ndim >= 2 or n == "patch_embed.proj.bias") and np.any(sd[n].numpy())]
    differ = [n for n in random_init if n in other and torch.equal(sd[n], other[n])]
    rep.add(run, "other seed -> other tensors", float(len(differ)), 0.0, ok=not differ,
            note=", ".join(differ[:4]))

    check_init(rep, run, cfg, sd, patch_bias)

    # ---- HF with the checkpoint == C driver on the same input/noise
    B, L = cfg["B"], mp.num_patches(cfg)
    gen = torch.Generator().manual_seed(seed + 7)
    X = torch.randn(B, cfg["in_chans"], cfg["img_size"], cfg["img_size"], generator=gen)
    noise = torch.rand(1, B, L, generator=gen)
    x_path, n_path = os.path.join(d, "x.npy"), os.path.join(d, "noise.npy")
    mp.write_npy(x_path, X.numpy())
    mp.write_npy(n_path, noise.numpy())
    out_path = os.path.join(d, "out.safetensors")
    mp.run_driver(driver, ["--config", cfg_path, "--weights", ck, "--input", x_path, "--noise",
                           n_path, "--out", out_path], os.path.join(d, "driver.log"))
    c = mp.load_st(out_path)
    model = mp.hf_model(cfg, sd)  # strict: every HF tensor comes from the checkpoint
    with torch.no_grad():
        out = model(pixel_values=X, noise=noise[0])
    rep.add(run, "loss C vs HF(ckpt)", mp.rel_err(c["loss"], out.loss.reshape(1)), 1e-5,
            note=f"C {float(c['loss'][0]):.7g} HF {out.loss.item():.7g}")
    rep.add(run, "pred C vs HF(ckpt)", mp.rel_err(c["pred"], out.logits), 1e-4)
    ok = np.array_equal(c["mask"], out.mask.numpy()) and \
        np.array_equal(c["ids_restore"], out.ids_restore.numpy())
    rep.add(run, "mask/ids_restore exact", 0.0 if ok else 1.0, 0.0, ok=ok)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--driver", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--configs", default="c,b")
    ap.add_argument("--seed", type=int, default=20240501)
    ap.add_argument("--patch_bias", choices=["official", "zero", "either"], default="official",
                    help="expected init of patch_embed.proj.bias (official: Conv2d default)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    os.makedirs(args.workdir, exist_ok=True)
    rep = mp.Report()
    for i, name in enumerate(args.configs.split(",")):
        try:
            roundtrip(args.driver, args.workdir, name, CONFIGS[name], rep, args.seed + 10 * i,
                      args.patch_bias)
        except Exception as e:
            rep.fail(name, "run", f"{type(e).__name__}: {e}")
    rep.print(verbose=args.verbose)
    if rep.failed:
        print("ckpt_roundtrip: FAIL")
        return 1
    print("ckpt_roundtrip: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
