/* test_bf16_ops.c - the bf16 path (MAE_PREC_BF16) of a backend's dense and attention ops
 * against double-precision references.
 *
 * The contract (backend.h): operands rounded to bfloat16, products accumulated in fp32. The
 * reference rounds every operand to bf16 (round to nearest even, with integer arithmetic here)
 * and multiplies in double, so what is left is fp32 accumulation: relative error <= TOL_RND.
 * A second comparison against the unrounded fp64 product bounds the rounding itself
 * (<= TOL_RAW): an op that silently ran fp32 passes that one but not a check that the bits
 * differ from the fp32 result, which is made too.
 * Ops: matmul_forward (+bias), matmul_backward (dinp, dw, dbias), matmul_forward_gelu,
 * matmul_backward_gelu, attention_forward (q k^T and P v in bf16, softmax in fp32).
 * Usage: test_bf16_ops [backend ...]: always "cpu" first when it has bf16; a backend that is
 * not available because of the machine is a skip (exit 77 when nothing else ran). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"

#define TOL_RND 1e-4
#define TOL_RAW 2e-2

static unsigned long long g_s = 0x2545F4914F6CDD1Dull;
static double urand(void) {
    g_s ^= g_s << 13;
    g_s ^= g_s >> 7;
    g_s ^= g_s << 17;
    return (double)(g_s >> 11) * (1.0 / 9007199254740992.0);
}
static void fill(float *x, size_t n, double scale) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * (2.0 * urand() - 1.0));
}

static double bf(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    float y;
    memcpy(&y, &u, 4);
    return y;
}

static double rel(const float *got, const double *want, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = got[i] - want[i];
        num += d * d;
        den += want[i] * want[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static double gelu_d(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }
static double gelu_grad_d(double x) {
    return 0.5 * (1.0 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) * 0.39894228040143268;
}

typedef struct {
    const mae_backend *be;
} ctx;

static float *dev(const mae_backend *be, const float *h, size_t n) {
    float *d = be->alloc(n * sizeof(float));
    if (h) be->upload(d, h, n * sizeof(float));
    return d;
}
static float *get(const mae_backend *be, const float *d, size_t n) {
    float *h = malloc(n * sizeof(float));
    be->download(h, d, n * sizeof(float));
    return h;
}

/* out (M,N) = x (M,K) w (N,K)^T [+ b] in double, operands optionally rounded */
static void ref_mm(double *out, const float *x, const float *w, const float *b, int M, int K,
                   int N, int round) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = b ? b[j] : 0.0;
            for (int k = 0; k < K; k++) {
                double a = x[(size_t)i * K + k], c = w[(size_t)j * K + k];
                if (round) a = bf((float)a), c = bf((float)c);
                s += a * c;
            }
            out[(size_t)i * N + j] = s;
        }
}

static void report(const char *be, const char *op, const char *what, double err, double tol) {
    CHECK(err <= tol, "%s %s %s: rel err %.3g > %.3g", be, op, what, err, tol);
    printf("  %-5s %-22s %-10s rel err %.3g (tol %.3g)\n", be, op, what, err, tol);
}

static void test_matmul(const mae_backend *be, int M, int K, int N) {
    size_t nx = (size_t)M * K, nw = (size_t)N * K, no = (size_t)M * N;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc(N * 4), *g = malloc(no * 4);
    fill(x, nx, 1.0);
    fill(w, nw, 0.05);
    fill(b, N, 0.1);
    fill(g, no, 1.0);
    double *rr = malloc(no * 8), *ru = malloc(no * 8);
    ref_mm(rr, x, w, b, M, K, N, 1);
    ref_mm(ru, x, w, b, M, K, N, 0);
    float *dx = dev(be, x, nx), *dw = dev(be, w, nw), *db = dev(be, b, N);
    float *dout = dev(be, NULL, no);
    be->matmul_forward(dout, dx, dw, db, M, K, N, MAE_PREC_BF16);
    float *o16 = get(be, dout, no);
    be->matmul_forward(dout, dx, dw, db, M, K, N, MAE_PREC_FP32);
    float *o32 = get(be, dout, no);
    report(be->name, "matmul_forward", "rounded", rel(o16, rr, no), TOL_RND);
    report(be->name, "matmul_forward", "raw", rel(o16, ru, no), TOL_RAW);
    CHECK(memcmp(o16, o32, no * 4) != 0, "%s matmul_forward: bf16 result equals fp32 bit for bit",
          be->name);

    /* forward_gelu: pre and act */
    float *dpre = dev(be, NULL, no), *dact = dev(be, NULL, no);
    be->matmul_forward_gelu(dpre, dact, dx, dw, db, M, K, N, MAE_PREC_BF16);
    float *pre = get(be, dpre, no), *act = get(be, dact, no);
    double *ra = malloc(no * 8);
    for (size_t i = 0; i < no; i++) ra[i] = gelu_d(rr[i]);
    report(be->name, "matmul_forward_gelu", "pre", rel(pre, rr, no), TOL_RND);
    report(be->name, "matmul_forward_gelu", "act", rel(act, ra, no), TOL_RND);

    /* backward: dinp (M,K) = g (M,N) w (N,K); dw (N,K) = g^T x; dbias = colsum g. Accumulate
     * onto zero here (the accumulate contract is test_ops'). */
    float *dg = dev(be, g, no), *ddx = dev(be, NULL, nx), *ddw = dev(be, NULL, nw);
    float *ddb = dev(be, NULL, N);
    be->zero(ddx, nx * 4);
    be->zero(ddw, nw * 4);
    be->zero(ddb, N * 4);
    be->matmul_backward(ddx, ddw, ddb, dg, dx, dw, M, K, N, MAE_PREC_BF16);
    float *gx = get(be, ddx, nx), *gw = get(be, ddw, nw), *gb = get(be, ddb, N);
    double *rx = malloc(nx * 8), *rw = malloc(nw * 8), *rb = malloc(N * 8);
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++) {
            double s = 0;
            for (int j = 0; j < N; j++) s += bf(g[(size_t)i * N + j]) * bf(w[(size_t)j * K + k]);
            rx[(size_t)i * K + k] = s;
        }
    for (int j = 0; j < N; j++)
        for (int k = 0; k < K; k++) {
            double s = 0;
            for (int i = 0; i < M; i++) s += bf(g[(size_t)i * N + j]) * bf(x[(size_t)i * K + k]);
            rw[(size_t)j * K + k] = s;
        }
    for (int j = 0; j < N; j++) {
        double s = 0;
        for (int i = 0; i < M; i++) s += g[(size_t)i * N + j];
        rb[j] = s;
    }
    report(be->name, "matmul_backward", "dinp", rel(gx, rx, nx), TOL_RND);
    report(be->name, "matmul_backward", "dw", rel(gw, rw, nw), TOL_RND);
    report(be->name, "matmul_backward", "dbias", rel(gb, rb, N), 1e-5);

    /* backward_gelu: dpre (M,K) = (g w) * gelu'(pre_in), pre_in (M,K), act_in = gelu(pre_in);
     * dw += g^T act_in */
    float *pin = malloc(nx * 4), *ain = malloc(nx * 4);
    fill(pin, nx, 2.0);
    for (size_t i = 0; i < nx; i++) ain[i] = (float)gelu_d(pin[i]);
    float *dpin = dev(be, pin, nx), *dain = dev(be, ain, nx);
    be->zero(ddw, nw * 4);
    be->zero(ddb, N * 4);
    be->matmul_backward_gelu(ddx, ddw, ddb, dg, dain, dpin, dw, M, K, N, MAE_PREC_BF16);
    float *gp = get(be, ddx, nx), *gw2 = get(be, ddw, nw);
    for (size_t i = 0; i < nx; i++) rx[i] *= gelu_grad_d(pin[i]);
    for (int j = 0; j < N; j++)
        for (int k = 0; k < K; k++) {
            double s = 0;
            for (int i = 0; i < M; i++) s += bf(g[(size_t)i * N + j]) * bf(ain[(size_t)i * K + k]);
            rw[(size_t)j * K + k] = s;
        }
    report(be->name, "matmul_backward_gelu", "dpre", rel(gp, rx, nx), TOL_RND);
    report(be->name, "matmul_backward_gelu", "dw", rel(gw2, rw, nw), TOL_RND);

    be->free(dx), be->free(dw), be->free(db), be->free(dout), be->free(dpre), be->free(dact);
    be->free(dg), be->free(ddx), be->free(ddw), be->free(ddb), be->free(dpin), be->free(dain);
    free(x), free(w), free(b), free(g), free(rr), free(ru), free(o16), free(o32), free(pre);
    free(act), free(ra), free(gx), free(gw), free(gb), free(rx), free(rw), free(rb), free(pin);
    free(ain), free(gp), free(gw2);
}

/* attention forward, bf16: reference rounds q, k for the scores and P, v for the output */
static void test_attention(const mae_backend *be, int B, int T, int C, int NH) {
    int hd = C / NH;
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = (size_t)B * NH * T * T;
    float *qkv = malloc(nq * 4);
    fill(qkv, nq, 1.5);
    double *ro = calloc(no, 8), *rou = calloc(no, 8), *p = malloc((size_t)T * 8);
    double sc = 1.0 / sqrt((double)hd);
    for (int round = 0; round < 2; round++)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int t = 0; t < T; t++) {
                    const float *q = qkv + ((size_t)b * T + t) * 3 * C + (size_t)h * hd;
                    double mx = -1e300, se = 0;
                    for (int s = 0; s < T; s++) {
                        const float *k = qkv + ((size_t)b * T + s) * 3 * C + C + (size_t)h * hd;
                        double d = 0;
                        for (int i = 0; i < hd; i++)
                            d += round ? bf(q[i]) * bf(k[i]) : (double)q[i] * k[i];
                        /* the GPU scales in fp32 inside the product: same value to 1e-7 */
                        p[s] = d * sc;
                        if (p[s] > mx) mx = p[s];
                    }
                    for (int s = 0; s < T; s++) se += (p[s] = exp(p[s] - mx));
                    for (int s = 0; s < T; s++) p[s] /= se;
                    double *o = (round ? ro : rou) + ((size_t)b * T + t) * C + (size_t)h * hd;
                    for (int s = 0; s < T; s++) {
                        const float *v = qkv + ((size_t)b * T + s) * 3 * C + 2 * C + (size_t)h * hd;
                        double ps = round ? bf((float)p[s]) : p[s];
                        for (int i = 0; i < hd; i++) o[i] += ps * (round ? bf(v[i]) : v[i]);
                    }
                }
    size_t nst = be->attention_state_floats(B, T, C, NH);
    (void)na;
    float *dq = dev(be, qkv, nq), *dout = dev(be, NULL, no), *datt = dev(be, NULL, nst);
    be->attention_forward(dout, datt, dq, B, T, C, NH, MAE_PREC_BF16);
    float *o = get(be, dout, no);
    if (strcmp(be->name, "cpu") == 0) {
        /* the CPU runs attention in fp32 whatever prec says */
        report(be->name, "attention_forward", "fp32", rel(o, rou, no), 1e-5);
    } else if (nst == na) {
        /* probabilities kept: q k^T and P v are bf16 GEMMs on the normalised P */
        report(be->name, "attention_forward", "rounded", rel(o, ro, no), 2e-3);
        report(be->name, "attention_forward", "raw", rel(o, rou, no), TOL_RAW);
    } else {
        /* fused: P is rounded before it is normalised (running max), so the rounded reference
         * does not apply exactly; the raw bound and "not fp32" do */
        report(be->name, "attention_forward", "raw", rel(o, rou, no), TOL_RAW);
    }
    /* backward in bf16 against the same backend's fp32 backward (which test_ops holds to the
     * double reference), and the fp32 forward's output: bf16 must differ from it, but not by
     * more than bf16 rounding */
    float *g = malloc(no * 4);
    fill(g, no, 1.0);
    float *dg = dev(be, g, no), *d16 = dev(be, NULL, nq), *d32 = dev(be, NULL, nq);
    float *dscr = dev(be, NULL, nst), *dout32 = dev(be, NULL, no), *datt32 = dev(be, NULL, nst);
    be->attention_forward(dout32, datt32, dq, B, T, C, NH, MAE_PREC_FP32);
    float *o32 = get(be, dout32, no);
    double *o32d = malloc(no * 8);
    for (size_t i = 0; i < no; i++) o32d[i] = o32[i];
    report(be->name, "attention_forward", "vs fp32", rel(o, o32d, no), TOL_RAW);
    if (strcmp(be->name, "cpu") != 0)
        CHECK(memcmp(o, o32, no * 4) != 0, "%s attention_forward: bf16 equals fp32 bit for bit",
              be->name);
    be->attention_backward(d16, dscr, dg, dq, datt, dout, B, T, C, NH, MAE_PREC_BF16);
    be->attention_backward(d32, dscr, dg, dq, datt32, dout32, B, T, C, NH, MAE_PREC_FP32);
    float *g16 = get(be, d16, nq), *g32 = get(be, d32, nq);
    double *g32d = malloc(nq * 8);
    for (size_t i = 0; i < nq; i++) g32d[i] = g32[i];
    report(be->name, "attention_backward", "vs fp32", rel(g16, g32d, nq), 3e-2);
    be->free(dg), be->free(d16), be->free(d32), be->free(dscr), be->free(dout32);
    be->free(datt32);
    free(g), free(o32), free(o32d), free(g16), free(g32), free(g32d);
    be->free(dq), be->free(dout), be->free(datt);
    free(qkv), free(ro), free(rou), free(p), free(o);
}

static void run(const mae_backend *be) {
    if (!be->has_precision(MAE_PREC_BF16)) {
        printf("  %s: no bf16 path (skipped)\n", be->name);
        return;
    }
    test_matmul(be, 37, 96, 80);   /* odd rows */
    test_matmul(be, 64, 768, 192); /* a long K */
    test_attention(be, 2, 17, 64, 2);   /* hd 32, T under one tile */
    test_attention(be, 1, 50, 192, 3);  /* hd 64 */
    test_attention(be, 2, 70, 160, 2);  /* hd 80, T over one 64-row tile */
    test_attention(be, 1, 130, 256, 2); /* hd 128, three tiles */
}

int main(int argc, char **argv) {
    int skipped = 0, ran = 0;
    run(mae_backend_cpu());
    for (int i = 1; i < argc; i++) {
        char why[256];
        const mae_backend *be = mae_backend_find(argv[i], why, sizeof why);
        if (!be) {
            printf("SKIP: %s: %s\n", argv[i], why);
            skipped++;
            continue;
        }
        run(be);
        ran++;
    }
    int rc = check_summary("test_bf16_ops");
    if (rc == 0 && skipped && !ran) return 77;
    return rc;
}
