/* loader.c - the batch loader of loader.h: a sampler, worker threads and a ring of Q batch
 * slots.
 *
 * Batch b of the epoch lives in slot b % Q. Workers take sample positions in order from a shared
 * counter and may write batch b once the consumer has released batch b - Q. The consumer waits
 * until every sample of its batch is in. Because each sample's content depends only on its
 * position (and seed, epoch, rank), the batches are the same for any number of workers.
 */
#define _POSIX_C_SOURCE 200809L
#include "loader.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "rng.h"

#define MAX_SUBSTITUTES 1000 /* bad files in a row before we give up on the epoch */

typedef struct worker_ctx {
    struct mae_loader *l;
    mae_data_ws ws;
} worker_ctx;

struct mae_loader {
    mae_dataset *ds;
    mae_loader_config cfg;
    int64_t n, per_rank, steps;
    size_t per_img;
    int Q;
    float *imgs;        /* (Q, B, C, H, W) */
    int imgs_pinned;    /* imgs from cfg.host_alloc (freed with cfg.host_free) */
    int *labels;        /* (Q, B) */
    uint64_t *ids;      /* (Q, B) */
    int64_t *slot_batch;/* (Q) batch held by each slot, -1 = none */
    int *slot_left;     /* (Q) samples still being decoded */
    int64_t *perm;      /* (n) this epoch's order */
    uint8_t *bad;       /* (n) known bad files */
    /* epoch state, under mu */
    int epoch;
    uint64_t gen;       /* bumped by start_epoch: work from an older generation is dropped */
    int64_t next_pos, end_pos, free_below, cur, in_use;
    int inflight, stop, failed;
    mae_error first_err;
    int64_t nbad;
    double wait_s;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    int nthreads;
    pthread_t *threads;
    worker_ctx *ctx;    /* (num_workers + 1): the last one is the consumer's */
    float *probe;       /* (C, H, W) for check_first */
};

void mae_loader_config_default(mae_loader_config *c, int batch_size) {
    memset(c, 0, sizeof *c);
    c->batch_size = batch_size;
    c->num_workers = 0;
    c->world_size = 1;
    c->shuffle = 1;
    c->drop_last = 1;
}

static int batch_len(const mae_loader *l, int64_t b) {
    int64_t left = l->per_rank - b * l->cfg.batch_size;
    return left < l->cfg.batch_size ? (int)left : l->cfg.batch_size;
}

/* Records a bad file (under mu): warns the first time. Returns 1 if it was new. */
static int note_bad(mae_loader *l, int64_t idx, const mae_error *e) {
    if (l->bad[idx]) return 0;
    l->bad[idx] = 1;
    l->nbad++;
    if (!l->cfg.strict) { /* strict: the caller reports it as the error */
        fprintf(stderr, "mae: warning: skipping bad file: %s\n", e->msg);
        fflush(stderr);
    }
    return 1;
}

/* Decodes the sample at shard position pos of `epoch` into (out, label, id). Bad files are
 * replaced by deterministic substitutes. Returns MAE_OK or MAE_ERR (err filled). */
static int load_sample(mae_loader *l, int epoch, int64_t pos, float *out, int *label,
                       uint64_t *id, mae_data_ws *ws, mae_error *err) {
    const mae_loader_config *c = &l->cfg;
    int64_t g = c->rank + pos * c->world_size; /* position in the padded global order */
    int64_t idx = l->perm[g % l->n];
    mae_error e;
    for (int attempt = 0;; attempt++) {
        pthread_mutex_lock(&l->mu);
        int known_bad = l->bad[idx];
        pthread_mutex_unlock(&l->mu);
        int rc = MAE_ERR_DATA;
        if (!known_bad) rc = mae_dataset_get(l->ds, idx, epoch, c->seed, out, label, ws, &e);
        if (rc == MAE_OK) {
            *id = (uint64_t)idx;
            return MAE_OK;
        }
        if (rc != MAE_ERR_DATA) {
            *err = e;
            return MAE_ERR;
        }
        if (!known_bad) {
            pthread_mutex_lock(&l->mu);
            note_bad(l, idx, &e);
            pthread_mutex_unlock(&l->mu);
            if (c->strict) return mae_errf(err, "%s (--strict: bad files are errors)", e.msg);
        }
        if (attempt + 1 >= MAX_SUBSTITUTES)
            return mae_errf(err, "%d bad files in a row (the last: sample %lld); is the data "
                                 "readable?", MAX_SUBSTITUTES, (long long)idx);
        uint64_t h = mae_hash4(c->seed, (uint64_t)(int64_t)epoch, (uint64_t)g,
                               0x73756200ull + (uint64_t)attempt);
        idx = (int64_t)(h % (uint64_t)l->n);
    }
}

static void decode_into_slot(mae_loader *l, int epoch, int64_t pos, mae_data_ws *ws,
                             int *ok, mae_error *err) {
    int B = l->cfg.batch_size;
    int64_t s = (pos / B) % l->Q, k = s * B + pos % B;
    *ok = load_sample(l, epoch, pos, l->imgs + (size_t)k * l->per_img, &l->labels[k],
                      &l->ids[k], ws, err) == MAE_OK;
}

static void *worker_main(void *arg) {
    worker_ctx *ctx = (worker_ctx *)arg;
    mae_loader *l = ctx->l;
    mae_data_ws *ws = &ctx->ws;
    int B = l->cfg.batch_size;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        int64_t b = l->next_pos / B;
        if (l->failed || l->next_pos >= l->end_pos || b >= l->free_below + l->Q) {
            pthread_cond_wait(&l->cv_work, &l->mu);
            continue;
        }
        int64_t pos = l->next_pos++;
        int64_t s = b % l->Q;
        if (pos % B == 0) { /* the first sample of batch b opens its slot */
            l->slot_batch[s] = b;
            l->slot_left[s] = batch_len(l, b);
        }
        uint64_t gen = l->gen;
        int epoch = l->epoch;
        l->inflight++;
        pthread_mutex_unlock(&l->mu);
        int ok;
        mae_error e;
        decode_into_slot(l, epoch, pos, ws, &ok, &e);
        pthread_mutex_lock(&l->mu);
        l->inflight--;
        if (gen == l->gen) {
            if (!ok && !l->failed) {
                l->failed = 1;
                l->first_err = e;
            }
            l->slot_left[s]--;
        }
        pthread_cond_broadcast(&l->cv_done);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

mae_loader *mae_loader_create(mae_dataset *ds, const mae_loader_config *cfg, mae_error *err) {
    const mae_loader_config *c = cfg;
    if (c->batch_size < 1) return mae_errf(err, "--batch_size must be >= 1"), NULL;
    if (c->num_workers < 0 || c->num_workers > 256)
        return mae_errf(err, "--num_workers must be in [0, 256], got %d", c->num_workers), NULL;
    if (c->world_size < 1 || c->rank < 0 || c->rank >= c->world_size)
        return mae_errf(err, "rank %d is not in [0, world_size %d)", c->rank, c->world_size), NULL;
    if (c->prefetch < 0 || c->prefetch > 64)
        return mae_errf(err, "prefetch must be in [0, 64], got %d", c->prefetch), NULL;
    int64_t n = ds->n, per_rank = (n + c->world_size - 1) / c->world_size;
    int64_t steps = c->drop_last ? per_rank / c->batch_size
                                 : (per_rank + c->batch_size - 1) / c->batch_size;
    if (n < 1 || steps < 1)
        return mae_errf(err, "%s: %lld samples per process, fewer than one batch (--batch_size %d)",
                        ds->desc, (long long)per_rank, c->batch_size), NULL;
    mae_loader *l = (mae_loader *)mae_xcalloc(1, sizeof *l);
    l->ds = ds;
    l->cfg = *c;
    l->n = n;
    l->per_rank = per_rank;
    l->steps = steps;
    l->per_img = (size_t)ds->C * ds->H * ds->W;
    l->Q = c->prefetch ? c->prefetch : 3;
    size_t QB = (size_t)l->Q * c->batch_size, bytes;
    if (!mae_size_mul(&bytes, QB * sizeof(float), l->per_img)) {
        free(l);
        return mae_errf(err, "batch buffers too large"), NULL;
    }
    l->imgs = c->host_alloc ? (float *)c->host_alloc(bytes) : NULL;
    l->imgs_pinned = l->imgs != NULL;
    if (!l->imgs) l->imgs = (float *)mae_xmalloc(bytes);
    l->labels = (int *)mae_xcalloc(QB, sizeof(int));
    l->ids = (uint64_t *)mae_xcalloc(QB, sizeof(uint64_t));
    l->slot_batch = (int64_t *)mae_xmalloc(sizeof(int64_t) * l->Q);
    l->slot_left = (int *)mae_xcalloc((size_t)l->Q, sizeof(int));
    l->perm = (int64_t *)mae_xmalloc(sizeof(int64_t) * n);
    l->bad = (uint8_t *)mae_xcalloc((size_t)n, 1);
    l->probe = (float *)mae_xmalloc(sizeof(float) * l->per_img);
    for (int s = 0; s < l->Q; s++) l->slot_batch[s] = -1;
    for (int64_t i = 0; i < n; i++) l->perm[i] = i;
    l->in_use = -1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv_work, NULL);
    pthread_cond_init(&l->cv_done, NULL);
    l->ctx = (worker_ctx *)mae_xcalloc((size_t)c->num_workers + 1, sizeof(worker_ctx));
    l->threads = (pthread_t *)mae_xcalloc((size_t)c->num_workers + 1, sizeof(pthread_t));
    for (int w = 0; w <= c->num_workers; w++) l->ctx[w].l = l;
    for (int w = 0; w < c->num_workers; w++) {
        if (pthread_create(&l->threads[w], NULL, worker_main, &l->ctx[w]) != 0) {
            mae_errf(err, "cannot start loader thread %d of %d", w + 1, c->num_workers);
            mae_loader_free(l);
            return NULL;
        }
        l->nthreads++;
    }
    return l;
}

void mae_loader_free(mae_loader *l) {
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->cv_work);
    pthread_mutex_unlock(&l->mu);
    for (int w = 0; w < l->nthreads; w++) pthread_join(l->threads[w], NULL);
    for (int w = 0; w <= l->cfg.num_workers; w++) mae_data_ws_release(&l->ctx[w].ws);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv_work);
    pthread_cond_destroy(&l->cv_done);
    free(l->ctx);
    free(l->threads);
    if (l->imgs_pinned)
        l->cfg.host_free(l->imgs);
    else
        free(l->imgs);
    free(l->labels);
    free(l->ids);
    free(l->slot_batch);
    free(l->slot_left);
    free(l->perm);
    free(l->bad);
    free(l->probe);
    free(l);
}

int64_t mae_loader_steps(const mae_loader *l) { return l->steps; }

void mae_loader_start_epoch(mae_loader *l, int epoch, int64_t start_step) {
    MAE_ASSERT(start_step >= 0 && start_step <= l->steps);
    pthread_mutex_lock(&l->mu);
    l->gen++;
    l->next_pos = l->end_pos = 0; /* no new work while we switch */
    while (l->inflight > 0) pthread_cond_wait(&l->cv_done, &l->mu);
    if (l->cfg.shuffle) mae_epoch_permutation(l->perm, l->n, l->cfg.seed, epoch);
    int B = l->cfg.batch_size;
    l->epoch = epoch;
    l->next_pos = start_step * B;
    l->end_pos = l->steps * B < l->per_rank ? l->steps * B : l->per_rank;
    l->free_below = l->cur = start_step;
    l->in_use = -1;
    l->failed = 0;
    for (int s = 0; s < l->Q; s++) l->slot_batch[s] = -1;
    pthread_cond_broadcast(&l->cv_work);
    pthread_mutex_unlock(&l->mu);
}

/* num_workers == 0: the caller decodes batch b into slot b % Q itself. */
static int fill_sync(mae_loader *l, int64_t b, mae_error *err) {
    int n = batch_len(l, b);
    mae_data_ws *ws = &l->ctx[l->cfg.num_workers].ws;
    for (int i = 0; i < n; i++) {
        int ok;
        decode_into_slot(l, l->epoch, b * l->cfg.batch_size + i, ws, &ok, err);
        if (!ok) return MAE_ERR;
    }
    return MAE_OK;
}

int mae_loader_next(mae_loader *l, mae_batch *out, mae_error *err) {
    pthread_mutex_lock(&l->mu);
    if (l->in_use >= 0) {
        l->free_below = l->in_use + 1;
        l->in_use = -1;
        pthread_cond_broadcast(&l->cv_work);
    }
    int64_t b = l->cur;
    if (b >= l->steps) {
        pthread_mutex_unlock(&l->mu);
        return 1;
    }
    int64_t s = b % l->Q;
    int rc = MAE_OK;
    if (l->nthreads == 0) {
        pthread_mutex_unlock(&l->mu);
        rc = fill_sync(l, b, err);
        pthread_mutex_lock(&l->mu);
    } else {
        double t0 = mae_clock();
        while (!l->failed && !(l->slot_batch[s] == b && l->slot_left[s] == 0))
            pthread_cond_wait(&l->cv_done, &l->mu);
        l->wait_s += mae_clock() - t0;
        if (l->failed) {
            *err = l->first_err;
            rc = MAE_ERR;
        }
    }
    if (rc == MAE_OK) {
        size_t off = (size_t)s * l->cfg.batch_size;
        out->imgs = l->imgs + off * l->per_img;
        out->labels = l->labels + off;
        out->sample_ids = l->ids + off;
        out->B = batch_len(l, b);
        out->step = b;
        l->in_use = b;
        l->cur = b + 1;
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int64_t mae_loader_bad_files(const mae_loader *l) {
    pthread_mutex_lock((pthread_mutex_t *)&l->mu);
    int64_t n = l->nbad;
    pthread_mutex_unlock((pthread_mutex_t *)&l->mu);
    return n;
}

double mae_loader_wait_seconds(const mae_loader *l) {
    pthread_mutex_lock((pthread_mutex_t *)&l->mu);
    double w = l->wait_s;
    pthread_mutex_unlock((pthread_mutex_t *)&l->mu);
    return w;
}

int mae_loader_check_first(mae_loader *l, mae_error *err) {
    mae_data_ws *ws = &l->ctx[l->cfg.num_workers].ws;
    mae_error e;
    for (int64_t i = 0; i < l->n; i++) {
        pthread_mutex_lock(&l->mu);
        int known = l->bad[i];
        pthread_mutex_unlock(&l->mu);
        if (known) continue;
        int lab;
        int rc = mae_dataset_get(l->ds, i, 0, l->cfg.seed, l->probe, &lab, ws, &e);
        if (rc == MAE_OK) return MAE_OK;
        if (rc != MAE_ERR_DATA) {
            *err = e;
            return MAE_ERR;
        }
        pthread_mutex_lock(&l->mu);
        note_bad(l, i, &e);
        pthread_mutex_unlock(&l->mu);
        if (l->cfg.strict) return mae_errf(err, "%s (--strict: bad files are errors)", e.msg);
    }
    return mae_errf(err, "%s: no decodable image among its %lld files", l->ds->desc,
                    (long long)l->n);
}
