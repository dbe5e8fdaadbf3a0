/* fileio.h - atomic file writes (temp file + fsync + rename) and whole-file reads. */
#ifndef MAE_IO_FILEIO_H
#define MAE_IO_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mae.h"

/* Opens "<path>.tmp.<pid>" (same directory as path) for binary writing and stores its name in
 * tmp_path (capacity tmp_cap). Returns NULL and fills err (naming path) on failure. */
FILE *mae_atomic_open(const char *path, char *tmp_path, size_t tmp_cap, mae_error *err);

/* Finishes an atomic write: checks the stream's error flag, flushes, fsyncs, closes, renames
 * tmp_path over path and fsyncs the directory. On any failure the temp file is removed, the old
 * file at path is left untouched and MAE_ERR is returned with a message naming path.
 * f is always closed. f == NULL (a failed open) is an error. */
int mae_atomic_commit(FILE *f, const char *tmp_path, const char *path, mae_error *err);

/* Abandons an atomic write: closes f (may be NULL) and removes tmp_path. */
void mae_atomic_abort(FILE *f, const char *tmp_path);

/* Reads a whole file into a malloc'ed buffer (*data, freed by the caller) of *size bytes.
 * The buffer has one extra NUL byte after the data (not counted in *size) so text can be
 * parsed in place. Missing, unreadable or directory paths give MAE_ERR naming the file. */
int mae_read_file(const char *path, uint8_t **data, size_t *size, mae_error *err);

#endif
