/* filelist.h - internal to the file-backed sources (filelist.c, folder.c, listfile.c): the
 * string arena and file list they fill, and the source that wraps a file list (source.h).
 */
#ifndef MAE_DATA_FILELIST_H
#define MAE_DATA_FILELIST_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "source.h"

typedef struct {
    char *p;
    size_t len, cap;
} arena;

typedef struct {
    char *root;     /* joined with "/" before every path; NULL: paths are complete */
    arena names;
    size_t *off;    /* path of file i: names.p + off[i] */
    int32_t *label; /* -1 when unlabelled */
    size_t n, cap, lcap;
} file_list;

typedef struct { /* a sort key (a path) with two payload values */
    const char *key;
    size_t a, b;
} keyed;

/* Grows *p (n elements of elem bytes, capacity *cap) to hold need elements. */
void mae_fl_grow(void **p, size_t *cap, size_t need, size_t elem);
/* a joined to b into out (cap bytes, with a '/' as os.path.join); returns 0 if it does not fit. */
int mae_fl_join(char *out, size_t cap, const char *a, const char *b);
/* Appends prefix joined to name to the arena and returns its offset. */
size_t mae_fl_arena_add(arena *a, const char *prefix, const char *name);
/* Appends the file prefix/name with label (-1: none) to fl. */
void mae_fl_push(file_list *fl, const char *prefix, const char *name, int label);
/* qsort comparison of keyed by key, byte-wise (as Python sorts ASCII/UTF-8). */
int mae_fl_keyed_cmp(const void *x, const void *y);
/* Sorts files [i0, n) of fl by path (within one folder: by name, as sorted(fnames)). */
void mae_fl_sort_tail(file_list *fl, size_t i0, mae_buf *scratch);
/* Thread-safe strerror into buf. */
void mae_fl_strerr(int e, char *buf, size_t cap);
/* Frees n names and the array (NULL is a no-op). */
void mae_fl_free_names(char **names, int n);
/* Frees a file list and everything it holds. */
void mae_fl_free(file_list *fl);
/* Wraps a file list (taking ownership, and of class_names) as a source; desc is left empty. */
mae_source *mae_fl_source(file_list *fl, int num_classes, char **class_names);

/* (folder.c) 1 for our image extensions (.jpg .jpeg .png .bmp .webp), 2 for those only
 * torchvision takes (.ppm .pgm .tif .tiff), 0 otherwise; case-insensitive. */
int mae_fl_image_kind(const char *name);

#endif
