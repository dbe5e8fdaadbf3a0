/* resample.c - the horizontal and vertical passes of PIL's 8-bit bicubic resampling, on
 * precomputed fixed-point weights (resample.h). Pillow sums pixel * weight in a 32-bit int
 * starting from 1 << (PRECISION_BITS - 1) and keeps clip8(sum >> PRECISION_BITS); these are
 * exact integer sums (|sum| < 2^31 for 8-bit pixels), so any summation order gives PIL's bytes.
 *
 * AVX2 (Pillow-SIMD's idea, made exact): _mm256_madd_epi16 multiplies 16-bit pixels by 16-bit
 * weights, but PIL's weights have 22 fractional bits, so each weight is split as
 * k = kh * 2^11 + kl (0 <= kl < 2^11, |kh| < 2^15) and sum = (sum p*kh) * 2^11 + sum p*kl, which
 * is exact in wrapping 32-bit lanes because the final sum fits (with AVX512-VNNI the
 * multiply-add is fused, same sums). The vertical pass multiplies 32-bit lanes
 * (_mm256_mullo_epi32) by the full weight: measured faster here than madd on row pairs. */
#include "resample.h"

#include <string.h>

#include "common.h"

#ifdef __AVX2__
#include <immintrin.h>
#endif

#define HALF (1 << (MAE_RS_BITS - 1))

/* PIL's clip8(sum): sum >> PRECISION_BITS clamped to [0, 255] (negative sums give 0). */
static inline uint8_t clip8(int32_t ss) {
    if (ss < 0) return 0;
    ss >>= MAE_RS_BITS;
    return (uint8_t)(ss > 255 ? 255 : ss);
}

#ifdef __AVX2__

/* Taps per vector group: 4 for 3 channels (2 per 128-bit lane), 8 for 1 channel. */
static int h_groups(const mae_rs_axis *ax, int c) {
    int taps = c == 3 ? 4 : 8;
    return (ax->ksize + taps - 1) / taps;
}

/* Bytes of the weights in the kernels' layout; a row's tail buffer (h_tailcap) follows. */
static size_t h_wbytes(const mae_rs_axis *ax, int c) {
    return (size_t)ax->out * (size_t)h_groups(ax, c) * (c == 3 ? 64 : 32);
}

/* The tail buffer: the end of a row from pixel xt on, then zeros, so that the outputs whose
 * vector loads would run past the row read it instead (and the few before them, to keep the
 * main loop's groups of 4 whole). Under 40 * groups + 64 bytes: the first output that would
 * overrun starts within 4 * groups + 1 pixels of the row's end, the group rounding moves xt
 * back by at most 3 outputs, and outputs are at most scale < groups pixels apart. */
static size_t h_tailcap(const mae_rs_axis *ax, int c) { return 40 * (size_t)h_groups(ax, c) + 64; }

size_t mae_rs_hscratch_bytes(const mae_rs_axis *ax, int c) {
    return h_wbytes(ax, c) + h_tailcap(ax, c);
}

/* Splits weight t of output i (0 past ksize) into kh * 2^11 + kl. */
static void split_weight(int16_t *kh, int16_t *kl, const mae_rs_axis *ax, int i, int t) {
    int32_t k = t < ax->ksize ? ax->k[(size_t)i * (size_t)ax->ksize + (size_t)t] : 0;
    int32_t hi = (k - (k & 0x7FF)) / 2048; /* floor(k / 2^11) without shifting a negative */
    MAE_ASSERT(hi >= INT16_MIN && hi <= INT16_MAX);
    *kh = (int16_t)hi;
    *kl = (int16_t)(k & 0x7FF);
}

/* The weights in the 3-channel kernel's layout: per output and group of 4 taps, 16 kh then 16
 * kl, each lane (t0 t1 t0 t1 t0 t1 0 0 | t2 t3 t2 t3 t2 t3 0 0), matching h3_sum's shuffle. */
static void h3_weights(int16_t *kw, const mae_rs_axis *ax, int groups) {
    memset(kw, 0, (size_t)ax->out * (size_t)groups * 64);
    for (int i = 0; i < ax->out; i++)
        for (int g = 0; g < groups; g++) {
            int16_t *q = kw + ((size_t)i * (size_t)groups + (size_t)g) * 32;
            for (int t = 0; t < 4; t++) {
                int16_t hi, lo;
                split_weight(&hi, &lo, ax, i, 4 * g + t);
                for (int ch = 0; ch < 3; ch++) {
                    int at = (t / 2) * 8 + ch * 2 + (t % 2);
                    q[at] = hi;
                    q[16 + at] = lo;
                }
            }
        }
}

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define MADD_ADD(acc, a, b) _mm256_dpwssd_epi32((acc), (a), (b)) /* fused, same wrapping sums */
#else
#define MADD_ADD(acc, a, b) _mm256_add_epi32((acc), _mm256_madd_epi16((a), (b)))
#endif

/* Sums of one 3-channel output pixel: lanes (r g b 0 | r g b 0), to be added, already holding
 * HALF and the kh part scaled by 2^11. p: its first input byte, q: its weights (groups x 2).
 * Each group loads 16 bytes (4 taps = 12 bytes used) into both lanes; the shuffle zero-extends
 * (r0 r1 g0 g1 b0 b1) into lane 0 and the same of taps 2, 3 into lane 1. */
static inline __m256i h3_sum(const uint8_t *p, const __m256i *q, int groups) {
    const __m256i shuf = _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1,
                                          -1, 6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1,
                                          -1, -1);
    __m256i hi = _mm256_setzero_si256(), lo = _mm256_setr_epi32(HALF, HALF, HALF, 0, 0, 0, 0, 0);
    for (int g = 0; g < groups; g++) {
        __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p + 12 * g)));
        v = _mm256_shuffle_epi8(v, shuf);
        hi = MADD_ADD(hi, v, _mm256_load_si256(q + 2 * g));
        lo = MADD_ADD(lo, v, _mm256_load_si256(q + 2 * g + 1));
    }
    return _mm256_add_epi32(_mm256_slli_epi32(hi, 11), lo);
}

/* Lane sums of pixels a, b -> their (r g b) sums in lanes 0-2 | 4-6, shifted. */
static inline __m256i h3_pair(__m256i a, __m256i b) {
    __m256i t = _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20),
                                 _mm256_permute2x128_si256(a, b, 0x31));
    return _mm256_srai_epi32(t, MAE_RS_BITS);
}

/* Output pixels [i0, i1) of a row, four at a time, stored as 16 bytes (12 + 4 junk: the junk is
 * overwritten by the next pixels or the next row, or lands in the slack after the last row);
 * s holds the row from pixel `base` on. A short last group repeats its last pixel. */
static inline void h3_span(uint8_t *d, const uint8_t *s, int base, const mae_rs_axis *ax,
                           const int16_t *kw, int groups, int i0, int i1) {
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const __m128i pack = _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
    for (int i = i0; i < i1; i += 4) {
        __m256i v[4];
        for (int u = 0; u < 4; u++) {
            int j = i + u < i1 ? i + u : i1 - 1;
            v[u] = h3_sum(s + 3 * (size_t)(ax->lo[j] - base),
                          (const __m256i *)(kw + (size_t)j * (size_t)groups * 32), groups);
        }
        /* packs: lane 0 (A C) lane 1 (B D) as words; packus: bytes; permute: A B C D dwords */
        __m256i t = _mm256_packs_epi32(h3_pair(v[0], v[1]), h3_pair(v[2], v[3]));
        t = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(t, t), order);
        _mm_storeu_si128((__m128i *)(d + 3 * (size_t)i),
                         _mm_shuffle_epi8(_mm256_castsi256_si128(t), pack));
    }
}

/* One row: pixels [0, ne) straight from s, the rest from the tail buffer tb (from pixel xt). */
static inline void h3_row(uint8_t *d, const uint8_t *s, uint8_t *tb, const mae_rs_axis *ax,
                          const int16_t *kw, int groups, int ne, int xt, int w) {
    h3_span(d, s, 0, ax, kw, groups, 0, ne);
    if (ne == ax->out) return;
    memcpy(tb, s + 3 * (size_t)xt, 3 * (size_t)(w - xt));
    h3_span(d, tb, xt, ax, kw, groups, ne, ax->out);
}

/* 3 channels; group counts 2 and 3 (shrinking by up to 2.5) get their own unrolled copies. */
static void h3_avx2(uint8_t *dst, size_t dstride, const uint8_t *src, size_t sstride, int rows,
                    int w, const mae_rs_axis *ax, int16_t *kw, uint8_t *tb) {
    const int groups = h_groups(ax, 3);
    int ne = 0; /* outputs whose 16-byte loads stay inside the row (lo[] is non-decreasing) */
    while (ne < ax->out && 3 * ax->lo[ne] + 12 * groups + 4 <= 3 * w) ne++;
    ne &= ~3;
    const int xt = ne < ax->out ? ax->lo[ne] : w;
    const size_t used = 3 * (size_t)(w - xt) + 12 * (size_t)groups + 4;
    MAE_ASSERT(used <= h_tailcap(ax, 3));
    memset(tb, 0, used);
    h3_weights(kw, ax, groups);
    for (int r = 0; r < rows; r++) {
        const uint8_t *s = src + (size_t)r * sstride;
        uint8_t *d = dst + (size_t)r * dstride;
        if (groups == 2)
            h3_row(d, s, tb, ax, kw, 2, ne, xt, w);
        else if (groups == 3)
            h3_row(d, s, tb, ax, kw, 3, ne, xt, w);
        else
            h3_row(d, s, tb, ax, kw, groups, ne, xt, w);
    }
}

/* The 1-channel kernel's layout: per output and group of 8 taps, 8 kh then 8 kl. */
static void h1_weights(int16_t *kw, const mae_rs_axis *ax, int groups) {
    for (int i = 0; i < ax->out; i++)
        for (int g = 0; g < groups; g++) {
            int16_t *q = kw + ((size_t)i * (size_t)groups + (size_t)g) * 16;
            for (int t = 0; t < 8; t++) split_weight(&q[t], &q[8 + t], ax, i, 8 * g + t);
        }
}

/* 1 channel, output pixels [i0, i1): groups of 8 taps, then a horizontal sum; s holds the row
 * from pixel `base` on. */
static void h1_span(uint8_t *d, const uint8_t *s, int base, const mae_rs_axis *ax,
                    const int16_t *kw, int groups, int i0, int i1) {
    for (int i = i0; i < i1; i++) {
        const uint8_t *p = s + (ax->lo[i] - base);
        const __m128i *q = (const __m128i *)(kw + (size_t)i * (size_t)groups * 16);
        __m128i hi = _mm_setzero_si128(), lo = _mm_setzero_si128();
        for (int g = 0; g < groups; g++) {
            __m128i v = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(p + 8 * g)));
            hi = _mm_add_epi32(hi, _mm_madd_epi16(v, _mm_load_si128(q + 2 * g)));
            lo = _mm_add_epi32(lo, _mm_madd_epi16(v, _mm_load_si128(q + 2 * g + 1)));
        }
        __m128i acc = _mm_add_epi32(_mm_slli_epi32(hi, 11), lo);
        acc = _mm_add_epi32(acc, _mm_shuffle_epi32(acc, 0x4E));
        acc = _mm_add_epi32(acc, _mm_shuffle_epi32(acc, 0xB1));
        d[i] = clip8(HALF + _mm_cvtsi128_si32(acc));
    }
}

static void h1_avx2(uint8_t *dst, size_t dstride, const uint8_t *src, size_t sstride, int rows,
                    int w, const mae_rs_axis *ax, int16_t *kw, uint8_t *tb) {
    const int groups = h_groups(ax, 1);
    int ne = 0;
    while (ne < ax->out && ax->lo[ne] + 8 * groups <= w) ne++;
    const int xt = ne < ax->out ? ax->lo[ne] : w;
    const size_t used = (size_t)(w - xt) + 8 * (size_t)groups;
    MAE_ASSERT(used <= h_tailcap(ax, 1));
    memset(tb, 0, used);
    h1_weights(kw, ax, groups);
    for (int r = 0; r < rows; r++) {
        const uint8_t *s = src + (size_t)r * sstride;
        uint8_t *d = dst + (size_t)r * dstride;
        h1_span(d, s, 0, ax, kw, groups, 0, ne);
        if (ne == ax->out) continue;
        memcpy(tb, s + xt, (size_t)(w - xt));
        h1_span(d, tb, xt, ax, kw, groups, ne, ax->out);
    }
}

void mae_rs_horizontal(uint8_t *dst, size_t dstride, const uint8_t *src, size_t sstride,
                       int rows, int w, int c, const mae_rs_axis *ax, void *hs) {
    MAE_ASSERT((c == 1 || c == 3) && ((uintptr_t)hs & 31) == 0);
    uint8_t *tb = (uint8_t *)hs + h_wbytes(ax, c);
    if (c == 3)
        h3_avx2(dst, dstride, src, sstride, rows, w, ax, hs, tb);
    else
        h1_avx2(dst, dstride, src, sstride, rows, w, ax, hs, tb);
}

/* 8 sums (int32) -> 8 bytes clip8'ed, as 8 int16 in the low half. */
static inline __m128i v_clip16(__m256i acc) {
    acc = _mm256_srai_epi32(acc, MAE_RS_BITS);
    return _mm_packs_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
}

void mae_rs_vertical(uint8_t *dst, const uint8_t *src, size_t stride, int len,
                     const int32_t *k, int n, int32_t *acc) {
    (void)acc;
    const __m256i half = _mm256_set1_epi32(HALF);
    int x = 0;
    for (; x + 32 <= len; x += 32) { /* 4 x 8 lanes */
        __m256i a0 = half, a1 = half, a2 = half, a3 = half;
        for (int t = 0; t < n; t++) {
            const uint8_t *p = src + (size_t)t * stride + x;
            __m256i kv = _mm256_set1_epi32(k[t]);
#define TAP(a, o) a = _mm256_add_epi32(a, _mm256_mullo_epi32(kv, _mm256_cvtepu8_epi32( \
                      _mm_loadl_epi64((const __m128i *)(p + (o))))))
            TAP(a0, 0); TAP(a1, 8); TAP(a2, 16); TAP(a3, 24);
        }
        __m128i lo = _mm_packus_epi16(v_clip16(a0), v_clip16(a1));
        __m128i hi = _mm_packus_epi16(v_clip16(a2), v_clip16(a3));
        _mm_storeu_si128((__m128i *)(dst + x), lo);
        _mm_storeu_si128((__m128i *)(dst + x + 16), hi);
    }
    for (; x + 8 <= len; x += 8) {
        __m256i a0 = half;
        for (int t = 0; t < n; t++) {
            const uint8_t *p = src + (size_t)t * stride + x;
            __m256i kv = _mm256_set1_epi32(k[t]);
            TAP(a0, 0);
#undef TAP
        }
        __m128i b = v_clip16(a0);
        _mm_storel_epi64((__m128i *)(dst + x), _mm_packus_epi16(b, b));
    }
    for (; x < len; x++) {
        int32_t ss = HALF;
        for (int t = 0; t < n; t++) ss += (int32_t)src[(size_t)t * stride + (size_t)x] * k[t];
        dst[x] = clip8(ss);
    }
}

#else /* portable C */

/* Output pixel i of one row, as Pillow's loop: d = (c, ) for the pixel, s = the input row. */
static void h_pixel(uint8_t *d, const uint8_t *s, int c, const mae_rs_axis *ax, int i) {
    const uint8_t *p = s + (size_t)ax->lo[i] * (size_t)c;
    const int32_t *k = ax->k + (size_t)i * (size_t)ax->ksize;
    for (int ch = 0; ch < c; ch++) {
        int32_t ss = HALF;
        for (int t = 0; t < ax->n[i]; t++) ss += (int32_t)p[t * c + ch] * k[t];
        d[ch] = clip8(ss);
    }
}

size_t mae_rs_hscratch_bytes(const mae_rs_axis *ax, int c) {
    (void)ax;
    (void)c;
    return 0;
}

void mae_rs_horizontal(uint8_t *dst, size_t dstride, const uint8_t *src, size_t sstride,
                       int rows, int w, int c, const mae_rs_axis *ax, void *hs) {
    (void)w;
    (void)hs;
    MAE_ASSERT(c == 1 || c == 3);
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < ax->out; i++)
            h_pixel(dst + (size_t)r * dstride + (size_t)i * (size_t)c, src + (size_t)r * sstride,
                    c, ax, i);
}

/* Row at a time, so the inner loops run over contiguous bytes (the compiler may vectorise). */
void mae_rs_vertical(uint8_t *dst, const uint8_t *src, size_t stride, int len,
                     const int32_t *k, int n, int32_t *acc) {
    for (int x = 0; x < len; x++) acc[x] = HALF;
    for (int t = 0; t < n; t++) {
        const uint8_t *p = src + (size_t)t * stride;
        const int32_t kt = k[t];
        for (int x = 0; x < len; x++) acc[x] += (int32_t)p[x] * kt;
    }
    for (int x = 0; x < len; x++) dst[x] = clip8(acc[x]);
}

#endif
