/* dataset.h - the dataset interface of libmae, and the datasets that implement it.
 *
 * A dataset is a random-access collection of n samples, each a normalised float32 image of
 * shape (C,H,W) plus an integer label (-1 when unknown). Implementations:
 *   - mae_dataset_synthetic: deterministic random images (benchmarks, tests);
 *   - mae_dataset_idx / mae_dataset_mnist_dir: MNIST / Fashion-MNIST IDX files (idx_source.c).
 * A later image-folder pipeline implements the same struct.
 *
 * Thread safety: get() of the datasets in this directory only reads shared state, so it may be
 * called concurrently from several threads on the same dataset.
 */
#ifndef MAE_DATA_DATASET_H
#define MAE_DATA_DATASET_H

#include <stdint.h>

#include "common.h"
#include "image.h"
#include "mae.h"
#include "randaug.h"
#include "source.h"

/* Per-thread scratch for get_ws(): file bytes, decoded pixels, resize buffers. Grows on demand
 * and is reused, so a worker allocates nothing in steady state. */
typedef struct mae_data_ws {
    mae_buf file, resize;
    mae_image img;
    mae_buf aug; /* the uint8 image of the fine-tuning / evaluation transforms */
} mae_data_ws;
void mae_data_ws_release(mae_data_ws *ws); /* frees the buffers (the struct itself is the caller's) */

typedef struct mae_dataset mae_dataset;
struct mae_dataset {
    int n;       /* number of samples */
    int C, H, W; /* shape of one output sample (after any transform) */
    /* Write sample idx (0 <= idx < n) as normalised float32 (C,H,W) into out and its label into
     * *label (-1 if the dataset has none; label may be NULL). epoch and seed allow augmentation
     * derived from (seed, epoch, idx); deterministic datasets ignore them.
     * Returns MAE_OK or MAE_ERR (with err filled). */
    int (*get)(mae_dataset *ds, int64_t idx, int epoch, uint64_t seed, float *out, int *label,
               mae_error *err);
    /* Optional: get() with caller-owned scratch (file/image datasets). Returns MAE_ERR_DATA when
     * sample idx is a bad file (err names it): the loader then skips it. */
    int (*get_ws)(mae_dataset *ds, int64_t idx, int epoch, uint64_t seed, float *out, int *label,
                  mae_data_ws *ws, mae_error *err);
    /* Releases impl and whatever else the implementation owns, but not ds itself (may be NULL). */
    void (*destroy)(mae_dataset *ds);
    void *impl;
    char desc[256]; /* e.g. "Fashion-MNIST train (/usr/share/datasets/fashion-mnist), 60000
                       images 1x28x28" */
};

/* Calls ds->destroy (if any), then frees ds (which must come from malloc). NULL is a no-op. */
void mae_dataset_free(mae_dataset *ds);

/* get_ws() when the dataset has it, else get(). */
int mae_dataset_get(mae_dataset *ds, int64_t idx, int epoch, uint64_t seed, float *out, int *label,
                    mae_data_ws *ws, mae_error *err);

/* Fill out (B,C,H,W) from samples idx[0..B-1]; labels (B) may be NULL. */
int mae_dataset_batch(mae_dataset *ds, const int64_t *idx, int B, int epoch, uint64_t seed,
                      float *out, int *labels, mae_error *err);

/* Per-epoch shuffled order perm[0..n-1], derived only from (seed, epoch): a Fisher-Yates
 * shuffle driven by the counter-based hash mae_hash4(seed, epoch, i, .) of common/rng.h. */
void mae_epoch_permutation(int64_t *perm, int64_t n, uint64_t seed, int epoch);

/* Keeps only the first n samples (0 <= n <= ds->n; other values are ignored). Generic: works
 * for every dataset whose get() checks idx against ds->n. */
void mae_dataset_limit(mae_dataset *ds, int n);

/* Synthetic dataset of n images with values in [-sqrt(3), sqrt(3)) (mean 0, variance 1) and
 * labels in 0..9, derived only from (seed, idx). Returns NULL if a size is not positive. */
mae_dataset *mae_dataset_synthetic(int n, int C, int H, int W, uint64_t seed);

/* ------------------------------------------------------------------ IDX (idx_source.c) */

/* Reads an IDX3 ubyte images file (gzip-compressed or raw: zlib's gzread handles both) and
 * optionally the IDX1 ubyte labels file (labels_path may be NULL: labels are then -1).
 * Pixels are kept as uint8 in memory; get() returns x/255 normalised as (x - mean) / std with
 * mae_norm_constants(out_chans). out_chans == 3 replicates the grey value to 3 channels.
 * Returns NULL with err naming the file on: missing/unreadable file, a file that is neither
 * gzip nor IDX, wrong magic (2051 images, 2049 labels, big-endian), zero images, absurd
 * dimensions, truncated or corrupt data, trailing bytes, label count != image count. */
mae_dataset *mae_dataset_idx(const char *images_path, const char *labels_path, int out_chans,
                             mae_error *err);

/* Looks in dir for train-images-idx3-ubyte(.gz) and train-labels-idx1-ubyte(.gz) (t10k-*
 * when train == 0; the "train-images.idx3-ubyte" spelling is accepted too). The labels file is
 * optional. dir NULL means Debian's dataset-fashion-mnist location
 * /usr/share/datasets/fashion-mnist. desc says "Fashion-MNIST" when the directory name
 * contains "fashion", else "MNIST". */
mae_dataset *mae_dataset_mnist_dir(const char *dir, int train, int out_chans, mae_error *err);

/* ------------------------------------------------------------------ images (images.c) */

enum { MAE_AUG_PRETRAIN = 0, MAE_AUG_NONE = 1, MAE_AUG_FINETUNE = 2, MAE_AUG_EVAL = 3 };

typedef struct mae_image_opts {
    int size;        /* output H = W */
    int chans;       /* 1 or 3 */
    int augment;     /* MAE_AUG_PRETRAIN: RandomResizedCrop(size, scale) + flip, as
                        main_pretrain.py (and main_linprobe.py with scale_lo 0.08);
                        MAE_AUG_NONE: the whole image resized to size x size;
                        MAE_AUG_FINETUNE: main_finetune.py's training transform (timm 0.3.2
                        create_transform): RandomResizedCrop(size, scale) bicubic to uint8 +
                        flip + RandAugment(randaug) + ToTensor + Normalize +
                        RandomErasing(reprob) (set scale_lo = 0.08 for the official recipe);
                        MAE_AUG_EVAL: main_finetune.py's evaluation transform:
                        Resize(int(size / crop_pct), bicubic) (shorter side) + CenterCrop(size) */
    double scale_lo, scale_hi; /* RandomResizedCrop scale (0.2, 1.0) */
    int dct_scaling; /* JPEG: decode at the smallest DCT scale (n/8) that still covers the crop
                        at the output size (1, default) or always at full size (0). Used by
                        PRETRAIN, NONE and FINETUNE; EVAL always decodes at full size. */
    mae_randaug_cfg randaug; /* FINETUNE: RandAugment (disabled by default) */
    double reprob;   /* FINETUNE: RandomErasing probability (default 0) */
    double crop_pct; /* EVAL: 0 (default) means 224/256 = 0.875; else in (0, 1] */
} mae_image_opts;
void mae_image_opts_default(mae_image_opts *o, int size, int chans);

/* The training dataset over a source (which it takes ownership of): each get() reads sample idx,
 * draws its crop and flip from (seed, epoch, idx), decodes (JPEG: only the rows/columns needed,
 * at a reduced DCT scale when that still covers the crop), resizes with PIL's bicubic and
 * normalises with mae_norm_constants(chans). A bad file gives MAE_ERR_DATA naming it. */
mae_dataset *mae_dataset_images(mae_source *src, const mae_image_opts *opts, mae_error *err);
/* The source behind an images dataset (NULL for other datasets). */
const mae_source *mae_dataset_source(const mae_dataset *ds);

#define MAE_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* Normalisation constants for chans channels (mean[chans], std[chans]):
 *   3 channels: the ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225);
 *   1 channel:  the per-channel average of those, mean 0.449 and std 0.226, so a grey image
 *               is normalised like the average of the channels of the same image in RGB.
 * Other counts get the 1-channel constants in every channel. Un-normalise with x*std + mean. */
void mae_norm_constants(int chans, float *mean, float *std);

#endif
