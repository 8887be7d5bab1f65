/* trainer/synth.c - `recd synth sessions|ratings|ctr`: deterministic synthetic data (a seed gives the
 * same bytes) for the demo and for tests that must run without ../shared.
 *
 * Output goes to --out F; F ending in ".gz" is gzip-compressed (zlib writes no time stamp, so the bytes
 * stay deterministic). Common flags: --out F (required), --seed S (default 1).
 *
 * sessions  TSV, header `session_id  item_id  timestamp` (Unix seconds). Items i0..i{N-1} have Zipf
 *           popularity (exponent 0.8). Each item has 4 successors (drawn by popularity, weights 8:4:2:1);
 *           a session starts at a popular item, then each next click follows a successor of the
 *           current item with probability 0.85, else jumps to a popular item; lengths 2 + geometric
 *           (mean 4), at most 40. Session starts are spread evenly over --days days (default 7) from
 *           2023-11-14 22:13:20 UTC with clicks 10-300 s apart, so `recd split sessions --time-unit s`
 *           has a test day and a sequence model clearly beats popularity. --sessions N (default 3000),
 *           --items N (default 500).
 * ratings   TSV, header `user_id  item_id  rating  timestamp` (MovieLens-like: ids u1.., m1..; ratings
 *           1..5). rating = round(3.5 + b_u + b_i + u.v + noise) clipped to 1..5, with rank-5 factors
 *           u, v ~ N(0, 0.45^2), biases b_u ~ N(0,0.3^2), b_i ~ N(0,0.5^2), noise N(0,0.35^2). Each user
 *           rates distinct items drawn by Zipf popularity (exponent 0.8). --users N (default 300),
 *           --items N (default 200), --rows N ratings (default 10000; capped at users*items/2).
 * ctr       CSV, header `label,age,income,device,site,hour,segment`:
 *             label   0/1 click
 *             age     numeric, 18..80 (integer)
 *             income  numeric, log-normal, 2 decimals
 *             device  categorical d0..d3
 *             site    categorical s0..s29
 *             hour    categorical h0..h23
 *             segment categorical g0..g7
 *           P(label=1) = sigmoid(-1.2 + 0.6*z(age) - 0.4*z(log income) + w[device x site] + v[segment x
 *           hour/6] + u[device]) with w, v, u fixed N(0,1) tables drawn from the seed: the label needs the
 *           crossed categorical features (wide part) and the numeric ones (deep part). --rows N (default
 *           10000).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/config.h"
#include "core/csv.h"
#include "core/err.h"
#include "core/rng.h"
#include "trainer/cmds.h"

/* Settings of every kind, one table (core/config.h): flags `--name value`, '-' and '_' alike. */
typedef struct {
    char *out;
    long long seed, sessions, items, users, rows;
    double days;
} synth_opts;

static const cfg_def synth_defs[] = {
    CFG_STRING("out", synth_opts, out, NULL, "output file (required; .gz: gzipped)"),
    CFG_INT("seed", synth_opts, seed, 1, 0, 9.2e18, "random seed (the same seed gives the same bytes)"),
    CFG_INT("sessions", synth_opts, sessions, 3000, 1, 100000000, "sessions: number of sessions"),
    CFG_INT("items", synth_opts, items, 0, 0, 100000000, "sessions, ratings: items (0: 500 for sessions, 200 for ratings)"),
    CFG_INT("users", synth_opts, users, 300, 1, 100000000, "ratings: users"),
    CFG_INT("rows", synth_opts, rows, 10000, 1, 100000000, "ratings, ctr: rows"),
    CFG_DOUBLE("days", synth_opts, days, 7, 1e-6, 3650, "sessions: days the sessions spread over"),
    CFG_END,
};

static const char synth_help[] =
    "usage: recd synth sessions|ratings|ctr --out F [--seed S] [options]\n"
    "Writes deterministic synthetic data (the same seed gives the same bytes; F ending in .gz is gzipped).\n"
    "  sessions  TSV session_id, item_id, timestamp (Unix s): Zipf item popularity, sessions that follow a\n"
    "            sparse item-to-item Markov chain, spread over --days days (--sessions, --items).\n"
    "  ratings   TSV user_id, item_id, rating (1..5), timestamp: low-rank structure plus noise\n"
    "            (--users, --items, --rows).\n"
    "  ctr       CSV label,age,income,device,site,hour,segment: label (0/1) depends on device x site and\n"
    "            segment x hour crosses and on the numeric age and income (--rows).\n"
    "settings ('-' and '_' are the same in flags):\n";

static void synth_usage(FILE *out)
{
    fputs(synth_help, out);
    cfg_print_help(synth_defs, out);
}

/* Zipf CDF over n ranks with exponent a (cdf has n entries, last = 1). */
static double *zipf_cdf(int64_t n, double a)
{
    double *c = malloc((size_t)n * sizeof *c);
    if (!c) return NULL;
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        s += 1.0 / pow((double)(i + 1), a);
        c[i] = s;
    }
    for (int64_t i = 0; i < n; i++) c[i] /= s;
    c[n - 1] = 1.0;
    return c;
}

static int64_t draw_cdf(rng_t *r, const double *c, int64_t n)
{
    double u = rng_uniform(r);
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (c[mid] > u) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

static gzFile synth_open(const char *path)
{
    size_t l = strlen(path);
    int gz = l > 3 && strcmp(path + l - 3, ".gz") == 0;
    errno = 0;
    gzFile g = gzopen(path, gz ? "wb6" : "wT");
    if (!g) rc_error(RC_EIO, "%s: cannot create: %s", path, errno ? strerror(errno) : "out of memory");
    else gzbuffer(g, 1 << 16);
    return g;
}

/* gzprintf that sets the int `bad` on failure (the callers stop writing at their next check). */
#define SYNTH_PUT(g, bad, ...)                          \
    do {                                               \
        if (gzprintf(g, __VA_ARGS__) <= 0) (bad) = 1;  \
    } while (0)

/* Close g; RC_EIO naming path (and zlib's or the system's reason) if a write failed before or now. */
static int synth_close(gzFile g, const char *path, int bad)
{
    int zerr = Z_OK;
    char why[128];
    snprintf(why, sizeof why, "%s", gzerror(g, &zerr));
    if (zerr == Z_ERRNO) snprintf(why, sizeof why, "%s", strerror(errno));
    errno = 0;
    int cl = gzclose(g);
    if (!bad && cl == Z_OK) return RC_OK;
    if (!bad) snprintf(why, sizeof why, "%s", errno ? strerror(errno) : "zlib error");
    return rc_error(RC_EIO, "%s: write error: %s", path, why);
}

static int synth_sessions(const synth_opts *o)
{
    int rc = RC_ENOMEM;
    int64_t N = o->items, S = o->sessions;
    rng_t r;
    rng_seed(&r, o->seed);
    double *cdf = zipf_cdf(N, 0.8);
    int64_t *succ = malloc((size_t)N * 4 * sizeof *succ);
    int64_t *perm = malloc((size_t)N * sizeof *perm);
    gzFile g = NULL;
    if (!cdf || !succ || !perm) {
        rc = rc_error(RC_ENOMEM, "synth: out of memory");
        goto done;
    }
    /* Popularity rank -> item id through a permutation, so ids do not reveal popularity. */
    for (int64_t i = 0; i < N; i++) perm[i] = i;
    rng_shuffle_i64(&r, perm, (size_t)N);
    for (int64_t i = 0; i < N; i++)
        for (int k = 0; k < 4; k++) {
            int64_t j;
            do j = draw_cdf(&r, cdf, N);
            while (j == i && N > 1);
            succ[i * 4 + k] = j;
        }
    if (!(g = synth_open(o->out))) {
        rc = RC_EIO;
        goto done;
    }
    int bad = 0;
    SYNTH_PUT(g, bad, "session_id\titem_id\ttimestamp\n");
    const int64_t t0 = 1700000000;
    const double span = o->days * 86400.0;
    for (int64_t s = 0; s < S && !bad; s++) {
        int64_t t = t0 + (int64_t)(span * (double)s / (double)S) + (int64_t)rng_below(&r, 60);
        int64_t len = 2;
        while (len < 40 && rng_uniform(&r) < 0.75) len++;
        int64_t cur = draw_cdf(&r, cdf, N);
        for (int64_t k = 0; k < len; k++) {
            SYNTH_PUT(g, bad, "%lld\ti%lld\t%lld\n", (long long)(1000000 + s), (long long)perm[cur],
                      (long long)t);
            t += 10 + (int64_t)rng_below(&r, 291);
            if (rng_uniform(&r) < 0.85) {
                uint64_t w = rng_below(&r, 15); /* weights 8:4:2:1 */
                int kk = w < 8 ? 0 : w < 12 ? 1 : w < 14 ? 2 : 3;
                cur = succ[cur * 4 + kk];
            } else {
                cur = draw_cdf(&r, cdf, N);
            }
        }
    }
    rc = synth_close(g, o->out, bad);
    g = NULL;
done:
    if (g) gzclose(g);
    free(cdf);
    free(succ);
    free(perm);
    return rc;
}

static int synth_ratings(const synth_opts *o)
{
    enum { K = 5 };
    int rc = RC_ENOMEM;
    int64_t U = o->users, I = o->items, R = o->rows;
    if (R > U * I / 2) R = U * I / 2;
    rng_t r;
    rng_seed(&r, o->seed);
    double *uf = malloc((size_t)(U * K + U) * sizeof *uf), *vf = malloc((size_t)(I * K + I) * sizeof *vf);
    double *cdf = zipf_cdf(I, 0.8);
    uint8_t *seen = calloc((size_t)I, 1);
    int64_t *picked = malloc((size_t)I * sizeof *picked);
    gzFile g = NULL;
    if (!uf || !vf || !cdf || !seen || !picked) {
        rc = rc_error(RC_ENOMEM, "synth: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < U * K; i++) uf[i] = 0.45 * rng_normal(&r);
    for (int64_t i = 0; i < U; i++) uf[U * K + i] = 0.3 * rng_normal(&r);
    for (int64_t i = 0; i < I * K; i++) vf[i] = 0.45 * rng_normal(&r);
    for (int64_t i = 0; i < I; i++) vf[I * K + i] = 0.5 * rng_normal(&r);
    if (!(g = synth_open(o->out))) {
        rc = RC_EIO;
        goto done;
    }
    int bad = 0;
    SYNTH_PUT(g, bad, "user_id\titem_id\trating\ttimestamp\n");
    int64_t t = 880000000;
    for (int64_t u = 0; u < U && !bad; u++) {
        /* Ratings per user: an even share of R, the remainder spread over the first users. */
        int64_t n = R / U + (u < R % U ? 1 : 0);
        if (n > I / 2) n = I / 2;
        int64_t np = 0;
        while (np < n) {
            int64_t i = draw_cdf(&r, cdf, I);
            if (seen[i]) {
                if (rng_uniform(&r) < 0.5) i = (int64_t)rng_below(&r, (uint64_t)I);
                if (seen[i]) continue;
            }
            seen[i] = 1;
            picked[np++] = i;
        }
        for (int64_t k = 0; k < np; k++) {
            int64_t i = picked[k];
            seen[i] = 0;
            double x = 3.5 + uf[U * K + u] + vf[I * K + i] + 0.35 * rng_normal(&r);
            for (int f = 0; f < K; f++) x += uf[u * K + f] * vf[i * K + f] * 2.0;
            long v = lround(x);
            if (v < 1) v = 1;
            if (v > 5) v = 5;
            t += 1 + (int64_t)rng_below(&r, 600);
            SYNTH_PUT(g, bad, "u%lld\tm%lld\t%ld\t%lld\n", (long long)(u + 1), (long long)(i + 1), v,
                      (long long)t);
        }
    }
    rc = synth_close(g, o->out, bad);
    g = NULL;
done:
    if (g) gzclose(g);
    free(uf);
    free(vf);
    free(cdf);
    free(seen);
    free(picked);
    return rc;
}

static int synth_ctr(const synth_opts *o)
{
    enum { ND = 4, NS = 30, NH = 24, NG = 8 };
    rng_t r;
    rng_seed(&r, o->seed);
    double w[ND][NS], v[NG][4], ud[ND];
    for (int a = 0; a < ND; a++)
        for (int b = 0; b < NS; b++) w[a][b] = rng_normal(&r);
    for (int a = 0; a < NG; a++)
        for (int b = 0; b < 4; b++) v[a][b] = rng_normal(&r);
    for (int a = 0; a < ND; a++) ud[a] = 0.5 * rng_normal(&r);
    gzFile g = synth_open(o->out);
    if (!g) return RC_EIO;
    int bad = 0;
    SYNTH_PUT(g, bad, "label,age,income,device,site,hour,segment\n");
    for (int64_t i = 0; i < o->rows && !bad; i++) {
        int age = 18 + (int)rng_below(&r, 63);
        double linc = 10.5 + 0.6 * rng_normal(&r);
        double income = exp(linc);
        int dev = (int)rng_below(&r, ND), site = (int)rng_below(&r, NS), hour = (int)rng_below(&r, NH),
            seg = (int)rng_below(&r, NG);
        double z = -1.2 + 0.6 * ((age - 49.0) / 18.2) - 0.4 * ((linc - 10.5) / 0.6) + w[dev][site] +
                   v[seg][hour / 6] + ud[dev];
        double p = 1.0 / (1.0 + exp(-z));
        int label = rng_uniform(&r) < p;
        SYNTH_PUT(g, bad, "%d,%d,%.2f,d%d,s%d,h%d,g%d\n", label, age, income, dev, site, hour, seg);
    }
    return synth_close(g, o->out, bad);
}

int cmd_synth(int argc, char **argv)
{
    const char *prog = "recd synth";
    if (argc < 2) {
        synth_usage(stderr);
        return 2;
    }
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            synth_usage(stdout);
            return 0;
        }
    const char *kind = argv[1];
    int which = strcmp(kind, "sessions") == 0 ? 0 : strcmp(kind, "ratings") == 0 ? 1 : strcmp(kind, "ctr") == 0 ? 2 : -1;
    if (which < 0) {
        fprintf(stderr, "%s: unknown kind '%s' (known: sessions, ratings, ctr)\n", prog, kind);
        return 2;
    }
    synth_opts o;
    int status = 2;
    argc--; /* argv[1] (the kind) is the argv[0] of the settings parser */
    argv++;
    if (cfg_defaults(synth_defs, &o) != RC_OK || cfg_parse_args(synth_defs, &o, &argc, argv, NULL) != RC_OK) {
        fprintf(stderr, "%s %s: %s (run `recd synth --help`)\n", prog, kind, rc_errmsg());
        goto done;
    }
    if (argc > 1) {
        fprintf(stderr, "%s %s: unexpected argument '%s' (run `recd synth --help`)\n", prog, kind, argv[1]);
        goto done;
    }
    if (!o.out) {
        fprintf(stderr, "%s %s: --out F is required\n", prog, kind);
        goto done;
    }
    if (o.items == 0) o.items = which == 1 ? 200 : 500;
    if (which == 1 && o.items < 2) {
        fprintf(stderr, "%s ratings: --items must be at least 2\n", prog);
        goto done;
    }
    int rc = which == 0 ? synth_sessions(&o) : which == 1 ? synth_ratings(&o) : synth_ctr(&o);
    status = 0;
    if (rc < 0) {
        fprintf(stderr, "%s %s: %s\n", prog, kind, rc_errmsg());
        status = 1;
    }
done:
    cfg_release(synth_defs, &o);
    return status;
}
