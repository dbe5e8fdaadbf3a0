/* cli.h - the mae command-line tool: one function per subcommand, plus shared model flags. */
#ifndef MAE_CLI_H
#define MAE_CLI_H

#include "args.h"
#include "mae.h"

int cmd_pretrain(int argc, char **argv);
int cmd_reconstruct(int argc, char **argv);
int cmd_visualize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_linprobe(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_devices(int argc, char **argv);

/* --device's help text: the devices this build has */
#ifdef MAE_HAVE_CUDA
#define CLI_DEVICE_HELP "device: cpu or cuda (this build: cpu, cuda)"
#else
#define CLI_DEVICE_HELP "device: cpu or cuda (this build: cpu)"
#endif
/* --device NAME (NULL = cpu): MAE_OK when this build and this machine can run on it, else
 * MAE_ERR with "--device NAME: why" (an unknown name, a build without CUDA, a machine without a
 * usable CUDA device; mae_backend_find's reason). Commands call it with their other flag checks,
 * before they read data or write anything. */
int cli_check_device(const char *dev, mae_error *err);
/* --precision when none was given: bf16 on cuda (mixed precision, the GPU default), fp32 on the
 * CPU */
const char *cli_default_precision(const char *device);
/* the loader's batch images in the device backend's page-locked host memory (cuda), so each
 * upload is a direct copy; nothing changes on the CPU */
struct mae_loader_config;
void cli_pinned_batches(struct mae_loader_config *lc, const char *device);

/* Model-architecture flags shared by commands (--model plus per-field overrides). */
typedef struct cli_model_flags {
    const char *model;
    int input_size, patch_size, in_chans, embed_dim, depth, num_heads;
    int decoder_embed_dim, decoder_depth, decoder_num_heads;
    double mlp_ratio, mask_ratio;
    int norm_pix_loss;
} cli_model_flags;

#define CLI_MODEL_NFLAGS 13
/* Fills specs[0..CLI_MODEL_NFLAGS) pointing into f; f->model is the default preset. */
void cli_model_specs(arg_spec *specs, cli_model_flags *f);
/* Builds the config: the preset, then every flag that was given. */
int cli_model_config(const arg_spec *specs, const cli_model_flags *f, mae_config *cfg,
                     mae_error *err);
int cli_mkdirs(const char *path, mae_error *err);
/* --data_path, else $MAE_FASHION_MNIST_DIR (tests point it elsewhere), else Debian's folder */
const char *cli_data_root(const char *data_path);
/* The source at cli_data_root (train split, or the held-out one when train == 0); errors name
 * --data_path, or say how to install Fashion-MNIST when no --data_path was given. */
struct mae_source;
struct mae_source *cli_open_source(const char *data_path, int train, mae_error *err);
/* Masking noise (N, L) for N images: from --noise path (a .npy of that shape, finite values), or
 * when path is NULL derived from seed with image i as sample i (mae_make_noise). Errors name
 * --noise and the file. */
int cli_masking_noise(float *noise, int N, int L, const char *path, uint64_t seed,
                      mae_error *err);
/* forward matmul FLOPs of one image (training step ~ 3x) */
double cli_forward_flops(const mae_config *c, int len_keep);
/* forward matmul FLOPs of one image through the encoder on all 1+L tokens (mae_forward_encoder):
 * 2*L*P*D + depth * block(1+L, D), as the PyTorch peer's encoder_full_flops */
double cli_encoder_flops(const mae_config *c);

#endif
