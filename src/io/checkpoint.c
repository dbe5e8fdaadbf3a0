/* checkpoint.c - model weights as safetensors with the official state-dict names
 * (loadable by Python's safetensors into facebookresearch/mae's MaskedAutoencoderViT). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "model/model.h"
#include "safetensors.h"

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

int mae_model_load(mae_model *m, const char *path, mae_error *err) {
    st_file f;
    if (st_open(&f, path, err) != MAE_OK) return MAE_ERR;
    int rc = MAE_OK;
    const char *meta_cfg = st_meta(&f, "config");
    const char *meta_cls = st_meta(&f, "classifier");
    if (meta_cls && !m->is_cls)
        rc = mae_errf(err, "%s is a classifier checkpoint (written by mae finetune or mae "
                           "linprobe; no decoder): MAE pretraining needs a checkpoint of mae "
                           "pretrain", path);
    else if (!meta_cls && m->is_cls && st_find(&f, "decoder_embed.weight") >= 0)
        rc = mae_errf(err, "%s is an MAE pretraining checkpoint, not a classifier: fine-tune "
                           "from it with --finetune", path);
    if (rc == MAE_OK && meta_cfg) {
        mae_config fc;
        mae_error e2;
        if (mae_config_from_json(&fc, meta_cfg, &e2) != MAE_OK) {
            rc = mae_errf(err, "%s: bad config in metadata: %s", path, e2.msg);
        } else if (m->is_cls ? !same_encoder(&fc, &m->cfg) : !same_arch(&fc, &m->cfg)) {
            char a[512], b[512];
            mae_config_to_json(&fc, a, sizeof a);
            mae_config_to_json(&m->cfg, b, sizeof b);
            rc = mae_errf(err, "%s: config mismatch: file has %s, model has %s", path, a, b);
        }
    }
    float *host = rc == MAE_OK ? mae_xmalloc(m->nparams * sizeof(float)) : NULL;
    for (int i = 0; rc == MAE_OK && i < m->ntensors; i++) {
        const mae_tensor_entry *e = &m->tensors[i];
        int j = st_find(&f, e->name);
        if (j < 0) {
            rc = mae_errf(err, "%s: missing tensor '%s' (not an MAE checkpoint of this "
                               "architecture?)", path, e->name);
            break;
        }
        const st_tensor *t = &f.t[j];
        int same = t->ndim == e->info.ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == e->info.shape[d];
        if (!same) {
            char a[128], b[128];
            mae_shape_str(a, sizeof a, t->ndim, t->shape, "[]");
            mae_shape_str(b, sizeof b, e->info.ndim, e->info.shape, "[]");
            rc = mae_errf(err, "%s: tensor '%s' has shape %s, the model expects %s", path,
                          e->name, a, b);
            break;
        }
        rc = st_read_f32(&f, j, host + e->offset, e->info.numel, err);
        for (size_t k = 0; rc == MAE_OK && k < e->info.numel; k++)
            if (!isfinite(host[e->offset + k]))
                rc = mae_errf(err, "%s: tensor '%s' contains NaN or Inf", path, e->name);
    }
    for (int j = 0; rc == MAE_OK && j < f.n; j++)
        if (mae_tensor_find(m, f.t[j].name) < 0)
            rc = mae_errf(err, "%s: unexpected tensor '%s' (not an MAE checkpoint of this "
                               "architecture?)", path, f.t[j].name);
    if (rc == MAE_OK) m->be->upload(m->params, host, m->nparams * sizeof(float));
    free(host);
    st_close(&f);
    return rc;
}

static int count_blocks(const st_file *f, const char *prefix) {
    int n = 0;
    char name[128];
    for (;;) {
        snprintf(name, sizeof name, "%s.%d.norm1.weight", prefix, n);
        if (st_find(f, name) < 0) return n;
        n++;
    }
}

static int dims_of(const st_file *f, const char *name, int ndim, int64_t *shape, mae_error *err) {
    int j = st_find(f, name);
    if (j < 0) return mae_errf(err, "%s: missing tensor '%s'", f->path, name);
    if (f->t[j].ndim != ndim)
        return mae_errf(err, "%s: tensor '%s' has %d dims, expected %d", f->path, name,
                        f->t[j].ndim, ndim);
    for (int i = 0; i < ndim; i++) shape[i] = f->t[j].shape[i];
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

/* encoder_only: a file without decoder tensors is accepted (the decoder fields then get the
 * official defaults 512/8/16, unused by a classifier) */
static int checkpoint_config(const char *path, int num_heads, int decoder_num_heads,
                             mae_config *cfg, int encoder_only, mae_error *err) {
    st_file f;
    if (st_open(&f, path, err) != MAE_OK) return MAE_ERR;
    int rc = MAE_OK;
    mae_config c = {0};
    const char *meta_cfg = st_meta(&f, "config");
    if (meta_cfg) {
        mae_error e2;
        if (mae_config_from_json(&c, meta_cfg, &e2) != MAE_OK)
            rc = mae_errf(err, "%s: bad config in metadata: %s", path, e2.msg);
        if (num_heads > 0) c.num_heads = num_heads;
        if (decoder_num_heads > 0) c.decoder_num_heads = decoder_num_heads;
    } else {
        int64_t pw[4] = {0}, pos[3] = {0}, de[2] = {0}, fc1[2] = {0}, dpred[2] = {0};
        int no_dec = encoder_only && st_find(&f, "decoder_embed.weight") < 0;
        if (dims_of(&f, "patch_embed.proj.weight", 4, pw, err) ||
            dims_of(&f, "pos_embed", 3, pos, err) ||
            (!no_dec && dims_of(&f, "decoder_embed.weight", 2, de, err)) ||
            dims_of(&f, "blocks.0.mlp.fc1.weight", 2, fc1, err) ||
            (!no_dec && dims_of(&f, "decoder_pred.weight", 2, dpred, err))) {
            rc = MAE_ERR;
        } else {
            int64_t L = pos[1] - 1, g = (int64_t)llround(sqrt((double)L));
            c.embed_dim = (int)pw[0];
            c.in_chans = (int)pw[1];
            c.patch_size = (int)pw[2];
            if (pw[2] != pw[3] || g * g != L || L < 1 || pw[2] < 1 || pw[2] > 8192 || g > 8192) {
                rc = mae_errf(err, "%s: patch_embed.proj.weight / pos_embed shapes do not describe "
                                   "a square image of square patches", path);
            } else {
                c.img_size = (int)(g * pw[2]);
                c.depth = count_blocks(&f, "blocks");
                if (no_dec) { /* placeholders: the official decoder */
                    de[0] = 512;
                    dpred[0] = (int64_t)c.patch_size * c.patch_size * c.in_chans;
                }
                c.decoder_embed_dim = (int)de[0];
                c.decoder_depth = no_dec ? 8 : count_blocks(&f, "decoder_blocks");
                c.mlp_ratio = (float)((double)fc1[0] / (double)fc1[1]);
                c.num_heads = num_heads > 0 ? num_heads : default_heads(c.embed_dim);
                c.decoder_num_heads = decoder_num_heads > 0 ? decoder_num_heads
                                      : c.decoder_embed_dim == 512 ? 16
                                                                   : default_heads(c.decoder_embed_dim);
                c.mask_ratio = 0.75;
                if (encoder_only && c.decoder_num_heads < 1)
                    c.decoder_num_heads = 1; /* placeholder: only the encoder is used */
                if (c.num_heads < 1)
                    rc = mae_errf(err, "%s: cannot infer the encoder heads for embed_dim %d: pass "
                                       "--num_heads", path, c.embed_dim);
                else if (c.decoder_num_heads < 1)
                    rc = mae_errf(err, "%s: cannot infer the decoder heads for decoder_embed_dim "
                                       "%d: pass --decoder_num_heads", path, c.decoder_embed_dim);
                else if (dpred[0] != (int64_t)c.patch_size * c.patch_size * c.in_chans)
                    rc = mae_errf(err, "%s: decoder_pred.weight has %lld outputs, expected "
                                       "patch_size^2 * in_chans = %d", path, (long long)dpred[0],
                                  c.patch_size * c.patch_size * c.in_chans);
            }
        }
    }
    if (rc == MAE_OK) {
        mae_error e2;
        if (mae_config_validate(&c, &e2) != MAE_OK)
            rc = mae_errf(err, "%s: %s config is invalid: %s", path,
                          meta_cfg ? "the" : "the inferred", e2.msg);
    }
    st_close(&f);
    if (rc == MAE_OK) *cfg = c;
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

int mae_checkpoint_classifier(const char *path, mae_config *cfg, mae_cls_config *cc,
                              mae_error *err) {
    st_file f;
    if (st_open(&f, path, err) != MAE_OK) return MAE_ERR;
    int rc = MAE_OK;
    const char *mc = st_meta(&f, "classifier"), *cj = st_meta(&f, "config");
    mae_cls_config c = {0};
    if (!mc || !cj) {
        rc = mae_errf(err, "%s is not a classifier checkpoint of mae finetune / mae linprobe (no "
                           "'classifier' metadata)%s", path,
                      st_find(&f, "decoder_embed.weight") >= 0
                          ? "; it is an MAE pretraining checkpoint: fine-tune it first"
                          : "");
    } else if (!meta_int(mc, "num_classes", &c.num_classes) ||
               !meta_int(mc, "global_pool", &c.global_pool) || !meta_int(mc, "head_bn", &c.head_bn) ||
               c.num_classes < 1) {
        rc = mae_errf(err, "%s: bad classifier metadata '%s'", path, mc);
    } else {
        mae_error e2;
        if (mae_config_from_json(cfg, cj, &e2) != MAE_OK)
            rc = mae_errf(err, "%s: bad config in metadata: %s", path, e2.msg);
        c.freeze_encoder = c.head_bn;
        c.head_init_std = 0.0;
        *cc = c;
    }
    st_close(&f);
    return rc;
}

/* copy tensor name_in of f into the model tensor name_out; *found = 0 if the file lacks it */
static int load_one(mae_model *m, st_file *f, const char *name_out, const char *name_in,
                    float *host, int *found, mae_error *err) {
    int i = mae_tensor_find(m, name_out);
    MAE_ASSERT(i >= 0);
    const mae_tensor_entry *e = &m->tensors[i];
    int j = st_find(f, name_in);
    *found = j >= 0;
    if (j < 0) return MAE_OK;
    const st_tensor *t = &f->t[j];
    int same = t->ndim == e->info.ndim;
    for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == e->info.shape[d];
    if (!same && strcmp(name_out, "pos_embed") == 0 && t->ndim == 3 && t->shape[0] == 1 &&
        t->shape[2] == e->info.shape[2]) {
        /* a different patch grid: resize bicubically (official interpolate_pos_embed) */
        int64_t Lf = t->shape[1] - 1, gi = (int64_t)llround(sqrt((double)Lf));
        int go = m->cfg.img_size / m->cfg.patch_size;
        if (gi * gi != Lf || gi < 1 || gi > 4096)
            return mae_errf(err, "%s: pos_embed has %lld patch positions, not a square grid",
                            f->path, (long long)Lf);
        float *src = mae_xmalloc((size_t)t->numel * sizeof(float));
        int rc = st_read_f32(f, j, src, t->numel, err);
        if (rc == MAE_OK) {
            mae_pos_embed_resize(host, go, src, (int)gi, (int)e->info.shape[2]);
            fprintf(stderr, "%s: pos_embed resized from a %lldx%lld to a %dx%d patch grid "
                            "(bicubic)\n", f->path, (long long)gi, (long long)gi, go, go);
        }
        free(src);
        if (rc == MAE_OK) mae_tensor_set(m, i, host);
        return rc;
    }
    if (!same) {
        char a[128], b[128];
        mae_shape_str(a, sizeof a, t->ndim, t->shape, "[]");
        mae_shape_str(b, sizeof b, e->info.ndim, e->info.shape, "[]");
        return mae_errf(err, "%s: tensor '%s' has shape %s, the model expects %s", f->path,
                        name_in, a, b);
    }
    int rc = st_read_f32(f, j, host, e->info.numel, err);
    for (size_t k = 0; rc == MAE_OK && k < e->info.numel; k++)
        if (!isfinite(host[k])) rc = mae_errf(err, "%s: tensor '%s' contains NaN or Inf", f->path, name_in);
    if (rc == MAE_OK) mae_tensor_set(m, i, host);
    return rc;
}

int mae_classifier_load_encoder(mae_model *m, const char *path, mae_error *err) {
    if (!m->is_cls) return mae_errf(err, "mae_classifier_load_encoder needs a classifier");
    st_file f;
    if (st_open(&f, path, err) != MAE_OK) return MAE_ERR;
    int rc = MAE_OK;
    if (st_find(&f, "patch_embed.proj.weight") < 0 || st_find(&f, "blocks.0.norm1.weight") < 0) {
        rc = mae_errf(err, "%s has no encoder (no patch_embed.proj.weight / blocks.0.*): not a "
                           "checkpoint of mae pretrain or of a ViT classifier",
                      path);
        st_close(&f);
        return rc;
    }
    size_t maxn = 0;
    for (int i = 0; i < m->ntensors; i++)
        if (m->tensors[i].info.numel > maxn) maxn = m->tensors[i].info.numel;
    float *host = mae_xmalloc(maxn * sizeof(float));
    int nblocks_file = 0;
    while (1) {
        char nm[64];
        snprintf(nm, sizeof nm, "blocks.%d.norm1.weight", nblocks_file);
        if (st_find(&f, nm) < 0) break;
        nblocks_file++;
    }
    if (nblocks_file != m->cfg.depth)
        rc = mae_errf(err, "%s: the encoder has %d blocks, the model expects depth %d", path,
                      nblocks_file, m->cfg.depth);
    for (int i = 0; rc == MAE_OK && i < m->ntensors; i++) {
        const char *name = m->tensors[i].name;
        if (strncmp(name, "head.", 5) == 0) continue; /* re-initialised, as main_finetune.py */
        int found = 0;
        if (strncmp(name, "fc_norm.", 8) == 0) {
            rc = load_one(m, &f, name, name, host, &found, err);
            if (rc == MAE_OK && !found && m->cls.freeze_encoder) {
                /* linear probe: from the pretrained final norm, not a frozen init (official
                 * issue #186); fine-tuning trains fc_norm from its init, as official */
                char alt[64];
                snprintf(alt, sizeof alt, "norm.%s", name + 8);
                rc = load_one(m, &f, name, alt, host, &found, err);
            }
            if (rc == MAE_OK && !found && m->cls.freeze_encoder)
                fprintf(stderr, "%s: no fc_norm or norm in the file: %s keeps its init\n", path,
                        name);
            continue;
        }
        rc = load_one(m, &f, name, name, host, &found, err);
        if (rc == MAE_OK && !found)
            rc = mae_errf(err, "%s: missing encoder tensor '%s'", path, name);
    }
    free(host);
    st_close(&f);
    return rc;
}
