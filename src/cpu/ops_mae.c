/* ops_mae.c - MAE data movement (patches, masking gather, unshuffle) and the masked loss. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "common.h"
#include "cpu.h"

/* cols (B,K,C*p*p) <- imgs (B,C,H,W), patch ids[b*K+k] (or k), order (c, i, j) */
void cpu_im2patch(float *cols, const float *imgs, const int32_t *ids, int B, int C, int H,
                  int W, int p, int K) {
    int gw = W / p;
    size_t P = (size_t)C * p * p;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int k = 0; k < K; k++) {
            int id = ids ? ids[(size_t)b * K + k] : k;
            int py = id / gw, px = id % gw;
            float *dst = cols + ((size_t)b * K + k) * P;
            for (int c = 0; c < C; c++) {
                const float *src = imgs + (((size_t)b * C + c) * H + (size_t)py * p) * W + px * p;
                for (int i = 0; i < p; i++) {
                    memcpy(dst, src + (size_t)i * W, sizeof(float) * p);
                    dst += p;
                }
            }
        }
    }
}

/* target (B,L,P) <- imgs (B,C,H,W), order (i, j, c) as the official patchify */
void cpu_patchify(float *target, const float *imgs, int B, int C, int H, int W, int p) {
    int gh = H / p, gw = W / p, L = gh * gw;
    size_t P = (size_t)C * p * p;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int l = 0; l < L; l++) {
            int py = l / gw, px = l % gw;
            float *dst = target + ((size_t)b * L + l) * P;
            for (int i = 0; i < p; i++)
                for (int j = 0; j < p; j++)
                    for (int c = 0; c < C; c++)
                        dst[((size_t)i * p + j) * C + c] =
                            imgs[(((size_t)b * C + c) * H + (size_t)py * p + i) * W + px * p + j];
        }
    }
}

/* x (B,1+K,D) <- emb (B,K,D), cls (D), pos (1+L,D), ids_keep (B,K) */
void cpu_embed_tokens(float *x, const float *emb, const float *cls, const float *pos,
                      const int32_t *ids_keep, int B, int L, int K, int D) {
    (void)L;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int k = 0; k <= K; k++) {
            float *dst = x + ((size_t)b * (K + 1) + k) * D;
            if (k == 0) {
                for (int d = 0; d < D; d++) dst[d] = cls[d] + pos[d];
            } else {
                const float *e = emb + ((size_t)b * K + k - 1) * D;
                const float *ps = pos + (size_t)(1 + ids_keep[(size_t)b * K + k - 1]) * D;
                for (int d = 0; d < D; d++) dst[d] = e[d] + ps[d];
            }
        }
    }
}

/* demb (B,K,D) += dx[:,1:], dcls (D) += sum_b dx[b,0] ; dx (B,1+K,D) */
void cpu_embed_tokens_backward(float *demb, float *dcls, const float *dx, int B, int K, int D) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const float *src = dx + ((size_t)b * (K + 1) + 1) * D;
        float *dst = demb + (size_t)b * K * D;
        for (size_t i = 0; i < (size_t)K * D; i++) dst[i] += src[i];
    }
    if (dcls)
        for (int b = 0; b < B; b++) {
            const float *src = dx + (size_t)b * (K + 1) * D;
            for (int d = 0; d < D; d++) dcls[d] += src[d];
        }
}

/* y (B,1+L,D) <- xd (B,1+K,D), mask_token (D), pos (1+L,D), ids_restore (B,L) */
void cpu_unshuffle(float *y, const float *xd, const float *mask_token, const float *pos,
                   const int32_t *ids_restore, int B, int L, int K, int D) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int l = 0; l <= L; l++) {
            float *dst = y + ((size_t)b * (L + 1) + l) * D;
            const float *src;
            if (l == 0) {
                src = xd + (size_t)b * (K + 1) * D;
            } else {
                int r = ids_restore[(size_t)b * L + l - 1];
                src = r < K ? xd + ((size_t)b * (K + 1) + 1 + r) * D : mask_token;
            }
            const float *ps = pos + (size_t)l * D;
            for (int d = 0; d < D; d++) dst[d] = src[d] + ps[d];
        }
    }
}

/* dxd (B,1+K,D) +=, dmask_token (D) += ; dy (B,1+L,D) */
void cpu_unshuffle_backward(float *dxd, float *dmask_token, const float *dy,
                            const int32_t *ids_restore, int B, int L, int K, int D) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        for (int l = 0; l <= L; l++) {
            int r = l == 0 ? -1 : ids_restore[(size_t)b * L + l - 1];
            if (r >= K) continue;
            float *dst = dxd + ((size_t)b * (K + 1) + 1 + r) * D;
            const float *src = dy + ((size_t)b * (L + 1) + l) * D;
            for (int d = 0; d < D; d++) dst[d] += src[d];
        }
    }
    if (dmask_token)
        for (int b = 0; b < B; b++)
            for (int l = 1; l <= L; l++) {
                if (ids_restore[(size_t)b * L + l - 1] < K) continue;
                const float *src = dy + ((size_t)b * (L + 1) + l) * D;
                for (int d = 0; d < D; d++) dmask_token[d] += src[d];
            }
}

/* per-patch normalisation of the target: mean and unbiased variance, eps 1e-6 */
static void patch_stats(const float *t, int P, float *mean, float *inv) {
    float s = 0.0f;
    for (int j = 0; j < P; j++) s += t[j];
    float m = s / P, v = 0.0f;
    for (int j = 0; j < P; j++) {
        float d = t[j] - m;
        v += d * d;
    }
    v = P > 1 ? v / (P - 1) : 0.0f;
    *mean = m;
    *inv = 1.0f / sqrtf(v + 1e-6f);
}

/* loss over removed patches. pred (B,1+L,P), target (B,L,P), mask (B,L); dpred (B,1+L,P) += */
float cpu_mae_loss(float *dpred, const float *pred, const float *target, const float *mask,
                   int B, int L, int P, int norm_pix, float dloss) {
    size_t n = (size_t)B * L;
    float *rows = cpu_scratch(1, sizeof(float) * n);
    double msum = 0.0;
    for (size_t i = 0; i < n; i++) msum += mask[i];
    float coef = msum > 0.0 ? (float)(dloss / msum) * 2.0f / P : 0.0f;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        size_t b = i / L, l = i % L;
        const float *pr = pred + (b * (L + 1) + 1 + l) * P;
        const float *t = target + i * P;
        float m = 0.0f, inv = 1.0f;
        if (norm_pix) patch_stats(t, P, &m, &inv);
        float s = 0.0f;
        for (int j = 0; j < P; j++) {
            float d = pr[j] - (t[j] - m) * inv;
            s += d * d;
        }
        rows[i] = s / P;
        if (dpred && mask[i] != 0.0f) {
            float *dp = dpred + (b * (L + 1) + 1 + l) * P;
            float c = coef * mask[i];
            for (int j = 0; j < P; j++) dp[j] += c * (pr[j] - (t[j] - m) * inv);
        }
    }
    if (msum <= 0.0) return 0.0f;
    double loss = 0.0;
    for (size_t i = 0; i < n; i++) loss += (double)rows[i] * mask[i];
    return (float)(loss / msum);
}
