#!/usr/bin/env bash
# run_loader_bench.sh - data-pipeline throughput per core: mae's read + decode +
# RandomResizedCrop(224, scale 0.2-1, bicubic) + flip + normalise vs torchvision + PIL doing the
# same transform on the same files (the peer ../shared/peers/torchvision_loader.py), both pinned
# to one core (taskset -c 0), interleaved, best of -r rounds each; prints a markdown table.
#
# Two sets of JPEGs, made by bench/make_jpegs.py from Debian's skimage/sklearn sample photos
# (quality 90): -n ImageNet-like ~500x375 files (the target), and n/4 "phone photos" 2000x1500,
# where decoding at a reduced DCT scale matters.
#
# usage: bench/run_loader_bench.sh [-b build_dir] [-p peer_dir] [-n files] [-r rounds]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build"
peer_dir="${MAE_PEER_DIR:-$root/../shared/peers}"
n=200
rounds=3
while getopts "b:p:n:r:h" opt; do
    case $opt in
    b) build="$OPTARG" ;;
    p) peer_dir="$OPTARG" ;;
    n) n="$OPTARG" ;;
    r) rounds="$OPTARG" ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
    esac
done
py=${PYTHON:-/usr/bin/python3}
best() { sed -n 's/.*median \([0-9]*\) img\/s.*/\1/p' | sort -n | tail -n 1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2fx", a/b}'; }

echo "| files (one core, -> 224x224) | torchvision $("$py" -c 'import torchvision; print(torchvision.__version__)') + PIL img/s | mae img/s (DCT scaling on, default) | ratio | mae, DCT scaling off | ratio |"
echo "|---|---:|---:|---:|---:|---:|"
for set in "$n 500" "$((n / 4)) 2000"; do
    read -r count long <<<"$set"
    dir="$build/bench_jpegs_$long"
    if [[ ! -d "$dir" || $(ls "$dir" | wc -l) -ne $count ]]; then
        rm -rf "$dir"
        "$py" "$root/bench/make_jpegs.py" "$dir" "$count" "$long" >/dev/null
    fi
    ours=() ; ours0=() ; peer=()
    for ((i = 0; i < rounds; i++)); do
        ours+=("$(taskset -c 0 "$build/loader_bench" "$dir" 224 5 1 0)")
        ours0+=("$(taskset -c 0 "$build/loader_bench" "$dir" 224 5 0 0)")
        peer+=("$(taskset -c 0 "$py" "$peer_dir/torchvision_loader.py" "$dir" --reps 5)")
    done
    o=$(printf '%s\n' "${ours[@]}" | best)
    o0=$(printf '%s\n' "${ours0[@]}" | best)
    p=$(printf '%s\n' "${peer[@]}" | best)
    echo "| $count JPEGs ~${long}x$((long * 3 / 4)) q90 | $p | $o | $(ratio "$o" "$p") | $o0 | $(ratio "$o0" "$p") |"
done
