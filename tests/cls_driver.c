/* cls_driver.c - command-line driver of tests/python/cls_parity.py: the ViT classifier of
 * libmae (mae_classifier_create, mae_cls_forward/backward, mae_trainer_step_cls,
 * mae_classifier_load_encoder) and mae_pos_embed_resize, for golden parity with PyTorch.
 *
 * Every mode takes --config CFG.json (mae_config JSON) and --cls NC,GP,BN,FREEZE,DROP,STD
 * (num_classes, global_pool, head_bn, freeze_encoder, drop_path, head_init_std); except --resize.
 *
 *   --save W.safetensors [--seed N]         mae_model_init(seed) then mae_model_save
 *   --weights W --input X.npy --targets T.npy --out OUT.safetensors [--train 0|1]
 *         [--steps S --lr LR --min_lr M --warmup_epochs WE --epochs E --iters_per_epoch I
 *          --weight_decay WD --layer_decay LD --clip_grad C --optimizer adamw|lars
 *          --beta2 B2 --momentum MO --accum_iter A]
 *       forward (train flag, key 0) + backward(1.0): writes loss [1], logits (B,NC),
 *       grad.<name> for every trainable tensor, param.<name> for every tensor after the
 *       forward (BatchNorm running stats move in train mode), info.<name> = [layer_id,
 *       weight_decay, trainable, ndim] (F32) for every tensor. With S > 0: a fresh model
 *       loaded from W trained S micro-steps (mae_trainer_step_cls, key 0, epoch s / I):
 *       losses (S), lrs (S) and final.<name> for every tensor.
 *   --load_encoder F --out OUT.safetensors [--seed N]
 *       mae_model_init(seed), mae_classifier_load_encoder(F): writes param.<name>.
 *   --resize IN.npy --grid GO --out OUT.npy
 *       IN (1, 1+gi*gi, dim) float32 -> mae_pos_embed_resize -> OUT (1, 1+GO*GO, dim).
 * Exit status 0 on success, 1 on any error (message on stderr).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fileio.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "mae.h"
#include "model/model.h" /* mae_pos_embed_resize (internal) */

static void die(const char *what, const mae_error *err) {
    fprintf(stderr, "cls_driver: %s%s%s\n", what, err ? ": " : "", err ? err->msg : "");
    exit(1);
}

/* buffers handed to st_writer_add must live until the save: every xalloc is recorded and
 * freed at exit (so LeakSanitizer stays quiet in the sanitizer suite) */
static void **g_allocs;
static size_t g_nallocs, g_capallocs;

static void free_allocs(void) {
    for (size_t i = 0; i < g_nallocs; i++) free(g_allocs[i]);
    free(g_allocs);
    g_allocs = NULL;
    g_nallocs = g_capallocs = 0;
}

static void *xalloc(size_t bytes) {
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p) die("out of memory", NULL);
    if (g_nallocs == g_capallocs) {
        if (!g_capallocs) atexit(free_allocs);
        g_capallocs = g_capallocs ? 2 * g_capallocs : 256;
        void **na = realloc(g_allocs, g_capallocs * sizeof *na);
        if (!na) die("out of memory", NULL);
        g_allocs = na;
    }
    g_allocs[g_nallocs++] = p;
    return p;
}

static char *name2(const char *prefix, const char *name) {
    size_t n = strlen(prefix) + strlen(name) + 1;
    char *s = xalloc(n);
    snprintf(s, n, "%s%s", prefix, name);
    return s;
}

static void add_tensors(st_writer *w, const mae_model *m, const char *prefix, int grads) {
    for (int i = 0; i < mae_num_tensors(m); i++) {
        const mae_tensor_info *ti = mae_tensor(m, i);
        if (grads && !ti->trainable) continue;
        float *buf = xalloc(ti->numel * sizeof(float));
        if (grads)
            mae_grad_get(m, i, buf);
        else
            mae_tensor_get(m, i, buf);
        st_writer_add(w, name2(prefix, ti->name), "F32", ti->ndim, ti->shape, buf);
    }
}

static void load_npy(const char *path, npy_array *a) {
    mae_error err = {{0}};
    memset(a, 0, sizeof *a);
    if (npy_load_f32(path, a, &err) != MAE_OK) die("reading npy", &err);
}

static void save_st(st_writer *w, const char *path) {
    mae_error err = {{0}};
    if (st_writer_save(w, path, &err) != MAE_OK) die("writing output", &err);
}

int main(int argc, char **argv) {
    const char *config = NULL, *cls = NULL, *save = NULL, *weights = NULL, *input = NULL;
    const char *targets = NULL, *out = NULL, *load_enc = NULL, *resize = NULL, *opt = "adamw";
    uint64_t seed = 0;
    int train = 1, steps = 0, epochs = 4, iters = 1, accum = 1, grid = 0;
    double lr = 1e-3, min_lr = 1e-6, warmup = 1.0, wd = 0.05, ld = 0.75, clip = 0.0;
    double beta2 = 0.999, momentum = 0.9;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) die("an option needs a value", NULL);
        const char *v = argv[++i];
        if (!strcmp(a, "--config")) config = v;
        else if (!strcmp(a, "--cls")) cls = v;
        else if (!strcmp(a, "--save")) save = v;
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--weights")) weights = v;
        else if (!strcmp(a, "--input")) input = v;
        else if (!strcmp(a, "--targets")) targets = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--train")) train = atoi(v);
        else if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--lr")) lr = atof(v);
        else if (!strcmp(a, "--min_lr")) min_lr = atof(v);
        else if (!strcmp(a, "--warmup_epochs")) warmup = atof(v);
        else if (!strcmp(a, "--epochs")) epochs = atoi(v);
        else if (!strcmp(a, "--iters_per_epoch")) iters = atoi(v);
        else if (!strcmp(a, "--weight_decay")) wd = atof(v);
        else if (!strcmp(a, "--layer_decay")) ld = atof(v);
        else if (!strcmp(a, "--clip_grad")) clip = atof(v);
        else if (!strcmp(a, "--optimizer")) opt = v;
        else if (!strcmp(a, "--beta2")) beta2 = atof(v);
        else if (!strcmp(a, "--momentum")) momentum = atof(v);
        else if (!strcmp(a, "--accum_iter")) accum = atoi(v);
        else if (!strcmp(a, "--load_encoder")) load_enc = v;
        else if (!strcmp(a, "--resize")) resize = v;
        else if (!strcmp(a, "--grid")) grid = atoi(v);
        else {
            fprintf(stderr, "cls_driver: unknown option %s\n", a);
            return 2;
        }
    }
    mae_error err = {{0}};

    if (resize) {
        if (!out || grid < 1) die("--resize needs --grid and --out", NULL);
        npy_array a;
        load_npy(resize, &a);
        int64_t rows = a.ndim == 3 ? a.shape[1] : a.ndim == 2 ? a.shape[0] : -1;
        int64_t dim = a.shape[a.ndim - 1], gi = (int64_t)llround(sqrt((double)(rows - 1)));
        if (rows < 2 || gi * gi != rows - 1 || (a.ndim == 3 && a.shape[0] != 1))
            die("--resize: expected (1, 1+g*g, dim)", NULL);
        size_t on = (size_t)(1 + grid * grid) * (size_t)dim;
        float *o = xalloc(on * sizeof(float));
        mae_pos_embed_resize(o, grid, a.data, (int)gi, (int)dim);
        int64_t shape[3] = {1, 1 + (int64_t)grid * grid, dim};
        if (npy_save(out, "<f4", 3, shape, o, &err) != MAE_OK) die("writing npy", &err);
        npy_free(&a);
        return 0;
    }

    if (!config || !cls) die("--config and --cls are needed", NULL);
    mae_config cfg;
    {
        uint8_t *text = NULL;
        size_t size = 0;
        if (mae_read_file(config, &text, &size, &err) != MAE_OK) die("reading config", &err);
        if (mae_config_from_json(&cfg, (const char *)text, &err) != MAE_OK) die("config", &err);
        free(text);
    }
    mae_cls_config cc;
    memset(&cc, 0, sizeof cc);
    if (sscanf(cls, "%d,%d,%d,%d,%lf,%lf", &cc.num_classes, &cc.global_pool, &cc.head_bn,
               &cc.freeze_encoder, &cc.drop_path, &cc.head_init_std) != 6)
        die("--cls NC,GP,BN,FREEZE,DROP,STD", NULL);

    if (save || load_enc) {
        mae_model *m = mae_classifier_create(&cfg, &cc, 1, "cpu", &err);
        if (!m) die("mae_classifier_create", &err);
        mae_model_init(m, seed);
        if (save && mae_model_save(m, save, &err) != MAE_OK) die("mae_model_save", &err);
        if (load_enc) {
            if (!out) die("--load_encoder needs --out", NULL);
            if (mae_classifier_load_encoder(m, load_enc, &err) != MAE_OK)
                die("mae_classifier_load_encoder", &err);
            st_writer *w = st_writer_new();
            add_tensors(w, m, "param.", 0);
            save_st(w, out);
            st_writer_free(w);
        }
        mae_model_free(m);
        return 0;
    }

    if (!weights || !input || !targets || !out) die("--weights --input --targets --out", NULL);
    npy_array X, T;
    load_npy(input, &X);
    load_npy(targets, &T);
    if (X.ndim != 4 || X.shape[1] != cfg.in_chans || X.shape[2] != cfg.img_size ||
        X.shape[3] != cfg.img_size)
        die("--input: expected (B,C,H,W)", NULL);
    int B = (int)X.shape[0];
    if (T.ndim != 2 || T.shape[0] != B || T.shape[1] != cc.num_classes)
        die("--targets: expected (B,num_classes)", NULL);

    st_writer *w = st_writer_new();
    {
        mae_model *m = mae_classifier_create(&cfg, &cc, B, "cpu", &err);
        if (!m) die("mae_classifier_create", &err);
        if (mae_model_load(m, weights, &err) != MAE_OK) die("mae_model_load", &err);
        mae_zero_grad(m);
        float *loss = xalloc(sizeof(float)), *logits = xalloc((size_t)B * cc.num_classes * 4);
        if (mae_cls_forward(m, X.data, T.data, B, train, 0, loss, logits, &err) != MAE_OK)
            die("mae_cls_forward", &err);
        mae_cls_backward(m, 1.0f);
        int64_t s1[1] = {1}, sl[2] = {B, cc.num_classes}, s4[1] = {4};
        st_writer_add(w, "loss", "F32", 1, s1, loss);
        st_writer_add(w, "logits", "F32", 2, sl, logits);
        add_tensors(w, m, "grad.", 1);
        add_tensors(w, m, "param.", 0);
        for (int i = 0; i < mae_num_tensors(m); i++) {
            const mae_tensor_info *ti = mae_tensor(m, i);
            float *info = xalloc(4 * sizeof(float));
            info[0] = (float)mae_tensor_layer_id(m, i);
            info[1] = (float)ti->weight_decay;
            info[2] = (float)ti->trainable;
            info[3] = (float)ti->ndim;
            st_writer_add(w, name2("info.", ti->name), "F32", 1, s4, info);
        }
        printf("step0 loss %.9g\n", (double)*loss);
        mae_model_free(m);
    }
    if (steps > 0) {
        mae_model *m = mae_classifier_create(&cfg, &cc, B, "cpu", &err);
        if (!m) die("mae_classifier_create", &err);
        if (mae_model_load(m, weights, &err) != MAE_OK) die("mae_model_load", &err);
        mae_train_config tc;
        mae_train_config_default(&tc);
        tc.lr = lr;
        tc.min_lr = min_lr;
        tc.warmup_epochs = warmup;
        tc.epochs = epochs;
        tc.weight_decay = wd;
        tc.layer_decay = ld;
        tc.clip_grad = clip;
        tc.beta2 = beta2;
        tc.momentum = momentum;
        tc.accum_iter = accum;
        tc.batch_size = B;
        tc.optimizer = !strcmp(opt, "lars") ? MAE_OPT_LARS : MAE_OPT_ADAMW;
        mae_trainer *t = mae_trainer_create(m, &tc, &err);
        if (!t) die("mae_trainer_create", &err);
        float *losses = xalloc((size_t)steps * 4), *lrs = xalloc((size_t)steps * 4);
        for (int s = 0; s < steps; s++) {
            int rc = mae_trainer_step_cls(t, X.data, T.data, B, (double)s / iters, 0, &losses[s],
                                          &err);
            if (rc != MAE_OK) die("mae_trainer_step_cls", &err);
            lrs[s] = (float)mae_trainer_lr(t);
            printf("step %d lr %.6g loss %.9g\n", s, (double)lrs[s], (double)losses[s]);
        }
        int64_t sS[1] = {steps};
        st_writer_add(w, "losses", "F32", 1, sS, losses);
        st_writer_add(w, "lrs", "F32", 1, sS, lrs);
        add_tensors(w, m, "final.", 0);
        mae_trainer_free(t);
        mae_model_free(m);
    }
    save_st(w, out);
    st_writer_free(w);
    npy_free(&X);
    npy_free(&T);
    return 0;
}
