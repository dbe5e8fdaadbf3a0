/* test_transform.c - the augmentation (src/data/transform.h): RandomResizedCrop parameters are
 * deterministic per key and always inside the image, the resize keeps constants, the flip
 * mirrors exactly, and nothing reads or writes outside its buffers (run under ASan too, where
 * the sources sit in exactly-sized heap blocks). Parity with torchvision/PIL is
 * tests/python/test_transform_tv.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/transform.h"
#include "rng.h"

#include "check.h"


static int box_inside(const mae_crop *b, int W, int H) {
    return b->width > 0 && b->height > 0 && b->left >= 0 && b->top >= 0 &&
           b->left + b->width <= W && b->top + b->height <= H;
}

/* Same key -> same box; different keys -> mostly different boxes; boxes inside the image. */
static void test_rrc(void) {
    mae_crop a, b;
    mae_rrc_params(&a, 500, 375, 0.2, 1.0, 0.75, 4.0 / 3.0, 42);
    mae_rrc_params(&b, 500, 375, 0.2, 1.0, 0.75, 4.0 / 3.0, 42);
    CHECK(memcmp(&a, &b, sizeof a) == 0, "same key, different boxes");
    int same = 0;
    for (uint64_t k = 0; k < 1000; k++) {
        mae_rrc_params(&b, 500, 375, 0.2, 1.0, 0.75, 4.0 / 3.0, 43 + k);
        same += memcmp(&a, &b, sizeof a) == 0;
    }
    CHECK(same <= 2, "%d of 1000 other keys gave the same box", same);
    mae_rng r;
    mae_rng_seed(&r, 7);
    int bad = 0, fallbacks = 0;
    for (int i = 0; i < 200000; i++) {
        int W = 1 + (int)(mae_rng_next(&r) % (i % 4 == 0 ? 8 : 3000));
        int H = 1 + (int)(mae_rng_next(&r) % (i % 3 == 0 ? 8 : 3000));
        mae_rrc_params(&a, W, H, 0.2, 1.0, 0.75, 4.0 / 3.0, (uint64_t)i);
        if (!box_inside(&a, W, H)) {
            if (bad++ < 5) printf("  box %d,%d %dx%d outside %dx%d\n", a.left, a.top, a.width,
                                  a.height, W, H);
        }
    }
    CHECK(bad == 0, "%d boxes outside the image", bad);
    mae_rrc_params(&a, 1, 1, 0.2, 1.0, 0.75, 4.0 / 3.0, 5);
    CHECK(a.left == 0 && a.top == 0 && a.width == 1 && a.height == 1, "1x1: %d %d %d %d", a.left,
          a.top, a.width, a.height);
    /* 1000x40 always falls back (h = sqrt(40000 s / r) <= 40 needs s / r <= 0.04, but s >= 0.2
     * and r <= 4/3); the fallback is the central 53x40 (round(40 * 4/3) = 53) */
    for (uint64_t k = 0; k < 10000; k++) {
        mae_rrc_params(&a, 1000, 40, 0.2, 1.0, 0.75, 4.0 / 3.0, k);
        fallbacks += a.width == 53 && a.height == 40 && a.left == 473 && a.top == 0;
        bad += !box_inside(&a, 1000, 40);
    }
    CHECK(bad == 0 && fallbacks == 10000, "1000x40: %d fallbacks of 10000, %d outside", fallbacks,
          bad);
    int flips = 0;
    for (uint64_t k = 0; k < 100000; k++) flips += mae_flip_draw(k);
    CHECK(flips > 49000 && flips < 51000 && mae_flip_draw(9) == mae_flip_draw(9), "flips %d",
          flips);
    printf("rrc: determinism, 200000 random sizes inside, 1x1, %d/10000 fallbacks on 1000x40, "
           "%d/100000 flips\n", fallbacks, flips);
}

/* An exactly-sized heap image so that ASan sees any out-of-bounds read. */
static uint8_t *noise_image(int W, int H, int c, uint64_t seed) {
    uint8_t *im = malloc((size_t)W * (size_t)H * (size_t)c);
    for (size_t i = 0; i < (size_t)W * (size_t)H * (size_t)c; i++)
        im[i] = (uint8_t)(mae_hash4(seed, i, 0, 0) >> 56);
    return im;
}

/* A constant image resizes to the same constant; normalised values are the constant's. */
static void test_constant(mae_buf *ws) {
    const int sizes[][6] = {{500, 375, 224, 224}, {28, 28, 224, 224}, {7, 3, 224, 224},
                            {1, 50, 224, 224},    {640, 480, 5, 3},   {224, 224, 224, 224},
                            {1, 1, 224, 224},     {300, 200, 300, 97}, {97, 61, 61, 97}};
    int bad = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int c = 1; c <= 3; c += 2)
            for (int v = 0; v < 256; v += 85) {
                int W = sizes[s][0], H = sizes[s][1], ow = sizes[s][2], oh = sizes[s][3];
                uint8_t *im = malloc((size_t)W * H * c), *o = malloc((size_t)ow * oh * c);
                memset(im, v, (size_t)W * H * c);
                mae_resize_u8(o, ow, oh, im, W * c, c, 0, 0, W, H, ws);
                for (size_t i = 0; i < (size_t)ow * oh * c; i++) bad += o[i] != v;
                free(im);
                free(o);
            }
    CHECK(bad == 0, "%d pixels of resized constant images differ", bad);
    printf("constant images: 9 sizes x {1, 3} channels x 4 values\n");
}

/* Flip mirrors the unflipped output exactly; normalisation matches the formula. */
static void test_flip(mae_buf *ws) {
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    int bad = 0, badn = 0;
    for (int c = 1; c <= 3; c += 2) {
        int W = 123, H = 77, ow = 57, oh = 41;
        uint8_t *im = noise_image(W, H, c, 3), *u = malloc((size_t)ow * oh * c);
        float *a = malloc(sizeof(float) * ow * oh * c), *b = malloc(sizeof(float) * ow * oh * c);
        mae_resize_u8(u, ow, oh, im, W * c, c, 10, 5, 100, 70, ws);
        mae_resize_normalize(a, ow, oh, im, W * c, c, 10, 5, 100, 70, 0, mean, std, ws);
        mae_resize_normalize(b, ow, oh, im, W * c, c, 10, 5, 100, 70, 1, mean, std, ws);
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < oh; y++)
                for (int x = 0; x < ow; x++) {
                    size_t i = ((size_t)ch * oh + y) * ow + x;
                    bad += a[i] != b[i + (size_t)(ow - 1 - 2 * x)];
                    float want = ((float)u[((size_t)y * ow + x) * c + ch] / 255.0f - mean[ch]) /
                                 std[ch];
                    badn += a[i] != want;
                }
        free(im);
        free(u);
        free(a);
        free(b);
    }
    CHECK(bad == 0 && badn == 0, "%d flipped values differ, %d normalised values differ", bad,
          badn);
    printf("flip mirrors exactly, normalisation matches (v/255 - mean)/std\n");
}

/* Random crops and output sizes of exactly-sized noise images (ASan checks the bounds); the
 * crop must act as a whole image: pixels outside it never change the result. */
static void test_random_crops(mae_buf *ws) {
    mae_rng r;
    mae_rng_seed(&r, 11);
    int bad = 0;
    for (int it = 0; it < 300; it++) {
        int c = it % 2 ? 3 : 1;
        int W = 1 + (int)(mae_rng_next(&r) % 300), H = 1 + (int)(mae_rng_next(&r) % 300);
        int ow = 1 + (int)(mae_rng_next(&r) % 260), oh = 1 + (int)(mae_rng_next(&r) % 260);
        mae_crop b;
        mae_rrc_params(&b, W, H, 0.01, 1.0, 0.2, 5.0, (uint64_t)it);
        uint8_t *im = noise_image(W, H, c, (uint64_t)it), *o = malloc((size_t)ow * oh * c);
        uint8_t *crop = malloc((size_t)b.width * b.height * c), *o2 = malloc((size_t)ow * oh * c);
        for (int y = 0; y < b.height; y++)
            memcpy(crop + (size_t)y * b.width * c, im + ((size_t)(b.top + y) * W + b.left) * c,
                   (size_t)b.width * c);
        mae_resize_u8(o, ow, oh, im, W * c, c, b.left, b.top, b.width, b.height, ws);
        mae_resize_u8(o2, ow, oh, crop, b.width * c, c, 0, 0, b.width, b.height, ws);
        bad += memcmp(o, o2, (size_t)ow * oh * c) != 0;
        free(im);
        free(o);
        free(crop);
        free(o2);
    }
    CHECK(bad == 0, "%d of 300 crops depend on pixels outside the crop", bad);
    printf("300 random crops/sizes: in bounds, independent of pixels outside the crop\n");
}

int main(void) {
    mae_buf ws = {0};
    test_rrc();
    test_constant(&ws);
    test_flip(&ws);
    test_random_crops(&ws);
    mae_buf_free(&ws);
    return check_summary("test_transform");
}
