/* core/snap.h - immutable, versioned model snapshots in LMDB (DESIGN.md section 3).
 *
 * Layout: ROOT/MODEL/VERSION/ is an LMDB environment (data.mdb) written once, then only read.
 * VERSION is a decimal integer that increases: 1 to 18446744073709551615 (UINT64_MAX, 20 digits),
 * written without leading zeros; other names (longer, larger, "007", ".tmp-3") are not versions
 * (an all-digit one is logged once). The writer builds ROOT/MODEL/.tmp-VERSION/, syncs it, makes it
 * read-only (data.mdb 0444, the folder 0555) and publishes it with one rename(): a half-written
 * snapshot is never visible under a version name. A published version is never modified in place:
 * readers map data.mdb, and a mapped file truncated under them is SIGBUS, not an error. To retract
 * a version, publish a newer one or remove its folder.
 *
 * Named databases:
 *   meta     key "meta" -> one JSON document: format_version, model, version, created_at, type (the model
 *            type when the folder name is not the type's name; absent: the model name), the model's
 *            own fields (hyperparameters, dimensions, data fingerprint, metrics) and "tensors": for each
 *            tensor its dtype, shape and checksum (16 hex digits of snap_checksum), and "vocabs": for
 *            each vocabulary {"size": n}.
 *   tensors  name -> a 64-byte header (magic, dtype, ndim, shape, byte count, checksum) then the data.
 *            LMDB stores a large value in contiguous overflow pages, so each tensor, however large (an
 *            embedding table of millions of rows), is one contiguous block of rows in the map and the
 *            reader hands out pointers straight into it: no copy. Data is 16-byte aligned at least.
 *   vocab    per named vocabulary: "<name>\0s<external id>" -> u64 BE index and "<name>\0i<u64 BE>" -> id.
 *            Ids up to 511 - strlen(name) - 2 bytes (LMDB's key limit).
 *
 * Reader pointers (snap_tensor.data, snap_meta) point into the read-only map or into the snap object:
 * they are valid until snap_close() and must never be written through.
 *
 * Threads: a snap is immutable after snap_open (every tensor is read and verified at open), so all
 * reader functions, snap_vocab_load included, may be called from any number of threads at once.
 * snap_open costs one pass over the file (checksums at several GB/s, B-tree structure check).
 * A writer is used by one thread at a time.
 *
 * Files: core/snap_write.c is the writer (snap_writer_*, snap_put_*, snap_set_meta, publishing);
 * core/snap_read.c the reader (snap_open, snap_open_any, tensors, meta, vocabularies);
 * core/snap_check.c what a valid snapshot is (dtypes, snap_checksum, the check of each tensor record
 * and of the LMDB file structure that snap_open runs, and the version folders: snap_latest,
 * snap_versions, snap_path); core/snap_impl.h what they share (the tensor header, the limits).
 */
#ifndef RECD_SNAP_H
#define RECD_SNAP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/idmap.h"

#define SNAP_FORMAT_VERSION 1
#define SNAP_MAX_DIMS 4

typedef enum { SNAP_F32 = 1, SNAP_I32 = 2, SNAP_I64 = 3, SNAP_U8 = 4, SNAP_BF16 = 5, SNAP_F64 = 6 } snap_dtype;

/* Bytes per element of a dtype (0 if unknown); its name ("f32") or NULL. */
size_t snap_dtype_size(snap_dtype t);
const char *snap_dtype_name(snap_dtype t);

/* ---- writing ---- */
typedef struct snap_writer snap_writer;

/* Start a snapshot of `model` under root: creates ROOT/MODEL/ if needed and ROOT/MODEL/.tmp-VERSION/.
 * version 0 means "one more than the newest published version, or than a fresh .tmp-N another writer
 * is filling (or 1)"; a writer publishes versions up to INT64_MAX (meta holds the version as a JSON
 * integer): RC_ERANGE for a larger explicit version, or for version 0 when the newest is already
 * there. The LMDB map starts at 64 MiB
 * and grows on demand up to 64 GiB (RC_EFULL beyond). An explicit version whose .tmp-VERSION folder
 * exists (a crashed writer) reuses it; other .tmp-* folders idle for over an hour (neither the folder
 * nor its data.mdb modified) are removed.
 * Errors: RC_EIO (cannot create, with the path and errno text), RC_EEXIST (version already published),
 * RC_EBUSY (another writer holds the .tmp folder), RC_EINVAL (bad model name: only [A-Za-z0-9_-]),
 * RC_ERANGE (path too long), RC_ENOMEM. On success *out is owned by the caller until
 * snap_writer_publish or snap_writer_abort. */
int snap_writer_open(snap_writer **out, const char *root, const char *model, uint64_t version);

/* Store one tensor (data is copied into the snapshot; dims <= SNAP_MAX_DIMS; name 1-255 bytes of
 * UTF-8, it becomes a meta key). Errors: RC_EINVAL (bad name, dtype or shape, duplicate name, NULL
 * data for a non-empty shape: the writer stays usable), RC_EIO (LMDB error, message has
 * mdb_strerror), RC_EFULL (past the 64 GiB map), RC_ENOMEM, RC_ESTATE (an earlier put failed). After
 * a failed store (RC_EIO, RC_EFULL) the writer refuses every call with RC_ESTATE: abort it
 * (snap_writer_publish refuses too, and frees it). */
int snap_put_tensor(snap_writer *w, const char *name, snap_dtype dtype, int ndim, const int64_t *shape,
                    const void *data);

/* Store a vocabulary: every index of m maps to its key and back (m is borrowed, read only during the
 * call). Errors: RC_EINVAL (bad or duplicate name, name not UTF-8, an id too long for an LMDB key),
 * RC_EIO, RC_EFULL, RC_ENOMEM, RC_ESTATE, with the same effect on the writer as for snap_put_tensor.
 * About 80 bytes per id on disk; 1M ids take about 1 s to store. */
int snap_put_vocab(snap_writer *w, const char *name, const idmap *m);

/* Model-specific meta fields (borrowed: the writer copies what it needs). Keys the writer owns
 * (format_version, model, version, created_at, tensors, vocabs) are overwritten. May be called once
 * (RC_ESTATE the second time); fields must be a JSON object (RC_EINVAL). */
int snap_set_meta(snap_writer *w, const json_t *fields);

/* Sync, make read-only (data.mdb 0444, folder 0555) and publish by rename(); frees w in every case.
 * *version_out (may be NULL) gets the version (0 on failure). Errors: RC_ESTATE (an earlier put
 * failed), RC_EIO (write, sync, fsync, chmod or rename, with the path), RC_EEXIST (another writer
 * published this version meanwhile), RC_EFULL, RC_ENOMEM. On failure the temporary folder is removed
 * (made writable first) and nothing is published. */
int snap_writer_publish(snap_writer *w, uint64_t *version_out);

/* Discard the temporary folder and free w. NULL is a no-op. */
void snap_writer_abort(snap_writer *w);

/* ---- reading ---- */
typedef struct snap snap;

typedef struct snap_tensor {
    const char *name;
    snap_dtype dtype;
    int ndim;
    int64_t shape[SNAP_MAX_DIMS];
    size_t nbytes;
    const void *data; /* into the map, read-only, valid until snap_close */
} snap_tensor;

/* Open and validate the snapshot folder dir (ROOT/MODEL/VERSION). Validation: LMDB opens, meta is
 * JSON with a known format_version, every tensor listed in meta exists with that dtype, shape, byte
 * count and checksum, and no unlisted tensor exists. Errors, each with a message naming dir and the
 * culprit: RC_ENOTFOUND (no such folder or data.mdb), RC_EVERSION (format_version unknown; the message
 * says which versions this build reads), RC_ECORRUPT (a file shorter than the pages its LMDB meta page
 * counts, or not a whole number of pages: checked before LMDB maps it; checksum mismatch, bad
 * header, missing tensor; an LMDB environment that LMDB refuses), RC_EFORMAT (meta not JSON). */
int snap_open(snap **out, const char *dir);
void snap_close(snap *s); /* NULL is a no-op */
/* Like snap_open, but dir may also be a model folder (ROOT/MODEL): then its newest published version is
 * opened. For command-line tools (`recd inspect DIR`, `recd eval MODEL --snapshot DIR`). Errors as
 * snap_open; RC_ENOTFOUND keeps the message about dir itself when it is neither. */
int snap_open_any(snap **out, const char *dir);

/* The tensor called name, or NULL if absent. Borrowed, valid until snap_close. */
const snap_tensor *snap_tensor_get(const snap *s, const char *name);
/* Same but checks dtype and shape (ndim dims; a -1 in shape matches anything) and sets an RC_ECORRUPT
 * message naming the tensor on mismatch or absence. */
const snap_tensor *snap_tensor_expect(const snap *s, const char *name, snap_dtype dtype, int ndim,
                                      const int64_t *shape);
/* The meta document (borrowed, valid until snap_close). */
const json_t *snap_meta(const snap *s);
const char *snap_model(const snap *s);
/* The model type that loads the snapshot (models/model.h): meta "type" when it is a string (a model
 * served under another name: `recd train widedeep --name wide` writes ROOT/wide/V with "type":
 * "widedeep"), else the model name. Borrowed, valid until snap_close. */
const char *snap_type(const snap *s);
uint64_t snap_version(const snap *s);
const char *snap_dir(const snap *s);
/* Total bytes of tensor data (for metrics and warm-up). */
size_t snap_bytes(const snap *s);
/* Touch every page of every tensor so the first requests do not fault them in. */
void snap_warm(const snap *s);

/* Build an in-memory idmap of vocabulary `name` (caller owns it; *out is NULL on failure). Errors:
 * RC_ENOTFOUND (no such vocabulary), RC_ECORRUPT (an index missing or out of order, a duplicate id,
 * a size in meta that the records do not hold), RC_EIO (LMDB), RC_ENOMEM. */
int snap_vocab_load(const snap *s, const char *name, idmap **out);

/* Tensors in name order: count, and the i-th (NULL if out of range). Borrowed, valid until snap_close. */
size_t snap_tensor_count(const snap *s);
const snap_tensor *snap_tensor_at(const snap *s, size_t i);

/* The checksum stored for each tensor: a 64-bit hash of data[0..n) (4 lanes of multiply-xorshift, then
 * a murmur finaliser mixing in n). Fast (several GB/s), not cryptographic. data may be NULL if n == 0. */
uint64_t snap_checksum(const void *data, size_t n);

/* ---- folders ---- */
/* The newest published version of ROOT/MODEL (ignoring .tmp-*, files, and names that are not
 * versions: see the top of this file). RC_ENOTFOUND when there is none (or no such folder), RC_EIO
 * when the folder cannot be read, RC_ERANGE for a path over PATH_MAX. Whether the newest version is
 * valid is not checked: snap_open tells. */
int snap_latest(const char *root, const char *model, uint64_t *version);
/* Every published version of ROOT/MODEL, newest first (same rules as snap_latest): *out is an array
 * of *n versions owned by the caller (free()), NULL when *n is 0. Errors: RC_ENOTFOUND (no such
 * folder), RC_EIO, RC_ERANGE (path too long), RC_ENOMEM, RC_EINVAL (NULL argument); *out is NULL
 * then. */
int snap_versions(const char *root, const char *model, uint64_t **out, size_t *n);
/* "ROOT/MODEL/VERSION" into buf (cap bytes). RC_EINVAL (NULL argument), RC_ERANGE (does not fit). */
int snap_path(char *buf, size_t cap, const char *root, const char *model, uint64_t version);

#endif
