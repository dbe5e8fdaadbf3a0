/* rng.h - deterministic random numbers: a counter-based hash (for values that must depend only
 * on (seed, stream, index), such as masking noise) and a small sequential generator (init). */
#ifndef MAE_RNG_H
#define MAE_RNG_H

#include <stdint.h>

uint64_t mae_mix64(uint64_t x);
/* A hash of (seed, a, b, c): independent streams for each distinct tuple. */
uint64_t mae_hash4(uint64_t seed, uint64_t a, uint64_t b, uint64_t c);
/* Uniform float in [0, 1) with 24 random bits. */
float mae_u01_from_bits(uint64_t bits);

typedef struct mae_rng {
    uint64_t s[4];
} mae_rng;
void mae_rng_seed(mae_rng *r, uint64_t seed);
uint64_t mae_rng_next(mae_rng *r);
double mae_rng_uniform(mae_rng *r); /* [0,1) with 53 bits */
double mae_rng_normal(mae_rng *r);  /* N(0,1), Box-Muller */

#endif
