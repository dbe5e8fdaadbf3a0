/* idx.c - MNIST / Fashion-MNIST IDX reader (gzip-compressed or raw) as a mae_dataset.
 *
 * IDX format: a big-endian magic 0x0000TTNN (TT data type, 0x08 = unsigned byte; NN number of
 * dimensions), NN big-endian uint32 sizes, then the data. Images: 2051 = 0x00000803 (count,
 * rows, cols); labels: 2049 = 0x00000801 (count).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "common.h"
#include "dataset.h"

#define IDX_MAX_SIDE 4096                      /* rows / cols above this are absurd */
#define IDX_MAX_BYTES ((uint64_t)1 << 32)      /* 4 GiB of pixels is absurd for IDX */
#define IDX_FIRST_CHUNK ((size_t)16 << 20)     /* buffer grows with the data actually read */

void mae_norm_constants(int chans, float *mean, float *std) {
    static const float im_mean[3] = {0.485f, 0.456f, 0.406f};
    static const float im_std[3] = {0.229f, 0.224f, 0.225f};
    for (int c = 0; c < chans; c++) {
        if (chans == 3) {
            mean[c] = im_mean[c];
            std[c] = im_std[c];
        } else { /* per-channel average of the ImageNet constants */
            mean[c] = 0.449f;
            std[c] = 0.226f;
        }
    }
}

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
static int idx_load(const char *path, const char *what, int ndims, uint32_t *dims,
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

/* ------------------------------------------------------------------ dataset */

typedef struct {
    uint8_t *pix;    /* (n, rows, cols) */
    uint8_t *labels; /* (n) or NULL */
    float lut[3][256];
} idx_impl;

static int idx_get(mae_dataset *ds, int64_t idx, int epoch, uint64_t seed, float *out,
                   int *label, mae_error *err) {
    (void)epoch;
    (void)seed;
    if (idx < 0 || idx >= ds->n)
        return mae_errf(err, "%s: sample index %lld out of range [0, %d)", ds->desc,
                        (long long)idx, ds->n);
    const idx_impl *s = (const idx_impl *)ds->impl;
    size_t hw = (size_t)ds->H * (size_t)ds->W;
    const uint8_t *src = s->pix + (size_t)idx * hw;
    for (int c = 0; c < ds->C; c++) {
        const float *lut = s->lut[c];
        float *dst = out + (size_t)c * hw;
        for (size_t k = 0; k < hw; k++) dst[k] = lut[src[k]];
    }
    if (label) *label = s->labels ? (int)s->labels[idx] : -1;
    return MAE_OK;
}

static void idx_destroy(mae_dataset *ds) {
    idx_impl *s = (idx_impl *)ds->impl;
    if (s) {
        free(s->pix);
        free(s->labels);
        free(s);
    }
    ds->impl = NULL;
}

mae_dataset *mae_dataset_idx(const char *images_path, const char *labels_path, int out_chans,
                             mae_error *err) {
    if (out_chans != 1 && out_chans != 3) {
        mae_errf(err, "IDX images file %s: output channels must be 1 or 3, got %d",
                 images_path ? images_path : "(null)", out_chans);
        return NULL;
    }
    uint32_t idims[3], ldims[1];
    uint8_t *pix = NULL, *labels = NULL;
    size_t nb = 0;
    if (idx_load(images_path, "images", 3, idims, &pix, &nb, err) != MAE_OK) return NULL;
    if (labels_path) {
        if (idx_load(labels_path, "labels", 1, ldims, &labels, &nb, err) != MAE_OK) {
            free(pix);
            return NULL;
        }
        if (ldims[0] != idims[0]) {
            mae_errf(err, "IDX labels file %s: %u labels but %s has %u images", labels_path,
                     (unsigned)ldims[0], images_path, (unsigned)idims[0]);
            free(pix);
            free(labels);
            return NULL;
        }
    }
    idx_impl *s = (idx_impl *)mae_xcalloc(1, sizeof *s);
    s->pix = pix;
    s->labels = labels;
    float mean[3], std[3];
    mae_norm_constants(out_chans, mean, std);
    for (int c = 0; c < out_chans; c++)
        for (int v = 0; v < 256; v++)
            s->lut[c][v] = (float)(((double)v / 255.0 - mean[c]) / std[c]);
    mae_dataset *ds = (mae_dataset *)mae_xcalloc(1, sizeof *ds);
    ds->n = (int)idims[0];
    ds->C = out_chans;
    ds->H = (int)idims[1];
    ds->W = (int)idims[2];
    ds->get = idx_get;
    ds->destroy = idx_destroy;
    ds->impl = s;
    snprintf(ds->desc, sizeof ds->desc, "IDX %s%s, %d images %dx%dx%d", images_path,
             labels ? " (with labels)" : "", ds->n, ds->C, ds->H, ds->W);
    return ds;
}

/* ------------------------------------------------------------------ directories */

static int file_readable(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}

/* First of the name patterns (printf with split prefix) that exists in dir, into out. */
static int find_in_dir(char *out, size_t cap, const char *dir, const char *split,
                       const char *const *patterns, int npat) {
    for (int i = 0; i < npat; i++) {
        char name[64];
        snprintf(name, sizeof name, patterns[i], split);
        int len = snprintf(out, cap, "%s/%s", dir, name);
        if (len > 0 && (size_t)len < cap && file_readable(out)) return 1;
    }
    return 0;
}

static int contains_nocase(const char *s, const char *word) {
    size_t n = strlen(word);
    for (; *s; s++) {
        size_t i = 0;
        while (i < n && s[i] && tolower((unsigned char)s[i]) == word[i]) i++;
        if (i == n) return 1;
    }
    return 0;
}

mae_dataset *mae_dataset_mnist_dir(const char *dir, int train, int out_chans, mae_error *err) {
    static const char *const img_pat[] = {"%s-images-idx3-ubyte.gz", "%s-images-idx3-ubyte",
                                          "%s-images.idx3-ubyte"};
    static const char *const lab_pat[] = {"%s-labels-idx1-ubyte.gz", "%s-labels-idx1-ubyte",
                                          "%s-labels.idx1-ubyte"};
    int default_dir = dir == NULL;
    if (default_dir) dir = MAE_FASHION_MNIST_DIR;
    const char *split = train ? "train" : "t10k";
    char ipath[4096], lpath[4096];
    if (!find_in_dir(ipath, sizeof ipath, dir, split, img_pat, 3)) {
        mae_errf(err, "MNIST directory %s: no readable %s-images-idx3-ubyte(.gz)%s", dir, split,
                 default_dir ? " (install Debian's dataset-fashion-mnist or give a directory)"
                     : "");
        return NULL;
    }
    int have_labels = find_in_dir(lpath, sizeof lpath, dir, split, lab_pat, 3);
    mae_dataset *ds = mae_dataset_idx(ipath, have_labels ? lpath : NULL, out_chans, err);
    if (!ds) return NULL;
    snprintf(ds->desc, sizeof ds->desc, "%s %s (%s), %d images %dx%dx%d%s",
             contains_nocase(dir, "fashion") ? "Fashion-MNIST" : "MNIST", split, dir, ds->n,
             ds->C, ds->H, ds->W, have_labels ? "" : ", no labels");
    return ds;
}
