/* core/snap_impl.h - internals shared by core/snap_write.c, core/snap_read.c and core/snap_check.c
 * (not a public header: the API is core/snap.h): the file format the writer and the reader must agree
 * on (the tensor header, the limits) and the few functions one file provides to the others. */
#ifndef RECD_SNAP_IMPL_H
#define RECD_SNAP_IMPL_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "core/err.h"
#include "core/snap.h"

#define SNAP_MAGIC 0x544e5352u /* "RSNT" little-endian */
#define SNAP_HDR 64
#define SNAP_MAX_MAP (64ULL << 30)
#define SNAP_INIT_MAP (64ULL << 20)
#define SNAP_MAX_NAME 255
#define SNAP_MAX_MODEL 64
#define SNAP_TMP_MAX_AGE 3600
#define SNAP_MAX_VERSION ((uint64_t)INT64_MAX) /* meta stores the version as a JSON (i64) integer */

/* The 64-byte tensor header, stored in host byte order (little-endian x86-64/arm64; a big-endian
 * reader would see a wrong magic and refuse). */
struct thdr {
    uint32_t magic;
    uint16_t dtype;
    uint16_t ndim;
    int64_t shape[SNAP_MAX_DIMS];
    uint64_t nbytes;
    uint64_t checksum;
    uint64_t reserved;
};
_Static_assert(sizeof(struct thdr) == SNAP_HDR, "tensor header must be 64 bytes");

/* A u64 at an unaligned address, in host byte order (as LMDB and the tensor header store them). */
static inline uint64_t snap_load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* An LMDB failure as an error code with a message: "what (path): mdb_strerror". Returns code. */
static inline int snap_mdb_fail(int code, int mrc, const char *what, const char *path)
{
    return rc_error(code, "%s (%s): %s", what, path, mdb_strerror(mrc));
}

/* ---- core/snap_check.c: what a valid snapshot file and folder are ---- */

/* Check the LMDB structure of data.mdb (fd, open for reading; path for messages) before LMDB maps
 * it: whole pages, meta pages, page bounds, B-tree pages, node bounds, overflow runs. LMDB trusts
 * its file and would read out of bounds on a corrupt one. Errors: RC_ECORRUPT (with path and what
 * is wrong), RC_EIO (stat, mmap), RC_ENOMEM. The file is not modified; fd stays open. */
int snap_check_lmdb_file(int fd, const char *path);

/* Check one record of the tensors database: name (NUL-terminated) -> value (vsize bytes) of the
 * snapshot folder dir, listed in meta as e ({"dtype", "shape", "checksum"}, borrowed). Checks the
 * 64-byte header (magic, dtype, ndim, shape, byte count within the value), that meta gives the same
 * dtype, shape and checksum, and the data's checksum. On success *h is the header: the data is
 * h->nbytes bytes at (const char *)value + SNAP_HDR. Errors: RC_ECORRUPT, the message naming dir
 * and the tensor. */
int snap_check_tensor(const char *dir, const char *name, const void *value, size_t vsize,
                      const json_t *e, struct thdr *h);

/* A growing list of versions (free(v) when done). */
struct snap_vlist {
    uint64_t *v;
    size_t n, cap;
};

/* Scan the model folder mdir (ROOT/MODEL): the newest published version into *latest, the newest
 * fresh .tmp-N into *latest_tmp (either may be NULL; 0 when none), every published version appended
 * to all (when not NULL), and when do_clean remove the .tmp-* folders idle for over
 * SNAP_TMP_MAX_AGE and the folder .tmp-<clean>. Errors: RC_ENOTFOUND (no such folder), RC_EIO,
 * RC_ENOMEM. */
int snap_scan_model_dir(const char *mdir, uint64_t *latest, uint64_t *latest_tmp, uint64_t clean,
                        int do_clean, struct snap_vlist *all);

/* Remove a flat folder (its files, then itself), making it writable first. Best effort: 0 if it is
 * gone, -1 otherwise (errno set). */
int snap_remove_flat_dir(const char *path);

#endif
