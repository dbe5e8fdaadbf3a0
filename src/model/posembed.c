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
