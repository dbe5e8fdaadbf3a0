/* pretrain.c - `mae pretrain`: main_pretrain.py's flags (names and defaults), the linear lr
 * scaling rule, the dataset and loader, resume, and the final reconstruction picture. The
 * epoch loop is in pretrain_loop.c. */
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "io/checkpoint.h"
#include "io/visualize.h"
#include "dist/dist.h"
#include "pretrain.h"
#include "rng.h"

#define N_EXTRA 32

static int parse(pretrain_opts *o, arg_spec *s, int argc, char **argv, mae_error *err) {
    cli_model_specs(s, &o->mf);
    mae_train_config *tc = &o->tc;
    arg_spec extra[N_EXTRA] = {
        {"batch_size", ARG_INT, &tc->batch_size,
         "batch size per process (effective batch = batch_size * accum_iter * processes)", 0},
        {"epochs", ARG_INT, &tc->epochs, "epochs to train", 0},
        {"accum_iter", ARG_INT, &tc->accum_iter, "gradient accumulation iterations", 0},
        {"weight_decay", ARG_DOUBLE, &tc->weight_decay, "AdamW weight decay", 0},
        {"lr", ARG_DOUBLE, &tc->lr, "absolute lr (default: blr * effective batch / 256)", 0},
        {"blr", ARG_DOUBLE, &tc->blr, "base lr: absolute lr = blr * effective batch / 256", 0},
        {"min_lr", ARG_DOUBLE, &tc->min_lr, "lower lr bound of the cosine schedule", 0},
        {"warmup_epochs", ARG_DOUBLE, &tc->warmup_epochs, "epochs of linear lr warmup", 0},
        {"data_path", ARG_STR, &o->data_path,
         "ImageFolder tree (or its parent with train/), flat image folder, list file, MNIST IDX "
         "or CIFAR binary data (default: Fashion-MNIST in " MAE_FASHION_MNIST_DIR ")", 0},
        {"output_dir", ARG_STR, &o->output_dir, "checkpoints, log.txt and pictures", 0},
        {"log_dir", ARG_STR, &o->log_dir, "where steps.jsonl goes (default: --output_dir)", 0},
        {"device", ARG_STR, &o->device, CLI_DEVICE_HELP, 0},
        {"precision", ARG_STR, &o->precision,
         "matmul precision of the Linear layers: fp32 or bf16 (on the CPU bf16 needs "
         "AVX512_BF16; not stored in checkpoints, so a run may resume with another) (default: "
         "bf16 on cuda, fp32 on cpu)", 0},
        {"seed", ARG_U64, &tc->seed, "seed of init, data order, crops and masks", 0},
        {"resume", ARG_STR, &o->resume,
         "checkpoint-*.safetensors to resume from (its .state.safetensors beside it)", 0},
        {"start_epoch", ARG_INT, &o->start_epoch, "start epoch (when not resuming)", 0},
        {"num_workers", ARG_INT, &o->num_workers,
         "data loader threads (decode + augment, overlapping compute; 0 = in the training thread)", 0},
        {"pin_mem", ARG_FLAG, &o->pin_mem, "accepted for compatibility (no effect on cpu)", 0},
        {"no_pin_mem", ARG_FLAG, &o->no_pin_mem, "accepted for compatibility (no effect on cpu)", 0},
        {"world_size", ARG_INT, &tc->world_size,
         "number of processes; it is the job's (mpirun -np N, srun), so this only checks it", 0},
        {"local_rank", ARG_INT, &o->local_rank, "accepted for compatibility", 0},
        {"dist_on_itp", ARG_FLAG, &o->dist_on_itp, "accepted for compatibility", 0},
        {"dist_url", ARG_STR, &o->dist_url, "accepted for compatibility", 0},
        /* ours */
        {"strict", ARG_FLAG, &o->strict, "stop at the first bad image file instead of skipping it", 0},
        {"save_every", ARG_INT, &o->save_every, "keep checkpoint-<epoch> every N epochs (and the last)", 0},
        {"print_freq", ARG_INT, &o->print_freq, "progress line every N steps when not on a terminal", 0},
        {"num_samples", ARG_INT, &o->num_samples, "use only the first N samples (0 = all)", 0},
        {"stop_after_epochs", ARG_INT, &o->stop_after_epochs,
         "end this run after N epochs, schedule unchanged (0 = run to --epochs)", 0},
        {"recon_images", ARG_INT, &o->recon_images, "images in the final reconstruction.png (0 = none)", 0},
        {"recon_scale", ARG_INT, &o->recon_scale, "pixel scale of reconstruction.png", 0},
        {"threads", ARG_INT, &o->threads, "compute threads (0 = all cores)", 0},
        {"dct_scaling", ARG_INT, &o->dct_scaling,
         "1: decode JPEGs at the smallest DCT scale that covers the crop; 0: always full size", 0},
    };
    memcpy(s + CLI_MODEL_NFLAGS, extra, sizeof extra);
    return args_parse(s, CLI_MODEL_NFLAGS + N_EXTRA, argc, argv, 2, "pretrain", err);
}

static int check_opts(const pretrain_opts *o, mae_error *err) {
    if (o->num_samples < 0) return mae_errf(err, "--num_samples must be >= 0");
    if (o->save_every < 1) return mae_errf(err, "--save_every must be >= 1");
    if (o->print_freq < 1) return mae_errf(err, "--print_freq must be >= 1");
    if (o->stop_after_epochs < 0) return mae_errf(err, "--stop_after_epochs must be >= 0");
    if (o->start_epoch < 0) return mae_errf(err, "--start_epoch must be >= 0");
    if (o->num_workers < 0 || o->num_workers > 256)
        return mae_errf(err, "--num_workers must be in [0, 256], got %d", o->num_workers);
    if (o->dct_scaling != 0 && o->dct_scaling != 1) return mae_errf(err, "--dct_scaling must be 0 or 1");
    if (o->recon_images < 0 || o->recon_images > 64) return mae_errf(err, "--recon_images must be in [0, 64]");
    if (o->recon_scale < 1 || o->recon_scale > 32) return mae_errf(err, "--recon_scale must be in [1, 32]");
    if (o->threads < 0) return mae_errf(err, "--threads must be >= 0");
    if (cli_check_device(o->device, err) != MAE_OK) return MAE_ERR;
    /* a typo fails before the data is read; whether this machine can run it is
     * mae_model_set_precision's answer once the model exists */
    if (strcmp(o->precision, "fp32") != 0 && strcmp(o->precision, "bf16") != 0)
        return mae_errf(err, "--precision must be fp32 or bf16, got '%s'", o->precision);
    return mae_train_config_validate(&o->tc, err);
}

/* The training data (or, train == 0, the held-out split) through the official augmentation
 * (augment != 0) or a plain resize, at the model's input size and channels. */
static mae_dataset *open_data(const pretrain_opts *o, const mae_config *cfg, int train,
                              int augment, mae_error *err) {
    mae_source *src = cli_open_source(o->data_path, train, err);
    if (!src) return NULL;
    mae_image_opts io;
    mae_image_opts_default(&io, cfg->img_size, cfg->in_chans);
    io.augment = augment ? MAE_AUG_PRETRAIN : MAE_AUG_NONE;
    io.dct_scaling = o->dct_scaling;
    return mae_dataset_images(src, &io, err);
}

/* Up to n good images (bad files skipped), not augmented, for the reconstruction picture. */
static int recon_batch(mae_dataset *ds, int n, uint64_t seed, float *imgs, uint64_t *ids,
                       mae_error *err) {
    size_t per = (size_t)ds->C * ds->H * ds->W;
    mae_data_ws ws;
    memset(&ws, 0, sizeof ws);
    int got = 0;
    for (int64_t i = 0; i < ds->n && got < n; i++) {
        int rc = mae_dataset_get(ds, i, 0, seed, imgs + (size_t)got * per, NULL, &ws, err);
        if (rc == MAE_OK) ids[got++] = (uint64_t)i;
        else if (rc != MAE_ERR_DATA) {
            got = -1;
            break;
        }
    }
    mae_data_ws_release(&ws);
    return got;
}

static int write_recon(const pretrain_opts *o, mae_model *m, mae_error *err) {
    const mae_config *c = mae_model_config(m);
    int n = o->recon_images < mae_model_max_batch(m) ? o->recon_images : mae_model_max_batch(m);
    mae_error e2;
    /* the held-out split when there is one (val/ beside train/, t10k, test_batch), else the
     * training images (not augmented) */
    const char *root = cli_data_root(o->data_path);
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/train", root);
    struct stat st;
    int split = mae_source_idx_probe(root) || mae_source_cifar_probe(root) ||
                (stat(sub, &st) == 0 && S_ISDIR(st.st_mode));
    mae_dataset *ds = split ? open_data(o, c, 0, 0, &e2) : NULL;
    int held_out = ds != NULL;
    if (!ds && !(ds = open_data(o, c, 1, 0, err))) return MAE_ERR;
    int L = mae_config_num_patches(c), P = mae_config_patch_dim(c);
    size_t npix = (size_t)c->in_chans * c->img_size * c->img_size;
    float *imgs = mae_xmalloc(sizeof(float) * n * npix), *noise = mae_xmalloc(sizeof(float) * n * L);
    float *pred = mae_xmalloc(sizeof(float) * n * L * P), *mask = mae_xmalloc(sizeof(float) * n * L);
    uint64_t ids[64];
    int got = recon_batch(ds, n, o->tc.seed, imgs, ids, err), rc = MAE_OK;
    float loss = 0;
    if (got < 0) rc = MAE_ERR;
    else if (got == 0) rc = mae_errf(err, "no decodable image for the reconstruction picture");
    if (rc == MAE_OK) {
        mae_make_noise(noise, got, L, mae_hash4(o->tc.seed, 0x7265636f6eull, 0, 0), ids);
        rc = mae_forward(m, imgs, noise, got, -1.0, &loss, err);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/reconstruction.png", o->output_dir);
    if (rc == MAE_OK) {
        mae_get_pred(m, pred);
        mae_get_mask(m, mask);
        rc = mae_write_recon_grid(path, c, imgs, pred, mask, got, o->recon_scale, err);
    }
    if (rc == MAE_OK)
        printf("reconstruction of %d %s images (loss %.4f): %s\n", got,
               held_out ? "held-out" : "training", (double)loss, path);
    mae_dataset_free(ds);
    free(imgs);
    free(noise);
    free(pred);
    free(mask);
    return rc;
}

static int resume_from(pretrain_run *r, const char *path, mae_error *err) {
    char st[4200], ep[64], stp[64];
    pretrain_state_path(st, sizeof st, path);
    int epoch = -1;
    int64_t step = 0;
    if (mae_model_load(r->m, path, err) != MAE_OK) return MAE_ERR;
    if (mae_trainer_load_state(r->t, st, &epoch, &step, err) != MAE_OK) return MAE_ERR;
    if (mae_file_meta(path, "resume_epoch", ep, sizeof ep, err) != MAE_OK ||
        mae_file_meta(path, "resume_step", stp, sizeof stp, err) != MAE_OK)
        return MAE_ERR;
    if (strcmp(ep, "") != 0 && (atoi(ep) != epoch || atoll(stp) != step))
        return mae_errf(err, "--resume: %s is from epoch %s step %s but %s is from epoch %d step %lld",
                        path, ep, stp, st, epoch, (long long)step);
    /* mid-epoch, saved by a job of another size (ranks x batch): the same point in the epoch's
     * order, counted in samples, if it falls on a step boundary of this job */
    char smp[64] = "";
    if (step > 0 && mae_file_meta(path, "resume_samples", smp, sizeof smp, err) != MAE_OK)
        return MAE_ERR;
    if (step > 0 && smp[0]) {
        long long samples = atoll(smp), per = (long long)r->o->tc.batch_size * r->world;
        if (samples != step * per) {
            if (samples % per != 0)
                return mae_errf(err, "--resume: %s stopped %lld samples into epoch %d, which is "
                                     "not a whole number of this job's steps (%d rank%s x "
                                     "batch_size %d); resume from an end-of-epoch checkpoint, "
                                     "or with a world size and batch size that divide it",
                                path, samples, epoch, r->world, r->world == 1 ? "" : "s",
                                r->o->tc.batch_size);
            step = samples / per;
        }
    }
    if (step > mae_loader_steps(r->loader))
        return mae_errf(err, "--resume: %s stopped at step %lld of epoch %d, but an epoch of this "
                             "data has only %lld steps (different data or --batch_size?)",
                        path, (long long)step, epoch, (long long)mae_loader_steps(r->loader));
    if (step == mae_loader_steps(r->loader)) epoch++, step = 0;
    r->start_epoch = epoch;
    r->start_step = step;
    return MAE_OK;
}

static void print_config(const pretrain_opts *o, const arg_spec *s, int ns, const char *model_name,
                         const mae_model *m, const pretrain_run *r) {
    const mae_config *c = mae_model_config(m);
    printf("mae pretrain %s; config:\n", MAE_VERSION_STRING);
    args_print_values(s, ns, stdout);
    printf("data: %s\n", r->ds->desc);
    printf("model %s: %.2fM trainable params, input %dx%dx%d, %d patches, %d visible (mask_ratio "
           "%g), norm_pix_loss %d, precision %s\n", model_name, mae_num_params(m, 1) / 1e6,
           c->in_chans, c->img_size, c->img_size, mae_config_num_patches(c),
           mae_config_len_keep(c), c->mask_ratio, c->norm_pix_loss,
           mae_model_precision(m) == MAE_PREC_BF16 ? "bf16" : "fp32");
    int eff = o->tc.batch_size * o->tc.accum_iter * o->tc.world_size;
    double lr = mae_train_effective_lr(&o->tc);
    printf("base lr: %.2e\nactual lr: %.2e\naccumulate grad iterations: %d\neffective batch size: %d\n",
           lr * 256 / eff, lr, o->tc.accum_iter, eff);
    printf("epochs %d (warmup %g, min_lr %g), weight_decay %g, seed %llu; %lld steps per epoch; "
           "from epoch %d%s; threads %d, num_workers %d\n", o->tc.epochs, o->tc.warmup_epochs,
           o->tc.min_lr, o->tc.weight_decay, (unsigned long long)o->tc.seed,
           (long long)mae_loader_steps(r->loader), r->start_epoch,
           r->start_step ? " (mid-epoch)" : "", mae_get_num_threads(), o->num_workers);
    if (r->start_step) printf("resuming epoch %d at step %lld\n", r->start_epoch, (long long)r->start_step);
    fflush(stdout);
}

/* The architecture: from the checkpoint on --resume unless architecture flags are given (then
 * loading checks that they agree), else --model plus overrides. */
static int model_config(const pretrain_opts *o, const arg_spec *s, mae_config *cfg,
                        const char **model_name, mae_error *err) {
    int arch_flags = 0;
    for (int i = 0; i < CLI_MODEL_NFLAGS; i++)
        if (s[i].seen && strcmp(s[i].name, "mask_ratio") && strcmp(s[i].name, "norm_pix_loss")) arch_flags++;
    *model_name = arch_flags || !o->resume ? o->mf.model : "(from checkpoint)";
    int rc = o->resume && !arch_flags ? mae_checkpoint_config(o->resume, 0, 0, cfg, err)
                                      : cli_model_config(s, &o->mf, cfg, err);
    if (rc != MAE_OK) return rc;
    if (args_find(s, CLI_MODEL_NFLAGS, "mask_ratio")->seen) cfg->mask_ratio = o->mf.mask_ratio;
    if (o->mf.norm_pix_loss) cfg->norm_pix_loss = 1;
    return mae_config_validate(cfg, err);
}

static int open_logs(pretrain_run *r, mae_error *err) {
    const pretrain_opts *o = r->o;
    const char *ld = o->log_dir ? o->log_dir : o->output_dir;
    if (cli_mkdirs(o->output_dir, err) || cli_mkdirs(ld, err)) return MAE_ERR;
    char p1[4096], p2[4096];
    snprintf(p1, sizeof p1, "%s/log.txt", o->output_dir);
    snprintf(p2, sizeof p2, "%s/steps.jsonl", ld);
    const char *mode = o->resume ? "a" : "w";
    if (!(r->log_epochs = fopen(p1, mode))) return mae_errf(err, "cannot open log file '%s'", p1);
    if (!(r->log_steps = fopen(p2, mode))) return mae_errf(err, "cannot open log file '%s'", p2);
    return MAE_OK;
}

int cmd_pretrain(int argc, char **argv) {
    pretrain_opts o = {.mf = {.model = "mae_vit_large_patch16"}, .output_dir = "./output_dir",
                       .device = "cpu", .dist_url = "env://", .precision = NULL,
                       .num_workers = 10, .pin_mem = 1, .local_rank = -1, .save_every = 20,
                       .print_freq = 20, .recon_images = 8, .recon_scale = 4, .dct_scaling = 1};
    mae_train_config_default(&o.tc);
    enum { NS = CLI_MODEL_NFLAGS + N_EXTRA };
    arg_spec s[NS];
    mae_error err = {{0}};
    int rc = parse(&o, s, argc, argv, &err);
    if (rc == 1) {
        args_help(s, NS, "pretrain",
                  "MAE pretraining with main_pretrain.py's flags and defaults. Without --data_path it "
                  "trains on Fashion-MNIST (" MAE_FASHION_MNIST_DIR ").");
        return 0;
    }
    if (!o.precision) o.precision = cli_default_precision(o.device);
    mae_config cfg;
    const char *model_name = o.mf.model;
    if (rc == MAE_OK && args_find(s, NS, "world_size")->seen && o.tc.world_size != mae_dist_world())
        rc = mae_errf(&err, "--world_size %d, but this job has %d process%s (the launcher's: "
                            "mpirun -np N or srun)", o.tc.world_size, mae_dist_world(),
                      mae_dist_world() == 1 ? "" : "es");
    o.tc.world_size = mae_dist_world(); /* the effective batch and lr rule count every rank */
    if (rc == MAE_OK) rc = check_opts(&o, &err);
    if (rc == MAE_OK) rc = model_config(&o, s, &cfg, &model_name, &err);
    if (rc != MAE_OK) {
        if (mae_dist_rank() == 0) fprintf(stderr, "mae pretrain: %s\n", err.msg);
        return 2;
    }
    /* the model flags now show the values in use (for the config print) */
    o.mf.input_size = cfg.img_size, o.mf.patch_size = cfg.patch_size, o.mf.in_chans = cfg.in_chans;
    o.mf.embed_dim = cfg.embed_dim, o.mf.depth = cfg.depth, o.mf.num_heads = cfg.num_heads;
    o.mf.decoder_embed_dim = cfg.decoder_embed_dim, o.mf.decoder_depth = cfg.decoder_depth;
    o.mf.decoder_num_heads = cfg.decoder_num_heads, o.mf.mlp_ratio = cfg.mlp_ratio;
    o.mf.mask_ratio = cfg.mask_ratio, o.mf.norm_pix_loss = cfg.norm_pix_loss;
    if (o.threads > 0) mae_set_num_threads(o.threads);
    pretrain_run r = {.o = &o, .start_epoch = o.start_epoch, .rank = mae_dist_rank(),
                      .world = mae_dist_world()};
    int code = 1;
    if (!(r.ds = open_data(&o, &cfg, 1, 1, &err))) goto fail;
    if (o.num_samples > 0) mae_dataset_limit(r.ds, o.num_samples);
    mae_loader_config lc;
    mae_loader_config_default(&lc, o.tc.batch_size);
    lc.num_workers = o.num_workers;
    lc.seed = o.tc.seed;
    lc.strict = o.strict;
    cli_pinned_batches(&lc, o.device);
    lc.rank = r.rank; /* a disjoint shard of each epoch's order (DistributedSampler) */
    lc.world_size = r.world;
    if (!(r.loader = mae_loader_create(r.ds, &lc, &err))) goto fail;
    if (mae_loader_check_first(r.loader, &err) != MAE_OK) goto fail;
    if (!(r.m = mae_model_create(&cfg, o.tc.batch_size, o.device, &err))) goto fail;
    /* a usage error (exit 2) before any training, e.g. bf16 without AVX512_BF16 */
    if (mae_model_set_precision(r.m, o.precision, &err) != MAE_OK) {
        code = 2;
        goto fail;
    }
    mae_model_init(r.m, o.tc.seed);
    if (!(r.t = mae_trainer_create(r.m, &o.tc, &err))) goto fail;
    {
        mae_grad_sync gs;
        if (mae_dist_grad_sync(&gs, o.device, &err) != MAE_OK ||
            mae_trainer_set_grad_sync(r.t, &gs, &err) != MAE_OK)
            goto fail;
        if (r.world == 1 && gs.finish)
            printf("gradient sync: NCCL in a world of 1 (MAE_DIST_FORCE_SYNC=1)\n");
    }
    if (o.resume && resume_from(&r, o.resume, &err) != MAE_OK) goto fail;
    if (r.start_epoch >= o.tc.epochs) {
        fprintf(stderr, "mae pretrain: %s already finished epoch %d of --epochs %d; nothing to "
                        "train (raise --epochs to continue)\n",
                o.resume ? o.resume : "--start_epoch", r.start_epoch - 1, o.tc.epochs);
        code = 0;
        goto done;
    }
    if (r.rank == 0) {
        if (open_logs(&r, &err) != MAE_OK) goto fail;
        print_config(&o, s, NS, model_name, r.m, &r);
        if (r.world > 1)
            printf("data parallel: %d processes (MPI), %s gradients, effective batch %d\n",
                   r.world, strcmp(o.device, "cuda") == 0 ? "NCCL" : "MPI",
                   o.tc.batch_size * o.tc.accum_iter * r.world);
    }
    rc = pretrain_loop(&r, &err);
    if (rc == PRETRAIN_INTERRUPTED) {
        code = PRETRAIN_INTERRUPTED;
        goto done;
    }
    if (rc == MAE_ERR_NONFINITE && r.world > 1) goto fail;
    if (rc == MAE_ERR_NONFINITE) {
        char last[4096];
        snprintf(last, sizeof last, "%s/checkpoint-last.safetensors", o.output_dir);
        struct stat st;
        if (stat(last, &st) == 0)
            fprintf(stderr, "mae pretrain: %s; the last good checkpoint %s is kept\n", err.msg, last);
        else
            fprintf(stderr, "mae pretrain: %s; no checkpoint had been written yet\n", err.msg);
        code = 3;
        goto done;
    }
    if (rc != MAE_OK) goto fail;
    if (r.rank == 0 && o.recon_images > 0 && write_recon(&o, r.m, &err) != MAE_OK) goto fail;
    code = 0;
    goto done;
fail:
    if (r.world > 1) { /* the other ranks would wait in the next all-reduce: end the job */
        char msg[600];
        snprintf(msg, sizeof msg, "mae pretrain: %s", err.msg);
        mae_dist_abort(msg, code);
    }
    fprintf(stderr, "mae pretrain: %s\n", err.msg);
done:
    if (r.log_epochs) fclose(r.log_epochs);
    if (r.log_steps) fclose(r.log_steps);
    mae_loader_free(r.loader);
    mae_trainer_free(r.t);
    mae_model_free(r.m);
    mae_dataset_free(r.ds);
    return code;
}
