/* fuzz/fuzz_config.c - libFuzzer target: arbitrary bytes -> json_loadb -> cfg_load_json.
 *
 * Build: make fuzz (clang), then run e.g.
 *     build-fuzz/bin/fuzz_config -max_total_time=60 -max_len=4096 /tmp/fuzz-config-corpus
 * Each input is also read as a file (a memfd, through /proc/self/fd) so cfg_load_file's line search
 * runs on the same text. The table covers every setting type, dotted names and a nested group, so
 * the fuzzer reaches type errors, bounds, enums, unknown keys and nesting. Each input also goes
 * through cfg_set (its text form) and cfg_to_json, and everything is released (leaks are reported
 * by ASan).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/config.h"

typedef struct {
    long long i;
    double d;
    int b;
    char *s;
    char *e;
    json_t *j;
    long long ni;
    double nd;
} fz_cfg;

static const cfg_def fz_defs[] = {
    CFG_INT("i", fz_cfg, i, 5, -10, 1000000, "int"),
    CFG_DOUBLE("d", fz_cfg, d, 0.5, 0, 1, "double"),
    CFG_BOOL("b", fz_cfg, b, 0, "bool"),
    CFG_STRING("s", fz_cfg, s, NULL, "string"),
    CFG_ENUM("e", fz_cfg, e, "a", "a|bb|ccc", "enum"),
    CFG_JSON("j", fz_cfg, j, "[]", "json"),
    CFG_INT("g.n.i", fz_cfg, ni, 0, 0, 0, "nested int, unbounded"),
    CFG_DOUBLE("g.d", fz_cfg, nd, 1, -1e9, 1e9, "nested double"),
    CFG_END,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_cfg c;
    if (cfg_defaults(fz_defs, &c) != 0) return 0;
    json_error_t je;
    json_t *root = json_loadb((const char *)data, size, JSON_DECODE_ANY, &je);
    if (root) {
        (void)cfg_load_json(fz_defs, &c, root, "fuzz");
        json_decref(root);
    }
    /* the same bytes as a config file: line search on error */
    static int fd = -1;
    if (fd < 0) fd = memfd_create("fuzz_config", 0);
    if (fd >= 0 && ftruncate(fd, 0) == 0 && pwrite(fd, data, size, 0) == (ssize_t)size) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        (void)cfg_load_file(fz_defs, &c, path);
    }
    /* the same bytes as the text form of each setting */
    char *text = malloc(size + 1);
    if (text) {
        memcpy(text, data, size);
        text[size] = '\0';
        for (const cfg_def *d = fz_defs; d->name; d++)
            (void)cfg_set(fz_defs, &c, d->name, text, "fuzz");
        free(text);
    }
    json_t *out = cfg_to_json(fz_defs, &c);
    json_decref(out);
    cfg_release(fz_defs, &c);
    return 0;
}
