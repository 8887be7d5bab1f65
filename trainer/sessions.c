/* trainer/sessions.c - click-streams for session models: load, GRU4Rec preprocessing, time split.
 *
 * Loading keeps three parallel arrays in file order (session index, item index, time), then groups
 * them by session with one counting sort (stable: file order inside a session), stable-sorts each
 * session by time (insertion sort, merge sort for long sessions) and orders the sessions by their
 * first click. Filtering passes compact the arrays in place. Peak memory for Globo (3M clicks, 1M
 * sessions): about 100 MB plus the two id maps.
 */
#include "trainer/sessions.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/config.h"
#include "core/csv.h"
#include "core/err.h"
#include "core/log.h"

typedef struct sess_holder {
    sess_opts o;
} sess_holder;
static const cfg_def sess_defs[] = {SESS_CFG_ENTRIES_AT("", sess_holder, o), CFG_END};

void sess_opts_default(sess_opts *o)
{
    memset(o, 0, sizeof *o);
    for (const cfg_def *d = sess_defs; d->name; d++) {
        char *f = (char *)o + d->offset;
        switch (d->type) {
        case CFG_T_INT:
            *(long long *)f = d->def_int;
            break;
        case CFG_T_DOUBLE:
            *(double *)f = d->def_double;
            break;
        case CFG_T_BOOL:
            *(int *)f = d->def_int != 0;
            break;
        case CFG_T_STRING:
        case CFG_T_ENUM:
            *(char **)f = (char *)d->def_str; /* static literal: not freed (see sessions.h) */
            break;
        default:
            break;
        }
    }
    o->verbose = 1;
}

void sess_free(sess_data *d)
{
    if (!d) return;
    free(d->items);
    free(d->times);
    free(d->offsets);
    free(d->sess_ids);
    if (d->owns_vocab) idmap_free(d->item_vocab);
    if (d->owns_sess_vocab) idmap_free(d->sess_vocab);
    memset(d, 0, sizeof *d);
}

void sess_split_free(sess_split *sp)
{
    if (!sp) return;
    sess_free(&sp->test);
    sess_free(&sp->train);
    memset(sp, 0, sizeof *sp);
}

int64_t sess_day_units(const sess_opts *o, int64_t max_time)
{
    const char *u = o->time_unit ? o->time_unit : "auto";
    if (strcmp(u, "ms") == 0) return 86400000LL;
    if (strcmp(u, "s") == 0) return 86400LL;
    return max_time >= 100000000000LL ? 86400000LL : 86400LL;
}

int64_t sess_n_predictions(const sess_data *d)
{
    int64_t n = 0;
    for (int64_t s = 0; s < d->n_sessions; s++) {
        int64_t l = d->offsets[s + 1] - d->offsets[s];
        if (l > 1) n += l - 1;
    }
    return n;
}

void sess_item_counts(const sess_data *d, int64_t *counts)
{
    memset(counts, 0, (size_t)d->n_items * sizeof *counts);
    for (int64_t i = 0; i < d->n_events; i++) counts[d->items[i]]++;
}

/* ------------------------------------------------------------------------------------------------ */
/* Loading */

static int grow(void **p, int64_t *cap, int64_t need, size_t elem)
{
    if (need <= *cap) return RC_OK;
    int64_t nc = *cap ? *cap : 1024;
    while (nc < need) nc *= 2;
    void *np = realloc(*p, (size_t)nc * elem);
    if (!np) return rc_error(RC_ENOMEM, "out of memory (%lld elements)", (long long)nc);
    *p = np;
    *cap = nc;
    return RC_OK;
}

static int find_col(char **f, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(f[i], name) == 0) return i;
    return -1;
}

typedef struct {
    int64_t t;
    int32_t item;
} tclick;

/* Stable sort of one session's clicks by time. tmp has room for n clicks (used when n > 32). */
static void sort_session(int32_t *items, int64_t *times, int64_t n, tclick *a, tclick *tmp)
{
    int64_t k;
    for (k = 1; k < n; k++)
        if (times[k] < times[k - 1]) break;
    if (k >= n) return; /* already sorted: the common case */
    for (int64_t i = 0; i < n; i++) a[i] = (tclick){times[i], items[i]};
    if (n <= 32) {
        for (int64_t i = 1; i < n; i++) {
            tclick x = a[i];
            int64_t j = i;
            while (j > 0 && a[j - 1].t > x.t) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = x;
        }
    } else {
        /* bottom-up merge sort, stable */
        tclick *src = a, *dst = tmp;
        for (int64_t w = 1; w < n; w *= 2) {
            for (int64_t lo = 0; lo < n; lo += 2 * w) {
                int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
                int64_t i = lo, j = mid, o = lo;
                while (i < mid && j < hi) dst[o++] = src[j].t < src[i].t ? src[j++] : src[i++];
                while (i < mid) dst[o++] = src[i++];
                while (j < hi) dst[o++] = src[j++];
            }
            tclick *t = src;
            src = dst;
            dst = t;
        }
        if (src != a) memcpy(a, src, (size_t)n * sizeof *a);
    }
    for (int64_t i = 0; i < n; i++) {
        times[i] = a[i].t;
        items[i] = a[i].item;
    }
}

typedef struct {
    int64_t t, key, s;
} sess_order;

/* Comparators for qsort_r: ctx is NULL (numeric keys) or the session vocabulary (keys are indices
 * into it, compared bytewise). No global state, so loads may run on several threads at once. */
static int cmp_order_num(const void *pa, const void *pb, void *ctx)
{
    (void)ctx;
    const sess_order *a = pa, *b = pb;
    if (a->t != b->t) return a->t < b->t ? -1 : 1;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    return (a->s > b->s) - (a->s < b->s);
}

static int cmp_order_str(const void *pa, const void *pb, void *ctx)
{
    const idmap *vocab = ctx;
    const sess_order *a = pa, *b = pb;
    if (a->t != b->t) return a->t < b->t ? -1 : 1;
    size_t la, lb;
    const char *ka = idmap_key(vocab, a->key, &la), *kb = idmap_key(vocab, b->key, &lb);
    int c = memcmp(ka, kb, la < lb ? la : lb);
    if (c) return c;
    if (la != lb) return la < lb ? -1 : 1;
    return (a->s > b->s) - (a->s < b->s);
}

/* Order sessions by (first click time, session id). Rebuilds the arrays. */
static int order_sessions(sess_data *d)
{
    int rc = RC_ENOMEM;
    int64_t nS = d->n_sessions, nE = d->n_events;
    sess_order *ord = malloc((size_t)(nS ? nS : 1) * sizeof *ord);
    int32_t *items = NULL;
    int64_t *times = NULL, *offs = NULL, *ids = NULL;
    if (!ord) goto fail;
    int numeric = 1;
    int64_t *numkey = NULL;
    if (d->sess_vocab) {
        size_t nv = idmap_size(d->sess_vocab);
        numkey = malloc((nv ? nv : 1) * sizeof *numkey);
        if (!numkey) goto fail;
        for (size_t i = 0; i < nv && numeric; i++)
            if (csv_parse_i64(idmap_key(d->sess_vocab, (int64_t)i, NULL), &numkey[i]) != RC_OK) numeric = 0;
    }
    for (int64_t s = 0; s < nS; s++) {
        int64_t id = d->sess_ids ? d->sess_ids[s] : s;
        ord[s].t = d->offsets[s + 1] > d->offsets[s] ? d->times[d->offsets[s]] : INT64_MIN;
        ord[s].key = (d->sess_vocab && numeric) ? numkey[id] : id;
        ord[s].s = s;
    }
    free(numkey);
    int sorted = 1;
    int by_str = d->sess_vocab && !numeric;
    int (*cmp)(const void *, const void *, void *) = by_str ? cmp_order_str : cmp_order_num;
    void *ctx = by_str ? (void *)d->sess_vocab : NULL;
    for (int64_t s = 1; s < nS && sorted; s++)
        if (cmp(&ord[s - 1], &ord[s], ctx) > 0) sorted = 0;
    if (!sorted) qsort_r(ord, (size_t)nS, sizeof *ord, cmp, ctx);
    if (sorted) {
        free(ord);
        return RC_OK;
    }
    items = malloc((size_t)(nE ? nE : 1) * sizeof *items);
    times = malloc((size_t)(nE ? nE : 1) * sizeof *times);
    offs = malloc((size_t)(nS + 1) * sizeof *offs);
    if (d->sess_ids) ids = malloc((size_t)(nS ? nS : 1) * sizeof *ids);
    if (!items || !times || !offs || (d->sess_ids && !ids)) goto fail;
    int64_t w = 0;
    for (int64_t k = 0; k < nS; k++) {
        int64_t s = ord[k].s, a = d->offsets[s], l = d->offsets[s + 1] - a;
        offs[k] = w;
        memcpy(items + w, d->items + a, (size_t)l * sizeof *items);
        memcpy(times + w, d->times + a, (size_t)l * sizeof *times);
        if (ids) ids[k] = d->sess_ids[s];
        w += l;
    }
    offs[nS] = w;
    free(d->items);
    free(d->times);
    free(d->offsets);
    free(d->sess_ids);
    d->items = items;
    d->times = times;
    d->offsets = offs;
    d->sess_ids = ids;
    free(ord);
    return RC_OK;
fail:
    free(ord);
    free(items);
    free(times);
    free(offs);
    free(ids);
    return rc_error(rc, "out of memory ordering %lld sessions", (long long)nS);
}

int sess_load(sess_data *d, const char *path, const sess_opts *o)
{
    int rc;
    memset(d, 0, sizeof *d);
    int64_t *ev_sess = NULL, *ev_time = NULL, cap_s = 0, cap_t = 0, cap_i = 0, n = 0;
    int32_t *ev_item = NULL;
    int64_t *cnt = NULL;
    tclick *sa = NULL, *sb = NULL;
    csv_reader *r;
    if ((rc = csv_open_rc(&r, path, 0)) != RC_OK) return rc;
    char **f;
    int nf;
    rc = csv_next(r, &f, &nf);
    if (rc < 0) goto fail;
    if (rc == 0) {
        rc = rc_error(RC_EFORMAT, "%s: empty file (expected a header line naming the columns)", path);
        goto fail;
    }
    const char *names[3] = {o->session_col, o->item_col, o->time_col};
    const char *what[3] = {"session", "item", "time"};
    int col[3], maxcol = 0;
    for (int k = 0; k < 3; k++) {
        col[k] = find_col(f, nf, names[k]);
        if (col[k] < 0) {
            rc = rc_error(RC_EFORMAT, "%s:%lld: no %s column '%s' in the header (first column: '%s')", path,
                          (long long)csv_line(r), what[k], names[k], nf > 0 ? f[0] : "");
            goto fail;
        }
        if (col[k] > maxcol) maxcol = col[k];
    }
    d->item_vocab = idmap_new(1 << 16);
    d->sess_vocab = idmap_new(1 << 16);
    d->owns_vocab = d->owns_sess_vocab = 1;
    if (!d->item_vocab || !d->sess_vocab) {
        rc = RC_ENOMEM;
        goto fail;
    }
    int64_t max_time = INT64_MIN;
    while ((rc = csv_next(r, &f, &nf)) > 0) {
        if (nf <= maxcol) {
            rc = rc_error(RC_EFORMAT, "%s:%lld: expected at least %d fields, got %d", path,
                          (long long)csv_line(r), maxcol + 1, nf);
            goto fail;
        }
        const char *sid = f[col[0]], *iid = f[col[1]], *ts = f[col[2]];
        int64_t t;
        if (csv_parse_i64(ts, &t) != RC_OK) {
            double x;
            if (csv_parse_double(ts, &x) != RC_OK || fabs(x) > 9.0e18) {
                rc = rc_error(RC_EFORMAT, "%s:%lld: field '%s': not a timestamp: \"%.40s\"", path,
                              (long long)csv_line(r), o->time_col, ts);
                goto fail;
            }
            t = llround(x);
        }
        size_t ls = strlen(sid), li = strlen(iid);
        const char *bad_col = NULL; /* an empty id, or one over the id map's key limit */
        size_t bad_len = 0;
        if (ls == 0 || ls > IDMAP_MAX_KEY) bad_col = o->session_col, bad_len = ls;
        else if (li == 0 || li > IDMAP_MAX_KEY) bad_col = o->item_col, bad_len = li;
        if (bad_col) {
            if (bad_len == 0)
                rc = rc_error(RC_EFORMAT, "%s:%lld: field '%s': empty id", path, (long long)csv_line(r),
                              bad_col);
            else
                rc = rc_error(RC_EFORMAT, "%s:%lld: field '%s': id of %zu bytes (at most %d)", path,
                              (long long)csv_line(r), bad_col, bad_len, IDMAP_MAX_KEY);
            goto fail;
        }
        int64_t si = idmap_intern(d->sess_vocab, sid, ls);
        int64_t ii = si < 0 ? -1 : idmap_intern(d->item_vocab, iid, li);
        if (si < 0 || ii < 0) { /* ENOMEM, or EFULL past 2^32-2 ids: idmap's message says which */
            rc = rc_wrap(RC_ENOMEM, "%s:%lld", path, (long long)csv_line(r));
            goto fail;
        }
        if (ii > INT32_MAX) {
            rc = rc_error(RC_ERANGE, "%s:%lld: more than 2^31-1 distinct items", path, (long long)csv_line(r));
            goto fail;
        }
        if ((rc = grow((void **)&ev_sess, &cap_s, n + 1, sizeof *ev_sess)) < 0 ||
            (rc = grow((void **)&ev_time, &cap_t, n + 1, sizeof *ev_time)) < 0 ||
            (rc = grow((void **)&ev_item, &cap_i, n + 1, sizeof *ev_item)) < 0)
            goto fail;
        ev_sess[n] = si;
        ev_item[n] = (int32_t)ii;
        ev_time[n] = t;
        if (t > max_time) max_time = t;
        n++;
    }
    if (rc < 0) goto fail;
    csv_close(r);
    r = NULL;

    /* Group by session: counting sort, stable. */
    int64_t nS = (int64_t)idmap_size(d->sess_vocab);
    d->n_sessions = nS;
    d->n_events = n;
    d->n_items = (int64_t)idmap_size(d->item_vocab);
    d->offsets = calloc((size_t)nS + 1, sizeof *d->offsets);
    d->items = malloc((size_t)(n ? n : 1) * sizeof *d->items);
    d->times = malloc((size_t)(n ? n : 1) * sizeof *d->times);
    d->sess_ids = malloc((size_t)(nS ? nS : 1) * sizeof *d->sess_ids);
    cnt = malloc((size_t)(nS ? nS : 1) * sizeof *cnt);
    if (!d->offsets || !d->items || !d->times || !d->sess_ids || !cnt) {
        rc = rc_error(RC_ENOMEM, "%s: out of memory for %lld clicks", path, (long long)n);
        goto fail;
    }
    for (int64_t i = 0; i < n; i++) d->offsets[ev_sess[i] + 1]++;
    int64_t maxlen = 0;
    for (int64_t s = 0; s < nS; s++) {
        if (d->offsets[s + 1] > maxlen) maxlen = d->offsets[s + 1];
        d->offsets[s + 1] += d->offsets[s];
        cnt[s] = d->offsets[s];
        d->sess_ids[s] = s;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t p = cnt[ev_sess[i]]++;
        d->items[p] = ev_item[i];
        d->times[p] = ev_time[i];
    }
    free(ev_sess);
    free(ev_item);
    free(ev_time);
    free(cnt);
    ev_sess = ev_time = cnt = NULL;
    ev_item = NULL;

    if (o->sort_by_time && maxlen > 1) {
        sa = malloc((size_t)maxlen * sizeof *sa);
        sb = malloc((size_t)maxlen * sizeof *sb);
        if (!sa || !sb) {
            rc = rc_error(RC_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
        for (int64_t s = 0; s < nS; s++) {
            int64_t a = d->offsets[s];
            sort_session(d->items + a, d->times + a, d->offsets[s + 1] - a, sa, sb);
        }
        free(sa);
        free(sb);
        sa = sb = NULL;
    }
    if ((rc = order_sessions(d)) < 0) goto fail;
    if (o->verbose)
        log_info("sessions: %s: %lld clicks, %lld sessions, %lld items", path, (long long)n, (long long)nS,
                 (long long)d->n_items);
    return RC_OK;
fail:
    csv_close(r);
    free(ev_sess);
    free(ev_item);
    free(ev_time);
    free(cnt);
    free(sa);
    free(sb);
    sess_free(d);
    return rc;
}

/* ------------------------------------------------------------------------------------------------ */
/* Filtering */

/* One compaction pass: keeps the clicks whose item is >= 0 and has keep[item] != 0 (keep may be NULL
 * = all), drops immediate repeats if drop_repeats, then drops sessions shorter than max(min_len, 1).
 * *sdrop / *edrop receive the sessions and clicks dropped; *unmapped (may be NULL) the clicks dropped
 * for an item of -1 (test clicks on items unseen in train). */
static void compact(sess_data *d, const uint8_t *keep, int drop_repeats, int64_t min_len, int64_t *sdrop,
                    int64_t *edrop, int64_t *unmapped)
{
    if (min_len < 1) min_len = 1;
    int64_t w = 0, ws = 0, start = d->offsets[0], neg = 0;
    int64_t nS = d->n_sessions;
    for (int64_t s = 0; s < nS; s++) {
        int64_t end = d->offsets[s + 1], w0 = w;
        for (int64_t i = start; i < end; i++) {
            int32_t it = d->items[i];
            if (it < 0) {
                neg++;
                continue;
            }
            if (keep && !keep[it]) continue;
            if (drop_repeats && w > w0 && d->items[w - 1] == it) continue;
            d->items[w] = it;
            d->times[w] = d->times[i];
            w++;
        }
        start = end;
        if (w - w0 < min_len) {
            w = w0;
            continue;
        }
        d->offsets[ws] = w0;
        if (d->sess_ids) d->sess_ids[ws] = d->sess_ids[s];
        ws++;
    }
    d->offsets[ws] = w;
    *sdrop = nS - ws;
    *edrop = d->n_events - w;
    if (unmapped) *unmapped = neg;
    d->n_sessions = ws;
    d->n_events = w;
}

int sess_preprocess(sess_data *d, const sess_opts *o)
{
    int64_t sdrop, edrop;
    if (d->n_sessions == 0) return RC_OK;
    if (o->drop_repeats) {
        compact(d, NULL, 1, 1, &sdrop, &edrop, NULL);
        if (o->verbose) log_info("sessions: dropped %lld immediate repeats", (long long)edrop);
    }
    uint8_t *keep = malloc((size_t)(d->n_items ? d->n_items : 1));
    int64_t *counts = malloc((size_t)(d->n_items ? d->n_items : 1) * sizeof *counts);
    if (!keep || !counts) {
        free(keep);
        free(counts);
        return rc_error(RC_ENOMEM, "out of memory for %lld items", (long long)d->n_items);
    }
    for (int round = 1;; round++) {
        int64_t s1 = 0, e1 = 0, idrop = 0, e2 = 0, s2 = 0;
        compact(d, NULL, 0, o->min_session_len, &s1, &e1, NULL);
        if (o->min_item_support > 1) {
            sess_item_counts(d, counts);
            for (int64_t i = 0; i < d->n_items; i++) {
                keep[i] = counts[i] >= o->min_item_support;
                if (counts[i] > 0 && !keep[i]) idrop++;
            }
            if (idrop) compact(d, keep, 0, 1, &s2, &e2, NULL);
        }
        if (o->verbose)
            log_info("sessions: round %d: dropped %lld short sessions (%lld clicks), %lld rare items (%lld "
                     "clicks); left %lld clicks in %lld sessions",
                     round, (long long)s1, (long long)e1, (long long)idrop, (long long)e2,
                     (long long)d->n_events, (long long)d->n_sessions);
        if (s1 == 0 && idrop == 0) break;
    }
    free(keep);
    free(counts);
    /* Dropped clicks can change a session's first click: restore the order by first click. */
    return order_sessions(d);
}

/* ------------------------------------------------------------------------------------------------ */
/* Split */

/* Test-side filter of sess_reindex and sess_split_data: drops the clicks whose item is -1 (unseen in
 * train), then the sessions left with fewer than 2 clicks (no prediction). Returns the number of
 * clicks dropped for their item. */
static int64_t drop_unmapped(sess_data *d)
{
    int64_t sdrop, edrop, unmapped;
    compact(d, NULL, 0, 2, &sdrop, &edrop, &unmapped);
    return unmapped;
}

int sess_reindex(sess_data *test, const sess_data *train, int64_t *dropped)
{
    int64_t nI = test->n_items;
    uint8_t *keep = malloc((size_t)(nI ? nI : 1));
    int32_t *map = malloc((size_t)(nI ? nI : 1) * sizeof *map);
    if (!keep || !map) {
        free(keep);
        free(map);
        return rc_error(RC_ENOMEM, "out of memory for %lld items", (long long)nI);
    }
    for (int64_t i = 0; i < nI; i++) {
        map[i] = -1;
        if (test->item_vocab && test->item_vocab != train->item_vocab) {
            size_t len;
            const char *k = idmap_key(test->item_vocab, i, &len);
            int64_t j = idmap_find(train->item_vocab, k, len);
            if (j >= 0) map[i] = (int32_t)j;
        } else if (i < train->n_items) {
            map[i] = (int32_t)i;
        }
        keep[i] = map[i] >= 0;
    }
    for (int64_t e = 0; e < test->n_events; e++)
        if (keep[test->items[e]]) test->items[e] = map[test->items[e]];
        else test->items[e] = -1; /* dropped below */
    int64_t dr = drop_unmapped(test);
    if (test->owns_vocab && test->item_vocab != train->item_vocab) idmap_free(test->item_vocab);
    test->item_vocab = train->item_vocab;
    test->owns_vocab = 0;
    test->n_items = train->n_items;
    if (dropped) *dropped = dr;
    free(keep);
    free(map);
    return order_sessions(test);
}

int sess_split_data(sess_split *sp, sess_data *d, const sess_opts *o)
{
    int rc = RC_OK;
    memset(sp, 0, sizeof *sp);
    int32_t *map = NULL;
    sess_data *tr = &sp->train, *te = &sp->test;
    int64_t max_time = INT64_MIN;
    for (int64_t i = 0; i < d->n_events; i++)
        if (d->times[i] > max_time) max_time = d->times[i];
    if (d->n_events == 0) {
        rc = rc_error(RC_EINVAL, "split: no clicks left after preprocessing");
        goto fail;
    }
    const char *u = o->time_unit ? o->time_unit : "auto";
    if (strcmp(u, "auto") && strcmp(u, "ms") && strcmp(u, "s")) {
        rc = rc_error(RC_EINVAL, "split: time unit '%s' is not one of auto, ms, s", u);
        goto fail;
    }
    int64_t day = sess_day_units(o, max_time);
    int64_t T = o->split_time ? (int64_t)o->split_time : max_time;
    /* C = T - days: saturated, so extreme timestamps or windows cannot overflow (nor a NaN days) */
    double win = o->days * (double)day;
    int64_t C;
    if (!(win >= 0)) {
        rc = rc_error(RC_EINVAL, "split: days %g is not a number >= 0", o->days);
        goto fail;
    }
    if (win >= 9.0e18 || __builtin_sub_overflow(T, (int64_t)llround(win), &C)) C = INT64_MIN;
    sp->split_time = T;
    sp->cutoff = C;
    int64_t nS = d->n_sessions, nE = d->n_events;
    /* Both parts are carved out of d's arrays: count first. */
    int64_t ntrS = 0, ntrE = 0, nteS = 0, nteE = 0;
    for (int64_t s = 0; s < nS; s++) {
        int64_t a = d->offsets[s], b = d->offsets[s + 1];
        if (d->times[a] >= C) {
            nteS++;
            nteE += b - a;
        } else {
            ntrS++;
            ntrE += b - a; /* upper bound */
        }
    }
    tr->items = malloc((size_t)(ntrE ? ntrE : 1) * sizeof *tr->items);
    tr->times = malloc((size_t)(ntrE ? ntrE : 1) * sizeof *tr->times);
    tr->offsets = malloc((size_t)(ntrS + 1) * sizeof *tr->offsets);
    tr->sess_ids = malloc((size_t)(ntrS ? ntrS : 1) * sizeof *tr->sess_ids);
    te->items = malloc((size_t)(nteE ? nteE : 1) * sizeof *te->items);
    te->times = malloc((size_t)(nteE ? nteE : 1) * sizeof *te->times);
    te->offsets = malloc((size_t)(nteS + 1) * sizeof *te->offsets);
    te->sess_ids = malloc((size_t)(nteS ? nteS : 1) * sizeof *te->sess_ids);
    map = malloc((size_t)(d->n_items ? d->n_items : 1) * sizeof *map);
    tr->item_vocab = idmap_new(16384);
    if (!tr->items || !tr->times || !tr->offsets || !tr->sess_ids || !te->items || !te->times || !te->offsets ||
        !te->sess_ids || !map || !tr->item_vocab) {
        rc = rc_error(RC_ENOMEM, "split: out of memory");
        goto fail;
    }
    tr->owns_vocab = 1;
    int64_t min_len = o->min_session_len > 1 ? o->min_session_len : 1;
    int64_t wtr = 0, str = 0, wte = 0, ste = 0, cut_clicks = 0, cut_sessions = 0;
    for (int64_t s = 0; s < nS; s++) {
        int64_t a = d->offsets[s], b = d->offsets[s + 1];
        int64_t sid = d->sess_ids ? d->sess_ids[s] : s;
        if (d->times[a] >= C) {
            te->offsets[ste] = wte;
            te->sess_ids[ste++] = sid;
            memcpy(te->items + wte, d->items + a, (size_t)(b - a) * sizeof *te->items);
            memcpy(te->times + wte, d->times + a, (size_t)(b - a) * sizeof *te->times);
            wte += b - a;
            continue;
        }
        int64_t w0 = wtr;
        for (int64_t i = a; i < b; i++) {
            if (d->times[i] >= C) continue;
            tr->items[wtr] = d->items[i];
            tr->times[wtr++] = d->times[i];
        }
        if (wtr - w0 < b - a) cut_clicks += (b - a) - (wtr - w0);
        if (wtr - w0 < min_len) {
            cut_sessions++;
            wtr = w0;
            continue;
        }
        tr->offsets[str] = w0;
        tr->sess_ids[str++] = sid;
    }
    tr->offsets[str] = wtr;
    te->offsets[ste] = wte;
    tr->n_sessions = str;
    tr->n_events = wtr;
    te->n_sessions = ste;
    te->n_events = wte;
    (void)nE;
    /* Train vocabulary: items in order of first occurrence. */
    for (int64_t i = 0; i < d->n_items; i++) map[i] = -1;
    for (int64_t e = 0; e < tr->n_events; e++) {
        int32_t it = tr->items[e];
        if (map[it] < 0) {
            size_t len;
            const char *k = idmap_key(d->item_vocab, it, &len);
            int64_t j = idmap_intern(tr->item_vocab, k, len);
            if (j < 0) {
                rc = RC_ENOMEM;
                goto fail;
            }
            map[it] = (int32_t)j;
        }
        tr->items[e] = map[it];
    }
    tr->n_items = (int64_t)idmap_size(tr->item_vocab);
    tr->sess_vocab = d->sess_vocab; /* borrowed for ordering ties by id; ownership moves below */
    if ((rc = order_sessions(tr)) < 0) goto fail;
    if (tr->n_events == 0) {
        rc = rc_error(RC_EINVAL, "split: no training clicks before the cutoff %lld (T=%lld, %g days)",
                      (long long)C, (long long)T, o->days);
        goto fail;
    }
    /* Test: re-index to train's vocabulary (unseen items = -1, dropped by sess_reindex's pass). */
    for (int64_t e = 0; e < te->n_events; e++) te->items[e] = map[te->items[e]];
    te->item_vocab = tr->item_vocab;
    te->owns_vocab = 0;
    te->n_items = tr->n_items;
    sp->test_dropped_unseen = drop_unmapped(te);
    /* Session vocabulary moves to train; test borrows it. */
    tr->sess_vocab = d->sess_vocab;
    tr->owns_sess_vocab = d->owns_sess_vocab;
    te->sess_vocab = d->sess_vocab;
    te->owns_sess_vocab = 0;
    d->owns_sess_vocab = 0;
    /* Dropping unseen items can change a test session's first click: re-order so that the test set in
     * memory is in the same order as when test.tsv is read back. */
    if ((rc = order_sessions(te)) < 0) goto fail;
    sp->n_predictions = sess_n_predictions(te);
    if (o->verbose) {
        log_info("split: T=%lld cutoff=%lld (%g days of %lld units): train %lld clicks in %lld sessions over "
                 "%lld items (%lld clicks at or after the cutoff cut, %lld sessions dropped as too short)",
                 (long long)T, (long long)C, o->days, (long long)day, (long long)tr->n_events,
                 (long long)tr->n_sessions, (long long)tr->n_items, (long long)cut_clicks,
                 (long long)cut_sessions);
        log_info("split: test %lld clicks in %lld sessions, %lld predictions (%lld clicks on items unseen in "
                 "train dropped)",
                 (long long)te->n_events, (long long)te->n_sessions, (long long)sp->n_predictions,
                 (long long)sp->test_dropped_unseen);
    }
    free(map);
    sess_free(d);
    return RC_OK;
fail:
    free(map);
    sess_split_free(sp);
    sess_free(d);
    return rc;
}

int sess_prepare(sess_split *sp, const char *path, const sess_opts *o)
{
    sess_data d;
    memset(sp, 0, sizeof *sp);
    int rc = sess_load(&d, path, o);
    if (rc < 0) return rc;
    if ((rc = sess_preprocess(&d, o)) < 0) {
        sess_free(&d);
        return rc_wrap(rc, "%s", path);
    }
    /* the split's messages do not know the file: name it */
    if ((rc = sess_split_data(sp, &d, o)) < 0) return rc_wrap(rc, "%s", path);
    return RC_OK;
}

/* Write one id as a TSV field that core/csv reads back byte for byte: quoted (with "" for ") when it
 * holds a tab or starts with a quote, else as it is. */
static void put_tsv_id(FILE *fp, const char *id, size_t len)
{
    if (!memchr(id, '\t', len) && !(len > 0 && id[0] == '"')) {
        fwrite(id, 1, len, fp);
        return;
    }
    putc('"', fp);
    for (size_t i = 0; i < len; i++) {
        if (id[i] == '"') putc('"', fp);
        putc(id[i], fp);
    }
    putc('"', fp);
}

/* 1 if the id cannot go into a line-based file (it holds a newline or a NUL byte). */
static int bad_tsv_id(const char *id, size_t len)
{
    return memchr(id, '\n', len) || memchr(id, '\0', len);
}

int sess_write_tsv(const sess_data *d, const char *path)
{
    if (!d->sess_vocab) return rc_error(RC_EINVAL, "%s: no session ids to write", path);
    FILE *fp = fopen(path, "w");
    if (!fp) return rc_error(RC_EIO, "%s: cannot create: %s", path, strerror(errno));
    struct stat st; /* only a regular file is removed on error (never /dev/stdout or a fifo) */
    int regular = fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode);
    char *buf = malloc(1 << 20);
    if (buf) setvbuf(fp, buf, _IOFBF, 1 << 20);
    fputs("session_id\titem_id\ttimestamp\n", fp);
    int rc = RC_OK;
    for (int64_t s = 0; s < d->n_sessions && rc == RC_OK; s++) {
        size_t ls, li;
        const char *sid = idmap_key(d->sess_vocab, d->sess_ids[s], &ls);
        if (bad_tsv_id(sid, ls))
            rc = rc_error(RC_EINVAL, "%s: session id \"%.40s\" holds a line break or NUL", path, sid);
        for (int64_t i = d->offsets[s]; i < d->offsets[s + 1] && rc == RC_OK; i++) {
            const char *iid = idmap_key(d->item_vocab, d->items[i], &li);
            if (bad_tsv_id(iid, li)) {
                rc = rc_error(RC_EINVAL, "%s: item id \"%.40s\" holds a line break or NUL", path, iid);
                break;
            }
            put_tsv_id(fp, sid, ls);
            putc('\t', fp);
            put_tsv_id(fp, iid, li);
            fprintf(fp, "\t%lld\n", (long long)d->times[i]);
        }
    }
    int bad = ferror(fp), err = errno;
    int cl = fclose(fp);
    if (cl != 0 && !bad) err = errno;
    free(buf);
    if (rc == RC_OK && (cl != 0 || bad)) rc = rc_error(RC_EIO, "%s: write error: %s", path, strerror(err));
    if (rc != RC_OK && regular) remove(path); /* no half-written file left behind */
    return rc;
}

int sess_load_for_eval(sess_split *sp, const char *data_path, const char *train_path, const char *test_path,
                       const sess_opts *o)
{
    memset(sp, 0, sizeof *sp);
    if (data_path && !train_path && !test_path) return sess_prepare(sp, data_path, o);
    if (data_path || !train_path || !test_path)
        return rc_error(RC_EINVAL, "give either --data F, or both --train F and --test F");
    int rc = sess_load(&sp->train, train_path, o);
    if (rc < 0) return rc;
    if ((rc = sess_load(&sp->test, test_path, o)) < 0) {
        sess_free(&sp->train);
        return rc;
    }
    if ((rc = sess_reindex(&sp->test, &sp->train, &sp->test_dropped_unseen)) < 0) {
        sess_split_free(sp);
        return rc;
    }
    sp->n_predictions = sess_n_predictions(&sp->test);
    if (o->verbose)
        log_info("eval data: train %lld clicks in %lld sessions over %lld items; test %lld predictions (%lld "
                 "clicks on unseen items dropped)",
                 (long long)sp->train.n_events, (long long)sp->train.n_sessions, (long long)sp->train.n_items,
                 (long long)sp->n_predictions, (long long)sp->test_dropped_unseen);
    return RC_OK;
}

int sess_trainer_args(const cfg_def *defs, void *cfg, int argc, char **argv, const char *prog,
                      void (*usage)(FILE *), size_t train_off, size_t test_off, const char **data,
                      const char **cfg_path_out)
{
    const char *cfg_path = NULL;
    *data = NULL;
    *cfg_path_out = NULL;
    for (int i = 1; i < argc; i++) { /* --help, and -c first: the file is read before the flags */
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) cfg_path = argv[++i];
    }
    *cfg_path_out = cfg_path;
    static const char *const keep[] = {"-c", "--data", NULL};
    if ((cfg_path && cfg_load_file(defs, cfg, cfg_path) != RC_OK) || cfg_parse_args(defs, cfg, &argc, argv, keep) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        return 2;
    }
    for (int i = 1; i < argc; i++) { /* what cfg_parse_args left: -c F, --data F, --data=F */
        const char *a = argv[i];
        if (strncmp(a, "--data=", 7) == 0) {
            *data = a + 7;
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--data") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: option %s needs a value\n", prog, a);
                return 2;
            }
            if (a[1] == '-') *data = argv[i + 1];
            i++;
        } else {
            fprintf(stderr, "%s: unexpected argument '%s' (run `%s --help`)\n", prog, a, prog);
            return 2;
        }
    }
    const char *train = *(char **)((char *)cfg + train_off), *test = *(char **)((char *)cfg + test_off);
    if (*data && (train || test)) {
        fprintf(stderr, "%s: give --data F (split by the data.* settings) or --train F [--test F] (files already "
                        "split), not both\n", prog);
        return 2;
    }
    if (!*data && !train) {
        fprintf(stderr, "%s: no training data (--data F, or --train F [--test F])\n", prog);
        usage(stderr);
        return 2;
    }
    return -1;
}
