/* embed.c - `mae embed`: encoder features of a folder / list of images (or of an .npy batch of
 * preprocessed images) written as one (N, D) or (N, 1+L, D) float32 .npy, plus the image paths
 * in the same order.
 *
 * The encoder runs on all patches (no masking, no shuffle): patch embedding, + pos_embed[1:],
 * the CLS token + pos_embed[0], the blocks, then
 *   --pool cls : token 0 after the final norm            (timm forward_features(x)[:, 0])
 *   --pool mean: mean of tokens 1..L after the final norm (HF last_hidden_state[:, 1:].mean(1))
 *   --pool all : all 1+L tokens after the final norm      (timm forward_features(x))
 * A classifier checkpoint fine-tuned with global pooling has no final norm, only fc_norm: it
 * gives --pool mean as fc_norm(mean of tokens 1..L before any norm), exactly the features its
 * head sees (official models_vit forward_features with global_pool); cls/all are refused. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/source.h"
#include "io/checkpoint.h"
#include "io/statedict.h"
#include "io/fileio.h"
#include "io/npy.h"

#define EMBED_MAX_BYTES (8ull << 30) /* refuse outputs larger than this (8 GiB) */
#define EMBED_LOG_EVERY_S 30.0       /* progress line period when stderr is not a terminal */

enum { POOL_CLS, POOL_MEAN, POOL_ALL };
static const char *const pool_names[] = {"cls", "mean", "all"};

typedef struct embed_opts {
    const char *checkpoint, *data_path, *list, *input, *output, *paths_out, *pool, *device;
    int batch_size, input_size, num_workers, num_heads, threads, skip_bad;
    double crop_pct;
} embed_opts;

/* The run's state: model, buffers (all allocated before the loop), counters. */
typedef struct embed_run {
    const embed_opts *o;
    mae_model *m;
    int pool, fc_norm; /* fc_norm: global-pool classifier file (mean via fc_norm) */
    int L, D, T;       /* T = 1 + L */
    size_t row;        /* floats per output row: D, or T*D for --pool all */
    float *out;        /* (N, row) */
    float *latent;     /* (B, T, D) scratch */
    float *feat;       /* (B, D) scratch (fc_norm path) */
    int64_t n_done;    /* rows written */
    int64_t n_total;   /* images to embed (before skipping bad ones) */
    int64_t n_seen;    /* images processed (kept or substituted) */
    double t0, t_log;
    int tty;
} embed_run;

/* Writes the features of B images (imgs (B,C,H,W)) into out rows n_done.., keeping only the
 * images with keep[b] != 0 (keep may be NULL: all). */
static int embed_batch(embed_run *r, const float *imgs, int B, const unsigned char *keep,
                       mae_error *err) {
    int D = r->D, T = r->T;
    if (r->fc_norm) {
        if (mae_cls_forward(r->m, imgs, NULL, B, 0, 0, NULL, NULL, err) != MAE_OK) return MAE_ERR;
        mae_cls_get_features(r->m, r->feat);
    } else if (mae_forward_encoder(r->m, imgs, B, r->latent, err) != MAE_OK) {
        return MAE_ERR;
    }
    for (int b = 0; b < B; b++) {
        if (keep && !keep[b]) continue;
        float *dst = r->out + (size_t)r->n_done * r->row;
        const float *x = r->latent + (size_t)b * T * D;
        const float *chk = r->fc_norm ? r->feat + (size_t)b * D : x;
        size_t nchk = r->fc_norm ? (size_t)D : (size_t)T * D;
        for (size_t i = 0; i < nchk; i++)
            if (!isfinite(chk[i]))
                return mae_errf(err, "the features of image %lld are not finite (NaN/Inf weights "
                                     "in --checkpoint %s, or input values too large?)",
                                (long long)(r->n_seen + b), r->o->checkpoint);
        if (r->fc_norm) {
            memcpy(dst, r->feat + (size_t)b * D, sizeof(float) * D);
        } else if (r->pool == POOL_CLS) {
            memcpy(dst, x, sizeof(float) * D);
        } else if (r->pool == POOL_ALL) {
            memcpy(dst, x, sizeof(float) * (size_t)T * D);
        } else {
            for (int d = 0; d < D; d++) {
                double s = 0.0;
                for (int l = 1; l < T; l++) s += x[(size_t)l * D + d];
                dst[d] = (float)(s / (T - 1));
            }
        }
        r->n_done++;
    }
    return MAE_OK;
}

static void progress(embed_run *r, int final) {
    double now = mae_clock(), dt = now - r->t0;
    double ips = dt > 0 ? (double)r->n_seen / dt : 0.0;
    if (r->tty) {
        fprintf(stderr, "\rembed: %lld/%lld images  %.1f img/s%s", (long long)r->n_seen,
                (long long)r->n_total, ips, final ? "\n" : "");
        fflush(stderr);
    } else if (!final && now - r->t_log >= EMBED_LOG_EVERY_S) {
        fprintf(stderr, "embed: %lld/%lld images  %.1f img/s\n", (long long)r->n_seen,
                (long long)r->n_total, ips);
        r->t_log = now;
    }
}

/* Inspects the checkpoint: an encoder must be there; final norm or (global-pool) fc_norm. */
static int inspect_checkpoint(const embed_opts *o, const mae_sd *f, int pool, int *fc_norm,
                              mae_error *err) {
    int rc = MAE_OK;
    int has_enc = mae_sd_find(f, "patch_embed.proj.weight") >= 0 &&
                  mae_sd_find(f, "pos_embed") >= 0 && mae_sd_find(f, "blocks.0.norm1.weight") >= 0;
    int has_norm = mae_sd_find(f, "norm.weight") >= 0 && mae_sd_find(f, "norm.bias") >= 0;
    int has_fc = mae_sd_find(f, "fc_norm.weight") >= 0 && mae_sd_find(f, "fc_norm.bias") >= 0;
    *fc_norm = 0;
    if (!has_enc) {
        rc = mae_errf(err, "--checkpoint %s has no encoder (no patch_embed.proj.weight, pos_embed "
                           "or blocks.0.*): not a checkpoint of mae pretrain or of a ViT classifier",
                      o->checkpoint);
    } else if (!has_norm && has_fc && pool == POOL_MEAN) {
        *fc_norm = 1;
    } else if (!has_norm && has_fc) {
        rc = mae_errf(err, "--pool %s: --checkpoint %s is a classifier trained with global pooling: "
                           "it has fc_norm but no final encoder norm (norm.weight), so there are no "
                           "normalised tokens; use --pool mean (fc_norm of the mean patch token, "
                           "the features its head sees)", pool_names[pool], o->checkpoint);
    } else if (!has_norm) {
        rc = mae_errf(err, "--checkpoint %s has no final encoder norm (norm.weight / norm.bias) "
                           "and no fc_norm", o->checkpoint);
    }
    return rc;
}

static int check_input(const npy_array *x, const mae_config *c, const char *path,
                       mae_error *err) {
    char got[256];
    mae_shape_str(got, sizeof got, x->ndim, x->shape, "()");
    if (x->ndim != 4 || x->shape[0] < 1 || x->shape[1] != c->in_chans ||
        x->shape[2] != c->img_size || x->shape[3] != c->img_size)
        return mae_errf(err, "--input %s: expected shape (N, %d, %d, %d) with N >= 1 for this "
                             "checkpoint%s, got %s", path, c->in_chans, c->img_size, c->img_size,
                        " (in_chans, input_size, input_size)", got);
    if (x->shape[0] > INT32_MAX)
        return mae_errf(err, "--input %s: too many images (%lld)", path, (long long)x->shape[0]);
    const float *v = (const float *)x->data;
    for (size_t i = 0; i < x->numel; i++)
        if (!isfinite(v[i]))
            return mae_errf(err, "--input %s: contains NaN or Inf (image %lld)", path,
                            (long long)(i / (x->numel / (size_t)x->shape[0])));
    return MAE_OK;
}

/* Checks early that path can be written (an atomic temp file in its folder), so that a long
 * run does not end in an unwritable output. */
static int check_writable(const char *path, const char *flag, mae_error *err) {
    char tmp[4200];
    mae_error e2;
    FILE *f = mae_atomic_open(path, tmp, sizeof tmp, &e2);
    if (!f) return mae_errf(err, "%s: %s", flag, e2.msg);
    mae_atomic_abort(f, tmp);
    return MAE_OK;
}

/* The loader's strict-mode message mentions --strict, which embed does not have. */
static void fix_bad_file_msg(mae_error *err) {
    char *p = strstr(err->msg, " (--strict: bad files are errors)");
    if (!p) return;
    *p = 0;
    size_t n = strlen(err->msg);
    snprintf(err->msg + n, sizeof err->msg - n, " (--skip_bad leaves bad files out)");
}

/* sd: the checkpoint, open; closed as soon as the weights are loaded */
static int run_sd(const embed_opts *o, const arg_spec *s, int ns, mae_sd *sd, mae_error *err) {
    int pool = -1;
    for (int i = 0; i < 3; i++)
        if (!strcmp(o->pool, pool_names[i])) pool = i;
    if (pool < 0)
        return mae_errf(err, "--pool must be cls, mean or all, got '%s'", o->pool);
    embed_run r = {.o = o, .pool = pool};
    if (inspect_checkpoint(o, sd, pool, &r.fc_norm, err) != MAE_OK) return MAE_ERR;
    mae_config cfg;
    mae_error e2;
    if (mae_sd_config(sd, o->num_heads, 0, &cfg, 1, &e2) != MAE_OK)
        return mae_errf(err, "--checkpoint: %s", e2.msg);
    if (args_find(s, ns, "input_size")->seen) {
        cfg.img_size = o->input_size;
        if (mae_config_validate(&cfg, &e2) != MAE_OK)
            return mae_errf(err, "--input_size %d: %s", o->input_size, e2.msg);
    }
    cfg.mask_ratio = 0.0;
    r.L = mae_config_num_patches(&cfg);
    r.D = cfg.embed_dim;
    r.T = 1 + r.L;
    r.row = pool == POOL_ALL ? (size_t)r.T * r.D : (size_t)r.D;

    /* the images: an .npy batch, or a folder / list through the evaluation transform */
    npy_array x = {0};
    mae_dataset *ds = NULL;
    mae_loader *ld = NULL;
    int rc = MAE_OK;
    int64_t N = 0;
    if (o->input) {
        rc = npy_load_f32(o->input, &x, &e2);
        if (rc != MAE_OK) rc = mae_errf(err, "--input: %s", e2.msg);
        if (rc == MAE_OK) rc = check_input(&x, &cfg, o->input, err);
        if (rc == MAE_OK) N = x.shape[0];
    } else {
        mae_source *src = NULL;
        if (o->list) {
            src = mae_source_list(o->list, &e2);
            if (!src) rc = mae_errf(err, "--list: %s", e2.msg);
        } else {
            src = mae_source_open(o->data_path, 0, &e2);
            if (!src) rc = mae_errf(err, "--data_path: %s", e2.msg);
        }
        if (rc == MAE_OK && src->n < 1)
            rc = mae_errf(err, "%s %s: no images", o->list ? "--list" : "--data_path",
                          o->list ? o->list : o->data_path);
        if (rc == MAE_OK && src->n > INT32_MAX)
            rc = mae_errf(err, "%s: too many images (%lld)", src->desc, (long long)src->n);
        if (rc == MAE_OK) {
            mae_image_opts io;
            mae_image_opts_default(&io, cfg.img_size, cfg.in_chans);
            io.augment = MAE_AUG_EVAL;
            io.crop_pct = o->crop_pct;
            ds = mae_dataset_images(src, &io, err); /* owns src, also on failure */
            src = NULL;
            if (!ds) rc = MAE_ERR;
        }
        mae_source_free(src);
        if (rc == MAE_OK) N = ds->n;
    }
    int B = o->batch_size < N ? o->batch_size : (int)N;
    size_t out_bytes = 0;
    if (rc == MAE_OK && (!mae_size_mul(&out_bytes, (size_t)N * sizeof(float), r.row) ||
                         out_bytes > EMBED_MAX_BYTES))
        rc = mae_errf(err, "--pool %s: %lld images x %zu floats is %.1f GiB, more than the %llu "
                           "GiB limit; use --pool cls or --pool mean (%d floats per image)",
                      pool_names[pool], (long long)N, r.row,
                      (double)N * (double)r.row * 4.0 / (1024.0 * 1024.0 * 1024.0),
                      EMBED_MAX_BYTES >> 30, r.D);

    /* where the results go; checked now, before the work */
    char paths_buf[4096];
    const char *paths_out = NULL;
    if (rc == MAE_OK && !o->input) {
        if (o->paths_out) {
            paths_out = o->paths_out;
        } else {
            size_t n = strlen(o->output);
            int npy = n > 4 && !strcmp(o->output + n - 4, ".npy");
            if (snprintf(paths_buf, sizeof paths_buf, "%.*s.txt", (int)(npy ? n - 4 : n),
                         o->output) >= (int)sizeof paths_buf)
                rc = mae_errf(err, "--output: path too long");
            paths_out = paths_buf;
        }
        if (rc == MAE_OK && !strcmp(paths_out, o->output))
            rc = mae_errf(err, "--paths_out must differ from --output (%s)", o->output);
    }
    if (rc == MAE_OK) rc = check_writable(o->output, "--output", err);
    if (rc == MAE_OK && paths_out) rc = check_writable(paths_out, "--paths_out", err);

    /* the model: a classifier (no decoder) holding the encoder and its final norm (or fc_norm) */
    if (rc == MAE_OK) {
        mae_cls_config cc = {.num_classes = 1, .global_pool = r.fc_norm, .freeze_encoder = 1};
        r.m = mae_classifier_create(&cfg, &cc, B, o->device, err);
        if (!r.m) rc = MAE_ERR;
    }
    if (rc == MAE_OK) rc = mae_classifier_load_encoder_sd(r.m, sd, err);
    mae_sd_close(sd); /* the weights are in the model: free the file's copy */

    /* every buffer of the loop, once */
    int64_t *kept = NULL;
    unsigned char *keep = NULL;
    if (rc == MAE_OK) {
        r.out = mae_xmalloc(out_bytes);
        if (!r.fc_norm) r.latent = mae_xmalloc(sizeof(float) * (size_t)B * r.T * r.D);
        if (r.fc_norm) r.feat = mae_xmalloc(sizeof(float) * (size_t)B * r.D);
        if (ds) {
            kept = mae_xmalloc(sizeof(int64_t) * (size_t)N);
            keep = mae_xmalloc((size_t)B);
        }
    }
    if (rc == MAE_OK && ds) {
        mae_loader_config lc;
        mae_loader_config_default(&lc, B);
        lc.shuffle = 0;
        lc.drop_last = 0;
        lc.num_workers = o->num_workers;
        lc.strict = !o->skip_bad;
        ld = mae_loader_create(ds, &lc, err);
        if (!ld) rc = MAE_ERR;
    }

    r.n_total = N;
    r.tty = isatty(STDERR_FILENO);
    r.t0 = r.t_log = mae_clock();
    if (rc == MAE_OK && o->input) {
        size_t npix = (size_t)cfg.in_chans * cfg.img_size * cfg.img_size;
        for (int64_t b0 = 0; rc == MAE_OK && b0 < N; b0 += B) {
            int nb = N - b0 < B ? (int)(N - b0) : B;
            rc = embed_batch(&r, (const float *)x.data + (size_t)b0 * npix, nb, NULL, err);
            r.n_seen += nb;
            progress(&r, 0);
        }
    } else if (rc == MAE_OK) {
        mae_batch bt;
        mae_loader_start_epoch(ld, 0, 0);
        for (;;) {
            int k = mae_loader_next(ld, &bt, err);
            if (k == 1) break;
            if (k != MAE_OK) {
                fix_bad_file_msg(err);
                rc = MAE_ERR;
                break;
            }
            /* unshuffled: batch `step` holds images step*B .. ; a bad file (--skip_bad) comes
             * back replaced by another image, which is not kept */
            for (int b = 0; b < bt.B; b++) {
                int64_t want = bt.step * B + b;
                keep[b] = bt.sample_ids[b] == (uint64_t)want;
            }
            int64_t first = r.n_done;
            rc = embed_batch(&r, bt.imgs, bt.B, keep, err);
            if (rc != MAE_OK) break;
            for (int b = 0, j = 0; b < bt.B; b++)
                if (keep[b]) kept[first + j++] = bt.step * B + b;
            r.n_seen += bt.B;
            progress(&r, 0);
        }
    }
    if (rc == MAE_OK && r.n_seen > 0) progress(&r, 1);
    double secs = mae_clock() - r.t0;
    int64_t nbad = ld ? mae_loader_bad_files(ld) : 0;
    if (rc == MAE_OK && r.n_done == 0)
        rc = mae_errf(err, "no image could be embedded: all %lld files are bad", (long long)N);

    /* outputs: the paths file is prepared first and committed after the .npy, so that a
     * failure leaves neither */
    FILE *pf = NULL;
    char ptmp[4200];
    if (rc == MAE_OK && paths_out) {
        pf = mae_atomic_open(paths_out, ptmp, sizeof ptmp, &e2);
        if (!pf) rc = mae_errf(err, "--paths_out: %s", e2.msg);
        const mae_source *src = mae_dataset_source(ds);
        char name[4096];
        for (int64_t i = 0; rc == MAE_OK && i < r.n_done; i++) {
            src->name(src, kept[i], name, sizeof name);
            fprintf(pf, "%s\n", name);
        }
    }
    if (rc == MAE_OK) {
        int64_t shape[3] = {r.n_done, pool == POOL_ALL ? r.T : r.D, r.D};
        rc = npy_save(o->output, "<f4", pool == POOL_ALL ? 3 : 2, shape, r.out, &e2);
        if (rc != MAE_OK) rc = mae_errf(err, "--output: %s", e2.msg);
    }
    if (pf) {
        if (rc == MAE_OK) {
            if (mae_atomic_commit(pf, ptmp, paths_out, &e2) != MAE_OK) {
                rc = mae_errf(err, "--paths_out: %s", e2.msg);
                unlink(o->output); /* no features without their paths */
            }
        } else {
            mae_atomic_abort(pf, ptmp);
        }
    }
    if (rc == MAE_OK) {
        if (nbad)
            fprintf(stderr, "mae embed: skipped %lld bad files (named above); they are not in %s "
                            "or %s\n", (long long)nbad, o->output, paths_out);
        printf("embedded %lld images -> %s (%lld x ", (long long)r.n_done, o->output,
               (long long)r.n_done);
        if (pool == POOL_ALL) printf("%d x ", r.T);
        printf("%d float32, --pool %s%s)%s%s; %.2f s, %.1f img/s\n", r.D, pool_names[pool],
               r.fc_norm ? " via fc_norm" : "", paths_out ? ", paths -> " : "",
               paths_out ? paths_out : "", secs, secs > 0 ? (double)r.n_seen / secs : 0.0);
    }
    mae_loader_free(ld);
    mae_dataset_free(ds);
    npy_free(&x);
    mae_model_free(r.m);
    free(r.out);
    free(r.latent);
    free(r.feat);
    free(kept);
    free(keep);
    return rc;
}

static int run(const embed_opts *o, const arg_spec *s, int ns, mae_error *err) {
    mae_sd sd; /* the checkpoint in any format, read once */
    mae_error e2;
    if (mae_sd_open(&sd, o->checkpoint, &e2) != MAE_OK)
        return mae_errf(err, "--checkpoint: %s", e2.msg);
    int rc = run_sd(o, s, ns, &sd, err);
    mae_sd_close(&sd);
    return rc;
}

int cmd_embed(int argc, char **argv) {
    embed_opts o = {.pool = "cls", .device = "cpu", .batch_size = 64, .crop_pct = 0.875, .num_workers = 4};
    arg_spec s[] = {
        {"checkpoint", ARG_STR, &o.checkpoint,
         "safetensors checkpoint with an encoder: mae pretrain (with or without decoder), or a "
         "classifier of mae finetune / linprobe (required)", 0},
        {"data_path", ARG_STR, &o.data_path,
         "images to embed: an ImageFolder tree or a flat folder of images (as mae eval reads "
         "it: a root with train/ and val/ gives val/; MNIST IDX / CIFAR folders their test split)", 0},
        {"list", ARG_STR, &o.list,
         "or a text file of image paths, one a line (relative to the list's folder; an optional "
         "label after whitespace is ignored)", 0},
        {"input", ARG_STR, &o.input,
         "or an (N, C, H, W) float32 .npy of preprocessed (normalised) images; no paths file", 0},
        {"output", ARG_STR, &o.output, "features .npy (float32), written atomically (required)", 0},
        {"paths_out", ARG_STR, &o.paths_out,
         "image paths, one a line in the order of the rows (default: --output with its .npy "
         "replaced by .txt)", 0},
        {"pool", ARG_STR, &o.pool,
         "cls: token 0 after the final norm (N, D); mean: mean of the patch tokens 1..L after the "
         "final norm (N, D) (a global-pool classifier without final norm: fc_norm of the mean "
         "of tokens 1..L); all: every token after the final norm (N, 1+L, D)", 0},
        {"batch_size", ARG_INT, &o.batch_size,
         "images per forward pass; activation memory grows with it (the blocks share one "
         "block's activations: ViT-B/16 at 224 takes about 23 MB per image, 1.44 GB at 64)", 0},
        {"input_size", ARG_INT, &o.input_size,
         "image size (default: the checkpoint's; another size resizes pos_embed bicubically)", 0},
        {"crop_pct", ARG_DOUBLE, &o.crop_pct,
         "eval transform: Resize(int(input_size / crop_pct), bicubic) + CenterCrop(input_size)", 0},
        {"num_workers", ARG_INT, &o.num_workers, "image decoding threads", 0},
        {"num_heads", ARG_INT, &o.num_heads,
         "encoder heads when the file has no config metadata (0: from the width, 768 -> 12 ...)", 0},
        {"skip_bad", ARG_FLAG, &o.skip_bad,
         "leave unreadable / corrupt images out (warned, counted, absent from both outputs) "
         "instead of failing on the first one", 0},
        {"device", ARG_STR, &o.device, CLI_DEVICE_HELP, 0},
        {"threads", ARG_INT, &o.threads, "compute threads (0 = all cores)", 0},
    };
    int ns = (int)(sizeof s / sizeof s[0]);
    mae_error err = {{0}};
    int rc = args_parse(s, ns, argc, argv, 2, "embed", &err);
    if (rc == 1) {
        args_help(s, ns, "embed",
                  "Encoder features of images, without masking: the encoder on all patches "
                  "(patch embed, + pos_embed, CLS token, blocks, final norm), pooled by --pool, "
                  "written as a float32 .npy with one row per image, in input order, plus the "
                  "image paths. Images go through the evaluation transform of mae eval "
                  "(Resize + CenterCrop, ImageNet normalisation).");
        return 0;
    }
    int nsrc = (o.data_path != NULL) + (o.list != NULL) + (o.input != NULL);
    if (rc == MAE_OK && (!o.checkpoint || !o.output))
        rc = mae_errf(&err, "--checkpoint and --output are required (see mae embed --help)");
    if (rc == MAE_OK && nsrc != 1)
        rc = mae_errf(&err, "give exactly one of --data_path, --list and --input (got %d)", nsrc);
    if (rc == MAE_OK && (o.batch_size < 1 || o.batch_size > 65536))
        rc = mae_errf(&err, "--batch_size must be in [1, 65536], got %d", o.batch_size);
    if (rc == MAE_OK && !(o.crop_pct >= 0.1 && o.crop_pct <= 1))
        rc = mae_errf(&err, "--crop_pct must be in [0.1, 1], got %g", o.crop_pct);
    if (rc == MAE_OK && o.input && args_find(s, ns, "crop_pct")->seen)
        rc = mae_errf(&err, "--crop_pct applies to images (--data_path / --list), not to "
                            "--input (already preprocessed)");
    if (rc == MAE_OK && o.input && (o.skip_bad || o.paths_out))
        rc = mae_errf(&err, "--skip_bad and --paths_out apply to images, not to --input");
    if (rc == MAE_OK && args_find(s, ns, "input_size")->seen &&
        (o.input_size < 1 || o.input_size > 8192))
        rc = mae_errf(&err, "--input_size must be in [1, 8192], got %d", o.input_size);
    if (rc == MAE_OK && (o.num_heads < 0 || o.threads < 0 || o.num_workers < 0 ||
                         o.num_workers > 256))
        rc = mae_errf(&err, "--num_heads, --threads and --num_workers must be >= 0 (workers <= 256)");
    if (rc == MAE_OK) rc = cli_check_device(o.device, &err);
    if (rc != MAE_OK) {
        fprintf(stderr, "mae embed: %s\n", err.msg);
        return 2;
    }
    if (o.threads > 0) mae_set_num_threads(o.threads);
    if (run(&o, s, ns, &err) != MAE_OK) {
        fprintf(stderr, "mae embed: %s\n", err.msg);
        return 1;
    }
    return 0;
}
