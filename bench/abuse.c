/* bench/abuse.c - one attack client against `recd serve` (issue 9: no client can crash, starve or exhaust
 * recd). Raw sockets and poll(2), no dependency; bench/abuse.sh builds it with `cc -O2` and runs every
 * subcommand against a server holding the demo's gru4rec and widedeep models. Each subcommand prints one
 * result line on stdout (details on stderr with ABUSE_VERBOSE=1):
 *
 *   mix HOST PORT N           N requests in random order over 4 keep-alive connections, across every route
 *                             (stateful and stateless /v1/next, /v1/rank, /v1/models, probes, metrics, OPTIONS,
 *                             HEAD, 404, 405, 413, 422, malformed JSON, wrong Content-Type, HTTP/1.0, ...)
 *       -> mix requests=N errors=E statuses=... server_alive=yes|no
 *          (an error: an answer that is not a well-formed HTTP response - or a JSON body that is not an
 *          object - a timeout, or any 5xx)
 *   mutate HOST PORT N        N mutated requests (bytes, headers, lengths, methods, paths, versions, line
 *                             endings, chunked framing, JSON bodies), 32 at a time, each on a fresh or a
 *                             reused connection, answers read with a 2 s timeout
 *       -> mutate requests=N statuses=200:a,400:b,...,closed:c,timeout:t server_alive=yes|no
 *          (closed: the server closed without an answer; timeout: no answer in 2 s, as for a truncated
 *          request the server still waits for; garbage: an answer that is not HTTP)
 *   exhaust HOST PORT ATTACK_ADDR PROBE_ADDR NIDLE NTRICKLE SECONDS
 *                             NIDLE sockets bound to ATTACK_ADDR that send nothing and NTRICKLE that send one
 *                             byte of an endless request every ~2 s, each reopened when the server closes it;
 *                             meanwhile GET /healthz from PROBE_ADDR 10 times a second on new connections
 *       -> exhaust idle=.. trickle=.. probes=P answered_1s=X% p99_ms=Y held=H reopened=R server_alive=..
 *          (p99_ms over every probe, a probe without an answer in 5 s counting as 5000; held: attack
 *          sockets connected, on average over the run - connected as the client sees it: that includes
 *          connections still in the server's accept queue; reopened: attack sockets reopened after the
 *          server closed them)
 *   bigrank HOST PORT N BYTES PID   N keep-alive connections (from 127.0.0.11-18) each send one ~BYTES valid /v1/rank request
 *                             (up to next.max_items candidates, k = all) and stay open; VmRSS of PID
 *       -> bigrank conns=N bytes=B ok=K rss_before_mb= rss_peak_mb= rss_idle_open_mb= rss_after_close_mb=
 *          (peak: highest sample while the requests run and the connections are open; idle_open: 1 s after
 *          the last answer, every connection still open; after_close: 10 s after they all closed)
 *   sessions HOST PORT N PID  N new session ids, one stateful POST /v1/next each, 8 connections
 *       -> sessions n=N ok=K rss_before_mb= rss_after_mb= bytes_per_session=
 *
 * Environment: ABUSE_SEED (default 1), ABUSE_VERBOSE. Exit status 0 when the server answered /healthz at the
 * end, 1 when it did not, 2 on a usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

static int verbose;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "abuse: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

/* ------------------------------------------------------------------ random numbers (xorshift64*) */

static uint64_t rng_s = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    rng_s ^= rng_s >> 12;
    rng_s ^= rng_s << 25;
    rng_s ^= rng_s >> 27;
    return rng_s * 2685821657736338717ull;
}

static int rnd_n(int n) { return n > 0 ? (int)(rnd() % (uint64_t)n) : 0; }
static double rnd_u(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

/* ------------------------------------------------------------------ growable buffer */

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void buf_reserve(buf *b, size_t more)
{
    if (b->n + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + more + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) die("out of memory");
    b->p = p;
    b->cap = cap;
}

static void buf_add(buf *b, const void *d, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->n, d, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void buf_adds(buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

static void buf_fill(buf *b, char c, size_t n)
{
    buf_reserve(b, n);
    memset(b->p + b->n, c, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void buf_free(buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------ connections */

static struct sockaddr_storage srv_addr;
static socklen_t srv_len;
static char srv_host[256];

static void resolve(const char *host, const char *port)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res) die("cannot resolve %s:%s: %s", host, port, gai_strerror(rc));
    memcpy(&srv_addr, res->ai_addr, res->ai_addrlen);
    srv_len = res->ai_addrlen;
    freeaddrinfo(res);
    snprintf(srv_host, sizeof srv_host, "%s", host);
}

/* A non-blocking socket connecting to the server (from bind_addr when not NULL); -1 on failure. */
static int open_conn(const char *bind_addr)
{
    int fd = socket(srv_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind_addr && *bind_addr && srv_addr.ss_family == AF_INET) {
#ifdef IP_BIND_ADDRESS_NO_PORT
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        if (inet_pton(AF_INET, bind_addr, &a.sin_addr) != 1 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            close(fd);
            return -1;
        }
    }
    if (connect(fd, (struct sockaddr *)&srv_addr, srv_len) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Raise RLIMIT_NOFILE to at least want (up to the hard limit). */
static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    if (rl.rlim_cur >= want) return;
    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want)
        fprintf(stderr, "abuse: RLIMIT_NOFILE is %llu, wanted %llu: fewer sockets\n", (unsigned long long)rl.rlim_cur,
                (unsigned long long)want);
}

/* ------------------------------------------------------------------ one request on a slot */

enum { R_CONNFAIL = -1, R_CLOSED = -2, R_TIMEOUT = -3, R_GARBAGE = -4 };
enum { P_IDLE, P_CONNECTING, P_SENDING, P_READING };

/* A connection that runs one request at a time, reused (keep-alive) while the server allows it. */
typedef struct slot {
    int fd, phase;
    const char *bind_addr;
    const char *out; /* the request (not owned) */
    size_t out_len, out_off;
    buf in;
    int head;        /* HEAD request: no body in the answer */
    double t0, deadline;
    int reused;      /* the request went on a connection that had answered before */
    /* result */
    int result;      /* status, or R_* */
    int keep;        /* the server keeps the connection open */
    size_t extra;    /* bytes after the answer */
    size_t body_off, body_len;
    char ctype[96];
    double latency;  /* seconds from start to the whole answer */
} slot;

static void slot_init(slot *s, const char *bind_addr)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->bind_addr = bind_addr;
}

static void slot_close(slot *s)
{
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    s->phase = P_IDLE;
}

static int hdr_is(const char *line, size_t n, const char *name, const char **val, size_t *vn)
{
    size_t ln = strlen(name);
    if (n <= ln || line[ln] != ':' || strncasecmp(line, name, ln) != 0) return 0;
    const char *v = line + ln + 1;
    const char *e = line + n;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
    *val = v;
    *vn = (size_t)(e - v);
    return 1;
}

static int has_token(const char *v, size_t n, const char *tok)
{
    size_t tn = strlen(tok);
    for (size_t i = 0; i + tn <= n; i++)
        if (strncasecmp(v + i, tok, tn) == 0) return 1;
    return 0;
}

/* Parse the answer in s->in: 1 complete (result fields set), 0 needs more bytes, -1 not HTTP, -2 closed
 * after interim answers only. eof: the server closed (an answer without length ends there). */
static int parse_answer(slot *s, int eof)
{
    const char *p = s->in.p;
    size_t n = s->in.n, off = 0;
    for (;;) {
        if (eof && off > 0 && off == n) return -2; /* only interim answers (100 Continue), then closed */
        if (n - off >= 5 && memcmp(p + off, "HTTP/", 5) != 0) return -1;
        if (n - off < 5 && n > off && memcmp(p + off, "HTTP/", n - off) != 0) return -1;
        const char *end = n > off ? memmem(p + off, n - off, "\r\n\r\n", 4) : NULL;
        if (!end) return (n - off > 256 * 1024 || eof) ? -1 : 0;
        size_t hdr_end = (size_t)(end - p) + 4;
        /* status line: HTTP/1.x SSS */
        if (hdr_end - off < 13 || memcmp(p + off, "HTTP/1.", 7) != 0 || (p[off + 7] != '0' && p[off + 7] != '1') ||
            p[off + 8] != ' ')
            return -1;
        int status = 0;
        for (int i = 9; i < 12; i++) {
            char c = p[off + (size_t)i];
            if (c < '0' || c > '9') return -1;
            status = status * 10 + (c - '0');
        }
        if (p[off + 12] != ' ' && p[off + 12] != '\r') return -1;
        int http10 = p[off + 7] == '0';
        long long cl = -1;
        int chunked = 0, close_hdr = 0, keep_hdr = 0;
        s->ctype[0] = '\0';
        const char *line = memchr(p + off, '\n', hdr_end - off) + 1;
        while (line < p + hdr_end - 2) {
            const char *le = memchr(line, '\n', (size_t)(p + hdr_end - line));
            if (!le || le == line || le[-1] != '\r') return -1;
            size_t ln = (size_t)(le - 1 - line);
            if (!memchr(line, ':', ln)) return -1;
            const char *v;
            size_t vn;
            if (hdr_is(line, ln, "Content-Length", &v, &vn)) {
                long long x = 0;
                if (vn == 0 || vn > 15) return -1;
                for (size_t i = 0; i < vn; i++) {
                    if (v[i] < '0' || v[i] > '9') return -1;
                    x = x * 10 + (v[i] - '0');
                }
                if (cl >= 0 && cl != x) return -1;
                cl = x;
            } else if (hdr_is(line, ln, "Transfer-Encoding", &v, &vn)) {
                chunked = has_token(v, vn, "chunked");
            } else if (hdr_is(line, ln, "Connection", &v, &vn)) {
                if (has_token(v, vn, "close")) close_hdr = 1;
                if (has_token(v, vn, "keep-alive")) keep_hdr = 1;
            } else if (hdr_is(line, ln, "Content-Type", &v, &vn)) {
                if (vn >= sizeof s->ctype) vn = sizeof s->ctype - 1;
                memcpy(s->ctype, v, vn);
                s->ctype[vn] = '\0';
            }
            line = le + 1;
        }
        if (status >= 100 && status < 200) { /* interim answer (100 Continue): the real one follows */
            off = hdr_end;
            continue;
        }
        s->result = status;
        s->keep = !close_hdr && (!http10 || keep_hdr);
        s->body_off = hdr_end;
        if (s->head || status == 204 || status == 304) {
            s->body_len = 0;
            s->extra = n - hdr_end;
            return 1;
        }
        if (chunked) {
            size_t q = hdr_end;
            for (;;) {
                const char *le = memmem(p + q, n - q, "\r\n", 2);
                if (!le) return (n - q > 1024 || eof) ? -1 : 0;
                unsigned long long sz = 0;
                const char *h = p + q;
                if (h == le) return -1;
                for (; h < le && *h != ';'; h++) {
                    int d = (*h >= '0' && *h <= '9') ? *h - '0' : (*h >= 'a' && *h <= 'f') ? *h - 'a' + 10
                                                   : (*h >= 'A' && *h <= 'F')               ? *h - 'A' + 10
                                                                                            : -1;
                    if (d < 0 || sz > (1ull << 40)) return -1;
                    sz = sz * 16 + (unsigned long long)d;
                }
                q = (size_t)(le - p) + 2;
                if (sz == 0) {
                    const char *te = memmem(p + q - 2, n - q + 2, "\r\n\r\n", 4);
                    if (!te) return eof ? -1 : 0;
                    s->body_len = q - hdr_end;
                    s->extra = n - ((size_t)(te - p) + 4);
                    return 1;
                }
                if (n - q < sz + 2) return eof ? -1 : 0;
                if (memcmp(p + q + sz, "\r\n", 2) != 0) return -1;
                q += sz + 2;
            }
        }
        if (cl >= 0) {
            if (n - hdr_end < (size_t)cl) return eof ? -1 : 0;
            s->body_len = (size_t)cl;
            s->extra = n - hdr_end - (size_t)cl;
            return 1;
        }
        if (!eof) return 0; /* no length: the body ends when the server closes */
        s->keep = 0;
        s->body_len = n - hdr_end;
        s->extra = 0;
        return 1;
    }
}

/* Start a request on s (connecting first when it has no open connection). 1 when it is already over
 * (could not even connect: s->result = R_CONNFAIL). */
static int slot_start(slot *s, const char *req, size_t len, int head, double timeout)
{
    s->out = req;
    s->out_len = len;
    s->out_off = 0;
    s->in.n = 0;
    s->head = head;
    s->t0 = now_s();
    s->deadline = s->t0 + timeout;
    s->result = 0;
    s->keep = 0;
    s->extra = 0;
    s->body_off = s->body_len = 0;
    s->ctype[0] = '\0';
    s->reused = s->fd >= 0;
    if (s->fd < 0) {
        s->fd = open_conn(s->bind_addr);
        if (s->fd < 0) {
            s->result = R_CONNFAIL;
            s->phase = P_IDLE;
            return 1;
        }
        s->phase = P_CONNECTING;
    } else {
        s->phase = P_SENDING;
    }
    return 0;
}

static short slot_events(const slot *s)
{
    switch (s->phase) {
    case P_CONNECTING: return POLLOUT;
    case P_SENDING: return POLLOUT | POLLIN;
    case P_READING: return POLLIN;
    default: return 0;
    }
}

static int slot_done(slot *s, int result)
{
    if (result != 0) s->result = result;
    s->latency = now_s() - s->t0;
    s->phase = P_IDLE;
    if (s->result < 0 || !s->keep || s->extra) slot_close(s);
    return 1;
}

static int slot_read(slot *s)
{
    for (;;) {
        buf_reserve(&s->in, 16384);
        ssize_t r = recv(s->fd, s->in.p + s->in.n, s->in.cap - s->in.n - 1, 0);
        if (r > 0) {
            s->in.n += (size_t)r;
            s->in.p[s->in.n] = '\0';
            int pr = parse_answer(s, 0);
            if (pr == 1) return slot_done(s, 0);
            if (pr < 0) return slot_done(s, R_GARBAGE);
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (r < 0 && errno == EINTR) continue;
        /* EOF or reset */
        if (s->in.n == 0) return slot_done(s, R_CLOSED);
        int pr = parse_answer(s, 1);
        if (pr == 1) {
            s->keep = 0;
            return slot_done(s, 0);
        }
        return slot_done(s, pr == -2 ? R_CLOSED : R_GARBAGE);
    }
}

/* Progress s after poll reported revents. 1 when the request is over (s->result). */
static int slot_step(slot *s, short revents)
{
    if (s->phase == P_CONNECTING) {
        if (!(revents & (POLLOUT | POLLERR | POLLHUP))) return 0;
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) return slot_done(s, R_CONNFAIL);
        s->phase = P_SENDING;
        revents = POLLOUT;
    }
    if (s->phase == P_SENDING) {
        if (revents & (POLLIN | POLLERR | POLLHUP)) { /* an early answer, or the server closed */
            s->phase = P_READING;
            return slot_read(s);
        }
        while (s->out_off < s->out_len) {
            ssize_t w = send(s->fd, s->out + s->out_off, s->out_len - s->out_off, MSG_NOSIGNAL);
            if (w > 0) {
                s->out_off += (size_t)w;
                continue;
            }
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
            if (w < 0 && errno == EINTR) continue;
            s->phase = P_READING; /* EPIPE/ECONNRESET: read what the server said */
            return slot_read(s);
        }
        s->phase = P_READING;
        return 0;
    }
    if (s->phase == P_READING && (revents & (POLLIN | POLLERR | POLLHUP))) return slot_read(s);
    return 0;
}

/* One request on s, waiting for it (timeout in seconds). Returns s->result. */
static int slot_run(slot *s, const char *req, size_t len, int head, double timeout)
{
    if (slot_start(s, req, len, head, timeout)) return s->result;
    for (;;) {
        double left = s->deadline - now_s();
        if (left <= 0) {
            slot_done(s, R_TIMEOUT);
            slot_close(s);
            return s->result;
        }
        struct pollfd pf = {s->fd, slot_events(s), 0};
        int pr = poll(&pf, 1, (int)(left * 1000) + 1);
        if (pr < 0 && errno != EINTR) die("poll: %s", strerror(errno));
        if (pr > 0 && slot_step(s, pf.revents)) return s->result;
    }
}

/* The answer's body (NUL-terminated in place is not guaranteed: use body_len). */
static const char *slot_body(const slot *s) { return s->in.p ? s->in.p + s->body_off : ""; }

/* A JSON object body, roughly: first and last non-space bytes are braces. */
static int body_is_object(const slot *s)
{
    const char *b = slot_body(s);
    size_t n = s->body_len, i = 0;
    while (i < n && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t')) i++;
    while (n > i && (b[n - 1] == ' ' || b[n - 1] == '\n' || b[n - 1] == '\r' || b[n - 1] == '\t')) n--;
    return n > i + 1 && b[i] == '{' && b[n - 1] == '}';
}

/* ------------------------------------------------------------------ pools of slots */

/* Runs requests on n slots at once until next() has no more and every slot is idle. next(ctx, s) starts a
 * request on s (slot_start) and returns 1, or returns 0 when there is none; done(ctx, s) sees each result.
 * tick(ctx), when not NULL, is called about every 100 ms. */
typedef int (*next_fn)(void *ctx, slot *s);
typedef void (*done_fn)(void *ctx, slot *s);

static void pool_run(slot *slots, int n, next_fn next, done_fn done, void (*tick)(void *), void *ctx)
{
    struct pollfd *pf = calloc((size_t)n, sizeof *pf);
    int *busy = calloc((size_t)n, sizeof *busy);
    if (!pf || !busy) die("out of memory");
    int more = 1;
    double last_tick = now_s();
    for (;;) {
        for (int i = 0; i < n && more; i++) {
            while (!busy[i] && more) {
                slot *s = &slots[i];
                if (!next(ctx, s)) {
                    more = 0;
                    break;
                }
                if (s->phase == P_IDLE) done(ctx, s); /* could not connect */
                else busy[i] = 1;
            }
        }
        int active = 0;
        for (int i = 0; i < n; i++) {
            pf[i].fd = busy[i] ? slots[i].fd : -1;
            pf[i].events = busy[i] ? slot_events(&slots[i]) : 0;
            pf[i].revents = 0;
            active += busy[i];
        }
        if (!active && !more) break;
        int pr = poll(pf, (nfds_t)n, 50);
        if (pr < 0 && errno != EINTR) die("poll: %s", strerror(errno));
        double t = now_s();
        for (int i = 0; i < n; i++) {
            if (!busy[i]) continue;
            slot *s = &slots[i];
            int fin = pf[i].revents ? slot_step(s, pf[i].revents) : 0;
            if (!fin && t > s->deadline) {
                slot_done(s, R_TIMEOUT);
                slot_close(s);
                fin = 1;
            }
            if (fin) {
                busy[i] = 0;
                done(ctx, s);
            }
        }
        if (tick && t - last_tick >= 0.1) {
            tick(ctx);
            last_tick = t;
        }
    }
    free(pf);
    free(busy);
}

/* ------------------------------------------------------------------ shared pieces */

static int server_alive(void)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: recd\r\nConnection: close\r\n\r\n";
    for (int attempt = 0; attempt < 3; attempt++) {
        slot s;
        slot_init(&s, NULL);
        int st = slot_run(&s, req, sizeof req - 1, 0, 5.0);
        slot_close(&s);
        buf_free(&s.in);
        if (st == 200) return 1;
        sleep_s(1.0);
    }
    return 0;
}

static long rss_kb(long pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

/* Status counts: index 0-999 are HTTP statuses, the R_* codes after. */
#define NCOUNT 1004
static int count_idx(int result) { return result >= 0 && result < 1000 ? result : 1000 + (-result - 1); }

static void print_counts(const long *c)
{
    static const char *const names[] = {"connfail", "closed", "timeout", "garbage"};
    int first = 1;
    for (int i = 0; i < NCOUNT; i++) {
        if (!c[i]) continue;
        if (i < 1000) printf("%s%d:%ld", first ? "" : ",", i, c[i]);
        else printf("%s%s:%ld", first ? "" : ",", names[i - 1000], c[i]);
        first = 0;
    }
    if (first) printf("none");
}

/* A request: method, path, headers (each "Name: value\r\n"), body with Content-Length. */
static void make_req(buf *b, const char *method, const char *path, const char *headers, const char *body,
                     size_t body_len)
{
    b->n = 0;
    buf_printf(b, "%s %s HTTP/1.1\r\nHost: %s\r\n%s", method, path, srv_host, headers ? headers : "");
    if (body) buf_printf(b, "Content-Length: %zu\r\n", body_len);
    buf_adds(b, "\r\n");
    if (body) buf_add(b, body, body_len);
}

#define JSON_CT "Content-Type: application/json\r\n"
/* POST of a JSON string literal. */
#define POST_JSON(b, path, lit) make_req(b, "POST", path, JSON_CT, lit, sizeof lit - 1)

/* A valid /v1/rank body for the demo's widedeep model (bench/demo_ctr.json columns) with n candidates; an
 * item id padded to id_pad characters (max limits.max_id_len). */
static void rank_body(buf *b, int n, int k, int id_pad)
{
    b->n = 0;
    buf_printf(b, "{\"user_id\":\"u%d\",\"context\":{\"age\":%d,\"income\":%d,\"hour\":\"h%d\",\"segment\":\"g%d\"},"
                  "\"candidates\":[",
               rnd_n(1000), 18 + rnd_n(60), 10000 + rnd_n(90000), rnd_n(24), rnd_n(8));
    for (int i = 0; i < n; i++) {
        buf_printf(b, "%s{\"item_id\":\"c%d", i ? "," : "", i);
        int len = snprintf(NULL, 0, "c%d", i);
        if (id_pad > len) buf_fill(b, 'x', (size_t)(id_pad - len));
        buf_printf(b, "\",\"features\":{\"device\":\"d%d\",\"site\":\"s%d\"}}", rnd_n(4), rnd_n(30));
    }
    buf_printf(b, "],\"k\":%d}", k);
}

static void next_stateless_body(buf *b)
{
    b->n = 0;
    int n = 1 + rnd_n(8);
    buf_adds(b, "{\"items\":[");
    for (int i = 0; i < n; i++) buf_printf(b, "%s\"i%d\"", i ? "," : "", rnd_n(500));
    buf_printf(b, "],\"k\":%d%s}", 1 + rnd_n(30), rnd_n(2) ? ",\"exclude_seen\":true" : "");
}

/* ------------------------------------------------------------------ mix */

enum { MIX_ROUTES = 26 };

/* Build request number `kind` of the mix into b; *head set for HEAD. Returns a short label. */
static const char *mix_request(int kind, buf *b, int *head)
{
    buf body = {0};
    const char *label = "";
    *head = 0;
    switch (kind) {
    case 0:
    case 1:
        buf_printf(&body, "{\"session_id\":\"mix-%d\",\"item_id\":\"i%d\",\"k\":%d}", rnd_n(50), rnd_n(500),
                   1 + rnd_n(20));
        make_req(b, "POST", "/v1/next", JSON_CT, body.p, body.n);
        label = "next-stateful";
        break;
    case 2:
    case 3:
        next_stateless_body(&body);
        make_req(b, "POST", "/v1/next", JSON_CT, body.p, body.n);
        label = "next-stateless";
        break;
    case 4:
    case 5:
        rank_body(&body, 1 + rnd_n(40), 1 + rnd_n(5), 0);
        make_req(b, "POST", "/v1/rank", JSON_CT, body.p, body.n);
        label = "rank";
        break;
    case 6: make_req(b, "GET", "/v1/models", NULL, NULL, 0), label = "models"; break;
    case 7: make_req(b, "GET", "/healthz", NULL, NULL, 0), label = "healthz"; break;
    case 8: make_req(b, "GET", "/readyz", NULL, NULL, 0), label = "readyz"; break;
    case 9: make_req(b, "GET", "/metrics", NULL, NULL, 0), label = "metrics"; break;
    case 10: make_req(b, "OPTIONS", rnd_n(2) ? "/v1/next" : "/v1/rank", NULL, NULL, 0), label = "options"; break;
    case 11:
        make_req(b, "HEAD", "/healthz", NULL, NULL, 0);
        *head = 1;
        label = "head";
        break;
    case 12: make_req(b, "GET", rnd_n(2) ? "/nope" : "/v1/next/extra", NULL, NULL, 0), label = "404"; break;
    case 13: make_req(b, "GET", "/v1/next", NULL, NULL, 0), label = "405"; break;
    case 14: make_req(b, "DELETE", "/v1/rank", NULL, NULL, 0), label = "405"; break;
    case 15:
        POST_JSON(b, "/v1/next", "{\"items\":[\"i1\",");
        label = "malformed-json";
        break;
    case 16:
        POST_JSON(b, "/v1/rank", "{\"candidates\":[{\"item_id\":");
        label = "malformed-json";
        break;
    case 17:
        next_stateless_body(&body);
        make_req(b, "POST", "/v1/next", rnd_n(2) ? "Content-Type: text/plain\r\n" : "", body.p, body.n);
        label = "wrong-content-type";
        break;
    case 18:
        rank_body(&body, 3, 2, 0);
        make_req(b, "POST", "/v1/rank", "Content-Type: application/x-www-form-urlencoded\r\n", body.p, body.n);
        label = "wrong-content-type";
        break;
    case 19:
        POST_JSON(b, "/v1/next", "{\"items\":[\"i1\"],\"k\":0}");
        label = "422";
        break;
    case 20:
        POST_JSON(b, "/v1/next", "{\"items\":[\"i1\"],\"model\":\"nope\"}");
        label = "unknown-model";
        break;
    case 21:
        POST_JSON(b, "/v1/rank", "{\"candidates\":[]}");
        label = "422";
        break;
    case 22:
        make_req(b, "POST", "/v1/models/gru4rec/reload", "Authorization: Bearer wrong\r\n", NULL, 0);
        label = "admin";
        break;
    case 23: /* over http.max_body_bytes (64 KiB by default): 413 */
        buf_adds(&body, "{\"items\":[\"");
        buf_fill(&body, 'a', 70000);
        buf_adds(&body, "\"]}");
        make_req(b, "POST", "/v1/next", JSON_CT, body.p, body.n);
        label = "413";
        break;
    case 24:
        b->n = 0;
        buf_adds(b, "GET /healthz HTTP/1.0\r\n\r\n");
        label = "http1.0";
        break;
    default:
        next_stateless_body(&body);
        make_req(b, "POST", "/v1/next", JSON_CT "X-Request-Id: mix-request-0001\r\nOrigin: https://evil.example\r\n",
                 body.p, body.n);
        label = "request-id";
        break;
    }
    buf_free(&body);
    return label;
}

static int cmd_mix(long n)
{
    enum { K = 4 };
    slot conns[K];
    for (int i = 0; i < K; i++) slot_init(&conns[i], NULL);
    long counts[NCOUNT] = {0};
    long errors = 0, reconnects = 0;
    buf req = {0};
    for (long i = 0; i < n; i++) {
        int head;
        const char *label = mix_request(rnd_n(MIX_ROUTES), &req, &head);
        slot *s = &conns[rnd_n(K)];
        int st = slot_run(s, req.p, req.n, head, 10.0);
        if (st == R_CLOSED && s->reused) { /* a keep-alive connection the server had closed: retry once */
            reconnects++;
            st = slot_run(s, req.p, req.n, head, 10.0);
        }
        counts[count_idx(st)]++;
        int bad = st < 0 || st >= 500;
        if (!bad && !head && strstr(s->ctype, "json") && !body_is_object(s)) bad = 1;
        if (bad) {
            errors++;
            if (verbose) fprintf(stderr, "mix: %s -> %d\n", label, st);
        }
    }
    for (int i = 0; i < K; i++) {
        slot_close(&conns[i]);
        buf_free(&conns[i].in);
    }
    buf_free(&req);
    int alive = server_alive();
    printf("mix requests=%ld errors=%ld statuses=", n, errors);
    print_counts(counts);
    printf(" reconnects=%ld server_alive=%s\n", reconnects, alive ? "yes" : "no");
    return alive ? 0 : 1;
}

/* ------------------------------------------------------------------ mutate */

typedef struct hdr {
    char name[64];
    buf value;
} hdr;

/* A request as parts, mutated then serialized. */
typedef struct mreq {
    char method[512];
    buf path;
    char version[32];
    hdr h[64];
    int nh;
    buf body;
    int head;
    int no_auto_length; /* do not (re)compute Content-Length */
    int chunked_body;   /* serialize the body with chunked framing */
} mreq;

static void mreq_free(mreq *m)
{
    buf_free(&m->path);
    buf_free(&m->body);
    for (int i = 0; i < 64; i++) buf_free(&m->h[i].value);
}

static void mreq_add(mreq *m, const char *name, const char *value)
{
    if (m->nh >= 64) return;
    hdr *h = &m->h[m->nh++];
    snprintf(h->name, sizeof h->name, "%s", name);
    h->value.n = 0;
    buf_adds(&h->value, value);
}

static void mreq_base(mreq *m, int kind)
{
    m->method[0] = '\0';
    m->path.n = 0;
    m->body.n = 0;
    m->nh = 0;
    m->head = 0;
    m->no_auto_length = 0;
    m->chunked_body = 0;
    snprintf(m->version, sizeof m->version, "HTTP/1.1");
    buf_adds(&m->path, "");
    mreq_add(m, "Host", srv_host);
    switch (kind) {
    case 0:
        snprintf(m->method, sizeof m->method, "POST");
        buf_adds(&m->path, "/v1/next");
        next_stateless_body(&m->body);
        mreq_add(m, "Content-Type", "application/json");
        break;
    case 1:
        snprintf(m->method, sizeof m->method, "POST");
        buf_adds(&m->path, "/v1/next");
        buf_printf(&m->body, "{\"session_id\":\"mut-%d\",\"item_id\":\"i%d\",\"k\":5}", rnd_n(100), rnd_n(500));
        mreq_add(m, "Content-Type", "application/json");
        break;
    case 2:
        snprintf(m->method, sizeof m->method, "POST");
        buf_adds(&m->path, "/v1/rank");
        rank_body(&m->body, 1 + rnd_n(10), 3, 0);
        mreq_add(m, "Content-Type", "application/json");
        break;
    case 3:
        snprintf(m->method, sizeof m->method, "GET");
        buf_adds(&m->path, "/healthz");
        break;
    case 4:
        snprintf(m->method, sizeof m->method, "GET");
        buf_adds(&m->path, "/v1/models");
        break;
    case 5:
        snprintf(m->method, sizeof m->method, "GET");
        buf_adds(&m->path, "/metrics");
        break;
    case 6:
        snprintf(m->method, sizeof m->method, "OPTIONS");
        buf_adds(&m->path, "/v1/rank");
        mreq_add(m, "Origin", "https://shop.example");
        mreq_add(m, "Access-Control-Request-Method", "POST");
        break;
    default:
        snprintf(m->method, sizeof m->method, "POST");
        buf_adds(&m->path, "/v1/models/gru4rec/reload");
        mreq_add(m, "Authorization", "Bearer x");
        break;
    }
}

static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE",
                                      "CONNECT", "get", "P0ST", "", "GET GET", "PRI", "\x01\x02", "POST\t"};
static const char *const paths[] = {"", "*", "/", "/v1/next?x=1&y", "/v1/next/", "//v1//next", "/v1/%6eext",
                                    "/v1/next%00", "/../../etc/passwd", "http://h/v1/next", "/v1/models//reload",
                                    "/v1/models/%2e%2e/reload", "/v1/next#frag", "/healthz?", "/v1/rank?model=nope",
                                    "/\xff\xfe", "/v1/next HTTP/1.1\r\nX: y", "/v1/models/gru4rec/reload/"};
static const char *const versions[] = {"HTTP/1.0", "HTTP/2.0", "HTTP/0.9", "HTTP/1.1x", "", "HTTP/11", "http/1.1",
                                       "HTTP/1.1 extra", "HTTP/1.2", "HTTP/9.9", "HTTP/1.01", "HTTP/"};
static const char *const clens[] = {"-1", "0", "+5", "0x10", "99999999999999999999", "1 2", "", " 7",
                                    "18446744073709551616", "1,1", "4294967297", "00000000000000000000000000005"};
static const char *const tes[] = {"chunked", "chunked, identity", " chunked", "gzip", "gzip, chunked", "identity",
                                  "chunked\x0b", "CHUNKED", "xchunked"};
static const char *const ctypes[] = {"application/json", "application/json; charset=utf-8", "text/plain", "",
                                     "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                     "APPLICATION/JSON", "application/jsonx", "application/json;;;;"};

static void mutate_json(buf *b)
{
    buf t = {0};
    switch (rnd_n(14)) {
    case 0: /* deep nesting */
    {
        int d = 10 + rnd_n(30000);
        buf_adds(&t, "{\"items\":");
        buf_fill(&t, '[', (size_t)d);
        buf_fill(&t, ']', (size_t)d);
        buf_adds(&t, "}");
        break;
    }
    case 1: buf_adds(&t, "{\"items\":[\"i1\"],\"k\":1e999999}"); break;
    case 2: buf_adds(&t, "{\"items\":[\"\\ud800\\udc00\\ud800\"],\"k\":3}"); break;
    case 3: buf_adds(&t, "{\"items\":[\"\xc3\x28\xff\xfe\"],\"k\":3}"); break;
    case 4: buf_add(&t, "{\"items\":[\"a\0b\"],\"k\":3}", 23); break;
    case 5: buf_adds(&t, "{\"items\":[\"i1\"],\"items\":[\"i2\"],\"k\":3,\"k\":4}"); break;
    case 6:
        buf_adds(&t, "{\"session_id\":\"");
        buf_fill(&t, 's', (size_t)rnd_n(60000));
        buf_adds(&t, "\",\"item_id\":\"i1\"}");
        break;
    case 7: {
        static const char *const ks[] = {"-1", "1e10", "\"20\"", "null", "20.5", "[]", "-0", "9223372036854775808"};
        buf_printf(&t, "{\"items\":[\"i1\"],\"k\":%s}", ks[rnd_n(8)]);
        break;
    }
    case 8:
        buf_adds(&t, "{\"items\":[");
        for (int i = 0, n = rnd_n(3000); i < n; i++) buf_printf(&t, "%s\"i%d\"", i ? "," : "", i % 600);
        buf_adds(&t, "]}");
        break;
    case 9: {
        static const char *const odd[] = {"", "null", "[]", "\"x\"", "{}", "{", "}", "{\"\":}", "1", "{\"items\":{}}"};
        buf_adds(&t, odd[rnd_n(10)]);
        break;
    }
    case 10:
        rank_body(&t, 1 + rnd_n(1200), 1 + rnd_n(1200), rnd_n(3) ? 0 : rnd_n(300));
        break;
    case 11: /* a candidate feature of the wrong type or unknown */
        buf_adds(&t, "{\"context\":{\"age\":\"old\",\"nope\":[1]},"
                     "\"candidates\":[{\"item_id\":\"a\",\"features\":{\"site\":7,\"device\":{}}}]}");
        break;
    case 12: /* flip a byte of the original */
        buf_add(&t, b->p, b->n);
        if (t.n) t.p[rnd_n((int)t.n)] = (char)rnd_n(256);
        break;
    default: /* cut the original */
        buf_add(&t, b->p, b->n ? (size_t)rnd_n((int)b->n) : 0);
        break;
    }
    b->n = 0;
    buf_add(b, t.p ? t.p : "", t.n);
    buf_free(&t);
}

static void mutate_parts(mreq *m)
{
    switch (rnd_n(16)) {
    case 0: snprintf(m->method, sizeof m->method, "%s", methods[rnd_n((int)(sizeof methods / sizeof *methods))]); break;
    case 1:
        m->path.n = 0;
        buf_adds(&m->path, paths[rnd_n((int)(sizeof paths / sizeof *paths))]);
        break;
    case 2:
        m->path.n = 0;
        buf_adds(&m->path, "/v1/");
        buf_fill(&m->path, 'a', (size_t)(1000 + rnd_n(100000)));
        break;
    case 3:
        snprintf(m->version, sizeof m->version, "%s", versions[rnd_n((int)(sizeof versions / sizeof *versions))]);
        break;
    case 4: /* a bad Content-Length, or two */
        m->no_auto_length = 1;
        if (rnd_n(2)) {
            mreq_add(m, "Content-Length", clens[rnd_n((int)(sizeof clens / sizeof *clens))]);
        } else {
            char a[32], b[32];
            snprintf(a, sizeof a, "%zu", m->body.n);
            snprintf(b, sizeof b, "%zu", m->body.n + (size_t)rnd_n(3));
            mreq_add(m, "Content-Length", a);
            mreq_add(m, "Content-Length", b);
        }
        break;
    case 5: /* Transfer-Encoding, with or without Content-Length */
        mreq_add(m, "Transfer-Encoding", tes[rnd_n((int)(sizeof tes / sizeof *tes))]);
        m->chunked_body = rnd_n(2);
        m->no_auto_length = rnd_n(2);
        break;
    case 6: { /* a Content-Length that lies */
        char a[32];
        long d = (long)m->body.n + (rnd_n(2) ? -1 - rnd_n(10) : 1 + rnd_n(10));
        snprintf(a, sizeof a, "%ld", d < 0 ? 0 : d);
        mreq_add(m, "Content-Length", a);
        m->no_auto_length = 1;
        break;
    }
    case 7: { /* odd header lines */
        static const char *const odd[][2] = {{"X-No-Colon", "\x01"}, {"X-Space ", "v"}, {"X-Fold", "a\r\n folded"},
                                             {"X-Nul", "a\x7f"}, {"", "empty-name"}, {"X-Bare-Lf", "a\nb"},
                                             {"Expect", "100-continue"}, {"Connection", "close"},
                                             {"Connection", "Upgrade"}, {"Upgrade", "websocket"},
                                             {"X-Request-Id", "../../\"<>"}, {"Host", "second.example"}};
        int i = rnd_n((int)(sizeof odd / sizeof *odd));
        mreq_add(m, odd[i][0], odd[i][1]);
        break;
    }
    case 8: { /* a very long header */
        buf v = {0};
        buf_fill(&v, 'v', (size_t)(1000 + rnd_n(200000)));
        mreq_add(m, "X-Long", v.p);
        buf_free(&v);
        break;
    }
    case 9: /* many headers */
        for (int i = 0, n = 20 + rnd_n(60); i < n; i++) {
            char name[32];
            snprintf(name, sizeof name, "X-H%d", i);
            mreq_add(m, name, "x");
        }
        break;
    case 10: /* Content-Type */
        for (int i = 0; i < m->nh; i++)
            if (strcasecmp(m->h[i].name, "Content-Type") == 0) {
                m->h[i].value.n = 0;
                buf_adds(&m->h[i].value, ctypes[rnd_n((int)(sizeof ctypes / sizeof *ctypes))]);
            }
        break;
    case 11: /* remove Host or Content-Type */
        if (m->nh > 0) {
            int i = rnd_n(m->nh);
            buf_free(&m->h[i].value);
            m->h[i] = m->h[--m->nh];
            memset(&m->h[m->nh], 0, sizeof m->h[m->nh]);
        }
        break;
    case 12: m->chunked_body = 1, mreq_add(m, "Transfer-Encoding", "chunked"), m->no_auto_length = 1; break;
    default: mutate_json(&m->body); break;
    }
}

/* Serialize m into out, with chunked framing when asked (sometimes broken). */
static void mreq_serialize(const mreq *m, buf *out)
{
    out->n = 0;
    buf_printf(out, "%s ", m->method);
    buf_add(out, m->path.p ? m->path.p : "", m->path.n);
    buf_printf(out, "%s%s\r\n", m->version[0] ? " " : "", m->version);
    for (int i = 0; i < m->nh; i++) {
        buf_printf(out, "%s: ", m->h[i].name);
        buf_add(out, m->h[i].value.p ? m->h[i].value.p : "", m->h[i].value.n);
        buf_adds(out, "\r\n");
    }
    if (!m->no_auto_length && !m->chunked_body && (m->body.n || strcmp(m->method, "POST") == 0))
        buf_printf(out, "Content-Length: %zu\r\n", m->body.n);
    buf_adds(out, "\r\n");
    if (!m->chunked_body) {
        buf_add(out, m->body.p ? m->body.p : "", m->body.n);
        return;
    }
    size_t off = 0;
    int broken = rnd_n(4) == 0 ? 1 + rnd_n(5) : 0;
    while (off < m->body.n) {
        size_t c = 1 + (size_t)rnd_n(4000);
        if (c > m->body.n - off) c = m->body.n - off;
        if (broken == 1) buf_adds(out, "ffffffffffffffffffff\r\n"), broken = 0;
        else if (broken == 2) buf_printf(out, "%zx;ext=\"v\"\r\n", c), broken = 0;
        else if (broken == 3) buf_printf(out, "-%zx\r\n", c), broken = 0;
        else buf_printf(out, "%zx\r\n", c);
        buf_add(out, m->body.p + off, c);
        buf_adds(out, broken == 4 ? "\n" : "\r\n");
        off += c;
    }
    if (broken != 5) buf_adds(out, "0\r\n\r\n");
}

/* Byte-level mutations of the serialized request. */
static void mutate_bytes(buf *b)
{
    switch (rnd_n(9)) {
    case 0: /* flip some bytes */
        for (int i = 0, n = 1 + rnd_n(5); i < n && b->n; i++) b->p[rnd_n((int)b->n)] ^= (char)(1 << rnd_n(8));
        break;
    case 1: { /* insert random bytes */
        size_t at = b->n ? (size_t)rnd_n((int)b->n) : 0, k = 1 + (size_t)rnd_n(16);
        buf_reserve(b, k);
        memmove(b->p + at + k, b->p + at, b->n - at);
        for (size_t i = 0; i < k; i++) b->p[at + i] = (char)rnd_n(256);
        b->n += k;
        break;
    }
    case 2: { /* delete a range */
        if (b->n < 2) break;
        size_t at = (size_t)rnd_n((int)b->n), k = 1 + (size_t)rnd_n(32);
        if (at + k > b->n) k = b->n - at;
        memmove(b->p + at, b->p + at + k, b->n - at - k);
        b->n -= k;
        break;
    }
    case 3: { /* CRLF -> LF, or -> CR */
        int to_cr = rnd_n(3) == 0;
        size_t w = 0;
        for (size_t r = 0; r < b->n; r++) {
            if (b->p[r] == '\r' && r + 1 < b->n && b->p[r + 1] == '\n') {
                b->p[w++] = to_cr ? '\r' : '\n';
                r++;
            } else {
                b->p[w++] = b->p[r];
            }
        }
        b->n = w;
        break;
    }
    case 4: { /* leading empty lines, or garbage pipelined after */
        buf t = {0};
        if (rnd_n(2)) {
            buf_adds(&t, "\r\n\r\n");
            buf_add(&t, b->p, b->n);
        } else {
            buf_add(&t, b->p, b->n);
            for (int i = 0, n = 1 + rnd_n(200); i < n; i++) {
                char c = (char)rnd_n(256);
                buf_add(&t, &c, 1);
            }
        }
        buf_free(b);
        *b = t;
        break;
    }
    case 5: /* cut short: the server waits for the rest */
        if (rnd_n(3) == 0 && b->n) b->n = (size_t)rnd_n((int)b->n);
        break;
    case 6: { /* the request twice (pipelined) */
        size_t n = b->n;
        buf_reserve(b, n);
        memcpy(b->p + n, b->p, n);
        b->n = 2 * n;
        break;
    }
    case 7: { /* a NUL byte in the header block */
        const char *e = memmem(b->p, b->n, "\r\n\r\n", 4);
        if (e) b->p[rnd_n((int)(e - b->p) + 1)] = '\0';
        break;
    }
    default: break;
    }
}

typedef struct mutate_ctx {
    long n, started;
    long counts[NCOUNT];
    buf *reqs; /* one per slot */
    slot *slots;
} mutate_ctx;

static int mutate_next(void *vctx, slot *s)
{
    mutate_ctx *c = vctx;
    if (c->started >= c->n) return 0;
    c->started++;
    int idx = (int)(s - c->slots);
    buf *out = &c->reqs[idx];
    mreq m;
    memset(&m, 0, sizeof m);
    mreq_base(&m, rnd_n(8));
    int ops = rnd_u() < 0.1 ? 0 : 1 + rnd_n(3);
    int bytes = 0;
    for (int i = 0; i < ops; i++) {
        if (rnd_n(4) == 0) bytes++;
        else mutate_parts(&m);
    }
    m.head = strcmp(m.method, "HEAD") == 0;
    mreq_serialize(&m, out);
    for (int i = 0; i < bytes; i++) mutate_bytes(out);
    if (s->fd >= 0 && rnd_n(2)) slot_close(s); /* half on a fresh connection, half reused */
    slot_start(s, out->p, out->n, m.head, 2.0);
    mreq_free(&m);
    return 1;
}

static void mutate_done(void *vctx, slot *s)
{
    mutate_ctx *c = vctx;
    c->counts[count_idx(s->result)]++;
    if (verbose && (s->result < 0 || s->result >= 500))
        fprintf(stderr, "mutate: %d (answer %.*s) for %.*s\n", s->result, (int)(s->in.n < 300 ? s->in.n : 300),
                s->in.p ? s->in.p : "", (int)(s->out_len < 300 ? s->out_len : 300), s->out);
}

static int cmd_mutate(long n)
{
    enum { C = 32 };
    slot slots[C];
    buf reqs[C];
    memset(reqs, 0, sizeof reqs);
    for (int i = 0; i < C; i++) slot_init(&slots[i], NULL);
    mutate_ctx c;
    memset(&c, 0, sizeof c);
    c.n = n;
    c.reqs = reqs;
    c.slots = slots;
    pool_run(slots, C, mutate_next, mutate_done, NULL, &c);
    for (int i = 0; i < C; i++) {
        slot_close(&slots[i]);
        buf_free(&slots[i].in);
        buf_free(&reqs[i]);
    }
    int alive = server_alive();
    printf("mutate requests=%ld statuses=", n);
    print_counts(c.counts);
    printf(" server_alive=%s\n", alive ? "yes" : "no");
    return alive ? 0 : 1;
}

/* ------------------------------------------------------------------ exhaust */

typedef struct attacker {
    int fd;
    int trickle;
    int connected;
    size_t off;       /* bytes of the endless request sent */
    double opened_at, next_at; /* next byte (trickle) or reopen (fd < 0) */
} attacker;

static const char trickle_head[] = "POST /v1/next HTTP/1.1\r\nHost: recd\r\nContent-Type: application/json\r\nX-Pad: ";

static void attacker_open(attacker *a, const char *addr, double t, long *reopened, int first)
{
    a->fd = open_conn(addr);
    a->connected = 0;
    a->off = 0;
    a->opened_at = t;
    a->next_at = a->fd >= 0 ? t + (a->trickle ? 2.0 * rnd_u() : 0) : t + 0.5;
    if (!first && a->fd >= 0) (*reopened)++;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmd_exhaust(const char *attack_addr, const char *probe_addr, int nidle, int ntrickle, double seconds)
{
    int na = nidle + ntrickle;
    enum { NP = 64 };
    raise_nofile((rlim_t)na + NP + 64);
    /* can ATTACK_ADDR be bound at all? */
    {
        int fd = open_conn(attack_addr);
        if (fd < 0) die("cannot open a connection from %s (%s)", attack_addr, strerror(errno));
        close(fd);
    }
    attacker *att = calloc((size_t)na, sizeof *att);
    struct pollfd *pf = calloc((size_t)(na + NP), sizeof *pf);
    slot probes[NP];
    int pbusy[NP] = {0};
    static const char probe_req[] = "GET /healthz HTTP/1.1\r\nHost: recd\r\nConnection: close\r\n\r\n";
    for (int i = 0; i < NP; i++) slot_init(&probes[i], probe_addr);
    size_t lat_cap = (size_t)(seconds * 10) + 64, nlat = 0;
    double *lat = calloc(lat_cap, sizeof *lat);
    if (!att || !pf || !lat) die("out of memory");
    long reopened = 0, probes_sent = 0, answered_1s = 0, unanswered = 0;
    double t = now_s();
    for (int i = 0; i < na; i++) {
        att[i].trickle = i >= nidle;
        attacker_open(&att[i], attack_addr, t, &reopened, 1);
    }
    double warm_until = t + 1.0, end = warm_until + seconds, next_probe = warm_until;
    double held_sum = 0;
    long held_samples = 0;
    for (;;) {
        t = now_s();
        int probing = t < end;
        if (probing && t >= next_probe) {
            next_probe += 0.1;
            int i = 0;
            while (i < NP && pbusy[i]) i++;
            if (i < NP && nlat < lat_cap) {
                probes_sent++;
                slot_close(&probes[i]);
                if (slot_start(&probes[i], probe_req, sizeof probe_req - 1, 0, 5.0)) {
                    lat[nlat++] = 1e9;
                    unanswered++;
                } else {
                    pbusy[i] = 1;
                }
            }
        }
        int anyprobe = 0;
        for (int i = 0; i < NP; i++) anyprobe |= pbusy[i];
        if (!probing && !anyprobe) break;
        /* attackers: reopen, trickle */
        int held = 0;
        for (int i = 0; i < na; i++) {
            attacker *a = &att[i];
            if (a->fd < 0) {
                if (t >= a->next_at) attacker_open(a, attack_addr, t, &reopened, 0);
            } else if (a->trickle && a->connected && t >= a->next_at) {
                char c = a->off < sizeof trickle_head - 1 ? trickle_head[a->off] : 'a';
                ssize_t w = send(a->fd, &c, 1, MSG_NOSIGNAL);
                if (w == 1) a->off++;
                a->next_at = t + 1.8 + 0.4 * rnd_u();
            }
            held += a->fd >= 0 && a->connected;
        }
        if (t >= warm_until) {
            held_sum += held;
            held_samples++;
        }
        int np = 0;
        for (int i = 0; i < na; i++) {
            pf[np].fd = att[i].fd;
            pf[np].events = att[i].fd < 0 ? 0 : att[i].connected ? POLLIN : POLLOUT;
            pf[np].revents = 0;
            np++;
        }
        for (int i = 0; i < NP; i++) {
            pf[np].fd = pbusy[i] ? probes[i].fd : -1;
            pf[np].events = pbusy[i] ? slot_events(&probes[i]) : 0;
            pf[np].revents = 0;
            np++;
        }
        int pr = poll(pf, (nfds_t)np, 20);
        if (pr < 0 && errno != EINTR) die("poll: %s", strerror(errno));
        t = now_s();
        for (int i = 0; i < na; i++) {
            attacker *a = &att[i];
            short re = pf[i].revents;
            if (a->fd < 0 || !re) continue;
            int gone = 0;
            if (!a->connected) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) gone = 1;
                else a->connected = 1;
            } else {
                char tmp[4096];
                ssize_t r = recv(a->fd, tmp, sizeof tmp, 0);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) gone = 1;
            }
            if (gone) { /* the server closed it: reopen, at once if it had lived a while */
                close(a->fd);
                a->fd = -1;
                a->connected = 0;
                a->next_at = t - a->opened_at < 1.0 ? t + 0.5 : t;
            }
        }
        for (int i = 0; i < NP; i++) {
            if (!pbusy[i]) continue;
            slot *s = &probes[i];
            int fin = pf[na + i].revents ? slot_step(s, pf[na + i].revents) : 0;
            if (!fin && t > s->deadline) {
                slot_done(s, R_TIMEOUT);
                fin = 1;
            }
            if (!fin) continue;
            pbusy[i] = 0;
            slot_close(s);
            if (s->result == 200) {
                lat[nlat++] = s->latency;
                if (s->latency <= 1.0) answered_1s++;
            } else {
                lat[nlat++] = 1e9;
                unanswered++;
                if (verbose) fprintf(stderr, "exhaust: probe %d\n", s->result);
            }
        }
    }
    for (int i = 0; i < na; i++)
        if (att[i].fd >= 0) close(att[i].fd);
    qsort(lat, nlat, sizeof *lat, cmp_double);
    double p99 = nlat ? lat[(size_t)((double)(nlat - 1) * 0.99)] : 1e9;
    int alive = server_alive();
    printf("exhaust idle=%d trickle=%d probes=%ld answered_1s=%.1f%% p99_ms=%.0f held=%.0f reopened=%ld "
           "server_alive=%s\n",
           nidle, ntrickle, probes_sent, probes_sent ? 100.0 * (double)answered_1s / (double)probes_sent : 0.0,
           p99 > 5.0 ? 5000.0 : p99 * 1000, held_samples ? held_sum / (double)held_samples : 0.0, reopened,
           alive ? "yes" : "no");
    (void)unanswered;
    for (int i = 0; i < NP; i++) buf_free(&probes[i].in);
    free(att);
    free(pf);
    free(lat);
    return alive ? 0 : 1;
}

/* ------------------------------------------------------------------ bigrank */

typedef struct big_ctx {
    long pid;
    int n, started, ok;
    buf req;
    long rss_peak;
} big_ctx;

static int big_next(void *vctx, slot *s)
{
    big_ctx *c = vctx;
    if (c->started >= c->n) return 0;
    c->started++;
    slot_start(s, c->req.p, c->req.n, 0, 60.0);
    return 1;
}

static void big_done(void *vctx, slot *s)
{
    big_ctx *c = vctx;
    if (s->result == 200) c->ok++;
    else if (verbose) fprintf(stderr, "bigrank: %d %.300s\n", s->result, slot_body(s));
}

static void big_tick(void *vctx)
{
    big_ctx *c = vctx;
    long r = rss_kb(c->pid);
    if (r > c->rss_peak) c->rss_peak = r;
}

static int cmd_bigrank(int n, long bytes, long pid)
{
    raise_nofile((rlim_t)n + 64);
    big_ctx c;
    memset(&c, 0, sizeof c);
    c.pid = pid;
    c.n = n;
    /* as many candidates as fit in bytes (at most 1000, next.max_items), then longer item ids */
    buf body = {0};
    rank_body(&body, 1, 1, 0);
    size_t one = body.n;
    rank_body(&body, 2, 1, 0);
    size_t per = body.n - one;
    long ncand = (bytes - (long)one) / (long)per + 1;
    if (ncand < 1) ncand = 1;
    if (ncand > 1000) ncand = 1000;
    int pad = 0;
    if (ncand == 1000) {
        long extra = (bytes - (long)one - 999 * (long)per) / 1000;
        pad = extra > 0 ? (int)(extra + 4 > 256 ? 256 : extra + 4) : 0;
    }
    rank_body(&body, (int)ncand, (int)ncand, pad);
    make_req(&c.req, "POST", "/v1/rank", JSON_CT, body.p, body.n);
    buf_free(&body);
    long rss_before = rss_kb(pid);
    c.rss_peak = rss_before;
    slot *slots = calloc((size_t)n, sizeof *slots);
    if (!slots) die("out of memory");
    /* spread over 8 loopback addresses: many clients, each under http.max_connections_per_ip */
    static const char *const from[8] = {"127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14",
                                        "127.0.0.15", "127.0.0.16", "127.0.0.17", "127.0.0.18"};
    for (int i = 0; i < n; i++) slot_init(&slots[i], from[i % 8]);
    pool_run(slots, n, big_next, big_done, big_tick, &c);
    big_tick(&c);
    /* every connection still open and idle after its answer */
    int open = 0;
    for (int i = 0; i < n; i++) open += slots[i].fd >= 0;
    for (int i = 0; i < 10; i++) {
        sleep_s(0.1);
        big_tick(&c);
    }
    long rss_idle = rss_kb(pid);
    for (int i = 0; i < n; i++) {
        slot_close(&slots[i]);
        buf_free(&slots[i].in);
    }
    free(slots);
    sleep_s(10.0);
    long rss_after = rss_kb(pid);
    int alive = server_alive();
    printf("bigrank conns=%d bytes=%zu candidates=%ld ok=%d open_after_answer=%d rss_before_mb=%.1f rss_peak_mb=%.1f "
           "rss_idle_open_mb=%.1f rss_after_close_mb=%.1f server_alive=%s\n",
           n, c.req.n, ncand, c.ok, open, rss_before / 1024.0, c.rss_peak / 1024.0, rss_idle / 1024.0,
           rss_after / 1024.0, alive ? "yes" : "no");
    buf_free(&c.req);
    return alive ? 0 : 1;
}

/* ------------------------------------------------------------------ sessions */

typedef struct sess_ctx {
    long n, started, ok;
    unsigned run;
    buf *reqs;
    slot *slots;
} sess_ctx;

static int sess_next(void *vctx, slot *s)
{
    sess_ctx *c = vctx;
    if (c->started >= c->n) return 0;
    buf *req = &c->reqs[s - c->slots];
    char body[160];
    int bn = snprintf(body, sizeof body, "{\"session_id\":\"abuse-%08x-%ld\",\"item_id\":\"i%d\",\"k\":5}", c->run,
                      c->started, rnd_n(500));
    make_req(req, "POST", "/v1/next", JSON_CT, body, (size_t)bn);
    c->started++;
    slot_start(s, req->p, req->n, 0, 10.0);
    return 1;
}

static void sess_done(void *vctx, slot *s)
{
    sess_ctx *c = vctx;
    if (s->result == 200) c->ok++;
    else if (verbose) fprintf(stderr, "sessions: %d\n", s->result);
}

static int cmd_sessions(long n, long pid)
{
    enum { C = 8 };
    slot slots[C];
    buf reqs[C];
    memset(reqs, 0, sizeof reqs);
    for (int i = 0; i < C; i++) slot_init(&slots[i], NULL);
    sess_ctx c;
    memset(&c, 0, sizeof c);
    c.n = n;
    c.run = (unsigned)(getpid() ^ (unsigned)time(NULL));
    c.reqs = reqs;
    c.slots = slots;
    long before = rss_kb(pid);
    pool_run(slots, C, sess_next, sess_done, NULL, &c);
    for (int i = 0; i < C; i++) {
        slot_close(&slots[i]);
        buf_free(&slots[i].in);
        buf_free(&reqs[i]);
    }
    sleep_s(1.0);
    long after = rss_kb(pid);
    int alive = server_alive();
    printf("sessions n=%ld ok=%ld rss_before_mb=%.1f rss_after_mb=%.1f bytes_per_session=%.0f server_alive=%s\n", n,
           c.ok, before / 1024.0, after / 1024.0, n ? (double)(after - before) * 1024.0 / (double)n : 0.0,
           alive ? "yes" : "no");
    return alive ? 0 : 1;
}

/* ------------------------------------------------------------------ main */

static long arg_long(const char *s, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0) die("%s: not a number: '%s'", what, s);
    return v;
}

static void usage(void)
{
    fprintf(stderr, "usage: abuse mix HOST PORT N\n"
                    "       abuse mutate HOST PORT N\n"
                    "       abuse exhaust HOST PORT ATTACK_ADDR PROBE_ADDR NIDLE NTRICKLE SECONDS\n"
                    "       abuse bigrank HOST PORT N BYTES PID\n"
                    "       abuse sessions HOST PORT N PID\n");
    exit(2);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    verbose = getenv("ABUSE_VERBOSE") && *getenv("ABUSE_VERBOSE") && strcmp(getenv("ABUSE_VERBOSE"), "0") != 0;
    const char *seed = getenv("ABUSE_SEED");
    if (seed && *seed) rng_s ^= (uint64_t)strtoull(seed, NULL, 10) * 0x9E3779B97F4A7C15ull;
    if (!rng_s) rng_s = 1;
    if (argc < 4) usage();
    const char *cmd = argv[1];
    resolve(argv[2], argv[3]);
    if (strcmp(cmd, "mix") == 0 && argc == 5) return cmd_mix(arg_long(argv[4], "N"));
    if (strcmp(cmd, "mutate") == 0 && argc == 5) return cmd_mutate(arg_long(argv[4], "N"));
    if (strcmp(cmd, "exhaust") == 0 && argc == 9)
        return cmd_exhaust(argv[4], argv[5], (int)arg_long(argv[6], "NIDLE"), (int)arg_long(argv[7], "NTRICKLE"),
                           (double)arg_long(argv[8], "SECONDS"));
    if (strcmp(cmd, "bigrank") == 0 && argc == 7)
        return cmd_bigrank((int)arg_long(argv[4], "N"), arg_long(argv[5], "BYTES"), arg_long(argv[6], "PID"));
    if (strcmp(cmd, "sessions") == 0 && argc == 6)
        return cmd_sessions(arg_long(argv[4], "N"), arg_long(argv[5], "PID"));
    usage();
    return 2;
}
