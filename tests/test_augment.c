/* test_augment.c - the fine-tuning augmentations: RandAugment (src/data/randaug.h), RandomErasing
 * and Mixup/CutMix (src/data/mix.h), and their wiring into the images dataset (MAE_AUG_FINETUNE,
 * MAE_AUG_EVAL). Each op is checked against its defining property, the draws against their
 * distributions. Parity of the ops and of the eval transform with PIL/torchvision is
 * tests/python/test_augment_pil.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "data/mix.h"
#include "data/randaug.h"
#include "data/transform.h"
#include "rng.h"

#include "check.h"

static const uint8_t FILL[3] = {124, 116, 104};

static uint8_t *noise(int w, int h, int c, uint64_t seed) {
    uint8_t *im = malloc((size_t)w * h * c);
    for (size_t i = 0; i < (size_t)w * h * c; i++) im[i] = (uint8_t)(mae_hash4(seed, i, 1, 2) >> 56);
    return im;
}

static uint8_t *dup(const uint8_t *a, size_t n) {
    uint8_t *b = malloc(n);
    memcpy(b, a, n);
    return b;
}

/* ------------------------------------------------------------------ parsing */

static void test_parse(void) {
    mae_randaug_cfg c;
    mae_error err;
    CHECK(mae_randaug_parse(&c, "rand-m9-mstd0.5-inc1", &err) == MAE_OK && c.enabled &&
              c.magnitude == 9 && c.mstd == 0.5 && c.increasing == 1 && c.num_ops == 2 &&
              c.mmax == 10 && !strcmp(c.spec, "rand-m9-mstd0.5-inc1"),
          "rand-m9-mstd0.5-inc1: m %g mstd %g inc %d n %d", c.magnitude, c.mstd, c.increasing,
          c.num_ops);
    CHECK(mae_randaug_parse(&c, "rand-m9-n3-mstd0.5", &err) == MAE_OK && c.num_ops == 3 &&
              c.increasing == 0 && c.magnitude == 9,
          "rand-m9-n3-mstd0.5");
    CHECK(mae_randaug_parse(&c, "rand-m7-mmax15-inc0", &err) == MAE_OK && c.mmax == 15 &&
              c.increasing == 0, "mmax");
    CHECK(mae_randaug_parse(&c, "rand", &err) == MAE_OK && c.enabled && c.magnitude == 10,
          "bare rand");
    CHECK(mae_randaug_parse(&c, "", &err) == MAE_OK && !c.enabled, "empty");
    CHECK(mae_randaug_parse(&c, "none", &err) == MAE_OK && !c.enabled, "none");
    CHECK(mae_randaug_parse(&c, NULL, &err) == MAE_OK && !c.enabled, "NULL");
    const char *bad[][2] = {{"rand-m9-x3", "x3"},       {"rand-mfoo", "mfoo"},
                            {"augmix-m5", "augmix-m5"}, {"rand-inc2", "inc2"},
                            {"rand-n99", "n99"},        {"rand-m9-", "''"},
                            {"rand-m9.5x", "9.5x"},     {"random-m9", "random-m9"},
                            {"rand-w0", "w0"},          {"rand-mstd-1", "mstd"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        int rc = mae_randaug_parse(&c, bad[i][0], &err);
        CHECK(rc == MAE_ERR && strstr(err.msg, "--aa") && strstr(err.msg, bad[i][1]),
              "%s: rc %d msg '%s'", bad[i][0], rc, err.msg);
    }
}

/* ------------------------------------------------------------------ single ops */

static void test_point_ops(void) {
    mae_buf ws = {0};
    const int w = 16, h = 16; /* a ramp: every value 0..255 once */
    uint8_t ramp[256], im[256];
    for (int i = 0; i < 256; i++) ramp[i] = (uint8_t)i;
    int bad = 0;
    memcpy(im, ramp, 256);
    mae_randaug_op(im, w, h, 1, MAE_RA_INVERT, 0, FILL, &ws);
    for (int i = 0; i < 256; i++) bad += im[i] != 255 - i;
    mae_randaug_op(im, w, h, 1, MAE_RA_INVERT, 0, FILL, &ws);
    bad += memcmp(im, ramp, 256) != 0;
    CHECK(bad == 0, "invert: %d wrong", bad);
    for (int t = 0; t <= 256; t += 32) {
        memcpy(im, ramp, 256);
        mae_randaug_op(im, w, h, 1, MAE_RA_SOLARIZE, t, FILL, &ws);
        for (int i = 0; i < 256; i++) bad += im[i] != (i < t ? i : 255 - i);
    }
    CHECK(bad == 0, "solarize: %d wrong", bad);
    for (int b = 0; b <= 8; b++) {
        memcpy(im, ramp, 256);
        mae_randaug_op(im, w, h, 1, MAE_RA_POSTERIZE, b, FILL, &ws);
        int distinct = 0, seen[256] = {0};
        for (int i = 0; i < 256; i++) {
            bad += (im[i] & ((1 << (8 - b)) - 1)) != 0 || (im[i] ^ i) >= (1 << (8 - b));
            distinct += !seen[im[i]]++;
        }
        bad += distinct != (1 << b);
    }
    CHECK(bad == 0, "posterize: %d wrong (low bits cleared, high bits kept, 2^bits levels)", bad);
    for (int a = 0; a <= 110; a += 11) {
        memcpy(im, ramp, 256);
        mae_randaug_op(im, w, h, 1, MAE_RA_SOLARIZE_ADD, a, FILL, &ws);
        for (int i = 0; i < 256; i++) bad += im[i] != (i < 128 ? (i + a > 255 ? 255 : i + a) : i);
    }
    CHECK(bad == 0, "solarize_add: %d wrong", bad);
    /* AutoContrast: values 50..100 -> spans 0..255 monotonically; a constant stays */
    uint8_t *rgb = noise(20, 10, 3, 1);
    for (int i = 0; i < 600; i++) rgb[i] = (uint8_t)(50 + rgb[i] % 51 - (i % 3) * 10);
    uint8_t *orig = dup(rgb, 600);
    mae_randaug_op(rgb, 20, 10, 3, MAE_RA_AUTOCONTRAST, 0, FILL, &ws);
    for (int ch = 0; ch < 3; ch++) {
        int mn = 255, mx = 0;
        for (int i = ch; i < 600; i += 3) {
            mn = rgb[i] < mn ? rgb[i] : mn;
            mx = rgb[i] > mx ? rgb[i] : mx;
            for (int j = ch; j < 600; j += 3)
                bad += orig[i] < orig[j] && rgb[i] > rgb[j];
        }
        /* PIL truncates int(hi*scale - lo*scale), which can give 254 */
        CHECK(mn == 0 && mx >= 254, "autocontrast channel %d spans %d..%d", ch, mn, mx);
    }
    CHECK(bad == 0, "autocontrast not monotone: %d", bad);
    memset(im, 77, 256);
    mae_randaug_op(im, w, h, 1, MAE_RA_AUTOCONTRAST, 0, FILL, &ws);
    mae_randaug_op(im, w, h, 1, MAE_RA_EQUALIZE, 0, FILL, &ws);
    for (int i = 0; i < 256; i++) bad += im[i] != 77;
    CHECK(bad == 0, "autocontrast/equalize of a constant changed it");
    /* Equalize: a skewed ramp (v = 255 (i/N)^2) comes out with a near-uniform CDF: each input
     * level goes to ~256 x (the fraction of pixels below it), so the output CDF is the identity
     * at every level it holds (up to the discreteness of the levels) */
    enum { N = 64 * 64 };
    static uint8_t sq[N], sq0[N];
    for (int i = 0; i < N; i++) sq0[i] = sq[i] = (uint8_t)(255.0 * ((double)i / N) * ((double)i / N));
    mae_randaug_op(sq, 64, 64, 1, MAE_RA_EQUALIZE, 0, FILL, &ws);
    double worst = 0;
    int mono = 0;
    for (int i = 0; i < N; i++) { /* pixels below sq0[i]: the first index with that value */
        int below = i;
        while (below > 0 && sq0[below - 1] == sq0[i]) below--;
        worst = fmax(worst, fabs(sq[i] / 256.0 - (double)below / N));
        mono += i > 0 && sq[i] < sq[i - 1];
    }
    CHECK(worst < 0.01 && mono == 0 && sq[N - 1] >= 250, "equalize: output/256 off the CDF by "
          "%.4f, %d not monotone, top %d", worst, mono, sq[N - 1]);
    free(rgb);
    free(orig);
    mae_buf_free(&ws);
}

static void test_enhance(void) {
    mae_buf ws = {0};
    const int w = 17, h = 13, n = w * h * 3;
    uint8_t *a = noise(w, h, 3, 5), *b = dup(a, (size_t)n);
    int ops[] = {MAE_RA_COLOR, MAE_RA_CONTRAST, MAE_RA_BRIGHTNESS, MAE_RA_SHARPNESS};
    for (int k = 0; k < 4; k++) {
        memcpy(b, a, (size_t)n);
        mae_randaug_op(b, w, h, 3, ops[k], 1.0, FILL, &ws);
        CHECK(!memcmp(a, b, (size_t)n), "%s factor 1 is not the identity",
              mae_randaug_op_name(ops[k], 1));
    }
    int bad = 0;
    memcpy(b, a, (size_t)n);
    mae_randaug_op(b, w, h, 3, MAE_RA_BRIGHTNESS, 0.0, FILL, &ws);
    for (int i = 0; i < n; i++) bad += b[i] != 0;
    CHECK(bad == 0, "brightness 0: %d non-black", bad);
    memcpy(b, a, (size_t)n);
    mae_randaug_op(b, w, h, 3, MAE_RA_BRIGHTNESS, 0.5, FILL, &ws);
    for (int i = 0; i < n; i++) bad += b[i] != a[i] / 2; /* (uint8)(0.5 p) = floor(p/2) */
    CHECK(bad == 0, "brightness 0.5: %d wrong", bad);
    memcpy(b, a, (size_t)n);
    mae_randaug_op(b, w, h, 3, MAE_RA_COLOR, 0.0, FILL, &ws);
    for (int i = 0; i < n; i += 3) bad += b[i] != b[i + 1] || b[i] != b[i + 2];
    CHECK(bad == 0, "color 0 is not grey: %d", bad);
    memcpy(b, a, (size_t)n);
    mae_randaug_op(b, w, h, 3, MAE_RA_CONTRAST, 0.0, FILL, &ws);
    for (int i = 0; i < n; i++) bad += b[i] != b[0];
    CHECK(bad == 0 && b[0] > 100 && b[0] < 155, "contrast 0 is not the constant mean (%d)", b[0]);
    memcpy(b, a, (size_t)n);
    mae_randaug_op(b, w, h, 3, MAE_RA_BRIGHTNESS, 1.9, FILL, &ws);
    for (int i = 0; i < n; i++) {
        double e = fmin(255, 1.9 * a[i]);
        bad += fabs(b[i] - e) > 1;
    }
    CHECK(bad == 0, "brightness 1.9: %d off 1.9 p clipped", bad);
    /* sharpness: a constant image stays; the border is the original for any factor */
    uint8_t *cst = malloc((size_t)n);
    memset(cst, 200, (size_t)n);
    mae_randaug_op(cst, w, h, 3, MAE_RA_SHARPNESS, 1.9, FILL, &ws);
    for (int i = 0; i < n; i++) bad += cst[i] != 200;
    memcpy(b, a, (size_t)n);
    mae_randaug_op(b, w, h, 3, MAE_RA_SHARPNESS, 0.1, FILL, &ws);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (x == 0 || y == 0 || x == w - 1 || y == h - 1)
                for (int ch = 0; ch < 3; ch++) bad += b[(y * w + x) * 3 + ch] != a[(y * w + x) * 3 + ch];
    CHECK(bad == 0, "sharpness: constant or border changed (%d)", bad);
    /* grey images: color is the identity */
    uint8_t *g = noise(w, h, 1, 9), *g2 = dup(g, (size_t)(w * h));
    mae_randaug_op(g2, w, h, 1, MAE_RA_COLOR, 0.1, FILL, &ws);
    CHECK(!memcmp(g, g2, (size_t)(w * h)), "color on grey is not the identity");
    free(a);
    free(b);
    free(cst);
    free(g);
    free(g2);
    mae_buf_free(&ws);
}

static void test_geometric(void) {
    mae_buf ws = {0};
    const int w = 32, h = 24;
    uint8_t *a = noise(w, h, 3, 11), *b = dup(a, (size_t)w * h * 3);
    int bad = 0;
    for (int k = -7; k <= 7; k += 7) {
        memcpy(b, a, (size_t)w * h * 3);
        mae_randaug_op(b, w, h, 3, MAE_RA_TRANSLATE_X, k, FILL, &ws);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int ch = 0; ch < 3; ch++) {
                    int sx = x + k; /* PIL: output (x, y) samples (x + k, y) */
                    int e = sx >= 0 && sx < w ? a[(y * w + sx) * 3 + ch] : FILL[ch];
                    bad += b[(y * w + x) * 3 + ch] != e;
                }
        memcpy(b, a, (size_t)w * h * 3);
        mae_randaug_op(b, w, h, 3, MAE_RA_TRANSLATE_Y, k, FILL, &ws);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int ch = 0; ch < 3; ch++) {
                    int sy = y + k;
                    int e = sy >= 0 && sy < h ? a[(sy * w + x) * 3 + ch] : FILL[ch];
                    bad += b[(y * w + x) * 3 + ch] != e;
                }
    }
    CHECK(bad == 0, "translate by -7, 0, 7 pixels: %d values wrong", bad);
    int ops0[] = {MAE_RA_ROTATE, MAE_RA_SHEAR_X, MAE_RA_SHEAR_Y};
    for (int k = 0; k < 3; k++) {
        memcpy(b, a, (size_t)w * h * 3);
        mae_randaug_op(b, w, h, 3, ops0[k], 0.0, FILL, &ws);
        bad += memcmp(a, b, (size_t)w * h * 3) != 0;
        memcpy(b, a, (size_t)w * h * 3);
        mae_rotate_bicubic(b, w, h, 3, 360.0 * (k - 1), FILL, &ws);
        bad += memcmp(a, b, (size_t)w * h * 3) != 0;
    }
    CHECK(bad == 0, "rotate/shear by 0 (rotate by -360, 0, 360) is not the identity");
    /* rotate 90 (counter-clockwise) a square image: in(x, y) lands at (y, S-1-x); 180: mirrored */
    const int S = 20;
    uint8_t *q = noise(S, S, 1, 3), *r = dup(q, (size_t)S * S);
    mae_rotate_bicubic(r, S, S, 1, 90.0, FILL, &ws);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) bad += r[(S - 1 - x) * S + y] != q[y * S + x];
    CHECK(bad == 0, "rotate 90: %d pixels not where expected", bad);
    memcpy(r, q, (size_t)S * S);
    mae_rotate_bicubic(r, S, S, 1, -180.0, FILL, &ws);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) bad += r[(S - 1 - y) * S + (S - 1 - x)] != q[y * S + x];
    CHECK(bad == 0, "rotate 180: %d pixels not where expected", bad);
    /* a marker: a bright 3x3 block right of the centre moves up (counter-clockwise) by 10 deg */
    uint8_t *m = calloc((size_t)64 * 64, 1);
    for (int y = 31; y <= 33; y++)
        for (int x = 51; x <= 53; x++) m[y * 64 + x] = 255;
    const uint8_t black[3] = {0, 0, 0};
    mae_rotate_bicubic(m, 64, 64, 1, 30.0, black, &ws);
    double sx = 0, sy = 0, sw = 0;
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++)
            if (x > 2 && y > 2 && x < 61 && y < 61) sx += m[y * 64 + x] * (x + 0.5), sy += m[y * 64 + x] * (y + 0.5), sw += m[y * 64 + x];
    /* centre (32, 32), marker at (52.5-32, 32.5-32) = (20.5, 0.5) rotated by 30 deg CCW (y up) */
    double ex = 32 + 20.5 * cos((3.141592653589793 / 6)) + 0.5 * sin((3.141592653589793 / 6)), ey = 32 - 20.5 * sin((3.141592653589793 / 6)) + 0.5 * cos((3.141592653589793 / 6));
    CHECK(fabs(sx / sw - ex) < 0.3 && fabs(sy / sw - ey) < 0.3,
          "rotate 30: marker centroid (%.2f, %.2f), expected (%.2f, %.2f)", sx / sw, sy / sw, ex, ey);
    /* shear/rotate corners get the fill colour */
    memcpy(b, a, (size_t)w * h * 3);
    mae_randaug_op(b, w, h, 3, MAE_RA_SHEAR_X, 0.3, FILL, &ws);
    CHECK(b[((h - 1) * w + w - 1) * 3] == FILL[0] && b[((h - 1) * w + w - 1) * 3 + 2] == FILL[2],
          "shear 0.3: bottom-right corner %d,%d not the fill", b[((h - 1) * w + w - 1) * 3],
          b[((h - 1) * w + w - 1) * 3 + 2]);
    free(a);
    free(b);
    free(q);
    free(r);
    free(m);
    mae_buf_free(&ws);
}

/* ------------------------------------------------------------------ the draws */

static void test_levels(void) {
    struct { int op, inc, neg; double m, want; } t[] = {
        {MAE_RA_ROTATE, 1, 0, 9, 27},           {MAE_RA_ROTATE, 1, 1, 9, -27},
        {MAE_RA_SHEAR_X, 0, 1, 5, -0.15},       {MAE_RA_TRANSLATE_X, 1, 0, 10, 0.45 * 40},
        {MAE_RA_TRANSLATE_Y, 1, 0, 10, 0.45 * 30}, {MAE_RA_POSTERIZE, 1, 0, 9, 1},
        {MAE_RA_POSTERIZE, 0, 0, 9, 3},         {MAE_RA_SOLARIZE, 1, 0, 9, 26},
        {MAE_RA_SOLARIZE, 0, 0, 9, 230},        {MAE_RA_SOLARIZE_ADD, 1, 0, 9, 99},
        {MAE_RA_COLOR, 1, 0, 10, 1.9},          {MAE_RA_CONTRAST, 1, 1, 10, 0.1},
        {MAE_RA_BRIGHTNESS, 0, 1, 10, 1.9},     {MAE_RA_SHARPNESS, 0, 0, 0, 0.1},
        {MAE_RA_INVERT, 1, 0, 9, 0}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        double a = mae_randaug_level_arg(t[i].op, t[i].inc, t[i].m, t[i].neg, 40, 30);
        CHECK(fabs(a - t[i].want) < 1e-9, "%s m %g: arg %g, want %g",
              mae_randaug_op_name(t[i].op, t[i].inc), t[i].m, a, t[i].want);
    }
}

static void test_draws(void) {
    mae_randaug_cfg c;
    mae_error err;
    mae_randaug_parse(&c, "rand-m5-mstd0.5-inc1", &err);
    enum { K = 30000 };
    long count[MAE_RA_NUM_OPS] = {0};
    long fired = 0, neg = 0, n = 0, out_of_range = 0;
    double s = 0, s2 = 0;
    mae_randaug_step st[2], st2[2];
    for (uint64_t k = 0; k < K; k++) {
        mae_randaug_draw(st, &c, k, 40, 30);
        for (int i = 0; i < 2; i++) {
            count[st[i].op]++;
            fired += st[i].fire;
            neg += st[i].negate;
            s += st[i].magnitude;
            s2 += st[i].magnitude * st[i].magnitude;
            n++;
        }
    }
    double chi2 = 0, e = (double)n / MAE_RA_NUM_OPS;
    for (int o = 0; o < MAE_RA_NUM_OPS; o++) chi2 += (count[o] - e) * (count[o] - e) / e;
    /* 14 degrees of freedom: P(chi2 > 45) ~ 4e-5 */
    CHECK(chi2 < 45, "op choice chi-square %.1f over %ld draws", chi2, n);
    CHECK(fabs(fired / (double)n - 0.5) < 0.01, "ops fire %.4f of the time", fired / (double)n);
    CHECK(fabs(neg / (double)n - 0.5) < 0.01, "negate %.4f", neg / (double)n);
    double mean = s / n, sd = sqrt(s2 / n - mean * mean);
    CHECK(fabs(mean - 5) < 0.01 && fabs(sd - 0.5) < 0.01, "magnitude mean %.4f std %.4f", mean, sd);
    /* clipping to [0, mmax] */
    mae_randaug_parse(&c, "rand-m9-mstd3-mmax10", &err);
    for (uint64_t k = 0; k < 5000; k++) {
        mae_randaug_draw(st, &c, k, 40, 30);
        for (int i = 0; i < 2; i++) out_of_range += st[i].magnitude < 0 || st[i].magnitude > 10;
    }
    CHECK(out_of_range == 0, "%ld magnitudes outside [0, 10]", out_of_range);
    mae_randaug_parse(&c, "rand-m9", &err);
    mae_randaug_draw(st, &c, 3, 40, 30);
    CHECK(st[0].magnitude == 9 && st[1].magnitude == 9, "mstd 0: magnitude %g", st[0].magnitude);
    /* determinism; other keys give other choices */
    mae_randaug_draw(st2, &c, 3, 40, 30);
    CHECK(st[0].op == st2[0].op && st[1].op == st2[1].op && st[0].fire == st2[0].fire &&
              st[1].fire == st2[1].fire && st[0].arg == st2[0].arg && st[1].arg == st2[1].arg,
          "same key, different draws");
    int same = 0;
    for (uint64_t k = 100; k < 1100; k++) {
        mae_randaug_draw(st2, &c, k, 40, 30);
        same += st2[0].op == st[0].op && st2[1].op == st[1].op && st2[0].fire == st[0].fire &&
                st2[1].fire == st[1].fire;
    }
    CHECK(same < 20, "%d of 1000 other keys drew the same ops (expect ~1/900)", same);
    /* apply: same key -> same image; different keys -> mostly different images */
    mae_randaug_parse(&c, "rand-m9-mstd0.5-inc1", &err);
    mae_buf ws = {0};
    uint8_t *a = noise(24, 24, 3, 2), *x = dup(a, 24 * 24 * 3), *y = dup(a, 24 * 24 * 3);
    uint64_t kx = 77;
    do { /* a key that changes the image */
        memcpy(x, a, 24 * 24 * 3);
        mae_randaug_apply(x, 24, 24, 3, &c, FILL, ++kx, &ws);
    } while (!memcmp(x, a, 24 * 24 * 3));
    mae_randaug_apply(y, 24, 24, 3, &c, FILL, kx, &ws);
    CHECK(!memcmp(x, y, 24 * 24 * 3), "same key, different images");
    int same_as_x = 0, unchanged = 0;
    for (uint64_t k = 0; k < 400; k++) {
        memcpy(y, a, 24 * 24 * 3);
        mae_randaug_apply(y, 24, 24, 3, &c, FILL, 1000 + k, &ws);
        same_as_x += memcmp(x, y, 24 * 24 * 3) == 0;
        unchanged += memcmp(a, y, 24 * 24 * 3) == 0;
    }
    /* P(no op fires) = 1/4 */
    CHECK(same_as_x <= 4 && unchanged > 70 && unchanged < 130,
          "400 keys: %d as another key's, %d unchanged", same_as_x, unchanged);
    c.enabled = 0;
    memcpy(y, a, 24 * 24 * 3);
    mae_randaug_apply(y, 24, 24, 3, &c, FILL, 5, &ws);
    CHECK(!memcmp(a, y, 24 * 24 * 3), "disabled RandAugment changed the image");
    /* grey images run every op */
    uint8_t *g = noise(9, 7, 1, 4);
    for (int o = 0; o < MAE_RA_NUM_OPS; o++) mae_randaug_op(g, 9, 7, 1, o, 0.7 * (o + 1), FILL, &ws);
    free(g);
    free(a);
    free(x);
    free(y);
    mae_buf_free(&ws);
}

/* ------------------------------------------------------------------ RandomErasing */

static void test_erasing(void) {
    const int C = 3, H = 40, W = 48, n = C * H * W;
    float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
    for (int i = 0; i < n; i++) a[i] = 100.0f + (float)i;
    int bad = 0, hits = 0;
    for (uint64_t k = 0; k < 100; k++) {
        memcpy(b, a, sizeof(float) * n);
        mae_random_erasing(b, C, H, W, 0.0, k);
        bad += memcmp(a, b, sizeof(float) * n) != 0;
    }
    CHECK(bad == 0, "prob 0 changed %d images", bad);
    double s = 0, s2 = 0, cnt = 0, amin = 1, amax = 0;
    for (uint64_t k = 0; k < 2000; k++) {
        memcpy(b, a, sizeof(float) * n);
        int box[4];
        if (!mae_random_erasing_box(b, C, H, W, 1.0, k, box)) {
            bad++;
            continue;
        }
        int t = box[0], l = box[1], h = box[2], w = box[3];
        bad += t < 0 || l < 0 || h < 1 || w < 1 || t + h > H || l + w > W;
        double f = (double)h * w / (H * W);
        amin = fmin(amin, f);
        amax = fmax(amax, f);
        for (int ch = 0; ch < C; ch++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    int i = (ch * H + y) * W + x, in = y >= t && y < t + h && x >= l && x < l + w;
                    if (in) {
                        bad += b[i] == a[i];
                        s += b[i], s2 += (double)b[i] * b[i], cnt++;
                    } else {
                        bad += b[i] != a[i];
                    }
                }
    }
    CHECK(bad == 0, "prob 1: %d images not exactly one box of new values", bad);
    /* rounding h and w moves the area a little outside [0.02, 1/3] */
    CHECK(amin >= 0.015 && amax <= 0.37 && amin < 0.03 && amax > 0.3, "area fraction %.4f..%.4f",
          amin, amax);
    double mean = s / cnt, sd = sqrt(s2 / cnt - mean * mean);
    CHECK(fabs(mean) < 0.01 && fabs(sd - 1) < 0.01, "erased values mean %.4f std %.4f", mean, sd);
    for (uint64_t k = 0; k < 20000; k++) hits += mae_random_erasing_box(b, C, H, W, 0.25, k, NULL);
    CHECK(fabs(hits / 20000.0 - 0.25) < 0.015, "prob 0.25: erased %.4f", hits / 20000.0);
    /* determinism */
    float *c2 = malloc(sizeof(float) * n);
    memcpy(b, a, sizeof(float) * n);
    memcpy(c2, a, sizeof(float) * n);
    mae_random_erasing(b, C, H, W, 1.0, 9);
    mae_random_erasing(c2, C, H, W, 1.0, 9);
    CHECK(!memcmp(b, c2, sizeof(float) * n), "same key, different erasing");
    /* 1 x 1: h = w = round(sqrt(<= 1/3 / 0.3..)) = 0 < 1 fits: an empty box, as in timm */
    float one[3] = {1, 2, 3};
    int ebox[4];
    CHECK(mae_random_erasing_box(one, 3, 1, 1, 1.0, 4, ebox) == 1 &&
              (ebox[2] == 0 || ebox[3] == 0) && one[0] == 1 && one[1] == 2 && one[2] == 3,
          "1x1: box %dx%d, values %g %g %g", ebox[2], ebox[3], one[0], one[1], one[2]);
    free(a);
    free(b);
    free(c2);
}

/* ------------------------------------------------------------------ Mixup / CutMix */

static void test_beta(void) {
    const double as[] = {0.8, 1.0};
    for (int i = 0; i < 2; i++) {
        double a = as[i], s = 0, s2 = 0;
        const int N = 200000;
        int bad = 0;
        for (int k = 0; k < N; k++) {
            double x = mae_beta_draw(a, a, (uint64_t)k * 7919 + 1);
            bad += !(x >= 0 && x <= 1);
            s += x;
            s2 += x * x;
        }
        double m = s / N, v = s2 / N - m * m, ev = 1.0 / (4 * (2 * a + 1));
        CHECK(bad == 0 && fabs(m - 0.5) < 0.004 && fabs(v - ev) < 0.002,
              "Beta(%g, %g): mean %.4f var %.5f (want 0.5, %.5f), %d outside [0, 1]", a, a, m, v,
              ev, bad);
    }
    const double gs[] = {0.3, 1.0, 2.5};
    for (int i = 0; i < 3; i++) {
        double a = gs[i], s = 0, s2 = 0;
        const int N = 200000;
        for (int k = 0; k < N; k++) {
            double x = mae_gamma_draw(a, (uint64_t)k);
            s += x;
            s2 += x * x;
        }
        double m = s / N, v = s2 / N - m * m;
        CHECK(fabs(m - a) < 0.02 * sqrt(a) + 0.005 && fabs(v - a) < 0.05 * a + 0.01,
              "Gamma(%g): mean %.4f var %.4f", a, m, v);
    }
}

static void test_mixup(void) {
    enum { B = 6, C = 3, H = 8, W = 10, K = 5 };
    const int per = C * H * W;
    static float x[B * C * H * W], y[B * C * H * W], t[B * K];
    int labels[B] = {0, 1, 2, 3, 4, 2};
    for (int i = 0; i < B * per; i++) x[i] = (float)(i % 97) * 0.37f - 9.0f + (float)(i / per);
    /* smoothing */
    mae_smooth_targets(t, labels, B, K, 0.1);
    int bad = 0;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++)
            bad += t[b * K + k] != (float)(k == labels[b] ? 1 - 0.1 + 0.02 : 0.02);
    CHECK(bad == 0, "smoothing 0.1 over 5: on 0.92, off 0.02");
    /* mixup only */
    mae_mixup_cfg cfg = {0.8, 0.0, 1.0, 0.5, 0.1, K};
    for (uint64_t key = 0; key < 50; key++) {
        memcpy(y, x, sizeof x);
        double lam = mae_mixup_batch(y, t, labels, B, C, H, W, &cfg, key);
        bad += !(lam > 0 && lam < 1);
        for (int b = 0; b < B; b++) {
            double sum = 0;
            for (int k = 0; k < K; k++) sum += t[b * K + k];
            bad += fabs(sum - 1) > 1e-6;
            float exp_lab = (float)(0.92 * 1) * (float)lam;
            (void)exp_lab;
            for (int i = 0; i < per; i++) {
                float e = x[b * per + i] * (float)lam + x[(B - 1 - b) * per + i] * (float)(1 - lam);
                bad += y[b * per + i] != e;
            }
            /* targets: lam onehot(b) + (1-lam) onehot(B-1-b) */
            for (int k = 0; k < K; k++) {
                float y1 = (float)(k == labels[b] ? 0.92 : 0.02), y2 = (float)(k == labels[B - 1 - b] ? 0.92 : 0.02);
                bad += t[b * K + k] != y1 * (float)lam + y2 * (float)(1 - lam);
            }
        }
    }
    CHECK(bad == 0, "mixup: %d wrong (lam in (0,1), rows sum to 1, x*lam + flip*(1-lam))", bad);
    /* cutmix only: every pixel from x[b] or x[B-1-b]; pasted count = (1-lam) H W exactly */
    mae_mixup_cfg cc = {0.0, 1.0, 1.0, 0.5, 0.0, K};
    for (uint64_t key = 0; key < 200; key++) {
        memcpy(y, x, sizeof x);
        double lam = mae_mixup_batch(y, t, labels, B, C, H, W, &cc, key);
        for (int b = 0; b < B; b++) {
            int pasted = 0;
            for (int ch = 0; ch < C; ch++)
                for (int i = 0; i < H * W; i++) {
                    int j = ch * H * W + i;
                    float v = y[b * per + j];
                    int own = v == x[b * per + j], other = v == x[(B - 1 - b) * per + j];
                    bad += !own && !other;
                    pasted += other && !own;
                }
            bad += fabs(pasted / (double)C - (1 - lam) * H * W) > 1e-9;
        }
        bad += !(lam >= 0 && lam <= 1);
    }
    CHECK(bad == 0, "cutmix: %d wrong", bad);
    /* both: cutmix about switch_prob of the time (a cutmix batch has no mixed pixel) */
    mae_mixup_cfg both = {0.8, 1.0, 1.0, 0.5, 0.0, K};
    int cuts = 0;
    const int N = 4000;
    for (uint64_t key = 0; key < (uint64_t)N; key++) {
        memcpy(y, x, sizeof(float) * 2 * per);
        int lab2[2] = {0, 1};
        double lam = mae_mixup_batch(y, t, lab2, 2, C, H, W, &both, key);
        int mixed = 0;
        for (int i = 0; i < per; i++) mixed += y[i] != x[i] && y[i] != x[per + i];
        cuts += mixed == 0 && lam < 1;
    }
    CHECK(fabs(cuts / (double)N - 0.5) < 0.03, "both alphas: cutmix %.3f of batches", cuts / (double)N);
    /* no alpha / prob 0: lam 1, images unchanged, smoothed one-hot targets */
    mae_mixup_cfg none = {0.0, 0.0, 1.0, 0.5, 0.1, K}, p0 = {0.8, 1.0, 0.0, 0.5, 0.1, K};
    memcpy(y, x, sizeof x);
    double l1 = mae_mixup_batch(y, t, labels, B, C, H, W, &none, 1);
    double l2 = mae_mixup_batch(y, t, labels, B, C, H, W, &p0, 1);
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++) bad += t[b * K + k] != (float)(k == labels[b] ? 0.92 : 0.02);
    CHECK(l1 == 1 && l2 == 1 && bad == 0 && !memcmp(x, y, sizeof x), "no mixing: lam %g %g", l1, l2);
    CHECK(mae_mixup_batch(y, t, labels, 5, C, H, W, &cfg, 1) == -1, "odd batch accepted");
    int badlab[B] = {0, 1, 2, 3, 4, 5};
    CHECK(mae_mixup_batch(y, t, badlab, B, C, H, W, &cfg, 1) == -1, "label 5 of 5 classes accepted");
    /* determinism */
    memcpy(y, x, sizeof x);
    double la = mae_mixup_batch(y, t, labels, B, C, H, W, &both, 42);
    static float z[B * C * H * W];
    memcpy(z, x, sizeof x);
    double lb = mae_mixup_batch(z, t, labels, B, C, H, W, &both, 42);
    CHECK(la == lb && !memcmp(y, z, sizeof z), "same key, different mix");
}

/* ------------------------------------------------------------------ the images dataset */

typedef struct {
    int w[3], h[3];
    uint8_t *px[3];
} mem_src;

static int mem_read(mae_source *s, int64_t idx, mae_raw *raw, mae_buf *buf, mae_error *err) {
    (void)buf;
    (void)err;
    mem_src *m = s->impl;
    raw->label = (int)idx;
    raw->bytes = NULL;
    raw->px = m->px[idx];
    raw->w = m->w[idx];
    raw->h = m->h[idx];
    raw->c = 3;
    return MAE_OK;
}
static void mem_name(const mae_source *s, int64_t idx, char *out, size_t cap) {
    (void)s;
    snprintf(out, cap, "mem %lld", (long long)idx);
}
static void mem_destroy(mae_source *s) {
    mem_src *m = s->impl;
    for (int i = 0; i < 3; i++) free(m->px[i]);
    free(m);
}
static mae_source *mem_source(void) {
    mae_source *s = calloc(1, sizeof *s);
    mem_src *m = calloc(1, sizeof *m);
    const int sz[3][2] = {{37, 23}, {28, 28}, {300, 200}};
    for (int i = 0; i < 3; i++) {
        m->w[i] = sz[i][0];
        m->h[i] = sz[i][1];
        m->px[i] = noise(sz[i][0], sz[i][1], 3, 100 + (uint64_t)i);
    }
    s->n = 3;
    s->read = mem_read;
    s->name = mem_name;
    s->destroy = mem_destroy;
    s->impl = m;
    snprintf(s->desc, sizeof s->desc, "mem");
    return s;
}

static void test_dataset(void) {
    mae_error err;
    const int S = 28, n = 3 * S * S;
    mae_image_opts o;
    mae_image_opts_default(&o, S, 3);
    mae_dataset *pre = mae_dataset_images(mem_source(), &o, &err);
    o.augment = MAE_AUG_FINETUNE;
    o.scale_lo = 0.2;
    mae_dataset *ft = mae_dataset_images(mem_source(), &o, &err);
    o.reprob = 1.0;
    mae_randaug_parse(&o.randaug, "rand-m9-mstd0.5-inc1", &err);
    o.scale_lo = 0.08;
    mae_dataset *ftra = mae_dataset_images(mem_source(), &o, &err);
    o.augment = MAE_AUG_EVAL;
    mae_dataset *ev = mae_dataset_images(mem_source(), &o, &err);
    CHECK(pre && ft && ftra && ev, "datasets: %s", err.msg);
    if (!(pre && ft && ftra && ev)) return;
    CHECK(!strcmp(ftra->desc, "mem; RandomResizedCrop(28, scale=(0.08, 1)) + flip + "
                              "rand-m9-mstd0.5-inc1 + RandomErasing(1)"), "desc '%s'", ftra->desc);
    CHECK(!strcmp(ev->desc, "mem; Resize(32) + CenterCrop(28)"), "desc '%s'", ev->desc);
    float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
    mae_data_ws ws;
    memset(&ws, 0, sizeof ws);
    int bad = 0, differ = 0, boxes = 0;
    for (int64_t i = 0; i < 3; i++)
        for (int e = 0; e < 4; e++) {
            int la = -2, lb = -2;
            /* finetune without RandAugment/erasing = the pretraining transform, bit for bit */
            mae_dataset_get(pre, i, e, 5, a, &la, &ws, &err);
            mae_dataset_get(ft, i, e, 5, b, &lb, &ws, &err);
            bad += memcmp(a, b, sizeof(float) * n) != 0 || la != i || lb != i;
            /* with them: deterministic per (seed, epoch, idx) */
            mae_dataset_get(ftra, i, e, 5, a, NULL, &ws, &err);
            mae_dataset_get(ftra, i, e, 5, b, NULL, &ws, &err);
            bad += memcmp(a, b, sizeof(float) * n) != 0;
            float *c = malloc(sizeof(float) * n);
            mae_dataset_get(ftra, i, e + 1, 5, c, NULL, &ws, &err);
            differ += memcmp(a, c, sizeof(float) * n) != 0;
            free(c);
            /* eval ignores seed and epoch */
            mae_dataset_get(ev, i, e, 5, a, NULL, &ws, &err);
            mae_dataset_get(ev, i, 0, 99, b, NULL, &ws, &err);
            bad += memcmp(a, b, sizeof(float) * n) != 0;
        }
    CHECK(bad == 0 && differ == 12, "finetune/eval: %d wrong, %d of 12 epochs differ", bad, differ);
    /* erasing with reprob 1: values outside the normalised uint8 range appear */
    for (int64_t i = 0; i < 3; i++) {
        mae_dataset_get(ftra, i, 0, 1, a, NULL, &ws, &err);
        int odd = 0;
        for (int k = 0; k < n; k++) odd += a[k] < -2.2f || a[k] > 2.7f;
        boxes += odd > 0;
    }
    CHECK(boxes >= 2, "reprob 1: %d of 3 images show N(0,1) values outside the pixel range", boxes);
    /* eval of the 28x28 image: resize to 32x32, crop at (2, 2) */
    uint8_t *u8 = malloc(32 * 32 * 3);
    mae_buf rs = {0};
    const mae_source *src = mae_dataset_source(ev);
    mae_raw raw;
    mae_buf fb = {0};
    src->read((mae_source *)src, 1, &raw, &fb, &err);
    mae_resize_u8(u8, 32, 32, raw.px, 28 * 3, 3, 0, 0, 28, 28, &rs);
    float mean[3], std[3];
    mae_norm_constants(3, mean, std);
    mae_normalize_u8(b, u8, 32 * 3, 3, 2, 2, S, S, 0, mean, std);
    mae_dataset_get(ev, 1, 0, 0, a, NULL, &ws, &err);
    CHECK(!memcmp(a, b, sizeof(float) * n), "eval 28x28: not resize 32 + crop at (2, 2)");
    int rw, rh;
    mae_resize_short_size(&rw, &rh, 37, 23, 32);
    CHECK(rw == 51 && rh == 32, "Resize(32) of 37x23: %dx%d", rw, rh);
    mae_resize_short_size(&rw, &rh, 200, 300, 256);
    CHECK(rw == 256 && rh == 384, "Resize(256) of 200x300: %dx%d", rw, rh);
    /* bad options */
    mae_image_opts_default(&o, S, 3);
    o.crop_pct = 1.5;
    CHECK(!mae_dataset_images(mem_source(), &o, &err), "crop_pct 1.5 accepted");
    o.crop_pct = 0;
    o.reprob = -0.1;
    CHECK(!mae_dataset_images(mem_source(), &o, &err), "reprob -0.1 accepted");
    o.reprob = 0;
    o.augment = 7;
    CHECK(!mae_dataset_images(mem_source(), &o, &err), "augment 7 accepted");
    free(u8);
    mae_buf_free(&rs);
    mae_buf_free(&fb);
    free(a);
    free(b);
    mae_data_ws_release(&ws);
    mae_dataset_free(pre);
    mae_dataset_free(ft);
    mae_dataset_free(ftra);
    mae_dataset_free(ev);
}

int main(void) {
    test_parse();
    test_point_ops();
    test_enhance();
    test_geometric();
    test_levels();
    test_draws();
    test_erasing();
    test_beta();
    test_mixup();
    test_dataset();
    return check_summary("test_augment");
}
