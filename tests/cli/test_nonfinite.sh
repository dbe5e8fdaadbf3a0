#!/usr/bin/env bash
# test_nonfinite.sh - a diverging `mae pretrain` stops with exit 3 and keeps the last good
# checkpoint.
#
# usage: test_nonfinite.sh <mae binary> <python with numpy + safetensors>
#
#   1. a good run (1 of 3 epochs, --stop_after_epochs 1) writes checkpoint-last (+ state);
#   2. resuming it in the same folder with --lr 1e30 makes the loss NaN on the first update
#      after the resume: exit 3, a message saying the loss is not finite and that the last good
#      checkpoint is kept; every checkpoint file is byte-identical afterwards, no temporary
#      file is left, log.txt and steps.jsonl stay valid JSON lines (no NaN record);
#   3. the kept checkpoint still resumes with a sane lr (exit 0);
#   4. a fresh run with --lr 1e30 --warmup_epochs 0 also exits 3 and writes no checkpoint.
set -u
source "$(dirname "$0")/lib.sh"
setup_common "$@"

"$PY" "$HELPERS" make-idx "$WORK/data" 256 --gz || exit 1
COMMON=("${SMALL_MODEL[@]}" --data_path "$WORK/data" --num_samples 128 --batch_size 64
        --epochs 3 --warmup_epochs 1 --print_freq 1 --threads 2 --recon_images 0)
OUT="$WORK/out"

run_mae "$WORK/good" pretrain "${COMMON[@]}" --stop_after_epochs 1 --output_dir "$OUT"
if ((RC != 0)) || [[ ! -f "$OUT/checkpoint-last.safetensors" ]]; then
    fail "good run: exit $RC: $(cat "$WORK/good.err")"
    finish
fi
ok "good run: exit 0, checkpoint-last written ($(ls "$OUT" | tr '\n' ' '))"
before="$(dir_sums "$OUT")"

# expect_exit3 NAME [args...]: exit 3, no crash, a message about the non-finite loss
expect_exit3() {
    local name="$1"
    shift
    run_mae "$WORK/$name" "$@"
    local msg
    msg="$(head -c 300 "$WORK/$name.err" | tr '\n' ' ')"
    if ((RC != 3)); then
        fail "$name: exit $RC, expected 3 (mae $*): $msg"
    elif [[ -n "$(crash_signature "$WORK/$name.err")" ]]; then
        fail "$name: crash signature in stderr: $msg"
    elif ! grep -q -E 'loss is (-?nan|-?inf)' "$WORK/$name.err" ||
        ! grep -q -E "$EXPECT_MSG" "$WORK/$name.err"; then
        fail "$name: exit 3 but the message does not explain it: $msg"
    else
        ok "$name: exit 3: $msg"
    fi
}

EXPECT_MSG='the last good checkpoint .*/checkpoint-last.safetensors is kept'
expect_exit3 diverge_after_resume pretrain "${COMMON[@]}" --lr 1e30 \
    --resume "$OUT/checkpoint-last.safetensors" --output_dir "$OUT"
after="$(dir_sums "$OUT")"
if [[ "$before" == "$after" ]]; then
    ok "the $(echo "$after" | wc -l) checkpoint files from the good run are byte-identical after the failure"
else
    fail "the failure changed the checkpoint files:"
    diff <(echo "$before") <(echo "$after")
fi
left=$(find "$OUT" -name '*.tmp*' | head -n 3)
[[ -z "$left" ]] && ok "no temporary files left" || fail "temporary files left: $left"
"$PY" "$HELPERS" check-log "$OUT" || fail "log.txt / steps.jsonl not valid after the failure"
if grep -q -i 'nan' "$OUT/log.txt" "$OUT/steps.jsonl"; then
    fail "the logs hold a NaN record"
else
    ok "the logs hold no NaN record"
fi

run_mae "$WORK/recover" pretrain "${COMMON[@]}" --resume "$OUT/checkpoint-last.safetensors" --output_dir "$OUT"
if ((RC == 0)) && [[ -f "$OUT/checkpoint-2.safetensors" ]]; then
    ok "the kept checkpoint resumes with the normal lr and finishes (exit 0, checkpoint-2 written)"
else
    fail "resume from the kept checkpoint: exit $RC: $(head -c 300 "$WORK/recover.err")"
fi

FRESH="$WORK/fresh"
EXPECT_MSG='no checkpoint had been written yet'
expect_exit3 diverge_fresh pretrain "${COMMON[@]}" --lr 1e30 --warmup_epochs 0 --output_dir "$FRESH"
if ls "$FRESH"/checkpoint-* >/dev/null 2>&1; then
    fail "a run that diverged in its first epoch wrote checkpoints: $(ls "$FRESH" | tr '\n' ' ')"
else
    ok "the diverged fresh run wrote no checkpoint"
fi

finish
