/* model.c - model creation (the tensor table and the grouped allocations), official
 * initialisation, and access to tensors by official name. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "rng.h"

/* ------------------------------------------------------------------ tensor table */

typedef struct table_ctx {
    mae_model *m;
    size_t offset;
    int n, cap;
    float ***pp, ***pg; /* where to store each tensor's param / grad pointer */
} table_ctx;

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void table_add(table_ctx *t, float **pp, float **pg, const char *prefix, const char *name,
                      int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3, int init,
                      int trainable) {
    MAE_ASSERT(t->n < t->cap);
    mae_tensor_entry *e = &t->m->tensors[t->n];
    snprintf(e->name, sizeof e->name, "%s%s", prefix, name);
    e->info.name = e->name;
    e->info.ndim = ndim;
    int64_t dims[4] = {d0, d1, d2, d3};
    e->info.numel = 1;
    for (int i = 0; i < 4; i++) {
        e->info.shape[i] = i < ndim ? dims[i] : 0;
        if (i < ndim) e->info.numel *= (size_t)dims[i];
    }
    e->info.trainable = trainable;
    e->info.weight_decay = trainable && ndim > 1 && !ends_with(e->name, ".bias");
    e->init = init;
    e->offset = t->offset;
    /* keep every tensor 16-float (64-byte) aligned */
    t->offset += (e->info.numel + 15) / 16 * 16;
    t->pp[t->n] = pp;
    t->pg[t->n] = pg;
    t->n++;
}

#define ADD_GLOBAL(field, name, nd, a, b, c, d, init, tr) \
    table_add(t, &m->w.field, &m->g.field, "", name, nd, a, b, c, d, init, tr);
#define ADD_BLOCK(field, name, nd, a, b, c, d, init, tr) \
    table_add(t, &bw[i].field, &bg[i].field, prefix, name, nd, a, b, c, d, init, tr);

static void add_blocks(table_ctx *t, mae_block_w *bw, mae_block_w *bg, int n, const char *base,
                       int W, int Hm) {
    for (int i = 0; i < n; i++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%s.%d.", base, i);
        MAE_TENSORS_BLOCK(ADD_BLOCK)
    }
}

static void build_table(mae_model *m, table_ctx *t) {
    const mae_config *c = &m->cfg;
    int D = c->embed_dim, Dd = c->decoder_embed_dim, C = c->in_chans, p = c->patch_size;
    int L1 = 1 + m->L, P = m->P, NC = m->NC;
    t->m = m;
    t->n = 0;
    t->offset = 0;
    MAE_TENSORS_HEAD(ADD_GLOBAL)
    add_blocks(t, m->w.blocks, m->g.blocks, c->depth, "blocks", D, m->enc.Hm);
    if (!m->is_cls) {
        MAE_TENSORS_MID(ADD_GLOBAL)
        add_blocks(t, m->w.dec_blocks, m->g.dec_blocks, c->decoder_depth, "decoder_blocks", Dd,
                   m->dec.Hm);
        MAE_TENSORS_TAIL(ADD_GLOBAL)
    } else {
        /* norm (CLS pooling) or fc_norm (global pooling), [BatchNorm stats], head */
        int gp = m->cls.global_pool, bn = m->cls.head_bn;
#define ADD_IF(cond, field, name, nd, a, b, cc, d, init, tr) \
    if (cond) table_add(t, &m->w.field, &m->g.field, "", name, nd, a, b, cc, d, init, tr);
        ADD_IF(!gp, norm_w, "norm.weight", 1, D, 0, 0, 0, INIT_ONE, 1)
        ADD_IF(!gp, norm_b, "norm.bias", 1, D, 0, 0, 0, INIT_ZERO, 1)
        ADD_IF(gp, fc_norm_w, "fc_norm.weight", 1, D, 0, 0, 0, INIT_ONE, 1)
        ADD_IF(gp, fc_norm_b, "fc_norm.bias", 1, D, 0, 0, 0, INIT_ZERO, 1)
        ADD_IF(bn, bn_mean, "head.0.running_mean", 1, D, 0, 0, 0, INIT_ZERO, 0)
        ADD_IF(bn, bn_var, "head.0.running_var", 1, D, 0, 0, 0, INIT_ONE, 0)
        ADD_IF(1, head_w, bn ? "head.1.weight" : "head.weight", 2, NC, D, 0, 0, INIT_TRUNC_HEAD, 1)
        ADD_IF(1, head_b, bn ? "head.1.bias" : "head.bias", 1, NC, 0, 0, 0, INIT_ZERO, 1)
#undef ADD_IF
        /* timm's VisionTransformer trains pos_embed; official finetune/linprobe exclude
         * pos_embed and cls_token from weight decay; the linear probe trains only the head */
        for (int i = 0; i < t->n; i++) {
            mae_tensor_entry *e = &m->tensors[i];
            int is_head = strncmp(e->name, "head.", 5) == 0 && e->info.ndim >= 1 &&
                          !strstr(e->name, "running_");
            if (strcmp(e->name, "pos_embed") == 0) e->info.trainable = 1;
            if (m->cls.freeze_encoder && !is_head) e->info.trainable = 0;
            e->info.weight_decay = e->info.trainable && e->info.ndim > 1 &&
                                   !ends_with(e->name, ".bias") &&
                                   strcmp(e->name, "pos_embed") != 0 &&
                                   strcmp(e->name, "cls_token") != 0;
        }
    }
    (void)Dd;
    (void)P;
    (void)NC;
    m->ntensors = t->n;
    m->nparams = t->offset;
}

int mae_tensor_layer_id(const mae_model *m, int i) {
    MAE_ASSERT(i >= 0 && i < m->ntensors);
    const char *n = m->tensors[i].name;
    if (strcmp(n, "cls_token") == 0 || strcmp(n, "pos_embed") == 0 ||
        strncmp(n, "patch_embed.", 12) == 0)
        return 0;
    if (strncmp(n, "blocks.", 7) == 0) return atoi(n + 7) + 1;
    return m->cfg.depth + 1;
}

/* ------------------------------------------------------------------ activations */

typedef struct bump {
    float *base;
    size_t off;
} bump;

static float *take(bump *b, size_t n) {
    float *p = b->base ? b->base + b->off : NULL;
    b->off += (n + 15) / 16 * 16;
    return p;
}

static void layout_stack(bump *b, mae_stack *s, int B, const mae_backend *be) {
    size_t BT = (size_t)B * s->Tmax, nl = s->shared && s->nl > 0 ? 1 : (size_t)s->nl;
    s->res = take(b, (s->shared && s->nl > 0 ? 2 : nl + 1) * BT * s->C);
    s->ln1 = take(b, nl * BT * s->C);
    s->ln1_mean = take(b, nl * BT);
    s->ln1_rstd = take(b, nl * BT);
    s->qkv = take(b, nl * BT * 3 * s->C);
    s->att = take(b, nl * (s->nl > 0 ? be->attention_state_floats(B, s->Tmax, s->C, s->NH) : 0));
    s->atty = take(b, nl * BT * s->C);
    s->res2 = take(b, nl * BT * s->C);
    s->ln2 = take(b, nl * BT * s->C);
    s->ln2_mean = take(b, nl * BT);
    s->ln2_rstd = take(b, nl * BT);
    s->fch = take(b, nl * BT * s->Hm);
    s->fch_gelu = take(b, nl * BT * s->Hm);
    s->lnf = take(b, BT * s->C);
    s->lnf_mean = take(b, BT);
    s->lnf_rstd = take(b, BT);
}

static size_t max3(size_t a, size_t b, size_t c) {
    size_t m = a > b ? a : b;
    return m > c ? m : c;
}

/* lays out every activation; with base == NULL it only measures */
static size_t layout_acts(mae_model *m, float *base) {
    const mae_config *c = &m->cfg;
    size_t B = m->max_batch, K = m->Kmax, L = m->L, P = m->P;
    size_t D = c->embed_dim, Dd = m->is_cls ? 0 : (size_t)c->decoder_embed_dim, Cpp = (size_t)c->in_chans * c->patch_size * c->patch_size;
    bump b = {base, 0};
    layout_stack(&b, &m->enc, (int)B, m->be);
    m->enc_act_floats = b.off;
    layout_stack(&b, &m->dec, (int)B, m->be);
    m->dec_act_floats = b.off - m->enc_act_floats;
    size_t mae_only = m->is_cls ? 0 : 1; /* a classifier has no decoder, target or mask */
    m->imgs = take(&b, B * c->in_chans * c->img_size * c->img_size);
    m->colsk = take(&b, B * K * Cpp);
    m->embk = take(&b, B * K * D);
    m->decx = take(&b, mae_only * B * (1 + K) * Dd);
    m->pred = take(&b, mae_only * B * (1 + L) * P);
    m->target = take(&b, mae_only * B * L * P);
    m->mask = take(&b, mae_only * B * L);
    m->ids_keep = (int32_t *)take(&b, B * K);
    m->ids_restore = (int32_t *)take(&b, B * L);
    /* backward scratch, shared by both stacks */
    size_t Te = 1 + K, Td = m->is_cls ? 0 : 1 + L;
    m->enc.G = take(&b, B * Te * D);
    m->dec.G = take(&b, B * Td * Dd);
    m->dpred = take(&b, mae_only * B * Td * P);
    size_t wA = max3(Te * (D * 3 > (size_t)m->enc.Hm ? D * 3 : (size_t)m->enc.Hm),
                     Td * (Dd * 3 > (size_t)m->dec.Hm ? Dd * 3 : (size_t)m->dec.Hm), K * D);
    m->dA = take(&b, B * wA);
    m->dB = take(&b, B * (Te * m->enc.Hm > Td * m->dec.Hm ? Te * m->enc.Hm : Td * m->dec.Hm));
    m->dC = take(&b, B * (Te * D > Td * Dd ? Te * D : Td * Dd));
    size_t sae = m->enc.nl > 0 ? m->be->attention_state_floats((int)B, (int)Te, (int)D, m->enc.NH) : 0;
    size_t sad = m->dec.nl > 0 ? m->be->attention_state_floats((int)B, (int)Td, (int)Dd, m->dec.NH) : 0;
    m->datt = take(&b, sae > sad ? sae : sad);
    if (m->is_cls) {
        size_t NC = (size_t)m->NC, dp = m->cls.drop_path > 0 ? 1 : 0;
        m->pooled = take(&b, B * D);
        m->feat = take(&b, B * D);
        m->feat_mean = take(&b, B);
        m->feat_rstd = take(&b, B);
        m->bnout = take(&b, B * D);
        m->logits = take(&b, B * NC);
        m->dlogits = take(&b, B * NC);
        m->ctarget = take(&b, B * NC);
        m->dfeat = take(&b, B * D);
        m->dpooled = take(&b, B * D);
        m->dp_scale = dp ? take(&b, (size_t)c->depth * 2 * B) : NULL;
        m->enc.dS = dp ? take(&b, B * Te * D) : NULL;
    }
    return b.off;
}

/* ------------------------------------------------------------------ create / free */

static mae_model *model_create(const mae_config *cfg, const mae_cls_config *cc, int max_batch,
                               const char *device, mae_error *err) {
    if (mae_config_validate(cfg, err) != MAE_OK) return NULL;
    if (max_batch < 1 || max_batch > 1 << 20) {
        mae_errf(err, "batch_size must be in [1, 1048576], got %d", max_batch);
        return NULL;
    }
    char why[256];
    const mae_backend *be = mae_backend_find(device, why, sizeof why);
    if (!be) {
        mae_errf(err, "--device %s: %s", device ? device : "(null)", why);
        return NULL;
    }
    { /* reject sizes whose products could overflow size_t before laying anything out */
        double L = mae_config_num_patches(cfg), Td = 1 + L, B = max_batch;
        double w = cfg->embed_dim > cfg->decoder_embed_dim ? cfg->embed_dim : cfg->decoder_embed_dim;
        double h = cfg->num_heads > cfg->decoder_num_heads ? cfg->num_heads : cfg->decoder_num_heads;
        double nl = cfg->depth + cfg->decoder_depth + 1;
        double est = B * Td * nl * (w * (12.0 + 2 * cfg->mlp_ratio) + h * Td) * 4.0;
        if (est > 1e15) {
            mae_errf(err, "out of memory: batch_size %d with %g patches of this model needs about "
                          "%.3g TB of activations; use a smaller batch_size or model",
                     max_batch, L, est / 1e12);
            return NULL;
        }
    }
    mae_model *m = mae_xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    m->be = be;
    m->max_batch = max_batch;
    m->sync_phases = getenv("MAE_SYNC_PHASES") != NULL;
    m->L = mae_config_num_patches(cfg);
    m->P = mae_config_patch_dim(cfg);
    if (cc) {
        m->is_cls = 1;
        m->cls = *cc;
        m->NC = cc->num_classes;
        m->cfg.mask_ratio = 0.0; /* the encoder sees every patch */
    }
    m->Kmax = m->is_cls ? m->L : mae_config_len_keep(cfg);
    m->enc = (mae_stack){.nl = cfg->depth, .C = cfg->embed_dim, .NH = cfg->num_heads,
                         .Hm = (int)(cfg->embed_dim * cfg->mlp_ratio), .Tmax = 1 + m->Kmax};
    m->dec = (mae_stack){.nl = cfg->decoder_depth, .C = cfg->decoder_embed_dim,
                         .NH = cfg->decoder_num_heads,
                         .Hm = (int)(cfg->decoder_embed_dim * cfg->mlp_ratio), .Tmax = 1 + m->L};
    if (m->is_cls) m->dec = (mae_stack){.nl = 0, .C = 0, .NH = 1, .Hm = 0, .Tmax = 0};
    /* a frozen encoder (linear probe, mae embed) never runs backward: one block's activations */
    m->enc.shared = m->is_cls && m->cls.freeze_encoder;
    m->w.blocks = mae_xcalloc(cfg->depth, sizeof(mae_block_w));
    m->g.blocks = mae_xcalloc(cfg->depth, sizeof(mae_block_w));
    m->w.dec_blocks = mae_xcalloc(cfg->decoder_depth, sizeof(mae_block_w));
    m->g.dec_blocks = mae_xcalloc(cfg->decoder_depth, sizeof(mae_block_w));
    m->enc.w = m->w.blocks;
    m->enc.g = m->g.blocks;
    m->dec.w = m->w.dec_blocks;
    m->dec.g = m->g.dec_blocks;
    table_ctx tc;
    table_ctx *t = &tc;
    t->cap = 16 + 12 * (cfg->depth + cfg->decoder_depth);
    m->tensors = mae_xcalloc((size_t)t->cap, sizeof(mae_tensor_entry));
    t->pp = mae_xcalloc((size_t)t->cap, sizeof(float **));
    t->pg = mae_xcalloc((size_t)t->cap, sizeof(float **));
    build_table(m, t);
    m->nacts = layout_acts(m, NULL);
    size_t pbytes, abytes;
    if (!mae_size_mul(&pbytes, m->nparams, sizeof(float)) ||
        !mae_size_mul(&abytes, m->nacts, sizeof(float)) ||
        !(m->params = be->alloc(pbytes)) || !(m->grads = be->alloc(pbytes)) ||
        !(m->acts = be->alloc(abytes))) {
        mae_errf(err, "out of memory: the model needs %.1f MB of parameters + gradients and "
                      "%.1f MB of activations at batch_size %d; try a smaller --batch_size "
                      "(with --accum_iter) or a smaller model",
                 2.0 * m->nparams * 4 / 1e6, m->nacts * 4.0 / 1e6, max_batch);
        free(t->pp);
        free(t->pg);
        mae_model_free(m);
        return NULL;
    }
    be->zero(m->params, pbytes);
    be->zero(m->grads, pbytes);
    be->zero(m->acts, abytes);
    for (int i = 0; i < t->n; i++) {
        *t->pp[i] = m->params + m->tensors[i].offset;
        *t->pg[i] = m->grads + m->tensors[i].offset;
    }
    free(t->pp);
    free(t->pg);
    layout_acts(m, m->acts);
    m->enc.dp = m->dp_scale ? m->dp_scale : NULL;
    if (m->is_cls) m->h_dp = mae_xmalloc((size_t)cfg->depth * 2 * max_batch * sizeof(float));
    size_t BL = (size_t)max_batch * m->L;
    m->h_noise = mae_xmalloc(BL * sizeof(float));
    m->h_mask = mae_xmalloc(BL * sizeof(float));
    m->h_shuffle = mae_xmalloc(BL * sizeof(int32_t));
    m->h_restore = mae_xmalloc(BL * sizeof(int32_t));
    m->h_keep = mae_xmalloc(BL * sizeof(int32_t));
    return m;
}

mae_model *mae_model_create(const mae_config *cfg, int max_batch, const char *device,
                            mae_error *err) {
    return model_create(cfg, NULL, max_batch, device, err);
}

mae_model *mae_classifier_create(const mae_config *cfg, const mae_cls_config *cc, int max_batch,
                                 const char *device, mae_error *err) {
    if (!cc) {
        mae_errf(err, "mae_classifier_create: no classifier config");
        return NULL;
    }
    if (cc->num_classes < 1 || cc->num_classes > 1000000) {
        mae_errf(err, "--nb_classes must be in [1, 1000000], got %d", cc->num_classes);
        return NULL;
    }
    if (!(cc->drop_path >= 0 && cc->drop_path < 1)) {
        mae_errf(err, "--drop_path must be in [0, 1), got %g", cc->drop_path);
        return NULL;
    }
    if (cc->head_bn && !cc->freeze_encoder) {
        mae_errf(err, "a BatchNorm head is only supported with a frozen encoder (linear probing)");
        return NULL;
    }
    if (cc->global_pool && mae_config_num_patches(cfg) < 1) {
        mae_errf(err, "global pooling needs at least one patch");
        return NULL;
    }
    return model_create(cfg, cc, max_batch, device, err);
}

const mae_cls_config *mae_model_classifier(const mae_model *m) {
    return m->is_cls ? &m->cls : NULL;
}

void mae_model_free(mae_model *m) {
    if (!m) return;
    free(m->h_dp);
    if (m->params) m->be->free(m->params);
    if (m->grads) m->be->free(m->grads);
    if (m->acts) m->be->free(m->acts);
    free(m->w.blocks);
    free(m->g.blocks);
    free(m->w.dec_blocks);
    free(m->g.dec_blocks);
    free(m->tensors);
    free(m->h_noise);
    free(m->h_mask);
    free(m->h_shuffle);
    free(m->h_restore);
    free(m->h_keep);
    free(m);
}

const mae_config *mae_model_config(const mae_model *m) { return &m->cfg; }
int mae_model_max_batch(const mae_model *m) { return m->max_batch; }

void mae_model_memory(const mae_model *m, size_t *param_bytes, size_t *act_bytes,
                      size_t *enc_act_bytes, size_t *dec_act_bytes) {
    if (param_bytes) *param_bytes = m->nparams * sizeof(float);
    if (act_bytes) *act_bytes = m->nacts * sizeof(float);
    if (enc_act_bytes) *enc_act_bytes = m->enc_act_floats * sizeof(float);
    if (dec_act_bytes) *dec_act_bytes = m->dec_act_floats * sizeof(float);
}

int mae_model_set_precision(mae_model *m, const char *name, mae_error *err) {
    int prec;
    if (name && strcmp(name, "fp32") == 0)
        prec = MAE_PREC_FP32;
    else if (name && strcmp(name, "bf16") == 0)
        prec = MAE_PREC_BF16;
    else
        return mae_errf(err, "--precision must be fp32 or bf16, got '%s'", name ? name : "(null)");
    if (!m->be->has_precision(prec))
        return mae_errf(err, "--precision %s: the %s backend cannot run it on this machine "
                             "(bf16 matmuls need a CPU with AVX512_BF16)", name, m->be->name);
    m->prec = prec;
    return MAE_OK;
}

int mae_model_precision(const mae_model *m) { return m->prec; }

/* ------------------------------------------------------------------ init */

void mae_model_init(mae_model *m, uint64_t seed) {
    const mae_config *c = &m->cfg;
    mae_rng rng;
    mae_rng_seed(&rng, seed);
    float *host = mae_xmalloc(m->nparams * sizeof(float));
    memset(host, 0, m->nparams * sizeof(float));
    for (int i = 0; i < m->ntensors; i++) {
        const mae_tensor_entry *e = &m->tensors[i];
        float *x = host + e->offset;
        size_t n = e->info.numel;
        switch (e->init) {
        case INIT_ZERO: break;
        case INIT_ONE:
            for (size_t k = 0; k < n; k++) x[k] = 1.0f;
            break;
        case INIT_XAVIER: { /* weight viewed as (shape[0], rest) */
            double fan_out = (double)e->info.shape[0], fan_in = (double)n / fan_out;
            double a = sqrt(6.0 / (fan_in + fan_out));
            for (size_t k = 0; k < n; k++) x[k] = (float)((2.0 * mae_rng_uniform(&rng) - 1.0) * a);
            break;
        }
        case INIT_CONV_BIAS: {
            double a = 1.0 / sqrt((double)c->in_chans * c->patch_size * c->patch_size);
            for (size_t k = 0; k < n; k++) x[k] = (float)((2.0 * mae_rng_uniform(&rng) - 1.0) * a);
            break;
        }
        case INIT_NORMAL02:
            for (size_t k = 0; k < n; k++) x[k] = (float)(0.02 * mae_rng_normal(&rng));
            break;
        case INIT_SINCOS_ENC:
            mae_sincos_pos_embed(x, c->embed_dim, c->img_size / c->patch_size);
            break;
        case INIT_SINCOS_DEC:
            mae_sincos_pos_embed(x, c->decoder_embed_dim, c->img_size / c->patch_size);
            break;
        case INIT_TRUNC_HEAD: /* timm trunc_normal_(std): N(0, std) cut at [-2, 2] */
            for (size_t k = 0; k < n; k++) {
                double v;
                do v = m->cls.head_init_std * mae_rng_normal(&rng);
                while (v < -2.0 || v > 2.0);
                x[k] = (float)v;
            }
            break;
        default: MAE_ASSERT(0 && "unknown init");
        }
    }
    m->be->upload(m->params, host, m->nparams * sizeof(float));
    free(host);
    mae_zero_grad(m);
}

void mae_zero_grad(mae_model *m) { m->be->zero(m->grads, m->nparams * sizeof(float)); }

/* ------------------------------------------------------------------ tensors */

int mae_num_tensors(const mae_model *m) { return m->ntensors; }

const mae_tensor_info *mae_tensor(const mae_model *m, int i) {
    MAE_ASSERT(i >= 0 && i < m->ntensors);
    return &m->tensors[i].info;
}

int mae_tensor_find(const mae_model *m, const char *name) {
    for (int i = 0; i < m->ntensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return i;
    return -1;
}

size_t mae_num_params(const mae_model *m, int trainable_only) {
    size_t n = 0;
    for (int i = 0; i < m->ntensors; i++)
        if (!trainable_only || m->tensors[i].info.trainable) n += m->tensors[i].info.numel;
    return n;
}

void mae_tensor_get(const mae_model *m, int i, float *dst) {
    const mae_tensor_entry *e = &m->tensors[i];
    m->be->download(dst, m->params + e->offset, e->info.numel * sizeof(float));
}

void mae_tensor_set(mae_model *m, int i, const float *src) {
    const mae_tensor_entry *e = &m->tensors[i];
    m->be->upload(m->params + e->offset, src, e->info.numel * sizeof(float));
}

void mae_grad_get(const mae_model *m, int i, float *dst) {
    const mae_tensor_entry *e = &m->tensors[i];
    m->be->download(dst, m->grads + e->offset, e->info.numel * sizeof(float));
}
