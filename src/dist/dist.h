/* dist.h - data-parallel training across processes: MPI (Open MPI) for the job, the ranks and
 * the CPU gradients; NCCL (loaded at run time) for gradients in GPU memory, bootstrapped
 * through MPI. A process not started by an MPI launcher (mpirun, srun: their environment
 * variables) is a world of 1 and never touches MPI, so a run without MPI behaves as before.
 *
 * Every collective is bounded by a timeout (MAE_DIST_TIMEOUT seconds, default 600): a rank
 * that died or hangs makes the others print which collective timed out and end the job
 * (MPI_Abort), rather than wait forever. */
#ifndef MAE_DIST_H
#define MAE_DIST_H

#include <stddef.h>

#include "mae.h"

/* Joins the job when launched by mpirun/srun (MPI_Init_thread, FUNNELED); else world 1.
 * Returns MAE_OK, or MAE_ERR with err filled (MPI present in the environment but unusable). */
int mae_dist_init(int *argc, char ***argv, mae_error *err);
int mae_dist_rank(void);
int mae_dist_world(void);
/* rank among the processes on this node (one GPU each), from the launcher's environment */
int mae_dist_local_rank(void);
/* 1 when this build has MPI */
int mae_dist_available(void);
/* seconds any collective may take before the job is ended (MAE_DIST_TIMEOUT, default 600) */
double mae_dist_timeout(void);

/* The gradient sync for a model on `device` ("cpu": MPI all-reduce of host buffers, in buckets
 * started during the backward as they complete, MAE_DIST_BUCKET_MB each (default 25) unless
 * MAE_DIST_OVERLAP=0; "cuda": NCCL all-reduce on a side stream). world 1: s->world = 1 and no
 * hooks. */
int mae_dist_grad_sync(mae_grad_sync *s, const char *device, mae_error *err);
/* seconds spent waiting in the gradient sync's finish (the part the backward did not hide) */
double mae_dist_wait_seconds(void);

/* x (n) <- the sum over ranks (loss logging, counters); bounded by the timeout */
int mae_dist_sum_d(double *x, int n, mae_error *err);
/* all ranks reach this point (or the job ends at the timeout) */
int mae_dist_barrier(mae_error *err);
/* x (n bytes) <- rank 0's */
int mae_dist_bcast(void *x, size_t n, mae_error *err);

/* A rank that cannot go on: prints "mae [rank r/W]: msg" to stderr and ends the whole job
 * (MPI_Abort; exit(code) in a world of 1). */
void mae_dist_abort(const char *msg, int code);
/* MPI_Finalize when MPI was initialised */
void mae_dist_finalize(void);

/* ---- shared by the gradient syncs (dist.c: MPI, dist_nccl.c: NCCL) */
/* The buckets of one update: grads[pending, n) have been started. */
typedef struct mae_buckets {
    size_t pending, n, bucket; /* bucket: floats (MAE_DIST_BUCKET_MB) */
} mae_buckets;
void mae_buckets_init(mae_buckets *bk);
/* 1 unless MAE_DIST_OVERLAP=0 (then the sync has no ready hook) */
int mae_dist_overlap(void);
/* At ready(off) (off = 0: finish): the span [*a, *b) to start now, returning 1, or 0 for none
 * yet. A span starts once a bucket's worth is final, and at 0 whatever is left. */
int mae_buckets_take(mae_buckets *bk, size_t off, size_t n, size_t *a, size_t *b);
/* after finish: the next update starts afresh */
static inline void mae_buckets_reset(mae_buckets *bk) { bk->pending = bk->n; }
/* Polls done(ctx) (1: done, 0: not yet, -1: failed, err filled) every 20 us until it is done
 * or MAE_DIST_TIMEOUT has passed; what names the collective in the timeout's message. */
int mae_dist_poll(int (*done)(void *ctx, mae_error *err), void *ctx, const char *what,
                  mae_error *err);

#endif
