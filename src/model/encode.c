/* encode.c - encoder-only inference on all patches (the `embed` path): official forward_encoder
 * with mask_ratio 0 and no shuffle, i.e. timm ViT forward_features with the final norm. */
#include "model.h"

int mae_forward_encoder(mae_model *m, const float *imgs, int B, float *latent, mae_error *err) {
    const mae_config *c = &m->cfg;
    const mae_backend *be = m->be;
    if (B < 1 || B > m->max_batch)
        return mae_errf(err, "batch of %d images does not fit: the model was created for 1..%d",
                        B, m->max_batch);
    if (m->is_cls && m->cls.global_pool)
        return mae_errf(err, "mae_forward_encoder: this classifier pools globally and has no "
                             "final encoder norm");
    if (!imgs || !latent)
        return mae_errf(err, "mae_forward_encoder: imgs and latent must not be NULL");
    int L = m->L, D = c->embed_dim, T = 1 + L;
    if (m->Kmax != L)
        return mae_errf(err, "encoder-only inference runs on all %d patches, but the model was "
                             "created with mask_ratio %g, so its encoder holds only %d of them; "
                             "create the model with mask_ratio 0",
                        L, c->mask_ratio, m->Kmax);
    double t0 = mae_phase_clock(m);
    /* ids_keep (B, L) = 0..L-1 for every image: all patches, in image order */
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++) m->h_keep[(size_t)b * L + l] = l;
    be->upload(m->ids_keep, m->h_keep, sizeof(int32_t) * B * L);
    be->upload(m->imgs, imgs, sizeof(float) * B * c->in_chans * c->img_size * c->img_size);

    mae_encoder_forward(m, B, L); /* enc.lnf (B, 1+L, D) */
    be->download(latent, m->enc.lnf, sizeof(float) * B * T * D);

    /* the activations of the last mae_forward are overwritten: no outputs, no mae_backward */
    m->B = 0;
    m->K = 0;
    m->phase_s[MAE_PHASE_ENCODER] += mae_phase_clock(m) - t0;
    return MAE_OK;
}
