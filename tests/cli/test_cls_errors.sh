#!/usr/bin/env bash
# test_cls_errors.sh - bad input to `mae finetune`, `mae linprobe` and `mae eval` gets a clear
# error naming the flag or file (never a crash), the good paths run, and a classifier
# checkpoint never passes for a pretraining one or the other way round.
#
# usage: test_cls_errors.sh <mae binary> <python with numpy + safetensors>
set -u
source "$(dirname "$0")/lib.sh"
setup_common "$@"

D="$WORK/data"
M=("${SMALL_MODEL[@]}")
FAST=(--data_path "$D" --num_samples 128 --eval_samples 64 --batch_size 32 --epochs 1
      --warmup_epochs 0 --threads 2 --num_workers 1 --print_freq 1000)

echo "== setup"
"$PY" "$HELPERS" make-idx "$D" 256 --gz || { echo "FAIL cannot create test data"; exit 1; }
cp "$D/train-images-idx3-ubyte.gz" "$D/t10k-images-idx3-ubyte.gz"
cp "$D/train-labels-idx1-ubyte.gz" "$D/t10k-labels-idx1-ubyte.gz"
PRE="$WORK/pre"
run_mae "$WORK/setup_pre" pretrain "${M[@]}" --data_path "$D" --num_samples 128 --batch_size 64 \
    --epochs 1 --warmup_epochs 0 --recon_images 0 --threads 2 --output_dir "$PRE"
CK="$PRE/checkpoint-last.safetensors"
if ((RC != 0)) || [[ ! -f "$CK" ]]; then
    echo "FAIL setup: pretrain failed (exit $RC)"; cat "$WORK/setup_pre.err"; exit 1
fi
"$PY" "$HELPERS" make-corrupt-st "$CK" "$WORK/st" >/dev/null || { echo "FAIL cannot create corrupt files"; exit 1; }
# a safetensors file with no encoder: only decoder tensors of the checkpoint
"$PY" - "$CK" "$WORK/decoder_only.safetensors" <<'PYEOF' || { echo "FAIL cannot write decoder-only file"; exit 1; }
import sys
from safetensors.numpy import load_file, save_file
t = load_file(sys.argv[1])
save_file({k: v for k, v in t.items() if k.startswith("decoder")}, sys.argv[2])
# and an encoder-only file without metadata (as official mae_pretrain_vit_*.pth holds)
save_file({k: v for k, v in t.items() if not k.startswith("decoder") and k != "mask_token"},
          sys.argv[2].replace("decoder_only", "encoder_only"))
PYEOF
mkdir -p "$WORK/flat"
"$PY" - "$WORK/flat" <<'PYEOF'
import sys, zlib, struct
def png(path, w, h):
    raw = b"".join(b"\x00" + bytes((x * 9 + y * 5) % 256 for x in range(w)) for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
for i in range(4):
    png(f"{sys.argv[1]}/img{i}.png", 28, 28)
PYEOF

echo "== good paths"
FT="$WORK/ft"
expect_ok finetune_runs finetune "${FAST[@]}" --nb_classes 10 --finetune "$CK" --output_dir "$FT"
for f in checkpoint-best.safetensors checkpoint-last.safetensors log.txt; do
    if [[ -s "$FT/$f" ]]; then ok "finetune wrote $f"; else fail "finetune did not write $f"; fi
done
CLS="$FT/checkpoint-best.safetensors"
expect_ok linprobe_runs linprobe "${FAST[@]}" --nb_classes 10 --finetune "$CK" --output_dir "$WORK/lp"
expect_ok finetune_scratch finetune "${FAST[@]}" "${M[@]}" --nb_classes 10 --output_dir "$WORK/scratch"
expect_ok finetune_mixup finetune "${FAST[@]}" --nb_classes 10 --finetune "$CK" --mixup 0.8 \
    --cutmix 1.0 --cls_token --output_dir "$WORK/mix"
expect_ok finetune_resized finetune "${FAST[@]}" --nb_classes 10 --finetune "$CK" \
    --input_size 32 --output_dir "$WORK/resized"
if grep -q "pos_embed resized from a 7x7 to a 8x8" "$WORK/case_finetune_resized.err"; then
    ok "--input_size 32 interpolates pos_embed 7x7 -> 8x8"
else
    fail "--input_size 32 did not report the pos_embed interpolation"
fi
expect_ok finetune_encoder_only finetune "${FAST[@]}" --nb_classes 10 --num_heads 4 \
    --finetune "$WORK/encoder_only.safetensors" --output_dir "$WORK/enc_only"
expect_ok eval_runs eval --resume "$CLS" --data_path "$D" --eval_samples 64 --threads 2
if grep -q "Acc@1" "$WORK/case_eval_runs.out" && grep -q "confusion" "$WORK/case_eval_runs.out"; then
    ok "eval prints top-1/top-5 and the confusion summary"
else
    fail "eval output lacks Acc@1 or the confusion summary"
fi
expect_ok finetune_eval_only finetune --eval --resume "$CLS" --data_path "$D" --eval_samples 64 \
    --threads 2

echo "== bad flags"
expect_fail no_nb_classes "nb_classes is required" finetune "${FAST[@]}" --finetune "$CK" --output_dir "$WORK/x"
expect_fail lp_no_nb_classes "nb_classes is required" linprobe "${FAST[@]}" --finetune "$CK" --output_dir "$WORK/x"
expect_fail nb_classes_disagree "nb_classes 5 disagrees with the data.*10 classes" finetune "${FAST[@]}" \
    --nb_classes 5 --finetune "$CK" --output_dir "$WORK/x"
expect_fail nb_classes_zero "nb_classes" finetune "${FAST[@]}" --nb_classes 0 --finetune "$CK" --output_dir "$WORK/x"
expect_fail bad_aa "--aa" finetune "${FAST[@]}" --nb_classes 10 --finetune "$CK" --aa rand-zz9 --output_dir "$WORK/x"
expect_fail bad_remode "--remode" finetune "${FAST[@]}" --nb_classes 10 --remode const --finetune "$CK" --output_dir "$WORK/x"
expect_fail odd_batch_mixup "even --batch_size" finetune "${FAST[@]}" --nb_classes 10 --mixup 0.8 \
    --batch_size 33 --finetune "$CK" --output_dir "$WORK/x"
expect_fail bad_smoothing "--smoothing" finetune "${FAST[@]}" --nb_classes 10 --smoothing 1.5 --output_dir "$WORK/x"
expect_fail bad_drop_path "--drop_path" finetune "${FAST[@]}" "${M[@]}" --nb_classes 10 --drop_path 1.5 --output_dir "$WORK/x"
expect_fail bad_layer_decay "--layer_decay" finetune "${FAST[@]}" --nb_classes 10 --layer_decay 0 --finetune "$CK" --output_dir "$WORK/x"
expect_fail lp_layer_decay "--layer_decay is a fine-tuning flag" linprobe "${FAST[@]}" --nb_classes 10 --layer_decay 0.5 --finetune "$CK" --output_dir "$WORK/x"
expect_fail pool_both "--global_pool and --cls_token" finetune "${FAST[@]}" --nb_classes 10 --global_pool --cls_token --finetune "$CK" --output_dir "$WORK/x"
expect_fail eval_no_resume "--eval needs --resume" finetune --eval --nb_classes 10
expect_fail eval_cmd_no_resume "--resume" eval --data_path "$D"
expect_fail unknown_flag "unknown" finetune --nb_classes 10 --no_such_flag 1
expect_fail unlabelled_data "no labels" finetune "${FAST[@]}" --data_path "$WORK/flat" --nb_classes 10 \
    --finetune "$CK" --output_dir "$WORK/x"

echo "== bad checkpoints"
expect_fail no_encoder "has no encoder" finetune "${FAST[@]}" --nb_classes 10 \
    --finetune "$WORK/decoder_only.safetensors" "${M[@]}" --output_dir "$WORK/x"
expect_fail missing_ckpt "nope.safetensors" finetune "${FAST[@]}" --nb_classes 10 \
    --finetune "$WORK/nope.safetensors" --output_dir "$WORK/x"
# --cls_token: the classifier then reads the pretrained norm.* too (the nan/int variants are there)
for f in "$WORK"/st/*; do
    n=$(basename "$f")
    case $n in
    missing_tensor.*|extra_tensor.*) # a decoder tensor missing / an unknown tensor: the encoder is whole
        expect_ok "corrupt_ft_$n" finetune "${FAST[@]}" --nb_classes 10 --finetune "$f" --cls_token \
            "${M[@]}" --output_dir "$WORK/x" ;;
    *)
        expect_fail "corrupt_ft_$n" "$n: .*(safetensors|header|truncated|NaN|dtype|out of range|F32|JSON)" \
            finetune "${FAST[@]}" --nb_classes 10 --finetune "$f" --cls_token "${M[@]}" --output_dir "$WORK/x" ;;
    esac
done
expect_fail shape_mismatch "tensor '.*' has shape .* the model expects" finetune "${FAST[@]}" --nb_classes 10 \
    --finetune "$CK" --model tiny-28 --depth 2 --embed_dim 32 --num_heads 4 --output_dir "$WORK/x"
expect_fail classifier_to_pretrain "classifier checkpoint" pretrain "${M[@]}" --data_path "$D" \
    --num_samples 128 --batch_size 64 --epochs 2 --recon_images 0 --resume "$CLS" --output_dir "$WORK/x"
expect_fail pretrain_ckpt_to_eval "not a classifier checkpoint.*MAE pretraining" eval --resume "$CK" --data_path "$D"
expect_fail eval_wrong_classes "nb_classes 7 disagrees" eval --resume "$CLS" --data_path "$D" --nb_classes 7

echo "== nothing lost"
before=$(cd "$FT" && sha256sum checkpoint-best.safetensors)
expect_fail ft_bad_then_keep "nb_classes 5" finetune "${FAST[@]}" --nb_classes 5 --finetune "$CK" --output_dir "$FT"
after=$(cd "$FT" && sha256sum checkpoint-best.safetensors)
if [[ "$before" == "$after" ]]; then ok "a failed run leaves checkpoint-best untouched"; else fail "checkpoint-best changed"; fi
finish
