#!/usr/bin/env python3
"""`mae visualize` against an independent Python rendering of the official demo
(facebookresearch/mae demo/mae_visualize.ipynb).

A random HF transformers ViTMAEForPreTraining (float32, seeded weights, see mae_parity.py) is
written as a safetensors checkpoint with official names and our config metadata. Real photos
(skimage astronaut / chelsea / coffee / camera) are saved as PNG and JPEG at odd sizes. For
each run `mae visualize --noise NOISE` must give, panel by panel, what the demo computes:

    img = Image.open(f).convert(mode).resize((S, S))        # PIL default: bicubic
    x = (np.array(img) / 255. - mean) / std                  # ImageNet constants
    y = unpatchify(model(x, noise).logits)                   # HF's forward, same noise
    panels: x, x * (1 - mask), y, x * (1 - mask) + y * mask
    shown as torch.clip((v * std + mean) * 255, 0, 255).int()

compared with at most 1 grey level of difference (we round to nearest, the demo truncates;
float rounding). Also: panel 1 is exactly PIL's resized bytes, the visible pixels of panel 4
equal panel 1 exactly, every KxK block of a --scale K panel is one colour, the caption bands
above the panels are not blank, and the panel-3 caption changes with --unnorm.

norm_pix_loss checkpoints: --unnorm target (the default there) un-normalises each predicted
patch with its true mean and unbiased std (torch, as the loss); --unnorm visible with the
inverse-distance-squared weighted average of the visible patches' means and stds, computed
here independently in numpy. Also: the seeded path (no --noise) removes L - len_keep patches
per image; --list with a comment and relative paths gives the same rows as the paths given as
arguments. Exit status 1 on any failure.
"""
import argparse
import os
import re
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mae_parity as mp  # noqa: E402
from clitest import Checks, crashed, run  # noqa: E402

MEAN3 = np.array([0.485, 0.456, 0.406])
STD3 = np.array([0.229, 0.224, 0.225])
MEAN1 = np.array([0.449])
STD1 = np.array([0.226])

CONFIGS = {
    # 3 channels 32x32 patch 4: L = 64, P = 48; default scale 4 (panels of 128 px)
    "c3": dict(img_size=32, patch_size=4, in_chans=3, embed_dim=48, depth=2, num_heads=3,
               decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, mlp_ratio=4.0,
               mask_ratio=0.75, norm_pix_loss=0),
    "c3np": dict(img_size=32, patch_size=4, in_chans=3, embed_dim=48, depth=2, num_heads=3,
                 decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, mlp_ratio=4.0,
                 mask_ratio=0.75, norm_pix_loss=1),
    # 1 channel 28x28 patch 7 (L = 16), mask ratio 0.5 in the metadata
    "c1": dict(img_size=28, patch_size=7, in_chans=1, embed_dim=32, depth=1, num_heads=2,
               decoder_embed_dim=24, decoder_depth=1, decoder_num_heads=2, mlp_ratio=2.0,
               mask_ratio=0.5, norm_pix_loss=0),
}


def run_mae(mae, args):
    return run(mae, "visualize", args, timeout=600)


def make_photos(d):
    """Real photos at odd sizes, as PNG and JPEG; returns the paths."""
    import skimage.data as sd
    os.makedirs(d, exist_ok=True)
    out = []
    a = Image.fromarray(sd.astronaut()).crop((37, 11, 37 + 301, 11 + 257))
    out.append(os.path.join(d, "astronaut.png"))
    a.save(out[-1])
    c = Image.fromarray(sd.chelsea())  # 451 x 300
    out.append(os.path.join(d, "chelsea.jpg"))
    c.save(out[-1], quality=90)
    f = Image.fromarray(sd.coffee()).resize((173, 119), Image.BILINEAR)
    out.append(os.path.join(d, "coffee small.png"))  # a space in the name
    f.save(out[-1])
    g = Image.fromarray(sd.camera()).crop((0, 0, 211, 330))  # grey, taller than wide
    out.append(os.path.join(d, "camera.png"))
    g.save(out[-1])
    return out


def load_demo(path, S, C):
    """The demo's image: PIL resize with the default filter, / 255, normalised (float64)."""
    img = Image.open(path).convert("RGB" if C == 3 else "L").resize((S, S))
    u8 = np.array(img).reshape(S, S, C)
    mean, std = (MEAN3, STD3) if C == 3 else (MEAN1, STD1)
    return u8, (u8 / 255.0 - mean) / std


def patchify(x, p):  # x (N,C,H,W) -> (N, L, p*p*C), official order
    N, C, H, W = x.shape
    h = H // p
    x = x.reshape(N, C, h, p, h, p)
    return np.einsum("nchpwq->nhwpqc", x).reshape(N, h * h, p * p * C)


def unpatchify(y, p, C):  # (N, L, p*p*C) -> (N, H, W, C)
    N, L, _ = y.shape
    h = int(round(L ** 0.5))
    y = y.reshape(N, h, h, p, p, C)
    return np.einsum("nhwpqc->nhpwqc", y).reshape(N, h * p, h * p, C)


def visible_stats(t, mask, g):
    """numpy, per image: true per-patch mean / sqrt(unbiased var + 1e-6) of the target patches
    t (L, P); each removed patch gets the inverse-distance-squared weighted average over the
    visible patches of those means and stds."""
    mean = t.mean(-1)
    std = np.sqrt(t.var(-1, ddof=1) + 1e-6)
    rows, cols = np.divmod(np.arange(len(mean)), g)
    vis = np.flatnonzero(mask == 0)
    m2, s2 = mean.copy(), std.copy()
    for r in np.flatnonzero(mask != 0):
        w = 1.0 / ((rows[r] - rows[vis]) ** 2 + (cols[r] - cols[vis]) ** 2)
        m2[r] = (w * mean[vis]).sum() / w.sum()
        s2[r] = (w * std[vis]).sum() / w.sum()
    return m2, s2


def expected(cfg, weights, paths, noise, unnorm):
    """The demo's four panels (N, S, S, C) as .int() of the clipped values, and PIL's bytes."""
    S, C, p = cfg["img_size"], cfg["in_chans"], cfg["patch_size"]
    u8s, xs = zip(*(load_demo(f, S, C) for f in paths))
    x = np.stack(xs)  # (N, S, S, C) float64
    X = torch.tensor(np.einsum("nhwc->nchw", x)).float()
    model = mp.hf_model(cfg, weights)
    with torch.no_grad():
        out = model(pixel_values=X, noise=torch.from_numpy(noise))
    pred = out.logits.numpy().astype(np.float64)
    mask = out.mask.numpy()
    tgt = patchify(X.numpy().astype(np.float64), p)
    if unnorm == "target":  # the loss's statistics (torch, float32, unbiased var)
        T = torch.from_numpy(patchify(X.numpy(), p))
        m = T.mean(dim=-1, keepdim=True).numpy()
        v = T.var(dim=-1, keepdim=True).numpy()
        pred = pred * np.sqrt(v + 1e-6) + m
    elif unnorm == "visible":
        g = S // p
        for n in range(len(paths)):
            m, s = visible_stats(tgt[n], mask[n], g)
            pred[n] = pred[n] * s[:, None] + m[:, None]
    y = unpatchify(pred, p, C)
    mk = unpatchify(np.repeat(mask[:, :, None], p * p * C, axis=2), p, C)
    mean, std = (MEAN3, STD3) if C == 3 else (MEAN1, STD1)

    def show(v):
        return np.clip((v * std + mean) * 255, 0, 255).astype(np.int64)  # .int() truncates

    panels = [show(x), show(x * (1 - mk)), show(y), show(x * (1 - mk) + y * mk)]
    return panels, np.stack(u8s), mask


def parse_layout(stdout):
    m = re.search(r"(\d+) px \(scale (\d+)\): panel k of row r at x = (\d+) \+ (\d+)\*k, "
                  r"y = (\d+) \+ (\d+)\*r", stdout)
    return None if m is None else tuple(int(v) for v in m.groups())


def read_panels(png, lay, N, S):
    """Our panels (N, 4, S, S, 3) sampled at the block corners, whether every KxK block is one
    colour, and the caption bands (N, 4, band_h, panel, 3)."""
    pw, K, x0, dx, y0, dy = lay
    a = np.array(Image.open(png).convert("RGB")).astype(np.int64)
    out = np.zeros((N, 4, S, S, 3), np.int64)
    uniform = True
    bands = []
    for r in range(N):
        row = []
        for k in range(4):
            X, Y = x0 + k * dx, y0 + r * dy
            blk = a[Y:Y + pw, X:X + pw]
            out[r, k] = blk[::K, ::K]
            uniform &= np.array_equal(np.repeat(np.repeat(out[r, k], K, 0), K, 1), blk)
            row.append(a[Y - (dy - pw):Y, X:X + pw])  # caption band and the margin above it
        bands.append(row)
    return out, uniform, bands


def compare(ck, tag, png, stdout, ref, C, S, K_want=None):
    panels, u8, mask = ref
    N = len(u8)
    lay = parse_layout(stdout)
    if not ck.ok(lay is not None, f"{tag}: layout line printed"):
        print(stdout)
        return None
    pw, K = lay[0], lay[1]
    if K_want is not None:
        ck.ok(K == K_want and pw == S * K, f"{tag}: scale {K} (want {K_want}), panel {pw} px")
    ours, uniform, bands = read_panels(png, lay, N, S)
    ck.ok(uniform, f"{tag}: every {K}x{K} block of the panels is one colour")
    names = ["original", "masked", "reconstruction", "reconstruction + visible"]
    for k in range(4):
        want = panels[k]
        if C == 1:
            want = np.repeat(want, 3, axis=3)
        d = np.abs(ours[:, k] - want)
        ck.ok(d.max() <= 1, f"{tag}: panel {k + 1} ({names[k]}) within 1 grey level of the demo "
                            f"(max diff {d.max()}, {(d > 0).mean() * 100:.2f}% of values differ)")
    u8c = np.repeat(u8, 3, axis=3) if C == 1 else u8
    ck.ok(np.array_equal(ours[:, 0], u8c), f"{tag}: panel 1 is exactly PIL's resized bytes")
    p = S // int(round(mask.shape[1] ** 0.5))
    vis = unpatchify(np.repeat((1 - mask)[:, :, None], p * p * C, axis=2), p, C)[..., :1] > 0.5
    vis = np.broadcast_to(vis, ours[:, 0].shape)
    ck.ok(np.array_equal(ours[:, 3][vis], ours[:, 0][vis]) and
          np.array_equal(ours[:, 1][vis], ours[:, 0][vis]),
          f"{tag}: visible pixels of panels 2 and 4 equal panel 1 exactly ({int(vis.sum() // 3)} px)")
    blank = [(r, k) for r in range(N) for k in range(4) if bands[r][k].size == 0 or
             (bands[r][k] == 255).all()]
    ck.ok(not blank, f"{tag}: every panel has a caption above it (blank: {blank})")
    return bands


def run_config(mae, workdir, name, cfg, seed, photos, ck, ref_bands):
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    S, C, L = cfg["img_size"], cfg["in_chans"], mp.num_patches(cfg)
    weights = mp.random_official_weights(cfg, seed)
    w_path = os.path.join(d, "weights.safetensors")
    mp.write_official(w_path, weights, metadata={"format": "mae", "format_version": "1",
                                                 "config": mp.config_json(cfg)})
    paths = photos if C == 3 else photos[2:]
    N = len(paths)
    gen = torch.Generator().manual_seed(seed + 1)
    noise = torch.rand(N, L, generator=gen).numpy()
    n_path = os.path.join(d, "noise.npy")
    mp.write_npy(n_path, noise)
    base = ["--checkpoint", w_path, "--threads", 2, "--noise", n_path]
    modes = [None] if not cfg["norm_pix_loss"] else [None, "visible", "none"]
    for unnorm in modes:
        eff = unnorm or ("target" if cfg["norm_pix_loss"] else "none")
        png = os.path.join(d, f"grid_{eff}.png")
        flags = [] if unnorm is None else ["--unnorm", unnorm]
        r, cmd = run_mae(mae, base + ["--output", png] + flags + paths)
        tag = f"[{name} unnorm={eff}{'' if unnorm else ' (default)'}]"
        if not ck.ok(r.returncode == 0 and not crashed(r) and os.path.isfile(png),
                     f"{tag} exit {r.returncode}"):
            print(cmd + "\n" + r.stdout[-2000:] + r.stderr[-2000:])
            continue
        ref = expected(cfg, weights, paths, noise, eff)
        bands = compare(ck, tag, png, r.stdout, ref, C, S, K_want=(128 + S - 1) // S)
        if bands is not None:
            ref_bands[(name, eff)] = bands
    if name == "c3np" and ("c3np", "target") in ref_bands and ("c3np", "visible") in ref_bands:
        t, v = ref_bands[("c3np", "target")], ref_bands[("c3np", "visible")]
        ck.ok(not np.array_equal(t[0][2], v[0][2]) and np.array_equal(t[0][0], v[0][0]),
              f"[{name}] the panel-3 caption differs between target and visible, panel 1's not")

    if name == "c3":
        # --scale and mask ratio override: the caption says the ratio, the pixels agree
        png = os.path.join(d, "grid_scale2.png")
        n1 = os.path.join(d, "noise1.npy")
        mp.write_npy(n1, noise[1:2])
        r, cmd = run_mae(mae, ["--checkpoint", w_path, "--threads", 2, "--noise", n1,
                               "--output", png, "--scale", 2, paths[1]])
        if ck.ok(r.returncode == 0 and not crashed(r), f"[{name} --scale 2] exit {r.returncode}"):
            compare(ck, f"[{name} --scale 2]", png, r.stdout,
                    expected(cfg, weights, paths[1:2], noise[1:2], "none"), C, S, K_want=2)
        # --list (the list format of --data_path: a comment, a blank line, paths relative to
        # the list's folder, labels ignored; a path with a space needs one) after a positional
        lst = os.path.join(os.path.dirname(paths[0]), "list.txt")
        with open(lst, "w") as f:
            f.write("# photos\n\n" + "".join(os.path.basename(q) + f" {i}\n"
                                              for i, q in enumerate(paths[1:])))
        png = os.path.join(d, "sub", "dir", "grid_list.png")  # missing folders are created
        r, cmd = run_mae(mae, base + ["--output", png, "--list", lst, paths[0]])
        if ck.ok(r.returncode == 0 and not crashed(r) and os.path.isfile(png),
                 f"[{name} --list] exit {r.returncode}: {r.stderr.strip()[:200]}"):
            a = np.array(Image.open(png))
            b = np.array(Image.open(os.path.join(d, "grid_none.png")))
            ck.ok(np.array_equal(a, b), f"[{name} --list] same picture as the paths given as arguments")
        # seeded noise: the mask removes L - len_keep patches per image; same seed, same picture
        outs = []
        for i in range(2):
            png = os.path.join(d, f"grid_seed{i}.png")
            r, cmd = run_mae(mae, ["--checkpoint", w_path, "--threads", 2, "--seed", 3,
                                   "--mask_ratio", 0.6, "--output", png] + paths)
            if ck.ok(r.returncode == 0 and not crashed(r), f"[{name} --seed 3 #{i}] exit {r.returncode}"):
                outs.append(np.array(Image.open(png)))
        if len(outs) == 2:
            ck.ok(np.array_equal(outs[0], outs[1]), f"[{name} --seed] the same seed gives the same picture")
            lay = parse_layout(r.stdout)
            ours, _, _ = read_panels(os.path.join(d, "grid_seed1.png"), lay, N, S)
            p, g = cfg["patch_size"], S // cfg["patch_size"]
            fill = np.round(MEAN3 * 255).astype(np.int64)
            want = L - int(L * (1 - 0.6))
            counts = []
            for n in range(N):
                cnt = 0
                for l in range(L):
                    blk = ours[n, 1, (l // g) * p:(l // g + 1) * p, (l % g) * p:(l % g + 1) * p]
                    cnt += int((blk == fill).all())
                counts.append(cnt)
            ck.ok(all(c == want for c in counts),
                  f"[{name} --seed --mask_ratio 0.6] removed patches per image {counts}, want {want}")
            _, _, b60 = read_panels(os.path.join(d, "grid_seed1.png"), lay, N, S)
            b75 = ref_bands.get(("c3", "none"))
            if b75 is not None:
                ck.ok(not np.array_equal(b60[0][1], b75[0][1]) and np.array_equal(b60[0][0], b75[0][0]),
                      f"[{name} --mask_ratio 0.6] the panel-2 caption changes with the mask ratio")
            r2, _ = run_mae(mae, ["--checkpoint", w_path, "--threads", 2, "--seed", 4,
                                  "--mask_ratio", 0.6, "--output", os.path.join(d, "grid_seed4.png")]
                            + paths)
            ck.ok(r2.returncode == 0 and not np.array_equal(
                np.array(Image.open(os.path.join(d, "grid_seed4.png"))), outs[0]),
                f"[{name} --seed 4] another seed gives another mask")


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
    photos = make_photos(os.path.join(args.workdir, "photos"))
    bands = {}
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        try:
            run_config(args.mae, args.workdir, name, cfg, args.seed + 10 * i, photos, ck, bands)
        except Exception as e:  # unexpected failure of the harness or an unreadable output
            import traceback
            traceback.print_exc()
            ck.ok(False, f"[{name}] {type(e).__name__}: {e}")
    print(f"---- test_visualize: {ck.passed} checks passed, {ck.failed} failed")
    return 1 if ck.failed else 0


if __name__ == "__main__":
    sys.exit(main())
