/* test_grad_sync.c - the trainer's data-parallel hook (mae_grad_sync) without MPI: a fake
 * world of 2 whose other rank holds the same gradients.
 *  - ready is called only in the backward of an update's last micro-batch, with offsets that
 *    only fall and end at 0, and what it calls final is final: grads[off, n) do not change
 *    between that call and finish (copied at each call and compared at finish);
 *  - finish sees every gradient; summing (x2) there and the trainer's mean (/2) give training
 *    bit-identical to a run without a sync (both scalings are exact in fp32);
 *  - the same for a classifier (fine-tuning: every block trains) and a linear probe (frozen
 *    encoder: only the head), and with accum_iter 2. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model/model.h"

typedef struct {
    size_t n, last_off;
    int calls, finishes, bad_order, changed;
    float *snap; /* grads as they were when declared final (host copy) */
    const mae_backend *be;
    int seen_zero;
} fake;

static void f_ready(void *ctx, float *grads, size_t off, size_t n) {
    fake *f = ctx;
    if (f->calls == 0) f->last_off = n;
    if (off > f->last_off) f->bad_order++;
    if (off < f->last_off) /* copy the newly final span */
        f->be->download(f->snap + off, grads + off, (f->last_off - off) * sizeof(float));
    f->last_off = off;
    f->seen_zero |= off == 0;
    f->n = n;
    f->calls++;
}

static int f_finish(void *ctx, float *grads, size_t n, mae_error *err) {
    (void)err;
    fake *f = ctx;
    float *h = malloc(n * sizeof(float));
    f->be->download(h, grads, n * sizeof(float));
    if (f->calls) /* everything declared final is as it was then */
        for (size_t i = f->last_off; i < n; i++)
            if (memcmp(&h[i], &f->snap[i], sizeof(float)) != 0) {
                f->changed++;
                break;
            }
    for (size_t i = 0; i < n; i++) h[i] *= 2.0f; /* + the other rank's identical gradients */
    f->be->upload(grads, h, n * sizeof(float));
    free(h);
    f->finishes++;
    f->calls = 0;
    return MAE_OK;
}

static mae_config small_cfg(void) {
    mae_config c;
    mae_config_preset(&c, "tiny-28", NULL);
    c.embed_dim = 48;
    c.depth = 3;
    c.num_heads = 3;
    c.decoder_embed_dim = 32;
    c.decoder_depth = 2;
    c.decoder_num_heads = 2;
    return c;
}

static void fill(float *x, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) * (1.0 / 16777216.0) * 2.0 - 1.0);
    }
}

/* trains 4 micro-batches; with_sync: through the fake world of 2. Returns the parameters. */
static float *train(const mae_cls_config *cc, int accum, int with_sync, fake *f) {
    mae_config c = small_cfg();
    mae_error e;
    int B = 4;
    mae_model *m = cc ? mae_classifier_create(&c, cc, B, "cpu", &e)
                      : mae_model_create(&c, B, "cpu", &e);
    CHECK(m != NULL, "create: %s", e.msg);
    if (!m) return NULL;
    mae_model_init(m, 7);
    mae_train_config tc;
    mae_train_config_default(&tc);
    tc.batch_size = B;
    tc.accum_iter = accum;
    tc.epochs = 2;
    tc.warmup_epochs = 0;
    tc.lr = 1e-3;
    tc.clip_grad = 0.5;
    mae_trainer *t = mae_trainer_create(m, &tc, &e);
    if (with_sync) {
        memset(f, 0, sizeof *f);
        f->be = m->be;
        f->snap = calloc(m->nparams, sizeof(float));
        mae_grad_sync s = {2, f, f_ready, f_finish};
        CHECK(mae_trainer_set_grad_sync(t, &s, &e) == MAE_OK, "set sync: %s", e.msg);
    }
    size_t npix = (size_t)B * c.in_chans * c.img_size * c.img_size;
    int L = mae_config_num_patches(&c), NC = cc ? cc->num_classes : 0;
    float *imgs = malloc(npix * sizeof(float)), *noise = malloc((size_t)B * L * sizeof(float));
    float *tg = calloc((size_t)B * (NC ? NC : 1), sizeof(float));
    for (int it = 0; it < 4; it++) {
        fill(imgs, npix, 100u + it);
        fill(noise, (size_t)B * L, 200u + it);
        for (int b = 0; b < B; b++)
            if (NC) tg[(size_t)b * NC + (b + it) % NC] = 1.0f;
        float loss;
        int rc = cc ? mae_trainer_step_cls(t, imgs, tg, B, it / 4.0, (uint64_t)it, &loss, &e)
                    : mae_trainer_step(t, imgs, noise, B, it / 4.0, &loss, &e);
        CHECK(rc == MAE_OK, "step %d: %s", it, e.msg);
        if (with_sync) {
            /* mid-accumulation: no ready calls yet; after an update: finish ran */
            int done = (it + 1) % accum == 0;
            CHECK(done ? f->finishes == (it + 1) / accum : f->calls == 0,
                  "step %d: finishes %d calls %d", it, f->finishes, f->calls);
        }
        if (NC) memset(tg, 0, (size_t)B * NC * sizeof(float));
    }
    float *p = malloc(m->nparams * sizeof(float));
    m->be->download(p, m->params, m->nparams * sizeof(float));
    mae_trainer_free(t);
    mae_model_free(m);
    free(imgs), free(noise), free(tg);
    return p;
}

static void run(const char *name, const mae_cls_config *cc, int accum) {
    fake f;
    float *a = train(cc, accum, 0, NULL), *b = train(cc, accum, 1, &f);
    if (!a || !b) return;
    CHECK(f.finishes == 4 / accum, "%s: %d finishes for %d updates", name, f.finishes, 4 / accum);
    CHECK(f.bad_order == 0, "%s: ready offsets rose %d times", name, f.bad_order);
    CHECK(f.seen_zero, "%s: ready never reached offset 0", name);
    CHECK(f.changed == 0, "%s: a gradient changed after ready called it final", name);
    /* the same model: the parameter count from a third (cheap) create is not needed: compare
     * over the bytes both runs downloaded */
    mae_config c = small_cfg();
    mae_error e;
    mae_model *m = cc ? mae_classifier_create(&c, cc, 1, "cpu", &e) : mae_model_create(&c, 1, "cpu", &e);
    size_t n = m->nparams;
    mae_model_free(m);
    CHECK(memcmp(a, b, n * sizeof(float)) == 0,
          "%s: parameters differ from the run without a sync", name);
    printf("  %-26s ready offsets fell to 0, nothing changed after ready, %d updates, "
           "parameters bit-identical\n", name, f.finishes);
    free(a), free(b), free(f.snap);
}

int main(void) {
    run("pretrain", NULL, 1);
    run("pretrain, accum_iter 2", NULL, 2);
    mae_cls_config ft = {.num_classes = 5, .global_pool = 1, .head_init_std = 2e-5};
    run("finetune", &ft, 1);
    mae_cls_config lp = {.num_classes = 5, .global_pool = 0, .head_bn = 1, .freeze_encoder = 1,
                         .head_init_std = 0.01};
    run("linprobe", &lp, 2);
    return check_summary("test_grad_sync");
}
