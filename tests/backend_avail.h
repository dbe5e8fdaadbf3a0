/* backend_avail.h - test_backend_find(): a backend by name for the op and model tests, telling
 * "not on this machine" apart from "broken".
 *
 *   returns the backend                     it is available: test it;
 *   NULL, *skip = 1, why filled             "cuda" on a machine with no usable CUDA device, or
 *                                           in a build without the CUDA backend: the test
 *                                           prints "SKIP: <why>" and exits 77 (ctest
 *                                           SKIP_RETURN_CODE) once its other parts passed;
 *   NULL, *skip = 0, why filled             anything else (an unknown name; a device is there
 *                                           but the backend refused): a failure.
 *
 * Whether a device is there is asked of the CUDA runtime directly (cudaGetDeviceCount), not
 * read from mae_backend_find's message, so a backend that fails on a machine with a GPU can
 * not pass as a skip. MAE_TEST_REQUIRE_DEVICE=1 in the environment turns every skip into a
 * failure (for runs on a GPU machine, where a skip would hide a driver that does not load). */
#ifndef MAE_TESTS_BACKEND_AVAIL_H
#define MAE_TESTS_BACKEND_AVAIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

#ifdef MAE_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

static inline int test_require_device(void) {
    const char *s = getenv("MAE_TEST_REQUIRE_DEVICE");
    return s && *s && strcmp(s, "0") != 0;
}

static inline const mae_backend *test_backend_find(const char *name, int *skip, char *why,
                                                   size_t n) {
    *skip = 0;
    const mae_backend *be = mae_backend_find(name, why, n);
    if (be || strcmp(name, "cuda") != 0) return be;
#ifdef MAE_HAVE_CUDA
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e == cudaSuccess && count > 0) return NULL; /* a device is there: a real failure */
    size_t k = strlen(why);
    if (k < n)
        snprintf(why + k, n - k, " [test probe: cudaGetDeviceCount: %s, %d device(s)]",
                 e == cudaSuccess ? "ok" : cudaGetErrorString(e), count);
    cudaGetLastError();
#endif
    *skip = !test_require_device();
    if (!*skip) {
        size_t len = strlen(why);
        if (len < n) snprintf(why + len, n - len, " (MAE_TEST_REQUIRE_DEVICE is set: not a skip)");
    }
    return NULL;
}

/* exit status of a test that ran its available backends: 1 on any failure, else 77 when a
 * backend was skipped, else 0 */
static inline int test_exit_status(int failures, int skipped) {
    return failures ? 1 : skipped ? 77 : 0;
}

#endif
