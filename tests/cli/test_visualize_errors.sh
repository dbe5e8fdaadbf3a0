#!/usr/bin/env bash
# test_visualize_errors.sh - bad input to `mae visualize` gets a clear error naming the file or
# flag (exit 1 or 2, never a crash), and no PNG (nor a temporary file) is left behind.
#
# usage: test_visualize_errors.sh <mae binary> <python with torch, numpy, safetensors, PIL>
set -u
source "$(dirname "$0")/lib.sh"
setup_common "$@"
HERE="$(cd "$(dirname "$0")" && pwd)"

echo "== setup"
# a random 3-channel MAE (official names + config metadata), its encoder-only part, photos
"$PY" - "$WORK" "$HERE/../python" <<'PYEOF' || { echo "FAIL cannot create the test files"; exit 1; }
import os, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
import mae_parity as mp
from PIL import Image
from safetensors.numpy import save_file, load_file
w = sys.argv[1]
cfg = dict(img_size=32, patch_size=4, in_chans=3, embed_dim=48, depth=1, num_heads=3,
           decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, mlp_ratio=2.0,
           mask_ratio=0.75, norm_pix_loss=0)
meta = {"format": "mae", "format_version": "1", "config": mp.config_json(cfg)}
mp.write_official(f"{w}/ck.safetensors", mp.random_official_weights(cfg, 5), metadata=meta)
t = load_file(f"{w}/ck.safetensors")
save_file({k: v for k, v in t.items() if not k.startswith("decoder") and k != "mask_token"},
          f"{w}/encoder_only.safetensors")
rng = np.random.default_rng(0)
img = Image.fromarray(rng.integers(0, 256, (45, 61, 3), dtype=np.uint8))
img.save(f"{w}/good.jpg", quality=90)
img.save(f"{w}/good.png")
data = open(f"{w}/good.jpg", "rb").read()
open(f"{w}/trunc.jpg", "wb").write(data[: len(data) // 2])
data = open(f"{w}/good.png", "rb").read()
open(f"{w}/trunc.png", "wb").write(data[: len(data) - 40])
open(f"{w}/text.png", "w").write("this is not a picture\n")
open(f"{w}/empty.jpg", "wb").close()
open(f"{w}/garbage.safetensors", "wb").write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
np.save(f"{w}/noise_ok.npy", rng.random((2, 64), dtype=np.float32))
np.save(f"{w}/noise_shape.npy", rng.random((2, 63), dtype=np.float32))
np.save(f"{w}/noise_rows.npy", rng.random((3, 64), dtype=np.float32))
nan = rng.random((2, 64), dtype=np.float32)
nan[1, 5] = np.nan
np.save(f"{w}/noise_nan.npy", nan)
open(f"{w}/noise_bad.npy", "wb").write(b"\x93NUMPY garbage")
open(f"{w}/empty_list.txt", "w").write("# nothing here\n\n")
open(f"{w}/list_missing.txt", "w").write("good.jpg\nnot_there.png\n")
open(f"{w}/afile", "w").write("x")
PYEOF
CK="$WORK/ck.safetensors"
G="$WORK/good.jpg"

# vis_fail NAME REGEX [args...]: expect_fail with --output $WORK/out_NAME.png added, then no
# PNG and no temporary file of it may exist
vis_fail() {
    local name="$1" re="$2"
    shift 2
    local out="$WORK/out_$name.png"
    expect_fail "$name" "$re" visualize --output "$out" "$@"
    if compgen -G "$out*" >/dev/null; then fail "$name: left $(ls "$out"*) behind"; fi
}

echo "== good paths"
expect_ok good visualize --checkpoint "$CK" --output "$WORK/good_out.png" "$G" "$WORK/good.png"
if "$PY" "$HERE/cli_helpers.py" check-png "$WORK/good_out.png" 532 310 >/dev/null; then
    ok "good: a valid 532 x 310 PNG (2 rows, panels of 128 px)"
else
    fail "good: $WORK/good_out.png is not a valid 532 x 310 PNG"
fi
expect_ok good_noise visualize --checkpoint "$CK" --output "$WORK/good_noise.png" --noise "$WORK/noise_ok.npy" "$G" "$WORK/good.png"
expect_ok help visualize --help

echo "== bad images"
vis_fail trunc_jpeg 'trunc\.jpg' --checkpoint "$CK" "$G" "$WORK/trunc.jpg"
vis_fail trunc_png 'trunc\.png' --checkpoint "$CK" "$WORK/trunc.png"
vis_fail text_png 'text\.png' --checkpoint "$CK" "$WORK/text.png" "$G"
vis_fail empty_image 'empty\.jpg.*(empty|0 bytes)' --checkpoint "$CK" "$WORK/empty.jpg"
vis_fail missing_image 'nope\.png' --checkpoint "$CK" "$WORK/nope.png"
vis_fail folder_image "image $WORK.*(folder|directory)" --checkpoint "$CK" "$WORK"
vis_fail no_images 'no images' --checkpoint "$CK"
vis_fail empty_list 'empty_list\.txt.*no image' --checkpoint "$CK" --list "$WORK/empty_list.txt"
vis_fail missing_list 'no_list\.txt' --checkpoint "$CK" --list "$WORK/no_list.txt"
vis_fail list_missing_image 'not_there\.png' --checkpoint "$CK" --list "$WORK/list_missing.txt"

echo "== bad noise"
vis_fail noise_shape 'noise_shape\.npy.*\(2, 64\).*\(2, 63\)' --checkpoint "$CK" --noise "$WORK/noise_shape.npy" "$G" "$G"
vis_fail noise_rows 'noise_rows\.npy.*shape' --checkpoint "$CK" --noise "$WORK/noise_rows.npy" "$G" "$G"
vis_fail noise_nan 'noise_nan\.npy.*NaN' --checkpoint "$CK" --noise "$WORK/noise_nan.npy" "$G" "$G"
vis_fail noise_bad '--noise.*noise_bad\.npy' --checkpoint "$CK" --noise "$WORK/noise_bad.npy" "$G" "$G"
vis_fail noise_missing '--noise.*noise_none\.npy' --checkpoint "$CK" --noise "$WORK/noise_none.npy" "$G" "$G"

echo "== bad checkpoints"
vis_fail encoder_only 'encoder_only\.safetensors.*needs a checkpoint with a decoder \(the \*_full or mae_visualize_\*' \
    --checkpoint "$WORK/encoder_only.safetensors" "$G"
vis_fail missing_checkpoint '--checkpoint.*none\.safetensors' --checkpoint "$WORK/none.safetensors" "$G"
vis_fail garbage_checkpoint '--checkpoint.*garbage\.safetensors' --checkpoint "$WORK/garbage.safetensors" "$G"
vis_fail text_checkpoint '--checkpoint.*text\.png' --checkpoint "$WORK/text.png" "$G"

echo "== bad flags"
vis_fail scale_zero '--scale' --checkpoint "$CK" --scale 0 "$G"
vis_fail scale_big '--scale' --checkpoint "$CK" --scale 1000 "$G"
vis_fail scale_text '--scale.*abc' --checkpoint "$CK" --scale abc "$G"
vis_fail mask_ratio_one '--mask_ratio' --checkpoint "$CK" --mask_ratio 1 "$G"
vis_fail mask_ratio_neg '--mask_ratio' --checkpoint "$CK" --mask_ratio -0.5 "$G"
vis_fail mask_ratio_nan '--mask_ratio' --checkpoint "$CK" --mask_ratio nan "$G"
vis_fail mask_ratio_all '--mask_ratio.*no visible patch' --checkpoint "$CK" --mask_ratio 0.999 "$G"
vis_fail unnorm_bad '--unnorm.*sideways' --checkpoint "$CK" --unnorm sideways "$G"
vis_fail unnorm_no_normpix '--unnorm target.*norm_pix_loss' --checkpoint "$CK" --unnorm target "$G"
vis_fail unknown_flag 'unknown flag --colour' --checkpoint "$CK" --colour red "$G"
vis_fail no_checkpoint '--checkpoint and --output are required' "$G"
vis_fail seed_bad '--seed' --checkpoint "$CK" --seed -3 "$G"
vis_fail threads_bad '--threads' --checkpoint "$CK" --threads -1 "$G"
expect_fail no_output '--checkpoint and --output are required' visualize --checkpoint "$CK" "$G"
expect_fail output_dir "--output.*expected a file name" visualize --checkpoint "$CK" --output "$WORK/" "$G"
expect_fail output_under_file "--output.*afile" visualize --checkpoint "$CK" --output "$WORK/afile/grid.png" "$G"
if compgen -G "$WORK/afile/*" >/dev/null 2>&1; then fail "output_under_file: left something"; fi
finish
