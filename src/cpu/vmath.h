/* vmath.h - float exp / erf / erfc / GELU written so that GCC and Clang vectorise them inside
 * `#pragma omp simd` loops (branch-free: both sides of every split are computed and selected;
 * no libm calls). glibc's scalar erff/expf were ~15% of a training step.
 *
 * Accuracy (measured by bench/erf_check.c against double erf/erfc/exp over every float in
 * the tested ranges): exp ~1 ulp; erf absolute error <= ~1.2e-7; erfc relative error ~1e-6
 * (all z >= 0); the GELU cdf keeps relative accuracy in the far negative tail.
 *
 * The polynomial coefficients come from bench/fit_erf.py (near-minimax fits against mpmath):
 *   |z| <  ERF_SPLIT: erf(z)  = z * P(z^2)
 *   |z| >= ERF_SPLIT: erfc(z) = t * exp(-z^2) * Q(t),   t = 2 / (2 + z)
 *   exp(x) = 2^n * (1 + r + r^2 E(r)),  x = n ln2 + r,  |r| <= ln2 / 2
 */
#ifndef MAE_CPU_VMATH_H
#define MAE_CPU_VMATH_H

#include <stdint.h>
#include <string.h>

/* hand-written AVX-512 kernels (attention tiles, AdamW) where the target has it; define
 * MAE_CPU_GENERIC to build the portable versions instead (to test them on this machine) */
#if defined(__AVX512F__) && !defined(MAE_CPU_GENERIC)
#include <immintrin.h>
#define MAE_AVX512 1
#endif

#ifdef MAE_AVX512
/* r[c] <- column c of the 16 x 16 matrix whose rows are r[0..15] (32-bit elements; the
 * shuffles move bits, so it serves packed bf16 pairs too): unpack pairs, then quads, then the
 * four 128-bit lanes */
static inline void vm_transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) { /* u[i+q]: column 4L+q of rows i..i+3, in lane L */
        u[i + 0] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int q = 0; q < 4; q++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x88);
        __m512 v1 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xDD);
        __m512 w0 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x88);
        __m512 w1 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xDD);
        r[0 + q] = _mm512_shuffle_f32x4(v0, w0, 0x88);
        r[4 + q] = _mm512_shuffle_f32x4(v1, w1, 0x88);
        r[8 + q] = _mm512_shuffle_f32x4(v0, w0, 0xDD);
        r[12 + q] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
    }
}

#endif

#define VM_INV_SQRT2 0.70710678118654752440f
#define VM_INV_SQRT_2PI 0.39894228040143267794f
#define ERF_SPLIT 0.875f

/* a*b+c fused where the target has FMA (the build is ISO C, so GCC does not contract a*b+c
 * by itself); VM_SQR_LO(z, hi) is the rounding error of hi = z*z (exact with FMA, else 0). */
#if defined(__FMA__) || defined(__aarch64__)
#define VM_FMA(a, b, c) __builtin_fmaf((a), (b), (c))
#define VM_SQR_LO(z, hi) __builtin_fmaf((z), (z), -(hi))
#else
#define VM_FMA(a, b, c) ((a) * (b) + (c))
#define VM_SQR_LO(z, hi) 0.0f
#endif

static inline float vm_bits_to_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline uint32_t vm_float_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* exp(x) for x <= 88; returns 0 for x < -87.3 (where expf would be subnormal or 0); NaN in,
 * NaN out. */
static inline float vm_exp(float x) {
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693145751953125f;      /* 12 significant bits: n*ln2_hi is exact */
    const float ln2_lo = 1.428606765330187045e-06f; /* ln2 - ln2_hi */
    const float shifter = 12582912.0f;            /* 1.5 * 2^23: rounds to an integer */
    float xc = x < -87.3f ? -87.3f : x;
    xc = xc > 88.0f ? 88.0f : xc;
    float ns = VM_FMA(xc, log2e, shifter); /* n in the low mantissa bits */
    float n = ns - shifter;
    float r = VM_FMA(-n, ln2_hi, xc);
    r = VM_FMA(-n, ln2_lo, r);
    float e = 1.381459304e-03f;
    e = VM_FMA(e, r, 8.368708363e-03f);
    e = VM_FMA(e, r, 4.166838752e-02f);
    e = VM_FMA(e, r, 1.666652070e-01f);
    e = VM_FMA(e, r, 4.999999345e-01f);
    float p = VM_FMA(r * r, e, r) + 1.0f;
    int32_t ni = (int32_t)(vm_float_to_bits(ns) - vm_float_to_bits(shifter));
    float scale = vm_bits_to_float((uint32_t)(ni + 127) << 23);
    float y = p * scale;
    return x < -87.3f ? 0.0f : y;
}

/* erf(z) on |z| < ERF_SPLIT: z * P(z^2), evaluated as z + z * (P(z^2) - 1) so that the leading
 * term is exact and only the smaller correction carries rounding error (~1 ulp in all). */
static inline float vm_erf_small(float z) {
    float s = z * z;
    float p = -6.203254830e-04f;
    p = VM_FMA(p, s, 5.032181374e-03f);
    p = VM_FMA(p, s, -2.679146314e-02f);
    p = VM_FMA(p, s, 1.128245533e-01f);
    p = VM_FMA(p, s, -3.761255046e-01f);
    p = VM_FMA(p, s, 1.28379157e-01f); /* the fitted 1.128379157 minus 1 */
    return VM_FMA(z, p, z);
}

/* erfc(z) for z >= ERF_SPLIT (any 0 <= z <= 10 is safe; accurate from ERF_SPLIT up), given
 * z^2 = hi + lo split exactly. Also returns exp(-z^2) in *ez2 (GELU backward reuses it as the
 * normal pdf). exp(-hi-lo) is taken as exp(-hi) (1 - lo): |lo| <= ulp(hi)/2. */
static inline float vm_erfc_core(float z, float hi, float lo, float *ez2) {
    float t = 2.0f / (2.0f + z);
    float q = -4.631947750e-02f;
    q = VM_FMA(q, t, 2.459485657e-01f);
    q = VM_FMA(q, t, -4.400185284e-01f);
    q = VM_FMA(q, t, 2.488579923e-01f);
    q = VM_FMA(q, t, -1.749304616e-02f);
    q = VM_FMA(q, t, 2.017141630e-01f);
    q = VM_FMA(q, t, 2.429181400e-01f);
    q = VM_FMA(q, t, 2.824330818e-01f);
    q = VM_FMA(q, t, 2.820822616e-01f);
    float e = vm_exp(-hi);
    e = e - e * lo;
    *ez2 = e;
    return t * e * q;
}

static inline float vm_erfc_large(float z, float *ez2) {
    float zc = z < 10.0f ? z : 10.0f; /* erfc(10) ~ 2e-45: 0 in float */
    float hi = zc * zc;
    return vm_erfc_core(zc, hi, VM_SQR_LO(zc, hi), ez2);
}

/* erf(x) for any float x (used by bench/erf_check.c; GELU calls the pieces directly). */
static inline float vm_erf(float x) {
    float ax = __builtin_fabsf(x);
    float small = vm_erf_small(x);
    float ez2;
    float large = 1.0f - vm_erfc_large(ax, &ez2);
    large = x < 0.0f ? -large : large;
    return ax < ERF_SPLIT ? small : large;
}

/* erfc(x) for x >= 0 */
static inline float vm_erfc_pos(float x) {
    float ez2;
    float small = 1.0f - vm_erf_small(x);
    float large = vm_erfc_large(x, &ez2);
    return x < ERF_SPLIT ? small : large;
}

/* Phi(x) = 0.5 (1 + erf(x / sqrt 2)), the standard normal cdf, and exp(-x^2 / 2) in *g.
 * For x below -ERF_SPLIT*sqrt(2) it is 0.5 erfc(|x| / sqrt 2), relative accuracy kept (x^2/2 is
 * formed from x exactly, not from the rounded x / sqrt 2). NaN x: Phi is garbage but x*Phi
 * and the GELU gradient stay NaN. (fabsf, not a compare-and-negate: GCC if-converts the latter
 * by duplicating the division below under two masks.) */
static inline float vm_normal_cdf(float x, float *g) {
    float ax = __builtin_fabsf(x);
    ax = ax < 14.0f ? ax : 14.0f; /* Phi(-14) ~ 8e-45: 0 in float */
    float au = ax * VM_INV_SQRT2;
    float x2 = ax * ax;
    float hi = 0.5f * x2, lo = 0.5f * VM_SQR_LO(ax, x2);
    float ez2;
    float ec = vm_erfc_core(au, hi, lo, &ez2);
    float large = x > 0.0f ? 1.0f - 0.5f * ec : 0.5f * ec;
    float small = 0.5f + 0.5f * vm_erf_small(x * VM_INV_SQRT2);
    *g = ez2; /* exp(-x^2/2), computed for every x */
    return au < ERF_SPLIT ? small : large;
}

#endif
