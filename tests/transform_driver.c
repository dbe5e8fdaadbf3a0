/* transform_driver.c - runs src/data/transform.h for tests/python/test_transform_tv.py:
 *   transform_driver u8   IMG.npy CASES.npy OUT.npy
 *   transform_driver norm IMG.npy CASES.npy OUT.npy mean0 [mean1 mean2] std0 [std1 std2]
 *   transform_driver rrc  W H N KEY0 OUT.npy [scale_lo scale_hi]
 * IMG: uint8 (H, W) or (H, W, 3). CASES: int64 (N, 7) rows x0 y0 w h ow oh flip. u8 writes the
 * mae_resize_u8 outputs (oh, ow, c) of all cases concatenated as uint8 (total); norm writes the
 * mae_resize_normalize outputs (c, oh, ow) concatenated as float32 (total). rrc writes
 * mae_rrc_params(W, H, scale (default 0.2, 1), ratio (3/4, 4/3), key = KEY0 + i) for i < N as
 * int64 (N, 4) rows top left height width.
 *   transform_driver raop IMG.npy OUT.npy OP ARG [OP ARG ...]
 *     mae_randaug_op(OP, ARG) (fill 124 116 104) on a fresh copy of IMG for each pair; the
 *     results concatenated as uint8.
 *   transform_driver eval IMG.npy SIZE CROP_PCT OUT.npy
 *     the MAE_AUG_EVAL images dataset over IMG (Resize(int(SIZE / CROP_PCT)) + CenterCrop(SIZE)
 *     + normalise with mae_norm_constants(c)) as float32 (c, SIZE, SIZE). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "data/randaug.h"
#include "data/transform.h"
#include "io/npy.h"

static void die(const char *msg, const mae_error *err) {
    fprintf(stderr, "transform_driver: %s%s%s\n", msg, err ? ": " : "", err ? err->msg : "");
    exit(1);
}

static int run_rrc(int argc, char **argv) {
    if (argc != 7 && argc != 9) die("usage: rrc W H N KEY0 OUT.npy [scale_lo scale_hi]", NULL);
    int W = atoi(argv[2]), H = atoi(argv[3]), n = atoi(argv[4]);
    double lo = argc == 9 ? strtod(argv[7], NULL) : 0.2;
    double hi = argc == 9 ? strtod(argv[8], NULL) : 1.0;
    uint64_t key0 = strtoull(argv[5], NULL, 10);
    int64_t *o = malloc(sizeof(int64_t) * 4 * (size_t)n);
    for (int i = 0; i < n; i++) {
        mae_crop b;
        mae_rrc_params(&b, W, H, lo, hi, 3.0 / 4.0, 4.0 / 3.0, key0 + (uint64_t)i);
        int64_t row[4] = {b.top, b.left, b.height, b.width};
        memcpy(o + 4 * (size_t)i, row, sizeof row);
    }
    mae_error err;
    int64_t shape[2] = {n, 4};
    if (npy_save(argv[6], "<i8", 2, shape, o, &err) != MAE_OK) die("save", &err);
    free(o);
    return 0;
}

/* Runs every case of CASES on IMG into one flat output. */
static int run_resize(int argc, char **argv, int norm) {
    npy_array im, cs;
    mae_error err;
    if (argc < 5) die("usage: u8|norm IMG.npy CASES.npy OUT.npy [means stds]", NULL);
    if (npy_load(argv[2], &im, &err) != MAE_OK) die("image", &err);
    if (npy_load(argv[3], &cs, &err) != MAE_OK) die("cases", &err);
    if (strcmp(im.descr, "|u1") || im.ndim < 2 || im.ndim > 3 || (im.ndim == 3 && im.shape[2] != 3))
        die("IMG must be uint8 (H, W) or (H, W, 3)", NULL);
    if (strcmp(cs.descr, "<i8") || cs.ndim != 2 || cs.shape[1] != 7)
        die("CASES must be int64 (N, 7)", NULL);
    int H = (int)im.shape[0], W = (int)im.shape[1], c = im.ndim == 3 ? 3 : 1;
    float mean[3], std[3];
    if (norm && argc != 5 + 2 * c) die("norm needs c means and c stds", NULL);
    for (int ch = 0; norm && ch < c; ch++) {
        mean[ch] = strtof(argv[5 + ch], NULL);
        std[ch] = strtof(argv[5 + c + ch], NULL);
    }
    const int64_t *k = cs.data;
    size_t total = 0;
    for (int64_t i = 0; i < cs.shape[0]; i++) total += (size_t)(k[7 * i + 4] * k[7 * i + 5] * c);
    size_t esz = norm ? sizeof(float) : 1;
    uint8_t *out = malloc(total * esz + 1), *at = out;
    mae_buf ws = {0};
    for (int64_t i = 0; i < cs.shape[0]; i++) {
        const int64_t *r = k + 7 * i;
        int x0 = (int)r[0], y0 = (int)r[1], w = (int)r[2], h = (int)r[3], ow = (int)r[4],
            oh = (int)r[5];
        if (x0 < 0 || y0 < 0 || w < 1 || h < 1 || x0 + w > W || y0 + h > H || ow < 1 || oh < 1)
            die("case outside the image", NULL);
        if (norm)
            mae_resize_normalize((float *)(void *)at, ow, oh, im.data, W * c, c, x0, y0, w, h,
                                 (int)r[6], mean, std, &ws);
        else
            mae_resize_u8(at, ow, oh, im.data, W * c, c, x0, y0, w, h, &ws);
        at += (size_t)ow * (size_t)oh * (size_t)c * esz;
    }
    int64_t shape[1] = {(int64_t)total};
    if (npy_save(argv[4], norm ? "<f4" : "|u1", 1, shape, out, &err) != MAE_OK) die("save", &err);
    mae_buf_free(&ws);
    free(out);
    npy_free(&im);
    npy_free(&cs);
    return 0;
}

static int load_img(const char *path, npy_array *im) {
    mae_error err;
    if (npy_load(path, im, &err) != MAE_OK) die("image", &err);
    if (strcmp(im->descr, "|u1") || im->ndim < 2 || im->ndim > 3 ||
        (im->ndim == 3 && im->shape[2] != 3))
        die("IMG must be uint8 (H, W) or (H, W, 3)", NULL);
    return im->ndim == 3 ? 3 : 1;
}

static int run_raop(int argc, char **argv) {
    if (argc < 6 || (argc - 4) % 2) die("usage: raop IMG.npy OUT.npy OP ARG [OP ARG ...]", NULL);
    npy_array im;
    int c = load_img(argv[2], &im);
    const int H = (int)im.shape[0], W = (int)im.shape[1], nops = (argc - 4) / 2;
    const size_t n = (size_t)W * H * c;
    uint8_t *out = malloc(n * (size_t)nops);
    const uint8_t fill[3] = {124, 116, 104};
    mae_buf ws = {0};
    for (int i = 0; i < nops; i++) {
        memcpy(out + n * i, im.data, n);
        mae_randaug_op(out + n * i, W, H, c, atoi(argv[4 + 2 * i]), strtod(argv[5 + 2 * i], NULL),
                       fill, &ws);
    }
    mae_error err;
    int64_t shape[1] = {(int64_t)(n * (size_t)nops)};
    if (npy_save(argv[3], "|u1", 1, shape, out, &err) != MAE_OK) die("save", &err);
    mae_buf_free(&ws);
    free(out);
    npy_free(&im);
    return 0;
}

/* A one-image in-memory source over a loaded npy image. */
static int one_read(mae_source *s, int64_t idx, mae_raw *raw, mae_buf *buf, mae_error *err) {
    (void)idx, (void)buf, (void)err;
    const npy_array *im = s->impl;
    memset(raw, 0, sizeof *raw);
    raw->label = 0;
    raw->px = im->data;
    raw->w = (int)im->shape[1];
    raw->h = (int)im->shape[0];
    raw->c = im->ndim == 3 ? 3 : 1;
    return MAE_OK;
}
static void one_name(const mae_source *s, int64_t idx, char *out, size_t cap) {
    (void)s, (void)idx;
    snprintf(out, cap, "IMG");
}

static int run_eval(int argc, char **argv) {
    if (argc != 6) die("usage: eval IMG.npy SIZE CROP_PCT OUT.npy", NULL);
    npy_array im;
    int c = load_img(argv[2], &im);
    mae_source *src = calloc(1, sizeof *src);
    src->n = 1;
    src->read = one_read;
    src->name = one_name;
    src->impl = &im;
    snprintf(src->desc, sizeof src->desc, "IMG");
    mae_image_opts o;
    mae_image_opts_default(&o, atoi(argv[3]), c);
    o.augment = MAE_AUG_EVAL;
    o.crop_pct = strtod(argv[4], NULL);
    mae_error err;
    mae_dataset *ds = mae_dataset_images(src, &o, &err);
    if (!ds) die("dataset", &err);
    float *out = malloc(sizeof(float) * (size_t)ds->C * ds->H * ds->W);
    mae_data_ws ws;
    memset(&ws, 0, sizeof ws);
    if (mae_dataset_get(ds, 0, 0, 0, out, NULL, &ws, &err) != MAE_OK) die("get", &err);
    mae_data_ws_release(&ws);
    int64_t shape[3] = {ds->C, ds->H, ds->W};
    if (npy_save(argv[5], "<f4", 3, shape, out, &err) != MAE_OK) die("save", &err);
    free(out);
    mae_dataset_free(ds);
    npy_free(&im);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "raop")) return run_raop(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "eval")) return run_eval(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "rrc")) return run_rrc(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "u8")) return run_resize(argc, argv, 0);
    if (argc >= 2 && !strcmp(argv[1], "norm")) return run_resize(argc, argv, 1);
    die("usage: transform_driver rrc|u8|norm|raop|eval ...", NULL);
    return 1;
}
