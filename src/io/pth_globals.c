/* pth_globals.c - the allow-list of globals of the restricted unpickler and what REDUCE, NEWOBJ,
 * BUILD and BINPERSID do with them (see pth_pickle.h). Nothing is ever called: each allowed
 * name has a fixed meaning implemented here, every other name is rejected when it is named.
 *
 * numpy.core.multiarray.scalar, numpy.dtype (old training runs may save numpy numbers in their
 * args) are accepted as INERT values: REDUCE on them gives an opaque value whose arguments are
 * never looked at, and BUILD on it is ignored. _codecs.encode(str, 'latin1') is how protocol 2
 * writes bytes; it is implemented (UTF-8 text to latin-1 bytes), nothing else of _codecs is. */
#include <inttypes.h>
#include <string.h>

#include "common.h"
#include "pth_pickle_impl.h"

enum {
    G_ODICT, G_NAMESPACE, G_REBUILD_V2, G_REBUILD, G_PARAM, G_PARAM_STATE, G_STORAGE, G_SIZE,
    G_DEVICE, G_DTYPE, G_ENCODE, G_BYTES, G_SET, G_NP_SCALAR, G_NP_DTYPE
};

static const struct {
    const char *module, *name;
    int kind, dtype;
} k_globals[] = {
    {"collections", "OrderedDict", G_ODICT, 0},
    {"argparse", "Namespace", G_NAMESPACE, 0},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_V2, 0},
    {"torch._utils", "_rebuild_tensor", G_REBUILD, 0},
    {"torch._utils", "_rebuild_parameter", G_PARAM, 0},
    {"torch._utils", "_rebuild_parameter_with_state", G_PARAM_STATE, 0},
    {"torch", "FloatStorage", G_STORAGE, PTH_F32},
    {"torch", "HalfStorage", G_STORAGE, PTH_F16},
    {"torch", "BFloat16Storage", G_STORAGE, PTH_BF16},
    {"torch", "DoubleStorage", G_STORAGE, PTH_F64},
    {"torch", "LongStorage", G_STORAGE, PTH_I64},
    {"torch", "IntStorage", G_STORAGE, PTH_I32},
    {"torch", "ShortStorage", G_STORAGE, PTH_I16},
    {"torch", "CharStorage", G_STORAGE, PTH_I8},
    {"torch", "ByteStorage", G_STORAGE, PTH_U8},
    {"torch", "BoolStorage", G_STORAGE, PTH_BOOL},
    {"torch", "UntypedStorage", G_STORAGE, PTH_U8}, /* raw bytes */
    {"torch", "Size", G_SIZE, 0},
    {"torch", "device", G_DEVICE, 0},
    {"torch", "float32", G_DTYPE, 0}, {"torch", "float16", G_DTYPE, 0},
    {"torch", "bfloat16", G_DTYPE, 0}, {"torch", "float64", G_DTYPE, 0},
    {"torch", "int64", G_DTYPE, 0}, {"torch", "int32", G_DTYPE, 0},
    {"torch", "int16", G_DTYPE, 0}, {"torch", "int8", G_DTYPE, 0},
    {"torch", "uint8", G_DTYPE, 0}, {"torch", "bool", G_DTYPE, 0},
    {"_codecs", "encode", G_ENCODE, 0},
    {"builtins", "bytes", G_BYTES, 0}, {"__builtin__", "bytes", G_BYTES, 0},
    {"builtins", "set", G_SET, 0}, {"__builtin__", "set", G_SET, 0},
    {"builtins", "frozenset", G_SET, 0}, {"__builtin__", "frozenset", G_SET, 0},
    {"numpy.core.multiarray", "scalar", G_NP_SCALAR, 0},
    {"numpy._core.multiarray", "scalar", G_NP_SCALAR, 0},
    {"numpy", "dtype", G_NP_DTYPE, 0},
};
#define N_GLOBALS ((int)(sizeof k_globals / sizeof k_globals[0]))

size_t pk_dtype_size(int dtype) {
    switch (dtype) {
    case PTH_F64: case PTH_I64: return 8;
    case PTH_F32: case PTH_I32: return 4;
    case PTH_F16: case PTH_BF16: case PTH_I16: return 2;
    default: return 1;
    }
}

int pk_global(pk_unpickler *u, const char *module, const char *name, pk_value **out) {
    for (int i = 0; i < N_GLOBALS; i++) {
        if (strcmp(k_globals[i].module, module) == 0 && strcmp(k_globals[i].name, name) == 0) {
            *out = pk_new(u, PK_GLOBAL);
            (*out)->sub = i;
            return MAE_OK;
        }
    }
    size_t n = strlen(name);
    if (strcmp(module, "torch") == 0 && n > 7 && strcmp(name + n - 7, "Storage") == 0)
        return pk_fail(u, "unsupported storage type 'torch.%s' (its dtype cannot be read; "
                       "supported: Float, Half, BFloat16, Double, Long, Int, Short, Char, Byte, "
                       "Bool, Untyped)", name);
    return pk_fail(u, "forbidden global '%s.%s': only the names a checkpoint of tensors needs "
                   "are allowed (nothing in the file is ever run)", module, name);
}

static const char *gname(const pk_value *fn, char *buf, size_t cap) {
    snprintf(buf, cap, "%s.%s", k_globals[fn->sub].module, k_globals[fn->sub].name);
    return buf;
}

static int is_int(const pk_value *v) { return v->type == PK_INT; }

/* torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
 * backward_hooks[, metadata]) and the older _rebuild_tensor(storage, offset, size, stride). */
static int rebuild_tensor(pk_unpickler *u, const pk_value *args, int v2, pk_value **out) {
    size_t n = args->u.seq.n;
    pk_value *const *a = args->u.seq.v;
    if (v2 ? (n != 6 && n != 7) : n != 4)
        return pk_fail(u, "%s takes %s arguments, got %zu", v2 ? "_rebuild_tensor_v2" :
                       "_rebuild_tensor", v2 ? "6 or 7" : "4", n);
    if (a[0]->type != PK_STORAGE || !is_int(a[1]) || a[2]->type != PK_TUPLE ||
        a[3]->type != PK_TUPLE)
        return pk_fail(u, "tensor arguments must be (storage, int, tuple, tuple, ...), got (%s, "
                       "%s, %s, %s, ...)", pk_type_name(a[0]), pk_type_name(a[1]),
                       pk_type_name(a[2]), pk_type_name(a[3]));
    const pk_storage *st = a[0]->u.storage;
    const pk_value *size = a[2], *stride = a[3];
    size_t nd = size->u.seq.n;
    if (nd > PTH_MAX_DIMS)
        return pk_fail(u, "tensor has %zu dimensions (at most %d are supported)", nd,
                       PTH_MAX_DIMS);
    if (stride->u.seq.n != nd)
        return pk_fail(u, "tensor has %zu sizes but %zu strides", nd, stride->u.seq.n);
    pth_tensor *t = pk_alloc(u, sizeof *t);
    t->dtype = st->dtype;
    t->ndim = (int)nd;
    t->offset = a[1]->u.i;
    if (t->offset < 0) return pk_fail(u, "tensor has a negative storage offset");
    uint64_t numel = 1, maxidx = (uint64_t)t->offset;
    for (size_t d = 0; d < nd; d++) {
        const pk_value *s = size->u.seq.v[d], *r = stride->u.seq.v[d];
        if (!is_int(s) || !is_int(r) || s->u.i < 0 || r->u.i < 0)
            return pk_fail(u, "tensor size/stride %zu is not a non-negative int", d);
        t->shape[d] = s->u.i;
        t->stride[d] = r->u.i;
        uint64_t sz = (uint64_t)s->u.i, sd = (uint64_t)r->u.i;
        if (sz && numel > (uint64_t)INT64_MAX / sz)
            return pk_fail(u, "tensor has too many elements");
        numel *= sz;
        if (sz > 1 && sd && (sz - 1 > UINT64_MAX / sd || (sz - 1) * sd > UINT64_MAX - maxidx))
            return pk_fail(u, "tensor strides overflow");
        if (sz > 1) maxidx += (sz - 1) * sd;
    }
    if (numel > SIZE_MAX) return pk_fail(u, "tensor has too many elements");
    if (numel > 0 && maxidx >= st->numel)
        return pk_fail(u, "tensor reaches element %" PRIu64 " of a storage of %" PRIu64
                       " elements (offset %" PRId64 ")", maxidx, st->numel, t->offset);
    t->numel = (size_t)numel;
    t->storage = st->data;
    t->storage_bytes = st->bytes;
    pk_value *v = pk_new(u, PK_TENSOR);
    v->u.tensor = t;
    *out = v;
    return MAE_OK;
}

/* _codecs.encode(text, 'latin1'): the UTF-8 text's code points (all < 256) as bytes. */
static int encode_latin1(pk_unpickler *u, const pk_value *args, pk_value **out) {
    const pk_value *s = args->u.seq.n == 2 ? args->u.seq.v[0] : NULL;
    if (!s || s->type != PK_STR ||
        !(pk_str_eq(args->u.seq.v[1], "latin1") || pk_str_eq(args->u.seq.v[1], "latin-1")))
        return pk_fail(u, "_codecs.encode is only supported as encode(str, 'latin1')");
    const uint8_t *p = (const uint8_t *)s->u.s.p;
    uint8_t *b = pk_alloc(u, s->u.s.len + 1);
    size_t n = 0;
    for (size_t i = 0; i < s->u.s.len; i++) {
        if (p[i] < 0x80) {
            b[n++] = p[i];
        } else if ((p[i] == 0xC2 || p[i] == 0xC3) && i + 1 < s->u.s.len &&
                   (p[i + 1] & 0xC0) == 0x80) {
            b[n++] = (uint8_t)(((p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F));
            i++;
        } else {
            return pk_fail(u, "_codecs.encode: text is not latin-1 in UTF-8");
        }
    }
    pk_value *v = pk_new(u, PK_BYTES);
    v->u.s.p = (const char *)b;
    v->u.s.len = n;
    *out = v;
    return MAE_OK;
}

int pk_call(pk_unpickler *u, pk_value *fn, pk_value *args, int newobj, pk_value **out) {
    char nm[2 * PK_MAX_GLOBAL];
    if (fn->type != PK_GLOBAL)
        return pk_fail(u, "cannot call a %s", pk_type_name(fn));
    int kind = k_globals[fn->sub].kind;
    size_t n = args->u.seq.n;
    pk_value *const *a = args->u.seq.v;
    if (newobj && kind != G_NAMESPACE && kind != G_ODICT)
        return pk_fail(u, "NEWOBJ of %s is not supported", gname(fn, nm, sizeof nm));
    switch (kind) {
    case G_ODICT:
    case G_NAMESPACE:
        if (n != 0) return pk_fail(u, "%s with arguments", gname(fn, nm, sizeof nm));
        *out = pk_new(u, PK_DICT);
        (*out)->sub = kind == G_NAMESPACE;
        return MAE_OK;
    case G_REBUILD_V2:
    case G_REBUILD: return rebuild_tensor(u, args, kind == G_REBUILD_V2, out);
    case G_PARAM:
    case G_PARAM_STATE:
        if (n != (kind == G_PARAM ? 3u : 4u) || a[0]->type != PK_TENSOR)
            return pk_fail(u, "%s needs (tensor, requires_grad, hooks%s)",
                           gname(fn, nm, sizeof nm), kind == G_PARAM ? "" : ", state");
        *out = a[0];
        return MAE_OK;
    case G_SIZE:
        if (n != 1 || a[0]->type != PK_TUPLE) return pk_fail(u, "torch.Size needs a tuple");
        *out = a[0];
        return MAE_OK;
    case G_ENCODE: return encode_latin1(u, args, out);
    case G_BYTES:
        if (n != 0) return pk_fail(u, "bytes() is only supported without arguments");
        *out = pk_new(u, PK_BYTES);
        (*out)->u.s.p = "";
        return MAE_OK;
    case G_SET:
        if (n > 1 || (n == 1 && a[0]->type != PK_LIST))
            return pk_fail(u, "%s is only supported on a list", gname(fn, nm, sizeof nm));
        *out = pk_new(u, PK_SET);
        if (n) (*out)->u.seq = a[0]->u.seq;
        (*out)->u.seq.cap = (*out)->u.seq.n; /* the array is shared: growing copies it */
        return MAE_OK;
    case G_DEVICE:
    case G_NP_SCALAR:
    case G_NP_DTYPE:
        *out = pk_new(u, PK_OPAQUE);
        (*out)->u.what = k_globals[fn->sub].name;
        return MAE_OK;
    default: return pk_fail(u, "calling %s is not supported", gname(fn, nm, sizeof nm));
    }
}

int pk_build(pk_unpickler *u, pk_value *inst, pk_value *state) {
    if (inst->type == PK_OPAQUE) return MAE_OK; /* inert: the state is never looked at */
    if (inst->type == PK_DICT && inst->sub == 1) { /* argparse.Namespace: its __dict__ */
        if (state->type != PK_DICT)
            return pk_fail(u, "argparse.Namespace state is a %s, not a dict",
                           pk_type_name(state));
        if (inst->u.dict.n)
            return pk_fail(u, "argparse.Namespace built twice");
        /* shares the state's items (copying would let BINGET + BUILD repeats blow up memory);
         * cap = n makes a later append copy the array instead of writing into the state's */
        inst->u.dict = state->u.dict;
        inst->u.dict.cap = inst->u.dict.n;
        return MAE_OK;
    }
    /* An OrderedDict's state is its instance attributes (a state dict's _metadata), not
     * items: ignored. */
    if (inst->type == PK_DICT) return MAE_OK;
    return pk_fail(u, "BUILD on a %s is not supported", pk_type_name(inst));
}

int pk_persistent(pk_unpickler *u, pk_value *pid, pk_value **out) {
    pk_value *const *a = pid->type == PK_TUPLE ? pid->u.seq.v : NULL;
    if (!a || pid->u.seq.n != 5 || !pk_str_eq(a[0], "storage") || a[1]->type != PK_GLOBAL ||
        k_globals[a[1]->sub].kind != G_STORAGE || a[2]->type != PK_STR || !is_int(a[4]) ||
        a[4]->u.i < 0)
        return pk_fail(u, "persistent id is not ('storage', torch.<T>Storage, key, location, "
                       "numel)");
    char key[128];
    if (a[2]->u.s.len >= sizeof key || memchr(a[2]->u.s.p, 0, a[2]->u.s.len) ||
        memchr(a[2]->u.s.p, '/', a[2]->u.s.len) || a[2]->u.s.len == 0)
        return pk_fail(u, "malformed storage key");
    memcpy(key, a[2]->u.s.p, a[2]->u.s.len);
    key[a[2]->u.s.len] = '\0';
    int dtype = k_globals[a[1]->sub].dtype;
    uint64_t numel = (uint64_t)a[4]->u.i;
    if (numel > SIZE_MAX / pk_dtype_size(dtype))
        return pk_fail(u, "storage '%s' declares %" PRIu64 " elements (too many)", key, numel);
    pk_storage *st = pk_alloc(u, sizeof *st);
    st->dtype = dtype;
    st->numel = numel;
    st->bytes = (size_t)numel * pk_dtype_size(dtype);
    if (u->persistent(u->ctx, key, dtype, numel, st, u->err) != MAE_OK) return MAE_ERR;
    pk_value *v = pk_new(u, PK_STORAGE);
    v->u.storage = st;
    *out = v;
    return MAE_OK;
}
