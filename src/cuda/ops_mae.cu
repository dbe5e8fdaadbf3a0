/* ops_mae.cu - MAE data movement (patches, the masking gather, the unshuffle) and the masked
 * loss on the GPU. Contracts are in backend.h. */
#include "cuda_common.cuh"

#define GRID_STRIDE(i, n)                                                                     \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n);                  \
         i += (size_t)gridDim.x * blockDim.x)

/* cols (B,K,C*p*p) <- imgs (B,C,H,W); element order (c, i, j) within a patch */
__global__ void k_im2patch(float *cols, const float *imgs, const int32_t *ids, int B, int C,
                           int H, int W, int p, int K) {
    int gw = W / p, P = C * p * p;
    size_t n = (size_t)B * K * P;
    GRID_STRIDE(e, n) {
        int j = (int)(e % P);
        size_t bk = e / P;
        int k = (int)(bk % K), b = (int)(bk / K);
        int id = ids ? ids[bk] : k;
        int c = j / (p * p), ij = j % (p * p), i = ij / p, jj = ij % p;
        int py = id / gw, px = id % gw;
        cols[e] = imgs[(((size_t)b * C + c) * H + (size_t)py * p + i) * W + px * p + jj];
    }
}

void cu_im2patch(float *cols, const float *imgs, const int32_t *ids, int B, int C, int H, int W,
                 int p, int K) {
    size_t n = (size_t)B * K * C * p * p;
    if (!n) return;
    k_im2patch<<<cu_blocks(n, 256), 256>>>(cols, imgs, ids, B, C, H, W, p, K);
    CU_LAUNCHED();
}

/* target (B,L,P) <- imgs (B,C,H,W); element order (i, j, c) */
__global__ void k_patchify(float *target, const float *imgs, int B, int C, int H, int W, int p) {
    int gw = W / p, L = (H / p) * gw, P = C * p * p;
    size_t n = (size_t)B * L * P;
    GRID_STRIDE(e, n) {
        int j = (int)(e % P);
        size_t bl = e / P;
        int l = (int)(bl % L), b = (int)(bl / L);
        int c = j % C, ij = j / C, i = ij / p, jj = ij % p;
        int py = l / gw, px = l % gw;
        target[e] = imgs[(((size_t)b * C + c) * H + (size_t)py * p + i) * W + px * p + jj];
    }
}

void cu_patchify(float *target, const float *imgs, int B, int C, int H, int W, int p) {
    size_t n = (size_t)B * (H / p) * (W / p) * C * p * p;
    if (!n) return;
    k_patchify<<<cu_blocks(n, 256), 256>>>(target, imgs, B, C, H, W, p);
    CU_LAUNCHED();
}

/* x (B,1+K,D) <- emb (B,K,D), cls (D), pos (1+L,D), ids_keep (B,K) */
__global__ void k_embed_tokens(float *x, const float *emb, const float *cls, const float *pos,
                               const int32_t *ids_keep, int B, int K, int D) {
    size_t n = (size_t)B * (K + 1) * D;
    GRID_STRIDE(e, n) {
        int d = (int)(e % D);
        size_t bt = e / D;
        int t = (int)(bt % (K + 1)), b = (int)(bt / (K + 1));
        if (t == 0) {
            x[e] = cls[d] + pos[d];
        } else {
            size_t bk = (size_t)b * K + t - 1;
            x[e] = emb[bk * D + d] + pos[(size_t)(1 + ids_keep[bk]) * D + d];
        }
    }
}

void cu_embed_tokens(float *x, const float *emb, const float *cls, const float *pos,
                     const int32_t *ids_keep, int B, int L, int K, int D) {
    (void)L;
    size_t n = (size_t)B * (K + 1) * D;
    if (!n) return;
    k_embed_tokens<<<cu_blocks(n, 256), 256>>>(x, emb, cls, pos, ids_keep, B, K, D);
    CU_LAUNCHED();
}

/* demb (B,K,D) += dx[:,1:] */
__global__ void k_embed_bwd(float *demb, const float *dx, int B, int K, int D) {
    size_t n = (size_t)B * K * D;
    GRID_STRIDE(e, n) {
        int d = (int)(e % D);
        size_t bk = e / D;
        int k = (int)(bk % K), b = (int)(bk / K);
        demb[e] += dx[((size_t)b * (K + 1) + 1 + k) * D + d];
    }
}

/* row r of a (rows, stride) view */
struct RowStrided {
    long long stride;
    __device__ long long operator()(int r) const { return (long long)r * stride; }
};

/* row (b, l) of dy (B,1+L,D) for a removed patch l (ids_restore >= K), else skipped */
struct RowRemoved {
    const int32_t *ids_restore;
    int L, K, D;
    __device__ long long operator()(int r) const {
        int b = r / L, l = r % L;
        if (ids_restore[r] < K) return -1;
        return ((long long)b * (L + 1) + 1 + l) * D;
    }
};

void cu_embed_tokens_backward(float *demb, float *dcls, const float *dx, int B, int K, int D) {
    size_t n = (size_t)B * K * D;
    if (n) {
        k_embed_bwd<<<cu_blocks(n, 256), 256>>>(demb, dx, B, K, D);
        CU_LAUNCHED();
    }
    if (dcls && B > 0) {
        cu_colsum_rows(dcls, dx, B, D, RowStrided{(long long)(K + 1) * D});
    }
}

/* y (B,1+L,D) <- xd (B,1+K,D), mask_token (D), pos (1+L,D), ids_restore (B,L) */
__global__ void k_unshuffle(float *y, const float *xd, const float *mask_token, const float *pos,
                            const int32_t *ids_restore, int B, int L, int K, int D) {
    size_t n = (size_t)B * (L + 1) * D;
    GRID_STRIDE(e, n) {
        int d = (int)(e % D);
        size_t bl = e / D;
        int l = (int)(bl % (L + 1)), b = (int)(bl / (L + 1));
        float v;
        if (l == 0) {
            v = xd[(size_t)b * (K + 1) * D + d];
        } else {
            int r = ids_restore[(size_t)b * L + l - 1];
            v = r < K ? xd[((size_t)b * (K + 1) + 1 + r) * D + d] : mask_token[d];
        }
        y[e] = v + pos[(size_t)l * D + d];
    }
}

void cu_unshuffle(float *y, const float *xd, const float *mask_token, const float *pos,
                  const int32_t *ids_restore, int B, int L, int K, int D) {
    size_t n = (size_t)B * (L + 1) * D;
    if (!n) return;
    k_unshuffle<<<cu_blocks(n, 256), 256>>>(y, xd, mask_token, pos, ids_restore, B, L, K, D);
    CU_LAUNCHED();
}

/* dxd (B,1+K,D) += dy at the kept rows (ids_restore is a permutation: no two l share an r) */
__global__ void k_unshuffle_bwd(float *dxd, const float *dy, const int32_t *ids_restore, int B,
                                int L, int K, int D) {
    size_t n = (size_t)B * (L + 1) * D;
    GRID_STRIDE(e, n) {
        int d = (int)(e % D);
        size_t bl = e / D;
        int l = (int)(bl % (L + 1)), b = (int)(bl / (L + 1));
        int r = l == 0 ? -1 : ids_restore[(size_t)b * L + l - 1];
        if (r >= K) continue;
        dxd[((size_t)b * (K + 1) + 1 + r) * D + d] += dy[e];
    }
}

void cu_unshuffle_backward(float *dxd, float *dmask_token, const float *dy,
                           const int32_t *ids_restore, int B, int L, int K, int D) {
    size_t n = (size_t)B * (L + 1) * D;
    if (!n) return;
    k_unshuffle_bwd<<<cu_blocks(n, 256), 256>>>(dxd, dy, ids_restore, B, L, K, D);
    CU_LAUNCHED();
    if (dmask_token) {
        cu_colsum_rows(dmask_token, dy, B * L, D, RowRemoved{ids_restore, L, K, D});
    }
}

/* ------------------------------------------------------------------ the masked loss */

/* red[0] = sum of mask (double) */
__global__ void k_mask_sum(double *red, const float *mask, size_t n) {
    __shared__ double sh[32];
    double s = 0.0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) s += mask[i];
    s = warp_sum_d(s);
    if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int i = 0; i < (int)(blockDim.x / 32); i++) t += sh[i];
        red[0] = t;
    }
}

/* one warp per (b, l): rows[i] = mean_p (pred - t)^2 with t normalised per patch (mean,
 * unbiased var, eps 1e-6) when norm_pix; dpred += coef * mask * (pred - t) */
__global__ void k_mae_loss_rows(float *rows, float *dpred, const float *pred,
                                const float *target, const float *mask, const double *red,
                                int B, int L, int P, int norm_pix, float dloss) {
    size_t i = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (i >= (size_t)B * L) return;
    size_t b = i / L, l = i % L;
    const float *pr = pred + (b * (L + 1) + 1 + l) * P;
    const float *t = target + i * P;
    float m = 0.0f, inv = 1.0f;
    if (norm_pix) {
        float s = 0.0f;
        for (int j = lane; j < P; j += 32) s += t[j];
        m = warp_sum(s) / P;
        float v = 0.0f;
        for (int j = lane; j < P; j += 32) {
            float d = t[j] - m;
            v += d * d;
        }
        v = warp_sum(v);
        v = P > 1 ? v / (P - 1) : 0.0f;
        inv = 1.0f / sqrtf(v + 1e-6f);
    }
    float s = 0.0f;
    for (int j = lane; j < P; j += 32) {
        float d = pr[j] - (t[j] - m) * inv;
        s += d * d;
    }
    s = warp_sum(s);
    if (lane == 0) rows[i] = s / P;
    if (dpred && mask[i] != 0.0f) {
        double msum = red[0];
        float coef = msum > 0.0 ? (float)(dloss / msum) * 2.0f / P : 0.0f;
        float c = coef * mask[i];
        float *dp = dpred + (b * (L + 1) + 1 + l) * P;
        for (int j = lane; j < P; j += 32) dp[j] += c * (pr[j] - (t[j] - m) * inv);
    }
}

/* red[1] = sum rows * mask (double) */
__global__ void k_loss_sum(double *red, const float *rows, const float *mask, size_t n) {
    __shared__ double sh[32];
    double s = 0.0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) s += (double)rows[i] * mask[i];
    s = warp_sum_d(s);
    if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int i = 0; i < (int)(blockDim.x / 32); i++) t += sh[i];
        red[1] = t;
    }
}

float cu_mae_loss(float *dpred, const float *pred, const float *target, const float *mask, int B,
                  int L, int P, int norm_pix, float dloss) {
    size_t n = (size_t)B * L;
    if (!n) return 0.0f;
    /* red: 2 doubles, then rows (n floats) */
    double *red = (double *)cu_scratch(CU_SCR_REDUCE, 2 * sizeof(double) + sizeof(float) * n);
    float *rows = (float *)(red + 2);
    k_mask_sum<<<1, 1024>>>(red, mask, n);
    CU_LAUNCHED();
    k_mae_loss_rows<<<(unsigned)((n + 7) / 8), 256>>>(rows, dpred, pred, target, mask, red, B, L,
                                                      P, norm_pix, dloss);
    CU_LAUNCHED();
    k_loss_sum<<<1, 1024>>>(red, rows, mask, n);
    CU_LAUNCHED();
    double h[2];
    CUDA_CHECK(cudaMemcpy(h, red, sizeof h, cudaMemcpyDeviceToHost));
    if (h[0] <= 0.0) return 0.0f;
    return (float)(h[1] / h[0]);
}
