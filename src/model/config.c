/* config.c - model presets, validation and JSON encoding of mae_config. */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "common.h"

typedef struct preset {
    const char *name;
    mae_config cfg;
} preset;

/* img, patch, chans, D, depth, heads, Dd, ddepth, dheads, mlp_ratio, mask_ratio, norm_pix,
 * layer_norm_eps */
static const preset k_presets[] = {
    {"mae_vit_base_patch16", {224, 16, 3, 768, 12, 12, 512, 8, 16, 4.0f, 0.75f, 0, 1e-6f}},
    {"mae_vit_large_patch16", {224, 16, 3, 1024, 24, 16, 512, 8, 16, 4.0f, 0.75f, 0, 1e-6f}},
    {"mae_vit_huge_patch14", {224, 14, 3, 1280, 32, 16, 512, 8, 16, 4.0f, 0.75f, 0, 1e-6f}},
    {"mae_vit_small_patch16", {224, 16, 3, 384, 12, 6, 256, 4, 8, 4.0f, 0.75f, 0, 1e-6f}},
    {"mae_vit_tiny_patch16", {224, 16, 3, 192, 12, 3, 128, 4, 4, 4.0f, 0.75f, 0, 1e-6f}},
    {"tiny-28", {28, 4, 1, 192, 12, 3, 128, 4, 4, 4.0f, 0.75f, 0, 1e-6f}},
    {"tiny-32", {32, 4, 3, 192, 12, 3, 128, 4, 4, 4.0f, 0.75f, 0, 1e-6f}},
    {"small-224", {224, 16, 3, 384, 12, 6, 256, 4, 8, 4.0f, 0.75f, 0, 1e-6f}},
    {"base-224", {224, 16, 3, 768, 12, 12, 512, 8, 16, 4.0f, 0.75f, 0, 1e-6f}},
};
#define N_PRESETS ((int)(sizeof k_presets / sizeof k_presets[0]))

int mae_config_preset(mae_config *cfg, const char *name, mae_error *err) {
    for (int i = 0; i < N_PRESETS; i++) {
        if (strcmp(k_presets[i].name, name) == 0) {
            *cfg = k_presets[i].cfg;
            return MAE_OK;
        }
    }
    return mae_errf(err, "--model: unknown model '%s' (known: %s)", name,
                    mae_config_preset_names());
}

const char *mae_config_preset_names(void) {
    return "mae_vit_base_patch16, mae_vit_large_patch16, mae_vit_huge_patch14, "
           "mae_vit_small_patch16, mae_vit_tiny_patch16, tiny-28, tiny-32, small-224, base-224";
}

int mae_config_num_patches(const mae_config *c) {
    int g = c->img_size / c->patch_size;
    return g * g;
}

int mae_config_len_keep(const mae_config *c) {
    /* int(L * (1 - mask_ratio)) in double arithmetic, exactly as the official Python */
    return (int)(mae_config_num_patches(c) * (1.0 - c->mask_ratio));
}

int mae_config_patch_dim(const mae_config *c) {
    return c->patch_size * c->patch_size * c->in_chans;
}

static int check_stack(const char *what, int dim, int depth, int heads, mae_error *err) {
    if (dim < 1 || dim > 16384) return mae_errf(err, "%s_embed_dim must be in [1, 16384], got %d", what, dim);
    if (depth < 1 || depth > 256) return mae_errf(err, "%s_depth must be in [1, 256], got %d", what, depth);
    if (heads < 1) return mae_errf(err, "%s_num_heads must be >= 1, got %d", what, heads);
    if (dim % 4 != 0)
        return mae_errf(err, "%s_embed_dim must be a multiple of 4 for the 2-D sin-cos position embedding, got %d", what, dim);
    if (dim % heads != 0)
        return mae_errf(err, "%s_num_heads (%d) must divide %s_embed_dim (%d)", what, heads, what, dim);
    return MAE_OK;
}

int mae_config_validate(const mae_config *c, mae_error *err) {
    if (c->img_size < 1 || c->img_size > 8192)
        return mae_errf(err, "input_size must be in [1, 8192], got %d", c->img_size);
    if (c->patch_size < 1 || c->patch_size > c->img_size)
        return mae_errf(err, "patch_size must be in [1, input_size=%d], got %d", c->img_size, c->patch_size);
    if (c->img_size % c->patch_size != 0)
        return mae_errf(err, "input_size %d is not divisible by patch_size %d", c->img_size,
                        c->patch_size);
    if (c->in_chans != 1 && c->in_chans != 3)
        return mae_errf(err, "in_chans must be 1 or 3, got %d", c->in_chans);
    if (check_stack("encoder", c->embed_dim, c->depth, c->num_heads, err)) return MAE_ERR;
    if (check_stack("decoder", c->decoder_embed_dim, c->decoder_depth, c->decoder_num_heads, err))
        return MAE_ERR;
    if (!(c->mlp_ratio > 0.0f) || c->mlp_ratio > 64.0f || (int)(c->embed_dim * c->mlp_ratio) < 1 ||
        (int)(c->decoder_embed_dim * c->mlp_ratio) < 1)
        return mae_errf(err, "mlp_ratio must be in (0, 64] and give a hidden width >= 1, got %g",
                        (double)c->mlp_ratio);
    if (!(c->mask_ratio >= 0.0 && c->mask_ratio < 1.0))
        return mae_errf(err, "mask_ratio must be in [0, 1), got %g", c->mask_ratio);
    if (mae_config_len_keep(c) < 1)
        return mae_errf(err,
                        "mask_ratio %g leaves no visible patch out of %d (int(L*(1-r)) = 0)",
                        c->mask_ratio, mae_config_num_patches(c));
    if (!(c->layer_norm_eps >= 0.0f) || c->layer_norm_eps > 1.0f)
        return mae_errf(err, "layer_norm_eps must be in [0, 1] (0 = 1e-6), got %g",
                        (double)c->layer_norm_eps);
    if (c->norm_pix_loss && mae_config_patch_dim(c) < 2)
        return mae_errf(err, "norm_pix_loss needs at least 2 values per patch (patch_size^2 * in_chans)");
    return MAE_OK;
}

float mae_config_ln_eps(const mae_config *c) {
    return c->layer_norm_eps > 0.0f ? c->layer_norm_eps : 1e-6f;
}

int mae_config_to_json(const mae_config *c, char *buf, size_t cap) {
    int n = snprintf(buf, cap,
                     "{\"img_size\":%d,\"patch_size\":%d,\"in_chans\":%d,\"embed_dim\":%d,"
                     "\"depth\":%d,\"num_heads\":%d,\"decoder_embed_dim\":%d,"
                     "\"decoder_depth\":%d,\"decoder_num_heads\":%d,\"mlp_ratio\":%.9g,"
                     "\"mask_ratio\":%.17g,\"norm_pix_loss\":%s,\"layer_norm_eps\":%.9g}",
                     c->img_size, c->patch_size, c->in_chans, c->embed_dim, c->depth,
                     c->num_heads, c->decoder_embed_dim, c->decoder_depth, c->decoder_num_heads,
                     (double)c->mlp_ratio, c->mask_ratio,
                     c->norm_pix_loss ? "true" : "false", (double)mae_config_ln_eps(c));
    return (n < 0 || (size_t)n >= cap) ? MAE_ERR : MAE_OK;
}

static int json_int(const cJSON *o, const char *key, int *out, mae_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return MAE_OK; /* keep the current value */
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
        fabs(v->valuedouble) > 1e9)
        return mae_errf(err, "config: '%s' must be an integer", key);
    *out = (int)v->valuedouble;
    return MAE_OK;
}

int mae_config_from_json(mae_config *c, const char *json, mae_error *err) {
    cJSON *o = cJSON_Parse(json);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return mae_errf(err, "config: not a JSON object");
    }
    mae_config t = {0};
    t.mlp_ratio = 4.0f;
    t.mask_ratio = 0.75f;
    int rc = MAE_OK;
    struct {
        const char *k;
        int *p;
    } ints[] = {{"img_size", &t.img_size},
                {"patch_size", &t.patch_size},
                {"in_chans", &t.in_chans},
                {"embed_dim", &t.embed_dim},
                {"depth", &t.depth},
                {"num_heads", &t.num_heads},
                {"decoder_embed_dim", &t.decoder_embed_dim},
                {"decoder_depth", &t.decoder_depth},
                {"decoder_num_heads", &t.decoder_num_heads}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && rc == MAE_OK; i++)
        rc = json_int(o, ints[i].k, ints[i].p, err);
    const cJSON *v;
    if (rc == MAE_OK && (v = cJSON_GetObjectItemCaseSensitive(o, "mlp_ratio"))) {
        if (cJSON_IsNumber(v)) t.mlp_ratio = (float)v->valuedouble;
        else rc = mae_errf(err, "config: 'mlp_ratio' must be a number");
    }
    if (rc == MAE_OK && (v = cJSON_GetObjectItemCaseSensitive(o, "mask_ratio"))) {
        if (cJSON_IsNumber(v)) t.mask_ratio = v->valuedouble;
        else rc = mae_errf(err, "config: 'mask_ratio' must be a number");
    }
    if (rc == MAE_OK && (v = cJSON_GetObjectItemCaseSensitive(o, "norm_pix_loss"))) {
        if (cJSON_IsBool(v)) t.norm_pix_loss = cJSON_IsTrue(v);
        else if (cJSON_IsNumber(v)) t.norm_pix_loss = v->valuedouble != 0.0;
        else rc = mae_errf(err, "config: 'norm_pix_loss' must be a boolean");
    }
    if (rc == MAE_OK && (v = cJSON_GetObjectItemCaseSensitive(o, "layer_norm_eps"))) {
        if (cJSON_IsNumber(v)) t.layer_norm_eps = (float)v->valuedouble;
        else rc = mae_errf(err, "config: 'layer_norm_eps' must be a number");
    }
    cJSON_Delete(o);
    if (rc != MAE_OK) return rc;
    if (mae_config_validate(&t, err) != MAE_OK) return MAE_ERR;
    *c = t;
    return MAE_OK;
}
