/* test_cls_model.c - whole-classifier gradient checks (mae_classifier_create, mae_cls_forward,
 * mae_cls_backward) against central finite differences of the loss, through the public API
 * only: every trainable tensor's gradient (mae_grad_get) is compared, coordinate by
 * coordinate, with (loss(p + h) - loss(p - h)) / 2h, perturbing with mae_tensor_set.
 *
 * Cases (img 8, patch 4 -> L = 4, D 16, depth 2, heads 2, 5 classes, batch 3, fp32):
 *   global_pool 1 (mean of patch tokens -> fc_norm), global_pool 0 (CLS -> norm), 1 channel;
 *   drop_path 0.3 with a fixed key (the same key draws the same mask, so the loss is one
 *   smooth function and differences are valid);
 *   freeze_encoder + head_bn (linear probe): only head.1.* get gradients, every other gradient
 *   stays exactly 0, and mae_num_params(m, 1) counts only the head.
 * The parameters are moved off their init (LayerNorm weights off 1, biases off 0, a head of
 * std 0.3) so every path carries gradient. Error per tensor: ||g - fd|| / ||fd||; the tolerance
 * is checked to catch a gradient off by 3% (a self-test scales one gradient). Exit 1 on
 * failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mae.h"

#define B 3
#define NC 5
#define FD_EPS 1e-3
#define TOL_REL 1e-2 /* per tensor ||g - fd|| / ||fd|| */

#define TEST_RNG_SEED 0x13198A2E03707344ull
#include "test_rng.h"

static void *xmalloc(size_t n) {
    void *p = calloc(n ? n : 1, 1);
    if (!p) exit(2);
    return p;
}

static mae_config small_cfg(int in_chans) {
    mae_config c;
    memset(&c, 0, sizeof c);
    c.img_size = 8;
    c.patch_size = 4;
    c.in_chans = in_chans;
    c.embed_dim = 16;
    c.depth = 2;
    c.num_heads = 2;
    c.decoder_embed_dim = 8; /* ignored by a classifier, but must validate */
    c.decoder_depth = 1;
    c.decoder_num_heads = 2;
    c.mlp_ratio = 4.0f;
    c.mask_ratio = 0.75;
    return c;
}

static mae_model *make(const mae_config *cfg, const mae_cls_config *cc, uint64_t seed) {
    mae_error err = {{0}};
    mae_model *m = mae_classifier_create(cfg, cc, B, "cpu", &err);
    if (!m) {
        printf("FAIL mae_classifier_create: %s\n", err.msg);
        exit(1);
    }
    mae_model_init(m, seed);
    /* move every trainable tensor off its init: LN weights != 1, biases != 0 */
    for (int i = 0; i < mae_num_tensors(m); i++) {
        const mae_tensor_info *ti = mae_tensor(m, i);
        if (strstr(ti->name, "running_")) continue;
        float *x = xmalloc(ti->numel * sizeof(float));
        mae_tensor_get(m, i, x);
        for (size_t k = 0; k < ti->numel; k++) x[k] += (float)(0.1 * rng_normal());
        mae_tensor_set(m, i, x);
        free(x);
    }
    return m;
}

static float loss_of(mae_model *m, const float *imgs, const float *tgt, uint64_t key) {
    mae_error err = {{0}};
    float l = 0;
    if (mae_cls_forward(m, imgs, tgt, B, 1, key, &l, NULL, &err) != MAE_OK) {
        printf("FAIL mae_cls_forward: %s\n", err.msg);
        exit(1);
    }
    return l;
}

/* per-tensor relative error of g against central differences, over every coordinate */
static double fd_check_tensor(mae_model *m, int i, const float *g, const float *imgs,
                              const float *tgt, uint64_t key, double *fd_norm) {
    const mae_tensor_info *ti = mae_tensor(m, i);
    size_t n = ti->numel;
    float *p = xmalloc(n * sizeof(float)), *q = xmalloc(n * sizeof(float));
    mae_tensor_get(m, i, p);
    memcpy(q, p, n * sizeof(float));
    double num = 0, den = 0;
    for (size_t k = 0; k < n; k++) {
        /* the perturbed value as float: use the actual float step in the quotient */
        float hi = (float)(p[k] + FD_EPS), lo = (float)(p[k] - FD_EPS);
        q[k] = hi;
        mae_tensor_set(m, i, q);
        double fp = loss_of(m, imgs, tgt, key);
        q[k] = lo;
        mae_tensor_set(m, i, q);
        double fm = loss_of(m, imgs, tgt, key);
        q[k] = p[k];
        double fd = (fp - fm) / ((double)hi - (double)lo);
        num += (g[k] - fd) * (g[k] - fd);
        den += fd * fd;
    }
    mae_tensor_set(m, i, p);
    free(p);
    free(q);
    *fd_norm = sqrt(den);
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void grads_of(mae_model *m, const float *imgs, const float *tgt, uint64_t key,
                     float **g) {
    mae_zero_grad(m);
    loss_of(m, imgs, tgt, key);
    mae_cls_backward(m, 1.0f);
    for (int i = 0; i < mae_num_tensors(m); i++) {
        g[i] = xmalloc(mae_tensor(m, i)->numel * sizeof(float));
        mae_grad_get(m, i, g[i]);
    }
}

static void run_case(const char *label, int in_chans, mae_cls_config cc, uint64_t key) {
    mae_config cfg = small_cfg(in_chans);
    mae_model *m = make(&cfg, &cc, 1234);
    const size_t nimg = (size_t)B * in_chans * 8 * 8;
    float *imgs = xmalloc(nimg * sizeof(float)), *tgt = xmalloc(B * NC * sizeof(float));
    for (size_t i = 0; i < nimg; i++) imgs[i] = (float)rng_normal();
    for (int b = 0; b < B; b++) { /* soft targets (label smoothing / mixup like), rows sum 1 */
        double s = 0;
        for (int c = 0; c < NC; c++) s += tgt[b * NC + c] = (float)(0.02 + rng_u01() * rng_u01());
        for (int c = 0; c < NC; c++) tgt[b * NC + c] = (float)(tgt[b * NC + c] / s);
    }
    int nt = mae_num_tensors(m);
    float **g = xmalloc((size_t)nt * sizeof(float *));
    grads_of(m, imgs, tgt, key, g);

    /* the backward is deterministic and accumulates: twice = 2x */
    {
        float **g2 = xmalloc((size_t)nt * sizeof(float *));
        loss_of(m, imgs, tgt, key);
        mae_cls_backward(m, 1.0f);
        double worst = 0;
        for (int i = 0; i < nt; i++) {
            const mae_tensor_info *ti = mae_tensor(m, i);
            g2[i] = xmalloc(ti->numel * sizeof(float));
            mae_grad_get(m, i, g2[i]);
            double num = 0, den = 0;
            for (size_t k = 0; k < ti->numel; k++) {
                num += (g2[i][k] - 2.0 * g[i][k]) * (g2[i][k] - 2.0 * g[i][k]);
                den += 4.0 * g[i][k] * g[i][k];
            }
            if (den > 0) worst = fmax(worst, sqrt(num / den));
            else worst = fmax(worst, sqrt(num));
            free(g2[i]);
        }
        free(g2);
        CHECK(worst <= 1e-5, "%s: a second backward does not accumulate (max rel %.2e)", label, worst);
        mae_zero_grad(m);
    }

    double worst = 0;
    int ntrain = 0;
    for (int i = 0; i < nt; i++) {
        const mae_tensor_info *ti = mae_tensor(m, i);
        double gn = 0;
        for (size_t k = 0; k < ti->numel; k++) gn += (double)g[i][k] * g[i][k];
        if (!ti->trainable) {
            size_t nz = 0;
            for (size_t k = 0; k < ti->numel; k++) nz += g[i][k] != 0.0f;
            CHECK(nz == 0, "%s: frozen tensor %s has %zu nonzero gradient elements", label,
                  ti->name, nz);
            continue;
        }
        ntrain++;
        double fdn = 0, e = fd_check_tensor(m, i, g[i], imgs, tgt, key, &fdn);
        if (getenv("VERBOSE")) printf("  %-8s %-28s n=%-5zu |g|=%.3e |fd|=%.3e rel=%.2e\n", label, ti->name, ti->numel,
               sqrt(gn), fdn, e);
        CHECK(e <= TOL_REL, "%s: gradient of %s differs from finite differences: rel %.2e", label,
              ti->name, e);
        CHECK(gn > 0, "%s: trainable %s has an all-zero gradient", label, ti->name);
        worst = fmax(worst, e);
        /* self-test of the tolerance: a gradient 3%% off must fail it */
        if (i == 0 || strcmp(ti->name, "pos_embed") == 0) {
            float *bad = xmalloc(ti->numel * sizeof(float));
            for (size_t k = 0; k < ti->numel; k++) bad[k] = g[i][k] * 1.03f;
            double e2 = fd_check_tensor(m, i, bad, imgs, tgt, key, &fdn);
            CHECK(e2 > TOL_REL, "%s: tolerance too loose: a 3%% wrong gradient of %s passes (%.2e)",
                  label, ti->name, e2);
            free(bad);
        }
    }
    printf("%s: %d trainable tensors, worst rel %.2e\n", label, ntrain, worst);

    int ipos = mae_tensor_find(m, "pos_embed");
    CHECK(ipos >= 0, "%s: no pos_embed", label);
    if (!cc.freeze_encoder) {
        CHECK(mae_tensor(m, ipos)->trainable, "%s: pos_embed is not trainable in the classifier",
              label);
        CHECK(mae_tensor_find(m, cc.global_pool ? "fc_norm.weight" : "norm.weight") >= 0 &&
                  mae_tensor_find(m, cc.global_pool ? "norm.weight" : "fc_norm.weight") < 0,
              "%s: expected %s and not the other final norm", label,
              cc.global_pool ? "fc_norm" : "norm");
    } else {
        size_t D = 16, nhead = NC * D + NC;
        CHECK(mae_num_params(m, 1) == nhead, "%s: mae_num_params(m,1) = %zu, head has %zu", label,
              mae_num_params(m, 1), nhead);
        for (int i = 0; i < nt; i++) {
            const mae_tensor_info *ti = mae_tensor(m, i);
            int head = strncmp(ti->name, "head.", 5) == 0 && !strstr(ti->name, "running_");
            CHECK(ti->trainable == head, "%s: %s trainable=%d", label, ti->name, ti->trainable);
        }
        if (cc.head_bn)
            CHECK(mae_tensor_find(m, "head.0.running_mean") >= 0 &&
                      mae_tensor_find(m, "head.0.running_var") >= 0 &&
                      mae_tensor_find(m, "head.1.weight") >= 0 &&
                      mae_tensor_find(m, "head.weight") < 0,
                  "%s: BatchNorm head names", label);
    }
    for (int i = 0; i < nt; i++) free(g[i]);
    free(g);

    /* drop_path: the same key gives the same logits; eval ignores drop_path */
    if (cc.drop_path > 0) {
        mae_error err = {{0}};
        float la[B * NC], lb[B * NC], lc[B * NC], le[B * NC], lz[B * NC];
        mae_cls_forward(m, imgs, tgt, B, 1, key, NULL, la, &err);
        mae_cls_forward(m, imgs, tgt, B, 1, key, NULL, lb, &err);
        CHECK(memcmp(la, lb, sizeof la) == 0, "%s: the same drop_path key gave different logits",
              label);
        int differs = 0;
        for (uint64_t k2 = key + 1; k2 < key + 8 && !differs; k2++) {
            mae_cls_forward(m, imgs, tgt, B, 1, k2, NULL, lc, &err);
            differs = memcmp(la, lc, sizeof la) != 0;
        }
        CHECK(differs, "%s: drop_path keys never change the logits", label);
        mae_cls_forward(m, imgs, tgt, B, 0, key, NULL, le, &err);
        /* a model without drop_path, same weights: its train and eval logits equal le */
        mae_cls_config c0 = cc;
        c0.drop_path = 0;
        mae_model *m0 = mae_classifier_create(&cfg, &c0, B, "cpu", &err);
        float *w = xmalloc(1 << 20);
        for (int i = 0; i < nt; i++) {
            mae_tensor_get(m, i, w);
            mae_tensor_set(m0, i, w);
        }
        free(w);
        mae_cls_forward(m0, imgs, tgt, B, 1, key, NULL, lz, &err);
        CHECK(memcmp(le, lz, sizeof le) == 0, "%s: eval with drop_path != no drop_path", label);
        CHECK(memcmp(la, le, sizeof la) != 0, "%s: drop_path had no effect in training", label);
        mae_model_free(m0);
    }
    free(imgs);
    free(tgt);
    mae_model_free(m);
}

/* A frozen encoder (linear probe, mae embed) shares one block's activations across its blocks:
 * its logits and encoder outputs must equal those of the same weights in a trainable classifier
 * (which keeps every block's activations), and it must use far less activation memory. */
static void frozen_layout_case(void) {
    mae_config cfg = small_cfg(3);
    cfg.depth = 5;
    mae_cls_config cc = {.num_classes = NC, .global_pool = 0, .head_init_std = 0.3};
    mae_model *full = make(&cfg, &cc, 99);
    cc.freeze_encoder = 1;
    mae_model *lean = make(&cfg, &cc, 5);
    int nt = mae_num_tensors(full);
    CHECK(nt == mae_num_tensors(lean), "frozen: tensor tables differ");
    for (int i = 0; i < nt; i++) { /* the same weights in both */
        float *x = xmalloc(mae_tensor(full, i)->numel * sizeof(float));
        mae_tensor_get(full, i, x);
        mae_tensor_set(lean, i, x);
        free(x);
    }
    const size_t nimg = (size_t)B * 3 * 8 * 8;
    float *imgs = xmalloc(nimg * sizeof(float));
    for (size_t i = 0; i < nimg; i++) imgs[i] = (float)rng_normal();
    float la[B * NC], lb[B * NC];
    size_t nl = (size_t)B * (1 + 4) * 16;
    float *ea = xmalloc(nl * sizeof(float)), *eb = xmalloc(nl * sizeof(float));
    mae_error err = {{0}};
    int rc = mae_cls_forward(full, imgs, NULL, B, 0, 0, NULL, la, &err) |
             mae_cls_forward(lean, imgs, NULL, B, 0, 0, NULL, lb, &err) |
             mae_forward_encoder(full, imgs, B, ea, &err) | mae_forward_encoder(lean, imgs, B, eb, &err);
    CHECK(rc == MAE_OK, "frozen: forward failed: %s", err.msg);
    CHECK(memcmp(la, lb, sizeof la) == 0, "frozen: shared-activation logits differ from the full layout's");
    CHECK(memcmp(ea, eb, nl * sizeof(float)) == 0, "frozen: encoder outputs differ");
    size_t p, af, al, e1, e2;
    mae_model_memory(full, &p, &af, &e1, &e2);
    mae_model_memory(lean, &p, &al, &e1, &e2);
    CHECK(al * 2 < af, "frozen: %zu activation bytes, not well below the full layout's %zu", al, af);
    free(imgs);
    free(ea);
    free(eb);
    mae_model_free(full);
    mae_model_free(lean);
}

int main(void) {
    mae_set_num_threads(1);
    frozen_layout_case();
    mae_cls_config cc = {.num_classes = NC, .global_pool = 1, .head_bn = 0, .freeze_encoder = 0,
                         .drop_path = 0.0, .head_init_std = 0.3};
    run_case("gp1", 3, cc, 0);
    cc.global_pool = 0;
    run_case("gp0", 3, cc, 0);
    cc.global_pool = 1;
    run_case("gp1-c1", 1, cc, 0);
    cc.drop_path = 0.3;
    run_case("dp0.3", 3, cc, 42);
    cc.global_pool = 0;
    run_case("dp-gp0", 1, cc, 7);
    cc.drop_path = 0.0;
    cc.global_pool = 1;
    cc.freeze_encoder = 1;
    cc.head_bn = 1;
    run_case("probe", 3, cc, 0);
    cc.global_pool = 0;
    cc.head_bn = 0;
    run_case("probe0", 3, cc, 0);
    return check_summary("test_cls_model");
}
