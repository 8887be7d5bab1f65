/* tests/test_fault.c - recd under injected faults (issue 9), through the LD_PRELOAD shim
 * tests/fault/faultinj.c (built next to the recd binary as libfaultinj.so; see its header for the
 * RECD_FAULT spec): a full disk, a failing fsync or rename while the trainer publishes a snapshot; a
 * snapshot whose map LMDB cannot make, or that LMDB rejects, at load; allocation failures inside requests
 * of a running server. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <lmdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/test_server_util.h"
#include "tests/testlib.h"

/* Path of libfaultinj.so: $RECD_FAULTINJ, else next to the recd binary under test. */
static const char *faultlib(void)
{
    static char path[4096];
    const char *env = getenv("RECD_FAULTINJ");
    if (env && *env) snprintf(path, sizeof path, "%s", env);
    else {
        snprintf(path, sizeof path, "%s", test_recd_bin());
        char *slash = strrchr(path, '/');
        snprintf(slash ? slash + 1 : path, sizeof path - (size_t)(slash ? slash + 1 - path : 0), "libfaultinj.so");
    }
    if (access(path, R_OK) != 0) FAIL("no fault-injection shim %s (make builds it with the tests)", path);
    return path;
}

/* Environment prefix for a shell command run under the shim. ASan must not insist on coming first. */
static const char *preload_env(char *buf, size_t cap)
{
    const char *asan = getenv("ASAN_OPTIONS");
    snprintf(buf, cap, "LD_PRELOAD='%s' ASAN_OPTIONS='%s%sverify_asan_link_order=0'", faultlib(), asan ? asan : "",
             asan && *asan ? ":" : "");
    return buf;
}

/* ---- a. the trainer publishing under a full disk, failing fsync, failing rename ---- */

/* A tiny click file and GRU4Rec config in the temp dir. */
static void train_inputs(char *data, char *cfg, size_t cap)
{
    char out[4096];
    snprintf(data, cap, "%s/clicks.tsv", test_tmpdir());
    snprintf(cfg, cap, "%s/g.json", test_tmpdir());
    int st = test_run(out, sizeof out, "%s synth sessions --out %s --sessions 200 --items 50 --days 2 2>&1",
                      test_recd_bin(), data);
    if (st != 0) FAIL("synth exited %d: %s", st, out);
    test_write_file(cfg, "{\"layers\": [8], \"batch_size\": 8, \"n_sample\": 16, \"sample_cache\": 1000}\n");
}

/* Train into ROOT (test_tmpdir()/snaps) with RECD_FAULT=spec; output in out; exit status. */
static int train_with(const char *spec, const char *report, char *out, size_t cap)
{
    char data[1024], cfg[1024], env[8192];
    snprintf(data, sizeof data, "%s/clicks.tsv", test_tmpdir());
    snprintf(cfg, sizeof cfg, "%s/g.json", test_tmpdir());
    return test_run(out, cap,
                    "RECD_FAULT='%s' RECD_FAULT_REPORT='%s' %s %s train gru4rec -c %s --data %s --epochs 1 "
                    "--out %s/snaps --quiet 2>&1",
                    spec, report ? report : "", preload_env(env, sizeof env), test_recd_bin(), cfg, data,
                    test_tmpdir());
}

/* Entries of ROOT/gru4rec (besides . and ..), space-separated, into buf. */
static const char *model_dir_entries(char *buf, size_t cap)
{
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/snaps/gru4rec", test_tmpdir());
    buf[0] = '\0';
    DIR *d = opendir(dir);
    if (!d) return buf;
    struct dirent *e;
    size_t o = 0;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            o += (size_t)snprintf(buf + o, o < cap ? cap - o : 0, "%s ", e->d_name);
    closedir(d);
    return buf;
}

/* The calls the trainer makes on the snapshot's files (matching path .tmp-): write, fsync, rename. */
static void count_calls(unsigned long *writes, unsigned long *fsyncs, unsigned long *renames)
{
    char out[8192], report[1200];
    snprintf(report, sizeof report, "%s/report", test_tmpdir());
    int st = train_with("path=/gru4rec/.tmp-", report, out, sizeof out);
    if (st != 0) FAIL("train without faults exited %d: %s", st, out);
    char text[4096];
    test_run(text, sizeof text, "cat %s", report);
    if (sscanf(text, "write=%lu fsync=%lu rename=%lu", writes, fsyncs, renames) != 3)
        FAIL("bad report: %s", text);
    char ents[4096];
    ASSERT_STR_EQ(model_dir_entries(ents, sizeof ents), "1 ");
    /* start again from an empty root */
    test_run(out, sizeof out, "chmod -R u+w %s/snaps && rm -rf %s/snaps", test_tmpdir(), test_tmpdir());
}

/* Train with spec: fails, names the snapshot's file, publishes nothing, leaves no .tmp-* folder. */
static void expect_publish_fails(const char *spec, const char *op, unsigned long nth)
{
    char out[8192], ents[4096], want[128];
    int st = train_with(spec, NULL, out, sizeof out);
    if (st == 0) FAIL("%s: train exited 0: %s", spec, out);
    snprintf(want, sizeof want, "faultinj: %s call #%lu fails", op, nth);
    ASSERT_CONTAINS(out, want); /* the fault did happen */
    if (!strstr(out, "snaps/gru4rec/.tmp-1")) FAIL("%s: the error does not name the file: %s", spec, out);
    if (model_dir_entries(ents, sizeof ents)[0]) FAIL("%s: left in the model folder: %s (output: %s)", spec, ents, out);
}

TEST_TIMEOUT(fault_publish_disk_full, 180)
{
    char data[1024], cfg[1024];
    train_inputs(data, cfg, sizeof data);
    unsigned long W, F, R;
    count_calls(&W, &F, &R);
    ASSERT(W >= 6);
    /* a full disk from the Nth write on (N = the first, ..., the last); and one lost write */
    unsigned long ns[] = {1, 2, 3, W / 3, W / 2, W - 2, W - 1, W};
    char spec[128];
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        snprintf(spec, sizeof spec, "path=/gru4rec/.tmp-,write:%lu+", ns[i]);
        expect_publish_fails(spec, "write", ns[i]);
    }
    snprintf(spec, sizeof spec, "path=/gru4rec/.tmp-,write:%lu", W / 2);
    expect_publish_fails(spec, "write", W / 2);
}

TEST_TIMEOUT(fault_publish_fsync_and_rename_fail, 180)
{
    char data[1024], cfg[1024];
    train_inputs(data, cfg, sizeof data);
    unsigned long W, F, R;
    count_calls(&W, &F, &R);
    ASSERT(F >= 2); /* fdatasync of data.mdb by LMDB, fsync of data.mdb and of the folder by recd */
    ASSERT_EQ(R, 1);
    char spec[128];
    for (unsigned long n = 1; n <= F; n++) {
        snprintf(spec, sizeof spec, "path=/gru4rec/.tmp-,fsync:%lu", n);
        expect_publish_fails(spec, "fsync", n);
    }
    expect_publish_fails("path=/gru4rec/.tmp-,rename:1", "rename", 1);
    /* and with nothing failing, version 1 is published read-only */
    char out[8192], ents[4096];
    int st = train_with("path=/gru4rec/.tmp-", NULL, out, sizeof out);
    if (st != 0) FAIL("train exited %d: %s", st, out);
    ASSERT_STR_EQ(model_dir_entries(ents, sizeof ents), "1 ");
    char p[1200];
    struct stat sb;
    snprintf(p, sizeof p, "%s/snaps/gru4rec/1/data.mdb", test_tmpdir());
    ASSERT_EQ(stat(p, &sb), 0);
    ASSERT_EQ(sb.st_mode & 07777, 0444);
    snprintf(p, sizeof p, "%s/snaps/gru4rec/1", test_tmpdir());
    ASSERT_EQ(stat(p, &sb), 0);
    ASSERT_EQ(sb.st_mode & 07777, 0555);
}

/* ---- b. LMDB cannot map (or rejects) a new version: refused, the old one keeps serving ---- */

static const char *last_error(const tsrv *s, char *buf, size_t cap)
{
    tresp r;
    ASSERT_EQ(tsrv_http(s, "GET", "/v1/models", NULL, 0, NULL, &r), 0);
    const char *e = tsrv_jstr(json_array_get(json_object_get(r.json, "models"), 0), "last_error");
    snprintf(buf, cap, "%s", e ? e : "");
    tresp_free(&r);
    return buf;
}

/* Start recd serve under the shim (environment of the server process only). */
static void start_under_shim(tsrv *s, const char *spec, const char *spec_file, int wait_ready)
{
    const char *asan = getenv("ASAN_OPTIONS");
    char asan_opts[1024];
    snprintf(asan_opts, sizeof asan_opts, "%s%sverify_asan_link_order=0", asan ? asan : "", asan && *asan ? ":" : "");
    char *saved_asan = asan ? strdup(asan) : NULL;
    setenv("LD_PRELOAD", faultlib(), 1);
    setenv("ASAN_OPTIONS", asan_opts, 1);
    if (spec) setenv("RECD_FAULT", spec, 1);
    if (spec_file) setenv("RECD_FAULT_FILE", spec_file, 1);
    tsrv_start(s, "", wait_ready);
    unsetenv("LD_PRELOAD");
    unsetenv("RECD_FAULT");
    unsetenv("RECD_FAULT_FILE");
    if (saved_asan) setenv("ASAN_OPTIONS", saved_asan, 1);
    else unsetenv("ASAN_OPTIONS");
    free(saved_asan);
}

TEST(fault_load_map_fails)
{
    tsrv s;
    /* every mmap of version 2's data.mdb after the first (recd's own structure check) fails: LMDB's
     * mdb_env_open cannot map the file */
    start_under_shim(&s, "path=/gru4rec/2/data.mdb,mmap:2+", NULL, 0);
    ASSERT_EQ(tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 1), 1);
    tsrv_wait_version(&s, "1");
    ASSERT_EQ(tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 2), 2);
    ASSERT_EQ(tsrv_wait_metric(&s, TSRV_REFUSED, 1, 20000), 1);
    char err[1024], out[65536];
    ASSERT_CONTAINS(last_error(&s, err, sizeof err), "LMDB");
    ASSERT_CONTAINS(err, "gru4rec/2");
    test_run(out, sizeof out, "cat %s", s.log);
    ASSERT_CONTAINS(out, "faultinj: mmap call #2 fails");
    tsrv_expect_next_from(&s, "1");
    tsrv_wait_version(&s, "1"); /* /readyz 200 */
    ASSERT_EQ(tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 3), 3);
    tsrv_wait_version(&s, "3");
    tsrv_expect_next_from(&s, "3");
    ASSERT_EQ(tsrv_stop(&s), 0);
}

TEST(fault_load_lmdb_rejects)
{
    tsrv s;
    tsrv_start(&s, "", 0);
    ASSERT_EQ(tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 1), 1);
    tsrv_wait_version(&s, "1");
    /* version 2: a sound LMDB file (it passes recd's structure check) without the tensors database */
    char tmp[1200], final[1200];
    snprintf(tmp, sizeof tmp, "%s/gru4rec/.tmp-2", s.root);
    snprintf(final, sizeof final, "%s/gru4rec/2", s.root);
    ASSERT_EQ(mkdir(tmp, 0755), 0);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ASSERT_EQ(mdb_env_create(&env), 0);
    ASSERT_EQ(mdb_env_set_maxdbs(env, 4), 0);
    ASSERT_EQ(mdb_env_open(env, tmp, MDB_NOLOCK, 0644), 0);
    ASSERT_EQ(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ASSERT_EQ(mdb_dbi_open(txn, "meta", MDB_CREATE, &dbi), 0);
    const char *meta = "{\"format_version\":1,\"model\":\"gru4rec\",\"version\":2,\"tensors\":{}}";
    MDB_val k = {4, (void *)"meta"}, v = {strlen(meta), (void *)meta};
    ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
    ASSERT_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    ASSERT_EQ(rename(tmp, final), 0);
    ASSERT_EQ(tsrv_wait_metric(&s, TSRV_REFUSED, 1, 20000), 1);
    char err[1024];
    ASSERT_CONTAINS(last_error(&s, err, sizeof err), "tensors");
    tsrv_expect_next_from(&s, "1");
    tsrv_wait_version(&s, "1");
    ASSERT_EQ(tsrv_stop(&s), 0);
}

/* ---- c. allocation failures inside requests ---- */

/* A minimal HTTP/1.1 client on one socket, to see every header and to keep a connection alive. */
typedef struct hc {
    int fd;
    int port;
} hc;

typedef struct hresp {
    int status; /* 0: the connection failed or was dropped */
    char head[8192];
    char body[65536];
    size_t body_len;
} hresp;

static int hc_connect(hc *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) return -1;
    struct timeval tv = {20, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)c->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

static void hc_close(hc *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

/* One request on c (connecting first when closed). The connection is closed after a failure or when
 * the answer says "Connection: close". */
static void hc_request(hc *c, const char *method, const char *path, const char *body, hresp *r)
{
    memset(r, 0, sizeof *r);
    if (c->fd < 0 && hc_connect(c) != 0) return;
    char req[4096];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, path, body ? strlen(body) : 0, body ? body : "");
    if (send(c->fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        hc_close(c);
        return;
    }
    char buf[sizeof r->head + sizeof r->body];
    size_t got = 0;
    char *eoh = NULL;
    while (!eoh) {
        ssize_t k = recv(c->fd, buf + got, sizeof buf - 1 - got, 0);
        if (k <= 0) {
            hc_close(c);
            return;
        }
        got += (size_t)k;
        buf[got] = '\0';
        eoh = strstr(buf, "\r\n\r\n");
        if (!eoh && got >= sizeof r->head - 1) FAIL("answer head too long");
    }
    size_t hl = (size_t)(eoh - buf) + 4;
    memcpy(r->head, buf, hl);
    r->head[hl] = '\0';
    const char *cl = strcasestr(r->head, "\r\nContent-Length:");
    size_t want = cl ? strtoul(cl + 17, NULL, 10) : 0;
    if (want >= sizeof r->body) FAIL("answer body too long");
    while (got - hl < want) {
        ssize_t k = recv(c->fd, buf + got, sizeof buf - 1 - got, 0);
        if (k <= 0) {
            hc_close(c);
            return;
        }
        got += (size_t)k;
    }
    memcpy(r->body, buf + hl, want);
    r->body[want] = '\0';
    r->body_len = want;
    if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1) r->status = -1;
    if (strcasestr(r->head, "\r\nConnection: close")) hc_close(c);
}

struct tally {
    int ok, unavailable, dropped;
};

/* An answer is a proper answer, a 503 problem+json with Retry-After, or a dropped connection. */
static void check_answer(const hresp *r, const char *what, int n, struct tally *t)
{
    if (r->status == 0) {
        t->dropped++;
        return;
    }
    json_error_t e;
    json_t *j = json_loadb(r->body, r->body_len, 0, &e);
    if (r->status == 200 && j && json_is_object(j)) {
        t->ok++;
    } else if (r->status == 503 && j && strcasestr(r->head, "\r\nContent-Type: application/problem+json") &&
               strcasestr(r->head, "\r\nRetry-After:")) {
        t->unavailable++;
    } else {
        FAIL("malloc #%d failing, %s answered: %s%s", n, what, r->head, r->body);
    }
    json_decref(j);
}

static void send_signal_and_wait_ack(const tsrv *s, const char *spec_file, const char *spec, int gen)
{
    test_write_file(spec_file, spec);
    ASSERT_EQ(kill(s->pid, SIGUSR2), 0);
    char ack[1200], text[64];
    snprintf(ack, sizeof ack, "%s.ack", spec_file);
    for (int i = 0; i < 2000; i++) {
        FILE *f = fopen(ack, "r");
        int g = 0;
        if (f) {
            if (fgets(text, sizeof text, f)) g = atoi(text);
            fclose(f);
        }
        if (g >= gen) return;
        usleep(10000);
    }
    FAIL("the shim never acknowledged arming %d", gen);
}

static void server_alive(tsrv *s, int n)
{
    int st;
    if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
        char out[16384];
        test_run(out, sizeof out, "tail -c 3000 %s", s->log);
        s->pid = 0;
        FAIL("malloc #%d failing: the server died (%s %d): %s", n, WIFSIGNALED(st) ? "signal" : "exit",
             WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), out);
    }
}

TEST_TIMEOUT(fault_request_malloc, 240)
{
    char root[1024], spec_file[1200];
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir());
    snprintf(spec_file, sizeof spec_file, "%s/fault.spec", test_tmpdir());
    ASSERT_EQ(tsrv_make_snapshot(root, "gru4rec", 30, 8, 1), 1);
    test_write_file(spec_file, "off");
    tsrv s;
    start_under_shim(&s, "off", spec_file, 1);
    hc keep = {-1, s.port};
    struct tally t = {0, 0, 0};
    int gen = 0;
    const int max_n = 80;
    for (int n = 1; n <= max_n; n++) {
        /* the nth allocation on a libmicrohttpd thread (they handle the requests) fails, once */
        char spec[64];
        snprintf(spec, sizeof spec, "malloc:%d,thread=MHD", n);
        send_signal_and_wait_ack(&s, spec_file, spec, ++gen);
        hresp r;
        char body[128];
        hc fresh = {-1, s.port};
        hc_request(&fresh, "POST", "/v1/next", "{\"items\":[\"i1\",\"i2\"],\"k\":5}", &r);
        check_answer(&r, "POST /v1/next (new connection)", n, &t);
        hc_close(&fresh);
        hc_request(&fresh, "GET", "/v1/models", NULL, &r);
        check_answer(&r, "GET /v1/models (new connection)", n, &t);
        hc_close(&fresh);
        /* again on the kept-alive connection (re-armed: the nth allocation counts afresh) */
        send_signal_and_wait_ack(&s, spec_file, spec, ++gen);
        snprintf(body, sizeof body, "{\"session_id\":\"s%d\",\"item_id\":\"i%d\",\"k\":5}", n % 7, n % 30);
        hc_request(&keep, "POST", "/v1/next", body, &r);
        check_answer(&r, "POST /v1/next (kept-alive connection)", n, &t);
        hc_request(&keep, "GET", "/v1/models", NULL, &r);
        check_answer(&r, "GET /v1/models (kept-alive connection)", n, &t);
        server_alive(&s, n);
    }
    send_signal_and_wait_ack(&s, spec_file, "off", ++gen);
    char out[65536];
    test_run(out, sizeof out, "grep -c 'faultinj: malloc call' %s", s.log);
    ASSERT(atoi(out) >= max_n); /* the faults did happen */
    /* disarmed: normal answers on new and kept-alive connections */
    for (int i = 0; i < 5; i++) {
        hresp r;
        hc fresh = {-1, s.port};
        hc_request(&fresh, "POST", "/v1/next", "{\"items\":[\"i1\"],\"k\":3}", &r);
        ASSERT_EQ(r.status, 200);
        hc_close(&fresh);
        hc_request(&keep, "POST", "/v1/next", "{\"items\":[\"i2\"],\"k\":3}", &r);
        ASSERT_EQ(r.status, 200);
        hc_request(&keep, "GET", "/v1/models", NULL, &r);
        ASSERT_EQ(r.status, 200);
    }
    hc_close(&keep);
    tsrv_wait_version(&s, "1");
    fprintf(stderr, "    answers under failing mallocs: %d ok, %d 503, %d dropped\n", t.ok, t.unavailable, t.dropped);
    /* out of memory in a request answers 503 problem+json with Retry-After (at least once) */
    ASSERT(t.unavailable >= 1);
    ASSERT_EQ(tsrv_stop(&s), 0);
}
