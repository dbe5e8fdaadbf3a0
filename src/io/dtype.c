/* dtype.c - element conversions shared by the file readers (dtype.h). */
#include "dtype.h"

#include <math.h>
#include <string.h>

uint64_t mae_ld_le(const uint8_t *p, int nbytes) {
    uint64_t v = 0;
    for (int i = nbytes - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

float mae_half_to_float(uint32_t h) {
    uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    float v;
    if (exp == 0) { /* zero or subnormal: man * 2^-24, exact in float */
        v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    if (exp == 31) /* inf, or a NaN made quiet as torch's (and the hardware's) conversion does */
        bits = sign | 0x7f800000u | (man << 13) | (man ? 0x00400000u : 0u);
    else
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    memcpy(&v, &bits, 4);
    return v;
}

float mae_bf16_to_float(uint32_t h) {
    uint32_t b = (h & 0xffffu) << 16;
    float v;
    memcpy(&v, &b, 4);
    return v;
}

float mae_double_to_float(double d) {
    if (d >= 0x1.ffffffp127) return INFINITY;
    if (d <= -0x1.ffffffp127) return -INFINITY;
    return (float)d;
}
