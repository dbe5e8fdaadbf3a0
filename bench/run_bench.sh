#!/usr/bin/env bash
# run_bench.sh - mae training throughput vs the PyTorch peer, same machine, same run.
#
# For each config (tiny-28 batch 128, tiny-32 128, small-224 16, base-224 8) runs
#   mae bench --model X --batch_size B --steps S --warmup W --threads T --norm_pix_loss
# and the PyTorch peer (torch_mae_cpu.py --mode train, norm_pix_loss on by default) at both
# settings its README lists -- OMP_WAIT_POLICY=passive with --threads 2, and --threads 1 (so
# OpenBLAS alone uses both cores) -- keeping the faster, then prints a markdown table.
#
# With -r N every measurement (mae, and the peer at each setting) is repeated N times,
# interleaved, and the best of each is kept: on a shared, noisy machine the best run is the
# closest to the machine's uncontended speed, for both sides alike.
#
# usage: bench/run_bench.sh [-m path/to/mae] [-p peer_dir] [-c "tiny-28 tiny-32 ..."] [-r N] [-q]
#   -m  mae binary (default: build/mae under the repo root)
#   -p  directory holding torch_mae_cpu.py (default: $MAE_PEER_DIR, else ../shared/peers
#       relative to the repo root)
#   -c  configs to run (default: all four)
#   -r  repeats per measurement, best kept (default 1; 2 takes about 6 minutes)
#   -q  quick: fewer steps (smoke test, numbers not for reporting)
# env: PYTHON (default /usr/bin/python3, which has Debian's python3-torch),
#      MAE_THREADS (default 2), STEPS_SCALE (multiply the step counts, default 1).
# mae runs with the environment it is given (document OMP_* settings alongside the numbers);
# the peer's OMP_WAIT_POLICY is set per setting as above.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mae="$root/build/mae"
peer_dir="${MAE_PEER_DIR:-$root/../shared/peers}"
configs="tiny-28 tiny-32 small-224 base-224"
quick=0
reps=1
while getopts "m:p:c:r:qh" opt; do
    case $opt in
    m) mae="$OPTARG" ;;
    p) peer_dir="$OPTARG" ;;
    c) configs="$OPTARG" ;;
    r) reps="$OPTARG" ;;
    q) quick=1 ;;
    *) sed -n '2,25p' "$0"; exit 2 ;;
    esac
done
python="${PYTHON:-/usr/bin/python3}"
threads="${MAE_THREADS:-2}"
scale="${STEPS_SCALE:-1}"
peer="$peer_dir/torch_mae_cpu.py"
[ -x "$mae" ] || { echo "run_bench: no mae binary at $mae (build first, or pass -m)" >&2; exit 1; }
[ -f "$peer" ] || { echo "run_bench: no peer at $peer (pass -p or set MAE_PEER_DIR)" >&2; exit 1; }

# batch, timed steps, warmup steps per config (peer and mae get the same)
params() {
    case $1 in
    tiny-28) echo "128 8 2" ;;
    tiny-32) echo "128 8 2" ;;
    small-224) echo "16 8 2" ;;
    base-224) echo "8 5 2" ;;
    *) echo "run_bench: unknown config $1" >&2; exit 2 ;;
    esac
}

field() { # field NAME LINE: value of NAME=... in a `mae bench` line
    echo "$2" | tr ' ' '\n' | sed -n "s|^$1=||p"
}
peer_ips() { # peer_ips JSONLINE
    echo "$1" | "$python" -c 'import json,sys; print(json.loads(sys.stdin.read())["img_per_s"])'
}

model_name="$(lscpu | sed -n 's/^Model name: *//p' | head -1) (family $(lscpu | sed -n 's/^CPU family: *//p') model $(lscpu | sed -n 's/^Model: *//p'))"
echo "# run_bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $model_name, $(nproc) cpus"
echo "# repeats per measurement: $reps (best kept)"
echo "# mae: $mae (threads $threads; OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}" \
    "GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-unset} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-unset})"
echo "# peer: $peer ($("$python" -c 'import torch; print("torch", torch.__version__)' 2>/dev/null))"

rows=()
for cfg in $configs; do
    read -r batch steps warmup < <(params "$cfg")
    steps=$((steps * scale))
    if [ "$quick" = 1 ]; then steps=2; warmup=1; fi
    mips=0
    mgf=0
    best=0
    best_set=""
    for rep in $(seq "$reps"); do
        line="$("$mae" bench --model "$cfg" --batch_size "$batch" --steps "$steps" \
            --warmup "$warmup" --threads "$threads" --norm_pix_loss | grep '^bench:')"
        echo "$line"
        ips="$(field img/s "$line")"
        if awk -v a="$ips" -v b="$mips" 'BEGIN { exit !(a > b) }'; then
            mips="$ips"
            mgf="$(field gflops "$line")"
        fi
        # PyTorch: both README settings, keep the faster
        for setting in passive2 t1; do
            if [ "$setting" = passive2 ]; then
                out="$(env -u OPENBLAS_NUM_THREADS OMP_WAIT_POLICY=passive "$python" "$peer" \
                    --config "$cfg" --mode train --batch "$batch" --threads 2 --steps "$steps" \
                    --warmup "$warmup" | tail -1)"
                desc="OMP_WAIT_POLICY=passive --threads 2"
            else
                out="$(env -u OMP_WAIT_POLICY -u OPENBLAS_NUM_THREADS "$python" "$peer" \
                    --config "$cfg" --mode train --batch "$batch" --threads 1 --steps "$steps" \
                    --warmup "$warmup" | tail -1)"
                desc="--threads 1"
            fi
            ips="$(peer_ips "$out")"
            echo "# peer $cfg ($desc): $ips img/s"
            if awk -v a="$ips" -v b="$best" 'BEGIN { exit !(a > b) }'; then
                best="$ips"
                best_set="$desc"
            fi
        done
    done
    ratio="$(awk -v a="$mips" -v b="$best" 'BEGIN { printf "%.2f", a / b }')"
    rows+=("| $cfg | $batch | $mips | $best | ${ratio}x | $mgf | $best_set |")
done

echo
echo "| config | batch | mae img/s | PyTorch img/s (best) | mae / PyTorch | mae GFLOP/s | PyTorch setting |"
echo "|---|---|---|---|---|---|---|"
for r in "${rows[@]}"; do echo "$r"; done
