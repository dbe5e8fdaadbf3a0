/* check.h - the CHECK macro of the C unit tests: counts checks and failures, prints
 * "FAIL file:line: condition: message" for each failure. End main() with
 * `return check_summary("test_x");`, which prints "test_x: N checks, M failed". */
#ifndef MAE_TESTS_CHECK_H
#define MAE_TESTS_CHECK_H

#include <stdio.h>

static int g_checks = 0, failures = 0;

#define CHECK(cond, ...)                                           \
    do {                                                           \
        g_checks++;                                                \
        if (!(cond)) {                                             \
            failures++;                                            \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            printf(__VA_ARGS__);                                   \
            printf("\n");                                          \
        }                                                          \
    } while (0)

static inline int check_summary(const char *name) {
    printf("%s: %d checks, %d failed\n", name, g_checks, failures);
    return failures ? 1 : 0;
}

#endif
