/* tests/test_config.c - core/config: defaults, files, command line, help, every error message. */
#include "core/config.h"

#include <stdint.h>

#include "tests/testlib.h"

typedef struct {
    long long hidden;
    double lr;
    int shuffle;
    char *name;
    char *loss;
    json_t *extra;
    long long ttl;
    double scale;
    int sticky;
} t_cfg;

static const cfg_def t_defs[] = {
    CFG_INT("hidden", t_cfg, hidden, 100, 1, 65536, "GRU units per layer"),
    CFG_DOUBLE("lr", t_cfg, lr, 0.05, 0, 100, "learning rate"),
    CFG_BOOL("shuffle", t_cfg, shuffle, 0, "shuffle sessions"),
    CFG_STRING("name", t_cfg, name, NULL, "label"),
    CFG_ENUM("loss", t_cfg, loss, "bpr-max", "cross-entropy|bpr-max|top1-max", "loss"),
    CFG_JSON("extra", t_cfg, extra, "{\"a\":[1,2]}", "free-form"),
    CFG_INT("sessions.ttl_s", t_cfg, ttl, 1800, 0, 86400, "session ttl"),
    CFG_DOUBLE("sessions.deep.scale", t_cfg, scale, 1.5, 0, 0, "unbounded"),
    CFG_BOOL("sessions.sticky", t_cfg, sticky, 1, "sticky"),
    CFG_END,
};

static const char *write_cfg(const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/c.json", test_tmpdir());
    test_write_file(path, text);
    return path;
}

TEST(config_defaults_and_release)
{
    t_cfg c;
    memset(&c, 0xAB, sizeof c);
    ASSERT_OK(cfg_defaults(t_defs, &c));
    ASSERT_EQ(c.hidden, 100);
    ASSERT_NEAR(c.lr, 0.05, 0);
    ASSERT_EQ(c.shuffle, 0);
    ASSERT(c.name == NULL);
    ASSERT_STR_EQ(c.loss, "bpr-max");
    ASSERT(json_is_object(c.extra));
    ASSERT_EQ(json_array_size(json_object_get(c.extra, "a")), 2);
    ASSERT_EQ(c.ttl, 1800);
    ASSERT_NEAR(c.scale, 1.5, 0);
    ASSERT_EQ(c.sticky, 1);
    cfg_release(t_defs, &c);
    ASSERT(c.loss == NULL && c.extra == NULL && c.name == NULL);
    cfg_release(t_defs, &c); /* twice is harmless */
}

TEST(config_load_file_nested_and_dotted)
{
    t_cfg c;
    ASSERT_OK(cfg_defaults(t_defs, &c));
    const char *p = write_cfg("{\n"
                              "  \"hidden\": 64,\n"
                              "  \"lr\": 1,\n"
                              "  \"shuffle\": true,\n"
                              "  \"name\": \"exp-1\",\n"
                              "  \"loss\": \"top1-max\",\n"
                              "  \"extra\": {\"x\": null},\n"
                              "  \"sessions\": {\"ttl_s\": 60, \"deep\": {\"scale\": -7.25}},\n"
                              "  \"sessions.sticky\": false,\n"
                              "  \"hidden\": 3e1\n"
                              "}\n");
    /* duplicate key "hidden": refused by the parser */
    ASSERT_RC(cfg_load_file(t_defs, &c, p), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "c.json:10:");
    ASSERT_CONTAINS(rc_errmsg(), "duplicate");
    p = write_cfg("{\n"
                  "  \"hidden\": 64,\n"
                  "  \"lr\": 1,\n"
                  "  \"shuffle\": true,\n"
                  "  \"name\": \"exp-1\",\n"
                  "  \"loss\": \"top1-max\",\n"
                  "  \"extra\": {\"x\": null},\n"
                  "  \"sessions\": {\"ttl_s\": 6e1, \"deep\": {\"scale\": -7.25}},\n"
                  "  \"sessions.sticky\": false\n"
                  "}\n");
    ASSERT_OK(cfg_load_file(t_defs, &c, p));
    ASSERT_EQ(c.hidden, 64);
    ASSERT_NEAR(c.lr, 1.0, 0);
    ASSERT_EQ(c.shuffle, 1);
    ASSERT_STR_EQ(c.name, "exp-1");
    ASSERT_STR_EQ(c.loss, "top1-max");
    ASSERT(json_is_null(json_object_get(c.extra, "x")));
    ASSERT(json_object_get(c.extra, "a") == NULL); /* replaced, not merged */
    ASSERT_EQ(c.ttl, 60);
    ASSERT_NEAR(c.scale, -7.25, 0);
    ASSERT_EQ(c.sticky, 0);
    /* a STRING may be reset to null */
    ASSERT_OK(cfg_load_file(t_defs, &c, write_cfg("{\"name\": null}")));
    ASSERT(c.name == NULL);
    cfg_release(t_defs, &c);
}

/* Each semantic error names the file, the line of the key and the setting. */
TEST(config_file_error_messages)
{
    t_cfg c;
    ASSERT_OK(cfg_defaults(t_defs, &c));
    const char *p = write_cfg("{\n  \"hidden\": 8,\n\n  \"lr\": \"fast\"\n}\n");
    ASSERT_RC(cfg_load_file(t_defs, &c, p), RC_EINVAL);
    char want[600];
    snprintf(want, sizeof want, "%s:4: setting 'lr': expected a number, got \"fast\"", p);
    ASSERT_STR_EQ(rc_errmsg(), want);

    ASSERT_RC(cfg_load_file(t_defs, &c, write_cfg("{\"lr\": 0.1,\n\"hidden\": 2.5}")), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "c.json:2: setting 'hidden': expected an integer, got 2.5");

    ASSERT_RC(cfg_load_file(t_defs, &c, write_cfg("{\"hidden\": \"8\"}")), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "c.json:1: setting 'hidden': expected an integer, got \"8\"");

    ASSERT_RC(cfg_load_file(t_defs, &c, write_cfg("{\n\n\"hidden\": 0}")), RC_ERANGE);
    ASSERT_CONTAINS(rc_errmsg(), "c.json:3: setting 'hidden': value 0 out of range [1, 65536]");

    ASSERT_RC(cfg_load_file(t_defs, &c, write_cfg("{\"hidden\": 1e300}")), RC_ERANGE);
    ASSERT_CONTAINS(rc_errmsg(), "setting 'hidden'");
    ASSERT_CONTAINS(rc_errmsg(), "out of range");

    ASSERT_RC(cfg_load_file(t_defs, &c, write_cfg("{\"lr\": 100.5}")), RC_ERANGE);
    ASSERT_CONTAINS(rc_errmsg(), "c.json:1: setting 'lr': value 100.5 out of range [0, 100]");

    ASSERT_RC(cfg_load_file(t_defs, &c, write_cfg("{\"shuffle\": 1}")), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "setting 'shuffle': expected true or false, got 1");

    ASSERT_RC(cfg_load_file(t_defs, &c, write_cfg("{\"name\": 5}")), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "setting 'name': expected a string, got 5");

    ASSERT_RC(cfg_load_file(t_defs, &c, write_cfg("{\"loss\": \"mse\"}")), RC_ERANGE);
    ASSERT_CONTAINS(
        rc_errmsg(),
        "c.json:1: setting 'loss': expected one of cross-entropy|bpr-max|top1-max, got \"mse\"");
    ASSERT_RC(cfg_load_file(t_defs, &c, write_cfg("{\"loss\": [1]}")), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "setting 'loss': expected a string");

    /* unknown keys, at the top and nested; the line is the key's own line */
    ASSERT_RC(cfg_load_file(t_defs, &c, write_cfg("{\n \"hidden\": 8,\n \"hiden\": 9\n}")),
              RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "c.json:3: unknown setting 'hiden'");
    ASSERT_RC(
        cfg_load_file(t_defs, &c, write_cfg("{\"sessions\": {\n\"ttl_s\": 5,\n \"ttl\": 5}}")),
        RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "c.json:3: unknown setting 'sessions.ttl'");
    /* a group given a scalar */
    ASSERT_RC(cfg_load_file(t_defs, &c, write_cfg("{\"sessions\": 5}")), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "unknown setting 'sessions'");
    /* nested error: line of the inner key, found after its parent's key (not the earlier "ttl_s")
     */
    p = write_cfg("{\n"
                  "  \"ttl_s\": 1,\n"
                  "  \"sessions\": {\n"
                  "    \"ttl_s\": -1\n"
                  "  }\n"
                  "}\n");
    ASSERT_RC(cfg_load_file(t_defs, &c, p), RC_EINVAL); /* top-level "ttl_s" is unknown first */
    ASSERT_CONTAINS(rc_errmsg(), "c.json:2: unknown setting 'ttl_s'");
    /* the same key earlier inside another object, in an array and as a string value is not taken */
    p = write_cfg("{\n"
                  "  \"extra\": {\"hidden\": 1, \"l\": [{\"hidden\": 2}]},\n"
                  "  \"name\": \"hidden\",\n"
                  "  \"sessions\": {\"deep\": {\"hidden\": 3}},\n"
                  "  \"hidden\": 0\n"
                  "}\n");
    ASSERT_RC(cfg_load_file(t_defs, &c, p), RC_EINVAL); /* sessions.deep.hidden is unknown */
    ASSERT_CONTAINS(rc_errmsg(), "c.json:4: unknown setting 'sessions.deep.hidden'");
    p = write_cfg("{\n"
                  "  \"extra\": {\"hidden\": 1, \"l\": [{\"hidden\": 2}]},\n"
                  "  \"name\": \"a \\\"hidden\\\": b\",\n"
                  "  \"sessions\": {\"deep\": {\"scale\": 3}},\n"
                  "  \"hidden\": 0\n"
                  "}\n");
    ASSERT_RC(cfg_load_file(t_defs, &c, p), RC_ERANGE);
    ASSERT_CONTAINS(rc_errmsg(), "c.json:5: setting 'hidden': value 0 out of range");
    /* dotted key at the top next to a nested group of the same prefix */
    p = write_cfg("{\"sessions\": {\"ttl_s\": 1},\n\"sessions.ttl_s\": 1e9}");
    ASSERT_RC(cfg_load_file(t_defs, &c, p), RC_ERANGE);
    ASSERT_CONTAINS(rc_errmsg(), "c.json:2: setting 'sessions.ttl_s'");
    p = write_cfg("{\n"
                  "  \"hidden\": 5,\n"
                  "  \"sessions\": {\n"
                  "    \"deep\": {\"scale\": 1},\n"
                  "    \"ttl_s\": -1\n"
                  "  }\n"
                  "}\n");
    ASSERT_RC(cfg_load_file(t_defs, &c, p), RC_ERANGE);
    ASSERT_CONTAINS(rc_errmsg(),
                    "c.json:5: setting 'sessions.ttl_s': value -1 out of range [0, 86400]");
    ASSERT_RC(cfg_load_file(t_defs, &c, write_cfg("{\"sessions\": {\"sticky\": \"yes\"}}")),
              RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "setting 'sessions.sticky': expected true or false, got \"yes\"");
    cfg_release(t_defs, &c);
}

TEST(config_file_syntax_and_io_errors)
{
    t_cfg c;
    ASSERT_OK(cfg_defaults(t_defs, &c));
    char path[512];
    snprintf(path, sizeof path, "%s/missing.json", test_tmpdir());
    ASSERT_RC(cfg_load_file(t_defs, &c, path), RC_ENOTFOUND);
    ASSERT_CONTAINS(rc_errmsg(), path);
    ASSERT_CONTAINS(rc_errmsg(), "cannot open config file");

    /* line 3, column reported by jansson */
    ASSERT_RC(cfg_load_file(t_defs, &c, write_cfg("{\n \"hidden\": 8,\n \"lr\": }\n")), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "c.json:3:");
    ASSERT_CONTAINS(rc_errmsg(), "invalid JSON");

    ASSERT_RC(cfg_load_file(t_defs, &c, write_cfg("")), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "invalid JSON");

    ASSERT_RC(cfg_load_file(t_defs, &c, write_cfg("[1, 2]")), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "c.json:1: expected a JSON object of settings");

    /* a directory cannot be read */
    ASSERT(cfg_load_file(t_defs, &c, test_tmpdir()) < 0);
    ASSERT_CONTAINS(rc_errmsg(), test_tmpdir());
    /* nothing was applied (every failure came before the first setting); the struct is still valid
     */
    ASSERT_EQ(c.hidden, 100);
    cfg_release(t_defs, &c);
}

TEST(config_load_json_origin)
{
    t_cfg c;
    ASSERT_OK(cfg_defaults(t_defs, &c));
    json_error_t je;
    json_t *root = json_loads(
        "{\"sessions.ttl_s\": 7, \"extra\": [true], \"loss\": \"cross-entropy\"}", 0, &je);
    ASSERT(root);
    ASSERT_OK(cfg_load_json(t_defs, &c, root, "request"));
    ASSERT_EQ(c.ttl, 7);
    ASSERT(json_is_array(c.extra));
    ASSERT_STR_EQ(c.loss, "cross-entropy");
    json_decref(root); /* the setting holds its own copy */
    ASSERT(json_is_true(json_array_get(c.extra, 0)));

    root = json_loads("{\"lr\": null}", 0, &je);
    ASSERT_RC(cfg_load_json(t_defs, &c, root, "request"), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "request: setting 'lr': expected a number, got null");
    json_decref(root);
    root = json_loads("{\"nope\": 1}", 0, &je);
    ASSERT_RC(cfg_load_json(t_defs, &c, root, "request"), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "request: unknown setting 'nope'");
    json_decref(root);
    root = json_integer(3);
    ASSERT_RC(cfg_load_json(t_defs, &c, root, "request"), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "request: expected a JSON object of settings");
    json_decref(root);
    cfg_release(t_defs, &c);
}

TEST(config_set_text_forms)
{
    t_cfg c;
    ASSERT_OK(cfg_defaults(t_defs, &c));
    ASSERT_OK(cfg_set(t_defs, &c, "hidden", "512", "cli"));
    ASSERT_EQ(c.hidden, 512);
    ASSERT_OK(cfg_set(t_defs, &c, "hidden", "1e3", "cli"));
    ASSERT_EQ(c.hidden, 1000);
    ASSERT_OK(cfg_set(t_defs, &c, "lr", "0.125", "cli"));
    ASSERT_NEAR(c.lr, 0.125, 0);
    const char *t[] = {"true", "false", "1", "0"};
    int want[] = {1, 0, 1, 0};
    for (int i = 0; i < 4; i++) {
        ASSERT_OK(cfg_set(t_defs, &c, "shuffle", t[i], "cli"));
        ASSERT_EQ(c.shuffle, want[i]);
    }
    ASSERT_OK(cfg_set(t_defs, &c, "name", "", "cli"));
    ASSERT_STR_EQ(c.name, "");
    ASSERT_OK(cfg_set(t_defs, &c, "loss", "cross-entropy", "cli"));
    ASSERT_STR_EQ(c.loss, "cross-entropy");
    ASSERT_OK(cfg_set(t_defs, &c, "extra", "[1, {\"b\": 2}]", "cli"));
    ASSERT_EQ(json_array_size(c.extra), 2);
    ASSERT_OK(cfg_set(t_defs, &c, "sessions.deep.scale", "-1e9", "cli"));
    ASSERT_NEAR(c.scale, -1e9, 0);

    /* errors leave the value unchanged */
    ASSERT_RC(cfg_set(t_defs, &c, "hidden", "2.5", "cli"), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "cli: setting 'hidden': expected an integer, got \"2.5\"");
    ASSERT_RC(cfg_set(t_defs, &c, "hidden", "12abc", "cli"), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "cli: setting 'hidden': expected an integer, got \"12abc\"");
    ASSERT_RC(cfg_set(t_defs, &c, "hidden", "", "cli"), RC_EINVAL);
    ASSERT_RC(cfg_set(t_defs, &c, "hidden", "70000", "cli"), RC_ERANGE);
    ASSERT_STR_EQ(rc_errmsg(), "cli: setting 'hidden': value 70000 out of range [1, 65536]");
    ASSERT_RC(cfg_set(t_defs, &c, "hidden", "99999999999999999999999", "cli"), RC_ERANGE);
    ASSERT_EQ(c.hidden, 1000);
    ASSERT_RC(cfg_set(t_defs, &c, "lr", "fast", "cli"), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "cli: setting 'lr': expected a number, got \"fast\"");
    ASSERT_RC(cfg_set(t_defs, &c, "lr", "nan", "cli"), RC_EINVAL);
    ASSERT_RC(cfg_set(t_defs, &c, "lr", "-0.5", "cli"), RC_ERANGE);
    ASSERT_STR_EQ(rc_errmsg(), "cli: setting 'lr': value -0.5 out of range [0, 100]");
    ASSERT_RC(cfg_set(t_defs, &c, "lr", "inf", "cli"), RC_ERANGE);
    ASSERT_NEAR(c.lr, 0.125, 0);
    ASSERT_RC(cfg_set(t_defs, &c, "shuffle", "yes", "cli"), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "cli: setting 'shuffle': expected true, false, 1 or 0, got \"yes\"");
    ASSERT_RC(cfg_set(t_defs, &c, "loss", "bpr", "cli"), RC_ERANGE);
    ASSERT_STR_EQ(
        rc_errmsg(),
        "cli: setting 'loss': expected one of cross-entropy|bpr-max|top1-max, got \"bpr\"");
    ASSERT_STR_EQ(c.loss, "cross-entropy");
    ASSERT_RC(cfg_set(t_defs, &c, "extra", "{bad", "cli"), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "cli: setting 'extra': invalid JSON");
    ASSERT_EQ(json_array_size(c.extra), 2);
    ASSERT_RC(cfg_set(t_defs, &c, "sessions", "1", "cli"), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "cli: unknown setting 'sessions'");
    cfg_release(t_defs, &c);
}

TEST(config_parse_args)
{
    t_cfg c;
    ASSERT_OK(cfg_defaults(t_defs, &c));
    char *argv[] = {"train",
                    "gru4rec",
                    "--hidden",
                    "32",
                    "-c",
                    "x.json",
                    "--lr=0.5",
                    "--shuffle",
                    "--data",
                    "d.csv",
                    "--set",
                    "sessions.ttl_s=9",
                    "--set=name=a=b",
                    "--sessions.sticky",
                    "false",
                    "pos2",
                    "--",
                    "--hidden",
                    "7",
                    NULL};
    int argc = (int)(sizeof argv / sizeof argv[0]) - 1;
    const char *keep[] = {"-c", "--data", NULL};
    ASSERT_OK(cfg_parse_args(t_defs, &c, &argc, argv, keep));
    const char *left[] = {"train", "gru4rec", "-c", "x.json",   "--data",
                          "d.csv", "pos2",    "--", "--hidden", "7"};
    ASSERT_EQ(argc, 10);
    for (int i = 0; i < argc; i++)
        ASSERT_STR_EQ(argv[i], left[i]);
    ASSERT(argv[argc] == NULL);
    ASSERT_EQ(c.hidden, 32);
    ASSERT_NEAR(c.lr, 0.5, 0);
    ASSERT_EQ(c.shuffle, 1);
    ASSERT_EQ(c.ttl, 9);
    ASSERT_STR_EQ(c.name, "a=b");
    ASSERT_EQ(c.sticky, 0);

    /* a bool flag followed by a positional word does not eat it */
    char *a2[] = {"x", "--shuffle", "input", "--data=f", NULL};
    argc = 4;
    c.shuffle = 0;
    ASSERT_OK(cfg_parse_args(t_defs, &c, &argc, a2, keep));
    ASSERT_EQ(argc, 3);
    ASSERT_STR_EQ(a2[1], "input");
    ASSERT_STR_EQ(a2[2], "--data=f");
    ASSERT_EQ(c.shuffle, 1);
    cfg_release(t_defs, &c);
}

TEST(config_parse_args_errors)
{
    t_cfg c;
    ASSERT_OK(cfg_defaults(t_defs, &c));
    const char *keep[] = {"--data", NULL};
    /* argv (NULL-terminated), keep list or not, expected rc, message (exact, or a substring) */
    static const struct {
        const char *argv[6];
        int keep, rc, exact;
        const char *msg;
    } cases[] = {
        {{"x", "--hidden", "8", "--bogus", "1"}, 1, RC_EINVAL, 1, "unknown option '--bogus'"},
        {{"x", "--bogus=3"}, 0, RC_EINVAL, 1, "unknown option '--bogus'"},
        {{"x", "--lr"}, 1, RC_EINVAL, 1, "command line: setting 'lr': option --lr needs a value"},
        {{"x", "--lr", "abc"}, 1, RC_EINVAL, 1,
         "command line: setting 'lr': expected a number, got \"abc\""},
        {{"x", "--set", "hidden"}, 1, RC_EINVAL, 0, "--set expects name=value"},
        {{"x", "--set"}, 1, RC_EINVAL, 0, "--set needs name=value"},
        {{"x", "--set", "nope=1"}, 1, RC_EINVAL, 1, "command line: unknown setting 'nope'"},
        {{"x", "--hidden=0"}, 1, RC_ERANGE, 1,
         "command line: setting 'hidden': value 0 out of range [1, 65536]"},
        {{"x", "--shuffle=maybe"}, 1, RC_EINVAL, 0, "setting 'shuffle'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[7] = {0};
        int argc = 0;
        while (cases[i].argv[argc]) {
            argv[argc] = (char *)cases[i].argv[argc];
            argc++;
        }
        ASSERT_RC(cfg_parse_args(t_defs, &c, &argc, argv, cases[i].keep ? keep : NULL),
                  cases[i].rc);
        if (cases[i].exact)
            ASSERT_STR_EQ(rc_errmsg(), cases[i].msg);
        else
            ASSERT_CONTAINS(rc_errmsg(), cases[i].msg);
    }
    cfg_release(t_defs, &c);
}

TEST(config_to_json_roundtrip)
{
    t_cfg c, d;
    ASSERT_OK(cfg_defaults(t_defs, &c));
    ASSERT_OK(cfg_set(t_defs, &c, "name", "n1", "t"));
    ASSERT_OK(cfg_set(t_defs, &c, "sessions.deep.scale", "0.1", "t"));
    json_t *j = cfg_to_json(t_defs, &c);
    ASSERT(j);
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(j, "sessions"), "ttl_s")), 1800);
    ASSERT_NEAR(json_real_value(json_object_get(
                    json_object_get(json_object_get(j, "sessions"), "deep"), "scale")),
                0.1, 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "loss")), "bpr-max");
    ASSERT(json_is_false(json_object_get(j, "shuffle")));
    /* load it back into a fresh struct: identical values */
    ASSERT_OK(cfg_defaults(t_defs, &d));
    ASSERT_OK(cfg_set(t_defs, &d, "hidden", "7", "t"));
    ASSERT_OK(cfg_load_json(t_defs, &d, j, "roundtrip"));
    ASSERT_EQ(d.hidden, c.hidden);
    ASSERT_STR_EQ(d.name, "n1");
    ASSERT_NEAR(d.scale, 0.1, 0);
    ASSERT(json_equal(d.extra, c.extra));
    json_decref(j);
    /* a NULL string serialises as null, and null loads back as NULL */
    ASSERT_OK(cfg_set(t_defs, &d, "hidden", "9", "t"));
    free(d.name);
    d.name = NULL;
    j = cfg_to_json(t_defs, &d);
    ASSERT(j);
    ASSERT(json_is_null(json_object_get(j, "name")));
    ASSERT_OK(cfg_load_json(t_defs, &c, j, "roundtrip"));
    ASSERT(c.name == NULL);
    ASSERT_EQ(c.hidden, 9);
    json_decref(j);
    cfg_release(t_defs, &c);
    cfg_release(t_defs, &d);
}

TEST(config_print_help)
{
    char path[512];
    snprintf(path, sizeof path, "%s/help.txt", test_tmpdir());
    FILE *f = fopen(path, "w+");
    ASSERT(f);
    cfg_print_help(t_defs, f);
    long n = ftell(f);
    ASSERT(n > 0);
    char *buf = calloc(1, (size_t)n + 1);
    rewind(f);
    ASSERT_EQ(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    ASSERT_CONTAINS(buf, "--hidden");
    ASSERT_CONTAINS(buf, "[1, 65536]");
    ASSERT_CONTAINS(buf, "cross-entropy|bpr-max|top1-max");
    ASSERT_CONTAINS(buf, "--sessions.ttl_s");
    ASSERT_CONTAINS(buf, "GRU units per layer");
    ASSERT_CONTAINS(buf, "0.05");
    int lines = 0;
    for (char *p = buf; *p; p++)
        lines += *p == '\n';
    ASSERT_EQ(lines, 10); /* header + 9 settings */
    free(buf);
}

TEST(config_parse_args_keep_wins)
{
    t_cfg c;
    ASSERT_OK(cfg_defaults(t_defs, &c));
    /* "--name" is both a setting and a flag the caller parses itself: keep wins, the value stays
     * too.
     * "--help" is always left for the caller. */
    const char *keep[] = {"--name", NULL};
    char *a[] = {"x", "--name", "mine", "--help", "--name=also", "--hidden", "9", NULL};
    int argc = 7;
    ASSERT_OK(cfg_parse_args(t_defs, &c, &argc, a, keep));
    ASSERT_EQ(argc, 5);
    ASSERT_STR_EQ(a[1], "--name");
    ASSERT_STR_EQ(a[2], "mine");
    ASSERT_STR_EQ(a[3], "--help");
    ASSERT_STR_EQ(a[4], "--name=also");
    ASSERT(c.name == NULL);
    ASSERT_EQ(c.hidden, 9);
    /* argc 0 and 1: nothing to do */
    char *b[] = {"x", NULL};
    argc = 1;
    ASSERT_OK(cfg_parse_args(t_defs, &c, &argc, b, NULL));
    ASSERT_EQ(argc, 1);
    argc = 0;
    ASSERT_OK(cfg_parse_args(t_defs, &c, &argc, b, NULL));
    ASSERT_EQ(argc, 0);
    cfg_release(t_defs, &c);
}

TEST(config_unknown_names_suggest)
{
    t_cfg c;
    ASSERT_OK(cfg_defaults(t_defs, &c));
    ASSERT_RC(cfg_load_file(t_defs, &c, write_cfg("{\n\"hiden\": 8}")), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "c.json:2: unknown setting 'hiden' (did you mean 'hidden'?)");
    ASSERT_RC(cfg_set(t_defs, &c, "sessions.ttl", "5", "cli"), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(),
                  "cli: unknown setting 'sessions.ttl' (did you mean 'sessions.ttl_s'?)");
    char *a[] = {"x", "--suffle", NULL};
    int argc = 2;
    ASSERT_RC(cfg_parse_args(t_defs, &c, &argc, a, NULL), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "unknown option '--suffle' (did you mean '--shuffle'?)");
    /* a name that is the last component of a setting: that setting */
    char *a2[] = {"x", "--ttl_s", "5", NULL};
    argc = 3;
    ASSERT_RC(cfg_parse_args(t_defs, &c, &argc, a2, NULL), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "unknown option '--ttl_s' (did you mean '--sessions.ttl_s'?)");
    /* nothing close: no hint */
    ASSERT_RC(cfg_set(t_defs, &c, "zzzzzzzz", "5", "cli"), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "cli: unknown setting 'zzzzzzzz'");
    cfg_release(t_defs, &c);
}

/* Mistakes in a table are reported by cfg_defaults, naming the setting. */
TEST(config_bad_table_defaults)
{
    typedef struct {
        char *e;
        json_t *j;
    } bad_cfg;
    static const cfg_def bad_enum[] = {CFG_ENUM("mode", bad_cfg, e, "fast", "slow|medium", "m"),
                                       CFG_END};
    static const cfg_def bad_json[] = {CFG_ENUM("mode", bad_cfg, e, "slow", "slow|medium", "m"),
                                       CFG_JSON("j", bad_cfg, j, "{oops", "j"), CFG_END};
    bad_cfg b;
    ASSERT_RC(cfg_defaults(bad_enum, &b), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "setting 'mode': default \"fast\" is not one of slow|medium");
    ASSERT_RC(cfg_defaults(bad_json, &b), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "setting 'j': default is not valid JSON");
    ASSERT(b.e == NULL && b.j == NULL); /* released on failure */
}

TEST(config_number_formatting)
{
    t_cfg c;
    ASSERT_OK(cfg_defaults(t_defs, &c));
    /* 0.1 and friends print short, big integers print exactly */
    ASSERT_RC(cfg_load_file(t_defs, &c, write_cfg("{\"lr\": 100.1}")), RC_ERANGE);
    ASSERT_CONTAINS(rc_errmsg(), "value 100.1 out of range [0, 100]");
    ASSERT_RC(cfg_load_file(t_defs, &c, write_cfg("{\"hidden\": 0.1}")), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "expected an integer, got 0.1");
    ASSERT_RC(cfg_set(t_defs, &c, "hidden", "9007199254740993", "cli"), RC_ERANGE);
    ASSERT_STR_EQ(rc_errmsg(),
                  "cli: setting 'hidden': value 9007199254740993 out of range [1, 65536]");
    /* an unbounded INT (min == max == 0) takes any long long */
    typedef struct {
        long long v;
    } u_cfg;
    static const cfg_def u_defs[] = {CFG_INT("v", u_cfg, v, 0, 0, 0, "unbounded"), CFG_END};
    u_cfg u;
    ASSERT_OK(cfg_defaults(u_defs, &u));
    ASSERT_OK(cfg_set(u_defs, &u, "v", "-9223372036854775808", "cli"));
    ASSERT(u.v == INT64_MIN);
    ASSERT_OK(cfg_set(u_defs, &u, "v", "9223372036854775807", "cli"));
    ASSERT(u.v == INT64_MAX);
    ASSERT_RC(cfg_set(u_defs, &u, "v", "9223372036854775808", "cli"), RC_ERANGE);
    cfg_release(t_defs, &c);
}

TEST(config_odd_inputs)
{
    t_cfg c;
    ASSERT_OK(cfg_defaults(t_defs, &c));
    /* a string value with an embedded NUL (possible in a json_t built in memory) */
    json_t *root = json_object();
    json_object_set_new(root, "name", json_stringn("a\0b", 3));
    ASSERT_RC(cfg_load_json(t_defs, &c, root, "mem"), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "mem: setting 'name': string contains a NUL byte");
    json_decref(root);
    ASSERT_RC(cfg_set(t_defs, &c, "lr", NULL, "cli"), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "cli: setting 'lr': missing value");
    ASSERT_RC(cfg_set(t_defs, &c, NULL, "1", "cli"), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "unknown setting");
    /* NULL origin reads "config" */
    ASSERT_RC(cfg_set(t_defs, &c, "lr", "x", NULL), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "config: setting 'lr': expected a number, got \"x\"");
    /* a long bad value is cut in the message */
    char big[300];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ASSERT_RC(cfg_set(t_defs, &c, "lr", big, "cli"), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "qqq...\"");
    ASSERT(strlen(rc_errmsg()) < 150);
    /* deeply nested unknown groups stop at the first unknown key */
    ASSERT_RC(cfg_load_file(t_defs, &c, write_cfg("{\"a\": {\"b\": {\"c\": {}}}}")), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "c.json:1: unknown setting 'a'");
    /* an empty object changes nothing */
    ASSERT_OK(cfg_load_file(t_defs, &c, write_cfg("  {\n}\n")));
    ASSERT_OK(cfg_load_file(t_defs, &c, write_cfg("{\"sessions\": {}}")));
    cfg_release(t_defs, &c);
}

/* On error, argc/argv hold exactly the args not consumed, in order (documented in config.c): the
 * settings already applied are gone, the failing option and what follows are kept. */
TEST(config_parse_args_error_leaves_rest)
{
    t_cfg c;
    ASSERT_OK(cfg_defaults(t_defs, &c));
    const char *keep[] = {"--data", NULL};
    char *a1[] = {"x", "pos", "--hidden", "8", "--data", "f", "--bogus", "1", "tail", NULL};
    int argc = 9;
    ASSERT_RC(cfg_parse_args(t_defs, &c, &argc, a1, keep), RC_EINVAL);
    ASSERT_EQ(argc, 7);
    ASSERT_STR_EQ(a1[0], "x");
    ASSERT_STR_EQ(a1[1], "pos");
    ASSERT_STR_EQ(a1[2], "--data");
    ASSERT_STR_EQ(a1[3], "f");
    ASSERT_STR_EQ(a1[4], "--bogus");
    ASSERT_STR_EQ(a1[5], "1");
    ASSERT_STR_EQ(a1[6], "tail");
    ASSERT(a1[7] == NULL);
    ASSERT_EQ(c.hidden, 8); /* applied before the error */
    cfg_release(t_defs, &c);
}

/* A table with both "a" and "a.b" cannot be serialised: the error says so (it read "out of memory"). */
typedef struct {
    long long a, ab;
} clash_cfg;
static const cfg_def clash_defs[] = {
    CFG_INT("a", clash_cfg, a, 1, 0, 0, "a"),
    CFG_INT("a.b", clash_cfg, ab, 2, 0, 0, "a.b"),
    CFG_END,
};

static const cfg_def clash_defs_rev[] = {
    CFG_INT("a.b", clash_cfg, ab, 2, 0, 0, "a.b"),
    CFG_INT("a", clash_cfg, a, 1, 0, 0, "a"),
    CFG_END,
};

TEST(config_to_json_clash_named)
{
    clash_cfg c;
    ASSERT_OK(cfg_defaults(clash_defs, &c));
    json_t *j = cfg_to_json(clash_defs, &c);
    ASSERT(j == NULL);
    ASSERT_CONTAINS(rc_errmsg(), "setting 'a.b' clashes");
    /* the other order used to drop "a.b" silently (its group object overwritten by "a") */
    j = cfg_to_json(clash_defs_rev, &c);
    ASSERT(j == NULL);
    ASSERT_CONTAINS(rc_errmsg(), "setting 'a' clashes");
    cfg_release(clash_defs, &c);
}

/* Renamed settings: the old name in a file (with its line), a flag (either spelling) or cfg_set is
 * refused with RC_EINVAL and a message naming the new one; renamed entries have no field, default,
 * help line or JSON key, and are never suggested. */
typedef struct {
    long long epochs;
    char *out;
} r_cfg;

static const cfg_def r_defs[] = {
    CFG_INT("epochs", r_cfg, epochs, 10, 0, 1000, "training epochs"),
    CFG_STRING("out", r_cfg, out, "snapshots", "snapshot root"),
    CFG_RENAMED("n_epochs", "epochs"),
    CFG_RENAMED("out_dir", "out"),
    CFG_RENAMED_NOTE("no_sort", "data.sort_by_time", "write --data.sort_by_time false"),
    CFG_RENAMED("old.deep", "epochs"),
    CFG_END,
};

TEST(config_renamed_settings)
{
    r_cfg c;
    memset(&c, 0xAB, sizeof c);
    ASSERT_OK(cfg_defaults(r_defs, &c));
    ASSERT_EQ(c.epochs, 10);
    ASSERT_STR_EQ(c.out, "snapshots");
    /* file: flat, and a dotted old name written nested */
    ASSERT_RC(cfg_load_file(r_defs, &c, write_cfg("{\"epochs\": 3,\n  \"n_epochs\": 5}")), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "c.json:2: setting 'n_epochs' is now called 'epochs'");
    ASSERT_RC(cfg_load_file(r_defs, &c, write_cfg("{\"old\": {\n\n \"deep\": 1}}")), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "c.json:3: setting 'old.deep' is now called 'epochs'");
    json_t *j = json_pack("{s:s}", "out_dir", "x");
    ASSERT_RC(cfg_load_json(r_defs, &c, j, "meta"), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "meta: setting 'out_dir' is now called 'out'");
    json_decref(j);
    /* cfg_set */
    ASSERT_RC(cfg_set(r_defs, &c, "out_dir", "/tmp", "cli"), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "cli: setting 'out_dir' is now called 'out'");
    ASSERT_STR_EQ(c.out, "snapshots");
    /* flags: both spellings, = form, --set, and a note */
    const char *forms[][3] = {{"--n_epochs", "4", "--n_epochs"}, {"--n-epochs", "4", "--n-epochs"},
                              {"--n-epochs=4", NULL, "--n-epochs"}};
    for (int k = 0; k < 3; k++) {
        char *a[] = {"x", (char *)forms[k][0], (char *)forms[k][1], NULL};
        int argc = forms[k][1] ? 3 : 2;
        ASSERT_RC(cfg_parse_args(r_defs, &c, &argc, a, NULL), RC_EINVAL);
        char want[128];
        snprintf(want, sizeof want, "command line: option %s: setting 'n_epochs' is now called 'epochs'", forms[k][2]);
        ASSERT_STR_EQ(rc_errmsg(), want);
    }
    char *s1[] = {"x", "--set", "out_dir=/tmp", NULL};
    int argc = 3;
    ASSERT_RC(cfg_parse_args(r_defs, &c, &argc, s1, NULL), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "command line: setting 'out_dir' is now called 'out'");
    char *s2[] = {"x", "--no-sort", NULL};
    argc = 2;
    ASSERT_RC(cfg_parse_args(r_defs, &c, &argc, s2, NULL), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "command line: option --no-sort: setting 'no_sort' is now called "
                               "'data.sort_by_time': write --data.sort_by_time false");
    ASSERT_EQ(c.epochs, 3); /* from the first file (keys before the error apply); never 4 */
    /* not in help, JSON or suggestions */
    char buf[4096];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    cfg_print_help(r_defs, f);
    fclose(f);
    ASSERT(strstr(buf, "--epochs") != NULL);
    ASSERT(strstr(buf, "n_epochs") == NULL && strstr(buf, "out_dir") == NULL && strstr(buf, "renamed") == NULL);
    json_t *out = cfg_to_json(r_defs, &c);
    ASSERT(out != NULL);
    ASSERT_EQ(json_object_size(out), 2);
    json_decref(out);
    char *s3[] = {"x", "--out_di", "y", NULL};
    argc = 3;
    ASSERT_RC(cfg_parse_args(r_defs, &c, &argc, s3, NULL), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "unknown option '--out_di'");
    cfg_release(r_defs, &c);
}

/* The flag spelling rule: '-' and '_' are the same in flag names (settings, --set, the keep list);
 * file keys are exact; a table naming a setting with '-' is refused. */
TEST(config_flag_dashes)
{
    t_cfg c;
    ASSERT_OK(cfg_defaults(t_defs, &c));
    char *a[] = {"x", "--sessions.ttl-s", "7", "--sessions.deep.scale=2", "--set", "sessions.ttl-s=9", "--my-flag",
                 "v", "--my_flag=w", NULL};
    int argc = 9;
    const char *keep[] = {"--my_flag", NULL};
    ASSERT_OK(cfg_parse_args(t_defs, &c, &argc, a, keep));
    ASSERT_EQ(c.ttl, 9);
    ASSERT_NEAR(c.scale, 2, 0);
    ASSERT_EQ(argc, 4); /* the keep flag in both spellings, with its value */
    ASSERT_STR_EQ(a[1], "--my-flag");
    ASSERT_STR_EQ(a[2], "v");
    ASSERT_STR_EQ(a[3], "--my_flag=w");
    char *b[] = {"x", "--sessions.ttl-s", "7", NULL};
    argc = 3;
    ASSERT_OK(cfg_parse_args(t_defs, &c, &argc, b, NULL));
    ASSERT_EQ(c.ttl, 7);
    /* values keep their dashes */
    char *d[] = {"x", "--loss", "top1-max", NULL};
    argc = 3;
    ASSERT_OK(cfg_parse_args(t_defs, &c, &argc, d, NULL));
    ASSERT_STR_EQ(c.loss, "top1-max");
    /* a file key is exact */
    ASSERT_RC(cfg_load_file(t_defs, &c, write_cfg("{\"sessions\": {\"ttl-s\": 5}}")), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "unknown setting 'sessions.ttl-s'");
    cfg_release(t_defs, &c);
    typedef struct {
        long long v;
    } dash_cfg;
    static const cfg_def dash[] = {CFG_INT("bad-name", dash_cfg, v, 1, 0, 2, "x"), CFG_END};
    dash_cfg dc;
    ASSERT_RC(cfg_defaults(dash, &dc), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "setting 'bad-name': a setting name is written with '_', not '-'");
}
