/* image_decode_driver.c - decodes one image file with mae_image_decode, for the PIL comparison
 * (tests/python/test_image_pil.py) and for timing.
 *
 *   image_decode_driver FILE [--chans 1|3] [--scale N] [--region X0 Y0 X1 Y1] [--out OUT.npy]
 *                       [--repeat N] [--probe]
 *
 * Prints one line "ok w h c full_w full_h x0 y0 scale_num" (or "probe format w h"), and with
 * --repeat the mean seconds per decode ("time S"). Writes the pixels as a uint8 (h, w, c) .npy.
 * A bad file prints "error <status> <message>" and exits 3 (MAE_ERR_DATA) or 1.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "io/fileio.h"
#include "io/npy.h"

static uint8_t *slurp(const char *path, size_t *n) { /* NULL if unreadable */
    uint8_t *data = NULL;
    return mae_read_file(path, &data, n, NULL) == MAE_OK ? data : NULL;
}

static int usage(void) {
    fprintf(stderr, "usage: image_decode_driver FILE [--chans 1|3] [--scale N] "
                    "[--region X0 Y0 X1 Y1] [--out OUT.npy] [--repeat N] [--probe]\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage();
    mae_decode_req req = {.chans = 3};
    const char *outp = NULL;
    int repeat = 0, probe = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--chans") && i + 1 < argc)
            req.chans = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc)
            req.scale_num = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            outp = argv[++i];
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--probe"))
            probe = 1;
        else if (!strcmp(argv[i], "--region") && i + 4 < argc) {
            req.x0 = atoi(argv[++i]);
            req.y0 = atoi(argv[++i]);
            req.x1 = atoi(argv[++i]);
            req.y1 = atoi(argv[++i]);
        } else
            return usage();
    }
    if ((req.chans != 1 && req.chans != 3) || req.scale_num < 0 || req.scale_num > 8)
        return usage();
    size_t len = 0;
    uint8_t *buf = slurp(argv[1], &len);
    if (!buf) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    mae_error err = {{0}};
    if (probe) {
        mae_image_info info;
        int rc = mae_image_probe(buf, len, &info, &err);
        if (rc != MAE_OK)
            printf("error %d %s\n", rc, err.msg);
        else
            printf("probe %d %d %d\n", info.format, info.width, info.height);
        free(buf);
        return rc == MAE_OK ? 0 : rc == MAE_ERR_DATA ? 3 : 1;
    }
    mae_image im = {0};
    int rc = mae_image_decode(buf, len, &req, &im, &err);
    if (rc == MAE_OK && repeat > 0) {
        double t0 = mae_clock();
        for (int r = 0; r < repeat && rc == MAE_OK; r++)
            rc = mae_image_decode(buf, len, &req, &im, &err);
        printf("time %.9f\n", (mae_clock() - t0) / repeat);
    }
    if (rc != MAE_OK) {
        printf("error %d %s\n", rc, err.msg);
        mae_image_release(&im);
        free(buf);
        return rc == MAE_ERR_DATA ? 3 : 1;
    }
    printf("ok %d %d %d %d %d %d %d %d\n", im.w, im.h, im.c, im.full_w, im.full_h, im.x0, im.y0,
           im.scale_num);
    if (outp) {
        int64_t shape[3] = {im.h, im.w, im.c};
        if (npy_save(outp, "|u1", 3, shape, im.px, &err) != MAE_OK) {
            fprintf(stderr, "%s\n", err.msg);
            rc = MAE_ERR;
        }
    }
    mae_image_release(&im);
    free(buf);
    return rc == MAE_OK ? 0 : 1;
}
