/* export.c - a checkpoint (any format mae_sd_open reads) written for other tools:
 *   official: model.safetensors (official names) + config.json = the keyword arguments of
 *             models_mae.MaskedAutoencoderViT (or models_vit.VisionTransformer for a classifier;
 *             just the encoder's for an encoder-only file);
 *   timm:     model.safetensors (encoder, + fc_norm/head of a classifier) + config.json in timm's
 *             hub layout (architecture, num_classes, global_pool, model_args, pretrained_cfg);
 *   hf:       model.safetensors (transformers 4.x names, qkv split into query/key/value) +
 *             config.json of ViTMAEForPreTraining (or ViTMAEModel for an encoder-only file).
 * Everything is float32; files are written atomically into the output folder. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "data/dataset.h"
#include "io/checkpoint.h"
#include "io/fileio.h"
#include "io/safetensors.h"
#include "io/statedict.h"

enum { KIND_MAE, KIND_ENCODER, KIND_CLASSIFIER };

static int write_json(const char *dir, cJSON *o, mae_error *err) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *txt = cJSON_Print(o);
    FILE *f = mae_atomic_open(path, tmp, sizeof tmp, err);
    if (f && txt) fprintf(f, "%s\n", txt);
    int rc = f ? mae_atomic_commit(f, tmp, path, err) : MAE_ERR;
    free(txt);
    return rc;
}

static int is_encoder_tensor(const char *n) {
    return !strcmp(n, "cls_token") || !strcmp(n, "pos_embed") || !strncmp(n, "patch_embed.", 12) ||
           !strncmp(n, "blocks.", 7) || !strncmp(n, "norm.", 5);
}
static int is_head_tensor(const char *n) {
    return !strncmp(n, "fc_norm.", 8) || !strncmp(n, "head.", 5);
}

static void add_model_args(cJSON *o, const mae_config *c, int with_decoder) {
    cJSON_AddNumberToObject(o, "img_size", c->img_size);
    cJSON_AddNumberToObject(o, "patch_size", c->patch_size);
    cJSON_AddNumberToObject(o, "in_chans", c->in_chans);
    cJSON_AddNumberToObject(o, "embed_dim", c->embed_dim);
    cJSON_AddNumberToObject(o, "depth", c->depth);
    cJSON_AddNumberToObject(o, "num_heads", c->num_heads);
    cJSON_AddNumberToObject(o, "mlp_ratio", c->mlp_ratio);
    if (with_decoder) {
        cJSON_AddNumberToObject(o, "decoder_embed_dim", c->decoder_embed_dim);
        cJSON_AddNumberToObject(o, "decoder_depth", c->decoder_depth);
        cJSON_AddNumberToObject(o, "decoder_num_heads", c->decoder_num_heads);
        cJSON_AddBoolToObject(o, "norm_pix_loss", c->norm_pix_loss);
    }
}

static cJSON *hf_config(const mae_config *c, int kind) {
    cJSON *o = cJSON_CreateObject(), *arch = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString(kind == KIND_MAE ? "ViTMAEForPreTraining"
                                                                    : "ViTMAEModel"));
    cJSON_AddStringToObject(o, "model_type", "vit_mae");
    cJSON_AddNumberToObject(o, "hidden_size", c->embed_dim);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->depth);
    cJSON_AddNumberToObject(o, "num_attention_heads", c->num_heads);
    cJSON_AddNumberToObject(o, "intermediate_size", (int)(c->embed_dim * c->mlp_ratio));
    cJSON_AddStringToObject(o, "hidden_act", "gelu");
    cJSON_AddNumberToObject(o, "hidden_dropout_prob", 0.0);
    cJSON_AddNumberToObject(o, "attention_probs_dropout_prob", 0.0);
    cJSON_AddNumberToObject(o, "initializer_range", 0.02);
    cJSON_AddNumberToObject(o, "layer_norm_eps", mae_config_ln_eps(c));
    cJSON_AddNumberToObject(o, "image_size", c->img_size);
    cJSON_AddNumberToObject(o, "patch_size", c->patch_size);
    cJSON_AddNumberToObject(o, "num_channels", c->in_chans);
    cJSON_AddBoolToObject(o, "qkv_bias", 1);
    cJSON_AddNumberToObject(o, "decoder_num_attention_heads", c->decoder_num_heads);
    cJSON_AddNumberToObject(o, "decoder_hidden_size", c->decoder_embed_dim);
    cJSON_AddNumberToObject(o, "decoder_num_hidden_layers", c->decoder_depth);
    cJSON_AddNumberToObject(o, "decoder_intermediate_size",
                            (int)(c->decoder_embed_dim * c->mlp_ratio));
    cJSON_AddNumberToObject(o, "mask_ratio", c->mask_ratio);
    cJSON_AddBoolToObject(o, "norm_pix_loss", c->norm_pix_loss);
    return o;
}

static cJSON *timm_config(const mae_config *c, const mae_cls_config *cc, int kind) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "architecture", "vit_base_patch16_224");
    cJSON_AddNumberToObject(o, "num_classes", kind == KIND_CLASSIFIER ? cc->num_classes : 0);
    cJSON_AddNumberToObject(o, "num_features", c->embed_dim);
    cJSON_AddStringToObject(o, "global_pool",
                            kind == KIND_CLASSIFIER && cc->global_pool ? "avg" : "token");
    cJSON *ma = cJSON_AddObjectToObject(o, "model_args");
    add_model_args(ma, c, 0);
    cJSON_AddBoolToObject(ma, "qkv_bias", 1);
    cJSON_AddStringToObject(ma, "global_pool",
                            kind == KIND_CLASSIFIER && cc->global_pool ? "avg" : "token");
    cJSON *pc = cJSON_AddObjectToObject(o, "pretrained_cfg");
    cJSON_AddStringToObject(pc, "tag", "mae");
    cJSON *in = cJSON_AddArrayToObject(pc, "input_size");
    cJSON_AddItemToArray(in, cJSON_CreateNumber(c->in_chans));
    cJSON_AddItemToArray(in, cJSON_CreateNumber(c->img_size));
    cJSON_AddItemToArray(in, cJSON_CreateNumber(c->img_size));
    cJSON_AddStringToObject(pc, "interpolation", "bicubic");
    cJSON_AddNumberToObject(pc, "crop_pct", 0.875);
    float mean[3], std[3];
    mae_norm_constants(c->in_chans, mean, std);
    cJSON *jm = cJSON_AddArrayToObject(pc, "mean"), *js = cJSON_AddArrayToObject(pc, "std");
    for (int i = 0; i < c->in_chans; i++) {
        cJSON_AddItemToArray(jm, cJSON_CreateNumber(mean[i]));
        cJSON_AddItemToArray(js, cJSON_CreateNumber(std[i]));
    }
    cJSON_AddNumberToObject(pc, "num_classes", kind == KIND_CLASSIFIER ? cc->num_classes : 0);
    return o;
}

int mae_export(const char *checkpoint, const char *format, const char *out_dir, int num_heads,
               int decoder_num_heads, mae_error *err) {
    int fmt = !strcmp(format, "official") ? 0 : !strcmp(format, "timm") ? 1
            : !strcmp(format, "hf")       ? 2 : -1;
    if (fmt < 0) return mae_errf(err, "--format must be official, timm or hf, got '%s'", format);
    mae_sd sd;
    if (mae_sd_open(&sd, checkpoint, err) != MAE_OK) return MAE_ERR;
    mae_config c;
    mae_cls_config cc = {0};
    int kind = mae_sd_find(&sd, "decoder_embed.weight") >= 0 ? KIND_MAE : KIND_ENCODER;
    int rc = MAE_OK;
    if (kind == KIND_ENCODER &&
        (mae_sd_find(&sd, "head.weight") >= 0 || mae_sd_find(&sd, "head.1.weight") >= 0)) {
        kind = KIND_CLASSIFIER;
        rc = mae_sd_classifier(&sd, &cc, err);
    }
    if (rc == MAE_OK)
        rc = mae_sd_config(&sd, num_heads, decoder_num_heads, &c, kind != KIND_MAE, err);
    if (rc == MAE_OK && fmt == 2 && kind == KIND_CLASSIFIER)
        rc = mae_errf(err, "%s is a classifier: HF ViTMAE has no classification head, and "
                           "ViTForImageClassification pools differently; use --format timm",
                      checkpoint);
    if (rc == MAE_OK && fmt == 1 && cc.head_bn)
        rc = mae_errf(err, "%s is a linear probe with a BatchNorm1d head (head.0/head.1); timm's "
                           "ViT head is one Linear: use --format official", checkpoint);
    float **bufs = mae_xcalloc((size_t)sd.n * SD_MAX_PARTS + 1, sizeof(float *));
    int nb = 0;
    st_writer *w = st_writer_new();
    for (int i = 0; rc == MAE_OK && i < sd.n; i++) {
        const sd_tensor *t = &sd.t[i];
        int keep = fmt == 0 || (kind == KIND_MAE && fmt == 2) || is_encoder_tensor(t->name) ||
                   (kind == KIND_CLASSIFIER && is_head_tensor(t->name));
        if (!keep) continue;
        float *v = bufs[nb++] = mae_xmalloc((t->numel ? t->numel : 1) * sizeof(float));
        rc = mae_sd_read(&sd, i, v, t->numel, err);
        if (rc != MAE_OK) break;
        int split = fmt == 2 && strstr(t->name, "attn.qkv.") != NULL;
        for (int p = 0; p < (split ? 3 : 1); p++) {
            char name[256];
            int64_t shape[4];
            memcpy(shape, t->shape, sizeof shape);
            if (split) shape[0] /= 3;
            if (fmt == 2) {
                if (mae_sd_hf_name(t->name, split ? p : -1, name, sizeof name) != MAE_OK) {
                    rc = mae_errf(err, "%s: tensor '%s' has no place in HF ViTMAE", checkpoint,
                                  t->name);
                    break;
                }
                if (kind == KIND_ENCODER && !strncmp(name, "vit.", 4))
                    memmove(name, name + 4, strlen(name + 4) + 1); /* ViTMAEModel: no prefix */
            } else {
                snprintf(name, sizeof name, "%s", t->name);
            }
            size_t per = t->numel / (split ? 3 : 1);
            st_writer_add(w, name, "F32", t->ndim, shape, v + p * per);
        }
    }
    if (rc == MAE_OK) {
        char path[4096];
        snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
        st_writer_meta(w, "format", "pt"); /* transformers requires it */
        rc = st_writer_save(w, path, err);
    }
    if (rc == MAE_OK) {
        cJSON *o;
        if (fmt == 2) {
            o = hf_config(&c, kind);
        } else if (fmt == 1) {
            o = timm_config(&c, &cc, kind);
        } else {
            o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "model_class",
                                    kind == KIND_MAE ? "models_mae.MaskedAutoencoderViT"
                                                     : "models_vit.VisionTransformer");
            if (kind == KIND_ENCODER) cJSON_AddBoolToObject(o, "encoder_only", 1);
            cJSON *a = cJSON_AddObjectToObject(o, "model_args");
            add_model_args(a, &c, kind == KIND_MAE);
            if (kind == KIND_CLASSIFIER) {
                cJSON_AddNumberToObject(a, "num_classes", cc.num_classes);
                cJSON_AddBoolToObject(a, "global_pool", cc.global_pool);
                cJSON_AddBoolToObject(o, "head_bn", cc.head_bn);
            }
            cJSON_AddNumberToObject(o, "layer_norm_eps", mae_config_ln_eps(&c));
        }
        rc = write_json(out_dir, o, err);
        cJSON_Delete(o);
    }
    st_writer_free(w);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    free(bufs);
    mae_sd_close(&sd);
    return rc;
}
