/* test_cls_ops.c - the classifier ops of the backend table (src/backend.h: scale_rows,
 * pool_tokens (+ backward), batchnorm_forward, softmax_xent, scale_inplace, lars, and adamw with
 * a per-segment lr_scale) against straightforward double-precision re-implementations written
 * from the documented semantics (and, for LARS, from official facebookresearch/mae
 * util/lars.py), with finite differences for the gradients, through the backend's own
 * alloc/upload/download so a GPU backend runs the same checks.
 *
 * Also checked: forward outputs are OVERWRITTEN (pre-filled with a NaN poison, tests/poison.h,
 * and every element must be written: a failure names the op and the first index left
 * unwritten), pool_tokens_backward
 * ACCUMULATES (pre-filled with G0), softmax_xent's dz is OVERWRITTEN, inputs are not modified,
 * and the optimizers leave elements between segments alone and zero the gradient only inside
 * segments.
 *
 * Usage: test_cls_ops [backend-name ...]   (always runs "cpu" first). Exit 1 on any failure;
 * else 77 (skipped) when "cuda" was asked for on a machine without a CUDA device or in a build
 * without CUDA (tests/backend_avail.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_avail.h"
#include "check.h"
#include "op_ref.h"
#include "poison.h"

/* ------------------------------------------------------------------ RNG (splitmix64) */

#define TEST_RNG_SEED 0x243F6A8885A308D3ull
#include "test_rng.h"
static void fill_normal(float *x, size_t n, double mean, double sd) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(mean + sd * rng_normal());
}

/* ------------------------------------------------------------------ helpers */

static const mae_backend *be;

static void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz);
    if (!p) {
        fprintf(stderr, "test_cls_ops: out of memory\n");
        exit(2);
    }
    return p;
}
static float *fnew(size_t n) { return xcalloc(n, sizeof(float)); }
static double *dnew(size_t n) { return xcalloc(n, sizeof(double)); }

static float *dev_up(const float *h, size_t n) {
    float *d = be->alloc(n * sizeof(float) + 4);
    if (!d) exit(2);
    be->upload(d, h, n * sizeof(float));
    return d;
}
/* an output the op must overwrite, filled with the NaN poison (check_written after). It draws
 * (and drops) the n normals the random garbage it replaces drew, so the inputs of every later
 * case stay those the tolerances were set on (batchnorm's offset-3 case is within 2x of its
 * bound on other draws). */
static float *dev_poison(size_t n) {
    float *h = fnew(n);
    fill_normal(h, n, 0.0, 1e3);
    poison_fill(h, n);
    float *d = dev_up(h, n);
    free(h);
    return d;
}
static float *dev_down(const float *d, size_t n) {
    float *h = fnew(n);
    be->download(h, d, n * sizeof(float));
    return h;
}
/* 1 if the device buffer still holds exactly host[0..n) */
static int dev_same(const float *d, const float *host, size_t n) {
    float *h = dev_down(d, n);
    int same = memcmp(h, host, n * sizeof(float)) == 0;
    free(h);
    return same;
}

/* got: a dev_poison output after the op: every element written, no NaN */
static void check_written(const char *op, const float *got, size_t n) {
    size_t nu, fu, nn, fn;
    poison_scan(got, n, &nu, &fu, &nn, &fn);
    CHECK(nu == 0, "%s: %zu of %zu elements still the NaN poison (not written, or added to), "
          "the first at [%zu]", op, nu, n, fu);
    CHECK(nn == 0, "%s: %zu NaN (read the poisoned output?), the first at [%zu]", op, nn, fn);
}

/* ||got - want|| / ||want|| (absolute when want == 0); NaN -> inf */
static double rel_err(const float *got, const double *want, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        num += d * d;
        den += want[i] * want[i];
    }
    if (!isfinite(num)) return INFINITY;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
static double rel_dd(const double *got, const double *want, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = got[i] - want[i];
        num += d * d;
        den += want[i] * want[i];
    }
    if (!isfinite(num)) return INFINITY;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* ------------------------------------------------------------------ scale_rows / scale_inplace */

static void test_scale_rows(int B, size_t n) {
    float *x = fnew(B * n), *s = fnew(B);
    fill_normal(x, B * n, 0, 2);
    for (int b = 0; b < B; b++) s[b] = b % 3 == 0 ? 0.0f : b % 3 == 1 ? (float)(1.0 / 0.7) : 1.0f;
    float *dx = dev_up(x, B * n), *ds = dev_up(s, B), *dout = dev_poison(B * n);
    be->scale_rows(dout, dx, ds, B, n);
    float *got = dev_down(dout, B * n);
    check_written("scale_rows out", got, B * n);
    size_t bad = 0;
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < n; i++) /* a float product is exact in double: bit-exact */
            bad += got[b * n + i] != (float)((double)x[b * n + i] * (double)s[b]);
    CHECK(bad == 0, "scale_rows B=%d n=%zu: %zu elements differ from x*scale", B, n, bad);
    CHECK(dev_same(dx, x, B * n) && dev_same(ds, s, B), "scale_rows modified its input");
    /* in place (out == in), as drop_path uses it */
    be->scale_rows(dx, dx, ds, B, n);
    CHECK(dev_same(dx, got, B * n), "scale_rows in place differs from out-of-place");
    printf("scale_rows     B=%d n=%zu: %zu bad\n", B, n, bad);
    free(got);
    free(x);
    free(s);
    be->free(dx);
    be->free(ds);
    be->free(dout);
}

static void test_scale_inplace(size_t n, float s) {
    float *x = fnew(n);
    fill_normal(x, n, 0, 1);
    float *dx = dev_up(x, n);
    be->scale_inplace(dx, s, n);
    float *got = dev_down(dx, n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += got[i] != (float)((double)x[i] * s);
    CHECK(bad == 0, "scale_inplace n=%zu s=%g: %zu elements differ", n, (double)s, bad);
    free(x);
    free(got);
    be->free(dx);
}

/* ------------------------------------------------------------------ pool_tokens */

static void ref_pool(double *out, const double *x, int B, int T, int C, int mode) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            if (mode == MAE_POOL_CLS) {
                out[b * C + c] = x[(size_t)b * T * C + c];
                continue;
            }
            double s = 0;
            for (int t = 1; t < T; t++) s += x[((size_t)b * T + t) * C + c];
            out[b * C + c] = s / (T - 1);
        }
}

static void test_pool(int B, int T, int C, int mode) {
    const char *mn = mode == MAE_POOL_CLS ? "CLS" : "MEAN";
    size_t nx = (size_t)B * T * C, no = (size_t)B * C;
    float *x = fnew(nx);
    fill_normal(x, nx, 0.5, 1.5);
    double *xd = dnew(nx), *ref = dnew(no);
    for (size_t i = 0; i < nx; i++) xd[i] = x[i];
    ref_pool(ref, xd, B, T, C, mode);
    float *dx = dev_up(x, nx), *dout = dev_poison(no);
    be->pool_tokens(dout, dx, B, T, C, mode);
    float *got = dev_down(dout, no);
    check_written(mode == MAE_POOL_CLS ? "pool_tokens CLS out" : "pool_tokens MEAN out", got, no);
    double ef = rel_err(got, ref, no);
    CHECK(ef <= 1e-6, "pool_tokens %s B=%d T=%d C=%d forward rel %.2e", mn, B, T, C, ef);
    CHECK(dev_same(dx, x, nx), "pool_tokens modified x");

    /* backward: dx += J^T dout with dx pre-filled with G0 */
    float *gout = fnew(no), *g0 = fnew(nx);
    fill_normal(gout, no, 0, 1);
    /* G0 of the gradient's own size, so the float sum G0 + grad does not swamp the grad */
    fill_normal(g0, nx, 0, mode == MAE_POOL_MEAN ? 1.0 / (T - 1) : 1.0);
    double *gref = dnew(nx);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            if (mode == MAE_POOL_CLS) {
                gref[(size_t)b * T * C + c] = gout[b * C + c];
            } else {
                for (int t = 1; t < T; t++) gref[((size_t)b * T + t) * C + c] = gout[b * C + c] / (T - 1);
            }
        }
    /* finite differences of sum(pool(x) * gout) in double: confirms the reference gradient */
    double *o = dnew(no), fd_err = 0;
    for (size_t i = 0; i < nx; i++) {
        double x0 = xd[i], h = 1e-3, fp = 0, fm = 0;
        xd[i] = x0 + h;
        ref_pool(o, xd, B, T, C, mode);
        for (size_t k = 0; k < no; k++) fp += o[k] * gout[k];
        xd[i] = x0 - h;
        ref_pool(o, xd, B, T, C, mode);
        for (size_t k = 0; k < no; k++) fm += o[k] * gout[k];
        xd[i] = x0;
        double fd = (fp - fm) / (2 * h), e = fabs(fd - gref[i]);
        if (e > fd_err) fd_err = e;
    }
    CHECK(fd_err <= 1e-8, "pool_tokens %s reference gradient vs finite differences %.2e", mn, fd_err);
    float *dg = dev_up(g0, nx), *dgo = dev_up(gout, no);
    be->pool_tokens_backward(dg, dgo, B, T, C, mode);
    float *gg = dev_down(dg, nx);
    double *acc = dnew(nx);
    for (size_t i = 0; i < nx; i++) acc[i] = (double)gg[i] - (double)g0[i];
    double eb = rel_dd(acc, gref, nx);
    CHECK(eb <= 1e-6, "pool_tokens_backward %s B=%d T=%d C=%d (accumulating) rel %.2e", mn, B, T,
          C, eb);
    /* untouched rows keep G0 bit-exactly (CLS: rows 1..T-1; MEAN: row 0) */
    size_t bad = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int touched = mode == MAE_POOL_CLS ? t == 0 : t > 0;
            if (touched) continue;
            for (int c = 0; c < C; c++) {
                size_t i = ((size_t)b * T + t) * C + c;
                bad += gg[i] != g0[i];
            }
        }
    CHECK(bad == 0, "pool_tokens_backward %s changed %zu elements it has no gradient for", mn, bad);
    CHECK(dev_same(dgo, gout, no), "pool_tokens_backward modified dout");
    printf("pool_tokens    %-4s B=%d T=%d C=%d: fwd %.1e bwd %.1e fd(ref) %.1e\n", mn, B, T, C, ef,
           eb, fd_err);
    free(x), free(xd), free(ref), free(got), free(gout), free(g0), free(gref), free(o), free(gg);
    free(acc);
    be->free(dx), be->free(dout), be->free(dg), be->free(dgo);
}

/* ------------------------------------------------------------------ batchnorm */

static void test_batchnorm(int B, int C, int train, double offset) {
    const float mom = 0.1f, eps = 1e-6f;
    size_t n = (size_t)B * C;
    float *x = fnew(n), *rm = fnew(C), *rv = fnew(C);
    for (int c = 0; c < C; c++) {
        double sc = c == 0 ? 1e-3 : rng_uniform(0.2, 3.0); /* channel 0: variance ~ eps scale */
        for (int b = 0; b < B; b++) x[b * C + c] = (float)(offset + c * 0.1 + sc * rng_normal());
        rm[c] = (float)rng_uniform(-1, 1);
        rv[c] = (float)rng_uniform(0.5, 2);
    }
    double *ref = dnew(n), *rm2 = dnew(C), *rv2 = dnew(C);
    for (int c = 0; c < C; c++) {
        double mu, var;
        if (train) {
            double s = 0, ss = 0;
            for (int b = 0; b < B; b++) s += x[b * C + c];
            mu = s / B;
            for (int b = 0; b < B; b++) ss += (x[b * C + c] - mu) * (x[b * C + c] - mu);
            var = ss / B;                                 /* biased: normalisation */
            rm2[c] = (1 - (double)mom) * rm[c] + (double)mom * mu;
            rv2[c] = (1 - (double)mom) * rv[c] + (double)mom * ss / (B - 1); /* unbiased */
        } else {
            mu = rm[c];
            var = rv[c];
            rm2[c] = rm[c];
            rv2[c] = rv[c];
        }
        for (int b = 0; b < B; b++) ref[b * C + c] = (x[b * C + c] - mu) / sqrt(var + (double)eps);
    }
    float *dx = dev_up(x, n), *drm = dev_up(rm, C), *drv = dev_up(rv, C), *dout = dev_poison(n);
    be->batchnorm_forward(dout, drm, drv, dx, B, C, train, mom, eps);
    float *got = dev_down(dout, n), *grm = dev_down(drm, C), *grv = dev_down(drv, C);
    check_written(train ? "batchnorm_forward (train) out" : "batchnorm_forward (eval) out", got, n);
    double eo = rel_err(got, ref, n), em = rel_err(grm, rm2, C), ev = rel_err(grv, rv2, C);
    /* offset: the mean subtraction cancels |offset|/sd digits of float x */
    double tol = 2e-6 * (1 + fabs(offset));
    CHECK(eo <= tol, "batchnorm train=%d B=%d C=%d out rel %.2e", train, B, C, eo);
    CHECK(em <= 1e-6 && ev <= 1e-6, "batchnorm train=%d running stats rel mean %.2e var %.2e",
          train, em, ev);
    if (!train)
        CHECK(memcmp(grm, rm, C * 4) == 0 && memcmp(grv, rv, C * 4) == 0,
              "batchnorm eval changed the running stats");
    CHECK(dev_same(dx, x, n), "batchnorm modified x");
    /* a biased-var running update (a common slip) would differ by B/(B-1) */
    if (train) {
        double wrong = 0;
        for (int c = 0; c < C; c++) {
            double s = 0, ss = 0;
            for (int b = 0; b < B; b++) s += x[b * C + c];
            for (int b = 0; b < B; b++) ss += (x[b * C + c] - s / B) * (x[b * C + c] - s / B);
            double w = (1 - (double)mom) * rv[c] + (double)mom * ss / B;
            wrong += fabs(w - grv[c]) < 1e-7 * fabs(w) ? 0 : 1;
        }
        CHECK(wrong > 0, "batchnorm running_var looks biased");
    }
    printf("batchnorm      train=%d B=%d C=%d offset=%g: out %.1e run_mean %.1e run_var %.1e\n",
           train, B, C, offset, eo, em, ev);
    free(x), free(rm), free(rv), free(ref), free(rm2), free(rv2), free(got), free(grm), free(grv);
    be->free(dx), be->free(drm), be->free(drv), be->free(dout);
}

/* ------------------------------------------------------------------ softmax_xent */

static double ref_xent(double *dz, const double *z, const double *t, int B, int NC, double dloss) {
    double total = 0;
    for (int b = 0; b < B; b++) {
        const double *zb = z + (size_t)b * NC, *tb = t + (size_t)b * NC;
        double mx = zb[0];
        for (int c = 1; c < NC; c++) mx = fmax(mx, zb[c]);
        double se = 0;
        for (int c = 0; c < NC; c++) se += exp(zb[c] - mx);
        double lse = mx + log(se), tsum = 0;
        for (int c = 0; c < NC; c++) {
            total -= tb[c] * (zb[c] - lse); /* -t log softmax */
            tsum += tb[c];
        }
        if (dz)
            for (int c = 0; c < NC; c++)
                dz[(size_t)b * NC + c] = dloss / B * (exp(zb[c] - lse) * tsum - tb[c]);
    }
    return total / B;
}

static void test_xent(int B, int NC, double zscale, float dloss) {
    size_t n = (size_t)B * NC;
    float *z = fnew(n), *t = fnew(n);
    fill_normal(z, n, 0, zscale);
    const double smooth = 0.1;
    for (int b = 0; b < B; b++) {
        /* mixup-style: lam * onehot(y1) + (1-lam) * onehot(y2), label-smoothed; the last row a
         * plain one-hot; the first a dense random distribution */
        int y1 = (int)(rng_next() % NC), y2 = (int)(rng_next() % NC);
        double lam = rng_uniform(0.3, 1.0), s = 0;
        for (int c = 0; c < NC; c++) {
            double v = smooth / NC + (1 - smooth) * (lam * (c == y1) + (1 - lam) * (c == y2));
            if (b == B - 1) v = c == y1;
            if (b == 0) v = rng_uniform(0, 1);
            t[b * NC + c] = (float)v;
            s += v;
        }
        if (b == 0)
            for (int c = 0; c < NC; c++) t[b * NC + c] = (float)(t[b * NC + c] / s);
    }
    double *zd = dnew(n), *td = dnew(n), *gref = dnew(n);
    for (size_t i = 0; i < n; i++) zd[i] = z[i], td[i] = t[i];
    double lref = ref_xent(gref, zd, td, B, NC, dloss);
    float *dz_dev = dev_up(z, n), *dt = dev_up(t, n), *dg = dev_poison(n);
    float l1 = be->softmax_xent(NULL, dz_dev, dt, B, NC, 0.0f);
    float l2 = be->softmax_xent(dg, dz_dev, dt, B, NC, dloss);
    double el = lref != 0 ? fabs(l1 - lref) / fabs(lref) : fabs((double)l1);
    CHECK(el <= 1e-6, "softmax_xent B=%d NC=%d loss %.9g vs ref %.9g", B, NC, (double)l1, lref);
    CHECK(l1 == l2, "softmax_xent loss with dz (%.9g) != without (%.9g)", (double)l2, (double)l1);
    float *g = dev_down(dg, n); /* was the NaN poison: must be overwritten */
    check_written("softmax_xent dz", g, n);
    double eg = rel_err(g, gref, n);
    CHECK(eg <= 1e-5, "softmax_xent dz (overwrite, x dloss) rel %.2e", eg);
    /* finite differences of dloss * loss(z) in double */
    double *fd = dnew(n), *gd = dnew(n);
    for (size_t i = 0; i < n; i++) {
        double z0 = zd[i], h = 1e-5 * (1 + fabs(z0));
        zd[i] = z0 + h;
        double fp = ref_xent(NULL, zd, td, B, NC, 1);
        zd[i] = z0 - h;
        double fm = ref_xent(NULL, zd, td, B, NC, 1);
        zd[i] = z0;
        fd[i] = dloss * (fp - fm) / (2 * h);
        gd[i] = g[i];
    }
    double efd = rel_dd(gd, fd, n), eref = rel_dd(gref, fd, n);
    CHECK(efd <= 1e-4, "softmax_xent dz vs finite differences rel %.2e", efd);
    CHECK(eref <= 1e-6, "softmax_xent reference vs finite differences rel %.2e", eref);
    CHECK(dev_same(dz_dev, z, n) && dev_same(dt, t, n), "softmax_xent modified z or t");
    printf("softmax_xent   B=%d NC=%d zscale=%g dloss=%g: loss %.1e dz %.1e fd %.1e\n", B, NC,
           zscale, (double)dloss, el, eg, efd);
    free(z), free(t), free(zd), free(td), free(gref), free(g), free(fd), free(gd);
    be->free(dz_dev), be->free(dt), be->free(dg);
}

/* ------------------------------------------------------------------ LARS */

/* official util/lars.py for one parameter (one segment), in double:
 *   dp = g; if p.ndim > 1: dp += wd * p; q = trust*|p|/|dp| if |p| > 0 and |dp| > 0 else 1;
 *   dp *= q;  mu = momentum * mu + dp;  p -= lr * mu */
static void ref_lars(double *p, const double *g, double *mu, size_t n, int adapt, double wd,
                     double lr, double momentum, double trust) {
    double *dp = dnew(n), pn = 0, un = 0, q = 1;
    for (size_t i = 0; i < n; i++) dp[i] = g[i] + (adapt ? wd * p[i] : 0.0);
    if (adapt) {
        for (size_t i = 0; i < n; i++) pn += p[i] * p[i], un += dp[i] * dp[i];
        pn = sqrt(pn), un = sqrt(un);
        q = pn > 0 ? (un > 0 ? trust * pn / un : 1.0) : 1.0;
    }
    for (size_t i = 0; i < n; i++) {
        mu[i] = momentum * mu[i] + dp[i] * q;
        p[i] -= lr * mu[i];
    }
    free(dp);
}

static void test_lars(void) {
    /* segments: a weight (adapt, wd), a bias (no adapt: wd ignored), a weight with lr_scale,
     * an all-zero weight (|p| = 0 -> q = 1), a weight with zero gradient and wd = 0
     * (|u| = 0 -> q = 1), a one-element weight; gaps between them */
    const mae_adamw_seg segs[6] = {{0, 200, 0.05f, 1.0f, 1},  {203, 10, 0.05f, 1.0f, 0},
                                   {220, 64, 0.3f, 0.25f, 1}, {300, 16, 0.05f, 1.0f, 1},
                                   {320, 16, 0.0f, 1.0f, 1},  {340, 1, 0.1f, 0.5f, 1}};
    const int nseg = 6;
    size_t n = 345;
    const float lr = 0.1f, mom = 0.9f, trust = 0.001f;
    float *p = fnew(n), *g = fnew(n), *mu = fnew(n);
    fill_normal(p, n, 0, 0.5);
    for (size_t i = 300; i < 316; i++) p[i] = 0.0f;
    float *dp = dev_up(p, n), *dmu = dev_up(mu, n);
    double *rp = dnew(n), *rmu = dnew(n), *rg = dnew(n);
    for (size_t i = 0; i < n; i++) rp[i] = p[i];
    double worst_p = 0, worst_mu = 0;
    int bad_zero = 0, bad_gap = 0;
    for (int step = 0; step < 4; step++) {
        int zero_grad = step % 2;
        fill_normal(g, n, 0, step == 3 ? 1e-3 : 1.0);
        for (size_t i = 320; i < 336; i++) g[i] = 0.0f;
        float *dg = dev_up(g, n);
        /* the reference continues from the backend's float state */
        float *cp = dev_down(dp, n), *cm = dev_down(dmu, n);
        for (size_t i = 0; i < n; i++) rp[i] = cp[i], rmu[i] = cm[i], rg[i] = g[i];
        for (int s = 0; s < nseg; s++) {
            size_t o = segs[s].offset;
            ref_lars(rp + o, rg + o, rmu + o, segs[s].n, segs[s].lars_adapt, segs[s].wd,
                     (double)lr * segs[s].lr_scale, mom, trust);
        }
        be->lars(dp, dg, dmu, segs, nseg, lr, mom, trust, zero_grad);
        float *np = dev_down(dp, n), *nm = dev_down(dmu, n), *ng = dev_down(dg, n);
        for (int s = 0; s < nseg; s++) {
            size_t o = segs[s].offset, k = segs[s].n;
            /* compare the update (p_new - p_old) relative to its size, and mu */
            double *du = dnew(k), *dr = dnew(k);
            for (size_t i = 0; i < k; i++) du[i] = (double)np[o + i] - cp[o + i], dr[i] = rp[o + i] - cp[o + i];
            double eu = rel_dd(du, dr, k), em = rel_err(nm + o, rmu + o, k);
            /* p rounding: half an ulp of |p| relative to the update's size */
            double umax = 0;
            for (size_t i = 0; i < k; i++) umax = fmax(umax, fabs(dr[i]));
            double tol = 1e-5 + 1.2e-7 * 2 / (umax > 0 ? umax : 1e-30);
            CHECK(eu <= tol && em <= 1e-5, "lars step %d seg %d (adapt %d wd %g lr_scale %g): "
                  "update rel %.2e (tol %.1e) mu rel %.2e", step, s, segs[s].lars_adapt,
                  (double)segs[s].wd, (double)segs[s].lr_scale, eu, tol, em);
            worst_p = fmax(worst_p, eu / tol * 1e-5), worst_mu = fmax(worst_mu, em);
            for (size_t i = 0; i < k; i++)
                bad_zero += zero_grad ? ng[o + i] != 0.0f : ng[o + i] != g[o + i];
            free(du), free(dr);
        }
        /* gaps: nothing touched */
        for (size_t i = 0; i < n; i++) {
            int in = 0;
            for (int s = 0; s < nseg; s++) in |= i >= segs[s].offset && i < segs[s].offset + segs[s].n;
            if (!in) bad_gap += np[i] != cp[i] || nm[i] != cm[i] || ng[i] != g[i];
        }
        free(cp), free(cm), free(np), free(nm), free(ng);
        be->free(dg);
    }
    CHECK(bad_zero == 0, "lars zero_grad: %d gradient elements wrong (zeroed iff zero_grad)", bad_zero);
    CHECK(bad_gap == 0, "lars touched %d elements outside the segments", bad_gap);
    /* the trust ratio matters: with trust 1e-3 an adapted step is ~1e3 x smaller than plain
     * momentum SGD would be; make sure the zero-norm segment (q = 1) really took a full step */
    float *fp = dev_down(dp, n);
    double moved = 0;
    for (size_t i = 300; i < 316; i++) moved += fabs(fp[i]);
    CHECK(moved > 1e-2, "lars: a zero-norm weight (q = 1) barely moved (%.3g)", moved);
    printf("lars           6 segments x 4 steps: update rel/tol*1e-5 %.1e mu rel %.1e\n", worst_p,
           worst_mu);
    free(fp), free(p), free(g), free(mu), free(rp), free(rmu), free(rg);
    be->free(dp), be->free(dmu);
}

/* ------------------------------------------------------------------ AdamW with lr_scale */

static void test_adamw_lr_scale(void) {
    const mae_adamw_seg segs[4] = {{0, 300, 0.05f, 0.75f * 0.75f * 0.75f, 0},
                                   {304, 40, 0.0f, 0.5f, 1},
                                   {352, 100, 0.3f, 1.0f, 0},
                                   {460, 20, 0.05f, 0.0f, 0}}; /* lr_scale 0: frozen in effect */
    const int nseg = 4;
    size_t n = 490;
    const float lr = 3e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    float *p = fnew(n), *m = fnew(n), *v = fnew(n), *g = fnew(n);
    fill_normal(p, n, 0, 1);
    float *dp = dev_up(p, n), *dm = dev_up(m, n), *dv = dev_up(v, n);
    double *rp = dnew(n), *rm = dnew(n), *rv = dnew(n), *rg = dnew(n);
    int bad_gap = 0, bad_zero = 0;
    for (int step = 1; step <= 3; step++) {
        fill_normal(g, n, 0, 1);
        float *dg = dev_up(g, n);
        float *cp = dev_down(dp, n), *cm = dev_down(dm, n), *cv = dev_down(dv, n);
        for (size_t i = 0; i < n; i++) rp[i] = cp[i], rm[i] = cm[i], rv[i] = cv[i], rg[i] = g[i];
        float bc1 = (float)(1 - pow(b1, step)), bc2 = (float)(1 - pow(b2, step));
        for (int s = 0; s < nseg; s++) {
            size_t o = segs[s].offset;
            /* torch AdamW param group lr = lr * lr_scale (official lr_sched) */
            ref_adamw(rp + o, rg + o, rm + o, rv + o, segs[s].n, (double)lr * segs[s].lr_scale,
                      b1, b2, eps, segs[s].wd, bc1, bc2);
        }
        be->adamw(dp, dg, dm, dv, segs, nseg, lr, b1, b2, eps, bc1, bc2, 1);
        float *np = dev_down(dp, n), *nm = dev_down(dm, n), *nv = dev_down(dv, n),
              *ng = dev_down(dg, n);
        for (int s = 0; s < nseg; s++) {
            size_t o = segs[s].offset, k = segs[s].n;
            double *du = dnew(k), *dr = dnew(k), umax = 0;
            for (size_t i = 0; i < k; i++) {
                du[i] = (double)np[o + i] - cp[o + i];
                dr[i] = rp[o + i] - cp[o + i];
                umax = fmax(umax, fabs(dr[i]));
                bad_zero += ng[o + i] != 0.0f;
            }
            double eu = rel_dd(du, dr, k), tol = 1e-5 + 2.4e-7 * 4 / (umax > 0 ? umax : 1e-30);
            if (segs[s].lr_scale == 0.0f) {
                eu = 0;
                for (size_t i = 0; i < k; i++) eu += np[o + i] != cp[o + i];
                tol = 0;
            }
            CHECK(eu <= tol, "adamw lr_scale=%g seg %d step %d: update err %.2e (tol %.1e)",
                  (double)segs[s].lr_scale, s, step, eu, tol);
            double em = rel_err(nm + o, rm + o, k), ev = rel_err(nv + o, rv + o, k);
            CHECK(em <= 1e-6 && ev <= 1e-6, "adamw seg %d step %d moments rel %.2e %.2e", s, step,
                  em, ev);
            free(du), free(dr);
        }
        for (size_t i = 0; i < n; i++) {
            int in = 0;
            for (int s = 0; s < nseg; s++) in |= i >= segs[s].offset && i < segs[s].offset + segs[s].n;
            if (!in) bad_gap += np[i] != cp[i] || nm[i] != cm[i] || nv[i] != cv[i] || ng[i] != g[i];
        }
        free(cp), free(cm), free(cv), free(np), free(nm), free(nv), free(ng);
        be->free(dg);
    }
    CHECK(bad_zero == 0, "adamw zero_grad left %d gradient elements", bad_zero);
    CHECK(bad_gap == 0, "adamw touched %d elements outside the segments", bad_gap);
    /* a segment with lr_scale s must equal a one-segment call with lr * s (bit for bit) */
    {
        size_t k = 64;
        float *q = fnew(k), *gg = fnew(k), *z = fnew(k);
        fill_normal(q, k, 0, 1);
        fill_normal(gg, k, 0, 1);
        float *a = dev_up(q, k), *am = dev_up(z, k), *av = dev_up(z, k), *ag = dev_up(gg, k);
        float *c = dev_up(q, k), *cm = dev_up(z, k), *cv = dev_up(z, k), *cg = dev_up(gg, k);
        mae_adamw_seg sa = {0, k, 0.05f, 0.5f, 0}, sc = {0, k, 0.05f, 1.0f, 0};
        be->adamw(a, ag, am, av, &sa, 1, 1e-2f, b1, b2, eps, 0.1f, 0.001f, 0);
        be->adamw(c, cg, cm, cv, &sc, 1, 1e-2f * 0.5f, b1, b2, eps, 0.1f, 0.001f, 0);
        float *ha = dev_down(a, k), *hc = dev_down(c, k);
        double e = 0;
        for (size_t i = 0; i < k; i++) e = fmax(e, fabs((double)ha[i] - hc[i]));
        CHECK(e <= 1e-7, "adamw lr_scale 0.5 vs lr*0.5: max diff %.2e", e);
        free(q), free(gg), free(z), free(ha), free(hc);
        be->free(a), be->free(am), be->free(av), be->free(ag);
        be->free(c), be->free(cm), be->free(cv), be->free(cg);
    }
    printf("adamw          lr_scale segments x 3 steps: done\n");
    free(p), free(m), free(v), free(g), free(rp), free(rm), free(rv), free(rg);
    be->free(dp), be->free(dm), be->free(dv);
}

/* ------------------------------------------------------------------ driver */

static void run_all(void) {
    printf("== backend %s\n", be->name);
    test_scale_rows(3, 37);
    test_scale_rows(5, 70001); /* parallel path */
    test_scale_inplace(17, 0.3f);
    test_scale_inplace(100003, 1.7f);
    for (int mode = 0; mode < 2; mode++) {
        test_pool(3, 5, 16, mode);
        test_pool(2, 2, 7, mode);
        test_pool(2, 50, 33, mode);
        test_pool(4, 197, 96, mode); /* parallel path */
    }
    test_pool(2, 1, 8, MAE_POOL_CLS); /* CLS only */
    test_batchnorm(5, 7, 1, 0.0);
    test_batchnorm(5, 7, 0, 0.0);
    test_batchnorm(2, 3, 1, 0.0);
    test_batchnorm(64, 33, 1, 3.0);
    test_batchnorm(300, 300, 1, 0.5); /* parallel path */
    test_batchnorm(300, 300, 0, 0.5);
    test_xent(4, 6, 1.0, 1.0f);
    test_xent(3, 5, 1.0, 0.37f);
    test_xent(5, 10, 30.0, 2.0f); /* large logits: must not overflow */
    test_xent(1, 1, 1.0, 1.0f);
    test_xent(16, 1000, 3.0, 0.5f);
    test_lars();
    test_adamw_lr_scale();
}

int main(int argc, char **argv) {
    int skipped = 0;
    be = mae_backend_cpu();
    run_all();
    for (int i = 1; i < argc; i++) {
        char why[512];
        int skip;
        be = test_backend_find(argv[i], &skip, why, sizeof why);
        if (!be) {
            if (skip) {
                printf("SKIP: backend '%s': %s\n", argv[i], why);
                skipped++;
            } else {
                printf("FAIL: backend '%s' not available: %s\n", argv[i], why);
                failures++;
            }
            continue;
        }
        run_all();
    }
    return test_exit_status(check_summary("test_cls_ops"), skipped);
}
