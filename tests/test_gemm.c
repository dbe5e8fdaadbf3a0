/* test_gemm.c - src/cpu/gemm.c against a double-precision product, for every stride form the
 * Linear layers use (forward A @ W^T, dinp dout @ W, dw dout^T @ inp), odd and tiny sizes
 * (tails of the 6-row tiles, of the 16-column vectors and of the 64-column panels, odd K,
 * K = 0, K across several 256 blocks), bias, overwrite and accumulate.
 *
 * fp32: relative error against the double product <= 1e-5.
 * bf16: the reference rounds every operand to bfloat16 (round to nearest even, computed here
 * with integer arithmetic, independently of the kernel's vcvtneps2bf16) and multiplies in
 * double, so the only difference left is fp32 accumulation: the bound is the same 1e-5.
 * A second bf16 check against the unrounded product bounds the rounding effect itself
 * (<= 2^-8 relative, per operand, about 1e-2 on a sum with cancellation).
 * Thread independence: the same product at 1 and 2 threads is bitwise equal. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "cpu/gemm.h"
#include "mae.h"

static unsigned g_seed = 12345;
static float frand(void) {
    g_seed = g_seed * 1664525u + 1013904223u;
    return (float)((g_seed >> 8) * (1.0 / 16777216.0) * 2.0 - 1.0);
}

/* float -> bfloat16 -> float with round to nearest even (finite inputs) */
static double bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    uint32_t lsb = (u >> 16) & 1u;
    u = (u + 0x7FFFu + lsb) & 0xFFFF0000u;
    float y;
    memcpy(&y, &u, 4);
    return y;
}

/* one product in the given form; returns max |got - ref| / max |ref| */
static double run_case(int form, int M, int N, int K, int bias_on, int accumulate, int prec,
                       int round_ref, int threads, float **out_copy) {
    /* logical C (M,N) = A (M,K) @ B (K,N); storage per form:
     *   0 fwd : A row-major (M,K);       B = W^T, W (N,K) row-major
     *   1 dinp: A row-major (M,K);       B row-major (K,N)
     *   2 dw  : A = D^T, D (K,M) row-major; B row-major (K,N) */
    size_t nA = (size_t)M * K, nB = (size_t)K * N, ldc = (size_t)N + (form == 1 ? 3 : 0);
    float *A = mae_xmalloc(sizeof(float) * (nA ? nA : 1)), *B = mae_xmalloc(sizeof(float) * (nB ? nB : 1));
    float *C = mae_xmalloc(sizeof(float) * M * ldc), *bias = mae_xmalloc(sizeof(float) * N);
    double *ref = mae_xmalloc(sizeof(double) * M * N);
    for (size_t i = 0; i < nA; i++) A[i] = frand();
    for (size_t i = 0; i < nB; i++) B[i] = frand();
    for (int j = 0; j < N; j++) bias[j] = frand();
    for (size_t i = 0; i < (size_t)M * ldc; i++) C[i] = frand();
    size_t ars, acs, brs, bcs;
    if (form == 2) { ars = 1; acs = (size_t)M; } else { ars = (size_t)K; acs = 1; }
    if (form == 0) { brs = 1; bcs = (size_t)K; } else { brs = (size_t)N; bcs = 1; }
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = accumulate ? C[i * ldc + j] : bias_on ? bias[j] : 0.0;
            for (int k = 0; k < K; k++) {
                float a = A[i * ars + k * acs], b = B[k * brs + j * bcs];
                s += round_ref ? bf16_round(a) * bf16_round(b) : (double)a * b;
            }
            ref[(size_t)i * N + j] = s;
        }
    int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    cpu_gemm(C, ldc, A, ars, acs, B, brs, bcs, bias_on ? bias : NULL, M, N, K, accumulate, prec, NULL);
    omp_set_num_threads(saved);
    double err = 0, big = 1e-30;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double d = fabs(C[i * ldc + j] - ref[(size_t)i * N + j]);
            err = d > err ? d : err;
            big = fabs(ref[(size_t)i * N + j]) > big ? fabs(ref[(size_t)i * N + j]) : big;
        }
    if (out_copy) {
        *out_copy = mae_xmalloc(sizeof(float) * M * ldc);
        memcpy(*out_copy, C, sizeof(float) * M * ldc);
    }
    free(A);
    free(B);
    free(C);
    free(bias);
    free(ref);
    return err / big;
}

int main(void) {
    static const int sizes[][3] = {
        {1, 1, 1},    {1, 16, 1},   {5, 17, 3},    {6, 64, 2},   {7, 65, 33},  {13, 80, 31},
        {12, 128, 0}, {37, 200, 257}, {64, 96, 80}, {100, 48, 515}, {200, 130, 64}, {3, 700, 9},
    };
    int nprec = cpu_gemm_has_bf16() ? 2 : 1;
    if (nprec == 1) printf("test_gemm: no bf16 GEMM in this build or on this CPU; bf16 cases skipped\n");
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
        for (int form = 0; form < 3; form++)
            for (int mode = 0; mode < 3; mode++) { /* 0 overwrite, 1 overwrite + bias, 2 accumulate */
                int bias_on = mode == 1, acc = mode == 2;
                double e = run_case(form, M, N, K, bias_on, acc, MAE_PREC_FP32, 0, 2, NULL);
                CHECK(e <= 1e-5, "fp32 form %d M=%d N=%d K=%d mode %d: rel err %.2e", form, M, N, K, mode, e);
                if (nprec == 2) {
                    e = run_case(form, M, N, K, bias_on, acc, MAE_PREC_BF16, 1, 2, NULL);
                    CHECK(e <= 1e-5, "bf16 vs bf16-rounded ref, form %d M=%d N=%d K=%d mode %d: rel err %.2e",
                          form, M, N, K, mode, e);
                    double e2 = run_case(form, M, N, K, bias_on, acc, MAE_PREC_BF16, 0, 2, NULL);
                    CHECK(e2 <= 2e-2, "bf16 vs exact ref, form %d M=%d N=%d K=%d mode %d: rel err %.2e",
                          form, M, N, K, mode, e2);
                    /* and the rounding does show: bf16 is not secretly fp32 */
                    if (K >= 64) CHECK(e2 > 1e-5, "bf16 result equals fp32 to %.1e (no rounding?)", e2);
                }
            }
    }
    /* 1 thread and 2 threads give the same bits */
    for (int prec = 0; prec < nprec; prec++)
        for (int form = 0; form < 3; form++) {
            float *c1, *c2;
            g_seed = 99;
            run_case(form, 300, 200, 300, 0, 1, prec, 0, 1, &c1);
            g_seed = 99;
            run_case(form, 300, 200, 300, 0, 1, prec, 0, 2, &c2);
            CHECK(memcmp(c1, c2, sizeof(float) * 300 * (200 + (form == 1 ? 3 : 0))) == 0,
                  "prec %d form %d: 1 and 2 threads differ", prec, form);
            free(c1);
            free(c2);
        }
    return check_summary("test_gemm");
}
