/* pth_pickle.h - the restricted unpickler behind pth.c (private to src/io).
 *
 * Builds a tree of tagged values from a pickle (protocols 2-5) without ever calling anything:
 * only the opcodes a state dict / training checkpoint needs are accepted, and GLOBAL /
 * STACK_GLOBAL accept only an allow-list of names (see k_globals in pth_pickle.c), every other
 * name is an error raised at that opcode. REDUCE / NEWOBJ / BUILD on an allowed name do what
 * the name means for a checkpoint (torch._utils._rebuild_tensor_v2 makes a tensor value, ...)
 * and nothing else.
 *
 * Values live in an arena freed at once by pk_free; containers may be shared and may even be
 * cyclic (a pickle can build a list that holds itself), so consumers must not walk them
 * recursively. Memory use is linear in the pickle's length. */
#ifndef MAE_IO_PTH_PICKLE_H
#define MAE_IO_PTH_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "mae.h"
#include "pth.h"

enum {
    PK_NONE, PK_BOOL, PK_INT, PK_FLOAT, PK_STR, PK_BYTES, PK_TUPLE, PK_LIST, PK_SET, PK_DICT,
    PK_TENSOR, PK_STORAGE, PK_GLOBAL, PK_OPAQUE
};

typedef struct pk_storage {
    int dtype;            /* PTH_* */
    uint64_t numel;       /* elements, as the persistent id declares */
    const uint8_t *data;  /* at least numel * element size bytes */
    size_t bytes;
} pk_storage;

typedef struct pk_value pk_value;
struct pk_value {
    int type;             /* PK_* */
    int sub;              /* PK_DICT: 1 if it is an argparse.Namespace; PK_GLOBAL: its id */
    union {
        int64_t i;        /* PK_BOOL, PK_INT */
        double f;         /* PK_FLOAT */
        struct { const char *p; size_t len; } s;                 /* PK_STR (UTF-8), PK_BYTES */
        struct { pk_value **v; size_t n, cap; } seq;              /* PK_TUPLE/LIST/SET */
        /* PK_DICT: n counts pointers, kv[2i] is a key and kv[2i+1] its value */
        struct { pk_value **kv; size_t n, cap; } dict;
        pth_tensor *tensor;                                       /* PK_TENSOR (name unset) */
        pk_storage *storage;                                      /* PK_STORAGE */
        const char *what;                                         /* PK_OPAQUE: what it was */
    } u;
};

/* Resolves a persistent id ('storage', <dtype>, key, location, numel): fills *st with the bytes
 * of the storage named key, at least numel elements of dtype, or fails naming the problem. */
typedef int (*pk_persistent_fn)(void *ctx, const char *key, int dtype, uint64_t numel,
                                pk_storage *st, mae_error *err);

typedef struct pk_unpickler pk_unpickler;

/* Unpickles data (len bytes; what is the file named in messages) into *root. str and bytes
 * values point into data, which must outlive them; the values stay valid until pk_free(*u).
 * On error *u is still set (pk_free it). */
int pk_load(pk_unpickler **u, const uint8_t *data, size_t len, const char *what,
            pk_persistent_fn persistent, void *ctx, pk_value **root, mae_error *err);
void pk_free(pk_unpickler *u);

/* The value of str key in a PK_DICT (the last assignment wins), or NULL. */
const pk_value *pk_dict_get(const pk_value *d, const char *key);
/* "dict", "tensor", ... for messages. */
const char *pk_type_name(const pk_value *v);
/* Bytes per element of a PTH_* dtype. */
size_t pk_dtype_size(int dtype);
/* 1 if v is a PK_STR equal to s. */
int pk_str_eq(const pk_value *v, const char *s);

#endif
