#!/usr/bin/env bash
# pack_device.sh - prepare .dev/ for a run on a lent GPU machine (bench/gpu_check.sh runs there).
#
# The lent machine gets the git working tree plus the ignored paths it is told to carry (64 MiB
# in all), but not build/ (hundreds of MB of test data) nor this machine's Debian libraries.
# So this script:
#   1. configures and builds a Release with the CUDA backend in build-dev/ (only the targets the
#      run needs), with -march=x86-64-v3 (MAE_MARCH) instead of native: the GPU host's CPU is
#      unknown and a -march=native binary from this AVX-512 machine could die of SIGILL there;
#   2. copies those binaries to .dev/bin/ (mae, test_ops, test_cls_ops, test_cuda_model when that
#      target exists, kernel_bench);
#   3. packs every shared library they need that is neither glibc (libc, libm, libpthread, libdl,
#      librt, ld-linux) nor CUDA (libcublas*, libcudart*, libcuda, libnvidia*: the GPU machine
#      has its own) into .dev/libs.tar.xz (xz -9; libopenblas alone is ~36 MB unpacked).
#      libstdc++/libgcc_s go to .dev/libs-fallback.tar.xz: gpu_check.sh uses them only if the
#      GPU machine lacks them (a newer system libstdc++ must win, cuBLAS may need it);
#   4. copies the GPU peer ../shared/peers/torch_mae_gpu.py to .dev/peers/ (shared/ does not
#      travel);
#   5. prints the size of .dev and of the tracked tree.
# Then run on the GPU machine with carry [".dev"]: bash bench/gpu_check.sh (OUT set).
#
# usage: tools/pack_device.sh [-j N]      env: MAE_MARCH (default x86-64-v3), PEER_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=2
[[ "${1:-}" == "-j" ]] && jobs=$2
march=${MAE_MARCH:-x86-64-v3}
peer_dir=${PEER_DIR:-../shared/peers}
[[ -f "$peer_dir/torch_mae_gpu.py" ]] || peer_dir=/work/shared/peers
bd=build-dev

echo "== configure + build ($bd: Release, MAE_CUDA=ON, -march=$march)"
cmake -B "$bd" -S . -DCMAKE_BUILD_TYPE=Release -DMAE_CUDA=ON -DMAE_MARCH="$march" >/dev/null
targets=(mae_cli test_ops test_cls_ops test_bf16_ops test_cuda_model kernel_bench)
cmake --build "$bd" -j"$jobs" --target "${targets[@]}"

echo "== .dev/bin"
rm -rf .dev
mkdir -p .dev/bin .dev/peers .dev/lib .dev/lib-fallback
cp "$bd/mae" "$bd/kernel_bench" .dev/bin/
cp "$bd/tests/test_ops" "$bd/tests/test_cls_ops" .dev/bin/
cp "$bd/tests/test_cuda_model" "$bd/tests/test_bf16_ops" .dev/bin/
ls -l .dev/bin

echo "== shared libraries"
# glibc and the dynamic loader: the GPU machine has its own (Ubuntu 22.04+: glibc >= 2.35; these
# binaries need GLIBC_2.34 at most, checked below)
skip='^(linux-vdso|libc|libm|libpthread|libdl|librt|libutil|libresolv|ld-linux[^ ]*)\.so'
cuda='^(libcublas|libcublasLt|libcudart|libcuda|libnvidia|libnvrtc|libnvJitLink)'
fallback='^(libstdc\+\+|libgcc_s)\.so'
declare -A seen=()
for b in .dev/bin/*; do
    while read -r name _ path _; do
        [[ -z "$name" || "$name" =~ $skip || "$name" =~ $cuda ]] && continue
        [[ "$path" == "not" ]] && { echo "FAIL: $b needs $name, not found here"; exit 1; }
        [[ -n "${seen[$name]:-}" ]] && continue
        seen[$name]=1
        if [[ "$name" =~ $fallback ]]; then
            cp -L "$path" ".dev/lib-fallback/$name"
        else
            cp -L "$path" ".dev/lib/$name"
        fi
    done < <(ldd "$b" | awk '/=>/ {print $1, $2, $3, $4}')
done
ls -l .dev/lib .dev/lib-fallback
# the newest glibc symbol version anything here needs
glibc_need() { for f in "$@"; do objdump -T "$f" 2>/dev/null; done | grep -o 'GLIBC_[0-9.]*' |
    sort -uV | tail -1; }
need="needs $(glibc_need .dev/bin/* .dev/lib/*) (binaries + libs), $(glibc_need .dev/lib-fallback/*) (fallback)"
echo "newest glibc symbol version: $need"
tar -C .dev/lib -cf - . | xz -9 -T2 > .dev/libs.tar.xz
tar -C .dev/lib-fallback -cf - . | xz -9 -T2 > .dev/libs-fallback.tar.xz
rm -rf .dev/lib .dev/lib-fallback

echo "== peers"
cp "$peer_dir/torch_mae_gpu.py" .dev/peers/
{
    echo "built $(date -u +%FT%TZ) from $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!.dev' || echo '+dirty')"
    echo "march $march; $(nvcc --version | tail -1); $need"
} > .dev/BUILD_INFO
cat .dev/BUILD_INFO

echo "== size"
du -ab .dev | sort -n | tail -12
dev=$(du -sb .dev | cut -f1)
tracked=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
untracked=$(git ls-files -z --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1)
echo ".dev: $dev bytes ($((dev / 1048576)) MiB); tracked tree: $tracked bytes; untracked, not ignored: ${untracked:-0} bytes"
echo "would travel: $((dev + tracked + ${untracked:-0})) bytes ($(((dev + tracked + ${untracked:-0}) / 1048576)) MiB of 64 MiB)"
