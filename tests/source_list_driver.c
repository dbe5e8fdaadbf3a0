/* source_list_driver.c - opens a path with mae_source_open and prints what it found:
 *   classes <N>            then N lines, one class name each
 *   samples <n>            then n lines "<label>\t<name>"
 * Usage: source_list_driver PATH [train(1)|val(0)]. Exit 1 (message on stderr) if it fails. */
#include <stdio.h>
#include <stdlib.h>

#include "data/source.h"

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s PATH [TRAIN]\n", argv[0]);
        return 2;
    }
    mae_error err = {""};
    mae_source *s = mae_source_open(argv[1], argc == 3 ? atoi(argv[2]) : 1, &err);
    if (!s) {
        fprintf(stderr, "source_list_driver: %s\n", err.msg);
        return 1;
    }
    printf("classes %d\n", s->class_names ? s->num_classes : 0);
    for (int k = 0; s->class_names && k < s->num_classes; k++) printf("%s\n", s->class_names[k]);
    printf("samples %lld\n", (long long)s->n);
    char name[8192];
    mae_buf buf = {0};
    for (int64_t i = 0; i < s->n; i++) {
        mae_raw raw;
        s->name(s, i, name, sizeof name);
        int label = s->read(s, i, &raw, &buf, &err) == MAE_OK ? raw.label : -2;
        printf("%d\t%s\n", label, name);
    }
    mae_buf_free(&buf);
    mae_source_free(s);
    return 0;
}
