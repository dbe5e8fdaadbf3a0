/* transform_bench.c - time of the pretraining augmentation per image, one thread:
 * mae_rrc_params + mae_flip_draw + mae_resize_normalize of a W x H RGB image to S x S
 * (default 500 x 375 -> 224), and of a fixed crop's mae_resize_u8 alone.
 *   transform_bench [iters] [W H S]
 * Compare with PIL + torchvision: tests/python/test_transform_tv.py --bench (on one core:
 * taskset -c 0 ...). The image is smooth noise; the cost does not depend on the pixels. */

#include <stdio.h>
#include <stdlib.h>

#include "data/transform.h"
#include "rng.h"

#define ROUNDS 15 /* best of: the machine may be shared */

/* Best of ROUNDS rounds of the same `iters` keys, microseconds per call; out: float (3, S, S). */
static double time_rrc(float *out, const uint8_t *im, int W, int H, int S, int iters,
                       mae_buf *ws) {
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    double best = 1e30;
    for (int round = 0; round < ROUNDS; round++) {
        double t0 = mae_clock();
        for (int i = 0; i < iters; i++) {
            uint64_t key = mae_hash4(1, 0, (uint64_t)i, 0);
            mae_crop b;
            mae_rrc_params(&b, W, H, 0.2, 1.0, 3.0 / 4.0, 4.0 / 3.0, key);
            mae_resize_normalize(out, S, S, im, W * 3, 3, b.left, b.top, b.width, b.height,
                                 mae_flip_draw(key), mean, std, ws);
        }
        double dt = (mae_clock() - t0) / iters * 1e6;
        if (dt < best) best = dt;
    }
    return best;
}

/* Best of ROUNDS rounds: mae_resize_u8 of the crop (x0, y0, w, h) to S x S;
 * out: uint8 (S, S, 3). */
static double time_u8(uint8_t *out, const uint8_t *im, int W, int S, int x0, int y0, int w, int h,
                      int iters, mae_buf *ws) {
    double best = 1e30;
    for (int round = 0; round < ROUNDS; round++) {
        double t0 = mae_clock();
        for (int i = 0; i < iters; i++) mae_resize_u8(out, S, S, im, W * 3, 3, x0, y0, w, h, ws);
        double dt = (mae_clock() - t0) / iters * 1e6;
        if (dt < best) best = dt;
    }
    return best;
}

int main(int argc, char **argv) {
    int iters = argc > 1 ? atoi(argv[1]) : 200;
    int W = argc > 4 ? atoi(argv[2]) : 500, H = argc > 4 ? atoi(argv[3]) : 375;
    int S = argc > 4 ? atoi(argv[4]) : 224;
    if (iters < 1 || W < 8 || H < 8 || S < 1) {
        fprintf(stderr, "usage: transform_bench [iters] [W H S]\n");
        return 2;
    }
    uint8_t *im = malloc((size_t)W * H * 3), *u8 = malloc((size_t)S * S * 3);
    float *out = malloc(sizeof(float) * 3 * (size_t)S * S);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W * 3; x++)
            im[(size_t)y * W * 3 + x] = (uint8_t)((x * 7 + y * 3) / 5 +
                (int)(mae_hash4(2, (uint64_t)y, (uint64_t)x, 0) >> 61));
    mae_buf ws = {0};
    time_rrc(out, im, W, H, S, 20, &ws); /* warm up: grows the scratch */
    double t_rrc = time_rrc(out, im, W, H, S, iters, &ws);
    int cw = W * 3 / 5, ch = H * 2 / 3;
    double t_u8 = time_u8(u8, im, W, S, W / 10, H / 10, cw, ch, iters, &ws);
    printf("transform_bench: %dx%d RGB -> %dx%d, 1 thread, best of %d x %d calls\n", W, H, S, S,
           ROUNDS, iters);
    printf("  rrc params + resize + flip + normalize: %8.1f us/image\n", t_rrc);
    printf("  resize_u8 of a %dx%d crop:              %8.1f us/image\n", cw, ch, t_u8);
    mae_buf_free(&ws);
    free(im);
    free(u8);
    free(out);
    return 0;
}
