/* dist_nccl.c - gradients in GPU memory summed with NCCL (one rank per GPU), bootstrapped
 * through MPI (rank 0's ncclUniqueId broadcast). libnccl is opened at run time (dlopen), so a
 * CUDA build runs, single-process, where NCCL is not installed. Buckets are all-reduced on a
 * side stream as the backward completes them (an event orders each after the kernels that
 * wrote it); finish waits on the host for the last one (polling its event, so the wait is
 * bounded by the timeout) before the optimizer's kernels are queued. */
#if defined(MAE_HAVE_MPI) && defined(MAE_HAVE_CUDA)

#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <mpi.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"

int mae_dist_nccl_sync(mae_grad_sync *s, mae_error *err);

static struct {
    ncclResult_t (*get_unique_id)(ncclUniqueId *);
    ncclResult_t (*comm_init_rank)(ncclComm_t *, int, ncclUniqueId, int);
    ncclResult_t (*all_reduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t,
                               ncclComm_t, cudaStream_t);
    ncclResult_t (*comm_abort)(ncclComm_t);
    const char *(*error_string)(ncclResult_t);
} nc;

typedef struct {
    ncclComm_t comm;
    cudaStream_t side;
    cudaEvent_t ready_ev, done_ev;
    mae_buckets bk;
} nccl_sync;
static nccl_sync g_ns;

static int load_nccl(mae_error *err) {
    static const char *names[] = {"libnccl.so.2", "libnccl.so"};
    void *h = NULL;
    for (size_t i = 0; i < 2 && !h; i++) h = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
    if (!h)
        return mae_errf(err, "--device cuda with several ranks needs NCCL, and libnccl.so.2 "
                             "could not be opened (%s); install NCCL or add its folder to "
                             "LD_LIBRARY_PATH", dlerror());
#define SYM(field, name)                                                                      \
    do {                                                                                      \
        *(void **)&nc.field = dlsym(h, name);                                                 \
        if (!nc.field) return mae_errf(err, "libnccl has no %s", name);                      \
    } while (0)
    SYM(get_unique_id, "ncclGetUniqueId");
    SYM(comm_init_rank, "ncclCommInitRank");
    SYM(all_reduce, "ncclAllReduce");
    SYM(comm_abort, "ncclCommAbort");
    SYM(error_string, "ncclGetErrorString");
#undef SYM
    return MAE_OK;
}

static void nccl_die(const char *what, ncclResult_t r) {
    char msg[400];
    snprintf(msg, sizeof msg, "%s: %s", what, nc.error_string ? nc.error_string(r) : "NCCL error");
    mae_dist_abort(msg, 1);
}

static void cuda_die(const char *what, cudaError_t e) {
    char msg[400];
    snprintf(msg, sizeof msg, "%s: %s", what, cudaGetErrorString(e));
    mae_dist_abort(msg, 1);
}

/* start summing grads[a, b) on the side stream, after the compute stream's work so far */
static void start(nccl_sync *c, float *grads, size_t a, size_t b) {
    cudaError_t e = cudaEventRecord(c->ready_ev, 0);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(c->side, c->ready_ev, 0);
    if (e != cudaSuccess) cuda_die("ordering the gradient all-reduce", e);
    ncclResult_t r = nc.all_reduce(grads + a, grads + a, b - a, ncclFloat, ncclSum, c->comm,
                                   c->side);
    if (r != ncclSuccess) nccl_die("ncclAllReduce of the gradients", r);
}

static void nccl_ready(void *ctx, float *grads, size_t off, size_t n) {
    nccl_sync *c = ctx;
    size_t a, b;
    if (mae_buckets_take(&c->bk, off, n, &a, &b)) start(c, grads, a, b);
}

/* the side stream's last all-reduce has finished */
static int event_done(void *ctx, mae_error *err) {
    (void)err;
    cudaError_t e = cudaEventQuery(((nccl_sync *)ctx)->done_ev);
    if (e == cudaSuccess) return 1;
    if (e != cudaErrorNotReady) cuda_die("the gradient all-reduce", e);
    return 0;
}

static int nccl_finish(void *ctx, float *grads, size_t n, mae_error *err) {
    nccl_sync *c = ctx;
    size_t a, b;
    if (mae_buckets_take(&c->bk, 0, n, &a, &b)) start(c, grads, a, b);
    mae_buckets_reset(&c->bk);
    cudaError_t e = cudaEventRecord(c->done_ev, c->side);
    if (e != cudaSuccess) cuda_die("the gradient all-reduce", e);
    /* bounded: a dead peer leaves NCCL waiting forever */
    if (mae_dist_poll(event_done, c, "the NCCL gradient all-reduce", err) != MAE_OK) {
        nc.comm_abort(c->comm);
        return MAE_ERR;
    }
    return MAE_OK;
}

int mae_dist_nccl_sync(mae_grad_sync *s, mae_error *err) {
    if (load_nccl(err) != MAE_OK) return MAE_ERR;
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0)
        return mae_errf(err, "rank %d: no CUDA device", mae_dist_rank());
    /* the device the backend chose (local rank mod the count, backend_cuda.cu) */
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess)
        return mae_errf(err, "rank %d: no current CUDA device", mae_dist_rank());
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (mae_dist_rank() == 0) {
        ncclResult_t r = nc.get_unique_id(&id);
        if (r != ncclSuccess) return mae_errf(err, "ncclGetUniqueId: %s", nc.error_string(r));
    }
    if (mae_dist_bcast(&id, sizeof id, err) != MAE_OK) return MAE_ERR;
    nccl_sync *c = &g_ns;
    memset(c, 0, sizeof *c);
    ncclResult_t r = nc.comm_init_rank(&c->comm, mae_dist_world(), id, mae_dist_rank());
    if (r != ncclSuccess) return mae_errf(err, "ncclCommInitRank: %s", nc.error_string(r));
    if (cudaStreamCreateWithFlags(&c->side, cudaStreamNonBlocking) != cudaSuccess ||
        cudaEventCreateWithFlags(&c->ready_ev, cudaEventDisableTiming) != cudaSuccess ||
        cudaEventCreateWithFlags(&c->done_ev, cudaEventDisableTiming) != cudaSuccess)
        return mae_errf(err, "rank %d: could not create the NCCL stream", mae_dist_rank());
    mae_buckets_init(&c->bk);
    s->world = mae_dist_world();
    s->ctx = c;
    s->ready = mae_dist_overlap() ? nccl_ready : NULL;
    s->finish = nccl_finish;
    return MAE_OK;
}

#else
typedef int mae_dist_nccl_unused; /* (ISO C: no empty translation unit) */
#endif
