#!/usr/bin/env bash
# test_pretrain_images.sh - `mae pretrain` end to end on a generated ImageFolder of real photos
# (Debian's skimage/sklearn sample photos cropped to JPEG and PNG in several modes) that also
# holds a truncated JPEG, a zero-byte PNG, a text file named .jpg and a .txt file.
#
# usage: test_pretrain_images.sh <mae binary> <python with numpy, PIL, safetensors>
#
# Checks:
#   - 2 epochs train (exit 0); each bad file gets exactly one warning naming it and the epoch
#     goes on; log.txt has 2 epoch records with bad_files 3; steps.jsonl one record per step;
#     checkpoint-last/-1 hold the official tensor names; reconstruction.png is a valid PNG;
#   - --strict stops at the first bad file with an error naming it, and exits non-zero;
#   - the data (hence every loss) is the same with --num_workers 0, 1 and 3;
#   - SIGINT mid-run (delivered twice at once, as to a process and its group) saves a resumable
#     checkpoint and exits 130; --resume continues with the same data order: the step records
#     equal those of an uninterrupted run;
#   - a missing root, an empty folder, a folder without image files and a folder of only bad
#     images are clear errors before any training;
#   - the same images as a list file and as a flat folder train too; a CIFAR-10 binary set too.
set -u
source "$(dirname "$0")/lib.sh"
setup_common "$@"
if ! "$PY" -c "import PIL, numpy" 2>/dev/null; then
    echo "SKIP: $PY lacks PIL/numpy"
    exit 77
fi
D="$WORK/photos"
"$PY" "$HELPERS" make-imagefolder "$D" 60 || exit 1
M=("${SMALL_MODEL[@]}" --input_size 32)
# 63 files, batch 9: 7 steps cover every file once per epoch (drop_last drops nothing)
COMMON=("${M[@]}" --data_path "$D" --batch_size 9 --warmup_epochs 1 --print_freq 1 --threads 2
        --recon_images 4 --save_every 1)

echo "== 2 epochs on the ImageFolder (num_workers 2)"
OUT="$WORK/run"
run_mae "$WORK/run" pretrain "${COMMON[@]}" --epochs 2 --num_workers 2 --output_dir "$OUT"
sig="$(crash_signature "$WORK/run.err")"
if ((RC == 0)) && [[ -z "$sig" ]]; then ok "pretrain exit 0"; else fail "pretrain exit $RC $sig: $(tail -n 5 "$WORK/run.err")"; fi
for f in class_b/zz_truncated.jpg class_c/zz_empty.png class_a/zz_text.jpg; do
    n=$(grep -c "warning: skipping bad file: .*$f" "$WORK/run.err")
    if ((n == 1)); then ok "one warning for $f: $(grep -m1 "$f" "$WORK/run.err")"; else fail "$n warnings for $f"; fi
done
if grep -q "notes.txt" "$WORK/run.err"; then fail "notes.txt (not an image extension) was read"; else ok "notes.txt never read"; fi
"$PY" "$HELPERS" check-log "$OUT" && pass_count=$((pass_count + 1)) || fail_count=$((fail_count + 1))
if (($(wc -l <"$OUT/log.txt") == 2)) && grep -q '"bad_files": 3' <(tail -n 1 "$OUT/log.txt"); then
    ok "log.txt: 2 epoch records, the last with bad_files 3"
else
    fail "log.txt: $(cat "$OUT/log.txt")"
fi
if (($(wc -l <"$OUT/steps.jsonl") == 14)); then ok "steps.jsonl: 14 step records"; else fail "steps.jsonl has $(wc -l <"$OUT/steps.jsonl") lines"; fi
for f in checkpoint-last checkpoint-0 checkpoint-1; do
    "$PY" "$HELPERS" check-official "$OUT/$f.safetensors" && pass_count=$((pass_count + 1)) || fail_count=$((fail_count + 1))
    [[ -f "$OUT/$f.state.safetensors" ]] && ok "$f.state.safetensors" || fail "no $f.state.safetensors"
done
if sz=$("$PY" -c "from PIL import Image; im = Image.open('$OUT/reconstruction.png'); im.load(); print(im.size)" 2>&1); then
    ok "reconstruction.png is a valid PNG of $sz"
    grep -q "reconstruction of 4 training images" "$WORK/run.out" && ok "picture of training images (no val/ split)" \
        || fail "picture: $(grep reconstruction "$WORK/run.out")"
else
    fail "reconstruction.png: $sz"
fi

echo "== progress: a live bar on a terminal, plain lines otherwise"
"$PY" "$HELPERS" tty-run "$WORK/tty.out" "$MAE" pretrain "${COMMON[@]}" --epochs 1 --num_workers 1 \
    --recon_images 0 --output_dir "$WORK/tty"
rc=$?
if ((rc == 0)) && grep -q $'\r\e\[Kepoch 1/1 \[####################\] 7/7 loss .* img/s data [0-9]*% ETA' "$WORK/tty.out"; then
    ok "terminal: live progress bar redrawn in place ($(grep -o $'\r\e\[K' "$WORK/tty.out" | wc -l) redraws)"
else
    fail "terminal: no progress bar (exit $rc): $(tail -c 300 "$WORK/tty.out" | cat -v)"
fi
if grep -q '^epoch 2/2 step 7/7 loss .* img/s .* data [0-9]*% ETA' "$WORK/run.out" && ! grep -q $'\r' "$WORK/run.out"; then
    ok "not a terminal: plain progress lines ($(grep -m1 '^epoch 2/2 step 7/7' "$WORK/run.out"))"
else
    fail "not a terminal: no plain progress lines: $(tail -n 2 "$WORK/run.out")"
fi

echo "== --strict"
expect_fail strict '^mae pretrain: .*zz_(truncated|empty|text).*strict' pretrain "${COMMON[@]}" --epochs 1 --strict --output_dir "$WORK/strict"

echo "== same data at any number of workers"
for w in 0 1 3; do
    run_mae "$WORK/w$w" pretrain "${COMMON[@]}" --epochs 2 --stop_after_epochs 1 --num_workers $w \
        --recon_images 0 --output_dir "$WORK/w$w"
    ((RC == 0)) || fail "num_workers $w: exit $RC: $(tail -n 3 "$WORK/w$w.err")"
    "$PY" "$HELPERS" log-steps "$WORK/w$w" "$WORK/w$w.steps" >/dev/null
done
if cmp -s "$WORK/w0.steps" "$WORK/w1.steps" && cmp -s "$WORK/w0.steps" "$WORK/w3.steps" && [[ -s "$WORK/w0.steps" ]]; then
    ok "num_workers 0, 1, 3: identical step records ($(wc -l <"$WORK/w0.steps") steps, last: $(tail -n 1 "$WORK/w0.steps"))"
else
    fail "step records differ between worker counts"; diff "$WORK/w0.steps" "$WORK/w3.steps" | head -n 4
fi


echo "== SIGINT mid-run, then --resume"
REF="$WORK/ref"
LONG=("${COMMON[@]}" --epochs 40 --recon_images 0)
run_mae "$WORK/ref" pretrain "${LONG[@]}" --stop_after_epochs 3 --output_dir "$REF"
"$PY" "$HELPERS" log-steps "$REF" "$WORK/ref.steps" >/dev/null
INT="$WORK/int"
mkdir -p "$INT"
"$MAE" pretrain "${LONG[@]}" --output_dir "$INT" >"$WORK/int.out" 2>"$WORK/int.err" &
pid=$!
for _ in $(seq 1 3000); do  # until 3 steps are logged (at most 60 s)
    [[ -f "$INT/steps.jsonl" ]] && (($(wc -l <"$INT/steps.jsonl") >= 3)) && break
    sleep 0.02
done
# twice at once, as `timeout` or a job scheduler delivers it (to the process and its group):
# the repeat must not kill the run before it has saved. (The two may also merge into one
# pending signal; under `timeout` the repeat killed the run before the fix.)
kill -INT $pid
kill -INT $pid
for _ in $(seq 1 600); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done  # at most 60 s
kill -KILL $pid 2>/dev/null && echo "note: killed the run that did not stop within 60 s"
wait $pid
rc=$?
at=$(wc -l <"$INT/steps.jsonl")
if ((rc == 130)) && grep -q "interrupted: s" "$WORK/int.out"; then
    ok "SIGINT after $at steps: exit 130, $(grep -m1 'interrupted' "$WORK/int.out")"
else
    fail "SIGINT: exit $rc, $(tail -n 2 "$WORK/int.out") $(tail -n 2 "$WORK/int.err")"
fi
if ((at < 21)); then
    run_mae "$WORK/int2" pretrain "${LONG[@]}" --resume "$INT/checkpoint-last.safetensors" \
        --stop_after_epochs $((3 - at / 7)) --output_dir "$INT"
    ((RC == 0)) || fail "resume after SIGINT: exit $RC: $(tail -n 3 "$WORK/int2.err")"
    grep -q "resuming epoch" "$WORK/int2.out" && ok "resumed: $(grep -m1 'resuming epoch' "$WORK/int2.out")" \
        || ok "resumed at an epoch boundary"
    "$PY" "$HELPERS" log-steps "$INT" "$WORK/int.steps" >/dev/null
    if cmp -s <(head -n 21 "$WORK/ref.steps") <(head -n 21 "$WORK/int.steps"); then
        ok "interrupted at step $at + resumed = uninterrupted: 21 identical step records"
    else
        fail "interrupted+resumed differs from uninterrupted"; diff "$WORK/ref.steps" "$WORK/int.steps" | head -n 6
    fi
else
    echo "note: the run reached step $at before SIGINT landed; resume comparison skipped"
fi

echo "== bad data roots"
mkdir -p "$WORK/empty" "$WORK/noimg/x" "$WORK/allbad/a"
echo "text" >"$WORK/noimg/x/readme.md"
echo "text" >"$WORK/allbad/a/one.jpg"
: >"$WORK/allbad/a/two.png"
expect_fail missing_root 'no_such_dir' pretrain "${M[@]}" --data_path "$WORK/no_such_dir" --output_dir "$WORK/o1"
expect_fail empty_root 'empty' pretrain "${M[@]}" --data_path "$WORK/empty" --output_dir "$WORK/o2"
expect_fail no_images 'no image files' pretrain "${M[@]}" --data_path "$WORK/noimg" --output_dir "$WORK/o3"
expect_fail all_bad 'no decodable image' pretrain "${M[@]}" --data_path "$WORK/allbad" --batch_size 1 --output_dir "$WORK/o4"
[[ ! -e "$WORK/o4/checkpoint-last.safetensors" ]] && ok "all_bad: nothing trained or written" || fail "all_bad wrote a checkpoint"

echo "== list file, flat folder, CIFAR-10"
(cd "$D" && find . -name 'img*' | sort | awk '{print $0, NR % 3}') >"$WORK/list.txt"
sed -i "s#^\./#$D/#" "$WORK/list.txt"
mkdir -p "$WORK/flat"
cp "$D"/class_a/img* "$WORK/flat/"
"$PY" - "$WORK/cifar" <<'EOF'
import os, sys, numpy as np
d = sys.argv[1]; os.makedirs(d, exist_ok=True)
rng = np.random.default_rng(0)
for i in range(1, 6):
    rec = np.zeros((20, 3073), np.uint8)
    rec[:, 0] = rng.integers(0, 10, 20)
    rec[:, 1:] = rng.integers(0, 256, (20, 3072))
    rec.tofile(os.path.join(d, f"data_batch_{i}.bin"))
EOF
for kind in list flat cifar; do
    case $kind in list) p="$WORK/list.txt";; flat) p="$WORK/flat";; cifar) p="$WORK/cifar";; esac
    run_mae "$WORK/k_$kind" pretrain "${M[@]}" --data_path "$p" --batch_size 8 --epochs 1 --threads 2 \
        --num_workers 2 --recon_images 2 --output_dir "$WORK/k_$kind"
    if ((RC == 0)) && [[ -f "$WORK/k_$kind/checkpoint-last.safetensors" ]]; then
        ok "$kind: trained ($(grep -m1 '^data:' "$WORK/k_$kind.out"))"
    else
        fail "$kind: exit $RC: $(tail -n 3 "$WORK/k_$kind.err")"
    fi
done
finish
