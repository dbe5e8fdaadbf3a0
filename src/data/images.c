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
#include "mix.h"
#include "randaug.h"
#include "rng.h"
#include "transform.h"

typedef struct {
    mae_source *src;
    mae_image_opts o;
    float mean[3], std[3];
    uint8_t fill[3];  /* RandAugment fill: round(255 * mean), as timm's img_mean */
    double crop_pct;  /* EVAL: o.crop_pct, or 0.875 */
} images_impl;

/* Sub-keys of the per-sample key (the crop uses the key itself, the flip key ^ "flip"). */
#define KEY_RANDAUG 0x72616e64ull /* "rand" */
#define KEY_ERASE 0x65726173ull   /* "eras" */

/* Mirrors an interleaved (h, w, c) uint8 image left-right in place. */
static void hflip_u8(uint8_t *im, int w, int h, int c) {
    for (int y = 0; y < h; y++) {
        uint8_t *r = im + (size_t)y * (size_t)w * (size_t)c;
        for (int a = 0, b = w - 1; a < b; a++, b--)
            for (int ch = 0; ch < c; ch++) {
                uint8_t t = r[a * c + ch];
                r[a * c + ch] = r[b * c + ch];
                r[b * c + ch] = t;
            }
    }
}

/* main_finetune.py's training transform after the crop: the crop resized to uint8, flip,
 * RandAugment, ToTensor + Normalize, RandomErasing. */
static void finetune_tail(const images_impl *s, float *out, const uint8_t *px, int stride, int x0,
                          int y0, int w, int h, int flip, uint64_t key, mae_data_ws *ws) {
    const mae_image_opts *o = &s->o;
    const int S = o->size, c = o->chans;
    uint8_t *u8 = (uint8_t *)mae_buf_reserve(&ws->aug, (size_t)S * (size_t)S * (size_t)c);
    mae_resize_u8(u8, S, S, px, stride, c, x0, y0, w, h, &ws->resize);
    if (flip) hflip_u8(u8, S, S, c);
    mae_randaug_apply(u8, S, S, c, &o->randaug, s->fill, mae_mix64(key ^ KEY_RANDAUG), &ws->resize);
    mae_normalize_u8(out, u8, S * c, c, 0, 0, S, S, 0, s->mean, s->std);
    if (o->reprob > 0) mae_random_erasing(out, c, S, S, o->reprob, mae_mix64(key ^ KEY_ERASE));
}

/* The Resize(int(size / crop_pct)) output size of a W x H image. */
static void eval_resize_size(const images_impl *s, int *rw, int *rh, int W, int H) {
    mae_resize_short_size(rw, rh, W, H, (int)((double)s->o.size / s->crop_pct));
}

/* main_finetune.py's evaluation transform: Resize(int(size / crop_pct), bicubic) of the whole
 * image (the region given), CenterCrop(size), ToTensor + Normalize. */
static void eval_tail(const images_impl *s, float *out, const uint8_t *px, int stride, int x0,
                      int y0, int w, int h, mae_data_ws *ws) {
    const int S = s->o.size, c = s->o.chans;
    int rw, rh;
    eval_resize_size(s, &rw, &rh, w, h);
    MAE_ASSERT(rw >= S && rh >= S);
    uint8_t *u8 = (uint8_t *)mae_buf_reserve(&ws->aug, (size_t)rw * (size_t)rh * (size_t)c);
    mae_resize_u8(u8, rw, rh, px, stride, c, x0, y0, w, h, &ws->resize);
    /* CenterCrop: int(round((h - size) / 2.0)), Python's round half to even */
    int top = (int)nearbyint((rh - S) / 2.0), left = (int)nearbyint((rw - S) / 2.0);
    mae_normalize_u8(out, u8, rw * c, c, left, top, S, S, 0, s->mean, s->std);
}

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
    if (o->augment == MAE_AUG_EVAL) {
        int rw, rh;
        eval_resize_size(s, &rw, &rh, W, H);
        if ((double)rw * (double)rh * o->chans > (double)(1 << 28)) {
            snprintf(e2.msg, sizeof e2.msg, "%dx%d image: Resize to %dx%d for the centre crop "
                     "is too large (aspect ratio too extreme)", W, H, rw, rh);
            goto bad;
        }
    }
    if (o->augment == MAE_AUG_PRETRAIN || o->augment == MAE_AUG_FINETUNE) {
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
        if (o->dct_scaling && info.format == MAE_IMG_JPEG && o->augment != MAE_AUG_EVAL)
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
    if (o->augment == MAE_AUG_FINETUNE)
        finetune_tail(s, out, px, stride, x0, y0, w, h, flip, key, ws);
    else if (o->augment == MAE_AUG_EVAL)
        eval_tail(s, out, px, stride, x0, y0, w, h, ws);
    else
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
        src->n < 1 || src->n > 2147483647LL || opts->augment < MAE_AUG_PRETRAIN ||
        opts->augment > MAE_AUG_EVAL || !(opts->reprob >= 0 && opts->reprob <= 1) ||
        !(opts->crop_pct == 0 || (opts->crop_pct >= 0.1 && opts->crop_pct <= 1)) ||
        (opts->randaug.enabled &&
         (opts->randaug.num_ops < 0 || opts->randaug.num_ops > MAE_RANDAUG_MAX_OPS))) {
        mae_errf(err, "%s: bad image options (size %d, chans %d, augment %d, scale %g-%g, "
                 "reprob %g, crop_pct %g, %lld samples)", src->desc, opts->size, opts->chans,
                 opts->augment, opts->scale_lo, opts->scale_hi, opts->reprob, opts->crop_pct,
                 (long long)src->n);
        mae_source_free(src);
        return NULL;
    }
    mae_dataset *ds = (mae_dataset *)mae_xcalloc(1, sizeof *ds);
    images_impl *s = (images_impl *)mae_xcalloc(1, sizeof *s);
    s->src = src;
    s->o = *opts;
    mae_norm_constants(opts->chans, s->mean, s->std);
    for (int ch = 0; ch < 3; ch++) {
        double v = nearbyint(255.0 * (double)s->mean[ch < opts->chans ? ch : 0]);
        s->fill[ch] = (uint8_t)(v > 255 ? 255 : v);
    }
    s->crop_pct = opts->crop_pct > 0 ? opts->crop_pct : 0.875;
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
    else if (opts->augment == MAE_AUG_FINETUNE) {
        char ra[80] = "", re[40] = "";
        if (opts->randaug.enabled) snprintf(ra, sizeof ra, " + %s", opts->randaug.spec);
        if (opts->reprob > 0) snprintf(re, sizeof re, " + RandomErasing(%g)", opts->reprob);
        snprintf(ds->desc, sizeof ds->desc, "%.80s; RandomResizedCrop(%d, scale=(%.4g, %.4g)) + "
                 "flip%.70s%.39s", src->desc, opts->size, opts->scale_lo, opts->scale_hi, ra, re);
    } else if (opts->augment == MAE_AUG_EVAL) {
        snprintf(ds->desc, sizeof ds->desc, "%.160s; Resize(%d) + CenterCrop(%d)", src->desc,
                 (int)((double)opts->size / s->crop_pct), opts->size);
    } else
        snprintf(ds->desc, sizeof ds->desc, "%.160s; resized to %dx%d", src->desc, opts->size,
                 opts->size);
    return ds;
}

const mae_source *mae_dataset_source(const mae_dataset *ds) {
    if (!ds || ds->get_ws != images_get_ws) return NULL;
    return ((const images_impl *)ds->impl)->src;
}
