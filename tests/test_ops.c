/* test_ops.c - backend op tests in the spirit of ggml's test-backend-ops.
 *
 * run_op_tests(be) exercises every op of a mae_backend through its own alloc/upload/download,
 * so any backend (CPU now, a GPU one later) runs the same checks:
 *   - forward results against the naive double-precision references of op_ref.c,
 *   - backward results against the analytic double gradient (all elements) AND against
 *     central finite differences of the double reference forward (objective sum(out * R)
 *     with a fixed random R = dout; a sample of coordinates for big inputs),
 *   - that backward kernels ACCUMULATE (gradient outputs are pre-filled with random G0 and
 *     the result must be G0 + grad), that forward kernels and the OVERWRITTEN gradients write
 *     every element (their buffers are pre-filled with a NaN poison, tests/poison.h: an element
 *     left unwritten, or read before it is written, fails the case, which names the buffer
 *     and the first such index), and that no op modifies its inputs.
 *
 * Error metric: rel = ||got - want||_2 / ||want||_2 (absolute when want == 0), computed in
 * double. Tolerances (documented per op where they differ):
 *   TOL_FWD     float forward vs double reference
 *   TOL_BWD     float backward vs analytic double gradient
 *   TOL_FD      float backward vs central differences of the double reference
 *   TOL_REF_FD  self-check of the analytic double reference vs finite differences
 *   data movement forwards (im2patch, patchify, embed_tokens, unshuffle, add, add_inplace)
 *   must be bit-exact; their backward passes (sums of float) use TOL_MOVE.
 *
 * Usage: test_ops [backend-name ...]   (always runs "cpu" first). Exit 1 on any failure; else
 * 77 (skipped) when a backend asked for is "cuda" on a machine without a CUDA device or in a
 * build without CUDA (tests/backend_avail.h), after the other backends ran.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_avail.h"
#include "op_ref.h"
#include "poison.h"

#define TOL_FWD 1e-5
#define TOL_BWD 1e-5
#define TOL_FD 2e-5
#define TOL_REF_FD 1e-6
#define TOL_MOVE 1e-6
#define FD_H 1e-5 /* central-difference step, times rms(x) */

int run_op_tests(const mae_backend *be);

/* ------------------------------------------------------------------ RNG (splitmix64) */

#define TEST_RNG_SEED 0x9E3779B97F4A7C15ull
#include "test_rng.h"

static size_t rng_index(size_t n) { return (size_t)(rng_next() % (uint64_t)n); }

static void fill_uniform(float *x, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) x[i] = (float)rng_uniform(lo, hi);
}

static void fill_normal(float *x, size_t n, double scale) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * rng_normal());
}

/* ------------------------------------------------------------------ test case bookkeeping */

enum { BUF_HOST, BUF_DEV_IN, BUF_DEV_OUT };

typedef struct {
    int kind;
    void *ptr;      /* host memory or device pointer */
    void *snapshot; /* BUF_DEV_IN: host copy of what was uploaded */
    size_t bytes;
    const char *poisoned; /* BUF_DEV_OUT filled with NaN poison that the op must overwrite:
                             its name, checked by tc_get; NULL otherwise */
} tc_buf;

#define TC_MAXBUF 96

typedef struct {
    const mae_backend *be;
    char line[2048];
    size_t len;
    int fail;
    int nbuf;
    tc_buf buf[TC_MAXBUF];
} tcase;

static int g_npass, g_nfail;

static void tc_append(tcase *tc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void tc_append(tcase *tc, const char *fmt, ...) {
    if (tc->len >= sizeof tc->line - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tc->line + tc->len, sizeof tc->line - tc->len, fmt, ap);
    va_end(ap);
    if (k > 0) {
        tc->len += (size_t)k;
        if (tc->len > sizeof tc->line - 1) tc->len = sizeof tc->line - 1;
    }
}

static void tc_begin(tcase *tc, const mae_backend *be, const char *op, const char *shape) {
    memset(tc, 0, sizeof *tc);
    tc->be = be;
    tc_append(tc, "%-5s %-22s %-34s", be->name, op, shape);
}

static void *tc_track(tcase *tc, int kind, void *ptr, void *snapshot, size_t bytes) {
    if (!ptr) {
        fprintf(stderr, "test_ops: allocation of %zu bytes failed\n", bytes);
        exit(2);
    }
    if (tc->nbuf >= TC_MAXBUF) {
        fprintf(stderr, "test_ops: too many buffers in one case\n");
        exit(2);
    }
    tc->buf[tc->nbuf].kind = kind;
    tc->buf[tc->nbuf].ptr = ptr;
    tc->buf[tc->nbuf].snapshot = snapshot;
    tc->buf[tc->nbuf].bytes = bytes;
    tc->buf[tc->nbuf].poisoned = NULL;
    tc->nbuf++;
    return ptr;
}

/* host scratch, zeroed, freed at tc_end */
static void *tc_host(tcase *tc, size_t bytes) {
    return tc_track(tc, BUF_HOST, calloc(bytes ? bytes : 1, 1), NULL, bytes);
}
static float *tc_f(tcase *tc, size_t n) { return tc_host(tc, n * sizeof(float)); }
static double *tc_d(tcase *tc, size_t n) { return tc_host(tc, n * sizeof(double)); }
static int32_t *tc_i(tcase *tc, size_t n) { return tc_host(tc, n * sizeof(int32_t)); }

static double *tc_dcopy(tcase *tc, const float *x, size_t n) {
    double *d = tc_d(tc, n);
    for (size_t i = 0; i < n; i++) d[i] = (double)x[i];
    return d;
}

static float *tc_fcopy(tcase *tc, const double *x, size_t n) {
    float *f = tc_f(tc, n);
    for (size_t i = 0; i < n; i++) f[i] = (float)x[i];
    return f;
}

/* device input: uploaded now and checked for modification at tc_end */
static void *tc_in_bytes(tcase *tc, const void *host, size_t bytes) {
    void *snap = malloc(bytes ? bytes : 1);
    if (!snap) exit(2);
    memcpy(snap, host, bytes);
    void *d = tc->be->alloc(bytes ? bytes : 1);
    tc_track(tc, BUF_DEV_IN, d, snap, bytes);
    tc->be->upload(d, host, bytes);
    return d;
}
static float *tc_in(tcase *tc, const float *host, size_t n) {
    return tc_in_bytes(tc, host, n * sizeof(float));
}
static int32_t *tc_in_ids(tcase *tc, const int32_t *host, size_t n) {
    return tc_in_bytes(tc, host, n * sizeof(int32_t));
}

/* device in-out buffer (an accumulating gradient, optimizer state), initialised from init */
static float *tc_out(tcase *tc, const float *init, size_t n) {
    size_t bytes = n * sizeof(float);
    void *d = tc->be->alloc(bytes ? bytes : 1);
    tc_track(tc, BUF_DEV_OUT, d, NULL, bytes);
    tc->be->upload(d, init, bytes);
    return d;
}

/* device output the op must OVERWRITE (forward outputs, OVERWRITTEN gradients), filled with the
 * NaN poison; tc_get checks that every element was written. name NULL: scratch the op may use
 * or not (poisoned, so reading it before writing shows, but not checked). */
static float *tc_poison(tcase *tc, const char *name, size_t n) {
    size_t bytes = n * sizeof(float);
    void *d = tc->be->alloc(bytes ? bytes : 1);
    tc_track(tc, BUF_DEV_OUT, d, NULL, bytes);
    tc->buf[tc->nbuf - 1].poisoned = name;
    float *g = malloc(bytes ? bytes : 1);
    if (!g) exit(2);
    poison_fill(g, n);
    tc->be->upload(d, g, bytes);
    free(g);
    return d;
}

static void tc_failmsg(tcase *tc, const char *what) {
    tc_append(tc, " [%s]", what);
    tc->fail = 1;
}

static float *tc_get(tcase *tc, const float *dev, size_t n) {
    float *h = tc_f(tc, n);
    tc->be->download(h, dev, n * sizeof(float));
    for (int i = 0; i < tc->nbuf; i++) {
        const tc_buf *b = &tc->buf[i];
        if (b->ptr != dev || !b->poisoned) continue;
        size_t nu, fu, nn, fn;
        poison_scan(h, n, &nu, &fu, &nn, &fn);
        char msg[160];
        if (nu) {
            snprintf(msg, sizeof msg,
                     "%s: %zu of %zu elements still the NaN poison (not written, or added to), "
                     "the first at [%zu]", b->poisoned, nu, n, fu);
            tc_failmsg(tc, msg);
        }
        if (nn) {
            snprintf(msg, sizeof msg, "%s: %zu NaN (read the poisoned output?), the first at [%zu]",
                     b->poisoned, nn, fn);
            tc_failmsg(tc, msg);
        }
    }
    return h;
}

/* record one error measurement */
static void tc_check(tcase *tc, const char *label, double err, double tol) {
    tc_append(tc, " %s=%.1e", label, err);
    if (!(err <= tol)) { /* also catches NaN */
        tc_append(tc, "(>%.0e!)", tol);
        tc->fail = 1;
    }
}

static int tc_end(tcase *tc) {
    for (int i = 0; i < tc->nbuf; i++) {
        tc_buf *b = &tc->buf[i];
        if (b->kind == BUF_DEV_IN) {
            void *h = malloc(b->bytes ? b->bytes : 1);
            if (!h) exit(2);
            tc->be->download(h, b->ptr, b->bytes);
            if (memcmp(h, b->snapshot, b->bytes) != 0) {
                char msg[64];
                snprintf(msg, sizeof msg, "input #%d modified", i);
                tc_failmsg(tc, msg);
            }
            free(h);
        }
    }
    for (int i = tc->nbuf - 1; i >= 0; i--) {
        tc_buf *b = &tc->buf[i];
        if (b->kind == BUF_HOST) {
            free(b->ptr);
        } else {
            tc->be->free(b->ptr);
            free(b->snapshot);
        }
    }
    tc->nbuf = 0;
    printf("%s  %s\n", tc->line, tc->fail ? "FAIL" : "PASS");
    fflush(stdout);
    if (tc->fail) g_nfail++;
    else g_npass++;
    return tc->fail;
}

/* ------------------------------------------------------------------ error metrics */

static double rel_fd(const float *got, const double *want, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        num += d * d;
        den += want[i] * want[i];
    }
    if (!isfinite(num)) return INFINITY;
    return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

static double rel_dd(const double *got, const double *want, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = got[i] - want[i];
        num += d * d;
        den += want[i] * want[i];
    }
    if (!isfinite(num)) return INFINITY;
    return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

static double maxabs_fd(const float *got, const double *want, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

/* number of elements where got != (float)want */
static size_t count_inexact(const float *got, const double *want, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (!(got[i] == (float)want[i])) bad++;
    return bad;
}

static double dot_dd(const double *a, const double *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static double rms_d(const double *x, size_t n) {
    if (n == 0) return 0.0;
    return sqrt(dot_dd(x, x, n) / (double)n);
}

static void tc_check_exact(tcase *tc, const char *label, const float *got, const double *want,
                           size_t n) {
    size_t bad = count_inexact(got, want, n);
    tc_append(tc, " %s:maxabs=%.1e", label, maxabs_fd(got, want, n));
    if (bad) {
        tc_append(tc, "(%zu/%zu inexact!)", bad, n);
        tc->fail = 1;
    }
}

/* ------------------------------------------------------------------ gradient checking */

typedef double (*objective_fn)(void *ctx);

/* random pre-fill G0 of the size of the expected gradient, so accumulation is visible */
static float *make_g0(tcase *tc, const double *gref, size_t n) {
    double s = rms_d(gref, n);
    if (!(s > 0.0)) s = 1.0;
    float *g0 = tc_f(tc, n);
    fill_uniform(g0, n, -2.0 * s, 2.0 * s);
    return g0;
}

/* got: backend gradient buffer after backward (pre-filled with g0). Checks
 *   bwd: got - g0 vs analytic double gradient gref (all n elements)       <= tol_bwd
 *   fd:  got - g0 vs central differences of obj w.r.t. x (<= nsamp coords) <= tol_fd
 *   and that gref itself agrees with the finite differences (reference self-check).
 * obj == NULL skips the finite differences. */
static void check_grad(tcase *tc, const char *label, const float *got, const float *g0,
                       const double *gref, size_t n, double tol_bwd, objective_fn obj, void *ctx,
                       double *x, size_t nsamp, double tol_fd) {
    double *g = tc_d(tc, n);
    for (size_t i = 0; i < n; i++) g[i] = (double)got[i] - (double)g0[i];
    char lab[64];
    snprintf(lab, sizeof lab, "%s", label);
    tc_check(tc, lab, rel_dd(g, gref, n), tol_bwd);
    if (!obj || n == 0) return;

    /* step relative to the typical magnitude of x (inputs of tiny spread need tiny steps) */
    double xs = rms_d(x, n);
    if (!(xs > 0.0)) xs = 1.0;
    size_t m = n <= nsamp ? n : nsamp;
    double *gs = tc_d(tc, m), *rs = tc_d(tc, m), *fs = tc_d(tc, m);
    for (size_t s = 0; s < m; s++) {
        size_t i = m == n ? s : rng_index(n);
        double x0 = x[i];
        double h = FD_H * xs;
        x[i] = x0 + h;
        double fp = obj(ctx);
        x[i] = x0 - h;
        double fm = obj(ctx);
        x[i] = x0;
        fs[s] = (fp - fm) / (2.0 * h);
        gs[s] = g[i];
        rs[s] = gref[i];
    }
    snprintf(lab, sizeof lab, "%s:fd", label);
    tc_check(tc, lab, rel_dd(gs, fs, m), tol_fd);
    double self = rel_dd(rs, fs, m);
    if (!(self <= TOL_REF_FD)) {
        snprintf(lab, sizeof lab, "%s:REF-vs-FD", label);
        tc_check(tc, lab, self, TOL_REF_FD);
    }
}

/* ------------------------------------------------------------------ memory */

static void test_memory(const mae_backend *be, size_t n) {
    tcase tc;
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu", n);
    tc_begin(&tc, be, "alloc/upload/zero", shape);
    float *h = tc_f(&tc, n);
    fill_uniform(h, n, -1, 1);
    float *d = tc_out(&tc, h, n);
    float *back = tc_get(&tc, d, n);
    if (memcmp(back, h, n * sizeof(float)) != 0) tc_failmsg(&tc, "upload/download roundtrip");
    be->zero(d, n * sizeof(float));
    float *z = tc_get(&tc, d, n);
    size_t nz = 0;
    for (size_t i = 0; i < n; i++) nz += z[i] != 0.0f;
    tc_append(&tc, " nonzero_after_zero=%zu", nz);
    if (nz) tc.fail = 1;
    tc_end(&tc);
}

/* ------------------------------------------------------------------ matmul */

typedef struct {
    double *inp, *w, *bias, *R, *out;
    int M, K, N;
} mm_ctx;

static double mm_obj(void *p) {
    mm_ctx *c = p;
    ref_matmul_forward(c->out, c->inp, c->w, c->bias, c->M, c->K, c->N);
    return dot_dd(c->out, c->R, (size_t)c->M * c->N);
}

static void test_matmul_forward(const mae_backend *be, int M, int K, int N, int with_bias) {
    tcase tc;
    char shape[64];
    snprintf(shape, sizeof shape, "M=%d K=%d N=%d bias=%s", M, K, N, with_bias ? "yes" : "NULL");
    tc_begin(&tc, be, "matmul_forward", shape);
    size_t nI = (size_t)M * K, nW = (size_t)N * K, nO = (size_t)M * N;
    float *inp = tc_f(&tc, nI), *w = tc_f(&tc, nW), *bias = tc_f(&tc, N);
    fill_uniform(inp, nI, -1, 1);
    fill_uniform(w, nW, -1, 1);
    fill_uniform(bias, N, -1, 1);
    double *ref = tc_d(&tc, nO);
    ref_matmul_forward(ref, tc_dcopy(&tc, inp, nI), tc_dcopy(&tc, w, nW),
                       with_bias ? tc_dcopy(&tc, bias, N) : NULL, M, K, N);
    float *d_out = tc_poison(&tc, "out", nO);
    be->matmul_forward(d_out, tc_in(&tc, inp, nI), tc_in(&tc, w, nW),
                       with_bias ? tc_in(&tc, bias, N) : NULL, M, K, N, MAE_PREC_FP32);
    float *out = tc_get(&tc, d_out, nO);
    tc_check(&tc, "out", rel_fd(out, ref, nO), TOL_FWD);
    tc_append(&tc, " maxabs=%.1e", maxabs_fd(out, ref, nO));
    tc_end(&tc);
}

/* which: bit 0 dinp, bit 1 dw, bit 2 dbias; fd_samp 0 = no finite differences */
static void test_matmul_backward(const mae_backend *be, int M, int K, int N, int which,
                                 size_t fd_samp) {
    tcase tc;
    char shape[96];
    snprintf(shape, sizeof shape, "M=%d K=%d N=%d %s,%s,%s", M, K, N,
             which & 1 ? "dinp" : "NULL", which & 2 ? "dw" : "NULL",
             which & 4 ? "dbias" : "NULL");
    tc_begin(&tc, be, "matmul_backward", shape);
    size_t nI = (size_t)M * K, nW = (size_t)N * K, nO = (size_t)M * N;
    float *inp = tc_f(&tc, nI), *w = tc_f(&tc, nW), *bias = tc_f(&tc, N), *dout = tc_f(&tc, nO);
    fill_uniform(inp, nI, -1, 1);
    fill_uniform(w, nW, -1, 1);
    fill_uniform(bias, N, -1, 1);
    fill_uniform(dout, nO, -1, 1);
    mm_ctx c = {tc_dcopy(&tc, inp, nI), tc_dcopy(&tc, w, nW), tc_dcopy(&tc, bias, N),
                tc_dcopy(&tc, dout, nO), tc_d(&tc, nO), M, K, N};
    double *gI = tc_d(&tc, nI), *gW = tc_d(&tc, nW), *gB = tc_d(&tc, N);
    ref_matmul_backward(gI, gW, gB, c.R, c.inp, c.w, M, K, N);
    float *g0I = make_g0(&tc, gI, nI), *g0W = make_g0(&tc, gW, nW), *g0B = make_g0(&tc, gB, N);
    float *d_dI = which & 1 ? tc_out(&tc, g0I, nI) : NULL;
    float *d_dW = which & 2 ? tc_out(&tc, g0W, nW) : NULL;
    float *d_dB = which & 4 ? tc_out(&tc, g0B, N) : NULL;
    be->matmul_backward(d_dI, d_dW, d_dB, tc_in(&tc, dout, nO), tc_in(&tc, inp, nI),
                        tc_in(&tc, w, nW), M, K, N, MAE_PREC_FP32);
    objective_fn obj = fd_samp ? mm_obj : NULL;
    if (d_dI)
        check_grad(&tc, "dinp", tc_get(&tc, d_dI, nI), g0I, gI, nI, TOL_BWD, obj, &c, c.inp,
                   fd_samp, TOL_FD);
    if (d_dW)
        check_grad(&tc, "dw", tc_get(&tc, d_dW, nW), g0W, gW, nW, TOL_BWD, obj, &c, c.w, fd_samp,
                   TOL_FD);
    if (d_dB)
        check_grad(&tc, "dbias", tc_get(&tc, d_dB, N), g0B, gB, N, TOL_BWD, obj, &c, c.bias,
                   fd_samp, TOL_FD);
    tc_end(&tc);
}

/* fused fc1 + GELU: pre = inp @ w^T + bias, act = gelu(pre), against the double reference */
static void test_matmul_forward_gelu(const mae_backend *be, int M, int K, int N) {
    tcase tc;
    char shape[64];
    snprintf(shape, sizeof shape, "M=%d K=%d N=%d", M, K, N);
    tc_begin(&tc, be, "matmul_forward_gelu", shape);
    size_t nI = (size_t)M * K, nW = (size_t)N * K, nO = (size_t)M * N;
    float *inp = tc_f(&tc, nI), *w = tc_f(&tc, nW), *bias = tc_f(&tc, N);
    fill_uniform(inp, nI, -1, 1);
    fill_uniform(w, nW, -1, 1);
    fill_uniform(bias, N, -1, 1);
    double *pre = tc_d(&tc, nO), *act = tc_d(&tc, nO);
    ref_matmul_forward(pre, tc_dcopy(&tc, inp, nI), tc_dcopy(&tc, w, nW), tc_dcopy(&tc, bias, N),
                       M, K, N);
    for (size_t i = 0; i < nO; i++) act[i] = ref_gelu(pre[i]);
    float *d_pre = tc_poison(&tc, "pre", nO), *d_act = tc_poison(&tc, "act", nO);
    be->matmul_forward_gelu(d_pre, d_act, tc_in(&tc, inp, nI), tc_in(&tc, w, nW),
                            tc_in(&tc, bias, N), M, K, N, MAE_PREC_FP32);
    tc_check(&tc, "pre", rel_fd(tc_get(&tc, d_pre, nO), pre, nO), TOL_FWD);
    tc_check(&tc, "act", rel_fd(tc_get(&tc, d_act, nO), act, nO), TOL_FWD);
    tc_end(&tc);
}

/* fused fc2 backward through the GELU: dpre = (dout @ w) * gelu'(pre) overwritten (the buffer
 * starts with the NaN poison), dw += dout^T @ act, dbias += colsum(dout) (both start non-zero) */
static void test_matmul_backward_gelu(const mae_backend *be, int M, int K, int N) {
    tcase tc;
    char shape[64];
    snprintf(shape, sizeof shape, "M=%d K=%d N=%d", M, K, N);
    tc_begin(&tc, be, "matmul_backward_gelu", shape);
    size_t nI = (size_t)M * K, nW = (size_t)N * K, nO = (size_t)M * N;
    float *pre = tc_f(&tc, nI), *act = tc_f(&tc, nI), *w = tc_f(&tc, nW), *dout = tc_f(&tc, nO);
    float *dw0 = tc_f(&tc, nW), *db0 = tc_f(&tc, N);
    fill_uniform(pre, nI, -4, 4);
    /* the far tails too (exp underflow, act underflow) and x = 0 */
    if (nI > 3) {
        pre[0] = 0.0f;
        pre[1] = -20.0f;
        pre[2] = 15.0f;
        pre[3] = -9.0f;
    }
    for (size_t i = 0; i < nI; i++) act[i] = (float)ref_gelu(pre[i]);
    fill_uniform(w, nW, -1, 1);
    fill_uniform(dout, nO, -1, 1);
    fill_uniform(dw0, nW, -1, 1);
    fill_uniform(db0, N, -1, 1);
    double *gI = tc_d(&tc, nI), *gW = tc_d(&tc, nW), *gB = tc_d(&tc, N);
    ref_matmul_backward(gI, gW, gB, tc_dcopy(&tc, dout, nO), tc_dcopy(&tc, act, nI),
                        tc_dcopy(&tc, w, nW), M, K, N);
    for (size_t i = 0; i < nI; i++) gI[i] *= ref_gelu_grad(pre[i]);
    for (size_t i = 0; i < nW; i++) gW[i] += dw0[i];
    for (int i = 0; i < N; i++) gB[i] += db0[i];
    float *d_dpre = tc_poison(&tc, "dpre", nI), *d_dw = tc_out(&tc, dw0, nW), *d_db = tc_out(&tc, db0, N);
    be->matmul_backward_gelu(d_dpre, d_dw, d_db, tc_in(&tc, dout, nO), tc_in(&tc, act, nI),
                             tc_in(&tc, pre, nI), tc_in(&tc, w, nW), M, K, N, MAE_PREC_FP32);
    tc_check(&tc, "dpre", rel_fd(tc_get(&tc, d_dpre, nI), gI, nI), TOL_BWD);
    tc_check(&tc, "dw", rel_fd(tc_get(&tc, d_dw, nW), gW, nW), TOL_BWD);
    tc_check(&tc, "dbias", rel_fd(tc_get(&tc, d_db, N), gB, N), TOL_BWD);
    tc_end(&tc);
}

/* ------------------------------------------------------------------ layernorm */

typedef struct {
    double *inp, *w, *b, *R, *out;
    int N, C;
} ln_ctx;

static double ln_obj(void *p) {
    ln_ctx *c = p;
    ref_layernorm_forward(c->out, NULL, NULL, c->inp, c->w, c->b, c->N, c->C);
    return dot_dd(c->out, c->R, (size_t)c->N * c->C);
}

/* rows get a random offset and scale (times spread) so mean/variance are non-trivial */
static void fill_ln_input(float *x, int N, int C, double spread) {
    for (int i = 0; i < N; i++) {
        double off = spread * rng_uniform(-2, 2), sc = spread * rng_uniform(0.3, 3);
        for (int c = 0; c < C; c++) x[(size_t)i * C + c] = (float)(off + sc * rng_uniform(-1, 1));
    }
}

/* spread scales the inputs: with spread ~1e-3 the variance is comparable to eps, so the
 * placement of eps matters. With C == 2 and var >> eps the exact input gradient is
 * rstd*(g0-g1)/2 * eps/(var+eps), the residual of cancelling O(rstd*|g|) float terms, so
 * C == 2 is run with a small spread (var ~ eps) where the problem is well conditioned. */
static void test_layernorm(const mae_backend *be, int N, int C, double spread, size_t fd_samp) {
    tcase tc;
    char shape[64];
    snprintf(shape, sizeof shape, "N=%d C=%d spread=%g", N, C, spread);
    size_t n = (size_t)N * C;

    /* forward */
    tc_begin(&tc, be, "layernorm_forward", shape);
    float *x = tc_f(&tc, n), *w = tc_f(&tc, C), *b = tc_f(&tc, C);
    fill_ln_input(x, N, C, spread);
    fill_uniform(w, C, -1.5, 1.5);
    fill_uniform(b, C, -1, 1);
    double *ro = tc_d(&tc, n), *rm = tc_d(&tc, N), *rr = tc_d(&tc, N);
    ref_layernorm_forward(ro, rm, rr, tc_dcopy(&tc, x, n), tc_dcopy(&tc, w, C),
                          tc_dcopy(&tc, b, C), N, C);
    float *d_o = tc_poison(&tc, "out", n), *d_m = tc_poison(&tc, "mean", N),
          *d_r = tc_poison(&tc, "rstd", N);
    be->layernorm_forward(d_o, d_m, d_r, tc_in(&tc, x, n), tc_in(&tc, w, C), tc_in(&tc, b, C), N,
                          C, 1e-6f);
    tc_check(&tc, "out", rel_fd(tc_get(&tc, d_o, n), ro, n), TOL_FWD);
    tc_check(&tc, "mean", rel_fd(tc_get(&tc, d_m, N), rm, N), TOL_FWD);
    tc_check(&tc, "rstd", rel_fd(tc_get(&tc, d_r, N), rr, N), TOL_FWD);
    tc_end(&tc);

    /* backward; mean/rstd given to the kernel come from the double reference */
    tc_begin(&tc, be, "layernorm_backward", shape);
    x = tc_f(&tc, n);
    w = tc_f(&tc, C);
    b = tc_f(&tc, C);
    float *dout = tc_f(&tc, n);
    fill_ln_input(x, N, C, spread);
    fill_uniform(w, C, -1.5, 1.5);
    fill_uniform(b, C, -1, 1);
    fill_uniform(dout, n, -1, 1);
    ln_ctx c = {tc_dcopy(&tc, x, n), tc_dcopy(&tc, w, C), tc_dcopy(&tc, b, C),
                tc_dcopy(&tc, dout, n), tc_d(&tc, n), N, C};
    rm = tc_d(&tc, N);
    rr = tc_d(&tc, N);
    ref_layernorm_forward(c.out, rm, rr, c.inp, c.w, c.b, N, C);
    double *gx = tc_d(&tc, n), *gw = tc_d(&tc, C), *gb = tc_d(&tc, C);
    ref_layernorm_backward(gx, gw, gb, c.R, c.inp, c.w, N, C);
    float *g0x = make_g0(&tc, gx, n), *g0w = make_g0(&tc, gw, C), *g0b = make_g0(&tc, gb, C);
    float *d_dx = tc_out(&tc, g0x, n), *d_dw = tc_out(&tc, g0w, C), *d_db = tc_out(&tc, g0b, C);
    be->layernorm_backward(d_dx, d_dw, d_db, tc_in(&tc, dout, n), tc_in(&tc, x, n),
                           tc_in(&tc, w, C), tc_in(&tc, tc_fcopy(&tc, rm, N), N),
                           tc_in(&tc, tc_fcopy(&tc, rr, N), N), N, C);
    check_grad(&tc, "dinp", tc_get(&tc, d_dx, n), g0x, gx, n, TOL_BWD, ln_obj, &c, c.inp, fd_samp,
               TOL_FD);
    check_grad(&tc, "dw", tc_get(&tc, d_dw, C), g0w, gw, C, TOL_BWD, ln_obj, &c, c.w, fd_samp,
               TOL_FD);
    check_grad(&tc, "db", tc_get(&tc, d_db, C), g0b, gb, C, TOL_BWD, ln_obj, &c, c.b, fd_samp,
               TOL_FD);
    tc_end(&tc);
}

/* ------------------------------------------------------------------ gelu / add */

typedef struct {
    double *x, *R;
    size_t n;
} gelu_ctx;

static double gelu_obj(void *p) {
    gelu_ctx *c = p;
    double s = 0.0;
    for (size_t i = 0; i < c->n; i++) s += ref_gelu(c->x[i]) * c->R[i];
    return s;
}

static void test_gelu(const mae_backend *be, size_t n, double range) {
    tcase tc;
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu x in +-%g", n, range);

    tc_begin(&tc, be, "gelu_forward", shape);
    float *x = tc_f(&tc, n);
    fill_uniform(x, n, -range, range);
    double *ref = tc_d(&tc, n);
    for (size_t i = 0; i < n; i++) ref[i] = ref_gelu((double)x[i]);
    float *d_o = tc_poison(&tc, "out", n);
    be->gelu_forward(d_o, tc_in(&tc, x, n), n);
    float *o = tc_get(&tc, d_o, n);
    tc_check(&tc, "out", rel_fd(o, ref, n), TOL_FWD);
    tc_append(&tc, " maxabs=%.1e", maxabs_fd(o, ref, n));
    tc_end(&tc);

    tc_begin(&tc, be, "gelu_backward", shape);
    x = tc_f(&tc, n);
    float *dout = tc_f(&tc, n);
    fill_uniform(x, n, -range, range);
    fill_uniform(dout, n, -1, 1);
    gelu_ctx c = {tc_dcopy(&tc, x, n), tc_dcopy(&tc, dout, n), n};
    double *g = tc_d(&tc, n);
    for (size_t i = 0; i < n; i++) g[i] = ref_gelu_grad(c.x[i]) * c.R[i];
    float *g0 = make_g0(&tc, g, n);
    float *d_dx = tc_out(&tc, g0, n);
    be->gelu_backward(d_dx, tc_in(&tc, x, n), tc_in(&tc, dout, n), n);
    check_grad(&tc, "dinp", tc_get(&tc, d_dx, n), g0, g, n, TOL_BWD, gelu_obj, &c, c.x, 48,
               TOL_FD);
    tc_end(&tc);
}

static void test_add(const mae_backend *be, size_t n) {
    tcase tc;
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu", n);

    tc_begin(&tc, be, "add", shape);
    float *a = tc_f(&tc, n), *b = tc_f(&tc, n);
    fill_normal(a, n, 1.0);
    fill_normal(b, n, 1.0);
    double *ref = tc_d(&tc, n);
    for (size_t i = 0; i < n; i++) ref[i] = (double)a[i] + (double)b[i];
    float *d_o = tc_poison(&tc, "out", n);
    be->add(d_o, tc_in(&tc, a, n), tc_in(&tc, b, n), n);
    tc_check_exact(&tc, "out", tc_get(&tc, d_o, n), ref, n);
    tc_end(&tc);

    tc_begin(&tc, be, "add_inplace", shape);
    a = tc_f(&tc, n);
    b = tc_f(&tc, n);
    fill_normal(a, n, 1.0);
    fill_normal(b, n, 1.0);
    ref = tc_d(&tc, n);
    for (size_t i = 0; i < n; i++) ref[i] = (double)a[i] + (double)b[i];
    float *d_acc = tc_out(&tc, a, n);
    be->add_inplace(d_acc, tc_in(&tc, b, n), n);
    tc_check_exact(&tc, "acc", tc_get(&tc, d_acc, n), ref, n);
    tc_end(&tc);
}

/* ------------------------------------------------------------------ attention */

typedef struct {
    double *qkv, *R, *out;
    int B, T, C, NH;
} att_ctx;

static double att_obj(void *p) {
    att_ctx *c = p;
    ref_attention_forward(c->out, NULL, c->qkv, c->B, c->T, c->C, c->NH);
    return dot_dd(c->out, c->R, (size_t)c->B * c->T * c->C);
}

/* copy part (0 q, 1 k, 2 v) of a (B,T,3C) tensor into (B*T, C) */
static void qkv_part_d(double *dst, const double *src, size_t BT, int C, int part) {
    for (size_t r = 0; r < BT; r++)
        for (int c = 0; c < C; c++) dst[r * C + c] = src[r * 3 * C + (size_t)part * C + c];
}
static void qkv_part_f(double *dst, const float *src, const float *sub, size_t BT, int C,
                       int part) {
    for (size_t r = 0; r < BT; r++)
        for (int c = 0; c < C; c++) {
            size_t i = r * 3 * C + (size_t)part * C + c;
            dst[r * C + c] = (double)src[i] - (double)sub[i];
        }
}

static void test_attention(const mae_backend *be, int B, int T, int C, int NH, size_t fd_samp) {
    tcase tc;
    char shape[64];
    snprintf(shape, sizeof shape, "B=%d T=%d C=%d NH=%d (hd=%d)", B, T, C, NH, C / NH);
    size_t BT = (size_t)B * T, nqkv = BT * 3 * C, nout = BT * C, natt = (size_t)B * NH * T * T;
    /* what the backend keeps between forward and backward: the probabilities (natt), or the
     * log-sum-exp of each row of scaled scores (B*NH*T, a fused attention) */
    size_t nst = be->attention_state_floats(B, T, C, NH);
    if (nst != natt && nst != (size_t)B * NH * T) {
        tc_begin(&tc, be, "attention_state_floats", shape);
        tc_check(&tc, "size", 1.0, 0.0);
        tc_append(&tc, " %zu floats: neither B*NH*T*T nor B*NH*T", nst);
        tc_end(&tc);
        return;
    }

    tc_begin(&tc, be, "attention_forward", shape);
    float *qkv = tc_f(&tc, nqkv);
    fill_normal(qkv, nqkv, 1.0);
    double *ro = tc_d(&tc, nout), *ra = tc_d(&tc, natt);
    ref_attention_forward(ro, ra, tc_dcopy(&tc, qkv, nqkv), B, T, C, NH);
    float *d_o = tc_poison(&tc, "out", nout), *d_a = tc_poison(&tc, "att", nst);
    be->attention_forward(d_o, d_a, tc_in(&tc, qkv, nqkv), B, T, C, NH, MAE_PREC_FP32);
    float *o = tc_get(&tc, d_o, nout);
    float *a = tc_get(&tc, d_a, nst);
    tc_check(&tc, "out", rel_fd(o, ro, nout), TOL_FWD);
    tc_append(&tc, " maxabs=%.1e", maxabs_fd(o, ro, nout));
    if (nst == natt) {
        tc_check(&tc, "att", rel_fd(a, ra, natt), TOL_FWD);
        tc_append(&tc, " maxabs=%.1e", maxabs_fd(a, ra, natt));
    } else { /* lse[b,h,t] = log sum_s exp(scale q_t . k_s), in double from qkv */
        double *rl = tc_d(&tc, nst), *sv = tc_d(&tc, (size_t)T), sc = 1.0 / sqrt((double)(C / NH));
        int hd = C / NH;
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int t = 0; t < T; t++) {
                    double mx = -1e300, se = 0.0;
                    for (int s2 = 0; s2 < T; s2++) {
                        double d = 0.0;
                        for (int i = 0; i < hd; i++)
                            d += (double)qkv[((size_t)b * T + t) * 3 * C + (size_t)h * hd + i] *
                                 qkv[((size_t)b * T + s2) * 3 * C + C + (size_t)h * hd + i];
                        sv[s2] = d * sc;
                        if (sv[s2] > mx) mx = sv[s2];
                    }
                    for (int s2 = 0; s2 < T; s2++) se += exp(sv[s2] - mx);
                    rl[((size_t)b * NH + h) * T + t] = mx + log(se);
                }
        tc_check(&tc, "lse", rel_fd(a, rl, nst), TOL_FWD);
        tc_append(&tc, " maxabs=%.1e", maxabs_fd(a, rl, nst));
    }
    tc_end(&tc);

    /* backward: att and out are the backend's own forward's (its state); datt is scratch
     * (poisoned, not checked: the op may not use it) */
    tc_begin(&tc, be, "attention_backward", shape);
    qkv = tc_f(&tc, nqkv);
    float *dout = tc_f(&tc, nout);
    fill_normal(qkv, nqkv, 1.0);
    fill_uniform(dout, nout, -1, 1);
    att_ctx c = {tc_dcopy(&tc, qkv, nqkv), tc_dcopy(&tc, dout, nout), tc_d(&tc, nout), B, T, C,
                 NH};
    ra = tc_d(&tc, natt);
    ref_attention_forward(c.out, ra, c.qkv, B, T, C, NH);
    double *g = tc_d(&tc, nqkv);
    ref_attention_backward(g, c.R, c.qkv, B, T, C, NH);
    /* dqkv is overwritten: the buffer starts with the NaN poison, and the result is compared
     * as is (g0 = 0 below) */
    float *g0 = tc_f(&tc, nqkv);
    memset(g0, 0, sizeof(float) * nqkv);
    float *d_dqkv = tc_poison(&tc, "dqkv", nqkv);
    float *d_datt = tc_poison(&tc, NULL, nst);
    float *d_qkv = tc_in(&tc, qkv, nqkv);
    float *d_fo = tc_poison(&tc, "forward out", nout), *d_fa = tc_poison(&tc, "forward att", nst);
    be->attention_forward(d_fo, d_fa, d_qkv, B, T, C, NH, MAE_PREC_FP32);
    be->attention_backward(d_dqkv, d_datt, tc_in(&tc, dout, nout), d_qkv, d_fa, d_fo, B, T, C,
                           NH, MAE_PREC_FP32);
    float *got = tc_get(&tc, d_dqkv, nqkv);
    /* per-part analytic checks, then finite differences over the whole qkv */
    static const char *names[3] = {"dq", "dk", "dv"};
    double *pg = tc_d(&tc, nout), *pr = tc_d(&tc, nout);
    for (int part = 0; part < 3; part++) {
        qkv_part_f(pg, got, g0, BT, C, part);
        qkv_part_d(pr, g, BT, C, part);
        tc_check(&tc, names[part], rel_dd(pg, pr, nout), TOL_BWD);
    }
    check_grad(&tc, "dqkv", got, g0, g, nqkv, TOL_BWD, att_obj, &c, c.qkv, fd_samp, TOL_FD);
    tc_end(&tc);
}

/* ------------------------------------------------------------------ masking helpers */

/* ids_shuffle = argsort(noise) per sample, ids_restore = argsort(ids_shuffle),
 * ids_keep = ids_shuffle[:, :K] (as official random_masking) */
typedef struct {
    double key;
    int32_t idx;
} keyed;

static int keyed_cmp(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    if (x->key < y->key) return -1;
    if (x->key > y->key) return 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static void random_masking(tcase *tc, int B, int L, int K, int32_t *ids_keep,
                           int32_t *ids_restore, float *mask) {
    keyed *kv = tc_host(tc, sizeof(keyed) * (size_t)L);
    int32_t *shuf = tc_i(tc, (size_t)L);
    for (int b = 0; b < B; b++) {
        for (int l = 0; l < L; l++) {
            kv[l].key = rng_u01();
            kv[l].idx = l;
        }
        qsort(kv, (size_t)L, sizeof *kv, keyed_cmp);
        for (int l = 0; l < L; l++) shuf[l] = kv[l].idx;
        /* argsort of a permutation */
        for (int l = 0; l < L; l++) {
            kv[l].key = (double)shuf[l];
            kv[l].idx = l;
        }
        qsort(kv, (size_t)L, sizeof *kv, keyed_cmp);
        for (int l = 0; l < L; l++) {
            if (ids_restore) ids_restore[(size_t)b * L + l] = kv[l].idx;
            if (mask) mask[(size_t)b * L + l] = kv[l].idx < K ? 0.0f : 1.0f;
        }
        if (ids_keep)
            for (int k = 0; k < K; k++) ids_keep[(size_t)b * K + k] = shuf[k];
    }
}

/* ------------------------------------------------------------------ patches */

static void test_im2patch(const mae_backend *be, int B, int C, int H, int W, int p, int K,
                          int use_ids) {
    tcase tc;
    char shape[96];
    int L = (H / p) * (W / p);
    if (!use_ids) K = L;
    snprintf(shape, sizeof shape, "B=%d C=%d H=%d W=%d p=%d K=%d ids=%s", B, C, H, W, p, K,
             use_ids ? "keep" : "NULL");
    tc_begin(&tc, be, "im2patch", shape);
    size_t nimg = (size_t)B * C * H * W, ncol = (size_t)B * K * C * p * p;
    float *img = tc_f(&tc, nimg);
    fill_uniform(img, nimg, -1, 1);
    int32_t *ids = NULL;
    if (use_ids) {
        ids = tc_i(&tc, (size_t)B * K);
        random_masking(&tc, B, L, K, ids, NULL, NULL);
    }
    double *ref = tc_d(&tc, ncol);
    ref_im2patch(ref, tc_dcopy(&tc, img, nimg), ids, B, C, H, W, p, K);
    float *d_c = tc_poison(&tc, "cols", ncol);
    be->im2patch(d_c, tc_in(&tc, img, nimg), ids ? tc_in_ids(&tc, ids, (size_t)B * K) : NULL, B,
                 C, H, W, p, K);
    tc_check_exact(&tc, "cols", tc_get(&tc, d_c, ncol), ref, ncol);
    tc_end(&tc);
}

static void test_patchify(const mae_backend *be, int B, int C, int H, int W, int p) {
    tcase tc;
    char shape[96];
    int L = (H / p) * (W / p);
    snprintf(shape, sizeof shape, "B=%d C=%d H=%d W=%d p=%d (L=%d)", B, C, H, W, p, L);
    tc_begin(&tc, be, "patchify", shape);
    size_t nimg = (size_t)B * C * H * W, nt = (size_t)B * L * C * p * p;
    float *img = tc_f(&tc, nimg);
    fill_uniform(img, nimg, -1, 1);
    double *ref = tc_d(&tc, nt);
    ref_patchify(ref, tc_dcopy(&tc, img, nimg), B, C, H, W, p);
    float *d_t = tc_poison(&tc, "target", nt);
    be->patchify(d_t, tc_in(&tc, img, nimg), B, C, H, W, p);
    tc_check_exact(&tc, "target", tc_get(&tc, d_t, nt), ref, nt);
    tc_end(&tc);
}

/* ------------------------------------------------------------------ token plumbing */

typedef struct {
    double *emb, *cls, *pos, *R, *out;
    const int32_t *ids;
    int B, L, K, D;
} emb_ctx;

static double emb_obj(void *p) {
    emb_ctx *c = p;
    ref_embed_tokens(c->out, c->emb, c->cls, c->pos, c->ids, c->B, c->L, c->K, c->D);
    return dot_dd(c->out, c->R, (size_t)c->B * (1 + c->K) * c->D);
}

static void test_embed_tokens(const mae_backend *be, int B, int L, int K, int D) {
    tcase tc;
    char shape[64];
    snprintf(shape, sizeof shape, "B=%d L=%d K=%d D=%d", B, L, K, D);
    size_t nemb = (size_t)B * K * D, npos = (size_t)(1 + L) * D, nx = (size_t)B * (1 + K) * D;

    tc_begin(&tc, be, "embed_tokens", shape);
    float *emb = tc_f(&tc, nemb), *cls = tc_f(&tc, D), *pos = tc_f(&tc, npos);
    fill_normal(emb, nemb, 1.0);
    fill_normal(cls, D, 1.0);
    fill_normal(pos, npos, 1.0);
    int32_t *ids = tc_i(&tc, (size_t)B * K);
    random_masking(&tc, B, L, K, ids, NULL, NULL);
    double *ref = tc_d(&tc, nx);
    ref_embed_tokens(ref, tc_dcopy(&tc, emb, nemb), tc_dcopy(&tc, cls, D),
                     tc_dcopy(&tc, pos, npos), ids, B, L, K, D);
    float *d_x = tc_poison(&tc, "x", nx);
    be->embed_tokens(d_x, tc_in(&tc, emb, nemb), tc_in(&tc, cls, D), tc_in(&tc, pos, npos),
                     tc_in_ids(&tc, ids, (size_t)B * K), B, L, K, D);
    tc_check_exact(&tc, "x", tc_get(&tc, d_x, nx), ref, nx);
    tc_end(&tc);

    tc_begin(&tc, be, "embed_tokens_backward", shape);
    emb = tc_f(&tc, nemb);
    cls = tc_f(&tc, D);
    pos = tc_f(&tc, npos);
    float *dx = tc_f(&tc, nx);
    fill_normal(emb, nemb, 1.0);
    fill_normal(cls, D, 1.0);
    fill_normal(pos, npos, 1.0);
    fill_uniform(dx, nx, -1, 1);
    ids = tc_i(&tc, (size_t)B * K);
    random_masking(&tc, B, L, K, ids, NULL, NULL);
    emb_ctx c = {tc_dcopy(&tc, emb, nemb), tc_dcopy(&tc, cls, D), tc_dcopy(&tc, pos, npos),
                 tc_dcopy(&tc, dx, nx), tc_d(&tc, nx), ids, B, L, K, D};
    double *ge = tc_d(&tc, nemb), *gc = tc_d(&tc, D);
    ref_embed_tokens_backward(ge, gc, c.R, B, K, D);
    float *g0e = make_g0(&tc, ge, nemb), *g0c = make_g0(&tc, gc, D);
    float *d_de = tc_out(&tc, g0e, nemb), *d_dc = tc_out(&tc, g0c, D);
    be->embed_tokens_backward(d_de, d_dc, tc_in(&tc, dx, nx), B, K, D);
    check_grad(&tc, "demb", tc_get(&tc, d_de, nemb), g0e, ge, nemb, TOL_MOVE, emb_obj, &c, c.emb,
               32, TOL_FD);
    check_grad(&tc, "dcls", tc_get(&tc, d_dc, D), g0c, gc, D, TOL_MOVE, emb_obj, &c, c.cls, 32,
               TOL_FD);
    tc_end(&tc);
}

typedef struct {
    double *xd, *mt, *pos, *R, *out;
    const int32_t *ids;
    int B, L, K, D;
} uns_ctx;

static double uns_obj(void *p) {
    uns_ctx *c = p;
    ref_unshuffle(c->out, c->xd, c->mt, c->pos, c->ids, c->B, c->L, c->K, c->D);
    return dot_dd(c->out, c->R, (size_t)c->B * (1 + c->L) * c->D);
}

static void test_unshuffle(const mae_backend *be, int B, int L, int K, int D) {
    tcase tc;
    char shape[64];
    snprintf(shape, sizeof shape, "B=%d L=%d K=%d D=%d", B, L, K, D);
    size_t nxd = (size_t)B * (1 + K) * D, npos = (size_t)(1 + L) * D, ny = (size_t)B * (1 + L) * D;

    tc_begin(&tc, be, "unshuffle", shape);
    float *xd = tc_f(&tc, nxd), *mt = tc_f(&tc, D), *pos = tc_f(&tc, npos);
    fill_normal(xd, nxd, 1.0);
    fill_normal(mt, D, 1.0);
    fill_normal(pos, npos, 1.0);
    int32_t *ids = tc_i(&tc, (size_t)B * L);
    random_masking(&tc, B, L, K, NULL, ids, NULL);
    double *ref = tc_d(&tc, ny);
    ref_unshuffle(ref, tc_dcopy(&tc, xd, nxd), tc_dcopy(&tc, mt, D), tc_dcopy(&tc, pos, npos),
                  ids, B, L, K, D);
    float *d_y = tc_poison(&tc, "y", ny);
    be->unshuffle(d_y, tc_in(&tc, xd, nxd), tc_in(&tc, mt, D), tc_in(&tc, pos, npos),
                  tc_in_ids(&tc, ids, (size_t)B * L), B, L, K, D);
    tc_check_exact(&tc, "y", tc_get(&tc, d_y, ny), ref, ny);
    tc_end(&tc);

    tc_begin(&tc, be, "unshuffle_backward", shape);
    xd = tc_f(&tc, nxd);
    mt = tc_f(&tc, D);
    pos = tc_f(&tc, npos);
    float *dy = tc_f(&tc, ny);
    fill_normal(xd, nxd, 1.0);
    fill_normal(mt, D, 1.0);
    fill_normal(pos, npos, 1.0);
    fill_uniform(dy, ny, -1, 1);
    ids = tc_i(&tc, (size_t)B * L);
    random_masking(&tc, B, L, K, NULL, ids, NULL);
    uns_ctx c = {tc_dcopy(&tc, xd, nxd), tc_dcopy(&tc, mt, D), tc_dcopy(&tc, pos, npos),
                 tc_dcopy(&tc, dy, ny), tc_d(&tc, ny), ids, B, L, K, D};
    double *gx = tc_d(&tc, nxd), *gm = tc_d(&tc, D);
    ref_unshuffle_backward(gx, gm, c.R, ids, B, L, K, D);
    float *g0x = make_g0(&tc, gx, nxd), *g0m = make_g0(&tc, gm, D);
    float *d_dx = tc_out(&tc, g0x, nxd), *d_dm = tc_out(&tc, g0m, D);
    be->unshuffle_backward(d_dx, d_dm, tc_in(&tc, dy, ny), tc_in_ids(&tc, ids, (size_t)B * L), B,
                           L, K, D);
    check_grad(&tc, "dxd", tc_get(&tc, d_dx, nxd), g0x, gx, nxd, TOL_MOVE, uns_obj, &c, c.xd, 32,
               TOL_FD);
    check_grad(&tc, "dmask_token", tc_get(&tc, d_dm, D), g0m, gm, D, TOL_MOVE, uns_obj, &c, c.mt,
               32, TOL_FD);
    tc_end(&tc);
}

/* ------------------------------------------------------------------ loss */

typedef struct {
    double *pred, *target, *mask;
    int B, L, P, norm_pix;
    double dloss;
} loss_ctx;

static double loss_obj(void *p) {
    loss_ctx *c = p;
    return c->dloss *
           ref_mae_loss(NULL, c->pred, c->target, c->mask, c->B, c->L, c->P, c->norm_pix, 1.0);
}

/* mask_mode: 0 random (>= 1 removed), 1 none removed (sum mask == 0) */
static void test_mae_loss(const mae_backend *be, int B, int L, int P, int norm_pix, int with_grad,
                          float dloss, int mask_mode) {
    tcase tc;
    char shape[96];
    snprintf(shape, sizeof shape, "B=%d L=%d P=%d norm_pix=%d dpred=%s%s", B, L, P, norm_pix,
             with_grad ? "yes" : "NULL", mask_mode ? " mask=0" : "");
    tc_begin(&tc, be, "mae_loss", shape);
    size_t npred = (size_t)B * (1 + L) * P, nt = (size_t)B * L * P, nm = (size_t)B * L;
    float *pred = tc_f(&tc, npred), *target = tc_f(&tc, nt), *mask = tc_f(&tc, nm);
    fill_normal(pred, npred, 1.0);
    /* Per-patch offset/scale. Rows r%5==2 are constant (zero variance: the normalised target
     * must be exactly 0, no NaN); the constants are dyadic so the patch mean is exact in any
     * summation order (otherwise float rounding of the mean, amplified by 1/sqrt(1e-6), is
     * inherent noise of ~1e-4). Rows r%5==4 have a tiny spread (var ~1e-8..1e-6 <= eps). */
    static const float konst[4] = {0.5f, -1.25f, 2.0f, 0.0f};
    for (size_t r = 0; r < nm; r++) {
        double off = rng_uniform(-1, 1), sc = rng_uniform(0.2, 2);
        for (int i = 0; i < P; i++) {
            double t = off + sc * rng_normal();
            if (r % 5 == 2) t = konst[(r / 5) % 4];
            if (r % 5 == 4) t = rng_uniform(1e-4, 1e-3) * rng_normal();
            target[r * P + i] = (float)t;
        }
    }
    if (mask_mode == 0) {
        int K = L / 4 > 0 ? L / 4 : 1; /* keep 25% as MAE's mask_ratio 0.75 */
        random_masking(&tc, B, L, K, NULL, NULL, mask);
        /* make sure a constant and a tiny-variance patch are removed (mask 1) */
        mask[2] = 1.0f;
        mask[4] = 1.0f;
    }
    loss_ctx c = {tc_dcopy(&tc, pred, npred), tc_dcopy(&tc, target, nt), tc_dcopy(&tc, mask, nm),
                  B, L, P, norm_pix, (double)dloss};
    double *gref = tc_d(&tc, npred);
    double lref = ref_mae_loss(gref, c.pred, c.target, c.mask, B, L, P, norm_pix, c.dloss);
    float *g0 = make_g0(&tc, gref, npred);
    float *d_g = with_grad ? tc_out(&tc, g0, npred) : NULL;
    float loss = be->mae_loss(d_g, tc_in(&tc, pred, npred), tc_in(&tc, target, nt),
                              tc_in(&tc, mask, nm), B, L, P, norm_pix, dloss);
    double lerr = lref != 0.0 ? fabs((double)loss - lref) / fabs(lref) : fabs((double)loss);
    tc_append(&tc, " loss=%.6g", (double)loss);
    tc_check(&tc, "rel", lerr, TOL_FWD);
    if (mask_mode == 1 && loss != 0.0f) tc_failmsg(&tc, "loss must be 0 when sum(mask) == 0");
    if (with_grad) {
        float *got = tc_get(&tc, d_g, npred);
        /* CLS rows must be untouched (bit-exact G0) */
        size_t bad = 0;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < P; i++) {
                size_t j = (size_t)b * (1 + L) * P + i;
                if (memcmp(&got[j], &g0[j], sizeof(float)) != 0) bad++;
            }
        if (bad) tc_failmsg(&tc, "CLS rows of dpred modified");
        if (mask_mode == 1 && memcmp(got, g0, npred * sizeof(float)) != 0)
            tc_failmsg(&tc, "dpred modified although sum(mask) == 0");
        check_grad(&tc, "dpred", got, g0, gref, npred, TOL_BWD, loss_obj, &c, c.pred, 64, TOL_FD);
    }
    tc_end(&tc);
}

/* ------------------------------------------------------------------ optimizer / sumsq */

static void test_adamw(const mae_backend *be, size_t n, float lr, float wd) {
    const float b1 = 0.9f, b2 = 0.95f, eps = 1e-8f;
    tcase tc;
    char shape[96];
    snprintf(shape, sizeof shape, "n=%zu lr=%g wd=%g b2=%g", n, (double)lr, (double)wd,
             (double)b2);
    tc_begin(&tc, be, "adamw", shape);
    float *p = tc_f(&tc, n), *m = tc_f(&tc, n), *v = tc_f(&tc, n), *g = tc_f(&tc, n);
    fill_uniform(p, n, -1, 1);
    float *d_p = tc_out(&tc, p, n), *d_m = tc_out(&tc, m, n), *d_v = tc_out(&tc, v, n);
    double *rp = tc_d(&tc, n), *rm = tc_d(&tc, n), *rv = tc_d(&tc, n), *dref = tc_d(&tc, n),
           *dgot = tc_d(&tc, n);
    static const int steps[] = {1, 2, 3, 10, 1000};
    double ep = 0, em = 0, ev = 0, eu = 0;
    for (size_t si = 0; si < sizeof steps / sizeof steps[0]; si++) {
        int step = steps[si];
        /* gradients spanning many magnitudes (some below eps) so eps placement matters */
        for (size_t i = 0; i < n; i++) g[i] = (float)(rng_normal() * pow(10.0, rng_uniform(-10, 1)));
        float *d_g = tc_in(&tc, g, n);
        double bc1 = 1.0 - pow((double)b1, step), bc2 = 1.0 - pow((double)b2, step);
        /* reference starts from the backend's current (float) state */
        float *cp = tc_get(&tc, d_p, n), *cm = tc_get(&tc, d_m, n), *cv = tc_get(&tc, d_v, n);
        for (size_t i = 0; i < n; i++) {
            rp[i] = cp[i];
            rm[i] = cm[i];
            rv[i] = cv[i];
        }
        double *gd = tc_dcopy(&tc, g, n);
        ref_adamw(rp, gd, rm, rv, n, (double)lr, (double)b1, (double)b2, (double)eps, (double)wd,
                  (double)(float)bc1, (double)(float)bc2);
        mae_adamw_seg seg = {0, n, wd, 1.0f, 0};
        be->adamw(d_p, d_g, d_m, d_v, &seg, 1, lr, b1, b2, eps, (float)bc1, (float)bc2, 0);
        float *np = tc_get(&tc, d_p, n), *nmv = tc_get(&tc, d_m, n), *nv = tc_get(&tc, d_v, n);
        for (size_t i = 0; i < n; i++) {
            dref[i] = rp[i] - (double)cp[i];
            dgot[i] = (double)np[i] - (double)cp[i];
        }
        double e;
        if ((e = rel_fd(np, rp, n)) > ep || isnan(e)) ep = e;
        if ((e = rel_fd(nmv, rm, n)) > em || isnan(e)) em = e;
        if ((e = rel_fd(nv, rv, n)) > ev || isnan(e)) ev = e;
        /* the update p_new - p_old can only be as exact as p's float rounding (half an ulp of
         * |p| < 2, 1.2e-7) on top of the update's own float error: relative to the largest
         * update of this step that is 1.2e-7 / max|update| + 1e-5 (a step whose gradients all
         * lie below eps has a tiny update, where p's rounding dominates) */
        double umax = 0;
        for (size_t i = 0; i < n; i++) umax = fabs(dref[i]) > umax ? fabs(dref[i]) : umax;
        double tol_u = 1.2e-7 / (umax > 0 ? umax : 1e-30) + 1e-5;
        if ((e = rel_dd(dgot, dref, n) / tol_u) > eu || isnan(e)) eu = e;
    }
    tc_check(&tc, "p", ep, TOL_FWD / 10);
    tc_check(&tc, "m", em, TOL_FWD / 10);
    tc_check(&tc, "v", ev, TOL_FWD / 10);
    /* update p_new - p_old: error / its bound (above) */
    tc_check(&tc, "update/bound", eu, 1.0);
    tc_end(&tc);
}

/* several segments of one flat buffer, each with its own weight decay, zero_grad on: every
 * segment matches a one-segment call bit for bit, its gradient is zeroed, and the elements
 * between segments (a gap, like the fixed position embeddings) are left untouched */
static void test_adamw_segments(const mae_backend *be) {
    tcase tc;
    tc_begin(&tc, be, "adamw", "4 segments + gaps, zero_grad");
    const mae_adamw_seg segs[4] = {{0, 1000, 0.05f, 1.0f, 0}, {1003, 17, 0.0f, 1.0f, 0},
                                   {1020, 40000, 0.3f, 1.0f, 0}, {41030, 1, 0.05f, 1.0f, 0}};
    size_t n = 41040;
    float *p = tc_f(&tc, n), *m = tc_f(&tc, n), *v = tc_f(&tc, n), *g = tc_f(&tc, n);
    fill_uniform(p, n, -1, 1);
    fill_uniform(m, n, -0.1, 0.1);
    fill_uniform(v, n, 0, 0.1);
    fill_uniform(g, n, -1, 1);
    float *d_p = tc_out(&tc, p, n), *d_m = tc_out(&tc, m, n), *d_v = tc_out(&tc, v, n);
    float *d_g = tc_out(&tc, g, n);
    be->adamw(d_p, d_g, d_m, d_v, segs, 4, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.05f, 1);
    float *gp = tc_get(&tc, d_p, n), *gm = tc_get(&tc, d_m, n), *gv = tc_get(&tc, d_v, n);
    float *gg = tc_get(&tc, d_g, n);
    size_t bad = 0, notzero = 0, touched = 0;
    for (int s = 0; s < 4; s++) {
        size_t o = segs[s].offset, k = segs[s].n;
        float *e_p = tc_out(&tc, p + o, k), *e_m = tc_out(&tc, m + o, k), *e_v = tc_out(&tc, v + o, k);
        float *e_g = tc_in(&tc, g + o, k);
        mae_adamw_seg one = {0, k, segs[s].wd, 1.0f, 0};
        be->adamw(e_p, e_g, e_m, e_v, &one, 1, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.05f, 0);
        float *wp = tc_get(&tc, e_p, k), *wm = tc_get(&tc, e_m, k), *wv = tc_get(&tc, e_v, k);
        bad += memcmp(wp, gp + o, k * 4) != 0;
        bad += memcmp(wm, gm + o, k * 4) != 0;
        bad += memcmp(wv, gv + o, k * 4) != 0;
        for (size_t i = 0; i < k; i++) notzero += gg[o + i] != 0.0f;
    }
    static const size_t gaps[][2] = {{1000, 1003}, {41020, 41030}, {41031, 41040}};
    for (int q = 0; q < 3; q++)
        for (size_t i = gaps[q][0]; i < gaps[q][1]; i++)
            touched += gp[i] != p[i] || gm[i] != m[i] || gv[i] != v[i] || gg[i] != g[i];
    tc_check(&tc, "segments differing from one-segment calls", (double)bad, 0);
    tc_check(&tc, "gradients not zeroed", (double)notzero, 0);
    tc_check(&tc, "gap elements changed", (double)touched, 0);
    tc_end(&tc);
}

static void test_sumsq(const mae_backend *be, size_t n, double scale) {
    tcase tc;
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu scale=%g", n, scale);
    tc_begin(&tc, be, "sumsq", shape);
    float *x = tc_f(&tc, n);
    fill_normal(x, n, scale);
    double ref = ref_sumsq(tc_dcopy(&tc, x, n), n);
    double got = be->sumsq(tc_in(&tc, x, n), n);
    tc_append(&tc, " value=%.6g", got);
    /* computed in double: only double rounding error allowed */
    tc_check(&tc, "rel", fabs(got - ref) / (ref > 0 ? ref : 1.0), 1e-10);
    tc_end(&tc);
}

/* ------------------------------------------------------------------ driver */

int run_op_tests(const mae_backend *be) {
    int fail0 = g_nfail;
    printf("== backend %s\n", be->name);

    test_memory(be, 1);
    test_memory(be, 1003);

    /* matmul: forward with/without bias; backward with every NULL combination */
    static const int mm[][3] = {{7, 13, 5}, {64, 96, 80}, {1, 1, 1}, {3, 1, 9}, {33, 17, 1}};
    for (size_t i = 0; i < sizeof mm / sizeof mm[0]; i++) {
        test_matmul_forward(be, mm[i][0], mm[i][1], mm[i][2], 1);
        test_matmul_forward(be, mm[i][0], mm[i][1], mm[i][2], 0);
        size_t samp = mm[i][0] * mm[i][1] * mm[i][2] > 10000 ? 12 : 128;
        test_matmul_backward(be, mm[i][0], mm[i][1], mm[i][2], 7, samp);
    }
    for (int which = 0; which < 7; which++) test_matmul_backward(be, 7, 13, 5, which, 0);
    for (int which = 0; which < 7; which++) test_matmul_backward(be, 64, 96, 80, which, 0);
    for (size_t i = 0; i < sizeof mm / sizeof mm[0]; i++) {
        test_matmul_forward_gelu(be, mm[i][0], mm[i][1], mm[i][2]);
        test_matmul_backward_gelu(be, mm[i][0], mm[i][1], mm[i][2]);
    }
    test_matmul_forward_gelu(be, 200, 48, 130);
    test_matmul_backward_gelu(be, 200, 130, 48);

    test_layernorm(be, 7, 2, 3e-3, 64);
    test_layernorm(be, 13, 5, 1.0, 128);
    test_layernorm(be, 9, 16, 1e-3, 128);
    test_layernorm(be, 32, 192, 1.0, 32);
    test_layernorm(be, 1, 768, 1.0, 16);

    test_gelu(be, 1, 3.0);
    test_gelu(be, 1001, 4.0);
    test_gelu(be, 4099, 10.0);

    test_add(be, 1);
    test_add(be, 17);
    test_add(be, 100003);

    test_attention(be, 2, 13, 24, 3, 96);
    test_attention(be, 2, 1, 24, 3, 64);
    test_attention(be, 2, 50, 24, 3, 48);
    test_attention(be, 1, 17, 64, 4, 48);
    test_attention(be, 2, 13, 192, 3, 24); /* tiny-28 encoder heads: hd 64 */
    test_attention(be, 2, 50, 128, 4, 24); /* tiny-28 decoder heads: hd 32 */
    test_attention(be, 1, 100, 64, 2, 12);  /* hd 32, T > 96: copied through scratch */
    test_attention(be, 1, 70, 160, 2, 12);  /* hd 80 (ViT-H/14 heads), T over a 64-row tile */
    test_attention(be, 3, 5, 3, 3, 96);
    test_attention(be, 1, 9, 8, 1, 96);

    test_im2patch(be, 2, 3, 8, 8, 4, 3, 1);
    test_im2patch(be, 2, 3, 8, 8, 4, 0, 0);
    test_im2patch(be, 3, 1, 12, 12, 4, 5, 1);
    test_im2patch(be, 3, 1, 12, 12, 4, 0, 0);
    test_im2patch(be, 2, 3, 16, 16, 2, 16, 1);
    test_im2patch(be, 1, 3, 32, 32, 16, 1, 1);
    test_im2patch(be, 2, 3, 12, 8, 4, 2, 1); /* non-square image */
    test_im2patch(be, 2, 1, 8, 20, 4, 0, 0);

    test_patchify(be, 2, 3, 8, 8, 4);
    test_patchify(be, 3, 1, 12, 12, 4);
    test_patchify(be, 1, 3, 16, 16, 2);
    test_patchify(be, 2, 3, 12, 8, 4); /* non-square image */
    test_patchify(be, 2, 1, 8, 20, 4);

    test_embed_tokens(be, 2, 16, 4, 8);
    test_embed_tokens(be, 3, 49, 12, 13);
    test_embed_tokens(be, 1, 4, 4, 5);

    test_unshuffle(be, 2, 16, 4, 8);
    test_unshuffle(be, 3, 49, 12, 13);
    test_unshuffle(be, 2, 9, 9, 5); /* K == L: no mask tokens */
    test_unshuffle(be, 2, 9, 1, 5);

    for (int norm = 0; norm <= 1; norm++) {
        test_mae_loss(be, 2, 16, 48, norm, 1, 1.0f, 0);
        test_mae_loss(be, 3, 49, 12, norm, 1, 0.37f, 0);
        test_mae_loss(be, 2, 9, 4, norm, 1, 2.5f, 0);
        test_mae_loss(be, 2, 16, 48, norm, 0, 1.0f, 0);
        test_mae_loss(be, 2, 8, 12, norm, 1, 1.0f, 1);
    }

    test_adamw(be, 1003, 1e-3f, 0.05f);
    test_adamw(be, 1003, 0.1f, 0.0f);
    test_adamw(be, 1, 1e-2f, 0.3f);
    test_adamw_segments(be);

    test_sumsq(be, 1, 1.0);
    test_sumsq(be, 7, 1.0);
    test_sumsq(be, 100003, 1e3);

    int nf = g_nfail - fail0;
    printf("== backend %s: %d failure(s)\n", be->name, nf);
    return nf;
}

int main(int argc, char **argv) {
    int fails = run_op_tests(mae_backend_cpu()), skipped = 0;
    for (int i = 1; i < argc; i++) {
        char why[512];
        int skip;
        const mae_backend *be = test_backend_find(argv[i], &skip, why, sizeof why);
        if (!be) {
            if (skip) {
                printf("SKIP: backend '%s': %s\n", argv[i], why);
                skipped++;
            } else {
                printf("FAIL: backend '%s' not available: %s\n", argv[i], why);
                fails++;
                g_nfail++;
            }
            continue;
        }
        fails += run_op_tests(be);
    }
    printf("test_ops: %d passed, %d failed, %d backend(s) skipped\n", g_npass, g_nfail, skipped);
    return test_exit_status(fails, skipped);
}
