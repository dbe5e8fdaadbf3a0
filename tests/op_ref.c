/* op_ref.c - naive double-precision reference ops for test_ops.c (see op_ref.h). Clarity over
 * speed: every formula is written directly from the definitions in src/backend.h. */
#include "op_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ dense layers */

void ref_matmul_forward(double *out, const double *inp, const double *w, const double *bias,
                        int M, int K, int N) {
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            double s = bias ? bias[n] : 0.0;
            for (int k = 0; k < K; k++) s += inp[(size_t)m * K + k] * w[(size_t)n * K + k];
            out[(size_t)m * N + n] = s;
        }
    }
}

void ref_matmul_backward(double *dinp, double *dw, double *dbias, const double *dout,
                         const double *inp, const double *w, int M, int K, int N) {
    if (dinp) {
        for (int m = 0; m < M; m++) {
            for (int k = 0; k < K; k++) {
                double s = 0.0;
                for (int n = 0; n < N; n++) s += dout[(size_t)m * N + n] * w[(size_t)n * K + k];
                dinp[(size_t)m * K + k] = s;
            }
        }
    }
    if (dw) {
        for (int n = 0; n < N; n++) {
            for (int k = 0; k < K; k++) {
                double s = 0.0;
                for (int m = 0; m < M; m++)
                    s += dout[(size_t)m * N + n] * inp[(size_t)m * K + k];
                dw[(size_t)n * K + k] = s;
            }
        }
    }
    if (dbias) {
        for (int n = 0; n < N; n++) {
            double s = 0.0;
            for (int m = 0; m < M; m++) s += dout[(size_t)m * N + n];
            dbias[n] = s;
        }
    }
}

/* ------------------------------------------------------------------ layernorm */

static void ln_stats(const double *x, int C, double *mean, double *rstd) {
    double mu = 0.0;
    for (int c = 0; c < C; c++) mu += x[c];
    mu /= C;
    double var = 0.0;
    for (int c = 0; c < C; c++) var += (x[c] - mu) * (x[c] - mu);
    var /= C; /* biased */
    *mean = mu;
    *rstd = 1.0 / sqrt(var + REF_LN_EPS);
}

void ref_layernorm_forward(double *out, double *mean, double *rstd, const double *inp,
                           const double *w, const double *b, int N, int C) {
    for (int i = 0; i < N; i++) {
        const double *x = inp + (size_t)i * C;
        double mu, rs;
        ln_stats(x, C, &mu, &rs);
        for (int c = 0; c < C; c++) out[(size_t)i * C + c] = (x[c] - mu) * rs * w[c] + b[c];
        if (mean) mean[i] = mu;
        if (rstd) rstd[i] = rs;
    }
}

void ref_layernorm_backward(double *dinp, double *dw, double *db, const double *dout,
                            const double *inp, const double *w, int N, int C) {
    if (dw) memset(dw, 0, sizeof(double) * (size_t)C);
    if (db) memset(db, 0, sizeof(double) * (size_t)C);
    for (int i = 0; i < N; i++) {
        const double *x = inp + (size_t)i * C;
        const double *dy = dout + (size_t)i * C;
        double mu, rs;
        ln_stats(x, C, &mu, &rs);
        /* y = xhat * w + b, xhat = (x - mu) * rs.
         * dx = rs * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w */
        double mg = 0.0, mgx = 0.0;
        for (int c = 0; c < C; c++) {
            double xh = (x[c] - mu) * rs;
            double g = dy[c] * w[c];
            mg += g;
            mgx += g * xh;
            if (dw) dw[c] += dy[c] * xh;
            if (db) db[c] += dy[c];
        }
        mg /= C;
        mgx /= C;
        if (dinp) {
            for (int c = 0; c < C; c++) {
                double xh = (x[c] - mu) * rs;
                dinp[(size_t)i * C + c] = rs * (dy[c] * w[c] - mg - xh * mgx);
            }
        }
    }
}

/* ------------------------------------------------------------------ gelu */

double ref_gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

double ref_gelu_grad(double x) {
    const double inv_sqrt_2pi = 0.39894228040143267794;
    return 0.5 * (1.0 + erf(x / sqrt(2.0))) + x * inv_sqrt_2pi * exp(-0.5 * x * x);
}

/* ------------------------------------------------------------------ attention */

static double qkv_at(const double *qkv, int B, int T, int C, int b, int t, int part, int col) {
    (void)B;
    return qkv[((size_t)b * T + t) * 3 * (size_t)C + (size_t)part * C + col];
}

/* probs[s] for query t of head h; probs has T entries */
static void att_row(double *probs, const double *qkv, int B, int T, int C, int NH, int b, int h,
                    int t) {
    int hd = C / NH;
    double scale = 1.0 / sqrt((double)hd);
    double mx = -INFINITY;
    for (int s = 0; s < T; s++) {
        double d = 0.0;
        for (int e = 0; e < hd; e++)
            d += qkv_at(qkv, B, T, C, b, t, 0, h * hd + e) * qkv_at(qkv, B, T, C, b, s, 1, h * hd + e);
        probs[s] = d * scale;
        if (probs[s] > mx) mx = probs[s];
    }
    double z = 0.0;
    for (int s = 0; s < T; s++) {
        probs[s] = exp(probs[s] - mx);
        z += probs[s];
    }
    for (int s = 0; s < T; s++) probs[s] /= z;
}

void ref_attention_forward(double *out, double *att, const double *qkv, int B, int T, int C,
                           int NH) {
    int hd = C / NH;
    double *probs = malloc(sizeof(double) * (size_t)T);
    if (!probs) abort();
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++) {
                att_row(probs, qkv, B, T, C, NH, b, h, t);
                if (att)
                    memcpy(att + (((size_t)b * NH + h) * T + t) * T, probs, sizeof(double) * T);
                for (int e = 0; e < hd; e++) {
                    double s = 0.0;
                    for (int u = 0; u < T; u++) s += probs[u] * qkv_at(qkv, B, T, C, b, u, 2, h * hd + e);
                    out[((size_t)b * T + t) * C + h * hd + e] = s;
                }
            }
        }
    }
    free(probs);
}

void ref_attention_backward(double *dqkv, const double *dout, const double *qkv, int B, int T,
                            int C, int NH) {
    int hd = C / NH;
    double scale = 1.0 / sqrt((double)hd);
    size_t C3 = 3 * (size_t)C;
    double *probs = malloc(sizeof(double) * (size_t)T);
    double *dp = malloc(sizeof(double) * (size_t)T);
    if (!probs || !dp) abort();
    memset(dqkv, 0, sizeof(double) * (size_t)B * T * C3);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++) {
                att_row(probs, qkv, B, T, C, NH, b, h, t);
                const double *dy = dout + ((size_t)b * T + t) * C + h * hd;
                /* out_t = sum_s P_ts v_s  ->  dv_s += P_ts dy_t, dP_ts = dy_t . v_s */
                for (int s = 0; s < T; s++) {
                    double d = 0.0;
                    for (int e = 0; e < hd; e++) {
                        d += dy[e] * qkv_at(qkv, B, T, C, b, s, 2, h * hd + e);
                        dqkv[((size_t)b * T + s) * C3 + 2 * (size_t)C + h * hd + e] += probs[s] * dy[e];
                    }
                    dp[s] = d;
                }
                /* softmax: dS_ts = P_ts (dP_ts - sum_u P_tu dP_tu) */
                double dot = 0.0;
                for (int s = 0; s < T; s++) dot += probs[s] * dp[s];
                for (int s = 0; s < T; s++) {
                    double ds = probs[s] * (dp[s] - dot) * scale;
                    /* S_ts = scale * q_t . k_s */
                    for (int e = 0; e < hd; e++) {
                        dqkv[((size_t)b * T + t) * C3 + h * hd + e] +=
                            ds * qkv_at(qkv, B, T, C, b, s, 1, h * hd + e);
                        dqkv[((size_t)b * T + s) * C3 + (size_t)C + h * hd + e] +=
                            ds * qkv_at(qkv, B, T, C, b, t, 0, h * hd + e);
                    }
                }
            }
        }
    }
    free(probs);
    free(dp);
}

/* ------------------------------------------------------------------ patches */

void ref_im2patch(double *cols, const double *imgs, const int32_t *ids, int B, int C, int H,
                  int W, int p, int K) {
    int gw = W / p;
    size_t P = (size_t)C * p * p;
    for (int b = 0; b < B; b++) {
        for (int k = 0; k < K; k++) {
            int l = ids ? ids[(size_t)b * K + k] : k;
            int ph = l / gw, pw = l % gw;
            double *dst = cols + ((size_t)b * K + k) * P;
            for (int c = 0; c < C; c++)
                for (int i = 0; i < p; i++)
                    for (int j = 0; j < p; j++)
                        dst[((size_t)c * p + i) * p + j] =
                            imgs[(((size_t)b * C + c) * H + ph * p + i) * W + pw * p + j];
        }
    }
}

void ref_patchify(double *target, const double *imgs, int B, int C, int H, int W, int p) {
    int gh = H / p, gw = W / p;
    size_t P = (size_t)C * p * p;
    for (int b = 0; b < B; b++)
        for (int ph = 0; ph < gh; ph++)
            for (int pw = 0; pw < gw; pw++) {
                double *dst = target + ((size_t)b * gh * gw + (size_t)ph * gw + pw) * P;
                for (int i = 0; i < p; i++)
                    for (int j = 0; j < p; j++)
                        for (int c = 0; c < C; c++)
                            dst[((size_t)i * p + j) * C + c] =
                                imgs[(((size_t)b * C + c) * H + ph * p + i) * W + pw * p + j];
            }
}

/* ------------------------------------------------------------------ token plumbing */

void ref_embed_tokens(double *x, const double *emb, const double *cls, const double *pos,
                      const int32_t *ids_keep, int B, int L, int K, int D) {
    (void)L;
    for (int b = 0; b < B; b++) {
        double *xb = x + (size_t)b * (1 + K) * D;
        for (int d = 0; d < D; d++) xb[d] = cls[d] + pos[d];
        for (int k = 0; k < K; k++) {
            int id = ids_keep[(size_t)b * K + k];
            for (int d = 0; d < D; d++)
                xb[(size_t)(1 + k) * D + d] =
                    emb[((size_t)b * K + k) * D + d] + pos[(size_t)(1 + id) * D + d];
        }
    }
}

void ref_embed_tokens_backward(double *demb, double *dcls, const double *dx, int B, int K,
                               int D) {
    if (dcls) memset(dcls, 0, sizeof(double) * (size_t)D);
    for (int b = 0; b < B; b++) {
        const double *g = dx + (size_t)b * (1 + K) * D;
        if (dcls)
            for (int d = 0; d < D; d++) dcls[d] += g[d];
        if (demb)
            for (int k = 0; k < K; k++)
                for (int d = 0; d < D; d++)
                    demb[((size_t)b * K + k) * D + d] = g[(size_t)(1 + k) * D + d];
    }
}

void ref_unshuffle(double *y, const double *xd, const double *mask_token, const double *pos,
                   const int32_t *ids_restore, int B, int L, int K, int D) {
    for (int b = 0; b < B; b++) {
        double *yb = y + (size_t)b * (1 + L) * D;
        const double *xb = xd + (size_t)b * (1 + K) * D;
        for (int d = 0; d < D; d++) yb[d] = xb[d] + pos[d];
        for (int l = 0; l < L; l++) {
            int r = ids_restore[(size_t)b * L + l];
            const double *src = r < K ? xb + (size_t)(1 + r) * D : mask_token;
            for (int d = 0; d < D; d++)
                yb[(size_t)(1 + l) * D + d] = src[d] + pos[(size_t)(1 + l) * D + d];
        }
    }
}

void ref_unshuffle_backward(double *dxd, double *dmask_token, const double *dy,
                            const int32_t *ids_restore, int B, int L, int K, int D) {
    if (dxd) memset(dxd, 0, sizeof(double) * (size_t)B * (1 + K) * D);
    if (dmask_token) memset(dmask_token, 0, sizeof(double) * (size_t)D);
    for (int b = 0; b < B; b++) {
        const double *g = dy + (size_t)b * (1 + L) * D;
        double *gx = dxd ? dxd + (size_t)b * (1 + K) * D : NULL;
        if (gx)
            for (int d = 0; d < D; d++) gx[d] += g[d];
        for (int l = 0; l < L; l++) {
            int r = ids_restore[(size_t)b * L + l];
            double *dst = r < K ? (gx ? gx + (size_t)(1 + r) * D : NULL) : dmask_token;
            if (dst)
                for (int d = 0; d < D; d++) dst[d] += g[(size_t)(1 + l) * D + d];
        }
    }
}

/* ------------------------------------------------------------------ loss */

double ref_mae_loss(double *dpred, const double *pred, const double *target, const double *mask,
                    int B, int L, int P, int norm_pix, double dloss) {
    double msum = 0.0;
    for (size_t i = 0; i < (size_t)B * L; i++) msum += mask[i];
    double *t = malloc(sizeof(double) * (size_t)P);
    if (!t) abort();
    if (dpred) memset(dpred, 0, sizeof(double) * (size_t)B * (1 + L) * P);
    double num = 0.0;
    for (int b = 0; b < B; b++) {
        for (int l = 0; l < L; l++) {
            const double *tr = target + ((size_t)b * L + l) * P;
            const double *pr = pred + ((size_t)b * (1 + L) + 1 + l) * P;
            memcpy(t, tr, sizeof(double) * (size_t)P);
            if (norm_pix) {
                double mu = 0.0, var = 0.0;
                for (int i = 0; i < P; i++) mu += t[i];
                mu /= P;
                for (int i = 0; i < P; i++) var += (t[i] - mu) * (t[i] - mu);
                var /= (P - 1); /* unbiased, as torch.Tensor.var */
                for (int i = 0; i < P; i++) t[i] = (t[i] - mu) / sqrt(var + REF_NORM_PIX_EPS);
            }
            double mse = 0.0;
            for (int i = 0; i < P; i++) mse += (pr[i] - t[i]) * (pr[i] - t[i]);
            mse /= P;
            double mk = mask[(size_t)b * L + l];
            num += mk * mse;
            if (dpred && msum != 0.0) {
                double *g = dpred + ((size_t)b * (1 + L) + 1 + l) * P;
                for (int i = 0; i < P; i++) g[i] = dloss * mk * 2.0 * (pr[i] - t[i]) / P / msum;
            }
        }
    }
    free(t);
    return msum != 0.0 ? num / msum : 0.0;
}

/* ------------------------------------------------------------------ optimizer */

void ref_adamw(double *p, const double *g, double *m, double *v, size_t n, double lr,
               double beta1, double beta2, double eps, double wd, double bc1, double bc2) {
    for (size_t i = 0; i < n; i++) {
        p[i] *= 1.0 - lr * wd; /* decoupled weight decay first */
        m[i] = beta1 * m[i] + (1.0 - beta1) * g[i];
        v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i];
        double denom = sqrt(v[i]) / sqrt(bc2) + eps;
        p[i] -= (lr / bc1) * m[i] / denom;
    }
}

double ref_sumsq(const double *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i] * x[i];
    return s;
}
