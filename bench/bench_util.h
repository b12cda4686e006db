/* bench_util.h — timing helpers shared by the C benchmarks (header-only). */
#ifndef NC_BENCH_UTIL_H
#define NC_BENCH_UTIL_H

#include <stdlib.h>
#include <time.h>

/* Monotonic wall clock in seconds. */
static inline double nc_bench_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline int nc_bench_cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Median of v[0..n) (sorts v in place; n >= 1). */
static inline double nc_bench_median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(double), nc_bench_cmp_d);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif /* NC_BENCH_UTIL_H */
