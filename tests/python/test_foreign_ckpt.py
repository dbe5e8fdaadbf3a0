#!/usr/bin/env python3
"""Checkpoints of other tools in, and ours out (issue 6).

One random MAE in official shapes (img 16, patch 4, 3 channels, dim 48, depth 2, 3 heads;
decoder 32/1/2) is written in every foreign format with PyTorch/transformers/timm here:

  * HF transformers 4.x folder: save_pretrained as model.safetensors and as pytorch_model.bin,
    with layer_norm_eps 1e-12 (HF's default, so the eps must come from config.json);
  * HF transformers 5.x names (vit.layers.i.attention.q_proj, mlp.fc1, ...), written from the
    4.x state dict with the renaming of transformers 5.24's modeling_vit / modular_vit_mae;
  * official training-run .pth (torch.save of {'model', 'optimizer', 'epoch', 'scaler', 'args'}),
    fp32 with a non-contiguous tensor, and fp16; an encoder-only .pth (mae_pretrain_vit_*);
  * timm ViT safetensors (encoder only).

`mae reconstruct --noise` on each must equal HF's forward of the same weights (pred, loss: rel
err <= 1e-4; mask, ids_restore exact); `mae embed` on the timm file and the HF folder must equal
timm's forward_features and HF ViTMAEModel without masking (cls, mean, all: rel err <= 1e-4);
`mae visualize` must read the HF folder and the .pth. `mae export` must write what the other tools load
without edits: transformers from_pretrained(folder), timm create_model('local-dir:...'), and a
re-implementation of the official models_mae.MaskedAutoencoderViT built from timm's Block and
PatchEmbed with load_state_dict(strict=True); their outputs must match. Bad files (truncated
zip, a pickle naming os.system, wrong shapes, an unknown dtype, an encoder-only file used for
reconstruction, an HF folder without config.json) must give a clear error, never a crash, and
the forbidden pickle must not run. Exit status 1 on any failure.
"""
import argparse
import collections
import json
import os
import pickle
import re
import shutil
import sys
import zipfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mae_parity as mp  # noqa: E402
from clitest import Checks, crashed, run  # noqa: E402

TOL = 1e-4
CFG = dict(img_size=16, patch_size=4, in_chans=3, embed_dim=48, depth=2, num_heads=3,
           decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, mlp_ratio=4.0,
           mask_ratio=0.75, norm_pix_loss=0)
N = 5
HEADS = ["--num_heads", "3", "--decoder_num_heads", "2"]


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def hf_model(weights, eps):
    cfgo = mp.hf_config(CFG)
    cfgo.layer_norm_eps = eps
    from transformers import ViTMAEForPreTraining
    m = ViTMAEForPreTraining(cfgo).float().eval()
    m.load_state_dict(mp.official_to_hf(weights, CFG), strict=True)
    return m


def reference(model, X, noise):
    with torch.no_grad():
        o = model(pixel_values=torch.from_numpy(X), noise=torch.from_numpy(noise))
    return dict(pred=o.logits.numpy(), loss=float(o.loss), mask=o.mask.numpy(),
                ids=o.ids_restore.numpy())


# 5.x block names (transformers 5.24 modeling_vit.ViTLayer / ViTAttention / ViTMLP)
V5 = [("attention.attention.query.", "attention.q_proj."),
      ("attention.attention.key.", "attention.k_proj."),
      ("attention.attention.value.", "attention.v_proj."),
      ("attention.output.dense.", "attention.o_proj."),
      ("intermediate.dense.", "mlp.fc1."), ("output.dense.", "mlp.fc2.")]


def to_v5(sd4):
    out = {}
    for k, v in sd4.items():
        k5 = re.sub(r"^vit\.encoder\.layer\.", "vit.layers.", k)
        for a, b in V5:
            k5 = re.sub(r"(layers\.\d+\.)" + re.escape(a), r"\1" + b, k5)
        out[k5] = v
    return out


class Mae:
    def __init__(self, exe, work, checks):
        self.exe, self.work, self.c = exe, work, checks

    def run(self, cmd, args):
        return run(self.exe, cmd, args, timeout=600)[0]

    def recon(self, ckpt, X, noise, tag, extra=()):
        d = os.path.join(self.work, "out_" + tag)
        shutil.rmtree(d, ignore_errors=True)
        xin, nin = os.path.join(self.work, "x.npy"), os.path.join(self.work, "noise.npy")
        np.save(xin, X)
        np.save(nin, noise)
        r = self.run("reconstruct", ["--checkpoint", ckpt, "--input", xin, "--noise", nin,
                                     "--out", d] + list(extra))
        if not self.c.ok(r.returncode == 0, f"{tag}: reconstruct runs ({r.stderr.strip()[:300]})"):
            return None
        loss = float(re.search(r"loss (\S+)", r.stdout).group(1))
        return dict(pred=np.load(os.path.join(d, "pred.npy")), loss=loss,
                    mask=np.load(os.path.join(d, "mask.npy")),
                    ids=np.load(os.path.join(d, "ids_restore.npy")))

    def compare(self, got, ref, tag):
        if got is None:
            return
        e = rel(got["pred"], ref["pred"])
        self.c.ok(e <= TOL, f"{tag}: pred rel err {e:.2e} <= {TOL}")
        e = abs(got["loss"] - ref["loss"]) / abs(ref["loss"])
        self.c.ok(e <= TOL, f"{tag}: loss {got['loss']:.6f} vs {ref['loss']:.6f}")
        self.c.ok(np.array_equal(got["mask"], ref["mask"]), f"{tag}: mask equal")
        self.c.ok(np.array_equal(got["ids"], ref["ids"]), f"{tag}: ids_restore equal")

    def expect_error(self, cmd, args, pattern, tag):
        r = self.run(cmd, args)
        msg = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
        self.c.ok(r.returncode != 0 and not crashed(r) and re.search(pattern, msg) is not None,
                  f"{tag}: exit {r.returncode}: {msg[:300]}")


# ------------------------------------------------------------------ the official model (timm)

def official_mae_class():
    """models_mae.MaskedAutoencoderViT's structure and forward, built from timm's Block and
    PatchEmbed as the official code is (written here from the paper/official semantics)."""
    from timm.models.vision_transformer import Block, PatchEmbed
    import torch.nn as nn
    from functools import partial

    class OfficialMAE(nn.Module):
        def __init__(self, img_size, patch_size, in_chans, embed_dim, depth, num_heads,
                     decoder_embed_dim, decoder_depth, decoder_num_heads, mlp_ratio,
                     norm_pix_loss=False):
            super().__init__()
            norm = partial(nn.LayerNorm, eps=1e-6)
            self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
            L = self.patch_embed.num_patches
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
            self.pos_embed = nn.Parameter(torch.zeros(1, L + 1, embed_dim), requires_grad=False)
            self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True,
                                               norm_layer=norm) for _ in range(depth)])
            self.norm = norm(embed_dim)
            self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
            self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
            self.decoder_pos_embed = nn.Parameter(torch.zeros(1, L + 1, decoder_embed_dim),
                                                  requires_grad=False)
            self.decoder_blocks = nn.ModuleList([
                Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True,
                      norm_layer=norm) for _ in range(decoder_depth)])
            self.decoder_norm = norm(decoder_embed_dim)
            self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size ** 2 * in_chans)
            self.p, self.norm_pix_loss = patch_size, norm_pix_loss

        def forward(self, imgs, noise, mask_ratio):
            x = self.patch_embed(imgs) + self.pos_embed[:, 1:]
            B, L, D = x.shape
            keep = int(L * (1 - mask_ratio))
            ids_shuffle = torch.argsort(noise, dim=1)
            ids_restore = torch.argsort(ids_shuffle, dim=1)
            x = torch.gather(x, 1, ids_shuffle[:, :keep, None].expand(-1, -1, D))
            mask = torch.ones(B, L)
            mask[:, :keep] = 0
            mask = torch.gather(mask, 1, ids_restore)
            cls = (self.cls_token + self.pos_embed[:, :1]).expand(B, -1, -1)
            x = torch.cat([cls, x], 1)
            for b in self.blocks:
                x = b(x)
            x = self.decoder_embed(self.norm(x))
            Dd = x.shape[2]
            y = torch.cat([x[:, 1:], self.mask_token.expand(B, L - keep, -1)], 1)
            y = torch.gather(y, 1, ids_restore[:, :, None].expand(-1, -1, Dd))
            x = torch.cat([x[:, :1], y], 1) + self.decoder_pos_embed
            for b in self.decoder_blocks:
                x = b(x)
            pred = self.decoder_pred(self.decoder_norm(x))[:, 1:]
            p, C = self.p, imgs.shape[1]
            h = imgs.shape[2] // p
            t = imgs.reshape(B, C, h, p, h, p).permute(0, 2, 4, 3, 5, 1).reshape(B, h * h, -1)
            if self.norm_pix_loss:
                t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6) ** .5
            loss = (((pred - t) ** 2).mean(-1) * mask).sum() / mask.sum()
            return loss, pred, mask

    return OfficialMAE


def write_zip_pickle(path, payload_pkl, storages=()):
    """A torch.save-like zip with the given data.pkl bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", payload_pkl)
        for k, b in storages:
            z.writestr(f"archive/data/{k}", b)
        z.writestr("archive/version", "3\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mae", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    c = Checks()
    mae = Mae(a.mae, a.workdir, c)
    W = lambda *p: os.path.join(a.workdir, *p)  # noqa: E731
    try:
        import timm
        have_timm = True
    except ImportError:
        have_timm = False
        print("SKIP timm parts: timm is not installed (tools/install_deps.sh test installs it)")

    torch.manual_seed(0)
    w = mp.random_official_weights(CFG, 11)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((N, 3, 16, 16)).astype(np.float32)
    noise = rng.random((N, 16)).astype(np.float32)

    # ---- HF 4.x folder (eps 1e-12 from config.json), safetensors and pytorch_model.bin
    m12 = hf_model(w, 1e-12)
    ref12 = reference(m12, X, noise)
    m12.save_pretrained(W("hf4_st"), safe_serialization=True)
    m12.save_pretrained(W("hf4_bin"), safe_serialization=False)
    c.ok(os.path.exists(W("hf4_bin", "pytorch_model.bin")), "HF wrote pytorch_model.bin")
    mae.compare(mae.recon(W("hf4_st"), X, noise, "hf4_st"), ref12, "HF 4.x folder (safetensors)")
    mae.compare(mae.recon(W("hf4_bin"), X, noise, "hf4_bin"), ref12, "HF 4.x folder (.bin)")
    mae.compare(mae.recon(W("hf4_st", "model.safetensors"), X, noise, "hf4_file"), ref12,
                "HF 4.x model.safetensors beside its config.json")

    # ---- HF 5.x names
    from safetensors.torch import save_file, load_file
    os.makedirs(W("hf5"), exist_ok=True)
    sd5 = to_v5({k: v.contiguous() for k, v in m12.state_dict().items()})
    c.ok(any(".q_proj." in k for k in sd5) and any("vit.layers.1.mlp.fc2" in k for k in sd5),
         "5.x names written (vit.layers.i.attention.q_proj, mlp.fc1)")
    save_file(sd5, W("hf5", "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(W("hf4_st", "config.json"), W("hf5", "config.json"))
    mae.compare(mae.recon(W("hf5"), X, noise, "hf5"), ref12, "HF 5.x names")

    # ---- official training-run .pth (eps 1e-6), fp32 with a non-contiguous tensor, and fp16
    m6 = hf_model(w, 1e-6)
    ref6 = reference(m6, X, noise)
    sd = collections.OrderedDict((k, v.clone()) for k, v in w.items())
    sd["blocks.0.mlp.fc1.weight"] = w["blocks.0.mlp.fc1.weight"].t().contiguous().t()
    c.ok(not sd["blocks.0.mlp.fc1.weight"].is_contiguous(), "a non-contiguous tensor is saved")
    params = [torch.nn.Parameter(v.clone()) for k, v in w.items() if k not in mp.FROZEN]
    opt = torch.optim.AdamW(params, lr=1e-3)
    sum((p ** 2).sum() for p in params).backward()
    opt.step()
    run_args = argparse.Namespace(model="mae_vit_custom", norm_pix_loss=False, mask_ratio=0.75,
                                  input_size=16, batch_size=64, blr=1.5e-4, lr=None,
                                  data_path="/data/imagenet", resume="", world_size=1,
                                  dist_on_itp=False, output_dir="./output_dir")
    full = {"model": sd, "optimizer": opt.state_dict(), "epoch": 7, "args": run_args,
            "scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                       "growth_interval": 2000, "_growth_tracker": 3}}
    torch.save(full, W("mae_pretrain_run_full.pth"))
    mae.compare(mae.recon(W("mae_pretrain_run_full.pth"), X, noise, "pth", HEADS), ref6,
                "official training-run .pth (fp32, strided)")
    mae.expect_error("reconstruct", ["--checkpoint", W("mae_pretrain_run_full.pth"), "--input",
                                     W("x.npy"), "--out", W("o")], r"--num_heads",
                     "official .pth of an unknown width without --num_heads")
    sd16 = collections.OrderedDict((k, v.half()) for k, v in w.items())
    torch.save({"model": sd16}, W("half.pth"))
    w16 = {k: v.half().float() for k, v in w.items()}
    mae.compare(mae.recon(W("half.pth"), X, noise, "pth16", HEADS),
                reference(hf_model(w16, 1e-6), X, noise), "official .pth in fp16")
    enc = collections.OrderedDict((k, v) for k, v in w.items()
                                  if not (k.startswith("decoder") or k == "mask_token"))
    torch.save({"model": enc}, W("mae_pretrain_vit_enc.pth"))
    mae.expect_error("reconstruct", ["--checkpoint", W("mae_pretrain_vit_enc.pth"), "--input",
                                     W("x.npy"), "--out", W("o")] + HEADS,
                     r"encoder-only.*_full", "encoder-only .pth used for reconstruction")

    # ---- mae visualize reads the foreign files too (its pictures are checked in test_visualize.py)
    from PIL import Image
    Image.fromarray((rng.random((40, 50, 3)) * 255).astype(np.uint8)).save(W("img.png"))
    for src, extra, tag in ((W("hf4_bin"), [], "HF folder (.bin)"),
                            (W("mae_pretrain_run_full.pth"), HEADS, "official .pth")):
        png = W("vis_" + re.sub(r"\W", "_", tag) + ".png")
        r = mae.run("visualize", ["--checkpoint", src, "--output", png, W("img.png")] + extra)
        c.ok(r.returncode == 0 and os.path.getsize(png) > 100,
             f"visualize from {tag} ({r.stderr.strip()[:200]})")
    mae.expect_error("visualize", ["--checkpoint", W("mae_pretrain_vit_enc.pth"), "--output",
                                   W("vis_enc.png"), W("img.png")] + HEADS, r"decoder.*_full",
                     "visualize with an encoder-only .pth")

    # ---- exports of the imported HF folder
    r = mae.run("export", ["--checkpoint", W("hf4_bin"), "--format", "hf", "--output", W("ex_hf")])
    if c.ok(r.returncode == 0, f"export --format hf ({r.stderr.strip()[:200]})"):
        from transformers import ViTMAEForPreTraining
        mh = ViTMAEForPreTraining.from_pretrained(W("ex_hf")).eval()
        got = reference(mh, X, noise)
        c.ok(rel(got["pred"], ref12["pred"]) <= TOL and abs(got["loss"] - ref12["loss"]) <= TOL * abs(ref12["loss"]),
             "transformers from_pretrained(export) reproduces the HF model (eps 1e-12 kept)")
        mae.compare(mae.recon(W("ex_hf"), X, noise, "ex_hf"), ref12, "our hf export read back")
        eps = json.load(open(W("ex_hf", "config.json")))["layer_norm_eps"]
        c.ok(abs(eps - 1e-12) < 1e-18, f"layer_norm_eps of the HF source kept: {eps}")
    r = mae.run("export", ["--checkpoint", W("mae_pretrain_run_full.pth"), "--format", "official",
                           "--output", W("ex_off")] + HEADS)
    if c.ok(r.returncode == 0, f"export --format official ({r.stderr.strip()[:200]})") and have_timm:
        cfg = json.load(open(W("ex_off", "config.json")))
        c.ok(cfg["model_class"] == "models_mae.MaskedAutoencoderViT", "official config names the class")
        c.ok(abs(cfg["layer_norm_eps"] - 1e-6) < 1e-12, "official .pth: layer_norm_eps 1e-6")
        model = official_mae_class()(**cfg["model_args"]).eval()
        res = model.load_state_dict(load_file(W("ex_off", "model.safetensors")), strict=True)
        c.ok(not res.missing_keys and not res.unexpected_keys, "official model: strict load")
        with torch.no_grad():
            loss, pred, mask = model(torch.from_numpy(X), torch.from_numpy(noise), 0.75)
        e = rel(pred.numpy(), ref6["pred"])
        c.ok(e <= TOL and abs(float(loss) - ref6["loss"]) <= TOL * ref6["loss"],
             f"official model on the export reproduces HF (pred rel err {e:.2e})")
    if have_timm:
        for src, tag in ((W("mae_pretrain_vit_enc.pth"), "encoder-only .pth"),
                         (W("hf4_st"), "HF folder (pretraining)")):
            d = W("ex_timm_" + re.sub(r"\W", "_", tag))
            r = mae.run("export", ["--checkpoint", src, "--format", "timm", "--output", d] + HEADS)
            if not c.ok(r.returncode == 0, f"export --format timm of {tag} ({r.stderr.strip()[:200]})"):
                continue
            tm = timm.create_model("local-dir:" + d, pretrained=True).eval()
            own = {k: v for k, v in tm.state_dict().items()}
            same = all(torch.equal(own[k], w[k]) for k in own)
            c.ok(set(own) == {k for k in w if not (k.startswith("decoder") or k == "mask_token")}
                 and same, f"timm create_model('local-dir:...') of {tag}: every tensor equal")
        # an official fine-tuned classifier (mae_finetuned_vit_*: fc_norm + head, no norm) out to
        # timm: create_model('local-dir:') builds a global-pool classifier with equal tensors
        g = torch.Generator().manual_seed(5)
        ft = collections.OrderedDict((k, v) for k, v in enc.items() if not k.startswith("norm."))
        ft["fc_norm.weight"] = 1 + 0.1 * torch.randn(48, generator=g)
        ft["fc_norm.bias"] = 0.1 * torch.randn(48, generator=g)
        ft["head.weight"] = 0.1 * torch.randn(7, 48, generator=g)
        ft["head.bias"] = 0.1 * torch.randn(7, generator=g)
        torch.save({"model": ft, "epoch": 99}, W("mae_finetuned_vit_t.pth"))
        r = mae.run("export", ["--checkpoint", W("mae_finetuned_vit_t.pth"), "--format", "timm",
                               "--output", W("ex_timm_cls"), "--num_heads", "3"])
        if c.ok(r.returncode == 0, f"export --format timm of a fine-tuned .pth ({r.stderr.strip()[:200]})"):
            tm = timm.create_model("local-dir:" + W("ex_timm_cls"), pretrained=True).eval()
            own = tm.state_dict()
            c.ok(tm.global_pool == "avg" and tm.num_classes == 7 and set(own) == set(ft)
                 and all(torch.equal(own[k], ft[k]) for k in ft),
                 "timm classifier from the export: avg pool, 7 classes, every tensor equal")
        # timm ViT safetensors in: export it back as official and compare tensors
        tv = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0,
                               img_size=16, patch_size=4, embed_dim=48, depth=2, num_heads=3)
        tv.load_state_dict(enc, strict=True)
        save_file({k: v.contiguous() for k, v in tv.state_dict().items()}, W("timm_vit.safetensors"))
        r = mae.run("export", ["--checkpoint", W("timm_vit.safetensors"), "--format", "official",
                               "--output", W("ex_from_timm")] + HEADS)
        if c.ok(r.returncode == 0, f"timm safetensors imported ({r.stderr.strip()[:200]})"):
            back = load_file(W("ex_from_timm", "model.safetensors"))
            c.ok(set(back) == set(enc) and all(torch.equal(back[k], enc[k]) for k in enc),
                 "timm ViT weights round-trip exactly")
        # mae embed on the timm file and on the HF folder: timm's forward_features (eps 1e-6) and
        # HF ViTMAEModel with no masking (mask_ratio 0, identity noise; eps 1e-12)
        with torch.no_grad():
            ff = tv.forward_features(torch.from_numpy(X)).numpy()
        from transformers import ViTMAEModel
        hv = ViTMAEModel.from_pretrained(W("hf4_st"), mask_ratio=0.0).eval()
        with torch.no_grad():
            hf_all = hv(pixel_values=torch.from_numpy(X),
                        noise=torch.arange(16, dtype=torch.float32).repeat(N, 1)).last_hidden_state.numpy()
        for src, ref, tag, extra in ((W("timm_vit.safetensors"), ff, "timm safetensors", HEADS[:2]),
                                     (W("hf4_st"), hf_all, "HF folder", [])):
            for pool, want in (("cls", ref[:, 0]), ("mean", ref[:, 1:].mean(1)), ("all", ref)):
                out = W(f"emb_{pool}.npy")
                r = mae.run("embed", ["--checkpoint", src, "--input", W("x.npy"), "--output", out,
                                      "--pool", pool] + extra)
                if c.ok(r.returncode == 0, f"embed {tag} --pool {pool} ({r.stderr.strip()[:200]})"):
                    e = rel(np.load(out), want)
                    c.ok(e <= TOL, f"embed {tag} --pool {pool}: rel err {e:.2e} vs the reference")

    # ---- bad files
    raw = open(W("mae_pretrain_run_full.pth"), "rb").read()
    for cut in (len(raw) // 2, len(raw) - 30, 100):
        open(W("trunc.pth"), "wb").write(raw[:cut])
        mae.expect_error("reconstruct", ["--checkpoint", W("trunc.pth"), "--input", W("x.npy"),
                                         "--out", W("o")] + HEADS,
                         r"trunc\.pth.*(truncat|zip|corrupt|end of central|CRC|not a)",
                         f"zip truncated at {cut} of {len(raw)}")
    marker = W("PWNED")
    if os.path.exists(marker):
        os.remove(marker)

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + marker,))
    write_zip_pickle(W("evil.pth"), pickle.dumps({"model": {"x": Evil()}}, protocol=2))
    mae.expect_error("reconstruct", ["--checkpoint", W("evil.pth"), "--input", W("x.npy"),
                                     "--out", W("o")] + HEADS, r"evil\.pth.*(posix|os)\.system",
                     "pickle naming os.system is rejected")
    c.ok(not os.path.exists(marker), "the forbidden pickle did not run")
    bad = collections.OrderedDict(sd)
    bad["decoder_pred.bias"] = torch.zeros(47)
    torch.save({"model": bad}, W("badshape.pth"))
    mae.expect_error("reconstruct", ["--checkpoint", W("badshape.pth"), "--input", W("x.npy"),
                                     "--out", W("o")] + HEADS,
                     r"decoder_pred.*47.*48|decoder_pred.*48.*47", "wrong shape names tensor and shapes")
    cplx = collections.OrderedDict(sd)
    cplx["norm.weight"] = torch.zeros(48, dtype=torch.complex64)
    torch.save({"model": cplx}, W("complex.pth"))
    mae.expect_error("reconstruct", ["--checkpoint", W("complex.pth"), "--input", W("x.npy"),
                                     "--out", W("o")] + HEADS, r"complex\.pth.*(Complex|dtype)",
                     "unknown storage dtype")
    intw = collections.OrderedDict(sd)
    intw["norm.weight"] = torch.zeros(48, dtype=torch.int64)
    torch.save({"model": intw}, W("int.pth"))
    mae.expect_error("reconstruct", ["--checkpoint", W("int.pth"), "--input", W("x.npy"),
                                     "--out", W("o")] + HEADS, r"int\.pth.*norm\.weight.*(dtype|float)",
                     "an integer weight")
    os.makedirs(W("hf_nocfg"), exist_ok=True)
    shutil.copy(W("hf4_st", "model.safetensors"), W("hf_nocfg", "model.safetensors"))
    mae.expect_error("reconstruct", ["--checkpoint", W("hf_nocfg"), "--input", W("x.npy"),
                                     "--out", W("o")], r"hf_nocfg.*config\.json",
                     "HF folder without config.json")
    os.makedirs(W("empty_dir"), exist_ok=True)
    mae.expect_error("export", ["--checkpoint", W("empty_dir"), "--format", "hf", "--output",
                                W("o2")], r"empty_dir.*(directory|folder)", "empty folder")
    mae.expect_error("export", ["--checkpoint", W("hf4_st"), "--format", "onnx", "--output",
                                W("o2")], r"--format", "unknown export format")

    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
