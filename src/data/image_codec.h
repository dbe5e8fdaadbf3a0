/* image_codec.h - internals shared by the image decoders: image.c (format sniffing, dispatch,
 * pixel conversions, output buffers) and one file per format (jpeg.c, png_dec.c, bmp.c,
 * webp.c). Not part of the public interface; see image.h for the semantics.
 */
#ifndef MAE_DATA_IMAGE_CODEC_H
#define MAE_DATA_IMAGE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

/* Decompression-bomb guard: images above this many pixels (or with a zero side) are refused
 * before anything is allocated. 2^28 is about 16384 x 16384. */
#define MAE_IMG_MAX_PIXELS ((int64_t)1 << 28)

/* Fills err (may be NULL) and returns MAE_ERR_DATA: the message for a bad file. */
int mae_img_fail(mae_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* MAE_ERR_DATA ("<what> image has a zero dimension (0x5)" / "... too large ...") unless
 * 0 < w, 0 < h and w*h <= MAE_IMG_MAX_PIXELS. */
int mae_img_check_dims(int64_t w, int64_t h, const char *what, mae_error *err);

/* The wanted region of a W x H image in full-resolution pixels, [x0,x1) x [y0,y1). */
typedef struct mae_img_box {
    int x0, y0, x1, y1;
} mae_img_box;

/* req's region, or the whole image when its corners are all zero. A region that is empty or
 * not inside the image is a caller error: MAE_ERR with a message. */
int mae_img_box_from_req(mae_img_box *box, const mae_decode_req *req, int W, int H, mae_error *err);

/* Sets out's geometry (a w x h block with c channels at (x0, y0) of a full_w x full_h image at
 * scale scale_num/8) and returns out->px, grown to hold it. */
uint8_t *mae_img_prepare(mae_image *out, int w, int h, int c, int full_w, int full_h, int x0,
                         int y0, int scale_num);

/* PIL's RGB -> L (ITU-R 601-2 luma, integer): (R*19595 + G*38470 + B*7471 + 0x8000) >> 16. */
static inline uint8_t mae_img_luma(unsigned r, unsigned g, unsigned b) {
    return (uint8_t)((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

/* Row conversions of n pixels (dst and src do not overlap). */
void mae_img_rgb_to_l(uint8_t *dst, const uint8_t *rgb, int n);
void mae_img_l_to_rgb(uint8_t *dst, const uint8_t *l, int n);
/* Adobe-style (inverted) CMYK as libjpeg returns it, to RGB (chans 3) or L (chans 1) exactly as
 * PIL: it reads JPEG CMYK as "CMYK;I" (each byte inverted), then cmyk2rgb:
 * X = clip(255 - K - (C * (255 - K) + 128) * 257 / 65536), X = R, G, B from C, M, Y. */
void mae_img_cmyk_inv_to(uint8_t *dst, int chans, const uint8_t *cmyk, int n);

/* Per-format entry points (called by image.c once the signature is known). The probe
 * functions fill only info->width/height. */
int mae_jpeg_probe(mae_image_info *info, const uint8_t *buf, size_t len, mae_error *err);
int mae_jpeg_decode(mae_image *out, const uint8_t *buf, size_t len, const mae_decode_req *req,
                    mae_error *err);
int mae_png_probe(mae_image_info *info, const uint8_t *buf, size_t len, mae_error *err);
int mae_png_decode(mae_image *out, const uint8_t *buf, size_t len, const mae_decode_req *req,
                   mae_error *err);
int mae_bmp_probe(mae_image_info *info, const uint8_t *buf, size_t len, mae_error *err);
int mae_bmp_decode(mae_image *out, const uint8_t *buf, size_t len, const mae_decode_req *req,
                   mae_error *err);
int mae_webp_probe(mae_image_info *info, const uint8_t *buf, size_t len, mae_error *err);
int mae_webp_decode(mae_image *out, const uint8_t *buf, size_t len, const mae_decode_req *req,
                    mae_error *err);

#endif
