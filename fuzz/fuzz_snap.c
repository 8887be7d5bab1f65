/* fuzz/fuzz_snap.c - libFuzzer target: arbitrary bytes as a snapshot's data.mdb -> snap_open.
 *
 * Build: make fuzz (clang), then run e.g.
 *     build-fuzz/bin/fuzz_snap -max_total_time=60 -max_len=65536 /tmp/fuzz-snap-corpus
 * Seed the corpus with real snapshots (any ROOT/MODEL/VERSION/data.mdb written by snap_writer, e.g.
 * from `RECD_KEEP_TMP=1 bin/recd-tests snap_roundtrip`): mutations of a valid file reach far deeper
 * than random bytes. Each input is written as data.mdb into one temporary folder and opened; when
 * it opens, every tensor is read through the getters, every vocabulary listed in meta is loaded,
 * and everything is released (leaks are reported by ASan). snap_open must refuse bad input with an
 * error, never crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/snap.h"

static char dir[256];

static void cleanup(void)
{
    char p[300];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/fuzz-snap-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(dir)) abort();
        atexit(cleanup);
        log_level = LOG_LVL_OFF;
    }
    char path[300];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();

    snap *s = NULL;
    if (snap_open(&s, dir) != RC_OK) {
        if (s != NULL || rc_errmsg()[0] == '\0') abort(); /* refusals leave no object and say why */
        return 0;
    }
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < snap_tensor_count(s); i++) {
        const snap_tensor *t = snap_tensor_at(s, i);
        if (snap_tensor_get(s, t->name) != t) abort();
        if (t->nbytes) sink ^= ((const unsigned char *)t->data)[t->nbytes - 1];
        snap_tensor_expect(s, t->name, t->dtype, t->ndim, t->shape);
    }
    snap_warm(s);
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(snap_meta(s), "vocabs"), name, v)
    {
        idmap *m = NULL;
        if (snap_vocab_load(s, name, &m) == RC_OK) idmap_free(m);
    }
    (void)sink;
    snap_close(s);
    return 0;
}
