/* statedict.h - one read-only view of a checkpoint in any format we import, with every tensor
 * under its official facebookresearch/mae name (the names of our own files).
 *
 * Formats (detected from the content, not the file name):
 *   - our safetensors files (metadata "format": "mae", with the config);
 *   - official MAE .pth files: torch.save zip archives read by the restricted unpickler of
 *     pth.h (never torch.load: nothing in the file runs); the "model" entry is the state dict,
 *     the "args" namespace gives the model name (heads) and norm_pix_loss;
 *   - timm ViT safetensors / .pth: the official names already (encoder, norm or fc_norm, head);
 *   - HF transformers ViTMAE: a folder with config.json and model.safetensors or
 *     pytorch_model.bin (or one of those files beside its config.json), names of transformers
 *     4.x (vit.encoder.layer.i.attention.attention.query ...) or 5.x (vit.layers.i.attention.q_proj
 *     ... mlp.fc1); query/key/value are fused into qkv on the fly; ViTForImageClassification's
 *     classifier.* becomes head.*.
 * A "module." (DistributedDataParallel) or "_orig_mod." (torch.compile) prefix is dropped.
 */
#ifndef MAE_IO_STATEDICT_H
#define MAE_IO_STATEDICT_H

#include <stddef.h>
#include <stdint.h>

#include "io/pth.h"
#include "io/safetensors.h"
#include "mae.h"

enum { SD_FMT_MAE, SD_FMT_OFFICIAL, SD_FMT_HF };
enum { SD_SAFETENSORS, SD_PTH };

#define SD_MAX_PARTS 3

typedef struct sd_tensor {
    char name[MAE_MAX_NAME]; /* official name */
    const char *src;         /* name of (the first part) in the file, for messages */
    int ndim;
    int64_t shape[4];
    size_t numel;
    int nparts;              /* source tensors concatenated along dim 0 (HF q, k, v) */
    int part[SD_MAX_PARTS];  /* their indices in the container */
} sd_tensor;

typedef struct mae_sd {
    char path[1024];  /* the file holding the tensors */
    int format;       /* SD_FMT_* */
    int container;    /* SD_SAFETENSORS or SD_PTH */
    st_file st;
    pth_file pth;
    int n;
    sd_tensor *t;
    /* what the file says beyond the tensors (NULL / 0 when it does not say) */
    const char *meta_config;     /* our config JSON */
    const char *meta_classifier; /* our classifier JSON */
    int num_heads, decoder_num_heads;
    int norm_pix_loss;           /* -1 unknown */
    double mask_ratio;           /* 0 unknown */
    float layer_norm_eps;        /* 0 unknown */
    char origin[160];            /* "HF transformers 4.x folder ...", for messages */
} mae_sd;

/* Opens path (a file, or an HF folder). Errors name the file and what is wrong. On error the
 * view is closed (mae_sd_close is harmless). */
int mae_sd_open(mae_sd *sd, const char *path, mae_error *err);
void mae_sd_close(mae_sd *sd);
int mae_sd_find(const mae_sd *sd, const char *name); /* index or -1 */
/* Tensor i as float32 (from F32/F16/BF16/F64, strided .pth tensors, fused parts); error if its
 * numel differs from expected_numel. */
int mae_sd_read(const mae_sd *sd, int i, float *dst, size_t expected_numel, mae_error *err);

/* Maps a file's tensor name to the official one. Returns the part (0..2 for HF query / key /
 * value, which fuse into attn.qkv) or -1 for a whole tensor; *hf is set when the name is an HF
 * transformers name. Unknown names are copied unchanged. (sd_names.c) */
int mae_sd_map_name(const char *in, char *out, size_t cap, int *hf);
/* The inverse for export: official name -> HF transformers 4.x name; part 0..2 of qkv give
 * query/key/value. Returns MAE_ERR for a name HF ViTMAE has no place for (head, fc_norm). */
int mae_sd_hf_name(const char *official, int part, char *out, size_t cap);

#endif
