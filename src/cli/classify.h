/* classify.h - shared state of `mae finetune`, `mae linprobe` and `mae eval` (finetune.c: flags
 * and set-up; cls_loop.c: the training epoch and the evaluation). */
#ifndef MAE_CLI_CLASSIFY_H
#define MAE_CLI_CLASSIFY_H
#include <stdint.h>
#include <stdio.h>

#include "cli.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/mix.h"

typedef struct cls_opts {
    int linprobe; /* 1: mae linprobe (frozen encoder, BatchNorm head, LARS) */
    cli_model_flags mf;
    mae_train_config tc;
    const char *data_path, *output_dir, *log_dir, *resume, *finetune, *device, *precision;
    const char *aa, *remode, *mixup_mode, *color_jitter, *cutmix_minmax, *dist_url;
    int nb_classes, global_pool, cls_token, eval, dist_eval, recount, resplit;
    double drop_path, smoothing, reprob, mixup, cutmix, mixup_prob, mixup_switch_prob;
    int start_epoch, num_workers, pin_mem, no_pin_mem, local_rank, dist_on_itp;
    int num_samples, eval_samples, threads, print_freq, strict, save_every;
} cls_opts;

typedef struct cls_eval_result {
    double acc1, acc5, loss; /* percent, percent, mean cross entropy */
    int64_t n;
    int64_t *confusion;      /* NC x NC (true, predicted) when requested, else NULL */
} cls_eval_result;

/* One training epoch over the loader: augmentation already applied per sample; mixup/cutmix
 * (or label smoothing) per batch; returns MAE_OK, MAE_ERR_NONFINITE or MAE_ERR. */
int cls_train_epoch(mae_trainer *t, mae_model *m, mae_loader *ld, const cls_opts *o,
                    const mae_mixup_cfg *mix, int epoch, double *mean_loss, mae_error *err);
/* Top-1 / top-5 / loss of m on every sample of ds (in order, batches of batch_size).
 * confusion: compute res->confusion (caller frees) when nonzero. */
int cls_evaluate(mae_model *m, mae_dataset *ds, int batch_size, int num_workers, int confusion,
                 cls_eval_result *res, mae_error *err);
/* Prints the result, and the confusion summary when present (<= 20 classes). */
void cls_print_eval(const cls_eval_result *r, int nc, FILE *f);
/* The training split (train != 0) or the evaluation split of --data_path (Fashion-MNIST when
 * not given) with the given augmentation; checks the class count against --nb_classes. */
mae_dataset *cls_open_data(const cls_opts *o, const mae_config *cfg, int train, int augment,
                           mae_error *err);

#endif
