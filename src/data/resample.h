/* resample.h - internal to src/data: the two passes of PIL's 8-bit separable resampling
 * (Pillow 9.4 libImaging/Resample.c) on fixed-point weights. Built with AVX2 where the compiler
 * targets it (Release: -march=native), portable C otherwise. The sums are exact integers, so
 * every version gives PIL's bytes whatever its summation order. */
#ifndef MAE_DATA_RESAMPLE_H
#define MAE_DATA_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

/* PIL's PRECISION_BITS (32 - 8 - 2): fractional bits of the fixed-point weights. */
#define MAE_RS_BITS 22

/* The weights of one axis: output i reads inputs [lo[i], lo[i] + n[i]) with the weights
 * k[i * ksize + t], t < n[i] (zero for n[i] <= t < ksize). */
typedef struct mae_rs_axis {
    int out, ksize;
    int *lo, *n;
    int32_t *k;
} mae_rs_axis;

/* Bytes of scratch that mae_rs_horizontal needs for its own weight layout (0 if none). */
size_t mae_rs_hscratch_bytes(const mae_rs_axis *ax, int c);

/* Horizontal pass: `rows` rows of w pixels -> rows of ax->out pixels, c interleaved channels.
 *   dst: uint8 (rows, ax->out * c), row stride dstride >= ax->out * c, written row after row;
 *        at least 16 writable bytes must follow the last row (a vector store may spill up to
 *        13 bytes of junk past a row's end, which the next row then overwrites);
 *   src: uint8 (rows, w * c), row stride sstride; nothing outside these bytes is read;
 *   hs:  scratch of mae_rs_hscratch_bytes(ax, c) bytes, 32-byte aligned. */
void mae_rs_horizontal(uint8_t *dst, size_t dstride, const uint8_t *src, size_t sstride,
                       int rows, int w, int c, const mae_rs_axis *ax, void *hs);

/* One output row of the vertical pass: dst[x] = clip8(sum_t k[t] * src[t * stride + x]).
 *   dst: uint8 (len); src: n rows of len bytes, row stride stride;
 *   acc: int32 scratch (len), used by the portable version. */
void mae_rs_vertical(uint8_t *dst, const uint8_t *src, size_t stride, int len,
                     const int32_t *k, int n, int32_t *acc);

#endif
