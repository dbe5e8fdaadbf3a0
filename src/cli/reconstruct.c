/* reconstruct.c - `mae reconstruct`: forward a batch of normalised images (.npy) through a
 * checkpoint and write pred.npy (N,L,P), mask.npy (N,L) and ids_restore.npy (N,L) int64, and
 * print `loss <value>`, so that users can check our model against theirs. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "common.h"
#include "io/checkpoint.h"
#include "io/npy.h"
#include "io/statedict.h"

#define MAX_CHUNK 64

typedef struct recon_opts {
    const char *checkpoint, *input, *noise, *out, *device;
    double mask_ratio;
    int norm_pix_loss, num_heads, decoder_num_heads, threads;
    uint64_t seed;
} recon_opts;

static int check_input(const mae_config *c, const npy_array *x, const recon_opts *o,
                       mae_error *err) {
    char got[256];
    mae_shape_str(got, sizeof got, x->ndim, x->shape, "()");
    if (x->ndim != 4 || x->shape[1] != c->in_chans || x->shape[2] != c->img_size ||
        x->shape[3] != c->img_size || x->shape[0] < 1)
        return mae_errf(err, "--input %s: expected shape (N, %d, %d, %d) for this checkpoint, got %s",
                        o->input, c->in_chans, c->img_size, c->img_size, got);
    for (size_t i = 0; i < x->numel; i++)
        if (!isfinite(((const float *)x->data)[i]))
            return mae_errf(err, "--input %s: contains NaN or Inf", o->input);
    return MAE_OK;
}

/* sd: the checkpoint, open; closed as soon as the weights are loaded */
static int run_sd(const recon_opts *o, const arg_spec *s, int ns, mae_sd *sd, mae_error *err) {
    mae_config cfg;
    if (mae_sd_config(sd, o->num_heads, o->decoder_num_heads, &cfg, 0, err)) return MAE_ERR;
    if (args_find(s, ns, "mask_ratio")->seen) cfg.mask_ratio = o->mask_ratio;
    if (o->norm_pix_loss) cfg.norm_pix_loss = 1;
    mae_error e2;
    if (mae_config_validate(&cfg, &e2) != MAE_OK) return mae_errf(err, "%s", e2.msg);
    npy_array x = {0};
    mae_model *m = NULL;
    float *pred = NULL, *mask = NULL, *noise = NULL;
    int64_t *ids = NULL;
    int rc = npy_load_f32(o->input, &x, err);
    if (rc == MAE_OK) rc = check_input(&cfg, &x, o, err);
    int N = rc == MAE_OK ? (int)x.shape[0] : 0, L = mae_config_num_patches(&cfg);
    int P = mae_config_patch_dim(&cfg), chunk = N < MAX_CHUNK ? N : MAX_CHUNK;
    if (rc == MAE_OK) {
        noise = mae_xmalloc(sizeof(float) * (size_t)N * L);
        rc = cli_masking_noise(noise, N, L, o->noise, o->seed, err);
    }
    if (rc == MAE_OK && cli_mkdirs(o->out, err) != MAE_OK) rc = MAE_ERR;
    if (rc == MAE_OK && !(m = mae_model_create(&cfg, chunk, o->device, err))) rc = MAE_ERR;
    if (rc == MAE_OK) rc = mae_model_load_sd(m, sd, err);
    mae_sd_close(sd); /* the weights are in the model: free the file's copy */
    if (rc == MAE_OK) {
        pred = mae_xmalloc(sizeof(float) * (size_t)N * L * P);
        mask = mae_xmalloc(sizeof(float) * (size_t)N * L);
        ids = mae_xmalloc(sizeof(int64_t) * (size_t)N * L);
    }
    /* every sample removes the same number of patches, so the batch loss is the mean of the
     * chunk losses weighted by their sizes */
    double loss_sum = 0;
    size_t npix = (size_t)cfg.in_chans * cfg.img_size * cfg.img_size;
    for (int b0 = 0; rc == MAE_OK && b0 < N; b0 += chunk) {
        int B = N - b0 < chunk ? N - b0 : chunk;
        float loss;
        rc = mae_forward(m, (const float *)x.data + (size_t)b0 * npix, noise + (size_t)b0 * L, B,
                         -1.0, &loss, err);
        if (rc != MAE_OK) break;
        if (!isfinite(loss)) {
            rc = mae_errf(err, "the loss is not finite for images %d..%d of --input %s (values "
                               "too large for float32?); no output written", b0, b0 + B - 1, o->input);
            break;
        }
        loss_sum += (double)loss * B;
        mae_get_pred(m, pred + (size_t)b0 * L * P);
        mae_get_mask(m, mask + (size_t)b0 * L);
        mae_get_ids_restore(m, ids + (size_t)b0 * L);
    }
    if (rc == MAE_OK) {
        char path[4096];
        int64_t sp[3] = {N, L, P}, sm[2] = {N, L};
        snprintf(path, sizeof path, "%s/pred.npy", o->out);
        rc = npy_save(path, "<f4", 3, sp, pred, err);
        snprintf(path, sizeof path, "%s/mask.npy", o->out);
        if (rc == MAE_OK) rc = npy_save(path, "<f4", 2, sm, mask, err);
        snprintf(path, sizeof path, "%s/ids_restore.npy", o->out);
        if (rc == MAE_OK) rc = npy_save(path, "<i8", 2, sm, ids, err);
    }
    if (rc == MAE_OK) printf("loss %.9g\n", loss_sum / N);
    free(pred);
    free(mask);
    free(ids);
    free(noise);
    npy_free(&x);
    mae_model_free(m);
    return rc;
}

static int run(const recon_opts *o, const arg_spec *s, int ns, mae_error *err) {
    mae_sd sd; /* the checkpoint in any format, read once */
    if (mae_sd_open(&sd, o->checkpoint, err) != MAE_OK) return MAE_ERR;
    int rc = run_sd(o, s, ns, &sd, err);
    mae_sd_close(&sd);
    return rc;
}

int cmd_reconstruct(int argc, char **argv) {
    recon_opts o = {.mask_ratio = 0.75, .device = "cpu"};
    arg_spec s[] = {
        {"checkpoint", ARG_STR, &o.checkpoint, "checkpoint: ours, official .pth, timm, or an HF folder (required)", 0},
        {"input", ARG_STR, &o.input, "(N,C,H,W) float32 .npy of normalised images (required)", 0},
        {"noise", ARG_STR, &o.noise, "(N,L) .npy masking noise (default: derived from --seed)", 0},
        {"out", ARG_STR, &o.out, "output folder for pred.npy, mask.npy, ids_restore.npy (required)", 0},
        {"mask_ratio", ARG_DOUBLE, &o.mask_ratio, "fraction removed (default: the checkpoint's, else 0.75)", 0},
        {"norm_pix_loss", ARG_FLAG, &o.norm_pix_loss, "loss against per-patch normalised pixels", 0},
        {"num_heads", ARG_INT, &o.num_heads, "encoder heads when the file has no config", 0},
        {"decoder_num_heads", ARG_INT, &o.decoder_num_heads, "decoder heads when the file has no config", 0},
        {"seed", ARG_U64, &o.seed, "noise seed when --noise is not given (default 0)", 0},
        {"device", ARG_STR, &o.device, CLI_DEVICE_HELP, 0},
        {"threads", ARG_INT, &o.threads, "threads (default: all cores)", 0},
    };
    int ns = (int)(sizeof s / sizeof s[0]);
    mae_error err = {{0}};
    int rc = args_parse(s, ns, argc, argv, 2, "reconstruct", &err);
    if (rc == 1) {
        args_help(s, ns, "reconstruct", "Runs the MAE forward pass on a batch and writes its outputs.");
        return 0;
    }
    if (rc == MAE_OK && (!o.checkpoint || !o.input || !o.out))
        rc = mae_errf(&err, "--checkpoint, --input and --out are required (see mae reconstruct --help)");
    if (rc == MAE_OK && (o.num_heads < 0 || o.decoder_num_heads < 0 || o.threads < 0))
        rc = mae_errf(&err, "--num_heads, --decoder_num_heads and --threads must be >= 0");
    if (rc == MAE_OK) rc = cli_check_device(o.device, &err);
    if (rc != MAE_OK) {
        fprintf(stderr, "mae reconstruct: %s\n", err.msg);
        return 2;
    }
    if (o.threads > 0) mae_set_num_threads(o.threads);
    if (run(&o, s, ns, &err) != MAE_OK) {
        fprintf(stderr, "mae reconstruct: %s\n", err.msg);
        return 1;
    }
    return 0;
}
