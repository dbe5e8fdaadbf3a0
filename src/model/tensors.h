/* tensors.h - THE list of model tensors, defined once. Init, save/load, the optimizer and the
 * parity tests all iterate the table that these X-macros build (model.c: build_table).
 *
 * X(field, official_name, ndim, d0, d1, d2, d3, init, trainable)
 * Shape expressions may use: D (encoder dim), Dd (decoder dim), L1 (1 + num patches),
 * C (in_chans), p (patch), P (p*p*C), and inside blocks W (block dim), Hm (MLP hidden).
 * Weight decay is derived from the name and rank (timm's rule used by main_pretrain.py):
 * no decay for 1-D tensors and biases; cls_token and mask_token are decayed. */
#ifndef MAE_TENSORS_H
#define MAE_TENSORS_H

/* INIT_CONV_BIAS: PyTorch's default Conv2d bias init, uniform(+-1/sqrt(C*p*p)), which the
 * official _init_weights leaves in place (it re-initialises only Linear and LayerNorm). */
enum mae_init {
    INIT_ZERO,
    INIT_ONE,
    INIT_XAVIER,
    INIT_NORMAL02,
    INIT_CONV_BIAS,
    INIT_SINCOS_ENC,
    INIT_SINCOS_DEC,
    INIT_TRUNC_HEAD /* trunc_normal(std = the classifier's head_init_std), timm's [-2, 2] */
};

#define MAE_TENSORS_HEAD(X)                                                    \
    X(cls_token, "cls_token", 3, 1, 1, D, 0, INIT_NORMAL02, 1)                 \
    X(pos_embed, "pos_embed", 3, 1, L1, D, 0, INIT_SINCOS_ENC, 0)              \
    X(patch_w, "patch_embed.proj.weight", 4, D, C, p, p, INIT_XAVIER, 1)       \
    X(patch_b, "patch_embed.proj.bias", 1, D, 0, 0, 0, INIT_CONV_BIAS, 1)

#define MAE_TENSORS_BLOCK(X)                                                   \
    X(ln1_w, "norm1.weight", 1, W, 0, 0, 0, INIT_ONE, 1)                       \
    X(ln1_b, "norm1.bias", 1, W, 0, 0, 0, INIT_ZERO, 1)                        \
    X(qkv_w, "attn.qkv.weight", 2, 3 * W, W, 0, 0, INIT_XAVIER, 1)             \
    X(qkv_b, "attn.qkv.bias", 1, 3 * W, 0, 0, 0, INIT_ZERO, 1)                 \
    X(proj_w, "attn.proj.weight", 2, W, W, 0, 0, INIT_XAVIER, 1)               \
    X(proj_b, "attn.proj.bias", 1, W, 0, 0, 0, INIT_ZERO, 1)                   \
    X(ln2_w, "norm2.weight", 1, W, 0, 0, 0, INIT_ONE, 1)                       \
    X(ln2_b, "norm2.bias", 1, W, 0, 0, 0, INIT_ZERO, 1)                        \
    X(fc1_w, "mlp.fc1.weight", 2, Hm, W, 0, 0, INIT_XAVIER, 1)                 \
    X(fc1_b, "mlp.fc1.bias", 1, Hm, 0, 0, 0, INIT_ZERO, 1)                     \
    X(fc2_w, "mlp.fc2.weight", 2, W, Hm, 0, 0, INIT_XAVIER, 1)                 \
    X(fc2_b, "mlp.fc2.bias", 1, W, 0, 0, 0, INIT_ZERO, 1)

#define MAE_TENSORS_MID(X)                                                     \
    X(norm_w, "norm.weight", 1, D, 0, 0, 0, INIT_ONE, 1)                       \
    X(norm_b, "norm.bias", 1, D, 0, 0, 0, INIT_ZERO, 1)                        \
    X(dec_embed_w, "decoder_embed.weight", 2, Dd, D, 0, 0, INIT_XAVIER, 1)     \
    X(dec_embed_b, "decoder_embed.bias", 1, Dd, 0, 0, 0, INIT_ZERO, 1)         \
    X(mask_token, "mask_token", 3, 1, 1, Dd, 0, INIT_NORMAL02, 1)              \
    X(dec_pos_embed, "decoder_pos_embed", 3, 1, L1, Dd, 0, INIT_SINCOS_DEC, 0)

#define MAE_TENSORS_TAIL(X)                                                    \
    X(dec_norm_w, "decoder_norm.weight", 1, Dd, 0, 0, 0, INIT_ONE, 1)          \
    X(dec_norm_b, "decoder_norm.bias", 1, Dd, 0, 0, 0, INIT_ZERO, 1)           \
    X(pred_w, "decoder_pred.weight", 2, P, Dd, 0, 0, INIT_XAVIER, 1)           \
    X(pred_b, "decoder_pred.bias", 1, P, 0, 0, 0, INIT_ZERO, 1)

/* Classifier tensors (mae_classifier_create), after the encoder blocks, replacing the decoder:
 * norm (CLS pooling) or fc_norm (global pooling), the linear probe's BatchNorm1d running
 * statistics, and the head. timm/official names; with the linear probe's BatchNorm the head is
 * nn.Sequential(BatchNorm1d, Linear): head.0.* and head.1.*. NC = num_classes. */
#define MAE_TENSORS_CLS(X)                                                     \
    X(fc_norm_w, "fc_norm.weight", 1, D, 0, 0, 0, INIT_ONE, 1)                 \
    X(fc_norm_b, "fc_norm.bias", 1, D, 0, 0, 0, INIT_ZERO, 1)                  \
    X(bn_mean, "head.0.running_mean", 1, D, 0, 0, 0, INIT_ZERO, 0)            \
    X(bn_var, "head.0.running_var", 1, D, 0, 0, 0, INIT_ONE, 0)               \
    X(head_w, "head.weight", 2, NC, D, 0, 0, INIT_TRUNC_HEAD, 1)               \
    X(head_b, "head.bias", 1, NC, 0, 0, 0, INIT_ZERO, 1)

#define MAE_FIELD(field, ...) float *field;
typedef struct mae_block_w {
    MAE_TENSORS_BLOCK(MAE_FIELD)
} mae_block_w;

/* Pointers into one flat buffer; the same struct serves parameters and gradients. */
typedef struct mae_weights {
    MAE_TENSORS_HEAD(MAE_FIELD)
    MAE_TENSORS_MID(MAE_FIELD)
    MAE_TENSORS_TAIL(MAE_FIELD)
    MAE_TENSORS_CLS(MAE_FIELD)
    mae_block_w *blocks;     /* [depth] */
    mae_block_w *dec_blocks; /* [decoder_depth] */
} mae_weights;
#undef MAE_FIELD

#endif
