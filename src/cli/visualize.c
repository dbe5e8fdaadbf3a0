/* visualize.c - `mae visualize`: the official demo (demo/mae_visualize.ipynb) without Python.
 * Each image is loaded as RGB (L for a 1-channel model), resized to input_size x input_size as
 * PIL's img.resize((S, S)) does (bicubic, antialiased), scaled to [0,1] and normalised with the
 * ImageNet mean/std, then run through the MAE forward with a random mask; the picture has one
 * row per image: original | masked | reconstruction | reconstruction + visible. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common.h"
#include "data/dataset.h"
#include "data/image.h"
#include "data/source.h"
#include "data/transform.h"
#include "io/checkpoint.h"
#include "io/fileio.h"
#include "io/npy.h"
#include "io/png.h"
#include "io/statedict.h"
#include "io/visualize.h"

#define MAX_CHUNK 8
#define MAX_SCALE 64
/* PIL refuses images of more than 2 * Image.MAX_IMAGE_PIXELS pixels (DecompressionBombError) */
#define MAX_PIXELS 178956970LL

typedef struct vis_opts {
    const char *checkpoint, *output, *list, *noise, *unnorm, *device;
    double mask_ratio;
    int norm_pix_loss, num_heads, decoder_num_heads, threads, scale;
    uint64_t seed;
} vis_opts;

/* the images: the positional paths, then the lines of --list */
typedef struct vis_inputs {
    char **pos;
    int npos;
    mae_source *list;
    const char *list_path;
    int n;
} vis_inputs;

static void input_name(const vis_inputs *in, int i, char *out, size_t cap) {
    if (i < in->npos) snprintf(out, cap, "%s", in->pos[i]);
    else in->list->name(in->list, i - in->npos, out, cap);
}

/* Reads, decodes and resizes image i to S x S bytes (S,S,C) into out; errors name the file. */
static int load_image(const vis_inputs *in, int i, int C, int S, uint8_t *out, mae_buf *file,
                      mae_image *im, mae_buf *ws, mae_error *err) {
    char name[4096];
    input_name(in, i, name, sizeof name);
    const uint8_t *bytes;
    size_t len;
    uint8_t *data = NULL;
    mae_error e2;
    if (i < in->npos) {
        if (mae_read_file(in->pos[i], &data, &len, &e2) != MAE_OK)
            return mae_errf(err, "image %s", e2.msg); /* e2 names the file */
        bytes = data;
    } else {
        mae_raw raw;
        if (in->list->read(in->list, i - in->npos, &raw, file, &e2) != MAE_OK)
            return mae_errf(err, "--list %s: %s", in->list_path, e2.msg);
        bytes = raw.bytes;
        len = raw.len;
    }
    int rc = MAE_OK;
    mae_image_info info;
    if (len == 0) {
        rc = mae_errf(err, "image %s: empty file (0 bytes)", name);
    } else if (mae_image_probe(bytes, len, &info, &e2) != MAE_OK) {
        rc = mae_errf(err, "image %s: %s", name, e2.msg);
    } else if ((long long)info.width * info.height > MAX_PIXELS) {
        rc = mae_errf(err, "image %s: %d x %d pixels is more than PIL opens (%lld)", name,
                      info.width, info.height, MAX_PIXELS);
    } else {
        mae_decode_req req = {C, 8, 0, 0, 0, 0};
        if (mae_image_decode(bytes, len, &req, im, &e2) != MAE_OK)
            rc = mae_errf(err, "image %s: %s", name, e2.msg);
        else
            mae_resize_u8(out, S, S, im->px, im->w * im->c, C, 0, 0, im->w, im->h, ws);
    }
    free(data);
    return rc;
}

/* An encoder-only file (mae_pretrain_vit_*, a classifier) cannot reconstruct anything. */
static int check_decoder(const mae_sd *f, const char *path, mae_error *err) {
    int has = mae_sd_find(f, "decoder_embed.weight") >= 0 &&
              mae_sd_find(f, "decoder_pred.weight") >= 0 && !f->meta_classifier;
    if (!has)
        return mae_errf(err, "--checkpoint %s has no decoder (an encoder-only or classifier "
                             "checkpoint): mae visualize needs a checkpoint with a decoder (the "
                             "*_full or mae_visualize_* releases, or one of mae pretrain)", path);
    return MAE_OK;
}

static int parent_dirs(const char *path, mae_error *err) {
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return MAE_OK;
    char dir[4096];
    size_t n = (size_t)(slash - path);
    if (n >= sizeof dir) return mae_errf(err, "--output %s: path too long", path);
    memcpy(dir, path, n);
    dir[n] = 0;
    mae_error e2;
    if (cli_mkdirs(dir, &e2) != MAE_OK) return mae_errf(err, "--output %s: %s", path, e2.msg);
    return MAE_OK;
}

/* sd: the checkpoint, open; closed as soon as the weights are loaded */
static int run_sd(const vis_opts *o, const arg_spec *s, int ns, vis_inputs *in, mae_sd *sd,
                  mae_error *err) {
    mae_config cfg;
    mae_error e2;
    if (check_decoder(sd, o->checkpoint, err) != MAE_OK) return MAE_ERR;
    if (mae_sd_config(sd, o->num_heads, o->decoder_num_heads, &cfg, 0, &e2))
        return mae_errf(err, "--checkpoint %s", e2.msg);
    if (args_find(s, ns, "mask_ratio")->seen) cfg.mask_ratio = o->mask_ratio;
    if (o->norm_pix_loss) cfg.norm_pix_loss = 1;
    if (mae_config_validate(&cfg, &e2) != MAE_OK)
        return mae_errf(err, "%s%s", args_find(s, ns, "mask_ratio")->seen ? "--mask_ratio: " : "",
                        e2.msg);
    int mode = cfg.norm_pix_loss ? MAE_UNNORM_TARGET : MAE_UNNORM_NONE;
    if (o->unnorm) {
        mode = !strcmp(o->unnorm, "none")     ? MAE_UNNORM_NONE
               : !strcmp(o->unnorm, "target")  ? MAE_UNNORM_TARGET
               : !strcmp(o->unnorm, "visible") ? MAE_UNNORM_VISIBLE
                                               : -1;
        if (mode < 0)
            return mae_errf(err, "--unnorm: '%s' is not one of target, visible, none", o->unnorm);
        if (mode != MAE_UNNORM_NONE && !cfg.norm_pix_loss)
            return mae_errf(err, "--unnorm %s: the checkpoint %s was not trained with "
                                 "norm_pix_loss (it predicts pixels; pass --norm_pix_loss if it "
                                 "was)", o->unnorm, o->checkpoint);
    }
    int N = in->n, S = cfg.img_size, C = cfg.in_chans, L = mae_config_num_patches(&cfg);
    int P = mae_config_patch_dim(&cfg);
    int scale = o->scale > 0 ? o->scale : S >= 128 ? 1 : (128 + S - 1) / S;

    char masked[64];
    snprintf(masked, sizeof masked, "masked %.3g%%", 100.0 * cfg.mask_ratio);
    const char *captions[4] = {"original", masked,
                               mode == MAE_UNNORM_TARGET    ? "recon (true patch stats)"
                               : mode == MAE_UNNORM_VISIBLE ? "recon (visible stats)"
                                                            : "reconstruction",
                               "reconstruction + visible"};
    mae_vis_layout lay;
    if (mae_vis_layout_make(&lay, S, N, scale, captions, &e2) != MAE_OK)
        return mae_errf(err, "--output %s: %s", o->output, e2.msg);

    /* all images first, so a bad one fails before any model work */
    size_t npx = (size_t)S * S * C;
    uint8_t *orig = mae_xmalloc(npx * (size_t)N);
    mae_buf file = {0}, ws = {0};
    mae_image im = {0};
    int rc = MAE_OK;
    for (int i = 0; rc == MAE_OK && i < N; i++)
        rc = load_image(in, i, C, S, orig + npx * i, &file, &im, &ws, err);
    mae_image_release(&im);
    mae_buf_free(&file);
    mae_buf_free(&ws);

    float *noise = NULL;
    if (rc == MAE_OK) {
        noise = mae_xmalloc(sizeof(float) * (size_t)N * L);
        rc = cli_masking_noise(noise, N, L, o->noise, o->seed, err);
    }

    int chunk = N < MAX_CHUNK ? N : MAX_CHUNK;
    mae_model *m = NULL;
    if (rc == MAE_OK && !(m = mae_model_create(&cfg, chunk, o->device, &e2)))
        rc = mae_errf(err, "--checkpoint %s: %s", o->checkpoint, e2.msg);
    if (rc == MAE_OK && mae_model_load_sd(m, sd, &e2) != MAE_OK)
        rc = mae_errf(err, "--checkpoint %s", e2.msg);
    mae_sd_close(sd); /* the weights are in the model: free the file's copy */

    uint8_t *rgb = NULL;
    float *x = NULL, *pred = NULL, *mask = NULL;
    if (rc == MAE_OK) {
        rgb = mae_xmalloc((size_t)lay.width * lay.height * 3);
        memset(rgb, 255, (size_t)lay.width * lay.height * 3);
        x = mae_xmalloc(sizeof(float) * npx * chunk);
        pred = mae_xmalloc(sizeof(float) * (size_t)chunk * L * P);
        mask = mae_xmalloc(sizeof(float) * (size_t)chunk * L);
    }
    float mean[3], std[3];
    mae_norm_constants(C, mean, std);
    for (int b0 = 0; rc == MAE_OK && b0 < N; b0 += chunk) {
        int B = N - b0 < chunk ? N - b0 : chunk;
        for (int b = 0; b < B; b++)
            mae_normalize_u8(x + npx * b, orig + npx * (b0 + b), S * C, C, 0, 0, S, S, 0, mean, std);
        float loss;
        if (mae_forward(m, x, noise + (size_t)b0 * L, B, -1.0, &loss, &e2) != MAE_OK) {
            rc = mae_errf(err, "forward pass: %s", e2.msg);
            break;
        }
        mae_get_pred(m, pred);
        mae_get_mask(m, mask);
        for (int b = 0; b < B; b++)
            mae_vis_draw_row(rgb, &lay, b0 + b, &cfg, orig + npx * (b0 + b), x + npx * b,
                             pred + (size_t)b * L * P, mask + (size_t)b * L, mode, captions);
    }
    if (rc == MAE_OK) rc = parent_dirs(o->output, err);
    if (rc == MAE_OK) rc = mae_png_write(o->output, rgb, lay.width, lay.height, 3, err);
    if (rc == MAE_OK)
        printf("wrote %s: %d x %d px, %d row%s of 4 panels of %d px (scale %d): panel k of row r "
               "at x = %d + %d*k, y = %d + %d*r; mask ratio %g, unnorm %s\n",
               o->output, lay.width, lay.height, N, N == 1 ? "" : "s", lay.panel, scale, lay.x0,
               lay.dx, lay.y0, lay.dy, cfg.mask_ratio,
               mode == MAE_UNNORM_TARGET ? "target" : mode == MAE_UNNORM_VISIBLE ? "visible" : "none");
    free(rgb);
    free(x);
    free(pred);
    free(mask);
    free(noise);
    free(orig);
    mae_model_free(m);
    return rc;
}

/* Splits argv[2..] into flags (with their values) and image paths; after "--" everything is a
 * path. A path may not start with "--" otherwise. */
static void split_args(const arg_spec *s, int ns, int argc, char **argv, char **flags,
                       int *nflags, char **pos, int *npos) {
    int only_pos = 0;
    *nflags = *npos = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && !strcmp(a, "-h")) {
            flags[(*nflags)++] = argv[i];
            continue;
        }
        if (only_pos || strncmp(a, "--", 2) != 0) {
            pos[(*npos)++] = argv[i];
            continue;
        }
        if (!a[2]) {
            only_pos = 1;
            continue;
        }
        flags[(*nflags)++] = argv[i];
        char name[128];
        const char *eq = strchr(a + 2, '=');
        size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if (len >= sizeof name) continue;
        memcpy(name, a + 2, len);
        name[len] = 0;
        for (size_t k = 0; k < len; k++)
            if (name[k] == '-') name[k] = '_';
        const arg_spec *sp = args_find(s, ns, name);
        if (!eq && sp && sp->type != ARG_FLAG && i + 1 < argc) flags[(*nflags)++] = argv[++i];
    }
}

static int run(const vis_opts *o, const arg_spec *s, int ns, vis_inputs *in, mae_error *err) {
    mae_sd sd; /* the checkpoint in any format, read once */
    mae_error e2;
    if (mae_sd_open(&sd, o->checkpoint, &e2) != MAE_OK)
        return mae_errf(err, "--checkpoint %s", e2.msg);
    int rc = run_sd(o, s, ns, in, &sd, err);
    mae_sd_close(&sd);
    return rc;
}

int cmd_visualize(int argc, char **argv) {
    vis_opts o = {.mask_ratio = 0.75, .device = "cpu"};
    arg_spec s[] = {
        {"checkpoint", ARG_STR, &o.checkpoint, "checkpoint with a decoder: ours, an official *_full / mae_visualize_* .pth, or an HF ViTMAEForPreTraining folder (required)", 0},
        {"output", ARG_STR, &o.output, "the PNG to write (required; missing folders are created)", 0},
        {"list", ARG_STR, &o.list, "text file of image paths, one a line, in the list format of "
                                   "--data_path (relative to its folder, # comments, a label after "
                                   "the path is ignored: a path with spaces needs one); its images "
                                   "come after those given as arguments (default: none)", 0},
        {"mask_ratio", ARG_DOUBLE, &o.mask_ratio, "fraction removed (default: the checkpoint's, else 0.75)", 0},
        {"seed", ARG_U64, &o.seed, "masking noise seed, image i gets sample id i (default 0)", 0},
        {"noise", ARG_STR, &o.noise, "(N,L) .npy masking noise, N images, L patches (default: from --seed)", 0},
        {"unnorm", ARG_STR, &o.unnorm,
         "how predictions of a norm_pix_loss model (per-patch normalised pixels) become pixels, "
         "pred * std + mean with a patch's mean and std = sqrt(unbiased var + 1e-6) over its "
         "p*p*C values, as the loss: target = every patch's own true statistics (this leaks "
         "them for removed patches); visible = a visible patch's own, a removed patch's the "
         "weighted average of the visible patches' means and stds with weights 1/d^2, d the "
         "distance between the patches in the patch grid (uses only what the model saw); none = "
         "the raw prediction (default: target with norm_pix_loss, else none)", 0},
        {"norm_pix_loss", ARG_FLAG, &o.norm_pix_loss, "the model was trained with norm_pix_loss (for files without metadata)", 0},
        {"scale", ARG_INT, &o.scale, "enlarge each pixel K times, 1.." "64 (default: 1 for input_size >= 128, else panels >= 128 px)", 0},
        {"num_heads", ARG_INT, &o.num_heads, "encoder heads when the file has no config", 0},
        {"decoder_num_heads", ARG_INT, &o.decoder_num_heads, "decoder heads when the file has no config", 0},
        {"device", ARG_STR, &o.device, CLI_DEVICE_HELP, 0},
        {"threads", ARG_INT, &o.threads, "threads (default: all cores)", 0},
    };
    int ns = (int)(sizeof s / sizeof s[0]);
    mae_error err = {{0}};
    char **flags = mae_xmalloc(sizeof(char *) * (size_t)(argc + 1));
    char **pos = mae_xmalloc(sizeof(char *) * (size_t)(argc + 1));
    int nflags, npos;
    split_args(s, ns, argc, argv, flags, &nflags, pos, &npos);
    int rc = args_parse(s, ns, nflags, flags, 0, "visualize", &err);
    if (rc == 1) {
        args_help(s, ns, "visualize IMAGE [IMAGE ...]",
                  "Draws MAE reconstructions as the official demo does: one row per image (JPEG, "
                  "PNG, BMP, WebP; any size, resized bicubically to input_size as PIL's "
                  "img.resize), panels original | masked | reconstruction | reconstruction + "
                  "visible.");
        free(flags);
        free(pos);
        return 0;
    }
    if (rc == MAE_OK && (!o.checkpoint || !o.output))
        rc = mae_errf(&err, "--checkpoint and --output are required (see mae visualize --help)");
    if (rc == MAE_OK && args_find(s, ns, "scale")->seen && (o.scale < 1 || o.scale > MAX_SCALE))
        rc = mae_errf(&err, "--scale: %d is not in 1..%d", o.scale, MAX_SCALE);
    if (rc == MAE_OK && args_find(s, ns, "mask_ratio")->seen &&
        !(o.mask_ratio >= 0.0 && o.mask_ratio < 1.0))
        rc = mae_errf(&err, "--mask_ratio: %g is not in [0, 1)", o.mask_ratio);
    if (rc == MAE_OK && (o.num_heads < 0 || o.decoder_num_heads < 0 || o.threads < 0))
        rc = mae_errf(&err, "--num_heads, --decoder_num_heads and --threads must be >= 0");
    if (rc == MAE_OK) rc = cli_check_device(o.device, &err);
    if (rc == MAE_OK && o.output && (!o.output[0] || o.output[strlen(o.output) - 1] == '/'))
        rc = mae_errf(&err, "--output '%s': expected a file name (e.g. grid.png)", o.output);
    vis_inputs in = {pos, npos, NULL, o.list, npos};
    if (rc == MAE_OK && o.list) {
        mae_error e2;
        if (!(in.list = mae_source_list(o.list, &e2))) rc = mae_errf(&err, "--list: %s", e2.msg);
        else in.n += (int)in.list->n;
    }
    if (rc == MAE_OK && in.n == 0)
        rc = mae_errf(&err, "no images: give image files as arguments or --list FILE (see mae "
                            "visualize --help)");
    if (rc != MAE_OK) {
        fprintf(stderr, "mae visualize: %s\n", err.msg);
        mae_source_free(in.list);
        free(flags);
        free(pos);
        return 2;
    }
    if (o.threads > 0) mae_set_num_threads(o.threads);
    rc = run(&o, s, ns, &in, &err);
    mae_source_free(in.list);
    free(flags);
    free(pos);
    if (rc != MAE_OK) {
        fprintf(stderr, "mae visualize: %s\n", err.msg);
        return 1;
    }
    return 0;
}
