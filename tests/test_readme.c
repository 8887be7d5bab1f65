/* tests/test_readme.c - README.md is executable: its curl examples run against a real server, `make demo`
 * (bench/demo.sh) runs to the end, and every subcommand, flag and route it names exists.
 *
 * README examples are marked for this test:
 *
 *     <!-- readme-test status=200 -->
 *     ```sh
 *     curl -s localhost:8080/v1/next -H 'Content-Type: application/json' -d '{"items":["i260"],"k":3}'
 *     ```
 *     ```json
 *     {"items": [{"item_id": "i359", "score": 0.84}, ...], "model": "gru4rec", ...}
 *     ```
 *
 * The first fenced block after the marker is the command (localhost:8080 is replaced by the test server's
 * address), the next one the answer shown. The check is on shape, not on scores: the HTTP status must be
 * the marker's; a `json` answer must be valid JSON whose every object member exists in the real answer with
 * the same JSON type (recursively; arrays of the same length; a few stable members such as "model",
 * "status" or "type" with the same value); a `text` answer's lines must each appear in the real answer up
 * to their last space (Prometheus: the series name and labels, not the value); an `http` answer (curl -i)
 * is a status line and headers (each header name must be present, Content-Type with the same value),
 * then a blank line and a JSON body checked as above.
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "server/router.h"
#include "tests/testlib.h"

#define README "README.md"

static char *slurp(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) FAIL("out of memory");
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 2) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) FAIL("out of memory");
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len_out) *len_out = n;
    return buf;
}

static char *readme_text(void)
{
    char *t = slurp(README, NULL);
    if (!t) FAIL("cannot read %s (run the tests from the repository root): %s", README, strerror(errno));
    return t;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ the examples in the README */

typedef struct example {
    int status;
    int line;        /* of the marker, for messages */
    char *cmd;       /* owned */
    char *lang;      /* of the answer block: json | text | http */
    char *answer;    /* owned */
} example;

/* The next fenced block at or after *p: sets lang and body (owned), moves *p past it. 0 if none. */
static int next_fence(const char **p, char **lang, char **body)
{
    const char *s = strstr(*p, "```");
    if (!s) return 0;
    s += 3;
    const char *eol = strchr(s, '\n');
    if (!eol) return 0;
    *lang = strndup(s, (size_t)(eol - s));
    const char *b = eol + 1, *e = strstr(b, "\n```");
    if (!e) return 0;
    *body = strndup(b, (size_t)(e - b + 1));
    const char *after = strchr(e + 4, '\n');
    *p = after ? after + 1 : e + 4;
    return 1;
}

static int parse_examples(const char *text, example *ex, int max)
{
    int n = 0;
    const char *p = text;
    const char *marker = "<!-- readme-test status=";
    while ((p = strstr(p, marker)) && n < max) {
        example *e = &ex[n];
        memset(e, 0, sizeof *e);
        e->line = 1;
        for (const char *q = text; q < p; q++) e->line += *q == '\n';
        e->status = atoi(p + strlen(marker));
        const char *q = p + strlen(marker);
        char *lang = NULL;
        if (!next_fence(&q, &lang, &e->cmd)) FAIL("README line %d: no command block after the marker", e->line);
        free(lang);
        if (!next_fence(&q, &e->lang, &e->answer)) FAIL("README line %d: no answer block after the command", e->line);
        n++;
        p = q;
    }
    return n;
}

static void example_free(example *e)
{
    free(e->cmd);
    free(e->lang);
    free(e->answer);
}

/* Members whose value is stable from run to run (checked for equality, not only type). */
static int stable_member(const char *key)
{
    static const char *keys[] = {"model", "name", "type", "title", "status", "fallback", "session_id",
                                 "user_id", "loaded", "instance", NULL};
    for (int i = 0; keys[i]; i++)
        if (strcmp(key, keys[i]) == 0) return 1;
    return 0;
}

static int is_number(const json_t *j)
{
    return json_is_integer(j) || json_is_real(j);
}

/* Checks that `want` (from the README) has the shape of `got` (the server's answer); fails with the path. */
static void shape_check(const json_t *want, const json_t *got, const char *path, int line, int stable)
{
    if (is_number(want)) {
        if (!is_number(got)) FAIL("README line %d: %s should be a number", line, path);
        if (stable && json_number_value(want) != json_number_value(got))
            FAIL("README line %d: %s is %g, the README shows %g", line, path, json_number_value(got),
                 json_number_value(want));
        return;
    }
    if (json_typeof(want) != json_typeof(got) && !(json_is_boolean(want) && json_is_boolean(got))) {
        char *g = json_dumps(got, JSON_ENCODE_ANY | JSON_COMPACT);
        FAIL("README line %d: %s has another JSON type in the real answer: %.300s", line, path, g ? g : "?");
    }
    char sub[512];
    if (json_is_object(want)) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)want, key, v) {
            snprintf(sub, sizeof sub, "%s.%s", path, key);
            json_t *g = json_object_get(got, key);
            if (!g) FAIL("README line %d: %s is not in the real answer", line, sub);
            shape_check(v, g, sub, line, stable_member(key));
        }
    } else if (json_is_array(want)) {
        if (json_array_size(want) != json_array_size(got))
            FAIL("README line %d: %s has %zu elements in the README, %zu in the real answer", line, path,
                 json_array_size(want), json_array_size(got));
        for (size_t i = 0; i < json_array_size(want); i++) {
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            shape_check(json_array_get(want, i), json_array_get(got, i), sub, line, 0);
        }
    } else if (stable && !json_equal((json_t *)want, (json_t *)got)) {
        char *g = json_dumps(got, JSON_ENCODE_ANY), *w = json_dumps(want, JSON_ENCODE_ANY);
        FAIL("README line %d: %s is %s, the README shows %s", line, path, g ? g : "?", w ? w : "?");
    }
}

static void json_check(const char *want_text, const char *got_text, int line)
{
    json_error_t e;
    json_t *want = json_loads(want_text, 0, &e);
    if (!want) FAIL("README line %d: the answer shown is not valid JSON (line %d: %s)", line, e.line, e.text);
    json_t *got = json_loads(got_text, JSON_DISABLE_EOF_CHECK, &e);
    if (!got) FAIL("README line %d: the real answer is not JSON (%s): %.400s", line, e.text, got_text);
    shape_check(want, got, "answer", line, 0);
    json_decref(want);
    json_decref(got);
}

/* Each non-empty line of want, up to its last space, must be a line start in got. */
static void text_check(const char *want, const char *got, int line)
{
    const char *p = want;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        const char *sp = memrchr(p, ' ', n);
        size_t key = sp ? (size_t)(sp - p) : n;
        if (key > 0) {
            char *k = strndup(p, key);
            int found = 0;
            for (const char *g = got; g && *g; g = strchr(g, '\n'), g = g ? g + 1 : NULL)
                if (strncmp(g, k, key) == 0) found = 1;
            if (!found) FAIL("README line %d: \"%s\" is not in the real answer: %.600s", line, k, got);
            free(k);
        }
        p = eol ? eol + 1 : p + n;
    }
}

static int header_has(const char *headers, const char *name, const char *value)
{
    size_t nl = strlen(name);
    for (const char *h = headers; h && *h; h = strchr(h, '\n'), h = h ? h + 1 : NULL) {
        if (strncasecmp(h, name, nl) != 0 || h[nl] != ':') continue;
        if (!value) return 1;
        const char *v = h + nl + 1;
        while (*v == ' ') v++;
        size_t vl = strlen(value);
        if (strncmp(v, value, vl) == 0 && (v[vl] == '\r' || v[vl] == '\n' || v[vl] == '\0')) return 1;
    }
    return 0;
}

/* A `curl -i` answer: headers, blank line, JSON body. */
static void http_check(const char *want, const char *got, const char *got_headers, int line)
{
    const char *wbody = strstr(want, "\n\n");
    if (!wbody) FAIL("README line %d: an http answer needs headers, a blank line and a body", line);
    const char *p = strchr(want, '\n'); /* skip the status line (checked separately) */
    for (p = p ? p + 1 : wbody; p < wbody; p = strchr(p, '\n') + 1) {
        const char *colon = strchr(p, ':');
        if (!colon || colon > wbody) break;
        char *name = strndup(p, (size_t)(colon - p));
        char *value = NULL;
        if (strcasecmp(name, "Content-Type") == 0) {
            const char *v = colon + 1;
            while (*v == ' ') v++;
            value = strndup(v, strcspn(v, "\r\n"));
        }
        if (!header_has(got_headers, name, value))
            FAIL("README line %d: header %s%s%s missing from the real answer: %.400s", line, name, value ? ": " : "",
                 value ? value : "", got_headers);
        free(name);
        free(value);
    }
    const char *gbody = strstr(got, "\r\n\r\n");
    if (!gbody) FAIL("README line %d: the real answer has no header/body separator: %.400s", line, got);
    json_check(wbody + 2, gbody + 4, line);
}

/* Replace every "localhost:8080" in cmd by host (returns a malloc'd string). */
static char *with_host(const char *cmd, const char *host)
{
    const char *from = "localhost:8080";
    size_t cap = strlen(cmd) * 2 + 64, n = 0;
    char *out = malloc(cap);
    if (!out) FAIL("out of memory");
    for (const char *p = cmd; *p;) {
        if (strncmp(p, from, strlen(from)) == 0) {
            n += (size_t)snprintf(out + n, cap - n, "%s", host);
            p += strlen(from);
        } else {
            out[n++] = *p++;
        }
        if (n + 64 > cap) FAIL("command too long");
    }
    out[n] = '\0';
    return out;
}

/* The server of the README's examples is the demo's (bench/demo.sh: the same models and experiments). */
#define README_MODELS "[\"gru4rec\",\"itemknn\",\"widedeep\",\"biasedmf\"]"
#define README_EXPERIMENTS                                                                                       \
    "[{\"name\":\"next-demo\",\"salt\":\"next-demo-1\",\"unit\":\"user_id\",\"control\":\"gru4rec\","                 \
    "\"arms\":[{\"name\":\"gru4rec\",\"model\":\"gru4rec\",\"share\":0.5},"                                        \
    "{\"name\":\"itemknn\",\"model\":\"itemknn\",\"share\":0.5}]},"                                                 \
    "{\"name\":\"rank-demo\",\"salt\":\"rank-demo-1\",\"unit\":\"user_id\",\"control\":\"v1\","                      \
    "\"arms\":[{\"name\":\"v1\",\"model\":\"widedeep\",\"version\":\"1\",\"share\":0.5},"                           \
    "{\"name\":\"latest\",\"model\":\"widedeep\",\"share\":0.5}]}]"

/* Train the README's models on synthetic data into dir/snapshots, the way bench/demo.sh does. */
static void train_models(const char *dir)
{
    char out[8192];
    const char *bin = test_recd_bin();
    int rc = test_run(out, sizeof out,
                      "cd %s && %s synth sessions --out sessions.tsv --seed 1 && "
                      "%s synth ctr --out ctr_all.csv --rows 12000 --seed 1 && "
                      "head -n 10001 ctr_all.csv > ctr_train.csv && "
                      "{ head -n 1 ctr_all.csv; tail -n 2000 ctr_all.csv; } > ctr_test.csv",
                      dir, bin, bin);
    if (rc != 0) FAIL("recd synth failed (%d): %s", rc, out);
    rc = test_run(out, sizeof out,
                  "%s train gru4rec -c configs/gru4rec.json --data %s/sessions.tsv --out %s/snapshots --quiet "
                  "--layers '[64]' --epochs 3 --n_sample 256 --batch_size 32 --data.item_col item_id "
                  "--data.time_col timestamp --data.split_time 0",
                  bin, dir, dir);
    if (rc != 0) FAIL("recd train gru4rec failed (%d): %s", rc, out);
    rc = test_run(out, sizeof out,
                  "%s train itemknn -c configs/itemknn.json --data %s/sessions.tsv --out %s/snapshots --quiet "
                  "--data.item_col item_id --data.time_col timestamp --data.split_time 0",
                  bin, dir, dir);
    if (rc != 0) FAIL("recd train itemknn failed (%d): %s", rc, out);
    rc = test_run(out, sizeof out,
                  "%s train widedeep -c bench/demo_ctr.json --train %s/ctr_train.csv --test %s/ctr_test.csv "
                  "--out %s/snapshots",
                  bin, dir, dir, dir);
    if (rc != 0) FAIL("recd train widedeep failed (%d): %s", rc, out);
    rc = test_run(out, sizeof out,
                  "%s synth ratings --out %s/ratings.tsv --seed 1 && %s train biasedmf -c configs/biasedmf.json "
                  "--data %s/ratings.tsv --out %s/snapshots --quiet",
                  bin, dir, bin, dir, dir);
    if (rc != 0) FAIL("recd train biasedmf failed (%d): %s", rc, out);
}

static pid_t start_server(const char *dir, int port)
{
    char port_s[16], root[1024], log[1024], state[1024];
    snprintf(port_s, sizeof port_s, "%d", port);
    snprintf(root, sizeof root, "%s/snapshots", dir);
    snprintf(state, sizeof state, "%s/state", dir);
    snprintf(log, sizeof log, "%s/serve.log", dir);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
        if (!freopen(log, "w", stderr)) _exit(126);
        unsetenv("RECD_PORT");
        unsetenv("RECD_SNAPSHOTS");
        setenv("RECD_ADMIN_TOKEN", "secret", 1); /* the README's reload example */
        execl(test_recd_bin(), "recd", "serve", "-c", "configs/recd.json", "--http.bind", "127.0.0.1",
              "--http.port", port_s, "--http.threads", "2", "--snapshots.root", root, "--snapshots.models",
              README_MODELS, "--state.dir", state, "--experiments", README_EXPERIMENTS, (char *)NULL);
        _exit(127);
    }
    char out[4096];
    for (int i = 0; i < 600; i++) { /* 30 s at most (ASan builds start slowly) */
        if (test_run(out, sizeof out, "curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/readyz", port) ==
                0 &&
            strcmp(out, "200") == 0)
            return pid;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            test_run(out, sizeof out, "cat %s", log);
            FAIL("recd serve exited early: %s", out);
        }
        sleep_ms(50);
    }
    kill(pid, SIGKILL);
    FAIL("recd serve was not ready after 30 s");
}

static int stop_server(pid_t pid)
{
    kill(pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 400; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        sleep_ms(50);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

static void need_curl(void)
{
    char out[256];
    if (test_run(out, sizeof out, "command -v curl") != 0) SKIP("the curl command is not installed (make deps)");
}

TEST_TIMEOUT(readme_curl_examples, 90)
{
    need_curl();
    char *text = readme_text();
    example ex[64];
    int n = parse_examples(text, ex, 64);
    if (n < 8) FAIL("README.md has %d marked examples, expected at least 8", n);
    const char *dir = test_tmpdir();
    train_models(dir);
    int port = test_free_port();
    pid_t pid = start_server(dir, port);
    char host[64], hdr[1024], body[1024];
    snprintf(host, sizeof host, "127.0.0.1:%d", port);
    snprintf(hdr, sizeof hdr, "%s/hdr.txt", dir);
    snprintf(body, sizeof body, "%s/body.txt", dir);
    for (int i = 0; i < n; i++) {
        example *e = &ex[i];
        char *cmd = with_host(e->cmd, host);
        unlink(hdr);
        char out[512];
        int rc = test_run(out, sizeof out, "{ curl() { command curl -D %s \"$@\"; }; %s\n} > %s 2>&1", hdr, cmd, body);
        if (rc != 0) FAIL("README line %d: the example exited with %d: %s", e->line, rc, cmd);
        char *h = slurp(hdr, NULL), *b = slurp(body, NULL);
        if (!h || !b) FAIL("README line %d: no answer from %s", e->line, cmd);
        int status = 0;
        if (sscanf(h, "HTTP/%*s %d", &status) != 1 || status != e->status)
            FAIL("README line %d: status %d, the README says %d: %.400s", e->line, status, e->status, b);
        if (strcmp(e->lang, "json") == 0) json_check(e->answer, b, e->line);
        else if (strcmp(e->lang, "text") == 0) text_check(e->answer, b, e->line);
        else if (strcmp(e->lang, "http") == 0) http_check(e->answer, b, h, e->line);
        else FAIL("README line %d: answer block language '%s' (json, text or http)", e->line, e->lang);
        free(h);
        free(b);
        free(cmd);
        example_free(e);
    }
    ASSERT_EQ(stop_server(pid), 0);
    free(text);
}

/* ------------------------------------------------------------------ make demo */

TEST_TIMEOUT(readme_demo_runs_to_the_end, 90)
{
    need_curl();
    struct stat st;
    if (stat("bench/demo.sh", &st) != 0) FAIL("bench/demo.sh not found (run the tests from the repository root)");
    static char out[1 << 16];
    int port = test_free_port();
    int rc = test_run(out, sizeof out, "DEMO_EXIT=1 RECD_PORT=%d RECD_BIN=%s DEMO_DIR=%s/demo sh bench/demo.sh </dev/null",
                      port, test_recd_bin(), test_tmpdir());
    if (rc != 0) FAIL("bench/demo.sh exited with %d:\n%s", rc, out);
    ASSERT_CONTAINS(out, "gru4rec recall@20=");
    ASSERT_CONTAINS(out, "pop recall@5=");
    ASSERT_CONTAINS(out, "widedeep auc=");
    char listen[64];
    snprintf(listen, sizeof listen, "--http.port %d ", port);
    ASSERT_CONTAINS(out, listen);
    ASSERT_CONTAINS(out, "\"session_id\":\"s1\"");
    ASSERT_CONTAINS(out, "\"unknown_items\":[\"nope\"]");
    ASSERT_CONTAINS(out, "\"probability\":");
    ASSERT_CONTAINS(out, "{\"status\":\"ready\"");
    ASSERT_CONTAINS(out, "recd_sessions 1");
    ASSERT_CONTAINS(out, "Content-Type: application/problem+json");
    /* the retraining loop: experiments, events, reports, export, retrain, swap */
    ASSERT_CONTAINS(out, "\"experiment\":\"rank-demo\"");
    ASSERT_CONTAINS(out, "{\"accepted\":2,\"duplicates\":0");
    ASSERT_CONTAINS(out, "requests to /v1/next, ");
    ASSERT_CONTAINS(out, "requests to /v1/rank, ");
    ASSERT_CONTAINS(out, "  itemknn  version 1: ");
    ASSERT_CONTAINS(out, "(mismatch false)");
    ASSERT_CONTAINS(out, "/ui/experiments/next-demo");
    ASSERT_CONTAINS(out, "recd events export --state ");
    ASSERT_CONTAINS(out, "clicks.tsv: ");
    ASSERT_CONTAINS(out, " positive, 0 skipped");
    ASSERT_CONTAINS(out, "version=2");
    ASSERT_CONTAINS(out, "  gru4rec serves version 2 ");
    ASSERT_CONTAINS(out, "  widedeep serves version 2 ");
    ASSERT_CONTAINS(out, "demo done");
    /* the server it started is gone */
    char log[1024];
    snprintf(log, sizeof log, "%s/demo/serve.log", test_tmpdir());
    char *l = slurp(log, NULL);
    ASSERT(l != NULL);
    ASSERT_CONTAINS(l, "stopped");
    if (strstr(l, "Sanitizer") || strstr(l, "runtime error:")) FAIL("the demo's server reported: %.2000s", l);
    free(l);
}

/* RECD_PORT taken by another program: the demo says so and serves on a free port instead. */
TEST_TIMEOUT(readme_demo_port_taken, 90)
{
    need_curl();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ASSERT(fd >= 0);
    ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ASSERT_EQ(listen(fd, 4), 0);
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    int port = ntohs(a.sin_port);
    static char out[1 << 16];
    int rc = test_run(out, sizeof out, "DEMO_EXIT=1 RECD_PORT=%d RECD_BIN=%s DEMO_DIR=%s/demo sh bench/demo.sh </dev/null",
                      port, test_recd_bin(), test_tmpdir());
    close(fd);
    if (rc != 0) FAIL("bench/demo.sh exited with %d:\n%s", rc, out);
    char want[64];
    snprintf(want, sizeof want, "port %d is taken: using a free one", port);
    ASSERT_CONTAINS(out, want);
    ASSERT_CONTAINS(out, "{\"status\":\"ready\"");
    ASSERT_CONTAINS(out, "demo done");
}

/* ------------------------------------------------------------------ what the README names exists */

/* Every subcommand of `recd --help` and every registered route is documented. */
TEST(readme_documents_every_command_and_route)
{
    char *text = readme_text();
    static const char *cmds[] = {"train", "eval", "split", "synth", "inspect", "serve", "events", NULL};
    char help[8192];
    ASSERT_EQ(test_run(help, sizeof help, "%s --help", test_recd_bin()), 0);
    char want[128];
    for (int i = 0; cmds[i]; i++) {
        snprintf(want, sizeof want, "  recd %s", cmds[i]);
        if (!strstr(help, want)) continue; /* not (or no longer) a subcommand */
        snprintf(want, sizeof want, "recd %s", cmds[i]);
        if (!strstr(text, want)) FAIL("README.md does not document `%s`", want);
    }
    for (const route *r = router_table; r->method; r++) {
        snprintf(want, sizeof want, "%s %s", r->method, r->pattern);
        if (!strstr(text, want)) FAIL("README.md does not document the route `%s`", want);
    }
    free(text);
}

/* flag occurs in text as a whole token (not as the prefix of a longer flag). */
static int has_token(const char *text, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *p = strstr(text, flag); p; p = strstr(p + 1, flag)) {
        char c = p[n];
        if (!(isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-')) return 1;
    }
    return 0;
}

/* Every --flag written in a `recd ...` command line of the README appears in some `recd ... --help`
 * (spelled with '_' or '-'). */
TEST(readme_flags_exist)
{
    char *text = readme_text();
    static char help[1 << 19];
    const char *bin = test_recd_bin();
    /* every model `recd train --help` and `recd eval --help` list, and the other commands */
    int rc = test_run(help, sizeof help,
                      "B=%s; for v in train eval; do for m in $($B $v --help | awk '/^  /{print $1}'); do "
                      "$B $v $m --help || exit 1; done; done; "
                      "for c in 'split' 'split ratings' 'synth' 'inspect' 'serve' 'events export'; do $B $c --help; done",
                      bin);
    ASSERT_EQ(rc, 0);
    int checked = 0;
    for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        size_t len = strcspn(line, "\n");
        const char *r = strstr(line, "recd ");
        if (!r || (size_t)(r - line) >= len) continue;
        for (const char *p = r; p < line + len; p++) {
            if (!(p[0] == '-' && p[1] == '-' && (p == line || p[-1] == ' ' || p[-1] == '`' || p[-1] == '[')))
                continue;
            size_t n = 2;
            while (p + n < line + len && (isalnum((unsigned char)p[n]) || strchr("_.-", p[n]))) n++;
            if (n == 2) continue;
            char flag[128];
            snprintf(flag, sizeof flag, "%.*s", (int)n, p);
            if (strcmp(flag, "--help") == 0 || strcmp(flag, "--version") == 0 || strcmp(flag, "--SETTING") == 0)
                continue;
            /* the flag rule (core/config.h): '-' and '_' are the same in a flag name, --help prints '_' */
            char norm[128];
            snprintf(norm, sizeof norm, "--%s", flag + 2);
            for (char *q = norm + 2; *q; q++)
                if (*q == '-') *q = '_';
            if (!has_token(help, flag) && !has_token(help, norm))
                FAIL("README.md names %s, which no `recd ... --help` lists (line: %.*s)", flag, (int)len, line);
            checked++;
        }
    }
    ASSERT(checked >= 10);
    free(text);
}
