/* fileio.c - atomic file writes and whole-file reads (POSIX). */
#define _POSIX_C_SOURCE 200809L

#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "common.h"

FILE *mae_atomic_open(const char *path, char *tmp_path, size_t tmp_cap, mae_error *err) {
    if (!path || !*path) {
        mae_errf(err, "cannot write file: empty path");
        return NULL;
    }
    int n = snprintf(tmp_path, tmp_cap, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= tmp_cap) {
        mae_errf(err, "%s: path too long for a temporary file name", path);
        return NULL;
    }
    FILE *f = fopen(tmp_path, "wb");
    if (!f) {
        int e = errno;
        mae_errf(err, "%s: cannot create temporary file %s: %s", path, tmp_path, strerror(e));
        return NULL;
    }
    return f;
}

/* fsync the directory holding path so the rename itself is durable; failures are ignored
 * (some file systems do not support it and the data is already safe in the file). */
static void sync_parent_dir(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t len = (size_t)(slash - path);
        if (len >= sizeof dir) return;
        memcpy(dir, path, len);
        dir[len] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

int mae_atomic_commit(FILE *f, const char *tmp_path, const char *path, mae_error *err) {
    if (!f) {
        if (tmp_path && *tmp_path) remove(tmp_path);
        return mae_errf(err, "%s: write failed (no open file)", path);
    }
    const char *what = NULL;
    int e = 0;
    if (ferror(f)) {
        what = "write error";
        e = errno ? errno : EIO;
    } else if (fflush(f) != 0) {
        what = "flush failed";
        e = errno;
    } else if (fsync(fileno(f)) != 0) {
        what = "fsync failed";
        e = errno;
    }
    if (what) {
        fclose(f);
        remove(tmp_path);
        return mae_errf(err, "%s: %s: %s", path, what, strerror(e));
    }
    if (fclose(f) != 0) {
        e = errno;
        remove(tmp_path);
        return mae_errf(err, "%s: close failed: %s", path, strerror(e));
    }
    if (rename(tmp_path, path) != 0) {
        e = errno;
        remove(tmp_path);
        return mae_errf(err, "%s: cannot replace file: %s", path, strerror(e));
    }
    sync_parent_dir(path);
    return MAE_OK;
}

void mae_atomic_abort(FILE *f, const char *tmp_path) {
    if (f) fclose(f);
    if (tmp_path && *tmp_path) remove(tmp_path);
}

int mae_read_file(const char *path, uint8_t **data, size_t *size, mae_error *err) {
    *data = NULL;
    *size = 0;
    if (!path || !*path) return mae_errf(err, "cannot read file: empty path");
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return mae_errf(err, "%s: cannot open: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return mae_errf(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        fclose(f);
        return mae_errf(err, "%s: is a directory, not a file", path);
    }
    /* Regular files: one read of the known size. Others (pipes, devices): read until EOF. */
    size_t cap = 1 << 16;
    if (S_ISREG(st.st_mode)) {
        if (st.st_size < 0 || (uintmax_t)st.st_size >= (uintmax_t)SIZE_MAX) {
            fclose(f);
            return mae_errf(err, "%s: file too large", path);
        }
        cap = (size_t)st.st_size + 1;
    }
    uint8_t *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return mae_errf(err, "%s: out of memory reading %zu bytes", path, cap - 1);
    }
    size_t len = 0;
    for (;;) {
        if (len + 1 >= cap) {
            /* Buffer full: only grow if there really is more (a regular file usually ends here). */
            int c = fgetc(f);
            if (c == EOF) break;
            uint8_t *nb = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                free(buf);
                fclose(f);
                return mae_errf(err, "%s: out of memory reading the file", path);
            }
            buf = nb;
            cap *= 2;
            buf[len++] = (uint8_t)c;
            continue;
        }
        size_t got = fread(buf + len, 1, cap - 1 - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        int e = errno;
        free(buf);
        fclose(f);
        return mae_errf(err, "%s: read error: %s", path, strerror(e ? e : EIO));
    }
    fclose(f);
    buf[len] = 0;
    *data = buf;
    *size = len;
    return MAE_OK;
}
