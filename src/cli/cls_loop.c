/* cls_loop.c - the training epoch and the evaluation of `mae finetune` / `mae linprobe`, and
 * the evaluation of `mae eval` (official engine_finetune.py train_one_epoch and evaluate). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "dist/dist.h"
#include "common.h"
#include "data/randaug.h"
#include "rng.h"

mae_dataset *cls_open_data(const cls_opts *o, const mae_config *cfg, int train, int augment,
                           mae_error *err) {
    const char *path = cli_data_root(o->data_path);
    mae_source *src = cli_open_source(o->data_path, train, err);
    if (!src) return NULL;
    if (src->num_classes < 1) {
        mae_errf(err, "--data_path: %s has no labels (%s); classification needs labelled data",
                 path, src->desc);
        mae_source_free(src);
        return NULL;
    }
    if (src->num_classes != o->nb_classes) {
        mae_errf(err, "--nb_classes %d disagrees with the data: %s has %d classes", o->nb_classes,
                 src->desc, src->num_classes);
        mae_source_free(src);
        return NULL;
    }
    mae_image_opts io;
    mae_image_opts_default(&io, cfg->img_size, cfg->in_chans);
    io.scale_lo = 0.08;
    if (!augment) {
        io.augment = MAE_AUG_EVAL;
    } else if (o->linprobe) {
        io.augment = MAE_AUG_PRETRAIN; /* RandomResizedCrop(scale 0.08-1) + flip */
    } else {
        io.augment = MAE_AUG_FINETUNE;
        io.reprob = o->reprob;
        if (mae_randaug_parse(&io.randaug, o->aa, err) != MAE_OK) {
            mae_source_free(src);
            return NULL;
        }
    }
    return mae_dataset_images(src, &io, err);
}

int cls_train_epoch(mae_trainer *t, mae_model *m, mae_loader *ld, const cls_opts *o,
                    const mae_mixup_cfg *mix, int epoch, double *mean_loss, mae_error *err) {
    const mae_config *c = mae_model_config(m);
    int NC = o->nb_classes, B = o->tc.batch_size;
    size_t npix = (size_t)c->in_chans * c->img_size * c->img_size;
    float *imgs = mae_xmalloc(sizeof(float) * B * npix);
    float *targets = mae_xmalloc(sizeof(float) * B * NC);
    int mixing = mix->mixup_alpha > 0 || mix->cutmix_alpha > 0;
    int64_t steps = mae_loader_steps(ld);
    double sum = 0.0, t0 = mae_clock();
    int64_t n = 0;
    int rc = MAE_OK;
    mae_batch bt;
    mae_loader_start_epoch(ld, epoch, 0);
    for (int64_t it = 0;; it++) {
        int r = mae_loader_next(ld, &bt, err);
        if (r == 1) break;
        if (r != MAE_OK) {
            rc = MAE_ERR;
            break;
        }
        for (int b = 0; b < bt.B; b++)
            if (bt.labels[b] < 0 || bt.labels[b] >= NC) {
                rc = mae_errf(err, "sample %llu has label %d, outside --nb_classes %d",
                              (unsigned long long)bt.sample_ids[b], bt.labels[b], NC);
                break;
            }
        if (rc != MAE_OK) break;
        memcpy(imgs, bt.imgs, sizeof(float) * bt.B * npix);
        uint64_t key = mae_hash4(o->tc.seed, (uint64_t)epoch, (uint64_t)it, 0x636c73ull);
        if (mixing) {
            if (mae_mixup_batch(imgs, targets, bt.labels, bt.B, c->in_chans, c->img_size,
                                c->img_size, mix, mae_mix64(key ^ 0x6d6978ull)) < 0) {
                rc = mae_errf(err, "mixup/cutmix needs an even batch, got %d", bt.B);
                break;
            }
        } else {
            mae_smooth_targets(targets, bt.labels, bt.B, NC, o->smoothing);
        }
        float loss = 0.0f;
        double ef = epoch + (double)it / (double)steps;
        rc = mae_trainer_step_cls(t, imgs, targets, bt.B, ef, key, &loss, err);
        if (rc != MAE_OK) break;
        sum += loss;
        n++;
        if (mae_dist_rank() == 0 && ((it + 1) % o->print_freq == 0 || it + 1 == steps)) {
            double dt = mae_clock() - t0; /* (rank 0's loss; img/s of all ranks) */
            printf("epoch %d/%d step %lld/%lld loss %.4f lr %.3e img/s %.1f\n", epoch + 1,
                   o->tc.epochs, (long long)(it + 1), (long long)steps, (double)loss,
                   mae_trainer_lr(t),
                   dt > 0 ? (double)(it + 1) * B * mae_dist_world() / dt : 0.0);
            fflush(stdout);
        }
    }
    if (rc == MAE_OK && mae_dist_world() > 1) { /* the epoch's mean loss over all ranks */
        double x[2] = {sum, (double)n};
        rc = mae_dist_sum_d(x, 2, err);
        sum = x[0], n = (int64_t)x[1];
    }
    *mean_loss = n ? sum / n : 0.0;
    free(imgs);
    free(targets);
    return rc;
}

int cls_evaluate(mae_model *m, mae_dataset *ds, int batch_size, int num_workers, int confusion,
                 cls_eval_result *res, mae_error *err) {
    const mae_cls_config *cc = mae_model_classifier(m);
    int NC = cc->num_classes;
    memset(res, 0, sizeof *res);
    mae_loader_config lc;
    mae_loader_config_default(&lc, batch_size);
    lc.shuffle = 0;
    lc.drop_last = 0;
    lc.num_workers = num_workers;
    /* under data parallelism every rank evaluates its shard and the counts are summed (the
     * shards are padded to equal size by repeating the first samples, as DistributedSampler) */
    lc.rank = mae_dist_rank();
    lc.world_size = mae_dist_world();
    mae_loader *ld = mae_loader_create(ds, &lc, err);
    if (!ld) return MAE_ERR;
    float *targets = mae_xmalloc(sizeof(float) * batch_size * NC);
    float *logits = mae_xmalloc(sizeof(float) * batch_size * NC);
    if (confusion) res->confusion = mae_xcalloc((size_t)NC * NC, sizeof(int64_t));
    double loss_sum = 0.0;
    int64_t top1 = 0, top5 = 0, n = 0;
    int rc = MAE_OK;
    mae_batch bt;
    mae_loader_start_epoch(ld, 0, 0);
    for (;;) {
        int r = mae_loader_next(ld, &bt, err);
        if (r == 1) break;
        if (r != MAE_OK) {
            rc = MAE_ERR;
            break;
        }
        for (int b = 0; b < bt.B && rc == MAE_OK; b++)
            if (bt.labels[b] < 0 || bt.labels[b] >= NC)
                rc = mae_errf(err, "sample %llu has label %d, outside the classifier's %d classes",
                              (unsigned long long)bt.sample_ids[b], bt.labels[b], NC);
        if (rc != MAE_OK) break;
        mae_smooth_targets(targets, bt.labels, bt.B, NC, 0.0);
        float loss = 0.0f;
        rc = mae_cls_forward(m, bt.imgs, targets, bt.B, 0, 0, &loss, logits, err);
        if (rc != MAE_OK) break;
        loss_sum += (double)loss * bt.B;
        for (int b = 0; b < bt.B; b++) {
            const float *z = logits + (size_t)b * NC;
            int y = bt.labels[b], rank = 0, arg = 0;
            for (int k = 0; k < NC; k++) {
                if (z[k] > z[y] || (z[k] == z[y] && k < y)) rank++;
                if (z[k] > z[arg]) arg = k;
            }
            top1 += rank == 0;
            top5 += rank < 5;
            if (res->confusion) res->confusion[(size_t)y * NC + arg]++;
        }
        n += bt.B;
    }
    if (rc == MAE_OK && mae_dist_world() > 1) {
        size_t nc2 = res->confusion ? (size_t)NC * NC : 0;
        double *x = mae_xmalloc(sizeof(double) * (4 + nc2));
        x[0] = loss_sum, x[1] = (double)top1, x[2] = (double)top5, x[3] = (double)n;
        for (size_t i = 0; i < nc2; i++) x[4 + i] = (double)res->confusion[i];
        rc = mae_dist_sum_d(x, (int)(4 + nc2), err);
        loss_sum = x[0], top1 = (int64_t)x[1], top5 = (int64_t)x[2], n = (int64_t)x[3];
        for (size_t i = 0; i < nc2; i++) res->confusion[i] = (int64_t)x[4 + i];
        free(x);
    }
    if (rc == MAE_OK && n == 0) rc = mae_errf(err, "%s: no sample to evaluate", ds->desc);
    if (rc == MAE_OK) {
        res->n = n;
        res->acc1 = 100.0 * top1 / n;
        res->acc5 = 100.0 * top5 / n;
        res->loss = loss_sum / n;
    }
    int64_t bad = mae_loader_bad_files(ld);
    if (bad) fprintf(stderr, "evaluation skipped %lld bad files\n", (long long)bad);
    mae_loader_free(ld);
    free(targets);
    free(logits);
    return rc;
}

void cls_print_eval(const cls_eval_result *r, int nc, FILE *f) {
    fprintf(f, "* Acc@1 %.3f Acc@5 %.3f loss %.4f (%lld images)\n", r->acc1, r->acc5, r->loss,
            (long long)r->n);
    if (!r->confusion || nc > 20) return;
    fprintf(f, "confusion (rows: true class, columns: predicted):\n     ");
    for (int k = 0; k < nc; k++) fprintf(f, " %6d", k);
    fprintf(f, "  recall\n");
    for (int y = 0; y < nc; y++) {
        int64_t row = 0;
        for (int k = 0; k < nc; k++) row += r->confusion[(size_t)y * nc + k];
        fprintf(f, "%4d ", y);
        for (int k = 0; k < nc; k++) fprintf(f, " %6lld", (long long)r->confusion[(size_t)y * nc + k]);
        fprintf(f, "  %5.1f%%\n", row ? 100.0 * r->confusion[(size_t)y * nc + y] / row : 0.0);
    }
}
