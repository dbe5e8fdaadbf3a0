/* pretrain.h - shared state of `mae pretrain` (pretrain.c: flags and set-up; pretrain_loop.c:
 * the epoch loop, progress, logs, checkpoints and signals). */
#ifndef MAE_CLI_PRETRAIN_H
#define MAE_CLI_PRETRAIN_H

#include <stdio.h>

#include "cli.h"
#include "data/dataset.h"
#include "data/loader.h"

typedef struct pretrain_opts {
    cli_model_flags mf;
    mae_train_config tc;
    const char *data_path, *output_dir, *log_dir, *resume, *device, *dist_url;
    const char *precision; /* --precision: fp32 | bf16 (not part of the model or checkpoint) */
    int start_epoch, num_workers, pin_mem, no_pin_mem, local_rank, dist_on_itp;
    int num_samples, threads, save_every, print_freq, stop_after_epochs, recon_images,
        recon_scale, strict, dct_scaling, progress;
} pretrain_opts;

/* What the loop needs. */
typedef struct pretrain_run {
    const pretrain_opts *o;
    mae_model *m;
    mae_trainer *t;
    mae_dataset *ds;
    mae_loader *loader;
    FILE *log_epochs; /* output_dir/log.txt: one JSON line per epoch, as main_pretrain.py */
    FILE *log_steps;  /* log_dir/steps.jsonl: one JSON line per step */
    int start_epoch;
    int64_t start_step;
    int rank, world; /* data parallelism (src/dist); rank 0 alone prints, logs and saves */
} pretrain_run;

/* Exit codes of the loop beyond 0 (done): */
#define PRETRAIN_INTERRUPTED 130 /* SIGINT/SIGTERM: resumable checkpoint saved */

/* Runs epochs [start_epoch, end) with checkpoints; returns MAE_OK, PRETRAIN_INTERRUPTED,
 * MAE_ERR_NONFINITE or MAE_ERR (err filled). */
int pretrain_loop(pretrain_run *r, mae_error *err);

/* checkpoint-<tag>.safetensors + .state.safetensors in output_dir, both atomic; (epoch, step)
 * is the resume point. */
int pretrain_save(const pretrain_run *r, const char *tag, int epoch, int64_t step,
                  mae_error *err);
void pretrain_state_path(char *out, size_t cap, const char *weights);

#endif
