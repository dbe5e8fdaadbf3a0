/* backend_cuda.cu - the CUDA ops table: device selection, memory (tracked for mem_peak),
 * scratch buffers, and the table itself. The kernels are in ops_*.cu. */
#include <string.h>

#include "cuda_common.cuh"

cublasHandle_t g_cublas;

void cu_fatal(const char *file, int line, const char *what, const char *msg) {
    fprintf(stderr, "mae: CUDA error at %s:%d: %s: %s\n", file, line, what, msg);
    abort();
}

/* ------------------------------------------------------------------ memory accounting */

#define CU_MAX_ALLOCS 4096
static struct {
    void *p;
    size_t n;
} g_allocs[CU_MAX_ALLOCS];
static size_t g_bytes, g_peak;

/* allocations past CU_MAX_ALLOCS live on untracked (mem_peak then undercounts) */
static void track(void *p, size_t n) {
    for (int i = 0; i < CU_MAX_ALLOCS; i++)
        if (!g_allocs[i].p) {
            g_allocs[i].p = p;
            g_allocs[i].n = n;
            g_bytes += n;
            if (g_bytes > g_peak) g_peak = g_bytes;
            return;
        }
}

static void untrack(void *p) {
    for (int i = 0; i < CU_MAX_ALLOCS; i++)
        if (g_allocs[i].p == p) {
            g_bytes -= g_allocs[i].n;
            g_allocs[i].p = NULL;
            g_allocs[i].n = 0;
            return;
        }
}

static void *cu_alloc(size_t bytes) {
    void *p = NULL;
    if (!bytes) bytes = 256;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        cudaGetLastError(); /* clear the (non-sticky) out-of-memory error */
        return NULL;
    }
    track(p, bytes);
    return p;
}

static void cu_free(void *p) {
    if (!p) return;
    untrack(p);
    CUDA_CHECK(cudaFree(p));
}

static void cu_upload(void *dst, const void *src, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

static void cu_download(void *dst, const void *src, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

static void cu_zero(void *p, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, 0));
}

static void *cu_host_alloc(size_t bytes) {
    void *p = NULL;
    if (cudaMallocHost(&p, bytes ? bytes : 64) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return p;
}

static void cu_host_free(void *p) {
    if (p) CUDA_CHECK(cudaFreeHost(p));
}

static void cu_sync(void) { CUDA_CHECK(cudaDeviceSynchronize()); }

static size_t cu_mem_peak(void) { return g_peak; }

static struct {
    void *p;
    size_t n;
} g_scr[CU_SCR_SLOTS];

void *cu_scratch(int slot, size_t bytes) {
    if (slot < 0 || slot >= CU_SCR_SLOTS) cu_fatal(__FILE__, __LINE__, "cu_scratch", "bad slot");
    if (g_scr[slot].n >= bytes && g_scr[slot].p) return g_scr[slot].p;
    if (g_scr[slot].p) {
        CUDA_CHECK(cudaDeviceSynchronize()); /* the old buffer may still be in use */
        cu_free(g_scr[slot].p);
    }
    size_t n = bytes + bytes / 8 + 256;
    g_scr[slot].p = cu_alloc(n);
    if (!g_scr[slot].p) {
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        fprintf(stderr,
                "mae: out of GPU memory: %.1f MB of working memory did not fit (%.1f of %.1f GB "
                "free, %.1f GB held by mae); use a smaller --batch_size, with --accum_iter to keep "
                "the effective batch\n",
                n / 1e6, fr / 1e9, tot / 1e9, g_bytes / 1e9);
        exit(1);
    }
    g_scr[slot].n = n;
    return g_scr[slot].p;
}

/* ------------------------------------------------------------------ the table */

static const mae_backend g_cuda = {
    .name = "cuda",
    .alloc = cu_alloc,
    .free = cu_free,
    .upload = cu_upload,
    .download = cu_download,
    .zero = cu_zero,
    .host_alloc = cu_host_alloc,
    .host_free = cu_host_free,
    .sync = cu_sync,
    .mem_peak = cu_mem_peak,
    .has_precision = cu_has_precision,
    .matmul_forward = cu_matmul_forward,
    .matmul_backward = cu_matmul_backward,
    .matmul_forward_gelu = cu_matmul_forward_gelu,
    .matmul_backward_gelu = cu_matmul_backward_gelu,
    .layernorm_forward = cu_layernorm_forward,
    .layernorm_backward = cu_layernorm_backward,
    .gelu_forward = cu_gelu_forward,
    .gelu_backward = cu_gelu_backward,
    .add = cu_add,
    .add_inplace = cu_add_inplace,
    .attention_state_floats = cu_attention_state_floats,
    .attention_forward = cu_attention_forward,
    .attention_backward = cu_attention_backward,
    .im2patch = cu_im2patch,
    .patchify = cu_patchify,
    .embed_tokens = cu_embed_tokens,
    .embed_tokens_backward = cu_embed_tokens_backward,
    .unshuffle = cu_unshuffle,
    .unshuffle_backward = cu_unshuffle_backward,
    .mae_loss = cu_mae_loss,
    .scale_rows = cu_scale_rows,
    .pool_tokens = cu_pool_tokens,
    .pool_tokens_backward = cu_pool_tokens_backward,
    .batchnorm_forward = cu_batchnorm_forward,
    .softmax_xent = cu_softmax_xent,
    .scale_inplace = cu_scale_inplace,
    .adamw = cu_adamw,
    .lars = cu_lars,
    .sumsq = cu_sumsq,
};

/* cuBLAS workspace we own (counted in mem_peak) */
#define CU_CUBLAS_WS (32u << 20)

extern "C" const mae_backend *mae_backend_cuda(char *why, size_t n) {
    static int state = 0; /* 0 untried, 1 ok, -1 failed */
    static char reason[256];
    if (state == 0) {
        int count = 0;
        cudaError_t e = cudaGetDeviceCount(&count);
        if (e != cudaSuccess || count == 0) {
            snprintf(reason, sizeof reason,
                     "this machine has no usable CUDA device (cudaGetDeviceCount: %s)",
                     e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
            cudaGetLastError();
            state = -1;
        } else {
            /* one process per GPU under an MPI launcher: local rank i takes device i (mod the
             * count; CUDA_VISIBLE_DEVICES narrows the set) */
            const char *lr = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
            if (!lr) lr = getenv("SLURM_LOCALID");
            if (!lr) lr = getenv("MPI_LOCALRANKID");
            int dev = lr ? atoi(lr) % count : 0;
            if (dev < 0) dev = 0;
            cudaDeviceProp prop;
            CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
            if (prop.major < 9) {
                snprintf(reason, sizeof reason,
                         "CUDA device %d (%.100s) is sm_%d%d; this build has code for sm_90 and "
                         "newer (reconfigure with -DCMAKE_CUDA_ARCHITECTURES=%d%d)",
                         dev, prop.name, prop.major, prop.minor, prop.major, prop.minor);
                state = -1;
            } else if (cudaSetDevice(dev) != cudaSuccess ||
                       cublasCreate(&g_cublas) != CUBLAS_STATUS_SUCCESS) {
                snprintf(reason, sizeof reason, "CUDA device %d (%.100s) could not be initialised",
                         dev, prop.name);
                cudaGetLastError();
                state = -1;
            } else {
                void *ws = cu_alloc(CU_CUBLAS_WS);
                if (!ws) {
                    snprintf(reason, sizeof reason, "CUDA device %d (%.100s): out of memory at start",
                             dev, prop.name);
                    state = -1;
                } else {
                    CUBLAS_CHECK(cublasSetWorkspace(g_cublas, ws, CU_CUBLAS_WS));
                    CUBLAS_CHECK(cublasSetMathMode(g_cublas, CUBLAS_DEFAULT_MATH));
                    const char *mode = getenv("MAE_CUDA_BF16");
                    g_bf16_convert = !(mode && strcmp(mode, "fast") == 0);
                    state = 1;
                }
            }
        }
    }
    if (state < 0) {
        if (why && n) snprintf(why, n, "%s", reason);
        return NULL;
    }
    static const mae_backend *table;
    if (!table) {
        const char *prof = getenv("MAE_CUDA_PROFILE");
        table = prof && strcmp(prof, "1") == 0 ? cu_profiled(&g_cuda) : &g_cuda;
    }
    return table;
}
