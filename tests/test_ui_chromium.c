/* tests/test_ui_chromium.c - the experiment page (/ui/experiments/{name}) in headless Chromium: the page
 * renders (an SVG with a line and an interval band per arm), and every number it shows for an arm
 * (elements with data-arm, data-field, data-value) equals the JSON report's. Skips, saying so, when no
 * Chromium is installed (Debian's `chromium` package; `make deps` installs it, CI has it).
 * RECD_UI_SCREENSHOT=FILE.png keeps the page's screenshot there (1200x900). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "tests/test_server_util.h"
#include "tests/testlib.h"

/* The Chromium binary in PATH (chromium, chromium-browser), or NULL. */
static const char *find_chromium(void)
{
    static char found[1100];
    const char *names[] = {"chromium", "chromium-browser", NULL};
    const char *path = getenv("PATH");
    if (!path) return NULL;
    for (int n = 0; names[n]; n++) {
        const char *p = path;
        while (*p) {
            const char *e = strchr(p, ':');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            snprintf(found, sizeof found, "%.*s/%s", (int)len, p, names[n]);
            if (len && access(found, X_OK) == 0) return found;
            p += len + (e ? 1 : 0);
        }
    }
    return NULL;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    if (b) b[n] = '\0';
    fclose(f);
    return b;
}

/* Run Chromium headless on url with extra flags; its stdout into out_file. */
static void chromium(const char *bin, const char *url, const char *flags, const char *out_file)
{
    char log[4096];
    int st = test_run(log, sizeof log,
                      "'%s' --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run "
                      "--user-data-dir='%s/chromium-profile' --virtual-time-budget=5000 %s '%s' > '%s' 2>'%s/chromium.log'",
                      bin, test_tmpdir(), flags, url, out_file, test_tmpdir());
    if (st != 0) {
        char err[4096];
        test_run(err, sizeof err, "tail -n 20 '%s/chromium.log'", test_tmpdir());
        FAIL("chromium exited %d: %s %s", st, log, err);
    }
}

/* The value of attribute name in the tag [tag, end) (NULL when absent); copied into buf. */
static const char *attr(const char *tag, const char *end, const char *name, char *buf, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, " %s=\"", name);
    size_t pl = strlen(pat);
    for (const char *p = tag; p + pl < end; p++) {
        if (memcmp(p, pat, pl) != 0) continue;
        const char *v = p + pl, *q = memchr(v, '"', (size_t)(end - v));
        if (!q) return NULL;
        snprintf(buf, cap, "%.*s", (int)(q - v), v);
        return buf;
    }
    return NULL;
}

/* The JSON value at path "a.b.0" of o, or NULL. */
static const json_t *at_path(const json_t *o, const char *path)
{
    char buf[160];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *v = o;
    for (char *save = NULL, *t = strtok_r(buf, ".", &save); t && v; t = strtok_r(NULL, ".", &save))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(t)) : json_object_get(v, t);
    return v;
}

static const json_t *arm_of(const json_t *rep, const char *name)
{
    const json_t *arms = json_object_get(rep, "arms");
    for (size_t i = 0; i < json_array_size(arms); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(arms, i), "name")), name) == 0)
            return json_array_get(arms, i);
    return NULL;
}

#define EXP_JSON                                                                                              \
    "\"experiments\":[{\"name\":\"home\",\"salt\":\"ui-salt\",\"control\":\"wide\","                           \
    "\"arms\":[{\"name\":\"wide\",\"model\":\"wide\",\"share\":0.5},{\"name\":\"deep\",\"model\":\"deep\","     \
    "\"share\":0.5}]}]"

TEST_TIMEOUT(ui_chromium_experiment_page, 180)
{
    const char *bin = find_chromium();
    if (!bin) SKIP("no chromium in PATH (apt-get install chromium; `make deps` does)");
    char root[1024], cfg[2048];
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir());
    mkdir(root, 0755);
    wd_model_free(tsrv_publish_wd(root, "wide", 21, 6, 5, NULL));
    wd_model_free(tsrv_publish_wd(root, "deep", 22, 7, 4, NULL));
    snprintf(cfg, sizeof cfg,
             "\"snapshots.models\":[\"wide\",\"deep\"],\"state.dir\":\"%s/state\",\"events.history_s\":1,%s",
             test_tmpdir(), EXP_JSON);
    tsrv s;
    tsrv_start(&s, cfg, 1);
    /* traffic in three rounds a second apart (history points of 1 s): 60 users, some acquire */
    char body[1024];
    for (int round = 0; round < 3; round++) {
        for (int u = round * 20; u < round * 20 + 20; u++) {
            snprintf(body, sizeof body,
                     "{\"user_id\":\"user-%d\",\"experiment\":\"home\",\"k\":2,\"context\":{\"x1\":0.%d},"
                     "\"candidates\":[{\"item_id\":\"a\",\"features\":{\"c1\":\"a\"}},{\"item_id\":\"b\","
                     "\"features\":{\"c1\":\"b\"}},{\"item_id\":\"c\"}]}",
                     u, u % 10);
            json_t *a = tsrv_post(&s, "/v1/rank", body, 200);
            const char *rid = json_string_value(json_object_get(a, "request_id"));
            const char *item = json_string_value(json_object_get(json_array_get(json_object_get(a, "items"), 0), "item_id"));
            ASSERT(rid && item);
            if (u % 3 == 0 || (u % 7 == 0 && strcmp(json_string_value(json_object_get(a, "arm")), "deep") == 0)) {
                snprintf(body, sizeof body,
                         "[{\"request_id\":\"%s\",\"type\":\"click\",\"item_id\":\"%s\"},"
                         "{\"request_id\":\"%s\",\"type\":\"acquisition\",\"item_id\":\"%s\",\"value\":%d}]",
                         rid, item, rid, item, u + 1);
                json_decref(tsrv_post(&s, "/v1/events", body, 200));
            }
            json_decref(a);
        }
        if (round < 2) tsrv_sleep_ms(1100);
    }
    /* the impressions are committed (within events.flush_ms) */
    json_t *rep = NULL;
    for (int t = 0; t < 200; t++) {
        tresp r;
        ASSERT_EQ(tsrv_http(&s, "GET", "/v1/experiments/home", NULL, 0, NULL, &r), 0);
        ASSERT_EQ(r.status, 200);
        double n = json_number_value(json_object_get(arm_of(r.json, "wide"), "impressions")) +
                   json_number_value(json_object_get(arm_of(r.json, "deep"), "impressions"));
        if (n == 60) {
            rep = r.json;
            r.json = NULL;
        }
        tresp_free(&r);
        if (rep) break;
        tsrv_sleep_ms(25);
    }
    ASSERT(rep != NULL);

    char url[256], dom_file[1100];
    snprintf(url, sizeof url, "%s/ui/experiments/home?refresh=60", s.base);
    snprintf(dom_file, sizeof dom_file, "%s/dom.html", test_tmpdir());
    chromium(bin, url, "--dump-dom", dom_file);
    char *dom = read_all(dom_file);
    ASSERT(dom != NULL);
    ASSERT_CONTAINS(dom, "data-rendered=\"1\"");
    ASSERT_CONTAINS(dom, "<svg");
    const char *arms[] = {"wide", "deep"};
    char pat[96];
    for (int a = 0; a < 2; a++) {
        snprintf(pat, sizeof pat, "data-series=\"%s\"", arms[a]);
        ASSERT_CONTAINS(dom, pat);
        snprintf(pat, sizeof pat, "data-band=\"%s\"", arms[a]);
        ASSERT_CONTAINS(dom, pat);
        snprintf(pat, sizeof pat, "<path d=\"M");
        ASSERT_CONTAINS(dom, pat);
    }
    /* every number of an arm on the page equals the report's */
    int checked[2] = {0, 0}, acq_seen[2] = {0, 0}, lift_seen = 0;
    for (const char *p = strstr(dom, "data-arm=\""); p; p = strstr(p + 1, "data-arm=\"")) {
        const char *tag = p, *end = strchr(p, '>');
        while (tag > dom && *tag != '<') tag--;
        ASSERT(end != NULL);
        char armb[64], field[128], value[128];
        if (!attr(tag, end, "data-arm", armb, sizeof armb) || !attr(tag, end, "data-field", field, sizeof field))
            continue; /* a row marker (data-arm-row) */
        ASSERT(attr(tag, end, "data-value", value, sizeof value) != NULL);
        const json_t *arm = arm_of(rep, armb);
        if (!arm) FAIL("the page shows an arm '%s' the report does not have", armb);
        const json_t *v = at_path(arm, field);
        int ai = strcmp(armb, "wide") == 0 ? 0 : 1;
        if (!v || json_is_null(v)) {
            if (strcmp(value, "null") != 0) FAIL("%s %s: page %s, report null", armb, field, value);
        } else {
            ASSERT(json_is_number(v));
            double want = json_number_value(v), got = strtod(value, NULL);
            if (got != want) FAIL("%s %s: page %s, report %.17g", armb, field, value, want);
        }
        checked[ai]++;
        if (strcmp(field, "acquisitions") == 0) acq_seen[ai] = 1;
        if (strcmp(field, "lift.p") == 0) lift_seen = 1;
    }
    ASSERT(checked[0] >= 15 && checked[1] >= 20);
    ASSERT(acq_seen[0] && acq_seen[1] && lift_seen);
    /* the trust checks: SRM and multiple exposure with the report's numbers */
    ASSERT_CONTAINS(dom, "id=\"srm\"");
    ASSERT_CONTAINS(dom, "data-field=\"multi_arm_units\" data-value=\"0\"");
    free(dom);

    /* an unknown experiment: the page says so (and the route answers 404) */
    snprintf(url, sizeof url, "%s/ui/experiments/nope", s.base);
    chromium(bin, url, "--dump-dom", dom_file);
    dom = read_all(dom_file);
    ASSERT(dom != NULL);
    ASSERT_CONTAINS(dom, "data-error=\"404\"");
    ASSERT_CONTAINS(dom, "No experiment");
    free(dom);

    /* a screenshot (a second run): a PNG of a real size */
    char png[1100];
    const char *keep = getenv("RECD_UI_SCREENSHOT");
    snprintf(png, sizeof png, "%s", keep && *keep ? keep : "");
    if (!png[0]) snprintf(png, sizeof png, "%s/page.png", test_tmpdir());
    char flags[1300];
    snprintf(flags, sizeof flags, "--hide-scrollbars --window-size=1200,900 --screenshot='%s'", png);
    snprintf(url, sizeof url, "%s/ui/experiments/home?refresh=60", s.base);
    snprintf(dom_file, sizeof dom_file, "%s/screenshot.out", test_tmpdir());
    chromium(bin, url, flags, dom_file);
    struct stat sb;
    ASSERT_EQ(stat(png, &sb), 0);
    ASSERT(sb.st_size > 20000);
    json_decref(rep);
    ASSERT_EQ(tsrv_stop(&s), 0);
}
