/* ops_dense.cu - Linear layers (cuBLAS), LayerNorm, GELU, elementwise ops, column sums,
 * AdamW, LARS and the sum of squares on the GPU. Contracts are in backend.h.
 *
 * Row-major (M,K) buffers are column-major (K,M) to cuBLAS, so out = inp @ w^T is computed as
 * out^T (N,M) = w^T-as-stored (opT) x inp^T, and so on (the standard llm.c mapping).
 * prec MAE_PREC_BF16: operands rounded to bf16 on the tensor cores, fp32 accumulation and fp32
 * storage (CUBLAS_COMPUTE_32F_FAST_16BF); MAE_PREC_FP32: true fp32 (no TF32). */
#include <string.h>

#include "cuda_common.cuh"

int cu_has_precision(int prec) { return prec == MAE_PREC_FP32 || prec == MAE_PREC_BF16; }


#include <cuda_bf16.h>

int g_bf16_convert = 1;

__global__ void k_to_bf16(__nv_bfloat16 *out, const float *in, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = __float2bfloat16_rn(in[i]);
}

static const __nv_bfloat16 *to_bf16(int slot, const float *x, size_t n) {
    __nv_bfloat16 *d = (__nv_bfloat16 *)cu_scratch(slot, n * sizeof(__nv_bfloat16));
    k_to_bf16<<<cu_blocks(n, 256), 256>>>(d, x, n);
    CU_LAUNCHED();
    return d;
}

void cu_gemm_bf16(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
                  const float *A, int lda, long long sa, const float *B, int ldb, long long sb,
                  float beta, float *C, int ldc, long long sc, int count) {
    if (!g_bf16_convert) {
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(
            g_cublas, ta, tb, m, n, k, &alpha, A, CUDA_R_32F, lda, sa, B, CUDA_R_32F, ldb, sb,
            &beta, C, CUDA_R_32F, ldc, sc, count, CUBLAS_COMPUTE_32F_FAST_16BF,
            CUBLAS_GEMM_DEFAULT));
        return;
    }
    /* elements each operand spans (the batches are packed at their strides) */
    size_t na = (size_t)lda * (ta == CUBLAS_OP_N ? k : m), nb = (size_t)ldb * (tb == CUBLAS_OP_N ? n : k);
    if (count > 1) {
        na = (size_t)sa * (count - 1) + na;
        nb = (size_t)sb * (count - 1) + nb;
    }
    const __nv_bfloat16 *a16 = to_bf16(CU_SCR_BF_A, A, na), *b16 = to_bf16(CU_SCR_BF_B, B, nb);
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(g_cublas, ta, tb, m, n, k, &alpha, a16, CUDA_R_16BF,
                                            lda, sa, b16, CUDA_R_16BF, ldb, sb, &beta, C,
                                            CUDA_R_32F, ldc, sc, count, CUBLAS_COMPUTE_32F,
                                            CUBLAS_GEMM_DEFAULT));
}

/* C (m,n col-major, ldc) = alpha op(A) op(B) + beta C, all fp32 in memory */
static void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc,
                 int prec) {
    const float alpha = 1.0f;
    if (prec == MAE_PREC_BF16) {
        cu_gemm_bf16(ta, tb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
        return;
    }
    CUBLAS_CHECK(cublasGemmEx(g_cublas, ta, tb, m, n, k, &alpha, A, CUDA_R_32F, lda, B,
                              CUDA_R_32F, ldb, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
}

/* ------------------------------------------------------------------ bias and GELU epilogues */

/* out (M,N) += bias (N) */
__global__ void k_add_bias(float *out, const float *bias, size_t total, int N) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] += bias[i % N];
}

/* pre (M,N) += bias; act = gelu(pre) */
__global__ void k_bias_gelu(float *pre, float *act, const float *bias, size_t total, int N) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        float x = pre[i] + (bias ? bias[i % N] : 0.0f);
        pre[i] = x;
        act[i] = gelu_f(x);
    }
}

/* d (n) *= gelu'(pre) */
__global__ void k_mul_gelu_grad(float *d, const float *pre, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        d[i] *= gelu_grad_f(pre[i]);
}

void cu_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int M,
                       int K, int N, int prec) {
    if (M <= 0 || N <= 0) return;
    /* out^T (N,M) = (w stored (K,N) col-major)^T @ inp^T (K,M) */
    gemm(CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, w, K, inp, K, 0.0f, out, N, prec);
    if (bias) {
        size_t total = (size_t)M * N;
        k_add_bias<<<cu_blocks(total, 256), 256>>>(out, bias, total, N);
        CU_LAUNCHED();
    }
}

void cu_matmul_forward_gelu(float *pre, float *act, const float *inp, const float *w,
                            const float *bias, int M, int K, int N, int prec) {
    if (M <= 0 || N <= 0) return;
    gemm(CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, w, K, inp, K, 0.0f, pre, N, prec);
    size_t total = (size_t)M * N;
    k_bias_gelu<<<cu_blocks(total, 256), 256>>>(pre, act, bias, total, N);
    CU_LAUNCHED();
}

void cu_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                        const float *inp, const float *w, int M, int K, int N, int prec) {
    if (M <= 0 || N <= 0) return;
    /* dinp^T (K,M) += w^T-as-stored (K,N) @ dout^T (N,M) */
    if (dinp) gemm(CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, w, K, dout, N, 1.0f, dinp, K, prec);
    /* dw^T (K,N) += inp^T (K,M) @ dout (M,N) */
    if (dw) gemm(CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, inp, K, dout, N, 1.0f, dw, K, prec);
    if (dbias) cu_colsum_acc(dbias, dout, M, N);
}

void cu_matmul_backward_gelu(float *dpre, float *dw, float *dbias, const float *dout,
                             const float *act, const float *pre, const float *w, int M, int K,
                             int N, int prec) {
    if (M <= 0 || N <= 0) return;
    gemm(CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, w, K, dout, N, 0.0f, dpre, K, prec);
    size_t total = (size_t)M * K;
    k_mul_gelu_grad<<<cu_blocks(total, 256), 256>>>(dpre, pre, total);
    CU_LAUNCHED();
    if (dw) gemm(CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, act, K, dout, N, 1.0f, dw, K, prec);
    if (dbias) cu_colsum_acc(dbias, dout, M, N);
}

/* ------------------------------------------------------------------ column sums */

#define CS_COLS 32
#define CS_ROWS 8
#define CS_CHUNK 256 /* rows per partial */

/* part (S, N): part[s, c] = sum of a[r, c] over rows r in chunk s, a fixed order */
__global__ void k_colsum_partial(float *part, const float *a, int M, int N) {
    __shared__ float sh[CS_ROWS][CS_COLS + 1];
    int c = blockIdx.y * CS_COLS + threadIdx.x; /* grid (chunks, column blocks) */
    int r0 = blockIdx.x * CS_CHUNK, r1 = min(r0 + CS_CHUNK, M);
    float s = 0.0f;
    if (c < N)
        for (int r = r0 + threadIdx.y; r < r1; r += CS_ROWS) s += a[(size_t)r * N + c];
    sh[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < N) {
        float t = 0.0f;
        for (int i = 0; i < CS_ROWS; i++) t += sh[i][threadIdx.x];
        part[(size_t)blockIdx.x * N + c] = t;
    }
}

/* dst (N) += sum over S partials, in order */
__global__ void k_colsum_final(float *dst, const float *part, int S, int N) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= N) return;
    float t = 0.0f;
    for (int s = 0; s < S; s++) t += part[(size_t)s * N + c];
    dst[c] += t;
}

void cu_colsum_acc(float *dst, const float *a, int M, int N) {
    if (M <= 0 || N <= 0) return;
    int S = (M + CS_CHUNK - 1) / CS_CHUNK;
    float *part = (float *)cu_scratch(CU_SCR_PARTIAL, sizeof(float) * (size_t)S * N);
    dim3 grid(S, (N + CS_COLS - 1) / CS_COLS), block(CS_COLS, CS_ROWS);
    k_colsum_partial<<<grid, block>>>(part, a, M, N);
    CU_LAUNCHED();
    k_colsum_final<<<(N + 255) / 256, 256>>>(dst, part, S, N);
    CU_LAUNCHED();
}

/* ------------------------------------------------------------------ LayerNorm */

/* one warp per row */
__global__ void k_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp,
                                const float *w, const float *b, int N, int C, float eps) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += x[c];
    float m = warp_sum(s) / C;
    float v = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = x[c] - m;
        v += d * d;
    }
    float r = 1.0f / sqrtf(warp_sum(v) / C + eps);
    float *y = out + (size_t)row * C;
    for (int c = lane; c < C; c += 32) y[c] = (x[c] - m) * r * w[c] + b[c];
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = r;
    }
}

void cu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int N, int C, float eps) {
    if (N <= 0 || C <= 0) return;
    k_layernorm_fwd<<<(N + 7) / 8, 256>>>(out, mean, rstd, inp, w, b, N, C, eps);
    CU_LAUNCHED();
}

/* dinp (one warp per row) */
__global__ void k_layernorm_bwd_dx(float *dinp, const float *dout, const float *inp,
                                   const float *w, const float *mean, const float *rstd, int N,
                                   int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C, *g = dout + (size_t)row * C;
    float m = mean[row], r = rstd[row];
    float sd = 0.0f, sdn = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float n = (x[c] - m) * r, dn = g[c] * w[c];
        sd += dn;
        sdn += dn * n;
    }
    sd = warp_sum(sd) / C;
    sdn = warp_sum(sdn) / C;
    float *dx = dinp + (size_t)row * C;
    for (int c = lane; c < C; c += 32) {
        float n = (x[c] - m) * r, dn = g[c] * w[c];
        dx[c] += (dn - sd - n * sdn) * r;
    }
}

/* partials of dw = sum g * n and db = sum g over row chunks: part (S, 2, C) */
__global__ void k_layernorm_bwd_partial(float *part, const float *dout, const float *inp,
                                        const float *mean, const float *rstd, int N, int C) {
    __shared__ float sw[CS_ROWS][CS_COLS + 1], sb[CS_ROWS][CS_COLS + 1];
    int c = blockIdx.y * CS_COLS + threadIdx.x; /* grid (chunks, column blocks) */
    int r0 = blockIdx.x * CS_CHUNK, r1 = min(r0 + CS_CHUNK, N);
    float a = 0.0f, bb = 0.0f;
    if (c < C)
        for (int r = r0 + threadIdx.y; r < r1; r += CS_ROWS) {
            float g = dout[(size_t)r * C + c];
            a += g * (inp[(size_t)r * C + c] - mean[r]) * rstd[r];
            bb += g;
        }
    sw[threadIdx.y][threadIdx.x] = a;
    sb[threadIdx.y][threadIdx.x] = bb;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float ta = 0.0f, tb = 0.0f;
        for (int i = 0; i < CS_ROWS; i++) {
            ta += sw[i][threadIdx.x];
            tb += sb[i][threadIdx.x];
        }
        part[((size_t)blockIdx.x * 2) * C + c] = ta;
        part[((size_t)blockIdx.x * 2 + 1) * C + c] = tb;
    }
}

__global__ void k_layernorm_bwd_final(float *dw, float *db, const float *part, int S, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float ta = 0.0f, tb = 0.0f;
    for (int s = 0; s < S; s++) {
        ta += part[((size_t)s * 2) * C + c];
        tb += part[((size_t)s * 2 + 1) * C + c];
    }
    dw[c] += ta;
    db[c] += tb;
}

void cu_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                           const float *inp, const float *w, const float *mean,
                           const float *rstd, int N, int C) {
    if (N <= 0 || C <= 0) return;
    k_layernorm_bwd_dx<<<(N + 7) / 8, 256>>>(dinp, dout, inp, w, mean, rstd, N, C);
    CU_LAUNCHED();
    int S = (N + CS_CHUNK - 1) / CS_CHUNK;
    float *part = (float *)cu_scratch(CU_SCR_PARTIAL, sizeof(float) * 2 * (size_t)S * C);
    dim3 grid(S, (C + CS_COLS - 1) / CS_COLS), block(CS_COLS, CS_ROWS);
    k_layernorm_bwd_partial<<<grid, block>>>(part, dout, inp, mean, rstd, N, C);
    CU_LAUNCHED();
    k_layernorm_bwd_final<<<(C + 255) / 256, 256>>>(dw, db, part, S, C);
    CU_LAUNCHED();
}

/* ------------------------------------------------------------------ elementwise */

#define GRID_STRIDE(i, n)                                                                     \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n);                  \
         i += (size_t)gridDim.x * blockDim.x)

__global__ void k_gelu_fwd(float *out, const float *inp, size_t n) {
    GRID_STRIDE(i, n) out[i] = gelu_f(inp[i]);
}
__global__ void k_gelu_bwd(float *dinp, const float *inp, const float *dout, size_t n) {
    GRID_STRIDE(i, n) dinp[i] += dout[i] * gelu_grad_f(inp[i]);
}
__global__ void k_add(float *out, const float *a, const float *b, size_t n) {
    GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}
__global__ void k_add_inplace(float *acc, const float *x, size_t n) {
    GRID_STRIDE(i, n) acc[i] += x[i];
}
__global__ void k_scale(float *x, float s, size_t n) { GRID_STRIDE(i, n) x[i] *= s; }

#define LAUNCH_1D(kern, n, ...)                                                               \
    do {                                                                                      \
        if ((n) > 0) {                                                                        \
            kern<<<cu_blocks((n), 256), 256>>>(__VA_ARGS__);                                  \
            CU_LAUNCHED();                                                                    \
        }                                                                                     \
    } while (0)

void cu_gelu_forward(float *out, const float *inp, size_t n) { LAUNCH_1D(k_gelu_fwd, n, out, inp, n); }
void cu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    LAUNCH_1D(k_gelu_bwd, n, dinp, inp, dout, n);
}
void cu_add(float *out, const float *a, const float *b, size_t n) { LAUNCH_1D(k_add, n, out, a, b, n); }
void cu_add_inplace(float *acc, const float *x, size_t n) { LAUNCH_1D(k_add_inplace, n, acc, x, n); }
void cu_scale_inplace(float *x, float s, size_t n) { LAUNCH_1D(k_scale, n, x, s, n); }

/* ------------------------------------------------------------------ optimizers */

/* segments live on the device for the kernels; uploaded when they differ from the last call's
 * (a trainer passes the same table every step: no host-device copy, no sync) */
static mae_adamw_seg *upload_segs(const mae_adamw_seg *segs, int nseg, size_t *maxn) {
    static mae_adamw_seg *last;
    static int nlast;
    static mae_adamw_seg *d;
    if (nseg != nlast || memcmp(last, segs, sizeof(mae_adamw_seg) * nseg) != 0) {
        d = (mae_adamw_seg *)cu_scratch(CU_SCR_SEGS, sizeof(mae_adamw_seg) * nseg);
        CUDA_CHECK(cudaMemcpy(d, segs, sizeof(mae_adamw_seg) * nseg, cudaMemcpyHostToDevice));
        mae_adamw_seg *nl = (mae_adamw_seg *)realloc(last, sizeof(mae_adamw_seg) * nseg);
        if (!nl) cu_fatal(__FILE__, __LINE__, "realloc", "out of host memory");
        memcpy(nl, segs, sizeof(mae_adamw_seg) * nseg);
        last = nl;
        nlast = nseg;
    }
    *maxn = 0;
    for (int s = 0; s < nseg; s++)
        if (segs[s].n > *maxn) *maxn = segs[s].n;
    return d;
}

/* grid (x, nseg): blockIdx.y is the segment; the same expression order as the CPU */
__global__ void k_adamw(float *p, float *g, float *m, float *v, const mae_adamw_seg *segs,
                        float lr, float beta1, float beta2, float eps, float bc1, float sbc2,
                        int zero_grad) {
    mae_adamw_seg sg = segs[blockIdx.y];
    float lrs = lr * sg.lr_scale, step = lrs / bc1, decay = 1.0f - lrs * sg.wd;
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < sg.n;
         j += (size_t)gridDim.x * blockDim.x) {
        size_t i = sg.offset + j;
        float gi = g[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - step * mi / (sqrtf(vi) / sbc2 + eps);
        if (zero_grad) g[i] = 0.0f;
    }
}

void cu_adamw(float *p, float *g, float *m, float *v, const mae_adamw_seg *segs, int nseg,
              float lr, float beta1, float beta2, float eps, float bc1, float bc2, int zero_grad) {
    if (nseg <= 0) return;
    size_t maxn;
    mae_adamw_seg *d = upload_segs(segs, nseg, &maxn);
    unsigned gx = cu_blocks(maxn, 256);
    if (gx > 1024) gx = 1024;
    k_adamw<<<dim3(gx, nseg), 256>>>(p, g, m, v, d, lr, beta1, beta2, eps, bc1, sqrtf(bc2),
                                      zero_grad);
    CU_LAUNCHED();
}

/* per segment: q = trust |p| / |g + wd p| (lars_adapt), in double; one block per segment */
__global__ void k_lars_norms(float *q, const float *p, const float *g,
                             const mae_adamw_seg *segs, float trust) {
    __shared__ double sp[32], su[32];
    mae_adamw_seg sg = segs[blockIdx.x];
    double pn = 0.0, un = 0.0;
    if (sg.lars_adapt)
        for (size_t j = threadIdx.x; j < sg.n; j += blockDim.x) {
            double pi = p[sg.offset + j], u = (double)g[sg.offset + j] + (double)sg.wd * pi;
            pn += pi * pi;
            un += u * u;
        }
    pn = warp_sum_d(pn);
    un = warp_sum_d(un);
    int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) {
        sp[w] = pn;
        su[w] = un;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double a = 0.0, b = 0.0;
        for (int i = 0; i < (int)(blockDim.x / 32); i++) {
            a += sp[i];
            b += su[i];
        }
        q[blockIdx.x] = (sg.lars_adapt && a > 0.0 && b > 0.0) ? (float)(trust * sqrt(a) / sqrt(b))
                                                              : 1.0f;
    }
}

__global__ void k_lars_update(float *p, float *g, float *mu, const mae_adamw_seg *segs,
                              const float *q, float lr, float momentum, int zero_grad) {
    mae_adamw_seg sg = segs[blockIdx.y];
    float wd = sg.lars_adapt ? sg.wd : 0.0f, qs = q[blockIdx.y], lrs = lr * sg.lr_scale;
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < sg.n;
         j += (size_t)gridDim.x * blockDim.x) {
        size_t i = sg.offset + j;
        float u = (g[i] + wd * p[i]) * qs;
        mu[i] = momentum * mu[i] + u;
        p[i] -= lrs * mu[i];
        if (zero_grad) g[i] = 0.0f;
    }
}

void cu_lars(float *p, float *g, float *mu, const mae_adamw_seg *segs, int nseg, float lr,
             float momentum, float trust, int zero_grad) {
    if (nseg <= 0) return;
    size_t maxn;
    mae_adamw_seg *d = upload_segs(segs, nseg, &maxn);
    float *q = (float *)cu_scratch(CU_SCR_REDUCE, sizeof(float) * nseg);
    k_lars_norms<<<nseg, 256>>>(q, p, g, d, trust);
    CU_LAUNCHED();
    unsigned gx = cu_blocks(maxn, 256);
    if (gx > 1024) gx = 1024;
    k_lars_update<<<dim3(gx, nseg), 256>>>(p, g, mu, d, q, lr, momentum, zero_grad);
    CU_LAUNCHED();
}

/* ------------------------------------------------------------------ sum of squares */

#define SS_BLOCKS 256
__global__ void k_sumsq_partial(double *part, const float *x, size_t n) {
    __shared__ double sh[32];
    double s = 0.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        s += (double)x[i] * x[i];
    s = warp_sum_d(s);
    if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int i = 0; i < (int)(blockDim.x / 32); i++) t += sh[i];
        part[blockIdx.x] = t;
    }
}

__global__ void k_sum_final(double *out, const double *part, int n) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    double t = 0.0;
    for (int i = 0; i < n; i++) t += part[i];
    *out = t;
}

double cu_sumsq(const float *x, size_t n) {
    if (n == 0) return 0.0;
    double *part = (double *)cu_scratch(CU_SCR_REDUCE, sizeof(double) * (SS_BLOCKS + 1));
    k_sumsq_partial<<<SS_BLOCKS, 256>>>(part, x, n);
    CU_LAUNCHED();
    k_sum_final<<<1, 32>>>(part + SS_BLOCKS, part, SS_BLOCKS);
    CU_LAUNCHED();
    double s = 0.0;
    CUDA_CHECK(cudaMemcpy(&s, part + SS_BLOCKS, sizeof s, cudaMemcpyDeviceToHost));
    return s;
}
