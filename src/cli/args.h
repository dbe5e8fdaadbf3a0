/* args.h - a small table-driven flag parser for the mae commands (--name value, --name=value). */
#ifndef MAE_CLI_ARGS_H
#define MAE_CLI_ARGS_H

#include <stdio.h>

#include "mae.h"

typedef enum { ARG_INT, ARG_U64, ARG_FLOAT, ARG_DOUBLE, ARG_STR, ARG_FLAG } arg_type;

typedef struct arg_spec {
    const char *name; /* without the leading -- */
    arg_type type;
    void *dst;        /* int*, uint64_t*, float*, double*, const char**, int* (flag -> 1) */
    const char *help;
    int seen;         /* set by the parser */
} arg_spec;

/* Parses argv[first..argc). Flag names may be spelt with dashes or underscores (--batch-size
 * and --batch_size are the same flag). Returns 1 if --help/-h is among the arguments (then
 * nothing is parsed, so args_help shows the defaults), MAE_OK, or MAE_ERR with a message naming
 * the flag. */
int args_parse(arg_spec *specs, int n, int argc, char **argv, int first, const char *cmd,
               mae_error *err);
/* Prints every flag with its help and, unless the help text already states one, its default
 * (the current value of the flag). */
void args_help(const arg_spec *specs, int n, const char *cmd, const char *summary);
/* Prints "--name value" for every flag (flags as on/off), wrapped at about 100 columns. */
void args_print_values(const arg_spec *specs, int n, FILE *f);
const arg_spec *args_find(const arg_spec *specs, int n, const char *name);

#endif
