#!/usr/bin/env bash
# test_resume.sh - `mae pretrain` resumes bit-exactly, saves at the last epoch and never loses
# a saved checkpoint when a run fails.
#
# usage: test_resume.sh <mae binary> <python with numpy + safetensors>
#
#   Run A: 3 epochs uninterrupted.
#   Run B: the same flags with --stop_after_epochs 1, then --resume B/checkpoint-last for the
#          remaining 2 epochs.
# Checks: the step records of the two steps.jsonl files (epoch, step, update, loss, lr as printed)
# and the epoch records are identical strings; checkpoint-last and checkpoint-2 (weights and
# training state) hold byte-identical tensors; checkpoint-2 exists (save at the last epoch);
# no temporary files are left; a failed resume (corrupt state file, weights/state from
# different epochs) exits non-zero and leaves every checkpoint file and log of the
# output folder byte-identical.
#
# Data: Fashion-MNIST (first 512 images) from $MAE_FMNIST_DIR or Debian's location, else a
# generated IDX set of 512 images.
set -u
source "$(dirname "$0")/lib.sh"
setup_common "$@"

FMNIST=${MAE_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
if [[ -f "$FMNIST/train-images-idx3-ubyte.gz" || -f "$FMNIST/train-images-idx3-ubyte" ]]; then
    DATA=(--data_path "$FMNIST")
    echo "data: Fashion-MNIST in $FMNIST"
else
    "$PY" "$HELPERS" make-idx "$WORK/data" 512 --gz || exit 1
    DATA=(--data_path "$WORK/data")
    echo "data: generated IDX set (no Fashion-MNIST in $FMNIST)"
fi
COMMON=("${SMALL_MODEL[@]}" "${DATA[@]}" --num_samples 512 --batch_size 64 --epochs 3
        --warmup_epochs 1 --print_freq 1 --threads 2 --recon_images 2)
A="$WORK/A"
B="$WORK/B"

run_or_die() {
    local name="$1"
    shift
    run_mae "$WORK/$name" "$@"
    if ((RC != 0)) || [[ -n "$(crash_signature "$WORK/$name.err")" ]]; then
        fail "$name: exit $RC (mae $*)"
        cat "$WORK/$name.err"
        finish
    fi
    ok "$name: exit 0 ($(cat "${@: -1}/steps.jsonl" 2>/dev/null | wc -l) step records so far)"
}

echo "== run A: 3 epochs uninterrupted"
run_or_die runA pretrain "${COMMON[@]}" --output_dir "$A"
echo "== run B: 1 epoch, then resume"
run_or_die runB1 pretrain "${COMMON[@]}" --stop_after_epochs 1 --output_dir "$B"
if [[ -f "$B/checkpoint-last.safetensors" && -f "$B/checkpoint-last.state.safetensors" && ! -e "$B/checkpoint-2.safetensors" ]]; then
    ok "runB1: stopped after epoch 0 with checkpoint-last (+ state) and no checkpoint-2"
else
    fail "runB1: unexpected files: $(ls "$B" | tr '\n' ' ')"
fi
mkdir -p "$WORK/B_epoch0"
cp "$B"/checkpoint-last.* "$WORK/B_epoch0/"
run_or_die runB2 pretrain "${COMMON[@]}" --resume "$B/checkpoint-last.safetensors" --output_dir "$B"
if grep -q "from epoch 1" "$WORK/runB2.out"; then
    ok "runB2: continued from epoch 1"
else
    fail "runB2: did not report 'from epoch 1': $(head -n 3 "$WORK/runB2.out")"
fi

echo "== logs"
for r in A B; do
    "$PY" "$HELPERS" check-log "$WORK/$r" || fail "$r: log.txt / steps.jsonl not valid"
    "$PY" "$HELPERS" log-steps "$WORK/$r" "$WORK/$r.steps" >/dev/null
    sed 's/, "img_per_s".*//' "$WORK/$r/log.txt" >"$WORK/$r.epochs"
done
n=$(wc -l <"$WORK/A.steps")
if ((n != 24)); then
    fail "run A logged $n step records, expected 3 epochs x 8 steps = 24"
elif cmp -s "$WORK/A.steps" "$WORK/B.steps"; then
    ok "per-step epoch/step/update/loss/lr of all $n steps are identical strings (e.g. $(sed -n 24p "$WORK/A.steps"))"
else
    fail "per-step records differ between run A and the resumed run B:"
    diff "$WORK/A.steps" "$WORK/B.steps" | head -n 10
fi
if cmp -s "$WORK/A.epochs" "$WORK/B.epochs" && (($(wc -l <"$WORK/A.epochs") == 3)); then
    ok "the 3 epoch records (train_loss, train_lr) are identical strings"
else
    fail "epoch records differ:"
    diff "$WORK/A.epochs" "$WORK/B.epochs" | head -n 10
fi

echo "== checkpoints"
for f in checkpoint-last.safetensors checkpoint-last.state.safetensors checkpoint-2.safetensors \
         checkpoint-2.state.safetensors; do
    if [[ ! -f "$A/$f" || ! -f "$B/$f" ]]; then
        fail "$f missing (A: $(ls "$A" | tr '\n' ' '); B: $(ls "$B" | tr '\n' ' '))"
        continue
    fi
    if "$PY" "$HELPERS" same-tensors "$A/$f" "$B/$f"; then
        pass_count=$((pass_count + 1))
    else
        fail_count=$((fail_count + 1))
    fi
    if cmp -s "$A/$f" "$B/$f"; then
        ok "$f: A and B files are byte-identical (header and metadata too)"
    else
        fail "$f: the tensors match but the files differ (metadata?)"
    fi
done
if "$PY" "$HELPERS" same-tensors "$A/checkpoint-2.safetensors" "$A/checkpoint-last.safetensors" >/dev/null; then
    ok "checkpoint-2 (save at the last epoch) holds the final weights"
else
    fail "checkpoint-2 differs from checkpoint-last"
fi
for r in A B; do
    [[ -f "$WORK/$r/reconstruction.png" ]] && ok "$r: reconstruction.png written" || fail "$r: no reconstruction.png"
    left=$(find "$WORK/$r" -name '*.tmp*' | head -n 3)
    [[ -z "$left" ]] && ok "$r: no temporary files left" || fail "$r: temporary files left: $left"
done

echo "== failed resumes keep every saved checkpoint"
sums_before="$(dir_sums "$B"; cat "$B/log.txt" "$B/steps.jsonl" | sha256sum)"
# corrupt state file beside good weights
mkdir -p "$WORK/corrupt"
cp "$B/checkpoint-last.safetensors" "$WORK/corrupt/"
head -c 30000 "$B/checkpoint-last.state.safetensors" >"$WORK/corrupt/checkpoint-last.state.safetensors"
expect_fail resume_corrupt_state 'corrupt/checkpoint-last.state.safetensors: .*(truncated|out of range)' \
    pretrain "${COMMON[@]}" --epochs 4 --resume "$WORK/corrupt/checkpoint-last.safetensors" --output_dir "$B"
# state file that is not safetensors at all
mkdir -p "$WORK/garbage"
cp "$B/checkpoint-last.safetensors" "$WORK/garbage/"
echo "not a state file" >"$WORK/garbage/checkpoint-last.state.safetensors"
expect_fail resume_garbage_state 'garbage/checkpoint-last.state.safetensors: .*(header length|not a safetensors)' \
    pretrain "${COMMON[@]}" --epochs 4 --resume "$WORK/garbage/checkpoint-last.safetensors" --output_dir "$B"
# weights of epoch 2 with the training state of epoch 0
mkdir -p "$WORK/mixed"
cp "$B/checkpoint-last.safetensors" "$WORK/mixed/"
cp "$WORK/B_epoch0/checkpoint-last.state.safetensors" "$WORK/mixed/"
expect_fail resume_epoch_mismatch 'is from epoch 3 step 0 but .*checkpoint-last.state.safetensors is from epoch 1 step 0' \
    pretrain "${COMMON[@]}" --epochs 4 --resume "$WORK/mixed/checkpoint-last.safetensors" --output_dir "$B"
sums_after="$(dir_sums "$B"; cat "$B/log.txt" "$B/steps.jsonl" | sha256sum)"
if [[ "$sums_before" == "$sums_after" ]]; then
    ok "after the failed resumes all $(dir_sums "$B" | wc -l) checkpoint files and the logs of $B are byte-identical"
else
    fail "a failed resume changed the output folder:"
    diff <(echo "$sums_before") <(echo "$sums_after")
fi
left=$(find "$B" -name '*.tmp*' | head -n 3)
[[ -z "$left" ]] && ok "no temporary files after the failed runs" || fail "temporary files left: $left"

finish
