/* idx.h - internal to the IDX source (idx.c, idx_source.c): reading one IDX file. */
#ifndef MAE_DATA_IDX_H
#define MAE_DATA_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Opens path (gzip-compressed or raw; what: "images" or "labels", for messages), checks the
 * magic (unsigned byte, ndims dimensions), reads the dimensions into dims and all
 * dims-product bytes of data into *data (malloc'ed, *nbytes long), and checks that nothing
 * follows. Returns MAE_OK, or MAE_ERR with err naming the file (*data NULL). */
int mae_idx_load(const char *path, const char *what, int ndims, uint32_t *dims,
                 uint8_t **data, size_t *nbytes, mae_error *err);

#endif
