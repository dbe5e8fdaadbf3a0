/* statedict.c - a checkpoint in any imported format as official-named float tensors. */
#include "statedict.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "io/fileio.h"

void mae_sd_close(mae_sd *sd) {
    if (sd->container == SD_PTH) pth_close(&sd->pth);
    else st_close(&sd->st);
    free(sd->t);
    memset(sd, 0, sizeof *sd);
    sd->container = SD_SAFETENSORS;
}

int mae_sd_find(const mae_sd *sd, const char *name) {
    for (int i = 0; i < sd->n; i++)
        if (strcmp(sd->t[i].name, name) == 0) return i;
    return -1;
}

/* container access */
static int c_count(const mae_sd *sd) { return sd->container == SD_PTH ? sd->pth.n : sd->st.n; }
static const char *c_name(const mae_sd *sd, int j) {
    return sd->container == SD_PTH ? sd->pth.t[j].name : sd->st.t[j].name;
}
static int c_shape(const mae_sd *sd, int j, const int64_t **shape) {
    if (sd->container == SD_PTH) {
        *shape = sd->pth.t[j].shape;
        return sd->pth.t[j].ndim;
    }
    *shape = sd->st.t[j].shape;
    return sd->st.t[j].ndim;
}

int mae_sd_read(const mae_sd *sd, int i, float *dst, size_t expected_numel, mae_error *err) {
    const sd_tensor *t = &sd->t[i];
    if (t->numel != expected_numel)
        return mae_errf(err, "%s: tensor '%s' has %zu elements, expected %zu", sd->path, t->src,
                        t->numel, expected_numel);
    size_t per = t->numel / (size_t)t->nparts;
    for (int p = 0; p < t->nparts; p++) {
        int rc = sd->container == SD_PTH ? pth_read_f32(&sd->pth, t->part[p], dst + p * per, per, err)
                                         : st_read_f32(&sd->st, t->part[p], dst + p * per, per, err);
        if (rc != MAE_OK) return MAE_ERR;
    }
    return MAE_OK;
}

/* ------------------------------------------------------------------ HF config.json */

static int json_num(const cJSON *o, const char *k, double *v) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(it)) return 0;
    *v = it->valuedouble;
    return 1;
}

static int read_hf_config(mae_sd *sd, const char *cfg_path, mae_error *err) {
    uint8_t *buf = NULL;
    size_t len = 0;
    if (mae_read_file(cfg_path, &buf, &len, err) != MAE_OK) return MAE_ERR;
    cJSON *o = cJSON_Parse((const char *)buf);
    free(buf);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return mae_errf(err, "%s: not a JSON object", cfg_path);
    }
    int rc = MAE_OK;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "hidden_act");
    const cJSON *qkvb = cJSON_GetObjectItemCaseSensitive(o, "qkv_bias");
    double v, a, b, dh;
    if (act && !(cJSON_IsString(act) && strcmp(act->valuestring, "gelu") == 0))
        rc = mae_errf(err, "%s: hidden_act %s is not supported (MAE uses exact 'gelu')", cfg_path,
                      cJSON_IsString(act) ? act->valuestring : "(not a string)");
    else if (qkvb && !cJSON_IsTrue(qkvb))
        rc = mae_errf(err, "%s: qkv_bias false is not supported (MAE has qkv biases)", cfg_path);
    else if (json_num(o, "intermediate_size", &a) && json_num(o, "hidden_size", &b) &&
             json_num(o, "decoder_intermediate_size", &v) &&
             json_num(o, "decoder_hidden_size", &dh) && b > 0 && dh > 0 && a / b != v / dh)
        rc = mae_errf(err, "%s: encoder and decoder MLP ratios differ (%g vs %g); mae uses one "
                           "mlp_ratio for both", cfg_path, a / b, v / dh);
    if (rc == MAE_OK) {
        if (json_num(o, "num_attention_heads", &v)) sd->num_heads = (int)v;
        if (json_num(o, "decoder_num_attention_heads", &v)) sd->decoder_num_heads = (int)v;
        if (json_num(o, "mask_ratio", &v)) sd->mask_ratio = v;
        sd->layer_norm_eps = json_num(o, "layer_norm_eps", &v) ? (float)v : 1e-12f;
        const cJSON *np = cJSON_GetObjectItemCaseSensitive(o, "norm_pix_loss");
        if (np) sd->norm_pix_loss = cJSON_IsTrue(np) || (cJSON_IsNumber(np) && np->valuedouble != 0);
    }
    cJSON_Delete(o);
    return rc;
}

/* ------------------------------------------------------------------ open */

static int is_dir(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}
static int is_file(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISREG(s.st_mode);
}

static int open_container(mae_sd *sd, const char *file, mae_error *err) {
    FILE *f = fopen(file, "rb");
    if (!f) return mae_errf(err, "%s: cannot open: %s", file, strerror(errno));
    uint8_t head[4] = {0};
    size_t got = fread(head, 1, 4, f);
    fclose(f);
    snprintf(sd->path, sizeof sd->path, "%s", file);
    if (pth_is_zip(head, got)) {
        sd->container = SD_PTH;
        return pth_open(&sd->pth, file, err);
    }
    if (got >= 2 && head[0] == 0x80 && head[1] <= 5)
        return mae_errf(err, "%s: a legacy (pre-1.6) torch.save file; re-save it with torch >= 1.6 "
                             "(torch.save(torch.load(f), f2))", file);
    sd->container = SD_SAFETENSORS;
    return st_open(&sd->st, file, err);
}

/* model name of an official run ("mae_vit_large_patch16", or "vit_large_patch16" of
 * main_finetune) -> the heads of the preset */
static void heads_from_args(mae_sd *sd) {
    const char *model = pth_arg(&sd->pth, "model");
    if (model) {
        char name[128];
        mae_config c;
        snprintf(name, sizeof name, "%s%s", strncmp(model, "mae_", 4) ? "mae_" : "", model);
        if (mae_config_preset(&c, name, NULL) == MAE_OK) {
            sd->num_heads = c.num_heads;
            sd->decoder_num_heads = c.decoder_num_heads;
        }
    }
    const char *np = pth_arg(&sd->pth, "norm_pix_loss");
    if (np) sd->norm_pix_loss = strcmp(np, "True") == 0 || strcmp(np, "1") == 0;
    const char *mr = pth_arg(&sd->pth, "mask_ratio");
    if (mr) sd->mask_ratio = atof(mr);
}

static int build_table(mae_sd *sd, mae_error *err) {
    int nc = c_count(sd);
    sd->t = mae_xcalloc((size_t)(nc > 0 ? nc : 1), sizeof(sd_tensor));
    int any_hf = 0;
    for (int j = 0; j < nc; j++) {
        const char *src = c_name(sd, j);
        size_t sl = strlen(src);
        if (sl >= 19 && strcmp(src + sl - 19, "num_batches_tracked") == 0) continue;
        char name[256];
        int hf, part = mae_sd_map_name(src, name, sizeof name, &hf);
        any_hf |= hf;
        if (strlen(name) >= MAE_MAX_NAME)
            return mae_errf(err, "%s: tensor name '%s' is too long", sd->path, src);
        const int64_t *shape;
        int ndim = c_shape(sd, j, &shape);
        int i = mae_sd_find(sd, name);
        if (i >= 0 && part < 0)
            return mae_errf(err, "%s: tensors '%s' and '%s' both map to '%s'", sd->path,
                            sd->t[i].src, src, name);
        if (i < 0) {
            i = sd->n++;
            sd_tensor *t = &sd->t[i];
            memcpy(t->name, name, strlen(name) + 1); /* < MAE_MAX_NAME, checked above */
            t->src = src;
            t->nparts = part < 0 ? 1 : SD_MAX_PARTS;
            for (int p = 0; p < SD_MAX_PARTS; p++) t->part[p] = -1;
            if (ndim > 4)
                return mae_errf(err, "%s: tensor '%s' has %d dims (at most 4 expected)", sd->path,
                                src, ndim);
            t->ndim = ndim;
            t->numel = 1;
            for (int d = 0; d < ndim; d++) {
                t->shape[d] = shape[d];
                t->numel *= (size_t)shape[d];
            }
        }
        sd_tensor *t = &sd->t[i];
        if (part >= 0) {
            int same = ndim == t->ndim;
            for (int d = 0; same && d < ndim; d++) same = shape[d] == t->shape[d];
            if (!same || ndim < 1)
                return mae_errf(err, "%s: '%s' has a different shape from the other query/key/value "
                                     "tensors of its layer", sd->path, src);
            if (t->part[part] >= 0)
                return mae_errf(err, "%s: tensor '%s' appears twice", sd->path, src);
            t->part[part] = j;
            if (part == 0) t->src = src;
        } else {
            t->part[0] = j;
        }
    }
    for (int i = 0; i < sd->n; i++) { /* fused q, k, v: all three parts, dim 0 tripled */
        sd_tensor *t = &sd->t[i];
        if (t->nparts == 1) continue;
        for (int p = 0; p < SD_MAX_PARTS; p++)
            if (t->part[p] < 0)
                return mae_errf(err, "%s: '%s' lacks its %s tensor", sd->path, t->name,
                                p == 0 ? "query" : p == 1 ? "key" : "value");
        t->shape[0] *= 3;
        t->numel *= 3;
    }
    if (any_hf) sd->format = SD_FMT_HF;
    return MAE_OK;
}

int mae_sd_open(mae_sd *sd, const char *path, mae_error *err) {
    memset(sd, 0, sizeof *sd);
    sd->container = SD_SAFETENSORS;
    sd->norm_pix_loss = -1;
    char file[1024], cfg[1024] = "";
    int rc;
    if (is_dir(path)) {
        snprintf(cfg, sizeof cfg, "%s/config.json", path);
        snprintf(file, sizeof file, "%s/model.safetensors", path);
        if (!is_file(file)) snprintf(file, sizeof file, "%s/pytorch_model.bin", path);
        if (!is_file(file)) {
            char idx[1024];
            snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", path);
            return mae_errf(err, "%s: is a directory, and not an HF transformers model folder: "
                                 "no model.safetensors or pytorch_model.bin%s",
                            path, is_file(idx) ? " (sharded checkpoints are not supported)" : "");
        }
        if (!is_file(cfg))
            return mae_errf(err, "%s: an HF model folder without config.json", path);
    } else {
        snprintf(file, sizeof file, "%s", path);
    }
    rc = open_container(sd, file, err);
    if (rc == MAE_OK) rc = build_table(sd, err);
    if (rc == MAE_OK && sd->container == SD_SAFETENSORS) {
        const char *fmt = st_meta(&sd->st, "format");
        sd->meta_config = st_meta(&sd->st, "config");
        sd->meta_classifier = st_meta(&sd->st, "classifier");
        if (fmt && strcmp(fmt, "mae") == 0 && sd->format != SD_FMT_HF) sd->format = SD_FMT_MAE;
        else if (sd->format != SD_FMT_HF) sd->format = SD_FMT_OFFICIAL;
    } else if (rc == MAE_OK) {
        if (sd->format != SD_FMT_HF) sd->format = SD_FMT_OFFICIAL;
        heads_from_args(sd);
    }
    if (rc == MAE_OK && sd->format == SD_FMT_HF) {
        if (!cfg[0]) { /* a lone HF weights file: its config.json may lie beside it */
            const char *slash = strrchr(file, '/');
            snprintf(cfg, sizeof cfg, "%.*sconfig.json", slash ? (int)(slash - file + 1) : 0, file);
            if (!is_file(cfg)) cfg[0] = 0;
        }
        if (cfg[0]) rc = read_hf_config(sd, cfg, err);
        else sd->layer_norm_eps = 1e-12f; /* transformers' ViTMAEConfig default */
    }
    if (rc == MAE_OK)
        snprintf(sd->origin, sizeof sd->origin, "%s names, %s",
                 sd->format == SD_FMT_HF ? "HF transformers" :
                 sd->format == SD_FMT_MAE ? "mae" : "official/timm",
                 sd->container == SD_PTH ? "torch.save zip" : "safetensors");
    if (rc != MAE_OK) mae_sd_close(sd);
    return rc;
}
