#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

const arg_spec *args_find(const arg_spec *specs, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(specs[i].name, name) == 0) return &specs[i];
    return NULL;
}

void args_help(const arg_spec *specs, int n, const char *cmd, const char *summary) {
    printf("usage: mae %s [flags]\n%s\n\nflags:\n", cmd, summary);
    for (int i = 0; i < n; i++) {
        const char *kind = specs[i].type == ARG_FLAG ? "" : specs[i].type == ARG_STR ? " STR" : " N";
        printf("  --%s%s\n      %s\n", specs[i].name, kind, specs[i].help);
    }
}

static int set_value(arg_spec *s, const char *v, mae_error *err) {
    char *end = NULL;
    errno = 0;
    switch (s->type) {
    case ARG_INT: {
        long x = strtol(v, &end, 10);
        if (end == v || *end || errno || x < -2147483647L || x > 2147483647L)
            return mae_errf(err, "--%s: '%s' is not an integer", s->name, v);
        *(int *)s->dst = (int)x;
        return MAE_OK;
    }
    case ARG_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        if (end == v || *end || errno || v[0] == '-')
            return mae_errf(err, "--%s: '%s' is not a non-negative integer", s->name, v);
        *(uint64_t *)s->dst = (uint64_t)x;
        return MAE_OK;
    }
    case ARG_FLOAT:
    case ARG_DOUBLE: {
        double x = strtod(v, &end);
        if (end == v || *end || !isfinite(x))
            return mae_errf(err, "--%s: '%s' is not a finite number", s->name, v);
        if (s->type == ARG_FLOAT) *(float *)s->dst = (float)x;
        else *(double *)s->dst = x;
        return MAE_OK;
    }
    case ARG_STR:
        if (!*v) return mae_errf(err, "--%s: empty value", s->name);
        *(const char **)s->dst = v;
        return MAE_OK;
    case ARG_FLAG: {
        if (!strcmp(v, "1") || !strcmp(v, "true")) *(int *)s->dst = 1;
        else if (!strcmp(v, "0") || !strcmp(v, "false")) *(int *)s->dst = 0;
        else return mae_errf(err, "--%s: expected no value, 0/1 or true/false, got '%s'", s->name, v);
        return MAE_OK;
    }
    }
    return MAE_ERR;
}

int args_parse(arg_spec *specs, int n, int argc, char **argv, int first, const char *cmd,
               mae_error *err) {
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return 1;
        if (strncmp(a, "--", 2) != 0 || !a[2])
            return mae_errf(err, "unexpected argument '%s' (flags start with --; see mae %s --help)",
                            a, cmd);
        char name[128];
        const char *eq = strchr(a + 2, '=');
        size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if (len >= sizeof name) return mae_errf(err, "flag '%s' is too long", a);
        memcpy(name, a + 2, len);
        name[len] = 0;
        arg_spec *s = (arg_spec *)args_find(specs, n, name);
        if (!s) return mae_errf(err, "unknown flag --%s (see mae %s --help)", name, cmd);
        const char *v = eq ? eq + 1 : NULL;
        if (!v && s->type == ARG_FLAG) {
            *(int *)s->dst = 1;
        } else {
            if (!v) {
                if (i + 1 >= argc) return mae_errf(err, "--%s: missing value", name);
                v = argv[++i];
            }
            if (set_value(s, v, err) != MAE_OK) return MAE_ERR;
        }
        s->seen = 1;
    }
    return MAE_OK;
}
