#include "core/err.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char err_msg[512];

const char *rc_strerror(int code)
{
    switch (code) {
    case RC_OK:
        return "ok";
#define RC_X_(name, c, text) \
    case c:                  \
        return text;
        RC_ERROR_LIST(RC_X_)
#undef RC_X_
    }
    return "unknown error";
}

int rc_verror(int code, const char *fmt, va_list ap)
{
    /* through a local buffer: an argument may be rc_errmsg() itself (vsnprintf into the buffer it
     * reads from would be undefined) */
    char tmp[sizeof err_msg];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    memcpy(err_msg, tmp, sizeof err_msg);
    return code;
}

int rc_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rc_verror(code, fmt, ap);
    va_end(ap);
    return code;
}

int rc_wrap(int code, const char *fmt, ...)
{
    char prefix[256], old[sizeof err_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err_msg, sizeof old);
    size_t pl = strnlen(prefix, sizeof err_msg - 3), ol = strnlen(old, sizeof old);
    memcpy(err_msg, prefix, pl);
    memcpy(err_msg + pl, ": ", 2);
    if (ol > sizeof err_msg - pl - 3) ol = sizeof err_msg - pl - 3;
    memcpy(err_msg + pl + 2, old, ol);
    err_msg[pl + 2 + ol] = '\0';
    return code;
}

const char *rc_errmsg(void)
{
    return err_msg;
}

void rc_clear(void)
{
    err_msg[0] = '\0';
}
