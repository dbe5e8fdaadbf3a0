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
#endif
