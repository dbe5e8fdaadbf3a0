/* pretrain_loop.c - the epoch loop of `mae pretrain`: batches from the loader, one trainer step
 * each, progress (a live bar on a terminal, periodic lines otherwise), log.txt / steps.jsonl,
 * checkpoints, and SIGINT/SIGTERM -> a resumable checkpoint and a clean exit. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "io/checkpoint.h"
#include "dist/dist.h"
#include "pretrain.h"
#include "rng.h"

static volatile sig_atomic_t g_signal = 0;

/* MAE_FAULT_INJECT=kill:RANK:STEP (a testing aid): rank RANK kills itself (SIGKILL, no clean-up)
 * before step STEP of this run (counted from 0 across epochs), to check that the other ranks
 * end the job and the last checkpoint stays intact. */
static void fault_inject(const pretrain_run *r, int64_t step) {
    const char *f = getenv("MAE_FAULT_INJECT");
    int rank = -1;
    long long at = -1;
    if (f && sscanf(f, "kill:%d:%lld", &rank, &at) == 2 && rank == r->rank && at == step) {
        fprintf(stderr, "mae [rank %d]: MAE_FAULT_INJECT: killing this rank at step %lld\n",
                r->rank, at);
        fflush(stderr);
        raise(SIGKILL);
    }
}
static struct timespec g_first; /* when g_signal was set */

/* The first SIGINT/SIGTERM asks the loop to save and stop. The same signal often arrives twice
 * at once (sent to the process and to its process group, as `timeout` and job schedulers do):
 * a repeat within 2 s is ignored; a later one ends the process at once (_exit is
 * async-signal-safe, and the checkpoint files are replaced atomically, so none is lost). */
static void on_signal(int sig) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!g_signal) {
        g_first = now;
        g_signal = sig;
    } else if (now.tv_sec - g_first.tv_sec >= 2) {
        _exit(128 + sig);
    }
}

static void install_signals(struct sigaction *old_int, struct sigaction *old_term) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, old_int);
    sigaction(SIGTERM, &sa, old_term);
}

void pretrain_state_path(char *out, size_t cap, const char *weights) {
    size_t n = strlen(weights);
    const char *ext = ".safetensors";
    size_t e = strlen(ext);
    if (n > e && strcmp(weights + n - e, ext) == 0)
        snprintf(out, cap, "%.*s.state.safetensors", (int)(n - e), weights);
    else
        snprintf(out, cap, "%s.state.safetensors", weights);
}

int pretrain_save(const pretrain_run *r, const char *tag, int epoch, int64_t step,
                  mae_error *err) {
    if (r->rank != 0) return MAE_OK; /* rank 0 alone writes; every rank holds the same weights */
    char w[4096], st[4200], done[32], ep[32], stp[32], smp[32];
    snprintf(w, sizeof w, "%s/checkpoint-%s.safetensors", r->o->output_dir, tag);
    pretrain_state_path(st, sizeof st, w);
    snprintf(done, sizeof done, "%d", step ? epoch : epoch - 1);
    snprintf(ep, sizeof ep, "%d", epoch);
    snprintf(stp, sizeof stp, "%lld", (long long)step);
    /* the samples of the epoch consumed by all ranks: a resume with another world size or
     * batch size continues from the same place */
    snprintf(smp, sizeof smp, "%lld", (long long)step * r->o->tc.batch_size * r->world);
    const char *meta[] = {"epoch", done, "resume_epoch", ep, "resume_step", stp,
                          "resume_samples", smp};
    if (mae_model_save_meta(r->m, w, meta, 4, err) != MAE_OK) return MAE_ERR;
    return mae_trainer_save_state(r->t, st, epoch, step, err);
}

static void fmt_time(char *buf, size_t cap, double s) {
    long x = s > 0 && s < 1e9 ? (long)s : 0;
    snprintf(buf, cap, "%ld:%02ld:%02ld", x / 3600, x / 60 % 60, x % 60);
}

typedef struct progress {
    int tty;
    double t_run, t_win, wait_win, t_draw;
    int64_t done, total, win_imgs;
} progress;

/* One progress update after step `it` (0-based) of `steps`. */
static void show(progress *p, const pretrain_run *r, int epoch, int64_t it, int64_t steps,
                 double loss, double now, double wait_total) {
    const pretrain_opts *o = r->o;
    if (r->rank != 0) return;
    int last = it + 1 == steps;
    int line_due = (it + 1) % o->print_freq == 0 || last;
    if (p->tty ? (!last && now - p->t_draw < 0.1) : !line_due) return;
    double dt = now - p->t_win, ips = dt > 0 ? p->win_imgs / dt : 0;
    double wait = dt > 0 ? 100.0 * (wait_total - p->wait_win) / dt : 0;
    if (wait < 0) wait = 0;
    if (wait > 100) wait = 100;
    char eta[32];
    fmt_time(eta, sizeof eta, p->done ? (now - p->t_run) / p->done * (p->total - p->done) : 0);
    if (p->tty) {
        char bar[21];
        int fill = (int)(20 * (it + 1) / steps);
        for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
        bar[20] = 0;
        printf("\r\033[Kepoch %d/%d [%s] %lld/%lld loss %.4f lr %.3e %.1f img/s data %.0f%% ETA %s",
               epoch + 1, o->tc.epochs, bar, (long long)it + 1, (long long)steps, loss,
               mae_trainer_lr(r->t), ips, wait, eta);
        if (last) printf("\n");
    } else {
        printf("epoch %d/%d step %lld/%lld loss %.4f lr %.3e img/s %.1f data %.0f%% ETA %s\n",
               epoch + 1, o->tc.epochs, (long long)it + 1, (long long)steps, loss,
               mae_trainer_lr(r->t), ips, wait, eta);
    }
    fflush(stdout);
    p->t_draw = now;
    if (line_due || p->tty) {
        p->t_win = now;
        p->wait_win = wait_total;
        p->win_imgs = 0;
    }
}

/* The checkpoints at the end of epoch e. */
static int end_of_epoch(pretrain_run *r, int e, double loss_sum, int64_t nsteps, double secs,
                        mae_error *err) {
    const pretrain_opts *o = r->o;
    if (r->log_epochs) {
    fprintf(r->log_epochs, "{\"train_lr\": %.9g, \"train_loss\": %.9g, \"epoch\": %d, "
                           "\"img_per_s\": %.2f, \"bad_files\": %lld}\n",
            mae_trainer_lr(r->t), loss_sum / (nsteps > 0 ? nsteps : 1), e,
            secs > 0 ? (double)nsteps * o->tc.batch_size * r->world / secs : 0.0,
            (long long)mae_loader_bad_files(r->loader));
    fflush(r->log_epochs);
    }
    if (pretrain_save(r, "last", e + 1, 0, err) != MAE_OK) return MAE_ERR;
    if ((e + 1) % o->save_every == 0 || e + 1 == o->tc.epochs) {
        char tag[32];
        snprintf(tag, sizeof tag, "%d", e);
        if (pretrain_save(r, tag, e + 1, 0, err) != MAE_OK) return MAE_ERR;
    }
    return MAE_OK;
}

int pretrain_loop(pretrain_run *r, mae_error *err) {
    const pretrain_opts *o = r->o;
    const mae_train_config *tc = &o->tc;
    int L = mae_config_num_patches(mae_model_config(r->m));
    int64_t steps = mae_loader_steps(r->loader);
    float *noise = (float *)mae_xmalloc(sizeof(float) * (size_t)tc->batch_size * L);
    int end = tc->epochs;
    if (o->stop_after_epochs > 0 && r->start_epoch + o->stop_after_epochs < end)
        end = r->start_epoch + o->stop_after_epochs;
    /* (under mpirun stdout may be a terminal Open MPI provides, even when redirected: lines) */
    progress p = {isatty(STDOUT_FILENO) && r->world == 1, mae_clock(), 0, 0, 0, 0, 0, 0};
    p.total = (int64_t)(end - r->start_epoch) * steps - r->start_step;
    struct sigaction old_int, old_term;
    g_signal = 0;
    install_signals(&old_int, &old_term);
    int rc = MAE_OK, stop = 0; /* stop: save and end (a signal; agreed over ranks) */
    for (int e = r->start_epoch; e < end && rc == MAE_OK; e++) {
        int64_t it0 = e == r->start_epoch ? r->start_step : 0;
        mae_loader_start_epoch(r->loader, e, it0);
        uint64_t noise_seed = mae_hash4(tc->seed, (uint64_t)e, 0x6e6f697365ull, 0);
        double sum = 0, t_epoch = mae_clock();
        int64_t nsteps = 0;
        p.t_win = t_epoch;
        p.wait_win = mae_loader_wait_seconds(r->loader);
        p.win_imgs = 0;
        for (int64_t it = it0; it < steps; it++) {
            mae_batch b;
            rc = mae_loader_next(r->loader, &b, err);
            if (rc != MAE_OK) {
                if (rc == 1) rc = mae_errf(err, "data loader ended the epoch early");
                break;
            }
            mae_make_noise(noise, b.B, L, noise_seed, b.sample_ids);
            float loss;
            fault_inject(r, p.done);
            rc = mae_trainer_step(r->t, b.imgs, noise, b.B, (double)it / steps + e, &loss, err);
            if (rc != MAE_OK) break;
            if (r->world > 1) { /* the logged loss is the mean over ranks (official
                                 * all_reduce_mean), and a stop signal seen by any rank stops
                                 * every rank at the same step */
                double x[2] = {loss, g_signal ? 1.0 : 0.0};
                if ((rc = mae_dist_sum_d(x, 2, err)) != MAE_OK) break;
                loss = (float)(x[0] / r->world);
                stop = x[1] > 0; /* agreed; a signal after the all-reduce waits a step */
            } else {
                stop = g_signal != 0;
            }
            sum += loss;
            nsteps++;
            p.done++;
            p.win_imgs += (int64_t)b.B * r->world; /* all ranks */
            if (r->log_steps)
            fprintf(r->log_steps, "{\"epoch\":%d,\"step\":%lld,\"update\":%lld,\"loss\":%.9g,"
                                  "\"lr\":%.9g}\n", e, (long long)it,
                    (long long)mae_trainer_num_updates(r->t), (double)loss, mae_trainer_lr(r->t));
            if (r->log_steps) fflush(r->log_steps); /* for live plotting; a few us per step */
            show(&p, r, e, it, steps, loss, mae_clock(), mae_loader_wait_seconds(r->loader));
            /* on a signal: stop at the end of an accumulation cycle (gradients are not saved) */
            if (stop && mae_trainer_num_micro(r->t) % tc->accum_iter == 0 && it + 1 < steps) {
                if (r->log_steps) fflush(r->log_steps);
                if (p.tty && r->rank == 0) printf("\n");
                rc = pretrain_save(r, "last", e, it + 1, err);
                if (rc == MAE_OK) {
                    if (r->rank == 0)
                        printf("%s: saved %s/checkpoint-last.safetensors at epoch %d step %lld; "
                               "continue with --resume %s/checkpoint-last.safetensors\n",
                               g_signal == SIGINT ? "interrupted" : "SIGTERM", o->output_dir, e,
                               (long long)it + 1, o->output_dir);
                    rc = PRETRAIN_INTERRUPTED;
                }
                break;
            }
        }
        if (r->log_steps) fflush(r->log_steps);
        if (rc != MAE_OK) break;
        rc = end_of_epoch(r, e, sum, nsteps, mae_clock() - t_epoch, err);
        int64_t nb = mae_loader_bad_files(r->loader);
        if (nb > 0 && r->rank == 0) printf("epoch %d: %lld bad file%s skipped so far (warnings above)\n", e + 1,
                           (long long)nb, nb == 1 ? "" : "s");
        if (r->world == 1) stop = g_signal != 0; /* (several ranks: as agreed at the last step) */
        if (rc == MAE_OK && stop && e + 1 < end) {
            if (r->rank == 0)
                printf("%s: stopped after epoch %d; continue with --resume "
                       "%s/checkpoint-last.safetensors\n",
                       g_signal == SIGINT ? "interrupted" : "SIGTERM", e, o->output_dir);
            rc = PRETRAIN_INTERRUPTED;
        }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    free(noise);
    if (r->world > 1 && r->rank == 0 && p.done > 0) {
        double ph[MAE_NUM_PHASES];
        mae_phase_seconds(r->m, ph);
        printf("data parallel: %d ranks; gradient all-reduce wait %.2f ms per update (after the "
               "backward; buckets started during it: %s)\n", r->world,
               1e3 * ph[MAE_PHASE_GRAD_SYNC] / (double)(mae_trainer_num_updates(r->t) > 0
                                                         ? mae_trainer_num_updates(r->t) : 1),
               getenv("MAE_DIST_OVERLAP") && strcmp(getenv("MAE_DIST_OVERLAP"), "0") == 0
                   ? "no, MAE_DIST_OVERLAP=0" : "yes");
    }
    return rc;
}
