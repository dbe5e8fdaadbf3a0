/* test_loader.c - the batch loader (src/data/loader.c): same batches at any number of workers,
 * drop_last, disjoint distributed shards, mid-epoch restart, bad-sample skipping (counted once,
 * never fed, deterministic substitutes), --strict, and "no decodable sample".
 *
 * The dataset here is synthetic: sample i of epoch e with seed s is filled with a value that
 * encodes (i, e), and a chosen set of indices is "bad" (MAE_ERR_DATA). Exits 1 on failure. */
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "data/loader.h"

#include "check.h"


#define C_ 2
#define H_ 3
#define W_ 3
#define PER (C_ * H_ * W_)

typedef struct {
    const uint8_t *bad; /* (n) */
    int calls_bad;
} fake_impl;

static int fake_get_ws(mae_dataset *ds, int64_t idx, int epoch, uint64_t seed, float *out,
                       int *label, mae_data_ws *ws, mae_error *err) {
    (void)ws;
    fake_impl *f = (fake_impl *)ds->impl;
    if (idx < 0 || idx >= ds->n) return mae_errf(err, "index %lld out of range", (long long)idx);
    if (f->bad && f->bad[idx]) {
        mae_errf(err, "fake/%lld.jpg: corrupt", (long long)idx);
        return MAE_ERR_DATA;
    }
    for (int k = 0; k < PER; k++) out[k] = (float)(idx * 1000 + epoch * 10 + k % 7) + (float)(seed % 3);
    if (label) *label = (int)(idx % 10);
    return MAE_OK;
}

static int fake_get(mae_dataset *ds, int64_t idx, int epoch, uint64_t seed, float *out, int *label,
                    mae_error *err) {
    return fake_get_ws(ds, idx, epoch, seed, out, label, NULL, err);
}

static void fake_destroy(mae_dataset *ds) { free(ds->impl); }

static mae_dataset *fake_new(int n, const uint8_t *bad) {
    mae_dataset *ds = (mae_dataset *)mae_xcalloc(1, sizeof *ds);
    fake_impl *f = (fake_impl *)mae_xcalloc(1, sizeof *f);
    f->bad = bad;
    ds->n = n;
    ds->C = C_;
    ds->H = H_;
    ds->W = W_;
    ds->get = fake_get;
    ds->get_ws = fake_get_ws;
    ds->destroy = fake_destroy;
    ds->impl = f;
    snprintf(ds->desc, sizeof ds->desc, "fake (%d)", n);
    return ds;
}

/* All batches of epochs [0, epochs) into ids (epochs*steps*B) and imgs; returns steps. */
static int64_t run(mae_dataset *ds, mae_loader_config *lc, int epochs, uint64_t *ids, float *imgs,
                   int *labels) {
    mae_error err;
    mae_loader *l = mae_loader_create(ds, lc, &err);
    if (!l) {
        printf("loader: %s\n", err.msg);
        return -1;
    }
    int64_t steps = mae_loader_steps(l), k = 0;
    for (int e = 0; e < epochs; e++) {
        mae_loader_start_epoch(l, e, 0);
        mae_batch b;
        int rc;
        while ((rc = mae_loader_next(l, &b, &err)) == MAE_OK) {
            for (int i = 0; i < b.B; i++, k++) {
                ids[k] = b.sample_ids[i];
                labels[k] = b.labels[i];
                memcpy(imgs + k * PER, b.imgs + (size_t)i * PER, sizeof(float) * PER);
            }
        }
        if (rc != 1) printf("next: %s\n", err.msg);
    }
    mae_loader_free(l);
    return steps;
}

static void test_workers_and_order(void) {
    enum { N = 203, B = 8, E = 3 };
    mae_dataset *ds = fake_new(N, NULL);
    static uint64_t ids[4][E * N];
    static float imgs[4][E * N * PER];
    static int labs[4][E * N];
    int workers[4] = {0, 1, 3, 8};
    int64_t steps = 0;
    for (int w = 0; w < 4; w++) {
        mae_loader_config lc;
        mae_loader_config_default(&lc, B);
        lc.num_workers = workers[w];
        lc.seed = 5;
        lc.prefetch = w == 3 ? 1 : 0;
        steps = run(ds, &lc, E, ids[w], imgs[w], labs[w]);
    }
    CHECK(steps == N / B, "drop_last: %lld steps for %d samples, batch %d", (long long)steps, N, B);
    int64_t total = E * steps * B;
    for (int w = 1; w < 4; w++) {
        CHECK(!memcmp(ids[0], ids[w], sizeof(uint64_t) * total) &&
                  !memcmp(imgs[0], imgs[w], sizeof(float) * total * PER) &&
                  !memcmp(labs[0], labs[w], sizeof(int) * total),
              "num_workers %d gives different batches than num_workers 0", workers[w]);
    }
    /* each epoch: distinct ids, content encodes (id, epoch), epochs shuffled differently */
    for (int e = 0; e < E; e++) {
        uint8_t seen[N] = {0};
        int dup = 0, wrong = 0;
        for (int64_t k = 0; k < steps * B; k++) {
            uint64_t id = ids[0][e * steps * B + k];
            dup += seen[id]++;
            float v = imgs[0][(e * steps * B + k) * PER];
            wrong += v != (float)(id * 1000 + e * 10) + 2.0f;
            wrong += labs[0][e * steps * B + k] != (int)(id % 10);
        }
        CHECK(!dup && !wrong, "epoch %d: %d duplicate ids, %d wrong images/labels", e, dup, wrong);
    }
    CHECK(memcmp(ids[0], ids[0] + steps * B, sizeof(uint64_t) * steps * B) != 0,
          "epochs 0 and 1 have the same order");
    mae_dataset_free(ds);
}

static void test_shards(void) {
    enum { N = 100, B = 4, WS = 3 };
    mae_dataset *ds = fake_new(N, NULL);
    static uint64_t ids[WS][N];
    static float imgs[N * PER];
    static int labs[N];
    int cover[N] = {0};
    int64_t steps = 0;
    for (int r = 0; r < WS; r++) {
        mae_loader_config lc;
        mae_loader_config_default(&lc, B);
        lc.rank = r;
        lc.world_size = WS;
        lc.num_workers = 2;
        lc.drop_last = 0;
        steps = run(ds, &lc, 1, ids[r], imgs, labs);
    }
    /* 100 samples over 3 ranks: padded to 102, 34 each: 9 batches of 4 (the last one of 2) */
    CHECK(steps == 9, "non-drop_last shard: %lld steps, expected 9", (long long)steps);
    int64_t perm[N];
    mae_epoch_permutation(perm, N, 0, 0);
    int bad_order = 0;
    for (int r = 0; r < WS; r++)
        for (int k = 0; k < 34; k++) {
            int64_t g = r + (int64_t)k * WS;
            bad_order += ids[r][k] != (uint64_t)perm[g % N];
            if (g < N) cover[ids[r][k]]++;
        }
    int missing = 0;
    for (int i = 0; i < N; i++) missing += cover[i] != 1;
    CHECK(!bad_order, "rank r must take positions r, r+3, ... of the padded permutation (%d off)", bad_order);
    CHECK(!missing, "the shards are not a disjoint cover (%d samples not seen exactly once)", missing);
    mae_dataset_free(ds);
}

static void test_restart_mid_epoch(void) {
    enum { N = 97, B = 5 };
    mae_dataset *ds = fake_new(N, NULL);
    mae_loader_config lc;
    mae_loader_config_default(&lc, B);
    lc.num_workers = 2;
    lc.seed = 9;
    mae_error err;
    mae_loader *l = mae_loader_create(ds, &lc, &err);
    static uint64_t full[N], part[N];
    mae_batch b;
    mae_loader_start_epoch(l, 4, 0);
    int64_t k = 0;
    while (mae_loader_next(l, &b, &err) == MAE_OK)
        for (int i = 0; i < b.B; i++) full[k++] = b.sample_ids[i];
    /* abandon epoch 2 half way (batches queued), then restart epoch 4 at step 7 */
    mae_loader_start_epoch(l, 2, 0);
    mae_loader_next(l, &b, &err);
    mae_loader_start_epoch(l, 4, 7);
    int64_t first = -1;
    k = 7 * B;
    while (mae_loader_next(l, &b, &err) == MAE_OK) {
        if (first < 0) first = b.step;
        for (int i = 0; i < b.B; i++) part[k++] = b.sample_ids[i];
    }
    CHECK(first == 7 && k == (N / B) * B, "restart at step 7: first batch %lld, %lld samples",
          (long long)first, (long long)k);
    CHECK(!memcmp(full + 7 * B, part + 7 * B, sizeof(uint64_t) * (k - 7 * B)),
          "restarting epoch 4 at step 7 gives different samples than the full epoch");
    mae_loader_free(l);
    mae_dataset_free(ds);
}

static void test_bad_samples(void) {
    enum { N = 60, B = 6 };
    static uint8_t bad[N];
    int nbad = 0;
    for (int i = 0; i < N; i++) nbad += bad[i] = (i % 7 == 3);
    mae_dataset *ds = fake_new(N, bad);
    static uint64_t ids[3][2 * N];
    static float imgs[3][2 * N * PER];
    int workers[3] = {0, 2, 5};
    for (int w = 0; w < 3; w++) {
        mae_loader_config lc;
        mae_loader_config_default(&lc, B);
        lc.num_workers = workers[w];
        mae_error err;
        mae_loader *l = mae_loader_create(ds, &lc, &err);
        int64_t k = 0;
        for (int e = 0; e < 2; e++) {
            mae_loader_start_epoch(l, e, 0);
            mae_batch b;
            while (mae_loader_next(l, &b, &err) == MAE_OK)
                for (int i = 0; i < b.B; i++, k++) {
                    ids[w][k] = b.sample_ids[i];
                    memcpy(imgs[w] + k * PER, b.imgs + (size_t)i * PER, sizeof(float) * PER);
                }
        }
        CHECK(k == 2 * (N / B) * B, "with bad samples the epochs still have full batches (%lld)", (long long)k);
        int fed = 0;
        for (int64_t j = 0; j < k; j++) fed += bad[ids[w][j]];
        CHECK(!fed, "%d bad samples were fed (num_workers %d)", fed, workers[w]);
        CHECK(mae_loader_bad_files(l) == nbad, "bad files counted %lld, expected %d (each once)",
              (long long)mae_loader_bad_files(l), nbad);
        mae_loader_free(l);
    }
    CHECK(!memcmp(ids[0], ids[1], sizeof ids[0]) && !memcmp(ids[0], ids[2], sizeof ids[0]) &&
              !memcmp(imgs[0], imgs[1], sizeof imgs[0]),
          "substitutes for bad samples depend on the number of workers");
    /* strict: an error naming the file */
    for (int w = 0; w < 2; w++) {
        mae_loader_config lc;
        mae_loader_config_default(&lc, B);
        lc.num_workers = w * 2;
        lc.strict = 1;
        mae_error err = {{0}};
        mae_loader *l = mae_loader_create(ds, &lc, &err);
        mae_loader_start_epoch(l, 0, 0);
        mae_batch b;
        int rc;
        while ((rc = mae_loader_next(l, &b, &err)) == MAE_OK) {}
        CHECK(rc == MAE_ERR && strstr(err.msg, "corrupt") && strstr(err.msg, "--strict"),
              "strict (workers %d): rc %d, '%s'", lc.num_workers, rc, err.msg);
        mae_loader_free(l);
    }
    mae_dataset_free(ds);
}

static void test_no_good_sample(void) {
    enum { N = 10 };
    static uint8_t bad[N];
    memset(bad, 1, sizeof bad);
    mae_dataset *ds = fake_new(N, bad);
    mae_loader_config lc;
    mae_loader_config_default(&lc, 2);
    mae_error err = {{0}};
    mae_loader *l = mae_loader_create(ds, &lc, &err);
    CHECK(mae_loader_check_first(l, &err) == MAE_ERR && strstr(err.msg, "no decodable image"),
          "all bad: '%s'", err.msg);
    CHECK(mae_loader_bad_files(l) == N, "all %d counted, got %lld", N, (long long)mae_loader_bad_files(l));
    mae_loader_free(l);
    bad[7] = 0;
    l = mae_loader_create(ds, &lc, &err);
    CHECK(mae_loader_check_first(l, &err) == MAE_OK, "one good sample is enough: %s", err.msg);
    mae_loader_free(l);
    /* config errors */
    lc.batch_size = 11;
    CHECK(!mae_loader_create(ds, &lc, &err) && strstr(err.msg, "fewer than one batch (--batch_size 11)"), "%s", err.msg);
    lc.batch_size = 2;
    lc.rank = 2;
    lc.world_size = 2;
    CHECK(!mae_loader_create(ds, &lc, &err) && strstr(err.msg, "rank"), "%s", err.msg);
    mae_dataset_free(ds);
}

/* a host allocator (a GPU backend's pinned memory): the batches land in its block, the loader
 * frees it with the matching free, and the samples are the same as with malloc; a failing one
 * falls back to malloc */
static int g_allocs, g_frees;
static void *g_block;
static size_t g_bytes;
static void *count_alloc(size_t n) {
    g_allocs++;
    g_bytes = n;
    return g_block = malloc(n);
}
static void count_free(void *p) {
    g_frees += p == g_block;
    free(p);
}
static void *fail_alloc(size_t n) {
    (void)n;
    g_allocs++;
    return NULL;
}

static void test_host_alloc(void) {
    enum { N = 40, B = 4 };
    mae_dataset *ds = fake_new(N, NULL);
    mae_error err;
    uint64_t ids[3][N];
    for (int mode = 0; mode < 3; mode++) { /* malloc, counting allocator, failing allocator */
        mae_loader_config lc;
        mae_loader_config_default(&lc, B);
        lc.num_workers = 2;
        lc.seed = 3;
        if (mode == 1) lc.host_alloc = count_alloc, lc.host_free = count_free;
        if (mode == 2) lc.host_alloc = fail_alloc, lc.host_free = count_free;
        g_allocs = g_frees = 0;
        g_block = NULL;
        mae_loader *l = mae_loader_create(ds, &lc, &err);
        mae_batch b;
        mae_loader_start_epoch(l, 1, 0);
        int k = 0, inside = 1;
        while (mae_loader_next(l, &b, &err) == MAE_OK) {
            for (int i = 0; i < b.B; i++) ids[mode][k++] = b.sample_ids[i];
            if (mode == 1)
                inside &= (const char *)b.imgs >= (const char *)g_block &&
                           (const char *)b.imgs < (const char *)g_block + g_bytes;
        }
        mae_loader_free(l);
        if (mode == 1)
            CHECK(g_allocs == 1 && g_frees == 1 && inside,
                  "host_alloc: %d allocations, %d matching frees, batches inside its block %d",
                  g_allocs, g_frees, inside);
        if (mode == 2) CHECK(g_allocs == 1 && g_frees == 0, "a failing host_alloc falls back to malloc");
        if (mode > 0)
            CHECK(!memcmp(ids[0], ids[mode], sizeof ids[0]), "allocator %d changed the samples", mode);
    }
    mae_dataset_free(ds);
}

int main(void) {
    test_host_alloc();
    test_workers_and_order();
    test_shards();
    test_restart_mid_epoch();
    test_bad_samples();
    test_no_good_sample();
    return check_summary("test_loader");
}
