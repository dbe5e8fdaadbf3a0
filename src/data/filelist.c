/* filelist.c - the file list behind the file-backed sources (folder.c, listfile.c): paths in
 * one growable string arena (relative to the root) with an offset array, so ImageNet's 1.28M
 * files cost about 50 bytes each; and the source over such a list, whose read() opens the file
 * and reads it whole (it keeps no shared mutable state and may run concurrently).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "filelist.h"
#include "source.h"

/* ------------------------------------------------------------------ string arena, file list */

/* Grows *p (n elements of elem bytes, capacity *cap) to hold need elements. */
void mae_fl_grow(void **p, size_t *cap, size_t need, size_t elem) {
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
int mae_fl_join(char *out, size_t cap, const char *a, const char *b) {
    return (size_t)snprintf(out, cap, "%s%s%s", a, need_slash(a, b) ? "/" : "", b) < cap;
}

/* Appends prefix joined to name and returns its offset. */
size_t mae_fl_arena_add(arena *a, const char *prefix, const char *name) {
    size_t lp = strlen(prefix), ln = strlen(name), off = a->len;
    mae_fl_grow((void **)&a->p, &a->cap, a->len + lp + ln + 2, 1);
    memcpy(a->p + off, prefix, lp);
    if (need_slash(prefix, name)) a->p[off + lp++] = '/';
    memcpy(a->p + off + lp, name, ln + 1);
    a->len += lp + ln + 1;
    return off;
}

void mae_fl_push(file_list *fl, const char *prefix, const char *name, int label) {
    mae_fl_grow((void **)&fl->off, &fl->cap, fl->n + 1, sizeof *fl->off);
    mae_fl_grow((void **)&fl->label, &fl->lcap, fl->n + 1, sizeof *fl->label);
    fl->off[fl->n] = mae_fl_arena_add(&fl->names, prefix, name);
    fl->label[fl->n++] = label;
}

/* The full path of file i into out (truncated to cap). */
static void fl_path(const file_list *fl, size_t i, char *out, size_t cap) {
    mae_fl_join(out, cap, fl->root ? fl->root : "", fl->names.p + fl->off[i]);
}

int mae_fl_keyed_cmp(const void *x, const void *y) { /* byte-wise, as Python sorts ASCII/UTF-8 */
    return strcmp(((const keyed *)x)->key, ((const keyed *)y)->key);
}

/* Sorts files [i0, n) of fl by path (within one folder: by name, as sorted(fnames)). */
void mae_fl_sort_tail(file_list *fl, size_t i0, mae_buf *scratch) {
    size_t m = fl->n - i0;
    if (m < 2) return;
    keyed *k = (keyed *)mae_buf_reserve(scratch, m * sizeof *k);
    for (size_t i = 0; i < m; i++)
        k[i] = (keyed){fl->names.p + fl->off[i0 + i], fl->off[i0 + i], 0};
    qsort(k, m, sizeof *k, mae_fl_keyed_cmp);
    for (size_t i = 0; i < m; i++) fl->off[i0 + i] = k[i].a;
}

/* ------------------------------------------------------------------ read / name / destroy */

void mae_fl_strerr(int e, char *buf, size_t cap) { /* thread-safe strerror */
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
        mae_fl_strerr(e, eb, sizeof eb);
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
            if (r < 0) mae_fl_strerr(errno, eb, sizeof eb);
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

void mae_fl_free_names(char **names, int n) {
    for (int i = 0; names && i < n; i++) free(names[i]);
    free(names);
}

void mae_fl_free(file_list *fl) {
    free(fl->root);
    free(fl->names.p);
    free(fl->off);
    free(fl->label);
    free(fl);
}

static void files_destroy(mae_source *s) {
    if (s->impl) mae_fl_free((file_list *)s->impl);
    mae_fl_free_names(s->class_names, s->num_classes);
    s->impl = NULL;
    s->class_names = NULL;
}

void mae_source_free(mae_source *s) {
    if (!s) return;
    if (s->destroy) s->destroy(s);
    free(s);
}

/* Wraps a file list (taking ownership) as a source. */
mae_source *mae_fl_source(file_list *fl, int num_classes, char **class_names) {
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
