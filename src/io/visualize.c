/* visualize.c - the pictures of visualize.h: panels, per-patch statistics, a 5x7 bitmap font. */
#include "visualize.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "data/dataset.h"
#include "io/png.h"

/* ------------------------------------------------------------------ pixels */

/* clip((v * std + mean) * 255, 0, 255), rounded to nearest; NaN -> 0 */
static uint8_t to_byte(float v, float mean, float std) {
    float x = (v * std + mean) * 255.0f;
    if (!(x > 0.0f)) return 0;
    if (x >= 255.0f) return 255;
    return (uint8_t)(x + 0.5f);
}

void mae_vis_patch_stats(const mae_config *c, const float *img, const float *mask, int mode,
                         float *mean, float *std) {
    int p = c->patch_size, C = c->in_chans, H = c->img_size, g = H / p, L = g * g, P = p * p * C;
    for (int l = 0; l < L; l++) {
        mean[l] = 0.0f;
        std[l] = 1.0f;
    }
    if (mode == MAE_UNNORM_NONE) return;
    for (int l = 0; l < L; l++) { /* the loss's target statistics: two passes in double */
        int py = l / g, px = l % g;
        double s = 0, s2 = 0;
        for (int ch = 0; ch < C; ch++)
            for (int i = 0; i < p; i++)
                for (int j = 0; j < p; j++) s += img[((size_t)ch * H + py * p + i) * H + px * p + j];
        double m = s / P;
        for (int ch = 0; ch < C; ch++)
            for (int i = 0; i < p; i++)
                for (int j = 0; j < p; j++) {
                    double d = img[((size_t)ch * H + py * p + i) * H + px * p + j] - m;
                    s2 += d * d;
                }
        double var = P > 1 ? s2 / (P - 1) : 0.0;
        mean[l] = (float)m;
        std[l] = (float)sqrt(var + 1e-6);
    }
    if (mode != MAE_UNNORM_VISIBLE) return;
    /* removed patches: inverse-distance-squared weighted average over the visible ones; the
     * sums read only visible entries, so the removed ones can be overwritten in place */
    for (int r = 0; r < L; r++) {
        if (mask[r] == 0.0f) continue;
        double sw = 0, sm = 0, ss = 0;
        for (int v = 0; v < L; v++) {
            if (mask[v] != 0.0f) continue;
            double dy = r / g - v / g, dx = r % g - v % g, w = 1.0 / (dy * dy + dx * dx);
            sw += w;
            sm += w * mean[v];
            ss += w * std[v];
        }
        mean[r] = sw > 0 ? (float)(sm / sw) : 0.0f; /* no visible patch at all: 0 and 1 */
        std[r] = sw > 0 ? (float)(ss / sw) : 1.0f;
    }
}

void mae_vis_unpatchify(float *rec, const mae_config *c, const float *img, const float *pred,
                        const float *mask, int mode) {
    int p = c->patch_size, C = c->in_chans, H = c->img_size, g = H / p, L = g * g, P = p * p * C;
    float *mean = mae_xmalloc(sizeof(float) * 2 * (size_t)L), *std = mean + L;
    mae_vis_patch_stats(c, img, mask, mode, mean, std);
    for (int l = 0; l < L; l++) {
        int py = l / g, px = l % g;
        const float *pr = pred + (size_t)l * P;
        for (int i = 0; i < p; i++)
            for (int j = 0; j < p; j++)
                for (int ch = 0; ch < C; ch++)
                    rec[((size_t)ch * H + py * p + i) * H + px * p + j] =
                        pr[(i * p + j) * C + ch] * std[l] + mean[l];
    }
    free(mean);
}

/* ------------------------------------------------------------------ mae pretrain's grid */

#define GAP 2

int mae_write_recon_grid(const char *path, const mae_config *c, const float *imgs,
                         const float *pred, const float *mask, int B, int scale, mae_error *err) {
    int C = c->in_chans, H = c->img_size, p = c->patch_size, g = H / p, L = g * g;
    int P = p * p * C;
    if (scale < 1) scale = 1;
    int pw = H * scale, width = 4 * pw + 5 * GAP, height = B * pw + (B + 1) * GAP;
    uint8_t *rgb = mae_xmalloc((size_t)width * height * 3);
    memset(rgb, 255, (size_t)width * height * 3);
    float mean[3], std[3];
    mae_norm_constants(C, mean, std);
    float *rec = mae_xmalloc(sizeof(float) * C * H * H);
    for (int b = 0; b < B; b++) {
        const float *img = imgs + (size_t)b * C * H * H;
        mae_vis_unpatchify(rec, c, img, pred + (size_t)b * L * P, mask + (size_t)b * L,
                           c->norm_pix_loss ? MAE_UNNORM_TARGET : MAE_UNNORM_NONE);
        for (int panel = 0; panel < 4; panel++) {
            for (int y = 0; y < H; y++) {
                for (int x = 0; x < H; x++) {
                    int removed = mask[(size_t)b * L + (y / p) * g + x / p] != 0.0f;
                    uint8_t px3[3];
                    for (int ch = 0; ch < 3; ch++) {
                        int sc = C == 1 ? 0 : ch;
                        size_t at = ((size_t)sc * H + y) * H + x;
                        float v;
                        if (panel == 0) v = img[at];
                        else if (panel == 1) v = removed ? NAN : img[at];
                        else if (panel == 2) v = rec[at];
                        else v = removed ? rec[at] : img[at];
                        px3[ch] = isnan(v) ? 128 : to_byte(v, mean[sc], std[sc]);
                    }
                    for (int dy = 0; dy < scale; dy++)
                        for (int dx = 0; dx < scale; dx++) {
                            size_t X = GAP + (size_t)panel * (pw + GAP) + (size_t)x * scale + dx;
                            size_t Y = GAP + (size_t)b * (pw + GAP) + (size_t)y * scale + dy;
                            memcpy(rgb + (Y * width + X) * 3, px3, 3);
                        }
                }
            }
        }
    }
    free(rec);
    int rc = mae_png_write(path, rgb, width, height, 3, err);
    free(rgb);
    return rc;
}

/* ------------------------------------------------------------------ font */

typedef struct glyph {
    char ch;
    const char *row[7];
} glyph;

static const glyph FONT[] = {
    {' ', {".....", ".....", ".....", ".....", ".....", ".....", "....."}},
    {'a', {".....", ".....", ".###.", "....#", ".####", "#...#", ".####"}},
    {'b', {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####."}},
    {'c', {".....", ".....", ".###.", "#....", "#....", "#...#", ".###."}},
    {'d', {"....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####"}},
    {'e', {".....", ".....", ".###.", "#...#", "#####", "#....", ".###."}},
    {'f', {"..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#..."}},
    {'g', {".....", ".####", "#...#", "#...#", ".####", "....#", ".###."}},
    {'h', {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#"}},
    {'i', {"..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."}},
    {'j', {"...#.", ".....", "..##.", "...#.", "...#.", "#..#.", ".##.."}},
    {'k', {"#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#."}},
    {'l', {".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}},
    {'m', {".....", ".....", "##.#.", "#.#.#", "#.#.#", "#...#", "#...#"}},
    {'n', {".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#"}},
    {'o', {".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."}},
    {'p', {".....", ".....", "####.", "#...#", "####.", "#....", "#...."}},
    {'q', {".....", ".....", ".##.#", "#..##", ".####", "....#", "....#"}},
    {'r', {".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."}},
    {'s', {".....", ".....", ".###.", "#....", ".###.", "....#", "####."}},
    {'t', {".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##."}},
    {'u', {".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#"}},
    {'v', {".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#.."}},
    {'w', {".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#."}},
    {'x', {".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"}},
    {'y', {".....", ".....", "#...#", "#...#", ".####", "....#", ".###."}},
    {'z', {".....", ".....", "#####", "...#.", "..#..", ".#...", "#####"}},
    {'0', {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."}},
    {'1', {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."}},
    {'2', {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"}},
    {'3', {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."}},
    {'4', {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."}},
    {'5', {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."}},
    {'6', {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."}},
    {'7', {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."}},
    {'8', {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."}},
    {'9', {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."}},
    {'%', {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"}},
    {'+', {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."}},
    {'(', {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."}},
    {')', {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."}},
    {'-', {".....", ".....", ".....", "#####", ".....", ".....", "....."}},
    {'.', {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."}},
    {',', {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."}},
    {':', {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."}},
    {'/', {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."}},
    {'_', {".....", ".....", ".....", ".....", ".....", ".....", "#####"}},
    {'=', {".....", ".....", "#####", ".....", "#####", ".....", "....."}},
    {'?', {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."}},
};

static const glyph *find_glyph(char ch) {
    if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
    for (size_t i = 0; i < sizeof FONT / sizeof FONT[0]; i++)
        if (FONT[i].ch == ch) return &FONT[i];
    return find_glyph('?');
}

int mae_vis_text_width(const char *text, int font) {
    size_t n = strlen(text);
    return n ? (int)(6 * n - 1) * font : 0;
}

int mae_vis_text(uint8_t *rgb, int w, int h, int x, int y, const char *text, int font,
                 const uint8_t color[3]) {
    for (size_t k = 0; text[k]; k++) {
        const glyph *gl = find_glyph(text[k]);
        int gx = x + (int)k * 6 * font;
        for (int r = 0; r < 7; r++)
            for (int col = 0; col < 5; col++) {
                if (gl->row[r][col] != '#') continue;
                for (int dy = 0; dy < font; dy++)
                    for (int dx = 0; dx < font; dx++) {
                        long X = (long)gx + col * font + dx, Y = (long)y + r * font + dy;
                        if (X >= 0 && X < w && Y >= 0 && Y < h)
                            memcpy(rgb + ((size_t)Y * w + (size_t)X) * 3, color, 3);
                    }
            }
    }
    return mae_vis_text_width(text, font);
}

/* ------------------------------------------------------------------ the grid */

#define MAX_LINES 4
#define LINE_CAP 256

/* Greedy word wrap of text into lines of at most maxch characters (a longer word is cut);
 * at most MAX_LINES lines, the rest dropped. Returns the number of lines (>= 1). */
static int wrap(const char *text, int maxch, char lines[MAX_LINES][LINE_CAP]) {
    if (maxch < 1) maxch = 1;
    if (maxch > LINE_CAP - 1) maxch = LINE_CAP - 1;
    int n = 0;
    const char *s = text;
    while (*s == ' ') s++;
    lines[0][0] = 0;
    while (*s && n < MAX_LINES) {
        int len = 0, last_space = -1;
        const char *t = s;
        while (t[len] && len < maxch) {
            if (t[len] == ' ') last_space = len;
            len++;
        }
        if (t[len] && t[len] != ' ' && last_space > 0) len = last_space; /* break at a space */
        memcpy(lines[n], s, (size_t)len);
        while (len > 0 && lines[n][len - 1] == ' ') len--;
        lines[n][len] = 0;
        n++;
        s = t + (len > 0 ? len : 1);
        while (*s == ' ') s++;
    }
    return n > 0 ? n : 1;
}

static int font_for(int panel) { return panel >= 400 ? panel / 200 : 1; }

int mae_vis_layout_make(mae_vis_layout *lay, int img_size, int rows, int scale,
                        const char *const captions[4], mae_error *err) {
    memset(lay, 0, sizeof *lay);
    const long long max_side = 1LL << 20, max_bytes = 1LL << 30;
    if (scale < 1 || img_size < 1 || rows < 1 || (long long)img_size * scale > max_side)
        return mae_errf(err, "a picture of %d rows of %d px panels at scale %d is too big", rows,
                        img_size, scale);
    lay->rows = rows;
    lay->scale = scale;
    lay->panel = img_size * scale;
    lay->margin = 4;
    lay->font = font_for(lay->panel);
    int maxch = (lay->panel + lay->font) / (6 * lay->font), lines = 1;
    for (int k = 0; k < 4; k++) {
        char buf[MAX_LINES][LINE_CAP];
        int n = wrap(captions[k] ? captions[k] : "", maxch, buf);
        if (n > lines) lines = n;
    }
    lay->caption_lines = lines;
    lay->caption_h = 3 + lines * 9 * lay->font;
    lay->x0 = lay->margin;
    lay->dx = lay->panel + lay->margin;
    lay->y0 = lay->margin + lay->caption_h;
    lay->dy = lay->caption_h + lay->panel + lay->margin;
    long long W = 4LL * lay->panel + 5LL * lay->margin, Hh = lay->margin + (long long)rows * lay->dy;
    if (W > max_side || Hh > max_side || W * Hh * 3 > max_bytes)
        return mae_errf(err, "a picture of %d rows of %d px panels would be %lld x %lld pixels, "
                             "too big for one PNG (at most 2^20 a side and 2^30 bytes): use "
                             "fewer images or a smaller --scale", rows, lay->panel, W, Hh);
    lay->width = (int)W;
    lay->height = (int)Hh;
    return MAE_OK;
}

void mae_vis_draw_row(uint8_t *rgb, const mae_vis_layout *lay, int r, const mae_config *c,
                      const uint8_t *orig, const float *img, const float *pred, const float *mask,
                      int mode, const char *const captions[4]) {
    int C = c->in_chans, H = c->img_size, p = c->patch_size, g = H / p, S = lay->scale;
    float mean[3], std[3];
    mae_norm_constants(C, mean, std);
    uint8_t fill[3]; /* the demo's x * (1 - mask) = 0: the mean colour */
    for (int ch = 0; ch < 3; ch++) fill[ch] = to_byte(0.0f, mean[C == 1 ? 0 : ch], std[C == 1 ? 0 : ch]);
    float *rec = mae_xmalloc(sizeof(float) * (size_t)C * H * H);
    mae_vis_unpatchify(rec, c, img, pred, mask, mode);
    const uint8_t black[3] = {0, 0, 0};
    int maxch = (lay->panel + lay->font) / (6 * lay->font);
    for (int k = 0; k < 4; k++) {
        int X0 = lay->x0 + k * lay->dx, Y0 = lay->y0 + r * lay->dy;
        char lines[MAX_LINES][LINE_CAP];
        int n = wrap(captions[k] ? captions[k] : "", maxch, lines);
        for (int i = 0; i < n; i++) {
            int tw = mae_vis_text_width(lines[i], lay->font);
            int tx = X0 + (lay->panel - tw) / 2;
            int ty = Y0 - lay->caption_h + 1 + i * 9 * lay->font;
            mae_vis_text(rgb, lay->width, lay->height, tx, ty, lines[i], lay->font, black);
        }
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < H; x++) {
                int removed = mask[(y / p) * g + x / p] != 0.0f;
                uint8_t px3[3];
                for (int ch = 0; ch < 3; ch++) {
                    int sc = C == 1 ? 0 : ch;
                    uint8_t o = orig[((size_t)y * H + x) * C + sc];
                    uint8_t v = to_byte(rec[((size_t)sc * H + y) * H + x], mean[sc], std[sc]);
                    px3[ch] = k == 0 ? o : k == 1 ? (removed ? fill[ch] : o) : k == 2 ? v
                              : removed ? v : o;
                }
                for (int dy = 0; dy < S; dy++) {
                    uint8_t *row = rgb + ((size_t)(Y0 + y * S + dy) * lay->width + X0 + (size_t)x * S) * 3;
                    for (int dx = 0; dx < S; dx++) memcpy(row + (size_t)dx * 3, px3, 3);
                }
            }
        }
    }
    free(rec);
}
