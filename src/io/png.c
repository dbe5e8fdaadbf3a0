/* png.c - 8-bit PNG writer (temporary file + rename) and reader on top of libpng.
 *
 * libpng reports errors by longjmp to the setjmp point. The functions that call setjmp keep
 * every object that must survive the jump either unmodified after setjmp (png, info) or
 * outside their own frame (a context struct owned by the caller), so nothing is indeterminate
 * after the jump and the caller can free what was allocated.
 */
#define _POSIX_C_SOURCE 200809L

#include "png.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define PNG_MSG_CAP 256
#define PNG_MAX_BYTES ((size_t)1 << 30) /* refuse images above 1 GiB of pixels */

static void png_err_fn(png_structp png, png_const_charp msg) {
    char *buf = (char *)png_get_error_ptr(png);
    if (buf) snprintf(buf, PNG_MSG_CAP, "%s", msg ? msg : "libpng error");
    png_longjmp(png, 1);
}

static void png_warn_fn(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* warnings (e.g. about ancillary chunks) are not errors */
}

/* ------------------------------------------------------------------ writing */

static void write_rows(png_structp png, const uint8_t *pixels, int height, size_t stride) {
    for (int y = 0; y < height; y++) png_write_row(png, pixels + (size_t)y * stride);
}

/* Encodes the image into f. Returns 0, or -1 with msg filled. */
static int write_stream(FILE *f, const uint8_t *pixels, int width, int height, int channels,
                        char *msg) {
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, msg, png_err_fn, png_warn_fn);
    if (!png) {
        snprintf(msg, PNG_MSG_CAP, "cannot create the libpng writer");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(msg, PNG_MSG_CAP, "cannot create the libpng info struct");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
                 channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    write_rows(png, pixels, height, (size_t)width * (size_t)channels);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int mae_png_write(const char *path, const uint8_t *pixels, int width, int height, int channels,
                  mae_error *err) {
    if (!path) return mae_errf(err, "PNG write: no path given");
    size_t total;
    if (!pixels || width <= 0 || height <= 0 || (channels != 1 && channels != 3) ||
        !mae_size_mul(&total, (size_t)width * (size_t)channels, (size_t)height) ||
        total > PNG_MAX_BYTES || width > 1000000 || height > 1000000)
        return mae_errf(err, "PNG %s: invalid image (%dx%d, %d channels%s)", path, width, height,
                        channels, pixels ? "" : ", no pixels");
    size_t tlen = strlen(path) + 32;
    char *tmp = (char *)mae_xmalloc(tlen);
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        free(tmp);
        return mae_errf(err, "PNG %s: cannot create temporary file: %s", path, strerror(e));
    }
    char msg[PNG_MSG_CAP] = "";
    int rc = MAE_OK;
    if (write_stream(f, pixels, width, height, channels, msg) != 0)
        rc = mae_errf(err, "PNG %s: encoding failed: %s", path, msg);
    else if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0)
        rc = mae_errf(err, "PNG %s: write failed: %s", path, strerror(errno));
    if (fclose(f) != 0 && rc == MAE_OK)
        rc = mae_errf(err, "PNG %s: write failed on close: %s", path, strerror(errno));
    if (rc == MAE_OK && rename(tmp, path) != 0)
        rc = mae_errf(err, "PNG %s: cannot rename %s into place: %s", path, tmp,
                      strerror(errno));
    if (rc != MAE_OK) remove(tmp);
    free(tmp);
    return rc;
}

/* ------------------------------------------------------------------ reading */

typedef struct {
    uint8_t *pixels;
    png_bytep *rows;
} read_ctx;

/* Sets the transforms to 8-bit grey or RGB without alpha; returns the output channels. */
static int read_configure(png_structp png, png_infop info) {
    int bit_depth = png_get_bit_depth(png, info);
    int color_type = png_get_color_type(png, info);
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (bit_depth == 16) png_set_strip_16(png);
    if (color_type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    return png_get_channels(png, info);
}

/* Decodes f (whose 8 signature bytes were consumed) into ctx. Returns 0, or -1 with msg filled;
 * the caller frees ctx's buffers in both cases. */
static int read_stream(FILE *f, read_ctx *ctx, int *width, int *height, int *channels,
                       char *msg) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, msg, png_err_fn, png_warn_fn);
    if (!png) {
        snprintf(msg, PNG_MSG_CAP, "cannot create the libpng reader");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        snprintf(msg, PNG_MSG_CAP, "cannot create the libpng info struct");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    *channels = read_configure(png, info);
    *width = (int)png_get_image_width(png, info);
    *height = (int)png_get_image_height(png, info);
    size_t stride = (size_t)*width * (size_t)*channels, total;
    if (*channels != 1 && *channels != 3) png_error(png, "unexpected channel count");
    if (png_get_rowbytes(png, info) != stride) png_error(png, "unexpected row size");
    if (!mae_size_mul(&total, stride, (size_t)*height) || total > PNG_MAX_BYTES)
        png_error(png, "image too large");
    ctx->pixels = (uint8_t *)malloc(total);
    ctx->rows = (png_bytep *)malloc((size_t)*height * sizeof *ctx->rows);
    if (!ctx->pixels || !ctx->rows) png_error(png, "out of memory");
    for (size_t y = 0; y < (size_t)*height; y++) ctx->rows[y] = ctx->pixels + y * stride;
    png_read_image(png, ctx->rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

int mae_png_read(const char *path, uint8_t **pixels, int *width, int *height, int *channels,
                 mae_error *err) {
    if (pixels) *pixels = NULL;
    if (!path || !pixels || !width || !height || !channels)
        return mae_errf(err, "PNG read %s: invalid arguments", path ? path : "(null)");
    FILE *f = fopen(path, "rb");
    if (!f) return mae_errf(err, "PNG %s: cannot open: %s", path, strerror(errno));
    unsigned char sig[8];
    if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
        fclose(f);
        return mae_errf(err, "PNG %s: not a PNG file", path);
    }
    read_ctx ctx = {NULL, NULL};
    char msg[PNG_MSG_CAP] = "";
    int w = 0, h = 0, c = 0;
    int rc = read_stream(f, &ctx, &w, &h, &c, msg);
    fclose(f);
    free(ctx.rows);
    if (rc != 0) {
        free(ctx.pixels);
        return mae_errf(err, "PNG %s: %s", path, msg[0] ? msg : "decoding failed");
    }
    *pixels = ctx.pixels;
    *width = w;
    *height = h;
    *channels = c;
    return MAE_OK;
}
