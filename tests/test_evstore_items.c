/* tests/test_evstore_items.c - the event store's shown-item counts (db_items, distinct_items,
 * items_shown), which the writer aggregates per transaction: many impressions of overlapping items,
 * more distinct items than the per-transaction table holds (an intermediate flush), and items seen
 * again in later transactions and after a reopen. Real LMDB in the test's temporary folder. */
#include <stdio.h>
#include <string.h>

#include <lmdb.h>

#include "server/evstore.h"
#include "tests/test_evstore_util.h"
#include "tests/testlib.h"

#define T0 1700000000.0
#define N_ITEMS 700 /* per impression */

/* Impression `req` of arm `arm` showing items "x<first>".."x<first+n-1>". */
static void show(evstore *st, int run, int arm, const char *req, int first, int n)
{
    static char names[N_ITEMS][16];
    api_str it[N_ITEMS];
    for (int i = 0; i < n; i++) {
        int l = snprintf(names[i], sizeof names[i], "x%d", first + i);
        it[i] = (api_str){names[i], (size_t)l};
    }
    ev_impression imp = tev_impression(run, arm, req, "u", T0);
    imp.items = it;
    imp.n_items = n;
    imp.latency_us = 100;
    ASSERT_OK(evstore_impression(st, &imp));
}

/* Wait until arm 0 has n0 impressions and arm 1 n1; the report of both in r[2]. */
static void wait_n(evstore *st, int run, double n0, double n1, ev_arm_report *r)
{
    tev_wait_impressions(st, run, 0, n0, NULL, 0);
    tev_wait_impressions(st, run, 1, n1, r, 2); /* arm 0's count only grows */
}

/* The stored count of item name in (run, arm), read from the folder's items database. */
static uint64_t item_count(const char *dir, int run, int arm, const char *name)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ASSERT_EQ(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    ASSERT_EQ(mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0644), 0);
    ASSERT_EQ(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    ASSERT_EQ(mdb_dbi_open(txn, "items", 0, &dbi), 0);
    uint8_t kb[64] = {(uint8_t)run, (uint8_t)arm};
    size_t l = strlen(name);
    memcpy(kb + 2, name, l);
    MDB_val k = {2 + l, kb}, v;
    uint64_t cnt = 0;
    if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == 8) memcpy(&cnt, v.mv_data, 8);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return cnt;
}

TEST(evstore_items_aggregated_per_commit)
{
    const char *dir = tev_path("state");
    evstore_cfg c = tev_cfg(dir, 0, 0);
    c.flush_ms = 200; /* the impressions below usually share a transaction (either way the counts hold) */
    evstore *st = tev_open(&c);
    int run = tev_declare(st, "items", "s1", 2, NULL);
    /* arm 0: x0..x699, x350..x1049, x700..x1399, x1050..x1749, x1400..x2099, x1750..x2449:
     * 4200 slots, 2450 distinct (over the table's 2048); x0 shown once, x700 twice (r1, r2) */
    char req[32];
    for (int i = 0; i < 6; i++) {
        snprintf(req, sizeof req, "r%d", i);
        show(st, run, 0, req, i * 350, N_ITEMS);
    }
    /* arm 1: the same names, counted apart */
    show(st, run, 1, "s0", 0, 10);
    show(st, run, 1, "s1", 5, 10);
    ev_arm_report r[2];
    wait_n(st, run, 6, 2, r);
    ASSERT_EQ(r[0].items_shown, 6 * N_ITEMS);
    ASSERT_EQ(r[0].distinct_items, 2450);
    ASSERT_EQ(r[1].items_shown, 20);
    ASSERT_EQ(r[1].distinct_items, 15);
    /* a later transaction: known items do not count as distinct again */
    show(st, run, 0, "r6", 2000, 500); /* x2000..x2499: 50 new */
    show(st, run, 1, "s2", 0, 20);     /* x0..x19: 5 new */
    wait_n(st, run, 7, 3, r);
    ASSERT_EQ(r[0].items_shown, 6 * N_ITEMS + 500);
    ASSERT_EQ(r[0].distinct_items, 2500);
    ASSERT_EQ(r[1].distinct_items, 20);
    evstore_close(st);
    ASSERT_EQ(item_count(dir, run, 0, "x0"), 1);
    ASSERT_EQ(item_count(dir, run, 0, "x700"), 2);  /* r1 (350..1049), r2 (700..1399) */
    ASSERT_EQ(item_count(dir, run, 0, "x2049"), 3); /* r4 (1400..2099), r5 (1750..2449), r6 (2000..2499) */
    ASSERT_EQ(item_count(dir, run, 1, "x7"), 3);
    ASSERT_EQ(item_count(dir, run, 1, "x19"), 1);
    /* reopened: the counts continue */
    st = tev_open(&c);
    run = tev_declare(st, "items", "s1", 2, NULL);
    show(st, run, 0, "r7", 0, 3);
    wait_n(st, run, 8, 3, r);
    ASSERT_EQ(r[0].distinct_items, 2500);
    ASSERT_EQ(r[0].items_shown, 6 * N_ITEMS + 503);
    evstore_close(st);
    ASSERT_EQ(item_count(dir, run, 0, "x0"), 2);
}
