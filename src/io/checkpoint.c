/* checkpoint.c - model weights as safetensors with the official state-dict names
 * (loadable by Python's safetensors into facebookresearch/mae's MaskedAutoencoderViT). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "model/model.h"
#include "safetensors.h"
#include "statedict.h"

#define MAE_FORMAT_NAME "mae"
#define MAE_FORMAT_VERSION "1"

int mae_model_save(const mae_model *m, const char *path, mae_error *err) {
    return mae_model_save_meta(m, path, NULL, 0, err);
}

int mae_file_meta(const char *path, const char *key, char *buf, size_t cap, mae_error *err) {
    st_file f;
    if (st_open(&f, path, err) != MAE_OK) return MAE_ERR;
    const char *v = st_meta(&f, key);
    snprintf(buf, cap, "%s", v ? v : "");
    st_close(&f);
    return MAE_OK;
}

int mae_model_save_meta(const mae_model *m, const char *path, const char *const *meta, int nmeta,
                        mae_error *err) {
    float *host = mae_xmalloc(m->nparams * sizeof(float));
    m->be->download(host, m->params, m->nparams * sizeof(float));
    st_writer *w = st_writer_new();
    for (int i = 0; i < m->ntensors; i++) {
        const mae_tensor_entry *e = &m->tensors[i];
        st_writer_add(w, e->name, "F32", e->info.ndim, e->info.shape, host + e->offset);
    }
    char cfg[1024];
    mae_config_to_json(&m->cfg, cfg, sizeof cfg);
    st_writer_meta(w, "format", MAE_FORMAT_NAME);
    st_writer_meta(w, "format_version", MAE_FORMAT_VERSION);
    st_writer_meta(w, "config", cfg);
    char clsj[256];
    if (m->is_cls) {
        snprintf(clsj, sizeof clsj, "{\"num_classes\":%d,\"global_pool\":%d,\"head_bn\":%d}",
                 m->cls.num_classes, m->cls.global_pool, m->cls.head_bn);
        st_writer_meta(w, "classifier", clsj);
    }
    for (int i = 0; i < nmeta; i++) st_writer_meta(w, meta[2 * i], meta[2 * i + 1]);
    int rc = st_writer_save(w, path, err);
    st_writer_free(w);
    free(host);
    return rc;
}

static int same_encoder(const mae_config *a, const mae_config *b) {
    return a->img_size == b->img_size && a->patch_size == b->patch_size &&
           a->in_chans == b->in_chans && a->embed_dim == b->embed_dim && a->depth == b->depth &&
           a->num_heads == b->num_heads && fabsf(a->mlp_ratio - b->mlp_ratio) < 1e-6f;
}

/* architecture fields must agree; mask_ratio and norm_pix_loss are training choices */
static int same_arch(const mae_config *a, const mae_config *b) {
    return a->img_size == b->img_size && a->patch_size == b->patch_size &&
           a->in_chans == b->in_chans && a->embed_dim == b->embed_dim && a->depth == b->depth &&
           a->num_heads == b->num_heads && a->decoder_embed_dim == b->decoder_embed_dim &&
           a->decoder_depth == b->decoder_depth && a->decoder_num_heads == b->decoder_num_heads &&
           fabsf(a->mlp_ratio - b->mlp_ratio) < 1e-6f;
}

/* the decoder is needed but the file has only an encoder */
static int encoder_only_error(const mae_sd *sd, mae_error *err) {
    return mae_errf(err, "%s is an encoder-only checkpoint (%s; no decoder_embed.weight / "
                         "decoder_blocks): reconstruction needs the decoder. Use a checkpoint "
                         "with one: mae pretrain's, the official *_full.pth or mae_visualize_*.pth "
                         "releases, or an HF ViTMAEForPreTraining folder",
                    sd->path, sd->origin);
}

/* reads sd tensor j into host (numel floats, the model tensor e's shape), checking finiteness */
static int read_checked(const mae_sd *sd, int j, const mae_tensor_entry *e, float *host,
                        mae_error *err) {
    const sd_tensor *t = &sd->t[j];
    int same = t->ndim == e->info.ndim;
    for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == e->info.shape[d];
    if (!same) {
        char a[128], b[128];
        mae_shape_str(a, sizeof a, t->ndim, t->shape, "[]");
        mae_shape_str(b, sizeof b, e->info.ndim, e->info.shape, "[]");
        return mae_errf(err, "%s: tensor '%s' has shape %s, the model expects %s%s%s%s",
                        sd->path, t->src, a, b, strcmp(t->src, e->name) ? " (for '" : "",
                        strcmp(t->src, e->name) ? e->name : "", strcmp(t->src, e->name) ? "')" : "");
    }
    if (mae_sd_read(sd, j, host, e->info.numel, err) != MAE_OK) return MAE_ERR;
    for (size_t k = 0; k < e->info.numel; k++)
        if (!isfinite(host[k]))
            return mae_errf(err, "%s: tensor '%s' contains NaN or Inf", sd->path, t->src);
    return MAE_OK;
}

int mae_model_load_sd(mae_model *m, const mae_sd *sd, mae_error *err) {
    const char *path = sd->path;
    int has_dec = mae_sd_find(sd, "decoder_embed.weight") >= 0;
    int has_head = mae_sd_find(sd, "head.weight") >= 0 || mae_sd_find(sd, "head.1.weight") >= 0;
    if ((sd->meta_classifier || (sd->format != SD_FMT_MAE && has_head && !has_dec)) && !m->is_cls)
        return mae_errf(err, "%s is a classifier checkpoint (%s; no decoder): MAE pretraining and "
                             "reconstruction need a checkpoint with a decoder", path,
                        sd->meta_classifier ? "written by mae finetune or mae linprobe" : sd->origin);
    if (!sd->meta_classifier && m->is_cls && has_dec)
        return mae_errf(err, "%s is an MAE pretraining checkpoint, not a classifier: fine-tune "
                             "from it with --finetune", path);
    if (!m->is_cls && !has_dec && mae_sd_find(sd, "patch_embed.proj.weight") >= 0)
        return encoder_only_error(sd, err);
    if (sd->meta_config) {
        mae_config fc;
        mae_error e2;
        if (mae_config_from_json(&fc, sd->meta_config, &e2) != MAE_OK)
            return mae_errf(err, "%s: bad config in metadata: %s", path, e2.msg);
        if (m->is_cls ? !same_encoder(&fc, &m->cfg) : !same_arch(&fc, &m->cfg)) {
            char a[512], b[512];
            mae_config_to_json(&fc, a, sizeof a);
            mae_config_to_json(&m->cfg, b, sizeof b);
            return mae_errf(err, "%s: config mismatch: file has %s, model has %s", path, a, b);
        }
    }
    int rc = MAE_OK;
    float *host = mae_xmalloc(m->nparams * sizeof(float));
    for (int i = 0; rc == MAE_OK && i < m->ntensors; i++) {
        const mae_tensor_entry *e = &m->tensors[i];
        int j = mae_sd_find(sd, e->name);
        if (j < 0)
            rc = mae_errf(err, "%s: missing tensor '%s' (%s; not an MAE checkpoint of this "
                               "architecture?)", path, e->name, sd->origin);
        else
            rc = read_checked(sd, j, e, host + e->offset, err);
    }
    for (int j = 0; rc == MAE_OK && j < sd->n; j++)
        if (mae_tensor_find(m, sd->t[j].name) < 0)
            rc = mae_errf(err, "%s: unexpected tensor '%s' (not an MAE checkpoint of this "
                               "architecture?)", path, sd->t[j].src);
    if (rc == MAE_OK) m->be->upload(m->params, host, m->nparams * sizeof(float));
    free(host);
    return rc;
}

int mae_model_load(mae_model *m, const char *path, mae_error *err) {
    mae_sd sd;
    if (mae_sd_open(&sd, path, err) != MAE_OK) return MAE_ERR;
    int rc = mae_model_load_sd(m, &sd, err);
    mae_sd_close(&sd);
    return rc;
}

static int count_blocks(const mae_sd *sd, const char *prefix) {
    int n = 0;
    char name[128];
    for (;;) {
        snprintf(name, sizeof name, "%s.%d.norm1.weight", prefix, n);
        if (mae_sd_find(sd, name) < 0) return n;
        n++;
    }
}

static int dims_of(const mae_sd *sd, const char *name, int ndim, int64_t *shape, mae_error *err) {
    int j = mae_sd_find(sd, name);
    if (j < 0) return mae_errf(err, "%s: missing tensor '%s' (%s)", sd->path, name, sd->origin);
    if (sd->t[j].ndim != ndim)
        return mae_errf(err, "%s: tensor '%s' has %d dims, expected %d", sd->path, sd->t[j].src,
                        sd->t[j].ndim, ndim);
    for (int i = 0; i < ndim; i++) shape[i] = sd->t[j].shape[i];
    return MAE_OK;
}

/* official head counts for the released widths: ViT-B 12, L 16, H 16, decoder 512 -> 16 */
static int default_heads(int dim) {
    switch (dim) {
    case 192: return 3;
    case 384: return 6;
    case 768: return 12;
    case 1024: return 16;
    case 1280: return 16;
    default: return 0;
    }
}

/* The config from the shapes; heads from the flags, else what the file says (HF config.json,
 * the official run's args), else the official count for the width. */
static int infer_config(const mae_sd *sd, int num_heads, int decoder_num_heads, int encoder_only,
                        mae_config *out, mae_error *err) {
    const char *path = sd->path;
    mae_config c = {0};
    int64_t pw[4] = {0}, pos[3] = {0}, de[2] = {0}, fc1[2] = {0}, dpred[2] = {0};
    int no_dec = mae_sd_find(sd, "decoder_embed.weight") < 0;
    if (no_dec && !encoder_only && mae_sd_find(sd, "patch_embed.proj.weight") >= 0)
        return encoder_only_error(sd, err);
    if (dims_of(sd, "patch_embed.proj.weight", 4, pw, err) || dims_of(sd, "pos_embed", 3, pos, err) ||
        (!no_dec && dims_of(sd, "decoder_embed.weight", 2, de, err)) ||
        dims_of(sd, "blocks.0.mlp.fc1.weight", 2, fc1, err) ||
        (!no_dec && dims_of(sd, "decoder_pred.weight", 2, dpred, err)))
        return MAE_ERR;
    int64_t L = pos[1] - 1, g = (int64_t)llround(sqrt((double)L));
    if (pw[2] != pw[3] || g * g != L || L < 1 || pw[2] < 1 || pw[2] > 8192 || g > 8192 ||
        pw[0] < 1 || pw[0] > (1 << 20) || pw[1] < 1 || pw[1] > 64 || fc1[1] < 1)
        return mae_errf(err, "%s: patch_embed.proj.weight / pos_embed shapes do not describe a "
                             "square image of square patches", path);
    c.embed_dim = (int)pw[0];
    c.in_chans = (int)pw[1];
    c.patch_size = (int)pw[2];
    c.img_size = (int)(g * pw[2]);
    c.depth = count_blocks(sd, "blocks");
    if (no_dec) { /* placeholders: the official decoder */
        de[0] = 512;
        dpred[0] = (int64_t)c.patch_size * c.patch_size * c.in_chans;
    }
    if (de[0] < 1 || de[0] > (1 << 20))
        return mae_errf(err, "%s: decoder_embed.weight has a bad shape", path);
    c.decoder_embed_dim = (int)de[0];
    c.decoder_depth = no_dec ? 8 : count_blocks(sd, "decoder_blocks");
    c.mlp_ratio = (float)((double)fc1[0] / (double)fc1[1]);
    c.num_heads = num_heads > 0 ? num_heads : sd->num_heads > 0 ? sd->num_heads
                                                                : default_heads(c.embed_dim);
    c.decoder_num_heads = decoder_num_heads > 0      ? decoder_num_heads
                          : sd->decoder_num_heads > 0 ? sd->decoder_num_heads
                          : c.decoder_embed_dim == 512 ? 16
                                                       : default_heads(c.decoder_embed_dim);
    c.mask_ratio = sd->mask_ratio > 0 && sd->mask_ratio < 1 ? sd->mask_ratio : 0.75;
    c.norm_pix_loss = sd->norm_pix_loss > 0;
    c.layer_norm_eps = sd->layer_norm_eps;
    if (encoder_only && c.decoder_num_heads < 1)
        c.decoder_num_heads = 1; /* placeholder: only the encoder is used */
    if (c.num_heads < 1)
        return mae_errf(err, "%s: cannot infer the encoder heads for embed_dim %d: pass "
                             "--num_heads", path, c.embed_dim);
    if (c.decoder_num_heads < 1)
        return mae_errf(err, "%s: cannot infer the decoder heads for decoder_embed_dim %d: pass "
                             "--decoder_num_heads", path, c.decoder_embed_dim);
    if (dpred[0] != (int64_t)c.patch_size * c.patch_size * c.in_chans)
        return mae_errf(err, "%s: decoder_pred.weight has %lld outputs, expected patch_size^2 * "
                             "in_chans = %d", path, (long long)dpred[0],
                        c.patch_size * c.patch_size * c.in_chans);
    *out = c;
    return MAE_OK;
}

/* encoder_only: a file without decoder tensors is accepted (the decoder fields then get the
 * official defaults 512/8/16, unused by a classifier) */
int mae_sd_config(const mae_sd *sd, int num_heads, int decoder_num_heads, mae_config *cfg,
                     int encoder_only, mae_error *err) {
    mae_config c = {0};
    int rc = MAE_OK;
    if (sd->meta_config) {
        mae_error e2;
        if (mae_config_from_json(&c, sd->meta_config, &e2) != MAE_OK)
            return mae_errf(err, "%s: bad config in metadata: %s", sd->path, e2.msg);
        if (num_heads > 0) c.num_heads = num_heads;
        if (decoder_num_heads > 0) c.decoder_num_heads = decoder_num_heads;
    } else {
        rc = infer_config(sd, num_heads, decoder_num_heads, encoder_only, &c, err);
    }
    if (rc == MAE_OK) {
        mae_error e2;
        if (mae_config_validate(&c, &e2) != MAE_OK)
            rc = mae_errf(err, "%s: %s config is invalid: %s", sd->path,
                          sd->meta_config ? "the" : "the inferred", e2.msg);
    }
    if (rc == MAE_OK) *cfg = c;
    return rc;
}

static int checkpoint_config(const char *path, int num_heads, int decoder_num_heads,
                             mae_config *cfg, int encoder_only, mae_error *err) {
    mae_sd sd;
    if (mae_sd_open(&sd, path, err) != MAE_OK) return MAE_ERR;
    int rc = mae_sd_config(&sd, num_heads, decoder_num_heads, cfg, encoder_only, err);
    mae_sd_close(&sd);
    return rc;
}

int mae_checkpoint_config(const char *path, int num_heads, int decoder_num_heads,
                          mae_config *cfg, mae_error *err) {
    return checkpoint_config(path, num_heads, decoder_num_heads, cfg, 0, err);
}

int mae_checkpoint_encoder_config(const char *path, int num_heads, mae_config *cfg,
                                  mae_error *err) {
    return checkpoint_config(path, num_heads, 0, cfg, 1, err);
}

/* ------------------------------------------------------------------ classifier */

static int meta_int(const char *json, const char *key, int *out) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (!p) return 0;
    *out = atoi(p + strlen(pat));
    return 1;
}

/* a classifier file of another tool (official main_finetune / main_linprobe, timm, HF
 * ViTForImageClassification): its settings from the tensors */
int mae_sd_classifier(const mae_sd *sd, mae_cls_config *c, mae_error *err) {
    int j = mae_sd_find(sd, "head.weight");
    c->head_bn = j < 0 && (j = mae_sd_find(sd, "head.1.weight")) >= 0;
    if (j < 0 || sd->t[j].ndim != 2 || sd->t[j].shape[0] < 1)
        return mae_errf(err, "%s is not a classifier checkpoint (%s: no head.weight)%s", sd->path,
                        sd->origin, mae_sd_find(sd, "decoder_embed.weight") >= 0
                                        ? "; it is an MAE pretraining checkpoint: fine-tune it first"
                                        : "");
    c->num_classes = (int)sd->t[j].shape[0];
    c->global_pool = mae_sd_find(sd, "fc_norm.weight") >= 0;
    return MAE_OK;
}

int mae_checkpoint_classifier(const char *path, mae_config *cfg, mae_cls_config *cc,
                              mae_error *err) {
    mae_sd sd;
    if (mae_sd_open(&sd, path, err) != MAE_OK) return MAE_ERR;
    int rc = MAE_OK;
    const char *mc = sd.meta_classifier, *cj = sd.meta_config;
    mae_cls_config c = {0};
    if (sd.format == SD_FMT_MAE && (!mc || !cj)) {
        rc = mae_errf(err, "%s is not a classifier checkpoint of mae finetune / mae linprobe (no "
                           "'classifier' metadata)%s", path,
                      mae_sd_find(&sd, "decoder_embed.weight") >= 0
                          ? "; it is an MAE pretraining checkpoint: fine-tune it first"
                          : "");
    } else if (sd.format == SD_FMT_MAE) {
        if (!meta_int(mc, "num_classes", &c.num_classes) ||
            !meta_int(mc, "global_pool", &c.global_pool) || !meta_int(mc, "head_bn", &c.head_bn) ||
            c.num_classes < 1) {
            rc = mae_errf(err, "%s: bad classifier metadata '%s'", path, mc);
        } else {
            mae_error e2;
            if (mae_config_from_json(cfg, cj, &e2) != MAE_OK)
                rc = mae_errf(err, "%s: bad config in metadata: %s", path, e2.msg);
        }
    } else {
        rc = mae_sd_classifier(&sd, &c, err);
        if (rc == MAE_OK) rc = mae_sd_config(&sd, 0, 0, cfg, 1, err);
    }
    if (rc == MAE_OK) {
        c.freeze_encoder = c.head_bn;
        c.head_init_std = 0.0;
        *cc = c;
    }
    mae_sd_close(&sd);
    return rc;
}

/* copy tensor name_in of sd into the model tensor name_out; *found = 0 if the file lacks it */
static int load_one(mae_model *m, const mae_sd *sd, const char *name_out, const char *name_in,
                    float *host, int *found, mae_error *err) {
    int i = mae_tensor_find(m, name_out);
    MAE_ASSERT(i >= 0);
    const mae_tensor_entry *e = &m->tensors[i];
    int j = mae_sd_find(sd, name_in);
    *found = j >= 0;
    if (j < 0) return MAE_OK;
    const sd_tensor *t = &sd->t[j];
    int same = t->ndim == e->info.ndim;
    for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == e->info.shape[d];
    if (!same && strcmp(name_out, "pos_embed") == 0 && t->ndim == 3 && t->shape[0] == 1 &&
        t->shape[2] == e->info.shape[2]) {
        /* a different patch grid: resize bicubically (official interpolate_pos_embed) */
        int64_t Lf = t->shape[1] - 1, gi = (int64_t)llround(sqrt((double)Lf));
        int go = m->cfg.img_size / m->cfg.patch_size;
        if (gi * gi != Lf || gi < 1 || gi > 4096)
            return mae_errf(err, "%s: pos_embed has %lld patch positions, not a square grid",
                            sd->path, (long long)Lf);
        float *src = mae_xmalloc((size_t)t->numel * sizeof(float));
        int rc = mae_sd_read(sd, j, src, t->numel, err);
        if (rc == MAE_OK) {
            mae_pos_embed_resize(host, go, src, (int)gi, (int)e->info.shape[2]);
            fprintf(stderr, "%s: pos_embed resized from a %lldx%lld to a %dx%d patch grid "
                            "(bicubic)\n", sd->path, (long long)gi, (long long)gi, go, go);
        }
        free(src);
        if (rc == MAE_OK) mae_tensor_set(m, i, host);
        return rc;
    }
    int rc = read_checked(sd, j, e, host, err);
    if (rc == MAE_OK) mae_tensor_set(m, i, host);
    return rc;
}

int mae_classifier_load_encoder_sd(mae_model *m, const mae_sd *sd, mae_error *err) {
    const char *path = sd->path;
    if (!m->is_cls) return mae_errf(err, "mae_classifier_load_encoder needs a classifier");
    if (mae_sd_find(sd, "patch_embed.proj.weight") < 0 || mae_sd_find(sd, "blocks.0.norm1.weight") < 0)
        return mae_errf(err, "%s has no encoder (%s: no patch_embed.proj.weight / blocks.0.*): not "
                             "a checkpoint of mae pretrain or of a ViT classifier", path, sd->origin);
    int nblocks_file = count_blocks(sd, "blocks");
    if (nblocks_file != m->cfg.depth)
        return mae_errf(err, "%s: the encoder has %d blocks, the model expects depth %d", path,
                        nblocks_file, m->cfg.depth);
    size_t maxn = 0;
    for (int i = 0; i < m->ntensors; i++)
        if (m->tensors[i].info.numel > maxn) maxn = m->tensors[i].info.numel;
    float *host = mae_xmalloc(maxn * sizeof(float));
    int rc = MAE_OK;
    for (int i = 0; rc == MAE_OK && i < m->ntensors; i++) {
        const char *name = m->tensors[i].name;
        if (strncmp(name, "head.", 5) == 0) continue; /* re-initialised, as main_finetune.py */
        int found = 0;
        if (strncmp(name, "fc_norm.", 8) == 0) {
            rc = load_one(m, sd, name, name, host, &found, err);
            if (rc == MAE_OK && !found && m->cls.freeze_encoder) {
                /* linear probe: from the pretrained final norm, not a frozen init (official
                 * issue #186); fine-tuning trains fc_norm from its init, as official */
                char alt[64];
                snprintf(alt, sizeof alt, "norm.%s", name + 8);
                rc = load_one(m, sd, name, alt, host, &found, err);
            }
            if (rc == MAE_OK && !found && m->cls.freeze_encoder)
                fprintf(stderr, "%s: no fc_norm or norm in the file: %s keeps its init\n", path,
                        name);
            continue;
        }
        rc = load_one(m, sd, name, name, host, &found, err);
        if (rc == MAE_OK && !found)
            rc = mae_errf(err, "%s: missing encoder tensor '%s' (%s)", path, name, sd->origin);
    }
    free(host);
    return rc;
}

int mae_classifier_load_encoder(mae_model *m, const char *path, mae_error *err) {
    if (!m->is_cls) return mae_errf(err, "mae_classifier_load_encoder needs a classifier");
    mae_sd sd;
    if (mae_sd_open(&sd, path, err) != MAE_OK) return MAE_ERR;
    int rc = mae_classifier_load_encoder_sd(m, &sd, err);
    mae_sd_close(&sd);
    return rc;
}
