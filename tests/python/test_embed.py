#!/usr/bin/env python3
"""`mae embed` against an independent PyTorch encoder (timm ViT forward_features).

Random official-named weights (mae_parity.random_official_weights: sin-cos pos_embed, LayerNorm
weights away from 1, biases away from 0) for two small encoders, written as:

  * pretrain.safetensors : the whole MAE (encoder + decoder) with config metadata, as mae pretrain;
  * pretrain_nometa.safetensors: the same without metadata (shapes inferred, --num_heads given;
    the decoder width has no default head count, which must not matter to embed);
  * encoder.safetensors  : the encoder only (cls_token, pos_embed, patch_embed, blocks, norm),
    no metadata; without --num_heads it must fail naming --num_heads;
  * gpool.safetensors    : a classifier fine-tuned with global pooling (encoder, fc_norm, head,
    no final norm): --pool mean must give fc_norm(mean of tokens 1..L) (official models_vit
    forward_features with global_pool), --pool cls must fail naming --pool and the file.

The reference is written here in float64 from the architecture (patch conv, + pos_embed[1:],
cat(cls + pos_embed[0]), blocks with exact GELU and LayerNorm eps 1e-6, final norm), and is
itself checked against HF ViTMAEModel with mask_ratio 0 and noise = arange (no shuffle).
Checks, relative error ||a-b|| / ||b|| <= 1e-4:
  1. --input X.npy (the same preprocessed input): cls, mean and all for each file; N = 70 so
     the default batch of 64 leaves a smaller last batch; --batch_size 7 once more;
  2. a folder of real photos (skimage; PNG and JPEG, colour and grey, several sizes) with the
     default eval transform vs torchvision Resize(int(size / 0.875), bicubic) + CenterCrop +
     ToTensor + Normalize on PIL images (RGB for in_chans 3, "L" for in_chans 1); the paths file
     lists the images in sorted-name order; a --list in another order gives rows and paths in
     the list's order; --crop_pct 1.0 changes the transform accordingly.
Exit status 1 on any failure.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mae_parity as mp  # noqa: E402
from clitest import Checks, crashed, run  # noqa: E402

TOL = 1e-4


def run_mae(mae, args):
    return run(mae, "embed", args)


CONFIGS = {
    # 3 channels 32x32 patch 4: L = 64; width 64 (no default head count), 4 heads
    "c3": dict(img_size=32, patch_size=4, in_chans=3, embed_dim=64, depth=2, num_heads=4,
               decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4, mlp_ratio=4.0,
               mask_ratio=0.75, norm_pix_loss=0, N=70),
    # 1 channel 28x28 patch 7: L = 16; width 48, 3 heads, mlp_ratio 2
    "c1": dict(img_size=28, patch_size=7, in_chans=1, embed_dim=48, depth=2, num_heads=3,
               decoder_embed_dim=40, decoder_depth=1, decoder_num_heads=5, mlp_ratio=2.0,
               mask_ratio=0.75, norm_pix_loss=0, N=9),
}


# --------------------------------------------------------------------------- reference

def ref_tokens(sd, cfg, X):
    """timm VisionTransformer.forward_features of the official encoder, float64.
    Returns (blocks output before the final norm, after it), both (N, 1+L, D)."""
    sd = {k: v.double() for k, v in sd.items()}
    X = torch.as_tensor(X).double()
    N, D, H, p = X.shape[0], cfg["embed_dim"], cfg["num_heads"], cfg["patch_size"]
    x = F.conv2d(X, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=p)
    x = x.flatten(2).transpose(1, 2)  # (N, L, D)
    x = x + sd["pos_embed"][:, 1:]
    cls = (sd["cls_token"] + sd["pos_embed"][:, :1]).expand(N, -1, -1)
    x = torch.cat([cls, x], dim=1)
    T = x.shape[1]
    for i in range(cfg["depth"]):
        b = lambda n: sd[f"blocks.{i}.{n}"]  # noqa: E731
        h = F.layer_norm(x, (D,), b("norm1.weight"), b("norm1.bias"), 1e-6)
        qkv = F.linear(h, b("attn.qkv.weight"), b("attn.qkv.bias"))
        qkv = qkv.reshape(N, T, 3, H, D // H).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = ((q @ k.transpose(-2, -1)) * (D // H) ** -0.5).softmax(dim=-1)
        o = (a @ v).transpose(1, 2).reshape(N, T, D)
        x = x + F.linear(o, b("attn.proj.weight"), b("attn.proj.bias"))
        h = F.layer_norm(x, (D,), b("norm2.weight"), b("norm2.bias"), 1e-6)
        h = F.gelu(F.linear(h, b("mlp.fc1.weight"), b("mlp.fc1.bias")))
        x = x + F.linear(h, b("mlp.fc2.weight"), b("mlp.fc2.bias"))
    normed = F.layer_norm(x, (D,), sd["norm.weight"], sd["norm.bias"], 1e-6)
    return x, normed


def ref_pool(sd, cfg, X, pool, gpool=None):
    pre, normed = ref_tokens(sd, cfg, X)
    if gpool is not None:  # fc_norm of the mean patch token (models_vit global_pool)
        D = cfg["embed_dim"]
        return F.layer_norm(pre[:, 1:].mean(1), (D,), gpool["fc_norm.weight"].double(),
                            gpool["fc_norm.bias"].double(), 1e-6).numpy()
    if pool == "cls":
        return normed[:, 0].numpy()
    if pool == "mean":
        return normed[:, 1:].mean(1).numpy()
    return normed.numpy()


def hf_last_hidden(sd, cfg, X):
    """HF ViTMAEModel, mask_ratio 0, noise = arange (ids_shuffle = identity)."""
    c = dict(cfg, mask_ratio=0.0)
    model = mp.hf_model(c, sd).vit
    N, L = X.shape[0], mp.num_patches(cfg)
    noise = torch.arange(L, dtype=torch.float32).repeat(N, 1)
    with torch.no_grad():
        return model(pixel_values=torch.as_tensor(X), noise=noise).last_hidden_state.numpy()


# --------------------------------------------------------------------------- files

def write_files(d, cfg, sd, seed):
    enc_keys = [k for k in sd if not (k.startswith("decoder") or k == "mask_token")]
    files = {}
    files["pretrain"] = os.path.join(d, "pretrain.safetensors")
    mp.write_official(files["pretrain"], sd, metadata={"format": "mae-c", "config": mp.config_json(cfg)})
    files["pretrain_nometa"] = os.path.join(d, "pretrain_nometa.safetensors")
    mp.write_official(files["pretrain_nometa"], sd)
    files["encoder"] = os.path.join(d, "encoder.safetensors")
    mp.write_official(files["encoder"], {k: sd[k] for k in enc_keys})
    g = torch.Generator().manual_seed(seed + 7)
    D = cfg["embed_dim"]
    gp = {k: sd[k] for k in enc_keys if not k.startswith("norm.")}
    gp["fc_norm.weight"] = 1.0 + 0.2 * torch.randn(D, generator=g)
    gp["fc_norm.bias"] = 0.1 * torch.randn(D, generator=g)
    gp["head.weight"] = 0.01 * torch.randn(5, D, generator=g)
    gp["head.bias"] = torch.zeros(5)
    files["gpool"] = os.path.join(d, "gpool.safetensors")
    mp.write_official(files["gpool"], gp)
    return files, gp


def load_out(ck, tag, path, shape):
    try:
        a = np.load(path)
    except Exception as e:
        ck.ok(False, f"{tag}: read {path}: {e}")
        return None
    ck.ok(a.dtype == np.float32 and a.shape == shape, f"{tag}: {os.path.basename(path)} float32 "
          f"{a.shape} (expected {shape})")
    return a if a.shape == shape else None


def compare(ck, tag, got, ref):
    e = mp.rel_err(got, ref)
    ck.ok(e <= TOL, f"{tag}: rel err {e:.2e} <= {TOL}")


# --------------------------------------------------------------------------- 1. --input

def run_input(mae, workdir, name, cfg, seed, ck):
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    sd = mp.random_official_weights(cfg, seed)
    files, gp = write_files(d, cfg, sd, seed)
    N, L, D = cfg["N"], mp.num_patches(cfg), cfg["embed_dim"]
    gen = torch.Generator().manual_seed(seed + 1)
    X = torch.randn(N, cfg["in_chans"], cfg["img_size"], cfg["img_size"], generator=gen)
    x_path = os.path.join(d, "x.npy")
    mp.write_npy(x_path, X.numpy())

    # the reference itself against HF ViTMAEModel (mask_ratio 0, identity shuffle)
    _, normed = ref_tokens(sd, cfg, X)
    e = mp.rel_err(hf_last_hidden(sd, cfg, X), normed.numpy())
    ck.ok(e <= TOL, f"[{name}] reference tokens vs HF ViTMAEModel last_hidden_state: rel {e:.2e}")

    heads = ["--num_heads", cfg["num_heads"]]
    r, _ = run_mae(mae, ["--checkpoint", files["encoder"], "--input", x_path, "--output",
                         os.path.join(d, "noheads.npy")])
    ck.ok(0 < r.returncode < 128 and not crashed(r) and "--num_heads" in r.stderr
          and "encoder.safetensors" in r.stderr and not os.path.exists(os.path.join(d, "noheads.npy")),
          f"[{name}] encoder-only file without --num_heads: exit {r.returncode}: "
          f"{r.stderr.strip()[:150]}")

    runs = [("pretrain", []), ("pretrain_nometa", heads), ("encoder", heads)]
    for fname, extra in runs:
        for pool in ("cls", "mean", "all"):
            out = os.path.join(d, f"{fname}_{pool}.npy")
            r, cmd = run_mae(mae, ["--checkpoint", files[fname], "--input", x_path, "--output",
                                   out, "--pool", pool, "--threads", 2] + extra)
            t = f"[{name} {fname} --pool {pool} N={N}]"
            if not ck.ok(r.returncode == 0 and not crashed(r), f"{t} exit {r.returncode}"):
                print(cmd + "\n" + r.stdout[-800:] + r.stderr[-800:])
                continue
            ck.ok(r.stderr == "", f"{t} nothing on stderr (not a tty): {r.stderr[:100]!r}")
            ck.ok("img/s" in r.stdout, f"{t} throughput line: {r.stdout.strip()[:120]}")
            ck.ok(not os.path.exists(out[:-4] + ".txt"), f"{t} no paths file for --input")
            shape = (N, 1 + L, D) if pool == "all" else (N, D)
            got = load_out(ck, t, out, shape)
            if got is not None:
                compare(ck, t, got, ref_pool(sd, cfg, X, pool))

    # smaller batches (many batches, a last one of N % 7)
    out = os.path.join(d, "bs7.npy")
    r, _ = run_mae(mae, ["--checkpoint", files["pretrain"], "--input", x_path, "--output", out,
                         "--pool", "all", "--batch_size", 7, "--threads", 2])
    t = f"[{name} --batch_size 7 --pool all]"
    if ck.ok(r.returncode == 0 and not crashed(r), f"{t} exit {r.returncode}"):
        got = load_out(ck, t, out, (N, 1 + L, D))
        if got is not None:
            compare(ck, t, got, ref_pool(sd, cfg, X, "all"))

    # global-pool classifier: mean via fc_norm; cls refused
    out = os.path.join(d, "gpool_mean.npy")
    r, _ = run_mae(mae, ["--checkpoint", files["gpool"], "--input", x_path, "--output", out,
                         "--pool", "mean", "--threads", 2] + heads)
    t = f"[{name} global-pool classifier --pool mean (fc_norm)]"
    if ck.ok(r.returncode == 0 and not crashed(r), f"{t} exit {r.returncode}: {r.stderr[:200]}"):
        got = load_out(ck, t, out, (N, D))
        if got is not None:
            compare(ck, t, got, ref_pool(sd, cfg, X, "mean", gpool=gp))
    out = os.path.join(d, "gpool_cls.npy")
    r, _ = run_mae(mae, ["--checkpoint", files["gpool"], "--input", x_path, "--output", out,
                         "--pool", "cls"] + heads)
    ck.ok(0 < r.returncode < 128 and not crashed(r) and "--pool" in r.stderr
          and "gpool.safetensors" in r.stderr and "fc_norm" in r.stderr
          and not os.path.exists(out),
          f"[{name}] global-pool classifier --pool cls refused: exit {r.returncode}: "
          f"{r.stderr.strip()[:160]}")
    return sd, files


# --------------------------------------------------------------------------- 2. photos

def make_photos(d):
    from PIL import Image
    from skimage import data
    os.makedirs(d, exist_ok=True)
    src = [("astronaut", data.astronaut(), "png", None), ("chelsea", data.chelsea(), "jpg", None),
           ("coffee", data.coffee(), "jpg", (150, 100)), ("camera", data.camera(), "png", (90, 77)),
           ("rocket", data.rocket(), "png", (61, 40))]
    names = []
    for i, (nm, arr, ext, size) in enumerate(src):
        im = Image.fromarray(arr)
        if size:
            im = im.resize(size, Image.BILINEAR)
        fn = f"{i:02d}_{nm}.{ext}"
        p = os.path.join(d, fn)
        if ext == "jpg":
            im.save(p, quality=90)
        else:
            im.save(p)
        names.append(p)
    return sorted(names)


def tv_preprocess(paths, cfg, crop_pct=0.875):
    from PIL import Image
    import torchvision.transforms as T
    C, size = cfg["in_chans"], cfg["img_size"]
    mean, std = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]) if C == 3 else ([0.449], [0.226])
    tf = T.Compose([T.Resize(int(size / crop_pct), interpolation=T.InterpolationMode.BICUBIC),
                    T.CenterCrop(size), T.ToTensor(), T.Normalize(mean, std)])
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(tf(im.convert("RGB" if C == 3 else "L")))
    return torch.stack(out)


def run_photos(mae, workdir, name, cfg, sd, files, ck):
    d = os.path.join(workdir, name + "_photos")
    paths = make_photos(os.path.join(workdir, "photos"))
    heads = ["--num_heads", cfg["num_heads"]]
    D = cfg["embed_dim"]
    X = tv_preprocess(paths, cfg)
    os.makedirs(d, exist_ok=True)

    # the folder (sorted names), batch 4 so the last batch is smaller
    for pool in ("cls", "mean"):
        out = os.path.join(d, f"folder_{pool}.npy")
        r, cmd = run_mae(mae, ["--checkpoint", files["pretrain"], "--data_path",
                               os.path.join(workdir, "photos"), "--output", out, "--pool", pool,
                               "--batch_size", 4, "--threads", 2, "--num_workers", 2])
        t = f"[{name} photos folder --pool {pool}]"
        if not ck.ok(r.returncode == 0 and not crashed(r), f"{t} exit {r.returncode}"):
            print(cmd + "\n" + r.stdout[-800:] + r.stderr[-800:])
            continue
        ck.ok(r.stderr == "", f"{t} nothing on stderr: {r.stderr[:100]!r}")
        with open(out[:-4] + ".txt") as f:
            listed = f.read().splitlines()
        ck.ok(listed == paths, f"{t} {os.path.basename(out[:-4])}.txt lists the {len(paths)} "
                               "images in sorted order")
        got = load_out(ck, t, out, (len(paths), D))
        if got is not None:
            compare(ck, t + " vs torchvision eval transform", got, ref_pool(sd, cfg, X, pool))

    # a list in another order (and relative paths), paths file given explicitly
    order = [3, 0, 4, 2, 1][:len(paths)]
    lst = os.path.join(workdir, "photos", "list.txt")
    with open(lst, "w") as f:
        f.write("# reversed-ish order\n")
        for i in order:
            f.write(os.path.basename(paths[i]) + "\n")
    out = os.path.join(d, "list_all.npy")
    pth = os.path.join(d, "list_paths.txt")
    r, cmd = run_mae(mae, ["--checkpoint", files["encoder"], "--list", lst, "--output", out,
                           "--paths_out", pth, "--pool", "all", "--threads", 2] + heads)
    t = f"[{name} photos --list (order {order}) --pool all]"
    if ck.ok(r.returncode == 0 and not crashed(r), f"{t} exit {r.returncode}: {r.stderr[:200]}"):
        with open(pth) as f:
            listed = f.read().splitlines()
        ck.ok(listed == [paths[i] for i in order], f"{t} paths file in the list's order")
        L = mp.num_patches(cfg)
        got = load_out(ck, t, out, (len(order), 1 + L, D))
        if got is not None:
            compare(ck, t, got, ref_pool(sd, cfg, X[order], "all"))

    # --crop_pct 1.0: Resize(size) + CenterCrop(size)
    out = os.path.join(d, "crop1.npy")
    r, _ = run_mae(mae, ["--checkpoint", files["pretrain"], "--data_path",
                         os.path.join(workdir, "photos"), "--output", out, "--crop_pct", 1.0,
                         "--threads", 2])
    t = f"[{name} photos --crop_pct 1.0]"
    if ck.ok(r.returncode == 0 and not crashed(r), f"{t} exit {r.returncode}: {r.stderr[:200]}"):
        got = load_out(ck, t, out, (len(paths), D))
        if got is not None:
            compare(ck, t, got, ref_pool(sd, cfg, tv_preprocess(paths, cfg, 1.0), "cls"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mae", required=True, help="path of the mae executable")
    ap.add_argument("--workdir", required=True, help="scratch directory")
    ap.add_argument("--seed", type=int, default=2468)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    os.makedirs(args.workdir, exist_ok=True)
    ck = Checks()
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        sd, files = run_input(args.mae, args.workdir, name, cfg, args.seed + 100 * i, ck)
        run_photos(args.mae, args.workdir, name, cfg, sd, files, ck)
    print(f"---- test_embed: {ck.passed} checks passed, {ck.failed} failed")
    return 1 if ck.failed else 0


if __name__ == "__main__":
    sys.exit(main())
