/* loader.h - batches for training: per-epoch shuffle, a distributed-sampler shard, worker
 * threads that decode and augment into a bounded prefetch queue, and bad-file skipping.
 *
 * Order and content are a pure function of (dataset, seed, epoch, rank, world_size): they do not
 * depend on the number of workers. Epoch e of rank r:
 *   perm = mae_epoch_permutation(n, seed, e); padded to a multiple of world_size by repeating
 *   its start (as torch's DistributedSampler); rank r takes positions r, r+W, r+2W, ...;
 *   batches of batch_size, the last partial batch dropped (drop_last, as main_pretrain.py).
 * A sample whose file is bad (MAE_ERR_DATA) is replaced by another sample drawn from
 * (seed, epoch, index, attempt): still deterministic. Each bad file is warned about once (to
 * stderr, naming it) and counted. With strict set, the first bad file is an error instead.
 */
#ifndef MAE_DATA_LOADER_H
#define MAE_DATA_LOADER_H

#include <stdint.h>

#include "dataset.h"

typedef struct mae_loader_config {
    int batch_size;
    int num_workers; /* decode threads; 0 = decode in the thread that calls next() */
    int prefetch;    /* batches decoded ahead (queue slots); 0 = 2 (min 1) */
    uint64_t seed;
    int rank, world_size;
    int shuffle;     /* 1: per-epoch permutation; 0: dataset order (evaluation) */
    int drop_last;   /* 1: as main_pretrain.py */
    int strict;      /* 1: the first bad file is an error */
    /* where the batch images live (NULL: malloc): a GPU backend's page-locked host memory
     * makes each batch's upload a direct DMA (mae_backend.host_alloc); if it fails, malloc */
    void *(*host_alloc)(size_t bytes);
    void (*host_free)(void *p);
} mae_loader_config;
void mae_loader_config_default(mae_loader_config *c, int batch_size);

typedef struct mae_batch {
    const float *imgs;         /* (B, C, H, W) */
    const int *labels;         /* (B) */
    const uint64_t *sample_ids;/* (B): dataset index actually used (after any substitution) */
    int B;
    int64_t step;              /* index of this batch within the epoch */
} mae_batch;

typedef struct mae_loader mae_loader;

/* The loader does not own ds. Fails (err says why) on bad config or a dataset with fewer
 * samples per rank than one batch. */
mae_loader *mae_loader_create(mae_dataset *ds, const mae_loader_config *cfg, mae_error *err);
void mae_loader_free(mae_loader *l);

/* Batches per epoch per rank. */
int64_t mae_loader_steps(const mae_loader *l);

/* Begins epoch `epoch` at batch `start_step` (0, or > 0 to resume mid-epoch with the same data
 * order). Any batches still queued from before are discarded. */
void mae_loader_start_epoch(mae_loader *l, int epoch, int64_t start_step);

/* The next batch of the epoch (blocks until it is ready). *out stays valid until the next call
 * of next/start_epoch/free. Returns MAE_OK, 1 at the end of the epoch, or MAE_ERR (err filled:
 * strict mode and a bad file, too many bad files in a row, or a non-data error). */
int mae_loader_next(mae_loader *l, mae_batch *out, mae_error *err);

/* Bad files seen so far (each counted once), and seconds next() spent waiting for data. */
int64_t mae_loader_bad_files(const mae_loader *l);
double mae_loader_wait_seconds(const mae_loader *l);

/* Checks that the dataset has at least one decodable sample, trying samples 0, 1, ... (bad
 * ones are warned about and counted as usual). Returns MAE_OK or MAE_ERR ("no decodable
 * image among the N files of ..."). */
int mae_loader_check_first(mae_loader *l, mae_error *err);

#endif
