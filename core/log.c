#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int log_level = LOG_LVL_INFO;

static const char *const level_names[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};

int log_level_parse(const char *name)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

void log_write(int level, const char *file, int line, const char *fmt, ...)
{
    char msg[1024], stamp[32];
    struct timespec ts;
    struct tm tm;
    va_list ap;

    if (level < LOG_LVL_DEBUG || level > LOG_LVL_ERROR) level = LOG_LVL_ERROR;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s.%03ldZ %s %s:%d %s\n", stamp, ts.tv_nsec / 1000000, level_names[level], file,
            line, msg);
}
