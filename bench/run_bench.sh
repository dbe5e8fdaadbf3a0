#!/usr/bin/env bash
# run_bench.sh - mae against the PyTorch peer, same machine, same run, as ratios.
#
# Sections (markdown tables on stdout, raw lines prefixed with '#'):
#   peak    the machine's SGEMM peak: the best of 5 `cblas_sgemm` 2048^3 timings (each itself
#           best of 3) that `mae bench` makes, at 2 threads and at 1; every mae run below gets
#           it as --peak, so "% of peak" is against one session-wide figure (a single timing
#           taken in one of the machine's slow phases can be half the real peak).
#   train   per config (tiny-28 b128, tiny-32 b128, small-224 b16, base-224 b8):
#           mae bench --mode train at --precision fp32 and bf16, and the peer
#           (torch_mae_cpu.py --mode train, norm_pix_loss) at both settings its README lists --
#           OMP_WAIT_POLICY=passive --threads 2, and --threads 1 (OpenBLAS alone on both cores)
#           -- keeping the faster.
#   infer   encoder-only inference on all tokens (base-224, batch 8): mae bench --mode infer
#           against the peer's --mode infer (forward_encoder, mask_ratio 0).
#   threads thread scaling: mae fp32 training at 1 and 2 threads, and the peer at 1 thread
#           (OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 --threads 1).
#   memory  base-224 training: peak RSS of mae (from mae bench) and of the peer (/usr/bin/time).
#
# -r N repeats every measurement N times, interleaved, and keeps the best of each side: on a
# shared, noisy machine the best run is the closest to the machine's uncontended speed.
#
# usage: bench/run_bench.sh [-m mae] [-p peer_dir] [-c "tiny-28 ..."] [-s "train infer threads memory"]
#                           [-r N] [-q]
#   -q  quick smoke test: 2 steps (numbers not for reporting)
# env: PYTHON (default /usr/bin/python3, which has Debian's python3-torch), STEPS_SCALE.
# mae runs with the environment it is given (OMP_* are printed with the results).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mae="$root/build/mae"
peer_dir="${MAE_PEER_DIR:-$root/../shared/peers}"
configs="tiny-28 tiny-32 small-224 base-224"
sections="train infer threads memory"
quick=0
reps=1
while getopts "m:p:c:s:r:qh" opt; do
    case $opt in
    m) mae="$OPTARG" ;;
    p) peer_dir="$OPTARG" ;;
    c) configs="$OPTARG" ;;
    s) sections="$OPTARG" ;;
    r) reps="$OPTARG" ;;
    q) quick=1 ;;
    *) sed -n '2,26p' "$0"; exit 2 ;;
    esac
done
python="${PYTHON:-/usr/bin/python3}"
scale="${STEPS_SCALE:-1}"
peer="$peer_dir/torch_mae_cpu.py"
[ -x "$mae" ] || { echo "run_bench: no mae binary at $mae (build first, or pass -m)" >&2; exit 1; }
[ -f "$peer" ] || { echo "run_bench: no peer at $peer (pass -p or set MAE_PEER_DIR)" >&2; exit 1; }
have() { case " $sections " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# batch, timed steps, warmup steps per config (peer and mae get the same)
params() {
    local b s w
    case $1 in
    tiny-28 | tiny-32) b=128 s=8 w=2 ;;
    small-224) b=16 s=8 w=2 ;;
    base-224) b=8 s=5 w=2 ;;
    *) echo "run_bench: unknown config $1" >&2; exit 2 ;;
    esac
    s=$((s * scale))
    if [ "$quick" = 1 ]; then s=2 w=1; fi
    echo "$b $s $w"
}
field() { echo "$2" | tr ' ' '\n' | sed -n "s|^$1=||p"; }
jfield() { echo "$2" | "$python" -c "import json,sys; print(json.loads(sys.stdin.read())['$1'])"; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 > b + 0) ? a : b }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }

# mae_best OUTVAR ARGS...: best `bench:` line over $reps runs (by img/s)
mae_best() {
    local __out=$1 best="" bips=0 line ips
    shift
    for _ in $(seq "$reps"); do
        line="$("$mae" bench "$@" | grep '^bench:')"
        echo "# $line" >&2
        ips="$(field img/s "$line")"
        if awk -v a="$ips" -v b="$bips" 'BEGIN { exit !(a > b) }'; then best="$line" bips="$ips"; fi
    done
    printf -v "$__out" '%s' "$best"
}

# peer_run MODE CFG BATCH STEPS WARMUP SETTING -> "img/s rss_kb"
peer_run() {
    local mode=$1 cfg=$2 batch=$3 steps=$4 warmup=$5 setting=$6 tmp out rss
    tmp="$(mktemp)"
    case $setting in
    passive2) out="$(env -u OPENBLAS_NUM_THREADS OMP_WAIT_POLICY=passive /usr/bin/time -f '%M' -o "$tmp" \
        "$python" "$peer" --config "$cfg" --mode "$mode" --batch "$batch" --threads 2 \
        --steps "$steps" --warmup "$warmup" | tail -1)" ;;
    t1) out="$(env -u OMP_WAIT_POLICY -u OPENBLAS_NUM_THREADS /usr/bin/time -f '%M' -o "$tmp" \
        "$python" "$peer" --config "$cfg" --mode "$mode" --batch "$batch" --threads 1 \
        --steps "$steps" --warmup "$warmup" | tail -1)" ;;
    single) out="$(env -u OMP_WAIT_POLICY OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /usr/bin/time -f '%M' -o "$tmp" \
        "$python" "$peer" --config "$cfg" --mode "$mode" --batch "$batch" --threads 1 \
        --steps "$steps" --warmup "$warmup" | tail -1)" ;;
    esac
    rss="$(tail -1 "$tmp")"
    rm -f "$tmp"
    echo "$(jfield img_per_s "$out") $rss"
}
# peer_best MODE CFG BATCH STEPS WARMUP -> "img/s setting rss_kb" (best of both settings, reps)
peer_best() {
    local best=0 bset="" brss=0 ips rss
    for _ in $(seq "$reps"); do
        for setting in passive2 t1; do
            read -r ips rss < <(peer_run "$@" "$setting")
            echo "# peer $1 $2 ($setting): $ips img/s, max RSS $((rss / 1024)) MB" >&2
            if awk -v a="$ips" -v b="$best" 'BEGIN { exit !(a > b) }'; then best="$ips" bset="$setting" brss="$rss"; fi
        done
    done
    echo "$best $bset $brss"
}
setting_desc() { case $1 in passive2) echo "OMP_WAIT_POLICY=passive --threads 2" ;; t1) echo "--threads 1" ;; *) echo "$1" ;; esac; }

model_name="$(lscpu | sed -n 's/^Model name: *//p' | head -1) (family $(lscpu | sed -n 's/^CPU family: *//p') model $(lscpu | sed -n 's/^Model: *//p'))"
echo "# run_bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $model_name, $(nproc) cpus"
echo "# repeats per measurement: $reps (best kept); sections: $sections"
echo "# mae: $mae (OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset} GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-unset} OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset})"
echo "# peer: $peer ($("$python" -c 'import torch; print("torch", torch.__version__)' 2>/dev/null))"

# session SGEMM peak at T threads: best of 5
sgemm_peak() {
    local best=0 p
    for _ in 1 2 3 4 5; do
        p="$("$mae" bench --model tiny-28 --batch_size 1 --steps 1 --warmup 0 --threads "$1" |
            sed -n 's/^sgemm peak: \([0-9.]*\) GFLOP.*/\1/p')"
        best="$(max "$p" "$best")"
    done
    echo "$best"
}
peak2="$(sgemm_peak 2)"
peak1="$(sgemm_peak 1)"
echo "# SGEMM peak (best of 5): $peak2 GFLOP/s at 2 threads, $peak1 at 1 thread"

if have train; then
    rows=()
    for cfg in $configs; do
        read -r batch steps warmup < <(params "$cfg")
        common=(--model "$cfg" --batch_size "$batch" --steps "$steps" --warmup "$warmup" --threads 2 --norm_pix_loss --peak "$peak2")
        mae_best f32 "${common[@]}" --precision fp32
        mae_best b16 "${common[@]}" --precision bf16
        read -r pips pset _ < <(peer_best train "$cfg" "$batch" "$steps" "$warmup")
        fi="$(field img/s "$f32")" bi="$(field img/s "$b16")"
        rows+=("| $cfg | $batch | $fi | $bi | $pips | $(div "$fi" "$pips")x | $(div "$bi" "$pips")x | $(field pct_peak "$f32")% | $(field pct_peak "$b16")% | $(setting_desc "$pset") |")
    done
    echo
    echo "Training (img/s; % of the session's SGEMM peak, $peak2 GFLOP/s):"
    echo
    echo "| config | batch | mae fp32 | mae bf16 | PyTorch (best) | fp32 / PyTorch | bf16 / PyTorch | fp32 % of peak | bf16 % of peak | PyTorch setting |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for r in "${rows[@]}"; do echo "$r"; done
fi

if have infer; then
    read -r batch steps warmup < <(params base-224)
    common=(--model base-224 --mode infer --batch_size "$batch" --steps "$steps" --warmup "$warmup" --threads 2 --peak "$peak2")
    mae_best f32 "${common[@]}" --precision fp32
    mae_best b16 "${common[@]}" --precision bf16
    read -r pips pset _ < <(peer_best infer base-224 "$batch" "$steps" "$warmup")
    fi="$(field img/s "$f32")" bi="$(field img/s "$b16")"
    echo
    echo "Encoder-only inference on all 197 tokens (base-224, batch $batch):"
    echo
    echo "| mae fp32 | mae bf16 | PyTorch (best) | fp32 / PyTorch | bf16 / PyTorch | fp32 % of peak | PyTorch setting |"
    echo "|---|---|---|---|---|---|---|"
    echo "| $fi | $bi | $pips | $(div "$fi" "$pips")x | $(div "$bi" "$pips")x | $(field pct_peak "$f32")% | $(setting_desc "$pset") |"
fi

if have threads; then
    rows=()
    for cfg in $configs; do
        read -r batch steps warmup < <(params "$cfg")
        common=(--model "$cfg" --batch_size "$batch" --steps "$steps" --warmup "$warmup" --norm_pix_loss --precision fp32)
        mae_best t1 "${common[@]}" --threads 1 --peak "$peak1"
        mae_best t2 "${common[@]}" --threads 2 --peak "$peak2"
        best1=0
        for _ in $(seq "$reps"); do
            read -r ips _ < <(peer_run train "$cfg" "$batch" "$steps" "$warmup" single)
            echo "# peer train $cfg (1 thread): $ips img/s" >&2
            best1="$(max "$ips" "$best1")"
        done
        a="$(field img/s "$t1")" b="$(field img/s "$t2")"
        rows+=("| $cfg | $a | $b | $(div "$b" "$a")x | $best1 | $(div "$a" "$best1")x |")
    done
    echo
    echo "Thread scaling (fp32 training, img/s):"
    echo
    echo "| config | mae 1 thread | mae 2 threads | mae 2 / 1 | PyTorch 1 thread | mae / PyTorch at 1 thread |"
    echo "|---|---|---|---|---|---|"
    for r in "${rows[@]}"; do echo "$r"; done
fi

if have memory; then
    read -r batch steps warmup < <(params base-224)
    common=(--model base-224 --batch_size "$batch" --steps "$steps" --warmup "$warmup" --threads 2 --norm_pix_loss --peak "$peak2")
    mae_best f32 "${common[@]}" --precision fp32
    read -r _ _ prss < <(peer_best train base-224 "$batch" "$steps" "$warmup")
    rss="$(field rss_mb "$f32")" buf="$(field buffers_mb "$f32")"
    echo
    echo "Peak RSS, base-224 training, batch $batch (MB):"
    echo
    echo "| mae RSS | mae params + grads + AdamW + activations | mae RSS / buffers | PyTorch RSS | mae / PyTorch |"
    echo "|---|---|---|---|---|"
    echo "| $rss | $buf | $(div "$rss" "$buf") | $((prss / 1024)) | $(div "$rss" "$((prss / 1024))") |"
fi
