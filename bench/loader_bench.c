/* loader_bench.c - data-pipeline throughput: read + decode + RandomResizedCrop + flip +
 * normalise, images/s, on one thread (per core) and through the loader with N worker threads.
 *
 * usage: loader_bench DIR [size=224] [reps=3] [dct_scaling=1] [workers=0]
 * Prints the median of reps passes over every file of DIR (ImageFolder or flat folder). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "data/dataset.h"
#include "data/loader.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [size=224] [reps=3] [dct_scaling=1] [workers=0]\n", argv[0]);
        return 2;
    }
    int size = argc > 2 ? atoi(argv[2]) : 224, reps = argc > 3 ? atoi(argv[3]) : 3;
    int dct = argc > 4 ? atoi(argv[4]) : 1, workers = argc > 5 ? atoi(argv[5]) : 0;
    if (reps < 1 || reps > 100) reps = 3;
    mae_error err;
    mae_source *src = mae_source_open(argv[1], 1, &err);
    if (!src) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    mae_image_opts o;
    mae_image_opts_default(&o, size, 3);
    o.dct_scaling = dct;
    mae_dataset *ds = mae_dataset_images(src, &o, &err);
    if (!ds) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double r[100];
    if (workers == 0) {
        float *out = malloc(sizeof(float) * 3 * size * size);
        mae_data_ws ws;
        memset(&ws, 0, sizeof ws);
        for (int i = 0; i < ds->n; i++) mae_dataset_get(ds, i, 99, 0, out, NULL, &ws, &err); /* warm */
        for (int k = 0; k < reps; k++) {
            double t = mae_clock();
            int bad = 0;
            for (int i = 0; i < ds->n; i++) bad += mae_dataset_get(ds, i, k, 0, out, NULL, &ws, &err) != MAE_OK;
            r[k] = ds->n / (mae_clock() - t);
            if (bad) fprintf(stderr, "%d bad files (%s)\n", bad, err.msg);
        }
        mae_data_ws_release(&ws);
        free(out);
    } else {
        mae_loader_config lc;
        mae_loader_config_default(&lc, 32);
        lc.num_workers = workers;
        mae_loader *l = mae_loader_create(ds, &lc, &err);
        if (!l) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        for (int k = 0; k <= reps; k++) {
            double t = mae_clock();
            mae_loader_start_epoch(l, k, 0);
            mae_batch b;
            int64_t n = 0;
            while (mae_loader_next(l, &b, &err) == MAE_OK) n += b.B;
            if (k > 0) r[k - 1] = n / (mae_clock() - t);
        }
        mae_loader_free(l);
    }
    qsort(r, (size_t)reps, sizeof r[0], cmp_d);
    printf("mae loader (%s, %d workers, dct_scaling %d), %d files -> %dx%d: median %.0f img/s "
           "(min %.0f, max %.0f)\n", workers ? "loader" : "one thread", workers, dct, ds->n, size,
           size, r[reps / 2], r[0], r[reps - 1]);
    mae_dataset_free(ds);
    return 0;
}
