/* core/idmap.h - external id (byte string) <-> dense index map, for millions of ids.
 *
 * Ids are opaque byte strings (a 16-digit session id stays a string or a full int64: never narrowed).
 * Indices are dense, 0..size-1, in order of first insertion. Open addressing over an arena of keys:
 * one allocation per growth, no per-key malloc.
 *
 * Threads: idmap_find/idmap_key/idmap_size are read-only and safe from many threads at once, as long
 * as no thread inserts concurrently. Insertions need external locking.
 */
#ifndef RECD_IDMAP_H
#define RECD_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct idmap idmap;

/* A new empty map sized for about `capacity_hint` keys (0 is fine). NULL on ENOMEM (message set). */
idmap *idmap_new(size_t capacity_hint);
/* Frees the map and every key it holds. NULL is a no-op. */
void idmap_free(idmap *m);

/* Index of key[0..len), inserting it with index idmap_size() if absent. Returns -1 on ENOMEM or if
 * len > IDMAP_MAX_KEY (message set). */
#define IDMAP_MAX_KEY 1024
int64_t idmap_intern(idmap *m, const char *key, size_t len);
/* Index of key[0..len), or -1 if absent (also for a NULL map or len > IDMAP_MAX_KEY). No message. */
int64_t idmap_find(const idmap *m, const char *key, size_t len);
/* The key of index idx (not NUL-terminated unless the caller's use allows: a NUL is stored after it,
 * so it is also a C string). *len receives its length when len != NULL. NULL if idx is out of range.
 * Borrowed: valid until the next insertion or idmap_free. */
const char *idmap_key(const idmap *m, int64_t idx, size_t *len);
size_t idmap_size(const idmap *m);

#endif
