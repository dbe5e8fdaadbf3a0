#!/usr/bin/env bash
# The runs behind docs/RESULTS.md: MAE on Fashion-MNIST (official train/test split), judged by
# linear probing and fine-tuning against a randomly initialised encoder, training from scratch
# and logistic regression on raw pixels, plus a small mask-ratio sweep (the paper's Figure 5).
# Usage: tools/results_fmnist.sh OUT_DIR [stage ...]   stages: pretrain lp ft logreg sweep
# Epoch counts come from the environment (defaults below) so a shorter rehearsal is possible.
set -euo pipefail
OUT=${1:?usage: tools/results_fmnist.sh OUT_DIR [stage ...]}
shift
STAGES=${*:-"pretrain lp logreg ft sweep"}
MAE=${MAE:-./build/mae}
PT_EPOCHS=${PT_EPOCHS:-12}     # main pretraining (mask 0.75)
LP_EPOCHS=${LP_EPOCHS:-3}      # linear probes
FT_EPOCHS=${FT_EPOCHS:-3}      # fine-tuning and from scratch
SW_PT_EPOCHS=${SW_PT_EPOCHS:-3} # mask-ratio sweep: pretraining ...
SW_LP_EPOCHS=${SW_LP_EPOCHS:-2} # ... and its linear probe
PREC=${PREC:-bf16}
mkdir -p "$OUT"
# The encoder: ViT 192/6/3 on 4x4 patches of 1x28x28 (49 patches); decoder 128/2/4.
ARCH="--model tiny-28 --embed_dim 192 --depth 6 --num_heads 3 --decoder_embed_dim 128 --decoder_depth 2 --decoder_num_heads 4"
COMMON="--precision $PREC --num_workers 2 --print_freq 100"
# Linear probe: main_linprobe.py's recipe (LARS, wd 0, BatchNorm head, CLS token, RandomResizedCrop
# + flip) at batch 256 with the absolute lr the official recipe runs at (blr 0.1 x 16384 / 256 = 6.4):
# LARS steps are relative to the weight norm, so the linear scaling rule would make them 64x smaller.
LP="--nb_classes 10 --batch_size 256 --lr 6.4 --warmup_epochs 1"
# Fine-tuning: main_finetune.py's recipe (AdamW, layer decay 0.75, drop_path 0.1, RandAugment
# rand-m9-mstd0.5-inc1, RandomErasing 0.25, label smoothing 0.1, mixup/cutmix off as its defaults)
FT="--nb_classes 10 --batch_size 128 --blr 2e-3 --warmup_epochs 1"
pretrain() { # mask_ratio epochs dir
  "$MAE" pretrain $ARCH --norm_pix_loss --mask_ratio "$1" --batch_size 256 --blr 1e-3 \
    --epochs "$2" --warmup_epochs 1 --output_dir "$3" --save_every 1000 --recon_images 8 $COMMON
}
for st in $STAGES; do
  case $st in
  pretrain) /usr/bin/time -f "%e s" -o "$OUT/pre75.time" pretrain 0.75 "$PT_EPOCHS" "$OUT/pre75" > "$OUT/pre75.log" 2>&1 ;;
  lp)
    "$MAE" linprobe $LP --epochs "$LP_EPOCHS" --finetune "$OUT/pre75/checkpoint-last.safetensors" \
      --output_dir "$OUT/lp_mae" $COMMON > "$OUT/lp_mae.log" 2>&1
    "$MAE" linprobe $LP --epochs "$LP_EPOCHS" $ARCH --output_dir "$OUT/lp_random" $COMMON > "$OUT/lp_random.log" 2>&1
    # the official --global_pool variant: mean of the patch tokens + fc_norm (the pretrained norm)
    "$MAE" linprobe $LP --epochs "$LP_EPOCHS" --global_pool --finetune "$OUT/pre75/checkpoint-last.safetensors" \
      --output_dir "$OUT/lp_mae_gp" $COMMON > "$OUT/lp_mae_gp.log" 2>&1
    "$MAE" linprobe $LP --epochs "$LP_EPOCHS" --global_pool $ARCH --output_dir "$OUT/lp_random_gp" \
      $COMMON > "$OUT/lp_random_gp.log" 2>&1 ;;
  logreg) /usr/bin/python3 tools/logreg_fmnist.py > "$OUT/logreg.log" 2>&1 ;;
  ft)
    "$MAE" finetune $FT --epochs "$FT_EPOCHS" --finetune "$OUT/pre75/checkpoint-last.safetensors" \
      --output_dir "$OUT/ft_mae" $COMMON > "$OUT/ft_mae.log" 2>&1
    # from scratch: the same ViT and budget, no layer decay (it would slow the random lower layers)
    "$MAE" finetune $FT --epochs "$FT_EPOCHS" $ARCH --layer_decay 1 --output_dir "$OUT/ft_scratch" \
      $COMMON > "$OUT/ft_scratch.log" 2>&1 ;;
  sweep)
    for r in 0.5 0.75 0.9; do
      pretrain "$r" "$SW_PT_EPOCHS" "$OUT/sweep_$r" > "$OUT/sweep_$r.log" 2>&1
      "$MAE" linprobe $LP --epochs "$SW_LP_EPOCHS" --warmup_epochs 0 \
        --finetune "$OUT/sweep_$r/checkpoint-last.safetensors" --output_dir "$OUT/sweep_lp_$r" \
        $COMMON > "$OUT/sweep_lp_$r.log" 2>&1
    done ;;
  *) echo "unknown stage $st" >&2; exit 2 ;;
  esac
  echo "stage $st done $(date -u +%H:%M)"
done
