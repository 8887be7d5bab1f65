/* tests/test_server_abuse.c - clients that try to starve or exhaust a real `recd serve` (issue 9).
 *
 *   exhaustion       200 sockets from 127.0.0.2 hold and trickle while 127.0.0.1 keeps getting /healthz
 *                    (http.max_connections_per_ip 20 of http.max_connections 64, request_timeout_s 2)
 *   request_deadline requests trickled a byte every 0.5 s (from the first byte, after the headers, and as
 *                    the second request of a keep-alive connection) are closed (408 or plain close) within
 *                    http.request_timeout_s and some slack, although every byte comes before the idle
 *                    timeout: arriving bytes do not extend the deadline
 *   admin_port       with http.admin_port, probes, metrics and models answer there while every public
 *                    connection slot is held by idle sockets; /v1/next is not served there (404)
 *   ambiguous_framing Content-Length with Transfer-Encoding, or two different Content-Length: 400 and the
 *                    connection closed (a request smuggled behind could be read differently by a proxy)
 *   415              POST /v1/next and /v1/rank with a body that is not application/json: 415 problem+json;
 *                    application/json with a charset parameter is accepted
 *
 * Requests are written on raw sockets (the framing is the point); every wait has a generous deadline and
 * no duration is asserted. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "tests/test_server_util.h"
#include "tests/testlib.h"

/* A non-blocking socket connecting to 127.0.0.1:port from address `from` (NULL: any); -1 on failure. */
static int raw_open(int port, const char *from)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (from) {
#ifdef IP_BIND_ADDRESS_NO_PORT
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
        struct sockaddr_in b = {.sin_family = AF_INET};
        if (inet_pton(AF_INET, from, &b.sin_addr) != 1 || bind(fd, (struct sockaddr *)&b, sizeof b) != 0) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* raw_open, then wait (up to timeout_s) for the connection to be established; -1 when it was not. */
static int raw_connect(int port, const char *from, double timeout_s)
{
    int fd = raw_open(port, from);
    if (fd < 0) return -1;
    struct pollfd pf = {fd, POLLOUT, 0};
    int err = 0;
    socklen_t el = sizeof err;
    if (poll(&pf, 1, (int)(timeout_s * 1000)) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Send all of data (the socket is non-blocking: waits up to 5 s for room). 0, or -1 (peer gone). */
static int raw_send(int fd, const char *data, size_t n)
{
    double end = clock_mono_s() + 5;
    while (n) {
        ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
        if (w > 0) {
            data += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && clock_mono_s() < end) {
            struct pollfd pf = {fd, POLLOUT, 0};
            poll(&pf, 1, 100);
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        return -1;
    }
    return 0;
}

typedef struct rawans {
    int status;     /* 0: no answer */
    int closed;     /* the server closed the connection (EOF or reset) */
    char ctype[128];
    char connection[64];
    char data[16384]; /* head and body, NUL-terminated */
    size_t n;
} rawans;

static void header_of(const char *head, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    size_t ln = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
        const char *h = l + 2;
        if (strncasecmp(h, name, ln) == 0 && h[ln] == ':') {
            h += ln + 1;
            while (*h == ' ') h++;
            size_t n = strcspn(h, "\r");
            if (n >= cap) n = cap - 1;
            memcpy(out, h, n);
            out[n] = '\0';
            return;
        }
    }
}

/* Read one answer (status line, headers, Content-Length body) within timeout_s. */
static void raw_answer(int fd, double timeout_s, rawans *a)
{
    memset(a, 0, sizeof *a);
    double end = clock_mono_s() + timeout_s;
    for (;;) {
        const char *he = strstr(a->data, "\r\n\r\n");
        if (he) {
            if (sscanf(a->data, "HTTP/1.%*d %d", &a->status) != 1) a->status = -1;
            header_of(a->data, "Content-Type", a->ctype, sizeof a->ctype);
            header_of(a->data, "Connection", a->connection, sizeof a->connection);
            char cl[32];
            header_of(a->data, "Content-Length", cl, sizeof cl);
            size_t body = a->n - (size_t)(he + 4 - a->data);
            if (!cl[0] || body >= (size_t)atol(cl)) return;
        }
        double left = end - clock_mono_s();
        if (left <= 0 || a->n + 1 >= sizeof a->data) return;
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, (int)(left * 1000) + 1) <= 0) continue;
        ssize_t r = recv(fd, a->data + a->n, sizeof a->data - 1 - a->n, 0);
        if (r > 0) {
            a->n += (size_t)r;
            a->data[a->n] = '\0';
        } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            a->closed = 1;
            if (a->n && !a->status && strstr(a->data, "\r\n\r\n") &&
                sscanf(a->data, "HTTP/1.%*d %d", &a->status) != 1)
                a->status = -1;
            if (a->n && !a->status) a->status = -1;
            return;
        }
    }
}

/* 1 when the server closes the connection within timeout_s (bytes it sends meanwhile are skipped). */
static int raw_closed_within(int fd, double timeout_s)
{
    double end = clock_mono_s() + timeout_s;
    char tmp[4096];
    for (;;) {
        double left = end - clock_mono_s();
        if (left <= 0) return 0;
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, (int)(left * 1000) + 1) <= 0) continue;
        ssize_t r = recv(fd, tmp, sizeof tmp, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return 1;
    }
}

/* One request on a new connection from 127.0.0.1; the answer within timeout_s (status 0: none). */
static void raw_request(int port, const char *req, size_t n, double timeout_s, rawans *a)
{
    memset(a, 0, sizeof *a);
    int fd = raw_connect(port, NULL, timeout_s);
    if (fd < 0) return;
    if (raw_send(fd, req, n) == 0) raw_answer(fd, timeout_s, a);
    close(fd);
}

static int healthz_status(int port, double timeout_s)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    rawans a;
    raw_request(port, req, sizeof req - 1, timeout_s, &a);
    return a.status;
}

static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want) return;
    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

/* Publish the gru4rec snapshot tsrv_start serves (50 items). */
static void publish_gru4rec(void)
{
    char root[1024];
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir());
    tsrv_make_snapshot(root, "gru4rec", 50, 16, 3);
}

/* ------------------------------------------------------------------ exhaustion */

enum { N_ATTACK = 200 };

typedef struct attack {
    int port;
    _Atomic int stop;
    _Atomic long reopened, held;
} attack;

static const char endless[] = "POST /v1/next HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nX-Pad: ";

/* Half of the sockets send nothing, half send one byte of an endless request every ~0.5 s; a socket the
 * server closes is reopened (after 250 ms when it lived less than a second), as an attacker would. */
static void *attack_run(void *arg)
{
    attack *at = arg;
    int fd[N_ATTACK], conn[N_ATTACK];
    size_t off[N_ATTACK];
    double opened[N_ATTACK], next[N_ATTACK];
    struct pollfd pf[N_ATTACK];
    double t = clock_mono_s();
    for (int i = 0; i < N_ATTACK; i++) {
        fd[i] = raw_open(at->port, "127.0.0.2");
        conn[i] = 0;
        off[i] = 0;
        opened[i] = t;
        next[i] = t + 0.5 * (double)i / N_ATTACK;
    }
    while (!atomic_load(&at->stop)) {
        t = clock_mono_s();
        long held = 0;
        for (int i = 0; i < N_ATTACK; i++) {
            if (fd[i] < 0 && t >= next[i]) {
                fd[i] = raw_open(at->port, "127.0.0.2");
                conn[i] = 0;
                off[i] = 0;
                opened[i] = t;
                next[i] = t + 0.5;
                atomic_fetch_add(&at->reopened, 1);
            } else if (fd[i] >= 0 && conn[i] && (i & 1) && t >= next[i]) {
                char c = off[i] < sizeof endless - 1 ? endless[off[i]] : 'a';
                if (send(fd[i], &c, 1, MSG_NOSIGNAL) == 1) off[i]++;
                next[i] = t + 0.5;
            }
            held += fd[i] >= 0 && conn[i];
            pf[i].fd = fd[i];
            pf[i].events = fd[i] < 0 ? 0 : conn[i] ? POLLIN : POLLOUT;
            pf[i].revents = 0;
        }
        atomic_store(&at->held, held);
        poll(pf, N_ATTACK, 20);
        t = clock_mono_s();
        for (int i = 0; i < N_ATTACK; i++) {
            if (fd[i] < 0 || !pf[i].revents) continue;
            int gone = 0;
            if (!conn[i]) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(fd[i], SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) gone = 1;
                else conn[i] = 1;
            } else {
                char tmp[2048];
                ssize_t r = recv(fd[i], tmp, sizeof tmp, 0);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) gone = 1;
            }
            if (gone) {
                close(fd[i]);
                fd[i] = -1;
                next[i] = t - opened[i] < 1.0 ? t + 0.25 : t;
            }
        }
    }
    for (int i = 0; i < N_ATTACK; i++)
        if (fd[i] >= 0) close(fd[i]);
    return NULL;
}

TEST_TIMEOUT(server_abuse_exhaustion, 120)
{
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in b = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.2", &b.sin_addr);
    if (probe < 0 || bind(probe, (struct sockaddr *)&b, sizeof b) != 0)
        SKIP("cannot bind a socket to 127.0.0.2 (%s): no second loopback address", strerror(errno));
    close(probe);
    raise_nofile(N_ATTACK + 256);
    tsrv s;
    tsrv_start(&s,
               "\"http.max_connections_per_ip\":20,\"http.max_connections\":64,\"http.request_timeout_s\":2,"
               "\"http.timeout_s\":2",
               0);
    attack at = {.port = s.port};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, attack_run, &at), 0);
    tsrv_sleep_ms(1000); /* the attack in place */
    int probes = 0, answered = 0;
    char failures[512] = "";
    double end = clock_mono_s() + 10;
    while (clock_mono_s() < end) {
        int st = healthz_status(s.port, 3.0);
        probes++;
        if (st == 200) answered++;
        else if (strlen(failures) < sizeof failures - 16)
            snprintf(failures + strlen(failures), sizeof failures - strlen(failures), " %d", st);
        tsrv_sleep_ms(200);
    }
    long held = atomic_load(&at.held), reopened = atomic_load(&at.reopened);
    atomic_store(&at.stop, 1);
    pthread_join(th, NULL);
    if (answered != probes)
        FAIL("%d of %d /healthz probes from 127.0.0.1 unanswered within 3 s while 200 sockets from 127.0.0.2 "
             "held and trickled (attack holding %ld connections, %ld reopened); statuses (0: none):%s",
             probes - answered, probes, held, reopened, failures);
    ASSERT(probes > 0);
    ASSERT_EQ(healthz_status(s.port, 5.0), 200);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

/* ------------------------------------------------------------------ request deadline */

TEST_TIMEOUT(server_abuse_request_deadline, 90)
{
    tsrv s;
    /* idle timeout far above the byte interval: only the request deadline can close these */
    tsrv_start(&s, "\"http.request_timeout_s\":2,\"http.timeout_s\":60", 0);
    static const char body[] = "{\"items\":[\"i1\",\"i2\"],\"k\":3}";
    char headers[256], first[512];
    snprintf(headers, sizeof headers,
             "POST /v1/next HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
             sizeof body - 1);
    snprintf(first, sizeof first, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    /* three trickles: the whole request from its first byte; the body after headers sent at once; and the
     * second request of a keep-alive connection whose first request was answered */
    enum { N = 3 };
    const char *what[N] = {"request trickled from its first byte", "body trickled after the headers",
                           "second request of a keep-alive connection trickled"};
    char text[N][512];
    snprintf(text[0], sizeof text[0], "%s%s", headers, body);
    snprintf(text[1], sizeof text[1], "%s", body);
    snprintf(text[2], sizeof text[2], "%s%s", headers, body);
    int fd[N];
    size_t off[N] = {0};
    int done[N] = {0}, status[N] = {0};
    for (int i = 0; i < N; i++) {
        fd[i] = raw_connect(s.port, NULL, 5);
        ASSERT(fd[i] >= 0);
    }
    ASSERT_EQ(raw_send(fd[1], headers, strlen(headers)), 0);
    ASSERT_EQ(raw_send(fd[2], first, strlen(first)), 0);
    rawans a;
    raw_answer(fd[2], 10, &a);
    ASSERT_EQ(a.status, 200);
    ASSERT(!a.closed);
    /* one byte every 0.5 s on each, until the server closes; deadline 2 s + generous slack */
    double end = clock_mono_s() + 2 + 10;
    int left = N;
    while (left && clock_mono_s() < end) {
        for (int i = 0; i < N; i++) {
            if (done[i]) continue;
            if (off[i] < strlen(text[i]) - 1) /* never the last byte: the request stays incomplete */
                if (send(fd[i], text[i] + off[i], 1, MSG_NOSIGNAL) == 1) off[i]++;
        }
        double tick_end = clock_mono_s() + 0.5;
        while (left && clock_mono_s() < tick_end) {
            struct pollfd pf[N];
            for (int i = 0; i < N; i++) pf[i] = (struct pollfd){done[i] ? -1 : fd[i], POLLIN, 0};
            poll(pf, N, 50);
            for (int i = 0; i < N; i++) {
                if (done[i] || !pf[i].revents) continue;
                char buf[2048];
                ssize_t r = recv(fd[i], buf, sizeof buf - 1, 0);
                if (r > 0) {
                    buf[r] = '\0';
                    int st = 0;
                    if (!status[i] && sscanf(buf, "HTTP/1.%*d %d", &st) == 1) status[i] = st;
                    else if (!status[i]) status[i] = -1;
                } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                    done[i] = 1;
                    left--;
                }
            }
        }
    }
    int n408 = 0;
    for (int i = 0; i < N; i++) {
        close(fd[i]);
        n408 += status[i] == 408;
        if (!done[i])
            FAIL("%s: still open 12 s after its start although http.request_timeout_s is 2 (%zu bytes sent, "
                 "one every 0.5 s)",
                 what[i], off[i]);
        if (status[i] && status[i] != 408)
            FAIL("%s: answered %d before closing, expected 408 or nothing", what[i], status[i]);
    }
    /* a trickler that writes after the close may get a reset that discards the 408: one at least must
     * have read it */
    ASSERT(n408 >= 1);
    /* a request that arrives whole in time is still served */
    ASSERT_EQ(healthz_status(s.port, 5.0), 200);
    /* and the deadline's closes are counted */
    ASSERT(tsrv_metric(&s, "recd_http_request_timeouts_total") >= N);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

/* ------------------------------------------------------------------ admin port */

TEST_TIMEOUT(server_abuse_admin_port, 90)
{
    int admin = test_free_port();
    char extra[512];
    snprintf(extra, sizeof extra,
             "\"http.admin_port\":%d,\"http.max_connections\":8,\"http.max_connections_per_ip\":0,"
             "\"http.timeout_s\":120,\"http.request_timeout_s\":120",
             admin);
    publish_gru4rec();
    tsrv s;
    tsrv_start(&s, extra, 1);
    tsrv as = s;
    as.port = admin;
    snprintf(as.base, sizeof as.base, "http://127.0.0.1:%d", admin);
    /* idle sockets take every public connection slot (until the public port answers no more) */
    enum { NHOLD = 40 };
    int hold[NHOLD];
    for (int i = 0; i < NHOLD; i++) hold[i] = raw_open(s.port, NULL);
    int full = 0;
    for (int i = 0; i < 20 && !full; i++) {
        tsrv_sleep_ms(250);
        full = healthz_status(s.port, 2.0) != 200;
    }
    if (!full) FAIL("the public port still answers with %d idle sockets and http.max_connections 8", NHOLD);
    /* the admin port answers the probes, metrics and models */
    const char *ops[] = {"/healthz", "/readyz", "/metrics", "/v1/models"};
    for (int i = 0; i < 4; i++) {
        tresp r;
        ASSERT_EQ(tsrv_http(&as, "GET", ops[i], NULL, 0, NULL, &r), 0);
        if (r.status != 200) FAIL("GET %s on the admin port: %ld %.300s", ops[i], r.status, r.body);
        if (strcmp(ops[i], "/metrics") == 0) ASSERT_CONTAINS(r.body, "recd_");
        tresp_free(&r);
    }
    /* but not the public API */
    tresp r;
    static const char body[] = "{\"items\":[\"i1\"],\"k\":3}";
    ASSERT_EQ(tsrv_http(&as, "POST", "/v1/next", body, sizeof body - 1, NULL, &r), 0);
    ASSERT_EQ(r.status, 404);
    tresp_free(&r);
    for (int i = 0; i < NHOLD; i++)
        if (hold[i] >= 0) close(hold[i]);
    /* the public port serves again once the slots are given back */
    int st = 0;
    for (int i = 0; i < 40 && st != 200; i++) {
        st = healthz_status(s.port, 2.0);
        if (st != 200) tsrv_sleep_ms(250);
    }
    ASSERT_EQ(st, 200);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

/* An idle keep-alive connection is http.timeout_s's business: the request deadline starts with a request's
 * first byte, so a connection idle for longer than http.request_timeout_s gets no unsolicited 408 (a
 * client reusing it at that moment would read the 408 as the answer to its next request) and serves
 * its next request. */
TEST_TIMEOUT(server_abuse_idle_keepalive_not_cut, 60)
{
    tsrv s;
    tsrv_start(&s, "\"http.request_timeout_s\":1,\"http.timeout_s\":60", 0);
    static const char get[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    int fd = raw_connect(s.port, NULL, 5);
    ASSERT(fd >= 0);
    for (int round = 0; round < 2; round++) {
        raw_send(fd, get, sizeof get - 1);
        rawans a;
        raw_answer(fd, 10, &a);
        ASSERT_EQ(a.status, 200);
        ASSERT(!a.closed);
        /* idle for three request timeouts: nothing may arrive and the connection stays open */
        struct pollfd p = {fd, POLLIN, 0};
        int ready = poll(&p, 1, 3500);
        if (ready != 0) {
            char buf[512];
            ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
            buf[n > 0 ? n : 0] = '\0';
            FAIL("idle keep-alive connection (round %d): %s after %d s idle: '%.200s'", round,
                 n == 0 ? "closed" : "unsolicited bytes", 3, buf);
        }
    }
    close(fd);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

/* A request whose first part arrives in one burst and then stalls (headers incomplete; or headers with
 * Expect: 100-continue and no body) still gets its deadline; an empty line (CRLF, RFC 9112 2.2) on an
 * idle connection does not start one. */
TEST_TIMEOUT(server_abuse_burst_then_stall, 60)
{
    tsrv s;
    tsrv_start(&s, "\"http.request_timeout_s\":1,\"http.timeout_s\":60", 0);
    static const char *const parts[] = {
        "GET /healthz HTTP/1.1\r\nHost: t\r\n",
        "POST /v1/next HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 20\r\n"
        "Expect: 100-continue\r\n\r\n",
        /* not covered: a partial request pipelined behind a whole one in the same burst; its bytes are in
         * the idle baseline, so only http.timeout_s closes it (server/http.h) */
    };
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        int fd = raw_connect(s.port, NULL, 5);
        ASSERT(fd >= 0);
        raw_send(fd, parts[i], strlen(parts[i]));
        if (!raw_closed_within(fd, 10)) FAIL("burst then stall #%zu: still open 10 s later (request_timeout_s 1)", i);
        close(fd);
    }
    int fd = raw_connect(s.port, NULL, 5);
    ASSERT(fd >= 0);
    static const char get[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    raw_send(fd, get, sizeof get - 1);
    rawans a;
    raw_answer(fd, 10, &a);
    ASSERT_EQ(a.status, 200);
    raw_send(fd, "\r\n", 2);
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 3000) != 0) FAIL("an empty line on an idle connection started a request deadline");
    raw_send(fd, get, sizeof get - 1);
    raw_answer(fd, 10, &a);
    ASSERT_EQ(a.status, 200);
    close(fd);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

/* ------------------------------------------------------------------ ambiguous framing */

/* Sends req on a new connection: expects `want` and the connection closed after it. */
static void expect_status_close(const tsrv *s, const char *what, const char *req, int want)
{
    int fd = raw_connect(s->port, NULL, 5);
    ASSERT(fd >= 0);
    raw_send(fd, req, strlen(req));
    rawans a;
    raw_answer(fd, 10, &a);
    if (a.status != want) FAIL("%s: status %d (0: none), expected %d: %.300s", what, a.status, want, a.data);
    if (!a.closed && !raw_closed_within(fd, 10))
        FAIL("%s: answered %d but the connection stayed open (Connection: %s)", what, want, a.connection);
    close(fd);
}

static void expect_400_close(const tsrv *s, const char *what, const char *req)
{
    expect_status_close(s, what, req, 400);
}

TEST_TIMEOUT(server_abuse_ambiguous_framing, 60)
{
    publish_gru4rec();
    tsrv s;
    tsrv_start(&s, "", 1);
    static const char body[] = "{\"items\":[\"i1\"],\"k\":3}"; /* 22 bytes = 0x16 */
    char req[1024];
    /* control: chunked alone is a valid framing */
    snprintf(req, sizeof req,
             "POST /v1/next HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
             "\r\n16\r\n%s\r\n0\r\n\r\n",
             body);
    rawans a;
    raw_request(s.port, req, strlen(req), 10, &a);
    ASSERT_EQ(a.status, 200);
    snprintf(req, sizeof req,
             "POST /v1/next HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 22\r\n"
             "Transfer-Encoding: chunked\r\n\r\n16\r\n%s\r\n0\r\n\r\n",
             body);
    expect_400_close(&s, "Content-Length then Transfer-Encoding: chunked", req);
    snprintf(req, sizeof req,
             "POST /v1/next HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n"
             "Content-Length: 5\r\n\r\n16\r\n%s\r\n0\r\n\r\n",
             body);
    expect_400_close(&s, "Transfer-Encoding: chunked then Content-Length", req);
    snprintf(req, sizeof req,
             "POST /v1/next HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 22\r\n"
             "Content-Length: 23\r\n\r\n%s ",
             body);
    expect_400_close(&s, "two different Content-Length", req);
    snprintf(req, sizeof req,
             "POST /v1/next HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 30\r\n"
             "Content-Length: 22\r\n\r\n%s",
             body);
    expect_400_close(&s, "two different Content-Length, the larger first", req);
    /* a transfer coding that is not chunked last: the body's end is unknown (RFC 9112 6.3): 400 */
    static const char *const not_last[] = {"gzip", "identity", "xchunked", "chunked, identity"};
    for (size_t i = 0; i < sizeof not_last / sizeof *not_last; i++) {
        snprintf(req, sizeof req,
                 "POST /v1/next HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 "Transfer-Encoding: %s\r\n\r\n%s",
                 not_last[i], body);
        expect_400_close(&s, not_last[i], req);
    }
    /* chunked last after a coding recd does not decode: 501 (RFC 9112 6.1), and the connection closes */
    snprintf(req, sizeof req,
             "POST /v1/next HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
             "Transfer-Encoding: gzip, chunked\r\n\r\n16\r\n%s\r\n0\r\n\r\n",
             body);
    expect_status_close(&s, "gzip, chunked", req, 501);
    /* the same list over two lines: 501; chunked twice: 400; chunked in HTTP/1.0 (RFC 9112 6.1): 400 */
    snprintf(req, sizeof req,
             "POST /v1/next HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
             "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n16\r\n%s\r\n0\r\n\r\n",
             body);
    expect_status_close(&s, "gzip then chunked on two lines", req, 501);
    snprintf(req, sizeof req,
             "POST /v1/next HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
             "Transfer-Encoding: chunked, chunked\r\n\r\n16\r\n%s\r\n0\r\n\r\n",
             body);
    expect_400_close(&s, "chunked, chunked", req);
    snprintf(req, sizeof req,
             "POST /v1/next HTTP/1.0\r\nHost: t\r\nContent-Type: application/json\r\n"
             "Transfer-Encoding: chunked\r\n\r\n16\r\n%s\r\n0\r\n\r\n",
             body);
    expect_400_close(&s, "chunked in HTTP/1.0", req);
    snprintf(req, sizeof req,
             "POST /v1/next HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
             "Transfer-Encoding : chunked\r\nContent-Length: 22\r\n\r\n%s",
             body);
    expect_400_close(&s, "space before a header's colon", req);
    ASSERT_EQ(healthz_status(s.port, 5.0), 200);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

/* ------------------------------------------------------------------ 415 */

TEST(server_abuse_415)
{
    tsrv s;
    tsrv_start_two_models(&s, 50, "", NULL);
    const char *paths[2] = {"/v1/next", "/v1/rank"};
    const char *bodies[2] = {
        "{\"items\":[\"i1\",\"i2\"],\"k\":3}",
        "{\"candidates\":[{\"item_id\":\"a\",\"features\":{\"x1\":0.5,\"x2\":1,\"c1\":\"a\",\"c2\":\"zz\"}},"
        "{\"item_id\":\"b\",\"features\":{\"x1\":-1,\"x2\":0,\"c1\":\"b\",\"c2\":\"y\"}}],\"k\":2}"};
    const char *refused[] = {"Content-Type: text/plain\r\n", "Content-Type: application/x-www-form-urlencoded\r\n",
                             ""};
    const char *accepted[] = {"Content-Type: application/json\r\n",
                              "Content-Type: application/json; charset=utf-8\r\n"};
    char req[2048];
    rawans a;
    for (int p = 0; p < 2; p++) {
        for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
            snprintf(req, sizeof req, "POST %s HTTP/1.1\r\nHost: t\r\n%sContent-Length: %zu\r\n\r\n%s", paths[p],
                     refused[i], strlen(bodies[p]), bodies[p]);
            raw_request(s.port, req, strlen(req), 10, &a);
            if (a.status != 415)
                FAIL("POST %s with '%.*s': status %d, expected 415: %.300s", paths[p],
                     *refused[i] ? (int)strlen(refused[i]) - 2 : 15, *refused[i] ? refused[i] : "no Content-Type",
                     a.status, a.data);
            ASSERT_STR_EQ(a.ctype, "application/problem+json");
            ASSERT_CONTAINS(a.data, "\"status\":415");
        }
        for (size_t i = 0; i < sizeof accepted / sizeof *accepted; i++) {
            snprintf(req, sizeof req, "POST %s HTTP/1.1\r\nHost: t\r\n%sContent-Length: %zu\r\n\r\n%s", paths[p],
                     accepted[i], strlen(bodies[p]), bodies[p]);
            raw_request(s.port, req, strlen(req), 10, &a);
            if (a.status != 200)
                FAIL("POST %s with '%.*s': status %d, expected 200: %.300s", paths[p], (int)strlen(accepted[i]) - 2,
                     accepted[i], a.status, a.data);
            ASSERT_CONTAINS(a.data, "\"items\"");
        }
    }
    ASSERT_EQ(tsrv_stop(&s), 0);
}
