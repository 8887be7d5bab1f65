/* fuzz/fuzz_ratings.c - libFuzzer target: arbitrary bytes -> the rating reader (trainer/ratings.h:
 * format detection '::' / tab / comma, header detection, ids, ratings, repeated pairs; plain or gzip),
 * then the protocol split, the rows both ways, the metrics and the TSV round trip.
 *
 * Build: make fuzz (clang), then run e.g.
 *     build-fuzz/bin/fuzz_ratings -max_total_time=60 -max_len=4096 /tmp/fuzz-ratings-corpus fuzz/corpus/fuzz_ratings
 * Input layout: byte 0 picks a prefix line (bits 0-1: none, "user_id,item_id,rating",
 * "userId\tmovieId\trating\ttimestamp", "1::1::5::0"), the split fractions (bits 2-3) and whether the
 * TSV round trip runs (bit 4: writes a file under a private temporary folder); the rest is the file
 * body. The body goes into a memfd read through /proc/self/fd (gzread detects gzip by its magic).
 * Checks, besides no crash/leak/UB: on success every index is inside its vocabulary, ids are 1..255
 * bytes, ratings finite within [rmin, rmax], no repeated (user, item) pair (the CSR build refuses
 * one), the split is a partition of the sizes the protocol gives, and the TSV written reads back
 * identically; on failure the message is non-empty and the output zeroed.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/err.h"
#include "core/idmap.h"
#include "core/log.h"
#include "trainer/ratings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_data(const rt_data *d, int split_part)
{
    int64_t U = (int64_t)idmap_size(d->users), N = (int64_t)idmap_size(d->items);
    for (int64_t k = 0; k < d->n; k++) {
        if (d->user[k] < (split_part ? -1 : 0) || d->user[k] >= U) abort();
        if (d->item[k] < (split_part ? -1 : 0) || d->item[k] >= N) abort();
        if (!isfinite(d->rating[k]) || d->rating[k] < d->rmin || d->rating[k] > d->rmax) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char tmpdir[64];
    if (size < 1) return 0;
    log_level = LOG_LVL_OFF;
    uint8_t mode = data[0];
    static const char *const prefix[4] = {"", "user_id,item_id,rating\n", "userId\tmovieId\trating\ttimestamp\n",
                                          "1::1::5::0\n"};
    int fd = memfd_create("fuzz_ratings", 0);
    if (fd < 0) return 0;
    const char *pre = prefix[mode & 3];
    if (*pre && write(fd, pre, strlen(pre)) != (ssize_t)strlen(pre)) goto out;
    if (size > 1 && write(fd, data + 1, size - 1) != (ssize_t)(size - 1)) goto out;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

    rt_data d;
    if (rt_read(&d, path, 0) != RC_OK) {
        if (!rc_errmsg()[0] || d.n != 0 || d.user || d.users) abort();
        goto out;
    }
    if (d.n < 1 || !d.owns_vocab) abort();
    check_data(&d, 0);
    for (int v = 0; v < 2; v++) {
        const idmap *m = v ? d.items : d.users;
        for (int64_t x = 0; x < (int64_t)idmap_size(m); x++) {
            size_t len;
            if (!idmap_key(m, x, &len) || len < 1 || len > 255) abort();
        }
    }
    rt_csr c;
    if (rt_csr_build(&c, &d, 0) != RC_OK) abort(); /* no repeated pair, every index valid */
    if (c.nnz != d.n || c.offsets[c.rows] != d.n) abort();
    rt_csr_free(&c);
    if (rt_csr_build(&c, &d, 1) != RC_OK) abort();
    rt_csr_free(&c);

    static const double fr[4][2] = {{0.1, 0.1}, {0, 0}, {0.5, 0.5}, {0.9, 0.05}};
    const double *f = fr[(mode >> 2) & 3];
    rt_split sp;
    if (rt_split_make(&sp, &d, mode, f[0], f[1]) == RC_OK) {
        int64_t nt = llround(f[0] * (double)d.n), nv = llround(f[1] * (double)(d.n - nt));
        if (sp.test.n != nt || sp.valid.n != nv || sp.train.n != d.n - nt - nv || sp.train.n < 1) abort();
        check_data(&sp.train, 0);
        check_data(&sp.valid, 1);
        check_data(&sp.test, 1);
        if (rt_csr_build(&c, &sp.train, 0) != RC_OK) abort();
        for (int64_t u = 0; u < c.rows; u++)
            if (c.offsets[u + 1] <= c.offsets[u]) abort(); /* a training user has a training rating */
        rt_csr_free(&c);
        rt_split_free(&sp);
    } else if (d.n > 1 && f[0] + f[1] < 0.5) {
        abort(); /* only a tiny set may leave no training rating */
    }
    rt_metrics m;
    if (rt_metrics_of(&m, &d, d.rating, NULL, d.rmin, d.rmax) != RC_OK || m.rmse != 0 || m.mae != 0) abort();

    if (mode & 16) {
        if (!tmpdir[0]) {
            snprintf(tmpdir, sizeof tmpdir, "/tmp/fuzz_ratings.XXXXXX");
            if (!mkdtemp(tmpdir)) {
                tmpdir[0] = 0;
                goto done;
            }
        }
        char out[128];
        snprintf(out, sizeof out, "%s/r.tsv", tmpdir);
        if (rt_write_tsv(&d, out) == RC_OK) {
            rt_data e;
            if (rt_read(&e, out, 0) != RC_OK || e.n != d.n) abort();
            for (int64_t k = 0; k < d.n; k++) {
                size_t la, lb;
                const char *a = idmap_key(d.users, d.user[k], &la), *b = idmap_key(e.users, e.user[k], &lb);
                if (la != lb || memcmp(a, b, la) != 0) abort();
                a = idmap_key(d.items, d.item[k], &la);
                b = idmap_key(e.items, e.item[k], &lb);
                if (la != lb || memcmp(a, b, la) != 0) abort();
                if (e.rating[k] != d.rating[k]) abort();
            }
            rt_free(&e);
            unlink(out);
        }
    }
done:
    rt_free(&d);
out:
    close(fd);
    return 0;
}
