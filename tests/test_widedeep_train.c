/* tests/test_widedeep_train.c - Wide & Deep, the trainer end to end through the CLI: variants and eval on
 * synthetic data, bad rows, gzip input, --quiet, usage errors, and the real datasets (UCI Adult, Criteo and
 * Avazu samples) when present. The model math is in tests/test_widedeep_model.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/rng.h"
#include "core/snap.h"
#include "server/registry.h"
#include "tests/test_server_util.h"
#include "tests/testlib.h"

/* The small spec of the server tests (TSRV_WD_SPEC, tests/test_server_util.h), touching every kind of
 * input. */
static const char *SPEC = TSRV_WD_SPEC;

/* Synthetic CSV: y depends on x1, c1 and the pair (c1, c2). `bad` adds a short row (line 3) and a row
 * with a non-number (line 5). */
static void write_synth_csv(const char *path, int n, uint64_t seed, int header, int bad)
{
    FILE *f = fopen(path, "w");
    ASSERT(f != NULL);
    if (header) fprintf(f, "x1,x2,c1,c2,y\n");
    rng_t r;
    rng_seed(&r, seed);
    static const char *cats[] = {"a", "b", "c", "d", "?"};
    for (int i = 0; i < n; i++) {
        if (bad && i == 2) fprintf(f, "0.1,0.2,a\n");
        if (bad && i == 4) fprintf(f, "zero,0.2,a,k1,1\n");
        double x1 = rng_uniform(&r) * 2 - 1, x2 = rng_normal(&r);
        int c1 = (int)rng_below(&r, 5), c2 = (int)rng_below(&r, 6);
        double z = 2.0 * x1 + (c1 == 0 ? 1.5 : c1 == 2 ? -1.5 : 0) + ((c1 + c2) % 3 == 0 ? 1.0 : -0.5);
        int y = rng_uniform(&r) < 1 / (1 + exp(-z));
        fprintf(f, "%.4f,%.4f,%s,k%d,%d\n", x1, x2, cats[c1], c2, y);
    }
    fclose(f);
}

static void write_config(const char *path, const char *dir, const char *extra)
{
    char buf[4096];
    json_error_t e;
    json_t *j = json_loads(SPEC, 0, &e);
    ASSERT(j != NULL);
    json_t *f = json_object_get(j, "features");
    char *fs = json_dumps(f, JSON_COMPACT);
    snprintf(buf, sizeof buf,
             "{\"columns\":[\"x1\",\"x2\",\"c1\",\"c2\",\"y\"],\"label\":\"y\",\"label_positive\":[\"1\"],"
             "\"label_negative\":[\"0\"],\"train\":\"%s/train.csv\",\"test\":\"%s/test.csv\",\"out\":\"%s/snaps\","
             "\"hidden\":[8,4],\"epochs\":4,\"batch_size\":16,\"learning_rate\":0.1,\"ftrl_alpha\":0.2%s,\"features\":%s}",
             dir, dir, dir, extra, fs);
    free(fs);
    json_decref(j);
    test_write_file(path, buf);
}

static double parse_auc(const char *out)
{
    const char *p = strstr(out, "auc=");
    return p ? atof(p + 4) : -1;
}

TEST(wd_train_cli_variants_and_eval)
{
    const char *d = test_tmpdir();
    char p[512], cfg[512], out[16384];
    snprintf(p, sizeof p, "%s/train.csv", d);
    write_synth_csv(p, 3000, 1, 1, 0);
    snprintf(p, sizeof p, "%s/test.csv", d);
    write_synth_csv(p, 1000, 2, 0, 0);
    snprintf(cfg, sizeof cfg, "%s/wd.json", d);
    write_config(cfg, d, "");
    const char *variants[] = {"widedeep", "wide", "deep"};
    for (int v = 0; v < 3; v++) {
        int st = test_run(out, sizeof out, "%s train widedeep -c %s --model %s 2>&1", test_recd_bin(), cfg, variants[v]);
        if (st != 0) FAIL("train %s exited %d: %s", variants[v], st, out);
        ASSERT_CONTAINS(out, "epoch 4/4");
        ASSERT_CONTAINS(out, "test auc");
        double auc = parse_auc(out);
        if (auc < 0.75) FAIL("%s: auc %.4f too low: %s", variants[v], auc, out);
    }
    /* gzip input reads the same rows */
    int gz = test_run(out, sizeof out, "gzip -c %s/train.csv > %s/train.csv.gz", d, d);
    if (gz == 0) {
        int st = test_run(out, sizeof out, "%s train widedeep -c %s --train %s/train.csv.gz --epochs 1 --version 10 2>&1",
                          test_recd_bin(), cfg, d);
        if (st != 0) FAIL("train from gzip exited %d: %s", st, out);
        ASSERT_CONTAINS(out, "train.csv.gz: 3000 rows (0 bad)");
    }
    /* eval of the last snapshot (deep, version 3) gives the same figures */
    int st = test_run(out, sizeof out, "%s eval widedeep --snapshot %s/snaps/widedeep/3 --data %s/test.csv 2>&1",
                      test_recd_bin(), d, d);
    if (st != 0) FAIL("eval exited %d: %s", st, out);
    ASSERT_CONTAINS(out, "deep auc=");
    ASSERT_CONTAINS(out, "n=1000 bad=0");
}

/* --name publishes under another model name (ROOT/wide/V) that loads as a widedeep type (meta "type"), so
 * that the variants can be served side by side as the arms of an experiment. */
TEST(wd_train_name_publishes_a_served_model)
{
    const char *d = test_tmpdir();
    char p[512], cfg[512], out[16384];
    snprintf(p, sizeof p, "%s/train.csv", d);
    write_synth_csv(p, 600, 1, 1, 0);
    snprintf(p, sizeof p, "%s/test.csv", d);
    write_synth_csv(p, 200, 2, 0, 0);
    snprintf(cfg, sizeof cfg, "%s/wd.json", d);
    write_config(cfg, d, "");
    int st = test_run(out, sizeof out, "%s train widedeep -c %s --model wide --name wide --epochs 1 2>&1",
                      test_recd_bin(), cfg);
    if (st != 0) FAIL("train exited %d: %s", st, out);
    ASSERT_CONTAINS(out, "/snaps/wide/1");
    snprintf(p, sizeof p, "%s/snaps/wide/1", d);
    snap *s = NULL;
    ASSERT_OK(snap_open(&s, p));
    ASSERT_STR_EQ(snap_model(s), "wide");
    ASSERT_STR_EQ(snap_type(s), "widedeep");
    snap_close(s);
    snprintf(p, sizeof p, "%s/snaps", d);
    const char *names[] = {"wide"};
    registry *r = registry_new(p, names, 1);
    ASSERT(r != NULL);
    ASSERT_EQ(registry_scan(r, NULL, 0), 1);
    model_version *v = registry_acquire(r, "wide", NULL);
    ASSERT(v != NULL);
    ASSERT_STR_EQ(v->type_name, "widedeep");
    ASSERT(v->type->rank != NULL);
    registry_release(r, v);
    registry_free(r);
    /* a name that is not a model name is refused */
    st = test_run(out, sizeof out, "%s train widedeep -c %s --name ../x --epochs 1 2>&1", test_recd_bin(), cfg);
    ASSERT(st != 0);
}

TEST(wd_train_bad_rows)
{
    const char *d = test_tmpdir();
    char p[512], cfg[512], out[16384];
    snprintf(p, sizeof p, "%s/train.csv", d);
    write_synth_csv(p, 400, 1, 0, 1);
    snprintf(p, sizeof p, "%s/test.csv", d);
    write_synth_csv(p, 200, 2, 0, 0);
    snprintf(cfg, sizeof cfg, "%s/wd.json", d);
    write_config(cfg, d, "");
    /* two bad rows tolerated: reported with file and line */
    int st = test_run(out, sizeof out, "%s train widedeep -c %s --epochs 1 2>&1", test_recd_bin(), cfg);
    if (st != 0) FAIL("train exited %d: %s", st, out);
    ASSERT_CONTAINS(out, "train.csv:3: bad row skipped: expected 5 columns, got 3");
    ASSERT_CONTAINS(out, "train.csv:6: bad row skipped: column 'x1': 'zero' is not a number");
    ASSERT_CONTAINS(out, "2 bad rows skipped");
    /* a limit of 1 stops training with an error naming the file and line */
    st = test_run(out, sizeof out, "%s train widedeep -c %s --max_bad_rows 1 2>&1", test_recd_bin(), cfg);
    ASSERT_EQ(st, 1);
    ASSERT_CONTAINS(out, "train.csv:6: too many bad rows (2 > max_bad_rows 1)");
    /* config errors are usage errors */
    st = test_run(out, sizeof out, "%s train widedeep -c %s --model both 2>&1", test_recd_bin(), cfg);
    ASSERT_EQ(st, 2);
    st = test_run(out, sizeof out, "%s train widedeep -c %s --hidden '[0]' 2>&1", test_recd_bin(), cfg);
    ASSERT_EQ(st, 1);
    ASSERT_CONTAINS(out, "hidden[0] = 0");
    st = test_run(out, sizeof out, "%s train widedeep -c %s --train %s/nope.csv 2>&1", test_recd_bin(), cfg, d);
    ASSERT_EQ(st, 1);
    ASSERT_CONTAINS(out, "nope.csv");
}

/* ---------------------------------------------------------------- real data (skipped when absent) */

TEST_TIMEOUT(wd_adult_quirks_and_short_training, 120)
{
    const char *dir = test_shared_data("uci-adult");
    if (!dir) SKIP("dataset uci-adult absent");
    char out[16384];
    const char *d = test_tmpdir();
    /* 2 epochs of the real config: adult.test's "|1x3 Cross validator" line, leading spaces and labels
     * with a period must all be handled: no bad rows, 32561 + 16281 rows */
    FILE *cf = fopen("configs/widedeep_adult.json", "r");
    if (!cf) SKIP("configs/widedeep_adult.json not found (run from the repository root)");
    fclose(cf);
    int st = test_run(out, sizeof out,
                      "%s train widedeep -c configs/widedeep_adult.json --train %s/adult.data --test %s/adult.test "
                      "--out %s/snaps --epochs 2 2>&1",
                      test_recd_bin(), dir, dir, d);
    if (st != 0) FAIL("exited %d: %s", st, out);
    ASSERT_CONTAINS(out, "adult.data: 32561 rows (0 bad)");
    ASSERT_CONTAINS(out, "adult.test: 16281 rows (0 bad)");
    double auc = parse_auc(out);
    if (auc < 0.89) FAIL("auc %.4f after 2 epochs: %s", auc, out);
}

/* The Criteo (tab separated, no header, empty = missing) and Avazu (header only on train.csv) samples
 * train end to end with their configs: this proves the formats, not accuracy. */
TEST_TIMEOUT(wd_ctr_samples_end_to_end, 120)
{
    static const struct {
        const char *data, *cfg, *train, *test;
        int rows;
    } sets[] = {
        {"criteo-kaggle-sample", "configs/widedeep_criteo.json", "wide-resdnn-split/train.csv",
         "wide-resdnn-split/test.csv", 7200},
        {"avazu-ctr-sample", "configs/widedeep_avazu.json", "train.csv", "test.csv", 8087},
    };
    int ran = 0;
    for (int i = 0; i < 2; i++) {
        const char *dir = test_shared_data(sets[i].data);
        FILE *cf = fopen(sets[i].cfg, "r");
        if (!dir || !cf) {
            if (cf) fclose(cf);
            continue;
        }
        fclose(cf);
        char out[16384], want[128];
        int st = test_run(out, sizeof out,
                          "%s train widedeep -c %s --train %s/%s --test %s/%s --out %s/snaps --epochs 1 2>&1",
                          test_recd_bin(), sets[i].cfg, dir, sets[i].train, dir, sets[i].test, test_tmpdir());
        if (st != 0) FAIL("%s: exited %d: %s", sets[i].data, st, out);
        snprintf(want, sizeof want, "%s: %d rows (0 bad)", sets[i].train, sets[i].rows);
        ASSERT_CONTAINS(out, want);
        double auc = parse_auc(out);
        if (auc < 0.6) FAIL("%s: auc %.4f: %s", sets[i].data, auc, out);
        ran++;
    }
    if (!ran) SKIP("datasets criteo-kaggle-sample and avazu-ctr-sample absent");
}

/* --quiet, a key every trainer shares (README): only warnings and the result line; the same model and
 * the same meta as without it. */
TEST(wd_train_quiet)
{
    const char *d = test_tmpdir();
    char p[512], cfg[512], err[16384], line[4096], loud[16384];
    snprintf(p, sizeof p, "%s/train.csv", d);
    write_synth_csv(p, 400, 1, 0, 1); /* two bad rows: warnings */
    snprintf(p, sizeof p, "%s/test.csv", d);
    write_synth_csv(p, 200, 2, 0, 0);
    snprintf(cfg, sizeof cfg, "%s/wd.json", d);
    write_config(cfg, d, "");
    int st = test_run(err, sizeof err, "%s train widedeep -c %s --epochs 2 --quiet 2>&1 >%s/quiet.out", test_recd_bin(),
                      cfg, d);
    if (st != 0) FAIL("train --quiet exited %d: %s", st, err);
    ASSERT_CONTAINS(err, "train.csv:3: bad row skipped");
    ASSERT(strstr(err, "epoch ") == NULL);
    ASSERT(strstr(err, "published") == NULL);
    ASSERT(strstr(err, "rows (") == NULL);
    ASSERT_EQ(test_run(line, sizeof line, "cat %s/quiet.out", d), 0);
    ASSERT_EQ(strncmp(line, "widedeep auc=", 13), 0);
    ASSERT(strchr(line, '\n') == line + strlen(line) - 1); /* one line */
    ASSERT_CONTAINS(line, " version=1");
    st = test_run(loud, sizeof loud, "%s train widedeep -c %s --epochs 2 2>&1", test_recd_bin(), cfg);
    if (st != 0) FAIL("train exited %d: %s", st, loud);
    ASSERT_CONTAINS(loud, "epoch 2/2");
    /* the same figures (up to train_s) */
    const char *r = strstr(loud, "widedeep auc=");
    ASSERT(r != NULL);
    size_t n = (size_t)(strstr(line, " train_s=") - line);
    ASSERT_EQ(strncmp(r, line, n), 0);
    /* and the same hyperparameters in the meta: "quiet" is not one */
    json_t *hp[2];
    snap *sn[2];
    for (int v = 0; v < 2; v++) {
        snprintf(p, sizeof p, "%s/snaps/widedeep/%d", d, v + 1);
        ASSERT_OK(snap_open(&sn[v], p));
        hp[v] = json_object_get(snap_meta(sn[v]), "hparams");
        ASSERT(hp[v] != NULL);
        ASSERT(json_object_get(hp[v], "quiet") == NULL);
    }
    ASSERT(json_equal(hp[0], hp[1]));
    snap_close(sn[0]);
    snap_close(sn[1]);
}

TEST(wd_cli_help_and_usage)
{
    char out[16384];
    ASSERT_EQ(test_run(out, sizeof out, "%s train widedeep --help 2>&1", test_recd_bin()), 0);
    ASSERT_CONTAINS(out, "ftrl_l1");
    ASSERT_CONTAINS(out, "dropout");
    ASSERT_EQ(test_run(out, sizeof out, "%s eval widedeep --help 2>&1", test_recd_bin()), 0);
    ASSERT_CONTAINS(out, "--snapshot");
    ASSERT_EQ(test_run(out, sizeof out, "%s eval widedeep --data x 2>&1", test_recd_bin()), 2);
    ASSERT_EQ(test_run(out, sizeof out, "%s train widedeep --epochs 0 2>&1", test_recd_bin()), 2);
    ASSERT_EQ(test_run(out, sizeof out, "%s train --help 2>&1", test_recd_bin()), 0);
    ASSERT_CONTAINS(out, "widedeep");
    ASSERT_EQ(test_run(out, sizeof out, "%s eval widedeep --snapshot %s/none --data x 2>&1", test_recd_bin(),
                       test_tmpdir()), 1);
}

TEST(wd_eval_rejects_bad_max_bad_rows)
{
    char out[4096];
    /* atoll("lots") was 0: any bad row then failed the evaluation with a misleading limit */
    ASSERT_EQ(test_run(out, sizeof out, "%s eval widedeep --snapshot %s/none --data x --max_bad_rows lots 2>&1",
                       test_recd_bin(), test_tmpdir()), 2);
    ASSERT_CONTAINS(out, "setting 'max_bad_rows': expected an integer, got \"lots\"");
    ASSERT_EQ(test_run(out, sizeof out, "%s eval widedeep --snapshot %s/none --data x --max_bad_rows -1 2>&1",
                       test_recd_bin(), test_tmpdir()), 2);
}
