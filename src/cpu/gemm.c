/* gemm.c - our own GEMM for the Linear layers: fp32 (AVX-512 FMA) and bf16 (AVX512_BF16
 * vdpbf16ps, fp32 accumulation), on one OpenMP team.
 *
 *   C (M,N) = [C +] A (M,K) @ B (K,N) [+ bias (N)]
 *   A(i,k) = A[i*ars + k*acs], B(k,j) = B[k*brs + j*bcs]: every transpose the Linear forward
 *   and backward need is a choice of strides (B's packing absorbs its transpose).
 *
 * Why not only OpenBLAS: for the MAE shapes (K = 192..3072, M = a few hundred to a few
 * thousand tokens) OpenBLAS spends ~15% of a training step packing A and B, and its threads
 * wait on each other (docs/PERFORMANCE.md). Here B is packed once per call into panels of
 * NR = 64 columns (k-major, zero padded), A is read in place (fp32) or rounded to bf16 pairs
 * once (bf16), and the (row block, panel) tiles are split over the threads in one parallel
 * region. Results do not depend on the number of threads: every C element is summed by one
 * thread, over k in the same order.
 *
 * bf16: operands are rounded to bfloat16 with round-to-nearest-even (as torch's
 * float -> bfloat16), consecutive k are paired, and vdpbf16ps adds a[2k]*b[2k] + a[2k+1]*b[2k+1]
 * into fp32 accumulators. K is padded to even with zeros. */
#include <omp.h>
#include <string.h>

#include "common.h"
#include "cpu.h"
#include "gemm.h"
#include "vmath.h"

#define NR 64  /* columns per packed B panel (4 vectors of 16) */
#define MR 6   /* rows per register tile: 6 x 4 accumulators */
#define KC 768 /* k (fp32) or k pairs (bf16) per block: a B slice of up to 192 KB, from L2 */

#if defined(MAE_AVX512) && defined(__AVX512BF16__)
#define GEMM_BF16 1
#endif

int cpu_gemm_has_bf16(void) {
#ifdef GEMM_BF16
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx512bf16") ? 1 : 0;
    return cached;
#else
    return 0;
#endif
}

/* The fused GELU epilogues, on rows [i, i+R) and columns [j0, j0+nj) of C once their last k
 * block is done (the tile is still in L1). The forward is cpu_gelu_forward's expression (bitwise
 * equal); the backward uses the forward's output (below). */
static void apply_epilogue(float *C, size_t ldc, const gemm_epi *e, int i, int R, int j0, int nj) {
    for (int r = 0; r < R; r++) {
        float *c = C + (size_t)(i + r) * ldc + j0;
        if (e->kind == GEMM_EPI_GELU) {
            float *a = e->act + (size_t)(i + r) * e->ld_act + j0;
#pragma omp simd
            for (int j = 0; j < nj; j++) {
                float x = c[j], g;
                a[j] = x * vm_normal_cdf(x, &g);
            }
        } else if (e->kind == GEMM_EPI_DGELU) {
            /* gelu'(x) = Phi(x) + x phi(x). Phi(x) is recovered from the forward's act =
             * x Phi(x) (one division instead of erf's polynomials; 0.5 at x = 0), and
             * exp(-x^2/2) is formed with x^2/2 split into hi + lo as vm_normal_cdf does. */
            const float *pre = e->pre + (size_t)(i + r) * e->ld_pre + j0;
            const float *act = e->act_in + (size_t)(i + r) * e->ld_act_in + j0;
#pragma omp simd
            for (int j = 0; j < nj; j++) {
                float x = pre[j], x2 = x * x;
                float hi = 0.5f * x2, lo = 0.5f * VM_SQR_LO(x, x2);
                float ez = vm_exp(-hi);
                ez = ez - ez * lo;
                float cdf = x != 0.0f ? act[j] / x : 0.5f;
                c[j] = c[j] * (cdf + x * (VM_INV_SQRT_2PI * ez));
            }
        }
    }
}

#ifdef MAE_AVX512
/* ------------------------------------------------------------------ fp32 */

/* Rows per task: blocks of about 96 rows (a 96 x KC slice of A, 288 KB, stays in L2), at least ~4
 * tasks per thread, and blocks of nearly equal size (a short last block would leave a thread
 * idle: with M = 400, 96-row blocks are 96, 96, 96, 96, 16). A multiple of MR. */
static int pick_mb(int M, int npanel, int nt) {
    int nmb = (M + 95) / 96;
    while (nmb < M / MR && (size_t)nmb * npanel < (size_t)4 * nt) nmb++;
    int mb = (M + nmb - 1) / nmb;
    return (mb + MR - 1) / MR * MR;
}


/* pack B (K,N) into panels: Bp[p][k][0..NR) = B(k, p*NR + jj), zero beyond N */
static void pack_b_f32(float *Bp, const float *B, size_t brs, size_t bcs, int K, int N) {
    int np = (N + NR - 1) / NR;
#pragma omp for schedule(static) collapse(2)
    for (int p = 0; p < np; p++) {
        for (int k0 = 0; k0 < K; k0 += 16) {
            int j0 = p * NR, nj = N - j0 < NR ? N - j0 : NR, k1 = k0 + 16 < K ? k0 + 16 : K;
            float *dst = Bp + (size_t)p * K * NR;
            if (brs == 1 && k1 - k0 == 16) {
                /* B = W^T: 16 consecutive k of a column are contiguous: 16 x 16 blocks
                 * transposed in registers */
                for (int jb = 0; jb < NR; jb += 16) {
                    __m512 r[16];
                    for (int jj = 0; jj < 16; jj++)
                        r[jj] = jb + jj < nj ? _mm512_loadu_ps(B + (size_t)(j0 + jb + jj) * bcs + k0)
                                             : _mm512_setzero_ps();
                    vm_transpose16(r);
                    for (int k = 0; k < 16; k++) _mm512_store_ps(dst + (size_t)(k0 + k) * NR + jb, r[k]);
                }
                continue;
            }
            for (int k = k0; k < k1; k++) {
                float *d = dst + (size_t)k * NR;
                if (bcs == 1) {
                    memcpy(d, B + (size_t)k * brs + j0, sizeof(float) * nj);
                } else {
                    for (int jj = 0; jj < nj; jj++) d[jj] = B[(size_t)k * brs + (size_t)(j0 + jj) * bcs];
                }
                for (int jj = nj; jj < NR; jj++) d[jj] = 0.0f;
            }
        }
    }
}

/* the accumulators of an R x (16W) tile of C: init 0 = C, 1 = zero, 2 = bias; the last
 * vector of a row is masked to the panel's width (tail) */
static inline __attribute__((always_inline)) void tile_load(__m512 acc[MR][4], const float *C,
                                                            size_t ldc, int init,
                                                            const float *bias, __mmask16 tail,
                                                            const int R, const int W) {
    for (int w = 0; w < W; w++) {
        __mmask16 mk = w == W - 1 ? tail : 0xFFFF;
        __m512 b0 = init == 2 ? _mm512_maskz_loadu_ps(mk, bias + 16 * w) : _mm512_setzero_ps();
        for (int r = 0; r < R; r++)
            acc[r][w] = init == 0 ? _mm512_maskz_loadu_ps(mk, C + r * ldc + 16 * w) : b0;
    }
}

static inline __attribute__((always_inline)) void tile_store(__m512 acc[MR][4], float *C,
                                                             size_t ldc, __mmask16 tail,
                                                             const int R, const int W) {
    for (int w = 0; w < W; w++) {
        __mmask16 mk = w == W - 1 ? tail : 0xFFFF;
        for (int r = 0; r < R; r++) _mm512_mask_storeu_ps(C + r * ldc + 16 * w, mk, acc[r][w]);
    }
}

/* one R x (16W) tile of C over k in [0, kc): init 0 = load C, 1 = zero, 2 = bias */
static inline __attribute__((always_inline)) void tile_f32(
    float *C, size_t ldc, const float *A, size_t ars, size_t acs, const float *Bp, int kc,
    int init, const float *bias, __mmask16 tail, const int R, const int W) {
    __m512 acc[MR][4];
    tile_load(acc, C, ldc, init, bias, tail, R, W);
    const float *a[MR];
    for (int r = 0; r < R; r++) a[r] = A + r * ars;
    for (int k = 0; k < kc; k++) {
        const float *b = Bp + (size_t)k * NR;
        __m512 bv[4];
        for (int w = 0; w < W; w++) bv[w] = _mm512_load_ps(b + 16 * w);
        for (int r = 0; r < R; r++) {
            __m512 av = _mm512_set1_ps(a[r][k * acs]);
            for (int w = 0; w < W; w++) acc[r][w] = _mm512_fmadd_ps(av, bv[w], acc[r][w]);
        }
    }
    tile_store(acc, C, ldc, tail, R, W);
}

#define TILE_W(fn, R, W, ...)                                                                \
    switch (W) {                                                                             \
    case 1: fn(__VA_ARGS__, R, 1); break;                                                    \
    case 2: fn(__VA_ARGS__, R, 2); break;                                                    \
    case 3: fn(__VA_ARGS__, R, 3); break;                                                    \
    default: fn(__VA_ARGS__, R, 4); break;                                                   \
    }
#define TILE_RW(fn, R, W, ...)                                                               \
    switch (R) {                                                                             \
    case 1: TILE_W(fn, 1, W, __VA_ARGS__); break;                                            \
    case 2: TILE_W(fn, 2, W, __VA_ARGS__); break;                                            \
    case 3: TILE_W(fn, 3, W, __VA_ARGS__); break;                                            \
    case 4: TILE_W(fn, 4, W, __VA_ARGS__); break;                                            \
    case 5: TILE_W(fn, 5, W, __VA_ARGS__); break;                                            \
    default: TILE_W(fn, 6, W, __VA_ARGS__); break;                                           \
    }

#endif /* MAE_AVX512 */

#ifdef GEMM_BF16
/* ------------------------------------------------------------------ bf16 */

/* 16 floats -> 16 bf16, round to nearest even (vcvtneps2bf16) */
static inline __m256i bf16x16(__m512 x) { return (__m256i)_mm512_cvtneps_pbh(x); }

/* interleave two rows of 16 floats into 16 (lo = x0, hi = x1) bf16 pairs */
static inline __m512i pair16(__m512 x0, __m512 x1) {
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                         24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                         16, 0);
    __m512i both = (__m512i)_mm512_cvtne2ps_pbh(x1, x0); /* [x0 (16) | x1 (16)] */
    return _mm512_permutexvar_epi16(idx, both);
}

static inline uint16_t bf16_1(float x) {
    __m128 v = _mm_set_ss(x);
    return (uint16_t)_mm_extract_epi16((__m128i)_mm_cvtneps_pbh(v), 0);
}

/* Pack A (M,K) into bf16 pairs, layout chosen by the source's contiguous direction:
 *   acs == 1: row-major Ap[i*K2 + kk]      (returned rs = K2, cs = 1)
 *   else:     pair-major Ap[kk*M + i]      (returned rs = 1,  cs = M)
 * K2 = ceil(K/2); the odd k is padded with 0. */
static void pack_a_bf16(uint32_t *Ap, size_t *rs, size_t *cs, const float *A, size_t ars,
                        size_t acs, int M, int K) {
    int K2 = (K + 1) / 2;
    if (acs == 1) {
        *rs = (size_t)K2;
        *cs = 1;
#pragma omp for schedule(static)
        for (int i = 0; i < M; i++) {
            const float *src = A + (size_t)i * ars;
            uint16_t *dst = (uint16_t *)(Ap + (size_t)i * K2);
            int k = 0;
            for (; k + 16 <= K; k += 16) _mm256_storeu_si256((__m256i *)(dst + k), bf16x16(_mm512_loadu_ps(src + k)));
            if (k < K) {
                __mmask16 mk = (__mmask16)((1u << (K - k)) - 1);
                __m256i v = bf16x16(_mm512_maskz_loadu_ps(mk, src + k));
                _mm256_mask_storeu_epi16(dst + k, mk, v);
            }
            if (K & 1) dst[K] = 0;
        }
    } else {
        *rs = 1;
        *cs = (size_t)M;
#pragma omp for schedule(static)
        for (int kk = 0; kk < K2; kk++) {
            const float *r0 = A + (size_t)(2 * kk) * acs;
            const float *r1 = 2 * kk + 1 < K ? r0 + acs : NULL;
            uint32_t *dst = Ap + (size_t)kk * M;
            int i = 0;
            if (ars == 1) {
                for (; i + 16 <= M; i += 16) {
                    __m512 x0 = _mm512_loadu_ps(r0 + i);
                    __m512 x1 = r1 ? _mm512_loadu_ps(r1 + i) : _mm512_setzero_ps();
                    _mm512_storeu_si512(dst + i, pair16(x0, x1));
                }
            }
            for (; i < M; i++) {
                uint32_t lo = bf16_1(r0[(size_t)i * ars]), hi = r1 ? bf16_1(r1[(size_t)i * ars]) : 0;
                dst[i] = lo | hi << 16;
            }
        }
    }
}

/* pack B (K,N) into panels of bf16 pairs: Bp[p][kk][jj] = (B(2kk, j), B(2kk+1, j)) */
static void pack_b_bf16(uint32_t *Bp, const float *B, size_t brs, size_t bcs, int K, int N) {
    int np = (N + NR - 1) / NR, K2 = (K + 1) / 2;
#pragma omp for schedule(static) collapse(2)
    for (int p = 0; p < np; p++) {
        for (int kk0 = 0; kk0 < K2; kk0 += 16) {
            int j0 = p * NR, nj = N - j0 < NR ? N - j0 : NR, kk1 = kk0 + 16 < K2 ? kk0 + 16 : K2;
            uint32_t *pan = Bp + (size_t)p * K2 * NR;
            if (bcs == 1) {
                for (int kk = kk0; kk < kk1; kk++) {
                    const float *r0 = B + (size_t)(2 * kk) * brs + j0;
                    const float *r1 = 2 * kk + 1 < K ? r0 + brs : NULL;
                    uint32_t *d = pan + (size_t)kk * NR;
                    for (int w = 0; w < NR / 16; w++) {
                        int n = nj - 16 * w;
                        __mmask16 mk = (__mmask16)(n >= 16 ? 0xFFFF : n > 0 ? (1u << n) - 1 : 0);
                        __m512 x0 = _mm512_maskz_loadu_ps(mk, r0 + 16 * w);
                        __m512 x1 = r1 ? _mm512_maskz_loadu_ps(mk, r1 + 16 * w) : _mm512_setzero_ps();
                        _mm512_store_si512(d + 16 * w, pair16(x0, x1));
                    }
                }
            } else if (brs == 1 && kk1 - kk0 == 16 && 2 * kk1 <= K) {
                /* columns of B are rows in memory (B = W^T): 32 consecutive k of one column
                 * are 16 pairs in order, converted in one instruction; 16 x 16 blocks of pairs
                 * are then transposed in registers */
                for (int jb = 0; jb < NR; jb += 16) {
                    __m512 r[16];
                    for (int jj = 0; jj < 16; jj++) {
                        if (jb + jj >= nj) {
                            r[jj] = _mm512_setzero_ps();
                            continue;
                        }
                        const float *col = B + (size_t)(j0 + jb + jj) * bcs + (size_t)(2 * kk0);
                        r[jj] = (__m512)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(col + 16), _mm512_loadu_ps(col));
                    }
                    vm_transpose16(r);
                    for (int kk = 0; kk < 16; kk++)
                        _mm512_store_ps((float *)(pan + (size_t)(kk0 + kk) * NR + jb), r[kk]);
                }
            } else {
                /* the general case, one pair at a time */
                for (int jj = 0; jj < NR; jj++) {
                    if (jj >= nj) {
                        for (int kk = kk0; kk < kk1; kk++) pan[(size_t)kk * NR + jj] = 0;
                        continue;
                    }
                    const float *col = B + (size_t)(j0 + jj) * bcs;
                    for (int kk = kk0; kk < kk1; kk++) {
                        float x0 = col[(size_t)(2 * kk) * brs];
                        float x1 = 2 * kk + 1 < K ? col[(size_t)(2 * kk + 1) * brs] : 0.0f;
                        pan[(size_t)kk * NR + jj] = bf16_1(x0) | (uint32_t)bf16_1(x1) << 16;
                    }
                }
            }
        }
    }
}

static inline __attribute__((always_inline)) void tile_bf16(
    float *C, size_t ldc, const uint32_t *A, size_t ars, size_t acs, const uint32_t *Bp,
    int kc, int init, const float *bias, __mmask16 tail, const int R, const int W) {
    __m512 acc[MR][4];
    tile_load(acc, C, ldc, init, bias, tail, R, W);
    const uint32_t *a[MR];
    for (int r = 0; r < R; r++) a[r] = A + r * ars;
    for (int k = 0; k < kc; k++) {
        const uint32_t *b = Bp + (size_t)k * NR;
        __m512bh bv[4];
        for (int w = 0; w < W; w++) bv[w] = (__m512bh)_mm512_load_si512(b + 16 * w);
        for (int r = 0; r < R; r++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r][k * acs]);
            for (int w = 0; w < W; w++) acc[r][w] = _mm512_dpbf16_ps(acc[r][w], av, bv[w]);
        }
    }
    tile_store(acc, C, ldc, tail, R, W);
}

#endif /* GEMM_BF16 */

#ifdef MAE_AVX512
/* ------------------------------------------------------------------ the tile loop */

/* The (row block, panel) tasks of one product, on the calling team (an orphaned omp for):
 * A and the packed panels Bp are fp32 (bf16 = 0) or bf16 pairs (bf16 = 1; A then packed too);
 * Kd is the depth in kernel steps (K, or K/2 rounded up for pairs), panels Kd x NR apart. */
static void run_tiles(int bf16, float *C, size_t ldc, const void *A, size_t ars, size_t acs,
                      const void *Bp, int Kd, const float *bias, int M, int N, int accumulate,
                      const gemm_epi *epi, int mb, int nmb) {
    int np = (N + NR - 1) / NR;
    size_t pstride = (size_t)(Kd > 0 ? Kd : 1) * NR;
#pragma omp for schedule(dynamic, 1) collapse(2)
    for (int ib = 0; ib < nmb; ib++) {
        for (int p = 0; p < np; p++) {
            int i0 = ib * mb, i1 = i0 + mb < M ? i0 + mb : M, j0 = p * NR;
            int nj = N - j0 < NR ? N - j0 : NR, W = (nj + 15) / 16;
            __mmask16 tail = (__mmask16)(nj % 16 ? (1u << (nj % 16)) - 1 : 0xFFFF);
            for (int k0 = 0; k0 < Kd || k0 == 0; k0 += KC) {
                int kc = Kd - k0 < KC ? Kd - k0 : KC;
                int init = k0 > 0 || accumulate ? 0 : bias ? 2 : 1;
                size_t boff = (size_t)p * pstride + (size_t)k0 * NR;
                for (int i = i0; i < i1; i += MR) {
                    int R = i1 - i < MR ? i1 - i : MR;
                    size_t aoff = (size_t)i * ars + (size_t)k0 * acs;
                    const float *bj = bias ? bias + j0 : NULL;
                    if (!bf16) {
                        TILE_RW(tile_f32, R, W, C + (size_t)i * ldc + j0, ldc,
                                (const float *)A + aoff, ars, acs, (const float *)Bp + boff, kc,
                                init, bj, tail);
                    } else {
#ifdef GEMM_BF16
                        TILE_RW(tile_bf16, R, W, C + (size_t)i * ldc + j0, ldc,
                                (const uint32_t *)A + aoff, ars, acs, (const uint32_t *)Bp + boff,
                                kc, init, bj, tail);
#endif
                    }
                    if (epi && k0 + kc >= Kd) apply_epilogue(C, ldc, epi, i, R, j0, nj);
                }
                if (Kd == 0) break;
            }
        }
    }
}

static void gemm_f32(float *C, size_t ldc, const float *A, size_t ars, size_t acs,
                     const float *B, size_t brs, size_t bcs, const float *bias, int M, int N,
                     int K, int accumulate, const gemm_epi *epi) {
    int np = (N + NR - 1) / NR;
    float *Bp = cpu_scratch(CPU_SCRATCH_GEMM_B, sizeof(float) * (size_t)np * NR * (K > 0 ? K : 1));
    int nt = omp_in_parallel() ? 1 : cpu_max_threads();
    int mb = pick_mb(M, np, nt), nmb = (M + mb - 1) / mb;
#pragma omp parallel if (nt > 1)
    {
        pack_b_f32(Bp, B, brs, bcs, K, N); /* ends with the omp for's barrier */
        run_tiles(0, C, ldc, A, ars, acs, Bp, K, bias, M, N, accumulate, epi, mb, nmb);
    }
}
#endif /* MAE_AVX512 */

#ifdef GEMM_BF16
static void gemm_bf16(float *C, size_t ldc, const float *A, size_t ars, size_t acs,
                      const float *B, size_t brs, size_t bcs, const float *bias, int M, int N,
                      int K, int accumulate, const gemm_epi *epi) {
    int np = (N + NR - 1) / NR, K2 = (K + 1) / 2;
    size_t k2 = K2 > 0 ? (size_t)K2 : 1;
    uint32_t *Bp = cpu_scratch(CPU_SCRATCH_GEMM_B, sizeof(uint32_t) * (size_t)np * NR * k2);
    uint32_t *Ap = cpu_scratch(CPU_SCRATCH_GEMM_A, sizeof(uint32_t) * (size_t)M * k2);
    int nt = omp_in_parallel() ? 1 : cpu_max_threads();
    int mb = pick_mb(M, np, nt), nmb = (M + mb - 1) / mb;
#pragma omp parallel if (nt > 1)
    {
        size_t rs, cs; /* the packed A's strides: the same in every thread */
        pack_a_bf16(Ap, &rs, &cs, A, ars, acs, M, K);
        pack_b_bf16(Bp, B, brs, bcs, K, N); /* ends with the omp for's barrier */
        run_tiles(1, C, ldc, Ap, rs, cs, Bp, K2, bias, M, N, accumulate, epi, mb, nmb);
    }
}
#endif /* GEMM_BF16 */

/* ------------------------------------------------------------------ portable fallback */

#ifndef MAE_AVX512
static void gemm_ref(float *C, size_t ldc, const float *A, size_t ars, size_t acs,
                     const float *B, size_t brs, size_t bcs, const float *bias, int M, int N,
                     int K, int accumulate, const gemm_epi *epi) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        for (int j = 0; j < N; j++) c[j] = accumulate ? c[j] : bias ? bias[j] : 0.0f;
        for (int k = 0; k < K; k++) {
            float a = A[(size_t)i * ars + (size_t)k * acs];
            for (int j = 0; j < N; j++) c[j] = VM_FMA(a, B[(size_t)k * brs + (size_t)j * bcs], c[j]);
        }
        if (epi) apply_epilogue(C, ldc, epi, i, 1, 0, N);
    }
}
#endif

void cpu_gemm(float *C, size_t ldc, const float *A, size_t ars, size_t acs, const float *B,
              size_t brs, size_t bcs, const float *bias, int M, int N, int K, int accumulate,
              int prec, const gemm_epi *epi) {
    if (M <= 0 || N <= 0) return;
    MAE_ASSERT(!(accumulate && bias) && "cpu_gemm: bias only when overwriting C");
    MAE_ASSERT(!(accumulate && epi) && "cpu_gemm: an epilogue only when overwriting C");
    if (epi && epi->kind == GEMM_EPI_NONE) epi = NULL;
    if (prec == MAE_PREC_BF16) {
#ifdef GEMM_BF16
        MAE_ASSERT(cpu_gemm_has_bf16());
        gemm_bf16(C, ldc, A, ars, acs, B, brs, bcs, bias, M, N, K, accumulate, epi);
        return;
#else
        MAE_ASSERT(0 && "cpu_gemm: bf16 not compiled in");
#endif
    }
#ifdef MAE_AVX512
    gemm_f32(C, ldc, A, ars, acs, B, brs, bcs, bias, M, N, K, accumulate, epi);
#else
    gemm_ref(C, ldc, A, ars, acs, B, brs, bcs, bias, M, N, K, accumulate, epi);
#endif
}
