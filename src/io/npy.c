/* npy.c - NumPy .npy reader (v1/v2/v3, little-endian numeric dtypes) and atomic v1.0 writer. */
#define _POSIX_C_SOURCE 200809L

#include "npy.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "common.h"
#include "dtype.h"
#include "fileio.h"

static const struct {
    const char *descr;
    size_t size;
} k_types[] = {{"<f4", 4}, {"<f8", 8}, {"<i8", 8}, {"<i4", 4}, {"|u1", 1}};
#define N_TYPES ((int)(sizeof k_types / sizeof k_types[0]))

static size_t descr_size(const char *d) {
    for (int i = 0; i < N_TYPES; i++)
        if (strcmp(k_types[i].descr, d) == 0) return k_types[i].size;
    return 0;
}

static void swap_bytes(void *data, size_t n, size_t esize) {
    uint8_t *p = data;
    for (size_t i = 0; i < n; i++, p += esize)
        for (size_t b = 0; b < esize / 2; b++) {
            uint8_t t = p[b];
            p[b] = p[esize - 1 - b];
            p[esize - 1 - b] = t;
        }
}

void npy_free(npy_array *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------------ header dict parser */

typedef struct hparse {
    const char *s, *e;
} hparse;

static void skip_ws(hparse *h) {
    while (h->s < h->e && (*h->s == ' ' || *h->s == '\t' || *h->s == '\n' || *h->s == '\r'))
        h->s++;
}

static int accept(hparse *h, char c) {
    skip_ws(h);
    if (h->s < h->e && *h->s == c) {
        h->s++;
        return 1;
    }
    return 0;
}

static int parse_str(hparse *h, char *out, size_t cap) {
    skip_ws(h);
    if (h->s >= h->e || (*h->s != '\'' && *h->s != '"')) return 0;
    char q = *h->s++;
    size_t n = 0;
    while (h->s < h->e && *h->s != q) {
        if (*h->s == '\\' || n + 1 >= cap) return 0;
        out[n++] = *h->s++;
    }
    if (h->s >= h->e) return 0;
    h->s++;
    out[n] = '\0';
    return 1;
}

static int parse_word(hparse *h, const char *w) {
    size_t n = strlen(w);
    skip_ws(h);
    if ((size_t)(h->e - h->s) < n || memcmp(h->s, w, n) != 0) return 0;
    h->s += n;
    return 1;
}

static int parse_int(hparse *h, int64_t *v) {
    skip_ws(h);
    if (h->s >= h->e || *h->s < '0' || *h->s > '9') return 0;
    int64_t x = 0;
    while (h->s < h->e && *h->s >= '0' && *h->s <= '9') {
        if (x > (INT64_MAX - 9) / 10) return 0;
        x = x * 10 + (*h->s++ - '0');
    }
    if (h->s < h->e && *h->s == 'L') h->s++; /* Python 2 long suffix */
    *v = x;
    return 1;
}

/* Parses "(d0, d1, ...)" with an optional trailing comma. */
static int parse_shape(hparse *h, npy_array *a) {
    if (!accept(h, '(')) return 0;
    a->ndim = 0;
    while (!accept(h, ')')) {
        if (a->ndim >= NPY_MAX_DIMS || !parse_int(h, &a->shape[a->ndim])) return 0;
        a->ndim++;
        if (!accept(h, ',')) return accept(h, ')');
    }
    return 1;
}

/* Parses the header dict; returns NULL or a description of the problem. */
static const char *parse_header(hparse *h, npy_array *a, int *fortran) {
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
    if (!accept(h, '{')) return "header does not start with '{'";
    while (!accept(h, '}')) {
        char key[32];
        if (!parse_str(h, key, sizeof key) || !accept(h, ':')) return "malformed header dict";
        if (strcmp(key, "descr") == 0 && !seen_descr) {
            seen_descr = 1;
            if (!parse_str(h, a->descr, sizeof a->descr)) return "malformed 'descr' value";
        } else if (strcmp(key, "fortran_order") == 0 && !seen_fortran) {
            seen_fortran = 1;
            if (parse_word(h, "True")) *fortran = 1;
            else if (parse_word(h, "False")) *fortran = 0;
            else return "malformed 'fortran_order' value";
        } else if (strcmp(key, "shape") == 0 && !seen_shape) {
            seen_shape = 1;
            if (!parse_shape(h, a)) return "malformed 'shape' value (up to 8 dims supported)";
        } else {
            return "unexpected or repeated key in header dict";
        }
        if (!accept(h, ',')) {
            if (!accept(h, '}')) return "malformed header dict";
            break;
        }
    }
    skip_ws(h);
    if (h->s != h->e) return "junk after the header dict";
    if (!seen_descr || !seen_fortran || !seen_shape)
        return "header dict lacks 'descr', 'fortran_order' or 'shape'";
    return NULL;
}

/* ------------------------------------------------------------------ load */

int npy_load(const char *path, npy_array *a, mae_error *err) {
    memset(a, 0, sizeof *a);
    uint8_t *buf;
    size_t size;
    if (mae_read_file(path, &buf, &size, err) != MAE_OK) return MAE_ERR;
    const char *problem = NULL;
    char detail[160] = "";
    size_t hstart = 0, hlen = 0, esize = 0, nbytes = 0;
    int fortran = 0;
    if (size < 6 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        problem = "not a .npy file (bad magic)";
    } else if (size < 10) {
        problem = "truncated header";
    } else if (buf[6] == 1) {
        hstart = 10;
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
    } else if (buf[6] == 2 || buf[6] == 3) {
        hstart = 12;
        if (size < 12) problem = "truncated header";
        else hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 |
                    (size_t)buf[11] << 24;
    } else {
        problem = "unsupported .npy format version";
        snprintf(detail, sizeof detail, " %d.%d", buf[6], buf[7]);
    }
    if (!problem && hlen > size - hstart) problem = "truncated header";
    if (!problem) {
        hparse h = {(const char *)buf + hstart, (const char *)buf + hstart + hlen};
        problem = parse_header(&h, a, &fortran);
    }
    if (!problem) {
        esize = descr_size(a->descr);
        if (a->descr[0] == '>') {
            problem = "big-endian data is not supported";
            snprintf(detail, sizeof detail, " '%s'", a->descr);
        } else if (esize == 0) {
            problem = "unsupported dtype (need <f4, <f8, <i8, <i4 or |u1)";
            snprintf(detail, sizeof detail, " '%s'", a->descr);
        } else if (fortran) {
            problem = "fortran_order True is not supported";
        }
    }
    if (!problem) {
        a->numel = 1;
        for (int d = 0; d < a->ndim && !problem; d++)
            if (!mae_size_mul(&a->numel, a->numel, (size_t)a->shape[d])) problem = "shape overflows";
        if (!problem && !mae_size_mul(&nbytes, a->numel, esize)) problem = "shape overflows";
    }
    if (!problem && nbytes != size - hstart - hlen) {
        problem = nbytes > size - hstart - hlen ? "truncated data" : "trailing bytes after data";
        snprintf(detail, sizeof detail, ": shape needs %zu bytes, file has %zu", nbytes,
                 size - hstart - hlen);
    }
    if (problem) {
        free(buf);
        memset(a, 0, sizeof *a);
        return mae_errf(err, "%s: %s%s", path, problem, detail);
    }
    memmove(buf, buf + hstart + hlen, nbytes);
    void *shrunk = realloc(buf, nbytes ? nbytes : 1);
    a->data = shrunk ? shrunk : buf;
    if (!mae_host_is_le()) swap_bytes(a->data, a->numel, esize);
    return MAE_OK;
}

int npy_load_f32(const char *path, npy_array *a, mae_error *err) {
    if (npy_load(path, a, err) != MAE_OK) return MAE_ERR;
    if (strcmp(a->descr, "<f4") == 0) return MAE_OK;
    size_t n = a->numel, bytes;
    float *dst = mae_size_mul(&bytes, n, sizeof(float)) ? malloc(bytes ? bytes : 1) : NULL;
    if (!dst) {
        npy_free(a);
        return mae_errf(err, "%s: out of memory converting to float32", path);
    }
    if (strcmp(a->descr, "<f8") == 0) {
        const double *s = a->data;
        for (size_t i = 0; i < n; i++) dst[i] = mae_double_to_float(s[i]);
    } else if (strcmp(a->descr, "<i8") == 0) {
        const int64_t *s = a->data;
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
    } else if (strcmp(a->descr, "<i4") == 0) {
        const int32_t *s = a->data;
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
    } else {
        const uint8_t *s = a->data;
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
    }
    free(a->data);
    a->data = dst;
    strcpy(a->descr, "<f4");
    return MAE_OK;
}

/* ------------------------------------------------------------------ save */

int npy_save(const char *path, const char *descr, int ndim, const int64_t *shape,
             const void *data, mae_error *err) {
    size_t esize = descr ? descr_size(descr) : 0, numel = 1;
    if (esize == 0) return mae_errf(err, "%s: cannot save dtype '%s'", path, descr ? descr : "");
    if (ndim < 0 || ndim > NPY_MAX_DIMS || (ndim > 0 && !shape))
        return mae_errf(err, "%s: cannot save an array with %d dims", path, ndim);
    char hdr[512];
    int len = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                       descr);
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || !mae_size_mul(&numel, numel, (size_t)shape[d]))
            return mae_errf(err, "%s: invalid shape for saving", path);
        len += snprintf(hdr + len, sizeof hdr - (size_t)len, "%s%" PRId64, d ? ", " : "",
                        shape[d]);
    }
    len += snprintf(hdr + len, sizeof hdr - (size_t)len, "%s), }", ndim == 1 ? "," : "");
    size_t nbytes;
    if (!mae_size_mul(&nbytes, numel, esize) || (nbytes > 0 && !data))
        return mae_errf(err, "%s: invalid data for saving", path);
    /* Pad with spaces so that 10 + header length is a multiple of 64, ending in '\n'. */
    size_t total = ((size_t)len + 1 + 10 + 63) / 64 * 64, hlen = total - 10;
    MAE_ASSERT(hlen < sizeof hdr && hlen <= 65535);
    memset(hdr + len, ' ', hlen - (size_t)len);
    hdr[hlen - 1] = '\n';
    uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(hlen & 0xff),
                       (uint8_t)(hlen >> 8)};
    char tmp[4200];
    FILE *f = mae_atomic_open(path, tmp, sizeof tmp, err);
    if (!f) return MAE_ERR;
    fwrite(pre, 1, sizeof pre, f);
    fwrite(hdr, 1, hlen, f);
    if (nbytes > 0) {
        if (mae_host_is_le()) {
            fwrite(data, esize, numel, f);
        } else {
            uint8_t e[8];
            for (size_t i = 0; i < numel; i++) {
                memcpy(e, (const uint8_t *)data + i * esize, esize);
                swap_bytes(e, 1, esize);
                fwrite(e, 1, esize, f);
            }
        }
    }
    return mae_atomic_commit(f, tmp, path, err);
}
