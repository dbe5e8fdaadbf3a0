/* test_model.c - model-level checks through the public API: config validation, the tensor
 * table (names, decay groups), memory sized for visible tokens, masking invariants, noise
 * derivation, batch independence, lr schedule, forward error cases and encoder-only inference.
 * Exits non-zero on failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mae.h"

#include "check.h"


static mae_config small_cfg(void) {
    mae_config c;
    mae_config_preset(&c, "tiny-28", NULL);
    c.embed_dim = 48;
    c.depth = 2;
    c.num_heads = 3;
    c.decoder_embed_dim = 32;
    c.decoder_depth = 1;
    c.decoder_num_heads = 2;
    return c;
}

static void test_config(void) {
    mae_config c;
    mae_error e;
    CHECK(mae_config_preset(&c, "nope", &e) == MAE_ERR && strstr(e.msg, "nope"), "unknown preset");
    const char *names[] = {"mae_vit_base_patch16", "mae_vit_large_patch16", "mae_vit_huge_patch14",
                           "tiny-28", "tiny-32", "small-224", "base-224"};
    for (int i = 0; i < 7; i++) {
        CHECK(mae_config_preset(&c, names[i], &e) == MAE_OK, "preset %s", names[i]);
        CHECK(mae_config_validate(&c, &e) == MAE_OK, "preset %s valid: %s", names[i], e.msg);
    }
    mae_config_preset(&c, "mae_vit_huge_patch14", NULL);
    CHECK(c.embed_dim == 1280 && c.depth == 32 && c.num_heads == 16 && c.patch_size == 14 &&
              mae_config_num_patches(&c) == 256,
          "huge preset");
    c = small_cfg();
    c.img_size = 30;
    CHECK(mae_config_validate(&c, &e) == MAE_ERR && strstr(e.msg, "divisible"), "img%%patch: %s", e.msg);
    c = small_cfg();
    c.num_heads = 5;
    CHECK(mae_config_validate(&c, &e) == MAE_ERR && strstr(e.msg, "num_heads"), "heads: %s", e.msg);
    c = small_cfg();
    c.decoder_num_heads = 3;
    CHECK(mae_config_validate(&c, &e) == MAE_ERR && strstr(e.msg, "decoder"), "dheads: %s", e.msg);
    c = small_cfg();
    c.mask_ratio = 1.0;
    CHECK(mae_config_validate(&c, &e) == MAE_ERR && strstr(e.msg, "mask_ratio"), "ratio 1: %s", e.msg);
    c.mask_ratio = -0.01;
    CHECK(mae_config_validate(&c, &e) == MAE_ERR, "ratio < 0");
    c.mask_ratio = 0.99; /* int(49 * 0.01) = 0 */
    CHECK(mae_config_validate(&c, &e) == MAE_ERR && strstr(e.msg, "no visible"), "no visible: %s", e.msg);
    c = small_cfg();
    c.in_chans = 2;
    CHECK(mae_config_validate(&c, &e) == MAE_ERR && strstr(e.msg, "in_chans"), "chans");
    c = small_cfg();
    c.embed_dim = 50; /* not a multiple of 4 (sin-cos) */
    c.num_heads = 5;
    CHECK(mae_config_validate(&c, &e) == MAE_ERR && strstr(e.msg, "multiple of 4"), "dim%%4: %s", e.msg);
    c = small_cfg();
    c.mlp_ratio = 0;
    CHECK(mae_config_validate(&c, &e) == MAE_ERR && strstr(e.msg, "mlp_ratio"), "mlp");
    /* len_keep as Python: int(L * (1 - r)) in double */
    c = small_cfg();
    c.mask_ratio = 0.6;
    CHECK(mae_config_len_keep(&c) == (int)(49 * (1 - 0.6)), "len_keep 0.6");
    CHECK(mae_config_len_keep(&c) == 19, "len_keep 0.6 = 19");
    /* JSON round trip */
    char buf[1024];
    mae_config d;
    CHECK(mae_config_to_json(&c, buf, sizeof buf) == MAE_OK, "to_json");
    CHECK(mae_config_from_json(&d, buf, &e) == MAE_OK && memcmp(&c, &d, sizeof c) == 0, "json rt");
    CHECK(mae_config_from_json(&d, "{\"img_size\": \"x\"}", &e) == MAE_ERR, "json bad type");
    CHECK(mae_config_from_json(&d, "[1,2", &e) == MAE_ERR, "json garbage");
}

static void test_table(void) {
    mae_config c = small_cfg();
    mae_error e;
    mae_model *m = mae_model_create(&c, 2, "cpu", &e);
    CHECK(m != NULL, "create");
    if (!m) return;
    int n = mae_num_tensors(m);
    CHECK(n == 4 + 12 * 2 + 6 + 12 * 1 + 4, "tensor count %d", n);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const mae_tensor_info *t = mae_tensor(m, i);
        total += t->numel;
        size_t len = strlen(t->name);
        int is_bias = len > 5 && strcmp(t->name + len - 5, ".bias") == 0;
        int is_pos = strstr(t->name, "pos_embed") != NULL;
        CHECK(t->trainable == !is_pos, "%s trainable", t->name);
        CHECK(t->weight_decay == (!is_pos && t->ndim > 1 && !is_bias), "%s decay", t->name);
        CHECK(mae_tensor_find(m, t->name) == i, "find %s", t->name);
    }
    CHECK(mae_tensor(m, mae_tensor_find(m, "cls_token"))->weight_decay == 1, "cls decays");
    CHECK(mae_tensor(m, mae_tensor_find(m, "mask_token"))->weight_decay == 1, "mask decays");
    const mae_tensor_info *pw = mae_tensor(m, mae_tensor_find(m, "patch_embed.proj.weight"));
    CHECK(pw->ndim == 4 && pw->shape[0] == 48 && pw->shape[1] == 1 && pw->shape[2] == 4 && pw->shape[3] == 4,
          "patch weight shape");
    const mae_tensor_info *qkv = mae_tensor(m, mae_tensor_find(m, "decoder_blocks.0.attn.qkv.weight"));
    CHECK(qkv->shape[0] == 96 && qkv->shape[1] == 32, "decoder qkv shape");
    CHECK(mae_tensor_find(m, "blocks.2.norm1.weight") == -1, "no block 2");
    CHECK(mae_num_params(m, 0) == total, "num_params");
    /* init is seeded and reproducible */
    int iq = mae_tensor_find(m, "blocks.0.attn.qkv.weight");
    size_t nq = mae_tensor(m, iq)->numel;
    float *a = malloc(nq * 4), *b = malloc(nq * 4);
    mae_model_init(m, 7);
    mae_tensor_get(m, iq, a);
    mae_model_init(m, 7);
    mae_tensor_get(m, iq, b);
    CHECK(memcmp(a, b, nq * 4) == 0, "same seed same init");
    mae_model_init(m, 8);
    mae_tensor_get(m, iq, b);
    CHECK(memcmp(a, b, nq * 4) != 0, "other seed other init");
    double bound = sqrt(6.0 / (48 + 144)), mx = 0; /* qkv: fan_in 48, fan_out 144 */
    for (size_t i = 0; i < nq; i++) mx = fabs(a[i]) > mx ? fabs(a[i]) : mx;
    CHECK(mx <= bound && mx > 0.9 * bound, "xavier bound %g vs %g", mx, bound);
    free(a);
    free(b);
    mae_model_free(m);
}

/* encoder activations are sized for the visible tokens only */
static void test_memory(void) {
    mae_config c;
    mae_config_preset(&c, "base-224", NULL);
    mae_error e;
    size_t enc75, enc0, p75, a75;
    mae_model *m = mae_model_create(&c, 2, "cpu", &e);
    CHECK(m != NULL, "create base");
    if (!m) return;
    mae_model_memory(m, &p75, &a75, &enc75, NULL);
    mae_model_free(m);
    c.mask_ratio = 0.0;
    m = mae_model_create(&c, 2, "cpu", &e);
    CHECK(m != NULL, "create base r=0");
    if (!m) return;
    mae_model_memory(m, NULL, NULL, &enc0, NULL);
    mae_model_free(m);
    double ratio = (double)enc0 / enc75;
    printf("encoder activations: %.1f MB at mask 0.75 vs %.1f MB with all tokens (%.2fx)\n",
           enc75 / 1e6, enc0 / 1e6, ratio);
    CHECK(ratio > 3.0, "masking saves > 3x encoder activation memory, got %.2fx", ratio);
    CHECK(p75 >= 111000000u * 4 && p75 < 113000000u * 4, "base params ~112M floats: %zu", p75 / 4);
}

static void test_masking(void) {
    mae_config c = small_cfg();
    mae_error e;
    mae_model *m = mae_model_create(&c, 4, "cpu", &e);
    if (!m) return;
    mae_model_init(m, 1);
    int B = 4, L = 49, K = 12, P = 16;
    float *x = malloc(sizeof(float) * B * 28 * 28), *noise = malloc(sizeof(float) * B * L);
    float *mask = malloc(sizeof(float) * B * L), *pred4 = malloc(sizeof(float) * B * L * P);
    float *pred1 = malloc(sizeof(float) * L * P);
    int64_t *ids = malloc(sizeof(int64_t) * B * L);
    for (int i = 0; i < B * 28 * 28; i++) x[i] = (float)sin(i * 0.37) * 1.5f;
    uint64_t sid[4] = {10, 11, 12, 13};
    mae_make_noise(noise, B, L, 5, sid);
    float nz2[49];
    mae_make_noise(nz2, 1, L, 5, &sid[2]);
    CHECK(memcmp(nz2, noise + 2 * L, sizeof nz2) == 0, "noise depends only on (seed, id, l)");
    mae_make_noise(nz2, 1, L, 6, &sid[2]);
    CHECK(memcmp(nz2, noise + 2 * L, sizeof nz2) != 0, "noise depends on seed");
    float loss4, loss1;
    CHECK(mae_forward(m, x, noise, B, -1, &loss4, &e) == MAE_OK, "forward");
    CHECK(mae_last_len_keep(m) == K, "K");
    mae_get_mask(m, mask);
    mae_get_ids_restore(m, ids);
    mae_get_pred(m, pred4);
    for (int b = 0; b < B; b++) {
        int removed = 0, seen[49] = {0};
        for (int l = 0; l < L; l++) {
            removed += mask[b * L + l] != 0;
            if (ids[b * L + l] >= 0 && ids[b * L + l] < L) seen[ids[b * L + l]]++;
        }
        CHECK(removed == L - K, "row %d removes %d", b, removed);
        int perm = 1;
        for (int l = 0; l < L; l++) perm &= seen[l] == 1;
        CHECK(perm, "ids_restore row %d is a permutation", b);
        /* kept = the K smallest noise values (independent check) */
        for (int l = 0; l < L; l++) {
            int rank = 0;
            for (int k = 0; k < L; k++) rank += noise[b * L + k] < noise[b * L + l];
            CHECK((rank < K) == (mask[b * L + l] == 0), "kept patch %d,%d has noise rank %d", b, l, rank);
            CHECK(ids[b * L + l] == rank, "ids_restore is the noise rank");
        }
    }
    /* a sample's prediction does not depend on the rest of the batch */
    CHECK(mae_forward(m, x + 2 * 28 * 28, noise + 2 * L, 1, -1, &loss1, &e) == MAE_OK, "fwd 1");
    mae_get_pred(m, pred1);
    double num = 0, den = 0;
    for (int i = 0; i < L * P; i++) {
        double d = pred1[i] - pred4[2 * L * P + i];
        num += d * d;
        den += (double)pred1[i] * pred1[i];
    }
    CHECK(sqrt(num / den) < 1e-5, "batch independence %g", sqrt(num / den));
    /* same input + noise -> bit-identical output */
    float l2;
    mae_forward(m, x, noise, B, -1, &l2, &e);
    CHECK(l2 == loss4, "deterministic loss %g vs %g", (double)l2, (double)loss4);
    /* errors */
    CHECK(mae_forward(m, x, noise, 5, -1, &l2, &e) == MAE_ERR && strstr(e.msg, "batch"), "B > max");
    CHECK(mae_forward(m, x, noise, 1, 0.5, &l2, &e) == MAE_ERR && strstr(e.msg, "at most"),
          "more visible than allocated: %s", e.msg);
    CHECK(mae_forward(m, x, noise, 1, 0.9, &l2, &e) == MAE_OK, "fewer visible is fine");
    free(x);
    free(noise);
    free(mask);
    free(pred4);
    free(pred1);
    free(ids);
    mae_model_free(m);
}

static void test_schedule(void) {
    mae_train_config tc;
    mae_train_config_default(&tc);
    CHECK(tc.blr == 1e-3 && tc.beta2 == 0.95 && tc.weight_decay == 0.05 && tc.warmup_epochs == 40,
          "main_pretrain defaults");
    tc.batch_size = 64;
    tc.accum_iter = 4;
    tc.blr = 1.5e-4;
    double lr = 1.5e-4 * 256 / 256;
    CHECK(fabs(mae_train_effective_lr(&tc) - lr) < 1e-15, "lr = blr * eff / 256");
    tc.epochs = 100;
    tc.warmup_epochs = 10;
    tc.min_lr = 1e-6;
    CHECK(mae_lr_at(&tc, 0) == 0, "lr(0) = 0");
    CHECK(fabs(mae_lr_at(&tc, 5) - lr / 2) < 1e-15, "half warmup");
    CHECK(fabs(mae_lr_at(&tc, 10) - lr) < 1e-15, "peak");
    CHECK(fabs(mae_lr_at(&tc, 55) - (1e-6 + (lr - 1e-6) * 0.5)) < 1e-15, "cosine midpoint");
    CHECK(fabs(mae_lr_at(&tc, 100) - 1e-6) < 1e-15, "end at min_lr");
    tc.lr = 0.5;
    CHECK(mae_train_effective_lr(&tc) == 0.5, "--lr overrides blr");
    mae_config c = small_cfg();
    mae_error e;
    mae_model *m = mae_model_create(&c, 2, "cpu", &e);
    tc.batch_size = 0;
    CHECK(mae_trainer_create(m, &tc, &e) == NULL && strstr(e.msg, "batch_size"), "bad batch");
    mae_model_free(m);
}

/* The phase times: every phase of a training step is timed, none twice, and their sum fits
 * inside the wall time around the steps. */
static void test_phases(void) {
    mae_config c = small_cfg();
    mae_error e;
    mae_model *m = mae_model_create(&c, 4, "cpu", &e);
    mae_model_init(m, 1);
    mae_train_config tc;
    mae_train_config_default(&tc);
    tc.batch_size = 4;
    tc.accum_iter = 2;
    mae_trainer *t = mae_trainer_create(m, &tc, &e);
    size_t npix = (size_t)4 * c.in_chans * c.img_size * c.img_size;
    float *imgs = calloc(npix, sizeof(float));
    for (size_t i = 0; i < npix; i++) imgs[i] = (float)(i % 7) - 3.0f;
    double ph[MAE_NUM_PHASES], sum = 0;
    mae_phase_reset(m);
    mae_phase_seconds(m, ph);
    for (int k = 0; k < MAE_NUM_PHASES; k++) sum += ph[k];
    CHECK(sum == 0, "phases after reset: %g", sum);
    struct timespec a, b;
    timespec_get(&a, TIME_UTC);
    float loss;
    mae_trainer_step(t, imgs, NULL, 4, 0.0, &loss, &e);
    mae_phase_seconds(m, ph);
    CHECK(ph[MAE_PHASE_OPTIMIZER] == 0, "no optimizer step after 1 of 2 accumulation steps: %g",
          ph[MAE_PHASE_OPTIMIZER]);
    mae_trainer_step(t, imgs, NULL, 4, 0.0, &loss, &e);
    timespec_get(&b, TIME_UTC);
    double wall = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9;
    mae_phase_seconds(m, ph);
    sum = 0;
    for (int k = 0; k < MAE_NUM_PHASES; k++) {
        /* grad_sync: only with a data-parallel sync (test_grad_sync), none here */
        if (k == MAE_PHASE_GRAD_SYNC)
            CHECK(ph[k] == 0, "grad_sync timed without a sync: %g", ph[k]);
        else
            CHECK(ph[k] > 0, "phase %s was not timed", mae_phase_name(k));
        sum += ph[k];
    }
    CHECK(sum <= wall + 1e-3, "phases sum to %g s but the steps took %g s", sum, wall);
    CHECK(!strcmp(mae_phase_name(MAE_PHASE_BACKWARD), "backward") && !strcmp(mae_phase_name(99), "?"),
          "phase names");
    free(imgs);
    mae_trainer_free(t);
    mae_model_free(m);
}

/* mae_forward_encoder against mae_forward at mask_ratio 0: the latter shuffles the patches by
 * the noise, so token 1+l of the encoder-only output (patch l in image order) must equal token
 * 1+ids_restore[b,l] of the shuffled latent; the CLS tokens are equal. */
static void test_forward_encoder(void) {
    mae_config c;
    mae_config_preset(&c, "tiny-28", NULL);
    c.mask_ratio = 0.0;
    mae_error e;
    int B = 3, L = mae_config_num_patches(&c), D = c.embed_dim, T = 1 + L;
    mae_model *m = mae_model_create(&c, B, "cpu", &e);
    CHECK(m != NULL, "create tiny-28 r=0: %s", e.msg);
    if (!m) return;
    mae_model_init(m, 3);
    size_t npix = (size_t)B * c.in_chans * c.img_size * c.img_size;
    float *x = malloc(sizeof(float) * npix), *noise = malloc(sizeof(float) * B * L);
    float *shuf = malloc(sizeof(float) * B * T * D), *enc = malloc(sizeof(float) * B * T * D);
    int64_t *ids = malloc(sizeof(int64_t) * B * L);
    for (size_t i = 0; i < npix; i++) x[i] = (float)sin(i * 0.61 + 0.3) * 1.2f;
    uint64_t sid[3] = {4, 5, 6};
    mae_make_noise(noise, B, L, 9, sid);
    float loss;
    CHECK(mae_forward(m, x, noise, B, 0.0, &loss, &e) == MAE_OK, "forward r=0: %s", e.msg);
    CHECK(mae_last_len_keep(m) == L, "all %d patches kept: %d", L, mae_last_len_keep(m));
    mae_get_latent(m, shuf);
    mae_get_ids_restore(m, ids);
    int identity = 1;
    for (int i = 0; i < B * L; i++) identity &= ids[i] == i % L;
    CHECK(!identity, "the noise shuffles the patches");
    for (size_t i = 0; i < (size_t)B * T * D; i++) enc[i] = NAN;
    CHECK(mae_forward_encoder(m, x, B, enc, &e) == MAE_OK, "forward_encoder: %s", e.msg);
    CHECK(mae_last_batch(m) == 0, "no last-forward outputs after forward_encoder");
    double num = 0, den = 0;
    int finite = 1;
    for (int b = 0; b < B; b++)
        for (int l = 0; l < T; l++) {
            int ls = l == 0 ? 0 : 1 + (int)ids[b * L + l - 1];
            const float *u = enc + ((size_t)b * T + l) * D, *v = shuf + ((size_t)b * T + ls) * D;
            for (int d = 0; d < D; d++) {
                double dd = (double)u[d] - v[d];
                finite &= isfinite(u[d]) != 0;
                num += dd * dd;
                den += (double)v[d] * v[d];
            }
        }
    CHECK(finite, "every latent value written and finite");
    CHECK(den > 0 && sqrt(num / den) < 1e-5, "encoder-only latent = unshuffled latent: rel %g",
          sqrt(num / den));
    double ph[MAE_NUM_PHASES];
    mae_phase_reset(m);
    mae_forward_encoder(m, x, B, enc, &e);
    mae_phase_seconds(m, ph);
    CHECK(ph[MAE_PHASE_ENCODER] > 0 && ph[MAE_PHASE_DECODER] == 0 && ph[MAE_PHASE_LOSS] == 0,
          "timed as the encoder phase only: %g %g %g", ph[0], ph[1], ph[2]);
    CHECK(mae_forward_encoder(m, x, B + 1, enc, &e) == MAE_ERR && strstr(e.msg, "batch"),
          "B > max: %s", e.msg);
    mae_model_free(m);
    /* a model created for masking has an encoder too small for all tokens: an error */
    c.mask_ratio = 0.75;
    m = mae_model_create(&c, B, "cpu", &e);
    CHECK(m != NULL, "create tiny-28 r=0.75: %s", e.msg);
    if (m) {
        mae_model_init(m, 3);
        e.msg[0] = 0;
        CHECK(mae_forward_encoder(m, x, B, enc, &e) == MAE_ERR && strstr(e.msg, "mask_ratio 0"),
              "mask_ratio 0.75 model refused: '%s'", e.msg);
        mae_model_free(m);
    }
    free(x);
    free(noise);
    free(shuf);
    free(enc);
    free(ids);
}

/* Three training steps at 1 thread and at 2 threads give bit-identical parameters (every
 * reduction has an order fixed by the shapes: the GEMM sums each output over k in one thread,
 * LayerNorm/bias gradients over fixed row blocks), in fp32 and, where the CPU has it, bf16. */
static void train_params(const mae_config *c, int threads, const char *prec, float *out, size_t n) {
    mae_error e = {{0}};
    mae_set_num_threads(threads);
    int B = 6, L = mae_config_num_patches(c);
    mae_model *m = mae_model_create(c, B, "cpu", &e);
    CHECK(m != NULL, "create: %s", e.msg);
    if (!m) return;
    mae_model_init(m, 11);
    CHECK(mae_model_set_precision(m, prec, &e) == MAE_OK, "precision %s: %s", prec, e.msg);
    mae_train_config tc;
    mae_train_config_default(&tc);
    tc.batch_size = B;
    tc.lr = 1e-3;
    tc.warmup_epochs = 0;
    tc.epochs = 1;
    mae_trainer *t = mae_trainer_create(m, &tc, &e);
    CHECK(t != NULL, "trainer: %s", e.msg);
    size_t npix = (size_t)B * c->in_chans * c->img_size * c->img_size;
    float *imgs = malloc(sizeof(float) * npix), *noise = malloc(sizeof(float) * B * L);
    for (size_t i = 0; i < npix; i++) imgs[i] = (float)sin(0.37 * (double)i) * 1.5f;
    for (int step = 0; step < 3 && t; step++) {
        uint64_t ids[6];
        for (int b = 0; b < B; b++) ids[b] = (uint64_t)(step * B + b);
        mae_make_noise(noise, B, L, 5, ids);
        float loss;
        CHECK(mae_trainer_step(t, imgs, noise, B, 0.1 * step, &loss, &e) == MAE_OK, "step: %s", e.msg);
    }
    size_t off = 0;
    for (int i = 0; i < mae_num_tensors(m); i++) {
        const mae_tensor_info *ti = mae_tensor(m, i);
        if (off + ti->numel <= n) mae_tensor_get(m, i, out + off);
        off += ti->numel;
    }
    free(imgs);
    free(noise);
    mae_trainer_free(t);
    mae_model_free(m);
}

static void test_thread_invariance(void) {
    mae_config c;
    mae_error e = {{0}};
    CHECK(mae_config_preset(&c, "tiny-28", &e) == MAE_OK, "%s", e.msg);
    c.depth = 2;
    c.decoder_depth = 1;
    c.norm_pix_loss = 1;
    mae_model *probe = mae_model_create(&c, 1, "cpu", &e);
    if (!probe) return;
    size_t n = mae_num_params(probe, 0);
    int has_bf16 = mae_model_set_precision(probe, "bf16", &e) == MAE_OK;
    mae_model_free(probe);
    float *p1 = malloc(sizeof(float) * n), *p2 = malloc(sizeof(float) * n);
    for (int k = 0; k < 1 + has_bf16; k++) {
        const char *prec = k ? "bf16" : "fp32";
        train_params(&c, 1, prec, p1, n);
        train_params(&c, 2, prec, p2, n);
        size_t diff = 0;
        for (size_t i = 0; i < n; i++) diff += memcmp(&p1[i], &p2[i], 4) != 0;
        CHECK(diff == 0, "%s: %zu of %zu parameters differ between 1 and 2 threads", prec, diff, n);
    }
    if (!has_bf16) printf("test_thread_invariance: no AVX512_BF16 here, bf16 skipped\n");
    mae_set_num_threads(2);
    free(p1);
    free(p2);
}

int main(void) {
    mae_set_num_threads(2);
    test_phases();
    test_config();
    test_table();
    test_memory();
    test_masking();
    test_schedule();
    test_forward_encoder();
    test_thread_invariance();
    return check_summary("test_model");
}
