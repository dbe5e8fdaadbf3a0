/* source.h - where raw images come from: files on disk (ImageFolder tree, flat folder, list
 * file) or in-memory standard datasets (MNIST/Fashion-MNIST IDX, CIFAR-10/100 binary batches).
 *
 * A source gives, for an index, either the encoded bytes of an image file or decoded uint8
 * pixels, plus the label. The augmentation pipeline (images.c) turns that into a training
 * sample. read() may be called concurrently from several threads (each with its own buf).
 */
#ifndef MAE_DATA_SOURCE_H
#define MAE_DATA_SOURCE_H

#include <stdint.h>

#include "common.h"

typedef struct mae_raw {
    int label;              /* class index, or -1 when the source has no labels */
    /* either an encoded file ... */
    const uint8_t *bytes;   /* NULL for in-memory pixels */
    size_t len;
    /* ... or decoded pixels (interleaved uint8, row stride w*c) */
    const uint8_t *px;
    int w, h, c;            /* c = 1 or 3 */
} mae_raw;

typedef struct mae_source mae_source;
struct mae_source {
    int64_t n;               /* number of samples */
    int num_classes;         /* 0 when unlabelled */
    char **class_names;      /* num_classes names (ImageFolder: folder names, sorted), or NULL */
    /* Fills raw for sample idx. Files are read into buf (grown on demand). Returns MAE_OK, or
     * MAE_ERR_DATA with err naming the file when it cannot be read (missing since the scan,
     * permission, I/O error, zero bytes). */
    int (*read)(mae_source *s, int64_t idx, mae_raw *raw, mae_buf *buf, mae_error *err);
    /* The file name of sample idx for messages (or a description like "CIFAR-10 image 17"). */
    void (*name)(const mae_source *s, int64_t idx, char *out, size_t cap);
    void (*destroy)(mae_source *s); /* frees impl and class_names, not s */
    void *impl;
    char desc[256];          /* e.g. "ImageFolder /data/train: 1281167 images, 1000 classes" */
};

void mae_source_free(mae_source *s); /* destroy + free(s); NULL is a no-op */

/* Opens path as whichever of these it is (checked in this order):
 *   - a directory with MNIST IDX files (train-images-idx3-ubyte[.gz]) or an IDX images file;
 *   - a directory with CIFAR-10 (data_batch_1..5.bin) or CIFAR-100 (train.bin) binary batches,
 *     possibly inside cifar-10-batches-bin/ / cifar-100-binary/, or one such .bin file;
 *   - a directory with a "train" subdirectory: the official main_pretrain.py layout
 *     (data_path/train/<class>/<image>) when train != 0 ("val" otherwise);
 *   - an ImageFolder tree root/<class>/<image> (classes sorted by name, files sorted, as
 *     torchvision; only files with an image extension, case-insensitively: .jpg .jpeg .png
 *     .bmp .webp; hidden entries (".name") included and symlinks followed, as torchvision does;
 *     nested folders inside a class included in torchvision's sorted(os.walk()) order; a class
 *     folder without images is kept with a warning, where torchvision would raise);
 *   - a flat folder of images (no labels): one without sub-folders, or whose sub-folders hold
 *     no images;
 *   - a text file listing image paths, one per line, each optionally followed by whitespace and
 *     an integer label; relative paths are relative to the list file's folder; blank lines and
 *     lines starting with # are skipped. The label is the last whitespace-separated field, so
 *     a path with spaces needs a label; a line starting with whitespace lacks its path; either
 *     every line has a label or none does.
 * Errors (MAE_ERR, err naming path): missing path, unreadable folder, empty folder, a folder
 * with no image files, a class folder layout mixed with loose images (loose ones are ignored,
 * as torchvision does, with a warning), bad list lines (naming the line number). */
mae_source *mae_source_open(const char *path, int train, mae_error *err);

/* The individual kinds (used by mae_source_open, exposed for tests). */
mae_source *mae_source_idx(const char *images_path, const char *labels_path, mae_error *err);
mae_source *mae_source_cifar(const char *path, int train, mae_error *err);
mae_source *mae_source_folder(const char *root, mae_error *err);
mae_source *mae_source_list(const char *list_path, mae_error *err);

/* Detection helpers of mae_source_open (never fail; 0 = not this kind). idx: a directory with
 * train- or t10k-images-idx3-ubyte[.gz], or a file starting with the IDX images magic (raw or
 * gzip). cifar: a directory holding (itself or in cifar-10-batches-bin/ or cifar-100-binary/)
 * data_batch_1.bin, test_batch.bin, train.bin or test.bin, or a .bin file of one of those
 * names (data_batch_N.bin too). */
int mae_source_idx_probe(const char *path);
int mae_source_cifar_probe(const char *path);

/* An MNIST directory (split "train" when train != 0, else "t10k"; labels file optional) or one
 * IDX images file (labels from the file named like it with "images" -> "labels" and "idx3" ->
 * "idx1", when that exists). Errors as mae_source_idx, or no images file for the split. */
mae_source *mae_source_idx_path(const char *path, int train, mae_error *err);

#endif
