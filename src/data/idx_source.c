/* idx_source.c - the MNIST / Fashion-MNIST IDX source (mae_source_idx, source.h) and the
 * normalised dataset over it (mae_dataset_idx, dataset.h): the uint8 pixels read by idx.c stay
 * in memory. Also MNIST directories (train / t10k splits) and the detection for mae_source_open.
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "common.h"
#include "dataset.h"
#include "idx.h"
#include "source.h"

/* ------------------------------------------------------------------ raw source */

typedef struct {
    uint8_t *pix;    /* (n, rows, cols) */
    uint8_t *labels; /* (n) or NULL */
    int rows, cols;
    char *what;      /* "IDX /path/file" or "Fashion-MNIST train (/dir)", for name() */
} idx_src;

/* read(): the pixels stay in memory; buf is not used. */
static int idx_src_read(mae_source *s, int64_t idx, mae_raw *raw, mae_buf *buf, mae_error *err) {
    (void)buf;
    (void)err;
    MAE_ASSERT(idx >= 0 && idx < s->n);
    const idx_src *d = (const idx_src *)s->impl;
    memset(raw, 0, sizeof *raw);
    raw->label = d->labels ? (int)d->labels[idx] : -1;
    raw->px = d->pix + (size_t)idx * (size_t)d->rows * (size_t)d->cols;
    raw->w = d->cols;
    raw->h = d->rows;
    raw->c = 1;
    return MAE_OK;
}

static void idx_src_name(const mae_source *s, int64_t idx, char *out, size_t cap) {
    snprintf(out, cap, "%s image %lld", ((const idx_src *)s->impl)->what, (long long)idx);
}

static void idx_src_destroy(mae_source *s) {
    idx_src *d = (idx_src *)s->impl;
    if (d) {
        free(d->pix);
        free(d->labels);
        free(d->what);
        free(d);
    }
    s->impl = NULL;
}

static char *xstrdup(const char *str) {
    size_t n = strlen(str) + 1;
    return (char *)memcpy(mae_xmalloc(n), str, n);
}

/* Sets the name prefix and desc of an IDX source (what: e.g. "MNIST train (/dir)"). */
static void idx_src_describe(mae_source *s, const char *what) {
    idx_src *d = (idx_src *)s->impl;
    free(d->what);
    d->what = xstrdup(what);
    snprintf(s->desc, sizeof s->desc, "%s: %lld images %dx%d, %s", what, (long long)s->n,
             d->rows, d->cols, d->labels ? "labels" : "no labels");
}

mae_source *mae_source_idx(const char *images_path, const char *labels_path, mae_error *err) {
    uint32_t idims[3], ldims[1];
    uint8_t *pix = NULL, *labels = NULL;
    size_t nb = 0;
    if (mae_idx_load(images_path, "images", 3, idims, &pix, &nb, err) != MAE_OK) return NULL;
    if (labels_path) {
        if (mae_idx_load(labels_path, "labels", 1, ldims, &labels, &nb, err) != MAE_OK) {
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
    idx_src *d = (idx_src *)mae_xcalloc(1, sizeof *d);
    d->pix = pix;
    d->labels = labels;
    d->rows = (int)idims[1];
    d->cols = (int)idims[2];
    mae_source *s = (mae_source *)mae_xcalloc(1, sizeof *s);
    s->n = (int64_t)idims[0];
    for (int64_t i = 0; labels && i < s->n; i++)
        if (labels[i] >= s->num_classes) s->num_classes = labels[i] + 1;
    s->read = idx_src_read;
    s->name = idx_src_name;
    s->destroy = idx_src_destroy;
    s->impl = d;
    char what[300];
    snprintf(what, sizeof what, "IDX %s", images_path);
    idx_src_describe(s, what);
    return s;
}

/* ------------------------------------------------------------------ dataset */

typedef struct {
    mae_source *src; /* an IDX source: pixels and labels */
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
    const idx_src *d = (const idx_src *)s->src->impl;
    size_t hw = (size_t)ds->H * (size_t)ds->W;
    const uint8_t *src = d->pix + (size_t)idx * hw;
    for (int c = 0; c < ds->C; c++) {
        const float *lut = s->lut[c];
        float *dst = out + (size_t)c * hw;
        for (size_t k = 0; k < hw; k++) dst[k] = lut[src[k]];
    }
    if (label) *label = d->labels ? (int)d->labels[idx] : -1;
    return MAE_OK;
}

static void idx_destroy(mae_dataset *ds) {
    idx_impl *s = (idx_impl *)ds->impl;
    if (s) {
        mae_source_free(s->src);
        free(s);
    }
    ds->impl = NULL;
}

/* Wraps an IDX source (taking ownership) as a normalised dataset of out_chans channels. */
static mae_dataset *idx_dataset(mae_source *src, int out_chans) {
    idx_impl *s = (idx_impl *)mae_xcalloc(1, sizeof *s);
    s->src = src;
    float mean[3], std[3];
    mae_norm_constants(out_chans, mean, std);
    for (int c = 0; c < out_chans; c++)
        for (int v = 0; v < 256; v++)
            s->lut[c][v] = (float)(((double)v / 255.0 - mean[c]) / std[c]);
    const idx_src *d = (const idx_src *)src->impl;
    mae_dataset *ds = (mae_dataset *)mae_xcalloc(1, sizeof *ds);
    ds->n = (int)src->n;
    ds->C = out_chans;
    ds->H = d->rows;
    ds->W = d->cols;
    ds->get = idx_get;
    ds->destroy = idx_destroy;
    ds->impl = s;
    return ds;
}

static int check_chans(const char *path, int out_chans, mae_error *err) {
    if (out_chans == 1 || out_chans == 3) return MAE_OK;
    return mae_errf(err, "IDX images file %s: output channels must be 1 or 3, got %d",
                    path ? path : "(null)", out_chans);
}

mae_dataset *mae_dataset_idx(const char *images_path, const char *labels_path, int out_chans,
                             mae_error *err) {
    if (check_chans(images_path, out_chans, err) != MAE_OK) return NULL;
    mae_source *src = mae_source_idx(images_path, labels_path, err);
    if (!src) return NULL;
    mae_dataset *ds = idx_dataset(src, out_chans);
    snprintf(ds->desc, sizeof ds->desc, "IDX %s%s, %d images %dx%dx%d", images_path,
             labels_path ? " (with labels)" : "", ds->n, ds->C, ds->H, ds->W);
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

/* Finds the images file of split ("train" / "t10k") in dir into ipath (returns 0 if none) and
 * the labels file into lpath (*have_labels 0 if none). Paths have 4096 bytes. */
static int find_split(const char *dir, const char *split, char *ipath, char *lpath,
                      int *have_labels) {
    static const char *const img_pat[] = {"%s-images-idx3-ubyte.gz", "%s-images-idx3-ubyte",
                                          "%s-images.idx3-ubyte"};
    static const char *const lab_pat[] = {"%s-labels-idx1-ubyte.gz", "%s-labels-idx1-ubyte",
                                          "%s-labels.idx1-ubyte"};
    *have_labels = find_in_dir(lpath, 4096, dir, split, lab_pat, 3);
    return find_in_dir(ipath, 4096, dir, split, img_pat, 3);
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

static const char *mnist_kind(const char *dir) {
    return contains_nocase(dir, "fashion") ? "Fashion-MNIST" : "MNIST";
}

/* Opens the split of an MNIST directory; default_dir adds an install hint to the error. */
static mae_source *idx_open_dir(const char *dir, int train, int default_dir, mae_error *err) {
    const char *split = train ? "train" : "t10k";
    char ipath[4096], lpath[4096], what[4200];
    int have_labels;
    if (!find_split(dir, split, ipath, lpath, &have_labels)) {
        mae_errf(err, "MNIST directory %s: no readable %s-images-idx3-ubyte(.gz)%s", dir, split,
                 default_dir ? " (install Debian's dataset-fashion-mnist or give a directory)"
                     : "");
        return NULL;
    }
    mae_source *s = mae_source_idx(ipath, have_labels ? lpath : NULL, err);
    snprintf(what, sizeof what, "%s %s (%s)", mnist_kind(dir), split, dir);
    if (s) idx_src_describe(s, what);
    return s;
}

mae_dataset *mae_dataset_mnist_dir(const char *dir, int train, int out_chans, mae_error *err) {
    int default_dir = dir == NULL;
    if (default_dir) dir = MAE_FASHION_MNIST_DIR;
    if (check_chans(dir, out_chans, err) != MAE_OK) return NULL;
    mae_source *src = idx_open_dir(dir, train, default_dir, err);
    if (!src) return NULL;
    const idx_src *d = (const idx_src *)src->impl;
    mae_dataset *ds = idx_dataset(src, out_chans);
    snprintf(ds->desc, sizeof ds->desc, "%s, %d images %dx%dx%d%s", d->what, ds->n, ds->C,
             ds->H, ds->W, d->labels ? "" : ", no labels");
    return ds;
}

/* ------------------------------------------------------------------ detection (source.h) */

int mae_source_idx_probe(const char *path) {
    struct stat st;
    char a[4096], b[4096];
    int hl;
    if (stat(path, &st) != 0) return 0;
    if (S_ISDIR(st.st_mode))
        return find_split(path, "train", a, b, &hl) || find_split(path, "t10k", a, b, &hl);
    if (!S_ISREG(st.st_mode)) return 0;
    gzFile g = gzopen(path, "rb");
    if (!g) return 0;
    uint8_t h[4];
    int got = gzread(g, h, 4);
    gzclose(g);
    return got == 4 && h[0] == 0 && h[1] == 0 && h[2] == 8 && h[3] == 3;
}

/* The labels file beside an images file: its name with "images" -> "labels", "idx3" ->
 * "idx1". Returns 1 if that file is readable. */
static int guess_labels(const char *ipath, char *out, size_t cap) {
    if ((size_t)snprintf(out, cap, "%s", ipath) >= cap) return 0;
    char *base = strrchr(out, '/');
    base = base ? base + 1 : out;
    char *p = strstr(base, "images");
    if (!p) return 0;
    memcpy(p, "labels", 6);
    if ((p = strstr(base, "idx3")) != NULL) p[3] = '1';
    return file_readable(out);
}

mae_source *mae_source_idx_path(const char *path, int train, mae_error *err) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return idx_open_dir(path, train, 0, err);
    char lpath[4096];
    return mae_source_idx(path, guess_labels(path, lpath, sizeof lpath) ? lpath : NULL, err);
}
