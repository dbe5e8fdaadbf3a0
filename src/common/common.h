/* common.h - error reporting, check macros and allocation helpers shared by all of libmae. */
#ifndef MAE_COMMON_H
#define MAE_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "mae.h"

/* Internal invariant: abort with file:line. Never use for user input. */
#define MAE_ASSERT(cond)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "mae: internal error at %s:%d: %s\n", __FILE__, __LINE__, \
                    #cond);                                                           \
            abort();                                                                  \
        }                                                                             \
    } while (0)

/* Fill err (may be NULL) with a formatted message; always returns MAE_ERR (-1). */
int mae_errf(mae_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Small allocations whose failure is an internal invariant (abort with file:line). */
void *mae_xmalloc_(size_t n, const char *file, int line);
void *mae_xcalloc_(size_t n, size_t sz, const char *file, int line);
#define mae_xmalloc(n) mae_xmalloc_((n), __FILE__, __LINE__)
#define mae_xcalloc(n, sz) mae_xcalloc_((n), (sz), __FILE__, __LINE__)

/* Formats a shape as "[a, b, c]" (brackets "[]") or "(a, b, c)" (brackets "()") into buf. */
void mae_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape, const char *brackets);

/* A growable scratch buffer: reserve() returns at least `bytes` bytes (contents kept on growth),
 * growing with realloc and never shrinking, so steady-state use allocates nothing. Aborts with
 * file:line if memory runs out. Zero-initialise ({0}) before first use. */
typedef struct mae_buf {
    void *p;
    size_t cap;
} mae_buf;
void *mae_buf_reserve_(mae_buf *b, size_t bytes, const char *file, int line);
#define mae_buf_reserve(b, bytes) mae_buf_reserve_((b), (bytes), __FILE__, __LINE__)
void mae_buf_free(mae_buf *b);

/* Monotonic wall clock in seconds (for timings; the CPU backend is synchronous, a backend with
 * asynchronous kernels must synchronise before a reading means anything). */
double mae_clock(void);

/* Overflow-checked size arithmetic: returns 0 on overflow. */
int mae_size_mul(size_t *out, size_t a, size_t b);

#endif
