/* webp.c - WebP decoding through libwebp (when built with it: MAE_HAVE_WEBP), with libwebp's
 * defaults (fancy upsampling, no dithering) as PIL uses them, so the RGB values are PIL's.
 * Alpha is dropped. Animated WebP is refused. The whole image is decoded (straight into the
 * output when the request is the whole image in RGB), then the region is copied out.
 */
#include <string.h>

#include "image_codec.h"

#ifdef MAE_HAVE_WEBP

#include <webp/decode.h>

static int webp_failure(VP8StatusCode st, mae_error *err) {
    switch (st) {
    case VP8_STATUS_NOT_ENOUGH_DATA: return mae_img_fail(err, "truncated WebP data");
    case VP8_STATUS_UNSUPPORTED_FEATURE: return mae_img_fail(err, "unsupported WebP feature");
    case VP8_STATUS_OUT_OF_MEMORY: return mae_img_fail(err, "WebP image too large to decode");
    default: return mae_img_fail(err, "corrupt WebP data (libwebp status %d)", (int)st);
    }
}

/* Reads the features (size, animation) from the headers. */
static int webp_features(WebPBitstreamFeatures *f, const uint8_t *buf, size_t len, mae_error *err) {
    VP8StatusCode st = WebPGetFeatures(buf, len, f);
    if (st != VP8_STATUS_OK) return webp_failure(st, err);
    if (f->has_animation) return mae_img_fail(err, "unsupported WebP feature (animation)");
    return mae_img_check_dims(f->width, f->height, "WebP", err);
}

int mae_webp_probe(mae_image_info *info, const uint8_t *buf, size_t len, mae_error *err) {
    WebPBitstreamFeatures f;
    int rc = webp_features(&f, buf, len, err);
    if (rc != MAE_OK) return rc;
    info->width = f.width;
    info->height = f.height;
    return MAE_OK;
}

/* Decodes the whole image as RGB into rgb (H rows of stride bytes). */
static int webp_decode_rgb(uint8_t *rgb, size_t stride, const uint8_t *buf, size_t len, int H,
                           mae_error *err) {
    WebPDecoderConfig cfg;
    MAE_ASSERT(WebPInitDecoderConfig(&cfg));
    cfg.output.colorspace = MODE_RGB;
    cfg.output.is_external_memory = 1;
    cfg.output.u.RGBA.rgba = rgb;
    cfg.output.u.RGBA.stride = (int)stride;
    cfg.output.u.RGBA.size = stride * (size_t)H;
    VP8StatusCode st = WebPDecode(buf, len, &cfg);
    WebPFreeDecBuffer(&cfg.output); /* nothing to free with external memory, but harmless */
    return st == VP8_STATUS_OK ? MAE_OK : webp_failure(st, err);
}

int mae_webp_decode(mae_image *out, const uint8_t *buf, size_t len, const mae_decode_req *req,
                    mae_error *err) {
    WebPBitstreamFeatures f;
    int rc = webp_features(&f, buf, len, err);
    if (rc != MAE_OK) return rc;
    mae_img_box b;
    rc = mae_img_box_from_req(&b, req, f.width, f.height, err);
    if (rc != MAE_OK) return rc;
    int whole = b.x0 == 0 && b.y0 == 0 && b.x1 == f.width && b.y1 == f.height;
    uint8_t *px = mae_img_prepare(out, b.x1 - b.x0, b.y1 - b.y0, req->chans, f.width, f.height,
                                  b.x0, b.y0, 8);
    size_t full_stride = (size_t)f.width * 3;
    if (whole && req->chans == 3) return webp_decode_rgb(px, full_stride, buf, len, f.height, err);
    uint8_t *rgb = mae_buf_reserve(&out->tmp, full_stride * (size_t)f.height);
    rc = webp_decode_rgb(rgb, full_stride, buf, len, f.height, err);
    if (rc != MAE_OK) return rc;
    size_t stride = (size_t)out->w * (size_t)out->c;
    for (int y = b.y0; y < b.y1; y++) {
        const uint8_t *src = rgb + (size_t)y * full_stride + (size_t)b.x0 * 3;
        uint8_t *dst = px + (size_t)(y - b.y0) * stride;
        if (req->chans == 3)
            memcpy(dst, src, stride);
        else
            mae_img_rgb_to_l(dst, src, out->w);
    }
    return MAE_OK;
}

#else /* built without libwebp */

int mae_webp_probe(mae_image_info *info, const uint8_t *buf, size_t len, mae_error *err) {
    (void)info, (void)buf, (void)len;
    return mae_img_fail(err, "WebP support not built in");
}

int mae_webp_decode(mae_image *out, const uint8_t *buf, size_t len, const mae_decode_req *req,
                    mae_error *err) {
    (void)out, (void)buf, (void)len, (void)req;
    return mae_img_fail(err, "WebP support not built in");
}

#endif
