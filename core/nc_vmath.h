/* nc_vmath.h — vectorised fp32 exp/tanh loops for the hot elementwise passes (softcap +
 * softmax over the vocabulary, attention softmax). Internal to core/.
 *
 * exp: Cody-Waite reduction by ln 2 and the Cephes expf polynomial (about 1-2 ulp over
 * [-87, 88]; inputs are clamped to that range). tanh: odd Taylor polynomial for |x| < 0.125,
 * (1-e)/(1+e) with e = exp(-2|x|) otherwise (absolute error below ~1e-7, no overflow).
 * The scalar functions are the readable definition; with AVX2+FMA the array helpers process
 * 8 lanes at a time with the same formulas, and fall back to the scalar code for tails.
 */
#ifndef NC_VMATH_H
#define NC_VMATH_H

#include <stdint.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define NC_VMATH_AVX2 1
#endif

#define NC_EXP_LO -87.0f
#define NC_EXP_HI 88.0f
#define NC_LOG2E 1.44269504088896341f
#define NC_LN2_HI 0.693359375f
#define NC_LN2_LO -2.12194440e-4f
#define NC_EXP_P0 1.9875691500e-4f
#define NC_EXP_P1 1.3981999507e-3f
#define NC_EXP_P2 8.3334519073e-3f
#define NC_EXP_P3 4.1665795894e-2f
#define NC_EXP_P4 1.6666665459e-1f
#define NC_EXP_P5 5.0000001201e-1f

static inline float nc_expf_s(float x) {
  if (x != x) return x; /* NaN stays NaN (and never reaches the float -> int conversion) */
  x = x < NC_EXP_LO ? NC_EXP_LO : x;
  x = x > NC_EXP_HI ? NC_EXP_HI : x;
  float k = __builtin_floorf(x * NC_LOG2E + 0.5f);
  float r = x - k * NC_LN2_HI;
  r = r - k * NC_LN2_LO;
  float p = NC_EXP_P0;
  p = p * r + NC_EXP_P1;
  p = p * r + NC_EXP_P2;
  p = p * r + NC_EXP_P3;
  p = p * r + NC_EXP_P4;
  p = p * r + NC_EXP_P5;
  p = p * (r * r) + r + 1.0f;
  int32_t bits = ((int32_t)k + 127) * (1 << 23);
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

static inline float nc_tanhf_s(float x) {
  float a = x < 0 ? -x : x;
  float t;
  if (a < 0.125f) {
    float a2 = a * a;
    t = a * (1.0f + a2 * (-1.0f / 3.0f + a2 * (2.0f / 15.0f + a2 * (-17.0f / 315.0f))));
  } else {
    float e = nc_expf_s(-2.0f * a);
    t = (1.0f - e) / (1.0f + e);
  }
  return x < 0 ? -t : t;
}

#ifdef NC_VMATH_AVX2
static inline __m256 nc_exp8(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(NC_EXP_LO));
  x = _mm256_min_ps(x, _mm256_set1_ps(NC_EXP_HI));
  __m256 k = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(NC_LOG2E), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(NC_LN2_HI), x);
  r = _mm256_fnmadd_ps(k, _mm256_set1_ps(NC_LN2_LO), r);
  __m256 p = _mm256_set1_ps(NC_EXP_P0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(NC_EXP_P1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(NC_EXP_P2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(NC_EXP_P3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(NC_EXP_P4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(NC_EXP_P5));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

static inline __m256 nc_tanh8(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 a = _mm256_andnot_ps(sign, x);
  __m256 e = nc_exp8(_mm256_mul_ps(a, _mm256_set1_ps(-2.0f)));
  __m256 one = _mm256_set1_ps(1.0f);
  __m256 big = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
  __m256 a2 = _mm256_mul_ps(a, a);
  __m256 q = _mm256_fmadd_ps(a2, _mm256_set1_ps(-17.0f / 315.0f), _mm256_set1_ps(2.0f / 15.0f));
  q = _mm256_fmadd_ps(a2, q, _mm256_set1_ps(-1.0f / 3.0f));
  q = _mm256_fmadd_ps(a2, q, one);
  __m256 small = _mm256_mul_ps(a, q);
  __m256 t = _mm256_blendv_ps(big, small, _mm256_cmp_ps(a, _mm256_set1_ps(0.125f), _CMP_LT_OQ));
  return _mm256_or_ps(t, _mm256_and_ps(x, sign));
}

static inline double nc_hsum8(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  __m256d d = _mm256_add_pd(_mm256_cvtps_pd(lo), _mm256_cvtps_pd(hi));
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(d), _mm256_extractf128_pd(d, 1));
  return _mm_cvtsd_f64(s) + _mm_cvtsd_f64(_mm_unpackhi_pd(s, s));
}
#endif

/* z[i] = cap * tanh(z[i] / cap) in place; returns sum_i exp(z[i]) (double accumulation
 * across blocks of 256). Requires |cap * tanh| small enough that exp does not overflow. */
static inline double nc_softcap_sumexp(float *z, int n, float cap) {
  const float icap = 1.0f / cap;
  double s = 0;
  int i = 0;
#ifdef NC_VMATH_AVX2
  const __m256 vc = _mm256_set1_ps(cap), vi = _mm256_set1_ps(icap);
  while (i + 8 <= n) {
    __m256 acc = _mm256_setzero_ps();
    int end = i + 256 < n ? i + 256 : n;
    for (; i + 8 <= end; i += 8) {
      __m256 l = _mm256_mul_ps(vc, nc_tanh8(_mm256_mul_ps(_mm256_loadu_ps(z + i), vi)));
      _mm256_storeu_ps(z + i, l);
      acc = _mm256_add_ps(acc, nc_exp8(l));
    }
    s += nc_hsum8(acc);
  }
#endif
  float sf = 0;
  for (; i < n; i++) {
    float l = cap * nc_tanhf_s(z[i] * icap);
    z[i] = l;
    sf += nc_expf_s(l);
    if ((i & 255) == 255) {
      s += sf;
      sf = 0;
    }
  }
  return s + sf;
}

/* Cross-entropy gradient through the softcap, in place: z holds capped logits l;
 * z[i] = om * exp(l - lse) * (1 - (l / cap)^2). */
static inline void nc_ce_softcap_grad(float *z, int n, float om, float lse, float cap) {
  const float icap = 1.0f / cap;
  int i = 0;
#ifdef NC_VMATH_AVX2
  const __m256 vom = _mm256_set1_ps(om), vl = _mm256_set1_ps(lse), vi = _mm256_set1_ps(icap);
  const __m256 one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= n; i += 8) {
    __m256 l = _mm256_loadu_ps(z + i);
    __m256 t = _mm256_mul_ps(l, vi);
    __m256 p = nc_exp8(_mm256_sub_ps(l, vl));
    __m256 d = _mm256_mul_ps(_mm256_mul_ps(vom, p), _mm256_fnmadd_ps(t, t, one));
    _mm256_storeu_ps(z + i, d);
  }
#endif
  for (; i < n; i++) {
    float l = z[i], t = l * icap;
    z[i] = om * nc_expf_s(l - lse) * (1.0f - t * t);
  }
}

/* s[i] = exp(a * s[i] - m) in place; returns the sum (double across blocks). */
static inline double nc_exp_affine_sum(float *s, int n, float a, float m) {
  double tot = 0;
  int i = 0;
#ifdef NC_VMATH_AVX2
  const __m256 va = _mm256_set1_ps(a), vm = _mm256_set1_ps(m);
  while (i + 8 <= n) {
    __m256 acc = _mm256_setzero_ps();
    int end = i + 256 < n ? i + 256 : n;
    for (; i + 8 <= end; i += 8) {
      __m256 e = nc_exp8(_mm256_fmsub_ps(va, _mm256_loadu_ps(s + i), vm));
      _mm256_storeu_ps(s + i, e);
      acc = _mm256_add_ps(acc, e);
    }
    tot += nc_hsum8(acc);
  }
#endif
  float sf = 0;
  for (; i < n; i++) {
    float e = nc_expf_s(a * s[i] - m);
    s[i] = e;
    sf += e;
  }
  return tot + sf;
}

/* max_i s[i] (n >= 1). */
static inline float nc_vmax(const float *s, int n) {
  float m = s[0];
  int i = 0;
#ifdef NC_VMATH_AVX2
  if (n >= 8) {
    __m256 vm = _mm256_loadu_ps(s);
    for (i = 8; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(s + i));
    float tmp[8];
    _mm256_storeu_ps(tmp, vm);
    for (int j = 0; j < 8; j++) m = tmp[j] > m ? tmp[j] : m;
  }
#endif
  for (; i < n; i++) m = s[i] > m ? s[i] : m;
  return m;
}

#endif /* NC_VMATH_H */
