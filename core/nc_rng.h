/* nc_rng.h — small deterministic pseudo-random generator (xoshiro256**, seeded through
 * splitmix64). The same seed gives the same stream on every machine and thread count.
 * Used for weight initialisation; not for anything security-related.
 * An nc_rng is a plain value: no allocation, not thread-safe (one per thread). */
#ifndef NC_RNG_H
#define NC_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nc_rng {
  uint64_t s[4];
  int has_spare;  /* Box-Muller produces normals in pairs */
  double spare;
} nc_rng;

/* Seeds the four state words with splitmix64(seed), splitmix64(...)... */
void nc_rng_seed(nc_rng *r, uint64_t seed);
/* Next 64 random bits. */
uint64_t nc_rng_u64(nc_rng *r);
/* Uniform double in [0, 1) with 53 random bits. */
double nc_rng_uniform(nc_rng *r);
/* Standard normal (Box-Muller on two uniforms; the second value is cached). */
double nc_rng_normal(nc_rng *r);

#ifdef __cplusplus
}
#endif
#endif /* NC_RNG_H */
