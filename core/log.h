/* core/log.h - levelled logging to stderr.
 *
 * The macros check the level before any formatting, so a disabled log_debug() on a hot path costs one
 * compare. Lines look like `2026-11-26T23:15:01.123Z INFO  core/snap_write.c:120 published gru4rec/17`.
 * Thread-safe: each line is written with one fprintf under the stdio lock.
 */
#ifndef RECD_LOG_H
#define RECD_LOG_H

enum { LOG_LVL_DEBUG = 0, LOG_LVL_INFO = 1, LOG_LVL_WARN = 2, LOG_LVL_ERROR = 3, LOG_LVL_OFF = 4 };

/* Current threshold; messages below it are dropped. Default LOG_LVL_INFO. */
extern int log_level;

/* Parse "debug" | "info" | "warn" | "error" | "off". Returns the level, or -1 if unknown. */
int log_level_parse(const char *name);

void log_write(int level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define LOG_AT(lvl, ...)                                            \
    do {                                                            \
        if ((lvl) >= log_level) log_write(lvl, __FILE__, __LINE__, __VA_ARGS__); \
    } while (0)
#define log_debug(...) LOG_AT(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) LOG_AT(LOG_LVL_ERROR, __VA_ARGS__)

#endif
