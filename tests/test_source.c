/* test_source.c - raw-image sources (source.h): ImageFolder order, flat folders, list files,
 * CIFAR-10/100 batches, IDX, auto-detection and their errors, on trees built in a temp dir.
 * File contents are dummy bytes (sources do not decode): each file holds its own name. */
#define _XOPEN_SOURCE 700 /* nftw */

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data/source.h"

#include "check.h"


static char tmp[256];
static char *tp(const char *rel) { /* tmp/rel in one of 8 rotating buffers */
    static char bufs[8][512];
    static int k = 0;
    char *b = bufs[k++ & 7];
    snprintf(b, 512, "%s/%s", tmp, rel);
    return b;
}
static void mk(const char *rel) {
    if (mkdir(tp(rel), 0755) != 0) { printf("cannot mkdir %s\n", tp(rel)); exit(2); }
}
static void wbytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { printf("cannot write %s\n", path); exit(2); }
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}
static void wtext(const char *rel, const char *s) { wbytes(tp(rel), s, strlen(s)); }
static void wself(const char *rel) { wtext(rel, rel); } /* a file holding its own name */

/* Expect NULL and a message containing want (and the path). */
static void expect_err(mae_source *s, const mae_error *err, const char *want, const char *what) {
    if (getenv("TEST_SOURCE_VERBOSE")) printf("  [%s] %s\n", what, err->msg);
    CHECK(s == NULL, "%s: opened", what);
    CHECK(s != NULL || strstr(err->msg, want), "%s: '%s' lacks '%s'", what, err->msg, want);
    mae_source_free(s);
}

/* 1 if the bytes read are a file's own name as written by wself: a suffix of its path. */
static int holds_name(const mae_raw *raw, const char *path) {
    size_t n = strlen(path);
    return raw->bytes && raw->len > 0 && raw->len <= n &&
           memcmp(path + n - raw->len, raw->bytes, raw->len) == 0;
}

/* Checks s against expected "label rel" lines (paths base/rel); reads each file, which must
 * hold its name, except those whose rel contains "bad" (MAE_ERR_DATA naming the file). */
static void expect_samples(mae_source *s, const char *base, const char *const *exp, int n,
                           const char *what) {
    CHECK(s && s->n == n, "%s: n = %lld, want %d", what, s ? (long long)s->n : -1LL, n);
    if (!s || s->n != n) return;
    mae_buf buf = {0};
    for (int i = 0; i < n; i++) {
        int lab;
        char rel[256], name[600], want[600];
        sscanf(exp[i], "%d %255[^\n]", &lab, rel);
        snprintf(want, sizeof want, "%s%s%s", base, *base ? "/" : "", rel);
        s->name(s, i, name, sizeof name);
        mae_raw raw;
        mae_error err = {""};
        int rc = s->read(s, i, &raw, &buf, &err), bad = strstr(rel, "bad") != NULL;
        CHECK(strcmp(name, want) == 0, "%s: sample %d is %s, want %s", what, i, name, want);
        CHECK(raw.label == lab, "%s: %d: label %d, want %d", what, i, raw.label, lab);
        CHECK(bad ? rc == MAE_ERR_DATA && strstr(err.msg, want) : rc == MAE_OK,
              "%s: %d: rc %d: %s", what, i, rc, err.msg);
        CHECK(bad || rc != MAE_OK || holds_name(&raw, want), "%s: %d: wrong bytes", what, i);
    }
    mae_buf_free(&buf);
}

/* ------------------------------------------------------------------ ImageFolder tree */

static void test_tree(void) {
    static const char *const dirs[] = {"t", "t/zeta", "t/zeta/sub", "t/zeta/sub-2",
                                       "t/zeta/sub/deep", "t/Alpha", "t/beta", "t/10", "t/9",
                                       "t/_u", "t/.hid", "t/empty", "out", "out/real"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) mk(dirs[i]);
    static const char *const files[] = {
        "t/zeta/b.JPG", "t/zeta/a.jpeg", "t/zeta/.h.png", "t/zeta/c.txt", "t/zeta/d.tif",
        "t/zeta/sub/x.png", "t/zeta/sub-2/y.png", "t/zeta/sub/deep/z.bmp", "t/Alpha/B.webp",
        "t/Alpha/a.PNG", "t/beta/img.jpg", "t/10/q.jpg", "t/9/q.jpg", "t/_u/q.jpg",
        "t/.hid/q.jpg", "t/loose.jpg", "t/notes.txt", "t/empty/x.TIFF"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) wself(files[i]);
    wtext("out/real/r.jpg", "linked/r.jpg");
    wbytes(tp("t/9/bad-zero.png"), "", 0);
    CHECK(symlink("../out/real", tp("t/linked")) == 0, "symlink");
    CHECK(symlink("nowhere.jpg", tp("t/Alpha/bad-link.jpg")) == 0, "symlink");
    CHECK(symlink(".", tp("t/beta/loop")) == 0, "symlink");
    mae_error err = {""};
    mae_source *s = mae_source_folder(tp("t"), &err);
    CHECK(s != NULL, "tree: %s", err.msg);
    if (!s) return;
    /* as torchvision: hidden entries kept, byte order, sorted(os.walk()) for nested folders
     * ("sub-2" < "sub/deep"); the empty class keeps its index (6) */
    static const char *const cls[] = {".hid", "10", "9", "Alpha", "_u", "beta", "empty",
                                      "linked", "zeta"};
    CHECK(s->num_classes == 9, "classes %d", s->num_classes);
    for (int k = 0; k < 9 && k < s->num_classes; k++)
        CHECK(strcmp(s->class_names[k], cls[k]) == 0, "class %d %s", k, s->class_names[k]);
    static const char *const exp[] = {
        "0 .hid/q.jpg", "1 10/q.jpg", "2 9/bad-zero.png", "2 9/q.jpg", "3 Alpha/B.webp",
        "3 Alpha/a.PNG", "3 Alpha/bad-link.jpg", "4 _u/q.jpg", "5 beta/img.jpg",
        "7 linked/r.jpg", "8 zeta/.h.png", "8 zeta/a.jpeg", "8 zeta/b.JPG", "8 zeta/sub/x.png",
        "8 zeta/sub-2/y.png", "8 zeta/sub/deep/z.bmp"};
    int n = (int)(sizeof exp / sizeof *exp);
    expect_samples(s, tp("t"), exp, n, "tree");
    CHECK(strstr(s->desc, "16 images, 9 classes") != NULL, "desc %s", s->desc);
    mae_buf buf = {0};
    mae_raw raw;
    CHECK(s->read(s, 2, &raw, &buf, &err) == MAE_ERR_DATA &&
          strstr(err.msg, "empty file (0 bytes)"), "zero bytes: %s", err.msg);
    remove(tp("t/beta/img.jpg")); /* removed after the scan: a bad file at read time */
    CHECK(s->read(s, 8, &raw, &buf, &err) == MAE_ERR_DATA && strstr(err.msg, "beta/img.jpg"),
          "vanished: %s", err.msg);
    mae_buf_free(&buf);
    mae_source_free(s);
    s = mae_source_open(tp("t"), 1, &err); /* auto-detected; img.jpg is gone now */
    CHECK(s && s->n == n - 1 && s->num_classes == 9, "open tree: %s", err.msg);
    mae_source_free(s);
    /* data_path/train and data_path/val (main_pretrain.py layout) */
    mk("tv");
    mk("tv/train");
    mk("tv/train/c");
    wself("tv/train/c/1.jpg");
    wself("tv/train/c/2.jpg");
    s = mae_source_open(tp("tv"), 0, &err);
    expect_err(s, &err, "no val folder", "train without val");
    mk("tv/val");
    mk("tv/val/c");
    wself("tv/val/c/3.jpg");
    static const char *const tr[] = {"0 c/1.jpg", "0 c/2.jpg"}, *const va[] = {"0 c/3.jpg"};
    s = mae_source_open(tp("tv"), 1, &err);
    expect_samples(s, tp("tv/train"), tr, 2, "train");
    mae_source_free(s);
    s = mae_source_open(tp("tv"), 0, &err);
    expect_samples(s, tp("tv/val"), va, 1, "val");
    mae_source_free(s);
}

/* ------------------------------------------------------------------ flat folder, errors */

static void test_flat_and_errors(void) {
    mk("flat");
    mk("flat/sub"); /* a sub-folder without images: still a flat folder */
    wself("flat/b.png");
    wself("flat/a.JPG");
    wself("flat/c.txt");
    wself("flat/sub/no.txt");
    mae_error err = {""};
    mae_source *s = mae_source_open(tp("flat"), 1, &err);
    static const char *const exp[] = {"-1 a.JPG", "-1 b.png"};
    expect_samples(s, tp("flat"), exp, 2, "flat");
    CHECK(s && s->num_classes == 0 && s->class_names == NULL, "flat classes");
    mae_source_free(s);
    mk("emptydir");
    s = mae_source_open(tp("emptydir"), 1, &err);
    expect_err(s, &err, "is empty", "empty folder");
    CHECK(strstr(err.msg, tp("emptydir")) != NULL, "%s", err.msg);
    s = mae_source_open(tp("missing"), 1, &err);
    expect_err(s, &err, tp("missing"), "missing path");
    mk("noimg");
    wself("noimg/a.txt");
    wself("noimg/b.tiff");
    wself("noimg/c.gif");
    s = mae_source_open(tp("noimg"), 1, &err);
    expect_err(s, &err, "(3 other files ignored", "no images");
    CHECK(strstr(err.msg, tp("noimg")) && strstr(err.msg, ".jpg .jpeg .png .bmp .webp"), "%s",
          err.msg);
    mk("noimg/cls");
    wself("noimg/cls/x.txt");
    s = mae_source_open(tp("noimg"), 1, &err);
    expect_err(s, &err, "class folders", "no images in classes");
    s = mae_source_open(tp("flat/b.png"), 1, &err);
    expect_err(s, &err, "is an image file", "image given");
}

/* ------------------------------------------------------------------ list files */

static void test_lists(void) {
    mk("lists");
    mk("lists/sp ace");
    wself("lists/sp ace/b c.png");
    wself("lists/a.jpg");
    char abs_line[700];
    snprintf(abs_line, sizeof abs_line, "# comment\n\n  \na.jpg 0\nsp ace/b c.png\t 3 \n%s 1\n"
             "bad-missing.jpg 2\n", tp("flat/a.JPG"));
    wtext("lists/lab.txt", abs_line);
    mae_error err = {""};
    mae_source *s = mae_source_open(tp("lists/lab.txt"), 1, &err);
    const char *exp[4] = {"0 lists/a.jpg", "3 lists/sp ace/b c.png", "1 flat/a.JPG",
                          "2 lists/bad-missing.jpg"};
    expect_samples(s, tmp, exp, 4, "labelled list");
    CHECK(s && s->num_classes == 4, "list classes %d", s ? s->num_classes : -1);
    mae_source_free(s);
    wtext("lists/crlf.txt", "a.jpg\r\n../flat/b.png\r\n# x\r\n\r\n");
    s = mae_source_list(tp("lists/crlf.txt"), &err);
    const char *exp2[2] = {"-1 lists/a.jpg", "-1 lists/../flat/b.png"};
    expect_samples(s, tmp, exp2, 2, "crlf list");
    CHECK(s && s->num_classes == 0, "unlabelled list classes");
    mae_source_free(s);
    static const char *const bad[][2] = {
        {"a.jpg 1\nb.jpg x1\n", "bad.txt:2: bad label 'x1'"},
        {"a.jpg 1\n\n\t4\n", "bad.txt:3: missing path"},
        {"a.jpg -1\n", "bad.txt:1: bad label"},
        {"a.jpg 1\nb.jpg\n", "bad.txt:2"},
        {"# only a comment\n", "no image paths"}};
    wbytes(tp("lists/bin.txt"), "a.jpg\n\0\x01\n", 9);
    s = mae_source_open(tp("lists/bin.txt"), 1, &err);
    expect_err(s, &err, "bin.txt:2: a NUL byte", "binary list");
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        wtext("lists/bad.txt", bad[i][0]);
        s = mae_source_open(tp("lists/bad.txt"), 1, &err);
        expect_err(s, &err, bad[i][1], bad[i][1]);
    }
}

/* ------------------------------------------------------------------ CIFAR */

static uint8_t plane(int g, int c, int p) { return (uint8_t)(g * 7 + c * 50 + p * (c + 1)); }

/* Writes m records for global indices g0.. (label bytes lb: coarse = g % 20, label g % ncls). */
static void write_cifar(const char *path, int g0, int m, int lb, int ncls, size_t cut) {
    size_t rs = (size_t)lb + 3072;
    uint8_t *b = calloc((size_t)m, rs);
    for (int r = 0; r < m; r++) {
        uint8_t *rec = b + (size_t)r * rs;
        int g = g0 + r;
        if (lb == 2) rec[0] = (uint8_t)(g % 20);
        rec[lb - 1] = (uint8_t)(g % ncls);
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 1024; p++) rec[lb + c * 1024 + p] = plane(g, c, p);
    }
    wbytes(path, b, (size_t)m * rs - cut);
    free(b);
}

/* Checks n samples of s: global index g0 + i, label g % ncls, interleaved HWC pixels. */
static void check_cifar(mae_source *s, int n, int g0, int ncls, const char *what) {
    CHECK(s && s->n == n && s->num_classes == ncls, "%s: n %lld", what, s ? (long long)s->n : -1LL);
    if (!s || s->n != n) return;
    mae_buf buf = {0};
    int bad = 0;
    for (int i = 0; i < n; i++) {
        mae_raw raw;
        mae_error err = {""};
        int g = g0 + i;
        CHECK(s->read(s, i, &raw, &buf, &err) == MAE_OK, "%s", err.msg);
        CHECK(raw.label == g % ncls && raw.w == 32 && raw.h == 32 && raw.c == 3 && !raw.bytes,
              "%s: %d: label %d", what, i, raw.label);
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++)
                for (int c = 0; c < 3; c++)
                    bad += raw.px[(y * 32 + x) * 3 + c] != plane(g, c, y * 32 + x);
    }
    CHECK(bad == 0, "%s: %d pixels differ", what, bad);
    mae_buf_free(&buf);
}

static void test_cifar(void) {
    mk("c10");
    mk("c10/cifar-10-batches-bin");
    char name[64];
    for (int b = 1; b <= 5; b++) {
        snprintf(name, sizeof name, "c10/cifar-10-batches-bin/data_batch_%d.bin", b);
        write_cifar(tp(name), (b - 1) * 3, 3, 1, 10, 0);
    }
    write_cifar(tp("c10/cifar-10-batches-bin/test_batch.bin"), 100, 4, 1, 10, 0);
    wtext("c10/cifar-10-batches-bin/batches.meta.txt",
          "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n");
    mae_error err = {""};
    mae_source *s = mae_source_open(tp("c10"), 1, &err);
    CHECK(s != NULL, "c10: %s", err.msg);
    check_cifar(s, 15, 0, 10, "c10 train");
    CHECK(s && s->class_names && strcmp(s->class_names[9], "truck") == 0, "c10 names");
    mae_source_free(s);
    s = mae_source_open(tp("c10/cifar-10-batches-bin"), 0, &err);
    check_cifar(s, 4, 100, 10, "c10 test");
    mae_source_free(s);
    s = mae_source_open(tp("c10/cifar-10-batches-bin/data_batch_2.bin"), 1, &err);
    check_cifar(s, 3, 3, 10, "c10 one file");
    mae_source_free(s);
    /* errors: truncated, label out of range, missing batches */
    write_cifar(tp("c10/cifar-10-batches-bin/data_batch_2.bin"), 3, 3, 1, 10, 7);
    s = mae_source_open(tp("c10"), 1, &err);
    expect_err(s, &err, "data_batch_2.bin: 9212 bytes is not a whole number", "truncated");
    write_cifar(tp("c10/cifar-10-batches-bin/data_batch_2.bin"), 9, 3, 1, 11, 0); /* 9 10 0 */
    s = mae_source_open(tp("c10"), 1, &err);
    expect_err(s, &err, "record 1: label 10 out of range 0..9", "label range");
    remove(tp("c10/cifar-10-batches-bin/data_batch_2.bin"));
    remove(tp("c10/cifar-10-batches-bin/data_batch_5.bin"));
    s = mae_source_open(tp("c10"), 1, &err);
    expect_err(s, &err, "missing data_batch_2.bin, data_batch_5.bin", "missing batches");
    /* CIFAR-100: label = fine */
    mk("c100");
    write_cifar(tp("c100/train.bin"), 0, 120, 2, 100, 0);
    write_cifar(tp("c100/test.bin"), 5, 2, 2, 100, 0);
    s = mae_source_cifar(tp("c100"), 1, &err);
    check_cifar(s, 120, 0, 100, "c100 train");
    CHECK(s && s->class_names == NULL, "no names file");
    mae_source_free(s);
    s = mae_source_open(tp("c100"), 0, &err);
    check_cifar(s, 2, 5, 100, "c100 test");
    mae_source_free(s);
    rename(tp("c100/test.bin"), tp("c100/renamed.dat")); /* told apart by size */
    s = mae_source_cifar(tp("c100/renamed.dat"), 1, &err);
    check_cifar(s, 2, 5, 100, "c100 renamed");
    mae_source_free(s);
    write_cifar(tp("c100/train.bin"), 0, 3, 2, 100, 0);
    uint8_t *rec = calloc(1, 3074);
    rec[0] = 20; /* coarse label out of range */
    wbytes(tp("c100/test.bin"), rec, 3074);
    free(rec);
    s = mae_source_open(tp("c100"), 0, &err);
    expect_err(s, &err, "record 0: coarse label 20 out of range 0..19", "c100 coarse");
    write_cifar(tp("c100/test.bin"), 5, 2, 2, 101, 3);
    s = mae_source_open(tp("c100"), 0, &err);
    expect_err(s, &err, "test.bin", "c100 truncated");
}

/* ------------------------------------------------------------------ IDX */

static void test_idx(void) {
    enum { NI = 3, R = 4, C = 5 };
    uint8_t img[16 + NI * R * C], lab[8 + NI];
    uint32_t hi[4] = {2051, NI, R, C}, hl[2] = {2049, NI};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) img[4 * i + k] = (uint8_t)(hi[i] >> (24 - 8 * k));
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 4; k++) lab[4 * i + k] = (uint8_t)(hl[i] >> (24 - 8 * k));
    for (int i = 0; i < NI * R * C; i++) img[16 + i] = (uint8_t)(i * 3 + 1);
    for (int i = 0; i < NI; i++) lab[8 + i] = (uint8_t)(7 - i);
    mk("mnist");
    wbytes(tp("mnist/t10k-images-idx3-ubyte"), img, sizeof img);
    gzFile g = gzopen(tp("mnist/train-images-idx3-ubyte.gz"), "wb");
    gzwrite(g, img, sizeof img);
    gzclose(g);
    g = gzopen(tp("mnist/train-labels-idx1-ubyte.gz"), "wb");
    gzwrite(g, lab, sizeof lab);
    gzclose(g);
    const char *paths[3] = {tp("mnist"), tp("mnist"), tp("mnist/train-images-idx3-ubyte.gz")};
    for (int v = 0; v < 3; v++) {
        mae_error err = {""};
        mae_source *s = mae_source_open(paths[v], v != 1, &err);
        int labelled = v != 1; /* t10k has no labels file */
        CHECK(s && s->n == NI && s->num_classes == (labelled ? 8 : 0), "idx %d: %s", v, err.msg);
        if (!s) continue;
        mae_buf buf = {0};
        for (int i = 0; i < NI; i++) {
            mae_raw raw;
            CHECK(s->read(s, i, &raw, &buf, &err) == MAE_OK, "read");
            CHECK(raw.w == C && raw.h == R && raw.c == 1 && !raw.bytes &&
                  memcmp(raw.px, img + 16 + i * R * C, R * C) == 0, "idx %d px %d", v, i);
            CHECK(raw.label == (labelled ? 7 - i : -1), "idx %d label %d", v, raw.label);
        }
        char nm[300];
        s->name(s, 2, nm, sizeof nm);
        CHECK(strstr(nm, "image 2") != NULL, "name %s", nm);
        mae_buf_free(&buf);
        mae_source_free(s);
    }
    mae_error err;
    mae_source *s = mae_source_idx(tp("mnist/t10k-images-idx3-ubyte"), tp("nope"), &err);
    expect_err(s, &err, tp("nope"), "idx missing labels");
}

/* ------------------------------------------------------------------ main */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

int main(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/test_source.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmp)) { printf("cannot create %s\n", tmp); return 2; }
    test_tree();
    test_flat_and_errors();
    test_lists();
    test_cifar();
    test_idx();
    if (nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        printf("FAIL: cannot remove %s\n", tmp);
        failures++;
    }
    return check_summary("test_source");
}
