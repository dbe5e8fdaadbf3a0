/* transform.h - the official pretraining augmentation on 8-bit images:
 * RandomResizedCrop(size, scale=(0.2, 1.0), ratio=(3/4, 4/3), bicubic) + RandomHorizontalFlip +
 * ToTensor + Normalize, with torchvision's algorithms and PIL's bicubic resampling, plus the
 * deterministic resize used for evaluation.
 *
 * Randomness: every draw is a pure function of a 64-bit key (the caller derives it from
 * (seed, epoch, sample index)), so results do not depend on threads or call order.
 */
#ifndef MAE_DATA_TRANSFORM_H
#define MAE_DATA_TRANSFORM_H

#include <stdint.h>

#include "common.h"

/* torchvision's (i, j, h, w): top, left, height, width, in source pixels. */
typedef struct mae_crop {
    int top, left, height, width;
} mae_crop;

/* RandomResizedCrop.get_params for a W x H image: up to 10 tries of
 *   area = W*H*U(scale_lo, scale_hi); r = exp(U(log ratio_lo, log ratio_hi));
 *   w = round(sqrt(area*r)); h = round(sqrt(area/r)); accept if 0 < w <= W and 0 < h <= H,
 *   then top = randint(0, H-h), left = randint(0, W-w);
 * else the center-crop fallback (ratio clamped to [ratio_lo, ratio_hi]). The uniform draws come
 * from mae_hash4(key, try, k, .) and never from global state. */
void mae_rrc_params(mae_crop *out, int W, int H, double scale_lo, double scale_hi,
                    double ratio_lo, double ratio_hi, uint64_t key);

/* Horizontal flip decision of RandomHorizontalFlip(0.5) for key. */
int mae_flip_draw(uint64_t key);

/* Bicubic resize (PIL's: a = -0.5, antialiased when shrinking, i.e. the filter support scales
 * with the shrink factor) of the region rows [y0, y0+h), cols [x0, x0+w) of src, treated as a
 * whole image (as torchvision crops, then resizes), to ow x oh; optionally mirrored left-right;
 * then out[c][y][x] = (v/255 - mean[c]) / std[c].
 *   src:  uint8 (rows, stride bytes per row), c interleaved channels (1 or 3)
 *   out:  float32 (c, oh, ow)
 *   ws:   scratch (coefficients, the intermediate image), grown on demand. */
void mae_resize_normalize(float *out, int ow, int oh, const uint8_t *src, int stride, int c,
                          int x0, int y0, int w, int h, int flip, const float *mean,
                          const float *std, mae_buf *ws);

/* The same resize to uint8 (oh, ow, c) interleaved, no flip/normalise: what PIL's
 * img.crop(box).resize((ow, oh), Image.BICUBIC) gives, for tests and pictures. */
void mae_resize_u8(uint8_t *out, int ow, int oh, const uint8_t *src, int stride, int c, int x0,
                   int y0, int w, int h, mae_buf *ws);

/* ToTensor + Normalize of the region rows [y0, y0+h), cols [x0, x0+w) of an interleaved uint8
 * image (stride bytes per row, c channels), optionally mirrored left-right, into out (c, h, w):
 * out = (v/255 - mean[c]) / std[c] in float32, the values of mae_resize_normalize. */
void mae_normalize_u8(float *out, const uint8_t *src, int stride, int c, int x0, int y0, int w,
                      int h, int flip, const float *mean, const float *std);

/* torchvision's Resize(int) output size: the shorter side becomes `shorter`, the longer
 * int(shorter * long / short) (equal sides: both `shorter`). */
void mae_resize_short_size(int *ow, int *oh, int W, int H, int shorter);

#endif
