/* tests/test_ratings.c - explicit-rating data (trainer/ratings.h): the three MovieLens formats and CSV
 * headers (all three names or none), byte-order marks, rating bounds, line ends, blanks and UTF-8 ids,
 * errors naming file, line and field, repeated pairs, folders and lists, the protocol split,
 * CSR rows, metrics, the TSV round trip, the refit data, rt_train_main with a fake model (usage errors,
 * hook order, refit, meta, result line), `recd split ratings`, `recd eval` refusals, and the real
 * MovieLens files when ../shared/data has them.
 */
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/idmap.h"
#include "core/rng.h"
#include "core/snap.h"
#include "tests/testlib.h"
#include "trainer/ratings.h"

/* ---- helpers ---- */

static const char *tpath(const char *name)
{
    static char buf[4][4200];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", test_tmpdir(), name);
    return buf[k];
}

/* tpath(name) holding text. */
static const char *put(const char *name, const char *text)
{
    const char *p = tpath(name);
    test_write_file(p, text);
    return p;
}

static const char *uid(const rt_data *d, int64_t k)
{
    return d->user[k] < 0 ? "?" : idmap_key(d->users, d->user[k], NULL);
}
static const char *iid(const rt_data *d, int64_t k)
{
    return d->item[k] < 0 ? "?" : idmap_key(d->items, d->item[k], NULL);
}

/* Rating k of d is (u, i, r). */
#define ASSERT_RATING(d, k, u, i, r)                                                                    \
    do {                                                                                               \
        ASSERT_STR_EQ(uid(d, k), u);                                                                   \
        ASSERT_STR_EQ(iid(d, k), i);                                                                   \
        ASSERT_NEAR((d)->rating[k], r, 0);                                                             \
    } while (0)

/* rt_read of path fails with code and a message containing want. */
static void expect_read_error(const char *path, int code, const char *want)
{
    rt_data d;
    int rc = rt_read(&d, path, 0);
    if (rc != code) FAIL("rt_read(%s) returned %d, expected %d: %s", path, rc, code, rc_errmsg());
    ASSERT_CONTAINS(rc_errmsg(), want);
    ASSERT_EQ(d.n, 0);
    ASSERT(d.users == NULL && d.user == NULL);
}

/* R ratings of U users on N items, random (distinct pairs), ratings 1..5 in half stars. Ids "uK", "iK". */
static void synth(rt_data *d, int U, int N, int64_t R, uint64_t seed)
{
    memset(d, 0, sizeof *d);
    ASSERT(R <= (int64_t)U * N);
    d->users = idmap_new(0);
    d->items = idmap_new(0);
    d->owns_vocab = 1;
    d->user = malloc((size_t)R * sizeof *d->user);
    d->item = malloc((size_t)R * sizeof *d->item);
    d->rating = malloc((size_t)R * sizeof *d->rating);
    uint8_t *used = calloc((size_t)U * N, 1);
    ASSERT(d->users && d->items && d->user && d->item && d->rating && used);
    rng_t r;
    rng_seed(&r, seed);
    char id[32];
    for (int64_t k = 0; k < R; k++) {
        int u, i;
        do {
            u = (int)rng_below(&r, (uint64_t)U);
            i = (int)rng_below(&r, (uint64_t)N);
        } while (used[(size_t)u * N + i]);
        used[(size_t)u * N + i] = 1;
        snprintf(id, sizeof id, "u%d", u);
        d->user[k] = (int32_t)idmap_intern(d->users, id, strlen(id));
        snprintf(id, sizeof id, "i%d", i);
        d->item[k] = (int32_t)idmap_intern(d->items, id, strlen(id));
        d->rating[k] = 1.0f + 0.5f * (float)rng_below(&r, 9);
    }
    d->n = R;
    d->rmin = 1;
    d->rmax = 5;
    free(used);
}

/* ---- formats ---- */

TEST(rt_read_ml1m_colons)
{
    const char *p = put("ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n");
    rt_data d;
    ASSERT_OK(rt_read(&d, p, 0));
    ASSERT_EQ(d.n, 3);
    ASSERT_EQ(idmap_size(d.users), 2);
    ASSERT_EQ(idmap_size(d.items), 2);
    ASSERT_RATING(&d, 0, "1", "1193", 5);
    ASSERT_RATING(&d, 1, "1", "661", 3);
    ASSERT_RATING(&d, 2, "2", "1193", 4);
    ASSERT_EQ(d.user[2], 1);
    ASSERT_EQ(d.item[2], 0); /* indices in order of first appearance */
    ASSERT_NEAR(d.rmin, 3, 0);
    ASSERT_NEAR(d.rmax, 5, 0);
    ASSERT_EQ(d.n_dup, 0);
    ASSERT(d.owns_vocab);
    rt_free(&d);
    rt_free(&d); /* zeroed: no-op */
    rt_free(NULL);
}

TEST(rt_read_ml100k_tab_and_gzip)
{
    const char *p = put("u.data", "196\t242\t3\t881250949\n186\t302\t3.5\t891717742\r\n\n22\t377\t1\t878887116\n");
    rt_data d;
    ASSERT_OK(rt_read(&d, p, 0));
    ASSERT_EQ(d.n, 3);
    ASSERT_RATING(&d, 1, "186", "302", 3.5);
    ASSERT_RATING(&d, 2, "22", "377", 1);
    rt_free(&d);
    /* the same bytes gzipped */
    const char *gz = tpath("u.data.gz");
    gzFile g = gzopen(gz, "wb");
    ASSERT(g);
    const char *txt = "196\t242\t3\t881250949\n186\t302\t3.5\t891717742\n";
    ASSERT_EQ(gzwrite(g, txt, (unsigned)strlen(txt)), (int)strlen(txt));
    ASSERT_EQ(gzclose(g), Z_OK);
    ASSERT_OK(rt_read(&d, gz, 0));
    ASSERT_EQ(d.n, 2);
    ASSERT_RATING(&d, 1, "186", "302", 3.5);
    rt_free(&d);
}

TEST(rt_read_csv_plain_and_headers)
{
    rt_data d;
    /* the ML-1M 5-fold parts: user,item,rating, no header */
    ASSERT_OK(rt_read(&d, put("fold.dat", "1,1193,5\n1,661,3\n"), 0));
    ASSERT_EQ(d.n, 2);
    ASSERT_RATING(&d, 1, "1", "661", 3);
    rt_free(&d);
    /* MovieLens latest: userId,movieId,rating,timestamp */
    ASSERT_OK(rt_read(&d, put("ml.csv", "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3,1260759179\n"),
                      0));
    ASSERT_EQ(d.n, 2);
    ASSERT_RATING(&d, 0, "1", "31", 2.5);
    rt_free(&d);
    /* columns found by name in any order (and any case) */
    ASSERT_OK(rt_read(&d, put("re.csv", "timestamp,RATING,item_id,User_ID\n99,4,m7,alice\n98,2,m8,bob\n"), 0));
    ASSERT_EQ(d.n, 2);
    ASSERT_RATING(&d, 0, "alice", "m7", 4);
    ASSERT_RATING(&d, 1, "bob", "m8", 2);
    rt_free(&d);
    /* a first line naming no column is data (rt_read_header_names_all_three_or_is_data) */
    /* the header recd synth ratings writes */
    ASSERT_OK(rt_read(&d, put("syn.tsv", "user_id\titem_id\trating\ttimestamp\nu1\tm1\t4\t100\n"), 0));
    ASSERT_EQ(d.n, 1);
    ASSERT_RATING(&d, 0, "u1", "m1", 4);
    rt_free(&d);
    /* quoted CSV ids */
    ASSERT_OK(rt_read(&d, put("q.csv", "user,item,rating\n\"a,b\",\"x\"\"y\",1\n"), 0));
    ASSERT_RATING(&d, 0, "a,b", "x\"y", 1);
    rt_free(&d);
}

/* ---- errors: file, line, field ---- */

TEST(rt_read_errors_name_file_line_field)
{
    char want[4400];
    const char *p = put("bad.csv", "1,2,5\n1,3,4\n2,3,x\n");
    snprintf(want, sizeof want, "%s:3: field 3 (rating): 'x' is not a number", p);
    expect_read_error(p, RC_EFORMAT, want);

    p = put("u.data", "196\t242\t3\n186\t302\n");
    snprintf(want, sizeof want, "%s:2: field 3 (rating): missing", p);
    expect_read_error(p, RC_EFORMAT, want);

    p = put("one.csv", "1,2,3\n7\n");
    snprintf(want, sizeof want, "%s:2: field 2 (item): missing", p);
    expect_read_error(p, RC_EFORMAT, want);

    p = put("empty.dat", "1::2::3::4\n::5::3::9\n");
    snprintf(want, sizeof want, "%s:2: field 1 (user): empty id", p);
    expect_read_error(p, RC_EFORMAT, want);

    p = put("emptyitem.tsv", "u\t\t3\n");
    snprintf(want, sizeof want, "%s:1: field 2 (item): empty id", p);
    expect_read_error(p, RC_EFORMAT, want);

    char line[600];
    memset(line, 'k', 256);
    snprintf(line + 256, sizeof line - 256, ",i,4\n");
    p = put("long.csv", line);
    snprintf(want, sizeof want, "%s:1: field 1 (user): id of 256 bytes (at most 255)", p);
    expect_read_error(p, RC_EFORMAT, want);
    memset(line, 'k', 255); /* 255 bytes is fine */
    snprintf(line + 255, sizeof line - 255, ",i,4\n");
    rt_data d;
    ASSERT_OK(rt_read(&d, put("ok255.csv", line), 0));
    ASSERT_EQ(strlen(uid(&d, 0)), 255);
    rt_free(&d);

    p = put("nan.csv", "1,2,3\n1,3,nan\n");
    snprintf(want, sizeof want, "%s:2: field 3 (rating): 'nan' is not a finite number", p);
    expect_read_error(p, RC_EFORMAT, want);
    p = put("inf.tsv", "1\t2\t-inf\n");
    snprintf(want, sizeof want, "%s:1: field 3 (rating): '-inf' is not a finite number", p);
    expect_read_error(p, RC_EFORMAT, want);
    p = put("big.csv", "1,2,1e300\n");
    snprintf(want, sizeof want, "%s:1: field 3 (rating): '1e300' is out of range [-1e6, 1e6]", p);
    expect_read_error(p, RC_EFORMAT, want);

    p = put("colon.dat", "1::2::3\n1:2::3::4\n");
    snprintf(want, sizeof want, "%s:2: a single ':'", p);
    expect_read_error(p, RC_EFORMAT, want);

    /* the field number is the file's column when a header moved it */
    p = put("hdr.csv", "ts,rating,item,user\n1,4,a,b\n2,five,c,d\n");
    snprintf(want, sizeof want, "%s:3: field 2 (rating): 'five' is not a number", p);
    expect_read_error(p, RC_EFORMAT, want);

    expect_read_error(put("blank.csv", ""), RC_EFORMAT, "no rating");
    /* a first line whose third field is a word but that names no column is data, refused as such */
    p = put("word.tsv", "u\ti\tbad\n");
    snprintf(want, sizeof want, "%s:1: field 3 (rating): 'bad' is not a number", p);
    expect_read_error(p, RC_EFORMAT, want);
    expect_read_error(put("onlyhdr.csv", "user_id,item_id,rating\n"), RC_EFORMAT, "no rating");
    expect_read_error(tpath("nope.csv"), RC_ENOTFOUND, "nope.csv");
    mkdir(tpath("emptydir"), 0755);
    expect_read_error(tpath("emptydir"), RC_EFORMAT, "no rating file");
}

/* want formatted, then rt_read of path fails with RC_EFORMAT and a message containing it. */
static void expect_format_error(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void expect_format_error(const char *path, const char *fmt, ...)
{
    char want[4600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(want, sizeof want, fmt, ap);
    va_end(ap);
    expect_read_error(path, RC_EFORMAT, want);
}

/* The first line is a header only when it names a column (user_id|userId|user, item_id|itemId|movieId|
 * movie_id|item, rating; any case), and then it names all three; otherwise it is data, with the errors
 * any other line gets (it used to be dropped as a header, or its columns guessed). */
TEST(rt_read_header_names_all_three_or_is_data)
{
    const char *p = put("score.csv", "user_id,item_id,timestamp,score\nu1,m1,978300760,4\n");
    expect_format_error(p, "%s:1: no rating column in the header (expected rating, any case)", p);
    p = put("partial.csv", "rating,userId,x\nu5,m37,1\n");
    expect_format_error(p,
                        "%s:1: no item column in the header (expected item_id|itemId|movieId|movie_id|item, any case)",
                        p);
    p = put("partial2.csv", "rating,movieId,uid\n4,10,1\n");
    expect_format_error(p, "%s:1: no user column in the header (expected user_id|userId|user, any case)", p);
    p = put("twofields.tsv", "\n\nuser\titem\n");
    expect_format_error(p, "%s:3: no rating column in the header", p); /* the first non-blank line */
    /* names of no column: data */
    p = put("abc.csv", "a,b,c\nx,y,5\n");
    expect_format_error(p, "%s:1: field 3 (rating): 'c' is not a number", p);
    /* a bad first line is an error like the same line further down */
    p = put("bad1.tsv", "u1\tm1\tx\t1\nu2\tm2\t4\t2\n");
    expect_format_error(p, "%s:1: field 3 (rating): 'x' is not a number", p);
    p = put("bad2.tsv", "u2\tm2\t4\t2\nu1\tm1\tx\t1\n");
    expect_format_error(p, "%s:2: field 3 (rating): 'x' is not a number", p);
    p = put("bad1.dat", "1::1193::five::978300760\n1::661::3::978302109\n");
    expect_format_error(p, "%s:1: field 3 (rating): 'five' is not a number", p);
    /* accepted headers: any order, any case, blanks around names, itemId, after blank lines */
    rt_data d;
    ASSERT_OK(rt_read(&d, put("h1.csv", "userId,itemId,rating\n1,2,3\n"), 0));
    ASSERT_RATING(&d, 0, "1", "2", 3);
    rt_free(&d);
    ASSERT_OK(rt_read(&d, put("h2.tsv", "\n \nRATING \t MovieID\tUSERID\tts\n4\t10\t1\t9\n"), 0));
    ASSERT_EQ(d.n, 1);
    ASSERT_RATING(&d, 0, "1", "10", 4);
    rt_free(&d);
    ASSERT_OK(rt_read(&d, put("h3.dat", "user::item::rating\n7::8::2\n"), 0));
    ASSERT_RATING(&d, 0, "7", "8", 2);
    rt_free(&d);
}

#define BOM "\xEF\xBB\xBF"

/* A UTF-8 byte-order mark at offset 0 of a file (plain or gzip) is skipped: it used to stay in the first
 * id (31 users instead of 30) and stop a header's first name from matching. */
TEST(rt_read_byte_order_mark)
{
    rt_data d;
    ASSERT_OK(rt_read(&d, put("bom.tsv", BOM "u1\tm1\t4\t880\nu1\tm2\t3\t881\n"), 0));
    ASSERT_EQ(d.n, 2);
    ASSERT_EQ(idmap_size(d.users), 1);
    ASSERT_RATING(&d, 0, "u1", "m1", 4);
    rt_free(&d);
    /* a header whose first name followed the mark: columns by name */
    ASSERT_OK(rt_read(&d, put("bomh.csv", BOM "rating,movieId,userId\n4,10,1\n"), 0));
    ASSERT_RATING(&d, 0, "1", "10", 4);
    rt_free(&d);
    /* gzip: the mark after decompression */
    const char *gz = tpath("bom.tsv.gz");
    gzFile g = gzopen(gz, "wb");
    ASSERT(g);
    const char *txt = BOM "user_id\titem_id\trating\nu1\tm1\t5\n";
    ASSERT_EQ(gzwrite(g, txt, (unsigned)strlen(txt)), (int)strlen(txt));
    ASSERT_EQ(gzclose(g), Z_OK);
    ASSERT_OK(rt_read(&d, gz, 0));
    ASSERT_EQ(d.n, 1);
    ASSERT_RATING(&d, 0, "u1", "m1", 5);
    rt_free(&d);
    /* a quoted first field after the mark; a line of the mark alone */
    ASSERT_OK(rt_read(&d, put("bomq.csv", BOM "\"u \"\"1\"\"\",m1,4\n"), 0));
    ASSERT_RATING(&d, 0, "u \"1\"", "m1", 4);
    rt_free(&d);
    const char *p = put("bomq2.csv", BOM "\"u1,m1,4\n");
    expect_format_error(p, "%s:1: unterminated quoted field 1", p);
    ASSERT_OK(rt_read(&d, put("bomonly.tsv", BOM "\nu1\tm1\t2\n"), 0));
    ASSERT_EQ(d.n, 1);
    ASSERT_RATING(&d, 0, "u1", "m1", 2);
    rt_free(&d);
    /* only at offset 0: further down, the bytes are part of an (opaque) id */
    ASSERT_OK(rt_read(&d, put("bom2.csv", "u1,m1,4\n" BOM "u2,m2,3\n"), 0));
    ASSERT_RATING(&d, 1, BOM "u2", "m2", 3);
    rt_free(&d);
}

/* Ratings are finite decimal numbers within [-1e6, 1e6]: 1e30 used to be read (the models then
 * diverge), and strtod's hexadecimal ("0x4", "0x1p2") taken as 4. */
TEST(rt_read_rating_bounds_and_hex)
{
    const char *p = put("r30.tsv", "u1\tm1\t4\nu1\tm2\t1e30\t1\n");
    expect_format_error(p, "%s:2: field 3 (rating): '1e30' is out of range [-1e6, 1e6]", p);
    p = put("rneg.csv", "u1,m1,-2e6\n");
    expect_format_error(p, "%s:1: field 3 (rating): '-2e6' is out of range [-1e6, 1e6]", p);
    p = put("r400.csv", "u1,m1,1e400\n"); /* past a double: out of range, not "not finite" */
    expect_format_error(p, "%s:1: field 3 (rating): '1e400' is out of range [-1e6, 1e6]", p);
    p = put("hex.tsv", "u1\tm1\t4\nu2\tm2\t0x4\n");
    expect_format_error(p, "%s:2: field 3 (rating): '0x4' is not a number", p);
    p = put("hexp.csv", "u1,m1, -0X1p2\n");
    expect_format_error(p, "%s:1: field 3 (rating): '-0X1p2' is not a number", p);
    p = put("hexs.tsv", "u1\tm1\t 0x1p2 \n");
    expect_format_error(p, "%s:1: field 3 (rating): ' 0x1p2 ' is not a number", p);
    rt_data d;
    ASSERT_OK(rt_read(&d, put("rok.tsv", "a\tx\t1e6\nb\tx\t-1e6\nc\tx\t 0.5 \nd\tx\t+3\ne\tx\t10\n"), 0));
    ASSERT_EQ(d.n, 5);
    ASSERT_NEAR(d.rmax, 1e6, 0);
    ASSERT_NEAR(d.rmin, -1e6, 0);
    ASSERT_NEAR(d.rating[2], 0.5, 0);
    ASSERT_NEAR(d.rating[3], 3, 0);
    ASSERT_NEAR(d.rating[4], 10, 0);
    rt_free(&d);
}

/* Line ends, blank lines, blanks around CSV fields, UTF-8 ids. */
TEST(rt_read_line_ends_blanks_and_utf8)
{
    /* CR-only line ends (old Mac) were one line: 1 rating, exit 0 */
    const char *p = put("cr.tsv", "u1\tm1\t4\t880\ru2\tm2\t3\t881\ru3\tm3\t5\t882\r");
    expect_format_error(p, "%s: lines end in CR only (old Mac): convert to LF", p);
    rt_data d;
    ASSERT_OK(rt_read(&d, put("crlf.csv", "u1,m1,4\r\nu2,m2,3\r\n"), 0)); /* CRLF is fine */
    ASSERT_EQ(d.n, 2);
    ASSERT_RATING(&d, 1, "u2", "m2", 3);
    rt_free(&d);
    /* a CR inside a later line: the id cannot be written back or served */
    p = put("crmid.tsv", "u1\tm1\t4\nu2\rX\tm2\t3\n");
    expect_format_error(p, "%s:2: field 1 (user): the id holds a CR at byte 3 (lines ending in CR only? convert to LF)",
                        p);
    /* lines of spaces and tabs are skipped like empty ones, also before the line that picks the format */
    ASSERT_OK(rt_read(&d, put("blank.tsv", "  \n\t\nu1\tm1\t4\n  \n \t \n\nu2\tm2\t3\n"), 0));
    ASSERT_EQ(d.n, 2);
    ASSERT_RATING(&d, 0, "u1", "m1", 4);
    ASSERT_RATING(&d, 1, "u2", "m2", 3);
    rt_free(&d);
    ASSERT_OK(rt_read(&d, put("blank.csv", "1,2,3\n   \n"), 0));
    ASSERT_EQ(d.n, 1);
    rt_free(&d);
    /* CSV: spaces and tabs around a field are dropped (the header's too); tab-separated ids keep theirs */
    ASSERT_OK(rt_read(&d, put("sp.csv", "userId, movieId, rating\n1, 10, 4\n2 ,\t11 , 3\n1,10,5\n"), 0));
    ASSERT_EQ(d.n, 2);
    ASSERT_EQ(d.n_dup, 1);
    ASSERT_RATING(&d, 0, "1", "10", 5);
    ASSERT_RATING(&d, 1, "2", "11", 3);
    rt_free(&d);
    p = put("spe.csv", "1,  ,4\n");
    expect_format_error(p, "%s:1: field 2 (item): empty id", p);
    ASSERT_OK(rt_read(&d, put("sp.tsv", " u 1 \tm1\t4\n"), 0));
    ASSERT_RATING(&d, 0, " u 1 ", "m1", 4);
    rt_free(&d);
    /* UTF-8 ids are fine; invalid ones (bad byte, overlong, surrogate, cut sequence) are refused */
    p = put("utf8.tsv", "h\xC3\xA9l\xC3\xA8ne\t\xE6\x97\xA5\xE6\x9C\xAC\t4\nz\t\xF0\x9F\x98\x80\t5\n");
    ASSERT_OK(rt_read(&d, p, 0));
    ASSERT_RATING(&d, 0, "h\xC3\xA9l\xC3\xA8ne", "\xE6\x97\xA5\xE6\x9C\xAC", 4);
    ASSERT_RATING(&d, 1, "z", "\xF0\x9F\x98\x80", 5);
    rt_free(&d);
    p = put("bad8.tsv", "u1\tm1\t4\nu\xFF\tm2\t4\n");
    expect_format_error(p, "%s:2: field 1 (user): the id is not valid UTF-8 at byte 2", p);
    p = put("over.csv", "u1,\xC0\xAF,4\n");
    expect_format_error(p, "%s:1: field 2 (item): the id is not valid UTF-8 at byte 1", p);
    p = put("surr.csv", "ab\xED\xA0\x80,m,4\n");
    expect_format_error(p, "%s:1: field 1 (user): the id is not valid UTF-8 at byte 3", p);
    p = put("cut.csv", "u,m\xE2\x82,4\n");
    expect_format_error(p, "%s:1: field 2 (item): the id is not valid UTF-8 at byte 2", p);
    /* the field number is the file's column */
    p = put("col.csv", "rating,ts,item,user\n4,1,m\xFF,u\n");
    expect_format_error(p, "%s:2: field 3 (item): the id is not valid UTF-8 at byte 2", p);
}

/* ---- repeated pairs ---- */

TEST(rt_read_duplicates_keep_the_last)
{
    const char *p = put("dup.csv", "a,x,1\nb,x,2\na,y,3\na,x,4\nb,x,2.5\na,x,5\n");
    rt_data d;
    ASSERT_OK(rt_read(&d, p, 0));
    ASSERT_EQ(d.n, 3);
    ASSERT_EQ(d.n_dup, 3);
    ASSERT_RATING(&d, 0, "a", "x", 5); /* first position, last rating */
    ASSERT_RATING(&d, 1, "b", "x", 2.5);
    ASSERT_RATING(&d, 2, "a", "y", 3);
    ASSERT_NEAR(d.rmin, 2.5, 0);
    ASSERT_NEAR(d.rmax, 5, 0);
    rt_free(&d);
    /* across files too */
    put("f1.csv", "a,x,1\n");
    put("f2.csv", "a,x,2\n");
    char list[9000];
    snprintf(list, sizeof list, "%s,%s", tpath("f1.csv"), tpath("f2.csv"));
    ASSERT_OK(rt_read(&d, list, 0));
    ASSERT_EQ(d.n, 1);
    ASSERT_EQ(d.n_dup, 1);
    ASSERT_RATING(&d, 0, "a", "x", 2);
    rt_free(&d);
}

/* ---- folders and lists ---- */

TEST(rt_read_folder_and_list)
{
    const char *dir = tpath("folds");
    ASSERT_EQ(mkdir(dir, 0755), 0);
    char p[4400];
    snprintf(p, sizeof p, "%s/b.dat", dir);
    test_write_file(p, "2::20::2::1\n");
    snprintf(p, sizeof p, "%s/a.csv", dir);
    test_write_file(p, "1,10,1\n");
    snprintf(p, sizeof p, "%s/.hidden", dir);
    test_write_file(p, "garbage that would not parse\n");
    snprintf(p, sizeof p, "%s/sub", dir);
    ASSERT_EQ(mkdir(p, 0755), 0); /* folders inside are skipped */
    rt_data d;
    ASSERT_OK(rt_read(&d, dir, 0));
    ASSERT_EQ(d.n, 2);
    ASSERT_RATING(&d, 0, "1", "10", 1); /* a.csv first: name order */
    ASSERT_RATING(&d, 1, "2", "20", 2);
    rt_free(&d);
    /* a list: a folder and a file, in the order given */
    const char *extra = put("extra.tsv", "3\t30\t3\n");
    char list[9000];
    snprintf(list, sizeof list, "%s,%s", extra, dir);
    ASSERT_OK(rt_read(&d, list, 0));
    ASSERT_EQ(d.n, 3);
    ASSERT_RATING(&d, 0, "3", "30", 3);
    ASSERT_RATING(&d, 2, "2", "20", 2);
    rt_free(&d);
    /* an error inside a list names the file */
    snprintf(list, sizeof list, "%s,%s", extra, tpath("missing.csv"));
    expect_read_error(list, RC_ENOTFOUND, "missing.csv");
}

/* ---- the protocol split ---- */

TEST(rt_split_fractions_and_determinism)
{
    rt_data all;
    synth(&all, 60, 40, 1000, 7);
    rt_split a, b, c;
    ASSERT_OK(rt_split_make(&a, &all, 11, 0.1, 0.1));
    ASSERT_EQ(a.test.n, 100);                /* round(0.1 * 1000) */
    ASSERT_EQ(a.valid.n, 90);                /* round(0.1 * 900) */
    ASSERT_EQ(a.train.n, 810);
    ASSERT(a.train.owns_vocab && !a.valid.owns_vocab && !a.test.owns_vocab);
    ASSERT(a.valid.users == a.train.users && a.test.items == a.train.items);
    ASSERT_OK(rt_split_make(&b, &all, 11, 0.1, 0.1));
    ASSERT_OK(rt_split_make(&c, &all, 12, 0.1, 0.1));
    int same_c = 1;
    for (int64_t k = 0; k < a.test.n; k++) {
        ASSERT_STR_EQ(uid(&a.test, k), uid(&b.test, k));
        ASSERT_STR_EQ(iid(&a.test, k), iid(&b.test, k));
        ASSERT_NEAR(a.test.rating[k], b.test.rating[k], 0);
        if (strcmp(iid(&a.test, k), iid(&c.test, k)) != 0 || strcmp(uid(&a.test, k), uid(&c.test, k)) != 0)
            same_c = 0;
    }
    ASSERT(!same_c); /* another seed, another split */
    /* the three parts are a partition of all: every (user, item) pair exactly once */
    int64_t seen = 0;
    idmap *pairs = idmap_new(0);
    char key[64];
    rt_split *s = &a;
    const rt_data *parts[3] = {&s->train, &s->valid, &s->test};
    for (int q = 0; q < 3; q++)
        for (int64_t k = 0; k < parts[q]->n; k++) {
            if (parts[q]->user[k] < 0 || parts[q]->item[k] < 0) continue;
            snprintf(key, sizeof key, "%s/%s", uid(parts[q], k), iid(parts[q], k));
            ASSERT_EQ(idmap_intern(pairs, key, strlen(key)), seen);
            seen++;
        }
    ASSERT(seen <= 1000);
    idmap_free(pairs);
    /* valid_frac 0: no validation set; bad fractions */
    rt_split z;
    ASSERT_OK(rt_split_make(&z, &all, 1, 0.2, 0));
    ASSERT_EQ(z.valid.n, 0);
    ASSERT_EQ(z.test.n, 200);
    ASSERT_EQ(z.train.n, 800);
    rt_split_free(&z);
    ASSERT_RC(rt_split_make(&z, &all, 1, 1.0, 0), RC_EINVAL);
    ASSERT_RC(rt_split_make(&z, &all, 1, -0.1, 0), RC_EINVAL);
    ASSERT_RC(rt_split_make(&z, &all, 1, 0.6, 0.6), RC_EINVAL);
    ASSERT_EQ(z.train.n, 0);
    rt_split_free(&a);
    rt_split_free(&b);
    rt_split_free(&c);
    rt_split_free(&z);
    rt_free(&all);
}

TEST(rt_split_unknown_users_are_minus_one)
{
    /* 200 users with one rating each plus a dense core: about half the singletons land in test and
     * have no training rating */
    char text[1 << 16];
    size_t n = 0;
    for (int u = 0; u < 200; u++)
        n += (size_t)snprintf(text + n, sizeof text - n, "lone%d,core%d,%d\n", u, u % 5, 1 + u % 5);
    for (int u = 0; u < 20; u++)
        for (int i = 0; i < 5; i++)
            n += (size_t)snprintf(text + n, sizeof text - n, "c%d,core%d,%d\n", u, i, 1 + (u + i) % 5);
    rt_data all;
    ASSERT_OK(rt_read(&all, put("lone.csv", text), 0));
    ASSERT_EQ(all.n, 300);
    rt_split s;
    ASSERT_OK(rt_split_make(&s, &all, 3, 0.5, 0.2));
    int64_t unknown = 0;
    for (int64_t k = 0; k < s.test.n; k++) {
        if (s.test.user[k] >= 0) {
            ASSERT(s.test.user[k] < (int32_t)idmap_size(s.train.users));
            continue;
        }
        unknown++;
    }
    ASSERT(unknown > 20);
    /* the -1 users of valid and test are exactly the ratings of users without a training rating */
    int64_t minus = 0, absent = 0;
    for (int64_t k = 0; k < s.valid.n; k++)
        minus += s.valid.user[k] < 0;
    for (int64_t k = 0; k < s.test.n; k++)
        minus += s.test.user[k] < 0;
    for (int64_t k = 0; k < all.n; k++) {
        size_t len;
        const char *id = idmap_key(all.users, all.user[k], &len);
        absent += idmap_find(s.train.users, id, len) < 0;
    }
    ASSERT_EQ(minus, absent);
    /* the training vocabularies hold only users and items with a training rating */
    rt_csr byu;
    ASSERT_OK(rt_csr_build(&byu, &s.train, 0));
    for (int64_t u = 0; u < byu.rows; u++)
        ASSERT(byu.offsets[u + 1] > byu.offsets[u]);
    rt_csr_free(&byu);
    /* a test rating's default prediction: rt_csr_build refuses -1 */
    ASSERT_RC(rt_csr_build(&byu, &s.test, 0), RC_EINVAL);
    rt_split_free(&s);
    rt_free(&all);
}

/* ---- CSR ---- */

TEST(rt_csr_matches_brute_force)
{
    rt_data d;
    synth(&d, 30, 25, 400, 5);
    for (int by_item = 0; by_item < 2; by_item++) {
        rt_csr c;
        ASSERT_OK(rt_csr_build(&c, &d, by_item));
        int64_t I = by_item ? 25 : 30;
        ASSERT_EQ(c.rows, (int64_t)idmap_size(by_item ? d.items : d.users));
        ASSERT(c.rows <= I);
        ASSERT_EQ(c.nnz, 400);
        ASSERT_EQ(c.offsets[0], 0);
        ASSERT_EQ(c.offsets[c.rows], 400);
        for (int64_t r = 0; r < c.rows; r++) {
            /* every rating of row r, brute force, in ascending column order */
            int64_t p = c.offsets[r];
            for (int32_t col = 0; col < (int32_t)idmap_size(by_item ? d.users : d.items); col++)
                for (int64_t k = 0; k < d.n; k++) {
                    int32_t rr = by_item ? d.item[k] : d.user[k], cc = by_item ? d.user[k] : d.item[k];
                    if (rr != r || cc != col) continue;
                    ASSERT(p < c.offsets[r + 1]);
                    ASSERT_EQ(c.col[p], col);
                    ASSERT_NEAR(c.val[p], d.rating[k], 0);
                    p++;
                }
            ASSERT_EQ(p, c.offsets[r + 1]);
        }
        rt_csr_free(&c);
        rt_csr_free(&c);
    }
    /* a repeated pair or an index out of range is refused */
    rt_csr c;
    d.item[1] = d.item[0];
    d.user[1] = d.user[0];
    ASSERT_RC(rt_csr_build(&c, &d, 0), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "repeated");
    d.item[1] = 99;
    ASSERT_RC(rt_csr_build(&c, &d, 1), RC_EINVAL);
    ASSERT(c.offsets == NULL);
    rt_free(&d);
}

/* ---- metrics ---- */

TEST(rt_metrics_by_hand)
{
    float r[3] = {1, 4, 5}, p[3] = {0.5f, 4.5f, 6};
    uint8_t fb[3] = {1, 0, 1};
    rt_data d = {.n = 3, .rating = r};
    rt_metrics m;
    ASSERT_OK(rt_metrics_of(&m, &d, p, fb, 1, 5));
    ASSERT_EQ(m.n, 3);
    ASSERT_EQ(m.n_default, 2);
    ASSERT_NEAR(m.rmse, sqrt((0.25 + 0.25 + 1) / 3), 1e-12);
    ASSERT_NEAR(m.mae, 2.0 / 3, 1e-12);
    /* clipped: 1, 4.5, 5 */
    ASSERT_NEAR(m.rmse_clip, sqrt(0.25 / 3), 1e-12);
    ASSERT_NEAR(m.mae_clip, 0.5 / 3, 1e-12);
    ASSERT_OK(rt_metrics_of(&m, &d, p, NULL, 1, 5));
    ASSERT_EQ(m.n_default, 0);
    json_t *j = rt_metrics_to_json(&m);
    ASSERT(j);
    ASSERT_EQ(json_integer_value(json_object_get(j, "n")), 3);
    ASSERT_EQ(json_integer_value(json_object_get(j, "n_default")), 0);
    ASSERT_NEAR(json_real_value(json_object_get(j, "rmse")), m.rmse, 0);
    ASSERT_NEAR(json_real_value(json_object_get(j, "mae")), m.mae, 0);
    ASSERT_NEAR(json_real_value(json_object_get(j, "rmse_clipped")), m.rmse_clip, 0);
    ASSERT_NEAR(json_real_value(json_object_get(j, "mae_clipped")), m.mae_clip, 0);
    json_decref(j);
    d.n = 0;
    ASSERT_RC(rt_metrics_of(&m, &d, p, fb, 1, 5), RC_EINVAL);
}

TEST(rt_print_result_line)
{
    const char *p = tpath("out.txt");
    fflush(stdout);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644), saved = dup(1);
    ASSERT(fd >= 0 && saved >= 0);
    dup2(fd, 1);
    rt_metrics m = {.n = 100021, .n_default = 12, .rmse = 0.83121, .mae = 0.65209, .rmse_clip = 0.829,
                    .mae_clip = 0.6503};
    rt_print_result("biasedmf", &m, 123.44, "factors=50");
    rt_print_result("x", NULL, 1.0, NULL);
    fflush(stdout);
    dup2(saved, 1);
    close(fd);
    close(saved);
    FILE *f = fopen(p, "r");
    char buf[512] = {0};
    ASSERT(f && fread(buf, 1, sizeof buf - 1, f) > 0);
    fclose(f);
    ASSERT_STR_EQ(buf, "biasedmf rmse=0.8312 mae=0.6521 rmse_clipped=0.8290 mae_clipped=0.6503 n=100021 "
                       "n_default=12 train_s=123.4 factors=50\nx (no test data) train_s=1.0\n");
}

/* ---- writing ---- */

TEST(rt_write_tsv_roundtrip)
{
    rt_data d;
    ASSERT_OK(rt_read(&d, put("in.csv", "user,item,rating\n\"tab\tuser\",\"\"\"q\",3.5\nb,x,0.1\nc,y,-2\n"
                                          "b,y,4.25\n"),
                      0));
    ASSERT_EQ(d.n, 4);
    const char *out = tpath("out.tsv");
    ASSERT_OK(rt_write_tsv(&d, out));
    struct stat st;
    ASSERT(stat(tpath("out.tsv.tmp"), &st) != 0); /* renamed */
    rt_data e;
    ASSERT_OK(rt_read(&e, out, 0));
    ASSERT_EQ(e.n, d.n);
    ASSERT_EQ(idmap_size(e.users), idmap_size(d.users));
    ASSERT_EQ(idmap_size(e.items), idmap_size(d.items));
    for (int64_t k = 0; k < d.n; k++) {
        ASSERT_STR_EQ(uid(&e, k), uid(&d, k));
        ASSERT_STR_EQ(iid(&e, k), iid(&d, k));
        ASSERT_EQ(e.user[k], d.user[k]);
        ASSERT_EQ(e.item[k], d.item[k]);
        ASSERT(e.rating[k] == d.rating[k]); /* bit-exact */
    }
    rt_free(&e);
    /* synthetic data with many ratings */
    rt_data s;
    synth(&s, 50, 50, 1500, 9);
    s.rating[3] = 3.14159274f;
    ASSERT_OK(rt_write_tsv(&s, out));
    ASSERT_OK(rt_read(&e, out, 0));
    ASSERT_EQ(e.n, s.n);
    for (int64_t k = 0; k < s.n; k++) {
        ASSERT_STR_EQ(uid(&e, k), uid(&s, k));
        ASSERT_STR_EQ(iid(&e, k), iid(&s, k));
        ASSERT(e.rating[k] == s.rating[k]);
    }
    rt_free(&e);
    rt_free(&s);
    /* -1 indices cannot be written */
    d.user[2] = -1;
    ASSERT_RC(rt_write_tsv(&d, tpath("bad.tsv")), RC_EINVAL);
    ASSERT(stat(tpath("bad.tsv"), &st) != 0);
    d.user[2] = 0;
    ASSERT_RC(rt_write_tsv(&d, "/nonexistent-dir/x.tsv"), RC_EIO);
    ASSERT_CONTAINS(rc_errmsg(), "/nonexistent-dir/x.tsv");
    rt_free(&d);
}

TEST(rt_remap_to_a_model_vocabulary)
{
    rt_data d;
    ASSERT_OK(rt_read(&d, put("t.csv", "a,x,1\nz,x,2\na,w,3\n"), 0));
    idmap *users = idmap_new(0), *items = idmap_new(0);
    idmap_intern(users, "q", 1);
    idmap_intern(users, "a", 1);
    idmap_intern(items, "x", 1);
    rt_data r;
    ASSERT_OK(rt_remap(&r, &d, users, items));
    ASSERT_EQ(r.n, 3);
    ASSERT(!r.owns_vocab && r.users == users);
    ASSERT_EQ(r.user[0], 1);
    ASSERT_EQ(r.item[0], 0);
    ASSERT_EQ(r.user[1], -1);
    ASSERT_EQ(r.item[1], 0);
    ASSERT_EQ(r.user[2], 1);
    ASSERT_EQ(r.item[2], -1);
    ASSERT_NEAR(r.rating[2], 3, 0);
    rt_free(&r);
    ASSERT(idmap_size(users) == 2); /* borrowed vocabularies survive */
    idmap_free(users);
    idmap_free(items);
    rt_free(&d);
}

/* ---- the trainer's data ---- */

TEST(rt_job_prepare_data_or_files)
{
    rt_data all;
    synth(&all, 40, 30, 600, 21);
    const char *f = tpath("all.tsv");
    ASSERT_OK(rt_write_tsv(&all, f));
    rt_free(&all);
    rt_opts o;
    memset(&o, 0, sizeof o);
    o.split_seed = 5;
    o.test_frac = 0.1;
    o.valid_frac = 0.1;
    o.quiet = 1;
    rt_job j;
    ASSERT_RC(rt_job_prepare(&j, &o), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "give --data F or --train F");
    o.data = (char *)f;
    o.train = (char *)f;
    ASSERT_RC(rt_job_prepare(&j, &o), RC_EINVAL);
    o.train = NULL;
    ASSERT_OK(rt_job_prepare(&j, &o));
    ASSERT_EQ(j.sp.test.n, 60);
    ASSERT_EQ(j.sp.valid.n, 54);
    ASSERT_EQ(j.sp.train.n, 486);
    ASSERT_EQ(j.by_user.nnz, 486);
    ASSERT_EQ(j.by_item.nnz, 486);
    ASSERT_EQ(j.by_user.rows, (int64_t)idmap_size(j.sp.train.users));
    ASSERT_EQ(j.by_item.rows, (int64_t)idmap_size(j.sp.train.items));
    double s = 0;
    for (int64_t k = 0; k < j.sp.train.n; k++)
        s += j.sp.train.rating[k];
    ASSERT_NEAR(j.mean, s / 486, 1e-12);
    ASSERT_STR_EQ(j.source, f);
    json_t *m = rt_job_meta(&j, &o);
    ASSERT(m);
    ASSERT_STR_EQ(json_string_value(json_object_get(m, "path")), f);
    ASSERT_EQ(json_integer_value(json_object_get(m, "n_train")), 486);
    ASSERT_EQ(json_integer_value(json_object_get(m, "n_valid")), 54);
    ASSERT_EQ(json_integer_value(json_object_get(m, "n_test")), 60);
    ASSERT_EQ(json_integer_value(json_object_get(m, "split_seed")), 5);
    ASSERT_EQ(json_integer_value(json_object_get(m, "n_users")), j.by_user.rows);
    ASSERT(json_is_number(json_object_get(m, "mean")) && json_is_number(json_object_get(m, "rating_min")) &&
           json_is_number(json_object_get(m, "rating_max")));
    json_decref(m);
    rt_job_free(&j);
    rt_job_free(&j);
    /* --train alone: no validation or test data */
    o.data = NULL;
    o.train = (char *)f;
    ASSERT_OK(rt_job_prepare(&j, &o));
    ASSERT_EQ(j.sp.train.n, 600);
    ASSERT_EQ(j.sp.valid.n, 0);
    ASSERT_EQ(j.sp.test.n, 0);
    rt_job_free(&j);
    /* an error reading --test names the file */
    o.test = (char *)put("bad.tsv", "u\ti\t4\nu\ti\tbad\n");
    ASSERT_RC(rt_job_prepare(&j, &o), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "bad.tsv:2: field 3 (rating)");
    ASSERT(j.by_user.offsets == NULL);
}

/* ---- the refit data and rt_train_main, with a fake model (no snapshot written) ---- */

TEST(rt_refit_make_joins_train_and_known_valid)
{
    rt_opts o;
    memset(&o, 0, sizeof o);
    o.quiet = 1;
    o.train = (char *)put("rf_train.tsv", "u1\ti1\t4\nu1\ti2\t2\nu2\ti1\t5\n");
    o.valid = (char *)put("rf_valid.tsv", "u2\ti2\t3\nu9\ti1\t1\nu1\ti9\t1\n");
    rt_job j;
    ASSERT_OK(rt_job_prepare(&j, &o));
    ASSERT_EQ(j.sp.valid.n, 3);
    rt_refit rf;
    ASSERT_OK(rt_refit_make(&rf, &j));
    /* the training ratings, then the validation ratings whose user and item are both known (u9 and i9 are
     * not) */
    ASSERT_EQ(rf.all.n, 4);
    ASSERT_RATING(&rf.all, 0, "u1", "i1", 4);
    ASSERT_RATING(&rf.all, 2, "u2", "i1", 5);
    ASSERT_RATING(&rf.all, 3, "u2", "i2", 3);
    ASSERT(rf.all.users == j.sp.train.users && rf.all.items == j.sp.train.items && !rf.all.owns_vocab);
    ASSERT_NEAR(rf.mean, (4 + 2 + 5 + 3) / 4.0, 1e-12);
    ASSERT_EQ(rf.by_user.rows, 2);
    ASSERT_EQ(rf.by_item.rows, 2);
    ASSERT_EQ(rf.by_user.offsets[2], 4);
    ASSERT(rf.all.rmin == j.sp.train.rmin && rf.all.rmax == j.sp.train.rmax);
    rt_refit_free(&rf);
    ASSERT(rf.all.user == NULL && rf.by_user.offsets == NULL);
    rt_refit_free(&rf);
    rt_job_free(&j);
    /* a validation file repeating a training pair (files split by hand): refused, *out zeroed */
    o.valid = (char *)put("rf_valid2.tsv", "u2\ti1\t1\n");
    ASSERT_OK(rt_job_prepare(&j, &o));
    ASSERT_RC(rt_refit_make(&rf, &j), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "repeated (user, item) pair");
    ASSERT(rf.all.user == NULL && rf.by_user.offsets == NULL && rf.by_item.offsets == NULL);
    rt_job_free(&j);
    /* no validation ratings: the training ratings alone */
    o.valid = NULL;
    ASSERT_OK(rt_job_prepare(&j, &o));
    ASSERT_OK(rt_refit_make(&rf, &j));
    ASSERT_EQ(rf.all.n, 3);
    ASSERT_EQ(rf.by_user.nnz, 3);
    rt_refit_free(&rf);
    rt_job_free(&j);
}

/* A fake rating model: predicts the mean training rating (+ shift) for a known user and item. */
typedef struct fake_cfg {
    long long bad;
    rt_opts rt;
    int refit;
    double shift;
} fake_cfg;
static const cfg_def fake_defs[] = {
    RT_CFG_ENTRIES(fake_cfg, rt),
    CFG_INT("bad", fake_cfg, bad, 0, 0, 10, "setup refuses a value > 0"),
    CFG_BOOL("refit", fake_cfg, refit, 0, "refit on training + validation ratings"),
    CFG_DOUBLE("shift", fake_cfg, shift, 0, -10, 10, "added to every prediction"),
    CFG_END,
};
typedef struct fake_hp {
    double shift;
    int fail_train;
} fake_hp;
typedef struct fake_model {
    float mean, shift;
} fake_model;
/* what the hooks saw, in order: one letter per call (s setup, l label, t train, r refit, p predict, h
 * hparams, j train_json, v save, x result_extra, f free) */
static struct {
    char calls[64];
    int64_t refit_n, refit_valid_n, saved_r, saved_u, n_train;
    double refit_mean;
    json_t *meta;
    char label[64];
} fk;
static void fk_call(char c)
{
    size_t n = strlen(fk.calls);
    if (n + 1 < sizeof fk.calls) fk.calls[n] = c;
}
static int fk_setup(rt_run *r)
{
    fk_call('s');
    const fake_cfg *c = r->cfg;
    fake_hp *hp = r->hp;
    hp->shift = c->shift;
    hp->fail_train = c->bad == 2;
    r->refit = c->refit;
    return c->bad == 1 ? rc_error(RC_EINVAL, "fake: bad is %lld", c->bad) : RC_OK;
}
static const char *fk_label(const rt_run *r)
{
    (void)r;
    fk_call('l');
    return "fakel";
}
static int fk_new(rt_run *r, const rb_train_input *in)
{
    fake_model *m = malloc(sizeof *m);
    if (!(r->model = m)) return rc_error(RC_ENOMEM, "fake: out of memory");
    m->mean = (float)in->mean;
    m->shift = (float)((const fake_hp *)r->hp)->shift;
    return RC_OK;
}
static int fk_train(rt_run *r, const rb_train_input *in)
{
    fk_call('t');
    if (((const fake_hp *)r->hp)->fail_train) return rc_error(RC_EINVAL, "fake: training diverged");
    r->valid_rmse = in->valid.n > 0 ? 0.5 : NAN;
    *(int *)r->st = 17;
    return fk_new(r, in);
}
static int fk_refit(rt_run *r, const rb_train_input *in)
{
    fk_call('r');
    fk.refit_n = in->by_user.nnz;
    fk.refit_valid_n = in->valid.n;
    fk.refit_mean = in->mean;
    fk.n_train = r->n_train;
    free(r->model);
    return fk_new(r, in);
}
static void fk_predict(const void *model, const rb_triples *t, float def, float *out, uint8_t *fb)
{
    fk_call('p');
    const fake_model *m = model;
    for (int64_t k = 0; k < t->n; k++) {
        fb[k] = t->user[k] < 0 || t->item[k] < 0;
        out[k] = fb[k] ? def : m->mean + m->shift;
    }
}
static json_t *fk_hparams(const rt_run *r)
{
    fk_call('h');
    return json_pack("{s:f}", "shift", ((const fake_hp *)r->hp)->shift);
}
static json_t *fk_train_json(const rt_run *r)
{
    fk_call('j');
    return json_pack("{s:i, s:b, s:I}", "epochs", *(const int *)r->st, "refit", r->refit, "n_train",
                     (json_int_t)r->n_train);
}
static void fk_extra(const rt_run *r, char *buf, size_t cap)
{
    fk_call('x');
    snprintf(buf, cap, "epochs=%d valid_rmse=%.4f%s version=%llu", *(const int *)r->st, r->valid_rmse,
             r->refit ? " refit=1" : "", (unsigned long long)r->version);
}
static int fk_save(const rt_run *r, const rating_base_src *src, const char *root, const json_t *extra, uint64_t *ver)
{
    (void)root;
    fk_call('v');
    fk.saved_u = (int64_t)idmap_size(src->users);
    fk.saved_r = src->offsets[fk.saved_u];
    json_decref(fk.meta);
    fk.meta = json_deep_copy(extra);
    snprintf(fk.label, sizeof fk.label, "%s", r->label);
    *ver = 7;
    return RC_OK;
}
static void fk_free(void *m)
{
    fk_call('f');
    free(m);
}
static const rt_trainer fake_trainer = {
    .name = "fake",
    .usage = "usage: recd train fake (--data F | --train F) 100% fake\n",
    .defs = fake_defs,
    .cfg_size = sizeof(fake_cfg),
    .rt_offset = offsetof(fake_cfg, rt),
    .hp_size = sizeof(fake_hp),
    .st_size = sizeof(int),
    .flags = RT_META_VALID | RT_META_VALID_RMSE,
    .setup = fk_setup,
    .label = fk_label,
    .train = fk_train,
    .refit = fk_refit,
    .predict = fk_predict,
    .hparams_json = fk_hparams,
    .train_json = fk_train_json,
    .result_extra = fk_extra,
    .save = fk_save,
    .free = fk_free,
};

/* rt_train_main(&fake_trainer, "fake" args...) with stdout and stderr captured into out; the status. */
static int drive(char *out, size_t cap, const char *const *args)
{
    char *argv[32], *owned[32]; /* the settings parser reorders argv: free what owned holds */
    int argc = 0;
    argv[argc++] = strdup("fake");
    for (; args[argc - 1] && argc < 31; argc++)
        argv[argc] = strdup(args[argc - 1]);
    argv[argc] = NULL;
    memcpy(owned, argv, sizeof argv);
    memset(fk.calls, 0, sizeof fk.calls);
    const char *p = tpath("drive.out");
    fflush(stdout);
    fflush(stderr);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644), o1 = dup(1), o2 = dup(2);
    if (fd < 0 || o1 < 0 || o2 < 0) FAIL("drive: cannot redirect");
    dup2(fd, 1);
    dup2(fd, 2);
    int st = rt_train_main(&fake_trainer, argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(o1, 1);
    dup2(o2, 2);
    close(fd);
    close(o1);
    close(o2);
    FILE *f = fopen(p, "r");
    size_t n = f ? fread(out, 1, cap - 1, f) : 0;
    out[n] = '\0';
    if (f) fclose(f);
    for (int i = 0; i < argc; i++)
        free(owned[i]);
    return st;
}
#define DRIVE(out, ...) drive(out, sizeof out, (const char *const[]){__VA_ARGS__, NULL})

TEST(rt_train_main_usage_errors)
{
    static char out[16384], d[4200], none[4200]; /* copies: tpath's buffers are reused */
    snprintf(d, sizeof d, "%s", put("d.tsv", "u1\ti1\t4\nu2\ti1\t3\n"));
    snprintf(none, sizeof none, "%s", tpath("none.tsv"));
    ASSERT_EQ(DRIVE(out, "--help"), 0);
    ASSERT_CONTAINS(out, "usage: recd train fake (--data F | --train F) 100% fake\n");
    ASSERT_CONTAINS(out, "--shift");
    ASSERT_STR_EQ(fk.calls, "");
    ASSERT_EQ(DRIVE(out, "--quiet"), 2);
    ASSERT_CONTAINS(out, "recd train fake: give --data F (split here) or --train F [--valid F] [--test F]");
    ASSERT_CONTAINS(out, "usage: recd train fake");
    ASSERT_EQ(DRIVE(out, "--data", d, "--train", d), 2);
    ASSERT_CONTAINS(out, "give --data F");
    ASSERT_EQ(DRIVE(out, "--data", d, "--test", d), 2);
    ASSERT_CONTAINS(out, "give --data F");
    ASSERT_EQ(DRIVE(out, "--data", d, "extra"), 2);
    ASSERT_CONTAINS(out, "recd train fake: unexpected argument 'extra' (run `recd train fake --help`)");
    ASSERT_EQ(DRIVE(out, "--data", d, "-c"), 2);
    ASSERT_CONTAINS(out, "unexpected argument '-c'");
    ASSERT_EQ(DRIVE(out, "--data", d, "--nosuch", "1"), 2);
    ASSERT_CONTAINS(out, "--nosuch");
    ASSERT_EQ(DRIVE(out, "--data", d, "--bad", "11"), 2);
    ASSERT_CONTAINS(out, "'bad'");
    ASSERT_STR_EQ(fk.calls, "");
    /* setup refuses: named after the config file, else "settings" */
    ASSERT_EQ(DRIVE(out, "--data", d, "--bad", "1"), 2);
    ASSERT_CONTAINS(out, "recd train fake: settings: fake: bad is 1");
    ASSERT_STR_EQ(fk.calls, "s");
    const char *c = put("fake.json", "{\n  \"bad\": 1\n}\n");
    ASSERT_EQ(DRIVE(out, "-c", c, "--data", d), 2);
    ASSERT_CONTAINS(out, "fake.json: fake: bad is 1");
    c = put("fake_bad.json", "{\n  \"shift\": \"up\"\n}\n");
    ASSERT_EQ(DRIVE(out, "-c", c, "--data", d), 2);
    ASSERT_CONTAINS(out, "fake_bad.json:2");
    /* failures after the settings: 1, one line naming the cause; the model is freed */
    ASSERT_EQ(DRIVE(out, "--data", none, "--quiet"), 1);
    ASSERT_CONTAINS(out, "recd train fake: ");
    ASSERT_CONTAINS(out, "none.tsv");
    ASSERT_STR_EQ(fk.calls, "sl");
    ASSERT_EQ(DRIVE(out, "--train", d, "--bad", "2", "--quiet"), 1);
    ASSERT_CONTAINS(out, "recd train fake: fake: training diverged");
    ASSERT_STR_EQ(fk.calls, "slt");
}

TEST(rt_train_main_runs_the_hooks)
{
    static char out[16384], tr[4200], va[4200], te[4200]; /* copies: tpath's buffers are reused */
    snprintf(tr, sizeof tr, "%s", put("t.tsv", "u1\ti1\t4\nu1\ti2\t2\nu2\ti1\t5\nu3\ti3\t1\n"));
    snprintf(va, sizeof va, "%s", put("v.tsv", "u2\ti2\t3\nu9\ti1\t1\n"));
    snprintf(te, sizeof te, "%s", put("te.tsv", "u1\ti3\t3\nu9\ti9\t2\n"));
    /* validation and --refit: the first model's validation metrics, then the refit on 5 ratings (u9 is
     * unknown), tested and published */
    ASSERT_EQ(DRIVE(out, "--train", tr, "--valid", va, "--test", te, "--refit", "--shift", "0.5", "--quiet"), 0);
    ASSERT_STR_EQ(fk.calls, "sltprphjvxf");
    ASSERT_EQ(fk.refit_n, 5);
    ASSERT_EQ(fk.refit_valid_n, 0);
    ASSERT_EQ(fk.n_train, 5);
    ASSERT_NEAR(fk.refit_mean, 3.0, 1e-12);
    ASSERT_EQ(fk.saved_u, 3);
    ASSERT_EQ(fk.saved_r, 5);
    ASSERT_STR_EQ(fk.label, "fakel");
    /* test: u1/i3 predicted 3.5 (error 0.5), u9/i9 the default 3 (error 1) */
    ASSERT_CONTAINS(out, "fakel rmse=0.7906 mae=0.7500 rmse_clipped=0.7906 mae_clipped=0.7500 n=2 n_default=1 "
                         "train_s=");
    ASSERT_CONTAINS(out, " epochs=17 valid_rmse=0.5000 refit=1 version=7\n");
    /* the meta: config, hparams, data, train, metrics {valid_rmse, valid, test}, in that order */
    ASSERT(fk.meta);
    const char *keys[] = {"config", "hparams", "data", "train", "metrics"};
    int k = 0;
    const char *key;
    json_t *v;
    json_object_foreach(fk.meta, key, v) ASSERT_STR_EQ(key, keys[k++]);
    ASSERT_EQ(k, 5);
    json_t *m = json_object_get(fk.meta, "metrics");
    const char *mkeys[] = {"valid_rmse", "valid", "test"};
    k = 0;
    json_object_foreach(m, key, v) ASSERT_STR_EQ(key, mkeys[k++]);
    ASSERT_EQ(k, 3);
    /* validation metrics of the first model (mean 3, shift 0.5: 3.5 against 3, and the default 3 against 1) */
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(m, "valid"), "n_default")), 1);
    ASSERT_NEAR(json_number_value(json_object_get(json_object_get(m, "valid"), "mae")), 1.25, 1e-6);
    ASSERT(json_is_true(json_object_get(json_object_get(fk.meta, "train"), "refit")));
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(fk.meta, "train"), "n_train")), 5);
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(fk.meta, "data"), "n_train")), 4);
    /* --refit without validation ratings: no refit; no test ratings: "(no test data)"; --name labels */
    ASSERT_EQ(DRIVE(out, "--train", tr, "--refit", "--name", "mine", "--quiet"), 0);
    ASSERT_STR_EQ(fk.calls, "sthjvxf");
    ASSERT_STR_EQ(fk.label, "mine");
    ASSERT_CONTAINS(out, "mine (no test data) train_s=");
    ASSERT_CONTAINS(out, " epochs=17 valid_rmse=nan version=7\n");
    m = json_object_get(fk.meta, "metrics");
    ASSERT_EQ(json_object_size(m), 0);
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(fk.meta, "train"), "n_train")), 4);
    json_decref(fk.meta);
    fk.meta = NULL;
}

/* ---- recd split ratings, through the binary ---- */

TEST(rt_split_cli_matches_the_protocol)
{
    rt_data all;
    synth(&all, 80, 60, 2000, 33);
    const char *f = tpath("all.tsv");
    ASSERT_OK(rt_write_tsv(&all, f));
    rt_free(&all);
    char out[8192];
    int st = test_run(out, sizeof out, "%s split ratings --data %s --out %s/sp --split-seed 9 --test-frac 0.2 "
                                       "--valid-frac 0.25 --quiet",
                      test_recd_bin(), f, test_tmpdir());
    if (st != 0) FAIL("recd split ratings exited %d:\n%s", st, out);
    ASSERT_CONTAINS(out, "train: 1200, valid: 400, test: 400");
    /* the files hold the protocol's sets: training on them equals training on --data */
    rt_opts o;
    memset(&o, 0, sizeof o);
    o.quiet = 1;
    o.split_seed = 9;
    o.test_frac = 0.2;
    o.valid_frac = 0.25;
    o.data = (char *)f;
    rt_job a, b;
    ASSERT_OK(rt_job_prepare(&a, &o));
    o.data = NULL;
    char tr[4400], va[4400], te[4400];
    snprintf(tr, sizeof tr, "%s/sp/train.tsv", test_tmpdir());
    snprintf(va, sizeof va, "%s/sp/valid.tsv", test_tmpdir());
    snprintf(te, sizeof te, "%s/sp/test.tsv", test_tmpdir());
    o.train = tr;
    o.valid = va;
    o.test = te;
    ASSERT_OK(rt_job_prepare(&b, &o));
    const rt_data *pa[3] = {&a.sp.train, &a.sp.valid, &a.sp.test}, *pb[3] = {&b.sp.train, &b.sp.valid, &b.sp.test};
    for (int q = 0; q < 3; q++) {
        ASSERT_EQ(pa[q]->n, pb[q]->n);
        for (int64_t k = 0; k < pa[q]->n; k++) {
            ASSERT_EQ(pa[q]->user[k], pb[q]->user[k]);
            ASSERT_EQ(pa[q]->item[k], pb[q]->item[k]);
            ASSERT(pa[q]->rating[k] == pb[q]->rating[k]);
        }
    }
    ASSERT_EQ(idmap_size(a.sp.train.users), idmap_size(b.sp.train.users));
    ASSERT_EQ(idmap_size(a.sp.train.items), idmap_size(b.sp.train.items));
    rt_job_free(&a);
    rt_job_free(&b);
    /* valid_frac 0: no valid.tsv */
    st = test_run(out, sizeof out, "%s split ratings --data %s --out %s/sp2 --valid-frac 0 --quiet", test_recd_bin(), f,
                  test_tmpdir());
    ASSERT_EQ(st, 0);
    struct stat sb;
    snprintf(va, sizeof va, "%s/sp2/valid.tsv", test_tmpdir());
    ASSERT(stat(va, &sb) != 0);
    snprintf(te, sizeof te, "%s/sp2/test.tsv", test_tmpdir());
    ASSERT(stat(te, &sb) == 0);
}

TEST(rt_split_cli_errors)
{
    char out[8192];
    const char *bin = test_recd_bin();
    const char *bad = put("bad.csv", "1,2,3\n1,3,oops\n");
    int st = test_run(out, sizeof out, "%s split ratings --data %s --out %s/o --quiet 2>&1", bin, bad, test_tmpdir());
    ASSERT_EQ(st, 1);
    ASSERT_CONTAINS(out, "bad.csv:2: field 3 (rating): 'oops' is not a number");
    ASSERT(strchr(out, '\n') == out + strlen(out) - 1); /* one line */
    st = test_run(out, sizeof out, "%s split ratings --out x 2>&1", bin);
    ASSERT_EQ(st, 2);
    ASSERT_CONTAINS(out, "--data F and --out DIR are required");
    st = test_run(out, sizeof out, "%s split ratings --data x --out y --test-frac 2 2>&1", bin);
    ASSERT_EQ(st, 2);
    ASSERT_CONTAINS(out, "test_frac");
    st = test_run(out, sizeof out, "%s split ratings --help", bin);
    ASSERT_EQ(st, 0);
    ASSERT_CONTAINS(out, "split_seed");
    ASSERT_CONTAINS(out, "valid_frac");
    st = test_run(out, sizeof out, "%s split --help", bin);
    ASSERT_EQ(st, 0);
    ASSERT_CONTAINS(out, "recd split ratings");
    st = test_run(out, sizeof out, "%s split frobs 2>&1", bin);
    ASSERT_EQ(st, 2);
    ASSERT_CONTAINS(out, "known: sessions, ratings");
}

/* ---- recd eval MODEL on a snapshot without the rate capability ---- */

/* rt_eval_cmd on argv {model, --snapshot, dir, [--test, test, --quiet]} (cfg_parse_args reorders its argv:
 * a fresh array each call). */
static int eval_cmd(const char *model, const char *dir, const char *test)
{
    char m[64], s1[] = "--snapshot", t1[] = "--test", q[] = "--quiet", d[4400], t[4400];
    snprintf(m, sizeof m, "%s", model);
    snprintf(d, sizeof d, "%s", dir);
    char *argv[7] = {m, s1, d, NULL, NULL, NULL, NULL};
    if (!test) return rt_eval_cmd(3, argv);
    snprintf(t, sizeof t, "%s", test);
    argv[3] = t1;
    argv[4] = t;
    argv[5] = q;
    return rt_eval_cmd(6, argv);
}

TEST(rt_eval_cmd_refusals)
{
    const char *test = put("t.csv", "a,x,3\n");
    char dir[4400];
    snprintf(dir, sizeof dir, "%s/nope", test_tmpdir());
    ASSERT_EQ(eval_cmd("itemknn", dir, NULL), 2); /* usage: no --test */
    ASSERT_EQ(eval_cmd("itemknn", dir, test), 1); /* no such snapshot */
    /* a snapshot of a type without `rate` */
    snap_writer *w;
    ASSERT_OK(snap_writer_open(&w, test_tmpdir(), "itemknn", 0));
    uint64_t v;
    ASSERT_OK(snap_writer_publish(w, &v));
    snprintf(dir, sizeof dir, "%s/itemknn", test_tmpdir());
    ASSERT_EQ(eval_cmd("itemknn", dir, test), 2);
    /* the model named on the command line must be the snapshot's */
    ASSERT_EQ(eval_cmd("biasedmf", dir, test), 2);
}

/* ---- the real MovieLens files ---- */

TEST_TIMEOUT(rt_read_movielens_1m, 120)
{
    const char *root = test_shared_data("movielens-1m");
    if (!root) SKIP("dataset movielens-1m absent");
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/ratings-5fold", root);
    struct stat st;
    if (stat(dir, &st) != 0) SKIP("movielens-1m/ratings-5fold absent");
    rt_data d;
    ASSERT_OK(rt_read(&d, dir, 0));
    ASSERT_EQ(d.n, 1000209);
    ASSERT_EQ(idmap_size(d.users), 6040);
    ASSERT_EQ(idmap_size(d.items), 3706);
    ASSERT_EQ(d.n_dup, 0);
    int64_t stars[6] = {0};
    for (int64_t k = 0; k < d.n; k++) {
        float r = d.rating[k];
        ASSERT(r == (float)(int)r && r >= 1 && r <= 5);
        stars[(int)r]++;
    }
    /* PROVENANCE.md: 1* 56,174, 2* 107,557, 3* 261,197, 4* 348,971, 5* 226,310 */
    ASSERT_EQ(stars[1], 56174);
    ASSERT_EQ(stars[2], 107557);
    ASSERT_EQ(stars[3], 261197);
    ASSERT_EQ(stars[4], 348971);
    ASSERT_EQ(stars[5], 226310);
    ASSERT_NEAR(d.rmin, 1, 0);
    ASSERT_NEAR(d.rmax, 5, 0);
    rt_free(&d);
    /* the '::' part with timestamps: users 1-2999, 487,650 ratings, 3,615 movies */
    char gz[4300];
    snprintf(gz, sizeof gz, "%s/ratings.users1-2999.dat.gz", root);
    if (stat(gz, &st) == 0) {
        ASSERT_OK(rt_read(&d, gz, 0));
        ASSERT_EQ(d.n, 487650);
        ASSERT_EQ(idmap_size(d.users), 2999);
        ASSERT_EQ(idmap_size(d.items), 3615);
        rt_free(&d);
    }
}

TEST(rt_read_movielens_100k)
{
    const char *root = test_shared_data("movielens-100k");
    if (!root) SKIP("dataset movielens-100k absent");
    char p[4200];
    snprintf(p, sizeof p, "%s/u.data", root);
    rt_data d;
    ASSERT_OK(rt_read(&d, p, 0));
    ASSERT_EQ(d.n, 100000);
    ASSERT_EQ(idmap_size(d.users), 943);
    ASSERT_EQ(idmap_size(d.items), 1682);
    ASSERT_EQ(d.n_dup, 0);
    int64_t stars[6] = {0};
    for (int64_t k = 0; k < d.n; k++)
        stars[(int)d.rating[k]]++;
    ASSERT_EQ(stars[1] + stars[2] + stars[3] + stars[4] + stars[5], 100000);
    ASSERT_EQ(stars[1], 6110);
    ASSERT_EQ(stars[5], 21201);
    /* every user has at least 20 ratings (the README) */
    rt_csr c;
    ASSERT_OK(rt_csr_build(&c, &d, 0));
    for (int64_t u = 0; u < c.rows; u++)
        ASSERT(c.offsets[u + 1] - c.offsets[u] >= 20);
    rt_csr_free(&c);
    rt_free(&d);
}

/* ---- recd eval MODEL end to end, for the rating trainers registered in this build ---- */

/* The value of "key=" in a result line, or NAN. */
static double result_field(const char *line, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, " %s=", key);
    const char *p = strstr(line, k);
    return p ? strtod(p + strlen(k), NULL) : NAN;
}

/* The first line of out holding " rmse=" (a result line, copied into buf), or NULL. */
static const char *result_line(const char *out, char *buf, size_t cap)
{
    for (const char *l = out; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        size_t n = strcspn(l, "\n");
        const char *r = strstr(l, " rmse=");
        if (r && r < l + n) {
            snprintf(buf, cap, "%.*s", (int)n, l);
            return buf;
        }
    }
    return NULL;
}

/* Train a small model (split by `recd split ratings`), then `recd eval` its snapshot on the same test
 * file: the eval's metrics equal the trainer's result line. The result line's label is the snapshot's
 * model folder (autorec labels its variant: i-autorec). Skips when no rating trainer is built. */
TEST_TIMEOUT(rt_eval_cmd_matches_the_trainer, 120)
{
    static const char *const models[] = {"biasedmf", "autorec", NULL};
    static char out[1 << 16];
    const char *bin = test_recd_bin(), *t = test_tmpdir();
    int ran = 0;
    for (int m = 0; models[m]; m++) {
        if (test_run(out, sizeof out, "%s train %s --help 2>&1", bin, models[m]) != 0) continue;
        if (!ran) {
            ASSERT_EQ(test_run(out, sizeof out, "%s synth ratings --out %s/r.tsv --users 120 --items 80 --rows 3000",
                               bin, t),
                      0);
            int st = test_run(out, sizeof out, "%s split ratings --data %s/r.tsv --out %s/sp --quiet", bin, t, t);
            if (st != 0) FAIL("split: %s", out);
        }
        ran = 1;
        int st = test_run(out, sizeof out,
                          "%s train %s --train %s/sp/train.tsv --valid %s/sp/valid.tsv --test %s/sp/test.tsv "
                          "--out %s/snap-%s --epochs 3 --quiet 2>&1",
                          bin, models[m], t, t, t, t, models[m]);
        if (st == 2) SKIP("recd train %s does not take the common rating flags yet: %.200s", models[m], out);
        if (st != 0) FAIL("recd train %s exited %d:\n%s", models[m], st, out);
        char trained[1024], evaluated[1024];
        if (!result_line(out, trained, sizeof trained)) FAIL("no result line from recd train %s:\n%s", models[m], out);
        char label[256];
        snprintf(label, sizeof label, "%.*s", (int)strcspn(trained, " "), trained);
        st = test_run(out, sizeof out, "%s eval %s --snapshot %s/snap-%s/%s --test %s/sp/test.tsv --quiet 2>&1", bin,
                      models[m], t, models[m], label, t);
        if (st != 0) FAIL("recd eval %s exited %d:\n%s", models[m], st, out);
        if (!result_line(out, evaluated, sizeof evaluated))
            FAIL("no result line from recd eval %s:\n%s", models[m], out);
        ASSERT_EQ(strncmp(evaluated, label, strlen(label)), 0);
        ASSERT_CONTAINS(evaluated, " train_s=0.0 version=1");
        static const char *const keys[] = {"rmse", "mae", "rmse_clipped", "mae_clipped", "n", "n_default"};
        for (int k = 0; k < 6; k++) {
            double a = result_field(trained, keys[k]), b = result_field(evaluated, keys[k]);
            if (!(fabs(a - b) <= 1e-4)) FAIL("%s: %s differs: train '%s' vs eval '%s'", models[m], keys[k], trained,
                                            evaluated);
        }
        ASSERT_EQ(result_field(evaluated, "n"), 300);
    }
    if (!ran) SKIP("no rating trainer in this build (recd train biasedmf)");
}
