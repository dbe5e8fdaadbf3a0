/* jpeg.c - JPEG decoding through libjpeg-turbo, bit-exact with PIL's decoder at full size
 * (libjpeg's defaults: JDCT_ISLOW, fancy upsampling) and with PIL's draft() at scales 1/2, 1/4,
 * 1/8 (the same libjpeg DCT scaling).
 *
 * A region is decoded with jpeg_crop_scanline (columns, widened by libjpeg to iMCU boundaries)
 * and jpeg_skip_scanlines (rows above it), and decoding stops after its last row. Fancy
 * upsampling treats the left and right edges of a cropped strip as image edges, so the strip is
 * widened by JPEG_MARGIN columns on each side (1 is enough for 4:2:0 and 4:2:2; skipped rows
 * need no margin, libjpeg keeps the context rows) and kept wide enough for every component to
 * have more than 2 samples; two rare sampling layouts are not cropped at all (jpeg_crop_ok).
 * Every pixel of the wanted region is then identical to the same pixel of a full decode at the
 * same scale (tests/test_image.c checks 9 sampling layouts, every scale, narrow strips).
 *
 * Errors: libjpeg reports by error_exit (fatal) and emit_message(-1) (warnings: corrupt or
 * truncated data, after which it would carry on with made-up pixels). Both longjmp back here
 * and become MAE_ERR_DATA, except two harmless notes (unknown JFIF revision, unknown Adobe
 * transform code). The function that calls setjmp only receives a pointer to a context struct
 * and modifies no local after it, so nothing is indeterminate after the jump.
 */
#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE and size_t */
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "image_codec.h"

#ifndef JPEG_MARGIN
#define JPEG_MARGIN 2 /* extra decoded columns each side of a cropped region (top comment) */
#endif
#define JPEG_MAX_SCANS 500 /* more scans than this is an attack (each one re-reads the image) */
#define JPEG_ROWS 8        /* rows per jpeg_read_scanlines call */

/* How libjpeg's output becomes ours. */
enum { JPEG_DIRECT, JPEG_RGB_TO_L, JPEG_CMYK };

typedef struct jpeg_guard {
    struct jpeg_error_mgr pub; /* first: libjpeg's cinfo->err points here */
    jmp_buf jump;
    int warning; /* the failure was a warning: corrupt or truncated data */
    int code;    /* libjpeg's message code; -1 for our own scan limit */
    char msg[JMSG_LENGTH_MAX];
} jpeg_guard;

typedef struct jpeg_job {
    struct jpeg_decompress_struct ci;
    jpeg_guard guard;
    struct jpeg_progress_mgr progress;
    const uint8_t *buf;
    size_t len;
    const mae_decode_req *req;
    mae_image *out;
    mae_error *err;
} jpeg_job;

/* ------------------------------------------------------------------ probe */

static uint32_t be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }

/* Walks the marker segments up to the first SOFn (as libjpeg, which uses the first frame). */
int mae_jpeg_probe(mae_image_info *info, const uint8_t *buf, size_t len, mae_error *err) {
    size_t p = 2;
    for (;;) {
        if (p < len && buf[p] != 0xFF)
            return mae_img_fail(err,
                                "corrupt JPEG header (byte %02x at offset %zu where a "
                                "marker should be)",
                                buf[p], p);
        while (p < len && buf[p] == 0xFF) p++; /* fill bytes */
        if (p + 3 > len)
            return mae_img_fail(err, "truncated JPEG header (%zu bytes, no frame header)", len);
        unsigned m = buf[p++];
        if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue; /* no length */
        if (m == 0xD9 || m == 0xDA)
            return mae_img_fail(err,
                                "corrupt JPEG header (no frame header before marker "
                                "0x%02x)",
                                m);
        size_t seg = be16(buf + p);
        if (seg < 2)
            return mae_img_fail(err, "corrupt JPEG header (marker 0x%02x has length %zu)", m, seg);
        int sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
        if (sof) {
            if (p + 7 > len)
                return mae_img_fail(err,
                                    "truncated JPEG header (%zu bytes, inside the frame "
                                    "header)",
                                    len);
            info->height = (int)be16(buf + p + 3);
            info->width = (int)be16(buf + p + 5);
            return mae_img_check_dims(info->width, info->height, "JPEG", err);
        }
        p += seg;
    }
}

/* ------------------------------------------------------------------ libjpeg callbacks */

static void guard_jump(j_common_ptr cinfo, int warning) {
    jpeg_guard *g = (jpeg_guard *)cinfo->err;
    g->warning = warning;
    g->code = g->pub.msg_code;
    g->pub.format_message(cinfo, g->msg);
    longjmp(g->jump, 1);
}

static void on_error_exit(j_common_ptr cinfo) { guard_jump(cinfo, 0); }

static void on_emit_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return; /* trace messages */
    int code = cinfo->err->msg_code;
    /* harmless notes; "N extraneous bytes before marker" too: the pixels are intact (PIL
     * decodes such files, some ImageNet images are like this) */
    if (code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM || code == JWRN_EXTRANEOUS_DATA) return;
    guard_jump(cinfo, 1);
}

static void on_output_message(j_common_ptr cinfo) { (void)cinfo; } /* never print */

/* Called by libjpeg while it consumes input: bounds the work a hostile progressive file with
 * thousands of tiny scans can cause. */
static void on_progress(j_common_ptr cinfo) {
    j_decompress_ptr ci = (j_decompress_ptr)cinfo;
    if (ci->input_scan_number <= JPEG_MAX_SCANS) return;
    jpeg_guard *g = (jpeg_guard *)cinfo->err;
    g->warning = 1;
    g->code = -1;
    snprintf(g->msg, sizeof g->msg, "more than %d scans", JPEG_MAX_SCANS);
    longjmp(g->jump, 1);
}

/* The message for a failure reported through the guard. */
static int jpeg_failure(const jpeg_guard *g, mae_error *err) {
    const char *m = g->msg;
    static const char corrupt[] = "Corrupt JPEG data: ";
    if (strncmp(m, corrupt, sizeof corrupt - 1) == 0) m += sizeof corrupt - 1;
    char text[JMSG_LENGTH_MAX];
    snprintf(text, sizeof text, "%s", m);
    if (text[0] >= 'A' && text[0] <= 'Z' && text[1] >= 'a' && text[1] <= 'z')
        text[0] = (char)(text[0] - 'A' + 'a'); /* "Bogus ..." but not "JPEG ..." */
    if (g->warning && g->code == JWRN_JPEG_EOF)
        return mae_img_fail(err, "truncated JPEG data (%s)", text);
    return mae_img_fail(err, "%s JPEG data (%s)", g->warning ? "corrupt" : "invalid", text);
}

/* ------------------------------------------------------------------ decoding */

/* Chooses libjpeg's output colour space for the wanted channels; returns the conversion we
 * apply afterwards (JPEG_*), or -1 with err filled. libjpeg's own grayscale output of a colour
 * JPEG is its Y channel, which differs from PIL's L of the RGB decode, so that is converted. */
static int jpeg_pick_output(jpeg_job *j) {
    struct jpeg_decompress_struct *ci = &j->ci;
    int chans = j->req->chans;
    switch (ci->jpeg_color_space) {
    case JCS_GRAYSCALE:
        ci->out_color_space = chans == 1 ? JCS_GRAYSCALE : JCS_EXT_RGB;
        return JPEG_DIRECT;
    case JCS_YCbCr:
    case JCS_RGB:
        ci->out_color_space = JCS_EXT_RGB;
        return chans == 3 ? JPEG_DIRECT : JPEG_RGB_TO_L;
    case JCS_CMYK:
    case JCS_YCCK:
        ci->out_color_space = JCS_CMYK; /* libjpeg turns YCCK into CMYK */
        return JPEG_CMYK;
    default:
        mae_img_fail(j->err, "unsupported JPEG colour space (%d components)", ci->num_components);
        return -1;
    }
}

/* Reads rows [first, last) of the (cropped) output into out->px, converting if needed. */
static int jpeg_read_rows(jpeg_job *j, int conv, int first, int last) {
    struct jpeg_decompress_struct *ci = &j->ci;
    mae_image *out = j->out;
    size_t stride = (size_t)out->w * (size_t)out->c;
    size_t in_stride = (size_t)out->w * (size_t)ci->output_components;
    uint8_t *tmp = conv == JPEG_DIRECT ? NULL : mae_buf_reserve(&out->tmp, in_stride * JPEG_ROWS);
    JSAMPROW rows[JPEG_ROWS];
    int y = first;
    while (y < last) {
        int n = last - y < JPEG_ROWS ? last - y : JPEG_ROWS;
        for (int k = 0; k < n; k++)
            rows[k] =
                tmp ? tmp + (size_t)k * in_stride : out->px + (size_t)(y - first + k) * stride;
        int got = (int)jpeg_read_scanlines(ci, rows, (JDIMENSION)n);
        if (got <= 0) return mae_img_fail(j->err, "corrupt JPEG data (no rows decoded)");
        for (int k = 0; tmp && k < got; k++) {
            uint8_t *dst = out->px + (size_t)(y - first + k) * stride;
            if (conv == JPEG_RGB_TO_L)
                mae_img_rgb_to_l(dst, rows[k], out->w);
            else
                mae_img_cmyk_inv_to(dst, out->c, rows[k], out->w);
        }
        y += got;
    }
    return MAE_OK;
}

/* Whether jpeg_crop_scanline gives correct pixels here. libjpeg-turbo 2.1.5 mis-decodes a
 * cropped strip when a component is both IDCT-scaled up (libjpeg does that to save upsampling
 * work) and still upsampled, which happens for 4:1:0 (luma 4x2) and luma 2x4 at scales 2/8 to
 * 7/8: it sets the component's width for the crop without its DCT scaling. Those decode the
 * full width (rows are still skipped). */
static int jpeg_crop_ok(const struct jpeg_decompress_struct *ci) {
    for (int k = 0; k < ci->num_components; k++) {
        const jpeg_component_info *c = &ci->comp_info[k];
        int scaled = c->DCT_scaled_size != ci->min_DCT_scaled_size;
        int upsampled =
            c->h_samp_factor * c->DCT_scaled_size <
                ci->max_h_samp_factor * ci->min_DCT_scaled_size ||
            c->v_samp_factor * c->DCT_scaled_size < ci->max_v_samp_factor * ci->min_DCT_scaled_size;
        if (scaled && upsampled) return 0;
    }
    return 1;
}

/* After jpeg_start_decompress: crops to the wanted columns (plus margins) at the decode scale,
 * skips the rows above the region and reads its rows. */
static int jpeg_decode_region(jpeg_job *j, const mae_img_box *box, int conv) {
    struct jpeg_decompress_struct *ci = &j->ci;
    int s = (int)ci->scale_num, FW = (int)ci->output_width, FH = (int)ci->output_height;
    /* wanted region in scaled pixels: every scaled pixel that overlaps the full-size box */
    int rx0 = (int)((int64_t)box->x0 * s / 8), rx1 = (int)(((int64_t)box->x1 * s + 7) / 8);
    int ry0 = (int)((int64_t)box->y0 * s / 8), ry1 = (int)(((int64_t)box->y1 * s + 7) / 8);
    MAE_ASSERT(rx0 < rx1 && rx1 <= FW && ry0 < ry1 && ry1 <= FH);
    int cx0 = rx0 > JPEG_MARGIN ? rx0 - JPEG_MARGIN : 0;
    int cx1 = rx1 + JPEG_MARGIN < FW ? rx1 + JPEG_MARGIN : FW;
    /* libjpeg upsamples a component only 1 or 2 samples wide differently: keep strips wider */
    int minw = 4 * ci->max_h_samp_factor;
    if (cx1 - cx0 < minw) {
        cx1 = cx0 + minw < FW ? cx0 + minw : FW;
        cx0 = cx1 - minw > 0 ? cx1 - minw : 0;
    }
    JDIMENSION xoff = 0, width = (JDIMENSION)FW;
    if ((cx0 > 0 || cx1 < FW) && jpeg_crop_ok(ci)) {
        xoff = (JDIMENSION)cx0;
        width = (JDIMENSION)(cx1 - cx0);
        jpeg_crop_scanline(ci, &xoff, &width); /* widens to iMCU boundaries */
    }
    MAE_ASSERT((int)xoff <= rx0 && (int)(xoff + width) >= rx1 && width == ci->output_width);
    if (ry0 > 0 && jpeg_skip_scanlines(ci, (JDIMENSION)ry0) != (JDIMENSION)ry0)
        return mae_img_fail(j->err, "corrupt JPEG data (cannot skip to row %d)", ry0);
    mae_img_prepare(j->out, (int)width, ry1 - ry0, j->req->chans, FW, FH, (int)xoff, ry0, s);
    return jpeg_read_rows(j, conv, ry0, ry1);
}

/* Everything that may longjmp; non-jump failures return a status with err filled. */
static int jpeg_run(jpeg_job *j) {
    struct jpeg_decompress_struct *ci = &j->ci;
    jpeg_create_decompress(ci);
    jpeg_mem_src(ci, j->buf, (unsigned long)j->len);
    jpeg_read_header(ci, TRUE);
    int rc = mae_img_check_dims(ci->image_width, ci->image_height, "JPEG", j->err);
    if (rc != MAE_OK) return rc;
    mae_img_box box;
    rc = mae_img_box_from_req(&box, j->req, (int)ci->image_width, (int)ci->image_height, j->err);
    if (rc != MAE_OK) return rc;
    int conv = jpeg_pick_output(j);
    if (conv < 0) return MAE_ERR_DATA;
    ci->scale_num = (unsigned)(j->req->scale_num ? j->req->scale_num : 8);
    ci->scale_denom = 8;
    ci->dct_method = JDCT_ISLOW;    /* libjpeg's (and PIL's) default */
    ci->do_fancy_upsampling = TRUE; /* likewise */
    if (ci->progressive_mode || ci->arith_code) {
        j->progress.progress_monitor = on_progress;
        ci->progress = &j->progress;
    }
    jpeg_start_decompress(ci); /* a progressive file is read entirely here */
    return jpeg_decode_region(j, &box, conv);
}

/* The setjmp point: j is only read after the jump, never modified here. */
static int jpeg_guarded(jpeg_job *j) {
    if (setjmp(j->guard.jump)) return jpeg_failure(&j->guard, j->err);
    return jpeg_run(j);
}

int mae_jpeg_decode(mae_image *out, const uint8_t *buf, size_t len, const mae_decode_req *req,
                    mae_error *err) {
    jpeg_job j;
    memset(&j, 0, sizeof j);
    j.ci.err = jpeg_std_error(&j.guard.pub);
    j.guard.pub.error_exit = on_error_exit;
    j.guard.pub.emit_message = on_emit_message;
    j.guard.pub.output_message = on_output_message;
    j.buf = buf;
    j.len = len;
    j.req = req;
    j.out = out;
    j.err = err;
    int rc = jpeg_guarded(&j);
    jpeg_destroy_decompress(&j.ci); /* also aborts a decode stopped early */
    return rc;
}
