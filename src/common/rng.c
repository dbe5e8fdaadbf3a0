#include "rng.h"

#include <math.h>

uint64_t mae_mix64(uint64_t x) { /* splitmix64 finaliser */
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t mae_hash4(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t h = mae_mix64(seed ^ 0x6A09E667F3BCC908ull);
    h = mae_mix64(h ^ a);
    h = mae_mix64(h ^ (b + 0x3C6EF372FE94F82Bull));
    return mae_mix64(h ^ (c + 0xA54FF53A5F1D36F1ull));
}

float mae_u01_from_bits(uint64_t bits) { return (float)(bits >> 40) * (1.0f / 16777216.0f); }

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void mae_rng_seed(mae_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = mae_mix64(seed + 0x9E3779B97F4A7C15ull * (uint64_t)i);
}

uint64_t mae_rng_next(mae_rng *r) { /* xoshiro256** */
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double mae_rng_uniform(mae_rng *r) { return (double)(mae_rng_next(r) >> 11) * 0x1.0p-53; }

double mae_rng_normal(mae_rng *r) {
    double u1 = mae_rng_uniform(r), u2 = mae_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
