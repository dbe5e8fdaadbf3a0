/* poison.h - NaN poison for the outputs an op must write (forward outputs, and the gradients
 * marked OVERWRITTEN in src/backend.h): the op tests fill such a buffer with POISON_BITS (a
 * quiet NaN no arithmetic produces) before the op runs, then poison_scan() finds any element
 * the op left unwritten -- or read before writing (accumulated into), which gives a NaN too. */
#ifndef MAE_TESTS_POISON_H
#define MAE_TESTS_POISON_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define POISON_BITS 0x7FC0DEADu

static inline void poison_fill(float *x, size_t n) {
    const uint32_t bits = POISON_BITS;
    for (size_t i = 0; i < n; i++) memcpy(&x[i], &bits, sizeof bits);
}

/* counts the elements still holding POISON_BITS (*unwritten, first at *first_unwritten) and
 * the other NaNs (*nan, first at *first_nan); a first index is n when there is none */
static inline void poison_scan(const float *x, size_t n, size_t *unwritten,
                               size_t *first_unwritten, size_t *nan, size_t *first_nan) {
    *unwritten = *nan = 0;
    *first_unwritten = *first_nan = n;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &x[i], sizeof b);
        if (b == POISON_BITS) {
            if (!(*unwritten)++) *first_unwritten = i;
        } else if (isnan(x[i])) {
            if (!(*nan)++) *first_nan = i;
        }
    }
}

#endif
