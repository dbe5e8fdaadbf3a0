/* ops_cls.cu - the classifier's ops on the GPU (fine-tuning, linear probing): drop_path row
 * scaling, token pooling, BatchNorm1d without affine, soft-target cross entropy. Contracts are
 * in backend.h; statistics in double as on the CPU. */
#include "cuda_common.cuh"

__global__ void k_scale_rows(float *out, const float *in, const float *scale, int B, size_t n) {
    size_t total = (size_t)B * n;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = in[i] * scale[i / n];
}

void cu_scale_rows(float *out, const float *in, const float *scale, int B, size_t n) {
    size_t total = (size_t)B * n;
    if (!total) return;
    k_scale_rows<<<cu_blocks(total, 256), 256>>>(out, in, scale, B, n);
    CU_LAUNCHED();
}

/* out (B,C): one thread per (b, c) */
__global__ void k_pool(float *out, const float *x, int B, int T, int C, int mode) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)B * C;
         i += (size_t)gridDim.x * blockDim.x) {
        int b = (int)(i / C), c = (int)(i % C);
        const float *xb = x + (size_t)b * T * C;
        if (mode == MAE_POOL_CLS) {
            out[i] = xb[c];
            continue;
        }
        float s = 0.0f;
        for (int t = 1; t < T; t++) s += xb[(size_t)t * C + c];
        out[i] = s * (1.0f / (float)(T - 1));
    }
}

void cu_pool_tokens(float *out, const float *x, int B, int T, int C, int mode) {
    size_t n = (size_t)B * C;
    if (!n) return;
    k_pool<<<cu_blocks(n, 256), 256>>>(out, x, B, T, C, mode);
    CU_LAUNCHED();
}

/* dx (B,T,C) += ...: one thread per element of dx that receives gradient */
__global__ void k_pool_bwd(float *dx, const float *dout, int B, int T, int C, int mode) {
    size_t n = mode == MAE_POOL_CLS ? (size_t)B * C : (size_t)B * (T - 1) * C;
    float inv = mode == MAE_POOL_CLS ? 1.0f : 1.0f / (float)(T - 1);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        int c = (int)(i % C);
        if (mode == MAE_POOL_CLS) {
            int b = (int)(i / C);
            dx[(size_t)b * T * C + c] += dout[i];
        } else {
            size_t bt = i / C;
            int t = 1 + (int)(bt % (T - 1)), b = (int)(bt / (T - 1));
            dx[((size_t)b * T + t) * C + c] += dout[(size_t)b * C + c] * inv;
        }
    }
}

void cu_pool_tokens_backward(float *dx, const float *dout, int B, int T, int C, int mode) {
    size_t n = mode == MAE_POOL_CLS ? (size_t)B * C : (size_t)B * (T - 1) * C;
    if (!n) return;
    k_pool_bwd<<<cu_blocks(n, 256), 256>>>(dx, dout, B, T, C, mode);
    CU_LAUNCHED();
}

/* one thread per channel */
__global__ void k_batchnorm(float *out, float *run_mean, float *run_var, const float *x, int B,
                            int C, int train, float momentum, float eps) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double mu, var;
    if (train) {
        double s = 0.0, ss = 0.0;
        for (int b = 0; b < B; b++) s += x[(size_t)b * C + c];
        mu = s / B;
        for (int b = 0; b < B; b++) {
            double d = x[(size_t)b * C + c] - mu;
            ss += d * d;
        }
        var = ss / B;
        double unbiased = B > 1 ? ss / (B - 1) : var;
        run_mean[c] = (float)((1.0 - momentum) * run_mean[c] + momentum * mu);
        run_var[c] = (float)((1.0 - momentum) * run_var[c] + momentum * unbiased);
    } else {
        mu = run_mean[c];
        var = run_var[c];
    }
    float m = (float)mu, r = (float)(1.0 / sqrt(var + eps));
    for (int b = 0; b < B; b++) out[(size_t)b * C + c] = (x[(size_t)b * C + c] - m) * r;
}

void cu_batchnorm_forward(float *out, float *run_mean, float *run_var, const float *x, int B,
                          int C, int train, float momentum, float eps) {
    if (B <= 0 || C <= 0) return;
    k_batchnorm<<<(C + 127) / 128, 128>>>(out, run_mean, run_var, x, B, C, train, momentum, eps);
    CU_LAUNCHED();
}

/* one warp per row: rowloss[b] (double) and dz (overwritten) */
__global__ void k_xent_rows(double *rowloss, float *dz, const float *z, const float *t, int B,
                            int NC, float dloss) {
    int b = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (b >= B) return;
    const float *zb = z + (size_t)b * NC, *tb = t + (size_t)b * NC;
    float mxf = -INFINITY;
    for (int c = lane; c < NC; c += 32) mxf = fmaxf(mxf, zb[c]);
    double mx = warp_max(mxf);
    double se = 0.0;
    for (int c = lane; c < NC; c += 32) se += exp(zb[c] - mx);
    se = warp_sum_d(se);
    double lse = mx + log(se), row = 0.0, tsum = 0.0;
    for (int c = lane; c < NC; c += 32) {
        row -= tb[c] * (zb[c] - lse);
        tsum += tb[c];
    }
    row = warp_sum_d(row);
    tsum = warp_sum_d(tsum);
    if (lane == 0) rowloss[b] = row;
    if (dz) {
        float *db = dz + (size_t)b * NC;
        double k = (double)dloss / B;
        for (int c = lane; c < NC; c += 32) db[c] = (float)(k * (exp(zb[c] - lse) * tsum - tb[c]));
    }
}

__global__ void k_sum_rows_d(double *out, const double *rows, int n) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    double s = 0.0;
    for (int i = 0; i < n; i++) s += rows[i];
    *out = s;
}

float cu_softmax_xent(float *dz, const float *z, const float *t, int B, int NC, float dloss) {
    if (B <= 0) return 0.0f;
    double *rows = (double *)cu_scratch(CU_SCR_REDUCE, sizeof(double) * ((size_t)B + 1));
    k_xent_rows<<<(B + 7) / 8, 256>>>(rows, dz, z, t, B, NC, dloss);
    CU_LAUNCHED();
    k_sum_rows_d<<<1, 32>>>(rows + B, rows, B);
    CU_LAUNCHED();
    double total = 0.0;
    CUDA_CHECK(cudaMemcpy(&total, rows + B, sizeof total, cudaMemcpyDeviceToHost));
    return (float)(total / B);
}
