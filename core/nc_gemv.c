/* nc_gemv.c — fp32/bf16-weight GEMV kernels of nc_gemv.h. */
#include "nc_gemv.h"

#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "nc_err.h"

void nc_f32_to_bf16(const float *src, uint16_t *dst, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &src[i], 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) {
      dst[i] = (uint16_t)((u >> 16) | 0x40); /* quiet NaN stays NaN */
    } else {
      u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
      dst[i] = (uint16_t)(u >> 16);
    }
  }
}

static inline float bf16_1(const uint16_t *p) {
  uint32_t u = (uint32_t)*p << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static inline float f32_1(const float *p) { return *p; }

void nc_bf16_to_f32(const uint16_t *src, float *dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = bf16_1(src + i);
}

static int bad_args(const void *W, int O, int K, const float *x, int ldx, int B, float *y,
                    int ldy, int flags) {
  return !W || !x || !y || O < 1 || K < 1 || B < 1 || B > NC_GEMV_MAX_B || ldx < K || ldy < O ||
         (flags & ~NC_GEMV_ACCUMULATE);
}

/* ---- references and the portable path ---------------------------------------------------- */

#define NC_GEMV_SCALAR(SFX, WT, SCW)                                                        \
  static void scalar_##SFX(const WT *W, int O, int K, const float *x, int ldx, int B,       \
                           float *y, int ldy, int acc) {                                    \
    for (int b = 0; b < B; b++)                                                             \
      for (int o = 0; o < O; o++) {                                                         \
        float s = 0.0f;                                                                     \
        for (int k = 0; k < K; k++) s += x[(size_t)b * ldx + k] * SCW(W + (size_t)o * K + k); \
        float *p = y + (size_t)b * ldy + o;                                                 \
        *p = acc ? *p + s : s;                                                              \
      }                                                                                     \
  }
NC_GEMV_SCALAR(bf16, uint16_t, bf16_1)
NC_GEMV_SCALAR(f32, float, f32_1)

int nc_gemv_bf16_ref(const uint16_t *W, int O, int K, const float *x, int ldx, int B, float *y,
                     int ldy) {
  if (bad_args(W, O, K, x, ldx, B, y, ldy, 0)) return NC_EINVAL;
  scalar_bf16(W, O, K, x, ldx, B, y, ldy, 0);
  return NC_OK;
}

int nc_gemv_f32_ref(const float *W, int O, int K, const float *x, int ldx, int B, float *y,
                    int ldy) {
  if (bad_args(W, O, K, x, ldx, B, y, ldy, 0)) return NC_EINVAL;
  scalar_f32(W, O, K, x, ldx, B, y, ldy, 0);
  return NC_OK;
}

/* ---- AVX2 path ---------------------------------------------------------------------------- */

#define NC_AVX2 __attribute__((target("avx2,fma")))

NC_AVX2 static inline __m256 ld8_bf16(const uint16_t *p) {
  __m128i h = _mm_loadu_si128((const __m128i *)p);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

NC_AVX2 static inline __m256 ld8_f32(const float *p) { return _mm256_loadu_ps(p); }

/* The one horizontal sum every output goes through (fixed order: batch invariance). */
NC_AVX2 static inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  return _mm_cvtss_f32(lo);
}

static inline void put(float *p, float s, int acc) { *p = acc ? *p + s : s; }

/* Every output y[b, o]: acc8 = sum over k < K8 in steps of 8 of fma(w, x, acc8) from zero, then
 * hsum, then the tail k in [K8, K) in order. The tiles below only decide how many of these
 * independent chains run side by side (weights are loaded once per tile, not per vector).
 *  - B == 1: 4 output rows at a time (4 chains; the weight stream is sequential);
 *  - B >= 2: 2 rows x 4 vectors (8 chains; each weight load feeds 4 FMAs). */
#define NC_GEMV_AVX2(SFX, WT, LD8, SC1)                                                     \
  NC_AVX2 static inline float fin_##SFX(__m256 a, const WT *w, const float *x, int k, int K) { \
    float s = hsum(a);                                                                      \
    for (; k < K; k++) s += x[k] * SC1(w + k);                                              \
    return s;                                                                               \
  }                                                                                         \
  NC_AVX2 static void rows_##SFX(const WT *W, int o0, int o1, int K, const float *x, int ldx, \
                                 int B, float *y, int ldy, int acc) {                       \
    const int K8 = K & ~7;                                                                  \
    int o = o0;                                                                             \
    if (B == 1) {                                                                           \
      for (; o + 4 <= o1; o += 4) {                                                         \
        const WT *w0 = W + (size_t)o * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;          \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                         \
        for (int k = 0; k < K8; k += 8) {                                                   \
          __m256 xv = _mm256_loadu_ps(x + k);                                               \
          a0 = _mm256_fmadd_ps(LD8(w0 + k), xv, a0);                                        \
          a1 = _mm256_fmadd_ps(LD8(w1 + k), xv, a1);                                        \
          a2 = _mm256_fmadd_ps(LD8(w2 + k), xv, a2);                                        \
          a3 = _mm256_fmadd_ps(LD8(w3 + k), xv, a3);                                        \
        }                                                                                   \
        put(y + o, fin_##SFX(a0, w0, x, K8, K), acc);                                       \
        put(y + o + 1, fin_##SFX(a1, w1, x, K8, K), acc);                                   \
        put(y + o + 2, fin_##SFX(a2, w2, x, K8, K), acc);                                   \
        put(y + o + 3, fin_##SFX(a3, w3, x, K8, K), acc);                                   \
      }                                                                                     \
    } else {                                                                                \
      for (; o + 2 <= o1; o += 2) {                                                         \
        const WT *w0 = W + (size_t)o * K, *w1 = w0 + K;                                     \
        int b = 0;                                                                          \
        for (; b + 4 <= B; b += 4) {                                                        \
          const float *x0 = x + (size_t)b * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx; \
          __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;                \
          __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00;                                \
          for (int k = 0; k < K8; k += 8) {                                                 \
            __m256 v0 = LD8(w0 + k), v1 = LD8(w1 + k), xv;                                  \
            xv = _mm256_loadu_ps(x0 + k);                                                   \
            a00 = _mm256_fmadd_ps(v0, xv, a00);                                             \
            a10 = _mm256_fmadd_ps(v1, xv, a10);                                             \
            xv = _mm256_loadu_ps(x1 + k);                                                   \
            a01 = _mm256_fmadd_ps(v0, xv, a01);                                             \
            a11 = _mm256_fmadd_ps(v1, xv, a11);                                             \
            xv = _mm256_loadu_ps(x2 + k);                                                   \
            a02 = _mm256_fmadd_ps(v0, xv, a02);                                             \
            a12 = _mm256_fmadd_ps(v1, xv, a12);                                             \
            xv = _mm256_loadu_ps(x3 + k);                                                   \
            a03 = _mm256_fmadd_ps(v0, xv, a03);                                             \
            a13 = _mm256_fmadd_ps(v1, xv, a13);                                             \
          }                                                                                 \
          float *yb = y + (size_t)b * ldy + o;                                              \
          put(yb, fin_##SFX(a00, w0, x0, K8, K), acc);                                      \
          put(yb + 1, fin_##SFX(a10, w1, x0, K8, K), acc);                                  \
          put(yb + ldy, fin_##SFX(a01, w0, x1, K8, K), acc);                                \
          put(yb + ldy + 1, fin_##SFX(a11, w1, x1, K8, K), acc);                            \
          put(yb + 2 * (size_t)ldy, fin_##SFX(a02, w0, x2, K8, K), acc);                    \
          put(yb + 2 * (size_t)ldy + 1, fin_##SFX(a12, w1, x2, K8, K), acc);                \
          put(yb + 3 * (size_t)ldy, fin_##SFX(a03, w0, x3, K8, K), acc);                    \
          put(yb + 3 * (size_t)ldy + 1, fin_##SFX(a13, w1, x3, K8, K), acc);                \
        }                                                                                   \
        for (; b < B; b++) {                                                                \
          const float *xb = x + (size_t)b * ldx;                                            \
          __m256 a0 = _mm256_setzero_ps(), a1 = a0;                                         \
          for (int k = 0; k < K8; k += 8) {                                                 \
            __m256 xv = _mm256_loadu_ps(xb + k);                                            \
            a0 = _mm256_fmadd_ps(LD8(w0 + k), xv, a0);                                      \
            a1 = _mm256_fmadd_ps(LD8(w1 + k), xv, a1);                                      \
          }                                                                                 \
          put(y + (size_t)b * ldy + o, fin_##SFX(a0, w0, xb, K8, K), acc);                  \
          put(y + (size_t)b * ldy + o + 1, fin_##SFX(a1, w1, xb, K8, K), acc);              \
        }                                                                                   \
      }                                                                                     \
    }                                                                                       \
    for (; o < o1; o++) { /* leftover rows, one chain each */                               \
      const WT *w0 = W + (size_t)o * K;                                                     \
      for (int b = 0; b < B; b++) {                                                         \
        const float *xb = x + (size_t)b * ldx;                                              \
        __m256 a0 = _mm256_setzero_ps();                                                    \
        for (int k = 0; k < K8; k += 8) a0 = _mm256_fmadd_ps(LD8(w0 + k), _mm256_loadu_ps(xb + k), a0); \
        put(y + (size_t)b * ldy + o, fin_##SFX(a0, w0, xb, K8, K), acc);                    \
      }                                                                                     \
    }                                                                                       \
  }
NC_GEMV_AVX2(bf16, uint16_t, ld8_bf16, bf16_1)
NC_GEMV_AVX2(f32, float, ld8_f32, f32_1)

int nc_gemv_has_avx2(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* Threads for an O x K matrix: small problems are not worth waking threads. */
static int pick_threads(int threads, int O, int K) {
  if (threads <= 0) threads = omp_get_max_threads();
  if ((size_t)O * (size_t)K < (size_t)1 << 18) threads = 1;
  if (threads > (O + 3) / 4) threads = (O + 3) / 4;
  return threads < 1 ? 1 : threads;
}

/* Contiguous chunks of output rows, multiples of 4 so tiles stay whole (results do not
 * depend on the split; this only keeps the tails rare). */
#define NC_GEMV_DISPATCH(SFX, WT)                                                           \
  int nc_gemv_##SFX##_ex(const WT *W, int O, int K, const float *x, int ldx, int B, float *y, \
                         int ldy, int flags, int threads) {                                 \
    if (bad_args(W, O, K, x, ldx, B, y, ldy, flags)) return NC_EINVAL;                      \
    const int acc = flags & NC_GEMV_ACCUMULATE;                                             \
    if (!nc_gemv_has_avx2()) {                                                              \
      scalar_##SFX(W, O, K, x, ldx, B, y, ldy, acc);                                        \
      return NC_OK;                                                                         \
    }                                                                                       \
    threads = pick_threads(threads, O, K);                                                  \
    if (threads == 1) {                                                                     \
      rows_##SFX(W, 0, O, K, x, ldx, B, y, ldy, acc);                                       \
      return NC_OK;                                                                         \
    }                                                                                       \
    _Pragma("omp parallel num_threads(threads)")                                            \
    {                                                                                       \
      int nt = omp_get_num_threads(), t = omp_get_thread_num();                             \
      int per = ((O + nt - 1) / nt + 3) & ~3;                                               \
      int o0 = t * per < O ? t * per : O, o1 = o0 + per < O ? o0 + per : O;                 \
      if (o0 < o1) rows_##SFX(W, o0, o1, K, x, ldx, B, y, ldy, acc);                        \
    }                                                                                       \
    return NC_OK;                                                                           \
  }
NC_GEMV_DISPATCH(bf16, uint16_t)
NC_GEMV_DISPATCH(f32, float)

int nc_gemv_bf16(const uint16_t *W, int O, int K, const float *x, int ldx, int B, float *y, int ldy,
                 int threads) {
  return nc_gemv_bf16_ex(W, O, K, x, ldx, B, y, ldy, 0, threads);
}
