/* nc_gemv.c — bf16-weight GEMV kernels of nc_gemv.h. */
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

void nc_bf16_to_f32(const uint16_t *src, float *dst, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint32_t u = (uint32_t)src[i] << 16;
    memcpy(&dst[i], &u, 4);
  }
}

static int bad_args(const uint16_t *W, int O, int K, const float *x, int ldx, int B, float *y,
                    int ldy) {
  return !W || !x || !y || O < 1 || K < 1 || B < 1 || B > NC_GEMV_MAX_B || ldx < K || ldy < O;
}

int nc_gemv_bf16_ref(const uint16_t *W, int O, int K, const float *x, int ldx, int B, float *y,
                     int ldy) {
  if (bad_args(W, O, K, x, ldx, B, y, ldy)) return NC_EINVAL;
  for (int b = 0; b < B; b++) {
    for (int o = 0; o < O; o++) {
      float acc = 0.0f;
      for (int k = 0; k < K; k++) {
        uint32_t u = (uint32_t)W[(size_t)o * K + k] << 16;
        float w;
        memcpy(&w, &u, 4);
        acc += x[(size_t)b * ldx + k] * w;
      }
      y[(size_t)b * ldy + o] = acc;
    }
  }
  return NC_OK;
}

/* ---- AVX2 path ---------------------------------------------------------------------------- */

#define NC_AVX2 __attribute__((target("avx2,fma")))

NC_AVX2 static inline __m256 bf16x8_to_ps(const uint16_t *p) {
  __m128i h = _mm_loadu_si128((const __m128i *)p);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

NC_AVX2 static inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  return _mm_cvtss_f32(lo);
}

/* One vector (B == 1): one output row at a time with four independent accumulators; the
 * weight stream is sequential, which the hardware prefetcher follows at full bandwidth. */
NC_AVX2 static void rows_b1(const uint16_t *W, int o0, int o1, int K, const float *x, float *y) {
  const int K32 = K & ~31, K8 = K & ~7;
  for (int o = o0; o < o1; o++) {
    const uint16_t *w = W + (size_t)o * K;
    __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
    int k = 0;
    for (; k < K32; k += 32) {
      a = _mm256_fmadd_ps(bf16x8_to_ps(w + k), _mm256_loadu_ps(x + k), a);
      b = _mm256_fmadd_ps(bf16x8_to_ps(w + k + 8), _mm256_loadu_ps(x + k + 8), b);
      c = _mm256_fmadd_ps(bf16x8_to_ps(w + k + 16), _mm256_loadu_ps(x + k + 16), c);
      d = _mm256_fmadd_ps(bf16x8_to_ps(w + k + 24), _mm256_loadu_ps(x + k + 24), d);
    }
    for (; k < K8; k += 8) a = _mm256_fmadd_ps(bf16x8_to_ps(w + k), _mm256_loadu_ps(x + k), a);
    float acc = hsum(_mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d)));
    for (; k < K; k++) {
      uint32_t u = (uint32_t)w[k] << 16;
      float wf;
      memcpy(&wf, &u, 4);
      acc += x[k] * wf;
    }
    y[o] = acc;
  }
}

/* Several vectors: each weight row is converted 8 values at a time and multiplied into up to
 * 8 vectors at once (8 accumulators); a row (K*2 bytes) stays in L1 for further blocks of 8
 * vectors, so weights stream from memory once per call. */
NC_AVX2 static void rows_bn(const uint16_t *W, int o0, int o1, int K, const float *x, int ldx,
                            int B, float *y, int ldy) {
  const int K8 = K & ~7;
  for (int o = o0; o < o1; o++) {
    const uint16_t *w = W + (size_t)o * K;
    for (int b0 = 0; b0 < B; b0 += 8) {
      const int nb = B - b0 < 8 ? B - b0 : 8;
      const float *xb = x + (size_t)b0 * ldx;
      __m256 acc[8];
      for (int j = 0; j < 8; j++) acc[j] = _mm256_setzero_ps();
      int k = 0;
      if (nb == 8) {
        for (; k < K8; k += 8) {
          __m256 wv = bf16x8_to_ps(w + k);
          for (int j = 0; j < 8; j++)
            acc[j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xb + (size_t)j * ldx + k), acc[j]);
        }
      } else {
        for (; k < K8; k += 8) {
          __m256 wv = bf16x8_to_ps(w + k);
          for (int j = 0; j < nb; j++)
            acc[j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xb + (size_t)j * ldx + k), acc[j]);
        }
      }
      for (int j = 0; j < nb; j++) {
        float s = hsum(acc[j]);
        for (int kk = k; kk < K; kk++) {
          uint32_t u = (uint32_t)w[kk] << 16;
          float wf;
          memcpy(&wf, &u, 4);
          s += xb[(size_t)j * ldx + kk] * wf;
        }
        y[(size_t)(b0 + j) * ldy + o] = s;
      }
    }
  }
}

int nc_gemv_has_avx2(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

int nc_gemv_bf16(const uint16_t *W, int O, int K, const float *x, int ldx, int B, float *y, int ldy,
                 int threads) {
  if (bad_args(W, O, K, x, ldx, B, y, ldy)) return NC_EINVAL;
  if (!nc_gemv_has_avx2()) return nc_gemv_bf16_ref(W, O, K, x, ldx, B, y, ldy);
  if (threads <= 0) threads = omp_get_max_threads();
  /* small problems are not worth waking threads */
  if ((size_t)O * (size_t)K < (size_t)1 << 16) threads = 1;
  if (threads > O) threads = O;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    int nt = omp_get_num_threads(), t = omp_get_thread_num();
    int per = (O + nt - 1) / nt; /* contiguous chunk of output rows per thread */
    int o0 = t * per, o1 = o0 + per < O ? o0 + per : O;
    if (o0 < o1) {
      if (B == 1) rows_b1(W, o0, o1, K, x, y);
      else rows_bn(W, o0, o1, K, x, ldx, B, y, ldy);
    }
  }
  return NC_OK;
}
