/* backend_cuda.cu - the CUDA ops table (stub while the kernels land). */
#include <cuda_runtime.h>
#include <stdio.h>

extern "C" {
#include "backend.h"
}

extern "C" const mae_backend *mae_backend_cuda(char *why, size_t n) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        snprintf(why, n, "this machine has no usable CUDA device (cudaGetDeviceCount: %s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        cudaGetLastError();
        return NULL;
    }
    snprintf(why, n, "the CUDA backend is not complete yet");
    return NULL;
}
