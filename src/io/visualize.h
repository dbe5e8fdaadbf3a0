/* visualize.h - reconstruction pictures as in the official demo: per image, four panels:
 * original | masked (removed patches grey) | reconstruction | reconstruction + visible. */
#ifndef MAE_IO_VISUALIZE_H
#define MAE_IO_VISUALIZE_H

#include "mae.h"

/* imgs (B,C,H,W) normalised with mae_norm_constants(C); pred (B,L,P) in patchify order (i,j,c);
 * mask (B,L), 1 = removed. With cfg->norm_pix_loss the predicted patches are normalised, so
 * each is un-normalised with the true patch's own mean and std (this leaks the patch
 * statistics into the picture). scale >= 1 enlarges each pixel. Writes an RGB PNG atomically. */
int mae_write_recon_grid(const char *path, const mae_config *cfg, const float *imgs,
                         const float *pred, const float *mask, int B, int scale, mae_error *err);

#endif
