"""The closing table of bench/gpu_check.sh: ours (`mae bench --device cuda`) against the PyTorch
peers, from what the run left in OUT. Missing pieces print as '-'; it never fails.

usage: python3 bench/gpu_table.py OUT_DIR [PEAK_TFLOPS]
reads  OUT_DIR/ours.jsonl             {"tag": ..., "result": <mae bench --json>} per line
       OUT_DIR/gpu_peer_lines.jsonl   torch_mae_gpu.py's JSON lines (also gpu_peer.json)
       OUT_DIR/gpu_embed_peer.json    bench/torch_embed_gpu.py's results
"""
import json, os, sys

out = sys.argv[1]
try:
    peak = float(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] else 0.0
except ValueError:
    peak = 0.0


def read_lines(path):
    rows = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        rows.append(json.loads(line))
                    except ValueError:
                        pass
    except OSError:
        pass
    return rows


def read_list(path):
    try:
        with open(path) as f:
            v = json.load(f)
        return v if isinstance(v, list) else []
    except (OSError, ValueError):
        return []


ours = {r.get("tag"): r.get("result") or {} for r in read_lines(os.path.join(out, "ours.jsonl"))}
peer = {}
for r in (read_list(os.path.join(out, "gpu_peer.json"))
          + read_lines(os.path.join(out, "gpu_peer_lines.jsonl"))
          + read_list(os.path.join(out, "gpu_embed_peer.json"))):
    if isinstance(r, dict) and "name" in r:
        peer[r["name"]] = r

rows = [  # label, our tag, peer eager, peer compiled
    ("ViT-B/16 train b256 bf16", "base_bf16", "timm-mae-base-bf16", "timm-mae-base-bf16-compiled"),
    ("ViT-L/16 train b128 bf16", "large_bf16", "timm-mae-large-bf16", None),
    ("ViT-B/16 infer b256 bf16", "infer_bf16", "timm-vitb16-encoder-bf16",
     "timm-vitb16-encoder-bf16-compiled"),
    ("ViT-B/16 train b256 fp32", "base_fp32", "timm-mae-base-tf32", None),
]


def f(v, fmt="%.1f"):
    return fmt % v if isinstance(v, (int, float)) else "-"


def ratio(a, b):
    return f(a / b, "%.2f") if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "-"


def mfu(tf):
    return f(100 * tf / peak, "%.1f%%") if peak > 0 and isinstance(tf, (int, float)) else "-"


print("PEAK (torch bf16 8192^3 matmul): %s TFLOP/s" % (f(peak) if peak > 0 else "-"))
hdr = ("config", "ours img/s", "peer eager", "peer compiled", "ours/eager", "ours/compiled",
       "ours ms", "ours TFLOP/s", "ours MFU", "eager MFU", "ours GiB", "peer GiB")
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for label, tag, pe, pc in rows:
    o, e, c = ours.get(tag, {}), peer.get(pe, {}), peer.get(pc, {}) if pc else {}
    print("| " + " | ".join([
        label, f(o.get("img_per_s")), f(e.get("img_per_s")), f(c.get("img_per_s")),
        ratio(o.get("img_per_s"), e.get("img_per_s")), ratio(o.get("img_per_s"), c.get("img_per_s")),
        f(o.get("ms_per_step"), "%.2f"), f(o.get("tflops")), mfu(o.get("tflops")), mfu(e.get("tflops")),
        f(o.get("peak_mem_gb"), "%.2f"), f(e.get("peak_mem_gb"), "%.2f")]) + " |")
print("(ours GiB: the backend's mem_peak, all device bytes it held incl. cuBLAS workspaces; peer "
      "GiB: torch.cuda.max_memory_allocated, tensors only. peer fp32 row: TF32 matmuls. "
      "ours ms includes the batch upload: h2d_ms below)")
for tag, o in ours.items():
    if tag in ("loss_fp32", "loss_bf16"):
        continue
    print("ours %-10s h2d %s ms d2h %s ms loss %s" % (tag, f(o.get("h2d_ms"), "%.2f"),
                                                      f(o.get("d2h_ms"), "%.2f"),
                                                      f(o.get("loss"), "%.4f")))
hf = peer.get("hf-vitmae-base-bf16")
if hf:
    print("peer HF ViTMAEForPreTraining base b256 bf16: %s img/s" % f(hf.get("img_per_s")))
a, b = ours.get("loss_fp32", {}).get("loss_mean"), ours.get("loss_bf16", {}).get("loss_mean")
if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a:
    d = abs(b - a) / abs(a)
    print("loss check tiny-32 (mean of last 50 of 300 steps): fp32 %.6f bf16 %.6f rel diff %.4f%% %s"
          % (a, b, 100 * d, "PASS (<1%)" if d < 0.01 else "FAIL (>=1%)"))
else:
    print("loss check tiny-32: -")
