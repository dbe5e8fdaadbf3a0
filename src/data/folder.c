/* folder.c - the ImageFolder tree, ordered exactly as torchvision's datasets.ImageFolder, and
 * the flat folder of images (source.h). The scan only reads directories (d_type, with stat()
 * for links and unknown types); the paths go to a file list (filelist.h).
 */
#define _DEFAULT_SOURCE /* d_type, DT_* */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common.h"
#include "filelist.h"
#include "source.h"

#define IMG_EXTS ".jpg .jpeg .png .bmp .webp"
#define MAX_WARN 10 /* per-kind warning lines before a summary */

static char *xstrdup(const char *str) {
    size_t n = strlen(str) + 1;
    return (char *)memcpy(mae_xmalloc(n), str, n);
}

/* ------------------------------------------------------------------ folder scan */

/* 1 for our image extensions, 2 for those only torchvision takes, 0 otherwise (any case). */
int mae_fl_image_kind(const char *name) {
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
    mae_fl_grow((void **)&sc->dirs, &sc->dcap, sc->ndirs + 1, sizeof *sc->dirs);
    size_t rel = mae_fl_arena_add(&sc->names, prefix, name);
    sc->dirs[sc->ndirs++] = (walk_dir){rel, parent, 0, 0, 0, 0};
}

/* Lists folder q of the walk: image files go to the file list (sorted by name) with label,
 * sub-folders (symlinks followed) to the walk. A folder that cannot be opened is skipped with
 * a warning (as os.walk skips it), unless it is the root (error). */
static int scan_dir(scan *sc, size_t q, int label, mae_error *err) {
    char path[PATH_MAX], eb[128];
    const char *rel = sc->names.p + sc->dirs[q].rel;
    if (!mae_fl_join(path, sizeof path, sc->root, rel))
        return mae_errf(err, "folder %s/%s: path too long", sc->root, rel);
    DIR *d = opendir(path);
    if (!d) {
        mae_fl_strerr(errno, eb, sizeof eb);
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
        int kind = is_dir ? -1 : mae_fl_image_kind(nm);
        if (is_dir) add_dir(sc, rel, nm, (int)q);
        else if (kind == 1) mae_fl_push(sc->fl, rel, nm, label);
        else if (kind == 2) sc->tv_only++;
        else sc->other++;
    }
    if (errno) {
        mae_fl_strerr(errno, eb, sizeof eb);
        rc = mae_errf(err, "folder %s: error reading it: %s", path, eb);
    }
    closedir(d);
    mae_fl_sort_tail(sc->fl, start, &sc->scratch);
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
    qsort(kd, nd, sizeof *kd, mae_fl_keyed_cmp);
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
        qsort(kd, nclass, sizeof *kd, mae_fl_keyed_cmp);
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
        mae_fl_free_names(cls, (int)nclass);
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
    mae_source *s = mae_fl_source(sc->fl, (int)nclass, cls);
    if (nclass) snprintf(s->desc, sizeof s->desc, "ImageFolder %s: %lld images, %zu classes",
                         root, (long long)s->n, nclass);
    else snprintf(s->desc, sizeof s->desc, "folder %s: %lld images (no labels)", root,
                  (long long)s->n);
    return s;
fail:
    mae_fl_free_names(cls, (int)nclass);
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
    if (!s) mae_fl_free(fl);
    free(sc.names.p);
    free(sc.dirs);
    mae_buf_free(&sc.scratch);
    return s;
}
