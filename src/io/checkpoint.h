/* checkpoint.h - internal: weights file with extra metadata (the public mae_model_save
 * writes format, version and config). */
#ifndef MAE_IO_CHECKPOINT_H
#define MAE_IO_CHECKPOINT_H

#include "mae.h"

/* meta: nmeta (key, value) pairs added to the safetensors metadata */
int mae_model_save_meta(const mae_model *m, const char *path, const char *const *meta, int nmeta,
                        mae_error *err);
/* value of a metadata key of a safetensors file into buf ("" if absent) */
int mae_file_meta(const char *path, const char *key, char *buf, size_t cap, mae_error *err);

/* mae_checkpoint_config for a classifier's encoder: a file without a decoder (an encoder-only
 * checkpoint) is accepted; its decoder fields are placeholders (also the decoder heads of a file
 * whose decoder width has no default head count) */
int mae_checkpoint_encoder_config(const char *path, int num_heads, mae_config *cfg,
                                  mae_error *err);
/* The model config of an open checkpoint view (io/statedict.h): its metadata, else inferred
 * from the shapes; heads from the flags (> 0), the file, or the official counts. */
struct mae_sd;
int mae_sd_config(const struct mae_sd *sd, int num_heads, int decoder_num_heads,
                  mae_config *cfg, int encoder_only, mae_error *err);
/* mae_model_load and mae_classifier_load_encoder on an open view: a command opens its
 * checkpoint once for its config, its checks and its weights */
int mae_model_load_sd(mae_model *m, const struct mae_sd *sd, mae_error *err);
int mae_classifier_load_encoder_sd(mae_model *m, const struct mae_sd *sd, mae_error *err);

/* The classifier settings from the tensors (head.weight or head.1.weight, fc_norm.*) */
int mae_sd_classifier(const struct mae_sd *sd, mae_cls_config *cc, mae_error *err);

/* Writes checkpoint (any format mae_sd_open reads) into the existing folder out_dir as
 * model.safetensors + config.json for format "official" (models_mae / models_vit), "timm"
 * (timm's hub layout) or "hf" (transformers ViTMAEForPreTraining / ViTMAEModel). */
int mae_export(const char *checkpoint, const char *format, const char *out_dir, int num_heads,
               int decoder_num_heads, mae_error *err);
#endif
