/* gemm_bench.c - our GEMM (src/cpu/gemm.c, fp32 and bf16) against OpenBLAS cblas_sgemm on the
 * Linear-layer shapes of the benchmark models, in the three forms a Linear layer needs:
 *   fwd  out (M,N) = inp (M,K) @ w (N,K)^T     dinp (M,K) += dout (M,N) @ w (N,K)
 *   dw   dw (N,K) += dout (M,N)^T @ inp (M,K)
 * Prints GFLOP/s of each and the largest error against a double-precision product on a
 * sample of outputs, relative to the largest |output|.
 * usage: gemm_bench [--reps N] [model ...]   models: tiny-28 tiny-32 small-224 base-224 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "cpu/gemm.h"
#include "mae.h"

static float *rnd(size_t n, unsigned *seed) {
    float *p = mae_xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i] = (float)((*seed >> 8) * (1.0 / 16777216.0) * 2.0 - 1.0);
    }
    return p;
}

typedef struct {
    const char *name;
    int M, K, N;
} shape;

/* C (M,N) = A (M,K) @ B (K,N) with strides, double; samples every step-th output */
static double max_err(const float *C, size_t ldc, const float *A, size_t ars, size_t acs,
                      const float *B, size_t brs, size_t bcs, const float *C0, int M, int N,
                      int K) {
    double err = 0, big = 0;
    size_t step = (size_t)M * N / 4096 + 1;
    for (size_t e = 0; e < (size_t)M * N; e += step) {
        size_t i = e / N, j = e % N;
        double s = C0 ? C0[i * ldc + j] : 0.0;
        for (int k = 0; k < K; k++) s += (double)A[i * ars + k * acs] * B[k * brs + j * bcs];
        double d = fabs(C[i * ldc + j] - s);
        err = d > err ? d : err;
        big = fabs(s) > big ? fabs(s) : big;
    }
    return err / (big > 0 ? big : 1);
}

static double now(void) { return mae_clock(); }

static void run(const shape *s, int reps, int has_bf16) {
    unsigned seed = 7;
    int M = s->M, K = s->K, N = s->N;
    float *inp = rnd((size_t)M * K, &seed), *w = rnd((size_t)N * K, &seed);
    float *dout = rnd((size_t)M * N, &seed);
    float *out = mae_xmalloc(sizeof(float) * M * N), *dinp = mae_xmalloc(sizeof(float) * M * K);
    float *dw = mae_xmalloc(sizeof(float) * N * K);
    double gf = 2.0 * M * N * K / 1e9;
    printf("%-14s M=%5d K=%5d N=%5d |", s->name, M, K, N);
    for (int form = 0; form < 3; form++) {
        double best[3] = {1e30, 1e30, 1e30}, err[3] = {0, 0, 0};
        /* the implementations alternate within each repetition, so a slow phase of a shared
         * machine hits them alike; the best of each is kept */
        for (int r = 0; r < reps + 1; r++) {
            for (int impl = 0; impl < 3; impl++) {
                if (impl == 2 && !has_bf16) continue;
                memset(dinp, 0, sizeof(float) * M * K);
                memset(dw, 0, sizeof(float) * N * K);
                double t0 = now();
                if (impl == 0) {
                    if (form == 0)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, inp, K, w, K, 0.0f, out, N);
                    else if (form == 1)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, dout, N, w, K, 1.0f, dinp, K);
                    else
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, dout, N, inp, K, 1.0f, dw, K);
                } else {
                    int prec = impl == 1 ? MAE_PREC_FP32 : MAE_PREC_BF16;
                    if (form == 0)
                        cpu_gemm(out, N, inp, K, 1, w, 1, K, NULL, M, N, K, 0, prec, NULL);
                    else if (form == 1)
                        cpu_gemm(dinp, K, dout, N, 1, w, K, 1, NULL, M, K, N, 1, prec, NULL);
                    else
                        cpu_gemm(dw, K, dout, 1, N, inp, K, 1, NULL, N, K, M, 1, prec, NULL);
                }
                double dt = now() - t0;
                if (r > 0 && dt < best[impl]) best[impl] = dt;
                if (r == reps) {
                    if (form == 0) err[impl] = max_err(out, N, inp, K, 1, w, 1, K, NULL, M, N, K);
                    if (form == 1) err[impl] = max_err(dinp, K, dout, N, 1, w, K, 1, NULL, M, K, N);
                    if (form == 2) err[impl] = max_err(dw, K, dout, 1, N, inp, K, 1, NULL, N, K, M);
                }
            }
        }
        static const char *fn[3] = {"fwd", "dinp", "dw"};
        printf(" %s blas %5.0f ours %5.0f (%.2fx)", fn[form], gf / best[0], gf / best[1],
               best[0] / best[1]);
        if (has_bf16) printf(" bf16 %5.0f (%.2fx, err %.0e)", gf / best[2], best[0] / best[2], err[2]);
        if (err[1] > 1e-5 || err[0] > 1e-5) printf(" FP32 ERR %.1e/%.1e", err[0], err[1]);
        printf(" |");
    }
    printf("\n");
    free(inp);
    free(w);
    free(dout);
    free(out);
    free(dinp);
    free(dw);
}

int main(int argc, char **argv) {
    int reps = 9, a = 1;
    if (argc > 2 && strcmp(argv[1], "--reps") == 0) {
        reps = atoi(argv[2]);
        a = 3;
    }
    /* (rows, in, out) of every Linear layer of a training step */
    static const struct {
        const char *model;
        shape s[10];
    } models[] = {
        {"tiny-28", {{"enc qkv", 1664, 192, 576}, {"enc proj", 1664, 192, 192}, {"enc fc1", 1664, 192, 768},
                     {"enc fc2", 1664, 768, 192}, {"dec qkv", 6400, 128, 384}, {"dec proj", 6400, 128, 128},
                     {"dec fc1", 6400, 128, 512}, {"dec fc2", 6400, 512, 128}, {"pred", 6400, 128, 16},
                     {"patch", 1536, 16, 192}}},
        {"small-224", {{"enc qkv", 800, 384, 1152}, {"enc proj", 800, 384, 384}, {"enc fc1", 800, 384, 1536},
                       {"enc fc2", 800, 1536, 384}, {"dec qkv", 3152, 256, 768}, {"dec proj", 3152, 256, 256},
                       {"dec fc1", 3152, 256, 1024}, {"dec fc2", 3152, 1024, 256}, {"pred", 3152, 256, 768},
                       {"patch", 784, 768, 384}}},
        {"base-224", {{"enc qkv", 400, 768, 2304}, {"enc proj", 400, 768, 768}, {"enc fc1", 400, 768, 3072},
                      {"enc fc2", 400, 3072, 768}, {"dec qkv", 1576, 512, 1536}, {"dec proj", 1576, 512, 512},
                      {"dec fc1", 1576, 512, 2048}, {"dec fc2", 1576, 2048, 512}, {"pred", 1576, 512, 768},
                      {"patch", 392, 768, 768}}},
    };
    int has_bf16 = cpu_gemm_has_bf16();
    printf("threads %d, bf16 %s, best of %d\n", omp_get_max_threads(), has_bf16 ? "yes" : "no", reps);
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
        int want = a >= argc;
        for (int i = a; i < argc; i++) want |= strcmp(argv[i], models[m].model) == 0;
        if (!want) continue;
        printf("== %s\n", models[m].model);
        for (int i = 0; i < 10; i++) run(&models[m].s[i], reps, has_bf16);
    }
    return 0;
}
