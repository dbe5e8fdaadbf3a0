/* pth_pickle_impl.h - internals shared by pth_pickle.c (the machine) and pth_globals.c (what the
 * allowed globals do). Private to those two files. */
#ifndef MAE_IO_PTH_PICKLE_IMPL_H
#define MAE_IO_PTH_PICKLE_IMPL_H

#include "pth_pickle.h"

#define PK_MAX_STACK (1 << 22) /* values on the stack */
#define PK_MAX_MARKS 4096      /* nesting of MARKs */
#define PK_MAX_MEMO (1 << 24)  /* memo indices (and never more than the pickle's length) */
#define PK_MAX_GLOBAL 128      /* module / name length of a global */
/* Values may take at most this many bytes per pickle byte (+ 16 MB): a state dict needs about
 * 10; the bound stops pickles that reuse memoized values to build ever more. */
#define PK_MAX_EXPANSION 256

struct pk_unpickler {
    const uint8_t *p;
    size_t len, pos;
    const char *what;
    mae_error *err;
    size_t op_pos; /* where the current opcode starts */
    int op;        /* the current opcode, -1 before it is read */
    struct pk_block *blocks;
    size_t arena_bytes;
    pk_value **stack;
    size_t sp, scap;
    size_t *marks; /* stack heights at each MARK (PK_MAX_MARKS entries) */
    size_t nmarks;
    pk_value **memo;
    size_t memo_cap, memo_count;
    pk_persistent_fn persistent;
    void *ctx;
};

/* Zeroed arena memory (aborts if memory runs out; the arena grows linearly with the pickle). */
void *pk_alloc(pk_unpickler *u, size_t n);
pk_value *pk_new(pk_unpickler *u, int type);
void pk_vec_push(pk_unpickler *u, pk_value ***arr, size_t *n, size_t *cap, pk_value *x);
/* Fills u->err with "<what>: data.pkl byte N (OPCODE): <message>"; returns MAE_ERR. */
int pk_fail(pk_unpickler *u, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* GLOBAL / STACK_GLOBAL: the allowed global module.name, or an error naming it. */
int pk_global(pk_unpickler *u, const char *module, const char *name, pk_value **out);
/* REDUCE (newobj 0) or NEWOBJ (newobj 1) of callable fn with the tuple args. */
int pk_call(pk_unpickler *u, pk_value *fn, pk_value *args, int newobj, pk_value **out);
/* BUILD: sets the state of inst. */
int pk_build(pk_unpickler *u, pk_value *inst, pk_value *state);
/* BINPERSID: a storage from its persistent id. */
int pk_persistent(pk_unpickler *u, pk_value *pid, pk_value **out);

#endif
