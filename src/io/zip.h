/* zip.h - a small validating reader of zip archives held in memory (as torch.save writes them):
 * the central directory (ZIP64 included), stored (method 0) and deflated (method 8) entries,
 * CRC-32 checked. Not supported: encryption, multi-disk archives, other methods. */
#ifndef MAE_IO_ZIP_H
#define MAE_IO_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "mae.h"

typedef struct zip_entry {
    char *name;          /* NUL-terminated copy of the entry name */
    uint64_t data_off;   /* offset of the (compressed) data in the archive */
    uint64_t csize;      /* compressed size */
    uint64_t usize;      /* uncompressed size */
    uint32_t crc;
    int method;          /* 0 stored, 8 deflated */
    int checked;         /* 1 once read and its CRC verified */
    uint8_t *inflated;   /* owned copy of a deflated entry's data, once read */
} zip_entry;

typedef struct zip_archive {
    const char *path;    /* for messages (not owned) */
    const uint8_t *buf;  /* the whole archive (not owned) */
    size_t size;
    int n;
    zip_entry *e;
} zip_archive;

/* Parses the end-of-central-directory record (ZIP64 too), the central directory and every
 * local header, bounds-checking each against the buffer. Errors name path. On error *z is
 * freed (zip_close is harmless). */
int zip_open(zip_archive *z, const char *path, const uint8_t *buf, size_t size, mae_error *err);
void zip_close(zip_archive *z);
int zip_find(const zip_archive *z, const char *name); /* index or -1 */
/* The entry's uncompressed bytes (inside the archive for stored entries, an owned inflated
 * copy for deflated ones), CRC-32 verified on first access. */
int zip_read(zip_archive *z, int idx, const uint8_t **data, size_t *size, mae_error *err);

#endif
