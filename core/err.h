/* core/err.h - one error space for recd.
 *
 * Every fallible function in recd returns an int: 0 (RC_OK) on success or a negative RC_E* code, and
 * records a human-readable message in a thread-local buffer with rc_error(). Functions that return a
 * pointer return NULL on failure and set the message the same way. The caller reads the message with
 * rc_errmsg() before calling anything else that may fail on the same thread.
 *
 *     if (snap_open(&s, dir) != RC_OK) { log_error("%s", rc_errmsg()); goto fail; }
 */
#ifndef RECD_ERR_H
#define RECD_ERR_H

#include <stdarg.h>

/* X(name, code, text): the list generates the enum and rc_strerror(). */
#define RC_ERROR_LIST(X)                                   \
    X(EINVAL, -1, "invalid argument")                      \
    X(ENOMEM, -2, "out of memory")                         \
    X(EIO, -3, "input/output error")                       \
    X(EFORMAT, -4, "malformed input")                      \
    X(ECORRUPT, -5, "corrupt data")                        \
    X(ENOTFOUND, -6, "not found")                          \
    X(ERANGE, -7, "value out of range")                    \
    X(EVERSION, -8, "unsupported format version")          \
    X(EEXIST, -9, "already exists")                        \
    X(EFULL, -10, "capacity exceeded")                     \
    X(EBUSY, -11, "busy")                                  \
    X(ESTATE, -12, "invalid state")

enum {
    RC_OK = 0,
#define RC_X_(name, code, text) RC_##name = code,
    RC_ERROR_LIST(RC_X_)
#undef RC_X_
};

/* Static description of a code ("invalid argument"); "unknown error" for codes outside the list. */
const char *rc_strerror(int code);

/* Record a printf-style message for this thread and return `code` (so: `return rc_error(RC_EINVAL, ...)`).
 * Messages longer than 511 bytes are truncated. The arguments may include rc_errmsg() itself
 * (`rc_error(RC_EIO, "%s: %s", path, rc_errmsg())` is fine). */
int rc_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int rc_verror(int code, const char *fmt, va_list ap);

/* Prefix the current message with "<prefix>: " (to add context while an error travels up). Returns code.
 * The prefix is cut at 255 bytes, the whole message at 511 (the end of the old message goes first). */
int rc_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The last message recorded on this thread ("" if none). Valid until the next rc_error on this thread. */
const char *rc_errmsg(void);

/* Forget the message of this thread. */
void rc_clear(void);

#endif
