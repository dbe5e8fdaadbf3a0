/* randaug.c - RandAugment (randaug.h): timm 0.3.2's op set and level mappings, each op written
 * from PIL 9.4's definition:
 *   AutoContrast  ImageOps.autocontrast(cutoff=0): per channel lut int(i*scale + offset),
 *                 scale = 255/(hi-lo), offset = -lo*scale; identity when hi <= lo.
 *   Equalize      ImageOps.equalize: per channel step = (total - last nonzero count) // 255,
 *                 lut[i] = (step//2 + sum h[0..i-1]) // step; identity when <= 1 level or !step.
 *   Invert        255 - p.   Posterize(bits) p & ~(2^(8-bits)-1) (bits >= 8: identity).
 *   Solarize(t)   p < t ? p : 255 - p.   SolarizeAdd(a) p < 128 ? min(255, p + a) : p.
 *   Color/Contrast/Brightness/Sharpness(f): Image.blend(degenerate, img, f) with a float alpha
 *                 (truncation, clipped when f is outside [0, 1]); degenerate = the L image
 *                 (L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16, PIL's convert("L")), the
 *                 constant int(mean(L) + 0.5), 0, and ImageFilter.SMOOTH (3x3 [1 1 1;1 5 1;1 1 1]
 *                 / 13 in float with +0.5 and truncation, the 1-pixel border copied).
 *   Rotate/Shear/Translate: Image.transform(AFFINE, BICUBIC, fillcolor) (Geometry.c).
 */
#include "randaug.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

static const char *const k_names[MAE_RA_NUM_OPS] = {
    "AutoContrast", "Equalize",   "Invert",    "Rotate",    "Posterize",
    "Solarize",     "SolarizeAdd", "Color",    "Contrast",  "Brightness",
    "Sharpness",    "ShearX",     "ShearY",    "TranslateXRel", "TranslateYRel"};
static const char *const k_inc_names[MAE_RA_NUM_OPS] = {
    "AutoContrast",        "Equalize",           "Invert",
    "Rotate",              "PosterizeIncreasing", "SolarizeIncreasing",
    "SolarizeAdd",         "ColorIncreasing",    "ContrastIncreasing",
    "BrightnessIncreasing", "SharpnessIncreasing", "ShearX",
    "ShearY",              "TranslateXRel",      "TranslateYRel"};

const char *mae_randaug_op_name(int op, int increasing) {
    if (op < 0 || op >= MAE_RA_NUM_OPS) return "?";
    return increasing ? k_inc_names[op] : k_names[op];
}

/* ------------------------------------------------------------------ parsing */

static int parse_num(const char *s, double *v) {
    char *end;
    if (!*s) return 0;
    *v = strtod(s, &end);
    return *end == '\0' && isfinite(*v);
}

int mae_randaug_parse(mae_randaug_cfg *cfg, const char *spec, mae_error *err) {
    memset(cfg, 0, sizeof *cfg);
    cfg->num_ops = 2;
    cfg->magnitude = 10;
    cfg->mstd = 0;
    cfg->mmax = 10;
    if (!spec || !*spec || !strcmp(spec, "none")) return MAE_OK;
    if (strlen(spec) >= sizeof cfg->spec)
        return mae_errf(err, "--aa %.40s...: too long", spec);
    if (strncmp(spec, "rand", 4) != 0 || (spec[4] != '\0' && spec[4] != '-'))
        return mae_errf(err, "--aa %s: only RandAugment policies \"rand-...\" (e.g. "
                        "rand-m9-mstd0.5-inc1) or \"none\" are supported", spec);
    char buf[64];
    snprintf(buf, sizeof buf, "%s", spec);
    char *next = buf[4] ? buf + 5 : NULL; /* after "rand-" */
    while (next) {
        char *sec = next, *dash = strchr(sec, '-');
        if (dash) *dash = '\0';
        next = dash ? dash + 1 : NULL;
        /* timm: key = the part before the first digit, value = the rest */
        size_t k = 0;
        while (sec[k] && !(sec[k] >= '0' && sec[k] <= '9')) k++;
        char key[16];
        if (k == 0 || k >= sizeof key || !sec[k])
            return mae_errf(err, "--aa %s: bad section '%s' (expected m<magnitude>, n<ops>, "
                            "mstd<std>, inc<0|1> or mmax<max>)", spec, sec);
        memcpy(key, sec, k);
        key[k] = '\0';
        double v;
        if (!parse_num(sec + k, &v))
            return mae_errf(err, "--aa %s: bad number '%s' in section '%s'", spec, sec + k, sec);
        if (!strcmp(key, "m")) {
            if (v < 0 || v > 100)
                return mae_errf(err, "--aa %s: magnitude '%s' outside [0, 100]", spec, sec);
            cfg->magnitude = v;
        } else if (!strcmp(key, "n")) {
            if (v != floor(v) || v < 0 || v > MAE_RANDAUG_MAX_OPS)
                return mae_errf(err, "--aa %s: '%s': the number of ops must be an integer in "
                                "[0, %d]", spec, sec, MAE_RANDAUG_MAX_OPS);
            cfg->num_ops = (int)v;
        } else if (!strcmp(key, "mstd")) {
            if (v < 0 || v > 100)
                return mae_errf(err, "--aa %s: magnitude std '%s' outside [0, 100]", spec, sec);
            cfg->mstd = v;
        } else if (!strcmp(key, "inc")) {
            if (v != 0 && v != 1) return mae_errf(err, "--aa %s: '%s': inc must be 0 or 1", spec, sec);
            cfg->increasing = (int)v;
        } else if (!strcmp(key, "mmax")) {
            if (v <= 0 || v > 100)
                return mae_errf(err, "--aa %s: '%s': mmax must be in (0, 100]", spec, sec);
            cfg->mmax = v;
        } else {
            return mae_errf(err, "--aa %s: unknown section '%s' (expected m, n, mstd, inc or mmax)",
                            spec, sec);
        }
    }
    cfg->enabled = 1;
    snprintf(cfg->spec, sizeof cfg->spec, "%s", spec);
    return MAE_OK;
}

/* ------------------------------------------------------------------ draws */

/* Uniform double in [0, 1) with 53 bits. */
static double u01(uint64_t key, uint64_t step, uint64_t which) {
    return (double)(mae_hash4(key, step, which, 0) >> 11) * 0x1.0p-53;
}

double mae_randaug_level_arg(int op, int increasing, double magnitude, int negate, int w, int h) {
    const double frac = magnitude / 10.0;
    const double sgn = negate ? -1.0 : 1.0;
    switch (op) {
    case MAE_RA_ROTATE: return sgn * frac * 30.0;
    case MAE_RA_SHEAR_X:
    case MAE_RA_SHEAR_Y: return sgn * frac * 0.3;
    case MAE_RA_TRANSLATE_X: return sgn * frac * 0.45 * w;
    case MAE_RA_TRANSLATE_Y: return sgn * frac * 0.45 * h;
    case MAE_RA_POSTERIZE: {
        int bits = (int)(frac * 4);
        return increasing ? 4 - bits : bits;
    }
    case MAE_RA_SOLARIZE: {
        int t = (int)(frac * 256);
        return increasing ? 256 - t : t;
    }
    case MAE_RA_SOLARIZE_ADD: return (int)(frac * 110);
    case MAE_RA_COLOR:
    case MAE_RA_CONTRAST:
    case MAE_RA_BRIGHTNESS:
    case MAE_RA_SHARPNESS: return increasing ? 1.0 + sgn * frac * 0.9 : frac * 1.8 + 0.1;
    default: return 0.0;
    }
}

void mae_randaug_draw(mae_randaug_step *steps, const mae_randaug_cfg *cfg, uint64_t key, int w,
                      int h) {
    for (int i = 0; i < cfg->num_ops; i++) {
        mae_randaug_step *s = &steps[i];
        int op = (int)(u01(key, (uint64_t)i, 0) * MAE_RA_NUM_OPS);
        s->op = op < MAE_RA_NUM_OPS ? op : MAE_RA_NUM_OPS - 1;
        s->fire = u01(key, (uint64_t)i, 1) < 0.5;
        double m = cfg->magnitude;
        if (cfg->mstd > 0) { /* random.gauss(m, mstd): Box-Muller */
            double u1 = 1.0 - u01(key, (uint64_t)i, 2), u2 = u01(key, (uint64_t)i, 3);
            m += cfg->mstd * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        }
        s->magnitude = fmin(cfg->mmax, fmax(0.0, m));
        s->negate = u01(key, (uint64_t)i, 4) > 0.5;
        s->arg = mae_randaug_level_arg(s->op, cfg->increasing, s->magnitude, s->negate, w, h);
    }
}

/* ------------------------------------------------------------------ ops */

static void apply_lut(uint8_t *img, size_t npix, int c, const uint8_t *lut /* (c, 256) */) {
    for (size_t i = 0; i < npix; i++)
        for (int ch = 0; ch < c; ch++) img[i * c + ch] = lut[ch * 256 + img[i * c + ch]];
}

static void histogram(uint32_t *hist /* (c, 256) */, const uint8_t *img, size_t npix, int c) {
    memset(hist, 0, sizeof(uint32_t) * 256 * (size_t)c);
    for (size_t i = 0; i < npix; i++)
        for (int ch = 0; ch < c; ch++) hist[ch * 256 + img[i * c + ch]]++;
}

static void autocontrast(uint8_t *img, size_t npix, int c) {
    uint32_t hist[3 * 256];
    uint8_t lut[3 * 256];
    histogram(hist, img, npix, c);
    for (int ch = 0; ch < c; ch++) {
        const uint32_t *hh = hist + ch * 256;
        int lo = 0, hi = 255;
        while (lo < 256 && !hh[lo]) lo++;
        while (hi >= 0 && !hh[hi]) hi--;
        for (int i = 0; i < 256; i++) {
            if (hi <= lo) {
                lut[ch * 256 + i] = (uint8_t)i;
            } else {
                double scale = 255.0 / (hi - lo), offset = -lo * scale;
                int v = (int)(i * scale + offset);
                lut[ch * 256 + i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    apply_lut(img, npix, c, lut);
}

static void equalize(uint8_t *img, size_t npix, int c) {
    uint32_t hist[3 * 256];
    uint8_t lut[3 * 256];
    histogram(hist, img, npix, c);
    for (int ch = 0; ch < c; ch++) {
        const uint32_t *hh = hist + ch * 256;
        int levels = 0;
        int64_t total = 0, last = 0;
        for (int i = 0; i < 256; i++)
            if (hh[i]) levels++, total += hh[i], last = hh[i];
        int64_t step = levels <= 1 ? 0 : (total - last) / 255;
        int64_t n = step / 2;
        for (int i = 0; i < 256; i++) {
            if (!step) {
                lut[ch * 256 + i] = (uint8_t)i;
            } else {
                int64_t v = n / step; /* PIL clips lut entries to 0..255 */
                lut[ch * 256 + i] = (uint8_t)(v > 255 ? 255 : v);
                n += hh[i];
            }
        }
    }
    apply_lut(img, npix, c, lut);
}

static void point_op(uint8_t *img, size_t npix, int c, int op, int arg) {
    uint8_t lut[3 * 256];
    for (int i = 0; i < 256; i++) {
        int v = i;
        switch (op) {
        case MAE_RA_INVERT: v = 255 - i; break;
        case MAE_RA_POSTERIZE:
            if (arg < 8) v = i & ~((1 << (8 - (arg < 0 ? 0 : arg))) - 1);
            break;
        case MAE_RA_SOLARIZE: v = i < arg ? i : 255 - i; break;
        case MAE_RA_SOLARIZE_ADD: v = i < 128 ? (i + arg > 255 ? 255 : i + arg) : i; break;
        default: break;
        }
        lut[i] = lut[256 + i] = lut[512 + i] = (uint8_t)v;
    }
    apply_lut(img, npix, c, lut);
}

static uint8_t grey(const uint8_t *p) {
    return (uint8_t)(((uint32_t)p[0] * 19595u + (uint32_t)p[1] * 38470u + (uint32_t)p[2] * 7471u +
                      0x8000u) >> 16);
}

/* ImagingBlend(degenerate, image, alpha) for one value. */
static uint8_t blend1(int d, int im, float alpha) {
    float t = (float)d + alpha * (float)(im - d);
    if (alpha >= 0 && alpha <= 1.0f) return (uint8_t)t;
    if (t <= 0.0f) return 0;
    if (t >= 255.0f) return 255;
    return (uint8_t)t;
}

/* PIL ImageFilter.SMOOTH (Filter.c ImagingFilter3x3) of src into dst, border copied. */
static void smooth(uint8_t *dst, const uint8_t *src, int w, int h, int c) {
    const size_t row = (size_t)w * (size_t)c;
    memcpy(dst, src, row * (size_t)h);
    if (w < 3 || h < 3) return;
    const float k1 = 1.0f / 13.0f, k5 = 5.0f / 13.0f;
    for (int y = 1; y < h - 1; y++) {
        const uint8_t *rm = src + (size_t)(y - 1) * row, *r0 = src + (size_t)y * row,
                      *rp = src + (size_t)(y + 1) * row;
        uint8_t *o = dst + (size_t)y * row;
        for (int x = 1; x < w - 1; x++) {
            for (int ch = 0; ch < c; ch++) {
                size_t i = (size_t)x * c + ch, l = i - c, r = i + c;
                float ss = 0.5f;
                ss += (float)rp[l] * k1 + (float)rp[i] * k1 + (float)rp[r] * k1;
                ss += (float)r0[l] * k1 + (float)r0[i] * k5 + (float)r0[r] * k1;
                ss += (float)rm[l] * k1 + (float)rm[i] * k1 + (float)rm[r] * k1;
                o[i] = ss <= 0.0f ? 0 : ss >= 255.0f ? 255 : (uint8_t)ss;
            }
        }
    }
}

static void enhance(uint8_t *img, int w, int h, int c, int op, double factor, mae_buf *ws) {
    const size_t npix = (size_t)w * (size_t)h, n = npix * (size_t)c;
    const float alpha = (float)factor;
    if (op == MAE_RA_BRIGHTNESS) {
        for (size_t i = 0; i < n; i++) img[i] = blend1(0, img[i], alpha);
    } else if (op == MAE_RA_COLOR) {
        if (c == 1) return; /* convert("L") of an L image is itself: blend(x, x) = x */
        for (size_t i = 0; i < npix; i++) {
            uint8_t *p = img + 3 * i;
            int g = grey(p);
            for (int ch = 0; ch < 3; ch++) p[ch] = blend1(g, p[ch], alpha);
        }
    } else if (op == MAE_RA_CONTRAST) {
        uint64_t sum = 0;
        for (size_t i = 0; i < npix; i++) sum += c == 3 ? grey(img + 3 * i) : img[i];
        int mean = (int)((double)sum / (double)npix + 0.5);
        for (size_t i = 0; i < n; i++) img[i] = blend1(mean, img[i], alpha);
    } else { /* sharpness */
        uint8_t *deg = (uint8_t *)mae_buf_reserve(ws, n);
        smooth(deg, img, w, h, c);
        for (size_t i = 0; i < n; i++) img[i] = blend1(deg[i], img[i], alpha);
    }
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Geometry.c BICUBIC: cubic convolution with a = -1. */
static double cubic(double v1, double v2, double v3, double v4, double d) {
    double p1 = v2;
    double p2 = -v1 + v3;
    double p3 = 2 * (v1 - v2) + v3 - v4;
    double p4 = -v1 + v2 - v3 + v4;
    return p1 + d * (p2 + d * (p3 + d * p4));
}

void mae_affine_bicubic(uint8_t *img, int w, int h, int c, const double a[6],
                        const uint8_t fill[3], mae_buf *ws) {
    MAE_ASSERT(w > 0 && h > 0 && (c == 1 || c == 3));
    const size_t n = (size_t)w * (size_t)h * (size_t)c;
    uint8_t *src = (uint8_t *)mae_buf_reserve(ws, n);
    memcpy(src, img, n);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            uint8_t *o = img + ((size_t)y * w + x) * c;
            double xin = x + 0.5, yin = y + 0.5;
            double xx = a[0] * xin + a[1] * yin + a[2];
            double yy = a[3] * xin + a[4] * yin + a[5];
            if (xx < 0.0 || xx >= w || yy < 0.0 || yy >= h) {
                for (int ch = 0; ch < c; ch++) o[ch] = fill[ch];
                continue;
            }
            xx -= 0.5;
            yy -= 0.5;
            int ix = xx < 0.0 ? (int)floor(xx) : (int)xx;
            int iy = yy < 0.0 ? (int)floor(yy) : (int)yy;
            double dx = xx - ix, dy = yy - iy;
            ix--;
            iy--;
            size_t xo[4];
            const uint8_t *rows[4];
            for (int k = 0; k < 4; k++) {
                xo[k] = (size_t)clampi(ix + k, 0, w - 1) * (size_t)c;
                rows[k] = src + (size_t)clampi(iy + k, 0, h - 1) * (size_t)w * (size_t)c;
            }
            for (int ch = 0; ch < c; ch++) {
                double v[4];
                for (int k = 0; k < 4; k++)
                    v[k] = cubic(rows[k][xo[0] + ch], rows[k][xo[1] + ch], rows[k][xo[2] + ch],
                                 rows[k][xo[3] + ch], dx);
                double r = cubic(v[0], v[1], v[2], v[3], dy);
                o[ch] = r <= 0.0 ? 0 : r >= 255.0 ? 255 : (uint8_t)r;
            }
        }
    }
}

/* Python's round(x, 15): the correctly rounded decimal, as glibc's printf gives it. */
static double round15(double x) {
    char b[64];
    snprintf(b, sizeof b, "%.15f", x);
    return strtod(b, NULL);
}

void mae_rotate_bicubic(uint8_t *img, int w, int h, int c, double degrees, const uint8_t fill[3],
                        mae_buf *ws) {
    double angle = fmod(degrees, 360.0); /* Python's %: the sign of the divisor */
    if (angle < 0) angle += 360.0;
    if (angle == 0.0) return; /* PIL: a copy */
    double cx = w / 2.0, cy = h / 2.0;
    double t = -angle * (3.141592653589793 / 180.0); /* math.radians: x * (pi / 180) */
    double m[6] = {round15(cos(t)), round15(sin(t)), 0.0, round15(-sin(t)), round15(cos(t)), 0.0};
    double tx = m[0] * -cx + m[1] * -cy + m[2], ty = m[3] * -cx + m[4] * -cy + m[5];
    m[2] = tx + cx;
    m[5] = ty + cy;
    mae_affine_bicubic(img, w, h, c, m, fill, ws);
}

void mae_randaug_op(uint8_t *img, int w, int h, int c, int op, double arg, const uint8_t fill[3],
                    mae_buf *ws) {
    MAE_ASSERT(w > 0 && h > 0 && (c == 1 || c == 3));
    const size_t npix = (size_t)w * (size_t)h;
    switch (op) {
    case MAE_RA_AUTOCONTRAST: autocontrast(img, npix, c); break;
    case MAE_RA_EQUALIZE: equalize(img, npix, c); break;
    case MAE_RA_INVERT:
    case MAE_RA_POSTERIZE:
    case MAE_RA_SOLARIZE:
    case MAE_RA_SOLARIZE_ADD: point_op(img, npix, c, op, (int)arg); break;
    case MAE_RA_COLOR:
    case MAE_RA_CONTRAST:
    case MAE_RA_BRIGHTNESS:
    case MAE_RA_SHARPNESS: enhance(img, w, h, c, op, arg, ws); break;
    case MAE_RA_ROTATE: mae_rotate_bicubic(img, w, h, c, arg, fill, ws); break;
    case MAE_RA_SHEAR_X: {
        const double m[6] = {1, arg, 0, 0, 1, 0};
        mae_affine_bicubic(img, w, h, c, m, fill, ws);
        break;
    }
    case MAE_RA_SHEAR_Y: {
        const double m[6] = {1, 0, 0, arg, 1, 0};
        mae_affine_bicubic(img, w, h, c, m, fill, ws);
        break;
    }
    case MAE_RA_TRANSLATE_X: {
        const double m[6] = {1, 0, arg, 0, 1, 0};
        mae_affine_bicubic(img, w, h, c, m, fill, ws);
        break;
    }
    case MAE_RA_TRANSLATE_Y: {
        const double m[6] = {1, 0, 0, 0, 1, arg};
        mae_affine_bicubic(img, w, h, c, m, fill, ws);
        break;
    }
    default: MAE_ASSERT(0 && "unknown RandAugment op");
    }
}

void mae_randaug_apply(uint8_t *img, int w, int h, int c, const mae_randaug_cfg *cfg,
                       const uint8_t fill[3], uint64_t key, mae_buf *ws) {
    if (!cfg || !cfg->enabled || cfg->num_ops <= 0) return;
    mae_randaug_step steps[MAE_RANDAUG_MAX_OPS];
    int n = cfg->num_ops < MAE_RANDAUG_MAX_OPS ? cfg->num_ops : MAE_RANDAUG_MAX_OPS;
    mae_randaug_cfg c2 = *cfg;
    c2.num_ops = n;
    mae_randaug_draw(steps, &c2, key, w, h);
    for (int i = 0; i < n; i++)
        if (steps[i].fire) mae_randaug_op(img, w, h, c, steps[i].op, steps[i].arg, fill, ws);
}
