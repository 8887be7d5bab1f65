/* models/rating_base.c - the shared snapshot part of every rating model (see models/rating_base.h).
 */
#include "models/rating_base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

double rb_rmse(const rb_triples *t, const float *pred)
{
    if (!t || t->n <= 0) return 0.0;
    double s = 0.0;
    for (int64_t k = 0; k < t->n; k++) {
        double e = (double)pred[k] - (double)t->rating[k];
        s += e * e;
    }
    return sqrt(s / (double)t->n);
}

/* popular (N): items by count of ratings, most first, ties by index. Counting sort by count, descending. */
static int popular_build(int32_t *popular, const int32_t *items, int64_t R, int64_t N)
{
    int64_t *cnt = calloc((size_t)N + 1, sizeof *cnt);
    if (!cnt) return rc_error(RC_ENOMEM, "rating_base: out of memory");
    for (int64_t k = 0; k < R; k++)
        cnt[items[k]]++;
    int64_t maxc = 0;
    for (int64_t i = 0; i < N; i++)
        if (cnt[i] > maxc) maxc = cnt[i];
    /* bucket start per count value c, most first: start[c] = number of items with count > c */
    int64_t *start = calloc((size_t)maxc + 2, sizeof *start);
    if (!start) {
        free(cnt);
        return rc_error(RC_ENOMEM, "rating_base: out of memory");
    }
    for (int64_t i = 0; i < N; i++)
        start[cnt[i]]++;
    int64_t acc = 0;
    for (int64_t c = maxc; c >= 0; c--) {
        int64_t n = start[c];
        start[c] = acc;
        acc += n;
    }
    for (int64_t i = 0; i < N; i++) /* ascending index keeps ties by index */
        popular[start[cnt[i]]++] = (int32_t)i;
    free(start);
    free(cnt);
    return RC_OK;
}

int rb_save(snap_writer *w, const rating_base_src *src, json_t **rating_meta)
{
    if (rating_meta) *rating_meta = NULL;
    if (!w || !src || !src->users || !src->items || !src->offsets || !rating_meta)
        return rc_error(RC_EINVAL, "rb_save: NULL argument");
    int64_t U = (int64_t)idmap_size(src->users), N = (int64_t)idmap_size(src->items);
    if (U > INT32_MAX || N > INT32_MAX)
        return rc_error(RC_EINVAL, "rb_save: %lld users, %lld items: over 2^31-1", (long long)U, (long long)N);
    const int64_t *off = src->offsets;
    if (off[0] != 0) return rc_error(RC_EINVAL, "rb_save: offsets[0] is %lld, not 0", (long long)off[0]);
    for (int64_t u = 0; u < U; u++) {
        if (off[u + 1] < off[u])
            return rc_error(RC_EINVAL, "rb_save: offsets decrease at user %lld", (long long)u);
        if (off[u + 1] > off[u] && !src->items_by_user) return rc_error(RC_EINVAL, "rb_save: NULL items_by_user");
        for (int64_t k = off[u]; k < off[u + 1]; k++) {
            int32_t i = src->items_by_user[k];
            if (i < 0 || i >= N)
                return rc_error(RC_EINVAL, "rb_save: user %lld has item %d outside [0,%lld)", (long long)u, (int)i,
                                (long long)N);
            if (k > off[u] && i <= src->items_by_user[k - 1])
                return rc_error(RC_EINVAL, "rb_save: items of user %lld not sorted and distinct", (long long)u);
        }
    }
    int64_t R = off[U];
    int rc;
    if ((rc = snap_put_vocab(w, "users", src->users))) return rc;
    if ((rc = snap_put_vocab(w, "items", src->items))) return rc;
    if ((rc = snap_put_tensor(w, "seen_offsets", SNAP_I64, 1, (int64_t[]){U + 1}, off))) return rc;
    if ((rc = snap_put_tensor(w, "seen_items", SNAP_I32, 1, (int64_t[]){R}, src->items_by_user))) return rc;
    int32_t *popular = malloc(((size_t)N + 1) * sizeof *popular);
    if (!popular) return rc_error(RC_ENOMEM, "rating_base: out of memory");
    if ((rc = popular_build(popular, src->items_by_user, R, N)) ||
        (rc = snap_put_tensor(w, "popular", SNAP_I32, 1, (int64_t[]){N}, popular))) {
        free(popular);
        return rc;
    }
    free(popular);
    json_t *m = json_pack("{s:f, s:f, s:f, s:f}", "default", (double)src->default_rating, "min", (double)src->rmin,
                          "max", (double)src->rmax, "mean", (double)src->mean);
    if (!m) return rc_error(RC_ENOMEM, "rating_base: out of memory (meta)");
    *rating_meta = m;
    return RC_OK;
}

void rb_free(rating_base *b)
{
    if (!b) return;
    idmap_free(b->users);
    idmap_free(b->items);
    memset(b, 0, sizeof *b);
}

static int meta_num(const json_t *o, const char *k, float *out)
{
    const json_t *v = json_object_get(o, k);
    if (!json_is_number(v)) return -1;
    double d = json_number_value(v);
    if (!isfinite(d)) return -1;
    *out = (float)d;
    return 0;
}

int rb_load(rating_base *b, const snap *s)
{
    memset(b, 0, sizeof *b);
    const char *dir = snap_dir(s);
    int rc;
    const json_t *rm = json_object_get(snap_meta(s), "rating");
    if (!json_is_object(rm) || meta_num(rm, "default", &b->default_rating) || meta_num(rm, "min", &b->rmin) ||
        meta_num(rm, "max", &b->rmax) || meta_num(rm, "mean", &b->mean)) {
        rc = rc_error(RC_ECORRUPT, "%s: meta \"rating\" absent or not {default, min, max, mean} numbers", dir);
        goto fail;
    }
    if ((rc = snap_vocab_load(s, "users", &b->users))) {
        rc = rc_wrap(rc == RC_ENOTFOUND ? RC_ECORRUPT : rc, "%s: vocab users", dir);
        goto fail;
    }
    if ((rc = snap_vocab_load(s, "items", &b->items))) {
        rc = rc_wrap(rc == RC_ENOTFOUND ? RC_ECORRUPT : rc, "%s: vocab items", dir);
        goto fail;
    }
    int64_t U = (int64_t)idmap_size(b->users), N = (int64_t)idmap_size(b->items);
    if (U > INT32_MAX || N > INT32_MAX) {
        rc = rc_error(RC_ECORRUPT, "%s: %lld users, %lld items: over 2^31-1", dir, (long long)U, (long long)N);
        goto fail;
    }
    b->n_users = U;
    b->n_items = N;
    const snap_tensor *to = snap_tensor_expect(s, "seen_offsets", SNAP_I64, 1, (int64_t[]){U + 1});
    if (!to) {
        rc = RC_ECORRUPT;
        goto fail;
    }
    const int64_t *off = to->data;
    if (off[0] != 0) {
        rc = rc_error(RC_ECORRUPT, "%s: tensor seen_offsets starts at %lld, not 0", dir, (long long)off[0]);
        goto fail;
    }
    for (int64_t u = 0; u < U; u++)
        if (off[u + 1] < off[u]) {
            rc = rc_error(RC_ECORRUPT, "%s: tensor seen_offsets decreases at user %lld", dir, (long long)u);
            goto fail;
        }
    int64_t R = off[U];
    const snap_tensor *ti = snap_tensor_expect(s, "seen_items", SNAP_I32, 1, (int64_t[]){R});
    const snap_tensor *tp = ti ? snap_tensor_expect(s, "popular", SNAP_I32, 1, (int64_t[]){N}) : NULL;
    if (!tp) {
        rc = RC_ECORRUPT;
        goto fail;
    }
    const int32_t *items = ti->data, *pop = tp->data;
    for (int64_t u = 0; u < U; u++)
        for (int64_t k = off[u]; k < off[u + 1]; k++)
            if (items[k] < 0 || items[k] >= N || (k > off[u] && items[k] <= items[k - 1])) {
                rc = rc_error(RC_ECORRUPT,
                              "%s: tensor seen_items: user %lld holds item %d (outside [0,%lld), unsorted or repeated)",
                              dir, (long long)u, (int)items[k], (long long)N);
                goto fail;
            }
    uint8_t *mark = calloc((size_t)N + 1, 1);
    if (!mark) {
        rc = rc_error(RC_ENOMEM, "rating_base: out of memory");
        goto fail;
    }
    for (int64_t k = 0; k < N; k++)
        if (pop[k] < 0 || pop[k] >= N || mark[pop[k]]++) {
            rc = rc_error(RC_ECORRUPT, "%s: tensor popular is not a permutation of [0,%lld) (index %d at %lld)", dir,
                          (long long)N, (int)pop[k], (long long)k);
            free(mark);
            goto fail;
        }
    free(mark);
    b->seen_offsets = off;
    b->seen_items = items;
    b->popular = pop;
    return RC_OK;
fail:
    rb_free(b);
    return rc;
}

int64_t rb_seen(const rating_base *b, int32_t u, const int32_t **items)
{
    if (!b || u < 0 || u >= b->n_users || !b->seen_offsets) {
        *items = NULL;
        return 0;
    }
    int64_t a = b->seen_offsets[u], e = b->seen_offsets[u + 1];
    *items = b->seen_items + a;
    return e - a;
}

const idmap *rb_type_users(const void *handle) { return ((const rating_base *)handle)->users; }
const idmap *rb_type_items(const void *handle) { return ((const rating_base *)handle)->items; }
const int32_t *rb_type_popular(const void *handle) { return ((const rating_base *)handle)->popular; }
int64_t rb_type_seen(const void *handle, int32_t u, const int32_t **items)
{
    return rb_seen(handle, u, items);
}

static char no_scratch_token; /* never read or written: its address is the token */
void *rb_no_scratch_rate(const void *handle, int max_b)
{
    (void)handle;
    (void)max_b;
    return &no_scratch_token;
}
void *rb_no_scratch_recommend(const void *handle)
{
    (void)handle;
    return &no_scratch_token;
}
void rb_no_scratch_free(void *scratch) { (void)scratch; }
