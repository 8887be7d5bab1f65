/* bench/rank_bench.c - in-process timing of POST /v1/rank's handler (route_rank: JSON reading, feature
 * encoding, one batched forward pass, top-k, answer) without HTTP, for a snapshot root holding an Adult
 * widedeep model and the same 100-candidate request as bench/rank_adult.sh (or a body file).
 *   make && cc -O2 -std=c11 -D_GNU_SOURCE -I. $(pkg-config --cflags openblas jansson) bench/rank_bench.c \
 *     obj/librecd.a $(pkg-config --libs openblas libmicrohttpd jansson lmdb libuv zlib) -lm -pthread \
 *     -o /tmp/rank_bench && /tmp/rank_bench SNAPSHOT_ROOT [BODY.json]
 * Prints p50/p90/p99/mean/min of 3000 calls after 200 warm-up calls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "server/http.h"
#include "server/registry.h"
#include "server/server.h"

int route_rank(http_req *r);


static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The request of bench/rank_adult.sh: one person, 100 candidate jobs. */
static size_t make_body(char *b, size_t cap)
{
    static const char *occ[] = {"Tech-support",    "Craft-repair",   "Other-service",     "Sales",
                                "Exec-managerial", "Prof-specialty", "Handlers-cleaners", "Machine-op-inspct",
                                "Adm-clerical",    "Farming-fishing"};
    static const char *wc[] = {"Private", "Self-emp-not-inc", "Local-gov", "State-gov", "Federal-gov"};
    size_t n = (size_t)snprintf(b, cap,
                                "{\"user_id\":\"u1\",\"k\":10,\"context\":{\"age\":41,\"education\":\"Bachelors\","
                                "\"education_num\":13,\"marital_status\":\"Married-civ-spouse\",\"relationship\":"
                                "\"Husband\",\"capital_gain\":0,\"capital_loss\":0},\"candidates\":[");
    for (int i = 0; i < 100 && n < cap; i++)
        n += (size_t)snprintf(b + n, cap - n,
                              "%s{\"item_id\":\"job%d\",\"features\":{\"occupation\":\"%s\",\"hours_per_week\":%d,"
                              "\"workclass\":\"%s\"}}",
                              i ? "," : "", i, occ[i % 10], 20 + (i * 7) % 45, wc[(i / 10) % 5]);
    if (n < cap) n += (size_t)snprintf(b + n, cap - n, "]}");
    return n < cap ? n : cap - 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: rank_bench SNAPSHOT_ROOT [BODY.json]\n");
        return 2;
    }
    const char *names[] = {"widedeep"};
    server srv;
    memset(&srv, 0, sizeof srv);
    srv.limits = api_limits_default();
    srv.reg = registry_new(argv[1], names, 1);
    if (!srv.reg || registry_scan(srv.reg, NULL, 0) != 1) {
        fprintf(stderr, "rank_bench: no widedeep snapshot under %s\n", argv[1]);
        return 1;
    }
    static char body[65536];
    size_t n;
    if (argc > 2) {
        FILE *f = fopen(argv[2], "r");
        if (!f) {
            perror(argv[2]);
            return 1;
        }
        n = fread(body, 1, sizeof body - 1, f);
        fclose(f);
    } else {
        n = make_body(body, sizeof body);
    }
    body[n] = '\0';
    sbuf out;
    sbuf_init(&out);
    /* one detached connection for every call: its slots live on, as on a keep-alive connection */
    http_req *r = http_detached_new(&srv);
    if (!r) {
        fprintf(stderr, "rank_bench: out of memory\n");
        return 1;
    }
    r->body = body;
    r->body_len = n;
    r->out = &out;
    r->path = "/v1/rank";
    strcpy(r->request_id, "bench");
    enum { N = 3000 };
    static double t[N];
    for (int i = 0; i < 200; i++) {
        sbuf_reset(&out);
        route_rank(r);
    }
    for (int i = 0; i < N; i++) {
        sbuf_reset(&out);
        double t0 = clock_mono_s();
        route_rank(r);
        t[i] = clock_mono_s() - t0;
    }
    if (r->status != 200) {
        fprintf(stderr, "rank_bench: status %d: %.*s\n", r->status, (int)out.len, out.data);
        return 1;
    }
    qsort(t, N, sizeof *t, cmp_d);
    double sum = 0;
    for (int i = 0; i < N; i++) sum += t[i];
    printf("route_rank %zu-byte body: p50 %.1f us, p90 %.1f us, p99 %.1f us, mean %.1f us, min %.1f us\n", n,
           t[N / 2] * 1e6, t[N * 9 / 10] * 1e6, t[N * 99 / 100] * 1e6, sum / N * 1e6, t[0] * 1e6);
    http_detached_free(r);
    registry_free(srv.reg);
    sbuf_release(&out);
    return 0;
}
