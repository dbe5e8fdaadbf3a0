/* st_write_sample.c - helper for tests/python/check_safetensors_compat.py.
 *   st_write_sample write OUT.safetensors     write a fixed sample with the C writer
 *   st_write_sample read IN.safetensors DIR   dump each tensor to DIR/<name>.npy (float types as
 *                                             <f4 via st_read_f32, ints as <i8 via st_read_i64)
 *                                             and the metadata to DIR/__metadata__.json
 *   st_write_sample npy IN.npy OUT.npy        npy_load_f32 then npy_save as <f4
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "io/npy.h"
#include "io/safetensors.h"

static int write_sample(const char *path) {
    static float qkv[24], pos[20], cls[4] = {0.1f, -1e-30f, 3.0e38f, 0.0f};
    static int64_t ids[6] = {-3, 0, (int64_t)1 << 40, INT64_MIN, INT64_MAX, 42};
    static int64_t step = 123456789012345;
    for (int i = 0; i < 24; i++) qkv[i] = (float)(i - 10) / 8.0f;
    for (int i = 0; i < 20; i++) pos[i] = (float)((i * 3) % 17 - 8) / 4.0f;
    const int64_t s_qkv[2] = {6, 4}, s_pos[3] = {1, 5, 4}, s_cls[3] = {1, 1, 4};
    const int64_t s_ids[2] = {2, 3}, s_empty[2] = {0, 4};
    st_writer *w = st_writer_new();
    st_writer_add(w, "blocks.0.attn.qkv.weight", "F32", 2, s_qkv, qkv);
    st_writer_add(w, "pos_embed", "F32", 3, s_pos, pos);
    st_writer_add(w, "cls_token", "F32", 3, s_cls, cls);
    st_writer_add(w, "step", "I64", 0, NULL, &step);
    st_writer_add(w, "ids", "I64", 2, s_ids, ids);
    st_writer_add(w, "empty", "F32", 2, s_empty, NULL);
    st_writer_meta(w, "format", "pt");
    st_writer_meta(w, "config", "{\"img_size\": 32, \"name\": \"tiny \\\"q\\\"\"}");
    st_writer_meta(w, "unicode", "h\xc3\xa9llo \xe2\x9c\x93");
    mae_error err;
    int rc = st_writer_save(w, path, &err);
    st_writer_free(w);
    if (rc) fprintf(stderr, "st_write_sample: %s\n", err.msg);
    return rc;
}

static int dump(const char *path, const char *dir) {
    st_file f;
    mae_error err;
    if (st_open(&f, path, &err)) {
        fprintf(stderr, "st_write_sample: %s\n", err.msg);
        return 1;
    }
    int rc = 0;
    char out[2048];
    for (int i = 0; i < f.n && rc == 0; i++) {
        const st_tensor *t = &f.t[i];
        int is_int = strcmp(t->dtype, "I64") == 0 || strcmp(t->dtype, "I32") == 0;
        int is_float = strcmp(t->dtype, "F32") == 0 || strcmp(t->dtype, "F16") == 0 ||
                       strcmp(t->dtype, "BF16") == 0 || strcmp(t->dtype, "F64") == 0;
        if (!is_int && !is_float) {
            printf("skip %s %s\n", t->name, t->dtype);
            continue;
        }
        void *buf = mae_xmalloc((t->numel ? t->numel : 1) * 8);
        rc = is_int ? st_read_i64(&f, i, buf, t->numel, &err)
                    : st_read_f32(&f, i, buf, t->numel, &err);
        snprintf(out, sizeof out, "%s/%s.npy", dir, t->name);
        if (rc == 0) rc = npy_save(out, is_int ? "<i8" : "<f4", t->ndim, t->shape, buf, &err);
        if (rc) fprintf(stderr, "st_write_sample: %s\n", err.msg);
        else printf("tensor %s %s\n", t->name, t->dtype);
        free(buf);
    }
    cJSON *m = cJSON_CreateObject();
    for (int i = 0; i < f.nmeta; i++) cJSON_AddStringToObject(m, f.meta_keys[i], f.meta_vals[i]);
    char *s = cJSON_Print(m);
    snprintf(out, sizeof out, "%s/__metadata__.json", dir);
    FILE *fp = fopen(out, "wb");
    if (!fp || fputs(s, fp) < 0) rc = 1;
    if (fp && fclose(fp) != 0) rc = 1;
    free(s);
    cJSON_Delete(m);
    st_close(&f);
    return rc ? 1 : 0;
}

static int npy_copy(const char *in, const char *out) {
    npy_array a;
    mae_error err;
    if (npy_load_f32(in, &a, &err) || npy_save(out, "<f4", a.ndim, a.shape, a.data, &err)) {
        fprintf(stderr, "st_write_sample: %s\n", err.msg);
        npy_free(&a);
        return 1;
    }
    npy_free(&a);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "write") == 0) return write_sample(argv[2]) ? 1 : 0;
    if (argc == 4 && strcmp(argv[1], "read") == 0) return dump(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "npy") == 0) return npy_copy(argv[2], argv[3]);
    fprintf(stderr, "usage: st_write_sample write OUT | read IN DIR | npy IN OUT\n");
    return 2;
}
