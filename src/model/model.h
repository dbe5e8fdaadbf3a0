/* model.h - internal model state. One allocation per group: parameters, gradients,
 * activations (+ backward scratch), sized from the config and max batch at creation. */
#ifndef MAE_MODEL_H
#define MAE_MODEL_H

#include "backend.h"
#include "common.h"
#include "tensors.h"

typedef struct mae_tensor_entry {
    mae_tensor_info info;
    char name[MAE_MAX_NAME];
    size_t offset; /* floats from the start of the parameter buffer */
    int init;      /* enum mae_init */
} mae_tensor_entry;

/* Activations of one transformer stack (encoder or decoder) with nl blocks, saved for
 * backward. Per-layer arrays have a layer stride sized for (max_batch, Tmax). */
typedef struct mae_stack {
    int nl, C, NH, Hm, Tmax;
    /* shared: no backward runs through this stack (a frozen encoder), so its blocks share one
     * block's activations and the residual stream alternates between two slots: the (nl, ...)
     * buffers below then hold 1 layer and res 2 (mae_stack_res) */
    int shared;
    mae_block_w *w, *g;
    float *res;                        /* (nl+1, B, T, C) residual stream */
    float *ln1, *ln1_mean, *ln1_rstd;  /* (nl, B, T, C), (nl, B, T) */
    float *qkv;                        /* (nl, B, T, 3C) */
    float *att;                        /* (nl, B, NH, T, T) softmax probabilities */
    float *atty;                       /* (nl, B, T, C) attention output before proj */
    float *res2;                       /* (nl, B, T, C) residual after attention */
    float *ln2, *ln2_mean, *ln2_rstd;  /* (nl, B, T, C), (nl, B, T) */
    float *fch, *fch_gelu;             /* (nl, B, T, Hm) MLP hidden before/after GELU */
    float *lnf, *lnf_mean, *lnf_rstd;  /* (B, T, C), (B, T) final norm */
    float *G;                          /* (B, T, C) backward: gradient of the residual stream */
    /* drop_path (classifier training only; NULL = off): dp (nl, 2, B) per-sample scale of the
     * attention (0) and MLP (1) branch of each block, 0 or 1/keep; dS (B, T, C) scratch */
    const float *dp;
    float *dS;
} mae_stack;

struct mae_model {
    mae_config cfg;
    const mae_backend *be;
    double phase_s[MAE_NUM_PHASES]; /* see mae_phase_seconds */
    int max_batch, L, P, Kmax;
    int prec; /* MAE_PREC_*: matmul precision of the Linear layers */

    int ntensors;
    mae_tensor_entry *tensors;
    size_t nparams; /* floats in the parameter buffer (and the gradient buffer) */
    float *params, *grads;
    mae_weights w, g;

    /* activations: one allocation */
    float *acts;
    size_t nacts;
    size_t enc_act_floats, dec_act_floats; /* for reporting the masking saving */
    mae_stack enc, dec;
    float *imgs;    /* (B, C, H, W) */
    float *colsk;   /* (B, K, C*p*p) visible patches, conv order */
    float *embk;    /* (B, K, D) patch embeddings of visible patches */
    float *decx;    /* (B, 1+K, Dd) decoder_embed output */
    float *pred;    /* (B, 1+L, P) */
    float *target;  /* (B, L, P) */
    float *mask;    /* (B, L) */
    int32_t *ids_keep;    /* (B, K) */
    int32_t *ids_restore; /* (B, L) */
    /* backward scratch */
    float *dpred;   /* (B, 1+L, P) */
    float *dA, *dB, *dC, *datt;

    /* host-side masking state */
    float *h_noise, *h_mask;
    int32_t *h_shuffle, *h_restore, *h_keep;

    /* classifier (mae_classifier_create): is_cls 1; no decoder, no masking */
    int is_cls, NC, cls_has_targets; /* cls_has_targets: the last forward had targets */
    mae_cls_config cls;
    float *pooled, *feat, *feat_mean, *feat_rstd; /* (B,D), (B,D), (B), (B) */
    float *bnout, *logits, *dlogits, *ctarget;     /* (B,D), (B,NC) x3 */
    float *dfeat, *dpooled;                        /* (B,D) */
    float *dp_scale;                               /* (depth, 2, B) drop_path scales */
    float *h_dp;                                   /* host copy of dp_scale */

    /* last forward */
    int B, K;
    float loss;
    /* MAE_SYNC_PHASES set: wait for the device at each phase boundary, so that the phase
     * times (mae_phase_seconds) of an asynchronous backend are the phases' own */
    int sync_phases;
    /* data parallelism (mae_grad_sync.ready): set by the trainer for the backward of an update's
     * last micro-batch; called with the start of the gradients that are final so far */
    void (*grad_ready)(void *ctx, float *grads, size_t off, size_t n);
    void *grad_ready_ctx;
};

/* the gradients from offset off to the end are final (mae_grad_sync.ready) */
static inline void mae_grads_final_from(mae_model *m, size_t off) {
    if (m->grad_ready) m->grad_ready(m->grad_ready_ctx, m->grads, off, m->nparams);
}

/* the clock for phase times: after the device's queue has drained when sync_phases */
static inline double mae_phase_clock(const mae_model *m) {
    if (m->sync_phases) m->be->sync();
    return mae_clock();
}

/* pass.c */
void mae_stack_forward(mae_model *m, mae_stack *s, int B, int T);
/* the residual stream entering block l (l == nl: the stack's output), (B, T, C) */
float *mae_stack_res(const mae_model *m, const mae_stack *s, int l);
void mae_stack_backward(mae_model *m, mae_stack *s, int B, int T);
/* the encoder on the patches m->ids_keep selects (K per image): enc.lnf (B, 1+K, D) */
void mae_encoder_forward(mae_model *m, int B, int K);
/* the encoder on all L patches in image order (ids_keep = identity, uploaded here), m->imgs
 * already uploaded: enc.res[nl] (B, 1+L, D) is the output before the final norm; with
 * final_norm also enc.lnf */
void mae_encoder_forward_all(mae_model *m, int B, int final_norm);
/* posembed.c: (1 + g*g, dim) fixed 2-D sin-cos table, zero row for CLS */
void mae_sincos_pos_embed(float *out, int dim, int grid);
/* out (1 + go*go, dim) <- in (1 + gi*gi, dim): CLS row copied, the grid resized bicubically as
 * torch's interpolate(mode="bicubic", align_corners=False) (official interpolate_pos_embed) */
void mae_pos_embed_resize(float *out, int go, const float *in, int gi, int dim);

#endif
