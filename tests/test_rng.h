/* test_rng.h - the C tests' random numbers: splitmix64, uniform [0, 1) and Box-Muller normals.
 * Define TEST_RNG_SEED (each test its own stream) before including it. Unused functions are
 * fine: they are static inline. */
#ifndef MAE_TESTS_RNG_H
#define MAE_TESTS_RNG_H

#include <math.h>
#include <stdint.h>

#ifndef TEST_RNG_SEED
#error "define TEST_RNG_SEED before including test_rng.h"
#endif

static uint64_t g_rng = TEST_RNG_SEED;

static inline uint64_t rng_next(void) {
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline double rng_u01(void) {
    return (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0);
}
static inline double rng_uniform(double lo, double hi) { return lo + (hi - lo) * rng_u01(); }
static inline double rng_normal(void) {
    double u1 = rng_u01(), u2 = rng_u01();
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
