/* test_cuda_model.c - the whole model on the CUDA backend against the CPU backend, through the
 * public API (include/mae.h): the same host init uploaded to both, the same images (random
 * normal, never zeros), the same masking noise, and then
 *
 *   MAE pretraining, fp32 (two configs, below): the loss, the prediction (B, L, P), the latent
 *     and every trainable tensor's gradient after mae_backward; the gradients again after a
 *     second mae_backward (scale 0.37, so they must ACCUMULATE); the losses of 3 AdamW steps
 *     through mae_trainer_step (weight decay 0.05, the global-norm clipping active, a warmup
 *     lr) and every trainable tensor after them (but the k third of the qkv biases: their
 *     gradient is 0 in exact arithmetic, so AdamW moves them by lr * sign(rounding noise));
 *   MAE pretraining, bf16 (config A): the loss of the device in bf16 against the CPU in fp32;
 *   the classifier, fine-tuning (global pool, drop_path 0, so deterministic): logits, loss,
 *     features and every gradient after mae_cls_backward, then 3 steps of mae_trainer_step_cls
 *     (layer decay 0.75, weight decay, clipping) and every trainable tensor after them;
 *   a linear probe (frozen encoder, CLS pooling, BatchNorm head; batch 8): a training forward
 *     (batch statistics) -- logits, loss, features and the BatchNorm running stats --, an
 *     eval forward (running stats), and the head's gradients.
 *
 * Error: rel = ||dev - cpu|| / ||cpu|| in double (absolute when ||cpu|| == 0, inf on NaN).
 * Tolerances: TOL_FP32 for everything fp32, TOL_BF16 for the bf16 loss. One line per check
 * (what, measured error, tolerance); exit 1 on any failure, 77 (skipped) when this machine
 * has no CUDA device or the build no CUDA backend (tests/backend_avail.h).
 *
 * Shapes are small but of the kind the GPU kernels see in real use:
 *   A: img 32, patch 4, 3 channels (L = 64, K = 16, P = 48), embed 128 depth 2 heads 2
 *      (head dim 64), decoder 64 depth 1 heads 2 (head dim 32), mask ratio 0.75,
 *      norm_pix_loss on, batch 3 (odd); the classifiers use A's encoder (T = 65).
 *   B: img 28, patch 4, 1 channel (L = 49, K = 12, P = 16), embed 160 depth 2 heads 2
 *      (head dim 80), decoder 80 depth 1 heads 1 (head dim 80), norm_pix_loss off, batch 5.
 * The parameters are moved off their init (every trainable tensor + 0.02 N(0,1), so LayerNorm
 * weights are not 1, biases not 0 and the head not ~0) so that every path carries gradient.
 *
 * Options (for checking the test itself where there is no GPU):
 *   --device NAME   compare NAME against cpu instead of cuda (--device cpu: every error 0);
 *   --perturb EPS   give the device model images x (1 + EPS N(0,1)): a stand-in for the
 *                   rounding differences of another backend, to see the tolerances' margin.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_avail.h"
#include "mae.h"

#define TOL_FP32 1e-4
#define TOL_BF16 2e-2
#define NC 10 /* classifier classes */

static int g_checks, g_fail;
static double g_perturb = 0.0;
static const char *g_dev = "cuda";

/* ------------------------------------------------------------------ RNG (splitmix64) */

#define TEST_RNG_SEED 0x452821E638D01377ull
#include "test_rng.h"

/* ------------------------------------------------------------------ helpers */

static void *xmalloc(size_t n) {
    void *p = calloc(n ? n : 1, 1);
    if (!p) {
        fprintf(stderr, "test_cuda_model: out of memory\n");
        exit(2);
    }
    return p;
}
static float *fnew(size_t n) { return xmalloc(n * sizeof(float)); }

/* ||a - b|| / ||b|| in double (absolute when ||b|| == 0; inf when not finite) */
static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    if (!isfinite(num) || !isfinite(den)) return INFINITY;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
static double rel_scalar(double a, double b) {
    double e = b != 0 ? fabs(a - b) / fabs(b) : fabs(a);
    return isfinite(e) ? e : INFINITY;
}

static void check(const char *tag, const char *what, double err, double tol, const char *info) {
    int ok = err <= tol; /* NaN fails */
    g_checks++;
    if (!ok) g_fail++;
    printf("%-4s %-5s %-44s rel %.2e  tol %.0e%s%s\n", ok ? "ok" : "FAIL", tag, what, err, tol,
           info && *info ? "  " : "", info ? info : "");
    fflush(stdout);
}
/* a count that must be 0 */
static void check_zero(const char *tag, const char *what, size_t count, const char *info) {
    g_checks++;
    if (count) g_fail++;
    printf("%-4s %-5s %-44s %zu (must be 0)%s%s\n", count ? "FAIL" : "ok", tag, what, count,
           info && *info ? "  " : "", info ? info : "");
    fflush(stdout);
}
static void fail(const char *tag, const char *what, const char *msg) {
    g_checks++;
    g_fail++;
    printf("FAIL %-5s %-44s %s\n", tag, what, msg);
    fflush(stdout);
}

static void fill_normal(float *x, size_t n, double sd) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(sd * rng_normal());
}

/* the images the device model gets: imgs, or imgs x (1 + EPS N(0,1)) with --perturb */
static const float *dev_images(const float *imgs, size_t n, float *buf) {
    if (g_perturb == 0.0) return imgs;
    for (size_t i = 0; i < n; i++) buf[i] = (float)(imgs[i] * (1.0 + g_perturb * rng_normal()));
    return buf;
}

static mae_model *create(const mae_config *cfg, const mae_cls_config *cc, int B,
                         const char *device) {
    mae_error err = {{0}};
    mae_model *m = cc ? mae_classifier_create(cfg, cc, B, device, &err)
                      : mae_model_create(cfg, B, device, &err);
    if (!m) {
        printf("FAIL creating a %s model on %s: %s\n", cc ? "classifier" : "MAE", device, err.msg);
        exit(1);
    }
    return m;
}

/* the same seeded init on both (it is computed on the host, so bit for bit the same), then
 * every trainable tensor moved off its init by 0.02 N(0,1) on the host and set on both; the
 * device's copy read back must be the host's bit for bit */
static void same_params(const char *tag, mae_model *mc, mae_model *mg, uint64_t seed) {
    mae_model_init(mc, seed);
    mae_model_init(mg, seed);
    size_t differ = 0, back = 0;
    for (int i = 0; i < mae_num_tensors(mc); i++) {
        const mae_tensor_info *ti = mae_tensor(mc, i);
        float *a = fnew(ti->numel), *b = fnew(ti->numel);
        mae_tensor_get(mc, i, a);
        mae_tensor_get(mg, i, b);
        differ += memcmp(a, b, ti->numel * sizeof(float)) != 0;
        if (ti->trainable)
            for (size_t k = 0; k < ti->numel; k++) a[k] += (float)(0.02 * rng_normal());
        mae_tensor_set(mc, i, a);
        mae_tensor_set(mg, i, a);
        mae_tensor_get(mg, i, b);
        back += memcmp(a, b, ti->numel * sizeof(float)) != 0;
        free(a);
        free(b);
    }
    char info[96];
    snprintf(info, sizeof info, "(%d tensors)", mae_num_tensors(mc));
    check_zero(tag, "seeded init: tensors differing", differ, info);
    check_zero(tag, "set/get round trip: tensors differing", back, info);
}

/* every trainable tensor's gradient (params == 0) or value (params == 1); returns the worst
 * error. per_tensor: one line per tensor, else one line for all. ref0 (optional, values
 * before training, per tensor concatenated) adds the error relative to the update. */
static double compare_tensors(const char *tag, const char *label, const mae_model *mc,
                              const mae_model *mg, int params, int per_tensor, double tol,
                              const float *ref0) {
    double worst = 0;
    const char *worst_name = "-";
    size_t off = 0;
    int ntens = 0;
    for (int i = 0; i < mae_num_tensors(mc); i++) {
        const mae_tensor_info *ti = mae_tensor(mc, i);
        if (!ti->trainable) continue;
        float *a = fnew(ti->numel), *b = fnew(ti->numel);
        if (params) {
            mae_tensor_get(mg, i, a);
            mae_tensor_get(mc, i, b);
        } else {
            mae_grad_get(mg, i, a);
            mae_grad_get(mc, i, b);
        }
        /* The k third of a qkv bias has no gradient in exact arithmetic (adding a constant to
         * every key adds the same q.b to a whole row of logits, which the softmax ignores):
         * its gradient is rounding noise, which AdamW (~ lr * sign(g)) turns into updates of
         * random sign on every backend. Its gradient is still compared (as part of the
         * tensor: noise of ~1e-9 of the q and v parts); its values after training are not. */
        size_t n = ti->numel, skip_lo = n, skip_hi = n, len = strlen(ti->name);
        if (params && ref0 && len >= 13 && strcmp(ti->name + len - 13, "attn.qkv.bias") == 0)
            skip_lo = n / 3, skip_hi = 2 * n / 3;
        if (skip_lo < n) {
            memmove(a + skip_lo, a + skip_hi, (n - skip_hi) * sizeof(float));
            memmove(b + skip_lo, b + skip_hi, (n - skip_hi) * sizeof(float));
        }
        size_t nc = n - (skip_hi - skip_lo);
        double e = rel_err(a, b, nc);
        char what[160], info[96] = "";
        if (ref0) { /* the error relative to the change training made on the CPU */
            double num = 0, den = 0;
            for (size_t k = 0; k < nc; k++) {
                size_t k0 = k < skip_lo ? k : k + (skip_hi - skip_lo);
                double d = (double)a[k] - b[k], u = (double)b[k] - ref0[off + k0];
                num += d * d;
                den += u * u;
            }
            snprintf(info, sizeof info, "(of the update: %.1e%s)", den > 0 ? sqrt(num / den) : 0.0,
                     skip_lo < n ? "; the k third left out" : "");
        }
        if (per_tensor) {
            snprintf(what, sizeof what, "%s %s", label, ti->name);
            check(tag, what, e, tol, info);
        }
        if (!(e <= worst)) worst = e, worst_name = ti->name;
        off += ti->numel;
        ntens++;
        free(a);
        free(b);
    }
    if (!per_tensor) {
        char what[160], info[160];
        snprintf(what, sizeof what, "%s (worst of %d tensors)", label, ntens);
        snprintf(info, sizeof info, "(%s)", worst_name);
        check(tag, what, worst, tol, info);
    }
    return worst;
}

/* host copy of every trainable tensor, concatenated */
static float *trainable_values(const mae_model *m) {
    float *v = fnew(mae_num_params(m, 1));
    size_t off = 0;
    for (int i = 0; i < mae_num_tensors(m); i++) {
        const mae_tensor_info *ti = mae_tensor(m, i);
        if (!ti->trainable) continue;
        mae_tensor_get(m, i, v + off);
        off += ti->numel;
    }
    return v;
}

/* global gradient norm of the CPU model (sets clip_grad so that clipping is active) */
static double grad_norm(const mae_model *m) {
    double s = 0;
    for (int i = 0; i < mae_num_tensors(m); i++) {
        const mae_tensor_info *ti = mae_tensor(m, i);
        if (!ti->trainable) continue;
        float *g = fnew(ti->numel);
        mae_grad_get(m, i, g);
        for (size_t k = 0; k < ti->numel; k++) s += (double)g[k] * g[k];
        free(g);
    }
    return sqrt(s);
}

static void train_config(mae_train_config *tc, int B, double clip) {
    mae_train_config_default(tc);
    tc->batch_size = B;
    tc->epochs = 4;
    tc->warmup_epochs = 1; /* epoch_float 0.25, 0.5, 0.75: lr 2.5e-5, 5e-5, 7.5e-5 */
    tc->lr = 1e-4;
    tc->min_lr = 0;
    tc->weight_decay = 0.05;
    tc->clip_grad = clip;
}

/* ------------------------------------------------------------------ MAE pretraining */

static void test_mae(const char *tag, const mae_config *cfg, int B, uint64_t seed, int bf16) {
    int L = mae_config_num_patches(cfg), P = mae_config_patch_dim(cfg), K = mae_config_len_keep(cfg);
    int D = cfg->embed_dim;
    size_t nimg = (size_t)B * cfg->in_chans * cfg->img_size * cfg->img_size;
    printf("== %s: MAE img %d patch %d chans %d (L %d, K %d, P %d), embed %d depth %d heads %d "
           "(hd %d), decoder %d depth %d heads %d (hd %d), norm_pix %d, batch %d, %s vs cpu\n",
           tag, cfg->img_size, cfg->patch_size, cfg->in_chans, L, K, P, D, cfg->depth,
           cfg->num_heads, D / cfg->num_heads, cfg->decoder_embed_dim, cfg->decoder_depth,
           cfg->decoder_num_heads, cfg->decoder_embed_dim / cfg->decoder_num_heads,
           cfg->norm_pix_loss, B, g_dev);
    mae_model *mc = create(cfg, NULL, B, "cpu"), *mg = create(cfg, NULL, B, g_dev);
    same_params(tag, mc, mg, seed);

    float *imgs = fnew(nimg), *pimgs = fnew(nimg), *noise = fnew((size_t)B * L);
    uint64_t *ids = xmalloc(sizeof(uint64_t) * B);
    fill_normal(imgs, nimg, 1.0);
    for (int b = 0; b < B; b++) ids[b] = 1000 + (uint64_t)b;
    mae_make_noise(noise, B, L, seed + 1, ids);

    /* ---- forward */
    mae_error err = {{0}};
    float lc = 0, lg = 0;
    if (mae_forward(mc, imgs, noise, B, -1.0, &lc, &err) != MAE_OK) {
        fail(tag, "mae_forward cpu", err.msg);
        goto out;
    }
    if (mae_forward(mg, dev_images(imgs, nimg, pimgs), noise, B, -1.0, &lg, &err) != MAE_OK) {
        fail(tag, "mae_forward device", err.msg);
        goto out;
    }
    char info[128];
    snprintf(info, sizeof info, "(cpu %.7g, %s %.7g)", (double)lc, g_dev, (double)lg);
    check(tag, "loss", rel_scalar(lg, lc), TOL_FP32, info);
    {
        size_t np = (size_t)B * L * P, nl = (size_t)B * (1 + K) * D, nm = (size_t)B * L;
        float *pc = fnew(np), *pg = fnew(np), *ac = fnew(nl), *ag = fnew(nl);
        float *mkc = fnew(nm), *mkg = fnew(nm);
        mae_get_pred(mc, pc);
        mae_get_pred(mg, pg);
        check(tag, "pred (B, L, P)", rel_err(pg, pc, np), TOL_FP32, "");
        mae_get_latent(mc, ac);
        mae_get_latent(mg, ag);
        check(tag, "latent (B, 1+K, D)", rel_err(ag, ac, nl), TOL_FP32, "");
        mae_get_mask(mc, mkc);
        mae_get_mask(mg, mkg);
        size_t nd = 0;
        for (size_t i = 0; i < nm; i++) nd += mkc[i] != mkg[i];
        check_zero(tag, "mask (B, L): elements differing", nd, "");
        free(pc), free(pg), free(ac), free(ag), free(mkc), free(mkg);
    }

    /* ---- backward: every gradient; then a second backward must accumulate */
    mae_zero_grad(mc);
    mae_zero_grad(mg);
    mae_backward(mc, 1.0f);
    mae_backward(mg, 1.0f);
    compare_tensors(tag, "grad", mc, mg, 0, 1, TOL_FP32, NULL);
    double gnorm = grad_norm(mc);
    mae_backward(mc, 0.37f);
    mae_backward(mg, 0.37f);
    compare_tensors(tag, "grad after a 2nd backward x0.37 (accumulated)", mc, mg, 0, 0, TOL_FP32,
                    NULL);

    /* ---- bf16 on the device against fp32 on the CPU (same parameters and inputs) */
    if (bf16) {
        mae_error e2 = {{0}};
        if (mae_model_set_precision(mg, "bf16", &e2) != MAE_OK) {
            if (strcmp(g_dev, "cpu") == 0)
                printf("skip %-5s bf16 loss: %s\n", tag, e2.msg); /* self-check only */
            else
                fail(tag, "bf16: mae_model_set_precision", e2.msg);
        } else {
            float lb = 0;
            if (mae_forward(mg, dev_images(imgs, nimg, pimgs), noise, B, -1.0, &lb, &e2) != MAE_OK) {
                fail(tag, "bf16: mae_forward", e2.msg);
            } else {
                snprintf(info, sizeof info, "(cpu fp32 %.7g, %s bf16 %.7g)", (double)lc, g_dev,
                         (double)lb);
                check(tag, "loss, device bf16 vs cpu fp32", rel_scalar(lb, lc), TOL_BF16, info);
            }
            if (mae_model_set_precision(mg, "fp32", &e2) != MAE_OK)
                fail(tag, "back to fp32: mae_model_set_precision", e2.msg);
        }
    }

    /* ---- 3 AdamW steps through the trainer (it zeroes the gradients first) */
    {
        mae_train_config tc;
        train_config(&tc, B, 0.5 * gnorm);
        mae_error e3 = {{0}};
        mae_trainer *tcpu = mae_trainer_create(mc, &tc, &e3), *tdev = NULL;
        if (tcpu) tdev = mae_trainer_create(mg, &tc, &e3);
        if (!tcpu || !tdev) {
            fail(tag, "mae_trainer_create", e3.msg);
            mae_trainer_free(tcpu);
            goto out;
        }
        float *p0 = trainable_values(mc);
        for (int s = 0; s < 3; s++) {
            fill_normal(imgs, nimg, 1.0);
            for (int b = 0; b < B; b++) ids[b] = 2000 + (uint64_t)(s * B + b);
            mae_make_noise(noise, B, L, seed + 2, ids);
            double ep = 0.25 * (s + 1);
            float sc = 0, sg = 0;
            int rc = mae_trainer_step(tcpu, imgs, noise, B, ep, &sc, &e3);
            if (rc == MAE_OK)
                rc = mae_trainer_step(tdev, dev_images(imgs, nimg, pimgs), noise, B, ep, &sg, &e3);
            if (rc != MAE_OK) {
                fail(tag, "mae_trainer_step", e3.msg);
                break;
            }
            char what[64];
            snprintf(what, sizeof what, "trainer step %d loss", s + 1);
            snprintf(info, sizeof info, "(lr %.2e, clip_grad %.3g)", mae_trainer_lr(tcpu),
                     tc.clip_grad);
            check(tag, what, rel_scalar(sg, sc), TOL_FP32, info);
        }
        check_zero(tag, "AdamW updates != 3 (device or cpu)",
                   mae_trainer_num_updates(tdev) != 3 || mae_trainer_num_updates(tcpu) != 3, "");
        compare_tensors(tag, "param after 3 AdamW steps", mc, mg, 1, 1, TOL_FP32, p0);
        free(p0);
        mae_trainer_free(tcpu);
        mae_trainer_free(tdev);
    }
out:
    free(imgs), free(pimgs), free(noise), free(ids);
    mae_model_free(mc);
    mae_model_free(mg);
}

/* ------------------------------------------------------------------ classifier */

/* soft targets (B, NC): label-smoothed mixups of two classes, rows summing to 1 */
static void make_targets(float *t, int B) {
    for (int b = 0; b < B; b++) {
        int y1 = (int)(rng_next() % NC), y2 = (int)(rng_next() % NC);
        double lam = 0.3 + 0.7 * rng_u01();
        for (int c = 0; c < NC; c++)
            t[b * NC + c] = (float)(0.1 / NC + 0.9 * (lam * (c == y1) + (1 - lam) * (c == y2)));
    }
}

static int cls_forward_pair(const char *tag, const char *what, mae_model *mc, mae_model *mg,
                            const float *imgs, const float *pimgs, const float *targets, int B,
                            int train) {
    mae_error err = {{0}};
    float lc = 0, lg = 0, *zc = fnew((size_t)B * NC), *zg = fnew((size_t)B * NC);
    int D = mae_model_config(mc)->embed_dim;
    int ok = mae_cls_forward(mc, imgs, targets, B, train, 7, &lc, zc, &err) == MAE_OK;
    if (!ok) fail(tag, "mae_cls_forward cpu", err.msg);
    if (ok && !(ok = mae_cls_forward(mg, pimgs, targets, B, train, 7, &lg, zg, &err) == MAE_OK))
        fail(tag, "mae_cls_forward device", err.msg);
    if (ok) {
        char w[128], info[128];
        snprintf(w, sizeof w, "%s logits (B, %d)", what, NC);
        check(tag, w, rel_err(zg, zc, (size_t)B * NC), TOL_FP32, "");
        if (targets) {
            snprintf(w, sizeof w, "%s loss", what);
            snprintf(info, sizeof info, "(cpu %.7g, %s %.7g)", (double)lc, g_dev, (double)lg);
            check(tag, w, rel_scalar(lg, lc), TOL_FP32, info);
        }
        float *fc = fnew((size_t)B * D), *fg = fnew((size_t)B * D);
        mae_cls_get_features(mc, fc);
        mae_cls_get_features(mg, fg);
        snprintf(w, sizeof w, "%s features (B, D)", what);
        check(tag, w, rel_err(fg, fc, (size_t)B * D), TOL_FP32, "");
        free(fc), free(fg);
    }
    free(zc), free(zg);
    return ok;
}

static void test_finetune(const char *tag, const mae_config *cfg, int B, uint64_t seed) {
    mae_cls_config cc = {.num_classes = NC, .global_pool = 1, .head_bn = 0, .freeze_encoder = 0,
                         .drop_path = 0.0, .head_init_std = 2e-5};
    size_t nimg = (size_t)B * cfg->in_chans * cfg->img_size * cfg->img_size;
    printf("== %s: classifier, fine-tuning: global pool, %d classes, drop_path 0, batch %d, "
           "%s vs cpu\n", tag, NC, B, g_dev);
    mae_model *mc = create(cfg, &cc, B, "cpu"), *mg = create(cfg, &cc, B, g_dev);
    same_params(tag, mc, mg, seed);
    float *imgs = fnew(nimg), *pimgs = fnew(nimg), *t = fnew((size_t)B * NC);
    fill_normal(imgs, nimg, 1.0);
    make_targets(t, B);
    if (!cls_forward_pair(tag, "train forward", mc, mg, imgs, dev_images(imgs, nimg, pimgs), t,
                          B, 1))
        goto out;
    mae_zero_grad(mc);
    mae_zero_grad(mg);
    mae_cls_backward(mc, 1.0f);
    mae_cls_backward(mg, 1.0f);
    compare_tensors(tag, "grad", mc, mg, 0, 1, TOL_FP32, NULL);
    {
        mae_train_config tc;
        train_config(&tc, B, 0.5 * grad_norm(mc));
        tc.layer_decay = 0.75;
        mae_error e3 = {{0}};
        mae_trainer *tcpu = mae_trainer_create(mc, &tc, &e3), *tdev = NULL;
        if (tcpu) tdev = mae_trainer_create(mg, &tc, &e3);
        if (!tcpu || !tdev) {
            fail(tag, "mae_trainer_create", e3.msg);
            mae_trainer_free(tcpu);
            goto out;
        }
        float *p0 = trainable_values(mc);
        for (int s = 0; s < 3; s++) {
            fill_normal(imgs, nimg, 1.0);
            make_targets(t, B);
            double ep = 0.25 * (s + 1);
            float sc = 0, sg = 0;
            int rc = mae_trainer_step_cls(tcpu, imgs, t, B, ep, (uint64_t)s, &sc, &e3);
            if (rc == MAE_OK)
                rc = mae_trainer_step_cls(tdev, dev_images(imgs, nimg, pimgs), t, B, ep,
                                          (uint64_t)s, &sg, &e3);
            if (rc != MAE_OK) {
                fail(tag, "mae_trainer_step_cls", e3.msg);
                break;
            }
            char what[64], info[96];
            snprintf(what, sizeof what, "trainer step %d loss", s + 1);
            snprintf(info, sizeof info, "(lr %.2e, layer_decay 0.75, clip_grad %.3g)",
                     mae_trainer_lr(tcpu), tc.clip_grad);
            check(tag, what, rel_scalar(sg, sc), TOL_FP32, info);
        }
        compare_tensors(tag, "param after 3 AdamW steps", mc, mg, 1, 1, TOL_FP32, p0);
        free(p0);
        mae_trainer_free(tcpu);
        mae_trainer_free(tdev);
    }
out:
    free(imgs), free(pimgs), free(t);
    mae_model_free(mc);
    mae_model_free(mg);
}

static void test_linprobe(const char *tag, const mae_config *cfg, int B, uint64_t seed) {
    mae_cls_config cc = {.num_classes = NC, .global_pool = 0, .head_bn = 1, .freeze_encoder = 1,
                         .drop_path = 0.0, .head_init_std = 0.01};
    size_t nimg = (size_t)B * cfg->in_chans * cfg->img_size * cfg->img_size;
    printf("== %s: classifier, linear probe: frozen encoder, CLS pooling, BatchNorm head, %d "
           "classes, batch %d, %s vs cpu\n", tag, NC, B, g_dev);
    mae_model *mc = create(cfg, &cc, B, "cpu"), *mg = create(cfg, &cc, B, g_dev);
    same_params(tag, mc, mg, seed);
    float *imgs = fnew(nimg), *pimgs = fnew(nimg), *t = fnew((size_t)B * NC);
    fill_normal(imgs, nimg, 1.0);
    make_targets(t, B);
    const float *pi = dev_images(imgs, nimg, pimgs);
    /* train mode: BatchNorm on the batch statistics, updating its running stats */
    if (!cls_forward_pair(tag, "train forward", mc, mg, imgs, pi, t, B, 1)) goto out;
    static const char *const stats[2] = {"head.0.running_mean", "head.0.running_var"};
    for (int s = 0; s < 2; s++) {
        int ic = mae_tensor_find(mc, stats[s]), ig = mae_tensor_find(mg, stats[s]);
        if (ic < 0 || ig < 0) {
            fail(tag, stats[s], "no such tensor");
            continue;
        }
        size_t n = mae_tensor(mc, ic)->numel;
        float *a = fnew(n), *b = fnew(n);
        mae_tensor_get(mc, ic, b);
        mae_tensor_get(mg, ig, a);
        char what[96];
        snprintf(what, sizeof what, "%s after the train forward", stats[s]);
        check(tag, what, rel_err(a, b, n), TOL_FP32, "");
        free(a), free(b);
    }
    /* eval mode (running stats), then the head's gradients */
    if (!cls_forward_pair(tag, "eval forward", mc, mg, imgs, pi, t, B, 0)) goto out;
    mae_zero_grad(mc);
    mae_zero_grad(mg);
    mae_cls_backward(mc, 1.0f);
    mae_cls_backward(mg, 1.0f);
    compare_tensors(tag, "grad", mc, mg, 0, 1, TOL_FP32, NULL);
out:
    free(imgs), free(pimgs), free(t);
    mae_model_free(mc);
    mae_model_free(mg);
}

/* ------------------------------------------------------------------ driver */

static mae_config config_a(void) {
    mae_config c;
    memset(&c, 0, sizeof c);
    c.img_size = 32;
    c.patch_size = 4;
    c.in_chans = 3;
    c.embed_dim = 128;
    c.depth = 2;
    c.num_heads = 2;
    c.decoder_embed_dim = 64;
    c.decoder_depth = 1;
    c.decoder_num_heads = 2;
    c.mlp_ratio = 4.0f;
    c.mask_ratio = 0.75;
    c.norm_pix_loss = 1;
    c.layer_norm_eps = 0.0f; /* 1e-6 */
    return c;
}

static mae_config config_b(void) {
    mae_config c = config_a();
    c.img_size = 28;
    c.in_chans = 1;
    c.embed_dim = 160; /* head dim 80 */
    c.decoder_embed_dim = 80;
    c.decoder_num_heads = 1; /* head dim 80 */
    c.norm_pix_loss = 0;
    return c;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            g_dev = argv[++i];
        } else if (strcmp(argv[i], "--perturb") == 0 && i + 1 < argc) {
            g_perturb = atof(argv[++i]);
        } else {
            fprintf(stderr, "usage: test_cuda_model [--device NAME] [--perturb EPS]\n");
            return 2;
        }
    }
    char why[512];
    int skip;
    if (!test_backend_find(g_dev, &skip, why, sizeof why)) {
        if (skip) {
            printf("SKIP: backend '%s': %s\n", g_dev, why);
            return 77;
        }
        printf("FAIL: backend '%s' not available: %s\n", g_dev, why);
        return 1;
    }
    if (g_perturb != 0.0)
        printf("(--perturb %g: the %s model gets images x (1 + %g N(0,1)))\n", g_perturb, g_dev,
               g_perturb);
    mae_config a = config_a(), b = config_b();
    mae_error err = {{0}};
    if (mae_config_validate(&a, &err) != MAE_OK || mae_config_validate(&b, &err) != MAE_OK) {
        printf("FAIL config: %s\n", err.msg);
        return 1;
    }
    test_mae("A", &a, 3, 11, 1);
    test_mae("B", &b, 5, 12, 0);
    test_finetune("FT", &a, 3, 13);
    /* batch 8: BatchNorm over a batch of 3 has channels of tiny batch variance (chi-square
     * with 2 degrees of freedom), which scale the features' rounding differences up ~10x */
    test_linprobe("LP", &a, 8, 14);
    printf("test_cuda_model: %d checks, %d failed (%s vs cpu)\n", g_checks, g_fail, g_dev);
    return g_fail ? 1 : 0;
}
