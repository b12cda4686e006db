/* nc_sample.c — token sampling of nc_sample.h. */
#include "nc_sample.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>

#include "nc_err.h"

/* ---- RNG: splitmix64 seeding, xoshiro256** ------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void nc_rng_seed(nc_rng *rng, uint64_t seed) {
  for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t nc_rng_next(nc_rng *rng) {
  uint64_t *s = rng->s;
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

double nc_rng_uniform(nc_rng *rng) { return (double)(nc_rng_next(rng) >> 11) * 0x1.0p-53; }

/* ---- sampler ------------------------------------------------------------------------------ */

struct nc_sampler {
  int vocab;
  int *idx;     /* [vocab] candidate token ids */
  float *val;   /* [vocab] candidate logits, then probabilities */
};

nc_sampling nc_sampling_default(void) {
  nc_sampling p = {0.6f, 50, 1.0f, 0.0f};
  return p;
}

int nc_sampler_create(int vocab_size, nc_sampler **out) {
  if (!out || vocab_size < 1 || vocab_size > (1 << 24)) return NC_EINVAL;
  nc_sampler *s = calloc(1, sizeof *s);
  if (!s) return NC_ENOMEM;
  s->vocab = vocab_size;
  s->idx = malloc(sizeof(int) * (size_t)vocab_size);
  s->val = malloc(sizeof(float) * (size_t)vocab_size);
  if (!s->idx || !s->val) {
    nc_sampler_free(s);
    return NC_ENOMEM;
  }
  *out = s;
  return NC_OK;
}

void nc_sampler_free(nc_sampler *s) {
  if (!s) return;
  free(s->idx);
  free(s->val);
  free(s);
}

/* Min-heap on (val, then larger id is "smaller" so ties keep the lowest id) of size k. */
static int heap_less(const float *v, const int *id, int a, int b) {
  return v[a] < v[b] || (v[a] == v[b] && id[a] > id[b]);
}

static void heap_down(float *v, int *id, int n, int i) {
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && heap_less(v, id, l, m)) m = l;
    if (r < n && heap_less(v, id, r, m)) m = r;
    if (m == i) return;
    float tv = v[i]; v[i] = v[m]; v[m] = tv;
    int ti = id[i]; id[i] = id[m]; id[m] = ti;
    i = m;
  }
}

/* Sort candidates by value descending (ties: lower id first). Insertion sort for small n,
 * heap sort otherwise. */
static void sort_desc(float *v, int *id, int n) {
  /* build a min-heap, then repeatedly move the minimum to the end: result is descending */
  for (int i = n / 2 - 1; i >= 0; i--) heap_down(v, id, n, i);
  for (int end = n - 1; end > 0; end--) {
    float tv = v[0]; v[0] = v[end]; v[end] = tv;
    int ti = id[0]; id[0] = id[end]; id[end] = ti;
    heap_down(v, id, end, 0);
  }
}

/* The readable scan: NC_ERANGE at the first non-finite logit, else *best = the first index of
 * the maximum. */
static int scan_scalar(const float *v, int n, int *best) {
  int b = 0;
  for (int i = 0; i < n; i++) {
    if (!isfinite(v[i])) return NC_ERANGE;
    if (v[i] > v[b]) b = i;
  }
  *best = b;
  return NC_OK;
}

/* The same result, 32 logits per iteration: a running max and a non-finite flag (|v| >= inf or
 * unordered), then the first index equal to the max (== treats -0 and +0 alike, as > does). */
__attribute__((target("avx2"))) static int scan_avx2(const float *v, int n, int *best) {
  if (n < 32) return scan_scalar(v, n, best);
  const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 inf = _mm256_set1_ps(INFINITY);
  __m256 m0 = _mm256_loadu_ps(v), m1 = m0, m2 = m0, m3 = m0, bad = _mm256_setzero_ps();
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256 a = _mm256_loadu_ps(v + i), b = _mm256_loadu_ps(v + i + 8);
    __m256 c = _mm256_loadu_ps(v + i + 16), d = _mm256_loadu_ps(v + i + 24);
    __m256 ab = _mm256_or_ps(_mm256_cmp_ps(_mm256_and_ps(a, absm), inf, _CMP_NLT_UQ),
                             _mm256_cmp_ps(_mm256_and_ps(b, absm), inf, _CMP_NLT_UQ));
    __m256 cd = _mm256_or_ps(_mm256_cmp_ps(_mm256_and_ps(c, absm), inf, _CMP_NLT_UQ),
                             _mm256_cmp_ps(_mm256_and_ps(d, absm), inf, _CMP_NLT_UQ));
    bad = _mm256_or_ps(bad, _mm256_or_ps(ab, cd));
    m0 = _mm256_max_ps(m0, a);
    m1 = _mm256_max_ps(m1, b);
    m2 = _mm256_max_ps(m2, c);
    m3 = _mm256_max_ps(m3, d);
  }
  if (_mm256_movemask_ps(bad)) return NC_ERANGE;
  for (int j = i; j < n; j++)
    if (!isfinite(v[j])) return NC_ERANGE;
  float t[8], mx;
  _mm256_storeu_ps(t, _mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)));
  mx = t[0];
  for (int j = 1; j < 8; j++) mx = t[j] > mx ? t[j] : mx;
  for (int j = i; j < n; j++) mx = v[j] > mx ? v[j] : mx;
  int b = 0;
  while (v[b] != mx) b++;
  *best = b;
  return NC_OK;
}

static int scan_logits(const float *v, int n, int *best) {
  static int avx2 = -1;
  if (avx2 < 0) {
    __builtin_cpu_init();
    avx2 = __builtin_cpu_supports("avx2") != 0;
  }
  return avx2 ? scan_avx2(v, n, best) : scan_scalar(v, n, best);
}

int nc_sampler_sample(nc_sampler *s, const float *logits, nc_sampling p, nc_rng *rng, int *token) {
  if (!s || !logits || !token) return NC_EINVAL;
  if (!(p.temperature >= 0.0f) || !isfinite(p.temperature) || p.top_k < 0 || !(p.top_p > 0.0f) ||
      !(p.top_p <= 1.0f) || !(p.min_p >= 0.0f) || !(p.min_p <= 1.0f))
    return NC_EINVAL;
  const int V = s->vocab;
  int best = 0;
  const int rc = scan_logits(logits, V, &best);
  if (rc) return rc;
  if (p.temperature == 0.0f) {
    *token = best;
    return NC_OK;
  }
  if (!rng) return NC_EINVAL;

  /* candidates: the top-k (sorted descending) or every token */
  int n;
  int sorted = 0;
  if (p.top_k > 0 && p.top_k < V) {
    int k = p.top_k;
    for (int i = 0; i < k; i++) { s->val[i] = logits[i]; s->idx[i] = i; }
    for (int i = k / 2 - 1; i >= 0; i--) heap_down(s->val, s->idx, k, i);
    for (int i = k; i < V; i++) {
      if (logits[i] > s->val[0]) {
        s->val[0] = logits[i];
        s->idx[0] = i;
        heap_down(s->val, s->idx, k, 0);
      }
    }
    sort_desc(s->val, s->idx, k);
    n = k;
    sorted = 1;
  } else {
    for (int i = 0; i < V; i++) { s->val[i] = logits[i]; s->idx[i] = i; }
    n = V;
  }

  /* softmax(val / T) in double for the normaliser */
  const double inv_t = 1.0 / (double)p.temperature;
  const double mx = (double)logits[best];
  double sum = 0.0;
  for (int i = 0; i < n; i++) {
    double e = exp(((double)s->val[i] - mx) * inv_t);
    s->val[i] = (float)e;
    sum += e;
  }
  double pmax = 1.0; /* exp(0) for the best token, always a candidate */
  if (p.min_p > 0.0f) {
    int m = 0;
    sum = 0.0;
    for (int i = 0; i < n; i++) {
      if ((double)s->val[i] >= (double)p.min_p * pmax) {
        s->val[m] = s->val[i];
        s->idx[m] = s->idx[i];
        sum += s->val[m];
        m++;
      }
    }
    n = m;
  }
  if (p.top_p < 1.0f) {
    if (!sorted) sort_desc(s->val, s->idx, n);
    double target = (double)p.top_p * sum, acc = 0.0;
    int m = 0;
    while (m < n) {
      acc += s->val[m++];
      if (acc >= target) break;
    }
    n = m;
    sum = acc;
  }
  double u = nc_rng_uniform(rng) * sum, acc = 0.0;
  for (int i = 0; i < n; i++) {
    acc += s->val[i];
    if (u < acc) {
      *token = s->idx[i];
      return NC_OK;
    }
  }
  *token = s->idx[n - 1]; /* rounding: u landed on the upper edge */
  return NC_OK;
}
