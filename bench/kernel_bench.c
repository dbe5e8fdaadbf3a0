/* kernel_bench.c - times CPU backend kernels at the model shapes and checks attention against
 * a plain double-precision reference at those shapes (tests/test_ops.c covers small shapes).
 * Build (from the repo root, after building libmae into build/):
 *   cc -std=c11 -O2 -fopenmp -Isrc -Isrc/common -Iinclude bench/kernel_bench.c build/libmae.a \
 *      -L/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -lpng -lz -lcjson -lm -o /tmp/kernel_bench
 * Run: OMP_NUM_THREADS=2 /tmp/kernel_bench */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "common.h"

static float *rnd(size_t n, unsigned seed, float amp) {
    float *p = malloc(n * sizeof(float));
    srand(seed);
    for (size_t i = 0; i < n; i++) p[i] = amp * (2.0f * rand() / (float)RAND_MAX - 1.0f);
    return p;
}

/* double reference of one (b, h): out, and dqkv given dout */
static void ref_bh(double *o, double *dq, double *dk, double *dv, const float *qkv,
                   const float *dout, int b, int h, int T, int C, int NH) {
    int hd = C / NH;
    size_t C3 = 3 * (size_t)C;
    const float *base = qkv + (size_t)b * T * C3 + h * hd;
    double sc = 1.0 / sqrt((double)hd);
    double *P = malloc(sizeof(double) * T * T), *dP = malloc(sizeof(double) * T * T);
    for (int t = 0; t < T; t++) {
        double mx = -INFINITY;
        for (int s = 0; s < T; s++) {
            double d = 0;
            for (int i = 0; i < hd; i++) d += (double)base[t * C3 + i] * base[s * C3 + C + i];
            P[t * T + s] = d * sc;
            if (d * sc > mx) mx = d * sc;
        }
        double sum = 0;
        for (int s = 0; s < T; s++) sum += (P[t * T + s] = exp(P[t * T + s] - mx));
        for (int s = 0; s < T; s++) P[t * T + s] /= sum;
        for (int i = 0; i < hd; i++) {
            double acc = 0;
            for (int s = 0; s < T; s++) acc += P[t * T + s] * base[s * C3 + 2 * C + i];
            o[t * hd + i] = acc;
        }
    }
    for (size_t i = 0; i < (size_t)T * hd; i++) dq[i] = dk[i] = dv[i] = 0;
    const float *go = dout + (size_t)b * T * C + h * hd;
    for (int t = 0; t < T; t++) {
        double dot = 0;
        for (int s = 0; s < T; s++) {
            double g = 0;
            for (int i = 0; i < hd; i++) g += (double)go[t * C + i] * base[s * C3 + 2 * C + i];
            dP[t * T + s] = g;
            dot += g * P[t * T + s];
            for (int i = 0; i < hd; i++) dv[s * hd + i] += P[t * T + s] * go[t * C + i];
        }
        for (int s = 0; s < T; s++) {
            double ds = P[t * T + s] * (dP[t * T + s] - dot) * sc;
            for (int i = 0; i < hd; i++) {
                dq[t * hd + i] += ds * base[s * C3 + C + i];
                dk[s * hd + i] += ds * base[t * C3 + i];
            }
        }
    }
    free(P);
    free(dP);
}

static void attn_case(const mae_backend *be, const char *name, int B, int T, int C, int NH,
                      int reps) {
    size_t C3 = 3 * (size_t)C;
    float *qkv = rnd((size_t)B * T * C3, 1, 2.0f), *dout = rnd((size_t)B * T * C, 2, 1.0f);
    float *out = malloc(sizeof(float) * B * T * C), *att = malloc(sizeof(float) * B * NH * T * T);
    float *datt = malloc(sizeof(float) * B * NH * T * T), *dqkv = calloc((size_t)B * T * C3, 4);
    be->attention_forward(out, att, qkv, B, T, C, NH, MAE_PREC_FP32);
    be->attention_backward(dqkv, datt, dout, qkv, att, out, B, T, C, NH, MAE_PREC_FP32);
    /* check two (b, h) pairs against double */
    int hd = C / NH;
    double *o = malloc(sizeof(double) * T * hd * 4), *dq = o + T * hd, *dk = dq + T * hd,
           *dv = dk + T * hd;
    double emax = 0, ref = 0;
    int pairs[2][2] = {{0, 0}, {B - 1, NH - 1}};
    for (int pi = 0; pi < 2; pi++) {
        int b = pairs[pi][0], h = pairs[pi][1];
        ref_bh(o, dq, dk, dv, qkv, dout, b, h, T, C, NH);
        for (int t = 0; t < T; t++)
            for (int i = 0; i < hd; i++) {
                double r[4] = {o[t * hd + i], dq[t * hd + i], dk[t * hd + i], dv[t * hd + i]};
                double g[4] = {out[((size_t)b * T + t) * C + h * hd + i],
                               dqkv[((size_t)b * T + t) * C3 + h * hd + i],
                               dqkv[((size_t)b * T + t) * C3 + C + h * hd + i],
                               dqkv[((size_t)b * T + t) * C3 + 2 * C + h * hd + i]};
                for (int j = 0; j < 4; j++) {
                    if (fabs(g[j] - r[j]) > emax) emax = fabs(g[j] - r[j]);
                    if (fabs(r[j]) > ref) ref = fabs(r[j]);
                }
            }
    }
    double t0 = mae_clock();
    for (int r = 0; r < reps; r++) be->attention_forward(out, att, qkv, B, T, C, NH, MAE_PREC_FP32);
    double tf = (mae_clock() - t0) / reps;
    t0 = mae_clock();
    for (int r = 0; r < reps; r++) be->attention_backward(dqkv, datt, dout, qkv, att, out, B, T, C, NH, MAE_PREC_FP32);
    double tb = (mae_clock() - t0) / reps;
    double fl = 4.0 * B * T * (double)T * C; /* forward: two T x T x hd products per head */
    printf("attention %-10s B=%3d T=%3d C=%3d NH=%2d  fwd %7.2f ms (%5.1f GFLOP/s)  bwd %7.2f ms "
           "(%5.1f GFLOP/s)  max|err| %.1e (max|ref| %.1e)%s\n",
           name, B, T, C, NH, tf * 1e3, fl / tf / 1e9, tb * 1e3, 2 * fl / tb / 1e9, emax, ref,
           emax > 1e-5 * (ref > 1 ? ref : 1) ? "  FAIL" : "");
    free(qkv), free(dout), free(out), free(att), free(datt), free(dqkv), free(o);
}

static void ew_case(const mae_backend *be, size_t n, int reps) {
    float *x = rnd(n, 3, 4.0f), *y = malloc(n * 4), *g = rnd(n, 4, 1.0f), *dx = calloc(n, 4);
    double t0 = mae_clock();
    for (int r = 0; r < reps; r++) be->gelu_forward(y, x, n);
    double tf = (mae_clock() - t0) / reps;
    t0 = mae_clock();
    for (int r = 0; r < reps; r++) be->gelu_backward(dx, x, g, n);
    double tb = (mae_clock() - t0) / reps;
    printf("gelu      n=%zu  fwd %.2f ms (%.2f ns/elem)  bwd %.2f ms (%.2f ns/elem)\n", n, tf * 1e3,
           tf * 1e9 / n, tb * 1e3, tb * 1e9 / n);
    free(x), free(y), free(g), free(dx);
}

static void ln_case(const mae_backend *be, int N, int C, int reps) {
    float *x = rnd((size_t)N * C, 5, 1.0f), *w = rnd(C, 6, 1.0f), *bb = rnd(C, 7, 1.0f);
    float *y = malloc(sizeof(float) * N * C), *m = malloc(4 * N), *rs = malloc(4 * N);
    float *g = rnd((size_t)N * C, 8, 1.0f), *dx = calloc((size_t)N * C, 4), *dw = calloc(C, 4),
          *db = calloc(C, 4);
    double t0 = mae_clock();
    for (int r = 0; r < reps; r++) be->layernorm_forward(y, m, rs, x, w, bb, N, C, 1e-6f);
    double tf = (mae_clock() - t0) / reps;
    t0 = mae_clock();
    for (int r = 0; r < reps; r++) be->layernorm_backward(dx, dw, db, g, x, w, m, rs, N, C);
    double tb = (mae_clock() - t0) / reps;
    printf("layernorm N=%d C=%d  fwd %.3f ms  bwd %.3f ms\n", N, C, tf * 1e3, tb * 1e3);
    free(x), free(w), free(bb), free(y), free(m), free(rs), free(g), free(dx), free(dw), free(db);
}

/* AdamW: time, and compare bitwise with the scalar formula (the same expression as the
 * backend's scalar path, compiled here without contraction: -std=c11) */
static void adamw_case(const mae_backend *be, size_t n, int reps) {
    float *p = rnd(n, 9, 1.0f), *g = rnd(n, 10, 1.0f), *m = rnd(n, 11, 0.1f), *v = rnd(n, 12, 1.0f);
    for (size_t i = 0; i < n; i++) v[i] = fabsf(v[i]);
    float *p2 = malloc(n * 4), *m2 = malloc(n * 4), *v2 = malloc(n * 4);
    memcpy(p2, p, n * 4), memcpy(m2, m, n * 4), memcpy(v2, v, n * 4);
    float lr = 1e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.05f, bc1 = 0.1f, bc2 = 0.05f;
    mae_adamw_seg seg = {0, n, wd, 1.0f, 0};
    be->adamw(p, g, m, v, &seg, 1, lr, b1, b2, eps, bc1, bc2, 0);
    float step = lr / bc1, sbc2 = sqrtf(bc2), decay = 1.0f - lr * wd;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = b1 * m2[i] + (1.0f - b1) * gi;
        float vi = b2 * v2[i] + (1.0f - b2) * gi * gi;
        float pi = p2[i] * decay - step * mi / (sqrtf(vi) / sbc2 + eps);
        if (memcmp(&mi, &m[i], 4) || memcmp(&vi, &v[i], 4) || memcmp(&pi, &p[i], 4)) bad++;
    }
    double t0 = mae_clock();
    for (int r = 0; r < reps; r++) be->adamw(p, g, m, v, &seg, 1, lr, b1, b2, eps, bc1, bc2, 0);
    double t = (mae_clock() - t0) / reps;
    printf("adamw     n=%zu  %.2f ms (%.1f GB/s)  bitwise mismatches vs scalar formula: %zu%s\n", n,
           t * 1e3, 28.0 * n / t / 1e9, bad, bad ? "  FAIL" : "");
    free(p), free(g), free(m), free(v), free(p2), free(m2), free(v2);
}

static void zero_case(const mae_backend *be, size_t n, int reps) {
    float *p = malloc(n * 4);
    be->zero(p, n * 4);
    double t0 = mae_clock();
    for (int r = 0; r < reps; r++) be->zero(p, n * 4);
    double t = (mae_clock() - t0) / reps;
    printf("zero      n=%zu  %.3f ms (%.1f GB/s)\n", n, t * 1e3, 4.0 * n / t / 1e9);
    free(p);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    const mae_backend *be = mae_backend_cpu();
    printf("threads %d\n", omp_get_max_threads());
    attn_case(be, "tiny enc", 128, 13, 192, 3, reps);
    attn_case(be, "tiny dec", 128, 50, 128, 4, reps);
    attn_case(be, "tiny32 dec", 128, 65, 128, 4, reps);
    attn_case(be, "small enc", 16, 50, 384, 6, reps);
    attn_case(be, "small dec", 16, 197, 256, 8, reps);
    attn_case(be, "base enc", 8, 50, 768, 12, reps);
    attn_case(be, "base dec", 8, 197, 512, 16, reps);
    ew_case(be, (size_t)128 * 50 * 512, reps);
    ln_case(be, 128 * 50, 128, reps);
    ln_case(be, 16 * 197, 256, reps);
    adamw_case(be, 25000001, reps);
    zero_case(be, (size_t)128 * 50 * 512, reps);
    zero_case(be, (size_t)8 * 197 * 768 * 3, reps);
    return 0;
}
