/* tests/test_csv.c - core/csv: quoting, CRLF, gzip, long lines, empty fields, errors with line numbers. */
#include <stdint.h>
#include <zlib.h>

#include "core/csv.h"
#include "tests/testlib.h"
#include "trainer/sessions.h"

static char *tmp_path(const char *name)
{
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, 1024, "%s/%s", test_tmpdir(), name);
    return p;
}

/* path (separator sep) reads good_rows records, then the next is refused with RC_EFORMAT and a
 * message holding `where` (file:line) and, unless NULL, `what`. */
static void expect_format_error(const char *path, char sep, int good_rows, const char *where,
                                const char *what)
{
    csv_reader *r = csv_open(path, sep);
    ASSERT(r != NULL);
    char **f;
    int n;
    for (int i = 0; i < good_rows; i++)
        ASSERT_EQ(csv_next(r, &f, &n), 1);
    ASSERT_RC(csv_next(r, &f, &n), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), where);
    if (what) ASSERT_CONTAINS(rc_errmsg(), what);
    csv_close(r);
}

static void write_gz(const char *path, const char *text, size_t len)
{
    gzFile g = gzopen(path, "wb");
    ASSERT(g != NULL);
    ASSERT_EQ(gzwrite(g, text, (unsigned)len), (long long)len);
    ASSERT_EQ(gzclose(g), Z_OK);
}

TEST(csv_basic_quotes_crlf_empty)
{
    const char *p = tmp_path("a.csv");
    test_write_file(p, "a,b,c\r\n"
                       "1,\"x,y\",3\r\n"
                       "\r\n"
                       "\"he said \"\"hi\"\"\",,\n"
                       "\n"
                       ",\"\",last");
    csv_reader *r = csv_open(p, ',');
    ASSERT(r != NULL);
    char **f;
    int n;
    ASSERT_EQ(csv_next(r, &f, &n), 1);
    ASSERT_EQ(n, 3);
    ASSERT_STR_EQ(f[2], "c");
    ASSERT_EQ(csv_line(r), 1);
    ASSERT_EQ(csv_next(r, &f, &n), 1);
    ASSERT_EQ(n, 3);
    ASSERT_STR_EQ(f[0], "1");
    ASSERT_STR_EQ(f[1], "x,y");
    ASSERT_STR_EQ(f[2], "3");
    ASSERT_EQ(csv_line(r), 2);
    ASSERT_EQ(csv_next(r, &f, &n), 1);
    ASSERT_EQ(csv_line(r), 4);
    ASSERT_EQ(n, 3);
    ASSERT_STR_EQ(f[0], "he said \"hi\"");
    ASSERT_STR_EQ(f[1], "");
    ASSERT_STR_EQ(f[2], "");
    ASSERT_EQ(csv_next(r, &f, &n), 1);
    ASSERT_EQ(csv_line(r), 6);
    ASSERT_EQ(n, 3);
    ASSERT_STR_EQ(f[0], "");
    ASSERT_STR_EQ(f[1], "");
    ASSERT_STR_EQ(f[2], "last");
    ASSERT_EQ(csv_next(r, &f, &n), 0);
    ASSERT_EQ(csv_next(r, &f, &n), 0);
    ASSERT_STR_EQ(csv_path(r), p);
    csv_close(r);
    csv_close(NULL);
}

TEST(csv_sep_guess)
{
    const char *p = tmp_path("a.tsv");
    test_write_file(p, "s\ti,x\tt\n1\t2,3\t4\n");
    csv_reader *r = csv_open(p, 0);
    ASSERT(r != NULL);
    ASSERT_EQ(csv_sep(r), '\t');
    char **f;
    int n;
    ASSERT_EQ(csv_next(r, &f, &n), 1);
    ASSERT_EQ(n, 3);
    ASSERT_STR_EQ(f[1], "i,x");
    csv_close(r);
    const char *q = tmp_path("b.csv");
    test_write_file(q, "a,b\n1\t2,3\n");
    r = csv_open(q, 0);
    ASSERT(r != NULL);
    ASSERT_EQ(csv_sep(r), ',');
    csv_close(r);
    const char *e = tmp_path("empty.csv");
    test_write_file(e, "");
    r = csv_open(e, 0);
    ASSERT(r != NULL);
    ASSERT_EQ(csv_next(r, &f, &n), 0);
    csv_close(r);
}

TEST(csv_gzip_matches_plain)
{
    /* Many rows so that rows straddle buffer refills, compressed and plain. */
    size_t cap = 4u << 20, len = 0;
    char *text = malloc(cap);
    ASSERT(text != NULL);
    len += (size_t)snprintf(text + len, cap - len, "id,val\n");
    for (int i = 0; i < 100000; i++)
        len += (size_t)snprintf(text + len, cap - len, "%d,%lld\n", i, (long long)i * 1000003LL);
    const char *pz = tmp_path("c.csv.gz"), *pp = tmp_path("c.csv");
    write_gz(pz, text, len);
    FILE *fp = fopen(pp, "wb");
    ASSERT(fp != NULL);
    ASSERT_EQ(fwrite(text, 1, len, fp), len);
    fclose(fp);
    free(text);
    for (int k = 0; k < 2; k++) {
        csv_reader *r = csv_open(k ? pz : pp, 0);
        ASSERT(r != NULL);
        char **f;
        int n, rc;
        ASSERT_EQ(csv_next(r, &f, &n), 1);
        int64_t rows = 0, sum = 0;
        while ((rc = csv_next(r, &f, &n)) > 0) {
            int64_t a, b;
            ASSERT_EQ(n, 2);
            ASSERT_OK(csv_parse_i64(f[0], &a));
            ASSERT_OK(csv_parse_i64(f[1], &b));
            ASSERT_EQ(a, rows);
            ASSERT_EQ(b, a * 1000003LL);
            ASSERT_EQ(csv_line(r), rows + 2);
            sum += a;
            rows++;
        }
        ASSERT_EQ(rc, 0);
        ASSERT_EQ(rows, 100000);
        ASSERT_EQ(sum, 99999LL * 100000 / 2);
        csv_close(r);
    }
}

TEST(csv_long_lines)
{
    /* A 600 KiB row (accepted, larger than the initial buffer), then a 2 MiB row (refused). */
    size_t big = 600u << 10;
    char *text = malloc(big + 64);
    ASSERT(text != NULL);
    memcpy(text, "h\n", 2);
    memset(text + 2, 'x', big);
    memcpy(text + 2 + big, "\nz\n", 4);
    const char *p = tmp_path("long.csv");
    test_write_file(p, text);
    free(text);
    csv_reader *r = csv_open(p, ',');
    ASSERT(r != NULL);
    char **f;
    int n;
    ASSERT_EQ(csv_next(r, &f, &n), 1);
    ASSERT_EQ(csv_next(r, &f, &n), 1);
    ASSERT_EQ(strlen(f[0]), big);
    ASSERT_EQ(csv_next(r, &f, &n), 1);
    ASSERT_STR_EQ(f[0], "z");
    ASSERT_EQ(csv_line(r), 3);
    ASSERT_EQ(csv_next(r, &f, &n), 0);
    csv_close(r);

    size_t huge = 2u << 20;
    text = malloc(huge + 64);
    ASSERT(text != NULL);
    memcpy(text, "h\nok\n", 5);
    memset(text + 5, 'y', huge);
    memcpy(text + 5 + huge, "\n", 2);
    p = tmp_path("huge.csv");
    test_write_file(p, text);
    free(text);
    expect_format_error(p, 0, 2, "huge.csv:3:", "longer than");
}

TEST(csv_errors_name_line)
{
    const char *p = tmp_path("bad.csv");
    test_write_file(p, "a,b\n1,2\n3,\"unterminated\n4,5\n");
    expect_format_error(p, ',', 2, "bad.csv:3:", "unterminated");
    test_write_file(p, "a,b\n\"x\"y,2\n");
    expect_format_error(p, ',', 1, "bad.csv:2:", NULL);

    ASSERT(csv_open(tmp_path("missing.csv"), ',') == NULL);
    ASSERT_CONTAINS(rc_errmsg(), "missing.csv");
}

TEST(csv_truncated_gzip)
{
    size_t cap = 1u << 20, len = 0;
    char *text = malloc(cap);
    ASSERT(text != NULL);
    for (int i = 0; i < 50000; i++) len += (size_t)snprintf(text + len, cap - len, "%d,%d\n", i, i * 7);
    const char *pz = tmp_path("t.csv.gz");
    write_gz(pz, text, len);
    free(text);
    /* Cut the compressed file in half. */
    FILE *fp = fopen(pz, "rb");
    ASSERT(fp != NULL);
    char *z = malloc(cap);
    size_t zl = fread(z, 1, cap, fp);
    fclose(fp);
    fp = fopen(pz, "wb");
    ASSERT(fp != NULL);
    fwrite(z, 1, zl / 2, fp);
    fclose(fp);
    free(z);
    csv_reader *r = csv_open(pz, ',');
    ASSERT(r != NULL);
    char **f;
    int n, rc;
    while ((rc = csv_next(r, &f, &n)) > 0) {
    }
    ASSERT(rc < 0);
    ASSERT_CONTAINS(rc_errmsg(), "t.csv.gz:");
    csv_close(r);
}

TEST(csv_parse_numbers)
{
    int64_t v;
    double d;
    ASSERT_OK(csv_parse_i64("1506825423271737", &v));
    ASSERT_EQ(v, 1506825423271737LL);
    ASSERT_OK(csv_parse_i64(" -42 ", &v));
    ASSERT_EQ(v, -42);
    ASSERT_OK(csv_parse_i64("9223372036854775807", &v));
    ASSERT_EQ(v, INT64_MAX);
    ASSERT_OK(csv_parse_i64("-9223372036854775808", &v));
    ASSERT(v == INT64_MIN);
    ASSERT_RC(csv_parse_i64("9223372036854775808", &v), RC_EFORMAT);
    ASSERT_RC(csv_parse_i64("", &v), RC_EFORMAT);
    ASSERT_RC(csv_parse_i64("12a", &v), RC_EFORMAT);
    ASSERT_RC(csv_parse_i64("1.5", &v), RC_EFORMAT);
    ASSERT_RC(csv_parse_i64("-", &v), RC_EFORMAT);
    ASSERT_OK(csv_parse_double("2.5e3", &d));
    ASSERT_NEAR(d, 2500.0, 0);
    ASSERT_OK(csv_parse_double(" 7 ", &d));
    ASSERT_NEAR(d, 7.0, 0);
    ASSERT_RC(csv_parse_double("", &d), RC_EFORMAT);
    ASSERT_RC(csv_parse_double("x", &d), RC_EFORMAT);
    ASSERT_RC(csv_parse_double("1e999", &d), RC_EFORMAT);
    ASSERT_RC(csv_parse_double("nan", &d), RC_EFORMAT);
    ASSERT_RC(csv_parse_double("3 4", &d), RC_EFORMAT);
}

/* csv_open_rc returns the code that csv_open can only put in its message: a missing file is
 * RC_ENOTFOUND, a folder given as the file is RC_EIO, both naming the path. sess_load passes the code
 * on (it used to guess it from the English text of the message). */
TEST(csv_open_rc_codes)
{
    csv_reader *r = (csv_reader *)1;
    ASSERT_RC(csv_open_rc(&r, tmp_path("missing.csv"), ','), RC_ENOTFOUND);
    ASSERT(r == NULL);
    ASSERT_CONTAINS(rc_errmsg(), "missing.csv");
    ASSERT_RC(csv_open_rc(&r, test_tmpdir(), 0), RC_EIO); /* reading a folder fails at the first line */
    ASSERT(r == NULL);
    ASSERT_CONTAINS(rc_errmsg(), test_tmpdir());
    char *p = tmp_path("ok.csv");
    test_write_file(p, "a,b\n1,2\n");
    ASSERT_OK(csv_open_rc(&r, p, 0));
    char **f;
    int n;
    ASSERT_EQ(csv_next(r, &f, &n), 1);
    ASSERT_EQ(n, 2);
    csv_close(r);
    sess_opts o;
    sess_opts_default(&o);
    o.verbose = 0;
    sess_data d;
    ASSERT_RC(sess_load(&d, tmp_path("missing.csv"), &o), RC_ENOTFOUND);
}

/* A NUL byte would cut its field short without a word: it is refused with file, line and column. */
TEST(csv_nul_byte_refused)
{
    char *p = tmp_path("nul.csv");
    FILE *f = fopen(p, "wb");
    ASSERT(f != NULL);
    fwrite("a,b\nx,y\nab\0c,d\n", 1, 15, f);
    fclose(f);
    expect_format_error(p, ',', 2, "nul.csv:3: NUL byte at column 3", NULL);
}
