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

static void format_value(char *buf, size_t cap, const arg_spec *s) {
    buf[0] = 0;
    switch (s->type) {
    case ARG_INT: snprintf(buf, cap, "%d", *(const int *)s->dst); break;
    case ARG_U64: snprintf(buf, cap, "%llu", (unsigned long long)*(const uint64_t *)s->dst); break;
    case ARG_FLOAT: snprintf(buf, cap, "%g", (double)*(const float *)s->dst); break;
    case ARG_DOUBLE: snprintf(buf, cap, "%g", *(const double *)s->dst); break;
    case ARG_STR: {
        const char *v = *(const char *const *)s->dst;
        snprintf(buf, cap, "%s", v ? v : "");
        break;
    }
    case ARG_FLAG: snprintf(buf, cap, "%s", *(const int *)s->dst ? "on" : "off"); break;
    }
}

void args_print_values(const arg_spec *specs, int n, FILE *f) {
    int col = 0;
    for (int i = 0; i < n; i++) {
        char v[256], item[320];
        format_value(v, sizeof v, &specs[i]);
        int len = snprintf(item, sizeof item, " --%s %s", specs[i].name, v[0] ? v : "''");
        if (col > 0 && col + len > 100) {
            fprintf(f, "\n");
            col = 0;
        }
        fputs(col ? item : item + 1, f);
        col += col ? len : len - 1;
    }
    fprintf(f, "\n");
}

void args_help(const arg_spec *specs, int n, const char *cmd, const char *summary) {
    printf("usage: mae %s [flags]\n%s\n\nflags (--a_b and --a-b are the same flag):\n", cmd, summary);
    for (int i = 0; i < n; i++) {
        const arg_spec *s = &specs[i];
        const char *kind = s->type == ARG_FLAG ? "" : s->type == ARG_STR ? " STR" : " N";
        printf("  --%s%s\n      %s", s->name, kind, s->help);
        char v[64];
        format_value(v, sizeof v, s);
        if (!strstr(s->help, "default") && v[0]) printf(" (default %s)", v);
        printf("\n");
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
    for (int i = first; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
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
        for (size_t k = 0; k < len; k++)
            if (name[k] == '-') name[k] = '_';
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
