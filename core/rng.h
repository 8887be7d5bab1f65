/* core/rng.h - seedable, fast pseudo-random numbers (xoshiro256** seeded through splitmix64).
 *
 * The same seed gives the same sequence on every machine. Not thread-safe: one rng_t per thread
 * (derive per-thread seeds with rng_split). No allocation, no errors.
 */
#ifndef RECD_RNG_H
#define RECD_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} rng_t;

void rng_seed(rng_t *r, uint64_t seed);
/* A new independent stream derived from r (advances r). */
rng_t rng_split(rng_t *r);
uint64_t rng_u64(rng_t *r);
/* Uniform in [0, n) without modulo bias; n > 0 (n == 0 returns 0 and draws nothing). */
uint64_t rng_below(rng_t *r, uint64_t n);
/* Uniform double in [0, 1) with 53 random bits; float with 24. */
double rng_uniform(rng_t *r);
float rng_uniformf(rng_t *r);
/* Standard normal (mean 0, sd 1). */
double rng_normal(rng_t *r);
/* Fisher-Yates shuffle of n int64 values. */
void rng_shuffle_i64(rng_t *r, int64_t *a, size_t n);

#endif
