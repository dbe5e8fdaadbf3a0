/* ops_attention.c - multi-head self attention on the CPU, one (batch, head) pair per task.
 * qkv (B,T,3C) = [q | k | v] per token, head h at columns h*hd .. h*hd+hd-1 of each part.
 *
 * Each task copies its q, k, v (and dout) head slices into per-thread scratch, zero padded to
 * Tp = T and hdp = hd rounded up to 16 floats, and does the five T x T x hd products with
 * a register-blocked kernel (mm_nn below): the vector loop always runs over a contiguous,
 * padded dimension of B, so K and V are transposed once per task where needed. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "common.h"
#include "cpu.h"
#include "vmath.h"

#define PAD 16
/* q, k, v and dout are read in place (no copies) when hd is a multiple of 16 and T is at most
 * this: for longer sequences the repeated strided reads of K and V rows (one page apart per
 * token) cost more than the copies into contiguous scratch (measured at T = 197: forward
 * 12.6-13.7 ms with copies, 13.4-15.2 ms in place, 1 thread, base decoder) */
#define DIRECT_MAX_T 96
static inline int pad16(int n) { return (n + PAD - 1) / PAD * PAD; }

/* C (M x N, row stride ldc) = A @ B, where A is M x K with element (i, k) at A[i*ai + k*ak]
 * (so A or A^T can be passed) and B is K x N with row stride ldb. N must be a multiple of 16
 * and B's rows readable for N columns. C is overwritten. */
#ifdef MAE_AVX512
/* R rows x W vectors of 16 columns; R, W compile-time constants after inlining */
static inline __attribute__((always_inline)) void mm_tile(float *C, int ldc, const float *A,
                                                          int ai, int ak, const float *B,
                                                          int ldb, int K, const int R,
                                                          const int W) {
    __m512 acc[8][4];
    for (int r = 0; r < R; r++)
        for (int w = 0; w < W; w++) acc[r][w] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
        const float *b = B + (size_t)k * ldb;
        __m512 bv[4];
        for (int w = 0; w < W; w++) bv[w] = _mm512_loadu_ps(b + 16 * w);
        for (int r = 0; r < R; r++) {
            __m512 a = _mm512_set1_ps(A[(size_t)r * ai + (size_t)k * ak]);
            for (int w = 0; w < W; w++) acc[r][w] = _mm512_fmadd_ps(a, bv[w], acc[r][w]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int w = 0; w < W; w++) _mm512_storeu_ps(C + (size_t)r * ldc + 16 * w, acc[r][w]);
}

/* all rows of one 16*W-column strip: R-row tiles (R*W <= 16 accumulators), then 4, 2, 1 */
#define MM_STRIP(W, R)                                                                      \
    do {                                                                                    \
        int i = 0;                                                                          \
        for (; i + (R) <= M; i += (R))                                                      \
            mm_tile(C + (size_t)i * ldc + j, ldc, A + (size_t)i * ai, ai, ak, B + j, ldb, K, \
                    (R), (W));                                                              \
        if ((R) > 4 && i + 4 <= M) {                                                        \
            mm_tile(C + (size_t)i * ldc + j, ldc, A + (size_t)i * ai, ai, ak, B + j, ldb, K, \
                    4, (W));                                                                \
            i += 4;                                                                         \
        }                                                                                   \
        if (i + 2 <= M) {                                                                   \
            mm_tile(C + (size_t)i * ldc + j, ldc, A + (size_t)i * ai, ai, ak, B + j, ldb, K, \
                    2, (W));                                                                \
            i += 2;                                                                         \
        }                                                                                   \
        if (i < M)                                                                          \
            mm_tile(C + (size_t)i * ldc + j, ldc, A + (size_t)i * ai, ai, ak, B + j, ldb, K, \
                    1, (W));                                                                \
    } while (0)

static void mm_nn(float *C, int ldc, const float *A, int ai, int ak, const float *B, int ldb,
                  int M, int N, int K) {
    int j = 0;
    for (; j + 64 <= N; j += 64) MM_STRIP(4, 4);
    switch ((N - j) / 16) {
    case 3: MM_STRIP(3, 5); break;
    case 2: MM_STRIP(2, 8); break;
    case 1: MM_STRIP(1, 8); break;
    default: break;
    }
}
#else
/* portable version: the same loop order, vectorised over the contiguous columns */
static void mm_nn(float *C, int ldc, const float *A, int ai, int ak, const float *B, int ldb,
                  int M, int N, int K) {
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        for (int j = 0; j < N; j++) c[j] = 0.0f;
        for (int k = 0; k < K; k++) {
            float a = A[(size_t)i * ai + (size_t)k * ak];
            const float *b = B + (size_t)k * ldb;
#pragma omp simd
            for (int j = 0; j < N; j++) c[j] = VM_FMA(a, b[j], c[j]);
        }
    }
}
#endif

/* dst (T x hdp, zero padded) <- T rows of hd floats at src with row stride ld */
static void load_rows(float *dst, const float *src, size_t ld, int T, int hd, int hdp) {
    for (int t = 0; t < T; t++) {
        float *d = dst + (size_t)t * hdp;
        const float *s = src + t * ld;
#pragma omp simd
        for (int i = 0; i < hd; i++) d[i] = s[i];
        for (int i = hd; i < hdp; i++) d[i] = 0.0f;
    }
}

/* dst (hdp x Tp, zero padded) <- transpose of T rows of hd floats at src (row stride ld).
 * AVX-512: 16 x 16 blocks transposed in registers when hd is a multiple of 16 (every model
 * here: hd = 32 or 64); otherwise element by element. */
static void load_cols(float *dst, const float *src, size_t ld, int T, int hd, int Tp) {
#ifdef MAE_AVX512
    if (hd % 16 == 0) {
        for (int t0 = 0; t0 < Tp; t0 += 16) {
            for (int d0 = 0; d0 < hd; d0 += 16) {
                __m512 r[16];
                for (int i = 0; i < 16; i++)
                    r[i] = t0 + i < T ? _mm512_loadu_ps(src + (size_t)(t0 + i) * ld + d0) : _mm512_setzero_ps();
                vm_transpose16(r);
                for (int i = 0; i < 16; i++) _mm512_storeu_ps(dst + (size_t)(d0 + i) * Tp + t0, r[i]);
            }
        }
        return;
    }
#endif
    for (int d = 0; d < hd; d++) {
        float *row = dst + (size_t)d * Tp;
        for (int t = 0; t < T; t++) row[t] = src[t * ld + d];
        for (int t = T; t < Tp; t++) row[t] = 0.0f;
    }
}

/* p[0..T) = softmax(scale * x[0..T)) */
static void softmax_row(float *restrict p, const float *restrict x, int T, float scale) {
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int s = 0; s < T; s++) mx = x[s] > mx ? x[s] : mx;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int s = 0; s < T; s++) {
        float e = vm_exp((x[s] - mx) * scale);
        p[s] = e;
        sum += e;
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int s = 0; s < T; s++) p[s] *= inv;
}

/* the probabilities (B,NH,T,T) */
size_t cpu_attention_state_floats(int B, int T, int C, int NH) {
    (void)C;
    return (size_t)B * NH * T * T;
}

/* out (B,T,C), att (B,NH,T,T) <- qkv (B,T,3C) */
void cpu_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                           int NH, int prec) {
    (void)prec; /* fp32 either way */
    int hd = C / NH, hdp = pad16(hd), Tp = pad16(T);
    float scale = 1.0f / sqrtf((float)hd);
    size_t C3 = 3 * (size_t)C;
    int direct = hd == hdp && T <= DIRECT_MAX_T;
    /* per thread: q (Tp x hdp), kt (hdp x Tp), v (Tp x hdp), s (T x Tp), o (T x hdp) */
    size_t per = (size_t)Tp * hdp * 4 + (size_t)Tp * Tp;
    float *scratch = cpu_scratch(2, sizeof(float) * per * cpu_max_threads());
#pragma omp parallel
    {
        float *q = scratch + per * omp_get_thread_num();
        float *kt = q + (size_t)Tp * hdp, *v = kt + (size_t)Tp * hdp;
        float *o = v + (size_t)Tp * hdp, *sc = o + (size_t)Tp * hdp;
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                const float *base = qkv + (size_t)b * T * C3 + (size_t)h * hd;
                float *a = att + ((size_t)b * NH + h) * T * T;
                float *dst = out + (size_t)b * T * C + (size_t)h * hd;
                /* with hd a multiple of 16, q and v are read and the output written in place
                 * (rows of qkv / out with their strides); only k is transposed into scratch */
                const float *qa = direct ? base : q, *vb = direct ? base + 2 * C : v;
                int lq = direct ? (int)C3 : hdp;
                if (!direct) {
                    load_rows(q, base, C3, T, hd, hdp);
                    load_rows(v, base + 2 * C, C3, T, hd, hdp);
                }
                load_cols(kt, base + C, C3, T, hd, Tp);
                /* scores (T x Tp) = q @ k^T, then softmax(scale * scores) rows into att */
                mm_nn(sc, Tp, qa, lq, 1, kt, Tp, T, Tp, hd);
                for (int t = 0; t < T; t++) softmax_row(a + (size_t)t * T, sc + (size_t)t * Tp, T, scale);
                /* o (T x hd) = att @ v */
                if (direct) {
                    mm_nn(dst, C, a, T, 1, vb, lq, T, hd, T);
                    continue;
                }
                mm_nn(o, hdp, a, T, 1, vb, lq, T, hdp, T);
                for (int t = 0; t < T; t++) {
                    float *d = dst + (size_t)t * C;
                    const float *src = o + (size_t)t * hdp;
#pragma omp simd
                    for (int i = 0; i < hd; i++) d[i] = src[i];
                }
            }
        }
    }
}

/* dst (T rows, stride ld) = src (T x hdp)[:, :hd] */
static void store_rows(float *dst, size_t ld, const float *src, int T, int hd, int hdp) {
    for (int t = 0; t < T; t++) {
        float *d = dst + t * ld;
        const float *s = src + (size_t)t * hdp;
#pragma omp simd
        for (int i = 0; i < hd; i++) d[i] = s[i];
    }
}

/* dqkv (B,T,3C) overwritten (each (b, h) task writes its q, k and v columns); datt (B,NH,T,T)
 * scratch (unused) */
void cpu_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                            const float *att, const float *out, int B, int T, int C, int NH,
                            int prec) {
    (void)datt;
    (void)out;
    (void)prec;
    int hd = C / NH, hdp = pad16(hd), Tp = pad16(T);
    float scale = 1.0f / sqrtf((float)hd);
    size_t C3 = 3 * (size_t)C;
    int direct = hd == hdp && T <= DIRECT_MAX_T;
    /* per thread: q, k, dout, g (T x hdp each), vt (hdp x Tp), ds (T x Tp) */
    size_t per = (size_t)Tp * hdp * 5 + (size_t)Tp * Tp;
    float *scratch = cpu_scratch(2, sizeof(float) * per * cpu_max_threads());
#pragma omp parallel
    {
        float *q = scratch + per * omp_get_thread_num();
        float *k = q + (size_t)Tp * hdp, *go = k + (size_t)Tp * hdp;
        float *g = go + (size_t)Tp * hdp, *vt = g + (size_t)Tp * hdp;
        float *ds = vt + (size_t)Tp * hdp;
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                const float *base = qkv + (size_t)b * T * C3 + (size_t)h * hd;
                float *dbase = dqkv + (size_t)b * T * C3 + (size_t)h * hd;
                const float *a = att + ((size_t)b * NH + h) * T * T;
                const float *gsrc = dout + (size_t)b * T * C + (size_t)h * hd;
                /* with hd a multiple of 16, q, k and dout are read and dq, dk, dv written in
                 * place; only v is transposed into scratch */
                const float *qb = direct ? base : q, *kb = direct ? base + C : k;
                const float *gob = direct ? gsrc : go;
                int lqk = direct ? (int)C3 : hdp, lgo = direct ? C : hdp;
                if (!direct) {
                    load_rows(q, base, C3, T, hd, hdp);
                    load_rows(k, base + C, C3, T, hd, hdp);
                    load_rows(go, gsrc, C, T, hd, hdp);
                }
                load_cols(vt, base + 2 * C, C3, T, hd, Tp);
                /* dv = att^T @ dout */
                if (direct) {
                    mm_nn(dbase + 2 * C, (int)C3, a, 1, T, gob, lgo, T, hd, T);
                } else {
                    mm_nn(g, hdp, a, 1, T, gob, lgo, T, hdp, T);
                    store_rows(dbase + 2 * C, C3, g, T, hd, hdp);
                }
                /* d(att) = dout @ v^T; softmax backward: ds = att * (datt - rowsum(datt*att)),
                 * times the score scale */
                mm_nn(ds, Tp, gob, lgo, 1, vt, Tp, T, Tp, hd);
                for (int t = 0; t < T; t++) {
                    float *row = ds + (size_t)t * Tp;
                    const float *p = a + (size_t)t * T;
                    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                    for (int s = 0; s < T; s++) dot += row[s] * p[s];
#pragma omp simd
                    for (int s = 0; s < T; s++) row[s] = p[s] * (row[s] - dot) * scale;
                }
                /* dq = ds @ k ; dk = ds^T @ q */
                if (direct) {
                    mm_nn(dbase, (int)C3, ds, Tp, 1, kb, lqk, T, hd, T);
                    mm_nn(dbase + C, (int)C3, ds, 1, Tp, qb, lqk, T, hd, T);
                    continue;
                }
                mm_nn(g, hdp, ds, Tp, 1, kb, lqk, T, hdp, T);
                store_rows(dbase, C3, g, T, hd, hdp);
                mm_nn(g, hdp, ds, 1, Tp, qb, lqk, T, hdp, T);
                store_rows(dbase + C, C3, g, T, hd, hdp);
            }
        }
    }
}
