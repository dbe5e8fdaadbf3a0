/* dist.c - the process group (MPI) and the CPU gradient sync. See dist.h. */
#include "dist.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

#ifdef MAE_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_world = 1, g_local = 0, g_mpi = 0;
static double g_wait_s = 0.0;

int mae_dist_rank(void) { return g_rank; }
int mae_dist_world(void) { return g_world; }
int mae_dist_local_rank(void) { return g_local; }
double mae_dist_wait_seconds(void) { return g_wait_s; }

int mae_dist_available(void) {
#ifdef MAE_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

double mae_dist_timeout(void) {
    const char *e = getenv("MAE_DIST_TIMEOUT");
    double t = e ? atof(e) : 600.0;
    return t > 0 ? t : 600.0;
}

static int env_int(const char *name, int dflt) {
    const char *e = getenv(name);
    return e && *e ? atoi(e) : dflt;
}

/* launched by an MPI launcher: Open MPI's mpirun, or a PMI/PMIx launcher (srun, hydra) */
static int under_launcher(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE",
                                 "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

void mae_dist_abort(const char *msg, int code) {
    fprintf(stderr, "mae [rank %d/%d]: %s\n", g_rank, g_world, msg);
    fflush(stderr);
#ifdef MAE_HAVE_MPI
    if (g_mpi && g_world > 1) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
#endif
    exit(code ? code : 1);
}

void mae_dist_finalize(void) {
#ifdef MAE_HAVE_MPI
    if (g_mpi) {
        int fin = 0;
        MPI_Finalized(&fin);
        if (!fin) MPI_Finalize();
        g_mpi = 0;
    }
#endif
}

/* several SLURM tasks but no PMI for MPI to join through: each would train alone, all into
 * the same output_dir */
static int slurm_without_pmi(mae_error *err) {
    /* (SLURM_STEP_NUM_TASKS: the tasks of this srun step; a batch script's own step has 1) */
    int ntasks = env_int("SLURM_STEP_NUM_TASKS", 1);
    if (ntasks > 1 && !under_launcher())
        return mae_errf(err, "srun started %d tasks but gave them no PMI to join one MPI job "
                             "(each would train alone into the same output_dir); launch with "
                             "srun --mpi=pmix (or pmi2), or with mpirun", ntasks);
    return MAE_OK;
}

void mae_buckets_init(mae_buckets *bk) {
    const char *mb = getenv("MAE_DIST_BUCKET_MB");
    double bmb = mb ? atof(mb) : 25.0;
    if (!(bmb > 0)) bmb = 25.0;
    memset(bk, 0, sizeof *bk);
    bk->bucket = (size_t)(bmb * 1e6 / sizeof(float));
    if (bk->bucket < 1024) bk->bucket = 1024;
}

int mae_dist_overlap(void) {
    const char *ov = getenv("MAE_DIST_OVERLAP");
    return !(ov && strcmp(ov, "0") == 0);
}

int mae_buckets_take(mae_buckets *bk, size_t off, size_t n, size_t *a, size_t *b) {
    if (bk->n != n) bk->n = n, bk->pending = n; /* the first call of an update */
    if (bk->pending - off >= bk->bucket || (off == 0 && bk->pending > 0)) {
        *a = off;
        *b = bk->pending;
        bk->pending = off;
        return 1;
    }
    return 0;
}

int mae_dist_poll(int (*done)(void *ctx, mae_error *err), void *ctx, const char *what,
                  mae_error *err) {
    double t0 = mae_clock(), lim = mae_dist_timeout();
    for (;;) {
        int d = done(ctx, err);
        if (d != 0) return d > 0 ? MAE_OK : MAE_ERR;
        if (mae_clock() - t0 > lim)
            return mae_errf(err, "%s did not complete within %.0f s (MAE_DIST_TIMEOUT) on rank "
                                 "%d of %d: another rank died or hangs",
                            what, lim, g_rank, g_world);
        struct timespec ts = {0, 20000}; /* 20 us */
        nanosleep(&ts, NULL);
    }
}

#ifndef MAE_HAVE_MPI

int mae_dist_init(int *argc, char ***argv, mae_error *err) {
    (void)argc, (void)argv;
    if (slurm_without_pmi(err) != MAE_OK) return MAE_ERR;
    if (under_launcher() && env_int("OMPI_COMM_WORLD_SIZE", env_int("PMI_SIZE", 1)) > 1)
        return mae_errf(err, "this process was started by an MPI launcher with several ranks, "
                             "but this build of mae has no MPI (install libopenmpi-dev and "
                             "reconfigure; MAE_MPI)");
    return MAE_OK;
}
int mae_dist_grad_sync(mae_grad_sync *s, const char *device, mae_error *err) {
    (void)device, (void)err;
    memset(s, 0, sizeof *s);
    s->world = 1;
    return MAE_OK;
}
int mae_dist_sum_d(double *x, int n, mae_error *err) {
    (void)x, (void)n, (void)err;
    return MAE_OK;
}
int mae_dist_barrier(mae_error *err) {
    (void)err;
    return MAE_OK;
}
int mae_dist_bcast(void *x, size_t n, mae_error *err) {
    (void)x, (void)n, (void)err;
    return MAE_OK;
}

#else /* MAE_HAVE_MPI */

static int mpi_fail(mae_error *err, const char *what, int rc) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, s, &len);
    return mae_errf(err, "%s failed on rank %d of %d: %s", what, g_rank, g_world, s);
}

int mae_dist_init(int *argc, char ***argv, mae_error *err) {
    if (slurm_without_pmi(err) != MAE_OK) return MAE_ERR;
    if (!under_launcher()) return MAE_OK; /* one process, as without MPI */
    int provided = 0, rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return mae_errf(err, "MPI_Init_thread failed (error %d)", rc);
    g_mpi = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world);
    g_local = env_int("OMPI_COMM_WORLD_LOCAL_RANK", env_int("SLURM_LOCALID",
                                                            env_int("MPI_LOCALRANKID", 0)));
    return MAE_OK;
}

typedef struct {
    MPI_Request *reqs;
    int n;
    const char *what;
} mpi_wait;

static int mpi_done(void *ctx, mae_error *err) {
    mpi_wait *w = ctx;
    int done = 0, rc = MPI_Testall(w->n, w->reqs, &done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) return mpi_fail(err, w->what, rc), -1;
    return done;
}

/* waits for reqs with the timeout; what names the collective for the message */
static int wait_all(MPI_Request *reqs, int n, const char *what, mae_error *err) {
    mpi_wait w = {reqs, n, what};
    return mae_dist_poll(mpi_done, &w, what, err);
}

int mae_dist_sum_d(double *x, int n, mae_error *err) {
    if (g_world == 1) return MAE_OK;
    MPI_Request r;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &r);
    if (rc != MPI_SUCCESS) return mpi_fail(err, "all-reduce", rc);
    return wait_all(&r, 1, "an all-reduce of the loss", err);
}

int mae_dist_barrier(mae_error *err) {
    if (g_world == 1) return MAE_OK;
    MPI_Request r;
    int rc = MPI_Ibarrier(MPI_COMM_WORLD, &r);
    if (rc != MPI_SUCCESS) return mpi_fail(err, "barrier", rc);
    return wait_all(&r, 1, "a barrier", err);
}

int mae_dist_bcast(void *x, size_t n, mae_error *err) {
    if (g_world == 1) return MAE_OK;
    MPI_Request r;
    int rc = MPI_Ibcast(x, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD, &r);
    if (rc != MPI_SUCCESS) return mpi_fail(err, "broadcast", rc);
    return wait_all(&r, 1, "a broadcast", err);
}

/* ---- CPU gradients: buckets of the flat buffer, all-reduced as the backward completes them */

#define MAX_REQ 4096
typedef struct {
    mae_buckets bk;
    int nreq;
    MPI_Request req[MAX_REQ];
} cpu_sync;
static cpu_sync g_cs;

static void start_span(cpu_sync *c, float *grads, size_t off, size_t end) {
    while (end > off) { /* MPI counts are int: spans over 2^30 floats go in pieces */
        size_t cnt = end - off > ((size_t)1 << 30) ? ((size_t)1 << 30) : end - off;
        size_t a = end - cnt;
        if (c->nreq == MAX_REQ) { /* (only with absurdly small buckets) */
            MPI_Waitall(c->nreq, c->req, MPI_STATUSES_IGNORE);
            c->nreq = 0;
        }
        int rc = MPI_Iallreduce(MPI_IN_PLACE, grads + a, (int)cnt, MPI_FLOAT, MPI_SUM,
                                MPI_COMM_WORLD, &c->req[c->nreq++]);
        if (rc != MPI_SUCCESS) {
            mae_error e;
            mpi_fail(&e, "the gradient all-reduce", rc);
            mae_dist_abort(e.msg, 1);
        }
        end = a;
    }
}

static void cpu_ready(void *ctx, float *grads, size_t off, size_t n) {
    cpu_sync *c = ctx;
    size_t a, b;
    if (mae_buckets_take(&c->bk, off, n, &a, &b)) start_span(c, grads, a, b);
    if (c->nreq) { /* let MPI progress what is in flight */
        int done = 0;
        MPI_Testall(c->nreq, c->req, &done, MPI_STATUSES_IGNORE);
        if (done) c->nreq = 0;
    }
}

static int cpu_finish(void *ctx, float *grads, size_t n, mae_error *err) {
    cpu_sync *c = ctx;
    size_t a, b;
    if (mae_buckets_take(&c->bk, 0, n, &a, &b)) start_span(c, grads, a, b);
    double t0 = mae_clock();
    int rc = c->nreq ? wait_all(c->req, c->nreq, "the gradient all-reduce", err) : MAE_OK;
    g_wait_s += mae_clock() - t0;
    c->nreq = 0;
    mae_buckets_reset(&c->bk);
    return rc;
}

#if defined(MAE_HAVE_CUDA)
int mae_dist_nccl_sync(mae_grad_sync *s, mae_error *err); /* dist_nccl.c */
#endif

int mae_dist_grad_sync(mae_grad_sync *s, const char *device, mae_error *err) {
    memset(s, 0, sizeof *s);
    s->world = g_world;
    int cuda = device && strcmp(device, "cuda") == 0;
    /* MAE_DIST_FORCE_SYNC=1 runs the NCCL path in a world of 1 (a check on a one-GPU machine) */
    const char *force = getenv("MAE_DIST_FORCE_SYNC");
    if (g_world == 1 && !(cuda && force && strcmp(force, "1") == 0)) return MAE_OK;
    if (cuda) {
#if defined(MAE_HAVE_CUDA)
        return mae_dist_nccl_sync(s, err);
#else
        return mae_errf(err, "--device cuda with %d ranks: this build has no CUDA", g_world);
#endif
    }
    memset(&g_cs, 0, sizeof g_cs);
    mae_buckets_init(&g_cs.bk);
    s->ctx = &g_cs;
    s->ready = mae_dist_overlap() ? cpu_ready : NULL;
    s->finish = cpu_finish;
    return MAE_OK;
}

#endif /* MAE_HAVE_MPI */
