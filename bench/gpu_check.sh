#!/usr/bin/env bash
# gpu_check.sh - the one run on a lent GPU machine: correctness of the CUDA backend, then our
# throughput against the PyTorch peers. Prepared here by tools/pack_device.sh (carry: .dev).
#
# usage (repo root, on the GPU machine): OUT=/some/dir bash bench/gpu_check.sh
# env: GPU_CHECK_BUDGET  seconds the whole script may take (default 430, for a 480 s limit;
#                        every step's timeout is cut to what is left, keeping 15 s for the
#                        closing table)
#
# Order (the most important results first, so that they exist even if a later step runs out of
# time): setup; a. op tests against the CPU/double references; d. torch bf16 matmul peak;
# e. our bench (ViT-B/16 b256, ViT-L/16 b128, encoder inference b256, bf16; then ViT-B fp32);
# f. the peers (torch_mae_gpu.py; bench/torch_embed_gpu.py); table; c. bf16 vs fp32 loss on
# tiny-32; b. compute-sanitizer memcheck and racecheck; table again (g).
# Files in OUT (at most 8 come back): log.txt (everything), summary.txt (step status + table),
# ours.jsonl, gpu_peer.json + gpu_peer_lines.jsonl, gpu_embed_peer.json, steplogs.tar.gz.
set -uo pipefail
cd "$(dirname "$0")/.."
export MAE_TEST_REQUIRE_DEVICE=1 # here a test that skips for want of a GPU is a failure
OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT"
W=/tmp/gpucheck                      # per-step logs and JSON (tarred into OUT at the end)
rm -rf "$W" && mkdir -p "$W"
LOG=$OUT/log.txt SUM=$OUT/summary.txt
: >"$LOG"; : >"$SUM"; : >"$OUT/ours.jsonl"
BUDGET=${GPU_CHECK_BUDGET:-430}
START=$(date +%s)
PEAK=""

say() { echo "$*" | tee -a "$LOG"; }
left() { echo $((BUDGET - ($(date +%s) - START))); }
# step NAME TIMEOUT CMD...: runs CMD under timeout (cut to the time left), output to
# $W/NAME.log and, the first 200 lines, to log.txt; records NAME status seconds in summary.txt.
# Returns CMD's exit status (124: timed out; 200: skipped, no time left).
step() {
    local name=$1 t=$2; shift 2
    local l; l=$(($(left) - 15))
    ((t > l)) && t=$l
    if ((t < 5)); then
        say "== $name: SKIPPED (no time left)"
        printf '%-22s SKIP   (no time left)\n' "$name" >>"$SUM"
        return 200
    fi
    say "== $name (timeout ${t}s): $*"
    local t0=$(date +%s)
    timeout -k 5 "$t" "$@" >"$W/$name.log" 2>&1
    local rc=$?
    local dt=$(($(date +%s) - t0))
    # into log.txt: the first 200 lines (the op tests: without their CPU backend's section,
    # FAIL lines kept)
    local n
    n=$(nocpu <"$W/$name.log" | tee >(head -n 200 >>"$LOG") | wc -l)
    ((n > 200)) && echo "... ($n lines; all in steplogs.tar.gz: $name.log)" >>"$LOG"
    local st=PASS
    ((rc == 124 || rc == 137)) && st=TIMEOUT
    ((rc != 0 && rc != 124 && rc != 137)) && st=FAIL
    say "-- $name: $st (rc $rc, ${dt}s)"
    printf '%-22s %-7s rc %-3s %4ss\n' "$name" "$st" "$rc" "$dt" >>"$SUM"
    return $rc
}
nocpu() {
    awk '/^== backend cpu$/ {skip = 1; print "(CPU backend section omitted)"; next}
         /^== backend / {skip = 0} !skip || /FAIL/'
}
table() {
    say "== table ($1)"
    timeout 20 python3 bench/gpu_table.py "$OUT" "$PEAK" 2>&1 | tee -a "$LOG" "$SUM" >/dev/null
}
finish() {
    tar -C "$W" -czf "$OUT/steplogs.tar.gz" . 2>/dev/null
    say "== done in $(($(date +%s) - START)) s"
}
trap finish EXIT

# ---- setup: our libraries for our binaries only (python/torch keep their own)
say "== setup $(date -u +%FT%TZ) $(cat /proc/sys/kernel/hostname) budget ${BUDGET}s"
cat .dev/BUILD_INFO 2>&1 | tee -a "$LOG"
DEVLIB=/tmp/devlib
rm -rf "$DEVLIB" && mkdir -p "$DEVLIB/fallback"
# (python's lzma where tar has no xz)
unxz_to() {
    tar -C "$2" -xJf "$1" 2>/dev/null ||
        python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2"
}
unxz_to .dev/libs.tar.xz "$DEVLIB" 2>&1 | tee -a "$LOG"
unxz_to .dev/libs-fallback.tar.xz "$DEVLIB/fallback" 2>&1 | tee -a "$LOG"
echo "libraries: $(ls "$DEVLIB" | tr '\n' ' ')" | tee -a "$LOG"
CUDALIB=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [[ -d $d ]] && CUDALIB=$CUDALIB:$d
done
# pip's CUDA libraries (torch's nvidia-* wheels): dirs holding libcublas* or libcudart*
PYCUDA=$(timeout 30 python3 - <<'EOF' 2>/dev/null
import glob, os
try:
    import nvidia
    roots = list(nvidia.__path__)
except Exception:
    roots = []
ds = []
for r in roots:
    for pat in ("*/lib", "*/*/lib", "lib"):
        for d in glob.glob(os.path.join(r, pat)):
            if glob.glob(os.path.join(d, "libcublas*")) or glob.glob(os.path.join(d, "libcudart*")):
                ds.append(d)
print(":".join(sorted(set(ds))))
EOF
)
OURLD=$DEVLIB$CUDALIB${PYCUDA:+:$PYCUDA}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# libstdc++ / libgcc_s from the build machine only when this one has none
if LD_LIBRARY_PATH=$OURLD ldd .dev/bin/mae | grep -qE '(libstdc\+\+|libgcc_s).*not found'; then
    OURLD=$OURLD:$DEVLIB/fallback
fi
export OURLD
say "LD_LIBRARY_PATH for our binaries: $OURLD"
OURS=(env "LD_LIBRARY_PATH=$OURLD") # (a prefix, not a function: timeout runs it)
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
{
    echo "-- nvidia-smi -L"; timeout 20 nvidia-smi -L
    timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    echo "-- CPU: $(grep -m1 'model name' /proc/cpuinfo) ($(nproc) cores); $(ldd --version | head -1)"
    echo "-- ldd .dev/bin/mae, not found:"; LD_LIBRARY_PATH=$OURLD ldd .dev/bin/mae | grep 'not found'
    echo "-- ldd .dev/bin/mae, CUDA:"; LD_LIBRARY_PATH=$OURLD ldd .dev/bin/mae | grep -iE 'cublas|cudart|stdc'
    echo "-- compute-sanitizer: ${SAN:-none}"
    echo "-- python: $(timeout 60 python3 -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())' 2>&1 | tail -1)"
} 2>&1 | tee -a "$LOG"
HAVE_GPU=0
timeout 20 nvidia-smi -L >/dev/null 2>&1 && HAVE_GPU=1
say "GPU present: $HAVE_GPU"

# ---- a. op tests: every op against the CPU backend / double references
step test_ops 90 "${OURS[@]}" .dev/bin/test_ops cuda
grep -E '^== backend|test_ops:' "$W/test_ops.log" | tee -a "$SUM"
step test_cls_ops 90 "${OURS[@]}" .dev/bin/test_cls_ops cuda
tail -n 3 "$W/test_cls_ops.log" | tee -a "$SUM"
if [[ -x .dev/bin/test_cuda_model ]]; then
    step test_cuda_model 90 "${OURS[@]}" .dev/bin/test_cuda_model
    tail -n 3 "$W/test_cuda_model.log" | tee -a "$SUM"
fi

# the bf16 contract (both ways of feeding cuBLAS bf16), and the batched-GEMM attention
step test_bf16_ops 60 "${OURS[@]}" .dev/bin/test_bf16_ops cuda
tail -n 1 "$W/test_bf16_ops.log" | tee -a "$SUM"
# (MAE_CUDA_BF16=fast is expected to fail the rounded checks: cuBLAS's FAST_16BF is not bf16)
step test_bf16_fast 60 "${OURS[@]}" MAE_CUDA_BF16=fast .dev/bin/test_bf16_ops cuda
tail -n 1 "$W/test_bf16_fast.log" | tee -a "$SUM"
step test_ops_flash_att 90 "${OURS[@]}" MAE_CUDA_ATTENTION=flash .dev/bin/test_ops cuda
grep -E '^== backend|test_ops:' "$W/test_ops_flash_att.log" | tee -a "$SUM"
step test_bf16_flash_att 60 "${OURS[@]}" MAE_CUDA_ATTENTION=flash .dev/bin/test_bf16_ops cuda
tail -n 1 "$W/test_bf16_flash_att.log" | tee -a "$SUM"
step test_cuda_model_flash 90 "${OURS[@]}" MAE_CUDA_ATTENTION=flash .dev/bin/test_cuda_model
tail -n 1 "$W/test_cuda_model_flash.log" | tee -a "$SUM"

# the NCCL gradient path in a world of 1 (issue 8: multi-GPU is not possible on one GPU): the
# same losses as without it
step nccl_world1 60 "${OURS[@]}" MAE_DIST_FORCE_SYNC=1 .dev/bin/mae pretrain --device cuda \
    --precision bf16 --model tiny-28 --num_samples 2048 --batch_size 256 --epochs 1 \
    --warmup_epochs 1 --recon_images 0 --output_dir /tmp/nccl1 --seed 5
step nccl_off 60 "${OURS[@]}" .dev/bin/mae pretrain --device cuda --precision bf16 \
    --model tiny-28 --num_samples 2048 --batch_size 256 --epochs 1 --warmup_epochs 1 \
    --recon_images 0 --output_dir /tmp/nccl0 --seed 5
{ echo "nccl world 1 losses:"; tail -n 2 /tmp/nccl1/steps.jsonl; echo "without:"; tail -n 2 /tmp/nccl0/steps.jsonl; } 2>&1 | tee -a "$SUM"

# ---- d. the torch bf16 matmul peak (8192^3, 10 timed reps after 3 warmup) -> PEAK
step torch_peak 60 python3 -c "
import torch, time
a = torch.randn(8192, 8192, device='cuda', dtype=torch.bfloat16); b = torch.randn_like(a)
for _ in range(3): c = a @ b
torch.cuda.synchronize(); t = time.time()
for _ in range(10): c = a @ b
torch.cuda.synchronize(); dt = (time.time() - t) / 10
print('PEAK %.1f' % (2 * 8192**3 / dt / 1e12))"
PEAK=$(grep -oE '^PEAK [0-9.]+' "$W/torch_peak.log" | awk '{print $2}')
say "PEAK=${PEAK:-unmeasured} TFLOP/s"
PEAKARG=()
[[ -n "$PEAK" ]] && PEAKARG=(--peak_tflops "$PEAK")

# ---- e. our bench (device cuda): tag, timeout, flags
bench() {
    local tag=$1 t=$2; shift 2
    local envs=() args=()
    while (($#)); do
        if [[ $1 == --env ]]; then envs+=("$2"); shift 2; else args+=("$1"); shift; fi
    done
    set -- "${args[@]}"
    step "bench_$tag" "$t" "${OURS[@]}" "${envs[@]}" .dev/bin/mae bench --device cuda "${PEAKARG[@]}" \
        --json "$W/ours_$tag.json" "$@"
    local rc=$?
    grep -E '^(bench|throughput|memory|copies|loss):' "$W/bench_$tag.log" | tee -a "$SUM"
    if [[ -s "$W/ours_$tag.json" ]]; then
        printf '{"tag": "%s", "result": %s}\n' "$tag" "$(cat "$W/ours_$tag.json")" >>"$OUT/ours.jsonl"
    fi
    return $rc
}
bench base_bf16 90 --model mae_vit_base_patch16 --batch_size 256 --precision bf16 --warmup 3 --steps 20
bench base_bf16_flash_att 60 --model mae_vit_base_patch16 --batch_size 256 --precision bf16 --warmup 2 --steps 10 --env MAE_CUDA_ATTENTION=flash
bench base_bf16_phases 60 --model mae_vit_base_patch16 --batch_size 256 --precision bf16 --warmup 2 --steps 5 --env MAE_SYNC_PHASES=1
bench base_bf16_profile 60 --model mae_vit_base_patch16 --batch_size 256 --precision bf16 --warmup 1 --steps 3 --env MAE_CUDA_PROFILE=1
sed -n '/^MAE_CUDA_PROFILE/,/^  all/p' "$W/bench_base_bf16_profile.log" | tee -a "$SUM"
bench large_bf16 90 --model mae_vit_large_patch16 --batch_size 128 --precision bf16 --warmup 3 --steps 20
bench infer_bf16 60 --model mae_vit_base_patch16 --batch_size 256 --precision bf16 --mode infer --warmup 3 --steps 20

# ---- f. the peers (GPU_CHECK_PEERS=0 skips them): MAE pretraining (timm + HF, eager, TF32, compiled); encoder inference
peer() {
    local name=$1 t=$2; shift 2
    step "$name" "$t" env PYTHONUNBUFFERED=1 OUT="$OUT" "$@"
    grep '^{' "$W/$name.log" | tee -a "$SUM"
}
if [[ ${GPU_CHECK_PEERS:-1} == 1 ]]; then
    peer peer_mae 240 python3 .dev/peers/torch_mae_gpu.py
    grep '^{' "$W/peer_mae.log" >"$OUT/gpu_peer_lines.jsonl"
    peer peer_embed 150 python3 bench/torch_embed_gpu.py --batch 256 --steps 20
fi
table "after the benches"

# ---- extra: ours in fp32 against the peer's TF32 row (after the main table: least important)
bench base_fp32 60 --model mae_vit_base_patch16 --batch_size 256 --precision fp32 --warmup 2 --steps 10

# ---- c. bf16 vs fp32 training loss: tiny-32, 300 steps, same seed and data, mean of the last 50
for p in fp32 bf16; do
    bench "loss_$p" 60 --model tiny-32 --batch_size 128 --precision "$p" --warmup 0 --steps 300 \
        --seed 1 --synthetic smooth --lr 1e-3 --loss_window 50
done

# ---- b. compute-sanitizer on a small case: memcheck, racecheck (0 errors expected)
if [[ -n "$SAN" ]]; then
    SMALL=(.dev/bin/mae bench --device cuda --model tiny-32 --batch_size 4 --warmup 1 --steps 1)
    # the bf16 step runs the tensor-core attention (shared memory: racecheck matters there)
    for tool in memcheck racecheck; do
        for p in fp32 bf16; do
            step "san_${tool}_$p" 60 "${OURS[@]}" "$SAN" --tool "$tool" --error-exitcode 99 "${SMALL[@]}" --precision "$p"
            grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|LEAK SUMMARY' "$W/san_${tool}_$p.log" | tee -a "$SUM"
        done
    done
    SMALLI=(.dev/bin/mae bench --device cuda --model tiny-32 --batch_size 4 --warmup 0 --steps 1 --mode infer --precision bf16)
    step san_memcheck_infer 45 "${OURS[@]}" "$SAN" --tool memcheck --error-exitcode 99 "${SMALLI[@]}"
    grep -E 'ERROR SUMMARY' "$W/san_memcheck_infer.log" | tee -a "$SUM"
    step san_memcheck_cls 60 "${OURS[@]}" "$SAN" --tool memcheck --error-exitcode 99 .dev/bin/test_cls_ops cuda
    grep -E 'ERROR SUMMARY' "$W/san_memcheck_cls.log" | tee -a "$SUM"
else
    say "== sanitizers: SKIPPED (no compute-sanitizer)"
    echo "sanitizers             SKIP   (no compute-sanitizer)" >>"$SUM"
fi

# ---- g. the table, last
table "final"
say "== summary"
cat "$SUM" >>"$LOG"
cat "$SUM"
