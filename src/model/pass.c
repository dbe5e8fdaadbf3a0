/* pass.c - the MAE forward and backward passes, written once against the backend ops table. */
#include <math.h>
#include <string.h>

#include "model.h"
#include "rng.h"

#define LAYER(ptr, l, stride) ((ptr) + (size_t)(l) * (stride))

/* ------------------------------------------------------------------ transformer stack */

float *mae_stack_res(const mae_model *m, const mae_stack *s, int l) {
    size_t sC = (size_t)m->max_batch * s->Tmax * s->C;
    return LAYER(s->res, s->shared ? l % 2 : l, sC);
}

/* s->res[0] (B,T,C) holds the input; leaves mae_stack_res(nl) (B,T,C), the final-norm input */
void mae_stack_forward(mae_model *m, mae_stack *s, int B, int T) {
    const mae_backend *be = m->be;
    int C = s->C, Hm = s->Hm, BT = B * T;
    size_t one = s->shared ? 0 : 1; /* layer stride: 0 when the blocks share activations */
    size_t sC = one * m->max_batch * s->Tmax * C, sH = one * m->max_batch * s->Tmax * Hm;
    size_t sN = one * m->max_batch * s->Tmax;
    size_t sA = one * m->be->attention_state_floats(m->max_batch, s->Tmax, C, s->NH);
    for (int l = 0; l < s->nl; l++) {
        const mae_block_w *w = &s->w[l];
        float *res = mae_stack_res(m, s, l), *out = mae_stack_res(m, s, l + 1);
        float *ln1 = LAYER(s->ln1, l, sC), *res2 = LAYER(s->res2, l, sC);
        float *ln2 = LAYER(s->ln2, l, sC), *atty = LAYER(s->atty, l, sC);
        float *qkv = LAYER(s->qkv, l, 3 * sC), *att = LAYER(s->att, l, sA);
        float *fch = LAYER(s->fch, l, sH), *fcg = LAYER(s->fch_gelu, l, sH);
        /* x = x + proj(attn(norm1(x))) */
        be->layernorm_forward(ln1, LAYER(s->ln1_mean, l, sN), LAYER(s->ln1_rstd, l, sN), res,
                              w->ln1_w, w->ln1_b, BT, C, mae_config_ln_eps(&m->cfg));
        be->matmul_forward(qkv, ln1, w->qkv_w, w->qkv_b, BT, C, 3 * C, m->prec);
        be->attention_forward(atty, att, qkv, B, T, C, s->NH, m->prec);
        be->matmul_forward(res2, atty, w->proj_w, w->proj_b, BT, C, C, m->prec);
        if (s->dp) be->scale_rows(res2, res2, s->dp + (size_t)(2 * l) * B, B, (size_t)T * C);
        be->add_inplace(res2, res, (size_t)BT * C);
        /* x = x + fc2(gelu(fc1(norm2(x)))) */
        be->layernorm_forward(ln2, LAYER(s->ln2_mean, l, sN), LAYER(s->ln2_rstd, l, sN), res2,
                              w->ln2_w, w->ln2_b, BT, C, mae_config_ln_eps(&m->cfg));
        be->matmul_forward_gelu(fch, fcg, ln2, w->fc1_w, w->fc1_b, BT, C, Hm, m->prec);
        be->matmul_forward(out, fcg, w->fc2_w, w->fc2_b, BT, Hm, C, m->prec);
        if (s->dp) be->scale_rows(out, out, s->dp + (size_t)(2 * l + 1) * B, B, (size_t)T * C);
        be->add_inplace(out, res2, (size_t)BT * C);
    }
}

/* on entry s->G (B,T,C) = d loss / d res[nl]; on exit s->G = d loss / d res[0] */
void mae_stack_backward(mae_model *m, mae_stack *s, int B, int T) {
    const mae_backend *be = m->be;
    MAE_ASSERT(!s->shared); /* its activations were overwritten block by block */
    int C = s->C, Hm = s->Hm, BT = B * T;
    size_t sC = (size_t)m->max_batch * s->Tmax * C, sH = (size_t)m->max_batch * s->Tmax * Hm;
    size_t sN = (size_t)m->max_batch * s->Tmax;
    size_t sA = m->be->attention_state_floats(m->max_batch, s->Tmax, C, s->NH);
    size_t nC = (size_t)BT * C;
    float *G = s->G, *dA = m->dA, *dB = m->dB, *dC = m->dC;
    for (int l = s->nl - 1; l >= 0; l--) {
        const mae_block_w *w = &s->w[l];
        mae_block_w *g = &s->g[l];
        float *res = LAYER(s->res, l, sC), *res2 = LAYER(s->res2, l, sC);
        float *ln1 = LAYER(s->ln1, l, sC), *ln2 = LAYER(s->ln2, l, sC);
        float *atty = LAYER(s->atty, l, sC), *qkv = LAYER(s->qkv, l, 3 * sC);
        float *att = LAYER(s->att, l, sA);
        float *fch = LAYER(s->fch, l, sH), *fcg = LAYER(s->fch_gelu, l, sH);
        /* MLP branch; G then also carries d res2 through the residual. With drop_path the
         * branch sees G scaled per sample (dS); the residual passes G unscaled. */
        const float *Gm = G, *Ga = G;
        if (s->dp) {
            be->scale_rows(s->dS, G, s->dp + (size_t)(2 * l + 1) * B, B, (size_t)T * C);
            Gm = s->dS;
        }
        be->matmul_backward_gelu(dB, g->fc2_w, g->fc2_b, Gm, fcg, fch, w->fc2_w, BT, Hm, C,
                                 m->prec);
        be->zero(dC, nC * sizeof(float));
        be->matmul_backward(dC, g->fc1_w, g->fc1_b, dB, ln2, w->fc1_w, BT, C, Hm, m->prec);
        be->layernorm_backward(G, g->ln2_w, g->ln2_b, dC, res2, w->ln2_w,
                               LAYER(s->ln2_mean, l, sN), LAYER(s->ln2_rstd, l, sN), BT, C);
        /* attention branch */
        if (s->dp) {
            be->scale_rows(s->dS, G, s->dp + (size_t)(2 * l) * B, B, (size_t)T * C);
            Ga = s->dS;
        }
        be->zero(dC, nC * sizeof(float));
        be->matmul_backward(dC, g->proj_w, g->proj_b, Ga, atty, w->proj_w, BT, C, C, m->prec);
        be->attention_backward(dA, m->datt, dC, qkv, att, atty, B, T, C, s->NH, m->prec);
        be->zero(dC, nC * sizeof(float));
        be->matmul_backward(dC, g->qkv_w, g->qkv_b, dA, ln1, w->qkv_w, BT, C, 3 * C, m->prec);
        be->layernorm_backward(G, g->ln1_w, g->ln1_b, dC, res, w->ln1_w,
                               LAYER(s->ln1_mean, l, sN), LAYER(s->ln1_rstd, l, sN), BT, C);
        /* block l was the last user of its weights: its gradients, and everything after it in
         * the table, are final */
        mae_grads_final_from(m, (size_t)(g->ln1_w - m->grads));
    }
}

/* ------------------------------------------------------------------ masking (host) */

void mae_make_noise(float *noise, int B, int L, uint64_t seed, const uint64_t *sample_ids) {
    for (int b = 0; b < B; b++) {
        uint64_t id = sample_ids ? sample_ids[b] : (uint64_t)b;
        for (int l = 0; l < L; l++)
            noise[(size_t)b * L + l] = mae_u01_from_bits(mae_hash4(seed, id, (uint64_t)l, 0x4d41534bu));
    }
}

/* stable argsort of key[0..n-1] into idx, using tmp (n) */
static void argsort_stable(int32_t *idx, int32_t *tmp, const float *key, int n) {
    for (int i = 0; i < n; i++) idx[i] = i;
    for (int width = 1; width < n; width *= 2) {
        for (int lo = 0; lo < n; lo += 2 * width) {
            int mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            int a = lo, b = mid, k = lo;
            while (a < mid && b < hi) tmp[k++] = key[idx[b]] < key[idx[a]] ? idx[b++] : idx[a++];
            while (a < mid) tmp[k++] = idx[a++];
            while (b < hi) tmp[k++] = idx[b++];
        }
        memcpy(idx, tmp, sizeof(int32_t) * n);
    }
}

/* ids_shuffle = argsort(noise); keep the first K; ids_restore = argsort(ids_shuffle);
 * mask[b,l] = 1 where the patch is removed (official random_masking) */
static void random_masking(mae_model *m, const float *noise, int B, int K) {
    int L = m->L;
    for (int b = 0; b < B; b++) {
        int32_t *shuf = m->h_shuffle + (size_t)b * L, *rest = m->h_restore + (size_t)b * L;
        argsort_stable(shuf, rest, noise + (size_t)b * L, L);
        for (int k = 0; k < L; k++) rest[shuf[k]] = k;
        for (int k = 0; k < K; k++) m->h_keep[(size_t)b * K + k] = shuf[k];
        for (int l = 0; l < L; l++) m->h_mask[(size_t)b * L + l] = rest[l] >= K ? 1.0f : 0.0f;
    }
    const mae_backend *be = m->be;
    be->upload(m->ids_keep, m->h_keep, sizeof(int32_t) * B * K);
    be->upload(m->ids_restore, m->h_restore, sizeof(int32_t) * B * L);
    be->upload(m->mask, m->h_mask, sizeof(float) * B * L);
}

/* ------------------------------------------------------------------ forward / backward */

/* The encoder on the K patches ids_keep (B, K) selects, m->imgs already uploaded:
 * enc.lnf (B, 1+K, D). The patch embedding is per patch, so it is applied to the kept
 * patches after the gather (the same result as embedding all, then gathering). */
void mae_encoder_forward(mae_model *m, int B, int K) {
    const mae_config *c = &m->cfg;
    const mae_backend *be = m->be;
    int D = c->embed_dim, Te = 1 + K, Cpp = c->in_chans * c->patch_size * c->patch_size;
    be->im2patch(m->colsk, m->imgs, m->ids_keep, B, c->in_chans, c->img_size, c->img_size,
                 c->patch_size, K);
    be->matmul_forward(m->embk, m->colsk, m->w.patch_w, m->w.patch_b, B * K, Cpp, D, m->prec);
    be->embed_tokens(m->enc.res, m->embk, m->w.cls_token, m->w.pos_embed, m->ids_keep, B, m->L,
                     K, D);
    mae_stack_forward(m, &m->enc, B, Te);
    float *enc_out = mae_stack_res(m, &m->enc, m->enc.nl);
    be->layernorm_forward(m->enc.lnf, m->enc.lnf_mean, m->enc.lnf_rstd, enc_out, m->w.norm_w,
                          m->w.norm_b, B * Te, D, mae_config_ln_eps(&m->cfg));
}

void mae_phase_seconds(const mae_model *m, double out[MAE_NUM_PHASES]) {
    memcpy(out, m->phase_s, sizeof m->phase_s);
}

void mae_phase_reset(mae_model *m) { memset(m->phase_s, 0, sizeof m->phase_s); }

const char *mae_phase_name(int phase) {
    static const char *const names[MAE_NUM_PHASES] = {"encoder", "decoder", "loss", "backward",
                                                      "optimizer", "grad_sync"};
    return phase >= 0 && phase < MAE_NUM_PHASES ? names[phase] : "?";
}

int mae_forward(mae_model *m, const float *imgs, const float *noise, int B, double mask_ratio,
                float *loss, mae_error *err) {
    const mae_config *c = &m->cfg;
    const mae_backend *be = m->be;
    if (m->is_cls)
        return mae_errf(err, "this model is a classifier (no decoder): MAE pretraining needs a "
                             "model from mae_model_create");
    if (B < 1 || B > m->max_batch)
        return mae_errf(err, "batch of %d images does not fit: the model was created for 1..%d",
                        B, m->max_batch);
    if (mask_ratio < 0) mask_ratio = c->mask_ratio;
    if (!(mask_ratio < 1.0)) return mae_errf(err, "mask_ratio must be in [0, 1), got %g", mask_ratio);
    int L = m->L, P = m->P, K = (int)(L * (1.0 - mask_ratio));
    if (K < 1) return mae_errf(err, "mask_ratio %g leaves no visible patch out of %d", mask_ratio, L);
    if (K > m->Kmax)
        return mae_errf(err, "mask_ratio %g keeps %d patches but the model was created for at most "
                             "%d (create it with mask_ratio <= %g)", mask_ratio, K, m->Kmax, mask_ratio);
    if (!noise) {
        mae_make_noise(m->h_noise, B, L, 0, NULL);
        noise = m->h_noise;
    }
    double t0 = mae_phase_clock(m), t1, t2;
    m->B = B;
    m->K = K;
    int D = c->embed_dim, Dd = c->decoder_embed_dim, Te = 1 + K, Td = 1 + L;
    random_masking(m, noise, B, K);
    be->upload(m->imgs, imgs, sizeof(float) * B * c->in_chans * c->img_size * c->img_size);

    mae_encoder_forward(m, B, K);

    t1 = mae_phase_clock(m);
    m->phase_s[MAE_PHASE_ENCODER] += t1 - t0;

    /* decoder on all tokens */
    be->matmul_forward(m->decx, m->enc.lnf, m->w.dec_embed_w, m->w.dec_embed_b, B * Te, D, Dd,
                       m->prec);
    be->unshuffle(m->dec.res, m->decx, m->w.mask_token, m->w.dec_pos_embed, m->ids_restore, B, L,
                  K, Dd);
    mae_stack_forward(m, &m->dec, B, Td);
    float *dec_out = m->dec.res + (size_t)m->dec.nl * m->max_batch * m->dec.Tmax * Dd;
    be->layernorm_forward(m->dec.lnf, m->dec.lnf_mean, m->dec.lnf_rstd, dec_out, m->w.dec_norm_w,
                          m->w.dec_norm_b, B * Td, Dd, mae_config_ln_eps(&m->cfg));
    be->matmul_forward(m->pred, m->dec.lnf, m->w.pred_w, m->w.pred_b, B * Td, Dd, P,
                       m->prec);

    t2 = mae_phase_clock(m);
    m->phase_s[MAE_PHASE_DECODER] += t2 - t1;
    be->patchify(m->target, m->imgs, B, c->in_chans, c->img_size, c->img_size, c->patch_size);
    m->loss = be->mae_loss(NULL, m->pred, m->target, m->mask, B, L, P, c->norm_pix_loss, 0.0f);
    if (loss) *loss = m->loss;
    m->phase_s[MAE_PHASE_LOSS] += mae_phase_clock(m) - t2;
    return MAE_OK;
}

void mae_backward(mae_model *m, float loss_scale) {
    const mae_config *c = &m->cfg;
    const mae_backend *be = m->be;
    int B = m->B, K = m->K, L = m->L, P = m->P, D = c->embed_dim, Dd = c->decoder_embed_dim;
    int Te = 1 + K, Td = 1 + L, Cpp = c->in_chans * c->patch_size * c->patch_size;
    MAE_ASSERT(B > 0 && "mae_backward without a forward");
    double t0 = mae_phase_clock(m);

    be->zero(m->dpred, sizeof(float) * B * Td * P);
    be->mae_loss(m->dpred, m->pred, m->target, m->mask, B, L, P, c->norm_pix_loss, loss_scale);
    /* decoder head and final norm */
    be->zero(m->dC, sizeof(float) * B * Td * Dd);
    be->matmul_backward(m->dC, m->g.pred_w, m->g.pred_b, m->dpred, m->dec.lnf, m->w.pred_w,
                        B * Td, Dd, P, m->prec);
    float *dec_out = m->dec.res + (size_t)m->dec.nl * m->max_batch * m->dec.Tmax * Dd;
    be->zero(m->dec.G, sizeof(float) * B * Td * Dd);
    be->layernorm_backward(m->dec.G, m->g.dec_norm_w, m->g.dec_norm_b, m->dC, dec_out,
                           m->w.dec_norm_w, m->dec.lnf_mean, m->dec.lnf_rstd, B * Td, Dd);
    mae_stack_backward(m, &m->dec, B, Td);
    /* unshuffle + decoder_embed */
    float *ddecx = m->dA;
    be->zero(ddecx, sizeof(float) * B * Te * Dd);
    be->unshuffle_backward(ddecx, m->g.mask_token, m->dec.G, m->ids_restore, B, L, K, Dd);
    be->zero(m->dC, sizeof(float) * B * Te * D);
    be->matmul_backward(m->dC, m->g.dec_embed_w, m->g.dec_embed_b, ddecx, m->enc.lnf,
                        m->w.dec_embed_w, B * Te, D, Dd, m->prec);
    /* encoder final norm and blocks */
    float *enc_out = mae_stack_res(m, &m->enc, m->enc.nl);
    be->zero(m->enc.G, sizeof(float) * B * Te * D);
    be->layernorm_backward(m->enc.G, m->g.norm_w, m->g.norm_b, m->dC, enc_out, m->w.norm_w,
                           m->enc.lnf_mean, m->enc.lnf_rstd, B * Te, D);
    mae_stack_backward(m, &m->enc, B, Te);
    /* tokens and patch embedding (no gradient to the pixels) */
    float *dembk = m->dA;
    be->zero(dembk, sizeof(float) * B * K * D);
    be->embed_tokens_backward(dembk, m->g.cls_token, m->enc.G, B, K, D);
    be->matmul_backward(NULL, m->g.patch_w, m->g.patch_b, dembk, m->colsk, m->w.patch_w, B * K,
                        Cpp, D, m->prec);
    mae_grads_final_from(m, 0);
    m->phase_s[MAE_PHASE_BACKWARD] += mae_phase_clock(m) - t0;
}

/* ------------------------------------------------------------------ outputs */

int mae_last_batch(const mae_model *m) { return m->B; }
int mae_last_len_keep(const mae_model *m) { return m->K; }

void mae_get_pred(const mae_model *m, float *pred) {
    size_t P = m->P, L = m->L;
    for (int b = 0; b < m->B; b++)
        m->be->download(pred + (size_t)b * L * P, m->pred + ((size_t)b * (L + 1) + 1) * P,
                        sizeof(float) * L * P);
}

void mae_get_mask(const mae_model *m, float *mask) {
    memcpy(mask, m->h_mask, sizeof(float) * m->B * m->L);
}

void mae_get_ids_restore(const mae_model *m, int64_t *ids) {
    for (size_t i = 0; i < (size_t)m->B * m->L; i++) ids[i] = m->h_restore[i];
}

void mae_get_latent(const mae_model *m, float *latent) {
    m->be->download(latent, m->enc.lnf, sizeof(float) * m->B * (1 + m->K) * m->cfg.embed_dim);
}
