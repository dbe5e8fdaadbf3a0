/* images.c - the training dataset over an image source: read, draw the crop, decode only what
 * the crop needs, resize (PIL bicubic), flip, normalise. See mae_dataset_images in dataset.h.
 *
 * Randomness: the crop and flip of sample idx in epoch e depend only on (seed, e, idx), so the
 * images are the same at any number of loader threads or processes.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "dataset.h"
#include "rng.h"
#include "transform.h"

typedef struct {
    mae_source *src;
    mae_image_opts o;
    float mean[3], std[3];
} images_impl;

void mae_image_opts_default(mae_image_opts *o, int size, int chans) {
    memset(o, 0, sizeof *o);
    o->size = size;
    o->chans = chans;
    o->augment = MAE_AUG_PRETRAIN;
    o->scale_lo = 0.2;
    o->scale_hi = 1.0;
    o->dct_scaling = 1;
}

/* The smallest JPEG DCT scale n/8 at which the (w x h) crop still has >= size pixels on both
 * sides, so the resize only ever shrinks what it would have shrunk anyway. Only 1/8, 1/4 and
 * 1/2: libjpeg-turbo has SIMD code for those and for 8/8, while its 3/8..7/8 IDCTs are plain C
 * and measured slower than a full-size decode (bench/run_loader_bench.sh). */
static int pick_scale(int w, int h, int size) {
    for (int n = 1; n < 8; n *= 2)
        if ((int64_t)w * n >= (int64_t)size * 8 && (int64_t)h * n >= (int64_t)size * 8) return n;
    return 8;
}

/* Maps [a, a+len) of a full-resolution axis of length full onto the scaled axis of length
 * scaled, rounding both ends; never empty. */
static void map_span(int *s0, int *s1, int a, int len, int full, int scaled) {
    int x0 = (int)floor((double)a * scaled / full + 0.5);
    int x1 = (int)floor((double)(a + len) * scaled / full + 0.5);
    if (x0 > scaled - 1) x0 = scaled - 1;
    if (x1 <= x0) x1 = x0 + 1;
    if (x1 > scaled) x1 = scaled;
    *s0 = x0;
    *s1 = x1;
}

/* In-memory pixels with c channels into ws->img.pix converted to chans (PIL's convert("L") /
 * grey replicated to RGB), only the crop rows/cols. Returns the converted region (stride w*chans). */
static const uint8_t *convert_region(mae_data_ws *ws, const uint8_t *px, int W, int c, int chans,
                                     const mae_crop *b) {
    uint8_t *dst = (uint8_t *)mae_buf_reserve(&ws->img.pix, (size_t)b->width * b->height * chans);
    for (int y = 0; y < b->height; y++) {
        const uint8_t *s = px + ((size_t)(b->top + y) * W + b->left) * c;
        uint8_t *d = dst + (size_t)y * b->width * chans;
        for (int x = 0; x < b->width; x++, s += c) {
            if (chans == 3) {
                d[3 * x] = d[3 * x + 1] = d[3 * x + 2] = s[0];
            } else {
                d[x] = (uint8_t)(((uint32_t)s[0] * 19595u + (uint32_t)s[1] * 38470u +
                                  (uint32_t)s[2] * 7471u + 0x8000u) >> 16);
            }
        }
    }
    return dst;
}

static int images_get_ws(mae_dataset *ds, int64_t idx, int epoch, uint64_t seed, float *out,
                         int *label, mae_data_ws *ws, mae_error *err) {
    images_impl *s = (images_impl *)ds->impl;
    const mae_image_opts *o = &s->o;
    if (idx < 0 || idx >= ds->n)
        return mae_errf(err, "%s: sample index %lld out of range [0, %d)", ds->desc,
                        (long long)idx, ds->n);
    mae_raw raw;
    memset(&raw, 0, sizeof raw);
    int rc = s->src->read(s->src, idx, &raw, &ws->file, err);
    if (rc != MAE_OK) return rc;
    char name[1024];
    mae_error e2;
    int W = raw.w, H = raw.h;
    mae_image_info info = {0, 0, 0};
    if (!raw.px) {
        if (mae_image_probe(raw.bytes, raw.len, &info, &e2) != MAE_OK) goto bad;
        W = info.width;
        H = info.height;
    }
    uint64_t key = mae_hash4(seed, (uint64_t)(int64_t)epoch, (uint64_t)idx, 0x6175676dull);
    mae_crop box = {0, 0, H, W};
    int flip = 0;
    if (o->augment == MAE_AUG_PRETRAIN) {
        mae_rrc_params(&box, W, H, o->scale_lo, o->scale_hi, 3.0 / 4.0, 4.0 / 3.0, key);
        flip = mae_flip_draw(mae_mix64(key ^ 0x666c6970ull));
    }
    const uint8_t *px;
    int stride, x0, y0, w, h;
    if (raw.px) {
        if (raw.c == o->chans) {
            px = raw.px;
            stride = raw.w * raw.c;
            x0 = box.left, y0 = box.top, w = box.width, h = box.height;
        } else {
            px = convert_region(ws, raw.px, raw.w, raw.c, o->chans, &box);
            stride = box.width * o->chans;
            x0 = 0, y0 = 0, w = box.width, h = box.height;
        }
    } else {
        mae_decode_req req = {o->chans, 8, box.left, box.top, box.left + box.width,
                              box.top + box.height};
        if (o->dct_scaling && info.format == MAE_IMG_JPEG)
            req.scale_num = pick_scale(box.width, box.height, o->size);
        mae_image *im = &ws->img;
        if (mae_image_decode(raw.bytes, raw.len, &req, im, &e2) != MAE_OK) goto bad;
        int sx0, sx1, sy0, sy1;
        map_span(&sx0, &sx1, box.left, box.width, W, im->full_w);
        map_span(&sy0, &sy1, box.top, box.height, H, im->full_h);
        /* the decoder covers the requested region; clamp to what it holds all the same */
        if (sx0 < im->x0) sx0 = im->x0;
        if (sy0 < im->y0) sy0 = im->y0;
        if (sx1 > im->x0 + im->w) sx1 = im->x0 + im->w;
        if (sy1 > im->y0 + im->h) sy1 = im->y0 + im->h;
        MAE_ASSERT(sx1 > sx0 && sy1 > sy0 && im->c == o->chans);
        px = im->px;
        stride = im->w * im->c;
        x0 = sx0 - im->x0, y0 = sy0 - im->y0, w = sx1 - sx0, h = sy1 - sy0;
    }
    mae_resize_normalize(out, o->size, o->size, px, stride, o->chans, x0, y0, w, h, flip,
                         s->mean, s->std, &ws->resize);
    if (label) *label = raw.label;
    return MAE_OK;
bad:
    s->src->name(s->src, idx, name, sizeof name);
    mae_errf(err, "%s: %s", name, e2.msg);
    return MAE_ERR_DATA;
}

static int images_get(mae_dataset *ds, int64_t idx, int epoch, uint64_t seed, float *out,
                      int *label, mae_error *err) {
    mae_data_ws ws;
    memset(&ws, 0, sizeof ws);
    int rc = images_get_ws(ds, idx, epoch, seed, out, label, &ws, err);
    mae_data_ws_release(&ws);
    return rc;
}

static void images_destroy(mae_dataset *ds) {
    images_impl *s = (images_impl *)ds->impl;
    if (s) mae_source_free(s->src);
    free(s);
    ds->impl = NULL;
}

mae_dataset *mae_dataset_images(mae_source *src, const mae_image_opts *opts, mae_error *err) {
    if (!src) {
        mae_errf(err, "mae_dataset_images: no source");
        return NULL;
    }
    if (opts->size < 1 || opts->size > 8192 || (opts->chans != 1 && opts->chans != 3) ||
        !(opts->scale_lo > 0 && opts->scale_lo <= opts->scale_hi && opts->scale_hi <= 1) ||
        src->n < 1 || src->n > 2147483647LL) {
        mae_errf(err, "%s: bad image options (size %d, chans %d, scale %g-%g, %lld samples)",
                 src->desc, opts->size, opts->chans, opts->scale_lo, opts->scale_hi,
                 (long long)src->n);
        mae_source_free(src);
        return NULL;
    }
    mae_dataset *ds = (mae_dataset *)mae_xcalloc(1, sizeof *ds);
    images_impl *s = (images_impl *)mae_xcalloc(1, sizeof *s);
    s->src = src;
    s->o = *opts;
    mae_norm_constants(opts->chans, s->mean, s->std);
    ds->n = (int)src->n;
    ds->C = opts->chans;
    ds->H = ds->W = opts->size;
    ds->get = images_get;
    ds->get_ws = images_get_ws;
    ds->destroy = images_destroy;
    ds->impl = s;
    if (opts->augment == MAE_AUG_PRETRAIN)
        snprintf(ds->desc, sizeof ds->desc, "%.160s; RandomResizedCrop(%d, scale=(%g, %g)) + flip",
                 src->desc, opts->size, opts->scale_lo, opts->scale_hi);
    else
        snprintf(ds->desc, sizeof ds->desc, "%.160s; resized to %dx%d", src->desc, opts->size,
                 opts->size);
    return ds;
}

const mae_source *mae_dataset_source(const mae_dataset *ds) {
    if (!ds || ds->get_ws != images_get_ws) return NULL;
    return ((const images_impl *)ds->impl)->src;
}
