/* image.c - image decoding front end: recognises the format by its signature (never by the
 * file name), checks the request, dispatches to jpeg.c / png_dec.c / bmp.c / webp.c, and holds
 * the helpers they share (bomb guard, region, output buffer, PIL's colour conversions).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "image_codec.h"

/* ------------------------------------------------------------------ shared helpers */

int mae_img_fail(mae_error *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return MAE_ERR_DATA;
}

int mae_img_check_dims(int64_t w, int64_t h, const char *what, mae_error *err) {
    if (w <= 0 || h <= 0)
        return mae_img_fail(err, "%s image has a zero dimension (%lldx%lld)", what, (long long)w,
                            (long long)h);
    if (w > MAE_IMG_MAX_PIXELS / h)
        return mae_img_fail(err,
                            "%s image too large (%lldx%lld pixels; the limit is %lld pixels, a "
                            "guard against decompression bombs)",
                            what, (long long)w, (long long)h, (long long)MAE_IMG_MAX_PIXELS);
    return MAE_OK;
}

int mae_img_box_from_req(mae_img_box *box, const mae_decode_req *req, int W, int H,
                         mae_error *err) {
    if (req->x0 == 0 && req->y0 == 0 && req->x1 == 0 && req->y1 == 0) {
        *box = (mae_img_box){0, 0, W, H};
        return MAE_OK;
    }
    if (req->x0 < 0 || req->y0 < 0 || req->x0 >= req->x1 || req->y0 >= req->y1 || req->x1 > W ||
        req->y1 > H)
        return mae_errf(err, "decode region [%d, %d) x [%d, %d) is not inside the %dx%d image",
                        req->x0, req->x1, req->y0, req->y1, W, H);
    *box = (mae_img_box){req->x0, req->y0, req->x1, req->y1};
    return MAE_OK;
}

uint8_t *mae_img_prepare(mae_image *out, int w, int h, int c, int full_w, int full_h, int x0,
                         int y0, int scale_num) {
    MAE_ASSERT(w > 0 && h > 0 && (c == 1 || c == 3) && x0 >= 0 && y0 >= 0 && x0 + w <= full_w &&
               y0 + h <= full_h);
    size_t bytes = 0;
    MAE_ASSERT(mae_size_mul(&bytes, (size_t)w * (size_t)c, (size_t)h));
    out->px = mae_buf_reserve(&out->pix, bytes);
    out->w = w;
    out->h = h;
    out->c = c;
    out->full_w = full_w;
    out->full_h = full_h;
    out->x0 = x0;
    out->y0 = y0;
    out->scale_num = scale_num;
    return out->px;
}

void mae_img_rgb_to_l(uint8_t *dst, const uint8_t *rgb, int n) {
    for (int i = 0; i < n; i++, rgb += 3) dst[i] = mae_img_luma(rgb[0], rgb[1], rgb[2]);
}

void mae_img_l_to_rgb(uint8_t *dst, const uint8_t *l, int n) {
    for (int i = 0; i < n; i++, dst += 3) dst[0] = dst[1] = dst[2] = l[i];
}

/* PIL's MULDIV255(a, b): a*b/255 rounded, in integers. */
static inline int muldiv255(int a, int b) {
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

void mae_img_cmyk_inv_to(uint8_t *dst, int chans, const uint8_t *cmyk, int n) {
    for (int i = 0; i < n; i++, cmyk += 4) {
        int nk = cmyk[3]; /* 255 - K with K = 255 - byte: the inverted byte itself */
        int rgb[3];
        for (int k = 0; k < 3; k++) {
            int v = nk - muldiv255(255 - cmyk[k], nk);
            rgb[k] = v < 0 ? 0 : v > 255 ? 255 : v;
        }
        if (chans == 3) {
            dst[3 * i] = (uint8_t)rgb[0];
            dst[3 * i + 1] = (uint8_t)rgb[1];
            dst[3 * i + 2] = (uint8_t)rgb[2];
        } else {
            dst[i] = mae_img_luma((unsigned)rgb[0], (unsigned)rgb[1], (unsigned)rgb[2]);
        }
    }
}

/* ------------------------------------------------------------------ format sniffing */

typedef struct img_sig {
    int format; /* MAE_IMG_*, or MAE_IMG_UNKNOWN for a recognised but unsupported kind */
    const char *name;
    size_t len;
    const char *bytes;
} img_sig;

static const img_sig img_sigs[] = {
    {MAE_IMG_JPEG, "JPEG", 3, "\xff\xd8\xff"},
    {MAE_IMG_PNG, "PNG", 8, "\x89PNG\r\n\x1a\n"},
    {MAE_IMG_BMP, "BMP", 2, "BM"},
    {MAE_IMG_WEBP, "RIFF/WebP", 4, "RIFF"},
    {MAE_IMG_UNKNOWN, "GIF", 4, "GIF8"},
    {MAE_IMG_UNKNOWN, "TIFF", 4, "II*\0"},
    {MAE_IMG_UNKNOWN, "TIFF", 4, "MM\0*"},
};

/* "3c 68 74 6d" and, when printable, the text itself, for an unknown signature. */
static void describe_bytes(char *out, size_t cap, const uint8_t *buf, size_t len) {
    size_t n = len < 4 ? len : 4, used = 0;
    int printable = 1;
    for (size_t i = 0; i < n; i++) {
        used += (size_t)snprintf(out + used, cap - used, "%s%02x", i ? " " : "", buf[i]);
        if (!isprint(buf[i])) printable = 0;
    }
    if (printable && used < cap)
        snprintf(out + used, cap - used, ", text \"%.*s\"", (int)n, (const char *)buf);
}

/* The format of buf, or MAE_IMG_UNKNOWN with err saying why it is not a supported image. */
static int sniff(const uint8_t *buf, size_t len, mae_error *err) {
    if (len == 0) {
        mae_img_fail(err, "empty file (0 bytes)");
        return MAE_IMG_UNKNOWN;
    }
    for (size_t i = 0; i < sizeof img_sigs / sizeof img_sigs[0]; i++) {
        const img_sig *s = &img_sigs[i];
        size_t n = len < s->len ? len : s->len;
        if (memcmp(buf, s->bytes, n) != 0) continue;
        if (len < s->len) {
            mae_img_fail(err, "truncated %s file (%zu bytes)", s->name, len);
            return MAE_IMG_UNKNOWN;
        }
        if (s->format == MAE_IMG_UNKNOWN) {
            mae_img_fail(err, "unsupported image format (%s)", s->name);
            return MAE_IMG_UNKNOWN;
        }
        if (s->format != MAE_IMG_WEBP) return s->format;
        if (len < 12) {
            mae_img_fail(err, "truncated RIFF/WebP file (%zu bytes)", len);
            return MAE_IMG_UNKNOWN;
        }
        if (memcmp(buf + 8, "WEBP", 4) == 0) return MAE_IMG_WEBP;
        char kind[64];
        describe_bytes(kind, sizeof kind, buf + 8, 4);
        mae_img_fail(err, "not an image (a RIFF file of type %s, not WEBP)", kind);
        return MAE_IMG_UNKNOWN;
    }
    char desc[64];
    describe_bytes(desc, sizeof desc, buf, len);
    mae_img_fail(err, "not an image (unknown signature %s)", desc);
    return MAE_IMG_UNKNOWN;
}

/* ------------------------------------------------------------------ public API */

int mae_image_probe(const uint8_t *buf, size_t len, mae_image_info *info, mae_error *err) {
    memset(info, 0, sizeof *info);
    int format = sniff(buf, len, err), rc;
    switch (format) {
    case MAE_IMG_JPEG: rc = mae_jpeg_probe(info, buf, len, err); break;
    case MAE_IMG_PNG: rc = mae_png_probe(info, buf, len, err); break;
    case MAE_IMG_BMP: rc = mae_bmp_probe(info, buf, len, err); break;
    case MAE_IMG_WEBP: rc = mae_webp_probe(info, buf, len, err); break;
    default: return MAE_ERR_DATA;
    }
    if (rc != MAE_OK) {
        memset(info, 0, sizeof *info);
        return rc;
    }
    info->format = format;
    return MAE_OK;
}

int mae_image_decode(const uint8_t *buf, size_t len, const mae_decode_req *req, mae_image *out,
                     mae_error *err) {
    MAE_ASSERT(req && out && (buf || len == 0));
    MAE_ASSERT((req->chans == 1 || req->chans == 3) && req->scale_num >= 0 && req->scale_num <= 8);
    out->px = NULL;
    out->w = out->h = out->c = 0;
    int rc = MAE_ERR_DATA;
    switch (sniff(buf, len, err)) {
    case MAE_IMG_JPEG: rc = mae_jpeg_decode(out, buf, len, req, err); break;
    case MAE_IMG_PNG: rc = mae_png_decode(out, buf, len, req, err); break;
    case MAE_IMG_BMP: rc = mae_bmp_decode(out, buf, len, req, err); break;
    case MAE_IMG_WEBP: rc = mae_webp_decode(out, buf, len, req, err); break;
    default: break;
    }
    if (rc != MAE_OK) { /* never hand out partially decoded pixels */
        out->px = NULL;
        out->w = out->h = out->c = 0;
    }
    return rc;
}

void mae_image_release(mae_image *im) {
    mae_buf_free(&im->pix);
    mae_buf_free(&im->tmp);
    memset(im, 0, sizeof *im);
}
