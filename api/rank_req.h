/* api/rank_req.h - parsing a POST /v1/rank body into feature values (the reader of api/json.h).
 *
 *   {"user_id":"u1", "context":{"age":37,"workclass":"Private",...},
 *    "candidates":[{"item_id":"a","features":{"occupation":"Sales",...}}, ...], "k":10,
 *    "model":"widedeep", "experiment":"homepage"}
 *
 * Two steps, because the features are decoded with the spec of the model that answers and the model is
 * named in the body:
 *   rank_req_parse   checks the body (syntax, depth) and the top-level fields: user_id, model, k,
 *                    experiment, the count of candidates; the route then picks the model version;
 *   rank_req_decode  decodes the context and every candidate with that model's inputs (rank_inputs).
 * Features are keyed by the model's input column names; a name the model does not use (or its label
 * column) is ignored; a value is a string, a number or null (missing). A numeric input given a string
 * must parse as a number (feat_parse_number) unless it is one of the spec's missing values.
 *
 * Memory: nothing is allocated per request. The caller keeps one rank_scratch per connection (decoded
 * strings, candidate ids and values, duplicate-key stamps: grown once, reused) and one rank_inputs per
 * model version (lookup tables built from its spec).
 */
#ifndef RECD_RANK_REQ_H
#define RECD_RANK_REQ_H

#include <stddef.h>
#include <stdint.h>

#include "api/json.h"
#include "api/validate.h"
#include "models/features.h"

/* A model's inputs as the decoder looks them up (built once per model version). */
typedef struct rank_inputs {
    const feat_spec *spec; /* borrowed: must outlive the tables */
    int n;                 /* spec->ninputs */
    uint8_t *numeric;      /* (n) 1 when a numeric feature reads the input */
    size_t *len;           /* (n) strlen of each input name */
} rank_inputs;

/* Build t for spec sp (finished). RC_OK, or RC_ENOMEM (t zeroed). */
int rank_inputs_init(rank_inputs *t, const feat_spec *sp);
/* Free the tables (t zeroed). NULL is a no-op. */
void rank_inputs_release(rank_inputs *t);

/* What a connection reuses from request to request. Zero-initialised is empty and valid. */
typedef struct rank_scratch {
    api_scratch s;     /* arena: decoded strings (body length + 1); strs: candidate ids (n_cand) */
    feat_value *ctx;   /* (ninputs) */
    size_t ctx_cap;
    feat_value *cand;  /* (n_cand, ninputs) */
    size_t cand_cap;
    uint32_t *seen;    /* (ninputs) stamp of the features object that last set each input */
    size_t seen_cap;
    uint32_t stamp;
} rank_scratch;

/* Free what a large request grew: every buffer over keep_bytes, the id array over keep_bytes / 4 (so an
 * idle keep-alive connection keeps at most about 4 x keep_bytes). NULL is a no-op. */
void rank_scratch_trim(rank_scratch *s, size_t keep_bytes);
/* Free all (s zeroed, still usable). NULL is a no-op. */
void rank_scratch_release(rank_scratch *s);

typedef struct rank_req {
    api_str user_id;     /* when has_user_id */
    int has_user_id;
    api_str model;       /* when has_model: 1..max_id_len bytes */
    int has_model;
    api_str experiment;  /* when has_experiment: 1..max_id_len bytes */
    int has_experiment;
    int k;               /* in [1, lim->k_max], then at most n_cand */
    size_t n_cand;       /* in [1, lim->max_items] */
    /* set by rank_req_decode (into the scratch; valid until its next use): */
    const feat_value *ctx;  /* (ninputs) the context's values (FEAT_V_MISSING where it gives none) */
    const feat_value *cand; /* (n_cand, ninputs) each candidate's own values */
    const api_str *ids;     /* (n_cand) item ids */
    /* private: where the parse left the body */
    ajson p;
    size_t at_ctx, at_cands;
    int has_ctx;
} rank_req;

/* Step 1: check body[0..len) (not necessarily NUL-terminated; borrowed until the request is answered)
 * and its top-level fields. 0, or the HTTP status with a one-line detail[0..cap) (req is then unusable):
 *   400 "invalid JSON: ..." (api/json.h, nesting deeper than lim->max_depth included), "the body must be
 *       a JSON object", "duplicate key 'k'", "user_id: expected a string", "model: expected a string",
 *       "experiment: expected a string", "k: expected an integer", "candidates: expected an array";
 *   422 "unknown field 'x'", "model: length L outside [1, max_id_len]" (empty included; the same for
 *       experiment), "candidates: required", "candidates: N given, between 1 and M accepted",
 *       "k: K is outside [1, k_max]";
 *   503 the arena could not grow.
 * The strings of *req point into body or scr's arena. */
int rank_req_parse(const char *body, size_t len, const api_limits *lim, rank_scratch *scr, rank_req *req,
                   char *detail, size_t cap);

/* Step 2: decode the context and the candidates of a parsed req with the inputs of the model that
 * answers (in: borrowed). Fills req->ctx, cand, ids (into scr). 0, or the HTTP status with detail:
 *   400 "context: expected an object of features", "candidates[3]: expected an object",
 *       "candidates[3].item_id: expected a string", "candidates[3]: duplicate key 'item_id'",
 *       "candidates[3].features.age: expected a string, a number or null", "context.age: duplicate key";
 *   422 "candidates[3]: unknown field 'x'", "candidates[3].item_id: required",
 *       "candidates[3].item_id: length L outside [1, max_id_len]", "context.age: \"old\" is not a number",
 *       "candidates[3].features.age: number out of range";
 *   503 scr could not grow. */
int rank_req_decode(rank_req *req, const rank_inputs *in, const api_limits *lim, rank_scratch *scr, char *detail,
                    size_t cap);

#endif
