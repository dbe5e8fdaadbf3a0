/* ops_dense.c - matmul (gemm.c), LayerNorm, GELU, elementwise, AdamW on the CPU. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "common.h"
#include "cpu.h"
#include "gemm.h"
#include "vmath.h"

int cpu_has_precision(int prec) {
    return prec == MAE_PREC_FP32 || (prec == MAE_PREC_BF16 && cpu_gemm_has_bf16());
}

/* out (M,N) = inp (M,K) @ w (N,K)^T + bias (N) */
void cpu_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int M,
                        int K, int N, int prec) {
    cpu_gemm(out, (size_t)N, inp, (size_t)K, 1, w, 1, (size_t)K, bias, M, N, K, 0, prec, NULL);
}

/* pre (M,N) = inp (M,K) @ w (N,K)^T + bias; act (M,N) = gelu(pre), in the GEMM's epilogue */
void cpu_matmul_forward_gelu(float *pre, float *act, const float *inp, const float *w,
                             const float *bias, int M, int K, int N, int prec) {
    gemm_epi e = {GEMM_EPI_GELU, act, (size_t)N, NULL, 0, NULL, 0};
    cpu_gemm(pre, (size_t)N, inp, (size_t)K, 1, w, 1, (size_t)K, bias, M, N, K, 0, prec, &e);
}

/* dbias (N) += column sums of dout (M,N): partial sums over fixed blocks of DB_ROWS rows,
 * added in block order (the same result at any number of threads) */
#define DB_ROWS 128
static void colsum_acc(float *dbias, const float *dout, int M, int N) {
    int nblk = (M + DB_ROWS - 1) / DB_ROWS;
    float *part = cpu_scratch(3, sizeof(float) * (size_t)N * (nblk > 0 ? nblk : 1));
#pragma omp parallel for schedule(static)
    for (int k = 0; k < nblk; k++) {
        float *p = part + (size_t)k * N;
        int m1 = (k + 1) * DB_ROWS < M ? (k + 1) * DB_ROWS : M;
        memcpy(p, dout + (size_t)k * DB_ROWS * N, sizeof(float) * N);
        for (int m = k * DB_ROWS + 1; m < m1; m++) {
            const float *row = dout + (size_t)m * N;
#pragma omp simd
            for (int n = 0; n < N; n++) p[n] += row[n];
        }
    }
    for (int k = 0; k < nblk; k++) {
        const float *p = part + (size_t)k * N;
#pragma omp simd
        for (int n = 0; n < N; n++) dbias[n] += p[n];
    }
}

/* dinp (M,K) += dout (M,N) @ w (N,K); dw (N,K) += dout^T @ inp (M,K); dbias (N) += colsum */
void cpu_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                         const float *inp, const float *w, int M, int K, int N, int prec) {
    if (dinp) cpu_gemm(dinp, (size_t)K, dout, (size_t)N, 1, w, (size_t)K, 1, NULL, M, K, N, 1, prec, NULL);
    if (dw) cpu_gemm(dw, (size_t)K, dout, 1, (size_t)N, inp, (size_t)K, 1, NULL, N, K, M, 1, prec, NULL);
    if (dbias) colsum_acc(dbias, dout, M, N);
}

/* through the GELU: dpre (M,K) = (dout @ w) * gelu'(pre) (overwritten); dw += dout^T @ act;
 * dbias += colsum(dout) */
void cpu_matmul_backward_gelu(float *dpre, float *dw, float *dbias, const float *dout,
                              const float *act, const float *pre, const float *w, int M, int K,
                              int N, int prec) {
    gemm_epi e = {GEMM_EPI_DGELU, NULL, 0, pre, (size_t)K, act, (size_t)K};
    cpu_gemm(dpre, (size_t)K, dout, (size_t)N, 1, w, (size_t)K, 1, NULL, M, K, N, 0, prec, &e);
    if (dw) cpu_gemm(dw, (size_t)K, dout, 1, (size_t)N, act, (size_t)K, 1, NULL, N, K, M, 1, prec, NULL);
    if (dbias) colsum_acc(dbias, dout, M, N);
}

/* out (N,C), mean (N), rstd (N) <- inp (N,C), w (C), b (C) */
void cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *w, const float *b, int N, int C, float eps) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float *y = out + (size_t)i * C;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++) s += x[c];
        float m = s / C;
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++) {
            float d = x[c] - m;
            v += d * d;
        }
        float r = 1.0f / sqrtf(v / C + eps);
#pragma omp simd
        for (int c = 0; c < C; c++) y[c] = (x[c] - m) * r * w[c] + b[c];
        mean[i] = m;
        rstd[i] = r;
    }
}

/* dinp (N,C) +=, dw (C) +=, db (C) += . dw/db: partial sums over fixed blocks of LN_ROWS rows,
 * added in block order, so the result does not depend on the number of threads. */
#define LN_ROWS 64
void cpu_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                            const float *inp, const float *w, const float *mean,
                            const float *rstd, int N, int C) {
    int nblk = (N + LN_ROWS - 1) / LN_ROWS;
    float *part = cpu_scratch(0, sizeof(float) * 2 * (size_t)C * (nblk > 0 ? nblk : 1));
#pragma omp parallel for schedule(static)
    for (int k = 0; k < nblk; k++) {
        float *pdw = part + (size_t)k * 2 * C, *pdb = pdw + C;
        memset(pdw, 0, sizeof(float) * 2 * C);
        int i1 = (k + 1) * LN_ROWS < N ? (k + 1) * LN_ROWS : N;
        for (int i = k * LN_ROWS; i < i1; i++) {
            const float *x = inp + (size_t)i * C, *g = dout + (size_t)i * C;
            float *dx = dinp + (size_t)i * C;
            float m = mean[i], r = rstd[i];
            float sd = 0.0f, sdn = 0.0f;
#pragma omp simd reduction(+ : sd, sdn)
            for (int c = 0; c < C; c++) {
                float n = (x[c] - m) * r, dn = g[c] * w[c];
                sd += dn;
                sdn += dn * n;
                pdw[c] += g[c] * n;
                pdb[c] += g[c];
            }
            sd /= C;
            sdn /= C;
#pragma omp simd
            for (int c = 0; c < C; c++) {
                float n = (x[c] - m) * r, dn = g[c] * w[c];
                dx[c] += (dn - sd - n * sdn) * r;
            }
        }
    }
    /* block order; columns split over threads */
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        float sw = 0.0f, sb = 0.0f;
        for (int k = 0; k < nblk; k++) {
            sw += part[(size_t)k * 2 * C + c];
            sb += part[(size_t)k * 2 * C + C + c];
        }
        dw[c] += sw;
        db[c] += sb;
    }
}

/* exact GELU x * Phi(x) with the branch-free erf/exp of vmath.h (glibc erff is scalar) */
void cpu_gelu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i], g;
        out[i] = x * vm_normal_cdf(x, &g);
    }
}

void cpu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i], g;
        float cdf = vm_normal_cdf(x, &g);
        dinp[i] += dout[i] * (cdf + x * (VM_INV_SQRT_2PI * g));
    }
}

void cpu_add(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void cpu_add_inplace(float *acc, const float *x, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) acc[i] += x[i];
}

static inline void adamw_one(float *p, const float *g, float *m, float *v, size_t i, float beta1,
                             float beta2, float eps, float step, float sbc2, float decay) {
    float gi = g[i];
    float mi = beta1 * m[i] + (1.0f - beta1) * gi;
    float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step * mi / (sqrtf(vi) / sbc2 + eps);
}

/* Memory bound (7 floats moved per parameter, 8 with zero_grad). GCC will not vectorise sqrtf
 * in ISO C mode (errno), so the AVX-512 path spells the same operations, in the same order and
 * unfused, with intrinsics: results are bitwise identical to adamw_one as GCC compiles it in
 * this ISO C build (no contraction); bench/kernel_bench.c checks this. */
static void adamw_span(float *p, float *g, float *m, float *v, size_t n, float beta1,
                       float beta2, float eps, float step, float sbc2, float decay, int zero_grad) {
    size_t i = 0;
#ifdef MAE_AVX512
    const __m512 b1 = _mm512_set1_ps(beta1), c1 = _mm512_set1_ps(1.0f - beta1);
    const __m512 b2 = _mm512_set1_ps(beta2), c2 = _mm512_set1_ps(1.0f - beta2);
    const __m512 vstep = _mm512_set1_ps(step), vsbc2 = _mm512_set1_ps(sbc2);
    const __m512 veps = _mm512_set1_ps(eps), vdecay = _mm512_set1_ps(decay);
    for (; i + 16 <= n; i += 16) {
        __m512 gi = _mm512_loadu_ps(g + i);
        __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(m + i)), _mm512_mul_ps(c1, gi));
        __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(v + i)),
                                  _mm512_mul_ps(_mm512_mul_ps(c2, gi), gi));
        _mm512_storeu_ps(m + i, mi);
        _mm512_storeu_ps(v + i, vi);
        __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), vsbc2), veps);
        __m512 upd = _mm512_div_ps(_mm512_mul_ps(vstep, mi), den);
        _mm512_storeu_ps(p + i, _mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(p + i), vdecay), upd));
        if (zero_grad) _mm512_storeu_ps(g + i, _mm512_setzero_ps());
    }
#endif
    for (; i < n; i++) {
        adamw_one(p, g, m, v, i, beta1, beta2, eps, step, sbc2, decay);
        if (zero_grad) g[i] = 0.0f;
    }
}

/* Every segment is split evenly over the threads (16-float aligned cuts) in one parallel region,
 * without barriers between segments: ~150 tensors (ViT-B) cost one fork/join, not 150. */
void cpu_adamw(float *p, float *g, float *m, float *v, const mae_adamw_seg *segs, int nseg,
               float lr, float beta1, float beta2, float eps, float bc1, float bc2,
               int zero_grad) {
    float sbc2 = sqrtf(bc2);
    size_t total = 0;
    for (int s = 0; s < nseg; s++) total += segs[s].n;
#pragma omp parallel if (total > 16384)
    {
        size_t nt = (size_t)omp_get_num_threads(), it = (size_t)omp_get_thread_num();
        for (int s = 0; s < nseg; s++) {
            size_t n = segs[s].n, o = segs[s].offset;
            size_t a = (n * it / nt) & ~(size_t)15, b = it + 1 == nt ? n : (n * (it + 1) / nt) & ~(size_t)15;
            if (b <= a) continue;
            float lrs = lr * segs[s].lr_scale, step = lrs / bc1, decay = 1.0f - lrs * segs[s].wd;
            adamw_span(p + o + a, g + o + a, m + o + a, v + o + a, b - a, beta1, beta2, eps, step,
                       sbc2, decay, zero_grad);
        }
    }
}

/* sum of squares in double over fixed chunks (at most 256, sized from n alone) added in chunk
 * order: the same result at any number of threads */
double cpu_sumsq(const float *x, size_t n) {
    double part[256];
    size_t chunk = n / 256 + 1 > ((size_t)1 << 14) ? n / 256 + 1 : ((size_t)1 << 14);
    int nch = (int)((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(static)
    for (int k = 0; k < nch; k++) {
        size_t i0 = (size_t)k * chunk, i1 = i0 + chunk < n ? i0 + chunk : n;
        double s = 0.0;
        for (size_t i = i0; i < i1; i++) s += (double)x[i] * x[i];
        part[k] = s;
    }
    double s = 0.0;
    for (int k = 0; k < nch; k++) s += part[k];
    return s;
}
