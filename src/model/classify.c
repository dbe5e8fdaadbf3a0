/* classify.c - the ViT classifier on the MAE encoder (official models_vit.VisionTransformer
 * forward_features + head), forward and backward, written once against the backend ops table.
 *
 *   x = encoder blocks on [CLS; patches] + pos          (B, 1+L, D), drop_path when training
 *   pooled = mean of x[:, 1:]  (global_pool)  |  x[:, 0]  (CLS)                      (B, D)
 *   feat = fc_norm(pooled)     (global_pool)  |  norm(pooled)                         (B, D)
 *   [bn = BatchNorm1d(feat, affine=False)]                                            (B, D)
 *   logits = head(feat | bn)                                                          (B, NC)
 *   loss = soft-target cross entropy(logits, targets)
 */
#include <math.h>
#include <string.h>

#include "model.h"
#include "rng.h"

#define BN_EPS 1e-6f
#define BN_MOMENTUM 0.1f

void mae_encoder_forward_all(mae_model *m, int B, int final_norm) {
    const mae_config *c = &m->cfg;
    const mae_backend *be = m->be;
    int L = m->L, D = c->embed_dim, Cpp = c->in_chans * c->patch_size * c->patch_size;
    MAE_ASSERT(m->Kmax == L);
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++) m->h_keep[(size_t)b * L + l] = l;
    be->upload(m->ids_keep, m->h_keep, sizeof(int32_t) * B * L);
    be->im2patch(m->colsk, m->imgs, m->ids_keep, B, c->in_chans, c->img_size, c->img_size,
                 c->patch_size, L);
    be->matmul_forward(m->embk, m->colsk, m->w.patch_w, m->w.patch_b, B * L, Cpp, D, m->prec);
    be->embed_tokens(m->enc.res, m->embk, m->w.cls_token, m->w.pos_embed, m->ids_keep, B, L, L,
                     D);
    mae_stack_forward(m, &m->enc, B, 1 + L);
    if (final_norm) {
        float *out = mae_stack_res(m, &m->enc, m->enc.nl);
        be->layernorm_forward(m->enc.lnf, m->enc.lnf_mean, m->enc.lnf_rstd, out, m->w.norm_w,
                              m->w.norm_b, B * (1 + L), D, mae_config_ln_eps(&m->cfg));
    }
}

/* per-sample drop_path scales of every block branch: 0 with probability rate_l, else
 * 1/(1-rate_l) (timm drop_path with scale_by_keep); rate_l = drop_path * l / (depth-1) */
static void draw_drop_path(mae_model *m, int B, uint64_t key) {
    int nl = m->cfg.depth;
    for (int l = 0; l < nl; l++) {
        double rate = nl > 1 ? m->cls.drop_path * l / (nl - 1) : 0.0, keep = 1.0 - rate;
        for (int br = 0; br < 2; br++)
            for (int b = 0; b < B; b++) {
                float u = mae_u01_from_bits(mae_hash4(key, (uint64_t)l, (uint64_t)br, (uint64_t)b));
                m->h_dp[((size_t)l * 2 + br) * B + b] = (double)u < keep ? (float)(1.0 / keep) : 0.0f;
            }
    }
    m->be->upload(m->dp_scale, m->h_dp, sizeof(float) * (size_t)nl * 2 * B);
}

static const float *head_input(const mae_model *m) { return m->cls.head_bn ? m->bnout : m->feat; }

int mae_cls_forward(mae_model *m, const float *imgs, const float *targets, int B, int train,
                    uint64_t key, float *loss, float *logits, mae_error *err) {
    const mae_config *c = &m->cfg;
    const mae_backend *be = m->be;
    if (!m->is_cls)
        return mae_errf(err, "mae_cls_forward needs a classifier (mae_classifier_create); this "
                             "is an MAE pretraining model");
    if (B < 1 || B > m->max_batch)
        return mae_errf(err, "batch of %d images does not fit: the model was created for 1..%d",
                        B, m->max_batch);
    if (!imgs) return mae_errf(err, "mae_cls_forward: imgs must not be NULL");
    if (m->cls.head_bn && train && B < 2)
        return mae_errf(err, "BatchNorm in training mode needs a batch of at least 2, got %d", B);
    double t0 = mae_phase_clock(m);
    int L = m->L, D = c->embed_dim, T = 1 + L, NC = m->NC;
    int mode = m->cls.global_pool ? MAE_POOL_MEAN : MAE_POOL_CLS;
    m->B = B;
    m->K = L;
    be->upload(m->imgs, imgs, sizeof(float) * B * c->in_chans * c->img_size * c->img_size);
    int dp = train && m->dp_scale && m->cls.drop_path > 0;
    if (dp) draw_drop_path(m, B, key);
    m->enc.dp = dp ? m->dp_scale : NULL;
    mae_encoder_forward_all(m, B, 0);
    float *x = mae_stack_res(m, &m->enc, m->enc.nl);
    be->pool_tokens(m->pooled, x, B, T, D, mode);
    const float *lw = m->cls.global_pool ? m->w.fc_norm_w : m->w.norm_w;
    const float *lb = m->cls.global_pool ? m->w.fc_norm_b : m->w.norm_b;
    be->layernorm_forward(m->feat, m->feat_mean, m->feat_rstd, m->pooled, lw, lb, B, D,
                          mae_config_ln_eps(&m->cfg));
    if (m->cls.head_bn)
        be->batchnorm_forward(m->bnout, m->w.bn_mean, m->w.bn_var, m->feat, B, D, train,
                              BN_MOMENTUM, BN_EPS);
    be->matmul_forward(m->logits, head_input(m), m->w.head_w, m->w.head_b, B, D, NC, m->prec);
    m->phase_s[MAE_PHASE_ENCODER] += mae_phase_clock(m) - t0;
    m->loss = 0.0f;
    m->cls_has_targets = targets != NULL;
    if (targets) {
        be->upload(m->ctarget, targets, sizeof(float) * B * NC);
        m->loss = be->softmax_xent(NULL, m->logits, m->ctarget, B, NC, 0.0f);
    }
    if (loss) *loss = m->loss;
    if (logits) be->download(logits, m->logits, sizeof(float) * B * NC);
    m->phase_s[MAE_PHASE_LOSS] += mae_phase_clock(m) - t0;
    return MAE_OK;
}

void mae_cls_get_features(const mae_model *m, float *feat) {
    MAE_ASSERT(m->is_cls && m->B > 0 && "mae_cls_get_features without a mae_cls_forward");
    m->be->download(feat, m->feat, sizeof(float) * (size_t)m->B * m->cfg.embed_dim);
}

void mae_cls_backward(mae_model *m, float loss_scale) {
    const mae_config *c = &m->cfg;
    const mae_backend *be = m->be;
    MAE_ASSERT(m->is_cls && m->B > 0 && m->cls_has_targets &&
               "mae_cls_backward without a forward with targets");
    int B = m->B, L = m->L, D = c->embed_dim, T = 1 + L, NC = m->NC;
    int Cpp = c->in_chans * c->patch_size * c->patch_size;
    int mode = m->cls.global_pool ? MAE_POOL_MEAN : MAE_POOL_CLS;
    double t0 = mae_phase_clock(m);
    be->softmax_xent(m->dlogits, m->logits, m->ctarget, B, NC, loss_scale);
    int frozen = m->cls.freeze_encoder;
    if (!frozen) be->zero(m->dfeat, sizeof(float) * B * D);
    be->matmul_backward(frozen ? NULL : m->dfeat, m->g.head_w, m->g.head_b, m->dlogits,
                        head_input(m), m->w.head_w, B, D, NC, m->prec);
    if (!frozen) {
        float *lw = m->cls.global_pool ? m->w.fc_norm_w : m->w.norm_w;
        float *gw = m->cls.global_pool ? m->g.fc_norm_w : m->g.norm_w;
        float *gb = m->cls.global_pool ? m->g.fc_norm_b : m->g.norm_b;
        be->zero(m->dpooled, sizeof(float) * B * D);
        be->layernorm_backward(m->dpooled, gw, gb, m->dfeat, m->pooled, lw, m->feat_mean,
                               m->feat_rstd, B, D);
        be->zero(m->enc.G, sizeof(float) * B * T * D);
        be->pool_tokens_backward(m->enc.G, m->dpooled, B, T, D, mode);
        mae_stack_backward(m, &m->enc, B, T);
        /* pos_embed (1+L, D) is trained here: its gradient is the batch sum of G */
        be->matmul_backward(NULL, NULL, m->g.pos_embed, m->enc.G, NULL, NULL, B, 1, T * D,
                            m->prec);
        float *dembk = m->dA;
        be->zero(dembk, sizeof(float) * B * L * D);
        be->embed_tokens_backward(dembk, m->g.cls_token, m->enc.G, B, L, D);
        be->matmul_backward(NULL, m->g.patch_w, m->g.patch_b, dembk, m->colsk, m->w.patch_w,
                            B * L, Cpp, D, m->prec);
    }
    mae_grads_final_from(m, 0);
    m->phase_s[MAE_PHASE_BACKWARD] += mae_phase_clock(m) - t0;
}
