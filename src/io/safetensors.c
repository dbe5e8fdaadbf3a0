/* safetensors.c - validating reader and atomic writer for the safetensors format. */
#define _POSIX_C_SOURCE 200809L

#include "safetensors.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "common.h"
#include "dtype.h"
#include "fileio.h"

/* Known dtypes; rank orders them as Python's safetensors does when writing. */
static const struct {
    const char *name;
    size_t size;
    int rank;
} k_dtypes[] = {
    {"BOOL", 1, 0},  {"U8", 1, 1},   {"I8", 1, 2},   {"F8_E5M2", 1, 3}, {"F8_E4M3", 1, 4},
    {"I16", 2, 5},   {"U16", 2, 6},  {"F16", 2, 7},  {"BF16", 2, 8},    {"I32", 4, 9},
    {"U32", 4, 10},  {"F32", 4, 11}, {"F64", 8, 12}, {"I64", 8, 13},    {"U64", 8, 14},
};
#define N_DTYPES ((int)(sizeof k_dtypes / sizeof k_dtypes[0]))

static int dtype_index(const char *dtype) {
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(k_dtypes[i].name, dtype) == 0) return i;
    return -1;
}

size_t st_dtype_size(const char *dtype) {
    int i = dtype ? dtype_index(dtype) : -1;
    return i < 0 ? 0 : k_dtypes[i].size;
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = mae_xmalloc(n);
    memcpy(d, s, n);
    return d;
}

/* ------------------------------------------------------------------ reader */

void st_close(st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->t);
    free(f->buf);
    char path[sizeof f->path];
    memcpy(path, f->path, sizeof path);
    memset(f, 0, sizeof *f);
    memcpy(f->path, path, sizeof path); /* keep the name for messages after a failed open */
}

/* A JSON number that is an integer in [0, 2^53]. */
static int json_uint(const cJSON *it, uint64_t *out) {
    if (!cJSON_IsNumber(it)) return 0;
    double d = it->valuedouble;
    if (!(d >= 0.0 && d <= 9007199254740992.0) || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

static int cmp_by_begin(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp((*(const st_tensor *const *)a)->name, (*(const st_tensor *const *)b)->name);
}

/* Parses and validates one tensor entry of the header into *t. */
static int parse_tensor(const st_file *f, const cJSON *e, st_tensor *t, mae_error *err) {
    const char *name = e->string;
    if (strlen(name) >= MAE_MAX_NAME)
        return mae_errf(err, "%s: tensor name '%.60s...' longer than %d bytes", f->path, name,
                        MAE_MAX_NAME - 1);
    strcpy(t->name, name);
    if (!cJSON_IsObject(e))
        return mae_errf(err, "%s: header entry '%s' is not an object", f->path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off))
        return mae_errf(err, "%s: tensor '%s' needs string 'dtype' and arrays 'shape' and "
                        "'data_offsets'", f->path, name);
    int di = dtype_index(dt->valuestring);
    if (di < 0)
        return mae_errf(err, "%s: tensor '%s' has unknown dtype '%.32s'", f->path, name,
                        dt->valuestring);
    strcpy(t->dtype, k_dtypes[di].name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAX_DIMS)
        return mae_errf(err, "%s: tensor '%s' has %d dimensions (at most %d supported)",
                        f->path, name, nd, ST_MAX_DIMS);
    t->ndim = nd;
    size_t numel = 1;
    int d = 0;
    for (const cJSON *it = sh->child; it; it = it->next, d++) {
        uint64_t v;
        if (cJSON_IsNumber(it) && it->valuedouble < 0)
            return mae_errf(err, "%s: tensor '%s' has a negative dimension (%g)", f->path,
                            name, it->valuedouble);
        if (!json_uint(it, &v) || v > (uint64_t)INT64_MAX || !mae_size_mul(&numel, numel, v))
            return mae_errf(err, "%s: tensor '%s' has an invalid shape entry", f->path, name);
        t->shape[d] = (int64_t)v;
    }
    t->numel = numel;
    size_t nbytes;
    if (!mae_size_mul(&nbytes, numel, k_dtypes[di].size))
        return mae_errf(err, "%s: tensor '%s' is too large", f->path, name);
    if (cJSON_GetArraySize(off) != 2 || !json_uint(off->child, &t->begin) ||
        !json_uint(off->child->next, &t->end) || t->begin > t->end)
        return mae_errf(err, "%s: tensor '%s' has invalid data_offsets (need [begin, end] with "
                        "0 <= begin <= end)", f->path, name);
    if (t->end - t->begin != (uint64_t)nbytes)
        return mae_errf(err, "%s: tensor '%s' data_offsets [%" PRIu64 ", %" PRIu64 "] span %"
                        PRIu64 " bytes but shape and dtype %s need %zu", f->path, name,
                        t->begin, t->end, t->end - t->begin, t->dtype, nbytes);
    if (t->end > (uint64_t)f->data_size)
        return mae_errf(err, "%s: tensor '%s' data_offsets [%" PRIu64 ", %" PRIu64 "] are out "
                        "of range of the %zu-byte data section (truncated file?)", f->path,
                        name, t->begin, t->end, f->data_size);
    return MAE_OK;
}

static int parse_metadata(st_file *f, const cJSON *m, mae_error *err) {
    if (f->meta_keys)
        return mae_errf(err, "%s: header has more than one __metadata__ entry", f->path);
    if (!cJSON_IsObject(m)) return mae_errf(err, "%s: __metadata__ is not an object", f->path);
    int n = cJSON_GetArraySize(m);
    f->meta_keys = mae_xcalloc((size_t)n + 1, sizeof(char *));
    f->meta_vals = mae_xcalloc((size_t)n + 1, sizeof(char *));
    for (const cJSON *it = m->child; it; it = it->next) {
        if (!cJSON_IsString(it))
            return mae_errf(err, "%s: __metadata__ value of '%.64s' is not a string", f->path,
                            it->string);
        f->meta_keys[f->nmeta] = xstrdup(it->string);
        f->meta_vals[f->nmeta] = xstrdup(it->valuestring);
        f->nmeta++;
    }
    return MAE_OK;
}

/* Names must be unique; non-empty byte ranges must not overlap (after sorting by begin it is
 * enough to compare neighbours). */
static int check_unique_and_disjoint(st_file *f, mae_error *err) {
    if (f->n < 2) return MAE_OK;
    const st_tensor **p = mae_xmalloc((size_t)f->n * sizeof *p);
    int rc = MAE_OK, m = 0;
    for (int i = 0; i < f->n; i++) p[i] = &f->t[i];
    qsort(p, (size_t)f->n, sizeof *p, cmp_by_name);
    for (int i = 0; i + 1 < f->n && rc == MAE_OK; i++)
        if (strcmp(p[i]->name, p[i + 1]->name) == 0)
            rc = mae_errf(err, "%s: tensor '%s' appears twice in the header", f->path, p[i]->name);
    for (int i = 0; i < f->n; i++)
        if (f->t[i].end > f->t[i].begin) p[m++] = &f->t[i];
    qsort(p, (size_t)m, sizeof *p, cmp_by_begin);
    for (int i = 0; i + 1 < m && rc == MAE_OK; i++)
        if (p[i]->end > p[i + 1]->begin)
            rc = mae_errf(err, "%s: tensors '%s' [%" PRIu64 ", %" PRIu64 ") and '%s' [%" PRIu64
                          ", %" PRIu64 ") overlap", f->path, p[i]->name, p[i]->begin, p[i]->end,
                          p[i + 1]->name, p[i + 1]->begin, p[i + 1]->end);
    free(p);
    return rc;
}

int st_open(st_file *f, const char *path, mae_error *err) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path ? path : "");
    if (mae_read_file(path, &f->buf, &f->size, err) != MAE_OK) return MAE_ERR;
    if (f->size < 8) {
        mae_errf(err, "%s: not a safetensors file (%zu bytes, shorter than the 8-byte header "
                 "length)", f->path, f->size);
        st_close(f);
        return MAE_ERR;
    }
    uint64_t hlen = mae_ld_le(f->buf, 8);
    if (hlen > ST_MAX_HEADER || hlen > (uint64_t)(f->size - 8)) {
        mae_errf(err, "%s: header length %" PRIu64 " is %s (file has %zu bytes); not a "
                 "safetensors file or truncated", f->path, hlen,
                 hlen > ST_MAX_HEADER ? "absurd (> 100 MB)" : "larger than the file", f->size);
        st_close(f);
        return MAE_ERR;
    }
    f->data = f->buf + 8 + hlen;
    f->data_size = f->size - 8 - (size_t)hlen;

    /* Parse a NUL-terminated copy so the JSON parser can never run past the header. */
    char *hdr = mae_xmalloc((size_t)hlen + 1);
    memcpy(hdr, f->buf + 8, (size_t)hlen);
    hdr[hlen] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen + 1, &end, 0);
    int rc = MAE_OK;
    if (root && end) /* allow only trailing padding */
        while (end < hdr + hlen && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
            end++;
    if (!root || !end || end != hdr + hlen) {
        rc = mae_errf(err, "%s: header is not valid JSON (near byte %td of %" PRIu64 ")",
                      f->path, end ? end - hdr : (ptrdiff_t)0, hlen);
    } else if (!cJSON_IsObject(root)) {
        rc = mae_errf(err, "%s: header is not a JSON object", f->path);
    } else {
        int count = cJSON_GetArraySize(root);
        f->t = mae_xcalloc((size_t)count + 1, sizeof(st_tensor));
        for (const cJSON *e = root->child; e && rc == MAE_OK; e = e->next) {
            if (!e->string)
                rc = mae_errf(err, "%s: header entry without a name", f->path);
            else if (strcmp(e->string, "__metadata__") == 0)
                rc = parse_metadata(f, e, err);
            else if ((rc = parse_tensor(f, e, &f->t[f->n], err)) == MAE_OK)
                f->n++;
        }
        if (rc == MAE_OK) rc = check_unique_and_disjoint(f, err);
    }
    cJSON_Delete(root);
    free(hdr);
    if (rc != MAE_OK) st_close(f);
    return rc;
}

int st_find(const st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) return i;
    return -1;
}

const char *st_meta(const st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

static int check_read(const st_file *f, int idx, size_t expected, mae_error *err) {
    if (idx < 0 || idx >= f->n)
        return mae_errf(err, "%s: tensor index %d out of range (%d tensors)", f->path, idx, f->n);
    const st_tensor *t = &f->t[idx];
    if (t->numel != expected) {
        char s[160];
        mae_shape_str(s, sizeof s, t->ndim, t->shape, "[]");
        return mae_errf(err, "%s: tensor '%s' has shape %s (%zu elements), expected %zu "
                        "elements", f->path, t->name, s, t->numel, expected);
    }
    return MAE_OK;
}

int st_read_f32(const st_file *f, int idx, float *dst, size_t expected_numel, mae_error *err) {
    if (check_read(f, idx, expected_numel, err) != MAE_OK) return MAE_ERR;
    const st_tensor *t = &f->t[idx];
    const uint8_t *p = f->data + t->begin;
    size_t n = t->numel;
    if (strcmp(t->dtype, "F32") == 0) {
        if (mae_host_is_le()) {
            if (n) memcpy(dst, p, n * 4);
        } else {
            for (size_t i = 0; i < n; i++) {
                uint32_t b = (uint32_t)mae_ld_le(p + 4 * i, 4);
                memcpy(&dst[i], &b, 4);
            }
        }
    } else if (strcmp(t->dtype, "F16") == 0) {
        for (size_t i = 0; i < n; i++) dst[i] = mae_half_to_float((uint32_t)mae_ld_le(p + 2 * i, 2));
    } else if (strcmp(t->dtype, "BF16") == 0) {
        for (size_t i = 0; i < n; i++) {
            dst[i] = mae_bf16_to_float((uint32_t)mae_ld_le(p + 2 * i, 2));
        }
    } else if (strcmp(t->dtype, "F64") == 0) {
        for (size_t i = 0; i < n; i++) {
            uint64_t b = mae_ld_le(p + 8 * i, 8);
            double d;
            memcpy(&d, &b, 8);
            dst[i] = mae_double_to_float(d);
        }
    } else {
        return mae_errf(err, "%s: tensor '%s' has dtype %s, expected a float type (F32, F16, "
                        "BF16 or F64)", f->path, t->name, t->dtype);
    }
    return MAE_OK;
}

int st_read_i64(const st_file *f, int idx, int64_t *dst, size_t expected_numel, mae_error *err) {
    if (check_read(f, idx, expected_numel, err) != MAE_OK) return MAE_ERR;
    const st_tensor *t = &f->t[idx];
    const uint8_t *p = f->data + t->begin;
    size_t n = t->numel;
    if (strcmp(t->dtype, "I64") == 0) {
        if (mae_host_is_le()) {
            if (n) memcpy(dst, p, n * 8);
        } else {
            for (size_t i = 0; i < n; i++) dst[i] = (int64_t)mae_ld_le(p + 8 * i, 8);
        }
    } else if (strcmp(t->dtype, "I32") == 0) {
        for (size_t i = 0; i < n; i++) dst[i] = (int32_t)(uint32_t)mae_ld_le(p + 4 * i, 4);
    } else {
        return mae_errf(err, "%s: tensor '%s' has dtype %s, expected I64 or I32", f->path,
                        t->name, t->dtype);
    }
    return MAE_OK;
}

/* ------------------------------------------------------------------ writer */

typedef struct st_entry {
    char *name;
    int dtype; /* index into k_dtypes */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    const void *data;
} st_entry;

struct st_writer {
    st_entry *e;
    int n, cap;
    char **mk, **mv;
    int nmeta, mcap;
    char bad[256]; /* first argument error, reported by save */
};

st_writer *st_writer_new(void) { return mae_xcalloc(1, sizeof(st_writer)); }

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->e[i].name);
    for (int i = 0; i < w->nmeta; i++) {
        free(w->mk[i]);
        free(w->mv[i]);
    }
    free(w->e);
    free(w->mk);
    free(w->mv);
    free(w);
}

static void *grow(void *p, int *cap, int need, size_t elem) {
    if (need <= *cap) return p;
    int nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *np = realloc(p, (size_t)nc * elem);
    MAE_ASSERT(np != NULL);
    *cap = nc;
    return np;
}

void st_writer_add(st_writer *w, const char *name, const char *dtype, int ndim,
                   const int64_t *shape, const void *data) {
    const char *problem = NULL;
    int di = dtype ? dtype_index(dtype) : -1;
    size_t numel = 1;
    if (!name || !*name || strlen(name) >= MAE_MAX_NAME || strcmp(name, "__metadata__") == 0)
        problem = "invalid or too long name";
    else if (di < 0 || (strcmp(dtype, "F32") != 0 && strcmp(dtype, "I64") != 0))
        problem = "dtype must be F32 or I64";
    else if (ndim < 0 || ndim > ST_MAX_DIMS || (ndim > 0 && !shape))
        problem = "ndim must be 0..8";
    for (int d = 0; !problem && d < ndim; d++)
        if (shape[d] < 0 || !mae_size_mul(&numel, numel, (size_t)shape[d]))
            problem = "invalid shape";
    if (!problem && numel > 0 && !data) problem = "no data";
    if (problem) {
        if (!w->bad[0])
            snprintf(w->bad, sizeof w->bad, "tensor '%.*s': %s", MAE_MAX_NAME,
                     name ? name : "(null)", problem);
        return;
    }
    w->e = grow(w->e, &w->cap, w->n + 1, sizeof(st_entry));
    st_entry *e = &w->e[w->n++];
    memset(e, 0, sizeof *e);
    e->name = xstrdup(name);
    e->dtype = di;
    e->ndim = ndim;
    for (int d = 0; d < ndim; d++) e->shape[d] = shape[d];
    e->numel = numel;
    e->data = data;
}

void st_writer_meta(st_writer *w, const char *key, const char *value) {
    if (!key || !value) {
        if (!w->bad[0]) snprintf(w->bad, sizeof w->bad, "metadata key or value is NULL");
        return;
    }
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->mk[i], key) == 0) {
            free(w->mv[i]);
            w->mv[i] = xstrdup(value);
            return;
        }
    int mc = w->mcap;
    w->mk = grow(w->mk, &mc, w->nmeta + 1, sizeof(char *));
    w->mv = grow(w->mv, &w->mcap, w->nmeta + 1, sizeof(char *));
    w->mk[w->nmeta] = xstrdup(key);
    w->mv[w->nmeta] = xstrdup(value);
    w->nmeta++;
}

/* Python's order: larger/later dtypes first (keeps 8-byte data aligned), then by name. */
static int cmp_entry(const void *a, const void *b) {
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    int rx = k_dtypes[x->dtype].rank, ry = k_dtypes[y->dtype].rank;
    if (rx != ry) return ry - rx;
    return strcmp(x->name, y->name);
}

static cJSON *raw_u64(uint64_t v) {
    char s[32];
    snprintf(s, sizeof s, "%" PRIu64, v);
    return cJSON_CreateRaw(s);
}

/* Builds the JSON header for the entries in the given order; NULL if out of memory. */
static char *build_header(const st_writer *w, st_entry **order) {
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    if (ok && w->nmeta > 0) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        ok = meta != NULL;
        for (int i = 0; ok && i < w->nmeta; i++)
            ok = cJSON_AddStringToObject(meta, w->mk[i], w->mv[i]) != NULL;
    }
    uint64_t off = 0;
    for (int i = 0; ok && i < w->n; i++) {
        const st_entry *e = order[i];
        uint64_t nbytes = (uint64_t)e->numel * k_dtypes[e->dtype].size;
        cJSON *t = cJSON_AddObjectToObject(root, e->name);
        cJSON *sh = t ? (cJSON_AddStringToObject(t, "dtype", k_dtypes[e->dtype].name),
                         cJSON_AddArrayToObject(t, "shape")) : NULL;
        cJSON *of = sh ? cJSON_AddArrayToObject(t, "data_offsets") : NULL;
        ok = of != NULL;
        for (int d = 0; ok && d < e->ndim; d++)
            ok = cJSON_AddItemToArray(sh, raw_u64((uint64_t)e->shape[d]));
        if (ok) ok = cJSON_AddItemToArray(of, raw_u64(off));
        if (ok) ok = cJSON_AddItemToArray(of, raw_u64(off + nbytes));
        off += nbytes;
    }
    char *s = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

/* Writes n elements of size esize as little-endian bytes. */
static void write_le(FILE *f, const void *data, size_t n, size_t esize) {
    if (n == 0) return;
    if (mae_host_is_le()) {
        fwrite(data, esize, n, f);
        return;
    }
    const uint8_t *p = data;
    uint8_t tmp[8];
    for (size_t i = 0; i < n; i++) {
        for (size_t b = 0; b < esize; b++) tmp[b] = p[i * esize + esize - 1 - b];
        fwrite(tmp, 1, esize, f);
    }
}

static int cmp_entry_name(const void *a, const void *b) {
    return strcmp((*(const st_entry *const *)a)->name, (*(const st_entry *const *)b)->name);
}

static const char *find_duplicate(const st_writer *w) {
    const st_entry **p = mae_xmalloc(((size_t)w->n + 1) * sizeof *p);
    const char *dup = NULL;
    for (int i = 0; i < w->n; i++) p[i] = &w->e[i];
    qsort(p, (size_t)w->n, sizeof *p, cmp_entry_name);
    for (int i = 0; i + 1 < w->n && !dup; i++)
        if (strcmp(p[i]->name, p[i + 1]->name) == 0) dup = p[i]->name;
    free(p);
    return dup;
}

int st_writer_save(st_writer *w, const char *path, mae_error *err) {
    if (w->bad[0]) return mae_errf(err, "%s: cannot save: %s", path, w->bad);
    st_entry **order = mae_xmalloc(((size_t)w->n + 1) * sizeof *order);
    for (int i = 0; i < w->n; i++) order[i] = &w->e[i];
    qsort(order, (size_t)w->n, sizeof *order, cmp_entry);
    const char *dup = find_duplicate(w);
    if (dup) {
        free(order);
        return mae_errf(err, "%s: cannot save: tensor '%s' added twice", path, dup);
    }
    char *hdr = build_header(w, order);
    if (!hdr) {
        free(order);
        return mae_errf(err, "%s: out of memory building the header", path);
    }
    size_t hlen = strlen(hdr), padded = (hlen + 7) & ~(size_t)7;
    char tmp[4200];
    FILE *f = mae_atomic_open(path, tmp, sizeof tmp, err);
    if (!f) {
        free(hdr);
        free(order);
        return MAE_ERR;
    }
    uint8_t len8[8];
    for (int b = 0; b < 8; b++) len8[b] = (uint8_t)((uint64_t)padded >> (8 * b));
    fwrite(len8, 1, 8, f);
    fwrite(hdr, 1, hlen, f);
    for (size_t i = hlen; i < padded; i++) fputc(' ', f);
    for (int i = 0; i < w->n; i++)
        write_le(f, order[i]->data, order[i]->numel, k_dtypes[order[i]->dtype].size);
    free(hdr);
    free(order);
    return mae_atomic_commit(f, tmp, path, err);
}
