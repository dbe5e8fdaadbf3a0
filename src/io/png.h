/* png.h - 8-bit PNG writing (atomic) and reading, via libpng. */
#ifndef MAE_IO_PNG_H
#define MAE_IO_PNG_H

#include <stdint.h>

#include "mae.h"

/* Writes an 8-bit RGB (channels == 3) or grey (channels == 1) PNG of height rows of
 * width * channels bytes (interleaved). Atomic: the data go to "<path>.tmp.<pid>", which is
 * flushed, fsync'ed and renamed over path; on any failure the temporary file is removed and
 * an existing file at path is left untouched. Returns MAE_OK or MAE_ERR (err names path). */
int mae_png_write(const char *path, const uint8_t *pixels, int width, int height, int channels,
                  mae_error *err);

/* Reads a PNG of any bit depth / colour type into 8-bit interleaved pixels: grey PNGs (with or
 * without alpha) give *channels = 1, all others (RGB, RGBA, palette) give *channels = 3; alpha
 * is dropped, 16-bit samples are reduced to 8 bits. *pixels is malloc'ed (caller frees); on
 * failure *pixels is NULL. Returns MAE_OK or MAE_ERR (err names path). */
int mae_png_read(const char *path, uint8_t **pixels, int *width, int *height, int *channels,
                 mae_error *err);

#endif
