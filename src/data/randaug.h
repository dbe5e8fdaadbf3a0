/* randaug.h - RandAugment as the official MAE fine-tuning recipe uses it (timm 0.3.2
 * rand_augment_transform, e.g. "rand-m9-mstd0.5-inc1"), on interleaved uint8 images, with the
 * PIL 9.4 algorithms of every op (ImageOps, ImageEnhance, Image.transform AFFINE + BICUBIC).
 *
 * timm semantics: n ops are chosen uniformly WITH replacement from the 15-op set; each is applied
 * with probability 0.5; its magnitude is gauss(m, mstd) (when mstd > 0) clipped to [0, mmax];
 * frac = magnitude / 10 (timm's _MAX_LEVEL / _LEVEL_DENOM, also when mmax != 10) gives the op's
 * argument (mae_randaug_level_arg).
 *
 * Randomness: every draw is a pure function of the 64-bit key (mae_hash4(key, step, k, 0)).
 *
 * Differences from timm 0.3.2 that are deliberate: "inc0" selects the non-increasing op set
 * (timm 0.3.2 tests bool("0"), which is True, so it always picked the increasing set); sections
 * timm silently skips (no digit) or does not know are errors here; "mmax" (a later timm key) is
 * accepted. Grey (c = 1) images: Color is the identity (PIL's convert("L") of an L image). */
#ifndef MAE_DATA_RANDAUG_H
#define MAE_DATA_RANDAUG_H

#include <stdint.h>

#include "common.h"

#define MAE_RANDAUG_MAX_OPS 16

typedef struct mae_randaug_cfg {
    int enabled;      /* 0: mae_randaug_apply is a no-op */
    int num_ops;      /* n: ops per image (default 2), 0..MAE_RANDAUG_MAX_OPS */
    double magnitude; /* m (default 10 when the spec has no m) */
    double mstd;      /* magnitude std (default 0) */
    double mmax;      /* magnitude upper clip (default 10) */
    int increasing;   /* inc: 1 = timm's _RAND_INCREASING_TRANSFORMS (default 0) */
    char spec[64];    /* the parsed string, for descriptions */
} mae_randaug_cfg;

/* The op set, in timm's _RAND_TRANSFORMS / _RAND_INCREASING_TRANSFORMS order. Posterize,
 * Solarize, Color, Contrast, Brightness and Sharpness are the "Increasing" variants when
 * cfg->increasing (only the level -> argument mapping differs). */
enum {
    MAE_RA_AUTOCONTRAST,
    MAE_RA_EQUALIZE,
    MAE_RA_INVERT,
    MAE_RA_ROTATE,
    MAE_RA_POSTERIZE,
    MAE_RA_SOLARIZE,
    MAE_RA_SOLARIZE_ADD,
    MAE_RA_COLOR,
    MAE_RA_CONTRAST,
    MAE_RA_BRIGHTNESS,
    MAE_RA_SHARPNESS,
    MAE_RA_SHEAR_X,
    MAE_RA_SHEAR_Y,
    MAE_RA_TRANSLATE_X,
    MAE_RA_TRANSLATE_Y,
    MAE_RA_NUM_OPS
};

/* timm's name of op ("PosterizeIncreasing" etc. when increasing). */
const char *mae_randaug_op_name(int op, int increasing);

/* Parses "rand-m9-mstd0.5-inc1" (sections m, n, mstd, inc, mmax in any order after "rand");
 * "" / "none" / NULL = disabled. Errors name --aa and the bad part. */
int mae_randaug_parse(mae_randaug_cfg *cfg, const char *spec, mae_error *err);

/* One step of RandAugment as drawn for a key: which op, whether it fires (p = 0.5), the clipped
 * magnitude, the sign draw (1: negate, for the ops with a random sign) and the op argument. */
typedef struct mae_randaug_step {
    int op, fire, negate;
    double magnitude, arg;
} mae_randaug_step;

/* The cfg->num_ops steps drawn for key (steps has room for cfg->num_ops). */
void mae_randaug_draw(mae_randaug_step *steps, const mae_randaug_cfg *cfg, uint64_t key, int w,
                      int h);

/* timm's level -> argument of op at magnitude (0..mmax) for a w x h image:
 *   Rotate: degrees = frac*30; ShearX/Y: frac*0.3; TranslateX/YRel: frac*0.45*w (h for Y)
 *   (those three negated when negate); Posterize: bits = int(frac*4), increasing
 *   4 - int(frac*4); Solarize: thresh = int(frac*256), increasing 256 - int(frac*256);
 *   SolarizeAdd: int(frac*110); Color/Contrast/Brightness/Sharpness: frac*1.8 + 0.1, increasing
 *   1 + frac*0.9 (1 - frac*0.9 when negate); AutoContrast/Equalize/Invert: 0 (no argument). */
double mae_randaug_level_arg(int op, int increasing, double magnitude, int negate, int w, int h);

/* Applies one op with its argument in place (PIL semantics, see randaug.c). img: (h, w, c)
 * interleaved uint8, c = 1 or 3; fill: the colour of the area outside the source for the
 * geometric ops (fill[0] for c = 1); ws: scratch, grown on demand. */
void mae_randaug_op(uint8_t *img, int w, int h, int c, int op, double arg, const uint8_t fill[3],
                    mae_buf *ws);

/* PIL's Image.transform(size, AFFINE, a, BICUBIC, fillcolor=fill) in place: output pixel (x, y)
 * samples the source at (a0 X + a1 Y + a2, a3 X + a4 Y + a5), X = x + 0.5, Y = y + 0.5, with
 * PIL's transform bicubic (a = -1, edge-clamped, truncated to uint8); outside -> fill. */
void mae_affine_bicubic(uint8_t *img, int w, int h, int c, const double a[6],
                        const uint8_t fill[3], mae_buf *ws);

/* PIL's Image.rotate(degrees, BICUBIC, fillcolor=fill) (counter-clockwise, about the centre,
 * same size) in place. */
void mae_rotate_bicubic(uint8_t *img, int w, int h, int c, double degrees, const uint8_t fill[3],
                        mae_buf *ws);

/* The whole RandAugment of cfg for key, in place. No-op when !cfg->enabled. */
void mae_randaug_apply(uint8_t *img, int w, int h, int c, const mae_randaug_cfg *cfg,
                       const uint8_t fill[3], uint64_t key, mae_buf *ws);

#endif
