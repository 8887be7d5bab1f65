/* tests/test_rating_base.c - the shared snapshot part of rating models: save/load round trip, popular
 * order, seen items, refusals, RMSE.
 */
#include <stdint.h>

#include "core/idmap.h"
#include "core/snap.h"
#include "models/rating_base.h"
#include "tests/testlib.h"

/* 3 users (u0,u1,u2), 4 items (a,b,c,d). u0: a c; u1: (none); u2: a b c d. Counts a2 b1 c2 d1. */
static idmap *ids(const char *const *k, int n)
{
    idmap *m = idmap_new(0);
    ASSERT(m);
    for (int i = 0; i < n; i++)
        ASSERT_EQ(idmap_intern(m, k[i], strlen(k[i])), i);
    return m;
}

static const int64_t k_off[4] = {0, 2, 2, 6};
static const int32_t k_items[6] = {0, 2, 0, 1, 2, 3};

static int save_one(const char *root, const rating_base_src *src, json_t *extra_meta, uint64_t *ver)
{
    snap_writer *w;
    ASSERT_OK(snap_writer_open(&w, root, "rb", 0));
    json_t *rm = NULL;
    int rc = rb_save(w, src, &rm);
    if (rc) {
        snap_writer_abort(w);
        return rc;
    }
    json_t *meta = json_object();
    if (!extra_meta) json_object_set_new(meta, "rating", rm);
    else {
        json_decref(rm);
        json_object_update(meta, extra_meta);
    }
    ASSERT_OK(snap_set_meta(w, meta));
    json_decref(meta);
    ASSERT_OK(snap_writer_publish(w, ver));
    return RC_OK;
}

static void src_make(rating_base_src *src, idmap **us, idmap **is)
{
    static const char *const un[] = {"u0", "u1", "u2"}, *const in[] = {"a", "b", "c", "d"};
    *us = ids(un, 3);
    *is = ids(in, 4);
    *src = (rating_base_src){.users = *us, .items = *is, .offsets = k_off, .items_by_user = k_items,
                             .default_rating = 3, .rmin = 1, .rmax = 5, .mean = 3.5f};
}

TEST(rb_roundtrip)
{
    idmap *us, *is;
    rating_base_src src;
    src_make(&src, &us, &is);
    uint64_t v;
    ASSERT_OK(save_one(test_tmpdir(), &src, NULL, &v));
    char dir[4200];
    ASSERT_OK(snap_path(dir, sizeof dir, test_tmpdir(), "rb", v));
    snap *s;
    ASSERT_OK(snap_open(&s, dir));
    rating_base b;
    ASSERT_OK(rb_load(&b, s));
    ASSERT_EQ(b.n_users, 3);
    ASSERT_EQ(b.n_items, 4);
    ASSERT_EQ(idmap_find(b.users, "u2", 2), 2);
    ASSERT_EQ(idmap_find(b.items, "d", 1), 3);
    ASSERT_NEAR(b.default_rating, 3, 0);
    ASSERT_NEAR(b.rmin, 1, 0);
    ASSERT_NEAR(b.rmax, 5, 0);
    ASSERT_NEAR(b.mean, 3.5, 1e-6);
    /* popular: counts a2 b1 c2 d1 -> a c b d */
    ASSERT_EQ(b.popular[0], 0);
    ASSERT_EQ(b.popular[1], 2);
    ASSERT_EQ(b.popular[2], 1);
    ASSERT_EQ(b.popular[3], 3);
    const int32_t *it;
    ASSERT_EQ(rb_seen(&b, 0, &it), 2);
    ASSERT_EQ(it[0], 0);
    ASSERT_EQ(it[1], 2);
    ASSERT_EQ(rb_seen(&b, 1, &it), 0);
    ASSERT_EQ(rb_seen(&b, 2, &it), 4);
    ASSERT_EQ(it[3], 3);
    ASSERT_EQ(rb_seen(&b, 3, &it), 0); /* out of range: none */
    ASSERT_EQ(rb_seen(&b, -1, &it), 0);
    rb_free(&b);
    ASSERT(b.users == NULL);
    rb_free(&b); /* zeroed: no-op */
    rb_free(NULL);
    snap_close(s);
    idmap_free(us);
    idmap_free(is);
}

TEST(rb_save_refuses_bad_rows)
{
    idmap *us, *is;
    rating_base_src src;
    src_make(&src, &us, &is);
    int32_t bad_range[6] = {0, 2, 0, 1, 2, 4};
    src.items_by_user = bad_range;
    ASSERT_RC(save_one(test_tmpdir(), &src, NULL, NULL), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "outside");
    int32_t unsorted[6] = {2, 0, 0, 1, 2, 3};
    src.items_by_user = unsorted;
    ASSERT_RC(save_one(test_tmpdir(), &src, NULL, NULL), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "sorted");
    int64_t dec[4] = {0, 3, 2, 6};
    src.items_by_user = k_items;
    src.offsets = dec;
    ASSERT_RC(save_one(test_tmpdir(), &src, NULL, NULL), RC_EINVAL);
    idmap_free(us);
    idmap_free(is);
}

TEST(rb_load_refuses_missing_meta)
{
    idmap *us, *is;
    rating_base_src src;
    src_make(&src, &us, &is);
    json_t *extra = json_pack("{s:{s:f}}", "rating", "default", 3.0); /* min, max, mean missing */
    uint64_t v;
    ASSERT_OK(save_one(test_tmpdir(), &src, extra, &v));
    json_decref(extra);
    char dir[4200];
    ASSERT_OK(snap_path(dir, sizeof dir, test_tmpdir(), "rb", v));
    snap *s;
    ASSERT_OK(snap_open(&s, dir));
    rating_base b;
    ASSERT_RC(rb_load(&b, s), RC_ECORRUPT);
    ASSERT_CONTAINS(rc_errmsg(), "rating");
    ASSERT(b.users == NULL && b.items == NULL);
    snap_close(s);
    idmap_free(us);
    idmap_free(is);
}

TEST(rb_load_refuses_missing_tensor)
{
    /* a snapshot with the vocabularies and meta but no seen tensors */
    idmap *us, *is;
    rating_base_src src;
    src_make(&src, &us, &is);
    snap_writer *w;
    ASSERT_OK(snap_writer_open(&w, test_tmpdir(), "rb", 0));
    ASSERT_OK(snap_put_vocab(w, "users", us));
    ASSERT_OK(snap_put_vocab(w, "items", is));
    json_t *meta = json_pack("{s:{s:f,s:f,s:f,s:f}}", "rating", "default", 3.0, "min", 1.0, "max", 5.0, "mean", 3.0);
    ASSERT_OK(snap_set_meta(w, meta));
    json_decref(meta);
    uint64_t v;
    ASSERT_OK(snap_writer_publish(w, &v));
    char dir[4200];
    ASSERT_OK(snap_path(dir, sizeof dir, test_tmpdir(), "rb", v));
    snap *s;
    ASSERT_OK(snap_open(&s, dir));
    rating_base b;
    ASSERT_RC(rb_load(&b, s), RC_ECORRUPT);
    ASSERT_CONTAINS(rc_errmsg(), "seen_offsets");
    snap_close(s);
    idmap_free(us);
    idmap_free(is);
}

TEST(rb_rmse_by_hand)
{
    float r[3] = {1, 4, 5}, p[3] = {2, 4, 3};
    rb_triples t = {.n = 3, .rating = r};
    ASSERT_NEAR(rb_rmse(&t, p), sqrt(5.0 / 3.0), 1e-12);
    t.n = 0;
    ASSERT_NEAR(rb_rmse(&t, p), 0, 0);
}
