/* test_image.c - image decoding (src/data/image.h): values of every source kind against what
 * was encoded, JPEG regions and DCT scales against full decodes, and bad input of every kind
 * (empty, tiny, text, truncated at many points, random corruption, absurd sizes, BMP offsets
 * outside the file), which must give MAE_ERR_DATA with a message and never crash (the ASan
 * build runs this). The files are made here: JPEG with libjpeg, PNG with libpng, BMP by hand,
 * WebP with libwebp. The exact comparison with PIL is tests/python/test_image_pil.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>
#ifdef MAE_HAVE_WEBP
#include <webp/decode.h>
#include <webp/encode.h>
#endif

#include "data/image.h"

#include "check.h"


/* ------------------------------------------------------------------ helpers */

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static int rng_int(uint64_t *s, int n) { return (int)(rng_next(s) % (uint64_t)n); }

static uint8_t luma(const uint8_t *p) {
    return (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
}

/* A w x h RGB test picture: gradients, a few edges and some noise (so that chroma upsampling
 * and DCT scaling have something to get wrong). */
static uint8_t *make_picture(int w, int h, uint64_t seed) {
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *q = p + ((size_t)y * w + x) * 3;
            int edge = ((x / 7 + y / 5) & 1) * 60;
            q[0] = (uint8_t)((x * 255 / (w > 1 ? w - 1 : 1) + edge) & 255);
            q[1] = (uint8_t)((y * 255 / (h > 1 ? h - 1 : 1)) ^ (rng_next(&seed) & 31));
            q[2] = (uint8_t)(((x + y) * 3 + edge) & 255);
        }
    return p;
}

typedef struct blob {
    uint8_t *p;
    size_t n;
    const char *name;
} blob;

static int decode(mae_image *im, const blob *b, int chans, int scale, int x0, int y0, int x1,
                  int y1, mae_error *err) {
    mae_decode_req req = {chans, scale, x0, y0, x1, y1};
    err->msg[0] = 0;
    return mae_image_decode(b->p, b->n, &req, im, err);
}

/* The decode must fail with MAE_ERR_DATA and a message containing want (if not NULL). */
static void expect_data_error(const uint8_t *p, size_t n, const char *want, const char *what) {
    mae_image im = {0};
    mae_error err = {{0}};
    blob b = {(uint8_t *)p, n, what};
    int rc = decode(&im, &b, 3, 0, 0, 0, 0, 0, &err);
    CHECK(rc == MAE_ERR_DATA, "%s: rc %d (%s)", what, rc, err.msg);
    CHECK(err.msg[0] != 0, "%s: empty message", what);
    CHECK(!want || strstr(err.msg, want), "%s: message \"%s\" lacks \"%s\"", what, err.msg, want);
    CHECK(im.px == NULL && im.w == 0 && im.h == 0, "%s: pixels handed out on error", what);
    mae_image_info info;
    rc = mae_image_probe(p, n, &info, &err); /* may succeed: the header can be fine */
    CHECK(rc == MAE_OK || rc == MAE_ERR_DATA, "%s: probe rc %d", what, rc);
    mae_image_release(&im);
}

/* ------------------------------------------------------------------ encoders */

typedef struct jpeg_spec {
    int w, h, comps;       /* input: 1 grey, 3 RGB, 4 CMYK */
    J_COLOR_SPACE jpeg_cs; /* stored colour space */
    int hs, vs;            /* sampling factors of the first (and, for YCCK, last) component */
    int chs, cvs;          /* of the second component (the third has 1x1) */
    int quality, progressive, arith, restart;
} jpeg_spec;

static blob make_jpeg(const jpeg_spec *s, const uint8_t *px, const char *name) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long n = 0;
    jpeg_mem_dest(&c, &out, &n);
    c.image_width = (JDIMENSION)s->w;
    c.image_height = (JDIMENSION)s->h;
    c.input_components = s->comps;
    c.in_color_space = s->comps == 1 ? JCS_GRAYSCALE : s->comps == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_colorspace(&c, s->jpeg_cs);
    jpeg_set_quality(&c, s->quality, TRUE);
    for (int k = 0; k < c.num_components; k++) {
        int full = k == 0 || (s->jpeg_cs == JCS_YCCK && k == 3) || s->jpeg_cs == JCS_RGB ||
                   s->jpeg_cs == JCS_CMYK;
        c.comp_info[k].h_samp_factor = full ? s->hs : k == 1 ? s->chs : 1;
        c.comp_info[k].v_samp_factor = full ? s->vs : k == 1 ? s->cvs : 1;
    }
    if (s->progressive) jpeg_simple_progression(&c);
    c.arith_code = s->arith ? TRUE : FALSE;
    c.restart_interval = (unsigned)s->restart;
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)c.next_scanline * s->w * s->comps);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return (blob){out, n, name};
}

typedef struct png_spec {
    int w, h, color_type, depth, interlace, n_plte;
} png_spec;

typedef struct mem_png {
    uint8_t *p;
    size_t n, cap;
} mem_png;

static void png_mem_write(png_structp png, png_bytep data, png_size_t n) {
    mem_png *m = png_get_io_ptr(png);
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2;
        m->p = realloc(m->p, m->cap);
    }
    memcpy(m->p + m->n, data, n);
    m->n += n;
}
static void png_mem_flush(png_structp png) { (void)png; }

/* rows: the raw PNG rows (packed samples, 16-bit big-endian), h rows of rowbytes. */
static blob make_png(const png_spec *s, const uint8_t *rows, size_t rowbytes,
                     const uint8_t (*plte)[3], const char *name) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    mem_png m = {0};
    if (setjmp(png_jmpbuf(png))) {
        printf("libpng failed writing %s\n", name);
        exit(2);
    }
    png_set_write_fn(png, &m, png_mem_write, png_mem_flush);
    png_set_check_for_invalid_index(png, 0); /* palette indices past PLTE are tested */
    png_set_IHDR(png, info, (png_uint_32)s->w, (png_uint_32)s->h, s->depth, s->color_type,
                 s->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (s->color_type == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[256];
        for (int i = 0; i < s->n_plte; i++)
            pal[i] = (png_color){plte[i][0], plte[i][1], plte[i][2]};
        png_set_PLTE(png, info, pal, s->n_plte);
    }
    png_write_info(png, info);
    int passes = s->interlace ? png_set_interlace_handling(png) : 1;
    for (int pass = 0; pass < passes; pass++)
        for (int y = 0; y < s->h; y++) png_write_row(png, rows + (size_t)y * rowbytes);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return (blob){m.p, m.n, name};
}

typedef struct bmp_spec {
    int w, h, bits, hsize, top_down, compression, colors;
    uint32_t mask[3];
} bmp_spec;

static void put_le16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put_le32(uint8_t *p, uint32_t v) {
    for (int k = 0; k < 4; k++) p[k] = (uint8_t)(v >> (8 * k));
}

/* vals: per pixel (row-major, top row first) the index (bits <= 8) or the packed value. */
static blob make_bmp(const bmp_spec *s, const uint32_t *vals, const uint8_t (*pal)[3],
                     const char *name) {
    int core = s->hsize == 12, entry = core ? 3 : 4;
    size_t masks = (!core && s->hsize == 40 && s->compression == 3) ? 12 : 0;
    size_t pal_bytes = s->bits <= 8 ? (size_t)s->colors * entry : 0;
    size_t off = 14 + (size_t)s->hsize + masks + pal_bytes;
    size_t stride = (((size_t)s->w * s->bits + 31) / 32) * 4, n = off + stride * s->h;
    uint8_t *b = calloc(n, 1);
    b[0] = 'B', b[1] = 'M';
    put_le32(b + 2, (uint32_t)n);
    put_le32(b + 10, (uint32_t)off);
    uint8_t *h = b + 14;
    put_le32(h, (uint32_t)s->hsize);
    if (core) {
        put_le16(h + 4, (uint32_t)s->w), put_le16(h + 6, (uint32_t)s->h);
        put_le16(h + 8, 1), put_le16(h + 10, (uint32_t)s->bits);
    } else {
        put_le32(h + 4, (uint32_t)s->w);
        put_le32(h + 8, (uint32_t)(s->top_down ? -s->h : s->h));
        put_le16(h + 12, 1), put_le16(h + 14, (uint32_t)s->bits);
        put_le32(h + 16, (uint32_t)s->compression);
        put_le32(h + 32, s->bits <= 8 ? (uint32_t)s->colors : 0);
        uint8_t *mp = s->hsize >= 52 ? h + 40 : h + s->hsize;
        if (s->compression == 3)
            for (int k = 0; k < 3; k++) put_le32(mp + 4 * k, s->mask[k]);
    }
    for (int i = 0; s->bits <= 8 && i < s->colors; i++) {
        uint8_t *p = b + 14 + s->hsize + (size_t)i * entry;
        p[0] = pal[i][2], p[1] = pal[i][1], p[2] = pal[i][0];
    }
    for (int y = 0; y < s->h; y++) {
        uint8_t *row = b + off + (size_t)(s->top_down ? y : s->h - 1 - y) * stride;
        for (int x = 0; x < s->w; x++) {
            uint32_t v = vals[(size_t)y * s->w + x];
            if (s->bits <= 8) {
                size_t bit = (size_t)x * s->bits;
                row[bit / 8] |= (uint8_t)(v << (8 - s->bits - bit % 8));
            } else {
                for (int k = 0; k < s->bits / 8; k++)
                    row[(size_t)x * (s->bits / 8) + k] = (uint8_t)(v >> (8 * k));
            }
        }
    }
    return (blob){b, n, name};
}

/* ------------------------------------------------------------------ signatures, tiny files */

static void test_not_images(void) {
    expect_data_error((const uint8_t *)"", 0, "empty", "0 bytes");
    expect_data_error((const uint8_t *)"\xff", 1, "truncated JPEG", "1 byte ff");
    expect_data_error((const uint8_t *)"\xff\xd8", 2, "truncated JPEG", "2 bytes ffd8");
    expect_data_error((const uint8_t *)"\x89PN", 3, "truncated PNG", "3 bytes png");
    expect_data_error((const uint8_t *)"B", 1, "truncated BMP", "1 byte B");
    expect_data_error((const uint8_t *)"x", 1, "unknown signature 78", "1 byte x");
    expect_data_error((const uint8_t *)"\xff\xd8\xff", 3, "truncated JPEG", "3 bytes jpeg sig");
    const char *html = "<html><body>404 Not Found</body></html>\n";
    expect_data_error((const uint8_t *)html, strlen(html), "unknown signature 3c 68 74 6d",
                      "html text");
    expect_data_error((const uint8_t *)"GIF89a\x01\x00\x01\x00", 10, "GIF", "gif");
    expect_data_error((const uint8_t *)"RIFF\x10\0\0\0WAVEfmt ", 16, "WAVE", "riff wave");
    expect_data_error((const uint8_t *)"RIFF\x10\0\0\0WEB", 11, "truncated", "riff short");
    expect_data_error((const uint8_t *)"BM\0\0\0\0", 6, "truncated BMP header", "bmp 6 bytes");
    uint8_t zeros[64] = {0};
    expect_data_error(zeros, sizeof zeros, "unknown signature 00 00 00 00", "zeros");
}

/* ------------------------------------------------------------------ JPEG */

/* Pixel (x, y) of a decoded block in the coordinates of the whole scaled image. */
static const uint8_t *at(const mae_image *im, int x, int y) {
    return im->px + ((size_t)(y - im->y0) * im->w + (x - im->x0)) * im->c;
}

static int block_equal(const mae_image *a, const mae_image *full, int x0, int y0, int x1, int y1) {
    for (int y = y0; y < y1; y++)
        if (memcmp(at(a, x0, y), at(full, x0, y), (size_t)(x1 - x0) * a->c)) return 0;
    return 1;
}

/* For every scale, random and aligned regions decode to exactly the full decode's pixels. */
static void check_regions(const blob *b, int W, int H, int chans, uint64_t seed) {
    mae_image full = {0}, part = {0};
    mae_error err;
    for (int s = 1; s <= 8; s++) {
        int rc = decode(&full, b, chans, s, 0, 0, 0, 0, &err);
        CHECK(rc == MAE_OK, "%s scale %d: %s", b->name, s, err.msg);
        if (rc != MAE_OK) continue;
        int FW = (W * s + 7) / 8, FH = (H * s + 7) / 8;
        CHECK(full.w == FW && full.h == FH && full.full_w == FW && full.full_h == FH &&
                  full.x0 == 0 && full.y0 == 0 && full.scale_num == s && full.c == chans,
              "%s scale %d: geometry %dx%d of %dx%d at (%d,%d)", b->name, s, full.w, full.h,
              full.full_w, full.full_h, full.x0, full.y0);
        for (int t = 0; t < 40; t++) {
            int x0 = rng_int(&seed, W), y0 = rng_int(&seed, H);
            int x1 = x0 + 1 + rng_int(&seed, W - x0), y1 = y0 + 1 + rng_int(&seed, H - y0);
            if (t >= 36) { /* narrow strips, at the edges too */
                x1 = x0 + 1 + (t & 3) < W ? x0 + 1 + (t & 3) : W;
                if (t & 1) y1 = y0 + 1 + (t & 3) < H ? y0 + 1 + (t & 3) : H;
                if (t == 38) x0 = 0, x1 = 2;
                if (t == 39) x0 = W - 2, x1 = W;
            }
            if (t < 8) { /* iMCU-aligned corners and image edges */
                x0 = (x0 / 16) * 16, y0 = (y0 / 16) * 16;
                x1 = t & 1 ? W : (x1 + 15) / 16 * 16 < W ? (x1 + 15) / 16 * 16 : W;
                y1 = t & 2 ? H : (y1 + 7) / 8 * 8 < H ? (y1 + 7) / 8 * 8 : H;
                if (x1 <= x0) x1 = W;
                if (y1 <= y0) y1 = H;
            }
            rc = decode(&part, b, chans, s, x0, y0, x1, y1, &err);
            CHECK(rc == MAE_OK, "%s scale %d region: %s", b->name, s, err.msg);
            if (rc != MAE_OK) continue;
            int rx0 = x0 * s / 8, ry0 = y0 * s / 8, rx1 = (x1 * s + 7) / 8, ry1 = (y1 * s + 7) / 8;
            int covers = part.x0 <= rx0 && part.y0 <= ry0 && part.x0 + part.w >= rx1 &&
                         part.y0 + part.h >= ry1 && part.x0 + part.w <= FW &&
                         part.y0 + part.h <= FH && part.full_w == FW && part.full_h == FH;
            CHECK(covers, "%s scale %d region [%d,%d)x[%d,%d): got %dx%d at (%d,%d)", b->name, s,
                  x0, x1, y0, y1, part.w, part.h, part.x0, part.y0);
            if (!covers) continue;
            CHECK(block_equal(&part, &full, rx0, ry0, rx1, ry1),
                  "%s scale %d chans %d region [%d,%d)x[%d,%d) (scaled [%d,%d)x[%d,%d), "
                  "decoded %dx%d at (%d,%d)) differs from the full decode",
                  b->name, s, chans, x0, x1, y0, y1, rx0, rx1, ry0, ry1, part.w, part.h, part.x0,
                  part.y0);
        }
    }
    mae_image_release(&full);
    mae_image_release(&part);
}

static void test_jpeg_regions(void) {
    const int W = 157, H = 123;
    uint8_t *pic = make_picture(W, H, 1);
    /* luma and chroma sampling factors (the usual layouts and some odd ones that trip
     * libjpeg-turbo's cropping: 4:1:0 and 2x4 are decoded at full width at scales 2..7) */
    static const int samp[][4] = {{1, 1, 1, 1}, {2, 1, 1, 1}, {2, 2, 1, 1},
                                  {1, 2, 1, 1}, {4, 1, 1, 1}, {4, 2, 1, 1},
                                  {2, 4, 1, 1}, {4, 1, 2, 1}, {2, 2, 2, 1}};
    static const char *names[] = {"4:4:4", "4:2:2", "4:2:0",   "4:4:0",  "4:1:1",
                                  "4:1:0", "2x4",   "4x1 2x1", "2x2 2x1"};
    for (int k = 0; k < 9; k++)
        for (int prog = 0; prog < 2; prog++) {
            jpeg_spec s = {W,          H,          3,  JCS_YCbCr, samp[k][0], samp[k][1],
                           samp[k][2], samp[k][3], 90, prog,      0,          0};
            char name[64];
            snprintf(name, sizeof name, "JPEG %s%s", names[k], prog ? " progressive" : "");
            blob b = make_jpeg(&s, pic, name);
            check_regions(&b, W, H, 3, 100 + k);
            if (k == 2) check_regions(&b, W, H, 1, 200 + k);
            free(b.p);
        }
    /* grey, restart markers, arithmetic coding */
    uint8_t *grey = malloc((size_t)W * H);
    for (int i = 0; i < W * H; i++) grey[i] = luma(pic + 3 * i);
    jpeg_spec g = {W, H, 1, JCS_GRAYSCALE, 1, 1, 1, 1, 90, 0, 0, 0};
    blob b = make_jpeg(&g, grey, "JPEG grey");
    check_regions(&b, W, H, 1, 7);
    check_regions(&b, W, H, 3, 8);
    free(b.p);
    jpeg_spec r = {W, H, 3, JCS_YCbCr, 2, 2, 1, 1, 85, 0, 0, 3};
    b = make_jpeg(&r, pic, "JPEG 4:2:0 restart 3");
    check_regions(&b, W, H, 3, 9);
    free(b.p);
    jpeg_spec a = {W, H, 3, JCS_YCbCr, 2, 2, 1, 1, 85, 1, 1, 0};
    b = make_jpeg(&a, pic, "JPEG 4:2:0 progressive arithmetic");
    check_regions(&b, W, H, 3, 10);
    free(b.p);
    free(grey);
    free(pic);
}

/* Full-size values: close to what was encoded at quality 100; grey replicated to RGB; CMYK
 * and YCCK converted the PIL way. */
static void test_jpeg_values(void) {
    const int W = 40, H = 24;
    uint8_t *pic = make_picture(W, H, 2);
    mae_image im = {0}, im1 = {0};
    mae_error err;
    jpeg_spec s = {W, H, 3, JCS_YCbCr, 1, 1, 1, 1, 100, 0, 0, 0};
    blob b = make_jpeg(&s, pic, "JPEG q100");
    int rc = decode(&im, &b, 3, 0, 0, 0, 0, 0, &err);
    CHECK(rc == MAE_OK && im.w == W && im.h == H && im.c == 3, "%s: %s", b.name, err.msg);
    int maxd = 0;
    for (int i = 0; rc == MAE_OK && i < W * H * 3; i++) {
        int d = abs(im.px[i] - pic[i]);
        maxd = d > maxd ? d : maxd;
    }
    CHECK(maxd <= 8, "JPEG q100 4:4:4 differs from its source by %d", maxd);
    /* chans 1 is PIL's L of the RGB decode (not libjpeg's Y channel) */
    rc = decode(&im1, &b, 1, 0, 0, 0, 0, 0, &err);
    int same = rc == MAE_OK;
    for (int i = 0; same && i < W * H; i++) same = im1.px[i] == luma(im.px + 3 * i);
    CHECK(same, "JPEG chans 1 is not L(RGB decode)");
    mae_image_info info;
    rc = mae_image_probe(b.p, b.n, &info, &err);
    CHECK(rc == MAE_OK && info.format == MAE_IMG_JPEG && info.width == W && info.height == H,
          "JPEG probe: %s", err.msg);
    free(b.p);

    uint8_t *grey = malloc((size_t)W * H);
    for (int i = 0; i < W * H; i++) grey[i] = (uint8_t)(i * 7);
    jpeg_spec g = {W, H, 1, JCS_GRAYSCALE, 1, 1, 1, 1, 95, 0, 0, 0};
    b = make_jpeg(&g, grey, "JPEG grey");
    rc = decode(&im1, &b, 1, 0, 0, 0, 0, 0, &err);
    int rc3 = decode(&im, &b, 3, 0, 0, 0, 0, 0, &err);
    same = rc == MAE_OK && rc3 == MAE_OK && im1.c == 1 && im.c == 3;
    for (int i = 0; same && i < W * H; i++)
        same = im.px[3 * i] == im1.px[i] && im.px[3 * i + 1] == im1.px[i] &&
               im.px[3 * i + 2] == im1.px[i];
    CHECK(same, "grey JPEG: RGB is not the replicated grey");
    free(b.p);
    free(grey);

    /* CMYK stored as Adobe does (inverted); PIL reads the bytes inverted, then cmyk2rgb */
    uint8_t *cmyk = malloc((size_t)W * H * 4);
    for (int i = 0; i < W * H; i++)
        for (int k = 0; k < 4; k++) cmyk[4 * i + k] = (uint8_t)(pic[3 * i + k % 3] ^ (k * 77));
    for (int ycck = 0; ycck < 2; ycck++) {
        jpeg_spec c = {W, H, 4, ycck ? JCS_YCCK : JCS_CMYK, 1, 1, 1, 1, 100, 0, 0, 0};
        b = make_jpeg(&c, cmyk, ycck ? "JPEG YCCK" : "JPEG CMYK");
        rc = decode(&im, &b, 3, 0, 0, 0, 0, 0, &err);
        rc3 = decode(&im1, &b, 1, 0, 0, 0, 0, 0, &err);
        CHECK(rc == MAE_OK && rc3 == MAE_OK, "%s: %s", b.name, err.msg);
        maxd = 0;
        for (int i = 0; rc == MAE_OK && rc3 == MAE_OK && i < W * H; i++) {
            const uint8_t *q = cmyk + 4 * i;
            int nk = q[3], rgb[3];
            for (int k = 0; k < 3; k++) {
                int t = (255 - q[k]) * nk + 128, v = nk - (((t >> 8) + t) >> 8);
                rgb[k] = v < 0 ? 0 : v;
                int d = abs(im.px[3 * i + k] - rgb[k]);
                maxd = d > maxd ? d : maxd;
            }
            CHECK(im1.px[i] == luma(im.px + 3 * i), "%s: L is not L(RGB)", b.name);
        }
        CHECK(maxd <= (ycck ? 12 : 6), "%s: RGB differs from PIL's conversion by %d", b.name, maxd);
        free(b.p);
    }
    free(cmyk);
    free(pic);
    mae_image_release(&im);
    mae_image_release(&im1);
}

/* ------------------------------------------------------------------ PNG */

/* Expected decode (RGB) of pixel i for a PNG of this spec made by png_rows(). */
typedef struct png_case {
    png_spec s;
    const char *name;
} png_case;

/* Fills raw rows for the spec from the picture and the expected RGB (and L) output. */
static size_t png_rows(uint8_t **rows, uint8_t *exp, const png_spec *s, const uint8_t *pic,
                       const uint8_t (*pal)[3], uint64_t seed) {
    static const int samples[7] = {1, 0, 3, 1, 2, 0, 4};
    int spp = samples[s->color_type], d = s->depth;
    size_t rowbytes = ((size_t)s->w * spp * d + 7) / 8;
    *rows = calloc(rowbytes * s->h, 1);
    for (int y = 0; y < s->h; y++)
        for (int x = 0; x < s->w; x++) {
            size_t i = (size_t)y * s->w + x;
            const uint8_t *q = pic + 3 * i;
            uint8_t *row = *rows + (size_t)y * rowbytes, *e = exp + 3 * i;
            if (s->color_type == 3 || (s->color_type == 0 && d < 8)) {
                unsigned v = (q[0] ^ q[1]) >> (8 - d), bit = (unsigned)x * d;
                row[bit / 8] |= (uint8_t)(v << (8 - d - bit % 8));
                if (s->color_type == 3)
                    memcpy(e, pal[v], 3);
                else
                    e[0] = e[1] = e[2] = (uint8_t)(v * (255 / ((1 << d) - 1)));
                continue;
            }
            int ncolor = s->color_type == 0 || s->color_type == 4 ? 1 : 3;
            for (int k = 0; k < spp; k++) {
                uint8_t hi = k < ncolor ? (ncolor == 1 ? luma(q) : q[k]) : (uint8_t)rng_next(&seed);
                uint8_t *p = row + ((size_t)x * spp + k) * (d / 8);
                p[0] = hi;
                if (d == 16) p[1] = (uint8_t)rng_next(&seed); /* the low byte is dropped */
                if (k < 3) e[k] = hi;
            }
            if (ncolor == 1) e[1] = e[2] = e[0];
        }
    return rowbytes;
}

static void test_png_values(blob *keep) {
    const int W = 37, H = 29;
    uint8_t *pic = make_picture(W, H, 3);
    uint8_t pal[256][3];
    uint64_t seed = 5;
    for (int i = 0; i < 256; i++)
        for (int k = 0; k < 3; k++) pal[i][k] = (uint8_t)rng_next(&seed);
    static const png_case cases[] = {
        {{0, 0, 0, 1, 0, 0}, "grey 1-bit"},
        {{0, 0, 0, 2, 1, 0}, "grey 2-bit interlaced"},
        {{0, 0, 0, 4, 0, 0}, "grey 4-bit"},
        {{0, 0, 0, 8, 0, 0}, "grey 8-bit"},
        {{0, 0, 0, 16, 1, 0}, "grey 16-bit interlaced"},
        {{0, 0, 2, 8, 0, 0}, "RGB 8-bit"},
        {{0, 0, 2, 8, 1, 0}, "RGB 8-bit interlaced"},
        {{0, 0, 2, 16, 0, 0}, "RGB 16-bit"},
        {{0, 0, 3, 1, 0, 2}, "palette 1-bit"},
        {{0, 0, 3, 2, 1, 3}, "palette 2-bit interlaced"},
        {{0, 0, 3, 4, 0, 16}, "palette 4-bit"},
        {{0, 0, 3, 8, 0, 200}, "palette 8-bit short PLTE"},
        {{0, 0, 4, 8, 0, 0}, "grey+alpha 8-bit"},
        {{0, 0, 4, 16, 1, 0}, "grey+alpha 16-bit interlaced"},
        {{0, 0, 6, 8, 0, 0}, "RGBA 8-bit"},
        {{0, 0, 6, 16, 0, 0}, "RGBA 16-bit"},
    };
    uint8_t *exp = malloc((size_t)W * H * 3);
    mae_image im = {0}, part = {0};
    mae_error err;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        png_spec s = cases[c].s;
        s.w = W, s.h = H;
        uint8_t *rows;
        size_t rowbytes = png_rows(&rows, exp, &s, pic, (const uint8_t(*)[3])pal, 11 + c);
        blob b = make_png(&s, rows, rowbytes, (const uint8_t(*)[3])pal, cases[c].name);
        free(rows);
        for (int chans = 1; chans <= 3; chans += 2) {
            int rc = decode(&im, &b, chans, 0, 0, 0, 0, 0, &err);
            CHECK(rc == MAE_OK && im.w == W && im.h == H && im.c == chans, "PNG %s: %s", b.name,
                  err.msg);
            int bad = -1;
            for (int i = 0; rc == MAE_OK && i < W * H && bad < 0; i++) {
                uint8_t e[3];
                memcpy(e, exp + 3 * i, 3);
                if (s.color_type == 3) { /* index past PLTE: PIL's ramp */
                    int v = (pic[3 * i] ^ pic[3 * i + 1]) >> (8 - s.depth);
                    if (v >= s.n_plte) e[0] = e[1] = e[2] = (uint8_t)v;
                }
                if (chans == 1 ? im.px[i] != luma(e) : memcmp(im.px + 3 * i, e, 3) != 0) bad = i;
            }
            CHECK(bad < 0, "PNG %s chans %d: pixel %d differs", b.name, chans, bad);
            /* a region is the same slice */
            rc = decode(&part, &b, chans, 5, 3, 4, 30, 20, &err);
            CHECK(rc == MAE_OK && part.x0 == 3 && part.y0 == 4 && part.w == 27 && part.h == 16 &&
                      part.scale_num == 8 && block_equal(&part, &im, 3, 4, 30, 20),
                  "PNG %s chans %d: region differs (%s)", b.name, chans, err.msg);
        }
        if (c == 5 || c == 10 || c == 13)
            keep[c == 5 ? 0 : c == 10 ? 1 : 2] = b;
        else
            free(b.p);
    }
    free(exp);
    free(pic);
    mae_image_release(&im);
    mae_image_release(&part);
}

/* ------------------------------------------------------------------ BMP */

typedef struct bmp_case {
    bmp_spec s;
    const char *name;
} bmp_case;

static uint8_t scale_to8(uint32_t v, uint32_t mask) {
    if (!mask) return 0;
    while (!(mask & 1)) mask >>= 1, v >>= 1;
    v &= mask;
    int n = 0;
    while (mask >> n) n++;
    if (n > 8) return (uint8_t)(v >> (n - 8));
    return (uint8_t)(v * 255 / mask);
}

static void test_bmp_values(blob *keep) {
    const int W = 23, H = 17;
    uint8_t *pic = make_picture(W, H, 4);
    uint8_t pal[256][3];
    uint64_t seed = 9;
    for (int i = 0; i < 256; i++)
        for (int k = 0; k < 3; k++) pal[i][k] = (uint8_t)rng_next(&seed);
    static const bmp_case cases[] = {
        {{0, 0, 1, 40, 0, 0, 2, {0}}, "1-bit"},
        {{0, 0, 4, 40, 1, 0, 16, {0}}, "4-bit top-down"},
        {{0, 0, 8, 40, 0, 0, 256, {0}}, "8-bit"},
        {{0, 0, 8, 124, 0, 0, 100, {0}}, "8-bit V5 short palette"},
        {{0, 0, 8, 12, 0, 0, 256, {0}}, "8-bit OS/2 core"},
        {{0, 0, 16, 40, 0, 0, 0, {0x7C00, 0x3E0, 0x1F}}, "16-bit 555"},
        {{0, 0, 16, 40, 1, 3, 0, {0xF800, 0x7E0, 0x1F}}, "16-bit 565 bitfields top-down"},
        {{0, 0, 16, 108, 0, 3, 0, {0xF00, 0xF0, 0xF}}, "16-bit 444 V4 bitfields"},
        {{0, 0, 24, 40, 0, 0, 0, {0xFF0000, 0xFF00, 0xFF}}, "24-bit"},
        {{0, 0, 24, 124, 1, 0, 0, {0xFF0000, 0xFF00, 0xFF}}, "24-bit V5 top-down"},
        {{0, 0, 32, 40, 0, 0, 0, {0xFF0000, 0xFF00, 0xFF}}, "32-bit BGRX"},
        {{0, 0, 32, 124, 0, 3, 0, {0xFF, 0xFF00, 0xFF0000}}, "32-bit RGBA bitfields V5"},
        {{0, 0, 32, 56, 0, 3, 0, {0x3FF00000, 0xFFC00, 0x3FF}}, "32-bit 10-10-10 V3"},
    };
    uint32_t *vals = malloc(sizeof(uint32_t) * W * H);
    mae_image im = {0}, part = {0};
    mae_error err;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        bmp_spec s = cases[c].s;
        s.w = W, s.h = H;
        for (int i = 0; i < W * H; i++) {
            const uint8_t *q = pic + 3 * i;
            if (s.bits <= 8)
                vals[i] = (uint32_t)((q[0] ^ q[2]) >> (8 - s.bits));
            else {
                vals[i] = s.bits == 32 ? 0xC0000000u & ~(s.mask[0] | s.mask[1] | s.mask[2]) : 0;
                for (int k = 0; k < 3; k++) { /* spread the 8-bit value over the mask */
                    uint32_t m = s.mask[k], sh = 0, n = 0;
                    while (!((m >> sh) & 1)) sh++;
                    while ((m >> (sh + n)) & 1) n++;
                    uint32_t v = n >= 8 ? (uint32_t)q[k] << (n - 8) | (q[k] & ((1u << (n - 8)) - 1))
                                        : (uint32_t)q[k] >> (8 - n);
                    vals[i] |= v << sh;
                }
            }
        }
        blob b = make_bmp(&s, vals, (const uint8_t(*)[3])pal, cases[c].name);
        for (int chans = 1; chans <= 3; chans += 2) {
            int rc = decode(&im, &b, chans, 0, 0, 0, 0, 0, &err);
            CHECK(rc == MAE_OK && im.w == W && im.h == H, "BMP %s: %s", b.name, err.msg);
            int bad = -1;
            for (int i = 0; rc == MAE_OK && i < W * H && bad < 0; i++) {
                uint8_t e[3];
                if (s.bits <= 8) {
                    if ((int)vals[i] < s.colors)
                        memcpy(e, pal[vals[i]], 3);
                    else
                        e[0] = e[1] = e[2] = (uint8_t)vals[i]; /* PIL's grey ramp */
                } else {
                    for (int k = 0; k < 3; k++) e[k] = scale_to8(vals[i], s.mask[k]);
                }
                if (chans == 1 ? im.px[i] != luma(e) : memcmp(im.px + 3 * i, e, 3) != 0) bad = i;
            }
            CHECK(bad < 0, "BMP %s chans %d: pixel %d differs", b.name, chans, bad);
            rc = decode(&part, &b, chans, 2, 1, 2, 20, 15, &err);
            CHECK(rc == MAE_OK && part.x0 == 1 && part.y0 == 2 && part.w == 19 && part.h == 13 &&
                      block_equal(&part, &im, 1, 2, 20, 15),
                  "BMP %s chans %d: region differs (%s)", b.name, chans, err.msg);
        }
        if (c == 1 || c == 6 || c == 10)
            keep[c == 1 ? 0 : c == 6 ? 1 : 2] = b;
        else
            free(b.p);
    }
    free(vals);
    free(pic);
    mae_image_release(&im);
    mae_image_release(&part);
}

/* RLE, absurd sizes, offsets and palettes outside the file. */
static void test_bmp_bad(void) {
    uint32_t vals[16] = {0};
    uint8_t pal[256][3] = {{0}};
    bmp_spec s = {4, 4, 8, 40, 0, 0, 256, {0}};
    blob b = make_bmp(&s, vals, (const uint8_t(*)[3])pal, "bmp");
    uint8_t *c = malloc(b.n);
#define MUTATE(expr, want, what)                                                                   \
    do {                                                                                           \
        memcpy(c, b.p, b.n);                                                                       \
        expr;                                                                                      \
        expect_data_error(c, b.n, want, what);                                                     \
    } while (0)
    MUTATE(put_le32(c + 30, 1), "RLE8", "BMP RLE8");
    MUTATE(put_le32(c + 30, 2), "RLE4", "BMP RLE4");
    MUTATE(put_le32(c + 30, 4), "JPEG", "BMP embedded JPEG");
    MUTATE(put_le32(c + 30, 9), "compression", "BMP compression 9");
    MUTATE(put_le32(c + 10, 0xFFFFFF00u), "truncated BMP pixel data", "BMP offset past the end");
    MUTATE(put_le32(c + 10, (uint32_t)b.n - 4), "truncated BMP pixel data", "BMP offset near end");
    MUTATE(put_le32(c + 14, 0x7FFFFFFF), "header size", "BMP header size huge");
    MUTATE(put_le32(c + 14, 41), "header size", "BMP header size 41");
    MUTATE(put_le32(c + 18, 1u << 30), "too large", "BMP width 2^30");
    MUTATE((put_le32(c + 18, 1u << 15), put_le32(c + 22, 1u << 15)), "too large", "BMP 32768^2");
    MUTATE(put_le32(c + 18, 0), "zero dimension", "BMP width 0");
    MUTATE(put_le32(c + 22, 0x80000000u), "height", "BMP height INT_MIN");
    MUTATE(put_le32(c + 18, 0xFFFFFFF0u), "negative width", "BMP width < 0");
    MUTATE(put_le32(c + 18, 1000), "truncated BMP pixel data", "BMP width 1000");
    MUTATE(put_le16(c + 28, 2), "bit depth", "BMP 2-bit");
    MUTATE(put_le16(c + 28, 64), "bit depth", "BMP 64-bit");
    MUTATE(put_le32(c + 46, 70000), "palette", "BMP 70000 colours");
    MUTATE((put_le32(c + 46, 60000), put_le32(c + 10, 0)), "truncated BMP",
           "BMP palette past the end");
    MUTATE(put_le32(c + 30, 3), "bit fields", "BMP 8-bit bitfields");
    expect_data_error(b.p, 30, "truncated BMP header", "BMP header cut");
    free(c);
    free(b.p);
    /* bitfields: masks past the end, non-contiguous mask */
    uint32_t v16[4] = {0};
    bmp_spec f = {2, 2, 16, 40, 0, 3, 0, {0xF800, 0x7E0, 0x1F}};
    b = make_bmp(&f, v16, NULL, "bmp16");
    expect_data_error(b.p, 60, "truncated BMP header", "BMP masks cut");
    put_le32(b.p + 54, 0xF0F0);
    expect_data_error(b.p, b.n, "mask", "BMP non-contiguous mask");
    free(b.p);
#undef MUTATE
}

/* ------------------------------------------------------------------ WebP */

static void test_webp(blob *keep) {
#ifdef MAE_HAVE_WEBP
    const int W = 45, H = 31;
    uint8_t *pic = make_picture(W, H, 6);
    uint8_t *out = NULL;
    size_t n = WebPEncodeLosslessRGB(pic, W, H, W * 3, &out);
    CHECK(n > 0, "WebP lossless encode failed");
    blob b = {out, n, "WebP lossless"};
    mae_image im = {0}, part = {0};
    mae_error err;
    int rc = decode(&im, &b, 3, 0, 0, 0, 0, 0, &err);
    CHECK(rc == MAE_OK && im.w == W && im.h == H && !memcmp(im.px, pic, (size_t)W * H * 3),
          "WebP lossless: %s", err.msg);
    rc = decode(&part, &b, 1, 3, 5, 6, 40, 30, &err);
    int same = rc == MAE_OK && part.x0 == 5 && part.y0 == 6 && part.w == 35 && part.h == 24;
    for (int y = 6; same && y < 30; y++)
        for (int x = 5; same && x < 40; x++) same = *at(&part, x, y) == luma(pic + 3 * (y * W + x));
    CHECK(same, "WebP lossless region chans 1: %s", err.msg);
    keep[0] = b;
    out = NULL;
    n = WebPEncodeRGB(pic, W, H, W * 3, 90, &out);
    blob l = {out, n, "WebP lossy"};
    rc = decode(&im, &l, 3, 0, 0, 0, 0, 0, &err);
    int w2 = 0, h2 = 0;
    uint8_t *ref = WebPDecodeRGB(l.p, l.n, &w2, &h2); /* libwebp's defaults, as PIL */
    CHECK(rc == MAE_OK && ref && w2 == W && h2 == H && !memcmp(im.px, ref, (size_t)W * H * 3),
          "WebP lossy differs from WebPDecodeRGB: %s", err.msg);
    WebPFree(ref);
    keep[1] = l;
    mae_image_release(&im);
    mae_image_release(&part);
    free(pic);
#else
    (void)keep;
    expect_data_error((const uint8_t *)"RIFF\x24\0\0\0WEBPVP8L", 16, "not built in", "WebP");
#endif
}

/* ------------------------------------------------------------------ bad data */

/* Every prefix shorter than must_fail_below fails with MAE_ERR_DATA; longer ones may pass. */
static void test_truncations(const blob *b, size_t must_fail_below) {
    mae_image im = {0};
    mae_error err;
    size_t step = b->n > 3000 ? b->n / 1500 : 1;
    int bad = 0;
    for (size_t cut = 0; cut < b->n; cut += (cut < 64 || b->n - cut < 64) ? 1 : step) {
        blob t = {malloc(cut ? cut : 1), cut, b->name};
        memcpy(t.p, b->p, cut);
        for (int k = 0; k < 2; k++) {
            int rc = k ? decode(&im, &t, 1, 4, 0, 0, 0, 0, &err)
                       : decode(&im, &t, 3, 0, 0, 0, 0, 0, &err);
            if (cut < must_fail_below && (rc != MAE_ERR_DATA || !err.msg[0]) && bad++ < 3)
                CHECK(0, "%s cut at %zu of %zu: rc %d (%s)", b->name, cut, b->n, rc, err.msg);
            if (rc != MAE_OK && rc != MAE_ERR_DATA)
                CHECK(0, "%s cut at %zu: rc %d", b->name, cut, rc);
        }
        free(t.p);
    }
    mae_image_release(&im);
}

/* Hundreds of copies with a few random bytes changed: MAE_OK or MAE_ERR_DATA, never a crash. */
static void test_fuzz(const blob *b, int copies, uint64_t seed) {
    mae_image im = {0};
    mae_error err;
    uint8_t *c = malloc(b->n);
    int ok = 0;
    for (int t = 0; t < copies; t++) {
        memcpy(c, b->p, b->n);
        int nmut = 1 + rng_int(&seed, 8);
        for (int m = 0; m < nmut; m++) {
            size_t pos = (size_t)rng_int(&seed, (int)b->n);
            if (t % 4 == 0 && pos > 64) pos = (size_t)rng_int(&seed, 64); /* the headers */
            c[pos] = t % 3 == 0 ? (uint8_t)(c[pos] ^ (1u << rng_int(&seed, 8)))
                                : (uint8_t)rng_next(&seed);
        }
        blob f = {c, b->n, b->name};
        int rc = t & 1 ? decode(&im, &f, 3, 0, 0, 0, 0, 0, &err)
                       : decode(&im, &f, 1 + 2 * (t % 3 == 0), 1 + t % 8, 3, 2, 19, 14, &err);
        if (!(t & 1) && rc == MAE_ERR && strstr(err.msg, "region"))
            continue; /* the mutated size no longer holds the region: a caller error */
        CHECK(rc == MAE_OK || rc == MAE_ERR_DATA, "%s mutation %d: rc %d (%s)", b->name, t, rc,
              err.msg);
        CHECK(rc == MAE_OK || err.msg[0], "%s mutation %d: empty message", b->name, t);
        ok += rc == MAE_OK;
        mae_image_info info;
        rc = mae_image_probe(c, b->n, &info, &err);
        CHECK(rc == MAE_OK || rc == MAE_ERR_DATA, "%s mutation %d: probe rc %d", b->name, t, rc);
    }
    printf("  fuzz %-22s %d copies, %d decoded\n", b->name, copies, ok);
    free(c);
    mae_image_release(&im);
}

/* Headers that claim absurd sizes, with valid checksums. */
static void test_absurd_sizes(void) {
    /* JPEG: SOF0 of 60000 x 60000 (libjpeg itself refuses sides above 65500) */
    uint8_t pic[48 * 3] = {0};
    jpeg_spec s = {16, 3, 3, JCS_YCbCr, 2, 2, 1, 1, 75, 0, 0, 0};
    blob b = make_jpeg(&s, pic, "jpeg");
    for (size_t i = 2; i + 9 < b.n; i++)
        if (b.p[i] == 0xFF && b.p[i + 1] == 0xC0) {
            uint8_t side[4] = {0xEA, 0x60, 0xEA, 0x60};
            memcpy(b.p + i + 5, side, 4);
            break;
        }
    expect_data_error(b.p, b.n, "too large", "JPEG 60000x60000");
    free(b.p);
    /* PNG: IHDR of 100000 x 100000 with a correct CRC */
    uint8_t rows[4] = {0};
    png_spec ps = {2, 2, 0, 8, 0, 0};
    b = make_png(&ps, rows, 2, NULL, "png");
    b.p[16] = 0, b.p[17] = 1, b.p[18] = 0x86, b.p[19] = 0xA0; /* 100000, big-endian */
    memcpy(b.p + 20, b.p + 16, 4);
    uLong crc = crc32(0, b.p + 12, 17);
    for (int k = 0; k < 4; k++) b.p[29 + k] = (uint8_t)(crc >> (24 - 8 * k));
    expect_data_error(b.p, b.n, "too large", "PNG 100000x100000");
    memset(b.p + 16, 0, 4);
    crc = crc32(0, b.p + 12, 17);
    for (int k = 0; k < 4; k++) b.p[29 + k] = (uint8_t)(crc >> (24 - 8 * k));
    expect_data_error(b.p, b.n, NULL, "PNG width 0");
    free(b.p);
}

/* ------------------------------------------------------------------ API behaviour */

static void test_api(const blob *jpg) {
    mae_image im = {0};
    mae_error err;
    int rc = decode(&im, jpg, 3, 0, 0, 0, 0, 0, &err);
    CHECK(rc == MAE_OK, "%s", err.msg);
    void *p = im.pix.p;
    size_t cap = im.pix.cap;
    rc = decode(&im, jpg, 3, 4, 2, 2, 10, 9, &err);
    rc |= decode(&im, jpg, 1, 0, 0, 0, 0, 0, &err);
    rc |= decode(&im, jpg, 3, 0, 0, 0, 0, 0, &err);
    CHECK(rc == MAE_OK && im.pix.p == p && im.pix.cap == cap, "buffers were reallocated");
    /* regions outside the image are caller errors (MAE_ERR), not bad data */
    mae_image_info info;
    CHECK(mae_image_probe(jpg->p, jpg->n, &info, &err) == MAE_OK, "%s", err.msg);
    rc = decode(&im, jpg, 3, 0, 0, 0, info.width + 1, 1, &err);
    CHECK(rc == MAE_ERR && strstr(err.msg, "region"), "region past the edge: rc %d %s", rc,
          err.msg);
    rc = decode(&im, jpg, 3, 0, 5, 5, 5, 9, &err);
    CHECK(rc == MAE_ERR && im.px == NULL, "empty region: rc %d", rc);
    rc = decode(&im, jpg, 3, 0, -1, 0, 3, 3, &err);
    CHECK(rc == MAE_ERR, "negative region: rc %d", rc);
    mae_image_release(&im);
    CHECK(im.px == NULL && im.pix.p == NULL && im.tmp.p == NULL, "release left buffers");
}

/* Decoding concurrently in several threads gives the same pixels (no shared state). */
static void test_threads(const blob *files, int nfiles) {
    enum { T = 8 };
    uint64_t sums[T][2] = {{0}};
#pragma omp parallel for num_threads(4) schedule(dynamic)
    for (int t = 0; t < T; t++) {
        mae_image im = {0};
        mae_error err;
        for (int r = 0; r < 2; r++) {
            uint64_t h = 1469598103934665603ull;
            for (int f = 0; f < nfiles; f++) {
                if (decode(&im, &files[f], 3, 0, 0, 0, 0, 0, &err) != MAE_OK) continue;
                for (size_t i = 0; i < (size_t)im.w * im.h * 3; i++)
                    h = (h ^ im.px[i]) * 1099511628211ull;
            }
            sums[t][r] = h;
        }
        mae_image_release(&im);
    }
    int same = 1;
    for (int t = 0; t < T; t++) same &= sums[t][0] == sums[0][0] && sums[t][1] == sums[0][0];
    CHECK(same, "concurrent decodes differ");
}

int main(void) {
    test_not_images();
    test_jpeg_values();
    test_jpeg_regions();
    blob png[3] = {{0}}, bmp[3] = {{0}}, webp[2] = {{0}};
    test_png_values(png);
    test_bmp_values(bmp);
    test_bmp_bad();
    test_webp(webp);
    test_absurd_sizes();

    /* files for truncation and corruption */
    const int W = 48, H = 40;
    uint8_t *pic = make_picture(W, H, 8);
    jpeg_spec base = {W, H, 3, JCS_YCbCr, 2, 2, 1, 1, 90, 0, 0, 0};
    jpeg_spec prog = {W, H, 3, JCS_YCbCr, 2, 1, 1, 1, 90, 1, 0, 0};
    jpeg_spec cmyk = {W, H / 3, 4, JCS_YCCK, 2, 2, 1, 1, 90, 0, 0, 0};
    blob files[16];
    int nf = 0;
    files[nf++] = make_jpeg(&base, pic, "JPEG baseline 4:2:0");
    files[nf++] = make_jpeg(&prog, pic, "JPEG progressive 4:2:2");
    files[nf++] = make_jpeg(&cmyk, pic, "JPEG YCCK");
    test_api(&files[0]);
    for (int k = 0; k < 3; k++) files[nf++] = png[k];
    for (int k = 0; k < 3; k++) files[nf++] = bmp[k];
    for (int k = 0; k < 2 && webp[k].p; k++) files[nf++] = webp[k];
    test_threads(files, nf);
    for (int f = 0; f < nf; f++) {
        const blob *b = &files[f];
        size_t fail_below = b->n;                    /* BMP and WebP: every cut fails */
        if (b->p[0] == 0xFF) fail_below = b->n - 2;  /* JPEG: the EOI marker may go */
        if (b->p[0] == 0x89) fail_below = b->n - 16; /* PNG: IEND and the last CRC may go */
        if (b->p[0] == 'B') fail_below = b->n - 3;   /* BMP: the last row's padding may go */
        test_truncations(b, fail_below);
        test_fuzz(b, 400, 1000 + f);
    }
    for (int f = 0; f < nf; f++) {
        if (f < 3) free(files[f].p);
#ifdef MAE_HAVE_WEBP
        else if (files[f].p[0] == 'R')
            WebPFree(files[f].p);
#endif
        else
            free(files[f].p);
    }
    free(pic);
    return check_summary("test_image");
}
