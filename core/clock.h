/* core/clock.h - the one monotonic and wall clock of recd.
 *
 * clock_mono_*: CLOCK_MONOTONIC (never steps back; NTP adjustments do not jump it): durations, deadlines,
 * TTLs, progress and events/s. clock_wall_s: CLOCK_REALTIME, unix seconds: timestamps shown to people
 * (loaded_at, created_at). Header-only and allocation-free; safe from any thread.
 */
#ifndef RECD_CLOCK_H
#define RECD_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic nanoseconds since an arbitrary origin (boot). */
static inline uint64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Monotonic seconds (double: ns resolution for ~100 days of uptime). */
static inline double clock_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Monotonic milliseconds. */
static inline double clock_mono_ms(void)
{
    return clock_mono_s() * 1e3;
}

/* Unix time in seconds (wall clock: may step). */
static inline double clock_wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
