/* nc_sample.c — token sampling of nc_sample.h. */
#include "nc_sample.h"

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

int nc_sampler_sample(nc_sampler *s, const float *logits, nc_sampling p, nc_rng *rng, int *token) {
  if (!s || !logits || !token) return NC_EINVAL;
  if (!(p.temperature >= 0.0f) || !isfinite(p.temperature) || p.top_k < 0 || !(p.top_p > 0.0f) ||
      !(p.top_p <= 1.0f) || !(p.min_p >= 0.0f) || !(p.min_p <= 1.0f))
    return NC_EINVAL;
  const int V = s->vocab;
  int best = 0;
  for (int i = 0; i < V; i++) {
    if (!isfinite(logits[i])) return NC_ERANGE;
    if (logits[i] > logits[best]) best = i;
  }
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
