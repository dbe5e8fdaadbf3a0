/* posembed.c - fixed 2-D sin-cos position embeddings, as the official MAE builds them:
 * row 0 (CLS) is zero; for patch (i, j) of a g x g grid, the first dim/2 channels encode the
 * column j and the last dim/2 the row i, each as [sin(pos * w_k), cos(pos * w_k)] with
 * w_k = 10000^(-k / (dim/4)), k < dim/4, computed in double precision. */
#include <math.h>
#include <string.h>

#include "model.h"

static void sincos_1d(float *out, int half, double pos) {
    int q = half / 2;
    for (int k = 0; k < q; k++) {
        double omega = 1.0 / pow(10000.0, (double)k / q);
        out[k] = (float)sin(pos * omega);
        out[q + k] = (float)cos(pos * omega);
    }
}

void mae_sincos_pos_embed(float *out, int dim, int grid) {
    MAE_ASSERT(dim % 4 == 0);
    memset(out, 0, sizeof(float) * dim);
    for (int i = 0; i < grid; i++) {
        for (int j = 0; j < grid; j++) {
            float *row = out + (size_t)(1 + i * grid + j) * dim;
            sincos_1d(row, dim / 2, (double)j);
            sincos_1d(row + dim / 2, dim / 2, (double)i);
        }
    }
}

/* torch's cubic convolution weights (A = -0.75) for fractional offset t */
static void cubic_weights(double w[4], double t) {
    const double A = -0.75;
    double x;
    x = t + 1.0;
    w[0] = ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    x = t;
    w[1] = ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    x = 1.0 - t;
    w[2] = ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    x = 2.0 - t;
    w[3] = ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
}

/* out (1 + go*go, dim) <- in (1 + gi*gi, dim): row 0 (CLS) copied, the patch grid resized as
 * torch.nn.functional.interpolate(mode="bicubic", align_corners=False) does (official
 * interpolate_pos_embed): source = (dst + 0.5) * gi/go - 0.5, taps clamped at the borders. */
void mae_pos_embed_resize(float *out, int go, const float *in, int gi, int dim) {
    memcpy(out, in, sizeof(float) * dim);
    double scale = (double)gi / go;
    for (int oy = 0; oy < go; oy++) {
        double sy = (oy + 0.5) * scale - 0.5, fy = floor(sy), wy[4];
        cubic_weights(wy, sy - fy);
        for (int ox = 0; ox < go; ox++) {
            double sx = (ox + 0.5) * scale - 0.5, fx = floor(sx), wx[4];
            cubic_weights(wx, sx - fx);
            float *o = out + (size_t)(1 + oy * go + ox) * dim;
            for (int d = 0; d < dim; d++) {
                double acc = 0.0;
                for (int a = 0; a < 4; a++) {
                    int y = (int)fy - 1 + a;
                    y = y < 0 ? 0 : y >= gi ? gi - 1 : y;
                    double row = 0.0;
                    for (int b = 0; b < 4; b++) {
                        int x = (int)fx - 1 + b;
                        x = x < 0 ? 0 : x >= gi ? gi - 1 : x;
                        row += wx[b] * in[(size_t)(1 + y * gi + x) * dim + d];
                    }
                    acc += wy[a] * row;
                }
                o[d] = (float)acc;
            }
        }
    }
}
