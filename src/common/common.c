#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "common.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

int mae_errf(mae_error *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return MAE_ERR;
}

void *mae_xmalloc_(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "mae: out of memory allocating %zu bytes at %s:%d\n", n, file, line);
        abort();
    }
    return p;
}

void *mae_xcalloc_(size_t n, size_t sz, const char *file, int line) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) {
        fprintf(stderr, "mae: out of memory allocating %zu x %zu bytes at %s:%d\n", n, sz, file,
                line);
        abort();
    }
    return p;
}

void mae_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape, const char *brackets) {
    size_t n = (size_t)snprintf(buf, cap, "%c", brackets[0]);
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "%c", brackets[1]);
}

int mae_size_mul(size_t *out, size_t a, size_t b) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

void *mae_buf_reserve_(mae_buf *b, size_t bytes, const char *file, int line) {
    if (bytes <= b->cap && b->p) return b->p;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < bytes) cap = cap > SIZE_MAX / 2 ? bytes : cap * 2;
    void *p = realloc(b->p, cap);
    if (!p) {
        fprintf(stderr, "mae: out of memory allocating %zu bytes at %s:%d\n", cap, file, line);
        abort();
    }
    b->p = p;
    b->cap = cap;
    return p;
}

void mae_buf_free(mae_buf *b) {
    free(b->p);
    b->p = NULL;
    b->cap = 0;
}

double mae_clock(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
