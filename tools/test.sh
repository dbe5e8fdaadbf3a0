#!/usr/bin/env bash
# The test command: installs what the tests need, builds (Release and ASan+UBSan), runs every
# test, and ends with one line "tests: N passed, N failed, N skipped". A skipped test (exit 77
# under SKIP_RETURN_CODE: ctest's "***Skipped", e.g. the CUDA tests on a machine without a GPU;
# or "***Not Run (Disabled)") is not a failure; "***Not Run" otherwise (an executable that is
# missing) is.
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh test || { echo "tests: 0 passed, 1 failed, 0 skipped"; exit 1; }
jobs=$(nproc 2>/dev/null || echo 2)
passed=0 failed=0 skipped=0

run_suite() { # name build-dir cmake-args ctest-args
  local name=$1 dir=$2 cargs=$3 targs=$4
  echo "=== $name: configure + build ($dir)"
  if ! { cmake -B "$dir" -S . $cargs >/dev/null && cmake --build "$dir" -j"$jobs" >/dev/null; }; then
    echo "$name: build FAILED"; failed=$((failed + 1)); return
  fi
  echo "=== $name: ctest"
  (cd "$dir" && ctest --output-on-failure $targs) | tee "$dir/ctest.log"
  local p f s re='^ *[0-9]+/[0-9]+ Test +#[0-9]+: '
  p=$(grep -cE "$re.* Passed" "$dir/ctest.log")
  s=$(grep -cE "$re.*\*\*\*(Skipped|Not Run \(Disabled\))" "$dir/ctest.log")
  f=$(grep -E "$re.*(Failed|Timeout|Exception|Not Run)" "$dir/ctest.log" | grep -cvE '\*\*\*Not Run \(Disabled\)')
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
}

run_suite release build "-DCMAKE_BUILD_TYPE=Release" ""
# Sanitizer build: every test except those labelled slow (long Python/real-data runs) and mpi
# (the runs under mpirun, whose Open MPI internals the leak checker reports; the dist code runs
# in the release suite, and single-process here).
MAE_SANITIZED=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  run_suite sanitize build-san "-DCMAKE_BUILD_TYPE=Debug -DMAE_SANITIZE=ON -DMAE_CUDA=OFF" "-LE (slow|mpi)"
# Portable kernels (no AVX-512, no bf16): the C unit tests of the ops, the GEMM, the model,
# the classifier and the augmentations.
run_suite generic build-generic "-DCMAKE_BUILD_TYPE=Release -DMAE_CUDA=OFF -DCMAKE_C_FLAGS=-DMAE_CPU_GENERIC" \
  "-R ^(test_ops|test_gemm|test_model|test_cls_ops|test_cls_model|test_augment)$"
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
