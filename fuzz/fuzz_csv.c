/* fuzz/fuzz_csv.c - libFuzzer target: arbitrary bytes -> core/csv reader (plain or gzip), the field
 * parsers, and the click-stream loader with the GRU4Rec preprocessing and split.
 *
 * Build: make fuzz (clang), then run e.g.
 *     build-fuzz/bin/fuzz_csv -max_total_time=60 -max_len=4096 /tmp/fuzz-csv-corpus
 * Input layout: byte 0 picks the separator (0 guess, ',' or '\t') and whether a clicks header
 * "session_id,item_id,timestamp" is prepended (so the session loader gets past the header); the rest
 * is the file body. The body goes into a memfd read through /proc/self/fd (gzread detects gzip by
 * its magic, so gzip-shaped inputs exercise the inflate path).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/csv.h"
#include "core/err.h"
#include "core/log.h"
#include "trainer/sessions.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    log_level = LOG_LVL_OFF;
    uint8_t mode = data[0];
    char sep = (mode & 3) == 1 ? ',' : (mode & 3) == 2 ? '\t' : 0;
    int header = (mode & 4) != 0;
    int fd = memfd_create("fuzz_csv", 0);
    if (fd < 0) return 0;
    static const char hdr[] = "session_id,item_id,timestamp\n";
    if (header && write(fd, hdr, sizeof hdr - 1) != (ssize_t)(sizeof hdr - 1)) goto out;
    if (size > 1 && write(fd, data + 1, size - 1) != (ssize_t)(size - 1)) goto out;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

    csv_reader *r = csv_open(path, sep);
    if (r) {
        char **f;
        int n, rc;
        while ((rc = csv_next(r, &f, &n)) > 0) {
            for (int i = 0; i < n; i++) {
                int64_t v;
                double d;
                (void)csv_parse_i64(f[i], &v);
                (void)csv_parse_double(f[i], &d);
                (void)strlen(f[i]);
            }
            (void)csv_line(r);
        }
        csv_close(r);
    }

    sess_opts o;
    sess_opts_default(&o);
    o.verbose = 0;
    o.min_item_support = (mode >> 3) & 3;
    o.days = (mode >> 5) & 1 ? 0.001 : 1;
    sess_split sp;
    if (sess_prepare(&sp, path, &o) == RC_OK) {
        if (sp.n_predictions != sess_n_predictions(&sp.test)) abort();
        for (int64_t e = 0; e < sp.test.n_events; e++)
            if (sp.test.items[e] < 0 || sp.test.items[e] >= sp.train.n_items) abort();
        for (int64_t e = 0; e < sp.train.n_events; e++)
            if (sp.train.items[e] < 0 || sp.train.items[e] >= sp.train.n_items) abort();
        sess_split_free(&sp);
    }
out:
    close(fd);
    return 0;
}
