#!/usr/bin/env bash
# test_embed_errors.sh - bad input to `mae embed` gets a clear error naming the flag or file
# (exit < 128, never a crash) and leaves no output behind; --skip_bad leaves a corrupt image out
# of both outputs; the progress bar shows on a terminal only.
#
# usage: test_embed_errors.sh <mae binary> <python with numpy + safetensors + PIL>
set -u
source "$(dirname "$0")/lib.sh"
setup_common "$@"

echo "== setup"
# a small random MAE checkpoint (16x16x3, patch 4, width 32, 1 block, 2 heads) with config
# metadata, an encoder-only copy, a file without encoder, a NaN weight; images; .npy inputs
"$PY" - "$WORK" <<'PYEOF' || { echo "FAIL setup: cannot write test files"; exit 1; }
import json, os, sys
import numpy as np
from PIL import Image
from safetensors.numpy import save_file
w = sys.argv[1]
rng = np.random.default_rng(0)
C, S, p, D, Dd = 3, 16, 4, 32, 16
L = (S // p) ** 2
def r(*shape, s=0.1): return (s * rng.standard_normal(shape)).astype(np.float32)
t = {"cls_token": r(1, 1, D), "pos_embed": r(1, 1 + L, D), "mask_token": r(1, 1, Dd),
     "decoder_pos_embed": r(1, 1 + L, Dd), "patch_embed.proj.weight": r(D, C, p, p),
     "patch_embed.proj.bias": r(D)}
def block(pre, d):
    h = 4 * d
    t.update({pre + "norm1.weight": 1 + r(d), pre + "norm1.bias": r(d),
              pre + "attn.qkv.weight": r(3 * d, d), pre + "attn.qkv.bias": r(3 * d),
              pre + "attn.proj.weight": r(d, d), pre + "attn.proj.bias": r(d),
              pre + "norm2.weight": 1 + r(d), pre + "norm2.bias": r(d),
              pre + "mlp.fc1.weight": r(h, d), pre + "mlp.fc1.bias": r(h),
              pre + "mlp.fc2.weight": r(d, h), pre + "mlp.fc2.bias": r(d)})
block("blocks.0.", D)
t.update({"norm.weight": 1 + r(D), "norm.bias": r(D), "decoder_embed.weight": r(Dd, D),
          "decoder_embed.bias": r(Dd)})
block("decoder_blocks.0.", Dd)
t.update({"decoder_norm.weight": 1 + r(Dd), "decoder_norm.bias": r(Dd),
          "decoder_pred.weight": r(p * p * C, Dd), "decoder_pred.bias": r(p * p * C)})
cfg = dict(img_size=S, patch_size=p, in_chans=C, embed_dim=D, depth=1, num_heads=2,
           decoder_embed_dim=Dd, decoder_depth=1, decoder_num_heads=2, mlp_ratio=4.0,
           mask_ratio=0.75, norm_pix_loss=0)
meta = {"format": "mae-c", "config": json.dumps(cfg)}
save_file(t, f"{w}/ck.safetensors", metadata=meta)
save_file({"linear.weight": r(4, 4), "linear.bias": r(4)}, f"{w}/unrelated.safetensors")
raw = open(f"{w}/ck.safetensors", "rb").read()
open(f"{w}/truncated.safetensors", "wb").write(raw[: len(raw) * 2 // 3])
t2 = dict(t)
t2["blocks.0.mlp.fc1.weight"] = t["blocks.0.mlp.fc1.weight"].copy()
t2["blocks.0.mlp.fc1.weight"][0, 0] = np.nan
save_file(t2, f"{w}/nan.safetensors", metadata=meta)
# images: a folder of 3 good PNGs and one corrupt JPEG; an empty folder; lists
for d in ("imgs", "bad", "empty", "tiny"):
    os.makedirs(f"{w}/{d}", exist_ok=True)
for i in range(3):
    a = rng.integers(0, 256, (20 + 3 * i, 24, 3), dtype=np.uint8)
    Image.fromarray(a).save(f"{w}/imgs/img{i}.png")
    Image.fromarray(a).save(f"{w}/bad/img{i}.png")
open(f"{w}/bad/img1b_corrupt.jpg", "wb").write(b"\xff\xd8\xff\xe0 this is not a JPEG")
for i in range(20):
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(f"{w}/tiny/t{i:02d}.png")
open(f"{w}/empty.txt", "w").write("# nothing here\n\n")
open(f"{w}/missing.txt", "w").write("imgs/img0.png\nimgs/not_there.png\n")
# .npy inputs
x = rng.standard_normal((5, C, S, S)).astype(np.float32)
np.save(f"{w}/x.npy", x)
np.save(f"{w}/x_chans.npy", rng.standard_normal((5, 1, S, S)).astype(np.float32))
np.save(f"{w}/x_size.npy", rng.standard_normal((5, C, S + 4, S + 4)).astype(np.float32))
np.save(f"{w}/x_3d.npy", x[0])
xn = x.copy(); xn[3, 1, 2, 2] = np.nan
np.save(f"{w}/x_nan.npy", xn)
open(f"{w}/x_garbage.npy", "wb").write(b"\x93NUMPY garbage")
PYEOF
CK="$WORK/ck.safetensors"
OUT="$WORK/out"
mkdir -p "$OUT"

# the output folder must stay empty after every failure (no .npy, no paths file, no temp file)
no_output() {
    local left
    left="$(ls -A "$OUT")"
    if [[ -n "$left" ]]; then
        fail "$1: output left behind: $left"
        rm -f "$OUT"/*
    else
        ok "$1: no output left"
    fi
}
fails() { # fails NAME REGEX args...
    expect_fail "$@"
    no_output "$1"
}

echo "== good runs"
expect_ok folder embed --checkpoint "$CK" --data_path "$WORK/imgs" --output "$OUT/f.npy" --threads 2
if [[ -f "$OUT/f.npy" && -f "$OUT/f.txt" ]] && (($(wc -l <"$OUT/f.txt") == 3)); then
    ok "folder: f.npy and f.txt (3 paths)"
else
    fail "folder: expected f.npy and f.txt with 3 lines"
fi
expect_ok input embed --checkpoint "$CK" --input "$WORK/x.npy" --output "$OUT/x.npy" --pool all
rm -f "$OUT"/*

echo "== errors"
fails missing_checkpoint "nope\.safetensors" embed --checkpoint "$WORK/nope.safetensors" \
    --input "$WORK/x.npy" --output "$OUT/o.npy"
fails no_encoder "unrelated\.safetensors.*no encoder" embed --checkpoint "$WORK/unrelated.safetensors" \
    --input "$WORK/x.npy" --output "$OUT/o.npy"
fails truncated_checkpoint "truncated\.safetensors" embed --checkpoint "$WORK/truncated.safetensors" \
    --input "$WORK/x.npy" --output "$OUT/o.npy"
fails nan_weight "not finite.*nan\.safetensors|nan\.safetensors.*(nan|finite)" embed \
    --checkpoint "$WORK/nan.safetensors" --input "$WORK/x.npy" --output "$OUT/o.npy"
fails empty_folder "--data_path.*empty" embed --checkpoint "$CK" --data_path "$WORK/empty" \
    --output "$OUT/o.npy"
fails missing_folder "--data_path.*nowhere" embed --checkpoint "$CK" --data_path "$WORK/nowhere" \
    --output "$OUT/o.npy"
fails empty_list "--list.*empty\.txt" embed --checkpoint "$CK" --list "$WORK/empty.txt" \
    --output "$OUT/o.npy"
fails list_missing_image "not_there\.png" embed --checkpoint "$CK" --list "$WORK/missing.txt" \
    --output "$OUT/o.npy"
fails corrupt_image "img1b_corrupt\.jpg.*--skip_bad" embed --checkpoint "$CK" --data_path "$WORK/bad" \
    --output "$OUT/o.npy" --num_workers 2
fails bad_pool "--pool.*max" embed --checkpoint "$CK" --input "$WORK/x.npy" --output "$OUT/o.npy" \
    --pool max
fails input_chans "--input .*x_chans\.npy.*\(N, 3, 16, 16\)" embed --checkpoint "$CK" \
    --input "$WORK/x_chans.npy" --output "$OUT/o.npy"
fails input_size "--input .*x_size\.npy.*\(N, 3, 16, 16\)" embed --checkpoint "$CK" \
    --input "$WORK/x_size.npy" --output "$OUT/o.npy"
fails input_3d "--input .*x_3d\.npy.*shape" embed --checkpoint "$CK" --input "$WORK/x_3d.npy" \
    --output "$OUT/o.npy"
fails input_nan "--input .*x_nan\.npy.*NaN" embed --checkpoint "$CK" --input "$WORK/x_nan.npy" \
    --output "$OUT/o.npy"
fails input_garbage "--input: .*x_garbage\.npy" embed --checkpoint "$CK" --input "$WORK/x_garbage.npy" \
    --output "$OUT/o.npy"
fails input_missing "--input: .*x_missing\.npy" embed --checkpoint "$CK" --input "$WORK/x_missing.npy" \
    --output "$OUT/o.npy"
fails unwritable_output "--output.*no_such_dir" embed --checkpoint "$CK" --input "$WORK/x.npy" \
    --output "$OUT/no_such_dir/o.npy"
fails unwritable_paths "--paths_out.*no_such_dir" embed --checkpoint "$CK" --data_path "$WORK/imgs" \
    --output "$OUT/o.npy" --paths_out "$OUT/no_such_dir/p.txt"
fails no_source "exactly one of --data_path" embed --checkpoint "$CK" --output "$OUT/o.npy"
fails two_sources "exactly one of --data_path" embed --checkpoint "$CK" --output "$OUT/o.npy" \
    --input "$WORK/x.npy" --data_path "$WORK/imgs"
fails no_output_flag "--output" embed --checkpoint "$CK" --input "$WORK/x.npy"
fails bad_batch "--batch_size" embed --checkpoint "$CK" --input "$WORK/x.npy" --output "$OUT/o.npy" \
    --batch_size 0
fails bad_crop "--crop_pct" embed --checkpoint "$CK" --data_path "$WORK/imgs" --output "$OUT/o.npy" \
    --crop_pct 1.5
fails bad_input_size "--input_size" embed --checkpoint "$CK" --data_path "$WORK/imgs" \
    --output "$OUT/o.npy" --input_size 18
fails too_big_all "--pool all.*GiB.*--pool cls" embed --checkpoint "$CK" --data_path "$WORK/tiny" \
    --output "$OUT/o.npy" --pool all --input_size 8192

echo "== --skip_bad"
expect_ok skip_bad embed --checkpoint "$CK" --data_path "$WORK/bad" --output "$OUT/s.npy" --skip_bad \
    --batch_size 2 --num_workers 2
pre="$WORK/case_skip_bad"
if grep -q "img1b_corrupt.jpg" "$pre.err" && grep -q "skipped 1 bad file" "$pre.err"; then
    ok "skip_bad: the bad file is named and counted on stderr"
else
    fail "skip_bad: stderr does not name/count the bad file: $(head -c 300 "$pre.err")"
fi
"$PY" - "$OUT/s.npy" "$OUT/s.txt" "$WORK/bad" <<'PYEOF' && ok "skip_bad: 3 rows, paths without the bad file" || fail "skip_bad: rows/paths wrong"
import sys, numpy as np
a = np.load(sys.argv[1]); p = open(sys.argv[2]).read().splitlines()
want = [f"{sys.argv[3]}/img{i}.png" for i in range(3)]
print(a.shape, p)
sys.exit(0 if a.shape == (3, 32) and p == want else 1)
PYEOF
rm -f "$OUT"/*

echo "== progress"
run_mae "$WORK/quiet" embed --checkpoint "$CK" --data_path "$WORK/tiny" --output "$OUT/q.npy" --batch_size 4
if ((RC == 0)) && [[ ! -s "$WORK/quiet.err" ]] && grep -q "img/s" "$WORK/quiet.out"; then
    ok "not a terminal: stderr empty, throughput line on stdout"
else
    fail "not a terminal: exit $RC, stderr: $(head -c 200 "$WORK/quiet.err")"
fi
"$PY" "$HELPERS" tty-run "$WORK/tty.out" "$MAE" embed --checkpoint "$CK" --data_path "$WORK/tiny" \
    --output "$OUT/t.npy" --batch_size 4 >/dev/null 2>&1
if grep -a -q "embed: 20/20 images" "$WORK/tty.out"; then
    ok "terminal: progress bar reaches 20/20"
else
    fail "terminal: no progress bar: $(head -c 300 "$WORK/tty.out")"
fi
rm -f "$OUT"/*

finish
