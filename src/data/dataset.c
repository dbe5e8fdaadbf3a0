/* dataset.c - generic dataset helpers, the epoch permutation, the synthetic dataset and the
 * normalisation constants. */
#include "dataset.h"

#include <stdio.h>
#include <string.h>

#include "common.h"
#include "rng.h"

void mae_dataset_free(mae_dataset *ds) {
    if (!ds) return;
    if (ds->destroy) ds->destroy(ds);
    free(ds);
}

void mae_data_ws_release(mae_data_ws *ws) {
    if (!ws) return;
    mae_buf_free(&ws->file);
    mae_buf_free(&ws->resize);
    mae_buf_free(&ws->aug);
    mae_image_release(&ws->img);
}

int mae_dataset_get(mae_dataset *ds, int64_t idx, int epoch, uint64_t seed, float *out, int *label,
                    mae_data_ws *ws, mae_error *err) {
    if (ds->get_ws) return ds->get_ws(ds, idx, epoch, seed, out, label, ws, err);
    return ds->get(ds, idx, epoch, seed, out, label, err);
}

int mae_dataset_batch(mae_dataset *ds, const int64_t *idx, int B, int epoch, uint64_t seed,
                      float *out, int *labels, mae_error *err) {
    if (!ds || B < 0 || (B > 0 && (!idx || !out)))
        return mae_errf(err, "mae_dataset_batch: invalid arguments");
    size_t per = (size_t)ds->C * (size_t)ds->H * (size_t)ds->W;
    for (int b = 0; b < B; b++) {
        int lab = -1;
        if (ds->get(ds, idx[b], epoch, seed, out + (size_t)b * per, &lab, err) != MAE_OK)
            return MAE_ERR;
        if (labels) labels[b] = lab;
    }
    return MAE_OK;
}

void mae_epoch_permutation(int64_t *perm, int64_t n, uint64_t seed, int epoch) {
    if (n <= 0) return;
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    /* Fisher-Yates from the top: position i swaps with a uniform j in [0, i]. The modulo bias
     * is below (i+1) / 2^64, i.e. negligible. */
    for (int64_t i = n - 1; i > 0; i--) {
        uint64_t h = mae_hash4(seed, (uint64_t)(int64_t)epoch, (uint64_t)i, 0x7065726dull);
        int64_t j = (int64_t)(h % (uint64_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

void mae_dataset_limit(mae_dataset *ds, int n) {
    if (!ds || n < 0 || n >= ds->n) return;
    ds->n = n;
    size_t len = strlen(ds->desc);
    if (len < sizeof ds->desc)
        snprintf(ds->desc + len, sizeof ds->desc - len, ", limited to the first %d", n);
}

/* ------------------------------------------------------------------ synthetic */

typedef struct {
    uint64_t seed;
} synth_impl;

static int synth_get(mae_dataset *ds, int64_t idx, int epoch, uint64_t seed, float *out,
                     int *label, mae_error *err) {
    (void)epoch;
    (void)seed; /* the images depend on the dataset's own seed only */
    if (idx < 0 || idx >= ds->n)
        return mae_errf(err, "%s: sample index %lld out of range [0, %d)", ds->desc,
                        (long long)idx, ds->n);
    const synth_impl *s = (const synth_impl *)ds->impl;
    uint64_t base = mae_hash4(s->seed, (uint64_t)idx, 0x5EED, 0);
    size_t per = (size_t)ds->C * (size_t)ds->H * (size_t)ds->W;
    const float scale = 1.7320508f / 8388608.0f; /* sqrt(3) / 2^23 */
    for (size_t k = 0; k < per; k++) {
        uint64_t h = mae_mix64(base + (uint64_t)(k + 1) * 0x9E3779B97F4A7C15ull);
        int32_t v = (int32_t)(h >> 40) - 8388608; /* uniform in [-2^23, 2^23) */
        out[k] = (float)v * scale;
    }
    if (label) *label = (int)(mae_hash4(s->seed, (uint64_t)idx, 0x1ABE1, 0) % 10u);
    return MAE_OK;
}

static void synth_destroy(mae_dataset *ds) {
    free(ds->impl);
    ds->impl = NULL;
}

mae_dataset *mae_dataset_synthetic(int n, int C, int H, int W, uint64_t seed) {
    if (n <= 0 || C <= 0 || H <= 0 || W <= 0) return NULL;
    mae_dataset *ds = (mae_dataset *)mae_xcalloc(1, sizeof *ds);
    synth_impl *s = (synth_impl *)mae_xcalloc(1, sizeof *s);
    s->seed = seed;
    ds->n = n;
    ds->C = C;
    ds->H = H;
    ds->W = W;
    ds->get = synth_get;
    ds->destroy = synth_destroy;
    ds->impl = s;
    snprintf(ds->desc, sizeof ds->desc, "synthetic (seed %llu), %d images %dx%dx%d",
             (unsigned long long)seed, n, C, H, W);
    return ds;
}

void mae_norm_constants(int chans, float *mean, float *std) {
    static const float im_mean[3] = {0.485f, 0.456f, 0.406f};
    static const float im_std[3] = {0.229f, 0.224f, 0.225f};
    for (int c = 0; c < chans; c++) {
        if (chans == 3) {
            mean[c] = im_mean[c];
            std[c] = im_std[c];
        } else { /* per-channel average of the ImageNet constants */
            mean[c] = 0.449f;
            std[c] = 0.226f;
        }
    }
}

