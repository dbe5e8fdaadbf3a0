# lib.sh - shared helpers for the mae CLI tests (sourced by tests/cli/test_*.sh).
#
# Conventions: $MAE is the mae binary, $PY the python with numpy/safetensors, $WORK a fresh
# scratch folder. Every check prints one line ("ok ..." or "FAIL ..."); fail_count counts the
# failures and finish() exits non-zero if there were any.

fail_count=0
pass_count=0
HELPERS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/cli_helpers.py"

# Small tiny-28 model used by the tests (fast on 2 cores, also under the sanitizers).
SMALL_MODEL=(--model tiny-28 --depth 2 --embed_dim 64 --num_heads 4 --decoder_embed_dim 32
             --decoder_depth 1 --decoder_num_heads 4)

# Most tests use 2 threads, so OpenMP reductions are exercised; a passive wait policy keeps
# OpenMP from spinning when ctest runs several tests on the same cores.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# Leak checking stays on (the default); reports must go to stderr where we look for them.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

setup_common() {
    MAE="$1"
    PY="$2"
    if [[ -z "$MAE" || ! -x "$MAE" ]]; then
        echo "usage: $0 <mae binary> <python>" >&2
        exit 2
    fi
    if [[ -z "$PY" ]]; then PY=python3; fi
    WORK="$PWD/cli_work/$(basename "$0" .sh)"
    rm -rf "$WORK"
    mkdir -p "$WORK"
    echo "mae: $MAE"
    echo "work: $WORK"
}

ok() {
    pass_count=$((pass_count + 1))
    echo "ok   $*"
}

fail() {
    fail_count=$((fail_count + 1))
    echo "FAIL $*"
}

finish() {
    echo "---- $(basename "$0"): $pass_count checks passed, $fail_count failed"
    if ((fail_count > 0)); then exit 1; fi
    exit 0
}

# Crash signatures in a stderr file: signals, sanitizer reports, assertion failures,
# internal errors, aborts from the out-of-memory helper.
# ASan's "WARNING: AddressSanitizer failed to allocate" (allocator_may_return_null=1, the
# allocation then returns NULL and the program reports it) is not a crash.
crash_signature() {
    grep -a -v 'WARNING: AddressSanitizer failed to allocate' "$1" | grep -a -m1 -E -i 'Segmentation|internal error|Sanitizer|runtime error:|Assertion|stack smashing|double free|free\(\): |malloc\(\): |core dumped|Aborted|out of memory allocating'
}

# run_mae OUTPREFIX [args...]: runs $MAE with a timeout, stdout to OUTPREFIX.out, stderr to
# OUTPREFIX.err; sets RC.
run_mae() {
    local pre="$1"
    shift
    timeout -k 5 "${MAE_TEST_TIMEOUT:-120}" "$MAE" "$@" >"$pre.out" 2>"$pre.err"
    RC=$?
}

# expect_fail NAME REGEX [args...]: the command must fail cleanly: 0 < rc < 128 (and not the
# timeout's 124), no crash signature, and a stderr message matching REGEX (extended, case
# insensitive), which should name the flag or file and what is wrong.
expect_fail() {
    local name="$1" re="$2"
    shift 2
    local pre="$WORK/case_${name//[^A-Za-z0-9_]/_}"
    run_mae "$pre" "$@"
    local msg sig
    msg="$(head -c 400 "$pre.err" | tr '\n' ' ')"
    sig="$(crash_signature "$pre.err")"
    if ((RC == 0)); then
        fail "$name: exit 0, expected an error (mae $*)"
    elif ((RC == 124 || RC == 137)); then
        fail "$name: timed out (mae $*)"
    elif ((RC >= 128)); then
        fail "$name: crashed with exit $RC (signal $((RC - 128))) (mae $*): $msg"
    elif [[ -n "$sig" ]]; then
        fail "$name: exit $RC but stderr shows a crash/sanitizer report: $sig (mae $*)"
    elif [[ ! -s "$pre.err" ]]; then
        fail "$name: exit $RC with an empty stderr (mae $*)"
    elif ! grep -a -q -E -i -- "$re" "$pre.err"; then
        fail "$name: exit $RC, message does not match /$re/: $msg"
    else
        ok "$name: exit $RC: $(head -n1 "$pre.err" | head -c 200)"
    fi
}

# expect_ok NAME [args...]: exit 0 and no crash signature.
expect_ok() {
    local name="$1"
    shift
    local pre="$WORK/case_${name//[^A-Za-z0-9_]/_}"
    run_mae "$pre" "$@"
    local sig
    sig="$(crash_signature "$pre.err")"
    if ((RC != 0)); then
        fail "$name: exit $RC, expected 0 (mae $*): $(head -c 400 "$pre.err" | tr '\n' ' ')"
    elif [[ -n "$sig" ]]; then
        fail "$name: exit 0 but stderr shows: $sig"
    else
        ok "$name: exit 0"
    fi
}

# Checksums of every regular file in a folder (sorted), for "nothing changed" checks.
dir_sums() {
    (cd "$1" && find . -maxdepth 1 -type f -name 'checkpoint-*' -print0 | sort -z |
        xargs -0 -r sha256sum)
}
