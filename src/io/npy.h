/* npy.h - NumPy .npy files (format versions 1.0, 2.0 and 3.0 read; 1.0 written). */
#ifndef MAE_IO_NPY_H
#define MAE_IO_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "mae.h"

#define NPY_MAX_DIMS 8

typedef struct npy_array {
    char descr[8]; /* "<f4", "<f8", "<i8", "<i4" or "|u1" */
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
    size_t numel;
    void *data; /* malloc'ed, numel elements in host byte order, C order */
} npy_array;

/* Accepts little-endian <f4 <f8 <i8 <i4 and |u1 in C order; fortran_order True, big-endian
 * and other dtypes are errors, as are a bad magic, a malformed header dict and a data size that
 * does not match the shape. Messages name the file. On error *a is zeroed. */
int npy_load(const char *path, npy_array *a, mae_error *err);
/* As npy_load, then converts the data to float32 in place (descr becomes "<f4"). */
int npy_load_f32(const char *path, npy_array *a, mae_error *err);
void npy_free(npy_array *a);
/* Atomic write of a v1.0 file; the header is padded with spaces so the data start at a multiple
 * of 64 bytes, and ends in '\n'. descr: "<f4" or "<i8" (also "<f8", "<i4", "|u1").
 * ndim 0..8 (0 = scalar). */
int npy_save(const char *path, const char *descr, int ndim, const int64_t *shape,
             const void *data, mae_error *err);

#endif
