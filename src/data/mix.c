/* mix.c - RandomErasing, Mixup/CutMix and label smoothing (mix.h), written from timm 0.3.2's
 * definitions (random_erasing.py, mixup.py); the random variates come from the counter hash. */
#include "mix.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "rng.h"

/* Uniform double in [0, 1) with 53 bits from (key, stream, i). */
static double u01(uint64_t key, uint64_t stream, uint64_t i) {
    return (double)(mae_hash4(key, stream, i, 0) >> 11) * 0x1.0p-53;
}

double mae_normal_draw(uint64_t key, uint64_t i) {
    double u1 = 1.0 - u01(key, 0x6e6f726dull, i); /* (0, 1] */
    double u2 = u01(key, 0x6e6f726eull, i);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Marsaglia & Tsang (2000), "A simple method for generating gamma variables", for a >= 1; the
 * candidates are numbered, so the draw is a function of (a, key) only. */
static double gamma_mt(double a, uint64_t key) {
    const double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (uint64_t t = 0;; t++) {
        double x = mae_normal_draw(key, t), v = 1.0 + c * x;
        if (v <= 0.0) continue;
        v = v * v * v;
        double u = u01(key, 0x67616d61ull, t);
        if (u < 1.0 - 0.0331 * (x * x) * (x * x)) return d * v;
        if (u > 0.0 && log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) return d * v;
    }
}

double mae_gamma_draw(double a, uint64_t key) {
    MAE_ASSERT(a > 0);
    if (a >= 1.0) return gamma_mt(a, key);
    /* Gamma(a) = Gamma(a + 1) * U^(1/a) */
    double u = 1.0 - u01(key, 0x626f6f73ull, 0); /* (0, 1] */
    return gamma_mt(a + 1.0, mae_mix64(key ^ 0x626f6f73ull)) * pow(u, 1.0 / a);
}

double mae_beta_draw(double a, double b, uint64_t key) {
    double x = mae_gamma_draw(a, mae_hash4(key, 1, 0, 0x62657461ull));
    double y = mae_gamma_draw(b, mae_hash4(key, 2, 0, 0x62657461ull));
    double s = x + y;
    return s > 0 ? x / s : 0.5; /* both underflowed (tiny a): either end is as likely */
}

/* ------------------------------------------------------------------ RandomErasing */

int mae_random_erasing_box(float *img, int C, int H, int W, double prob, uint64_t key, int box[4]) {
    if (!(prob > 0) || u01(key, 0, 0) >= prob) return 0; /* timm: random() > p -> skip */
    const double area = (double)H * (double)W;
    const double la = log(0.3), lb = log(1.0 / 0.3);
    for (uint64_t t = 0; t < 10; t++) {
        double target = (0.02 + (1.0 / 3.0 - 0.02) * u01(key, 1, t)) * area;
        double aspect = exp(la + (lb - la) * u01(key, 2, t));
        int h = (int)nearbyint(sqrt(target * aspect)), w = (int)nearbyint(sqrt(target / aspect));
        if (w < W && h < H) {
            int top = (int)(u01(key, 3, t) * (H - h + 1)), left = (int)(u01(key, 4, t) * (W - w + 1));
            if (top > H - h) top = H - h;
            if (left > W - w) left = W - w;
            uint64_t nkey = mae_hash4(key, 5, t, 0);
            uint64_t k = 0;
            for (int ch = 0; ch < C; ch++)
                for (int y = top; y < top + h; y++)
                    for (int x = left; x < left + w; x++)
                        img[((size_t)ch * H + y) * W + x] = (float)mae_normal_draw(nkey, k++);
            if (box) box[0] = top, box[1] = left, box[2] = h, box[3] = w;
            return 1;
        }
    }
    return 0;
}

void mae_random_erasing(float *img, int C, int H, int W, double prob, uint64_t key) {
    mae_random_erasing_box(img, C, H, W, prob, key, NULL);
}

/* ------------------------------------------------------------------ Mixup / CutMix */

void mae_smooth_targets(float *targets, const int *labels, int B, int num_classes,
                        double smoothing) {
    const double off = smoothing / num_classes, on = 1.0 - smoothing + off;
    for (int b = 0; b < B; b++) {
        float *t = targets + (size_t)b * num_classes;
        for (int k = 0; k < num_classes; k++) t[k] = (float)off;
        if (labels[b] >= 0 && labels[b] < num_classes) t[labels[b]] = (float)on;
    }
}

double mae_mixup_batch(float *imgs, float *targets, const int *labels, int B, int C, int H, int W,
                       const mae_mixup_cfg *cfg, uint64_t key) {
    const int K = cfg->num_classes;
    if (B <= 0 || B % 2 || K < 1) return -1;
    for (int b = 0; b < B; b++)
        if (labels[b] < 0 || labels[b] >= K) return -1;
    double lam = 1.0;
    int use_cutmix = 0;
    const int mix = cfg->mixup_alpha > 0, cut = cfg->cutmix_alpha > 0;
    if ((mix || cut) && u01(key, 10, 0) < cfg->prob) {
        if (mix && cut) use_cutmix = u01(key, 11, 0) < cfg->switch_prob;
        else use_cutmix = cut;
        double a = use_cutmix ? cfg->cutmix_alpha : cfg->mixup_alpha;
        lam = mae_beta_draw(a, a, mae_hash4(key, 12, 0, 0));
    }
    const size_t plane = (size_t)H * (size_t)W, per = (size_t)C * plane;
    if (lam != 1.0) {
        if (use_cutmix) {
            double ratio = sqrt(1.0 - lam);
            int cut_h = (int)(H * ratio), cut_w = (int)(W * ratio);
            int cy = (int)(u01(key, 13, 0) * H), cx = (int)(u01(key, 14, 0) * W);
            if (cy >= H) cy = H - 1;
            if (cx >= W) cx = W - 1;
            int yl = cy - cut_h / 2, yh = cy + cut_h / 2, xl = cx - cut_w / 2, xh = cx + cut_w / 2;
            yl = yl < 0 ? 0 : yl > H ? H : yl;
            yh = yh < 0 ? 0 : yh > H ? H : yh;
            xl = xl < 0 ? 0 : xl > W ? W : xl;
            xh = xh < 0 ? 0 : xh > W ? W : xh;
            /* x[:, :, box] = x.flip(0)[:, :, box]: the boxes of each pair swap */
            for (int b = 0; b < B / 2; b++) {
                float *p = imgs + (size_t)b * per, *q = imgs + (size_t)(B - 1 - b) * per;
                for (int ch = 0; ch < C; ch++)
                    for (int y = yl; y < yh; y++)
                        for (int x = xl; x < xh; x++) {
                            size_t i = (size_t)ch * plane + (size_t)y * W + x;
                            float t = p[i];
                            p[i] = q[i];
                            q[i] = t;
                        }
            }
            lam = 1.0 - (double)(yh - yl) * (double)(xh - xl) / (double)(H * (double)W);
        } else {
            /* x = x*lam + flip(x)*(1-lam), both factors float32 as torch's mul_ by a scalar */
            const float l1 = (float)lam, l2 = (float)(1.0 - lam);
            for (int b = 0; b < B / 2; b++) {
                float *p = imgs + (size_t)b * per, *q = imgs + (size_t)(B - 1 - b) * per;
                for (size_t i = 0; i < per; i++) {
                    float x = p[i], y = q[i];
                    float fy = y * l2, fx = x * l2;
                    p[i] = x * l1 + fy;
                    q[i] = y * l1 + fx;
                }
            }
        }
    }
    const double off = cfg->smoothing / K, on = 1.0 - cfg->smoothing + off;
    const float l1 = (float)lam, l2 = (float)(1.0 - lam);
    for (int b = 0; b < B; b++) {
        float *t = targets + (size_t)b * K;
        for (int k = 0; k < K; k++) {
            float y1 = (float)(k == labels[b] ? on : off);
            float y2 = (float)(k == labels[B - 1 - b] ? on : off);
            t[k] = y1 * l1 + y2 * l2;
        }
    }
    return lam;
}
