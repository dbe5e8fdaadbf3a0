/* test_io.c - tests for src/io: atomic writes, safetensors and .npy (round trips, every
 * corruption case, exhaustive truncation and deterministic random byte flips). */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "io/fileio.h"
#include "io/npy.h"
#include "io/safetensors.h"

static int g_fail, g_group_fail, g_group_checks;
static char g_dir[256];

#define CHECK(c)                                                               \
    do {                                                                       \
        g_group_checks++;                                                      \
        if (!(c)) {                                                            \
            g_group_fail++;                                                    \
            fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #c);     \
        }                                                                      \
    } while (0)

/* rc must be MAE_ERR and the message must name the file. */
#define CHECK_ERR(rc, err, path)                                                       \
    do {                                                                               \
        int ok_ = (rc) == MAE_ERR && strstr((err).msg, (path)) != NULL;                \
        CHECK(ok_);                                                                    \
        if (!ok_) fprintf(stderr, "    rc=%d msg='%s' (want %s)\n", (rc), (err).msg, (path)); \
    } while (0)

static void group_end(const char *name) {
    printf("[%s] %s (%d checks)\n", g_group_fail ? "FAIL" : " ok ", name, g_group_checks);
    g_fail += g_group_fail;
    g_group_fail = g_group_checks = 0;
}

static const char *tpath(const char *name) { /* rotating buffers: a few paths live at once */
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    MAE_ASSERT(f != NULL);
    if (n) MAE_ASSERT(fwrite(p, 1, n, f) == n);
    fclose(f);
}

static int file_equals(const char *path, const char *content) {
    uint8_t *d;
    size_t n;
    if (mae_read_file(path, &d, &n, NULL) != MAE_OK) return 0;
    int eq = n == strlen(content) && memcmp(d, content, n) == 0;
    free(d);
    return eq;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

static void rm_rf(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_rf(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        remove(path);
    }
}

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

/* ------------------------------------------------------------------ fileio */

static void write_atomic(const char *path, const char *text) {
    char tmp[1024];
    mae_error err;
    FILE *f = mae_atomic_open(path, tmp, sizeof tmp, &err);
    MAE_ASSERT(f != NULL);
    fputs(text, f);
    CHECK(mae_atomic_commit(f, tmp, path, &err) == MAE_OK);
    CHECK(!exists(tmp));
}

static void test_fileio(void) {
    mae_error err;
    char tmp[1024];
    const char *p = tpath("a.txt");
    write_atomic(p, "hello");
    CHECK(file_equals(p, "hello"));
    write_atomic(p, "world2");
    CHECK(file_equals(p, "world2"));

    FILE *f = mae_atomic_open(p, tmp, sizeof tmp, &err); /* abort keeps the old file */
    fputs("junk", f);
    mae_atomic_abort(f, tmp);
    CHECK(file_equals(p, "world2") && !exists(tmp));

    f = mae_atomic_open(p, tmp, sizeof tmp, &err); /* stream error: commit must fail */
    fputs("junk", f);
    (void)fgetc(f); /* reading a write-only stream sets its error flag */
    if (ferror(f)) {
        CHECK_ERR(mae_atomic_commit(f, tmp, p, &err), err, p);
        CHECK(file_equals(p, "world2") && !exists(tmp));
    } else {
        mae_atomic_abort(f, tmp);
    }

    const char *dir = tpath("target_dir"); /* rename over a non-empty directory fails */
    mkdir(dir, 0755);
    write_bytes(tpath("target_dir/keep"), "k", 1);
    f = mae_atomic_open(dir, tmp, sizeof tmp, &err);
    CHECK(f != NULL);
    fputs("new", f);
    CHECK_ERR(mae_atomic_commit(f, tmp, dir, &err), err, dir);
    CHECK(file_equals(tpath("target_dir/keep"), "k") && !exists(tmp));
    CHECK(mae_atomic_commit(NULL, "", dir, &err) == MAE_ERR);

    const char *nodir = tpath("no_such_dir/x.bin");
    CHECK(mae_atomic_open(nodir, tmp, sizeof tmp, &err) == NULL && strstr(err.msg, nodir));
    CHECK(mae_atomic_open(p, tmp, 8, &err) == NULL); /* temp name does not fit */

    if (geteuid() != 0) { /* unwritable directory (root ignores permissions) */
        const char *ro = tpath("ro"), *old = tpath("ro/old.txt");
        mkdir(ro, 0755);
        write_bytes(old, "old", 3);
        chmod(ro, 0555);
        float v = 1;
        int64_t one = 1;
        CHECK(mae_atomic_open(old, tmp, sizeof tmp, &err) == NULL && strstr(err.msg, old));
        CHECK_ERR(npy_save(old, "<f4", 1, &one, &v, &err), err, old);
        CHECK(file_equals(old, "old"));
        chmod(ro, 0755);
    }

    uint8_t *d = NULL;
    size_t n = 1;
    const char *missing = tpath("missing.bin");
    CHECK_ERR(mae_read_file(missing, &d, &n, &err), err, missing);
    CHECK(d == NULL && n == 0);
    CHECK_ERR(mae_read_file(dir, &d, &n, &err), err, dir);
    CHECK(strstr(err.msg, "directory") != NULL);
    write_bytes(tpath("empty"), "", 0);
    CHECK(mae_read_file(tpath("empty"), &d, &n, &err) == MAE_OK && n == 0 && d && d[0] == 0);
    free(d);
    group_end("fileio: atomic write, abort, failed commit keeps old file, read errors");
}

/* ------------------------------------------------------------------ safetensors */

static const char *write_sample_st(void) {
    static float w[12], s = 3.5f, q[6];
    static int64_t ids[5] = {0, -1, (int64_t)1 << 40, INT64_MAX, INT64_MIN};
    for (int i = 0; i < 12; i++) w[i] = (float)i * 0.25f - 1.0f;
    for (int i = 0; i < 6; i++) q[i] = -(float)i;
    int64_t sw[2] = {3, 4}, sids[1] = {5}, se[2] = {0, 3}, sq[2] = {2, 3};
    st_writer *wr = st_writer_new();
    st_writer_add(wr, "w", "F32", 2, sw, w);
    st_writer_add(wr, "ids", "I64", 1, sids, ids);
    st_writer_add(wr, "s", "F32", 0, NULL, &s);
    st_writer_add(wr, "e", "F32", 2, se, NULL);
    st_writer_add(wr, "blocks.0.attn.qkv.weight", "F32", 2, sq, q);
    st_writer_meta(wr, "format", "pt");
    st_writer_meta(wr, "config", "old");
    st_writer_meta(wr, "config", "{\"a\": 1, \"b\": \"x\\\\y\"}");
    const char *p = tpath("sample.safetensors");
    mae_error err;
    int rc = st_writer_save(wr, p, &err);
    CHECK(rc == MAE_OK);
    if (rc) fprintf(stderr, "    %s\n", err.msg);
    st_writer_free(wr);
    return p;
}

static void test_st_roundtrip(void) {
    const char *p = write_sample_st();
    mae_error err;
    st_file f;
    CHECK(st_open(&f, p, &err) == MAE_OK);
    CHECK(f.n == 5 && f.nmeta == 2);
    CHECK(st_meta(&f, "format") && strcmp(st_meta(&f, "format"), "pt") == 0);
    CHECK(st_meta(&f, "config") && strcmp(st_meta(&f, "config"), "{\"a\": 1, \"b\": \"x\\\\y\"}") == 0);
    CHECK(st_meta(&f, "nope") == NULL && st_find(&f, "nope") == -1);
    int iw = st_find(&f, "w"), ii = st_find(&f, "ids"), is = st_find(&f, "s");
    int ie = st_find(&f, "e"), iq = st_find(&f, "blocks.0.attn.qkv.weight");
    CHECK(iw >= 0 && ii >= 0 && is >= 0 && ie >= 0 && iq >= 0);
    if (iw < 0 || ii < 0 || is < 0 || ie < 0 || iq < 0) return;
    CHECK(f.t[iw].ndim == 2 && f.t[iw].shape[0] == 3 && f.t[iw].shape[1] == 4 && f.t[iw].numel == 12);
    CHECK(f.t[is].ndim == 0 && f.t[is].numel == 1 && f.t[ie].numel == 0);
    CHECK(strcmp(f.t[ii].dtype, "I64") == 0 && f.t[ii].begin == 0); /* 8-byte dtype first */
    CHECK(f.t[iq].begin < f.t[ie].begin || f.t[ie].begin == f.t[ie].end);
    CHECK(f.t[iq].begin < f.t[is].begin && f.t[is].begin < f.t[iw].begin); /* then by name */
    CHECK((f.data - f.buf) % 8 == 0);
    float w[12], s = 0, q[6];
    int64_t ids[5];
    CHECK(st_read_f32(&f, iw, w, 12, &err) == MAE_OK);
    int ok = 1;
    for (int i = 0; i < 12; i++) ok &= w[i] == (float)i * 0.25f - 1.0f;
    CHECK(ok);
    CHECK(st_read_f32(&f, is, &s, 1, &err) == MAE_OK && s == 3.5f);
    CHECK(st_read_f32(&f, iq, q, 6, &err) == MAE_OK && q[5] == -5.0f);
    CHECK(st_read_f32(&f, ie, NULL, 0, &err) == MAE_OK);
    CHECK(st_read_i64(&f, ii, ids, 5, &err) == MAE_OK);
    CHECK(ids[1] == -1 && ids[2] == (int64_t)1 << 40 && ids[3] == INT64_MAX && ids[4] == INT64_MIN);
    CHECK_ERR(st_read_f32(&f, iw, w, 10, &err), err, p);
    CHECK(strstr(err.msg, "'w'") && strstr(err.msg, "[3, 4]") && strstr(err.msg, "10"));
    CHECK_ERR(st_read_f32(&f, ii, w, 5, &err), err, p);
    CHECK_ERR(st_read_i64(&f, iw, ids, 12, &err), err, p);
    CHECK_ERR(st_read_f32(&f, 99, w, 1, &err), err, p);
    st_close(&f);

    st_writer *wr = st_writer_new(); /* writer argument errors are reported by save */
    int64_t sh = 2;
    float v[2] = {1, 2};
    st_writer_add(wr, "a", "F32", 1, &sh, v);
    st_writer_add(wr, "a", "F32", 1, &sh, v);
    const char *bad = tpath("bad.safetensors");
    CHECK_ERR(st_writer_save(wr, bad, &err), err, bad);
    CHECK(!exists(bad));
    st_writer_free(wr);
    wr = st_writer_new();
    st_writer_add(wr, "a", "F16", 1, &sh, v);
    CHECK_ERR(st_writer_save(wr, bad, &err), err, bad);
    st_writer_free(wr);
    wr = st_writer_new();
    CHECK(st_writer_save(wr, tpath("none.safetensors"), &err) == MAE_OK);
    CHECK(st_open(&f, tpath("none.safetensors"), &err) == MAE_OK && f.n == 0);
    st_close(&f);
    st_writer_free(wr);
    group_end("safetensors: writer/reader round trip, order, metadata, read errors");
}

/* Writes a safetensors file from a header string and raw data. */
static void make_st(const char *path, const char *hdr, const void *data, size_t n) {
    size_t h = strlen(hdr), total = 8 + h + n;
    uint8_t *b = mae_xmalloc(total);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b + 8, hdr, h);
    if (n) memcpy(b + 8 + h, data, n);
    write_bytes(path, b, total);
    free(b);
}

static void test_st_convert(void) {
    uint8_t d[64] = {0};
    const uint16_t h16[7] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x8000, 0x3555};
    const uint16_t b16[3] = {0x3f80, 0xc0a0, 0x4049};
    const double f64[3] = {0.1, -2.5, 1e300};
    const int32_t i32[2] = {-1, 2147483647};
    memcpy(d, h16, 14);
    memcpy(d + 14, b16, 6);
    memcpy(d + 20, i32, 8);
    memcpy(d + 28, f64, 24); /* little-endian host assumed by this test */
    const char *p = tpath("conv.safetensors");
    make_st(p, "{\"h\":{\"dtype\":\"F16\",\"shape\":[7],\"data_offsets\":[0,14]},"
               "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[14,20]},"
               "\"i\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[20,28]},"
               "\"d\":{\"dtype\":\"F64\",\"shape\":[1,3],\"data_offsets\":[28,52]},"
               "\"u\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[52,54]},"
               "\"__metadata__\":{\"k\":\"v\"}}  \n",
            d, 54);
    st_file f;
    mae_error err;
    float o[8];
    int64_t l[2];
    CHECK(st_open(&f, p, &err) == MAE_OK);
    CHECK(st_read_f32(&f, st_find(&f, "h"), o, 7, &err) == MAE_OK);
    CHECK(o[0] == 1.0f && o[1] == -2.0f && o[2] == 65504.0f && o[3] == ldexpf(1, -24));
    CHECK(isinf(o[4]) && o[4] > 0 && o[5] == 0 && signbit(o[5]) && fabsf(o[6] - 0.33325f) < 1e-4f);
    CHECK(st_read_f32(&f, st_find(&f, "b"), o, 3, &err) == MAE_OK);
    CHECK(o[0] == 1.0f && o[1] == -5.0f && o[2] == 3.140625f);
    CHECK(st_read_f32(&f, st_find(&f, "d"), o, 3, &err) == MAE_OK);
    CHECK(o[0] == (float)0.1 && o[1] == -2.5f && isinf(o[2]));
    CHECK(st_read_i64(&f, st_find(&f, "i"), l, 2, &err) == MAE_OK && l[0] == -1 && l[1] == 2147483647);
    CHECK_ERR(st_read_f32(&f, st_find(&f, "u"), o, 2, &err), err, p);
    CHECK(strcmp(st_meta(&f, "k"), "v") == 0);
    st_close(&f);
    group_end("safetensors: F16/BF16/F64 -> F32 and I32 -> I64 conversion");
}

static void test_st_corrupt(void) {
    static const struct {
        const char *hdr;
        size_t ndata;
        const char *want;
    } cases[] = {
        {"{\"a\":", 0, "JSON"},
        {"[1,2]", 0, "object"},
        {"{} x", 0, "JSON"},
        {"{\"a\":{\"dtype\":\"X99\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "negative"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "dim"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
         "\"data_offsets\":[0,4]}}", 4, "a"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "need 4"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "range"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, "offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[6,14]}}", 14, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "twice"},
        {"{\"a\":[1]}", 0, "object"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "string"},
        {"{\"__metadata__\":[]}", 0, "metadata"},
    };
    uint8_t zeros[16] = {0};
    mae_error err;
    st_file f;
    const char *p = tpath("corrupt.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        make_st(p, cases[i].hdr, zeros, cases[i].ndata);
        int rc = st_open(&f, p, &err);
        CHECK_ERR(rc, err, p);
        if (!strstr(err.msg, cases[i].want)) {
            CHECK(0);
            fprintf(stderr, "    case %zu: '%s' lacks '%s'\n", i, err.msg, cases[i].want);
        }
        st_close(&f);
    }
    uint8_t raw[24] = {0xe8, 0x03}; /* header length 1000 in a 24-byte file */
    write_bytes(p, raw, 24);
    CHECK_ERR(st_open(&f, p, &err), err, p);
    CHECK(strstr(err.msg, "larger than the file") != NULL);
    memset(raw, 0, 8);
    raw[3] = 0x10; /* 256 MiB */
    write_bytes(p, raw, 24);
    CHECK_ERR(st_open(&f, p, &err), err, p);
    CHECK(strstr(err.msg, "100 MB") != NULL);
    for (size_t n = 0; n < 8; n++) {
        write_bytes(p, raw, n);
        CHECK_ERR(st_open(&f, p, &err), err, p);
    }
    const char *missing = tpath("missing.safetensors");
    CHECK_ERR(st_open(&f, missing, &err), err, missing);
    CHECK_ERR(st_open(&f, g_dir, &err), err, g_dir);
    st_close(&f);
    group_end("safetensors: every corruption case rejected with the file name");
}

/* Opens a (possibly corrupt) file and reads every tensor; must never crash. */
static int fuzz_st_one(const char *p) {
    st_file f;
    mae_error err;
    int rc = st_open(&f, p, &err);
    if (rc == MAE_OK) {
        for (int i = 0; i < f.n; i++) {
            size_t n = f.t[i].numel;
            void *buf = mae_xmalloc((n ? n : 1) * 8);
            (void)st_read_f32(&f, i, buf, n, &err);
            (void)st_read_i64(&f, i, buf, n, &err);
            free(buf);
        }
    } else {
        CHECK(strstr(err.msg, p) != NULL);
    }
    st_close(&f);
    return rc;
}

typedef int (*fuzz_fn)(const char *path);

/* Exhaustive truncation (each must fail) and byte flips (must not crash). */
static void fuzz_file(const char *src, const char *dst, fuzz_fn fn, size_t hot, int trials) {
    uint8_t *orig, *b;
    size_t n;
    MAE_ASSERT(mae_read_file(src, &orig, &n, NULL) == MAE_OK);
    int accepted = 0;
    for (size_t len = 0; len < n; len++) {
        write_bytes(dst, orig, len);
        CHECK(fn(dst) == MAE_ERR);
    }
    b = mae_xmalloc(n);
    for (int t = 0; t < trials; t++) {
        memcpy(b, orig, n);
        int flips = 1 + (int)(rnd() % 4);
        for (int k = 0; k < flips; k++) {
            size_t pos = (rnd() % 4 != 0) ? rnd() % hot : rnd() % n; /* mostly in the header */
            b[pos] = (rnd() % 2) ? (uint8_t)rnd() : (uint8_t)(b[pos] ^ (1u << (rnd() % 8)));
        }
        write_bytes(dst, b, n);
        accepted += fn(dst) == MAE_OK;
    }
    printf("       %s: %zu truncations rejected, %d/%d flipped files still valid\n", src, n,
           accepted, trials);
    free(b);
    free(orig);
}

static void test_st_fuzz(void) {
    const char *src = write_sample_st();
    st_file f;
    MAE_ASSERT(st_open(&f, src, NULL) == MAE_OK);
    size_t hot = (size_t)(f.data - f.buf);
    st_close(&f);
    fuzz_file(src, tpath("fuzz.safetensors"), fuzz_st_one, hot, 3000);
    group_end("safetensors: fuzz (every truncation + 3000 byte-flip trials)");
}

/* ------------------------------------------------------------------ npy */

static void make_npy(const char *path, int major, const char *dict, const void *data, size_t n) {
    uint8_t b[512];
    size_t pre = major == 1 ? 10 : 12, h = strlen(dict);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (uint8_t)major;
    b[7] = 0;
    for (size_t i = 0; i < pre - 8; i++) b[8 + i] = (uint8_t)(h >> (8 * i));
    memcpy(b + pre, dict, h);
    memcpy(b + pre + h, data, n);
    write_bytes(path, b, pre + h + n);
}

static void test_npy(void) {
    mae_error err;
    npy_array a;
    float f[6] = {1, -2, 3.5f, 0, 1e-8f, -1e30f};
    int64_t l[4] = {1, -2, INT64_MAX, 7}, s23[2] = {2, 3}, s4 = 4, s0 = 0;
    const char *p = tpath("a.npy");
    CHECK(npy_save(p, "<f4", 2, s23, f, &err) == MAE_OK);
    uint8_t *raw;
    size_t n;
    MAE_ASSERT(mae_read_file(p, &raw, &n, NULL) == MAE_OK);
    size_t hl = (size_t)raw[8] | (size_t)raw[9] << 8;
    CHECK((10 + hl) % 64 == 0 && raw[9 + hl] == '\n' && n == 10 + hl + 24);
    const char *want = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    CHECK(memcmp(raw + 10, want, strlen(want)) == 0);
    free(raw);
    CHECK(npy_load(p, &a, &err) == MAE_OK && a.ndim == 2 && a.numel == 6 && a.shape[1] == 3);
    CHECK(strcmp(a.descr, "<f4") == 0 && memcmp(a.data, f, sizeof f) == 0);
    npy_free(&a);
    CHECK(npy_save(p, "<i8", 1, &s4, l, &err) == MAE_OK);
    CHECK(npy_load(p, &a, &err) == MAE_OK && a.ndim == 1 && memcmp(a.data, l, sizeof l) == 0);
    npy_free(&a);
    CHECK(npy_load_f32(p, &a, &err) == MAE_OK && strcmp(a.descr, "<f4") == 0 &&
          ((float *)a.data)[1] == -2.0f);
    npy_free(&a);
    CHECK(npy_save(p, "<f4", 0, NULL, f, &err) == MAE_OK); /* scalar */
    CHECK(npy_load(p, &a, &err) == MAE_OK && a.ndim == 0 && a.numel == 1);
    npy_free(&a);
    CHECK(npy_save(p, "<f4", 1, &s0, NULL, &err) == MAE_OK); /* empty */
    CHECK(npy_load(p, &a, &err) == MAE_OK && a.ndim == 1 && a.numel == 0);
    npy_free(&a);
    CHECK_ERR(npy_save(p, "<c8", 1, &s4, f, &err), err, p);

    double dv[3] = {0.1, -2.5, 1e300}; /* conversions, v1 and v2 headers */
    int32_t iv[2] = {-7, 9};
    uint8_t uv[3] = {0, 128, 255};
    make_npy(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }\n", dv, 24);
    CHECK(npy_load_f32(p, &a, &err) == MAE_OK && a.numel == 3);
    CHECK(a.data && ((float *)a.data)[0] == (float)0.1 && isinf(((float *)a.data)[2]));
    npy_free(&a);
    make_npy(p, 2, "{\"shape\": (1, 2), \"descr\": \"<i4\", \"fortran_order\": False}", iv, 8);
    CHECK(npy_load_f32(p, &a, &err) == MAE_OK && ((float *)a.data)[0] == -7.0f);
    npy_free(&a);
    make_npy(p, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (3L,), }", uv, 3);
    CHECK(npy_load(p, &a, &err) == MAE_OK && ((uint8_t *)a.data)[2] == 255);
    npy_free(&a);
    CHECK(npy_load_f32(p, &a, &err) == MAE_OK && ((float *)a.data)[1] == 128.0f);
    npy_free(&a);
    group_end("npy: save/load round trip, v1/v2 headers, conversion to float32");

    static const struct {
        int major;
        const char *dict;
        size_t ndata;
        const char *want;
    } bad[] = {
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 4, "truncated data"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 8, "trailing"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, }", 8, "shape"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", 8, "shape"},
        {1, "{'descr': '<f4', 'fortran_order': False}", 4, "lacks"},
        {1, "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,)}", 4, "fortran"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 4, "key"},
        {1, "['descr']", 4, "{"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} junk", 4, "junk"},
        {1, "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", 8, "unsupported"},
        {1, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", 4, "big-endian"},
        {1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", 4, "fortran"},
        {9, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 4, "version"},
    };
    uint8_t zeros[16] = {0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        make_npy(p, bad[i].major, bad[i].dict, zeros, bad[i].ndata);
        CHECK_ERR(npy_load(p, &a, &err), err, p);
        CHECK(a.data == NULL);
        if (!strstr(err.msg, bad[i].want)) {
            CHECK(0);
            fprintf(stderr, "    npy case %zu: '%s' lacks '%s'\n", i, err.msg, bad[i].want);
        }
    }
    write_bytes(p, "\x93NUMPX\x01\x00\x00\x00", 10);
    CHECK_ERR(npy_load(p, &a, &err), err, p);
    CHECK(strstr(err.msg, "magic") != NULL);
    write_bytes(p, "\x93NUMPY\x01\x00\xff\x00{}", 12);
    CHECK_ERR(npy_load(p, &a, &err), err, p);
    CHECK_ERR(npy_load_f32(tpath("missing.npy"), &a, &err), err, tpath("missing.npy"));
    group_end("npy: bad magic, truncation, bad dict, dtype, big-endian, fortran rejected");
}

static int fuzz_npy_one(const char *p) {
    npy_array a;
    mae_error err;
    int rc = npy_load_f32(p, &a, &err);
    if (rc != MAE_OK) CHECK(strstr(err.msg, p) != NULL && a.data == NULL);
    npy_free(&a);
    return rc;
}

static void test_npy_fuzz(void) {
    float f[6] = {1, 2, 3, 4, 5, 6};
    int64_t sh[2] = {2, 3};
    const char *src = tpath("src.npy");
    MAE_ASSERT(npy_save(src, "<f4", 2, sh, f, NULL) == MAE_OK);
    fuzz_file(src, tpath("fuzz.npy"), fuzz_npy_one, 64, 2000);
    group_end("npy: fuzz (every truncation + 2000 byte-flip trials)");
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "test_io_tmp.%ld", (long)getpid());
    rm_rf(g_dir);
    MAE_ASSERT(mkdir(g_dir, 0755) == 0);
    test_fileio();
    test_st_roundtrip();
    test_st_convert();
    test_st_corrupt();
    test_st_fuzz();
    test_npy();
    test_npy_fuzz();
    rm_rf(g_dir);
    printf("test_io: %s\n", g_fail ? "FAILED" : "all passed");
    return g_fail ? 1 : 0;
}
