/* models/gru4rec.c - GRU4Rec model: parameters, initialisation, snapshot I/O and the serving math.
 * Training (forward/backward, losses, optimiser, batching) is in models/gru4rec_train.c. */
#include "models/gru4rec.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "models/gru4rec_impl.h"
#include "models/gru4rec_kern.h"
#include "models/gru4rec_settings.h"

static const char *const loss_names[] = {"cross-entropy", "bpr-max", "top1-max"};

const char *gru4rec_loss_name(int loss)
{
    return loss >= 0 && loss < 3 ? loss_names[loss] : "unknown";
}

int gru4rec_loss_parse(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, loss_names[i]) == 0) return i;
    return -1;
}

/* The defaults are written in models/gru4rec_settings.h only (the trainer's settings table uses them). */
void gru4rec_hparams_default(gru4rec_hparams *hp)
{
    memset(hp, 0, sizeof *hp);
    hp->n_layers = 1;
    hp->layers[0] = GRU4REC_DEFAULT_LAYER;
    hp->loss = gru4rec_loss_parse(GRU4REC_DEFAULT_LOSS);
#define HP_DEFAULT(key, field, def, ...) hp->field = def;
    GRU4REC_HPARAMS(HP_DEFAULT, HP_DEFAULT, HP_DEFAULT)
#undef HP_DEFAULT
}

int gru4rec_hparams_check(const gru4rec_hparams *hp)
{
    if (hp->n_layers < 1 || hp->n_layers > GRU4REC_MAX_LAYERS)
        return rc_error(RC_EINVAL, "gru4rec: layers: need 1..%d layers, got %d", GRU4REC_MAX_LAYERS,
                        hp->n_layers);
    for (int l = 0; l < hp->n_layers; l++)
        if (hp->layers[l] < 1 || hp->layers[l] > 65536)
            return rc_error(RC_EINVAL, "gru4rec: layers[%d]: size %d out of 1..65536", l, hp->layers[l]);
    if (hp->embedding < 0) return rc_error(RC_EINVAL, "gru4rec: embedding: negative (%d)", hp->embedding);
    if (hp->loss < 0 || hp->loss > 2) return rc_error(RC_EINVAL, "gru4rec: loss: unknown (%d)", hp->loss);
    if (hp->batch_size < 1) return rc_error(RC_EINVAL, "gru4rec: batch_size: must be >= 1");
    if (hp->n_sample < 0) return rc_error(RC_EINVAL, "gru4rec: n_sample: must be >= 0");
    if (!(hp->dropout_embed >= 0 && hp->dropout_embed < 1))
        return rc_error(RC_EINVAL, "gru4rec: dropout_p_embed: must be in [0,1)");
    if (!(hp->dropout_hidden >= 0 && hp->dropout_hidden < 1))
        return rc_error(RC_EINVAL, "gru4rec: dropout_p_hidden: must be in [0,1)");
    if (!(hp->learning_rate > 0)) return rc_error(RC_EINVAL, "gru4rec: learning_rate: must be > 0");
    if (!(hp->momentum >= 0 && hp->momentum < 1))
        return rc_error(RC_EINVAL, "gru4rec: momentum: must be in [0,1)");
    if (hp->n_sample > 0 && hp->sample_cache < hp->n_sample)
        return rc_error(RC_EINVAL, "gru4rec: sample_cache: must hold at least one batch of samples");
    return RC_OK;
}

json_t *gru4rec_hparams_to_json(const gru4rec_hparams *hp)
{
    json_t *o = json_object(), *ly = json_array();
    if (!o || !ly) goto fail;
    for (int l = 0; l < hp->n_layers; l++) json_array_append_new(ly, json_integer(hp->layers[l]));
    json_object_set_new(o, "layers", ly);
    ly = NULL;
    json_object_set_new(o, "loss", json_string(gru4rec_loss_name(hp->loss)));
    json_object_set_new(o, "constrained_embedding", json_boolean(hp->constrained));
    json_object_set_new(o, "embedding", json_integer(hp->embedding));
    json_object_set_new(o, "elu_param", json_real(hp->elu_param));
    json_object_set_new(o, "bpreg", json_real(hp->bpreg));
    json_object_set_new(o, "logq", json_real(hp->logq));
    json_object_set_new(o, "batch_size", json_integer(hp->batch_size));
    json_object_set_new(o, "n_sample", json_integer(hp->n_sample));
    json_object_set_new(o, "sample_alpha", json_real(hp->sample_alpha));
    json_object_set_new(o, "sample_cache", json_integer(hp->sample_cache));
    json_object_set_new(o, "learning_rate", json_real(hp->learning_rate));
    json_object_set_new(o, "momentum", json_real(hp->momentum));
    json_object_set_new(o, "dropout_p_embed", json_real(hp->dropout_embed));
    json_object_set_new(o, "dropout_p_hidden", json_real(hp->dropout_hidden));
    return o;
fail:
    json_decref(o);
    json_decref(ly);
    rc_error(RC_ENOMEM, "gru4rec: out of memory building hparams JSON");
    return NULL;
}

/* Fill hp from a JSON object written by gru4rec_hparams_to_json (missing fields keep their value). */
static int hparams_from_json(gru4rec_hparams *hp, const json_t *o)
{
    if (!json_is_object(o)) return rc_error(RC_ECORRUPT, "gru4rec: meta hparams is not an object");
    const json_t *ly = json_object_get(o, "layers");
    if (!json_is_array(ly) || json_array_size(ly) < 1 || json_array_size(ly) > GRU4REC_MAX_LAYERS)
        return rc_error(RC_ECORRUPT, "gru4rec: meta hparams.layers: expected 1..%d sizes", GRU4REC_MAX_LAYERS);
    hp->n_layers = (int)json_array_size(ly);
    for (int l = 0; l < hp->n_layers; l++) {
        const json_t *v = json_array_get(ly, (size_t)l);
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65536)
            return rc_error(RC_ECORRUPT, "gru4rec: meta hparams.layers[%d]: bad size", l);
        hp->layers[l] = (int)json_integer_value(v);
    }
    const json_t *v;
    if ((v = json_object_get(o, "loss")) && json_is_string(v)) {
        int ls = gru4rec_loss_parse(json_string_value(v));
        if (ls < 0) return rc_error(RC_ECORRUPT, "gru4rec: meta hparams.loss: unknown '%s'", json_string_value(v));
        hp->loss = ls;
    }
    if ((v = json_object_get(o, "constrained_embedding"))) hp->constrained = json_is_true(v);
    if ((v = json_object_get(o, "embedding")) && json_is_integer(v)) hp->embedding = (int)json_integer_value(v);
#define NUM_(key, field)                                                     \
    if ((v = json_object_get(o, key)) && json_is_number(v)) hp->field = json_number_value(v);
    NUM_("elu_param", elu_param)
    NUM_("bpreg", bpreg)
    NUM_("logq", logq)
    NUM_("sample_alpha", sample_alpha)
    NUM_("learning_rate", learning_rate)
    NUM_("momentum", momentum)
    NUM_("dropout_p_embed", dropout_embed)
    NUM_("dropout_p_hidden", dropout_hidden)
#undef NUM_
    if ((v = json_object_get(o, "batch_size")) && json_is_integer(v)) hp->batch_size = (int)json_integer_value(v);
    if ((v = json_object_get(o, "n_sample")) && json_is_integer(v)) hp->n_sample = (int)json_integer_value(v);
    if ((v = json_object_get(o, "sample_cache")) && json_is_integer(v)) hp->sample_cache = json_integer_value(v);
    if (hp->embedding < 0) return rc_error(RC_ECORRUPT, "gru4rec: meta hparams.embedding negative");
    return RC_OK;
}

/* ---- layout ---- */

static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

size_t gru4rec_layout(gru4rec *m, float *base)
{
    const gru4rec_hparams *hp = &m->hp;
    size_t pos = 0;
#define TAKE_(ptr, count)                              \
    do {                                               \
        (ptr) = base ? base + pos : NULL;              \
        pos += pad16((size_t)(count));                 \
    } while (0)
    m->L = hp->n_layers;
    int HL = hp->layers[m->L - 1];
    m->onehot = !hp->constrained && hp->embedding == 0;
    m->in0 = hp->constrained ? HL : (hp->embedding > 0 ? hp->embedding : (int)m->N);
    m->S = 0;
    m->Hmax = 0;
    for (int l = 0; l < m->L; l++) {
        m->off[l] = m->S;
        m->S += (size_t)hp->layers[l];
        if (hp->layers[l] > m->Hmax) m->Hmax = hp->layers[l];
    }
    TAKE_(m->Wy, (size_t)m->N * (size_t)HL);
    TAKE_(m->By, m->N);
    m->E = NULL;
    if (!hp->constrained && hp->embedding > 0) TAKE_(m->E, (size_t)m->N * (size_t)hp->embedding);
    for (int l = 0; l < m->L; l++) {
        gru4rec_layer *ly = &m->lay[l];
        ly->H = hp->layers[l];
        ly->in = l == 0 ? m->in0 : hp->layers[l - 1];
        TAKE_(ly->Wx, (size_t)ly->in * 3 * (size_t)ly->H);
        TAKE_(ly->Wh, (size_t)ly->H * 3 * (size_t)ly->H);
        TAKE_(ly->bx, 3 * (size_t)ly->H);
        TAKE_(ly->bh, 3 * (size_t)ly->H);
    }
#undef TAKE_
    return pos;
}

/* ---- common finishing: popularity order and fingerprint ---- */

static int cmp_pop(const void *a, const void *b, void *ctx)
{
    const int64_t *counts = ctx;
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    if (counts[i] != counts[j]) return counts[i] > counts[j] ? -1 : 1;
    return (i > j) - (i < j);
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void compute_fingerprint(gru4rec *m)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv1a(h, "gru4rec", 7);
    int64_t dims[2 + GRU4REC_MAX_LAYERS] = {m->N, m->L};
    for (int l = 0; l < m->L; l++) dims[2 + l] = m->lay[l].H;
    h = fnv1a(h, dims, sizeof dims);
    for (int64_t i = 0; i < m->N; i++) {
        size_t len = 0;
        const char *k = idmap_key(m->items, i, &len);
        uint64_t ln = len;
        h = fnv1a(h, &ln, sizeof ln);
        if (k) h = fnv1a(h, k, len);
    }
    m->fingerprint = h;
}

/* Sets m->popular from m->counts: most clicked first, ties by index. */
static int compute_popular(gru4rec *m)
{
    m->popular = malloc((size_t)m->N * sizeof *m->popular);
    if (!m->popular) return rc_error(RC_ENOMEM, "gru4rec: out of memory (popular)");
    for (int64_t i = 0; i < m->N; i++) m->popular[i] = (int32_t)i;
    qsort_r(m->popular, (size_t)m->N, sizeof *m->popular, cmp_pop, m->counts);
    return RC_OK;
}

/* ---- construction ---- */

static void init_uniform(rng_t *r, float *w, size_t rows, size_t cols, size_t ld, size_t col0, size_t ncols)
{
    /* block w[:, col0:col0+ncols] of a (rows, ld) matrix, sigma from the block's own shape (rows, cols) */
    float sigma = (float)sqrt(6.0 / (double)(rows + cols));
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < ncols; j++) w[i * ld + col0 + j] = (2.0f * rng_uniformf(r) - 1.0f) * sigma;
}

int gru4rec_new_random(gru4rec **out, const gru4rec_hparams *hp, const idmap *items, const int64_t *counts,
                       uint64_t seed)
{
    *out = NULL;
    int rc = gru4rec_hparams_check(hp);
    if (rc) return rc;
    if (!items || idmap_size(items) == 0) return rc_error(RC_EINVAL, "gru4rec: empty item vocabulary");
    if (idmap_size(items) > INT32_MAX) return rc_error(RC_EINVAL, "gru4rec: too many items");
    if (hp->constrained && hp->embedding > 0 && hp->embedding != hp->layers[hp->n_layers - 1])
        return rc_error(RC_EINVAL, "gru4rec: constrained embedding needs embedding = 0 or the last layer size");
    gru4rec *m = calloc(1, sizeof *m);
    if (!m) return rc_error(RC_ENOMEM, "gru4rec: out of memory");
    m->hp = *hp;
    if (m->hp.constrained) m->hp.embedding = 0;
    m->N = (int64_t)idmap_size(items);
    m->items = items;
    size_t n = gru4rec_layout(m, NULL);
    m->params = aligned_alloc(64, pad16(n) * sizeof(float));
    m->counts = malloc((size_t)m->N * sizeof *m->counts);
    if (!m->params || !m->counts) {
        rc = rc_error(RC_ENOMEM, "gru4rec: out of memory (%zu parameters)", n);
        goto fail;
    }
    memset(m->params, 0, n * sizeof(float));
    m->n_params = n;
    gru4rec_layout(m, m->params);
    for (int64_t i = 0; i < m->N; i++) m->counts[i] = counts ? counts[i] : 1;

    /* Official compatibility-mode initialisation order: input embedding, per layer the three gate
     * blocks of Wx then of Wh, then Wy. Biases are zero. */
    rng_t r;
    rng_seed(&r, seed);
    size_t N = (size_t)m->N;
    if (m->E) init_uniform(&r, m->E, N, (size_t)hp->embedding, (size_t)hp->embedding, 0, (size_t)hp->embedding);
    for (int l = 0; l < m->L; l++) {
        gru4rec_layer *ly = &m->lay[l];
        size_t H = (size_t)ly->H, in = (size_t)ly->in;
        for (int g = 0; g < 3; g++) init_uniform(&r, ly->Wx, in, H, 3 * H, (size_t)g * H, H);
        for (int g = 0; g < 3; g++) init_uniform(&r, ly->Wh, H, H, 3 * H, (size_t)g * H, H);
    }
    size_t HL = (size_t)m->lay[m->L - 1].H;
    init_uniform(&r, m->Wy, N, HL, HL, 0, HL);

    if ((rc = compute_popular(m))) goto fail;
    compute_fingerprint(m);
    *out = m;
    return RC_OK;
fail:
    gru4rec_free(m);
    return rc;
}

void gru4rec_free(gru4rec *m)
{
    if (!m) return;
    free(m->params);
    free(m->popular);
    free(m->counts);
    idmap_free(m->owned_items);
    free(m);
}

/* ---- accessors ---- */

int64_t gru4rec_n_items(const gru4rec *m) { return m->N; }
size_t gru4rec_state_size(const gru4rec *m) { return m->S; }
const idmap *gru4rec_items(const gru4rec *m) { return m->items; }
uint64_t gru4rec_state_fingerprint(const gru4rec *m) { return m->fingerprint; }
const int32_t *gru4rec_popular(const gru4rec *m) { return m->popular; }
const gru4rec_hparams *gru4rec_hparams_of(const gru4rec *m) { return &m->hp; }
const int64_t *gru4rec_counts(const gru4rec *m) { return m->counts; }

float *gru4rec_params_buf(gru4rec *m, size_t *n)
{
    if (n) *n = m->params ? m->n_params : 0;
    return m->params;
}

/* ---- snapshot I/O ---- */

int gru4rec_save(const gru4rec *m, const char *root, const char *name, const json_t *extra_meta,
                 uint64_t *version)
{
    snap_writer *w = NULL;
    json_t *meta = NULL;
    int rc = snap_writer_open(&w, root, name ? name : "gru4rec", 0);
    if (rc) return rc;
    char tn[64];
    int64_t HL = m->lay[m->L - 1].H;
    int64_t shp[2];
    shp[0] = m->N;
    shp[1] = HL;
    if ((rc = snap_put_tensor(w, "Wy", SNAP_F32, 2, shp, m->Wy))) goto fail;
    if ((rc = snap_put_tensor(w, "By", SNAP_F32, 1, shp, m->By))) goto fail;
    if (m->E) {
        shp[1] = m->hp.embedding;
        if ((rc = snap_put_tensor(w, "E", SNAP_F32, 2, shp, m->E))) goto fail;
    }
    for (int l = 0; l < m->L; l++) {
        const gru4rec_layer *ly = &m->lay[l];
        shp[0] = ly->in;
        shp[1] = 3 * (int64_t)ly->H;
        snprintf(tn, sizeof tn, "l%d.Wx", l);
        if ((rc = snap_put_tensor(w, tn, SNAP_F32, 2, shp, ly->Wx))) goto fail;
        shp[0] = ly->H;
        snprintf(tn, sizeof tn, "l%d.Wh", l);
        if ((rc = snap_put_tensor(w, tn, SNAP_F32, 2, shp, ly->Wh))) goto fail;
        snprintf(tn, sizeof tn, "l%d.bx", l);
        if ((rc = snap_put_tensor(w, tn, SNAP_F32, 1, shp + 1, ly->bx))) goto fail;
        snprintf(tn, sizeof tn, "l%d.bh", l);
        if ((rc = snap_put_tensor(w, tn, SNAP_F32, 1, shp + 1, ly->bh))) goto fail;
    }
    shp[0] = m->N;
    if ((rc = snap_put_tensor(w, "popular", SNAP_I32, 1, shp, m->popular))) goto fail;
    if ((rc = snap_put_tensor(w, "counts", SNAP_I64, 1, shp, m->counts))) goto fail;
    if ((rc = snap_put_vocab(w, "items", m->items))) goto fail;

    meta = json_object();
    if (!meta) {
        rc = rc_error(RC_ENOMEM, "gru4rec: out of memory (meta)");
        goto fail;
    }
    if (extra_meta && json_is_object(extra_meta)) json_object_update(meta, (json_t *)extra_meta);
    json_t *hj = gru4rec_hparams_to_json(&m->hp);
    if (!hj) {
        rc = RC_ENOMEM;
        goto fail;
    }
    json_object_set_new(meta, "hparams", hj);
    json_object_set_new(meta, "n_items", json_integer(m->N));
    json_object_set_new(meta, "state_size", json_integer((json_int_t)m->S));
    json_object_set(meta, "layers", json_object_get(hj, "layers"));
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)m->fingerprint);
    json_object_set_new(meta, "state_fingerprint", json_string(fp));
    if ((rc = snap_set_meta(w, meta))) goto fail;
    json_decref(meta);
    meta = NULL;
    return snap_writer_publish(w, version);
fail:
    json_decref(meta);
    snap_writer_abort(w);
    return rc;
}

static const float *expect_f32(const snap *s, const char *name, int ndim, int64_t d0, int64_t d1, int *rc)
{
    int64_t shp[2] = {d0, d1};
    const snap_tensor *t = snap_tensor_expect(s, name, SNAP_F32, ndim, shp);
    if (!t) {
        *rc = RC_ECORRUPT;
        return NULL;
    }
    return t->data;
}

int gru4rec_load(gru4rec **out, const snap *s)
{
    *out = NULL;
    int rc = RC_OK;
    const json_t *meta = snap_meta(s);
    gru4rec *m = calloc(1, sizeof *m);
    if (!m) return rc_error(RC_ENOMEM, "gru4rec: out of memory");
    gru4rec_hparams_default(&m->hp);
    const json_t *hj = meta ? json_object_get(meta, "hparams") : NULL;
    const json_t *nj = meta ? json_object_get(meta, "n_items") : NULL;
    if (!hj || !json_is_integer(nj) || json_integer_value(nj) < 1 || json_integer_value(nj) > INT32_MAX) {
        rc = rc_error(RC_ECORRUPT, "gru4rec: %s: meta lacks hparams or a valid n_items", snap_dir(s));
        goto fail;
    }
    if ((rc = hparams_from_json(&m->hp, hj))) {
        rc_wrap(rc, "%s", snap_dir(s));
        goto fail;
    }
    if (m->hp.constrained) m->hp.embedding = 0;
    m->N = json_integer_value(nj);
    gru4rec_layout(m, NULL);
    int64_t N = m->N, HL = m->hp.layers[m->L - 1];
    /* zero-copy: the pointers go into the read-only map and are never written (m->params == NULL) */
    m->Wy = (float *)expect_f32(s, "Wy", 2, N, HL, &rc);
    if (!m->Wy) goto fail;
    m->By = (float *)expect_f32(s, "By", 1, N, 0, &rc);
    if (!m->By) goto fail;
    if (!m->hp.constrained && m->hp.embedding > 0) {
        m->E = (float *)expect_f32(s, "E", 2, N, m->hp.embedding, &rc);
        if (!m->E) goto fail;
    }
    for (int l = 0; l < m->L; l++) {
        gru4rec_layer *ly = &m->lay[l];
        char tn[64];
        snprintf(tn, sizeof tn, "l%d.Wx", l);
        if (!(ly->Wx = (float *)expect_f32(s, tn, 2, ly->in, 3 * (int64_t)ly->H, &rc))) goto fail;
        snprintf(tn, sizeof tn, "l%d.Wh", l);
        if (!(ly->Wh = (float *)expect_f32(s, tn, 2, ly->H, 3 * (int64_t)ly->H, &rc))) goto fail;
        snprintf(tn, sizeof tn, "l%d.bx", l);
        if (!(ly->bx = (float *)expect_f32(s, tn, 1, 3 * (int64_t)ly->H, 0, &rc))) goto fail;
        snprintf(tn, sizeof tn, "l%d.bh", l);
        if (!(ly->bh = (float *)expect_f32(s, tn, 1, 3 * (int64_t)ly->H, 0, &rc))) goto fail;
    }
    int64_t shp[1] = {N};
    const snap_tensor *tp = snap_tensor_expect(s, "popular", SNAP_I32, 1, shp);
    const snap_tensor *tc = snap_tensor_expect(s, "counts", SNAP_I64, 1, shp);
    if (!tp || !tc) {
        rc = RC_ECORRUPT;
        goto fail;
    }
    m->popular = malloc((size_t)N * sizeof *m->popular);
    m->counts = malloc((size_t)N * sizeof *m->counts);
    if (!m->popular || !m->counts) {
        rc = rc_error(RC_ENOMEM, "gru4rec: out of memory");
        goto fail;
    }
    memcpy(m->popular, tp->data, (size_t)N * sizeof *m->popular);
    memcpy(m->counts, tc->data, (size_t)N * sizeof *m->counts);
    for (int64_t i = 0; i < N; i++)
        if (m->popular[i] < 0 || m->popular[i] >= N) {
            rc = rc_error(RC_ECORRUPT, "gru4rec: %s: tensor popular holds index %d out of range",
                          snap_dir(s), (int)m->popular[i]);
            goto fail;
        }
    if ((rc = snap_vocab_load(s, "items", &m->owned_items))) goto fail;
    if ((int64_t)idmap_size(m->owned_items) != N) {
        rc = rc_error(RC_ECORRUPT, "gru4rec: %s: vocab items has %zu ids, n_items is %lld", snap_dir(s),
                      idmap_size(m->owned_items), (long long)N);
        goto fail;
    }
    m->items = m->owned_items;
    compute_fingerprint(m);
    *out = m;
    return RC_OK;
fail:
    gru4rec_free(m);
    return rc;
}

/* ---- serving math ---- */

struct gru4rec_scratch {
    int max_batch;
    float *x;  /* (maxB, in0 or Hmax) */
    float *gx; /* (maxB, 3 Hmax) */
    float *gh; /* (maxB, 3 Hmax) */
    float *buf;
};

gru4rec_scratch *gru4rec_scratch_new(const gru4rec *m, int max_batch)
{
    if (max_batch < 1) max_batch = 1;
    gru4rec_scratch *sc = calloc(1, sizeof *sc);
    if (!sc) goto oom;
    size_t xin = m->onehot ? (size_t)m->Hmax : (size_t)(m->in0 > m->Hmax ? m->in0 : m->Hmax);
    size_t nx = pad16((size_t)max_batch * xin), ng = pad16((size_t)max_batch * 3 * (size_t)m->Hmax);
    sc->buf = aligned_alloc(64, (nx + 2 * ng) * sizeof(float));
    if (!sc->buf) goto oom;
    sc->max_batch = max_batch;
    sc->x = sc->buf;
    sc->gx = sc->buf + nx;
    sc->gh = sc->gx + ng;
    return sc;
oom:
    free(sc);
    rc_error(RC_ENOMEM, "gru4rec: out of memory (scratch for %d sessions)", max_batch);
    return NULL;
}

void gru4rec_scratch_free(gru4rec_scratch *sc)
{
    if (!sc) return;
    free(sc->buf);
    free(sc);
}

/* One GRU layer for B rows given gx (B,3H) = x Wx + bx already computed: gh = h Wh + bh, then the
 * gates; h (row stride ldh) is updated in place. */
static void layer_forward(const gru4rec_layer *ly, float *h, size_t ldh, const float *gx, float *gh, int B)
{
    int H = ly->H, H3 = 3 * H;
    for (int b = 0; b < B; b++) memcpy(gh + (size_t)b * H3, ly->bh, (size_t)H3 * sizeof(float));
    if (B == 1) /* one row: gemv (OpenBLAS' sgemm takes its small-matrix path and is slower for M=1) */
        cblas_sgemv(CblasRowMajor, CblasTrans, H, H3, 1.0f, ly->Wh, H3, h, 1, 1.0f, gh, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H3, H, 1.0f, h, (int)ldh, ly->Wh, H3, 1.0f, gh,
                    H3);
    for (int b = 0; b < B; b++) { /* the vectorised gates of training (gru4rec_kern.h) */
        float *hb = h + (size_t)b * ldh;
        g4k_gru_gates(gx + (size_t)b * H3, gh + (size_t)b * H3, hb, hb, NULL, NULL, NULL, H);
    }
}

void gru4rec_step(const gru4rec *m, float *h, const int32_t *items, int B, gru4rec_scratch *sc)
{
    for (int b0 = 0; b0 < B; b0 += sc->max_batch) {
        int nb = B - b0 < sc->max_batch ? B - b0 : sc->max_batch;
        float *hh = h + (size_t)b0 * m->S;
        const int32_t *it = items + b0;
        for (int l = 0; l < m->L; l++) {
            const gru4rec_layer *ly = &m->lay[l];
            int H3 = 3 * ly->H;
            if (l == 0 && m->onehot) {
                for (int b = 0; b < nb; b++) {
                    const float *row = ly->Wx + (size_t)it[b] * H3;
                    float *g = sc->gx + (size_t)b * H3;
                    for (int j = 0; j < H3; j++) g[j] = row[j] + ly->bx[j];
                }
            } else {
                const float *x;
                int ldx;
                if (l == 0) {
                    const float *tab = m->E ? m->E : m->Wy;
                    for (int b = 0; b < nb; b++)
                        memcpy(sc->x + (size_t)b * m->in0, tab + (size_t)it[b] * m->in0,
                               (size_t)m->in0 * sizeof(float));
                    x = sc->x;
                    ldx = m->in0;
                } else {
                    x = hh + m->off[l - 1];
                    ldx = (int)m->S;
                }
                for (int b = 0; b < nb; b++) memcpy(sc->gx + (size_t)b * H3, ly->bx, (size_t)H3 * sizeof(float));
                if (nb == 1)
                    cblas_sgemv(CblasRowMajor, CblasTrans, ly->in, H3, 1.0f, ly->Wx, H3, x, 1, 1.0f, sc->gx, 1);
                else
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, H3, ly->in, 1.0f, x, ldx, ly->Wx,
                                H3, 1.0f, sc->gx, H3);
            }
            layer_forward(ly, hh + m->off[l], m->S, sc->gx, sc->gh, nb);
        }
    }
}

void gru4rec_score(const gru4rec *m, const float *h, int B, float *scores, gru4rec_scratch *sc)
{
    (void)sc;
    int L = m->L;
    int HL = m->lay[L - 1].H;
    size_t N = (size_t)m->N;
    for (int b = 0; b < B; b++) memcpy(scores + (size_t)b * N, m->By, N * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, (int)N, HL, 1.0f, h + m->off[L - 1], (int)m->S,
                m->Wy, HL, 1.0f, scores, (int)N);
}

/* ---- model_type ---- */

static int type_load(void **handle, const snap *s)
{
    gru4rec *m = NULL;
    int rc = gru4rec_load(&m, s);
    *handle = m;
    return rc;
}

static void type_free(void *handle) { gru4rec_free(handle); }

static int type_warm(const void *handle)
{
    const gru4rec *m = handle;
    gru4rec_scratch *sc = gru4rec_scratch_new(m, 4);
    float *h = calloc(4 * m->S, sizeof(float));
    float *scores = malloc(4 * (size_t)m->N * sizeof(float));
    int rc = RC_OK;
    if (!sc || !h || !scores) {
        rc = rc_error(RC_ENOMEM, "gru4rec: out of memory (warm-up)");
        goto done;
    }
    int32_t items[4];
    for (int i = 0; i < 4; i++) items[i] = m->popular[i % m->N];
    for (int t = 0; t < 3; t++) {
        gru4rec_step(m, h, items, 4, sc);
        gru4rec_score(m, h, 4, scores, sc);
    }
done:
    gru4rec_scratch_free(sc);
    free(h);
    free(scores);
    return rc;
}

/* ---- the capability table (models/model.h) ---- */
static uint64_t type_fingerprint(const void *handle) { return gru4rec_state_fingerprint(handle); }
static const idmap *type_items(const void *handle) { return gru4rec_items(handle); }
static const int32_t *type_popular(const void *handle) { return gru4rec_popular(handle); }
static size_t next_state_size(const void *m) { return gru4rec_state_size(m); }
static void *next_scratch_new(const void *m, int max_batch) { return gru4rec_scratch_new(m, max_batch); }
static void next_scratch_free(void *sc) { gru4rec_scratch_free(sc); }

static void next_step(const void *m, float *state, const int32_t *items, int B, void *sc)
{
    gru4rec_step(m, state, items, B, sc);
}

static void next_score(const void *m, const float *state, int B, float *scores, void *sc)
{
    gru4rec_score(m, state, B, scores, sc);
}

/* score = h_last . Wy[i] + By[i]: the last layer's slice of the state against Wy (N, H_L). */
static int next_item_matrix(const void *handle, model_item_matrix *out)
{
    const gru4rec *m = handle;
    *out = (model_item_matrix){.w = m->Wy, .bias = m->By, .n = m->N, .d = m->lay[m->L - 1].H,
                               .q_offset = m->off[m->L - 1]};
    return RC_OK;
}

static const model_next_ops gru4rec_next = {next_state_size, next_scratch_new, next_scratch_free, next_step,
                                            next_score, next_item_matrix};

const model_type gru4rec_type = {
    .name = "gru4rec",
    .help = "GRU4Rec session-based next-item model (Hidasi et al. 2016, 2018)",
    .load = type_load,
    .free = type_free,
    .fingerprint = type_fingerprint,
    .warm = type_warm,
    .items = type_items,
    .popular = type_popular,
    .next = &gru4rec_next,
};
