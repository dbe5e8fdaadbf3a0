/* parity_driver.c - command-line driver used by the Python parity tests
 * (tests/python/mae_parity.py, tests/python/ckpt_roundtrip.py).
 *
 * It uses only the public API of include/mae.h (plus the project's npy reader and safetensors
 * writer for file I/O) so that the tests exercise exactly what a user of libmae sees.
 *
 * Modes
 *   parity_driver --config CFG.json --weights W.safetensors --input X.npy --noise N.npy
 *                 --out OUT.safetensors [--steps S --lr LR --min_lr M --warmup_epochs WE
 *                 --epochs E --iters_per_epoch I --weight_decay WD --accum_iter A]
 *       Step 0: forward + backward(1.0) with noise slice 0; writes loss [1], pred (B,L,P),
 *       mask (B,L), ids_restore (I64, B,L), latent (B,1+K,D) and grad.<name> for every
 *       trainable tensor. With S > 0: a fresh model loaded from W is trained for S micro-steps
 *       with mae_trainer_step (noise slice s, epoch s / I); writes losses (S), lrs (S) and
 *       param.<name> for every tensor after the last step.
 *   parity_driver --config CFG.json --dump_init OUT.safetensors [--seed N]
 *       mae_model_init(m, N) and write param.<name> for every tensor.
 *   parity_driver --config CFG.json --save CKPT.safetensors [--seed N]
 *       mae_model_init(m, N) then mae_model_save (the library's own checkpoint format).
 *
 * X.npy is float32 (B,C,H,W); N.npy is float32 (S_or_1, B, L) or (B, L).
 * Exit status 0 on success, 1 on any error (message on stderr).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mae.h"
#include "io/fileio.h"
#include "io/safetensors.h"
#include "io/npy.h"

/* ------------------------------------------------------------------ .npy input */

typedef struct pd_array {
    int ndim;
    int64_t shape[8];
    size_t numel;
    float *data; /* owned */
} pd_array;

static int pd_load_npy(const char *path, pd_array *out, mae_error *err) {
    npy_array a;
    memset(&a, 0, sizeof a);
    if (npy_load_f32(path, &a, err) != MAE_OK) return MAE_ERR;
    memset(out, 0, sizeof *out);
    out->ndim = a.ndim;
    for (int i = 0; i < a.ndim && i < 8; i++) out->shape[i] = a.shape[i];
    out->numel = a.numel;
    out->data = malloc(a.numel * sizeof(float) + 1);
    if (!out->data) {
        npy_free(&a);
        snprintf(err->msg, sizeof err->msg, "%s: out of memory", path);
        return MAE_ERR;
    }
    if (a.numel) memcpy(out->data, a.data, a.numel * sizeof(float));
    npy_free(&a);
    return MAE_OK;
}

/* ------------------------------------------------------------------ helpers */

static void die(const char *what, const mae_error *err) {
    fprintf(stderr, "parity_driver: %s%s%s\n", what, err ? ": " : "", err ? err->msg : "");
    exit(1);
}

/* A small arena so that every buffer handed to st_writer_add stays alive until save. */
typedef struct pd_bufs {
    void **p;
    int n, cap;
} pd_bufs;

static void *pd_alloc(pd_bufs *b, size_t bytes) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->p = realloc(b->p, (size_t)b->cap * sizeof(void *));
        if (!b->p) die("out of memory", NULL);
    }
    void *q = calloc(bytes ? bytes : 1, 1);
    if (!q) die("out of memory", NULL);
    b->p[b->n++] = q;
    return q;
}

static void pd_free_all(pd_bufs *b) {
    for (int i = 0; i < b->n; i++) free(b->p[i]);
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

static char *pd_name(pd_bufs *b, const char *prefix, const char *name) {
    size_t n = strlen(prefix) + strlen(name) + 1;
    char *s = pd_alloc(b, n);
    snprintf(s, n, "%s%s", prefix, name);
    return s;
}

/* Adds param.<name> (or grad.<name> when grads) for every tensor (trainable only for grads). */
static void add_tensors(st_writer *w, pd_bufs *b, const mae_model *m, int grads) {
    int n = mae_num_tensors(m);
    for (int i = 0; i < n; i++) {
        const mae_tensor_info *ti = mae_tensor(m, i);
        if (grads && !ti->trainable) continue;
        float *buf = pd_alloc(b, ti->numel * sizeof(float));
        if (grads)
            mae_grad_get(m, i, buf);
        else
            mae_tensor_get(m, i, buf);
        st_writer_add(w, pd_name(b, grads ? "grad." : "param.", ti->name), "F32", ti->ndim,
                      ti->shape, buf);
    }
}

static void save_or_die(st_writer *w, const char *path) {
    mae_error err = {{0}};
    if (st_writer_save(w, path, &err) != MAE_OK) die("writing output", &err);
}

static void usage(void) {
    fprintf(stderr,
            "usage: parity_driver --config CFG.json (--dump_init OUT | --save CKPT) [--seed N]\n"
            "       parity_driver --config CFG.json --weights W.safetensors --input X.npy\n"
            "                     --noise N.npy --out OUT.safetensors [--steps S --lr LR\n"
            "                     --min_lr M --warmup_epochs WE --epochs E --iters_per_epoch I\n"
            "                     --weight_decay WD --accum_iter A]\n");
    exit(2);
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv) {
    const char *config_path = NULL, *weights = NULL, *input = NULL, *noise_path = NULL;
    const char *out_path = NULL, *dump_init = NULL, *save_path = NULL;
    uint64_t seed = 0;
    int steps = 0, epochs = 5, iters_per_epoch = 1, accum_iter = 1;
    double lr = 1e-3, min_lr = 0.0, warmup_epochs = 2.0, weight_decay = 0.05;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) {
            fprintf(stderr, "parity_driver: %s needs a value\n", a);
            usage();
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--config")) config_path = v;
        else if (!strcmp(a, "--weights")) weights = v;
        else if (!strcmp(a, "--input")) input = v;
        else if (!strcmp(a, "--noise")) noise_path = v;
        else if (!strcmp(a, "--out")) out_path = v;
        else if (!strcmp(a, "--dump_init")) dump_init = v;
        else if (!strcmp(a, "--save")) save_path = v;
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--lr")) lr = atof(v);
        else if (!strcmp(a, "--min_lr")) min_lr = atof(v);
        else if (!strcmp(a, "--warmup_epochs")) warmup_epochs = atof(v);
        else if (!strcmp(a, "--epochs")) epochs = atoi(v);
        else if (!strcmp(a, "--iters_per_epoch")) iters_per_epoch = atoi(v);
        else if (!strcmp(a, "--weight_decay")) weight_decay = atof(v);
        else if (!strcmp(a, "--accum_iter")) accum_iter = atoi(v);
        else {
            fprintf(stderr, "parity_driver: unknown option %s\n", a);
            usage();
        }
    }
    if (!config_path) usage();
    if (iters_per_epoch < 1 || accum_iter < 1 || steps < 0) usage();

    mae_error err = {{0}};
    mae_config cfg;
    memset(&cfg, 0, sizeof cfg);
    {
        uint8_t *text = NULL;
        size_t size = 0;
        if (mae_read_file(config_path, &text, &size, &err) != MAE_OK) die("reading config", &err);
        if (mae_config_from_json(&cfg, (const char *)text, &err) != MAE_OK)
            die("parsing config", &err);
        free(text);
    }

    /* ---- init-only modes */
    if (dump_init || save_path) {
        mae_model *m = mae_model_create(&cfg, 1, "cpu", &err);
        if (!m) die("mae_model_create", &err);
        mae_model_init(m, seed);
        if (dump_init) {
            pd_bufs b = {0};
            st_writer *w = st_writer_new();
            add_tensors(w, &b, m, 0);
            save_or_die(w, dump_init);
            st_writer_free(w);
            pd_free_all(&b);
        }
        if (save_path && mae_model_save(m, save_path, &err) != MAE_OK)
            die("mae_model_save", &err);
        mae_model_free(m);
        return 0;
    }

    if (!weights || !input || !noise_path || !out_path) usage();

    const int C = cfg.in_chans, HW = cfg.img_size;
    const int L = mae_config_num_patches(&cfg), P = mae_config_patch_dim(&cfg);

    pd_array X, N;
    if (pd_load_npy(input, &X, &err) != MAE_OK) die("reading input", &err);
    if (pd_load_npy(noise_path, &N, &err) != MAE_OK) die("reading noise", &err);
    if (X.ndim != 4 || X.shape[1] != C || X.shape[2] != HW || X.shape[3] != HW) {
        fprintf(stderr, "parity_driver: %s: expected (B,%d,%d,%d) float32\n", input, C, HW, HW);
        return 1;
    }
    const int B = (int)X.shape[0];
    int64_t S_noise;
    if (N.ndim == 3 && N.shape[1] == B && N.shape[2] == L) S_noise = N.shape[0];
    else if (N.ndim == 2 && N.shape[0] == B && N.shape[1] == L) S_noise = 1;
    else {
        fprintf(stderr, "parity_driver: %s: expected (S,%d,%d) or (%d,%d) float32\n", noise_path,
                B, L, B, L);
        return 1;
    }
    if (steps > 0 && S_noise != 1 && S_noise < steps) {
        fprintf(stderr, "parity_driver: %s has %lld noise slices, --steps %d needs %d\n",
                noise_path, (long long)S_noise, steps, steps);
        return 1;
    }
    const size_t noise_slice = (size_t)B * (size_t)L;

    pd_bufs b = {0};
    st_writer *w = st_writer_new();

    /* ---- step 0: forward + backward */
    {
        mae_model *m = mae_model_create(&cfg, B, "cpu", &err);
        if (!m) die("mae_model_create", &err);
        if (mae_model_load(m, weights, &err) != MAE_OK) die("mae_model_load", &err);
        mae_zero_grad(m);
        float *loss = pd_alloc(&b, sizeof(float));
        if (mae_forward(m, X.data, N.data, B, -1.0f, loss, &err) != MAE_OK)
            die("mae_forward", &err);
        mae_backward(m, 1.0f);
        if (mae_last_batch(m) != B) die("mae_last_batch != B", NULL);
        const int K = mae_last_len_keep(m);
        if (K != mae_config_len_keep(&cfg)) die("mae_last_len_keep != mae_config_len_keep", NULL);

        float *pred = pd_alloc(&b, (size_t)B * L * P * sizeof(float));
        float *mask = pd_alloc(&b, (size_t)B * L * sizeof(float));
        int64_t *ids = pd_alloc(&b, (size_t)B * L * sizeof(int64_t));
        float *latent = pd_alloc(&b, (size_t)B * (1 + K) * cfg.embed_dim * sizeof(float));
        mae_get_pred(m, pred);
        mae_get_mask(m, mask);
        mae_get_ids_restore(m, ids);
        mae_get_latent(m, latent);

        int64_t s1[1] = {1};
        int64_t s_pred[3] = {B, L, P};
        int64_t s_bl[2] = {B, L};
        int64_t s_lat[3] = {B, 1 + K, cfg.embed_dim};
        st_writer_add(w, "loss", "F32", 1, s1, loss);
        st_writer_add(w, "pred", "F32", 3, s_pred, pred);
        st_writer_add(w, "mask", "F32", 2, s_bl, mask);
        st_writer_add(w, "ids_restore", "I64", 2, s_bl, ids);
        st_writer_add(w, "latent", "F32", 3, s_lat, latent);
        add_tensors(w, &b, m, 1);
        printf("step0 loss %.9g\n", (double)*loss);
        mae_model_free(m);
    }

    /* ---- S training micro-steps on a fresh model loaded from the same weights */
    if (steps > 0) {
        mae_model *m = mae_model_create(&cfg, B, "cpu", &err);
        if (!m) die("mae_model_create", &err);
        if (mae_model_load(m, weights, &err) != MAE_OK) die("mae_model_load", &err);
        mae_train_config tc;
        mae_train_config_default(&tc);
        tc.lr = lr;
        tc.min_lr = min_lr;
        tc.warmup_epochs = warmup_epochs;
        tc.epochs = epochs;
        tc.weight_decay = weight_decay;
        tc.accum_iter = accum_iter;
        tc.batch_size = B;
        mae_trainer *t = mae_trainer_create(m, &tc, &err);
        if (!t) die("mae_trainer_create", &err);
        float *losses = pd_alloc(&b, (size_t)steps * sizeof(float));
        float *lrs = pd_alloc(&b, (size_t)steps * sizeof(float));
        for (int s = 0; s < steps; s++) {
            const float *noise = N.data + (S_noise == 1 ? 0 : (size_t)s * noise_slice);
            double epoch_f = (double)s / (double)iters_per_epoch;
            int rc = mae_trainer_step(t, X.data, noise, B, epoch_f, &losses[s], &err);
            if (rc != MAE_OK) {
                fprintf(stderr, "parity_driver: mae_trainer_step %d returned %d: %s\n", s, rc,
                        err.msg);
                return 1;
            }
            lrs[s] = (float)mae_trainer_lr(t);
            printf("step %d epoch %.4f lr %.6g loss %.9g\n", s, epoch_f, (double)lrs[s],
                   (double)losses[s]);
        }
        int64_t sS[1] = {steps};
        st_writer_add(w, "losses", "F32", 1, sS, losses);
        st_writer_add(w, "lrs", "F32", 1, sS, lrs);
        add_tensors(w, &b, m, 0);
        save_or_die(w, out_path);
        mae_trainer_free(t);
        mae_model_free(m);
    } else {
        save_or_die(w, out_path);
    }

    st_writer_free(w);
    pd_free_all(&b);
    free(X.data);
    free(N.data);
    return 0;
}
