/* fuzz/fuzz_http.c - libFuzzer target: the real server (server_open + http_start, in process, on a
 * loopback port) fed a sequence of HTTP requests on one keep-alive TCP connection per input.
 *
 * Build: make fuzz (clang), then run e.g.
 *     build-fuzz/bin/fuzz_http -max_total_time=180 -max_len=4096 -timeout=10 CORPUS_DIR fuzz/corpus/fuzz_http
 * Set-up (once): a tiny gru4rec and a tiny widedeep snapshot in a temporary folder, the server opened
 * on them with an admin token, a CORS origin, 2 HTTP threads, a small session store and micro-batching
 * on (so /v1/next suspends and resumes connections), models loaded synchronously.
 *
 * Input layout: byte 0 is the connection mode (bit 0: wait for each answer before sending the next
 * request, else pipeline everything; bit 1: end with a `GET /healthz` + `Connection: close`
 * terminator so the server closes at once). Then records, each:
 *   byte A  A >= 0xF0: a RAW record, its body is sent verbatim (no request line, no headers). Else
 *           bits 0-4 pick a path of paths[] (every route of the table, model names known and unknown,
 *           query strings, near misses, odd targets), bits 5-7 a body template (0: the body bytes as
 *           they are; 1-7: a valid /v1/rank body for a /v1/rank path, else a /v1/next one, with the
 *           body bytes spliced into one of its values, so that random inputs get past validation)
 *   byte B  method (B % N_METHODS of methods[], OPTIONS/HEAD/PUT/junk included); bits 5-7 the
 *           version ("HTTP/1.1", "HTTP/1.0", none, "HTTP/2", "HTTP/1.1 " with a space, lowercase)
 *   byte C  headers: bits 0-1 Content-Type (none, application/json, with charset, text/plain),
 *           bits 2-3 Authorization (none, the right token, a wrong one, not Bearer), bits 4-5 Origin
 *           (none, allowed, other, "null"), bit 6 X-Request-Id (a valid one, or an invalid long one when
 *           bit 7 is set too), bit 7 alone Connection: close
 *   byte D  framing: D % 10: Content-Length right, missing, one short, one long (the next request
 *           is swallowed as body), duplicated same, duplicated different, Transfer-Encoding chunked,
 *           CL + chunked, CL huge, CL junk; bit 4: Expect: 100-continue; bit 5: Access-Control-Request-
 *           Method (a preflight with OPTIONS); bit 6: a 300-byte header; bit 7: header line folded
 *   bytes L0 L1  body length (little endian, cut to what is left), then the body
 * Everything goes over one connection to 127.0.0.1:port (RST on close: no TIME_WAIT pile-up). Answers
 * are read until the server closes or the expected number of answers arrived; after 20 ms without a
 * byte the client half-closes (the server sees the end of the stream, as when a client gives up on a
 * request it sent short) and waits for the close at most 200 ms more. An exchange that stalls even so
 * is followed by a fresh GET /healthz, which must be answered within 5 s or the target aborts (hang).
 * Every answer must start "HTTP/1.x NNN " and be framed by its Content-Length (abort otherwise). A
 * sanitizer report on any server thread is a crash found.
 * FUZZ_HTTP_TRACE=1 prints every exchange (bytes sent and received); FUZZ_HTTP_LOG=debug the server's log.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/idmap.h"
#include "core/log.h"
#include "models/features.h"
#include "models/gru4rec.h"
#include "models/widedeep.h"
#include "server/http.h"
#include "server/server.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TOKEN "fuzz-admin-token"
#define SILENCE_MS 200 /* the longest wait for a byte */
#define QUIET_MS 20    /* then the client half-closes (the server sees EOF) and waits SILENCE_MS more */
#define MAX_RECORDS 24
#define OUT_CAP (256 * 1024)
#define IN_CAP (1024 * 1024)

static server srv;
static int port;
static char root[] = "/tmp/fuzz-http-XXXXXX";

/* ---- snapshots (a copy of tests/test_server_util.c's builder and fuzz/fuzz_rank.c's spec) ---- */

static const char *WD_SPEC =
    "{\"columns\":[\"x\",\"c\",\"h\",\"y\"],\"label\":\"y\",\"label_positive\":[\"1\"],\"features\":["
    "{\"name\":\"x\",\"type\":\"numeric\",\"wide\":true,\"deep\":\"dense\"},"
    "{\"name\":\"xb\",\"type\":\"numeric\",\"column\":\"x\",\"boundaries\":[0,1],\"wide\":true},"
    "{\"name\":\"c\",\"type\":\"categorical\",\"vocab\":[\"a\",\"b\"],\"wide\":true,\"deep\":\"onehot\"},"
    "{\"name\":\"h\",\"type\":\"categorical\",\"hash_buckets\":9,\"wide\":true,\"deep\":\"embed\",\"dim\":2},"
    "{\"name\":\"ch\",\"type\":\"crossed\",\"cross\":[\"c\",\"h\"],\"hash_buckets\":5,\"wide\":true}]}";

__attribute__((noreturn)) static void die(const char *what)
{
    fprintf(stderr, "fuzz_http: %s: %s\n", what, rc_errmsg());
    abort();
}

static void make_gru4rec(int n_items, int H)
{
    idmap *items = idmap_new((size_t)n_items);
    int64_t *counts = malloc((size_t)n_items * sizeof *counts);
    if (!items || !counts) die("out of memory");
    for (int i = 0; i < n_items; i++) {
        char key[32];
        int n = snprintf(key, sizeof key, "i%d", i);
        if (idmap_intern(items, key, (size_t)n) != i) die("idmap");
        counts[i] = 1000 - i;
    }
    gru4rec_hparams hp;
    gru4rec_hparams_default(&hp);
    hp.layers[0] = H;
    gru4rec *m = NULL;
    uint64_t version = 0;
    if (gru4rec_new_random(&m, &hp, items, counts, 7) != RC_OK) die("gru4rec_new_random");
    if (gru4rec_save(m, root, "gru4rec", NULL, &version) != RC_OK) die("gru4rec_save");
    gru4rec_free(m);
    idmap_free(items);
    free(counts);
}

static void make_widedeep(void)
{
    json_t *j = json_loads(WD_SPEC, 0, NULL);
    feat_spec *sp;
    if (!j || feat_spec_from_json(&sp, j) != 0) die("widedeep spec");
    json_decref(j);
    wd_hparams hp;
    memset(&hp, 0, sizeof hp);
    hp.variant = WD_BOTH;
    hp.nhidden = 1;
    hp.hidden[0] = 4;
    hp.seed = 1;
    wd_model *m;
    if (wd_model_new(&m, sp, &hp) != 0 || wd_save(m, root, 1, NULL, NULL) != 0) die("widedeep snapshot");
    wd_model_free(m);
}

static void remove_tree(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz_http: could not remove %s\n", dir);
}

static void cleanup(void)
{
    server_close(&srv);
    remove_tree(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (!mkdtemp(root)) abort();
    log_level = LOG_LVL_OFF;
    make_gru4rec(20, 8);
    make_widedeep();
    unsetenv("RECD_PORT");
    unsetenv("RECD_SNAPSHOTS");
    unsetenv("RECD_ADMIN_TOKEN");
    const char *log = getenv("FUZZ_HTTP_LOG"); /* e.g. FUZZ_HTTP_LOG=debug to see the server's log */
    char *args[] = {"fuzz_http",
                    "--http.bind", "127.0.0.1",
                    "--http.port", "0",
                    "--http.threads", "2",
                    "--http.max_body_bytes", "8192",
                    "--http.cors_origins", "[\"https://shop.example\"]",
                    "--admin_token", TOKEN,
                    "--snapshots.root", root,
                    "--snapshots.models", "[\"gru4rec\",\"widedeep\"]",
                    "--snapshots.watch", "false",
                    "--snapshots.poll_ms", "0",
                    "--snapshots.warm_requests", "1",
                    "--sessions.max", "8",
                    "--sessions.shards", "2",
                    "--sessions.max_seen", "4",
                    "--next.k_max", "50",
                    "--next.max_items", "50",
                    "--batch.max", "4",
                    "--score.int8", "false",
                    "--log_level", log && *log ? (char *)log : "off",
                    NULL};
    int n = (int)(sizeof args / sizeof args[0]) - 1;
    if (server_open(&srv, n, args, NULL) != RC_OK) die("server_open");
    if (server_load_now(&srv) != RC_OK) die("server_load_now");
    if (http_start(&srv) != RC_OK) die("http_start");
    port = http_port(&srv);
    atexit(cleanup);
    return 0;
}

/* ---- the request stream ---- */

static const char *const paths[] = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/models",
    "/v1/models/gru4rec/reload",
    "/v1/models/widedeep/reload",
    "/v1/models/nosuch/reload",
    "/v1/next",
    "/v1/rank",
    "/v1/next?model=widedeep",
    "/v1/rank?k=2&model=gru4rec",
    "/v1/next",
    "/v1/rank",
    "/",
    "/v1/next/",
    "/v1//next",
    "/V1/NEXT",
    "/v1/models/",
    "/v1/models//reload",
    "/v1/models/gru4rec/reload/x",
    "/v1/models/%2e%2e/reload",
    "/v1/models/"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/reload",
    "*",
    "http://127.0.0.1/v1/next",
    "/healthz?x=%zz&&=",
    "/metrics#frag",
    "",
    "/v1/next%00",
};
#define N_PATHS (sizeof paths / sizeof paths[0])

/* Body templates (bits 5-7 of byte A, 1-7): the record's bytes replace the "@". A /v1/rank path takes a
 * rank body, any other path a next body. */
static const char *const rank_templates[] = {
    ("{\"model\":\"widedeep\",\"candidates\":[{\"item_id\":\"a\",\"features\":{\"c\":\"@\",\"x\":1}},"
     "{\"item_id\":\"b\"}],\"k\":2}"),
    "{\"model\":\"widedeep\",\"user_id\":\"u\",\"context\":{\"x\":@},\"candidates\":[{\"item_id\":\"z\"}]}",
    "{\"model\":\"widedeep\",\"candidates\":[{\"item_id\":\"@\"}]}",
    "{\"model\":\"widedeep\",\"candidates\":[{\"item_id\":\"a\"}],@}",
};
static const char *const next_templates[] = {
    "{\"session_id\":\"@\",\"item_id\":\"i1\",\"k\":3}",
    "{\"session_id\":\"s1\",\"item_id\":\"@\",\"exclude_seen\":true}",
    "{\"items\":[\"i1\",\"@\"],\"k\":5,\"exclude_seen\":true}",
    "{\"items\":[\"i2\"],\"model\":\"@\"}",
    "{\"session_id\":\"s2\",\"item_id\":\"i3\",@}",
};

static const char *const methods[] = {"GET",   "POST", "HEAD",  "OPTIONS", "PUT", "DELETE", "PATCH",
                                      "TRACE", "post", "GET /", "",        "POST", "POST", "GET"};
#define N_METHODS (sizeof methods / sizeof methods[0])

static const char *const versions[] = {"HTTP/1.1", "HTTP/1.0", "", "HTTP/2", "HTTP/1.1 ", "http/1.1",
                                       "HTTP/1.1", "HTTP/1.1"};

typedef struct obuf {
    char *p;
    size_t len, cap;
} obuf;

static void ob_add(obuf *b, const void *s, size_t n)
{
    if (b->len + n > b->cap) n = b->cap - b->len;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void ob_str(obuf *b, const char *s)
{
    ob_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void ob_fmt(obuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) ob_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* One record into b. *head is set when the request is a HEAD (its answer has no body). */
static void build_request(obuf *b, uint8_t A, uint8_t B, uint8_t C, uint8_t D, const uint8_t *bytes,
                          size_t nbytes, int *head)
{
    static char tbody[70000];
    const char *path = paths[(A & 31) % N_PATHS], *t = "@";
    if (A >> 5 && strncmp(path, "/v1/rank", 8) == 0)
        t = rank_templates[((A >> 5) - 1) % (sizeof rank_templates / sizeof rank_templates[0])];
    else if (A >> 5)
        t = next_templates[((A >> 5) - 1) % (sizeof next_templates / sizeof next_templates[0])];
    const char *at = strchr(t, '@');
    size_t pre = (size_t)(at - t), post = strlen(at + 1), n = pre + nbytes + post;
    memcpy(tbody, t, pre);
    memcpy(tbody + pre, bytes, nbytes);
    memcpy(tbody + pre + nbytes, at + 1, post);
    const uint8_t *body = (const uint8_t *)tbody;
    const char *method = methods[B % N_METHODS];
    *head = strcmp(method, "HEAD") == 0;
    const char *version = versions[B >> 5];
    ob_fmt(b, "%s %s%s%s\r\n", method, path, *version ? " " : "", version);
    ob_str(b, "Host: 127.0.0.1\r\n");
    static const char *const ctypes[] = {NULL, "application/json", "application/json; charset=utf-8", "text/plain"};
    if (ctypes[C & 3]) ob_fmt(b, "Content-Type: %s\r\n", ctypes[C & 3]);
    static const char *const auths[] = {NULL, "Bearer " TOKEN, "Bearer wrong", "Basic " TOKEN};
    if (auths[(C >> 2) & 3]) ob_fmt(b, "Authorization: %s\r\n", auths[(C >> 2) & 3]);
    static const char *const origins[] = {NULL, "https://shop.example", "https://evil.example", "null"};
    if (origins[(C >> 4) & 3]) ob_fmt(b, "Origin: %s\r\n", origins[(C >> 4) & 3]);
    if ((C & 0xC0) == 0x40) ob_str(b, "X-Request-Id: fuzz-req-1\r\n");
    else if ((C & 0xC0) == 0xC0)
        ob_str(b, "X-Request-Id: \"<bad id with spaces and quotes that is longer than sixty-four bytes>\"\r\n");
    else if (C & 0x80) ob_str(b, "Connection: close\r\n");
    if (D & 0x10) ob_str(b, "Expect: 100-continue\r\n");
    if (D & 0x20) ob_str(b, "Access-Control-Request-Method: POST\r\n");
    if (D & 0x40) {
        ob_str(b, "X-Pad: ");
        for (int i = 0; i < 30; i++)
            ob_str(b, "0123456789");
        ob_str(b, "\r\n");
    }
    if (D & 0x80) ob_str(b, "X-Folded: a\r\n b\r\n");
    int chunked = 0;
    switch (D % 10) {
    case 0: ob_fmt(b, "Content-Length: %zu\r\n", n); break;
    case 1: break;
    case 2: ob_fmt(b, "Content-Length: %zu\r\n", n ? n - 1 : 0); break;
    case 3: ob_fmt(b, "Content-Length: %zu\r\n", n + 1); break;
    case 4: ob_fmt(b, "Content-Length: %zu\r\nContent-Length: %zu\r\n", n, n); break;
    case 5: ob_fmt(b, "Content-Length: %zu\r\nContent-Length: %zu\r\n", n, n + 3); break;
    case 6: ob_str(b, "Transfer-Encoding: chunked\r\n"), chunked = 1; break;
    case 7: ob_fmt(b, "Content-Length: %zu\r\nTransfer-Encoding: chunked\r\n", n), chunked = 1; break;
    case 8: ob_str(b, "Content-Length: 18446744073709551616\r\n"); break;
    default: ob_str(b, "Content-Length: 1e3\r\n"); break;
    }
    ob_str(b, "\r\n");
    if (chunked) {
        /* the body in two chunks (when long enough), then the last chunk */
        size_t h = n / 2;
        if (h) {
            ob_fmt(b, "%zx\r\n", h);
            ob_add(b, body, h);
            ob_str(b, "\r\n");
        }
        if (n - h) {
            ob_fmt(b, "%zx\r\n", n - h);
            ob_add(b, body + h, n - h);
            ob_str(b, "\r\n");
        }
        ob_str(b, "0\r\n\r\n");
    } else {
        ob_add(b, body, n);
    }
}

/* ---- the answers ---- */

static uint64_t now_ms(void)
{
    return clock_mono_ns() / 1000000;
}

static void bad_answer(const char *why, const char *buf, size_t len, size_t at)
{
    size_t from = at > 64 ? at - 64 : 0, to = at + 128 < len ? at + 128 : len;
    fprintf(stderr, "fuzz_http: %s at byte %zu of the answers; around it:\n%.*s\n", why, at, (int)(to - from),
            buf + from);
    abort();
}

static const char *find_mem(const char *h, size_t hn, const char *n)
{
    size_t nn = strlen(n);
    for (size_t i = 0; i + nn <= hn; i++)
        if (memcmp(h + i, n, nn) == 0) return h + i;
    return NULL;
}

/* Header value of name (case-insensitive) in the head [h, h + n), or NULL. */
static const char *header_in(const char *h, size_t n, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    for (const char *p = h; p && p < h + n;) {
        const char *e = find_mem(p, (size_t)(h + n - p), "\r\n");
        if (!e) break;
        if ((size_t)(e - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < e && *v == ' ') v++;
            *vlen = (size_t)(e - v);
            return v;
        }
        p = e + 2;
    }
    return NULL;
}

/* Parse the complete answers in buf[*pos, len): checks each, advances *pos past it, counts the final
 * (non-1xx) ones. head_last: the last request sent was a HEAD (an answer ending at len without its
 * body is then complete). Stops at an incomplete answer. */
static int parse_answers(const char *buf, size_t len, size_t *pos, int head_last)
{
    int finals = 0;
    while (*pos < len) {
        size_t at = *pos, avail = len - at;
        const char *a = buf + at;
        static const char pre[] = "HTTP/1.";
        size_t cmp = avail < 7 ? avail : 7;
        if (memcmp(a, pre, cmp) != 0) bad_answer("an answer that does not start with HTTP/1.", buf, len, at);
        if (avail < 13) return finals;
        if ((a[7] != '1' && a[7] != '0') || a[8] != ' ' || a[9] < '1' || a[9] > '5' || a[10] < '0' || a[10] > '9' ||
            a[11] < '0' || a[11] > '9' || a[12] != ' ')
            bad_answer("a status line that is not \"HTTP/1.x NNN \"", buf, len, at);
        const char *end = find_mem(a, avail, "\r\n\r\n");
        if (!end) return finals;
        size_t hlen = (size_t)(end - a) + 4;
        int status = (a[9] - '0') * 100 + (a[10] - '0') * 10 + (a[11] - '0');
        size_t vlen;
        const char *cl = header_in(a, hlen, "Content-Length", &vlen);
        const char *te = header_in(a, hlen, "Transfer-Encoding", &vlen);
        size_t body = 0;
        if (te) {
            /* chunked: walk the chunks */
            size_t p = hlen;
            for (;;) {
                const char *le = find_mem(a + p, avail - p, "\r\n");
                if (!le) return finals;
                char *x;
                unsigned long long c = strtoull(a + p, &x, 16);
                if (x == a + p) bad_answer("a bad chunk size", buf, len, at + p);
                p = (size_t)(le - a) + 2;
                if (c == 0) {
                    const char *t = find_mem(a + p - 2, avail - p + 2, "\r\n\r\n");
                    if (!t) return finals;
                    p = (size_t)(t - a) + 4;
                    break;
                }
                if (avail - p < c + 2) return finals;
                p += (size_t)c + 2;
            }
            body = p - hlen;
        } else if (cl && status >= 200 && status != 204 && status != 304) {
            char *x;
            unsigned long long n = strtoull(cl, &x, 10);
            if (x == cl) bad_answer("a bad Content-Length", buf, len, at);
            size_t rest = avail - hlen;
            if (rest == 0 && (head_last || n == 0)) body = 0;
            else if (rest >= 7 && memcmp(a + hlen, pre, 7) == 0) body = 0; /* an answer to HEAD */
            else if (rest < n) return finals;
            else body = (size_t)n;
        }
        *pos = at + hlen + body;
        if (status >= 200) finals++;
    }
    return finals;
}

/* ---- the exchange ---- */

static int connect_server(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* Closes with a reset: no TIME_WAIT left behind by hundreds of connections a second. */
static void close_reset(int fd)
{
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

typedef struct conn {
    int fd;
    char *in;
    size_t in_len, parsed;
    int answers, eof;
} conn;

/* Send out[0, len) while reading; then, when want_answers > answers so far, read until they came,
 * EOF, or silence_ms without a byte. head_last as for parse_answers. */
static void exchange(conn *c, const char *out, size_t len, int want_answers, int head_last, int silence_ms)
{
    size_t sent = 0;
    uint64_t last = now_ms();
    while (!c->eof) {
        int writing = sent < len;
        if (!writing && c->answers >= want_answers) break;
        struct pollfd p = {c->fd, (short)(POLLIN | (writing ? POLLOUT : 0)), 0};
        int left = (int)(last + (uint64_t)silence_ms - now_ms());
        if (left <= 0) break;
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            if (c->in_len == IN_CAP) bad_answer("more than 1 MiB of answers", c->in, c->in_len, 0);
            ssize_t n = recv(c->fd, c->in + c->in_len, IN_CAP - c->in_len, 0);
            if (n > 0) {
                c->in_len += (size_t)n;
                c->answers += parse_answers(c->in, c->in_len, &c->parsed, head_last);
                last = now_ms();
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                c->eof = 1;
            }
        }
        if (writing && (p.revents & POLLOUT)) {
            ssize_t n = send(c->fd, out + sent, len - sent, MSG_NOSIGNAL);
            if (n > 0) {
                sent += (size_t)n;
                last = now_ms();
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                c->eof = 1; /* reset by the server: it may close a connection it refuses */
            }
        }
    }
}

/* After a stalled exchange: a fresh connection must get /healthz answered, else the server hangs. */
static void check_alive(void)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    static char in[65536];
    uint64_t t0 = now_ms();
    while (now_ms() - t0 < 5000) {
        conn c = {connect_server(), in, 0, 0, 0, 0};
        if (c.fd < 0) {
            usleep(10000);
            continue;
        }
        exchange(&c, req, sizeof req - 1, 1, 0, SILENCE_MS);
        close_reset(c.fd);
        if (c.answers >= 1) return;
    }
    fprintf(stderr, "fuzz_http: the server did not answer GET /healthz within 5 s after this input (hang)\n");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *out, *in;
    static int trace = -1;
    if (!out && (!(out = malloc(OUT_CAP)) || !(in = malloc(IN_CAP)))) abort();
    if (trace < 0) trace = getenv("FUZZ_HTTP_TRACE") != NULL;
    if (size < 1) return 0;
    int sequential = data[0] & 1, terminator = (data[0] & 2) != 0;
    conn c = {connect_server(), in, 0, 0, 0, 0};
    if (c.fd < 0) {
        check_alive();
        return 0;
    }
    obuf b = {out, 0, OUT_CAP};
    size_t p = 1, flushed = 0;
    int expected = 0, head = 0, stalled = 0;
    for (int rec = 0; rec < MAX_RECORDS && p < size && !c.eof; rec++) {
        uint8_t A = data[p++];
        uint8_t B = p < size ? data[p++] : 0, C = p < size ? data[p++] : 0, D = p < size ? data[p++] : 0;
        size_t n = 0;
        if (p < size) n = data[p++];
        if (p < size) n |= (size_t)data[p++] << 8;
        if (n > size - p) n = size - p;
        const uint8_t *body = data + p;
        p += n;
        if (A >= 0xF0) {
            ob_add(&b, body, n); /* raw: the bytes as they are */
            head = 0;
        } else {
            build_request(&b, A, B, C, D, body, n, &head);
            expected++;
        }
        if (sequential) {
            exchange(&c, b.p + flushed, b.len - flushed, A >= 0xF0 ? c.answers : expected, head, QUIET_MS);
            flushed = b.len;
            if (c.answers < expected) break; /* swallowed as a body, waiting for more, or closed */
        }
    }
    if (terminator && !c.eof && (!sequential || c.answers >= expected)) {
        ob_str(&b, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        expected++;
        head = 0;
    }
    if (!c.eof && (b.len > flushed || c.answers < expected))
        exchange(&c, b.p + flushed, b.len - flushed, terminator ? 1 << 30 : expected, head, QUIET_MS);
    if (!c.eof && c.answers < expected) {
        /* the server waits for more (a body longer than sent, a request cut short): half-close, so
         * that it sees the end of the stream; it must then answer or close, quickly */
        shutdown(c.fd, SHUT_WR);
        exchange(&c, "", 0, 1 << 30, head, SILENCE_MS);
        stalled = !c.eof;
    }
    if (trace)
        fprintf(stderr, "---- sent %zu bytes:\n%.*s\n---- received %zu bytes (%d answers of %d expected%s):\n"
                        "%.*s\n----\n",
                b.len, (int)b.len, b.p, c.in_len, c.answers, expected, c.eof ? ", closed" : "", (int)c.in_len, c.in);
    /* whatever is left unparsed must be the start of an answer */
    parse_answers(c.in, c.in_len, &c.parsed, head);
    close_reset(c.fd);
    if (stalled) check_alive();
    return 0;
}
