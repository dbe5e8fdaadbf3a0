/* pth_driver.c - command-line driver of the PyTorch checkpoint reader (src/io/pth.h) for
 * tests/python/test_pth_reader.py.
 *
 *   pth_driver dump FILE OUTDIR
 *       pth_open + pth_read_f32 of every floating-point tensor: OUTDIR/<i>.npy (float32, the
 *       tensor's shape) and OUTDIR/names.txt, one line per tensor: "i<TAB>name<TAB>dtype<TAB>
 *       shape" (shape as "2,3"; other dtypes are listed and not read).
 *   pth_driver info FILE
 *       prints "dict_key<TAB>...", "epoch<TAB>N" (or "none"), "tensors<TAB>N", then one
 *       "arg<TAB>key<TAB>value" line per args entry.
 * Exit status 0 on success, 1 with the message on stderr on any error.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/npy.h"
#include "io/pth.h"

static const char *dtype_name(int d) {
    static const char *const names[] = {"?", "F32", "F16", "BF16", "F64", "I64", "I32",
                                        "I16", "I8", "U8", "BOOL"};
    return d >= PTH_F32 && d <= PTH_BOOL ? names[d] : "?";
}

static int is_float(int d) {
    return d == PTH_F32 || d == PTH_F16 || d == PTH_BF16 || d == PTH_F64;
}

static int dump(const pth_file *f, const char *outdir, mae_error *err) {
    char path[2048];
    snprintf(path, sizeof path, "%s/names.txt", outdir);
    FILE *nf = fopen(path, "w");
    if (!nf) {
        snprintf(err->msg, sizeof err->msg, "%.400s: cannot create", path);
        return MAE_ERR;
    }
    int rc = MAE_OK;
    for (int i = 0; i < f->n && rc == MAE_OK; i++) {
        const pth_tensor *t = &f->t[i];
        fprintf(nf, "%d\t%s\t%s\t", i, t->name, dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) fprintf(nf, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        fprintf(nf, "\n");
        if (!is_float(t->dtype)) continue;
        float *buf = malloc(t->numel * sizeof(float) + 1);
        if (!buf) {
            snprintf(err->msg, sizeof err->msg, "out of memory");
            rc = MAE_ERR;
            break;
        }
        rc = pth_read_f32(f, i, buf, t->numel, err);
        if (rc == MAE_OK) {
            snprintf(path, sizeof path, "%s/%d.npy", outdir, i);
            rc = npy_save(path, "<f4", t->ndim, t->shape, buf, err);
        }
        free(buf);
    }
    if (fclose(nf) != 0 && rc == MAE_OK) {
        snprintf(err->msg, sizeof err->msg, "%.400s/names.txt: write failed", outdir);
        rc = MAE_ERR;
    }
    return rc;
}

static void info(const pth_file *f) {
    printf("dict_key\t%s\n", f->dict_key);
    if (f->has_epoch) printf("epoch\t%lld\n", (long long)f->epoch);
    else printf("epoch\tnone\n");
    printf("tensors\t%d\n", f->n);
    for (int i = 0; i < f->nargs; i++) printf("arg\t%s\t%s\n", f->arg_keys[i], f->arg_vals[i]);
}

int main(int argc, char **argv) {
    if (argc < 3 || (strcmp(argv[1], "dump") == 0 ? argc != 4 : strcmp(argv[1], "info") != 0 ||
                                                                     argc != 3)) {
        fprintf(stderr, "usage: pth_driver dump FILE OUTDIR | pth_driver info FILE\n");
        return 2;
    }
    mae_error err = {{0}};
    pth_file f;
    if (pth_open(&f, argv[2], &err) != MAE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        pth_close(&f);
        return 1;
    }
    int rc = MAE_OK;
    if (strcmp(argv[1], "dump") == 0) rc = dump(&f, argv[3], &err);
    else info(&f);
    pth_close(&f);
    if (rc != MAE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    return 0;
}
