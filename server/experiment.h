/* server/experiment.h - experiments declared in the server config: arms, assignment, and the answer's
 * experiment fields (DESIGN.md section 6).
 *
 * Config (`experiments` setting, an array):
 *   {"name":"homepage", "salt":"homepage-2026-12", "unit":"user_id",
 *    "arms":[{"name":"wide","model":"wide","share":0.34},
 *            {"name":"deep","model":"deep","share":0.33},
 *            {"name":"wd","model":"widedeep","version":"3","share":0.33}],
 *    "control":"wide", "start":"2026-12-01T00:00:00Z", "stop":"2026-12-22T00:00:00Z",
 *    "namespace":"home", "namespace_buckets":[0,5000], "alpha":0.05, "tau":0.1}
 * name: [A-Za-z0-9_-]{1,63}; salt: 1..127 bytes, not starting with "ns:" (reserved); unit: "user_id" (the only unit today); arms: 1..8, each
 * a name ([A-Za-z0-9_-]{1,31}), a configured model (snapshots.models) and optionally a pinned version
 * ("version": a snapshot version of that model: the arm is served by the registry entry "MODEL@V",
 * added to the registry, which loads exactly that version and never swaps it), and a share in (0, 1];
 * the shares add up to at most 1 (units past the sum are not in the experiment); control: an arm's name
 * (default the first); start/stop: RFC 3339 UTC times or unix seconds (absent: open); namespace: units
 * hashed into 10,000 namespace buckets (salt "ns:" + namespace), and the experiment takes those in
 * [lo, hi): experiments of one namespace with overlapping ranges are refused at load, so that a unit is
 * in at most one of them; alpha: the report's level (default 0.05); tau: the sequential test's mixing
 * standard deviation relative to the control's rate (default 0.1: tuned for 10% relative effects).
 * Errors name the experiment and the field: "experiments[1].arms[0].share: 1.5 is outside (0, 1]".
 *
 * Assignment, reproducible by any client (the documented hash):
 *   bucket(salt, unit) = floor(murmur3_x86_32(salt + "/" + unit, seed 0) * 10000 / 2^32)   in [0, 10000)
 * murmur3_x86_32 is Austin Appleby's MurmurHash3_x86_32 over the UTF-8 bytes (Python: mmh3.hash(key,
 * 0, signed=False); Java: Guava Hashing.murmur3_32_fixed(0)). Arm i takes the buckets
 * [10000 * (share_0 + .. + share_{i-1}), 10000 * (share_0 + .. + share_i)) (each bound rounded to the
 * nearest integer; a share that rounds to no bucket is refused). A unit is in the experiment when its namespace bucket (when there is a namespace)
 * is in the range, its arm bucket falls under the shares' sum, and the time is within [start, stop).
 * Test vectors: exp_bucket("homepage-2026-12", "u1") and others are in tests/test_experiment.c and the
 * README.
 *
 * Thread-safety: an exp_set is immutable once parsed; every function may be called from any thread.
 */
#ifndef RECD_EXPERIMENT_H
#define RECD_EXPERIMENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "server/evstore.h"

#define EXP_BUCKETS 10000

typedef struct exp_arm {
    char name[32];
    char model[64];     /* the configured model name */
    char entry[96];     /* the registry entry serving the arm: "model", or "model@V" when pinned */
    char version[24];   /* pinned version ("" when not pinned) */
    double share;
    uint32_t lo, hi;    /* arm buckets [lo, hi) */
} exp_arm;

typedef struct experiment {
    char name[64];
    char salt[128];
    char unit[16];      /* "user_id" */
    char ns[64];        /* namespace ("" = none) */
    uint32_t ns_lo, ns_hi;
    exp_arm arms[EVSTORE_MAX_ARMS];
    int n_arms;
    int control;        /* index of the control arm */
    double start, stop; /* unix seconds; 0 = open */
    double alpha, tau;
    int run;            /* evstore run id (exp_declare_all) */
} experiment;

typedef struct exp_set {
    experiment *e;      /* (n) owned */
    int n;
} exp_set;

/* MurmurHash3_x86_32 of data[0..len) with seed. */
uint32_t exp_murmur3_32(const void *data, size_t len, uint32_t seed);
/* bucket(salt, unit) above, in [0, EXP_BUCKETS). */
uint32_t exp_bucket(const char *salt, size_t salt_len, const char *unit, size_t unit_len);

/* Parse the `experiments` setting (a JSON array; NULL or [] gives an empty set) against the configured
 * model names (models, n_models). RC_OK with *out filled (exp_set_free), or RC_EINVAL with a message
 * naming experiments[i] and the field. */
int exp_parse(const json_t *arr, const char *const *models, int n_models, exp_set *out);
void exp_set_free(exp_set *s); /* s zeroed; an empty set is fine */

/* Registry entries the arms need besides the configured models ("model@V" of pinned arms), each once:
 * *out[0..*n) point into s (borrowed while s lives). RC_OK or RC_ENOMEM (*out is malloc'ed: free it). */
int exp_pinned_entries(const exp_set *s, const char ***out, int *n);

/* Declare every experiment to the store (evstore_declare), setting e->run. RC_OK, or the store's error
 * (a changed share with the same salt is refused here, at load). */
int exp_declare_all(exp_set *s, evstore *st);

/* The experiment named name[0..n), or NULL. */
const experiment *exp_find(const exp_set *s, const char *name, size_t n);

/* The arm of unit[0..n) at time now (unix seconds), or -1 when the unit is not in the experiment
 * (namespace range, shares' sum, or outside [start, stop)). Pure: allocates nothing. */
int exp_assign(const experiment *e, const char *unit, size_t n, double now);

/* "scheduled", "running" or "stopped" at time now. */
const char *exp_status(const experiment *e, double now);

#endif
