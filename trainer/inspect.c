/* trainer/inspect.c - `recd inspect DIR`: validate a snapshot and print its meta and tensors.
 *
 * DIR is a snapshot folder (ROOT/MODEL/VERSION) or a model folder (ROOT/MODEL: its newest version).
 * Prints the meta JSON pretty-printed, then one row per tensor (name, dtype, shape, MB) and a
 * total. Exit status: 0 ok, 1 refused snapshot (one line on stderr: `recd inspect: <why>`), 2
 * usage.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/snap.h"
#include "trainer/cmds.h"

static void inspect_usage(FILE *out)
{
    fprintf(out, "usage: recd inspect DIR\n"
                 "  DIR is a snapshot folder (ROOT/MODEL/VERSION) or a model folder (ROOT/MODEL, "
                 "newest version).\n"
                 "  Validates the snapshot (checksums, shapes, format version), prints its meta "
                 "and tensors.\n"
                 "  Exit status 1 with one line on stderr if the snapshot is refused.\n");
}

static void print_tensors(const snap *s)
{
    size_t n = snap_tensor_count(s);
    printf("%-32s %-5s %-28s %12s\n", "tensor", "dtype", "shape", "MB");
    for (size_t i = 0; i < n; i++) {
        const snap_tensor *t = snap_tensor_at(s, i);
        char shape[SNAP_MAX_DIMS * 22 + 3] = "["; /* room for 4 dims of 20 digits, ", " and "]" */
        size_t len = 1;
        for (int d = 0; d < t->ndim; d++)
            len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%" PRId64, d ? ", " : "",
                                    t->shape[d]);
        snprintf(shape + len, sizeof shape - len, "]");
        printf("%-32s %-5s %-28s %12.3f\n", t->name, snap_dtype_name(t->dtype), shape,
               t->nbytes / 1e6);
    }
    printf("%zu tensors, %.3f MB\n", n, snap_bytes(s) / 1e6);
}

int cmd_inspect(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        inspect_usage(stdout);
        return 0;
    }
    if (argc != 2) {
        inspect_usage(stderr);
        return 2;
    }
    const char *dir = argv[1];
    snap *s = NULL;
    int rc = snap_open_any(&s, dir);
    if (rc != RC_OK) {
        fprintf(stderr, "recd inspect: %s\n", rc_errmsg());
        return 1;
    }
    char *text = json_dumps(snap_meta(s), JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s: %s version %" PRIu64 "\n%s\n\n", snap_dir(s), snap_model(s), snap_version(s),
           text ? text : "{}");
    free(text);
    print_tensors(s);
    snap_close(s);
    return 0;
}
