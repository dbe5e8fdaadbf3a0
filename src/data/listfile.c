/* listfile.c - the list-file source (a text file of image paths, optionally labelled) and the
 * auto-detecting mae_source_open (source.h).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "common.h"
#include "filelist.h"
#include "source.h"

/* ------------------------------------------------------------------ list file */

/* Parses one list line (CR/LF stripped, not blank, not a comment) into *path and *label
 * (-1 when the line has none). Returns 0, or a message (into msg) on a bad line. */
static int parse_line(char *line, char **path, int *label, char *msg, size_t cap) {
    if (*line == ' ' || *line == '\t') {
        snprintf(msg, cap, "missing path column (the line starts with whitespace)");
        return -1;
    }
    char *end = line + strlen(line);
    while (end > line && (end[-1] == ' ' || end[-1] == '\t')) *--end = '\0';
    char *tok = end;
    while (tok > line && tok[-1] != ' ' && tok[-1] != '\t') tok--;
    *path = line;
    *label = -1;
    if (tok == line) return 0; /* no whitespace: just a path */
    char *sep = tok;
    while (sep > line && (sep[-1] == ' ' || sep[-1] == '\t')) sep--;
    *sep = '\0';
    errno = 0;
    char *e;
    long v = strtol(tok, &e, 10);
    if (*e || e == tok || errno || v < 0 || v >= INT_MAX || *tok == '+' || *tok == '-') {
        snprintf(msg, cap, "bad label '%.64s' (expected PATH or PATH LABEL, LABEL an integer "
                 ">= 0)", tok);
        return -1;
    }
    *label = (int)v;
    return 0;
}

/* Reads the list into fl (relative paths joined to dir); *max_label: the largest label, or
 * -1 when the lines have none. */
static int read_list(FILE *f, const char *list_path, const char *dir, file_list *fl,
                     int *max_label, mae_error *err) {
    char *line = NULL, msg[160];
    size_t cap = 0;
    long lineno = 0, first_labelled = 0, first_unlabelled = 0;
    ssize_t len;
    int rc = MAE_OK;
    *max_label = -1;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (memchr(line, '\0', (size_t)len)) {
            rc = mae_errf(err, "list file %s:%ld: a NUL byte (not a text file?)", list_path,
                          lineno);
            break;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        size_t lead = strspn(line, " \t");
        if (!line[lead] || line[lead] == '#') continue;
        char *path;
        int label;
        if (parse_line(line, &path, &label, msg, sizeof msg) != 0) {
            rc = mae_errf(err, "list file %s:%ld: %s", list_path, lineno, msg);
            break;
        }
        long *first = label >= 0 ? &first_labelled : &first_unlabelled;
        if (!*first) *first = lineno;
        if (first_labelled && first_unlabelled) {
            rc = mae_errf(err, "list file %s:%ld: %s a label but line %ld %s (give every line "
                          "a label or none)", list_path, lineno, label >= 0 ? "has" : "lacks",
                          label >= 0 ? first_unlabelled : first_labelled,
                          label >= 0 ? "does not" : "has one");
            break;
        }
        if (label > *max_label) *max_label = label;
        mae_fl_push(fl, path[0] == '/' ? "" : dir, path, label);
    }
    if (rc == MAE_OK && ferror(f))
        rc = mae_errf(err, "list file %s: read error after line %ld", list_path, lineno);
    free(line);
    return rc;
}

mae_source *mae_source_list(const char *list_path, mae_error *err) {
    FILE *f = fopen(list_path, "r");
    if (!f) {
        char eb[128];
        mae_fl_strerr(errno, eb, sizeof eb);
        mae_errf(err, "list file %s: cannot open: %s", list_path, eb);
        return NULL;
    }
    /* relative paths are relative to the list file's folder ("" = the current one) */
    const char *slash = strrchr(list_path, '/');
    size_t dlen = !slash ? 0 : slash == list_path ? 1 : (size_t)(slash - list_path);
    char *dir = (char *)mae_xmalloc(dlen + 1);
    memcpy(dir, list_path, dlen);
    dir[dlen] = '\0';
    file_list *fl = (file_list *)mae_xcalloc(1, sizeof *fl);
    int max_label;
    int rc = read_list(f, list_path, dir, fl, &max_label, err);
    fclose(f);
    free(dir);
    if (rc == MAE_OK && fl->n == 0)
        rc = mae_errf(err, "list file %s: no image paths in it", list_path);
    if (rc != MAE_OK) {
        mae_fl_free(fl);
        return NULL;
    }
    mae_source *s = mae_fl_source(fl, max_label + 1, NULL);
    snprintf(s->desc, sizeof s->desc, "list %s: %lld images, %s", list_path, (long long)s->n,
             max_label >= 0 ? "labelled" : "no labels");
    return s;
}

/* ------------------------------------------------------------------ auto-detection */

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

mae_source *mae_source_open(const char *path, int train, mae_error *err) {
    struct stat st;
    char sub[PATH_MAX], eb[128];
    if (stat(path, &st) != 0) {
        mae_fl_strerr(errno, eb, sizeof eb);
        mae_errf(err, "data path %s: %s", path, eb);
        return NULL;
    }
    if (mae_source_idx_probe(path)) return mae_source_idx_path(path, train, err);
    if (mae_source_cifar_probe(path)) return mae_source_cifar(path, train, err);
    if (S_ISDIR(st.st_mode)) {
        if (!mae_fl_join(sub, sizeof sub, path, "train") || !is_dir(sub))
            return mae_source_folder(path, err);
        if (!train) mae_fl_join(sub, sizeof sub, path, "val");
        if (!is_dir(sub)) {
            mae_errf(err, "data path %s has a train folder but no val folder", path);
            return NULL;
        }
        return mae_source_folder(sub, err);
    }
    if (!S_ISREG(st.st_mode)) {
        mae_errf(err, "data path %s is neither a folder nor a regular file", path);
        return NULL;
    }
    if (mae_fl_image_kind(path)) {
        mae_errf(err, "data path %s is an image file: give the folder holding the images, or a "
                 "text file listing them", path);
        return NULL;
    }
    return mae_source_list(path, err);
}
