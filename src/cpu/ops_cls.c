/* ops_cls.c - CPU kernels of the classifier (fine-tuning, linear probing): drop_path scaling,
 * token pooling, BatchNorm1d without affine, soft-target cross entropy, and LARS. Shapes and
 * contracts are in backend.h. Reductions run in a fixed order, so results do not depend on the
 * number of threads. */
#include <math.h>
#include <omp.h>

#include "common.h"
#include "cpu.h"

/* out (B, n) = in (B, n) * scale[b] */
void cpu_scale_rows(float *out, const float *in, const float *scale, int B, size_t n) {
#pragma omp parallel for schedule(static) if ((size_t)B * n > 65536)
    for (int b = 0; b < B; b++) {
        float s = scale[b];
        const float *x = in + (size_t)b * n;
        float *y = out + (size_t)b * n;
        for (size_t i = 0; i < n; i++) y[i] = x[i] * s;
    }
}

/* out (B,C) <- x (B,T,C) */
void cpu_pool_tokens(float *out, const float *x, int B, int T, int C, int mode) {
#pragma omp parallel for schedule(static) if ((size_t)B * T * C > 65536)
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * T * C;
        float *o = out + (size_t)b * C;
        if (mode == MAE_POOL_CLS) {
            for (int c = 0; c < C; c++) o[c] = xb[c];
            continue;
        }
        MAE_ASSERT(T > 1);
        for (int c = 0; c < C; c++) o[c] = 0.0f;
        for (int t = 1; t < T; t++)
            for (int c = 0; c < C; c++) o[c] += xb[(size_t)t * C + c];
        float inv = 1.0f / (float)(T - 1);
        for (int c = 0; c < C; c++) o[c] *= inv;
    }
}

/* dx (B,T,C) += d pool / d x applied to dout (B,C) */
void cpu_pool_tokens_backward(float *dx, const float *dout, int B, int T, int C, int mode) {
#pragma omp parallel for schedule(static) if ((size_t)B * T * C > 65536)
    for (int b = 0; b < B; b++) {
        float *d = dx + (size_t)b * T * C;
        const float *g = dout + (size_t)b * C;
        if (mode == MAE_POOL_CLS) {
            for (int c = 0; c < C; c++) d[c] += g[c];
            continue;
        }
        float inv = 1.0f / (float)(T - 1);
        for (int t = 1; t < T; t++)
            for (int c = 0; c < C; c++) d[(size_t)t * C + c] += g[c] * inv;
    }
}

/* out (B,C) <- x (B,C); statistics per channel in double */
void cpu_batchnorm_forward(float *out, float *run_mean, float *run_var, const float *x, int B,
                           int C, int train, float momentum, float eps) {
#pragma omp parallel for schedule(static) if ((size_t)B * C > 65536)
    for (int c = 0; c < C; c++) {
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
}

/* z, t, dz (B,NC); loss summed per row in double, rows added in order */
float cpu_softmax_xent(float *dz, const float *z, const float *t, int B, int NC, float dloss) {
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *zb = z + (size_t)b * NC, *tb = t + (size_t)b * NC;
        double mx = zb[0];
        for (int c = 1; c < NC; c++) mx = zb[c] > mx ? zb[c] : mx;
        double se = 0.0;
        for (int c = 0; c < NC; c++) se += exp(zb[c] - mx);
        double lse = mx + log(se), row = 0.0, tsum = 0.0;
        for (int c = 0; c < NC; c++) {
            row -= tb[c] * (zb[c] - lse);
            tsum += tb[c];
        }
        total += row;
        if (dz) {
            float *db = dz + (size_t)b * NC;
            double k = (double)dloss / B;
            for (int c = 0; c < NC; c++) db[c] = (float)(k * (exp(zb[c] - lse) * tsum - tb[c]));
        }
    }
    return (float)(total / B);
}

void cpu_scale_inplace(float *x, float s, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

/* LARS over segments; norms in double. Small (a linear head): one thread per segment. */
void cpu_lars(float *p, float *g, float *mu, const mae_adamw_seg *segs, int nseg, float lr,
              float momentum, float trust, int zero_grad) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int s = 0; s < nseg; s++) {
        size_t n = segs[s].n, o = segs[s].offset;
        float *ps = p + o, *gs = g + o, *ms = mu + o;
        float wd = segs[s].lars_adapt ? segs[s].wd : 0.0f, q = 1.0f;
        if (segs[s].lars_adapt) {
            double pn = 0.0, un = 0.0;
            for (size_t i = 0; i < n; i++) {
                double u = (double)gs[i] + (double)wd * ps[i];
                pn += (double)ps[i] * ps[i];
                un += u * u;
            }
            if (pn > 0.0 && un > 0.0) q = (float)(trust * sqrt(pn) / sqrt(un));
        }
        float lrs = lr * segs[s].lr_scale;
        for (size_t i = 0; i < n; i++) {
            float u = (gs[i] + wd * ps[i]) * q;
            ms[i] = momentum * ms[i] + u;
            ps[i] -= lrs * ms[i];
            if (zero_grad) gs[i] = 0.0f;
        }
    }
}
