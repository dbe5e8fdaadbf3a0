/* erf_check.c - max error of the vectorised exp / erf / erfc / normal cdf in src/cpu/vmath.h
 * against double precision libm, over every 7th float (by bit pattern) in each tested range:
 * ~1.6e8 points per function. Takes ~20 s.
 * Build and run (same flags as the library: ISO C, so no implicit FMA contraction):
 *   cc -std=c11 -O3 -march=native -o /tmp/erf_check bench/erf_check.c -lm && /tmp/erf_check
 * Exits non-zero if a bound is exceeded: erf abs 2e-7, erfc rel 2e-6 (x <= 9), exp rel 2.4e-7,
 * Phi abs 1.2e-7 / rel 2e-6 (where Phi > 1e-37), exp(-x^2/2) rel 2e-6. */
#include <math.h>
#include <stdio.h>

#include "../src/cpu/vmath.h"

static double ulp_of(double v) {
    float f = (float)fabs(v);
    return (double)nextafterf(f, INFINITY) - (double)f;
}

int main(void) {
    int fail = 0;
    /* erf over [-10, 10]: absolute error, and error in ulps of the true value */
    double emax = 0, eulp = 0, ew = 0, ewu = 0;
    for (uint32_t u = 0; u <= vm_float_to_bits(10.0f); u += 7) {
        float x = vm_bits_to_float(u);
        for (int s = 0; s < 2; s++, x = -x) {
            double ref = erf((double)x), got = vm_erf(x), e = fabs(got - ref);
            double eu = e / ulp_of(ref);
            if (e > emax) emax = e, ew = x;
            if (eu > eulp) eulp = eu, ewu = x;
        }
    }
    printf("erf     |x|<=10: max abs err %.3e (x=%.6g), max %.2f ulp (x=%.6g)\n", emax, ew, eulp, ewu);
    if (emax > 2e-7) fail = 1;
    /* erfc(x), x in [0, 9.5]: relative error */
    double rmax = 0, rw = 0;
    for (uint32_t u = 0; u <= vm_float_to_bits(9.0f); u += 7) {
        float x = vm_bits_to_float(u);
        double ref = erfc((double)x), got = vm_erfc_pos(x), e = fabs(got - ref) / ref;
        if (e > rmax) rmax = e, rw = x;
    }
    printf("erfc    0<=x<=9: max rel err %.3e (x=%.6g)\n", rmax, rw);
    if (rmax > 2e-6) fail = 1;
    /* exp(x), x in [-87, 88]: relative error */
    double xmax = 0, xw = 0;
    for (float x = -87.0f; x <= 88.0f; x = nextafterf(x, INFINITY) + 1e-5f * fabsf(x)) {
        double ref = exp((double)x), got = vm_exp(x), e = fabs(got - ref) / ref;
        if (e > xmax) xmax = e, xw = x;
    }
    printf("exp     -87<=x<=88: max rel err %.3e (x=%.6g) = %.2f ulp\n", xmax, xw, xmax / 5.96e-8);
    if (xmax > 2.4e-7) fail = 1;
    /* normal cdf and pdf factor over [-14, 14] (GELU): abs error of cdf, rel error in the tail */
    double cabs = 0, crel = 0, gabs = 0, cw = 0;
    for (uint32_t u = 0; u <= vm_float_to_bits(14.0f); u += 7) {
        float x = vm_bits_to_float(u);
        for (int s = 0; s < 2; s++, x = -x) {
            float g;
            double ref = 0.5 * erfc(-(double)x / sqrt(2.0)), got = vm_normal_cdf(x, &g);
            double e = fabs(got - ref);
            if (e > cabs) cabs = e;
            if (ref > 1e-37 && e / ref > crel) crel = e / ref, cw = x;
            double gref = exp(-0.5 * (double)x * x), ge = fabs(g - gref) / (gref > 1e-30 ? gref : 1);
            if (gref > 1e-30 && ge > gabs) gabs = ge;
        }
    }
    printf("Phi(x)  |x|<=14: max abs err %.3e, max rel err %.3e (x=%.6g); exp(-x^2/2) max rel err %.3e\n",
           cabs, crel, cw, gabs);
    if (cabs > 1.2e-7 || crel > 2e-6 || gabs > 2e-6) fail = 1;
    printf("%s\n", fail ? "FAIL" : "OK");
    return fail;
}
