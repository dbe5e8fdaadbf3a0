/* image.h - decoding of image files (JPEG, PNG, BMP, WebP) from memory into 8-bit pixels,
 * converted the way PIL's Image.convert("RGB") / convert("L") does.
 *
 * JPEG uses libjpeg-turbo and can decode straight at a reduced DCT scale (scale_num/8) and
 * only the rows/columns of a wanted region, so a big photo that is cropped and shrunk to
 * 224x224 is never decoded at full size. PNG uses libspng, WebP libwebp, BMP is parsed here.
 *
 * Errors: a file that is corrupt, truncated, empty, not an image or of an unsupported kind
 * gives MAE_ERR_DATA with err saying what is wrong (the caller prefixes the file name). Bad
 * input never crashes, never reads out of bounds, and never yields partially decoded pixels:
 * libjpeg's "premature end of data" warnings are errors here (as PIL refuses truncated files).
 */
#ifndef MAE_DATA_IMAGE_H
#define MAE_DATA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

enum { MAE_IMG_UNKNOWN = 0, MAE_IMG_JPEG, MAE_IMG_PNG, MAE_IMG_BMP, MAE_IMG_WEBP };

typedef struct mae_image_info {
    int format;        /* MAE_IMG_* */
    int width, height; /* full-resolution size */
} mae_image_info;

/* Reads only the header (cheap). Returns MAE_OK or MAE_ERR_DATA. */
int mae_image_probe(const uint8_t *buf, size_t len, mae_image_info *info, mae_error *err);

/* What to decode. */
typedef struct mae_decode_req {
    int chans;          /* 1 or 3: PIL convert("L") / convert("RGB") semantics */
    int scale_num;      /* JPEG only: decode at scale_num/8, 1..8 (0 or 8 = full size); other
                           formats always decode at full size (and report scale 8) */
    int x0, y0, x1, y1; /* wanted region [x0,x1) x [y0,y1) in full-resolution pixels; all 0 =
                           the whole image. The decoder may return more than this, never less. */
} mae_decode_req;

/* Decoded pixels: interleaved uint8, c channels, row stride w*c. Reused across calls: the
 * buffers grow on demand and are freed by mae_image_release (zero-initialise before use). */
typedef struct mae_image {
    uint8_t *px;        /* h rows of w*c bytes */
    int w, h, c;        /* size of what px holds */
    int full_w, full_h; /* size of the whole image at the decode scale, e.g. ceil(W*num/8) */
    int x0, y0;         /* where px's (0,0) lies inside that whole (scaled) image */
    int scale_num;      /* the scale used, of 8 */
    mae_buf pix, tmp;   /* owned storage */
} mae_image;

/* A region that is empty or not inside the image is a caller error: MAE_ERR with a message.
 * On any failure out->px is NULL and out->w = out->h = 0. JPEG returns the scaled pixels that
 * overlap the region, rows [floor(y0*s/8), ceil(y1*s/8)), and wider columns (whole iMCUs, at
 * least 2 more pixels each side where the image has them); other formats return the region. */
int mae_image_decode(const uint8_t *buf, size_t len, const mae_decode_req *req, mae_image *out,
                     mae_error *err);
void mae_image_release(mae_image *im);

#endif
