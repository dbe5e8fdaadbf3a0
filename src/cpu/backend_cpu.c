/* backend_cpu.c - the CPU ops table, its memory functions and scratch buffers. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "cpu.h"

#include <cblas.h>

#define CPU_ALIGN 64

static void *cpu_alloc(size_t bytes) {
    size_t n = (bytes + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN;
    if (n < bytes) return NULL;
    return aligned_alloc(CPU_ALIGN, n ? n : CPU_ALIGN);
}
static void cpu_free(void *p) { free(p); }
static void cpu_sync(void) {}
static size_t cpu_mem_peak(void) { return 0; }
static void cpu_copy(void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}
/* large buffers are zeroed by all threads (one memset streams at well under the memory
 * bandwidth of two cores) */
static void cpu_zero(void *p, size_t bytes) {
    if (bytes < ((size_t)1 << 20) || omp_get_max_threads() < 2 || omp_in_parallel()) {
        if (bytes) memset(p, 0, bytes);
        return;
    }
#pragma omp parallel
    {
        size_t nt = (size_t)omp_get_num_threads(), it = (size_t)omp_get_thread_num();
        size_t chunk = (bytes / nt + 4095) & ~(size_t)4095;
        size_t b0 = it * chunk < bytes ? it * chunk : bytes;
        size_t b1 = b0 + chunk < bytes ? b0 + chunk : bytes;
        if (b1 > b0) memset((char *)p + b0, 0, b1 - b0);
    }
}

static struct {
    void *p;
    size_t n;
} g_scratch[CPU_SCRATCH_SLOTS];

void *cpu_scratch(int slot, size_t bytes) {
    MAE_ASSERT(slot >= 0 && slot < CPU_SCRATCH_SLOTS);
    if (g_scratch[slot].n < bytes) {
        free(g_scratch[slot].p);
        g_scratch[slot].p = cpu_alloc(bytes);
        MAE_ASSERT(g_scratch[slot].p != NULL);
        g_scratch[slot].n = bytes;
    }
    return g_scratch[slot].p;
}

int cpu_max_threads(void) { return omp_get_max_threads(); }

void mae_set_num_threads(int n) {
    if (n < 1) n = 1;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int mae_get_num_threads(void) { return omp_get_max_threads(); }

static const mae_backend g_cpu = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .zero = cpu_zero,
    .host_alloc = cpu_alloc,
    .host_free = cpu_free,
    .sync = cpu_sync,
    .mem_peak = cpu_mem_peak,
    .has_precision = cpu_has_precision,
    .matmul_forward = cpu_matmul_forward,
    .matmul_backward = cpu_matmul_backward,
    .matmul_forward_gelu = cpu_matmul_forward_gelu,
    .matmul_backward_gelu = cpu_matmul_backward_gelu,
    .layernorm_forward = cpu_layernorm_forward,
    .layernorm_backward = cpu_layernorm_backward,
    .gelu_forward = cpu_gelu_forward,
    .gelu_backward = cpu_gelu_backward,
    .add = cpu_add,
    .add_inplace = cpu_add_inplace,
    .attention_state_floats = cpu_attention_state_floats,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .im2patch = cpu_im2patch,
    .patchify = cpu_patchify,
    .embed_tokens = cpu_embed_tokens,
    .embed_tokens_backward = cpu_embed_tokens_backward,
    .unshuffle = cpu_unshuffle,
    .unshuffle_backward = cpu_unshuffle_backward,
    .mae_loss = cpu_mae_loss,
    .scale_rows = cpu_scale_rows,
    .pool_tokens = cpu_pool_tokens,
    .pool_tokens_backward = cpu_pool_tokens_backward,
    .batchnorm_forward = cpu_batchnorm_forward,
    .softmax_xent = cpu_softmax_xent,
    .scale_inplace = cpu_scale_inplace,
    .lars = cpu_lars,
    .adamw = cpu_adamw,
    .sumsq = cpu_sumsq,
};

const mae_backend *mae_backend_cpu(void) { return &g_cpu; }

const mae_backend *mae_backend_find(const char *name, char *why, size_t n) {
    char dummy[256];
    if (!why) why = dummy, n = sizeof dummy;
    if (n) why[0] = 0;
    if (!name || strcmp(name, "cpu") == 0) return &g_cpu;
    if (strcmp(name, "cuda") == 0) {
#ifdef MAE_HAVE_CUDA
        return mae_backend_cuda(why, n);
#else
        snprintf(why, n, "this build of mae has no CUDA backend (it was configured without "
                         "CUDA: no nvcc was found, or -DMAE_CUDA=OFF; install the CUDA "
                         "toolkit and reconfigure with -DMAE_CUDA=ON)");
        return NULL;
#endif
    }
#ifdef MAE_HAVE_CUDA
    snprintf(why, n, "unknown device '%s' (this build has: cpu, cuda)", name);
#else
    snprintf(why, n, "unknown device '%s' (this build has: cpu)", name);
#endif
    return NULL;
}

const mae_backend *mae_backend_get(const char *name) { return mae_backend_find(name, NULL, 0); }
