/* api/problem.h - error answers as application/problem+json (RFC 9457), DESIGN.md section 5.
 *
 * Every error recd answers has the same body:
 *   {"type":"urn:recd:problem:<slug>","title":"Unprocessable Content","status":422,
 *    "detail":"k must be between 1 and 1000, got 0","instance":"/v1/next","request_id":"5f2a...-17"}
 * `type` identifies the kind of problem (stable, for programs), `title` is the HTTP reason phrase,
 * `detail` says what was wrong with this request (for humans). Statuses used by recd: 400 malformed JSON
 * or wrong types, 401/403 admin token missing or wrong, 404 unknown route or model, 405 method not
 * allowed, 413 body over the limit, 422 valid JSON with a wrong meaning, 500 internal, 503 not loaded
 * or shutting down.
 */
#ifndef RECD_PROBLEM_H
#define RECD_PROBLEM_H

#include "core/sbuf.h"

#define PROBLEM_CONTENT_TYPE "application/problem+json"

/* The reason phrase of an HTTP status ("Not Found"); "Error" for codes recd does not use. */
const char *problem_title(int status);

/* Append the problem document to out (which the caller resets first if it wants only this).
 * slug: short kebab-case kind ("invalid-json"); detail, instance, request_id may be NULL (omitted).
 * All strings are borrowed for the call and JSON-escaped. */
void problem_write(sbuf *out, int status, const char *slug, const char *detail, const char *instance,
                   const char *request_id);

#endif
