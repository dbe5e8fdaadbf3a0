/* png_dec.c - PNG decoding through libspng, converted as PIL 9.4's Image.open(f).convert("RGB")
 * / .convert("L") does:
 *   - alpha (RGBA, gray+alpha, tRNS) is dropped, never composited;
 *   - palette indices are looked up; an index past the end of PLTE gives (i, i, i), as in PIL,
 *     whose palettes start as a grey ramp;
 *   - 1/2/4-bit grey is scaled to 0..255 (x 255, 85, 17);
 *   - 16-bit samples keep their high byte (v >> 8). PIL does that for 16-bit RGB(A) and LA, but
 *     opens 16-bit grey as mode "I" and then clips it (values >= 255 become 255), a PIL quirk we
 *     deliberately do not copy: 16-bit grey also gives v >> 8 here;
 *   - gamma, sBIT and colour profiles are ignored (as PIL).
 * libspng hands over rows in the PNG's own layout (SPNG_FMT_RAW: packed, big-endian) and we
 * convert each row of the wanted region straight into the output. A non-interlaced image is
 * decoded row by row and stops after the region's last row; an interlaced one is decoded whole.
 */
#include <string.h>

#include <spng.h>

#include "image_codec.h"

#define PNG_CHUNK_LIMIT ((size_t)64 << 20) /* decompressed text/ICC chunk data kept by libspng */

/* The layout of a raw row and what its pixels mean. */
typedef struct png_layout {
    int W, H, color_type, depth, interlaced;
    int ncolor;      /* colour samples per pixel: 1 (grey, palette) or 3 (RGB) */
    size_t bpp;      /* bytes per pixel (depth >= 8) */
    size_t sbytes;   /* bytes per sample: 1 or 2 (16-bit: the first, big-endian, is the high) */
    size_t rowbytes; /* bytes of one raw row */
    uint8_t pal[256][3], pal_l[256];
} png_layout;

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int png_failure(int e, mae_error *err) {
    const char *what = spng_strerror(e);
    if (e == SPNG_IO_EOF || e == SPNG_EOF || e == SPNG_EIDAT_TOO_SHORT)
        return mae_img_fail(err, "truncated PNG data (%s)", what);
    return mae_img_fail(err, "corrupt PNG data (%s)", what);
}

/* Gives the width and height from IHDR, which must be the first chunk, at a fixed place. */
int mae_png_probe(mae_image_info *info, const uint8_t *buf, size_t len, mae_error *err) {
    if (len < 24) return mae_img_fail(err, "truncated PNG header (%zu bytes)", len);
    if (memcmp(buf + 12, "IHDR", 4) != 0)
        return mae_img_fail(err, "corrupt PNG header (first chunk is not IHDR)");
    int rc = mae_img_check_dims(be32(buf + 16), be32(buf + 20), "PNG", err);
    if (rc != MAE_OK) return rc;
    info->width = (int)be32(buf + 16);
    info->height = (int)be32(buf + 20);
    return MAE_OK;
}

/* PIL's palette: PLTE's entries, then the grey ramp it starts from. */
static int png_palette(png_layout *L, spng_ctx *ctx, mae_error *err) {
    struct spng_plte plte;
    int e = spng_get_plte(ctx, &plte);
    if (e)
        return e == SPNG_ECHUNKAVAIL ? mae_img_fail(err, "corrupt PNG data (palette image "
                                                         "without a PLTE chunk)")
                                     : png_failure(e, err);
    for (unsigned i = 0; i < 256; i++) {
        const struct spng_plte_entry *p = &plte.entries[i];
        uint8_t r = i < plte.n_entries ? p->red : (uint8_t)i;
        uint8_t g = i < plte.n_entries ? p->green : (uint8_t)i;
        uint8_t b = i < plte.n_entries ? p->blue : (uint8_t)i;
        L->pal[i][0] = r;
        L->pal[i][1] = g;
        L->pal[i][2] = b;
        L->pal_l[i] = mae_img_luma(r, g, b);
    }
    return MAE_OK;
}

/* Reads IHDR (and PLTE) and fills the layout; checks the size against the bomb guard. */
static int png_open(png_layout *L, spng_ctx *ctx, const uint8_t *buf, size_t len, mae_error *err) {
    struct spng_ihdr ihdr;
    spng_set_png_buffer(ctx, buf, len);
    spng_set_chunk_limits(ctx, PNG_CHUNK_LIMIT, PNG_CHUNK_LIMIT);
    int e = spng_get_ihdr(ctx, &ihdr);
    if (e) return png_failure(e, err);
    int rc = mae_img_check_dims(ihdr.width, ihdr.height, "PNG", err);
    if (rc != MAE_OK) return rc;
    memset(L, 0, sizeof *L);
    L->W = (int)ihdr.width;
    L->H = (int)ihdr.height;
    L->color_type = ihdr.color_type;
    L->depth = ihdr.bit_depth;
    L->interlaced = ihdr.interlace_method != 0;
    L->sbytes = ihdr.bit_depth == 16 ? 2 : 1;
    static const int samples[7] = {1, 0, 3, 1, 2, 0, 4};              /* per colour type */
    MAE_ASSERT(ihdr.color_type <= 6 && samples[ihdr.color_type] > 0); /* libspng checked */
    L->bpp = (size_t)samples[ihdr.color_type] * L->sbytes;
    L->ncolor = ihdr.color_type == SPNG_COLOR_TYPE_TRUECOLOR ||
                        ihdr.color_type == SPNG_COLOR_TYPE_TRUECOLOR_ALPHA
                    ? 3
                    : 1;
    size_t size = 0;
    e = spng_decoded_image_size(ctx, SPNG_FMT_RAW, &size);
    if (e) return png_failure(e, err);
    L->rowbytes = size / ihdr.height;
    if (ihdr.color_type == SPNG_COLOR_TYPE_INDEXED) return png_palette(L, ctx, err);
    return MAE_OK;
}

/* Sample x of a packed row of depth 1, 2 or 4 (or 8). */
static inline unsigned packed(const uint8_t *row, int x, int depth) {
    size_t bit = (size_t)x * (size_t)depth;
    return (row[bit >> 3] >> (8 - depth - (int)(bit & 7))) & ((1u << depth) - 1);
}

/* Converts pixels [x0, x1) of a raw row into dst (c channels). */
static void png_convert_row(uint8_t *dst, int c, const uint8_t *row, int x0, int x1,
                            const png_layout *L) {
    int d = L->depth;
    if (L->color_type == SPNG_COLOR_TYPE_INDEXED && c == 1) {
        for (int x = x0; x < x1; x++) *dst++ = L->pal_l[packed(row, x, d)];
    } else if (L->color_type == SPNG_COLOR_TYPE_INDEXED) {
        for (int x = x0; x < x1; x++, dst += 3) memcpy(dst, L->pal[packed(row, x, d)], 3);
    } else if (d < 8) { /* grey 1/2/4-bit */
        unsigned scale = 255u / ((1u << d) - 1);
        for (int x = x0; x < x1; x++) {
            uint8_t v = (uint8_t)(packed(row, x, d) * scale);
            for (int k = 0; k < c; k++) *dst++ = v;
        }
    } else if (L->ncolor == 1) { /* grey or grey+alpha, 8/16-bit: the first (high) byte */
        const uint8_t *p = row + (size_t)x0 * L->bpp;
        if (c == 1 && L->bpp == 1) {
            memcpy(dst, p, (size_t)(x1 - x0));
        } else {
            for (int x = x0; x < x1; x++, p += L->bpp)
                for (int k = 0; k < c; k++) *dst++ = p[0];
        }
    } else { /* RGB or RGBA, 8/16-bit */
        const uint8_t *p = row + (size_t)x0 * L->bpp;
        size_t s = L->sbytes;
        if (c == 3 && L->bpp == 3) {
            memcpy(dst, p, (size_t)(x1 - x0) * 3);
        } else if (c == 3) {
            for (int x = x0; x < x1; x++, p += L->bpp, dst += 3) {
                dst[0] = p[0];
                dst[1] = p[s];
                dst[2] = p[2 * s];
            }
        } else {
            for (int x = x0; x < x1; x++, p += L->bpp) *dst++ = mae_img_luma(p[0], p[s], p[2 * s]);
        }
    }
}

/* Whether a raw row is already the output row (8-bit RGB to RGB, 8-bit grey to L). */
static int png_is_direct(const png_layout *L, int c) {
    return L->depth == 8 && ((c == 3 && L->color_type == SPNG_COLOR_TYPE_TRUECOLOR) ||
                             (c == 1 && L->color_type == SPNG_COLOR_TYPE_GRAYSCALE));
}

/* Non-interlaced: decodes rows 0 .. y1-1 one at a time and converts those of the region. */
static int png_decode_rows(mae_image *out, spng_ctx *ctx, const png_layout *L, const mae_img_box *b,
                           mae_error *err) {
    int e = spng_decode_image(ctx, NULL, 0, SPNG_FMT_RAW, SPNG_DECODE_PROGRESSIVE);
    if (e) return png_failure(e, err);
    size_t stride = (size_t)out->w * (size_t)out->c;
    int direct = png_is_direct(L, out->c) && b->x0 == 0 && b->x1 == L->W;
    uint8_t *tmp = mae_buf_reserve(&out->tmp, L->rowbytes);
    for (int y = 0; y < b->y1; y++) {
        int keep = y >= b->y0;
        uint8_t *row = keep && direct ? out->px + (size_t)(y - b->y0) * stride : tmp;
        e = spng_decode_row(ctx, row, L->rowbytes);
        if (e && !(e == SPNG_EOI && y == L->H - 1)) return png_failure(e, err);
        if (keep && !direct)
            png_convert_row(out->px + (size_t)(y - b->y0) * stride, out->c, row, b->x0, b->x1, L);
    }
    return MAE_OK;
}

/* Interlaced: decodes the whole image (Adam7 passes cover all rows), then converts. */
static int png_decode_interlaced(mae_image *out, spng_ctx *ctx, const png_layout *L,
                                 const mae_img_box *b, mae_error *err) {
    size_t size = L->rowbytes * (size_t)L->H;
    uint8_t *img = mae_buf_reserve(&out->tmp, size);
    memset(img, 0, size); /* libspng ORs sub-byte samples of the passes into place */
    int e = spng_decode_image(ctx, img, size, SPNG_FMT_RAW, 0);
    if (e) return png_failure(e, err);
    size_t stride = (size_t)out->w * (size_t)out->c;
    for (int y = b->y0; y < b->y1; y++)
        png_convert_row(out->px + (size_t)(y - b->y0) * stride, out->c,
                        img + (size_t)y * L->rowbytes, b->x0, b->x1, L);
    return MAE_OK;
}

static int png_run(mae_image *out, spng_ctx *ctx, const uint8_t *buf, size_t len,
                   const mae_decode_req *req, mae_error *err) {
    png_layout L;
    int rc = png_open(&L, ctx, buf, len, err);
    if (rc != MAE_OK) return rc;
    mae_img_box b;
    rc = mae_img_box_from_req(&b, req, L.W, L.H, err);
    if (rc != MAE_OK) return rc;
    mae_img_prepare(out, b.x1 - b.x0, b.y1 - b.y0, req->chans, L.W, L.H, b.x0, b.y0, 8);
    if (L.interlaced) return png_decode_interlaced(out, ctx, &L, &b, err);
    return png_decode_rows(out, ctx, &L, &b, err);
}

int mae_png_decode(mae_image *out, const uint8_t *buf, size_t len, const mae_decode_req *req,
                   mae_error *err) {
    spng_ctx *ctx = spng_ctx_new(0);
    MAE_ASSERT(ctx); /* only fails when out of memory */
    int rc = png_run(out, ctx, buf, len, req, err);
    spng_ctx_free(ctx);
    return rc;
}
