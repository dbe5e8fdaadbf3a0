/* transform.c - the pretraining augmentation (transform.h): torchvision 0.14's
 * RandomResizedCrop.get_params and RandomHorizontalFlip draws from the counter hash, and PIL
 * 9.4's bicubic resize of a crop (Resample.c: precompute_coeffs, normalize_coeffs_8bpc,
 * ImagingResampleInner) with flip + ToTensor + Normalize fused into the row output. The passes
 * themselves are in resample.c. */
#include "transform.h"

#include <math.h>
#include <string.h>

#include "resample.h"
#include "rng.h"

/* ---- random draws ---- */

/* Uniform double in [0, 1) with 53 bits, from (key, stream, which). */
static double u01(uint64_t key, uint64_t stream, uint64_t which) {
    return (double)(mae_hash4(key, stream, which, 0) >> 11) * 0x1.0p-53;
}

/* torch.empty(1).uniform_(lo, hi).item() on a float32 tensor: the value is a float32. */
static double uniform_f32(double u, float lo, float hi) {
    return (double)(float)((double)lo + u * ((double)hi - (double)lo));
}

/* Python's int(round(x)) for finite x >= 0 that the caller bounds: round half to even (rint in
 * the default rounding mode). */
static double py_round(double x) { return nearbyint(x); }

/* torch.randint(0, n + 1): uniform integer in [0, n]. */
static int randint_incl(double u, int n) {
    int v = (int)(u * ((double)n + 1.0));
    return v > n ? n : v;
}

void mae_rrc_params(mae_crop *out, int W, int H, double scale_lo, double scale_hi,
                    double ratio_lo, double ratio_hi, uint64_t key) {
    MAE_ASSERT(W > 0 && H > 0 && scale_lo <= scale_hi && ratio_lo > 0 && ratio_lo <= ratio_hi);
    const double area = (double)H * (double)W;
    /* log_ratio = torch.log(torch.tensor(ratio)): float32 */
    const float lr0 = logf((float)ratio_lo), lr1 = logf((float)ratio_hi);
    for (int t = 0; t < 10; t++) {
        double target_area = area * uniform_f32(u01(key, (uint64_t)t, 0), (float)scale_lo,
                                                (float)scale_hi);
        double ar = (double)expf((float)uniform_f32(u01(key, (uint64_t)t, 1), lr0, lr1));
        double w = py_round(sqrt(target_area * ar)), h = py_round(sqrt(target_area / ar));
        if (0 < w && w <= W && 0 < h && h <= H) {
            out->height = (int)h;
            out->width = (int)w;
            out->top = randint_incl(u01(key, (uint64_t)t, 2), H - out->height);
            out->left = randint_incl(u01(key, (uint64_t)t, 3), W - out->width);
            return;
        }
    }
    /* fallback to the central crop, the ratio clamped */
    double in_ratio = (double)W / (double)H;
    int w = W, h = H;
    if (in_ratio < fmin(ratio_lo, ratio_hi)) {
        h = (int)py_round((double)w / fmin(ratio_lo, ratio_hi));
    } else if (in_ratio > fmax(ratio_lo, ratio_hi)) {
        w = (int)py_round((double)h * fmax(ratio_lo, ratio_hi));
    }
    out->height = h;
    out->width = w;
    out->top = (H - h) / 2; /* H >= h >= 0 here, so C's division floors like Python's // */
    out->left = (W - w) / 2;
}

int mae_flip_draw(uint64_t key) { return u01(key, 0x666c6970ull, 0) < 0.5; }

/* ---- resize weights (Pillow's precompute_coeffs for box = (0, in), bicubic a = -0.5) ---- */

/* Pillow's bicubic_filter, with its operation order (no FMA: C11 mode does not contract). */
static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Pillow's scale: (double)(in1 - in0) / outSize, in1 - in0 a float. */
static double axis_scale(int in, int out) { return (double)(float)in / out; }

/* Pillow's ksize = 2 * ceil(support) + 1 with support = 2 * max(scale, 1). */
static int axis_ksize(int in, int out) {
    double fs = axis_scale(in, out);
    if (fs < 1.0) fs = 1.0;
    return (int)ceil(2.0 * fs) * 2 + 1;
}

/* Fills ax (whose arrays are sized for out and axis_ksize) for in -> out. tmp: double (ksize). */
static void axis_weights(mae_rs_axis *ax, double *tmp, int in, int out) {
    double scale = axis_scale(in, out), fs = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * fs, ss = 1.0 / fs;
    ax->out = out;
    ax->ksize = axis_ksize(in, out);
    for (int xx = 0; xx < out; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in) xmax = in;
        xmax -= xmin;
        MAE_ASSERT(xmax >= 1 && xmax <= ax->ksize);
        for (int x = 0; x < xmax; x++) {
            tmp[x] = bicubic((x + xmin - center + 0.5) * ss);
            ww += tmp[x];
        }
        int32_t *k = ax->k + (size_t)xx * (size_t)ax->ksize;
        for (int x = 0; x < ax->ksize; x++) {
            double v = x < xmax ? (ww != 0.0 ? tmp[x] / ww : tmp[x]) : 0.0;
            /* normalize_coeffs_8bpc */
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << MAE_RS_BITS))
                         : (int32_t)(0.5 + v * (1 << MAE_RS_BITS));
        }
        ax->lo[xx] = xmin;
        ax->n[xx] = xmax;
    }
}

/* ---- the resize plan, carved from the scratch buffer ---- */

typedef struct plan {
    mae_rs_axis hx, vy;
    int need_h, need_v;
    const uint8_t *rows; /* the rows the vertical pass reads: the source crop or tmp */
    size_t rstride;
    int row0;            /* crop row held by rows[0] */
    uint8_t *line;       /* one output row, (ow * c) bytes */
    int32_t *acc;        /* vertical-pass scratch, (ow * c) */
    float *lut;          /* normalisation tables, (c, 256) */
} plan;

/* Takes `bytes` (rounded up to 64) from *at. */
static void *carve(uint8_t **at, size_t bytes) {
    void *p = *at;
    *at += (bytes + 63) & ~(size_t)63;
    return p;
}

static size_t mul3(size_t a, size_t b, size_t c) {
    size_t ab, abc;
    MAE_ASSERT(mae_size_mul(&ab, a, b) && mae_size_mul(&abc, ab, c) && abc < SIZE_MAX / 4);
    return abc;
}

/* Computes the weights and runs the horizontal pass over the rows the vertical pass needs
 * (Pillow's ImagingResampleInner), leaving the rows to be read by plan_row. */
static void plan_make(plan *p, int ow, int oh, const uint8_t *src, int stride, int c, int x0,
                      int y0, int w, int h, mae_buf *ws) {
    MAE_ASSERT(ow > 0 && oh > 0 && w > 0 && h > 0 && x0 >= 0 && y0 >= 0 && (c == 1 || c == 3));
    MAE_ASSERT((int64_t)stride >= ((int64_t)x0 + w) * c);
    const size_t kx = (size_t)axis_ksize(w, ow), ky = (size_t)axis_ksize(h, oh);
    const size_t line = (size_t)ow * (size_t)c;
    p->need_h = ow != w;
    p->need_v = oh != h;
    p->hx.out = ow;
    p->hx.ksize = (int)kx;
    size_t hs = p->need_h ? mae_rs_hscratch_bytes(&p->hx, c) : 0;
    size_t tmp = p->need_h ? mul3((size_t)h, line, 1) + 64 : 0; /* + the passes' slack */
    size_t sz[] = {mul3((size_t)ow, kx, 4), mul3((size_t)ow, 2, sizeof(int)),
                   mul3((size_t)oh, ky, 4), mul3((size_t)oh, 2, sizeof(int)),
                   mul3(kx > ky ? kx : ky, sizeof(double), 1), hs, tmp, line + 64, line * 4,
                   (size_t)c * 256 * sizeof(float)};
    size_t total = 64;
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) total += (sz[i] + 63) & ~(size_t)63;
    uint8_t *at = mae_buf_reserve(ws, total);
    at += (64 - ((uintptr_t)at & 63)) & 63;
    p->hx.k = carve(&at, sz[0]);
    p->hx.lo = carve(&at, sz[1]);
    p->hx.n = p->hx.lo + ow;
    p->vy.k = carve(&at, sz[2]);
    p->vy.lo = carve(&at, sz[3]);
    p->vy.n = p->vy.lo + oh;
    double *dtmp = carve(&at, sz[4]);
    void *hscratch = carve(&at, sz[5]);
    uint8_t *tmpimg = carve(&at, sz[6]);
    p->line = carve(&at, sz[7]);
    p->acc = carve(&at, sz[8]);
    p->lut = carve(&at, sz[9]);
    axis_weights(&p->vy, dtmp, h, oh);
    const uint8_t *crop = src + (size_t)y0 * (size_t)stride + (size_t)x0 * (size_t)c;
    p->rows = crop;
    p->rstride = (size_t)stride;
    p->row0 = 0;
    if (p->need_h) { /* only the rows [first, last) that the vertical weights touch */
        int first = p->vy.lo[0], last = p->vy.lo[oh - 1] + p->vy.n[oh - 1];
        axis_weights(&p->hx, dtmp, w, ow);
        mae_rs_horizontal(tmpimg, line, crop + (size_t)first * (size_t)stride, (size_t)stride,
                          last - first, w, c, &p->hx, hscratch);
        p->rows = tmpimg;
        p->rstride = line;
        p->row0 = first;
    }
}

/* Output row yy, (ow * c) bytes interleaved, into dst. */
static void plan_row(uint8_t *dst, const plan *p, int yy, int len) {
    if (p->need_v) {
        const uint8_t *r = p->rows + (size_t)(p->vy.lo[yy] - p->row0) * p->rstride;
        mae_rs_vertical(dst, r, p->rstride, len, p->vy.k + (size_t)yy * (size_t)p->vy.ksize,
                        p->vy.n[yy], p->acc);
    } else {
        memcpy(dst, p->rows + (size_t)(yy - p->row0) * p->rstride, (size_t)len);
    }
}

void mae_resize_u8(uint8_t *out, int ow, int oh, const uint8_t *src, int stride, int c, int x0,
                   int y0, int w, int h, mae_buf *ws) {
    plan p;
    plan_make(&p, ow, oh, src, stride, c, x0, y0, w, h, ws);
    const int len = ow * c;
    for (int yy = 0; yy < oh; yy++) plan_row(out + (size_t)yy * (size_t)len, &p, yy, len);
}

/* lut[ch][v] = (v / 255 - mean[ch]) / std[ch] in float32, as ToTensor then Normalize. */
static void make_lut(float *lut, int c, const float *mean, const float *std) {
    for (int ch = 0; ch < c; ch++)
        for (int v = 0; v < 256; v++) lut[ch * 256 + v] = ((float)v / 255.0f - mean[ch]) / std[ch];
}

/* One interleaved output row -> the c planes of out at row yy, mirrored if flip. */
static void emit_row(float *restrict out, size_t plane, int ow, int c,
                     const uint8_t *restrict row, int flip, const float *restrict lut) {
    for (int ch = 0; ch < c; ch++) {
        float *o = out + (size_t)ch * plane;
        const float *l = lut + ch * 256;
        const uint8_t *r = row + ch;
        if (flip) {
            for (int x = 0; x < ow; x++) o[ow - 1 - x] = l[r[x * c]];
        } else {
            for (int x = 0; x < ow; x++) o[x] = l[r[x * c]];
        }
    }
}

void mae_resize_normalize(float *out, int ow, int oh, const uint8_t *src, int stride, int c,
                          int x0, int y0, int w, int h, int flip, const float *mean,
                          const float *std, mae_buf *ws) {
    plan p;
    plan_make(&p, ow, oh, src, stride, c, x0, y0, w, h, ws);
    make_lut(p.lut, c, mean, std);
    const size_t plane = (size_t)ow * (size_t)oh;
    for (int yy = 0; yy < oh; yy++) {
        plan_row(p.line, &p, yy, ow * c);
        emit_row(out + (size_t)yy * (size_t)ow, plane, ow, c, p.line, flip, p.lut);
    }
}

void mae_normalize_u8(float *out, const uint8_t *src, int stride, int c, int x0, int y0, int w,
                      int h, int flip, const float *mean, const float *std) {
    float lut[3 * 256];
    MAE_ASSERT(c == 1 || c == 3);
    make_lut(lut, c, mean, std);
    const size_t plane = (size_t)w * (size_t)h;
    for (int y = 0; y < h; y++)
        emit_row(out + (size_t)y * (size_t)w, plane, w, c,
                 src + (size_t)(y0 + y) * (size_t)stride + (size_t)x0 * (size_t)c, flip, lut);
}

void mae_resize_short_size(int *ow, int *oh, int W, int H, int shorter) {
    /* torchvision 0.14 _compute_resized_output_size: int(requested * long / short) */
    if (W <= H) {
        *ow = shorter;
        *oh = (int)((double)shorter * (double)H / (double)W);
    } else {
        *oh = shorter;
        *ow = (int)((double)shorter * (double)W / (double)H);
    }
}
