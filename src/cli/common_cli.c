#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "backend.h"
#include "cli.h"
#include "common.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/source.h"
#include "io/npy.h"

void cli_model_specs(arg_spec *s, cli_model_flags *f) {
    arg_spec t[CLI_MODEL_NFLAGS] = {
        {"model", ARG_STR, &f->model, "model preset: mae_vit_{base,large}_patch16, mae_vit_huge_patch14, mae_vit_{small,tiny}_patch16, tiny-28, tiny-32, small-224, base-224", 0},
        {"input_size", ARG_INT, &f->input_size, "image size (H = W) (default: the --model preset's)", 0},
        {"patch_size", ARG_INT, &f->patch_size, "patch size p (default: the --model preset's)", 0},
        {"in_chans", ARG_INT, &f->in_chans, "input channels, 1 or 3 (default: the --model preset's)", 0},
        {"embed_dim", ARG_INT, &f->embed_dim, "encoder width (default: the --model preset's)", 0},
        {"depth", ARG_INT, &f->depth, "encoder blocks (default: the --model preset's)", 0},
        {"num_heads", ARG_INT, &f->num_heads, "encoder attention heads (default: the --model preset's)", 0},
        {"decoder_embed_dim", ARG_INT, &f->decoder_embed_dim, "decoder width (default: the --model preset's)", 0},
        {"decoder_depth", ARG_INT, &f->decoder_depth, "decoder blocks (default: the --model preset's)", 0},
        {"decoder_num_heads", ARG_INT, &f->decoder_num_heads, "decoder attention heads (default: the --model preset's)", 0},
        {"mlp_ratio", ARG_DOUBLE, &f->mlp_ratio, "MLP hidden width / model width (default 4)", 0},
        {"mask_ratio", ARG_DOUBLE, &f->mask_ratio, "fraction of patches removed (default 0.75)", 0},
        {"norm_pix_loss", ARG_FLAG, &f->norm_pix_loss,
         "loss against per-patch normalised pixels (mean, unbiased variance)", 0},
    };
    memcpy(s, t, sizeof t);
}

int cli_model_config(const arg_spec *s, const cli_model_flags *f, mae_config *cfg,
                     mae_error *err) {
    if (mae_config_preset(cfg, f->model, err) != MAE_OK) return MAE_ERR;
    if (args_find(s, CLI_MODEL_NFLAGS, "mlp_ratio")->seen && !(f->mlp_ratio > 0 && f->mlp_ratio <= 64))
        return mae_errf(err, "--mlp_ratio must be in (0, 64], got %g", f->mlp_ratio);
#define OVR(name, field, val) \
    if (args_find(s, CLI_MODEL_NFLAGS, name)->seen) cfg->field = (val);
    OVR("input_size", img_size, f->input_size)
    OVR("patch_size", patch_size, f->patch_size)
    OVR("in_chans", in_chans, f->in_chans)
    OVR("embed_dim", embed_dim, f->embed_dim)
    OVR("depth", depth, f->depth)
    OVR("num_heads", num_heads, f->num_heads)
    OVR("decoder_embed_dim", decoder_embed_dim, f->decoder_embed_dim)
    OVR("decoder_depth", decoder_depth, f->decoder_depth)
    OVR("decoder_num_heads", decoder_num_heads, f->decoder_num_heads)
    OVR("mlp_ratio", mlp_ratio, (float)f->mlp_ratio)
    OVR("mask_ratio", mask_ratio, f->mask_ratio)
    OVR("norm_pix_loss", norm_pix_loss, f->norm_pix_loss)
#undef OVR
    mae_error e2;
    if (mae_config_validate(cfg, &e2) != MAE_OK)
        return mae_errf(err, "model %s: %s", f->model, e2.msg);
    return MAE_OK;
}

void cli_pinned_batches(mae_loader_config *lc, const char *device) {
    const mae_backend *be = device && strcmp(device, "cpu") != 0 ? mae_backend_get(device) : NULL;
    if (be) {
        lc->host_alloc = be->host_alloc;
        lc->host_free = be->host_free;
    }
}

const char *cli_default_precision(const char *device) {
    return device && strcmp(device, "cuda") == 0 ? "bf16" : "fp32";
}

int cli_check_device(const char *dev, mae_error *err) {
    char why[256];
    if (!dev) dev = "cpu";
    if (mae_backend_find(dev, why, sizeof why)) return MAE_OK;
    return mae_errf(err, "--device %s: %s", dev, why);
}

int cli_mkdirs(const char *path, mae_error *err) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return mae_errf(err, "bad directory path '%s'", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return mae_errf(err, "cannot create directory '%s': %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return mae_errf(err, "'%s' exists and is not a directory", path);
    return MAE_OK;
}


static double stack_flops(double T, double C, double H, double nl) {
    return nl * (2.0 * T * (3 * C * C + C * C + 2 * C * H) + 4.0 * T * T * C);
}

double cli_forward_flops(const mae_config *c, int K) {
    double L = mae_config_num_patches(c), P = mae_config_patch_dim(c), Te = 1 + K, Td = 1 + L;
    double D = c->embed_dim, Dd = c->decoder_embed_dim;
    double f = 2.0 * K * P * D;
    f += stack_flops(Te, D, (int)(D * c->mlp_ratio), c->depth);
    f += 2.0 * Te * D * Dd;
    f += stack_flops(Td, Dd, (int)(Dd * c->mlp_ratio), c->decoder_depth);
    f += 2.0 * Td * Dd * P;
    return f;
}

double cli_encoder_flops(const mae_config *c) {
    double L = mae_config_num_patches(c), P = mae_config_patch_dim(c), D = c->embed_dim;
    return 2.0 * L * P * D + stack_flops(1 + L, D, (int)(D * c->mlp_ratio), c->depth);
}

const char *cli_data_root(const char *data_path) {
    const char *def = getenv("MAE_FASHION_MNIST_DIR");
    return data_path ? data_path : def && *def ? def : MAE_FASHION_MNIST_DIR;
}

mae_source *cli_open_source(const char *data_path, int train, mae_error *err) {
    const char *path = cli_data_root(data_path);
    struct stat st;
    if (!data_path && stat(path, &st) != 0) {
        mae_errf(err, "no --data_path given and Fashion-MNIST is not installed in %s; install it "
                      "with `sudo apt-get install dataset-fashion-mnist` or pass --data_path", path);
        return NULL;
    }
    mae_error e2;
    mae_source *src = mae_source_open(path, train, &e2);
    if (!src) mae_errf(err, "--data_path: %s", e2.msg);
    return src;
}

int cli_masking_noise(float *noise, int N, int L, const char *path, uint64_t seed,
                      mae_error *err) {
    if (!path) { /* image i is sample i */
        uint64_t *sid = mae_xmalloc(sizeof(uint64_t) * (size_t)(N > 0 ? N : 1));
        for (int i = 0; i < N; i++) sid[i] = (uint64_t)i;
        mae_make_noise(noise, N, L, seed, sid);
        free(sid);
        return MAE_OK;
    }
    npy_array nz = {0};
    mae_error e2;
    int rc = MAE_OK;
    if (npy_load_f32(path, &nz, &e2) != MAE_OK) {
        rc = mae_errf(err, "--noise %s", e2.msg);
    } else if (nz.ndim != 2 || nz.shape[0] != N || nz.shape[1] != L) {
        char got[256];
        mae_shape_str(got, sizeof got, nz.ndim, nz.shape, "()");
        rc = mae_errf(err, "--noise %s: expected shape (%d, %d), got %s (images, patches)", path,
                      N, L, got);
    } else {
        for (size_t k = 0; rc == MAE_OK && k < nz.numel; k++)
            if (!isfinite(((const float *)nz.data)[k]))
                rc = mae_errf(err, "--noise %s: contains NaN or Inf", path);
        if (rc == MAE_OK) memcpy(noise, nz.data, sizeof(float) * (size_t)N * L);
    }
    npy_free(&nz);
    return rc;
}
