/* cifar.c - CIFAR-10 / CIFAR-100 binary batches as an in-memory source (source.h).
 *
 * CIFAR-10 (cifar-10-batches-bin): data_batch_1..5.bin (train), test_batch.bin (test); records
 * of 1 label byte + 3072 pixel bytes. CIFAR-100 (cifar-100-binary): train.bin, test.bin;
 * records of 2 label bytes (coarse, fine) + 3072; the label is the fine one. Pixels are planar
 * (1024 R, 1024 G, 1024 B, each 32x32 row-major) and are converted to interleaved HWC at load.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "source.h"

#define CIFAR_PX 3072       /* 32 * 32 * 3 */
#define CIFAR_CHUNK 1024    /* records read at a time */

typedef struct {
    int classes;           /* 10 or 100 */
    int label_bytes;       /* 1 or 2 */
    const char *name;      /* "CIFAR-10" */
    const char *subdir;    /* the folder of the official archive */
    const char *names_file;
} cifar_kind;

static const cifar_kind C10 = {10, 1, "CIFAR-10", "cifar-10-batches-bin", "batches.meta.txt"};
static const cifar_kind C100 = {100, 2, "CIFAR-100", "cifar-100-binary", "fine_label_names.txt"};

typedef struct {
    uint8_t *pix;    /* (n, 32, 32, 3) */
    uint8_t *labels; /* (n) */
    char what[32];   /* "CIFAR-10 train", for name() */
} cifar_src;

static int cifar_read(mae_source *s, int64_t idx, mae_raw *raw, mae_buf *buf, mae_error *err) {
    (void)buf;
    (void)err;
    MAE_ASSERT(idx >= 0 && idx < s->n);
    const cifar_src *d = (const cifar_src *)s->impl;
    memset(raw, 0, sizeof *raw);
    raw->label = d->labels[idx];
    raw->px = d->pix + (size_t)idx * CIFAR_PX;
    raw->w = raw->h = 32;
    raw->c = 3;
    return MAE_OK;
}

static void cifar_name(const mae_source *s, int64_t idx, char *out, size_t cap) {
    snprintf(out, cap, "%s image %lld", ((const cifar_src *)s->impl)->what, (long long)idx);
}

static void cifar_destroy(mae_source *s) {
    cifar_src *d = (cifar_src *)s->impl;
    if (d) {
        free(d->pix);
        free(d->labels);
        free(d);
    }
    for (int i = 0; s->class_names && i < s->num_classes; i++) free(s->class_names[i]);
    free(s->class_names);
    s->impl = NULL;
    s->class_names = NULL;
}

static int file_exists(const char *dir, const char *name) {
    char p[4096];
    struct stat st;
    return (size_t)snprintf(p, sizeof p, "%s/%s", dir, name) < sizeof p && stat(p, &st) == 0 &&
           S_ISREG(st.st_mode);
}

/* The kind of batch files in dir (NULL if none): data_batch_1.bin / test_batch.bin, or
 * train.bin / test.bin. */
static const cifar_kind *dir_kind(const char *dir) {
    if (file_exists(dir, "data_batch_1.bin") || file_exists(dir, "test_batch.bin")) return &C10;
    if (file_exists(dir, "train.bin") || file_exists(dir, "test.bin")) return &C100;
    return NULL;
}

/* The kind of a batch file from its name (NULL if not a CIFAR batch name). */
static const cifar_kind *file_kind(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (strcmp(b, "test_batch.bin") == 0 ||
        (strncmp(b, "data_batch_", 11) == 0 && n > 15 && strcmp(b + n - 4, ".bin") == 0))
        return &C10;
    if (strcmp(b, "train.bin") == 0 || strcmp(b, "test.bin") == 0) return &C100;
    return NULL;
}

/* Finds the folder with the batches: dir itself, or its archive sub-folder (into out). */
static const cifar_kind *find_dir(const char *dir, char *out, size_t cap) {
    const cifar_kind *kinds[2] = {&C10, &C100};
    snprintf(out, cap, "%s", dir);
    const cifar_kind *k = dir_kind(dir);
    for (int i = 0; i < 2 && !k; i++) {
        snprintf(out, cap, "%s/%s", dir, kinds[i]->subdir);
        k = dir_kind(out);
    }
    return k;
}

int mae_source_cifar_probe(const char *path) {
    struct stat st;
    char dir[4096];
    if (stat(path, &st) != 0) return 0;
    if (S_ISDIR(st.st_mode)) return find_dir(path, dir, sizeof dir) != NULL;
    return S_ISREG(st.st_mode) && file_kind(path) != NULL;
}

/* Converts m records of rec bytes (label bytes, then planar RGB) into HWC pixels and labels,
 * checking the label bytes. first: index of the first record in the file, for messages. */
static int convert(const cifar_kind *k, const uint8_t *rec, size_t m, uint8_t *pix,
                   uint8_t *labels, const char *path, size_t first, mae_error *err) {
    size_t rs = (size_t)k->label_bytes + CIFAR_PX;
    for (size_t r = 0; r < m; r++, rec += rs) {
        int coarse = k->label_bytes == 2 ? rec[0] : -1, label = rec[k->label_bytes - 1];
        if (coarse >= 20)
            return mae_errf(err, "%s file %s: record %zu: coarse label %d out of range 0..19",
                            k->name, path, first + r, coarse);
        if (label >= k->classes)
            return mae_errf(err, "%s file %s: record %zu: label %d out of range 0..%d", k->name,
                            path, first + r, label, k->classes - 1);
        labels[r] = (uint8_t)label;
        const uint8_t *src = rec + k->label_bytes;
        uint8_t *dst = pix + r * CIFAR_PX;
        for (int p = 0; p < 1024; p++)
            for (int c = 0; c < 3; c++) dst[p * 3 + c] = src[c * 1024 + p];
    }
    return MAE_OK;
}

/* Appends the records of batch file path to d (*n records so far; *cap records allocated). */
static int load_batch(const cifar_kind *k, const char *path, cifar_src *d, size_t *n,
                      size_t *cap, mae_buf *chunk, mae_error *err) {
    size_t rs = (size_t)k->label_bytes + CIFAR_PX;
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        int e = errno;
        if (f) fclose(f);
        return mae_errf(err, "%s file %s: cannot open: %s", k->name, path, strerror(e));
    }
    size_t size = (size_t)st.st_size, m = size / rs;
    if (size == 0 || size % rs) {
        fclose(f);
        if (!size) return mae_errf(err, "%s file %s: empty file (0 bytes)", k->name, path);
        return mae_errf(err, "%s file %s: %zu bytes is not a whole number of %zu-byte records "
                        "(truncated?)", k->name, path, size, rs);
    }
    if (*n + m > *cap) {
        *cap = *n + m;
        d->pix = (uint8_t *)realloc(d->pix, *cap * CIFAR_PX);
        d->labels = (uint8_t *)realloc(d->labels, *cap);
        MAE_ASSERT(d->pix && d->labels);
    }
    uint8_t *buf = (uint8_t *)mae_buf_reserve(chunk, CIFAR_CHUNK * rs);
    int rc = MAE_OK;
    for (size_t done = 0; done < m && rc == MAE_OK;) {
        size_t want = m - done < CIFAR_CHUNK ? m - done : CIFAR_CHUNK;
        if (fread(buf, rs, want, f) != want) {
            rc = mae_errf(err, "%s file %s: read error at record %zu", k->name, path, done);
            break;
        }
        rc = convert(k, buf, want, d->pix + (*n + done) * CIFAR_PX, d->labels + *n + done, path,
                     done, err);
        done += want;
    }
    fclose(f);
    if (rc == MAE_OK) *n += m;
    return rc;
}

/* Class names: the non-blank lines of the names file in dir, if there are exactly as many
 * as classes (else a warning and NULL). */
static char **load_names(const cifar_kind *k, const char *dir) {
    char path[4200], line[256];
    snprintf(path, sizeof path, "%s/%s", dir, k->names_file);
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char **names = (char **)mae_xcalloc((size_t)k->classes, sizeof *names);
    int n = 0, extra = 0;
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
            line[--len] = '\0';
        if (!len) continue;
        if (n == k->classes) { extra++; continue; }
        names[n] = strcpy((char *)mae_xmalloc(len + 1), line);
        n++;
    }
    fclose(f);
    if (n == k->classes && !extra) return names;
    fprintf(stderr, "mae: warning: %s: %d names for %d classes; class names not used\n", path,
            n + extra, k->classes);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return NULL;
}

/* The batch files of the split (paths into files[], count into *nf); error names the missing. */
static int split_files(const cifar_kind *k, const char *dir, int train, char files[][4200],
                       int *nf, mae_error *err) {
    static const char *const c10[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                      "data_batch_4.bin", "data_batch_5.bin"};
    const char *one = k == &C10 ? "test_batch.bin" : train ? "train.bin" : "test.bin";
    const char *const *names = k == &C10 && train ? c10 : &one;
    int n = k == &C10 && train ? 5 : 1;
    char missing[200] = "";
    for (int i = 0; i < n; i++) {
        snprintf(files[i], 4200, "%s/%s", dir, names[i]);
        if (!file_exists(dir, names[i]))
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                     *missing ? ", " : "", names[i]);
    }
    *nf = n;
    if (*missing)
        return mae_errf(err, "%s folder %s: missing %s", k->name, dir, missing);
    return MAE_OK;
}

mae_source *mae_source_cifar(const char *path, int train, mae_error *err) {
    struct stat st;
    char dir[4096], files[5][4200];
    int nf = 1;
    const cifar_kind *k;
    if (stat(path, &st) != 0) {
        mae_errf(err, "CIFAR path %s: %s", path, strerror(errno));
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        if (!(k = find_dir(path, dir, sizeof dir))) {
            mae_errf(err, "CIFAR folder %s: no data_batch_1.bin, test_batch.bin, train.bin or "
                     "test.bin (here or in cifar-10-batches-bin/ or cifar-100-binary/)", path);
            return NULL;
        }
        if (split_files(k, dir, train, files, &nf, err) != MAE_OK) return NULL;
    } else {
        size_t size = (size_t)st.st_size;
        int fits10 = size % (CIFAR_PX + 1) == 0, fits100 = size % (CIFAR_PX + 2) == 0;
        k = file_kind(path);
        if (!k && fits10 != fits100) k = fits10 ? &C10 : &C100; /* other names: by size */
        if (!k) {
            mae_errf(err, "CIFAR file %s: cannot tell CIFAR-10 from CIFAR-100 by its name or "
                     "size (name it like data_batch_1.bin or train.bin)", path);
            return NULL;
        }
        snprintf(files[0], sizeof files[0], "%s", path);
        const char *slash = strrchr(path, '/');
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    }
    cifar_src *d = (cifar_src *)mae_xcalloc(1, sizeof *d);
    size_t n = 0, cap = 0;
    mae_buf chunk = {0};
    int rc = MAE_OK;
    for (int i = 0; i < nf && rc == MAE_OK; i++)
        rc = load_batch(k, files[i], d, &n, &cap, &chunk, err);
    mae_buf_free(&chunk);
    mae_source *s = (mae_source *)mae_xcalloc(1, sizeof *s);
    s->impl = d;
    s->destroy = cifar_destroy;
    if (rc != MAE_OK) {
        mae_source_free(s);
        return NULL;
    }
    snprintf(d->what, sizeof d->what, "%s %s", k->name,
             S_ISDIR(st.st_mode) ? (train ? "train" : "test") : "batch");
    s->n = (int64_t)n;
    s->num_classes = k->classes;
    s->class_names = load_names(k, dir);
    s->read = cifar_read;
    s->name = cifar_name;
    snprintf(s->desc, sizeof s->desc, "%s (%.180s): %lld images 32x32x3, %d classes", d->what,
             S_ISDIR(st.st_mode) ? dir : path, (long long)s->n, k->classes);
    return s;
}
