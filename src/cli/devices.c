/* devices.c - `mae devices`: one line per backend, whether this build on this machine can run it
 * and, when not, why (mae_backend_find's reason); --device of the other commands takes the
 * names. */
#include <stdio.h>

#include "backend.h"
#include "cli.h"

int cmd_devices(int argc, char **argv) {
    mae_error err = {{0}};
    int rc = args_parse(NULL, 0, argc, argv, 2, "devices", &err);
    if (rc == 1) {
        printf("usage: mae devices\nLists the devices that --device takes, one a line: 'NAME: "
               "available' or 'NAME: <why not>' (exit 0 either way). No flags.\n");
        return 0;
    }
    if (rc != MAE_OK) {
        fprintf(stderr, "mae devices: %s\n", err.msg);
        return 2;
    }
    static const char *const names[] = {"cpu", "cuda"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char why[256];
        if (!mae_backend_find(names[i], why, sizeof why)) printf("%s: %s\n", names[i], why);
        else if (i == 0) printf("cpu: available (%d threads)\n", mae_get_num_threads());
        else printf("%s: available\n", names[i]);
    }
    return 0;
}
