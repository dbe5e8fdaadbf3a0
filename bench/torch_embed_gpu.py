"""GPU peer for `mae bench --mode infer`: ViT-B/16 encoder inference on all 196 patches.

timm's VisionTransformer (embed 768, depth 12, heads 12, qkv bias, LayerNorm eps 1e-6, class
token, no head) run through forward_features: patch embed, +pos, 12 blocks, final norm ->
(B, 197, 768), as mae_forward_encoder. Synthetic input on the GPU, bf16 autocast, inference
mode; eager, then torch.compile. FLOPs per image as `mae bench` counts them (cli_encoder_flops):
2*L*P*D + depth * (24*T*D^2 + 4*T^2*D), T = 1 + L.

usage: PYTHONUNBUFFERED=1 python3 bench/torch_embed_gpu.py [--batch 256] [--steps 20]
       [--no-compile]
Prints one JSON line per run and rewrites $OUT/gpu_embed_peer.json (default /tmp) after each.
"""
import argparse, json, os, time
from functools import partial

import torch, torch.nn as nn


def encoder_flops(img=224, p=16, d=768, depth=12, chans=3):
    L = (img // p) ** 2
    T = 1 + L
    return 2 * L * p * p * chans * d + depth * (24 * T * d * d + 4 * T * T * d)


def run(name, model, B, steps, fl, out):
    x = torch.randn(B, 3, 224, 224, device="cuda")
    t0 = time.time()
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        for _ in range(5):
            y = model(x)
        torch.cuda.synchronize()
        warm = time.time() - t0
        torch.cuda.reset_peak_memory_stats()
        e0, e1 = torch.cuda.Event(True), torch.cuda.Event(True)
        e0.record()
        for _ in range(steps):
            y = model(x)
        e1.record()
        torch.cuda.synchronize()
    assert tuple(y.shape) == (B, 197, 768), y.shape
    ms = e0.elapsed_time(e1) / steps
    ips = B / (ms / 1e3)
    r = dict(name=name, batch=B, ms_per_step=round(ms, 3), img_per_s=round(ips, 1),
             tflops=round(ips * fl / 1e12, 1),
             peak_mem_gb=round(torch.cuda.max_memory_allocated() / 2**30, 2),
             warmup_s=round(warm, 1))
    print(json.dumps(r), flush=True)
    out.append(r)
    path = os.path.join(os.environ.get("OUT", "/tmp"), "gpu_embed_peer.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args()
    from timm.models.vision_transformer import VisionTransformer
    torch.backends.cuda.matmul.allow_tf32 = True
    print(torch.__version__, torch.cuda.get_device_name(), flush=True)
    model = VisionTransformer(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12,
                              mlp_ratio=4.0, qkv_bias=True, num_classes=0, global_pool="",
                              norm_layer=partial(nn.LayerNorm, eps=1e-6)).cuda().eval()
    fwd = model.forward_features
    fl = encoder_flops()
    out = []
    run("timm-vitb16-encoder-bf16", fwd, a.batch, a.steps, fl, out)
    if not a.no_compile:
        try:
            run("timm-vitb16-encoder-bf16-compiled", torch.compile(fwd), a.batch, a.steps, fl,
                out)
        except Exception as e:  # report, keep the eager result
            print("compile failed:", repr(e)[:300], flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
