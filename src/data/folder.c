/* folder.c - file-backed sources (source.h): an ImageFolder tree ordered exactly as
 * torchvision's datasets.ImageFolder, a flat folder of images, a list file; plus the
 * auto-detecting mae_source_open.
 *
 * Paths live in one growable string arena (relative to the root) with an offset array, so
 * ImageNet's 1.28M files cost about 50 bytes each. The scan only reads directories (d_type,
 * with stat() for links and unknown types); files are opened by read(), which keeps no shared
 * mutable state and may run concurrently.
 */
#define _DEFAULT_SOURCE /* d_type, DT_* */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "source.h"

#define IMG_EXTS ".jpg .jpeg .png .bmp .webp"
#define MAX_WARN 10 /* per-kind warning lines before a summary */

/* ------------------------------------------------------------------ string arena, file list */

typedef struct {
    char *p;
    size_t len, cap;
} arena;

static char *xstrdup(const char *str) {
    size_t n = strlen(str) + 1;
    return (char *)memcpy(mae_xmalloc(n), str, n);
}

/* Grows *p (n elements of elem bytes, capacity *cap) to hold need elements. */
static void grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return;
    size_t nc = *cap ? *cap : 256, bytes;
    while (nc < need) nc *= 2;
    MAE_ASSERT(mae_size_mul(&bytes, nc, elem));
    void *q = realloc(*p, bytes);
    MAE_ASSERT(q != NULL);
    *p = q;
    *cap = nc;
}

/* 1 if a path b joined to a needs a '/' between them (as os.path.join). */
static int need_slash(const char *a, const char *b) {
    size_t n = strlen(a);
    return n && a[n - 1] != '/' && *b;
}

/* a joined to b into out (cap bytes); returns 0 if it does not fit. */
static int join(char *out, size_t cap, const char *a, const char *b) {
    return (size_t)snprintf(out, cap, "%s%s%s", a, need_slash(a, b) ? "/" : "", b) < cap;
}

/* Appends prefix joined to name and returns its offset. */
static size_t arena_add(arena *a, const char *prefix, const char *name) {
    size_t lp = strlen(prefix), ln = strlen(name), off = a->len;
    grow((void **)&a->p, &a->cap, a->len + lp + ln + 2, 1);
    memcpy(a->p + off, prefix, lp);
    if (need_slash(prefix, name)) a->p[off + lp++] = '/';
    memcpy(a->p + off + lp, name, ln + 1);
    a->len += lp + ln + 1;
    return off;
}

typedef struct {
    char *root;     /* joined with "/" before every path; NULL: paths are complete */
    arena names;
    size_t *off;    /* path of file i: names.p + off[i] */
    int32_t *label; /* -1 when unlabelled */
    size_t n, cap, lcap;
} file_list;

static void fl_push(file_list *fl, const char *prefix, const char *name, int label) {
    grow((void **)&fl->off, &fl->cap, fl->n + 1, sizeof *fl->off);
    grow((void **)&fl->label, &fl->lcap, fl->n + 1, sizeof *fl->label);
    fl->off[fl->n] = arena_add(&fl->names, prefix, name);
    fl->label[fl->n++] = label;
}

/* The full path of file i into out (truncated to cap). */
static void fl_path(const file_list *fl, size_t i, char *out, size_t cap) {
    join(out, cap, fl->root ? fl->root : "", fl->names.p + fl->off[i]);
}

typedef struct {
    const char *key;
    size_t a, b;
} keyed;

static int keyed_cmp(const void *x, const void *y) { /* byte-wise, as Python sorts ASCII/UTF-8 */
    return strcmp(((const keyed *)x)->key, ((const keyed *)y)->key);
}

/* Sorts files [i0, n) of fl by path (within one folder: by name, as sorted(fnames)). */
static void fl_sort_tail(file_list *fl, size_t i0, mae_buf *scratch) {
    size_t m = fl->n - i0;
    if (m < 2) return;
    keyed *k = (keyed *)mae_buf_reserve(scratch, m * sizeof *k);
    for (size_t i = 0; i < m; i++)
        k[i] = (keyed){fl->names.p + fl->off[i0 + i], fl->off[i0 + i], 0};
    qsort(k, m, sizeof *k, keyed_cmp);
    for (size_t i = 0; i < m; i++) fl->off[i0 + i] = k[i].a;
}

/* ------------------------------------------------------------------ read / name / destroy */

static void strerr(int e, char *buf, size_t cap) { /* thread-safe strerror */
    if (strerror_r(e, buf, cap) != 0) snprintf(buf, cap, "error %d", e);
}

/* read(): the whole file into buf. Bad files give MAE_ERR_DATA naming the file. */
static int files_read(mae_source *s, int64_t idx, mae_raw *raw, mae_buf *buf, mae_error *err) {
    MAE_ASSERT(idx >= 0 && idx < s->n);
    const file_list *fl = (const file_list *)s->impl;
    char path[PATH_MAX + 256], eb[128];
    fl_path(fl, (size_t)idx, path, sizeof path);
    memset(raw, 0, sizeof *raw);
    raw->label = fl->label[idx];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        strerr(e, eb, sizeof eb);
        mae_errf(err, "image file %s: cannot open: %s%s", path, eb,
                 e == ENOENT ? " (removed since the folder was scanned?)" : "");
        return MAE_ERR_DATA;
    }
    const char *bad = S_ISDIR(st.st_mode) ? "is a folder, not a file"
                      : !S_ISREG(st.st_mode) ? "not a regular file"
                      : st.st_size == 0 ? "empty file (0 bytes)" : NULL;
    if (bad) {
        close(fd);
        mae_errf(err, "image file %s: %s", path, bad);
        return MAE_ERR_DATA;
    }
    size_t want = (size_t)st.st_size, have = 0;
    uint8_t *p = (uint8_t *)mae_buf_reserve(buf, want);
    while (have < want) {
        ssize_t r = read(fd, p + have, want - have);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r < 0) strerr(errno, eb, sizeof eb);
            else snprintf(eb, sizeof eb, "file shrank while reading");
            close(fd);
            mae_errf(err, "image file %s: read error after %zu of %zu bytes: %s", path, have,
                     want, eb);
            return MAE_ERR_DATA;
        }
        have += (size_t)r;
    }
    close(fd);
    raw->bytes = p;
    raw->len = have;
    return MAE_OK;
}

static void files_name(const mae_source *s, int64_t idx, char *out, size_t cap) {
    MAE_ASSERT(idx >= 0 && idx < s->n);
    fl_path((const file_list *)s->impl, (size_t)idx, out, cap);
}

static void free_names(char **names, int n) {
    for (int i = 0; names && i < n; i++) free(names[i]);
    free(names);
}

static void fl_free(file_list *fl) {
    free(fl->root);
    free(fl->names.p);
    free(fl->off);
    free(fl->label);
    free(fl);
}

static void files_destroy(mae_source *s) {
    if (s->impl) fl_free((file_list *)s->impl);
    free_names(s->class_names, s->num_classes);
    s->impl = NULL;
    s->class_names = NULL;
}

void mae_source_free(mae_source *s) {
    if (!s) return;
    if (s->destroy) s->destroy(s);
    free(s);
}

/* Wraps a file list (taking ownership) as a source. */
static mae_source *files_source(file_list *fl, int num_classes, char **class_names) {
    mae_source *s = (mae_source *)mae_xcalloc(1, sizeof *s);
    s->n = (int64_t)fl->n;
    s->num_classes = num_classes;
    s->class_names = class_names;
    s->read = files_read;
    s->name = files_name;
    s->destroy = files_destroy;
    s->impl = fl;
    return s;
}

/* ------------------------------------------------------------------ folder scan */

/* 1 for our image extensions, 2 for those only torchvision takes, 0 otherwise (any case). */
static int image_kind(const char *name) {
    static const char *const ours[] = {".jpg", ".jpeg", ".png", ".bmp", ".webp"};
    static const char *const tv_only[] = {".ppm", ".pgm", ".tif", ".tiff"};
    size_t n = strlen(name);
    for (int k = 0; k < 9; k++) {
        const char *e = k < 5 ? ours[k] : tv_only[k - 5];
        size_t m = strlen(e);
        if (n >= m && strncasecmp(name + n - m, e, m) == 0) return k < 5 ? 1 : 2;
    }
    return 0;
}

typedef struct { /* one folder of a walk */
    size_t rel;           /* its path relative to the root, in the walk's names */
    int parent;           /* index of the folder it is in, -1 for the walk's top */
    size_t start, count;  /* its image files in the file list */
    dev_t dev;
    ino_t ino;
} walk_dir;

typedef struct {
    const char *root;
    file_list *fl;
    arena names;              /* folder paths of the current walk */
    walk_dir *dirs;
    size_t ndirs, dcap;
    size_t tv_only, other;    /* files skipped: torchvision-only image types, the rest */
    size_t entries;           /* entries seen in the walk's top folder */
    mae_buf scratch;
} scan;

static void add_dir(scan *sc, const char *prefix, const char *name, int parent) {
    grow((void **)&sc->dirs, &sc->dcap, sc->ndirs + 1, sizeof *sc->dirs);
    sc->dirs[sc->ndirs++] = (walk_dir){arena_add(&sc->names, prefix, name), parent, 0, 0, 0, 0};
}

/* Lists folder q of the walk: image files go to the file list (sorted by name) with label,
 * sub-folders (symlinks followed) to the walk. A folder that cannot be opened is skipped with
 * a warning (as os.walk skips it), unless it is the root (error). */
static int scan_dir(scan *sc, size_t q, int label, mae_error *err) {
    char path[PATH_MAX], eb[128];
    const char *rel = sc->names.p + sc->dirs[q].rel;
    if (!join(path, sizeof path, sc->root, rel))
        return mae_errf(err, "folder %s/%s: path too long", sc->root, rel);
    DIR *d = opendir(path);
    if (!d) {
        strerr(errno, eb, sizeof eb);
        if (!*rel) return mae_errf(err, "folder %s: cannot open: %s", path, eb);
        fprintf(stderr, "mae: warning: cannot read folder %s: %s; skipped\n", path, eb);
        return MAE_OK;
    }
    struct stat st;
    int known = fstat(dirfd(d), &st) == 0;
    sc->dirs[q].dev = known ? st.st_dev : 0;
    sc->dirs[q].ino = known ? st.st_ino : 0;
    for (int p = sc->dirs[q].parent; known && p >= 0; p = sc->dirs[p].parent)
        if (sc->dirs[p].dev == st.st_dev && sc->dirs[p].ino == st.st_ino) {
            fprintf(stderr, "mae: warning: %s links back to a folder it is in; not followed\n",
                    path);
            closedir(d);
            return MAE_OK;
        }
    size_t start = sc->fl->n;
    const struct dirent *e;
    int rc = MAE_OK;
    for (errno = 0; (e = readdir(d)) != NULL; errno = 0) {
        const char *nm = e->d_name;
        if (nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2]))) continue;
        sc->entries += q == 0; /* (only meaningful for the root walk) */
        int is_dir = e->d_type == DT_DIR;
        if (e->d_type == DT_LNK || e->d_type == DT_UNKNOWN) /* follow links; broken = file */
            is_dir = fstatat(dirfd(d), nm, &st, 0) == 0 && S_ISDIR(st.st_mode);
        rel = sc->names.p + sc->dirs[q].rel; /* add_dir may move the arena */
        int kind = is_dir ? -1 : image_kind(nm);
        if (is_dir) add_dir(sc, rel, nm, (int)q);
        else if (kind == 1) fl_push(sc->fl, rel, nm, label);
        else if (kind == 2) sc->tv_only++;
        else sc->other++;
    }
    if (errno) {
        strerr(errno, eb, sizeof eb);
        rc = mae_errf(err, "folder %s: error reading it: %s", path, eb);
    }
    closedir(d);
    fl_sort_tail(sc->fl, start, &sc->scratch);
    sc->dirs[q].start = start;
    sc->dirs[q].count = sc->fl->n - start;
    return rc;
}

/* Walks class folder cls (label k) as sorted(os.walk(cls, followlinks=True)): folders in the
 * order of their sorted paths, the files of each sorted by name. */
static int walk_class(scan *sc, const char *cls, int k, mae_error *err) {
    sc->ndirs = 0;
    sc->names.len = 0;
    add_dir(sc, "", cls, -1);
    size_t first = sc->fl->n;
    for (size_t q = 0; q < sc->ndirs; q++)
        if (scan_dir(sc, q, k, err) != MAE_OK) return MAE_ERR;
    if (sc->ndirs < 2 || sc->fl->n == first) return MAE_OK;
    size_t m = sc->fl->n - first, nd = sc->ndirs, *off = sc->fl->off;
    /* one buffer: the folders sorted by path (a = first file, b = count), then a copy of the
     * class's offsets, copied back folder by folder */
    keyed *kd = (keyed *)mae_buf_reserve(&sc->scratch, nd * sizeof *kd + m * sizeof(size_t));
    size_t *old = (size_t *)(kd + nd);
    for (size_t q = 0; q < nd; q++)
        kd[q] = (keyed){sc->names.p + sc->dirs[q].rel, sc->dirs[q].start, sc->dirs[q].count};
    qsort(kd, nd, sizeof *kd, keyed_cmp);
    memcpy(old, off + first, m * sizeof(size_t));
    for (size_t q = 0, at = first; q < nd; at += kd[q++].b)
        memcpy(off + at, old + (kd[q].a - first), kd[q].b * sizeof(size_t));
    return MAE_OK;
}

/* The warnings of a successful scan: skipped .tif & co, empty classes, loose root images. */
static void warn_tree(const scan *sc, char **cls, const uint8_t *empty, size_t nclass,
                      size_t nloose) {
    size_t nempty = 0;
    for (size_t k = 0; k < nclass; k++)
        if (empty[k] && ++nempty <= MAX_WARN)
            fprintf(stderr, "mae: warning: ImageFolder %s: class folder %s/%s has no image "
                    "files (its class index %zu is kept; torchvision would refuse)\n", sc->root,
                    sc->root, cls[k], k);
    if (nempty > MAX_WARN)
        fprintf(stderr, "mae: warning: ImageFolder %s: %zu empty class folders in all\n",
                sc->root, nempty);
    if (nclass && nloose)
        fprintf(stderr, "mae: warning: ImageFolder %s: %zu image file%s directly in the root "
                "ignored (only files inside class folders count, as in torchvision)\n",
                sc->root, nloose, nloose == 1 ? "" : "s");
    if (sc->tv_only)
        fprintf(stderr, "mae: warning: %s: %zu .ppm/.pgm/.tif/.tiff file%s skipped (torchvision "
                "reads them; mae decodes only " IMG_EXTS ")\n", sc->root, sc->tv_only,
                sc->tv_only == 1 ? "" : "s");
}

/* Scans root: a tree when it has class folders with images, else a flat folder. */
static mae_source *folder_scan(scan *sc, mae_error *err) {
    const char *root = sc->root;
    if (scan_dir(sc, 0, -1, err) != MAE_OK) return NULL;
    size_t nloose = sc->fl->n, nclass = sc->ndirs - 1;
    char **cls = NULL;
    if (nclass) { /* class names, sorted as find_classes */
        keyed *kd = (keyed *)mae_buf_reserve(&sc->scratch, nclass * sizeof *kd);
        for (size_t i = 0; i < nclass; i++)
            kd[i] = (keyed){sc->names.p + sc->dirs[i + 1].rel, 0, 0};
        qsort(kd, nclass, sizeof *kd, keyed_cmp);
        MAE_ASSERT(nclass < INT_MAX);
        cls = (char **)mae_xcalloc(nclass, sizeof *cls);
        for (size_t i = 0; i < nclass; i++) cls[i] = xstrdup(kd[i].key);
        sc->fl->n = 0;
        sc->fl->names.len = 0;
    }
    uint8_t *empty = (uint8_t *)mae_xcalloc(nclass + 1, 1);
    for (size_t k = 0; k < nclass; k++) {
        size_t before = sc->fl->n;
        if (walk_class(sc, cls[k], (int)k, err) != MAE_OK) goto fail;
        empty[k] = sc->fl->n == before;
    }
    if (nclass && sc->fl->n == 0 && nloose) { /* sub-folders without images: a flat folder */
        free_names(cls, (int)nclass);
        cls = NULL;
        nclass = 0;
        sc->ndirs = 0;
        sc->names.len = 0;
        add_dir(sc, "", "", -1);
        sc->tv_only = sc->other = 0;
        if (scan_dir(sc, 0, -1, err) != MAE_OK) goto fail;
    }
    if (sc->fl->n == 0) {
        if (sc->entries == 0) mae_errf(err, "folder %s is empty", root);
        else mae_errf(err, "no image files (" IMG_EXTS ") in %s%s (%zu other file%s ignored, "
                      "%zu of them .ppm/.pgm/.tif/.tiff)", root, nclass ? " or its class folders"
                      : "", sc->other + sc->tv_only, sc->other + sc->tv_only == 1 ? "" : "s",
                      sc->tv_only);
        goto fail;
    }
    warn_tree(sc, cls, empty, nclass, nloose);
    free(empty);
    mae_source *s = files_source(sc->fl, (int)nclass, cls);
    if (nclass) snprintf(s->desc, sizeof s->desc, "ImageFolder %s: %lld images, %zu classes",
                         root, (long long)s->n, nclass);
    else snprintf(s->desc, sizeof s->desc, "folder %s: %lld images (no labels)", root,
                  (long long)s->n);
    return s;
fail:
    free_names(cls, (int)nclass);
    free(empty);
    return NULL;
}

mae_source *mae_source_folder(const char *root, mae_error *err) {
    file_list *fl = (file_list *)mae_xcalloc(1, sizeof *fl);
    fl->root = xstrdup(root);
    scan sc = {0};
    sc.root = root;
    sc.fl = fl;
    add_dir(&sc, "", "", -1);
    mae_source *s = folder_scan(&sc, err);
    if (!s) fl_free(fl);
    free(sc.names.p);
    free(sc.dirs);
    mae_buf_free(&sc.scratch);
    return s;
}

/* ------------------------------------------------------------------ list file */

/* Parses one list line (CR/LF stripped, not blank, not a comment) into *path and *label
 * (-1 when the line has none). Returns 0, or a message (into msg) on a bad line. */
static int parse_line(char *line, char **path, int *label, char *msg, size_t cap) {
    if (*line == ' ' || *line == '\t') {
        snprintf(msg, cap, "missing path column (the line starts with whitespace)");
        return -1;
    }
    char *end = line + strlen(line);
    while (end > line && (end[-1] == ' ' || end[-1] == '\t')) *--end = '\0';
    char *tok = end;
    while (tok > line && tok[-1] != ' ' && tok[-1] != '\t') tok--;
    *path = line;
    *label = -1;
    if (tok == line) return 0; /* no whitespace: just a path */
    char *sep = tok;
    while (sep > line && (sep[-1] == ' ' || sep[-1] == '\t')) sep--;
    *sep = '\0';
    errno = 0;
    char *e;
    long v = strtol(tok, &e, 10);
    if (*e || e == tok || errno || v < 0 || v >= INT_MAX || *tok == '+' || *tok == '-') {
        snprintf(msg, cap, "bad label '%.64s' (expected PATH or PATH LABEL, LABEL an integer "
                 ">= 0)", tok);
        return -1;
    }
    *label = (int)v;
    return 0;
}

/* Reads the list into fl (relative paths joined to dir); *max_label: the largest label, or
 * -1 when the lines have none. */
static int read_list(FILE *f, const char *list_path, const char *dir, file_list *fl,
                     int *max_label, mae_error *err) {
    char *line = NULL, msg[160];
    size_t cap = 0;
    long lineno = 0, first_labelled = 0, first_unlabelled = 0;
    ssize_t len;
    int rc = MAE_OK;
    *max_label = -1;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (memchr(line, '\0', (size_t)len)) {
            rc = mae_errf(err, "list file %s:%ld: a NUL byte (not a text file?)", list_path,
                          lineno);
            break;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        size_t lead = strspn(line, " \t");
        if (!line[lead] || line[lead] == '#') continue;
        char *path;
        int label;
        if (parse_line(line, &path, &label, msg, sizeof msg) != 0) {
            rc = mae_errf(err, "list file %s:%ld: %s", list_path, lineno, msg);
            break;
        }
        long *first = label >= 0 ? &first_labelled : &first_unlabelled;
        if (!*first) *first = lineno;
        if (first_labelled && first_unlabelled) {
            rc = mae_errf(err, "list file %s:%ld: %s a label but line %ld %s (give every line "
                          "a label or none)", list_path, lineno, label >= 0 ? "has" : "lacks",
                          label >= 0 ? first_unlabelled : first_labelled,
                          label >= 0 ? "does not" : "has one");
            break;
        }
        if (label > *max_label) *max_label = label;
        fl_push(fl, path[0] == '/' ? "" : dir, path, label);
    }
    if (rc == MAE_OK && ferror(f))
        rc = mae_errf(err, "list file %s: read error after line %ld", list_path, lineno);
    free(line);
    return rc;
}

mae_source *mae_source_list(const char *list_path, mae_error *err) {
    FILE *f = fopen(list_path, "r");
    if (!f) {
        char eb[128];
        strerr(errno, eb, sizeof eb);
        mae_errf(err, "list file %s: cannot open: %s", list_path, eb);
        return NULL;
    }
    /* relative paths are relative to the list file's folder ("" = the current one) */
    const char *slash = strrchr(list_path, '/');
    size_t dlen = !slash ? 0 : slash == list_path ? 1 : (size_t)(slash - list_path);
    char *dir = (char *)mae_xmalloc(dlen + 1);
    memcpy(dir, list_path, dlen);
    dir[dlen] = '\0';
    file_list *fl = (file_list *)mae_xcalloc(1, sizeof *fl);
    int max_label;
    int rc = read_list(f, list_path, dir, fl, &max_label, err);
    fclose(f);
    free(dir);
    if (rc == MAE_OK && fl->n == 0)
        rc = mae_errf(err, "list file %s: no image paths in it", list_path);
    if (rc != MAE_OK) {
        fl_free(fl);
        return NULL;
    }
    mae_source *s = files_source(fl, max_label + 1, NULL);
    snprintf(s->desc, sizeof s->desc, "list %s: %lld images, %s", list_path, (long long)s->n,
             max_label >= 0 ? "labelled" : "no labels");
    return s;
}

/* ------------------------------------------------------------------ auto-detection */

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

mae_source *mae_source_open(const char *path, int train, mae_error *err) {
    struct stat st;
    char sub[PATH_MAX], eb[128];
    if (stat(path, &st) != 0) {
        strerr(errno, eb, sizeof eb);
        mae_errf(err, "data path %s: %s", path, eb);
        return NULL;
    }
    if (mae_source_idx_probe(path)) return mae_source_idx_path(path, train, err);
    if (mae_source_cifar_probe(path)) return mae_source_cifar(path, train, err);
    if (S_ISDIR(st.st_mode)) {
        if (!join(sub, sizeof sub, path, "train") || !is_dir(sub))
            return mae_source_folder(path, err);
        if (!train) join(sub, sizeof sub, path, "val");
        if (!is_dir(sub)) {
            mae_errf(err, "data path %s has a train folder but no val folder", path);
            return NULL;
        }
        return mae_source_folder(sub, err);
    }
    if (!S_ISREG(st.st_mode)) {
        mae_errf(err, "data path %s is neither a folder nor a regular file", path);
        return NULL;
    }
    if (image_kind(path)) {
        mae_errf(err, "data path %s is an image file: give the folder holding the images, or a "
                 "text file listing them", path);
        return NULL;
    }
    return mae_source_list(path, err);
}
