/* gemm.h - the CPU GEMM behind the Linear layers (see gemm.c). */
#ifndef MAE_CPU_GEMM_H
#define MAE_CPU_GEMM_H

#include <stddef.h>

/* Optional epilogue, applied to each finished tile of C (C overwritten, accumulate = 0):
 *   GEMM_EPI_GELU:  act (M,N), row stride ld_act, = gelu(C)          (C keeps the pre-activation)
 *   GEMM_EPI_DGELU: C = C * gelu'(pre), pre (M,N) with row stride ld_pre and act_in = gelu(pre)
 *                   (row stride ld_act_in), the forward's output, from which Phi is taken */
enum { GEMM_EPI_NONE, GEMM_EPI_GELU, GEMM_EPI_DGELU };
typedef struct gemm_epi {
    int kind;
    float *act;
    size_t ld_act;
    const float *pre;
    size_t ld_pre;
    const float *act_in;
    size_t ld_act_in;
} gemm_epi;

/* C (M,N) = [C +] A (M,K) @ B (K,N) [+ bias (N)], C row stride ldc.
 * A(i,k) = A[i*ars + k*acs], B(k,j) = B[k*brs + j*bcs]. accumulate: 1 adds to C (bias must
 * then be NULL), 0 overwrites it. prec: MAE_PREC_FP32 or MAE_PREC_BF16 (needs
 * cpu_gemm_has_bf16()). epi may be NULL. Call from outside a parallel region: it opens its own. */
void cpu_gemm(float *C, size_t ldc, const float *A, size_t ars, size_t acs, const float *B,
              size_t brs, size_t bcs, const float *bias, int M, int N, int K, int accumulate,
              int prec, const gemm_epi *epi);
/* 1 if this build and this CPU run bf16 GEMMs (AVX512_BF16) */
int cpu_gemm_has_bf16(void);

#endif
