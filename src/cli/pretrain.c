/* pretrain.c - `mae pretrain`: main_pretrain.py semantics (flags, lr rule, per-iteration
 * schedule, checkpoints every --save_every epochs and at the end), on IDX data for now
 * (default: Fashion-MNIST from Debian's dataset-fashion-mnist), ending with a
 * reconstruction picture. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "common.h"
#include "data/dataset.h"
#include "io/checkpoint.h"
#include "io/visualize.h"
#include "rng.h"

typedef struct pretrain_opts {
    cli_model_flags mf;
    const char *data_path, *output_dir, *log_dir, *resume, *device;
    int num_samples, threads, save_every, print_freq, stop_after_epochs, recon_images, recon_scale;
    mae_train_config tc;
} pretrain_opts;

#define N_EXTRA 21

static int parse(pretrain_opts *o, arg_spec *s, int argc, char **argv, mae_error *err) {
    cli_model_specs(s, &o->mf);
    mae_train_config *tc = &o->tc;
    arg_spec extra[N_EXTRA] = {
        {"data_path", ARG_STR, &o->data_path,
         "folder with MNIST-style IDX files (train-images-idx3-ubyte[.gz], labels optional); "
         "default: Fashion-MNIST in " MAE_FASHION_MNIST_DIR, 0},
        {"num_samples", ARG_INT, &o->num_samples, "use only the first N training images (0 = all)", 0},
        {"batch_size", ARG_INT, &tc->batch_size, "images per micro-batch (default 64)", 0},
        {"accum_iter", ARG_INT, &tc->accum_iter, "micro-batches per optimizer step (default 1)", 0},
        {"epochs", ARG_INT, &tc->epochs, "total epochs (default 400)", 0},
        {"warmup_epochs", ARG_DOUBLE, &tc->warmup_epochs, "linear warmup epochs (default 40)", 0},
        {"lr", ARG_DOUBLE, &tc->lr, "absolute lr (default: blr * effective batch / 256)", 0},
        {"blr", ARG_DOUBLE, &tc->blr, "base lr (default 1e-3, as main_pretrain.py)", 0},
        {"min_lr", ARG_DOUBLE, &tc->min_lr, "lr floor of the cosine (default 0)", 0},
        {"weight_decay", ARG_DOUBLE, &tc->weight_decay, "AdamW weight decay (default 0.05)", 0},
        {"seed", ARG_U64, &tc->seed, "seed for init, shuffling and masking (default 0)", 0},
        {"output_dir", ARG_STR, &o->output_dir, "checkpoints and pictures (default ./output_dir)", 0},
        {"log_dir", ARG_STR, &o->log_dir, "where log.jsonl goes (default: output_dir)", 0},
        {"resume", ARG_STR, &o->resume,
         "checkpoint-*.safetensors to resume from (its .state.safetensors beside it)", 0},
        {"threads", ARG_INT, &o->threads, "threads (default: all cores)", 0},
        {"save_every", ARG_INT, &o->save_every, "keep checkpoint-<epoch> every N epochs (default 20)", 0},
        {"print_freq", ARG_INT, &o->print_freq, "progress line every N steps (default 20)", 0},
        {"stop_after_epochs", ARG_INT, &o->stop_after_epochs,
         "end this run after N epochs (schedule unchanged; resume later)", 0},
        {"recon_images", ARG_INT, &o->recon_images, "images in the final reconstruction.png (default 8, 0 = none)", 0},
        {"recon_scale", ARG_INT, &o->recon_scale, "pixel scale of reconstruction.png (default 4)", 0},
        {"device", ARG_STR, &o->device, "cpu (default)", 0},
    };
    memcpy(s + CLI_MODEL_NFLAGS, extra, sizeof extra);
    return args_parse(s, CLI_MODEL_NFLAGS + N_EXTRA, argc, argv, 2, "pretrain", err);
}

static int check_opts(const pretrain_opts *o, mae_error *err) {
    if (o->num_samples < 0) return mae_errf(err, "--num_samples must be >= 0");
    if (o->save_every < 1) return mae_errf(err, "--save_every must be >= 1");
    if (o->print_freq < 1) return mae_errf(err, "--print_freq must be >= 1");
    if (o->stop_after_epochs < 0) return mae_errf(err, "--stop_after_epochs must be >= 0");
    if (o->recon_images < 0 || o->recon_images > 64) return mae_errf(err, "--recon_images must be in [0, 64]");
    if (o->recon_scale < 1 || o->recon_scale > 32) return mae_errf(err, "--recon_scale must be in [1, 32]");
    if (o->threads < 0) return mae_errf(err, "--threads must be >= 0");
    if (strcmp(o->device, "cpu") != 0)
        return mae_errf(err, "--device: '%s' is not available (this build has: cpu)", o->device);
    return mae_train_config_validate(&o->tc, err);
}

static void state_path(char *out, size_t cap, const char *weights) {
    size_t n = strlen(weights);
    const char *ext = ".safetensors";
    size_t e = strlen(ext);
    if (n > e && strcmp(weights + n - e, ext) == 0)
        snprintf(out, cap, "%.*s.state.safetensors", (int)(n - e), weights);
    else
        snprintf(out, cap, "%s.state.safetensors", weights);
}

/* weights first, then state; both atomic. Resume checks that their epochs agree. */
static int save_pair(const mae_trainer *t, const mae_model *m, const char *dir, const char *tag,
                     int epoch, mae_error *err) {
    char w[4096], st[4200], ep[32];
    snprintf(w, sizeof w, "%s/checkpoint-%s.safetensors", dir, tag);
    state_path(st, sizeof st, w);
    snprintf(ep, sizeof ep, "%d", epoch);
    const char *meta[] = {"epoch", ep};
    if (mae_model_save_meta(m, w, meta, 1, err) != MAE_OK) return MAE_ERR;
    return mae_trainer_save_state(t, st, epoch, err);
}

static int resume_from(mae_trainer *t, mae_model *m, const char *path, int *start_epoch,
                       mae_error *err) {
    char st[4200], ep[64];
    state_path(st, sizeof st, path);
    int epoch = -1;
    if (mae_model_load(m, path, err) != MAE_OK) return MAE_ERR;
    if (mae_trainer_load_state(t, st, &epoch, err) != MAE_OK) return MAE_ERR;
    if (mae_file_meta(path, "epoch", ep, sizeof ep, err) != MAE_OK) return MAE_ERR;
    if (strcmp(ep, "") != 0 && atoi(ep) != epoch)
        return mae_errf(err, "--resume: %s is from epoch %s but %s is from epoch %d", path, ep, st, epoch);
    *start_epoch = epoch + 1;
    return MAE_OK;
}

static void fmt_eta(char *buf, size_t cap, double s) {
    long x = s > 0 && s < 1e9 ? (long)s : 0;
    snprintf(buf, cap, "%ld:%02ld:%02ld", x / 3600, x / 60 % 60, x % 60);
}

static int write_recon(const pretrain_opts *o, mae_model *m, mae_dataset *train, mae_error *err) {
    const mae_config *c = mae_model_config(m);
    int n = o->recon_images < mae_model_max_batch(m) ? o->recon_images : mae_model_max_batch(m);
    mae_error e2;
    mae_dataset *test = o->data_path ? NULL : mae_dataset_mnist_dir(NULL, 0, c->in_chans, &e2);
    mae_dataset *ds = test ? test : train;
    if (n > ds->n) n = ds->n;
    int L = mae_config_num_patches(c), P = mae_config_patch_dim(c);
    size_t npix = (size_t)c->in_chans * c->img_size * c->img_size;
    float *imgs = mae_xmalloc(sizeof(float) * n * npix), *noise = mae_xmalloc(sizeof(float) * n * L);
    float *pred = mae_xmalloc(sizeof(float) * n * L * P), *mask = mae_xmalloc(sizeof(float) * n * L);
    int64_t idx[64];
    uint64_t ids[64];
    for (int i = 0; i < n; i++) idx[i] = ids[i] = (uint64_t)i;
    int rc = mae_dataset_batch(ds, idx, n, 0, o->tc.seed, imgs, NULL, err);
    float loss = 0;
    if (rc == MAE_OK) {
        mae_make_noise(noise, n, L, mae_hash4(o->tc.seed, 0x7265636f6eull, 0, 0), ids);
        rc = mae_forward(m, imgs, noise, n, -1.0, &loss, err);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/reconstruction.png", o->output_dir);
    if (rc == MAE_OK) {
        mae_get_pred(m, pred);
        mae_get_mask(m, mask);
        rc = mae_write_recon_grid(path, c, imgs, pred, mask, n, o->recon_scale, err);
    }
    if (rc == MAE_OK)
        printf("reconstruction of %d %s images (loss %.4f): %s\n", n, test ? "test" : "training",
               (double)loss, path);
    mae_dataset_free(test);
    free(imgs);
    free(noise);
    free(pred);
    free(mask);
    return rc;
}

static int train_loop(const pretrain_opts *o, mae_trainer *t, mae_model *m, mae_dataset *ds,
                      int start_epoch, FILE *log, mae_error *err) {
    const mae_config *c = mae_model_config(m);
    const mae_train_config *tc = &o->tc;
    int B = tc->batch_size, L = mae_config_num_patches(c);
    int64_t steps = ds->n / B; /* drop_last, as the official DataLoader */
    size_t npix = (size_t)c->in_chans * c->img_size * c->img_size;
    float *imgs = mae_xmalloc(sizeof(float) * B * npix), *noise = mae_xmalloc(sizeof(float) * B * L);
    int64_t *perm = mae_xmalloc(sizeof(int64_t) * ds->n);
    uint64_t *ids = mae_xmalloc(sizeof(uint64_t) * B);
    int rc = MAE_OK, end = tc->epochs;
    if (o->stop_after_epochs > 0 && start_epoch + o->stop_after_epochs < end)
        end = start_epoch + o->stop_after_epochs;
    double t_start = cli_now();
    int64_t done = 0, total = (int64_t)(end - start_epoch) * steps;
    for (int epoch = start_epoch; epoch < end && rc == MAE_OK; epoch++) {
        mae_epoch_permutation(perm, ds->n, tc->seed, epoch);
        double sum = 0, t_win = cli_now();
        uint64_t noise_seed = mae_hash4(tc->seed, (uint64_t)epoch, 0x6e6f697365ull, 0);
        for (int64_t it = 0; it < steps && rc == MAE_OK; it++) {
            rc = mae_dataset_batch(ds, perm + it * B, B, epoch, tc->seed, imgs, NULL, err);
            if (rc != MAE_OK) break;
            for (int b = 0; b < B; b++) ids[b] = (uint64_t)perm[it * B + b];
            mae_make_noise(noise, B, L, noise_seed, ids);
            float loss;
            rc = mae_trainer_step(t, imgs, noise, B, (double)it / steps + epoch, &loss, err);
            if (rc != MAE_OK) break;
            sum += loss;
            done++;
            if ((it + 1) % o->print_freq == 0 || it + 1 == steps) {
                double now = cli_now(), ips = (double)B * ((it % o->print_freq) + 1) / (now - t_win);
                char eta[32];
                fmt_eta(eta, sizeof eta, (now - t_start) / done * (total - done));
                printf("epoch %d/%d step %lld/%lld loss %.4f lr %.3e img/s %.1f ETA %s\n", epoch + 1,
                       tc->epochs, (long long)it + 1, (long long)steps, (double)loss,
                       mae_trainer_lr(t), ips, eta);
                fflush(stdout);
                fprintf(log, "{\"type\":\"step\",\"epoch\":%d,\"step\":%lld,\"update\":%lld,\"loss\":%.9g,"
                             "\"lr\":%.9g,\"img_per_s\":%.2f}\n", epoch, (long long)it,
                        (long long)mae_trainer_num_updates(t), (double)loss, mae_trainer_lr(t), ips);
                fflush(log);
                t_win = now;
            }
        }
        if (rc != MAE_OK) break;
        fprintf(log, "{\"type\":\"epoch\",\"epoch\":%d,\"train_loss\":%.9g,\"train_lr\":%.9g}\n",
                epoch, sum / (steps > 0 ? steps : 1), mae_trainer_lr(t));
        fflush(log);
        rc = save_pair(t, m, o->output_dir, "last", epoch, err);
        if (rc == MAE_OK && ((epoch + 1) % o->save_every == 0 || epoch + 1 == tc->epochs)) {
            char tag[32];
            snprintf(tag, sizeof tag, "%d", epoch);
            rc = save_pair(t, m, o->output_dir, tag, epoch, err);
        }
    }
    free(imgs);
    free(noise);
    free(perm);
    free(ids);
    return rc;
}

int cmd_pretrain(int argc, char **argv) {
    pretrain_opts o = {.mf = {.model = "tiny-28"}, .output_dir = "./output_dir", .device = "cpu",
                       .save_every = 20, .print_freq = 20, .recon_images = 8, .recon_scale = 4};
    mae_train_config_default(&o.tc);
    arg_spec s[CLI_MODEL_NFLAGS + N_EXTRA];
    mae_error err = {{0}};
    int rc = parse(&o, s, argc, argv, &err);
    if (rc == 1) {
        args_help(s, CLI_MODEL_NFLAGS + N_EXTRA, "pretrain",
                  "MAE pretraining (main_pretrain.py). Default data: Fashion-MNIST, model tiny-28.");
        return 0;
    }
    mae_config cfg;
    if (rc == MAE_OK) rc = check_opts(&o, &err);
    /* on --resume the architecture comes from the checkpoint unless flags give it (then the
     * load checks that they agree) */
    int arch_flags = 0;
    for (int i = 0; i < CLI_MODEL_NFLAGS; i++)
        if (s[i].seen && strcmp(s[i].name, "mask_ratio") && strcmp(s[i].name, "norm_pix_loss")) arch_flags++;
    const char *model_name = arch_flags ? o.mf.model : "(from checkpoint)";
    if (rc == MAE_OK) {
        if (o.resume && !arch_flags)
            rc = mae_checkpoint_config(o.resume, 0, 0, &cfg, &err);
        else
            rc = cli_model_config(s, &o.mf, &cfg, &err);
        if (rc == MAE_OK && args_find(s, CLI_MODEL_NFLAGS, "mask_ratio")->seen) cfg.mask_ratio = o.mf.mask_ratio;
        if (rc == MAE_OK && o.mf.norm_pix_loss) cfg.norm_pix_loss = 1;
        if (rc == MAE_OK) rc = mae_config_validate(&cfg, &err);
    }
    if (rc != MAE_OK) {
        fprintf(stderr, "mae pretrain: %s\n", err.msg);
        return 2;
    }
    if (o.threads > 0) mae_set_num_threads(o.threads);
    mae_dataset *ds = mae_dataset_mnist_dir(o.data_path, 1, cfg.in_chans, &err);
    if (!ds) {
        fprintf(stderr, "mae pretrain: --data_path: %s\n", err.msg);
        return 1;
    }
    if (o.num_samples > 0) mae_dataset_limit(ds, o.num_samples);
    if (ds->H != cfg.img_size || ds->W != cfg.img_size || ds->C != cfg.in_chans) {
        fprintf(stderr, "mae pretrain: the data has %dx%dx%d images but the model expects "
                        "%dx%dx%d (--input_size / --in_chans)\n", ds->C, ds->H, ds->W,
                cfg.in_chans, cfg.img_size, cfg.img_size);
        mae_dataset_free(ds);
        return 2;
    }
    if (ds->n < o.tc.batch_size) {
        fprintf(stderr, "mae pretrain: %d images is fewer than one batch (--batch_size %d)\n",
                ds->n, o.tc.batch_size);
        mae_dataset_free(ds);
        return 2;
    }
    mae_model *m = NULL;
    mae_trainer *t = NULL;
    FILE *log = NULL;
    int start_epoch = 0, code = 1;
    char logpath[4096];
    snprintf(logpath, sizeof logpath, "%s/log.jsonl", o.log_dir ? o.log_dir : o.output_dir);
    if (!(m = mae_model_create(&cfg, o.tc.batch_size, o.device, &err))) goto fail;
    mae_model_init(m, o.tc.seed);
    if (!(t = mae_trainer_create(m, &o.tc, &err))) goto fail;
    if (o.resume && resume_from(t, m, o.resume, &start_epoch, &err) != MAE_OK) goto fail;
    if (start_epoch >= o.tc.epochs) {
        fprintf(stderr, "mae pretrain: %s already finished epoch %d of --epochs %d; nothing to "
                        "train (raise --epochs to continue)\n", o.resume, start_epoch - 1, o.tc.epochs);
        code = 0;
        goto done;
    }
    if (cli_mkdirs(o.output_dir, &err) || (o.log_dir && cli_mkdirs(o.log_dir, &err))) goto fail;
    if (!(log = fopen(logpath, o.resume ? "a" : "w"))) {
        mae_errf(&err, "cannot open log file '%s'", logpath);
        goto fail;
    }
    printf("%s\nmodel %s: %.2fM trainable params, %d patches, %d visible; batch %d x accum %d, "
           "lr %.3e (blr %.3e), epochs %d (warmup %g), from epoch %d, threads %d\n",
           ds->desc, model_name, mae_num_params(m, 1) / 1e6, mae_config_num_patches(&cfg),
           mae_config_len_keep(&cfg), o.tc.batch_size, o.tc.accum_iter,
           mae_train_effective_lr(&o.tc), o.tc.blr, o.tc.epochs, o.tc.warmup_epochs,
           start_epoch, mae_get_num_threads());
    rc = train_loop(&o, t, m, ds, start_epoch, log, &err);
    if (rc == MAE_ERR_NONFINITE) {
        char last[4096];
        snprintf(last, sizeof last, "%s/checkpoint-last.safetensors", o.output_dir);
        FILE *f = fopen(last, "rb");
        if (f) fclose(f);
        if (f)
            fprintf(stderr, "mae pretrain: %s; the last good checkpoint %s is kept\n", err.msg, last);
        else
            fprintf(stderr, "mae pretrain: %s; no checkpoint had been written yet\n", err.msg);
        code = 3;
        goto done;
    }
    if (rc != MAE_OK) goto fail;
    if (o.recon_images > 0 && write_recon(&o, m, ds, &err) != MAE_OK) goto fail;
    code = 0;
    goto done;
fail:
    fprintf(stderr, "mae pretrain: %s\n", err.msg);
done:
    if (log) fclose(log);
    mae_trainer_free(t);
    mae_model_free(m);
    mae_dataset_free(ds);
    return code;
}
