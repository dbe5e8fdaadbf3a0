/* finetune.c - `mae finetune` (main_finetune.py), `mae linprobe` (main_linprobe.py) and
 * `mae eval`: flags with the official names and defaults, the model from a pretrained
 * checkpoint, the epoch loop with evaluation each epoch, and the best checkpoint kept. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "dist/dist.h"
#include "common.h"
#include "io/checkpoint.h"

#define N_EXTRA 50

static int parse(cls_opts *o, arg_spec *s, int argc, char **argv, const char *cmd,
                 mae_error *err) {
    cli_model_specs(s, &o->mf);
    mae_train_config *tc = &o->tc;
    arg_spec extra[N_EXTRA] = {
        {"batch_size", ARG_INT, &tc->batch_size, "batch size per process", 0},
        {"epochs", ARG_INT, &tc->epochs, "epochs to train", 0},
        {"accum_iter", ARG_INT, &tc->accum_iter, "gradient accumulation iterations", 0},
        {"weight_decay", ARG_DOUBLE, &tc->weight_decay, "weight decay", 0},
        {"lr", ARG_DOUBLE, &tc->lr, "absolute lr (default: blr * effective batch / 256)", 0},
        {"blr", ARG_DOUBLE, &tc->blr, "base lr: absolute lr = blr * effective batch / 256", 0},
        {"min_lr", ARG_DOUBLE, &tc->min_lr, "lower lr bound of the cosine schedule", 0},
        {"warmup_epochs", ARG_DOUBLE, &tc->warmup_epochs, "epochs of linear lr warmup", 0},
        {"layer_decay", ARG_DOUBLE, &tc->layer_decay, "layer-wise lr decay (finetune)", 0},
        {"clip_grad", ARG_DOUBLE, &tc->clip_grad, "clip the gradient norm to this (0 = off)", 0},
        {"drop_path", ARG_DOUBLE, &o->drop_path, "drop path rate (finetune)", 0},
        {"color_jitter", ARG_STR, &o->color_jitter, "not supported (official default None)", 0},
        {"aa", ARG_STR, &o->aa, "RandAugment policy (timm syntax; 'none' = off)", 0},
        {"smoothing", ARG_DOUBLE, &o->smoothing, "label smoothing", 0},
        {"reprob", ARG_DOUBLE, &o->reprob, "random erasing probability", 0},
        {"remode", ARG_STR, &o->remode, "random erasing mode (pixel)", 0},
        {"recount", ARG_INT, &o->recount, "random erasing count (1)", 0},
        {"resplit", ARG_FLAG, &o->resplit, "accepted for compatibility (no effect)", 0},
        {"mixup", ARG_DOUBLE, &o->mixup, "mixup alpha, active if > 0", 0},
        {"cutmix", ARG_DOUBLE, &o->cutmix, "cutmix alpha, active if > 0", 0},
        {"cutmix_minmax", ARG_STR, &o->cutmix_minmax, "not supported (official default None)", 0},
        {"mixup_prob", ARG_DOUBLE, &o->mixup_prob, "probability of mixup or cutmix per batch", 0},
        {"mixup_switch_prob", ARG_DOUBLE, &o->mixup_switch_prob,
         "probability of cutmix instead of mixup when both are on", 0},
        {"mixup_mode", ARG_STR, &o->mixup_mode, "how to apply mixup/cutmix (batch)", 0},
        {"finetune", ARG_STR, &o->finetune, "pretrained checkpoint to start from", 0},
        {"global_pool", ARG_FLAG, &o->global_pool, "classify the mean of the patch tokens (+ fc_norm)", 0},
        {"cls_token", ARG_FLAG, &o->cls_token, "classify the CLS token (+ norm) instead", 0},
        {"data_path", ARG_STR, &o->data_path,
         "train/ and val/ ImageFolder trees (or MNIST IDX / CIFAR data with their test split) "
         "(default: Fashion-MNIST in " MAE_FASHION_MNIST_DIR ")", 0},
        {"nb_classes", ARG_INT, &o->nb_classes, "number of classes (required)", 0},
        {"output_dir", ARG_STR, &o->output_dir, "checkpoints and log.txt", 0},
        {"log_dir", ARG_STR, &o->log_dir, "accepted for compatibility (log.txt is in --output_dir)", 0},
        {"device", ARG_STR, &o->device, CLI_DEVICE_HELP, 0},
        {"precision", ARG_STR, &o->precision,
         "matmul precision: fp32 or bf16 (default: bf16 on cuda, fp32 on cpu)", 0},
        {"seed", ARG_U64, &tc->seed, "seed of init, data order, augmentation and drop path", 0},
        {"resume", ARG_STR, &o->resume, "classifier checkpoint (with --eval: the one to evaluate)", 0},
        {"start_epoch", ARG_INT, &o->start_epoch, "accepted for compatibility", 0},
        {"eval", ARG_FLAG, &o->eval, "only evaluate --resume", 0},
        {"dist_eval", ARG_FLAG, &o->dist_eval, "accepted for compatibility", 0},
        {"num_workers", ARG_INT, &o->num_workers, "data loader threads", 0},
        {"pin_mem", ARG_FLAG, &o->pin_mem, "accepted for compatibility", 0},
        {"no_pin_mem", ARG_FLAG, &o->no_pin_mem, "accepted for compatibility", 0},
        {"world_size", ARG_INT, &tc->world_size,
         "number of processes; it is the job's (mpirun -np N, srun), so this only checks it", 0},
        {"local_rank", ARG_INT, &o->local_rank, "accepted for compatibility", 0},
        {"dist_on_itp", ARG_FLAG, &o->dist_on_itp, "accepted for compatibility", 0},
        {"dist_url", ARG_STR, &o->dist_url, "accepted for compatibility", 0},
        /* ours */
        {"num_samples", ARG_INT, &o->num_samples, "train on the first N samples only (0 = all)", 0},
        {"eval_samples", ARG_INT, &o->eval_samples, "evaluate the first N samples only (0 = all)", 0},
        {"threads", ARG_INT, &o->threads, "compute threads (0 = all cores)", 0},
        {"print_freq", ARG_INT, &o->print_freq, "progress line every N steps", 0},
        {"strict", ARG_FLAG, &o->strict, "stop at the first bad image file instead of skipping it", 0},
    };
    memcpy(s + CLI_MODEL_NFLAGS, extra, sizeof extra);
    return args_parse(s, CLI_MODEL_NFLAGS + N_EXTRA, argc, argv, 2, cmd, err);
}

static int check_opts(const cls_opts *o, const arg_spec *s, int ns, mae_error *err) {
    if (!args_find(s, ns, "nb_classes")->seen && !(o->eval && o->resume))
        return mae_errf(err, "--nb_classes is required (the number of classes of --data_path; "
                             "Fashion-MNIST has 10)");
    if (o->eval && !o->resume) return mae_errf(err, "--eval needs --resume CHECKPOINT");
    if (o->global_pool && o->cls_token)
        return mae_errf(err, "--global_pool and --cls_token exclude each other");
    if (o->color_jitter) return mae_errf(err, "--color_jitter is not supported (its official default is None)");
    if (o->cutmix_minmax) return mae_errf(err, "--cutmix_minmax is not supported (its official default is None)");
    if (strcmp(o->remode, "pixel") != 0) return mae_errf(err, "--remode: only 'pixel' is supported, got '%s'", o->remode);
    if (o->recount != 1) return mae_errf(err, "--recount: only 1 is supported, got %d", o->recount);
    if (strcmp(o->mixup_mode, "batch") != 0)
        return mae_errf(err, "--mixup_mode: only 'batch' is supported, got '%s'", o->mixup_mode);
    if (!(o->smoothing >= 0 && o->smoothing < 1)) return mae_errf(err, "--smoothing must be in [0, 1)");
    if (!(o->reprob >= 0 && o->reprob <= 1)) return mae_errf(err, "--reprob must be in [0, 1]");
    if (!(o->mixup >= 0) || !(o->cutmix >= 0)) return mae_errf(err, "--mixup and --cutmix must be >= 0");
    if (!(o->mixup_prob >= 0 && o->mixup_prob <= 1) || !(o->mixup_switch_prob >= 0 && o->mixup_switch_prob <= 1))
        return mae_errf(err, "--mixup_prob and --mixup_switch_prob must be in [0, 1]");
    if ((o->mixup > 0 || o->cutmix > 0) && o->tc.batch_size % 2)
        return mae_errf(err, "--mixup/--cutmix need an even --batch_size, got %d", o->tc.batch_size);
    if (o->num_samples < 0 || o->eval_samples < 0) return mae_errf(err, "--num_samples and --eval_samples must be >= 0");
    if (o->print_freq < 1) return mae_errf(err, "--print_freq must be >= 1");
    if (o->threads < 0) return mae_errf(err, "--threads must be >= 0");
    if (o->num_workers < 0 || o->num_workers > 256) return mae_errf(err, "--num_workers must be in [0, 256]");
    if (cli_check_device(o->device, err) != MAE_OK) return MAE_ERR;
    if (strcmp(o->precision, "fp32") != 0 && strcmp(o->precision, "bf16") != 0)
        return mae_errf(err, "--precision must be fp32 or bf16, got '%s'", o->precision);
    if (o->finetune && o->resume && !o->eval)
        return mae_errf(err, "give --finetune (start from a pretrained MAE) or --resume, not both");
    return mae_train_config_validate(&o->tc, err);
}

/* The encoder config: from --finetune's checkpoint (its metadata or its shapes) unless
 * architecture flags are given, else --model and the flags. --input_size may differ from the
 * checkpoint's (pos_embed is then interpolated). */
static int model_config(const cls_opts *o, const arg_spec *s, mae_config *cfg, mae_error *err) {
    int arch = 0;
    for (int i = 0; i < CLI_MODEL_NFLAGS; i++)
        if (s[i].seen && strcmp(s[i].name, "input_size") && strcmp(s[i].name, "mask_ratio") &&
            strcmp(s[i].name, "norm_pix_loss") && strcmp(s[i].name, "num_heads") &&
            strcmp(s[i].name, "decoder_num_heads"))
            arch++; /* heads go to the checkpoint reader (shapes do not give them) */
    if (o->finetune && !arch) {
        /* one read: the config metadata of a pretraining or classifier file, else the shapes */
        if (mae_checkpoint_encoder_config(o->finetune, o->mf.num_heads, cfg, err) != MAE_OK)
            return MAE_ERR;
    } else if (cli_model_config(s, &o->mf, cfg, err) != MAE_OK) {
        return MAE_ERR;
    }
    if (args_find(s, CLI_MODEL_NFLAGS, "input_size")->seen) cfg->img_size = o->mf.input_size;
    if (args_find(s, CLI_MODEL_NFLAGS, "num_heads")->seen) cfg->num_heads = o->mf.num_heads;
    cfg->mask_ratio = 0.0;
    return mae_config_validate(cfg, err);
}

static int save_cls(mae_model *m, const char *dir, const char *tag, int epoch, double acc1,
                    mae_error *err) {
    char path[4096], ep[32], acc[32];
    snprintf(path, sizeof path, "%s/checkpoint-%s.safetensors", dir, tag);
    snprintf(ep, sizeof ep, "%d", epoch);
    snprintf(acc, sizeof acc, "%.4f", acc1);
    const char *meta[] = {"epoch", ep, "acc1", acc};
    return mae_model_save_meta(m, path, meta, 2, err);
}

static int run_eval_only(const cls_opts *o, int confusion, mae_error *err) {
    mae_config cfg;
    mae_cls_config cc;
    if (mae_checkpoint_classifier(o->resume, &cfg, &cc, err) != MAE_OK) return MAE_ERR;
    if (o->nb_classes && o->nb_classes != cc.num_classes)
        return mae_errf(err, "--nb_classes %d disagrees with %s, a %d-class classifier",
                        o->nb_classes, o->resume, cc.num_classes);
    cls_opts o2 = *o;
    o2.nb_classes = cc.num_classes;
    mae_dataset *ds = cls_open_data(&o2, &cfg, 0, 0, err);
    if (!ds) return MAE_ERR;
    if (o->eval_samples > 0) mae_dataset_limit(ds, o->eval_samples);
    int B = o->tc.batch_size, rc = MAE_ERR;
    mae_model *m = mae_classifier_create(&cfg, &cc, B, o->device, err);
    cls_eval_result res = {0};
    if (m && mae_model_set_precision(m, o->precision, err) == MAE_OK &&
        mae_model_load(m, o->resume, err) == MAE_OK) {
        printf("evaluating %s (%d classes, %s pooling) on %s\n", o->resume, cc.num_classes,
               cc.global_pool ? "global" : "CLS", ds->desc);
        rc = cls_evaluate(m, ds, B, o->num_workers, confusion, &res, err);
        if (rc == MAE_OK) cls_print_eval(&res, cc.num_classes, stdout);
    }
    free(res.confusion);
    mae_model_free(m);
    mae_dataset_free(ds);
    return rc;
}

static int run_train(cls_opts *o, const arg_spec *s, int ns, const char *cmd, mae_error *err) {
    mae_config cfg;
    if (model_config(o, s, &cfg, err) != MAE_OK) {
        fprintf(stderr, "mae %s: %s\n", cmd, err->msg);
        return 2;
    }
    int rank = mae_dist_rank(), world = mae_dist_world();
    mae_cls_config cc = {0};
    cc.num_classes = o->nb_classes;
    cc.global_pool = o->linprobe ? o->global_pool : !o->cls_token;
    cc.head_bn = o->linprobe;
    cc.freeze_encoder = o->linprobe;
    cc.drop_path = o->linprobe ? 0.0 : o->drop_path;
    cc.head_init_std = o->linprobe ? 0.01 : 2e-5;
    if (o->linprobe) o->tc.optimizer = MAE_OPT_LARS, o->tc.layer_decay = 1.0;
    mae_dataset *tr = NULL, *va = NULL;
    mae_loader *ld = NULL;
    mae_model *m = NULL;
    mae_trainer *t = NULL;
    FILE *log = NULL;
    int code = 1;
    if (!(tr = cls_open_data(o, &cfg, 1, 1, err)) || !(va = cls_open_data(o, &cfg, 0, 0, err))) {
        code = 2;
        goto done;
    }
    if (o->num_samples > 0) mae_dataset_limit(tr, o->num_samples);
    if (o->eval_samples > 0) mae_dataset_limit(va, o->eval_samples);
    mae_loader_config lc;
    mae_loader_config_default(&lc, o->tc.batch_size);
    lc.num_workers = o->num_workers;
    lc.seed = o->tc.seed;
    lc.strict = o->strict;
    cli_pinned_batches(&lc, o->device);
    lc.rank = rank; /* a disjoint shard of each epoch's order (DistributedSampler) */
    lc.world_size = world;
    if (!(ld = mae_loader_create(tr, &lc, err))) goto done;
    if (!(m = mae_classifier_create(&cfg, &cc, o->tc.batch_size, o->device, err))) goto done;
    if (mae_model_set_precision(m, o->precision, err) != MAE_OK) {
        code = 2;
        goto done;
    }
    mae_model_init(m, o->tc.seed);
    if (o->finetune) {
        if (mae_classifier_load_encoder(m, o->finetune, err) != MAE_OK) {
            code = 2;
            goto done;
        }
        if (rank == 0) printf("load pre-trained encoder from %s\n", o->finetune);
    } else if (o->resume) {
        if (mae_model_load(m, o->resume, err) != MAE_OK) {
            code = 2;
            goto done;
        }
        if (rank == 0)
            printf("weights from %s (training restarts at epoch 0: optimizer state is not "
                   "kept)\n", o->resume);
    } else if (rank == 0) {
        printf("no --finetune: training from scratch (the MAE initialisation, seed %llu)\n",
               (unsigned long long)o->tc.seed);
    }
    if (!(t = mae_trainer_create(m, &o->tc, err))) goto done;
    {
        mae_grad_sync gs;
        if (mae_dist_grad_sync(&gs, o->device, err) != MAE_OK ||
            mae_trainer_set_grad_sync(t, &gs, err) != MAE_OK)
            goto done;
    }
    if (rank == 0) { /* rank 0 alone logs and saves */
    if (cli_mkdirs(o->output_dir, err) != MAE_OK) goto done;
    char lp[4096];
    snprintf(lp, sizeof lp, "%s/log.txt", o->output_dir);
    if (!(log = fopen(lp, "w"))) {
        mae_errf(err, "cannot open log file '%s'", lp);
        goto done;
    }
    printf("mae %s %s; config:\n", cmd, MAE_VERSION_STRING);
    args_print_values(s, ns, stdout);
    printf("train data: %s\nval data: %s\n", tr->desc, va->desc);
    printf("classifier: %d classes, %s pooling%s, drop_path %g, %.3fM trainable params, input "
           "%dx%dx%d, %d patches, precision %s\n", cc.num_classes,
           cc.global_pool ? "global (mean of patch tokens + fc_norm)" : "CLS token (+ norm)",
           cc.head_bn ? ", BatchNorm head, frozen encoder" : "", cc.drop_path,
           mae_num_params(m, 1) / 1e6, cfg.in_chans, cfg.img_size, cfg.img_size,
           mae_config_num_patches(&cfg), o->precision);
    printf("actual lr: %.3e (blr %.3e), %s, weight_decay %g, layer_decay %g, epochs %d (warmup "
           "%g, min_lr %g), %lld steps per epoch\n", mae_train_effective_lr(&o->tc), o->tc.blr,
           o->tc.optimizer == MAE_OPT_LARS ? "LARS" : "AdamW", o->tc.weight_decay,
           o->tc.layer_decay, o->tc.epochs, o->tc.warmup_epochs, o->tc.min_lr,
           (long long)mae_loader_steps(ld));
    if (world > 1)
        printf("data parallel: %d processes (MPI), effective batch %d; BatchNorm statistics "
               "per rank, as official (no SyncBatchNorm)\n", world,
               o->tc.batch_size * o->tc.accum_iter * world);
    fflush(stdout);
    }
    mae_mixup_cfg mix = {o->mixup, o->cutmix, o->mixup_prob, o->mixup_switch_prob,
                         o->smoothing, o->nb_classes};
    double best = -1.0, t0 = mae_clock();
    for (int ep = 0; ep < o->tc.epochs; ep++) {
        double tl = 0.0;
        int rc = cls_train_epoch(t, m, ld, o, &mix, ep, &tl, err);
        if (rc == MAE_ERR_NONFINITE) {
            code = 3;
            goto done;
        }
        if (rc != MAE_OK) goto done;
        cls_eval_result res;
        if (cls_evaluate(m, va, o->tc.batch_size, o->num_workers, 0, &res, err) != MAE_OK) goto done;
        if (rank != 0) continue; /* (every rank evaluated its shard; the counts are summed) */
        printf("epoch %d: train loss %.4f; val Acc@1 %.3f Acc@5 %.3f loss %.4f (%lld images); "
               "%.1f min\n", ep + 1, tl, res.acc1, res.acc5, res.loss, (long long)res.n,
               (mae_clock() - t0) / 60.0);
        if (save_cls(m, o->output_dir, "last", ep, res.acc1, err) != MAE_OK) goto done;
        if (res.acc1 > best) {
            best = res.acc1;
            if (save_cls(m, o->output_dir, "best", ep, res.acc1, err) != MAE_OK) goto done;
        }
        printf("Max accuracy: %.2f%%\n", best);
        fprintf(log, "{\"train_lr\": %.6g, \"train_loss\": %.6f, \"test_loss\": %.6f, "
                     "\"test_acc1\": %.4f, \"test_acc5\": %.4f, \"epoch\": %d, \"n_parameters\": %zu, "
                     "\"max_accuracy\": %.4f, \"minutes\": %.2f}\n",
                mae_trainer_lr(t), tl, res.loss, res.acc1, res.acc5, ep,
                mae_num_params(m, 1), best, (mae_clock() - t0) / 60.0);
        fflush(log);
        fflush(stdout);
    }
    code = 0;
done:
    if (code != 0 && world > 1) { /* the other ranks would wait in the next all-reduce */
        char msg[600];
        snprintf(msg, sizeof msg, "mae %s: %s", cmd, err->msg);
        mae_dist_abort(msg, code);
    }
    if (code == 1 || code == 2 || code == 3) fprintf(stderr, "mae %s: %s\n", cmd, err->msg);
    if (log) fclose(log);
    mae_trainer_free(t);
    mae_model_free(m);
    mae_loader_free(ld);
    mae_dataset_free(tr);
    mae_dataset_free(va);
    return code;
}

static int cmd_classify(int argc, char **argv, int linprobe) {
    const char *cmd = linprobe ? "linprobe" : "finetune";
    cls_opts o = {.linprobe = linprobe, .mf = {.model = "mae_vit_base_patch16"},
                  .output_dir = "./output_dir", .device = "cpu", .precision = NULL,
                  .aa = "rand-m9-mstd0.5-inc1", .remode = "pixel", .mixup_mode = "batch",
                  .dist_url = "env://", .recount = 1, .drop_path = 0.1, .smoothing = 0.1,
                  .reprob = 0.25, .mixup_prob = 1.0, .mixup_switch_prob = 0.5,
                  .num_workers = 10, .pin_mem = 1, .local_rank = -1, .print_freq = 20};
    mae_train_config_default(&o.tc);
    if (linprobe) { /* main_linprobe.py defaults */
        o.tc.batch_size = 512, o.tc.epochs = 90, o.tc.blr = 0.1, o.tc.weight_decay = 0.0;
        o.tc.min_lr = 0.0, o.tc.warmup_epochs = 10;
        o.smoothing = 0.0;
    } else { /* main_finetune.py defaults */
        o.tc.batch_size = 64, o.tc.epochs = 50, o.tc.blr = 5e-4, o.tc.weight_decay = 0.05;
        o.tc.layer_decay = 0.75, o.tc.min_lr = 1e-6, o.tc.warmup_epochs = 5;
        o.tc.beta2 = 0.999;
    }
    enum { NS = CLI_MODEL_NFLAGS + N_EXTRA };
    arg_spec s[NS];
    mae_error err = {{0}};
    int rc = parse(&o, s, argc, argv, cmd, &err);
    if (!o.precision) o.precision = cli_default_precision(o.device);
    if (rc == 1) {
        args_help(s, NS, cmd,
                  linprobe ? "Linear probing as main_linprobe.py: the encoder of --finetune frozen, "
                             "a BatchNorm1d(affine=False) + Linear head trained with LARS; CLS "
                             "token by default (--global_pool for the patch mean)."
                           : "Fine-tuning as main_finetune.py: a ViT classifier from the encoder "
                             "of --finetune, AdamW with layer-wise lr decay, RandAugment, "
                             "RandomErasing, mixup/cutmix, label smoothing; top-1/top-5 each "
                             "epoch, checkpoint-best kept. --eval --resume CKPT only evaluates.");
        return 0;
    }
    if (rc == MAE_OK && linprobe && args_find(s, NS, "layer_decay")->seen)
        rc = mae_errf(&err, "--layer_decay is a fine-tuning flag; linear probing uses LARS");
    if (rc == MAE_OK && args_find(s, NS, "world_size")->seen && o.tc.world_size != mae_dist_world())
        rc = mae_errf(&err, "--world_size %d, but this job has %d process%s (the launcher's: "
                            "mpirun -np N or srun)", o.tc.world_size, mae_dist_world(),
                      mae_dist_world() == 1 ? "" : "es");
    if (rc == MAE_OK && o.eval && mae_dist_world() > 1)
        rc = mae_errf(&err, "--eval runs in one process; this job has %d", mae_dist_world());
    o.tc.world_size = mae_dist_world(); /* the effective batch and lr rule count every rank */
    if (rc == MAE_OK) rc = check_opts(&o, s, NS, &err);
    if (rc != MAE_OK) {
        if (mae_dist_rank() == 0) fprintf(stderr, "mae %s: %s\n", cmd, err.msg);
        return 2;
    }
    if (o.threads > 0) mae_set_num_threads(o.threads);
    if (o.eval) {
        if (run_eval_only(&o, 1, &err) != MAE_OK) {
            fprintf(stderr, "mae %s: %s\n", cmd, err.msg);
            return 1;
        }
        return 0;
    }
    return run_train(&o, s, NS, cmd, &err);
}

int cmd_finetune(int argc, char **argv) { return cmd_classify(argc, argv, 0); }
int cmd_linprobe(int argc, char **argv) { return cmd_classify(argc, argv, 1); }

/* mae eval: top-1/top-5, the loss and (<= 20 classes) the confusion of a classifier checkpoint */
int cmd_eval(int argc, char **argv) {
    cls_opts o = {.device = "cpu", .precision = NULL, .num_workers = 4, .eval = 1};
    o.tc.batch_size = 256;
    const char *ckpt = NULL;
    arg_spec s[] = {
        {"resume", ARG_STR, &ckpt, "classifier checkpoint (from mae finetune / linprobe)", 0},
        {"data_path", ARG_STR, &o.data_path,
         "evaluation data: val/ of an ImageFolder root, or the test split of MNIST IDX / CIFAR "
         "(default: Fashion-MNIST test)", 0},
        {"nb_classes", ARG_INT, &o.nb_classes, "expected number of classes (default: the checkpoint's)", 0},
        {"batch_size", ARG_INT, &o.tc.batch_size, "batch size", 0},
        {"eval_samples", ARG_INT, &o.eval_samples, "evaluate the first N samples only (0 = all)", 0},
        {"num_workers", ARG_INT, &o.num_workers, "data loader threads", 0},
        {"device", ARG_STR, &o.device, CLI_DEVICE_HELP, 0},
        {"precision", ARG_STR, &o.precision,
         "matmul precision: fp32 or bf16 (default: bf16 on cuda, fp32 on cpu)", 0},
        {"threads", ARG_INT, &o.threads, "compute threads (0 = all cores)", 0},
    };
    int ns = (int)(sizeof s / sizeof s[0]);
    mae_error err = {{0}};
    int rc = args_parse(s, ns, argc, argv, 2, "eval", &err);
    if (!o.precision) o.precision = cli_default_precision(o.device);
    if (rc == 1) {
        args_help(s, ns, "eval", "Top-1/top-5 accuracy, loss and a confusion summary (<= 20 "
                                 "classes) of a classifier checkpoint on a dataset.");
        return 0;
    }
    if (rc == MAE_OK && !ckpt) rc = mae_errf(&err, "--resume CHECKPOINT is required");
    if (rc == MAE_OK && (o.tc.batch_size < 1 || o.tc.batch_size > 65536))
        rc = mae_errf(&err, "--batch_size must be in [1, 65536]");
    if (rc == MAE_OK && (o.eval_samples < 0 || o.threads < 0 || o.num_workers < 0 || o.num_workers > 256))
        rc = mae_errf(&err, "--eval_samples, --threads and --num_workers must be >= 0 (workers <= 256)");
    if (rc == MAE_OK) rc = cli_check_device(o.device, &err);
    if (rc != MAE_OK) {
        fprintf(stderr, "mae eval: %s\n", err.msg);
        return 2;
    }
    o.resume = ckpt;
    if (o.threads > 0) mae_set_num_threads(o.threads);
    if (run_eval_only(&o, 1, &err) != MAE_OK) {
        fprintf(stderr, "mae eval: %s\n", err.msg);
        return 1;
    }
    return 0;
}
