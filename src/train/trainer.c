/* trainer.c - AdamW (decoupled weight decay, timm's no-decay groups), the per-iteration
 * warmup + half-cycle cosine schedule of main_pretrain.py, and gradient accumulation. */
#include <math.h>
#include <string.h>

#include "io/safetensors.h"
#include "model/model.h"

struct mae_trainer {
    mae_model *m;
    mae_train_config tc;
    float *moments; /* one allocation: exp_avg (nparams) then exp_avg_sq (nparams) */
    float *exp_avg, *exp_avg_sq;
    mae_adamw_seg *segs; /* trainable tensors: offset, size, weight decay */
    int nseg;
    int64_t step;  /* optimizer updates done */
    int64_t micro; /* micro-batches done */
    double lr;
    mae_grad_sync sync; /* world 1, no hooks: one process */
};

int mae_trainer_set_grad_sync(mae_trainer *t, const mae_grad_sync *s, mae_error *err) {
    if (!s || s->world < 1 || (s->world > 1 && !s->finish) || (s->ready && !s->finish))
        return mae_errf(err, "mae_trainer_set_grad_sync: a world of %d needs a finish function",
                        s ? s->world : 0);
    t->sync = *s;
    return MAE_OK;
}

void mae_train_config_default(mae_train_config *tc) {
    /* main_pretrain.py defaults */
    memset(tc, 0, sizeof *tc);
    tc->batch_size = 64;
    tc->accum_iter = 1;
    tc->epochs = 400;
    tc->warmup_epochs = 40;
    tc->lr = 0.0;
    tc->blr = 1e-3;
    tc->min_lr = 0.0;
    tc->weight_decay = 0.05;
    tc->beta1 = 0.9;
    tc->beta2 = 0.95;
    tc->eps = 1e-8;
    tc->seed = 0;
    tc->world_size = 1;
    tc->optimizer = MAE_OPT_ADAMW;
    tc->layer_decay = 1.0;
    tc->clip_grad = 0.0;
    tc->momentum = 0.9;
    tc->lars_trust = 0.001;
}

double mae_train_effective_lr(const mae_train_config *tc) {
    if (tc->lr > 0) return tc->lr;
    double eff = (double)tc->batch_size * tc->accum_iter * (tc->world_size > 0 ? tc->world_size : 1);
    return tc->blr * eff / 256.0;
}

double mae_lr_at(const mae_train_config *tc, double epoch) {
    double lr = mae_train_effective_lr(tc);
    if (epoch < tc->warmup_epochs) return lr * epoch / tc->warmup_epochs;
    double span = tc->epochs - tc->warmup_epochs;
    double frac = span > 0 ? (epoch - tc->warmup_epochs) / span : 1.0;
    return tc->min_lr + (lr - tc->min_lr) * 0.5 * (1.0 + cos(3.14159265358979323846 * frac));
}

int mae_train_config_validate(const mae_train_config *tc, mae_error *err) {
    if (tc->batch_size < 1 || tc->batch_size > 1 << 20)
        return mae_errf(err, "--batch_size must be in [1, 1048576], got %d", tc->batch_size);
    if (tc->accum_iter < 1) return mae_errf(err, "--accum_iter must be >= 1, got %d", tc->accum_iter);
    if (tc->epochs < 1) return mae_errf(err, "--epochs must be >= 1, got %d", tc->epochs);
    if (!(tc->warmup_epochs >= 0)) return mae_errf(err, "--warmup_epochs must be >= 0");
    if (!(tc->lr >= 0) || !(tc->blr >= 0) || !(tc->min_lr >= 0))
        return mae_errf(err, "--lr, --blr and --min_lr must be >= 0");
    if (!(tc->weight_decay >= 0)) return mae_errf(err, "--weight_decay must be >= 0");
    if (!(tc->beta1 >= 0 && tc->beta1 < 1 && tc->beta2 >= 0 && tc->beta2 < 1))
        return mae_errf(err, "AdamW betas must be in [0, 1)");
    if (!(tc->eps > 0)) return mae_errf(err, "AdamW eps must be > 0");
    if (tc->optimizer != MAE_OPT_ADAMW && tc->optimizer != MAE_OPT_LARS)
        return mae_errf(err, "unknown optimizer %d", tc->optimizer);
    if (!(tc->layer_decay > 0 && tc->layer_decay <= 1))
        return mae_errf(err, "--layer_decay must be in (0, 1], got %g", tc->layer_decay);
    if (!(tc->clip_grad >= 0)) return mae_errf(err, "--clip_grad must be >= 0, got %g", tc->clip_grad);
    if (!(tc->momentum >= 0 && tc->momentum < 1))
        return mae_errf(err, "LARS momentum must be in [0, 1), got %g", tc->momentum);
    return MAE_OK;
}

mae_trainer *mae_trainer_create(mae_model *m, const mae_train_config *tc, mae_error *err) {
    if (mae_train_config_validate(tc, err) != MAE_OK) return NULL;
    mae_trainer *t = mae_xcalloc(1, sizeof *t);
    t->m = m;
    t->tc = *tc;
    size_t bytes = 2 * m->nparams * sizeof(float);
    t->moments = m->be->alloc(bytes);
    if (!t->moments) {
        mae_errf(err, "out of %s memory allocating %.1f MB of AdamW moments (after the "
                      "model's parameters and activations); use a smaller --batch_size, with "
                      "--accum_iter to keep the effective batch, or a smaller model",
                 m->be->name, bytes / 1e6);
        free(t);
        return NULL;
    }
    m->be->zero(t->moments, bytes);
    t->exp_avg = t->moments;
    t->exp_avg_sq = t->moments + m->nparams;
    t->segs = mae_xcalloc((size_t)m->ntensors, sizeof *t->segs);
    for (int i = 0; i < m->ntensors; i++) {
        const mae_tensor_entry *e = &m->tensors[i];
        if (!e->info.trainable) continue;
        t->segs[t->nseg].offset = e->offset;
        t->segs[t->nseg].n = e->info.numel;
        t->segs[t->nseg].wd = e->info.weight_decay ? (float)tc->weight_decay : 0.0f;
        /* layer-wise lr decay (official param_groups_lrd): decay^(depth + 1 - layer_id) */
        t->segs[t->nseg].lr_scale =
            tc->layer_decay < 1.0
                ? (float)pow(tc->layer_decay, (double)(m->cfg.depth + 1 - mae_tensor_layer_id(m, i)))
                : 1.0f;
        t->segs[t->nseg].lars_adapt = e->info.ndim > 1; /* util/lars.py: p.ndim > 1 */
        t->nseg++;
    }
    mae_zero_grad(m);
    return t;
}

void mae_trainer_free(mae_trainer *t) {
    if (!t) return;
    if (t->moments) t->m->be->free(t->moments);
    free(t->segs);
    free(t);
}

double mae_trainer_lr(const mae_trainer *t) { return t->lr; }
int64_t mae_trainer_num_updates(const mae_trainer *t) { return t->step; }
int64_t mae_trainer_num_micro(const mae_trainer *t) { return t->micro; }

/* one AdamW pass over all trainable tensors (segments built once in mae_trainer_create), with
 * the gradients zeroed as they are consumed */
static void adamw_step(mae_trainer *t) {
    mae_model *m = t->m;
    const mae_train_config *tc = &t->tc;
    t->step++;
    if (t->sync.world > 1) { /* the mean over processes (DistributedDataParallel) */
        m->be->scale_inplace(m->grads, 1.0f / (float)t->sync.world, m->nparams);
    }
    if (tc->clip_grad > 0) { /* torch clip_grad_norm_ over all gradients */
        double norm = sqrt(m->be->sumsq(m->grads, m->nparams));
        double coef = tc->clip_grad / (norm + 1e-6);
        if (coef < 1.0) m->be->scale_inplace(m->grads, (float)coef, m->nparams);
    }
    if (tc->optimizer == MAE_OPT_LARS) { /* exp_avg holds the momentum buffer */
        m->be->lars(m->params, m->grads, t->exp_avg, t->segs, t->nseg, (float)t->lr,
                    (float)tc->momentum, (float)tc->lars_trust, 1);
        return;
    }
    float bc1 = (float)(1.0 - pow(tc->beta1, (double)t->step));
    float bc2 = (float)(1.0 - pow(tc->beta2, (double)t->step));
    m->be->adamw(m->params, m->grads, t->exp_avg, t->exp_avg_sq, t->segs, t->nseg, (float)t->lr,
                 (float)tc->beta1, (float)tc->beta2, (float)tc->eps, bc1, bc2, 1);
}

static int trainer_step(mae_trainer *t, const float *imgs, const float *noise,
                        const float *targets, int B, double epoch_float, uint64_t key,
                        float *loss, mae_error *err) {
    int accum = t->tc.accum_iter, cls = t->m->is_cls;
    if (t->micro % accum == 0) t->lr = mae_lr_at(&t->tc, epoch_float);
    float l = 0.0f;
    if (cls && !targets) return mae_errf(err, "mae_trainer_step_cls: targets must not be NULL");
    int rc = cls ? mae_cls_forward(t->m, imgs, targets, B, 1, key, &l, NULL, err)
                 : mae_forward(t->m, imgs, noise, B, -1.0, &l, err);
    if (rc != MAE_OK) return MAE_ERR;
    if (loss) *loss = l;
    if (!isfinite(l)) {
        mae_errf(err, "loss is %g at update %lld (micro-batch %lld), stopping training", (double)l,
                 (long long)t->step, (long long)t->micro);
        return MAE_ERR_NONFINITE;
    }
    int last = (t->micro + 1) % accum == 0; /* this micro-batch completes an update */
    if (last && t->sync.finish && t->sync.ready) {
        t->m->grad_ready = t->sync.ready;
        t->m->grad_ready_ctx = t->sync.ctx;
    }
    if (cls)
        mae_cls_backward(t->m, 1.0f / accum);
    else
        mae_backward(t->m, 1.0f / accum);
    t->m->grad_ready = NULL;
    t->micro++;
    if (last && t->sync.finish) {
        double t0 = mae_phase_clock(t->m);
        if (t->sync.finish(t->sync.ctx, t->m->grads, t->m->nparams, err) != MAE_OK)
            return MAE_ERR;
        t->m->phase_s[MAE_PHASE_GRAD_SYNC] += mae_phase_clock(t->m) - t0;
    }
    if (t->micro % accum == 0) {
        double t0 = mae_phase_clock(t->m);
        adamw_step(t); /* also zeroes the gradients */
        t->m->phase_s[MAE_PHASE_OPTIMIZER] += mae_phase_clock(t->m) - t0;
    }
    return MAE_OK;
}

int mae_trainer_step(mae_trainer *t, const float *imgs, const float *noise, int B,
                     double epoch_float, float *loss, mae_error *err) {
    if (t->m->is_cls)
        return mae_errf(err, "mae_trainer_step: this model is a classifier; use "
                             "mae_trainer_step_cls");
    return trainer_step(t, imgs, noise, NULL, B, epoch_float, 0, loss, err);
}

int mae_trainer_step_cls(mae_trainer *t, const float *imgs, const float *targets, int B,
                         double epoch_float, uint64_t key, float *loss, mae_error *err) {
    if (!t->m->is_cls)
        return mae_errf(err, "mae_trainer_step_cls: this model is not a classifier");
    return trainer_step(t, imgs, NULL, targets, B, epoch_float, key, loss, err);
}

/* ------------------------------------------------------------------ state files */

#define STATE_FORMAT "mae-train-state"
#define STATE_VERSION "1"

static void train_config_json(const mae_train_config *tc, char *buf, size_t cap) {
    snprintf(buf, cap,
             "{\"batch_size\":%d,\"accum_iter\":%d,\"epochs\":%d,\"warmup_epochs\":%.17g,"
             "\"lr\":%.17g,\"blr\":%.17g,\"min_lr\":%.17g,\"weight_decay\":%.17g,"
             "\"beta1\":%.17g,\"beta2\":%.17g,\"eps\":%.17g,\"seed\":%llu,\"world_size\":%d,"
             "\"optimizer\":\"%s\",\"layer_decay\":%.17g,\"clip_grad\":%.17g,\"momentum\":%.17g,"
             "\"lars_trust\":%.17g}",
             tc->batch_size, tc->accum_iter, tc->epochs, tc->warmup_epochs, tc->lr, tc->blr,
             tc->min_lr, tc->weight_decay, tc->beta1, tc->beta2, tc->eps,
             (unsigned long long)tc->seed, tc->world_size,
             tc->optimizer == MAE_OPT_LARS ? "lars" : "adamw", tc->layer_decay, tc->clip_grad,
             tc->momentum, tc->lars_trust);
}

int mae_trainer_save_state(const mae_trainer *t, const char *path, int epoch, int64_t step,
                           mae_error *err) {
    MAE_ASSERT(epoch >= 0 && step >= 0);
    const mae_model *m = t->m;
    float *host = mae_xmalloc(2 * m->nparams * sizeof(float));
    m->be->download(host, t->moments, 2 * m->nparams * sizeof(float));
    char(*names)[MAE_MAX_NAME + 16] = mae_xcalloc(2 * (size_t)m->ntensors, sizeof *names);
    st_writer *w = st_writer_new();
    for (int i = 0; i < m->ntensors; i++) {
        const mae_tensor_entry *e = &m->tensors[i];
        if (!e->info.trainable) continue;
        snprintf(names[2 * i], sizeof names[0], "exp_avg.%s", e->name);
        snprintf(names[2 * i + 1], sizeof names[0], "exp_avg_sq.%s", e->name);
        st_writer_add(w, names[2 * i], "F32", e->info.ndim, e->info.shape, host + e->offset);
        st_writer_add(w, names[2 * i + 1], "F32", e->info.ndim, e->info.shape,
                      host + m->nparams + e->offset);
    }
    char cfg[1024], tcj[1024], num[64];
    mae_config_to_json(&m->cfg, cfg, sizeof cfg);
    train_config_json(&t->tc, tcj, sizeof tcj);
    st_writer_meta(w, "format", STATE_FORMAT);
    st_writer_meta(w, "format_version", STATE_VERSION);
    st_writer_meta(w, "config", cfg);
    st_writer_meta(w, "train_config", tcj);
    snprintf(num, sizeof num, "%lld", (long long)t->step);
    st_writer_meta(w, "step", num);
    snprintf(num, sizeof num, "%lld", (long long)t->micro);
    st_writer_meta(w, "micro", num);
    snprintf(num, sizeof num, "%d", step ? epoch : epoch - 1);
    st_writer_meta(w, "epoch", num); /* the last completed epoch, -1 if none (as official) */
    snprintf(num, sizeof num, "%d", epoch);
    st_writer_meta(w, "resume_epoch", num);
    snprintf(num, sizeof num, "%lld", (long long)step);
    st_writer_meta(w, "resume_step", num);
    int rc = st_writer_save(w, path, err);
    st_writer_free(w);
    free(names);
    free(host);
    return rc;
}

static int meta_i64(const st_file *f, const char *key, int64_t *out, mae_error *err) {
    const char *v = st_meta(f, key);
    char *end = NULL;
    if (!v) return mae_errf(err, "%s: training state has no '%s'", f->path, key);
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || x < (strcmp(key, "epoch") ? 0 : -1)) return mae_errf(err, "%s: bad '%s' value '%s'", f->path, key, v);
    *out = x;
    return MAE_OK;
}

int mae_trainer_load_state(mae_trainer *t, const char *path, int *epoch, int64_t *resume_step,
                           mae_error *err) {
    mae_model *m = t->m;
    st_file f;
    if (st_open(&f, path, err) != MAE_OK) return MAE_ERR;
    int rc = MAE_OK;
    const char *fmt = st_meta(&f, "format");
    const char *cfg = st_meta(&f, "config");
    int64_t step = 0, micro = 0, ep = 0, rstep = 0;
    char mine[1024];
    mae_config_to_json(&m->cfg, mine, sizeof mine);
    if (!fmt || strcmp(fmt, STATE_FORMAT) != 0)
        rc = mae_errf(err, "%s: not an mae training-state file (format '%s')", path, fmt ? fmt : "none");
    else if (!st_meta(&f, "format_version") || strcmp(st_meta(&f, "format_version"), STATE_VERSION))
        rc = mae_errf(err, "%s: unsupported training-state version", path);
    else if (!cfg || strcmp(cfg, mine) != 0)
        rc = mae_errf(err, "%s: model config mismatch: state has %s, model has %s", path,
                      cfg ? cfg : "none", mine);
    else if (meta_i64(&f, "step", &step, err) || meta_i64(&f, "micro", &micro, err) ||
             meta_i64(&f, "resume_epoch", &ep, err) || meta_i64(&f, "resume_step", &rstep, err))
        rc = MAE_ERR;
    float *host = mae_xcalloc(2 * m->nparams, sizeof(float));
    for (int i = 0; rc == MAE_OK && i < m->ntensors; i++) {
        const mae_tensor_entry *e = &m->tensors[i];
        if (!e->info.trainable) continue;
        for (int k = 0; k < 2 && rc == MAE_OK; k++) {
            char name[MAE_MAX_NAME + 16];
            snprintf(name, sizeof name, "%s.%s", k ? "exp_avg_sq" : "exp_avg", e->name);
            int j = st_find(&f, name);
            if (j < 0) rc = mae_errf(err, "%s: missing tensor '%s'", path, name);
            else rc = st_read_f32(&f, j, host + (k ? m->nparams : 0) + e->offset, e->info.numel, err);
        }
    }
    if (rc == MAE_OK) {
        m->be->upload(t->moments, host, 2 * m->nparams * sizeof(float));
        t->step = step;
        t->micro = micro;
        if (epoch) *epoch = (int)ep;
        if (resume_step) *resume_step = rstep;
        mae_zero_grad(m);
    }
    free(host);
    st_close(&f);
    return rc;
}
