/* ops_attention.cu - multi-head self attention with the softmax probabilities kept, as the CPU
 * backend: q, k, v are split out of qkv (B,T,3C) into head-major (B,NH,T,hd) scratch, the two
 * products per head run as strided batched cuBLAS GEMMs (B*NH heads in one call), the softmax
 * is one warp per row. prec as the dense layers. */
#include <string.h>

#include "cuda_common.cuh"

/* batched C_i (m,n col-major) = alpha op(A_i) op(B_i) + beta C_i over `count` heads */
static void bgemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
                  const float *A, int lda, long long sa, const float *B, int ldb, long long sb,
                  float *C, int ldc, long long sc, int count, int prec) {
    const float beta = 0.0f;
    if (prec == MAE_PREC_BF16) {
        cu_gemm_bf16(ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, count);
        return;
    }
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(g_cublas, ta, tb, m, n, k, &alpha, A, CUDA_R_32F, lda,
                                            sa, B, CUDA_R_32F, ldb, sb, &beta, C, CUDA_R_32F, ldc,
                                            sc, count, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

/* q, k, v (B,NH,T,hd) <- qkv (B,T,3C) */
__global__ void k_split_qkv(float *q, float *k, float *v, const float *qkv, int B, int T, int C,
                            int NH) {
    int hd = C / NH;
    size_t n = (size_t)B * T * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        /* i indexes (b, h, t, d) of the destination */
        int d = (int)(i % hd);
        size_t r = i / hd;
        int t = (int)(r % T);
        r /= T;
        int h = (int)(r % NH);
        int b = (int)(r / NH);
        const float *src = qkv + ((size_t)b * T + t) * 3 * C + (size_t)h * hd + d;
        q[i] = src[0];
        k[i] = src[C];
        v[i] = src[2 * C];
    }
}

/* out (B,T,C) <- y (B,NH,T,hd) */
__global__ void k_merge_heads(float *out, const float *y, int B, int T, int C, int NH) {
    int hd = C / NH;
    size_t n = (size_t)B * T * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        /* i indexes (b, t, c) of the destination */
        int c = (int)(i % C);
        size_t r = i / C;
        int t = (int)(r % T);
        int b = (int)(r / T);
        int h = c / hd, d = c % hd;
        out[i] = y[(((size_t)b * NH + h) * T + t) * hd + d];
    }
}

/* dy (B,NH,T,hd) <- dout (B,T,C) */
__global__ void k_split_heads(float *dy, const float *dout, int B, int T, int C, int NH) {
    int hd = C / NH;
    size_t n = (size_t)B * T * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        int d = (int)(i % hd);
        size_t r = i / hd;
        int t = (int)(r % T);
        r /= T;
        int h = (int)(r % NH);
        int b = (int)(r / NH);
        dy[i] = dout[((size_t)b * T + t) * C + (size_t)h * hd + d];
    }
}

/* dqkv (B,T,3C) <- dq, dk, dv (B,NH,T,hd), overwritten */
__global__ void k_merge_qkv(float *dqkv, const float *dq, const float *dk, const float *dv,
                            int B, int T, int C, int NH) {
    int hd = C / NH;
    size_t n = (size_t)B * T * 3 * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        int c3 = (int)(i % (3 * C));
        size_t r = i / (3 * C);
        int t = (int)(r % T);
        int b = (int)(r / T);
        int part = c3 / C, c = c3 % C, h = c / hd, d = c % hd;
        const float *src = part == 0 ? dq : part == 1 ? dk : dv;
        dqkv[i] = src[(((size_t)b * NH + h) * T + t) * hd + d];
    }
}

/* att rows (nrows, T): softmax in place; one warp per row */
__global__ void k_softmax_rows(float *att, size_t nrows, int T) {
    size_t row = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= nrows) return;
    float *x = att + row * T;
    float mx = -INFINITY;
    for (int s = lane; s < T; s += 32) mx = fmaxf(mx, x[s]);
    mx = warp_max(mx);
    float sum = 0.0f;
    for (int s = lane; s < T; s += 32) {
        float e = expf(x[s] - mx);
        x[s] = e;
        sum += e;
    }
    float inv = 1.0f / warp_sum(sum);
    for (int s = lane; s < T; s += 32) x[s] *= inv;
}

/* datt (nrows, T) <- scale * P * (dP - sum(P dP)) in place over dP; one warp per row */
__global__ void k_softmax_bwd_rows(float *datt, const float *att, size_t nrows, int T,
                                   float scale) {
    size_t row = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= nrows) return;
    float *d = datt + row * T;
    const float *p = att + row * T;
    float s = 0.0f;
    for (int j = lane; j < T; j += 32) s += p[j] * d[j];
    s = warp_sum(s);
    for (int j = lane; j < T; j += 32) d[j] = scale * p[j] * (d[j] - s);
}

/* the batched-GEMM attention below, or with MAE_CUDA_ATTENTION=flash the fused one
 * (ops_flash.cu) where the head dim is one it has; fixed for the process (the model sizes its
 * buffers from it). Measured on an H100 (2026-11-28, ViT-B/16 MAE, batch 256, bf16): batched
 * GEMMs 1604 img/s at 29.4 GiB, flash 1345 img/s at 23.0 GiB (its two-kernel deterministic
 * backward is the slow part), so the faster one is the default. */
static int use_flash(int C, int NH) {
    static int mode = -1;
    if (mode < 0) {
        const char *e = getenv("MAE_CUDA_ATTENTION");
        mode = e && strcmp(e, "flash") == 0 ? 1 : 0;
    }
    return mode && cu_flash_supported(C / NH);
}

size_t cu_attention_state_floats(int B, int T, int C, int NH) {
    return use_flash(C, NH) ? (size_t)B * NH * T : (size_t)B * NH * T * T;
}

void cu_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH,
                          int prec) {
    if (B <= 0 || T <= 0) return;
    if (use_flash(C, NH)) {
        cu_flash_forward(out, att, qkv, B, T, C, NH, prec);
        return;
    }
    int hd = C / NH, nh = B * NH;
    size_t n = (size_t)B * T * C;
    float *q = (float *)cu_scratch(CU_SCR_ATT_QKV, sizeof(float) * 3 * n);
    float *k = q + n, *v = k + n;
    float *y = (float *)cu_scratch(CU_SCR_ATT_Y, sizeof(float) * n);
    k_split_qkv<<<cu_blocks(n, 256), 256>>>(q, k, v, qkv, B, T, C, NH);
    CU_LAUNCHED();
    long long sh = (long long)T * hd, sa = (long long)T * T;
    float scale = 1.0f / sqrtf((float)hd);
    /* att[t][s] = scale q_t . k_s  (col-major C(s,t)) */
    bgemm(CUBLAS_OP_T, CUBLAS_OP_N, T, T, hd, scale, k, hd, sh, q, hd, sh, att, T, sa, nh, prec);
    size_t rows = (size_t)nh * T;
    k_softmax_rows<<<(unsigned)((rows + 7) / 8), 256>>>(att, rows, T);
    CU_LAUNCHED();
    /* y[t][d] = sum_s P[t][s] v[s][d] */
    bgemm(CUBLAS_OP_N, CUBLAS_OP_N, hd, T, T, 1.0f, v, hd, sh, att, T, sa, y, hd, sh, nh, prec);
    k_merge_heads<<<cu_blocks(n, 256), 256>>>(out, y, B, T, C, NH);
    CU_LAUNCHED();
}

void cu_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                           const float *att, const float *out, int B, int T, int C, int NH,
                           int prec) {
    if (B <= 0 || T <= 0) return;
    if (use_flash(C, NH)) {
        cu_flash_backward(dqkv, datt, dout, qkv, att, out, B, T, C, NH, prec);
        return;
    }
    int hd = C / NH, nh = B * NH;
    size_t n = (size_t)B * T * C;
    float *q = (float *)cu_scratch(CU_SCR_ATT_QKV, sizeof(float) * 3 * n);
    float *k = q + n, *v = k + n;
    float *dy = (float *)cu_scratch(CU_SCR_ATT_Y, sizeof(float) * n);
    float *dq = (float *)cu_scratch(CU_SCR_ATT_DQKV, sizeof(float) * 3 * n);
    float *dk = dq + n, *dv = dk + n;
    /* q, k, v again (the forward's copies were overwritten by later layers) */
    k_split_qkv<<<cu_blocks(n, 256), 256>>>(q, k, v, qkv, B, T, C, NH);
    CU_LAUNCHED();
    k_split_heads<<<cu_blocks(n, 256), 256>>>(dy, dout, B, T, C, NH);
    CU_LAUNCHED();
    long long sh = (long long)T * hd, sa = (long long)T * T;
    float scale = 1.0f / sqrtf((float)hd);
    /* dP[t][s] = dy_t . v_s */
    bgemm(CUBLAS_OP_T, CUBLAS_OP_N, T, T, hd, 1.0f, v, hd, sh, dy, hd, sh, datt, T, sa, nh, prec);
    /* dv[s][d] = sum_t P[t][s] dy[t][d] */
    bgemm(CUBLAS_OP_N, CUBLAS_OP_T, hd, T, T, 1.0f, dy, hd, sh, att, T, sa, dv, hd, sh, nh, prec);
    size_t rows = (size_t)nh * T;
    k_softmax_bwd_rows<<<(unsigned)((rows + 7) / 8), 256>>>(datt, att, rows, T, scale);
    CU_LAUNCHED();
    /* dq[t][d] = sum_s dS[t][s] k[s][d]; dk[s][d] = sum_t dS[t][s] q[t][d] */
    bgemm(CUBLAS_OP_N, CUBLAS_OP_N, hd, T, T, 1.0f, k, hd, sh, datt, T, sa, dq, hd, sh, nh, prec);
    bgemm(CUBLAS_OP_N, CUBLAS_OP_T, hd, T, T, 1.0f, q, hd, sh, datt, T, sa, dk, hd, sh, nh, prec);
    size_t n3 = 3 * n;
    k_merge_qkv<<<cu_blocks(n3, 256), 256>>>(dqkv, dq, dk, dv, B, T, C, NH);
    CU_LAUNCHED();
}
