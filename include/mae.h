/* mae.h - public C API of libmae: Masked Autoencoders (He et al., CVPR 2022) in C11.
 *
 * A program links libmae and can build a model from a config, initialise it as the official
 * facebookresearch/mae code does, run the MAE forward and backward pass, train it with AdamW
 * and the per-iteration warmup + cosine schedule, and save/load safetensors checkpoints whose
 * tensor names are the official PyTorch state-dict names.
 *
 * Conventions
 *   - Functions that can fail on user input return MAE_OK (0) or MAE_ERR (-1) and fill the
 *     optional mae_error with a message naming the file/flag and what is wrong.
 *   - Images are float32, normalised, laid out (B, C, H, W) as in PyTorch.
 *   - L = (img_size / patch_size)^2 patches, P = patch_size^2 * in_chans values per patch.
 */
#ifndef MAE_H
#define MAE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MAE_OK 0
#define MAE_ERR (-1)
#define MAE_ERR_NONFINITE (-2) /* a loss or gradient was NaN/Inf */
#define MAE_ERR_DATA (-3)      /* one input file/sample is bad (corrupt, truncated, not an image) */

#define MAE_VERSION_STRING "0.1.0"

typedef struct mae_error {
    char msg[512];
} mae_error;

/* ------------------------------------------------------------------ configuration */

typedef struct mae_config {
    int img_size;          /* H == W */
    int patch_size;        /* p */
    int in_chans;          /* 1 or 3 */
    int embed_dim;         /* D */
    int depth;             /* encoder blocks */
    int num_heads;         /* encoder heads */
    int decoder_embed_dim; /* Dd */
    int decoder_depth;
    int decoder_num_heads;
    float mlp_ratio; /* hidden = (int)(dim * mlp_ratio), both stacks */
    double mask_ratio; /* double, so int(L * (1 - r)) matches Python exactly */
    int norm_pix_loss; /* 0/1 */
    float layer_norm_eps; /* LayerNorm eps of every norm; 0 means the official 1e-6 (HF
                             transformers' ViTMAE configs say 1e-12) */
} mae_config;
/* The LayerNorm eps of a config (its layer_norm_eps, or 1e-6 when that is 0). */
float mae_config_ln_eps(const mae_config *cfg);

/* Known presets: "mae_vit_base_patch16", "mae_vit_large_patch16", "mae_vit_huge_patch14",
 * "mae_vit_small" (384/12/6, dec 256/4/8, 224/16), "mae_vit_tiny" (192/12/3, dec 128/4/4, 224/16),
 * and benchmark shapes "tiny-28" (28x28x1, p4), "tiny-32" (32x32x3, p4), "small-224", "base-224". */
int mae_config_preset(mae_config *cfg, const char *name, mae_error *err);
/* Comma-separated list of preset names, for help texts. */
const char *mae_config_preset_names(void);
int mae_config_validate(const mae_config *cfg, mae_error *err);
int mae_config_num_patches(const mae_config *cfg);  /* L */
int mae_config_len_keep(const mae_config *cfg);     /* int(L * (1 - mask_ratio)) */
int mae_config_patch_dim(const mae_config *cfg);    /* P = p*p*C */
/* Encode/decode the config as a compact JSON object (used in checkpoint metadata). */
int mae_config_to_json(const mae_config *cfg, char *buf, size_t cap);
int mae_config_from_json(mae_config *cfg, const char *json, mae_error *err);

/* ------------------------------------------------------------------ model */

typedef struct mae_model mae_model;

/* Allocates parameters, gradients and activations for batches of up to max_batch images.
 * device: "cpu" (NULL means cpu). Parameters are zero until mae_model_init or a load. */
mae_model *mae_model_create(const mae_config *cfg, int max_batch, const char *device,
                            mae_error *err);
void mae_model_free(mae_model *m);
const mae_config *mae_model_config(const mae_model *m);
int mae_model_max_batch(const mae_model *m);
/* Bytes of the parameter buffer (gradients are the same size) and of all activations; the
 * encoder's share is sized for the visible tokens only (1 + len_keep). */
/* Where a training step's time goes: host wall-clock seconds per phase, summed over the calls
 * since the model was created or mae_phase_reset. Encoder: masking, patch embedding, encoder
 * blocks and norm; decoder: through decoder_pred; loss: the target and the loss; backward: the
 * whole backward pass; optimizer: AdamW and zeroing the gradients (mae_trainer_step). */
enum { MAE_PHASE_ENCODER, MAE_PHASE_DECODER, MAE_PHASE_LOSS, MAE_PHASE_BACKWARD,
       MAE_PHASE_OPTIMIZER, MAE_PHASE_GRAD_SYNC, MAE_NUM_PHASES };
void mae_phase_seconds(const mae_model *m, double out[MAE_NUM_PHASES]);
void mae_phase_reset(mae_model *m);
const char *mae_phase_name(int phase); /* "encoder", ..., "optimizer" */

void mae_model_memory(const mae_model *m, size_t *param_bytes, size_t *act_bytes,
                      size_t *enc_act_bytes, size_t *dec_act_bytes);

/* Matmul precision of the Linear layers (patch embed, qkv, proj, fc1, fc2, decoder embed and
 * pred), forward and backward. "fp32" (the default) or "bf16": inputs rounded to bfloat16
 * (round to nearest even), products accumulated in fp32, outputs fp32, as torch.autocast on
 * CPU does for Linear. Master weights, gradients, AdamW, LayerNorm, softmax, GELU and the loss
 * stay fp32. bf16 needs AVX512_BF16; elsewhere setting it fails with a message. */
enum { MAE_PREC_FP32, MAE_PREC_BF16 };
int mae_model_set_precision(mae_model *m, const char *name, mae_error *err);
int mae_model_precision(const mae_model *m); /* MAE_PREC_* */

/* Official initialisation, seeded: xavier_uniform for Linear weights and the patch embed
 * viewed as (D, C*p*p); zero Linear biases; the patch-embed bias keeps PyTorch's Conv2d default
 * uniform(+-1/sqrt(C*p*p)); LayerNorm 1/0; cls/mask token normal(0, 0.02); fixed 2-D sin-cos
 * position embeddings. */
void mae_model_init(mae_model *m, uint64_t seed);

/* Masking noise for a batch: noise[b*L + l] in [0,1), derived only from (seed, sample_ids[b], l),
 * so a sample's mask does not depend on batch composition, threads or processes. */
void mae_make_noise(float *noise, int B, int L, uint64_t seed, const uint64_t *sample_ids);

/* Forward pass. imgs: (B,C,H,W). noise: (B,L) in [0,1) or NULL (then derived from seed 0 and
 * sample ids 0..B-1). mask_ratio < 0 uses the config's. Sets *loss (mean MSE on removed
 * patches; 0 when no patch is removed). Activations are kept for mae_backward. */
int mae_forward(mae_model *m, const float *imgs, const float *noise, int B, double mask_ratio,
                float *loss, mae_error *err);
/* Backward of the last forward: accumulates d(loss * loss_scale)/dparam into the gradients. */
void mae_backward(mae_model *m, float loss_scale);
void mae_zero_grad(mae_model *m);

/* Outputs of the last forward (host buffers). pred: (B,L,P); mask: (B,L) 1 = removed;
 * ids_restore: (B,L); latent: (B, 1+len_keep, D) after the final norm. */
int mae_last_batch(const mae_model *m);
int mae_last_len_keep(const mae_model *m);
void mae_get_pred(const mae_model *m, float *pred);
void mae_get_mask(const mae_model *m, float *mask);
void mae_get_ids_restore(const mae_model *m, int64_t *ids_restore);
void mae_get_latent(const mae_model *m, float *latent);

/* Encoder-only inference on ALL patches in image order (no masking, no shuffle): patch embed,
 * + pos, CLS token, encoder blocks, final norm -- the official forward_encoder with mask_ratio
 * 0 minus the random shuffle (timm ViT forward_features). imgs: (B,C,H,W); latent (host):
 * (B, 1+L, D). The model must have been created with cfg.mask_ratio == 0 (its encoder is then
 * sized for 1+L tokens); otherwise this returns MAE_ERR with a message. Timed as the encoder
 * phase. It reuses the activation buffers of mae_forward, so afterwards there are no outputs of
 * a last forward (mae_last_batch() == 0) and mae_backward must not be called before the next
 * mae_forward. */
int mae_forward_encoder(mae_model *m, const float *imgs, int B, float *latent, mae_error *err);

/* ------------------------------------------------------------------ classifier */

/* A ViT classifier on the MAE encoder (official models_vit.VisionTransformer): the encoder on
 * all patches (no masking), then
 *   global_pool 1: mean of the patch tokens -> fc_norm -> [BatchNorm1d] -> head (main_finetune
 *                  default; the encoder's final `norm` is not used);
 *   global_pool 0: the CLS token -> norm -> [BatchNorm1d] -> head.
 * Its tensors are the encoder's (cls_token, pos_embed (trainable here, as timm's), patch_embed,
 * blocks.*) plus norm or fc_norm, head.0.running_mean/var (head_bn) and head.weight/bias
 * (head.1.* with head_bn). No decoder is allocated. */
typedef struct mae_cls_config {
    int num_classes;
    int global_pool;
    int head_bn;        /* BatchNorm1d(affine=False, eps 1e-6, momentum 0.1) before the head */
    int freeze_encoder; /* only the head trains (linear probing): backward stops at the head */
    double drop_path;   /* stochastic depth: block i drops with rate drop_path * i / (depth-1) */
    double head_init_std; /* head.weight ~ trunc_normal(std) (timm, cut at +-2): 2e-5 finetune,
                             0.01 linprobe; head.bias = 0 */
} mae_cls_config;

/* cfg describes the encoder (decoder fields and mask_ratio are ignored). Initialise with
 * mae_model_init (the encoder as MAE pretraining would, the head as above) and/or
 * mae_classifier_load_encoder. */
mae_model *mae_classifier_create(const mae_config *cfg, const mae_cls_config *cc, int max_batch,
                                 const char *device, mae_error *err);
/* The classifier settings of m, or NULL for an MAE (pretraining) model. */
const mae_cls_config *mae_model_classifier(const mae_model *m);
/* Forward. imgs (B,C,H,W); targets (B, num_classes) soft targets (rows summing to 1) or NULL
 * (no loss); train 1: drop_path active (draws from key) and BatchNorm in batch-statistics mode
 * (updating its running stats), 0: eval. *loss (may be NULL) = mean soft-target cross entropy;
 * logits (host, (B, num_classes), may be NULL). */
int mae_cls_forward(mae_model *m, const float *imgs, const float *targets, int B, int train,
                    uint64_t key, float *loss, float *logits, mae_error *err);
/* Features of the last mae_cls_forward (host, (B, D)): the pooled tokens after norm (CLS
 * pooling) or fc_norm (global pooling), before the BatchNorm and the head (timm
 * forward_head(pre_logits=True) of the official models_vit.VisionTransformer). */
void mae_cls_get_features(const mae_model *m, float *feat);
/* Backward of the last mae_cls_forward with targets: accumulates d(loss*loss_scale)/dparam. */
void mae_cls_backward(mae_model *m, float loss_scale);
/* Loads the encoder of a checkpoint written by `mae pretrain` or a classifier (any tensor of
 * ours with the official names): cls_token, pos_embed, patch_embed, blocks, and norm (CLS
 * pooling) or fc_norm (global pooling: from fc_norm.* when the file has it; otherwise a linear
 * probe (freeze_encoder) takes the pretrained norm.*, so its frozen fc_norm is not left at its
 * init as in main_linprobe.py (official issue #186), and fine-tuning trains fc_norm from its
 * init, as main_finetune.py). pos_embed is resized bicubically (official
 * interpolate_pos_embed) when the file's patch grid differs. Errors name the file and tensor:
 * no encoder in the file, or a shape that disagrees. The head is left as it is. */
int mae_classifier_load_encoder(mae_model *m, const char *path, mae_error *err);
/* The model config and classifier settings stored in a classifier checkpoint (written by
 * mae_model_save of a classifier); MAE_ERR naming the file when it is not one. */
int mae_checkpoint_classifier(const char *path, mae_config *cfg, mae_cls_config *cc,
                              mae_error *err);
/* Layer id of tensor i for layer-wise lr decay (official param_groups_lrd): 0 for cls_token,
 * pos_embed, patch_embed; i+1 for blocks.i; depth+1 for the rest. */
int mae_tensor_layer_id(const mae_model *m, int i);

/* ------------------------------------------------------------------ tensors (state dict) */

#define MAE_MAX_NAME 96
typedef struct mae_tensor_info {
    const char *name; /* official state-dict name, e.g. "blocks.0.attn.qkv.weight" */
    int ndim;
    int64_t shape[4];
    size_t numel;
    int trainable;    /* 0 for the fixed position embeddings */
    int weight_decay; /* 1 if AdamW applies weight decay (ndim > 1 and not a bias) */
} mae_tensor_info;

int mae_num_tensors(const mae_model *m);
const mae_tensor_info *mae_tensor(const mae_model *m, int i);
int mae_tensor_find(const mae_model *m, const char *name); /* index or -1 */
size_t mae_num_params(const mae_model *m, int trainable_only);
/* Copy a parameter (or its gradient) to/from host memory of tensor(i).numel floats. */
void mae_tensor_get(const mae_model *m, int i, float *dst);
void mae_tensor_set(mae_model *m, int i, const float *src);
void mae_grad_get(const mae_model *m, int i, float *dst);

/* Weights-only safetensors file with official names; config stored in the metadata.
 * Load checks every name and shape and names the file and tensor on mismatch. */
int mae_model_save(const mae_model *m, const char *path, mae_error *err);
int mae_model_load(mae_model *m, const char *path, mae_error *err);
/* Read the config of a checkpoint: from its metadata if present, else inferred from the
 * tensor shapes (heads cannot be inferred: num_heads / decoder_num_heads give them, <= 0 means
 * a default of dim/64). */
int mae_checkpoint_config(const char *path, int num_heads, int decoder_num_heads,
                          mae_config *cfg, mae_error *err);

/* ------------------------------------------------------------------ training */

typedef struct mae_train_config {
    int batch_size;     /* per step, per process */
    int accum_iter;     /* gradient accumulation */
    int epochs;
    double warmup_epochs;
    double lr;          /* absolute lr; if <= 0 it is blr * eff_batch / 256 */
    double blr;
    double min_lr;
    double weight_decay;
    double beta1, beta2, eps;
    uint64_t seed;
    int world_size;     /* data-parallel processes (1 here) */
    /* fine-tuning / linear probing (main_finetune.py, main_linprobe.py) */
    int optimizer;      /* MAE_OPT_ADAMW (default) or MAE_OPT_LARS */
    double layer_decay; /* layer-wise lr decay: lr scale decay^(depth+1-layer_id); 1 = none */
    double clip_grad;   /* clip the global gradient norm to this; 0 = no clipping */
    double momentum;    /* LARS momentum (0.9) */
    double lars_trust;  /* LARS trust coefficient (0.001) */
} mae_train_config;
enum { MAE_OPT_ADAMW = 0, MAE_OPT_LARS = 1 };

void mae_train_config_default(mae_train_config *tc); /* main_pretrain.py defaults */
int mae_train_config_validate(const mae_train_config *tc, mae_error *err);
double mae_train_effective_lr(const mae_train_config *tc);
/* Learning rate at fractional epoch e (warmup then half-cycle cosine to min_lr). */
double mae_lr_at(const mae_train_config *tc, double epoch);

typedef struct mae_trainer mae_trainer;
mae_trainer *mae_trainer_create(mae_model *m, const mae_train_config *tc, mae_error *err);
void mae_trainer_free(mae_trainer *t);
/* One micro-batch: sets the lr from epoch_float at the start of an accumulation cycle,
 * forward + backward (loss / accum_iter), and an AdamW step when the cycle completes.
 * Returns MAE_ERR_NONFINITE (weights untouched by this step) if the loss is not finite. */
int mae_trainer_step(mae_trainer *t, const float *imgs, const float *noise, int B,
                     double epoch_float, float *loss, mae_error *err);
/* The same for a classifier (mae_classifier_create): targets (B, num_classes) soft targets,
 * key seeds drop_path. Weight decay groups as official finetune/linprobe: none for 1-D
 * tensors, pos_embed and cls_token; lr scaled per layer by layer_decay; optional clipping of
 * the global gradient norm; AdamW or LARS (tc->optimizer). */
int mae_trainer_step_cls(mae_trainer *t, const float *imgs, const float *targets, int B,
                         double epoch_float, uint64_t key, float *loss, mae_error *err);
/* Data parallelism (src/dist implements it over MPI and NCCL; any other engine can too): the
 * trainer hands each update's gradients to a sync that sums them over `world` processes, then
 * divides by world, before clipping and the optimizer.
 * ready (may be NULL): called during the backward of an update's last micro-batch each time
 * the gradients grads[off, n) have become final; they become final from the end of the buffer
 * backwards (the tensor table's order is the reverse of the backward's), so off only falls.
 * A sync may start summing them there, overlapping the rest of the backward.
 * finish: called once the backward is done; it must leave the sum over all processes of
 * grads[0, n) in grads. grads is the backend's buffer (device memory on cuda).
 * A world of 1 with no sync is the default; a world of 1 with a finish runs the sync anyway (a
 * check of the engine on one device). */
typedef struct mae_grad_sync {
    int world;
    void *ctx;
    void (*ready)(void *ctx, float *grads, size_t off, size_t n);
    int (*finish)(void *ctx, float *grads, size_t n, mae_error *err);
} mae_grad_sync;
int mae_trainer_set_grad_sync(mae_trainer *t, const mae_grad_sync *s, mae_error *err);
double mae_trainer_lr(const mae_trainer *t);
int64_t mae_trainer_num_updates(const mae_trainer *t);
int64_t mae_trainer_num_micro(const mae_trainer *t);

/* Training state (AdamW moments, counters, config, train config, and where to resume) in a
 * safetensors file beside the weights, written atomically. (epoch, step) is the resume point:
 * `step` micro-batches of `epoch` are done (a finished epoch E is saved as (E+1, 0)). Save only
 * at the end of an accumulation cycle (gradients are not stored). */
int mae_trainer_save_state(const mae_trainer *t, const char *path, int epoch, int64_t step,
                           mae_error *err);
/* Restores the state and returns the resume point through *epoch and *step (either may be
 * NULL). */
int mae_trainer_load_state(mae_trainer *t, const char *path, int *epoch, int64_t *step,
                           mae_error *err);

/* ------------------------------------------------------------------ runtime */

/* Threads used by the CPU backend's own loops (OpenMP); BLAS threads are set alongside. */
void mae_set_num_threads(int n);
int mae_get_num_threads(void);

#ifdef __cplusplus
}
#endif
#endif
