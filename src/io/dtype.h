/* dtype.h - the element conversions shared by the file readers (safetensors, .pth, .npy):
 * little-endian loads and float16 / bfloat16 / float64 -> float32 exactly as torch's .float(). */
#ifndef MAE_IO_DTYPE_H
#define MAE_IO_DTYPE_H

#include <stdint.h>
#include <string.h>

/* inline, so the byte-swapping branches fold away on little-endian hosts */
static inline int mae_host_is_le(void) {
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}
/* nbytes (1..8) little-endian bytes at p */
uint64_t mae_ld_le(const uint8_t *p, int nbytes);
/* IEEE half bits -> float, exact (subnormals, infinities; a NaN made quiet, as torch does) */
float mae_half_to_float(uint32_t h);
/* bfloat16 bits -> float (exact: the upper half of a float) */
float mae_bf16_to_float(uint32_t h);
/* double -> float rounding to nearest; beyond the rounding midpoint above FLT_MAX an infinity
 * (that conversion would be undefined behaviour in ISO C) */
float mae_double_to_float(double d);

#endif
