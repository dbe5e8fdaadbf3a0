/* safetensors.h - reader and writer for the safetensors format.
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON header
 *   {"name":{"dtype":"F32","shape":[..],"data_offsets":[begin,end]}, ..., "__metadata__":{"k":"v"}}
 * then the tensor data; offsets are relative to the start of the data section.
 */
#ifndef MAE_IO_SAFETENSORS_H
#define MAE_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "mae.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER (100u * 1024u * 1024u) /* larger headers are rejected as corrupt */

typedef struct st_tensor {
    char name[MAE_MAX_NAME];
    char dtype[8]; /* "F32", "F16", "BF16", "F64", "I64", "I32", "U8", ... */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    uint64_t begin, end; /* byte range inside the data section */
} st_tensor;

typedef struct st_file {
    char path[1024];
    uint8_t *buf; /* the whole file */
    size_t size;
    const uint8_t *data; /* start of the data section inside buf */
    size_t data_size;
    int n;          /* tensors, in header order */
    st_tensor *t;
    int nmeta;      /* "__metadata__" string pairs */
    char **meta_keys;
    char **meta_vals;
} st_file;

/* Reads the whole file and validates the header fully (dtypes, shapes, offsets in range and
 * consistent with the shapes, no overlaps). On error *f is left closed (st_close is harmless). */
int st_open(st_file *f, const char *path, mae_error *err);
void st_close(st_file *f);
int st_find(const st_file *f, const char *name);       /* index or -1 */
const char *st_meta(const st_file *f, const char *key); /* NULL if absent */
/* Bytes per element of a dtype name, 0 if unknown. */
size_t st_dtype_size(const char *dtype);

/* Copy tensor idx into dst as float32, converting from F32, F16, BF16 or F64. Error if its
 * numel != expected_numel (the message names the file, the tensor and both sizes/shapes). */
int st_read_f32(const st_file *f, int idx, float *dst, size_t expected_numel, mae_error *err);
/* Copy tensor idx into dst as int64 from I64 or I32. */
int st_read_i64(const st_file *f, int idx, int64_t *dst, size_t expected_numel, mae_error *err);

/* Writer. Tensors are referenced, not copied: data must stay alive until st_writer_save.
 * Argument errors (bad dtype, too many dims, long or duplicate names) are reported by save. */
typedef struct st_writer st_writer;
st_writer *st_writer_new(void);
/* dtype: "F32" or "I64". ndim 0..8 (0 = scalar). data may be NULL only if numel == 0. */
void st_writer_add(st_writer *w, const char *name, const char *dtype, int ndim,
                   const int64_t *shape, const void *data);
/* Adds a "__metadata__" string pair; a repeated key replaces the earlier value. */
void st_writer_meta(st_writer *w, const char *key, const char *value);
/* Atomic write. Header padded with spaces to a multiple of 8 bytes; tensors ordered like
 * Python's safetensors (by dtype, 8-byte types first, then by name), so data stay aligned. */
int st_writer_save(st_writer *w, const char *path, mae_error *err);
void st_writer_free(st_writer *w);

#endif
