/* zip.c - validating reader of in-memory zip archives (see zip.h). */
#include "zip.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common.h"
#include "dtype.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define EOCD_LEN 22u
#define LOC64_LEN 20u
#define EOCD64_LEN 56u
#define CENTRAL_LEN 46u
#define LOCAL_LEN 30u
/* deflate cannot expand data by more than about 1032:1 */
#define MAX_DEFLATE_RATIO 1032u

/* 1 if [off, off + len) lies inside [0, size). */
static int in_range(uint64_t off, uint64_t len, uint64_t size) {
    return off <= size && len <= size - off;
}

void zip_close(zip_archive *z) {
    if (!z) return;
    for (int i = 0; i < z->n; i++) {
        free(z->e[i].name);
        free(z->e[i].inflated);
    }
    free(z->e);
    memset(z, 0, sizeof *z);
}

/* Finds the end-of-central-directory record: the last "PK\5\6" whose comment ends the file. */
static int find_eocd(const zip_archive *z, size_t *pos, mae_error *err) {
    if (z->size < EOCD_LEN)
        return mae_errf(err, "%s: not a zip archive (%zu bytes, too short; truncated?)", z->path,
                        z->size);
    size_t lo = z->size - EOCD_LEN > 65535u ? z->size - EOCD_LEN - 65535u : 0;
    for (size_t p = z->size - EOCD_LEN + 1; p-- > lo;) {
        if (mae_ld_le(z->buf + p, 4) == SIG_EOCD && p + EOCD_LEN + mae_ld_le(z->buf + p + 20, 2) == z->size) {
            *pos = p;
            return MAE_OK;
        }
    }
    return mae_errf(err, "%s: no zip end-of-central-directory record (truncated or not a zip "
                    "archive)", z->path);
}

/* Reads the central directory's location and entry count (ZIP64 records where present). */
static int read_eocd(const zip_archive *z, uint64_t *cd_off, uint64_t *cd_size, uint64_t *count,
                     uint64_t *cd_end_limit, mae_error *err) {
    size_t e = 0;
    if (find_eocd(z, &e, err) != MAE_OK) return MAE_ERR;
    const uint8_t *p = z->buf + e;
    if (mae_ld_le(p + 4, 2) != 0 || mae_ld_le(p + 6, 2) != 0 || mae_ld_le(p + 8, 2) != mae_ld_le(p + 10, 2))
        return mae_errf(err, "%s: multi-disk zip archives are not supported", z->path);
    *count = mae_ld_le(p + 10, 2);
    *cd_size = mae_ld_le(p + 12, 4);
    *cd_off = mae_ld_le(p + 16, 4);
    *cd_end_limit = e;
    if (e >= LOC64_LEN && mae_ld_le(z->buf + e - LOC64_LEN, 4) == SIG_LOC64) {
        const uint8_t *l = z->buf + e - LOC64_LEN;
        uint64_t off64 = mae_ld_le(l + 8, 8);
        if (!in_range(off64, EOCD64_LEN, e - LOC64_LEN) || mae_ld_le(z->buf + off64, 4) != SIG_EOCD64)
            return mae_errf(err, "%s: ZIP64 end-of-central-directory locator points to offset "
                            "%" PRIu64 ", where there is no ZIP64 record (corrupt or truncated)",
                            z->path, off64);
        const uint8_t *r = z->buf + off64;
        if (mae_ld_le(r + 16, 4) != 0 || mae_ld_le(r + 20, 4) != 0 || mae_ld_le(r + 24, 8) != mae_ld_le(r + 32, 8))
            return mae_errf(err, "%s: multi-disk zip archives are not supported", z->path);
        *count = mae_ld_le(r + 32, 8);
        *cd_size = mae_ld_le(r + 40, 8);
        *cd_off = mae_ld_le(r + 48, 8);
        *cd_end_limit = off64;
    }
    if (!in_range(*cd_off, *cd_size, *cd_end_limit))
        return mae_errf(err, "%s: zip central directory (offset %" PRIu64 ", %" PRIu64 " bytes) "
                        "lies outside the file (truncated or corrupt)", z->path, *cd_off,
                        *cd_size);
    if (*count > *cd_size / CENTRAL_LEN || *count > (uint64_t)INT32_MAX)
        return mae_errf(err, "%s: zip central directory claims %" PRIu64 " entries in %" PRIu64
                        " bytes (corrupt)", z->path, *count, *cd_size);
    return MAE_OK;
}

/* ZIP64 extended information (extra field 0x0001): the 64-bit values of those fields whose
 * 32-bit central-directory value is 0xFFFFFFFF, in the order usize, csize, local offset. */
static int zip64_extra(const zip_archive *z, const char *name, const uint8_t *x, size_t xlen,
                       uint64_t *usize, uint64_t *csize, uint64_t *lho, mae_error *err) {
    uint64_t *want[3] = {usize, csize, lho};
    size_t i = 0;
    while (i + 4 <= xlen) {
        size_t id = (size_t)mae_ld_le(x + i, 2), len = (size_t)mae_ld_le(x + i + 2, 2);
        if (len > xlen - i - 4) break;
        if (id == 1) {
            size_t k = 0;
            for (int f = 0; f < 3; f++) {
                if (*want[f] != 0xFFFFFFFFu) continue;
                if (k + 8 > len)
                    return mae_errf(err, "%s: zip entry '%.200s' has a short ZIP64 extra field",
                                    z->path, name);
                *want[f] = mae_ld_le(x + i + 4 + k, 8);
                k += 8;
            }
            return MAE_OK;
        }
        i += 4 + len;
    }
    for (int f = 0; f < 3; f++)
        if (*want[f] == 0xFFFFFFFFu)
            return mae_errf(err, "%s: zip entry '%.200s' needs a ZIP64 extra field and has "
                            "none", z->path, name);
    return MAE_OK;
}

/* One central-directory record at *pos (advanced past it) and its local header. */
static int read_entry(zip_archive *z, uint64_t *pos, uint64_t cd_end, zip_entry *ze,
                      mae_error *err) {
    if (!in_range(*pos, CENTRAL_LEN, cd_end) || mae_ld_le(z->buf + *pos, 4) != SIG_CENTRAL)
        return mae_errf(err, "%s: corrupt zip central directory (bad record at offset %" PRIu64
                        ")", z->path, *pos);
    const uint8_t *c = z->buf + *pos;
    size_t nlen = (size_t)mae_ld_le(c + 28, 2), xlen = (size_t)mae_ld_le(c + 30, 2), clen = (size_t)mae_ld_le(c + 32, 2);
    if (!in_range(*pos + CENTRAL_LEN, (uint64_t)nlen + xlen + clen, cd_end))
        return mae_errf(err, "%s: corrupt zip central directory (record at offset %" PRIu64
                        " overruns it)", z->path, *pos);
    const uint8_t *nm = c + CENTRAL_LEN;
    if (memchr(nm, 0, nlen))
        return mae_errf(err, "%s: zip entry name contains a NUL byte", z->path);
    ze->name = mae_xmalloc(nlen + 1);
    memcpy(ze->name, nm, nlen);
    ze->name[nlen] = '\0';
    unsigned flags = (unsigned)mae_ld_le(c + 8, 2);
    ze->method = (int)mae_ld_le(c + 10, 2);
    ze->crc = (uint32_t)mae_ld_le(c + 16, 4);
    ze->csize = mae_ld_le(c + 20, 4);
    ze->usize = mae_ld_le(c + 24, 4);
    uint64_t lho = mae_ld_le(c + 42, 4);
    if (mae_ld_le(c + 34, 2) != 0 && mae_ld_le(c + 34, 2) != 0xFFFFu)
        return mae_errf(err, "%s: multi-disk zip archives are not supported", z->path);
    if (zip64_extra(z, ze->name, nm + nlen, xlen, &ze->usize, &ze->csize, &lho, err) != MAE_OK)
        return MAE_ERR;
    if (flags & 1u)
        return mae_errf(err, "%s: zip entry '%.200s' is encrypted", z->path, ze->name);
    *pos += CENTRAL_LEN + nlen + xlen + clen;

    if (!in_range(lho, LOCAL_LEN, z->size) || mae_ld_le(z->buf + lho, 4) != SIG_LOCAL)
        return mae_errf(err, "%s: zip entry '%.200s': no local header at offset %" PRIu64
                        " (truncated or corrupt)", z->path, ze->name, lho);
    const uint8_t *l = z->buf + lho;
    size_t lnlen = (size_t)mae_ld_le(l + 26, 2), lxlen = (size_t)mae_ld_le(l + 28, 2);
    if (!in_range(lho + LOCAL_LEN, (uint64_t)lnlen + lxlen, z->size) || lnlen != nlen ||
        memcmp(l + LOCAL_LEN, nm, nlen) != 0)
        return mae_errf(err, "%s: zip entry '%.200s': local header does not match the central "
                        "directory (corrupt)", z->path, ze->name);
    ze->data_off = lho + LOCAL_LEN + lnlen + lxlen;
    if (!in_range(ze->data_off, ze->csize, z->size))
        return mae_errf(err, "%s: zip entry '%.200s' (%" PRIu64 " bytes at offset %" PRIu64
                        ") runs past the end of the file (truncated?)", z->path, ze->name,
                        ze->csize, ze->data_off);
    return MAE_OK;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(const zip_entry *const *)a)->name, (*(const zip_entry *const *)b)->name);
}

int zip_open(zip_archive *z, const char *path, const uint8_t *buf, size_t size, mae_error *err) {
    memset(z, 0, sizeof *z);
    z->path = path;
    z->buf = buf;
    z->size = size;
    uint64_t cd_off = 0, cd_size = 0, count = 0, limit = 0;
    if (read_eocd(z, &cd_off, &cd_size, &count, &limit, err) != MAE_OK) return MAE_ERR;
    z->e = mae_xcalloc((size_t)count + 1, sizeof *z->e);
    uint64_t pos = cd_off, cd_end = cd_off + cd_size;
    int rc = MAE_OK;
    for (uint64_t i = 0; i < count && rc == MAE_OK; i++) {
        z->n++;
        rc = read_entry(z, &pos, cd_end, &z->e[i], err);
    }
    if (rc == MAE_OK && z->n > 1) { /* names must be unique: which copy is meant is unclear */
        zip_entry **p = mae_xmalloc((size_t)z->n * sizeof *p);
        for (int i = 0; i < z->n; i++) p[i] = &z->e[i];
        qsort(p, (size_t)z->n, sizeof *p, cmp_name);
        for (int i = 0; i + 1 < z->n && rc == MAE_OK; i++)
            if (strcmp(p[i]->name, p[i + 1]->name) == 0)
                rc = mae_errf(err, "%s: zip entry '%.200s' appears twice", path, p[i]->name);
        free(p);
    }
    if (rc != MAE_OK) zip_close(z);
    return rc;
}

int zip_find(const zip_archive *z, const char *name) {
    for (int i = 0; i < z->n; i++)
        if (strcmp(z->e[i].name, name) == 0) return i;
    return -1;
}

static uint32_t crc32_of(const uint8_t *p, uint64_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

static int inflate_entry(zip_archive *z, zip_entry *ze, mae_error *err) {
    if (ze->usize > ze->csize * MAX_DEFLATE_RATIO + 1024u || ze->usize > (uint64_t)SIZE_MAX - 1)
        return mae_errf(err, "%s: zip entry '%.200s' claims to inflate %" PRIu64 " bytes to %"
                        PRIu64 " (impossible for deflate; corrupt)", z->path, ze->name,
                        ze->csize, ze->usize);
    uint8_t *out = malloc((size_t)ze->usize + 1);
    if (!out)
        return mae_errf(err, "%s: zip entry '%.200s': out of memory for %" PRIu64 " bytes",
                        z->path, ze->name, ze->usize);
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, -15) != Z_OK) {
        free(out);
        return mae_errf(err, "%s: zlib inflateInit failed", z->path);
    }
    const uint8_t *in = z->buf + ze->data_off;
    uint64_t in_left = ze->csize, out_done = 0;
    int zr = Z_OK;
    while (zr == Z_OK) {
        /* usize + 1 bytes of room so that too much output shows as a size mismatch */
        uint64_t out_left = ze->usize + 1 - out_done;
        s.next_in = (Bytef *)(uintptr_t)in;
        s.avail_in = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
        s.next_out = out + out_done;
        s.avail_out = out_left > (1u << 30) ? (1u << 30) : (uInt)out_left;
        uInt ai = s.avail_in, ao = s.avail_out;
        zr = inflate(&s, Z_NO_FLUSH);
        in += ai - s.avail_in;
        in_left -= ai - s.avail_in;
        out_done += ao - s.avail_out;
        if (zr == Z_OK && ai == s.avail_in && ao == s.avail_out) zr = Z_BUF_ERROR; /* stuck */
    }
    inflateEnd(&s);
    if (zr != Z_STREAM_END || out_done != ze->usize) {
        free(out);
        return mae_errf(err, "%s: zip entry '%.200s' does not inflate to its declared %" PRIu64
                        " bytes (corrupt or truncated deflate data)", z->path, ze->name,
                        ze->usize);
    }
    ze->inflated = out;
    return MAE_OK;
}

int zip_read(zip_archive *z, int idx, const uint8_t **data, size_t *size, mae_error *err) {
    MAE_ASSERT(idx >= 0 && idx < z->n);
    zip_entry *ze = &z->e[idx];
    if (!ze->checked) {
        if (ze->method == 0) {
            if (ze->csize != ze->usize)
                return mae_errf(err, "%s: stored zip entry '%.200s' has compressed size %" PRIu64
                                " != size %" PRIu64 " (corrupt)", z->path, ze->name, ze->csize,
                                ze->usize);
        } else if (ze->method == 8) {
            if (inflate_entry(z, ze, err) != MAE_OK) return MAE_ERR;
        } else {
            return mae_errf(err, "%s: zip entry '%.200s' uses compression method %d (only "
                            "stored and deflated are supported)", z->path, ze->name, ze->method);
        }
        const uint8_t *p = ze->inflated ? ze->inflated : z->buf + ze->data_off;
        uint32_t crc = crc32_of(p, ze->usize);
        if (crc != ze->crc)
            return mae_errf(err, "%s: zip entry '%.200s' fails its CRC-32 check (0x%08x, "
                            "expected 0x%08x): the file is corrupt", z->path, ze->name,
                            (unsigned)crc, (unsigned)ze->crc);
        ze->checked = 1;
    }
    *data = ze->inflated ? ze->inflated : z->buf + ze->data_off;
    *size = (size_t)ze->usize;
    return MAE_OK;
}
