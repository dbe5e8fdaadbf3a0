/* visualize.h - reconstruction pictures as in the official demo (demo/mae_visualize.ipynb):
 * per image, four panels: original | masked | reconstruction | reconstruction + visible. */
#ifndef MAE_IO_VISUALIZE_H
#define MAE_IO_VISUALIZE_H

#include <stdint.h>

#include "mae.h"

/* imgs (B,C,H,W) normalised with mae_norm_constants(C); pred (B,L,P) in patchify order (i,j,c);
 * mask (B,L), 1 = removed. With cfg->norm_pix_loss the predicted patches are normalised, so
 * each is un-normalised with the true patch's own mean and std (this leaks the patch
 * statistics into the picture). scale >= 1 enlarges each pixel. Removed patches of the masked
 * panel are grey (128). No captions. Writes an RGB PNG atomically. (`mae pretrain`'s picture.) */
int mae_write_recon_grid(const char *path, const mae_config *cfg, const float *imgs,
                         const float *pred, const float *mask, int B, int scale, mae_error *err);

/* How the predictions of a norm_pix_loss model (per-patch normalised pixels) are turned back
 * into pixels. The statistics of a patch are those of the loss: over its p*p*C values of the
 * normalised image (channels together), mean and std = sqrt(unbiased var + 1e-6); the
 * prediction becomes pred * std + mean.
 *   NONE:    the prediction is shown as it is (right for models trained without norm_pix_loss);
 *   TARGET:  every patch with its own true statistics - for a removed patch these come from the
 *            pixels the model never saw, so the picture LEAKS them (patch colour and contrast);
 *   VISIBLE: a visible patch with its own statistics; a removed patch r with the
 *            inverse-distance-squared weighted average over the visible patches v of their
 *            means and of their stds: w_v = 1 / ((row_r - row_v)^2 + (col_r - col_v)^2) in
 *            patch-grid units. Uses only what the model saw. */
enum { MAE_UNNORM_NONE = 0, MAE_UNNORM_TARGET = 1, MAE_UNNORM_VISIBLE = 2 };

/* The per-patch statistics (L each) that `mode` uses for one image img (C,H,W normalised) with
 * mask (L). NONE gives mean 0, std 1. */
void mae_vis_patch_stats(const mae_config *c, const float *img, const float *mask, int mode,
                         float *mean, float *std);

/* The reconstruction of one image in normalised pixel space, rec (C,H,W): the prediction
 * (L,P) unpatchified, each patch as pred * std + mean with the statistics of `mode`. */
void mae_vis_unpatchify(float *rec, const mae_config *c, const float *img, const float *pred,
                        const float *mask, int mode);

/* Geometry of a visualisation grid: rows of four panels of panel x panel pixels (the image
 * enlarged `scale` times, nearest), each with a caption band of caption_h pixels above it.
 * Panel k (0..3) of row r has its top-left pixel at (x0 + k * dx, y0 + r * dy). */
typedef struct mae_vis_layout {
    int rows, scale, panel, margin, font, caption_lines, caption_h;
    int x0, dx, y0, dy, width, height;
} mae_vis_layout;

/* Fills lay for `rows` rows of img_size images at `scale` with these four captions (wrapped at
 * spaces to the panel width). Returns MAE_ERR (message in err) if the picture would be too big
 * (more than 2^30 bytes of RGB, or a side over 2^20 pixels). */
int mae_vis_layout_make(mae_vis_layout *lay, int img_size, int rows, int scale,
                        const char *const captions[4], mae_error *err);

/* Draws row r of the grid into rgb (lay->height rows of lay->width * 3 bytes; the background
 * must be set by the caller, e.g. to white):
 *   orig: the image as bytes (H,W,C) interleaved, what img was normalised from; panel 1 and the
 *         visible pixels of panels 2 and 4 are these bytes (so they agree exactly);
 *   img:  (C,H,W) normalised; pred (L,P), mask (L) of this image; mode: MAE_UNNORM_*.
 * Panel 2 shows removed patches as the demo's x * (1 - mask): 0 in normalised space, i.e. the
 * normalisation mean colour. Panels 3 and 4 show clip((x * std + mean) * 255, 0, 255) rounded
 * to the nearest integer. C == 1 images are drawn grey. */
void mae_vis_draw_row(uint8_t *rgb, const mae_vis_layout *lay, int r, const mae_config *c,
                      const uint8_t *orig, const float *img, const float *pred, const float *mask,
                      int mode, const char *const captions[4]);

/* Draws text with the built-in 5x7 bitmap font (lower-case letters, digits, space and
 * %+()-.,:/_=; upper case is drawn lower case, anything else as '?'), each font pixel as a
 * font x font block, the glyph cell 6 x 7 pixels (times font), top-left at (x, y), clipped to
 * the w x h RGB image. Returns the width drawn in pixels. */
int mae_vis_text(uint8_t *rgb, int w, int h, int x, int y, const char *text, int font,
                 const uint8_t color[3]);
/* Width in pixels of text at font size `font` (6 * font per character, less the last gap). */
int mae_vis_text_width(const char *text, int font);

#endif
