/* mix.h - the batch-level and tensor-level augmentations of the official MAE fine-tuning
 * (main_finetune.py with timm 0.3.2): RandomErasing(mode='pixel', max_count=1) on one normalised
 * image, Mixup/CutMix (timm Mixup, mode='batch', correct_lam=True) with label smoothing.
 *
 * Randomness: every draw is a pure function of the 64-bit key (mae_hash4(key, stream, i, .)). */
#ifndef MAE_DATA_MIX_H
#define MAE_DATA_MIX_H

#include <stdint.h>

/* timm RandomErasing(probability=prob, mode='pixel', min_area=0.02, max_area=1/3,
 * min_aspect=0.3, max_count=1) on img (C, H, W), in place: with probability prob, up to 10
 * tries of target_area = U(0.02, 1/3)*H*W, aspect = exp(U(log 0.3, log(1/0.3))),
 * h = round(sqrt(target_area*aspect)), w = round(sqrt(target_area/aspect)); the first with
 * w < W and h < H gets top = randint(0, H-h), left = randint(0, W-w) (inclusive) and the box is
 * filled in every channel with independent N(0, 1) values. Returns 1 if a box was erased
 * (and writes it to box[4] = top, left, h, w when box is not NULL), else 0. */
int mae_random_erasing_box(float *img, int C, int H, int W, double prob, uint64_t key, int box[4]);
void mae_random_erasing(float *img, int C, int H, int W, double prob, uint64_t key);

typedef struct {
    double mixup_alpha, cutmix_alpha, prob, switch_prob, smoothing;
    int num_classes;
} mae_mixup_cfg;

/* Soft targets (B, num_classes) of smoothed one-hot labels: off = smoothing/num_classes,
 * on = 1 - smoothing + off. */
void mae_smooth_targets(float *targets, const int *labels, int B, int num_classes,
                        double smoothing);

/* timm Mixup(mode='batch', correct_lam=True, label_smoothing=smoothing, prob, switch_prob) on
 * imgs (B, C, H, W) in place, pairing sample b with B-1-b (the batch flipped):
 *   with probability prob (and some alpha > 0): cutmix with probability switch_prob when both
 *   alphas > 0 (only cutmix if only cutmix_alpha > 0), lam ~ Beta(alpha, alpha);
 *   mixup:  x[b] = lam*x[b] + (1-lam)*x[B-1-b] (float32: x*(float)lam + y*(float)(1-lam));
 *   cutmix: cut_h = int(H*sqrt(1-lam)), cy = randint(0, H-1), yl = clip(cy - cut_h/2, 0, H),
 *           yh = clip(cy + cut_h/2, 0, H) (same for x); the box of x[B-1-b] is pasted into
 *           x[b], and lam = 1 - (yh-yl)*(xh-xl)/(H*W);
 *   otherwise lam = 1 and imgs are unchanged.
 * targets (B, num_classes) = lam*smooth_onehot(labels[b]) + (1-lam)*smooth_onehot(labels[B-1-b]).
 * Returns lam, or -1 (nothing written) when B is odd or not positive, num_classes < 1 or a label
 * is outside [0, num_classes). */
double mae_mixup_batch(float *imgs, float *targets, const int *labels, int B, int C, int H, int W,
                       const mae_mixup_cfg *cfg, uint64_t key);

/* The random variates behind them (exposed for tests): Gamma(a, 1) by Marsaglia-Tsang (a < 1:
 * Gamma(a + 1) * U^(1/a)) and Beta(a, b) = Ga / (Ga + Gb), from the stream of key. */
double mae_gamma_draw(double a, uint64_t key);
double mae_beta_draw(double a, double b, uint64_t key);
/* N(0, 1) from two hashes of (key, i) (Box-Muller). */
double mae_normal_draw(uint64_t key, uint64_t i);

#endif
