/* api/events_req.h - parsing a POST /v1/events body (the reader of api/json.h).
 *
 *   {"request_id":"5f2a..-17","type":"acquisition","item_id":"a","event_id":"e-1","value":12.5}
 *   or an array of such objects: [{...},{...}] (1..max_batch)
 *
 * Fields of an event: request_id (string, 1..EVREQ_MAX_ID bytes: the request_id of the answer the event
 * is about), type ("impression", "click" or "acquisition"), item_id (string, 1..min(limits.max_id_len,
 * EVREQ_MAX_ID) bytes: an item of that answer), event_id (optional string, 1..EVREQ_MAX_ID bytes: the
 * client's idempotency key; absent: the key is (request_id, type, item_id)), value (optional, acquisitions
 * only: a finite number, e.g. the order's amount). Every other field is refused: a misspelt "valeu" must
 * not silently drop the value.
 *
 * Memory: nothing is allocated per request. The caller keeps one events_scratch per connection (decoded
 * strings: body length + 1 bytes; the events: one per element), grown once and reused.
 */
#ifndef RECD_EVENTS_REQ_H
#define RECD_EVENTS_REQ_H

#include <stddef.h>

#include "api/json.h"
#include "api/validate.h"

#define EVREQ_MAX_ID 255 /* the event store's bound of every id (server/evstore.h) */

/* Same values as server/evstore.h's ev_type. */
typedef enum { EVREQ_IMPRESSION = 1, EVREQ_CLICK = 2, EVREQ_ACQUISITION = 3 } evreq_type;

/* One parsed event. Strings point into the body or the scratch's arena. */
typedef struct evreq_event {
    evreq_type type;
    api_str request_id; /* 1..EVREQ_MAX_ID bytes */
    api_str item_id;    /* 1..min(max_id_len, EVREQ_MAX_ID) bytes */
    api_str event_id;   /* n == 0: not given */
    double value;       /* 0 when not given */
    int has_value;
} evreq_event;

/* What a connection reuses from request to request. Zero-initialised is empty and valid. */
typedef struct events_scratch {
    api_scratch s;    /* arena: decoded strings (body length + 1) */
    evreq_event *ev;  /* (ev_cap) */
    size_t ev_cap;
} events_scratch;

/* Free what a large request grew (each buffer over keep_bytes). NULL is a no-op. */
void events_scratch_trim(events_scratch *s, size_t keep_bytes);
/* Free all (s zeroed, still usable). NULL is a no-op. */
void events_scratch_release(events_scratch *s);

typedef struct events_req {
    const evreq_event *ev; /* (n) in the scratch: valid until its next parse, trim or release, and as long
                              as the body */
    size_t n;
    int array; /* 1: the body was an array (messages name "events[i]") */
} events_req;

/* Parse body[0..len) (not necessarily NUL-terminated; borrowed: the events' strings may point into it)
 * into req, at most max_batch events (>= 1). 0, or the HTTP status with a one-line detail[0..cap) (req is
 * then empty). An event is named "events[3]" in an array body; a single object's messages name the field
 * alone ("type: required") or "event" ("event: unknown field 'x'"):
 *   400 "invalid JSON: ... at offset N" (nesting deeper than lim->max_depth included), "the body must be an
 *       event object or an array of events", "events[3]: expected an object", "events[3]: duplicate key
 *       'type'", "events[3].type: expected a string" (request_id, item_id, event_id alike),
 *       "events[3].value: expected a number";
 *   422 "events: N given, between 1 and M accepted", "events[3]: unknown field 'x'", "events[3].type:
 *       required" (request_id, item_id alike), "events[3].type: 'view' is not one of impression, click,
 *       acquisition", "events[3].item_id: length L outside [1, M]", "events[3].value: only an acquisition
 *       carries a value", "events[3].value: not a finite number";
 *   503 the scratch could not grow. */
int events_req_parse(const char *body, size_t len, const api_limits *lim, int max_batch, events_scratch *scr,
                     events_req *req, char *detail, size_t cap);

/* "impression", "click", "acquisition" ("?" for another value). */
const char *evreq_type_name(int type);

#endif
