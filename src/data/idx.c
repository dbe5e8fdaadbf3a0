/* idx.c - MNIST / Fashion-MNIST IDX file reading (gzip-compressed or raw), for the IDX source
 * and dataset (idx_source.c).
 *
 * IDX format: a big-endian magic 0x0000TTNN (TT data type, 0x08 = unsigned byte; NN number of
 * dimensions), NN big-endian uint32 sizes, then the data. Images: 2051 = 0x00000803 (count,
 * rows, cols); labels: 2049 = 0x00000801 (count).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common.h"
#include "idx.h"

#define IDX_MAX_SIDE 4096                      /* rows / cols above this are absurd */
#define IDX_MAX_BYTES ((uint64_t)1 << 32)      /* 4 GiB of pixels is absurd for IDX */
#define IDX_FIRST_CHUNK ((size_t)16 << 20)     /* buffer grows with the data actually read */

/* ------------------------------------------------------------------ file reading */

typedef struct {
    gzFile f;
    const char *path;
    const char *what; /* "images" or "labels" */
} idx_file;

/* zlib's description of the stream's error state, without the "path: " prefix it adds.
 * Returns NULL when there is no error (or only the end of the stream). */
static const char *gz_error_msg(const idx_file *fl, int *zerr) {
    const char *msg = gzerror(fl->f, zerr);
    if (*zerr == Z_OK || *zerr == Z_STREAM_END) return NULL;
    if (*zerr == Z_ERRNO) return strerror(errno);
    size_t plen = strlen(fl->path);
    if (msg && strncmp(msg, fl->path, plen) == 0 && msg[plen] == ':' && msg[plen + 1] == ' ')
        msg += plen + 2;
    return msg && *msg ? msg : "unknown error";
}

/* Reads up to n bytes; returns the count read (< n only at end of data) or -1 on a read or
 * gzip error (err filled). */
static int64_t idx_read(idx_file *fl, void *buf, size_t n, mae_error *err) {
    size_t have = 0;
    int zerr = Z_OK;
    const char *msg = NULL;
    while (have < n) {
        size_t want = n - have;
        if (want > ((size_t)1 << 30)) want = (size_t)1 << 30;
        int r = gzread(fl->f, (char *)buf + have, (unsigned)want);
        if (r <= 0) {
            msg = gz_error_msg(fl, &zerr);
            if (r < 0 && !msg) msg = "unknown error";
            break;
        }
        have += (size_t)r;
    }
    /* A gzip stream that ends early is reported by zlib as Z_BUF_ERROR after a short read. */
    if (!msg) msg = gz_error_msg(fl, &zerr);
    if (msg) {
        mae_errf(err, "IDX %s file %s: %s: %s", fl->what, fl->path,
                 zerr == Z_ERRNO ? "read error"
                 : zerr == Z_BUF_ERROR ? "truncated gzip data"
                                       : "corrupt gzip data",
                 msg);
        return -1;
    }
    return (int64_t)have;
}

static uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Opens path, checks the magic (ubyte, ndims dimensions), reads the dimensions into dims and
 * all dims-product bytes of data into *data (malloc'ed), and checks that nothing follows. */
int mae_idx_load(const char *path, const char *what, int ndims, uint32_t *dims,
                 uint8_t **data, size_t *nbytes, mae_error *err) {
    *data = NULL;
    if (!path) return mae_errf(err, "IDX %s file: no path given", what);
    idx_file fl = {NULL, path, what};
    errno = 0;
    fl.f = gzopen(path, "rb");
    if (!fl.f)
        return mae_errf(err, "IDX %s file %s: cannot open: %s", what, path,
                        errno ? strerror(errno) : "out of memory");
    gzbuffer(fl.f, 1u << 17);
    int rc = MAE_ERR;
    uint8_t *buf = NULL;
    uint8_t hdr[16];
    const unsigned magic_want = 0x0800u | (unsigned)ndims;
    int64_t got = idx_read(&fl, hdr, 4, err);
    if (got < 0) goto done;
    if (got == 0) {
        mae_errf(err, "IDX %s file %s: empty file", what, path);
        goto done;
    }
    if (got < 4) {
        mae_errf(err, "IDX %s file %s: truncated header (%lld bytes)", what, path,
                 (long long)got);
        goto done;
    }
    uint32_t magic = be32(hdr);
    if (hdr[0] != 0 || hdr[1] != 0) {
        mae_errf(err, "IDX %s file %s: neither a gzip nor an IDX file (first bytes %02x %02x %02x %02x)",
                 what, path, hdr[0], hdr[1], hdr[2], hdr[3]);
        goto done;
    }
    if (magic != magic_want) {
        mae_errf(err, "IDX %s file %s: wrong magic %u (0x%08x), expected %u (unsigned byte, %d "
                 "dimension%s)%s", what, path, (unsigned)magic, (unsigned)magic, magic_want,
                 ndims, ndims == 1 ? "" : "s",
                 magic == 0x0801u ? ": this is a labels file"
                 : magic == 0x0803u ? ": this is an images file" : "");
        goto done;
    }
    got = idx_read(&fl, hdr, (size_t)ndims * 4, err);
    if (got < 0) goto done;
    if (got < ndims * 4) {
        mae_errf(err, "IDX %s file %s: truncated header (%lld of %d dimension bytes)", what,
                 path, (long long)got, ndims * 4);
        goto done;
    }
    uint64_t total = 1;
    for (int d = 0; d < ndims; d++) {
        dims[d] = be32(hdr + 4 * d);
        if (dims[d] == 0) {
            mae_errf(err, "IDX %s file %s: dimension %d is 0%s", what, path, d,
                     d == 0 ? " (no samples)" : "");
            goto done;
        }
        if ((d == 0 && dims[d] > (uint32_t)INT_MAX) || (d > 0 && dims[d] > IDX_MAX_SIDE)) {
            mae_errf(err, "IDX %s file %s: absurd dimension %d = %u", what, path, d,
                     (unsigned)dims[d]);
            goto done;
        }
        total *= dims[d]; /* cannot overflow: < 2^31 * 2^12 * 2^12 */
    }
    if (total > IDX_MAX_BYTES || total > (uint64_t)SIZE_MAX) {
        mae_errf(err, "IDX %s file %s: absurd size %llu bytes", what, path,
                 (unsigned long long)total);
        goto done;
    }
    /* Grow the buffer with the data actually present, so that a small file claiming a huge
     * size fails on truncation rather than on a giant allocation. */
    size_t cap = (size_t)total < IDX_FIRST_CHUNK ? (size_t)total : IDX_FIRST_CHUNK, have = 0;
    buf = (uint8_t *)malloc(cap);
    if (!buf) {
        mae_errf(err, "IDX %s file %s: out of memory", what, path);
        goto done;
    }
    while (have < (size_t)total) {
        if (have == cap) {
            size_t ncap = cap * 2 < (size_t)total ? cap * 2 : (size_t)total;
            uint8_t *nb = (uint8_t *)realloc(buf, ncap);
            if (!nb) {
                mae_errf(err, "IDX %s file %s: out of memory (%zu bytes)", what, path, ncap);
                goto done;
            }
            buf = nb;
            cap = ncap;
        }
        got = idx_read(&fl, buf + have, cap - have, err);
        if (got < 0) goto done;
        have += (size_t)got;
        if (have < cap) break; /* end of data */
    }
    if (have < (size_t)total) {
        mae_errf(err, "IDX %s file %s: truncated: %zu of %llu data bytes", what, path, have,
                 (unsigned long long)total);
        goto done;
    }
    uint8_t extra;
    got = idx_read(&fl, &extra, 1, err); /* also makes zlib verify the gzip trailer */
    if (got < 0) goto done;
    if (got > 0) {
        mae_errf(err, "IDX %s file %s: unexpected data after the %llu bytes its header "
                 "announces", what, path, (unsigned long long)total);
        goto done;
    }
    *data = buf;
    *nbytes = (size_t)total;
    buf = NULL;
    rc = MAE_OK;
done:
    free(buf);
    if (gzclose(fl.f) != Z_OK && rc == MAE_OK) {
        free(*data);
        *data = NULL;
        rc = mae_errf(err, "IDX %s file %s: error closing (corrupt gzip data?)", what, path);
    }
    return rc;
}
