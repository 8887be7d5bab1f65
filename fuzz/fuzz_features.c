/* fuzz/fuzz_features.c - libFuzzer target for models/features.c: the input is tried (1) as a stored
 * feature spec document (feat_spec_from_json, as a snapshot's meta would give it) and, when it parses,
 * a row cut from the input is encoded with it; (2) as the fields of a row encoded with a fixed spec that
 * has every kind of column. Nothing may crash, leak or read out of bounds; encoded ids must be in range.
 *   make fuzz && ./build-fuzz/bin/fuzz_features -max_total_time=60 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "models/features.h"

static const char *FIXED =
    "{\"columns\":[\"n\",\"c\",\"h\",\"y\"],\"label\":\"y\",\"label_positive\":[\"1\"],\"features\":["
    "{\"name\":\"n\",\"type\":\"numeric\",\"log1p\":true,\"normalize\":true,\"mean\":1,\"std\":2,\"wide\":true,\"deep\":\"dense\"},"
    "{\"name\":\"nb\",\"type\":\"numeric\",\"column\":\"n\",\"boundaries\":[0,1,10],\"wide\":true,\"deep\":\"onehot\"},"
    "{\"name\":\"c\",\"type\":\"categorical\",\"vocab\":[\"a\",\"b\"],\"wide\":true,\"deep\":\"onehot\"},"
    "{\"name\":\"h\",\"type\":\"categorical\",\"hash_buckets\":13,\"wide\":true,\"deep\":\"embed\",\"dim\":2},"
    "{\"name\":\"x\",\"type\":\"crossed\",\"cross\":[\"nb\",\"c\",\"h\"],\"hash_buckets\":7,\"wide\":true,\"deep\":\"embed\",\"dim\":3}]}";

static void encode_checked(const feat_spec *s, char **fields, int n)
{
    size_t W = (size_t)(s->nwide ? s->nwide : 1), D = (size_t)(s->deep_dim ? s->deep_dim : 1);
    size_t E = (size_t)(s->nemb ? s->nemb : 1);
    int64_t *wi = calloc(W, sizeof *wi), *ei = calloc(E, sizeof *ei);
    float *wv = calloc(W, sizeof *wv), *dn = calloc(D, sizeof *dn);
    feat_row row = {wi, wv, dn, ei};
    if (wi && ei && wv && dn && feat_encode_fields(s, fields, n, &row) == 0) {
        for (int i = 0; i < s->nwide; i++)
            if (wi[i] < 0 || wi[i] >= s->wide_dim) abort();
        for (int i = 0; i < s->nfeat; i++)
            if (s->f[i].emb >= 0 && (ei[s->f[i].emb] < 0 || ei[s->f[i].emb] >= s->f[i].card)) abort();
    }
    if (s->label >= 0 && s->label < n) (void)feat_label(s, fields[s->label]);
    free(wi);
    free(ei);
    free(wv);
    free(dn);
}

/* Cut text into at most cap fields on ','. */
static int split(char *text, char **fields, int cap)
{
    int n = 0;
    fields[n++] = text;
    for (char *p = text; *p && n < cap; p++)
        if (*p == ',') {
            *p = '\0';
            fields[n++] = p + 1;
        }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    /* (1) a spec document */
    json_t *doc = json_loadb((const char *)data, size, 0, NULL);
    if (doc) {
        feat_spec *s;
        if (feat_spec_from_json(&s, doc) == 0) {
            char *fields[64];
            char row[] = "1,a,b,c,2.5,?,,x";
            int n = split(row, fields, 64);
            while (n < s->ninputs && n < 64) fields[n++] = "";
            if (s->ninputs <= 64) encode_checked(s, fields, s->ninputs);
            json_t *back = feat_spec_to_json(s);
            json_decref(back);
            feat_spec_free(s);
        }
        json_decref(doc);
    }
    /* (2) the input as a row of the fixed spec */
    json_t *fixed = json_loads(FIXED, 0, NULL);
    feat_spec *s;
    if (fixed && feat_spec_from_json(&s, fixed) == 0) {
        char *fields[8];
        int n = split(text, fields, 8);
        encode_checked(s, fields, n);
        while (n < 4) fields[n++] = "";
        encode_checked(s, fields, 4);
        feat_spec_free(s);
    }
    json_decref(fixed);
    free(text);
    return 0;
}
