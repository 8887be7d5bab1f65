/* bench/idmap_bench.c - time and memory of core/idmap for millions of 16-digit session ids.
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -I. bench/idmap_bench.c core/idmap.c core/hash.c core/err.c \
 *      -o /tmp/idmap_bench && /tmp/idmap_bench [n=5000000] [hint=0]
 *
 * Key formatting (snprintf) is done up front, outside the timed part. Prints intern and find times
 * (all hits, then all misses) and the peak resident memory of the process (keys buffer included).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/idmap.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID,
                  &t); /* CPU time of this thread: stable on a shared machine */
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static long peak_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 5000000;
    size_t hint = argc > 2 ? (size_t)atol(argv[2]) : 0;
    char *keys = malloc((size_t)n * 16);
    for (long i = 0; i < n; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "%016ld", 1000000000000000L + i * 104729L);
        memcpy(keys + (size_t)i * 16, buf, 16);
    }
    long base = peak_kb();
    double t0 = now();
    idmap *m = idmap_new(hint);
    for (long i = 0; i < n; i++)
        if (idmap_intern(m, keys + (size_t)i * 16, 16) != i)
            return fprintf(stderr, "intern %ld\n", i), 1;
    double t1 = now();
    for (long i = 0; i < n; i++)
        if (idmap_find(m, keys + (size_t)i * 16, 16) != i)
            return fprintf(stderr, "find %ld\n", i), 1;
    double t2 = now();
    for (long i = 0; i < n; i++)
        keys[(size_t)i * 16] = 'x'; /* same lengths, all absent */
    for (long i = 0; i < n; i++)
        if (idmap_find(m, keys + (size_t)i * 16, 16) != -1)
            return fprintf(stderr, "miss %ld\n", i), 1;
    double t3 = now();
    printf("n=%ld hint=%zu: intern %.2f s (%.0f ns/id), find hit %.0f ns, find miss %.0f ns, "
           "map memory ~%ld MB (peak RSS %ld MB)\n",
           n, hint, t1 - t0, (t1 - t0) / n * 1e9, (t2 - t1) / n * 1e9, (t3 - t2) / n * 1e9,
           (peak_kb() - base) / 1024, peak_kb() / 1024);
    idmap_free(m);
    free(keys);
    return 0;
}
