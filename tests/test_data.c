/* test_data.c - datasets (IDX reader, synthetic, epoch permutation) and the PNG writer/reader. */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data/dataset.h"
#include "io/fileio.h"
#include "io/png.h"

#include "check.h"


static char tmpdir[64];
static char *tp(char *buf, const char *name) { /* buf has 256 bytes */
    snprintf(buf, 256, "%s/%s", tmpdir, name);
    return buf;
}
static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}
static void write_file(const char *path, const uint8_t *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { printf("cannot write %s\n", path); exit(2); }
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}
static void write_gz(const char *path, const uint8_t *data, size_t n) {
    gzFile g = gzopen(path, "wb");
    if (!g) { printf("cannot write %s\n", path); exit(2); }
    if (n) gzwrite(g, data, (unsigned)n);
    gzclose(g);
}
static uint8_t *slurp(const char *path, size_t *n) { /* NULL if unreadable */
    uint8_t *data = NULL;
    return mae_read_file(path, &data, n, NULL) == MAE_OK ? data : NULL;
}
static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* Expect NULL and a message naming path. Frees any dataset returned. */
static void expect_fail(mae_dataset *ds, const mae_error *err, const char *path, const char *what) {
    if (getenv("TEST_DATA_VERBOSE")) printf("  [%s] %s\n", what, err->msg);
    CHECK(ds == NULL, "%s: loaded", what);
    CHECK(ds != NULL || strstr(err->msg, path) != NULL, "%s: message '%s' lacks '%s'", what,
          err->msg, path);
    mae_dataset_free(ds);
}

/* ------------------------------------------------------------------ real Fashion-MNIST */

static void test_fashion_mnist(void) {
    const char *dir = MAE_FASHION_MNIST_DIR;
    if (!exists(dir)) { printf("SKIP Fashion-MNIST checks: %s missing\n", dir); return; }
    mae_error err = {""};
    mae_dataset *ds = mae_dataset_mnist_dir(NULL, 1, 1, &err);
    CHECK(ds != NULL, "train: %s", err.msg);
    if (!ds) return;
    printf("%s\n", ds->desc);
    CHECK(ds->n == 60000 && ds->C == 1 && ds->H == 28 && ds->W == 28, "shape %d %dx%dx%d", ds->n, ds->C, ds->H, ds->W);
    CHECK(strstr(ds->desc, "Fashion-MNIST train") != NULL, "desc %s", ds->desc);
    /* Independent decoding of the images with zlib. */
    char path[512];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    size_t total = 16 + (size_t)60000 * 784;
    uint8_t *raw = malloc(total + 1);
    gzFile g = gzopen(path, "rb");
    int got = g ? gzread(g, raw, (unsigned)(total + 1)) : -1;
    if (g) gzclose(g);
    CHECK(got == (int)total, "raw read %d", got);
    double rsum = 0.0, dsum = 0.0, maxdiff = 0.0;
    for (size_t i = 16; i < total; i++) rsum += raw[i];
    double rmean = rsum / 255.0 / (60000.0 * 784.0);
    printf("Fashion-MNIST train raw pixel mean %.5f\n", rmean);
    CHECK(fabs(rmean - 0.2860) < 0.001, "mean %.5f", rmean);
    float m, s, img[784];
    mae_norm_constants(1, &m, &s);
    CHECK(fabsf(m - 0.449f) < 1e-6f && fabsf(s - 0.226f) < 1e-6f, "constants %f %f", m, s);
    int hist[256] = {0};
    for (int i = 0; i < ds->n; i++) {
        int lab = -2;
        if (ds->get(ds, i, 0, 0, img, &lab, &err) != MAE_OK) { CHECK(0, "get %d: %s", i, err.msg); break; }
        if (lab >= 0 && lab < 256) hist[lab]++;
        for (int k = 0; k < 784; k++) {
            double x = (double)img[k] * s + m, want = raw[16 + (size_t)i * 784 + (size_t)k] / 255.0;
            dsum += x;
            if (fabs(x - want) > maxdiff) maxdiff = fabs(x - want);
        }
    }
    CHECK(maxdiff < 1e-5, "dataset vs raw max diff %g", maxdiff);
    CHECK(fabs(dsum / (60000.0 * 784.0) - rmean) < 1e-5, "dataset mean %f", dsum / (60000.0 * 784.0));
    for (int c = 0; c < 10; c++) CHECK(hist[c] == 6000, "train class %d: %d", c, hist[c]);
    /* 3-channel output replicates grey with the ImageNet constants. */
    mae_dataset *d3 = mae_dataset_mnist_dir(dir, 1, 3, &err);
    CHECK(d3 && d3->C == 3, "3ch: %s", err.msg);
    if (d3) {
        float im3[3 * 784], m3[3], s3[3];
        mae_norm_constants(3, m3, s3);
        CHECK(m3[0] == 0.485f && m3[2] == 0.406f && s3[1] == 0.224f, "imagenet constants");
        d3->get(d3, 7, 0, 0, im3, NULL, &err);
        double md = 0.0;
        for (int c = 0; c < 3; c++)
            for (int k = 0; k < 784; k++) {
                double d = fabs((double)im3[c * 784 + k] - (raw[16 + 7 * 784 + k] / 255.0 - m3[c]) / s3[c]);
                if (d > md) md = d;
            }
        CHECK(md < 1e-5, "3ch diff %g", md);
        mae_dataset_free(d3);
    }
    free(raw);
    mae_dataset_limit(ds, 100);
    CHECK(ds->n == 100 && ds->get(ds, 100, 0, 0, img, NULL, &err) == MAE_ERR, "limit");
    CHECK(ds->get(ds, 99, 0, 0, img, NULL, &err) == MAE_OK, "limit get 99");
    mae_dataset_free(ds);

    ds = mae_dataset_mnist_dir(dir, 0, 1, &err);
    CHECK(ds && ds->n == 10000, "t10k: %s", err.msg);
    if (ds) {
        int h10[10] = {0}, lab;
        for (int i = 0; i < ds->n; i++) {
            ds->get(ds, i, 0, 0, img, &lab, &err);
            if (lab >= 0 && lab < 10) h10[lab]++;
        }
        for (int c = 0; c < 10; c++) CHECK(h10[c] == 1000, "t10k class %d: %d", c, h10[c]);
        CHECK(strstr(ds->desc, "Fashion-MNIST t10k") != NULL, "desc %s", ds->desc);
    }
    mae_dataset_free(ds);
}

/* ------------------------------------------------------------------ synthetic IDX files */

#define NI 5
#define NR 3
#define NC 4
#define IMG_BYTES (16 + NI * NR * NC)

static void make_images(uint8_t *b, uint32_t magic, uint32_t n, uint32_t r, uint32_t c) {
    put_be32(b, magic); put_be32(b + 4, n); put_be32(b + 8, r); put_be32(b + 12, c);
    for (int i = 16; i < IMG_BYTES; i++) b[i] = (uint8_t)(i * 37 + 11);
}

static void test_idx_roundtrip(void) {
    uint8_t img[IMG_BYTES], lab[8 + NI];
    make_images(img, 2051, NI, NR, NC);
    put_be32(lab, 2049); put_be32(lab + 4, NI);
    for (int i = 0; i < NI; i++) lab[8 + i] = (uint8_t)(9 - i);
    char pi[256], pl[256], pig[256], plg[256];
    write_file(tp(pi, "img.idx"), img, sizeof img);
    write_file(tp(pl, "lab.idx"), lab, sizeof lab);
    write_gz(tp(pig, "img.idx.gz"), img, sizeof img);
    write_gz(tp(plg, "lab.idx.gz"), lab, sizeof lab);
    const char *ims[2] = {pi, pig}, *labs[3] = {pl, plg, NULL};
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 3; b++)
            for (int ch = 1; ch <= 3; ch += 2) {
                mae_error err = {""};
                mae_dataset *ds = mae_dataset_idx(ims[a], labs[b], ch, &err);
                CHECK(ds != NULL, "load %s: %s", ims[a], err.msg);
                if (!ds) continue;
                CHECK(ds->n == NI && ds->C == ch && ds->H == NR && ds->W == NC, "shape");
                float m[3], s[3], out[NI * 3 * NR * NC];
                int labels[NI];
                int64_t idx[NI] = {0, 1, 2, 3, 4};
                mae_norm_constants(ch, m, s);
                CHECK(mae_dataset_batch(ds, idx, NI, 0, 0, out, labels, &err) == MAE_OK, "%s", err.msg);
                int bad = 0;
                for (int i = 0; i < NI; i++) {
                    CHECK(labels[i] == (b < 2 ? 9 - i : -1), "label %d = %d", i, labels[i]);
                    for (int c = 0; c < ch; c++)
                        for (int k = 0; k < NR * NC; k++) {
                            float x = out[(i * ch + c) * NR * NC + k];
                            long v = lroundf((x * s[c] + m[c]) * 255.0f);
                            if (v != img[16 + i * NR * NC + k]) bad++;
                        }
                }
                CHECK(bad == 0, "%d pixels differ", bad);
                int64_t oob = NI;
                CHECK(mae_dataset_batch(ds, &oob, 1, 0, 0, out, NULL, &err) == MAE_ERR, "oob");
                mae_dataset_free(ds);
            }
}

static void test_idx_errors(void) {
    mae_error err;
    char p[256], pl[256], pd[256];
    uint8_t img[IMG_BYTES + 1], lab[8 + NI + 1];
    make_images(img, 2051, NI, NR, NC);
    put_be32(lab, 2049); put_be32(lab + 4, NI);
    memset(lab + 8, 1, NI + 1);
    write_file(tp(pl, "good_lab.idx"), lab, 8 + NI);
    tp(p, "bad.idx");

#define BAD(desc, ds_expr, path)                 \
    do {                                         \
        memset(&err, 0, sizeof err);             \
        mae_dataset *d_ = (ds_expr);             \
        expect_fail(d_, &err, (path), (desc));   \
    } while (0)

    BAD("missing images", mae_dataset_idx(tp(pd, "nope.idx"), NULL, 1, &err), pd);
    write_file(p, img, IMG_BYTES);
    BAD("missing labels", mae_dataset_idx(p, tp(pd, "nope-labels"), 1, &err), pd);
    BAD("bad chans", mae_dataset_idx(p, NULL, 2, &err), p);
    BAD("directory", mae_dataset_idx(tmpdir, NULL, 1, &err), tmpdir);
    BAD("missing dir", mae_dataset_mnist_dir(tp(pd, "nodir"), 1, 1, &err), pd);
    write_file(p, (const uint8_t *)"hello, this is not an IDX file\n", 31);
    BAD("text file", mae_dataset_idx(p, NULL, 1, &err), p);
    BAD("empty", (write_file(p, img, 0), mae_dataset_idx(p, NULL, 1, &err)), p);
    static const uint32_t magics[] = {2049, 0x12345678, 0x00000D03, 0x00000802, 0x00000804, 0x03080000};
    for (size_t i = 0; i < sizeof magics / sizeof *magics; i++) {
        make_images(img, magics[i], NI, NR, NC);
        write_file(p, img, IMG_BYTES);
        BAD("images magic", mae_dataset_idx(p, NULL, 1, &err), p);
    }
    make_images(img, 2051, NI, NR, NC);
    write_file(pd, img, IMG_BYTES);
    BAD("images as labels", mae_dataset_idx(pd, pd, 1, &err), pd);
    BAD("labels as images", mae_dataset_idx(pl, pl, 1, &err), pl);
    static const uint32_t dims[][3] = {{0, NR, NC}, {NI, 0, NC}, {NI, NR, 0}, {NI, 100000, NC},
                                       {0x7fffffffu, 28, 28}, {0xffffffffu, 1, 1}, {1000000, 28, 28},
                                       {NI + 1, NR, NC}, {NI - 1, NR, NC}};
    for (size_t i = 0; i < sizeof dims / sizeof *dims; i++) {
        make_images(img, 2051, dims[i][0], dims[i][1], dims[i][2]);
        write_file(p, img, IMG_BYTES);
        BAD("dims", mae_dataset_idx(p, NULL, 1, &err), p);
    }
    /* Label count mismatch, truncated and overlong labels. */
    make_images(img, 2051, NI, NR, NC);
    write_file(p, img, IMG_BYTES);
    put_be32(lab + 4, NI - 1);
    write_file(pd, lab, 8 + NI - 1);
    BAD("label count", mae_dataset_idx(p, pd, 1, &err), pd);
    put_be32(lab + 4, NI);
    write_file(pd, lab, 8 + NI - 1);
    BAD("labels truncated", mae_dataset_idx(p, pd, 1, &err), pd);
    write_file(pd, lab, 8 + NI + 1);
    BAD("labels trailing", mae_dataset_idx(p, pd, 1, &err), pd);
    /* Truncation at every length, raw and gzip, plus trailing data. */
    int ntrunc = 0;
    for (size_t len = 0; len < IMG_BYTES; len++, ntrunc++) {
        write_file(p, img, len);
        BAD("truncated raw", mae_dataset_idx(p, pl, 1, &err), p);
        write_gz(p, img, len);
        BAD("gz of truncated", mae_dataset_idx(p, pl, 1, &err), p);
    }
    img[IMG_BYTES] = 0;
    write_file(p, img, IMG_BYTES + 1);
    BAD("trailing raw", mae_dataset_idx(p, NULL, 1, &err), p);
    char pg[256];
    write_gz(tp(pg, "full.gz"), img, IMG_BYTES);
    size_t gzlen = 0;
    uint8_t *gz = slurp(pg, &gzlen);
    CHECK(gz && gzlen > 20, "gz file");
    for (size_t len = 0; gz && len < gzlen; len++, ntrunc++) {
        write_file(p, gz, len);
        BAD("truncated gz", mae_dataset_idx(p, pl, 1, &err), p);
    }
    /* Corrupt every byte of the deflate body and trailer (header bytes 4..9 are free-form). */
    for (size_t pos = 10; gz && pos < gzlen; pos++) {
        gz[pos] ^= 0x5a;
        write_file(p, gz, gzlen);
        gz[pos] ^= 0x5a;
        BAD("corrupt gz", mae_dataset_idx(p, pl, 1, &err), p);
    }
    printf("IDX error cases: %d truncations checked\n", ntrunc);
    if (gz) {
        write_file(p, gz, gzlen);
        mae_dataset *ds = mae_dataset_idx(p, pl, 1, &err);
        CHECK(ds != NULL, "intact gz: %s", err.msg);
        mae_dataset_free(ds);
    }
    free(gz);
    remove(p); remove(pd); remove(pl); remove(pg);
}

/* ------------------------------------------------------------------ permutation, synthetic */

static int is_perm(const int64_t *p, int64_t n) {
    char *seen = calloc((size_t)n + 1, 1);
    int ok = 1;
    for (int64_t i = 0; i < n; i++) {
        if (p[i] < 0 || p[i] >= n || seen[p[i]]) ok = 0;
        else seen[p[i]] = 1;
    }
    free(seen);
    return ok;
}

static void test_permutation(void) {
    enum { N = 1000 };
    static int64_t a[N], b[N], c[N], d[N];
    mae_epoch_permutation(a, N, 42, 3);
    mae_epoch_permutation(b, N, 42, 3);
    mae_epoch_permutation(c, N, 42, 4);
    mae_epoch_permutation(d, N, 43, 3);
    CHECK(is_perm(a, N) && is_perm(c, N) && is_perm(d, N), "not a permutation");
    CHECK(memcmp(a, b, sizeof a) == 0, "not deterministic");
    int same_c = 0, same_d = 0, fixed = 0;
    for (int i = 0; i < N; i++) { same_c += a[i] == c[i]; same_d += a[i] == d[i]; fixed += a[i] == i; }
    CHECK(same_c < 20 && same_d < 20 && fixed < 20, "too similar: %d %d %d", same_c, same_d, fixed);
    int64_t one = 7;
    mae_epoch_permutation(&one, 1, 1, 1);
    CHECK(one == 0, "n=1");
    mae_epoch_permutation(NULL, 0, 1, 1);
    /* All 24 orders of 4 elements about equally often over 24000 epochs. */
    int count[256] = {0};
    for (int e = 0; e < 24000; e++) {
        int64_t q[4];
        mae_epoch_permutation(q, 4, 9, e);
        count[q[0] * 64 + q[1] * 16 + q[2] * 4 + q[3]]++;
    }
    int nonzero = 0, lo = 1 << 30, hi = 0;
    for (int k = 0; k < 256; k++)
        if (count[k]) { nonzero++; lo = count[k] < lo ? count[k] : lo; hi = count[k] > hi ? count[k] : hi; }
    CHECK(nonzero == 24 && lo > 850 && hi < 1150, "uniformity: %d orders, %d..%d", nonzero, lo, hi);
}

static void test_synthetic(void) {
    mae_dataset *ds = mae_dataset_synthetic(10, 3, 8, 6, 5), *ds2 = mae_dataset_synthetic(10, 3, 8, 6, 5);
    CHECK(ds && ds->n == 10 && ds->C == 3 && ds->H == 8 && ds->W == 6, "synthetic shape");
    CHECK(mae_dataset_synthetic(0, 3, 8, 6, 5) == NULL, "n=0");
    if (!ds || !ds2) return;
    enum { P = 3 * 8 * 6 };
    float x[4 * P], y[P];
    int labs[4], lab;
    int64_t idx[4] = {3, 0, 9, 3};
    mae_error err;
    CHECK(mae_dataset_batch(ds, idx, 4, 1, 2, x, labs, &err) == MAE_OK, "batch");
    CHECK(memcmp(x, x + 3 * P, sizeof y) == 0 && labs[0] == labs[3], "same idx same image");
    CHECK(memcmp(x, x + P, sizeof y) != 0, "different idx different image");
    ds2->get(ds2, 9, 5, 7, y, &lab, &err);
    CHECK(memcmp(x + 2 * P, y, sizeof y) == 0 && lab == labs[2] && lab >= 0 && lab < 10, "determinism");
    idx[1] = -1;
    CHECK(mae_dataset_batch(ds, idx, 4, 1, 2, x, labs, &err) == MAE_ERR, "negative idx");
    double s = 0, s2 = 0;
    for (int i = 0; i < 10; i++) {
        ds->get(ds, i, 0, 0, y, NULL, &err);
        for (int k = 0; k < P; k++) { s += y[k]; s2 += (double)y[k] * y[k]; }
    }
    CHECK(fabs(s / (10 * P)) < 0.1 && fabs(s2 / (10 * P) - 1.0) < 0.1, "moments %f %f", s / (10 * P), s2 / (10 * P));
    mae_dataset_limit(ds, 2);
    CHECK(ds->n == 2 && ds->get(ds, 2, 0, 0, y, NULL, &err) == MAE_ERR, "limit");
    mae_dataset_free(ds);
    mae_dataset_free(ds2);
    mae_dataset_free(NULL);
}

/* ------------------------------------------------------------------ PNG */

static void png_roundtrip(const char *path, int w, int h, int ch, int salt) {
    size_t n = (size_t)w * h * ch;
    uint8_t *px = malloc(n), *back = NULL;
    for (size_t i = 0; i < n; i++) px[i] = (uint8_t)(i * 131 + (size_t)salt * 7 + i / 3);
    mae_error err = {""};
    CHECK(mae_png_write(path, px, w, h, ch, &err) == MAE_OK, "write %dx%dx%d: %s", w, h, ch, err.msg);
    int rw = 0, rh = 0, rc = 0;
    CHECK(mae_png_read(path, &back, &rw, &rh, &rc, &err) == MAE_OK, "read: %s", err.msg);
    CHECK(back && rw == w && rh == h && rc == ch && memcmp(px, back, n) == 0, "round trip %dx%dx%d", w, h, ch);
    free(px);
    free(back);
}

static void test_png(void) {
    char p[256], q[256], tmp[300];
    mae_error err;
    tp(p, "a.png");
    png_roundtrip(p, 7, 5, 3, 1);
    png_roundtrip(p, 13, 1, 1, 2); /* overwrites the existing file */
    png_roundtrip(p, 1, 1, 3, 3);
    png_roundtrip(p, 64, 48, 1, 4);
    png_roundtrip(p, 33, 17, 3, 5);
    /* A failed write leaves the existing file untouched. */
    size_t n0 = 0, n1 = 0;
    uint8_t *before = slurp(p, &n0), px[12] = {0};
    CHECK(mae_png_write(p, px, 2, 2, 2, &err) == MAE_ERR && strstr(err.msg, p), "2 channels: %s", err.msg);
    CHECK(mae_png_write(p, NULL, 2, 2, 3, &err) == MAE_ERR, "NULL pixels");
    CHECK(mae_png_write(p, px, 0, 2, 3, &err) == MAE_ERR, "zero width");
    uint8_t *after = slurp(p, &n1);
    CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0, "file changed");
    /* Missing directory: fails, names the path, leaves nothing. */
    tp(q, "no_such_dir/x.png");
    CHECK(mae_png_write(q, px, 2, 2, 3, &err) == MAE_ERR && strstr(err.msg, q), "missing dir: %s", err.msg);
    CHECK(!exists(q) && !exists(tp(tmp, "no_such_dir")), "left something");
    /* Rename onto a directory fails and removes the temporary file. */
    tp(q, "adir");
    mkdir(q, 0755);
    CHECK(mae_png_write(q, px, 2, 2, 3, &err) == MAE_ERR && strstr(err.msg, q), "onto dir: %s", err.msg);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", q, (long)getpid());
    CHECK(!exists(tmp), "temporary file left: %s", tmp);
    rmdir(q);
    /* Reading bad files fails cleanly (no leaks under ASan). */
    uint8_t *pix = (uint8_t *)1;
    int w, h, c;
    CHECK(mae_png_read(tp(q, "missing.png"), &pix, &w, &h, &c, &err) == MAE_ERR && pix == NULL && strstr(err.msg, q), "missing");
    tp(q, "bad.png");
    write_file(q, (const uint8_t *)"not a png at all", 16);
    CHECK(mae_png_read(q, &pix, &w, &h, &c, &err) == MAE_ERR && strstr(err.msg, q), "not png");
    png_roundtrip(p, 40, 30, 3, 6);
    free(before);
    before = slurp(p, &n0);
    int bad = 0;
    for (size_t len = 0; before && len < n0; len++) {
        write_file(q, before, len);
        if (mae_png_read(q, &pix, &w, &h, &c, &err) != MAE_ERR || pix != NULL || !strstr(err.msg, q)) bad++;
        free(pix);
    }
    CHECK(bad == 0, "%d truncated PNGs accepted", bad);
    remove(q);
    remove(p);
    free(before);
    free(after);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "test_data_tmp.%ld", (long)getpid());
    if (mkdir(tmpdir, 0755) != 0) { printf("cannot create %s\n", tmpdir); return 2; }
    test_permutation();
    test_synthetic();
    test_idx_roundtrip();
    test_idx_errors();
    test_png();
    test_fashion_mnist();
    static const char *const names[] = {"img.idx", "lab.idx", "img.idx.gz", "lab.idx.gz"};
    char b[256];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) remove(tp(b, names[i]));
    if (rmdir(tmpdir) != 0) { printf("FAIL: %s not empty after the tests\n", tmpdir); failures++; }
    return check_summary("test_data");
}
