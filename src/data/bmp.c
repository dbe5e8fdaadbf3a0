/* bmp.c - Windows BMP, parsed here, with the pixel values PIL 9.4's BmpImagePlugin gives:
 *   - headers: OS/2 1.x core (12 bytes), BITMAPINFOHEADER (40), V2/V3 (52/56), OS/2 2.x (64),
 *     V4 (108), V5 (124); bottom-up (height > 0) and top-down (height < 0);
 *   - 1/4/8-bit palettes (BGRX entries; BGR in the core header); an index past the palette
 *     gives (i, i, i) as PIL's grey-ramp palette does; 24-bit BGR; 16-bit 5-5-5 and 32-bit BGRX
 *     by default, any contiguous masks with BI_BITFIELDS / BI_ALPHABITFIELDS (PIL knows only
 *     the common ones); an n-bit channel becomes v * 255 / (2^n - 1) (PIL's formula for 5 and 6
 *     bits), a channel wider than 8 bits keeps its top 8; alpha is dropped;
 *   - like PIL: the pixel offset 0 means "right after the palette", and an offset pointing
 *     right after the header of a palette image skips the palette;
 *   - RLE8/RLE4, embedded JPEG/PNG and 2/64-bit pixels are refused (MAE_ERR_DATA).
 * Every size and offset in the file is checked against the buffer before it is used.
 */
#include <string.h>

#include "image_codec.h"

enum {
    BI_RGB = 0,
    BI_RLE8 = 1,
    BI_RLE4 = 2,
    BI_BITFIELDS = 3,
    BI_JPEG = 4,
    BI_PNG = 5,
    BI_ALPHABITFIELDS = 6
};

/* One colour channel of a 16/24/32-bit pixel: ((v >> shift) & max) >> drop, then lut. */
typedef struct bmp_channel {
    int shift, drop;
    uint32_t max;
    uint8_t lut[256];
} bmp_channel;

typedef struct bmp_info {
    int W, H, top_down, bits, compression;
    uint32_t hsize;   /* DIB header size */
    size_t offset;    /* of the pixel data */
    size_t stride;    /* bytes per row (padded to 4) */
    uint32_t mask[3]; /* r, g, b (16/24/32-bit) */
    int bgr;          /* 24/32-bit with the masks 0xFF0000, 0xFF00, 0xFF: plain bytes */
    bmp_channel ch[3];
    uint8_t pal[256][3], pal_l[256];
} bmp_info;

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ------------------------------------------------------------------ header */

static const char *compression_name(uint32_t c) {
    switch (c) {
    case BI_RLE8: return "RLE8";
    case BI_RLE4: return "RLE4";
    case BI_JPEG: return "embedded JPEG";
    case BI_PNG: return "embedded PNG";
    default: return NULL;
    }
}

/* Size, depth and compression from the DIB header (14 + hsize bytes are present). */
static int bmp_read_dib(bmp_info *bi, const uint8_t *h, mae_error *err) {
    if (bi->hsize == 12) { /* OS/2 1.x: unsigned 16-bit sizes, always bottom-up */
        bi->W = (int)le16(h + 4);
        bi->H = (int)le16(h + 6);
        bi->bits = (int)le16(h + 10);
        bi->compression = BI_RGB;
    } else {
        int32_t w = (int32_t)le32(h + 4), hh = (int32_t)le32(h + 8);
        if (w < 0) return mae_img_fail(err, "corrupt BMP header (negative width %d)", (int)w);
        if (hh == INT32_MIN) return mae_img_fail(err, "corrupt BMP header (height %d)", (int)hh);
        bi->W = w;
        bi->H = hh < 0 ? -hh : hh;
        bi->top_down = hh < 0;
        bi->bits = (int)le16(h + 14);
        bi->compression = (int)le32(h + 16);
    }
    int rc = mae_img_check_dims(bi->W, bi->H, "BMP", err);
    if (rc != MAE_OK) return rc;
    if (bi->bits != 1 && bi->bits != 4 && bi->bits != 8 && bi->bits != 16 && bi->bits != 24 &&
        bi->bits != 32)
        return mae_img_fail(err, "unsupported BMP bit depth (%d)", bi->bits);
    const char *cname = compression_name((uint32_t)bi->compression);
    if (cname) return mae_img_fail(err, "unsupported BMP compression (%s)", cname);
    int fields = bi->compression == BI_BITFIELDS || bi->compression == BI_ALPHABITFIELDS;
    if (bi->compression != BI_RGB && !fields)
        return mae_img_fail(err, "unsupported BMP compression (%u)", (unsigned)bi->compression);
    if (fields && bi->bits < 16)
        return mae_img_fail(err, "corrupt BMP header (bit fields with %d bits per pixel)",
                            bi->bits);
    return MAE_OK;
}

/* Builds channel k from its mask; MAE_ERR_DATA for a mask that is not one run of bits. */
static int bmp_channel_init(bmp_channel *c, uint32_t mask, mae_error *err) {
    memset(c, 0, sizeof *c);
    if (mask == 0) return MAE_OK; /* the channel is always 0 */
    while (!((mask >> c->shift) & 1)) c->shift++;
    uint32_t m = mask >> c->shift;
    if (m & (m + 1)) return mae_img_fail(err, "unsupported BMP bit field mask 0x%08x", mask);
    int n = 0;
    while (n < 32 && ((m >> n) & 1)) n++;
    c->max = m;
    c->drop = n > 8 ? n - 8 : 0;
    uint32_t top = m >> c->drop;
    for (uint32_t v = 0; v <= top; v++) c->lut[v] = (uint8_t)(v * 255 / top);
    return MAE_OK;
}

/* The masks of a 16/24/32-bit image (defaults for BI_RGB). After = end of what was read. */
static int bmp_read_masks(bmp_info *bi, const uint8_t *buf, size_t len, size_t *after,
                          mae_error *err) {
    static const uint32_t def16[3] = {0x7C00, 0x3E0, 0x1F}, def32[3] = {0xFF0000, 0xFF00, 0xFF};
    memcpy(bi->mask, bi->bits == 16 ? def16 : def32, sizeof bi->mask);
    if (bi->compression != BI_RGB) {
        size_t at = bi->hsize >= 52 ? 14 + 40 : 14 + bi->hsize; /* in the header, or after it */
        if (at + 12 > len) return mae_img_fail(err, "truncated BMP header (bit field masks)");
        uint32_t m[3] = {le32(buf + at), le32(buf + at + 4), le32(buf + at + 8)};
        if (m[0] | m[1] | m[2]) memcpy(bi->mask, m, sizeof m); /* all zero: PIL's BGRX */
        if (bi->hsize < 52) *after = at + (bi->compression == BI_ALPHABITFIELDS ? 16 : 12);
    }
    for (int k = 0; k < 3; k++) {
        int rc = bmp_channel_init(&bi->ch[k], bi->mask[k], err);
        if (rc != MAE_OK) return rc;
    }
    bi->bgr = bi->bits >= 24 && !memcmp(bi->mask, def32, sizeof def32);
    return MAE_OK;
}

/* The palette of a 1/4/8-bit image, right after the header; PIL's grey ramp past its end. */
static int bmp_read_palette(bmp_info *bi, const uint8_t *buf, size_t len, uint32_t colors,
                            size_t *after, mae_error *err) {
    size_t entry = bi->hsize == 12 ? 3 : 4, at = 14 + bi->hsize;
    size_t n = colors < 256 ? colors : 256;
    if (at + n * entry > len)
        return mae_img_fail(err,
                            "truncated BMP palette (%zu colours at offset %zu, the file "
                            "has %zu bytes)",
                            n, at, len);
    for (size_t i = 0; i < 256; i++) {
        const uint8_t *p = buf + at + i * entry;
        uint8_t r = i < n ? p[2] : (uint8_t)i, g = i < n ? p[1] : (uint8_t)i;
        uint8_t b = i < n ? p[0] : (uint8_t)i;
        bi->pal[i][0] = r;
        bi->pal[i][1] = g;
        bi->pal[i][2] = b;
        bi->pal_l[i] = mae_img_luma(r, g, b);
    }
    *after = at + (size_t)colors * entry;
    return MAE_OK;
}

/* Parses the headers, palette or masks, and checks that the pixel rows lie in the file. */
static int bmp_parse(bmp_info *bi, const uint8_t *buf, size_t len, mae_error *err) {
    memset(bi, 0, sizeof *bi);
    if (len < 18) return mae_img_fail(err, "truncated BMP header (%zu bytes)", len);
    bi->hsize = le32(buf + 14);
    uint32_t hs = bi->hsize;
    if (hs != 12 && hs != 40 && hs != 52 && hs != 56 && hs != 64 && hs != 108 && hs != 124)
        return mae_img_fail(err, "unsupported BMP header size (%u bytes)", (unsigned)hs);
    if (14 + (size_t)hs > len)
        return mae_img_fail(err, "truncated BMP header (%zu bytes, the header needs %u)", len,
                            (unsigned)(14 + hs));
    int rc = bmp_read_dib(bi, buf + 14, err);
    if (rc != MAE_OK) return rc;
    size_t after = 14 + (size_t)hs, offset = le32(buf + 10);
    if (bi->bits <= 8) {
        uint32_t colors = hs == 12 ? 0 : le32(buf + 14 + 32);
        if (colors == 0) colors = 1u << bi->bits;
        if (colors > 65536)
            return mae_img_fail(err, "corrupt BMP header (palette of %u colours)", colors);
        rc = bmp_read_palette(bi, buf, len, colors, &after, err);
        if (offset == 14 + (size_t)hs) offset = after; /* PIL: skip a palette the offset forgot */
    } else {
        rc = bmp_read_masks(bi, buf, len, &after, err);
    }
    if (rc != MAE_OK) return rc;
    bi->offset = offset ? offset : after;
    uint64_t rowbits = (uint64_t)bi->W * (uint64_t)bi->bits;
    bi->stride = (size_t)(((rowbits + 31) >> 3) & ~(uint64_t)3);
    uint64_t need =
        (uint64_t)bi->offset + (uint64_t)bi->stride * (uint64_t)(bi->H - 1) + (rowbits + 7) / 8;
    if (need > len)
        return mae_img_fail(err,
                            "truncated BMP pixel data (%dx%d pixels of %d bits at offset "
                            "%zu need %llu bytes; the file has %zu)",
                            bi->W, bi->H, bi->bits, bi->offset, (unsigned long long)need, len);
    return MAE_OK;
}

int mae_bmp_probe(mae_image_info *info, const uint8_t *buf, size_t len, mae_error *err) {
    bmp_info bi;
    int rc = bmp_parse(&bi, buf, len, err);
    if (rc != MAE_OK) return rc;
    info->width = bi.W;
    info->height = bi.H;
    return MAE_OK;
}

/* ------------------------------------------------------------------ pixels */

static inline uint8_t bmp_chan(const bmp_channel *c, uint32_t v) {
    return c->lut[((v >> c->shift) & c->max) >> c->drop];
}

/* Writes one pixel as RGB or L; returns the next dst. */
static inline uint8_t *bmp_put(uint8_t *dst, int c, uint8_t r, uint8_t g, uint8_t b) {
    if (c == 1) {
        *dst = mae_img_luma(r, g, b);
        return dst + 1;
    }
    dst[0] = r;
    dst[1] = g;
    dst[2] = b;
    return dst + 3;
}

/* Converts pixels [x0, x1) of a file row into dst (c channels). */
static void bmp_convert_row(uint8_t *dst, int c, const uint8_t *row, int x0, int x1,
                            const bmp_info *bi) {
    int bits = bi->bits;
    if (bits <= 8) { /* palette */
        for (int x = x0; x < x1; x++) {
            size_t bit = (size_t)x * (size_t)bits;
            unsigned i = (row[bit >> 3] >> (8 - bits - (int)(bit & 7))) & ((1u << bits) - 1);
            if (c == 1)
                *dst++ = bi->pal_l[i];
            else
                dst = bmp_put(dst, 3, bi->pal[i][0], bi->pal[i][1], bi->pal[i][2]);
        }
    } else if (bi->bgr) { /* 24-bit BGR or 32-bit BGRX: bytes, no masks needed */
        size_t step = (size_t)bits / 8;
        const uint8_t *p = row + (size_t)x0 * step;
        for (int x = x0; x < x1; x++, p += step) dst = bmp_put(dst, c, p[2], p[1], p[0]);
    } else { /* 16/24/32-bit with bit fields */
        size_t step = (size_t)bits / 8;
        const uint8_t *p = row + (size_t)x0 * step;
        for (int x = x0; x < x1; x++, p += step) {
            uint32_t v = bits == 16   ? le16(p)
                         : bits == 24 ? le16(p) | (uint32_t)p[2] << 16
                                      : le32(p);
            dst = bmp_put(dst, c, bmp_chan(&bi->ch[0], v), bmp_chan(&bi->ch[1], v),
                          bmp_chan(&bi->ch[2], v));
        }
    }
}

int mae_bmp_decode(mae_image *out, const uint8_t *buf, size_t len, const mae_decode_req *req,
                   mae_error *err) {
    bmp_info bi;
    int rc = bmp_parse(&bi, buf, len, err);
    if (rc != MAE_OK) return rc;
    mae_img_box b;
    rc = mae_img_box_from_req(&b, req, bi.W, bi.H, err);
    if (rc != MAE_OK) return rc;
    uint8_t *px =
        mae_img_prepare(out, b.x1 - b.x0, b.y1 - b.y0, req->chans, bi.W, bi.H, b.x0, b.y0, 8);
    size_t stride = (size_t)out->w * (size_t)out->c;
    for (int y = b.y0; y < b.y1; y++) {
        size_t fy = (size_t)(bi.top_down ? y : bi.H - 1 - y);
        bmp_convert_row(px + (size_t)(y - b.y0) * stride, req->chans,
                        buf + bi.offset + fy * bi.stride, b.x0, b.x1, &bi);
    }
    return MAE_OK;
}
