#!/usr/bin/env bash
# test_bench_flags.sh - the `mae bench` flags of the GPU benchmark, on any machine:
# --json writes one JSON object with the printed numbers; --loss_window prints the mean loss of
# the last N steps (and equals it in the JSON); --synthetic smooth trains (the loss falls below
# the white-noise level); bad values are usage errors (exit 2); --device cuda either runs
# (RESULT line, exit 0) or, without a usable GPU, exits 2 naming the device and why.
#
# usage: test_bench_flags.sh <mae binary> <python>
set -u
source "$(dirname "$0")/lib.sh"
setup_common "$@"

B=(bench "${SMALL_MODEL[@]}" --batch_size 4 --warmup 0 --peak 1 --threads 2)
run() { # name args...: runs mae, sets RC; stdout/stderr in $WORK/name.out/.err
    local n=$1; shift
    "$MAE" "$@" >"$WORK/$n.out" 2>"$WORK/$n.err"
    RC=$?
    local c; c=$(crash_signature "$WORK/$n.err")
    [[ -n "$c" ]] && fail "$n: crash: $c"
}

run json "${B[@]}" --steps 6 --loss_window 3 --synthetic smooth --seed 3 --lr 1e-3 \
    --peak_tflops 0.5 --json "$WORK/r.json"
if ((RC == 0)) && "$PY" - "$WORK/r.json" "$WORK/json.out" <<'PYEOF'
import json, math, re, sys
r = json.load(open(sys.argv[1]))
out = open(sys.argv[2]).read()
m = re.search(r"^loss: mean of the last 3 steps ([0-9.]+) ", out, re.M)
assert m, "no loss line"
assert r["device"] == "cpu" and r["mode"] == "train" and r["batch"] == 4 and r["steps"] == 6
assert r["synthetic"] == "smooth" and r["seed"] == 3 and r["loss_window"] == 3
assert abs(r["loss_mean"] - float(m.group(1))) < 1e-5, (r["loss_mean"], m.group(1))
assert r["img_per_s"] > 0 and r["ms_per_step"] > 0 and math.isfinite(r["loss"])
assert abs(r["mfu"] - r["tflops"] / 0.5) <= 1e-5 * r["mfu"], r  # %.6g in the JSON
assert r["peak_mem_gb"] is None and r["h2d_ms"] is None
assert re.search(r"^mfu: [0-9.]+% of 0.500 TFLOP/s", out, re.M), "no mfu line"
PYEOF
then ok "json: --json, --loss_window and --peak_tflops agree with stdout"
else fail "json: exit $RC $(tail -c 300 "$WORK/json.err")"; fi

# without the new flags the CPU output has no loss/mfu/RESULT lines
run plain "${B[@]}" --steps 1
if ((RC == 0)) && ! grep -qE '^(loss|mfu|RESULT)' "$WORK/plain.out" && grep -q '^bench: ' "$WORK/plain.out"; then
    ok "plain: the CPU output as before"
else fail "plain: exit $RC: $(cat "$WORK/plain.out")"; fi

for c in "synthetic|--synthetic must be noise or smooth|--synthetic foo" \
         "peak_tflops|--peak_tflops must be >= 0|--peak_tflops -1" \
         "loss_window_infer|--loss_window must be >= 0, and 0 with --mode infer|--mode infer --loss_window 5" \
         "lr|--lr must be >= 0|--lr -1" \
         "device|--device tpu: unknown device 'tpu'|--device tpu"; do
    IFS='|' read -r n re args <<<"$c"
    # shellcheck disable=SC2086
    run "bad_$n" "${B[@]}" --steps 1 $args
    if ((RC == 2)) && grep -q -- "$re" "$WORK/bad_$n.err"; then ok "bad_$n: exit 2"
    else fail "bad_$n: exit $RC, expected 2 with '$re': $(head -c 300 "$WORK/bad_$n.err")"; fi
done

run cuda "${B[@]}" --steps 1 --device cuda
if ((RC == 0)) && grep -q '^RESULT {' "$WORK/cuda.out"; then
    ok "cuda: ran ($(grep '^bench:' "$WORK/cuda.out"))"
elif ((RC == 2)) && grep -q '^mae bench: --device cuda: ' "$WORK/cuda.err"; then
    ok "cuda: exit 2: $(head -c 200 "$WORK/cuda.err")"
else fail "cuda: exit $RC: $(head -c 300 "$WORK/cuda.err")"; fi
finish
