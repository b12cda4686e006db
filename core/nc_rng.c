/* nc_rng.c — see nc_rng.h. xoshiro256** by Blackman and Vigna (public domain algorithm). */
#include "nc_rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void nc_rng_seed(nc_rng *r, uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
  r->has_spare = 0;
  r->spare = 0;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t nc_rng_u64(nc_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double nc_rng_uniform(nc_rng *r) { return (double)(nc_rng_u64(r) >> 11) * 0x1.0p-53; }

double nc_rng_normal(nc_rng *r) {
  if (r->has_spare) {
    r->has_spare = 0;
    return r->spare;
  }
  double u1 = nc_rng_uniform(r), u2 = nc_rng_uniform(r);
  if (u1 < 1e-300) u1 = 1e-300;
  double m = sqrt(-2.0 * log(u1));
  r->spare = m * sin(2.0 * M_PI * u2);
  r->has_spare = 1;
  return m * cos(2.0 * M_PI * u2);
}
