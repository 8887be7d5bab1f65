/* tests/test_cli.c - the recd binary on bad input: non-zero exit and a one-line message that names
 * the problem (file and line where relevant). Also the happy path of split / eval / synth. */
#include "tests/testlib.h"

static char out[8192];

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* Runs `recd ARGS` (stdout+stderr into out); returns the exit status. */
#define RECD(...) test_run(out, sizeof out, "%s " __VA_ARGS__)

#define ASSERT_ONE_LINE_ERROR(status)                                                        \
    do {                                                                                     \
        ASSERT_NE(status, 0);                                                                \
        if (count_lines(out) != 1) FAIL("expected a one-line message, got:\n%s", out);       \
    } while (0)

TEST(cli_unknown_command)
{
    int st = RECD("frobnicate 2>&1", test_recd_bin());
    ASSERT_EQ(st, 2);
    ASSERT_ONE_LINE_ERROR(st);
    ASSERT_CONTAINS(out, "unknown command 'frobnicate'");
}

TEST(cli_unknown_flag)
{
    int st = RECD("split sessions --data x --out y --frobnicate 1 2>&1", test_recd_bin());
    ASSERT_EQ(st, 2);
    ASSERT_ONE_LINE_ERROR(st);
    ASSERT_CONTAINS(out, "unknown option '--frobnicate'");
    st = RECD("eval pop --bogus 2>&1", test_recd_bin());
    ASSERT_EQ(st, 2);
    ASSERT_ONE_LINE_ERROR(st);
    ASSERT_CONTAINS(out, "--bogus");
    st = RECD("synth sessions --out x --bogus 1 2>&1", test_recd_bin());
    ASSERT_EQ(st, 2);
    ASSERT_ONE_LINE_ERROR(st);
    ASSERT_CONTAINS(out, "--bogus");
    st = RECD("split sessions --days many --data x --out y 2>&1", test_recd_bin());
    ASSERT_EQ(st, 2);
    ASSERT_ONE_LINE_ERROR(st);
    ASSERT_CONTAINS(out, "setting 'days': expected a number, got \"many\"");
    st = RECD("split sessions --data 2>&1", test_recd_bin());
    ASSERT_EQ(st, 2);
    ASSERT_ONE_LINE_ERROR(st);
    ASSERT_CONTAINS(out, "needs a value");
    st = RECD("eval nosuchmodel 2>&1", test_recd_bin());
    ASSERT_EQ(st, 2);
    ASSERT_CONTAINS(out, "unknown model 'nosuchmodel'");
}

/* Old spellings of the unified trainer keys are refused with the new name, in every trainer. */
TEST(cli_renamed_trainer_keys)
{
    static const struct {
        const char *args, *expect;
    } R[] = {
        {"train gru4rec --n_epochs 1", "setting 'n_epochs' is now called 'epochs'"},
        {"train gru4rec --out-dir x", "setting 'out_dir' is now called 'out'"},
        {"train widedeep --batch 8", "setting 'batch' is now called 'batch_size'"},
        {"train widedeep --lr 0.1", "setting 'lr' is now called 'learning_rate'"},
        {"train widedeep --blas_threads 1", "setting 'blas_threads' is now called 'threads'"},
        {"train gru4rec --lanes 8", "setting 'lanes' is now called 'eval_lanes'"},
        {"train itemknn --lanes 8", "setting 'lanes' is now called 'eval_lanes'"},
        {"eval gru4rec --lanes 8", "setting 'lanes' is now called 'eval_lanes'"},
        {"eval pop --lanes 8", "setting 'lanes' is now called 'eval_lanes'"},
    };
    for (size_t i = 0; i < sizeof R / sizeof R[0]; i++) {
        int st = test_run(out, sizeof out, "%s %s 2>&1", test_recd_bin(), R[i].args);
        if (st != 2) FAIL("recd %s: exit %d, want 2: %s", R[i].args, st, out);
        ASSERT_CONTAINS(out, R[i].expect);
    }
}

TEST(cli_missing_file)
{
    int st = RECD("split sessions --data %s/nope.csv --out %s/out --quiet 2>&1", test_recd_bin(), test_tmpdir(),
                  test_tmpdir());
    ASSERT_EQ(st, 1);
    ASSERT_ONE_LINE_ERROR(st);
    ASSERT_CONTAINS(out, "nope.csv");
    ASSERT_CONTAINS(out, "No such file");
    st = RECD("eval pop --train %s/nope.tsv --test %s/nope2.tsv --quiet 2>&1", test_recd_bin(), test_tmpdir(),
              test_tmpdir());
    ASSERT_EQ(st, 1);
    ASSERT_ONE_LINE_ERROR(st);
    ASSERT_CONTAINS(out, "nope.tsv");
}

TEST(cli_malformed_config)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "%s/bad.json", test_tmpdir());
    test_write_file(cfg, "{\n  \"lr\": 0.1,\n  oops\n}\n");
    /* Any command that reads a config file must refuse it with the file and line. */
    const char *cmds[] = {"serve -c", "train widedeep -c"};
    int tried = 0;
    for (int i = 0; i < 2; i++) {
        int st = RECD("%s %s --quiet 2>&1 </dev/null", test_recd_bin(), cmds[i], cfg);
        if (strstr(out, "unknown command") || strstr(out, "unknown model")) continue;
        tried++;
        ASSERT_ONE_LINE_ERROR(st);
        ASSERT_CONTAINS(out, "bad.json:3");
    }
    if (!tried) SKIP("no command reading a config file is registered yet");
}

TEST(cli_bad_timestamp_names_file_line_field)
{
    char data[1024];
    snprintf(data, sizeof data, "%s/clicks.tsv", test_tmpdir());
    test_write_file(data, "session_id\titem_id\ttimestamp\n1\ta\t100\n1\tb\tyesterday\n");
    int st = RECD("split sessions --data %s --out %s/o 2>&1", test_recd_bin(), data, test_tmpdir());
    ASSERT_EQ(st, 1);
    ASSERT_ONE_LINE_ERROR(st);
    ASSERT_CONTAINS(out, "clicks.tsv:3:");
    ASSERT_CONTAINS(out, "'timestamp'");
    ASSERT_CONTAINS(out, "yesterday");
    /* A missing column names it. */
    test_write_file(data, "session\titem_id\ttimestamp\n1\ta\t100\n");
    st = RECD("eval pop --data %s 2>&1", test_recd_bin(), data);
    ASSERT_EQ(st, 1);
    ASSERT_ONE_LINE_ERROR(st);
    ASSERT_CONTAINS(out, "clicks.tsv:1:");
    ASSERT_CONTAINS(out, "session_id");
}

TEST(cli_synth_split_eval_roundtrip)
{
    const char *bin = test_recd_bin(), *t = test_tmpdir();
    ASSERT_EQ(RECD("synth sessions --out %s/s.tsv.gz --seed 9 2>&1", bin, t), 0);
    int st = RECD("split sessions --data %s/s.tsv.gz --out %s/split --time-unit s --quiet", bin, t, t);
    if (st != 0) FAIL("split failed: %s", out);
    ASSERT_CONTAINS(out, "train: ");
    ASSERT_CONTAINS(out, "predictions");
    long long preds = -1;
    const char *p = strstr(out, "sessions, ");
    p = p ? strstr(p + 1, "sessions, ") : NULL;
    if (p) preds = atoll(p + strlen("sessions, "));
    ASSERT(preds > 100);
    /* From the files and from the raw data: the same line. */
    static char l1[sizeof out], l2[sizeof out];
    st = RECD("eval recentpop --train %s/split/train.tsv --test %s/split/test.tsv --quiet", bin, t, t);
    ASSERT_EQ(st, 0);
    snprintf(l1, sizeof l1, "%s", out);
    st = RECD("eval recentpop --data %s/s.tsv.gz --time-unit s --quiet", bin, t);
    ASSERT_EQ(st, 0);
    snprintf(l2, sizeof l2, "%s", out);
    ASSERT_STR_EQ(l1, l2);
    ASSERT_CONTAINS(l1, "recentpop recall@5=");
    ASSERT_CONTAINS(l1, " mrr@20=");
    char want[64];
    snprintf(want, sizeof want, "predictions=%lld\n", preds);
    ASSERT_CONTAINS(l1, want);
    ASSERT_EQ(count_lines(l1), 1);
    ASSERT_EQ(RECD("--help", bin), 0);
    ASSERT_CONTAINS(out, "recd split sessions");
    ASSERT_CONTAINS(out, "recd synth sessions|ratings|ctr");
    ASSERT_EQ(RECD("eval --help", bin), 0);
    ASSERT_CONTAINS(out, "recentpop");
}

/* `recd split sessions` takes --data=F and --out=DIR like its split flags; a longer flag that only
 * starts with --data is still unknown. */
TEST(cli_split_equals_form)
{
    const char *bin = test_recd_bin(), *t = test_tmpdir();
    ASSERT_EQ(RECD("synth sessions --out %s/s.tsv --sessions 400 2>&1", bin, t), 0);
    int st = RECD("split sessions --data=%s/s.tsv --out=%s/o --time-unit=s --quiet 2>&1", bin, t, t);
    if (st != 0) FAIL("split failed: %s", out);
    ASSERT_CONTAINS(out, "wrote ");
    char p[1024];
    snprintf(p, sizeof p, "%s/o/test.tsv", t);
    FILE *f = fopen(p, "r");
    ASSERT(f != NULL);
    fclose(f);
    st = RECD("split sessions --database x --out y 2>&1", bin);
    ASSERT_EQ(st, 2);
    ASSERT_ONE_LINE_ERROR(st);
    ASSERT_CONTAINS(out, "unknown option '--database'");
}

/* The result line of `recd eval pop` is its output: failing to write it is a failure (exit 1). */
TEST(cli_eval_stdout_write_error)
{
    const char *bin = test_recd_bin(), *t = test_tmpdir();
    FILE *full = fopen("/dev/full", "w");
    if (!full) SKIP("no /dev/full");
    fclose(full);
    ASSERT_EQ(RECD("synth sessions --out %s/s.tsv --sessions 400 2>&1", bin, t), 0);
    int st = RECD("eval pop --data %s/s.tsv --time-unit s --quiet 2>&1 >/dev/full", bin, t);
    ASSERT_EQ(st, 1);
    ASSERT_CONTAINS(out, "cannot write the result");
}
