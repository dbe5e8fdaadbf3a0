/* pth.c - PyTorch checkpoint files read without running them (see pth.h): the zip archive
 * (zip.c), the restricted unpickler (pth_pickle.c, pth_globals.c), then the state dict, the
 * args and the epoch picked out of what it built, and strided reads converted to float32. */
#define _POSIX_C_SOURCE 200809L

#include "pth.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dtype.h"
#include "fileio.h"
#include "pth_pickle.h"
#include "zip.h"

#define PTH_MAX_ARGS 4096 /* args entries looked at */

typedef struct pth_priv {
    uint8_t *buf; /* the whole file */
    size_t size;
    zip_archive z;
    char prefix[256]; /* "archive/" */
} pth_priv;

/* The legacy format (torch < 1.6 or _use_new_zipfile_serialization=False) is a sequence of
 * pickles, the first one the magic number 0x1950a86a20f9469cfc6c as a protocol-2 LONG1. */
static const uint8_t k_legacy_magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                         0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

static const char *dtype_name(int dtype) {
    static const char *const names[] = {"?", "F32", "F16", "BF16", "F64", "I64", "I32",
                                        "I16", "I8", "U8", "BOOL"};
    return dtype >= PTH_F32 && dtype <= PTH_BOOL ? names[dtype] : "?";
}

int pth_is_zip(const uint8_t *buf, size_t len) {
    return len >= 4 && buf[0] == 'P' && buf[1] == 'K' && buf[2] == 3 && buf[3] == 4;
}

void pth_close(pth_file *f) {
    if (!f) return;
    for (int i = 0; i < f->nargs; i++) {
        free(f->arg_keys[i]);
        free(f->arg_vals[i]);
    }
    free(f->arg_keys);
    free(f->arg_vals);
    free(f->t);
    pth_priv *p = f->priv;
    if (p) {
        zip_close(&p->z);
        free(p->buf);
        free(p);
    }
    char path[sizeof f->path];
    memcpy(path, f->path, sizeof path);
    memset(f, 0, sizeof *f);
    memcpy(f->path, path, sizeof path); /* keep the name for messages after a failed open */
}

/* A zip entry "<prefix><rest>": its index, or -1. */
static int find_entry(const pth_file *f, const char *rest) {
    const pth_priv *p = f->priv;
    char name[512];
    snprintf(name, sizeof name, "%s%s", p->prefix, rest);
    return zip_find(&p->z, name);
}

/* Persistent-id callback: the storage <prefix>data/<key>. */
static int load_storage(void *ctx, const char *key, int dtype, uint64_t numel, pk_storage *st,
                        mae_error *err) {
    pth_file *f = ctx;
    pth_priv *p = f->priv;
    char rest[160];
    snprintf(rest, sizeof rest, "data/%s", key);
    int i = find_entry(f, rest);
    if (i < 0)
        return mae_errf(err, "%s: storage '%s' is missing from the archive (no entry '%s%s')",
                        f->path, key, p->prefix, rest);
    const uint8_t *data;
    size_t size;
    if (zip_read(&p->z, i, &data, &size, err) != MAE_OK) return MAE_ERR;
    if (size < st->bytes)
        return mae_errf(err, "%s: storage '%s' has %zu bytes, but %" PRIu64 " elements of %s "
                        "need %zu (corrupt)", f->path, key, size, numel, dtype_name(dtype),
                        st->bytes);
    st->data = data;
    return MAE_OK;
}

/* Opens the zip, finds the archive prefix and checks the version and byteorder records. */
static int open_archive(pth_file *f, mae_error *err) {
    pth_priv *p = f->priv;
    if (!pth_is_zip(p->buf, p->size)) {
        if (p->size >= sizeof k_legacy_magic &&
            memcmp(p->buf, k_legacy_magic, sizeof k_legacy_magic) == 0)
            return mae_errf(err, "%s: legacy (pre-1.6) torch.save format; re-save it with "
                            "torch >= 1.6 (torch.save(torch.load(path), path))", f->path);
        if (p->size >= 1 && p->buf[0] == 0x80)
            return mae_errf(err, "%s: a bare pickle, not a torch.save zip archive", f->path);
        return mae_errf(err, "%s: not a PyTorch checkpoint (torch.save writes a zip archive; "
                        "this file does not start with one)", f->path);
    }
    if (zip_open(&p->z, f->path, p->buf, p->size, err) != MAE_OK) return MAE_ERR;
    const char *first = p->z.n ? p->z.e[0].name : "";
    const char *slash = strchr(first, '/');
    if (!slash || (size_t)(slash - first) + 2 > sizeof p->prefix)
        return mae_errf(err, "%s: zip archive is not laid out as torch.save writes it (no "
                        "'<archive>/data.pkl')", f->path);
    memcpy(p->prefix, first, (size_t)(slash - first) + 1);
    p->prefix[slash - first + 1] = '\0';
    if (find_entry(f, "data.pkl") < 0)
        return mae_errf(err, "%s: zip archive has no '%sdata.pkl' (not a torch.save file)",
                        f->path, p->prefix);
    const uint8_t *d;
    size_t n;
    int i = find_entry(f, "byteorder");
    if (i >= 0) {
        if (zip_read(&p->z, i, &d, &n, err) != MAE_OK) return MAE_ERR;
        if (n == 3 && memcmp(d, "big", 3) == 0)
            return mae_errf(err, "%s: big-endian checkpoint (byteorder 'big') is not supported",
                            f->path);
        if (n != 6 || memcmp(d, "little", 6) != 0)
            return mae_errf(err, "%s: '%sbyteorder' is neither 'little' nor 'big'", f->path,
                            p->prefix);
    }
    i = find_entry(f, "version");
    if (i < 0) i = find_entry(f, ".data/version");
    if (i >= 0) {
        if (zip_read(&p->z, i, &d, &n, err) != MAE_OK) return MAE_ERR;
        long v = 0;
        size_t k = 0;
        while (k < n && k < 4 && d[k] >= '0' && d[k] <= '9') v = v * 10 + (d[k++] - '0');
        while (k < n && (d[k] == '\n' || d[k] == '\r' || d[k] == ' ')) k++;
        if (k == 0 || k != n || v < 1 || v > 64)
            return mae_errf(err, "%s: '%sversion' record is not a format version number",
                            f->path, p->prefix);
    }
    return MAE_OK;
}

static char *text_dup(const char *s, size_t n) {
    char *d = mae_xmalloc(n + 1);
    if (n) memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* x as Python's repr writes it: the shortest digits that read back as x, positional for
 * decimal exponents -4..15 (with ".0" if integral), else scientific ("1e-08", "1.5e+16"). */
static void format_double(char *buf, size_t cap, double x) {
    if (!isfinite(x)) {
        snprintf(buf, cap, "%s", isnan(x) ? "nan" : x > 0 ? "inf" : "-inf");
        return;
    }
    char e[48];
    int p = 1;
    for (; p < 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, x);
        if (strtod(e, NULL) == x) break;
    }
    snprintf(e, sizeof e, "%.*e", p - 1, x);
    int ex = atoi(strchr(e, 'e') + 1);
    if (ex < -4 || ex >= 16) {
        snprintf(buf, cap, "%s", e);
        return;
    }
    int n = snprintf(buf, cap, "%.*f", p - 1 - ex > 0 ? p - 1 - ex : 0, x);
    if (!strchr(buf, '.') && n >= 0 && (size_t)n + 2 < cap) memcpy(buf + n, ".0", 3);
}

/* Top-level "args" (argparse.Namespace or dict): its str/int/float/bool entries as text. */
static void collect_args(pth_file *f, const pk_value *args) {
    if (!args || args->type != PK_DICT) return;
    size_t n = args->u.dict.n / 2;
    if (n > PTH_MAX_ARGS) n = PTH_MAX_ARGS; /* (the duplicate check below is quadratic) */
    f->arg_keys = mae_xcalloc(n + 1, sizeof(char *));
    f->arg_vals = mae_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        const pk_value *k = args->u.dict.kv[2 * i], *v = args->u.dict.kv[2 * i + 1];
        char num[64];
        const char *s = num;
        size_t len;
        if (k->type != PK_STR) continue;
        if (v->type == PK_STR) {
            s = v->u.s.p;
            len = v->u.s.len;
        } else if (v->type == PK_BOOL) {
            s = v->u.i ? "True" : "False";
            len = strlen(s);
        } else if (v->type == PK_INT) {
            len = (size_t)snprintf(num, sizeof num, "%" PRId64, v->u.i);
        } else if (v->type == PK_FLOAT) {
            format_double(num, sizeof num, v->u.f);
            len = strlen(num);
        } else {
            continue; /* None, lists, ...: not a plain setting */
        }
        int j = 0; /* a key set twice: the last value wins */
        while (j < f->nargs && !(strlen(f->arg_keys[j]) == k->u.s.len &&
                                 memcmp(f->arg_keys[j], k->u.s.p, k->u.s.len) == 0))
            j++;
        if (j < f->nargs) {
            free(f->arg_vals[j]);
        } else {
            f->arg_keys[f->nargs++] = text_dup(k->u.s.p, k->u.s.len);
        }
        f->arg_vals[j] = text_dup(s, len);
    }
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const pth_tensor *)a)->name, ((const pth_tensor *)b)->name);
}

/* The tensors of state dict sd, in order. */
static int collect_tensors(pth_file *f, const pk_value *sd, mae_error *err) {
    size_t n = sd->u.dict.n / 2;
    f->t = mae_xcalloc(n + 1, sizeof *f->t);
    for (size_t i = 0; i < n; i++) {
        const pk_value *k = sd->u.dict.kv[2 * i], *v = sd->u.dict.kv[2 * i + 1];
        if (k->type != PK_STR || v->type != PK_TENSOR) continue; /* not a weight */
        pth_tensor *t = &f->t[f->n];
        if (k->u.s.len >= sizeof t->name || memchr(k->u.s.p, 0, k->u.s.len))
            return mae_errf(err, "%s: state dict key '%.60s...' is longer than %zu bytes or "
                            "holds a NUL", f->path, k->u.s.p, sizeof t->name - 1);
        *t = *v->u.tensor;
        memcpy(t->name, k->u.s.p, k->u.s.len);
        t->name[k->u.s.len] = '\0';
        f->n++;
    }
    if (f->n > 1) { /* torch never writes a key twice; refuse to guess which one is meant */
        pth_tensor *s = mae_xmalloc((size_t)f->n * sizeof *s);
        memcpy(s, f->t, (size_t)f->n * sizeof *s);
        qsort(s, (size_t)f->n, sizeof *s, cmp_tensor_name);
        int rc = MAE_OK;
        for (int i = 0; i + 1 < f->n && rc == MAE_OK; i++)
            if (strcmp(s[i].name, s[i + 1].name) == 0)
                rc = mae_errf(err, "%s: state dict key '%s' appears twice", f->path, s[i].name);
        free(s);
        if (rc != MAE_OK) return rc;
    }
    return MAE_OK;
}

static int has_tensor(const pk_value *d) {
    for (size_t i = 1; i < d->u.dict.n; i += 2)
        if (d->u.dict.kv[i]->type == PK_TENSOR) return 1;
    return 0;
}

/* Unpickles data.pkl and picks out the state dict, args and epoch. */
static int read_pickle(pth_file *f, mae_error *err) {
    pth_priv *p = f->priv;
    const uint8_t *pkl;
    size_t n;
    if (zip_read(&p->z, find_entry(f, "data.pkl"), &pkl, &n, err) != MAE_OK) return MAE_ERR;
    pk_unpickler *u;
    pk_value *root;
    int rc = pk_load(&u, pkl, n, f->path, load_storage, f, &root, err);
    if (rc == MAE_OK && root->type != PK_DICT)
        rc = mae_errf(err, "%s: the checkpoint holds a %s, not a dict of tensors", f->path,
                      pk_type_name(root));
    if (rc == MAE_OK) {
        static const char *const keys[] = {"model", "state_dict", "model_state"};
        const pk_value *sd = NULL;
        for (int i = 0; i < 3 && !sd; i++) {
            const pk_value *v = pk_dict_get(root, keys[i]);
            if (v && v->type == PK_DICT) {
                sd = v;
                snprintf(f->dict_key, sizeof f->dict_key, "%s", keys[i]);
            }
        }
        if (!sd && has_tensor(root)) sd = root;
        if (!sd)
            rc = mae_errf(err, "%s: no state dict: the top-level dict has no 'model', "
                          "'state_dict' or 'model_state' dict and holds no tensors", f->path);
        else
            rc = collect_tensors(f, sd, err);
    }
    if (rc == MAE_OK) {
        collect_args(f, pk_dict_get(root, "args"));
        const pk_value *e = pk_dict_get(root, "epoch");
        if (e && e->type == PK_INT) {
            f->has_epoch = 1;
            f->epoch = e->u.i;
        }
    }
    pk_free(u);
    return rc;
}

int pth_open(pth_file *f, const char *path, mae_error *err) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path ? path : "");
    pth_priv *p = mae_xcalloc(1, sizeof *p);
    f->priv = p;
    int rc = mae_read_file(path, &p->buf, &p->size, err);
    if (rc == MAE_OK) rc = open_archive(f, err);
    if (rc == MAE_OK) rc = read_pickle(f, err);
    if (rc != MAE_OK) pth_close(f);
    return rc;
}

int pth_find(const pth_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) return i;
    return -1;
}

const char *pth_arg(const pth_file *f, const char *key) {
    for (int i = 0; i < f->nargs; i++)
        if (strcmp(f->arg_keys[i], key) == 0) return f->arg_vals[i];
    return NULL;
}

/* ------------------------------------------------------------------ reading */

/* n elements, stride apart (in elements), from p, converted to float. */
static void convert_run(float *dst, const uint8_t *p, size_t n, size_t stride, int dtype) {
    for (size_t i = 0; i < n; i++) {
        const uint8_t *e = p + i * stride * pk_dtype_size(dtype);
        uint32_t b;
        double d;
        uint64_t q;
        switch (dtype) {
        case PTH_F32:
            b = (uint32_t)mae_ld_le(e, 4);
            memcpy(&dst[i], &b, 4);
            break;
        case PTH_F16: dst[i] = mae_half_to_float((uint32_t)mae_ld_le(e, 2)); break;
        case PTH_BF16: dst[i] = mae_bf16_to_float((uint32_t)mae_ld_le(e, 2)); break;
        default:
            MAE_ASSERT(dtype == PTH_F64);
            q = mae_ld_le(e, 8);
            memcpy(&d, &q, 8);
            dst[i] = mae_double_to_float(d);
            break;
        }
    }
}

int pth_read_f32(const pth_file *f, int idx, float *dst, size_t expected_numel, mae_error *err) {
    if (idx < 0 || idx >= f->n)
        return mae_errf(err, "%s: tensor index %d out of range (%d tensors)", f->path, idx, f->n);
    const pth_tensor *t = &f->t[idx];
    if (t->numel != expected_numel) {
        char s[160];
        mae_shape_str(s, sizeof s, t->ndim, t->shape, "[]");
        return mae_errf(err, "%s: tensor '%s' has shape %s (%zu elements), expected %zu "
                        "elements", f->path, t->name, s, t->numel, expected_numel);
    }
    if (t->dtype != PTH_F32 && t->dtype != PTH_F16 && t->dtype != PTH_BF16 &&
        t->dtype != PTH_F64)
        return mae_errf(err, "%s: tensor '%s' has dtype %s, expected a float type (F32, F16, "
                        "BF16 or F64)", f->path, t->name, dtype_name(t->dtype));
    if (t->numel == 0) return MAE_OK;
    /* pth_open checked that every element index lies inside the storage */
    int nd = t->ndim;
    size_t inner = nd ? (size_t)t->shape[nd - 1] : 1, istride = nd ? (size_t)t->stride[nd - 1] : 0;
    size_t outer = t->numel / inner, esz = pk_dtype_size(t->dtype);
    int64_t pos[PTH_MAX_DIMS] = {0};
    for (size_t o = 0; o < outer; o++) {
        size_t base = (size_t)t->offset;
        for (int d = 0; d + 1 < nd; d++) base += (size_t)pos[d] * (size_t)t->stride[d];
        MAE_ASSERT((base + (inner - 1) * istride + 1) * esz <= t->storage_bytes);
        convert_run(dst + o * inner, t->storage + base * esz, inner, istride, t->dtype);
        for (int d = nd - 2; d >= 0; d--) {
            if (++pos[d] < t->shape[d]) break;
            pos[d] = 0;
        }
    }
    return MAE_OK;
}
