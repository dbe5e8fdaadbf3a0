#!/usr/bin/env bash
# run_loader_bench.sh - data-pipeline throughput per core: mae's decode + RandomResizedCrop(224,
# scale 0.2-1, bicubic) + flip + normalise vs torchvision + PIL doing the same transform on the
# same files (the peer ../shared/peers/torchvision_loader.py), both pinned to one core
# (taskset -c 0), interleaved, best of -r rounds each; prints the ratio.
#
# usage: bench/run_loader_bench.sh [-b build_dir] [-p peer_dir] [-n files] [-r rounds]
# The JPEGs (about 500x375, quality 90, from Debian's skimage/sklearn sample photos) are made by
# bench/make_jpegs.py into build_dir/bench_jpegs.
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
    *) sed -n '2,10p' "$0"; exit 2 ;;
    esac
done
py=${PYTHON:-/usr/bin/python3}
dir="$build/bench_jpegs"
if [[ ! -d "$dir" || $(ls "$dir" | wc -l) -ne $n ]]; then
    rm -rf "$dir"
    "$py" "$root/bench/make_jpegs.py" "$dir" "$n"
fi
best() { sed -n 's/.*median \([0-9]*\) img\/s.*/\1/p' | sort -n | tail -n 1; }
ours=() ; ours_nodct=() ; peer=()
for ((i = 0; i < rounds; i++)); do
    ours+=("$(taskset -c 0 "$build/loader_bench" "$dir" 224 5 1 0)")
    ours_nodct+=("$(taskset -c 0 "$build/loader_bench" "$dir" 224 5 0 0)")
    peer+=("$(taskset -c 0 "$py" "$peer_dir/torchvision_loader.py" "$dir" --reps 5)")
done
o=$(printf '%s\n' "${ours[@]}" | best)
o0=$(printf '%s\n' "${ours_nodct[@]}" | best)
p=$(printf '%s\n' "${peer[@]}" | best)
echo "${ours[0]}"
echo "${peer[0]}"
echo
echo "| pipeline (one core, $n JPEGs ~500x375 q90 -> 224) | img/s | vs torchvision+PIL |"
echo "|---|---:|---:|"
echo "| torchvision $("$py" -c 'import torchvision; print(torchvision.__version__)') + PIL | $p | 1.00x |"
echo "| mae, DCT scaling on (default) | $o | $(awk -v a="$o" -v b="$p" 'BEGIN{printf "%.2fx", a/b}') |"
echo "| mae, DCT scaling off | $o0 | $(awk -v a="$o0" -v b="$p" 'BEGIN{printf "%.2fx", a/b}') |"
