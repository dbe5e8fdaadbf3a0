#include "visualize.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "data/dataset.h"
#include "io/png.h"

#define GAP 2

static uint8_t to_byte(float v) {
    float x = v * 255.0f + 0.5f;
    return x <= 0.0f ? 0 : x >= 255.0f ? 255 : (uint8_t)x;
}

/* reconstruction of image b in normalised pixel space, (C,H,W) */
static void unpatchify(float *out, const mae_config *c, const float *img, const float *pred) {
    int p = c->patch_size, C = c->in_chans, H = c->img_size, g = H / p, P = p * p * C;
    for (int l = 0; l < g * g; l++) {
        int py = l / g, px = l % g;
        const float *pr = pred + (size_t)l * P;
        float mean = 0.0f, inv_std = 1.0f;
        if (c->norm_pix_loss) { /* the true patch's statistics (unbiased var, eps 1e-6) */
            double s = 0, s2 = 0;
            for (int i = 0; i < p; i++)
                for (int j = 0; j < p; j++)
                    for (int ch = 0; ch < C; ch++) {
                        double v = img[((size_t)ch * H + py * p + i) * H + px * p + j];
                        s += v;
                        s2 += v * v;
                    }
            double m = s / P, var = P > 1 ? (s2 - P * m * m) / (P - 1) : 0.0;
            mean = (float)m;
            inv_std = (float)(1.0 / sqrt((var > 0 ? var : 0) + 1e-6));
        }
        for (int i = 0; i < p; i++)
            for (int j = 0; j < p; j++)
                for (int ch = 0; ch < C; ch++)
                    out[((size_t)ch * H + py * p + i) * H + px * p + j] =
                        pr[(i * p + j) * C + ch] / inv_std + mean;
    }
}

int mae_write_recon_grid(const char *path, const mae_config *c, const float *imgs,
                         const float *pred, const float *mask, int B, int scale, mae_error *err) {
    int C = c->in_chans, H = c->img_size, p = c->patch_size, g = H / p, L = g * g;
    int P = p * p * C;
    if (scale < 1) scale = 1;
    int pw = H * scale, width = 4 * pw + 5 * GAP, height = B * pw + (B + 1) * GAP;
    uint8_t *rgb = mae_xmalloc((size_t)width * height * 3);
    memset(rgb, 255, (size_t)width * height * 3);
    float mean[3], std[3];
    mae_norm_constants(C, mean, std);
    float *rec = mae_xmalloc(sizeof(float) * C * H * H);
    for (int b = 0; b < B; b++) {
        const float *img = imgs + (size_t)b * C * H * H;
        unpatchify(rec, c, img, pred + (size_t)b * L * P);
        for (int panel = 0; panel < 4; panel++) {
            for (int y = 0; y < H; y++) {
                for (int x = 0; x < H; x++) {
                    int removed = mask[(size_t)b * L + (y / p) * g + x / p] != 0.0f;
                    uint8_t px3[3];
                    for (int ch = 0; ch < 3; ch++) {
                        int sc = C == 1 ? 0 : ch;
                        size_t at = ((size_t)sc * H + y) * H + x;
                        float v;
                        if (panel == 0) v = img[at];
                        else if (panel == 1) v = removed ? NAN : img[at];
                        else if (panel == 2) v = rec[at];
                        else v = removed ? rec[at] : img[at];
                        px3[ch] = isnan(v) ? 128 : to_byte(v * std[sc] + mean[sc]);
                    }
                    for (int dy = 0; dy < scale; dy++)
                        for (int dx = 0; dx < scale; dx++) {
                            size_t X = GAP + (size_t)panel * (pw + GAP) + (size_t)x * scale + dx;
                            size_t Y = GAP + (size_t)b * (pw + GAP) + (size_t)y * scale + dy;
                            memcpy(rgb + (Y * width + X) * 3, px3, 3);
                        }
                }
            }
        }
    }
    free(rec);
    int rc = mae_png_write(path, rgb, width, height, 3, err);
    free(rgb);
    return rc;
}
