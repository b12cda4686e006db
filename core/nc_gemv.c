/* nc_gemv.c — fp32/bf16-weight GEMV kernels of nc_gemv.h. */
#include "nc_gemv.h"

#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "nc_err.h"
#include "nc_par.h"

static inline uint16_t f32_to_bf16_1(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu))
    return (uint16_t)((u >> 16) | 0x40); /* quiet NaN stays NaN */
  u += 0x7fffu + ((u >> 16) & 1u);       /* round to nearest even */
  return (uint16_t)(u >> 16);
}

/* The same integer arithmetic 8 lanes at a time (bit-identical to the scalar loop). */
__attribute__((target("avx2"))) static size_t f32_to_bf16_avx2(const float *src, uint16_t *dst,
                                                               size_t n) {
  const __m256i abs = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
  const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1);
  const __m256i quiet = _mm256_set1_epi32(0x40);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i r[2];
    for (int h = 0; h < 2; h++) {
      __m256i u = _mm256_loadu_si256((const __m256i *)(src + i + 8 * h));
      __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs), inf);
      __m256i rnd = _mm256_add_epi32(u, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(u, 16), one)));
      __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), quiet);
      r[h] = _mm256_blendv_epi8(_mm256_srli_epi32(rnd, 16), q, nan);
    }
    /* pack 2 x 8 dwords (all <= 0xffff) to 16 words, undoing the per-lane interleave */
    __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), 0xd8);
    _mm256_storeu_si256((__m256i *)(dst + i), p);
  }
  return i;
}

void nc_f32_to_bf16(const float *src, uint16_t *dst, size_t n) {
  size_t i = nc_gemv_has_avx2() ? f32_to_bf16_avx2(src, dst, n) : 0;
  for (; i < n; i++) dst[i] = f32_to_bf16_1(src[i]);
}

static inline float bf16_1(const uint16_t *p) {
  uint32_t u = (uint32_t)*p << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static inline float f32_1(const float *p) { return *p; }

/* Exact widening 8 at a time (a bf16 is the top half of its fp32). */
__attribute__((target("avx2"))) static size_t bf16_to_f32_avx2(const uint16_t *src, float *dst,
                                                               size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
    _mm256_storeu_si256((__m256i *)(dst + i), _mm256_slli_epi32(w, 16));
  }
  return i;
}

void nc_bf16_to_f32(const uint16_t *src, float *dst, size_t n) {
  size_t i = nc_gemv_has_avx2() ? bf16_to_f32_avx2(src, dst, n) : 0;
  for (; i < n; i++) dst[i] = bf16_1(src + i);
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
 *  - B == 1: 8 output rows at a time (8 chains hide the FMA latency; the weight stream is
 *    sequential);
 *  - B >= 2: 2 rows x 4 vectors (8 chains; each weight load feeds 4 FMAs). */
#define NC_GEMV_AVX2(SFX, WT, LD8, SC1, PFQ)                                                   \
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
      for (; o + 8 <= o1; o += 8) {                                                         \
        const WT *w0 = W + (size_t)o * K;                                                   \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                         \
        __m256 a4 = a0, a5 = a0, a6 = a0, a7 = a0;                                          \
        const WT *pf = o + 16 <= o1 ? w0 + 8 * (size_t)K : NULL; /* next tile */            \
        for (int k = 0; k < K8; k += 8) {                                                   \
          if (pf && (k & (PFQ - 1)) == 0)                                                   \
            for (int j = 0; j < 8; j++) _mm_prefetch((const char *)(pf + (size_t)j * K + k), _MM_HINT_T0); \
          __m256 xv = _mm256_loadu_ps(x + k);                                               \
          a0 = _mm256_fmadd_ps(LD8(w0 + k), xv, a0);                                        \
          a1 = _mm256_fmadd_ps(LD8(w0 + (size_t)K + k), xv, a1);                            \
          a2 = _mm256_fmadd_ps(LD8(w0 + 2 * (size_t)K + k), xv, a2);                        \
          a3 = _mm256_fmadd_ps(LD8(w0 + 3 * (size_t)K + k), xv, a3);                        \
          a4 = _mm256_fmadd_ps(LD8(w0 + 4 * (size_t)K + k), xv, a4);                        \
          a5 = _mm256_fmadd_ps(LD8(w0 + 5 * (size_t)K + k), xv, a5);                        \
          a6 = _mm256_fmadd_ps(LD8(w0 + 6 * (size_t)K + k), xv, a6);                        \
          a7 = _mm256_fmadd_ps(LD8(w0 + 7 * (size_t)K + k), xv, a7);                        \
        }                                                                                   \
        put(y + o, fin_##SFX(a0, w0, x, K8, K), acc);                                       \
        put(y + o + 1, fin_##SFX(a1, w0 + (size_t)K, x, K8, K), acc);                       \
        put(y + o + 2, fin_##SFX(a2, w0 + 2 * (size_t)K, x, K8, K), acc);                   \
        put(y + o + 3, fin_##SFX(a3, w0 + 3 * (size_t)K, x, K8, K), acc);                   \
        put(y + o + 4, fin_##SFX(a4, w0 + 4 * (size_t)K, x, K8, K), acc);                   \
        put(y + o + 5, fin_##SFX(a5, w0 + 5 * (size_t)K, x, K8, K), acc);                   \
        put(y + o + 6, fin_##SFX(a6, w0 + 6 * (size_t)K, x, K8, K), acc);                   \
        put(y + o + 7, fin_##SFX(a7, w0 + 7 * (size_t)K, x, K8, K), acc);                   \
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
NC_GEMV_AVX2(bf16, uint16_t, ld8_bf16, bf16_1, 32) /* 32 bf16 = one cache line */
NC_GEMV_AVX2(f32, float, ld8_f32, f32_1, 16)

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
/* One chunk of `per` output rows per task (nc_par_run). */
#define NC_GEMV_ROWS_JOB(SFX, WT)                                                           \
  typedef struct rows_job_##SFX {                                                           \
    const WT *W;                                                                            \
    int O, K;                                                                               \
    const float *x;                                                                         \
    int ldx, B;                                                                             \
    float *y;                                                                               \
    int ldy, acc, per;                                                                      \
  } rows_job_##SFX;                                                                         \
  static void rows_task_##SFX(void *ctx, int t, int w) {                                    \
    (void)w;                                                                                \
    const rows_job_##SFX *j = ctx;                                                          \
    const int o0 = t * j->per, o1 = o0 + j->per < j->O ? o0 + j->per : j->O;                \
    rows_##SFX(j->W, o0, o1, j->K, j->x, j->ldx, j->B, j->y, j->ldy, j->acc);               \
  }
NC_GEMV_ROWS_JOB(bf16, uint16_t)
NC_GEMV_ROWS_JOB(f32, float)

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
    rows_job_##SFX j = {W, O, K, x, ldx, B, y, ldy, acc, ((O + threads - 1) / threads + 3) & ~3}; \
    nc_par_run(threads, (O + j.per - 1) / j.per, rows_task_##SFX, &j);                       \
    return NC_OK;                                                                           \
  }
NC_GEMV_DISPATCH(bf16, uint16_t)
NC_GEMV_DISPATCH(f32, float)

int nc_gemv_bf16(const uint16_t *W, int O, int K, const float *x, int ldx, int B, float *y, int ldy,
                 int threads) {
  return nc_gemv_bf16_ex(W, O, K, x, ldx, B, y, ldy, 0, threads);
}

/* ---- packed bf16 (row tiles of 8, k-blocks of 8: one sequential weight stream) ------------ */

size_t nc_gemv_bf16_packed_size(int O, int K) {
  if (O < 1 || K < 1) return 0;
  return (size_t)((O + 7) / 8) * 8 * (size_t)K;
}

/* Tiles per work item when T tiles are shared by `threads` threads: about 8 items per thread,
 * taken first come first served (a thread descheduled by the machine's other load does less;
 * results do not depend on the split). */
static int tile_chunk(int T, int threads) {
  int ch = T / (threads * 8);
  return ch < 2 ? 2 : ch;
}

/* element (o, k) of a packed matrix */
static inline size_t pk_at(int o, int k, int KB) {
  return (((size_t)(o / 8) * (size_t)KB + (size_t)(k / 8)) * 8 + (size_t)(o % 8)) * 8 + (size_t)(k % 8);
}

int nc_gemv_bf16_pack(const float *W, int O, int K, uint16_t *dst) {
  if (!W || !dst || O < 1 || K < 8 || K % 8) return NC_EINVAL;
  const int KB = K / 8, OP = (O + 7) / 8 * 8;
  static const float zero8[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int o = 0; o < OP; o++)
    for (int j = 0; j < KB; j++)
      nc_f32_to_bf16(o < O ? W + (size_t)o * K + (size_t)j * 8 : zero8, dst + pk_at(o, j * 8, KB), 8);
  return NC_OK;
}

int nc_gemv_bf16_packed_ref(const uint16_t *Wp, int O, int K, const float *x, int ldx, int B,
                            float *y, int ldy) {
  if (bad_args(Wp, O, K, x, ldx, B, y, ldy, 0) || K % 8) return NC_EINVAL;
  const int KB = K / 8;
  for (int b = 0; b < B; b++)
    for (int o = 0; o < O; o++) {
      float s = 0.0f;
      for (int k = 0; k < K; k++) s += x[(size_t)b * ldx + k] * bf16_1(Wp + pk_at(o, k, KB));
      y[(size_t)b * ldy + o] = s;
    }
  return NC_OK;
}

static void scalar_packed(const uint16_t *Wp, int O, int K, const float *x, int ldx, int B,
                          float *y, int ldy, int acc) {
  const int KB = K / 8;
  for (int b = 0; b < B; b++)
    for (int o = 0; o < O; o++) {
      float s = 0.0f;
      for (int k = 0; k < K; k++) s += x[(size_t)b * ldx + k] * bf16_1(Wp + pk_at(o, k, KB));
      put(y + (size_t)b * ldy + o, s, acc);
    }
}

/* Tiles [t0, t1). Per output the same chain as the unpacked kernels (one 8-lane accumulator over
 * k, hsum; K % 8 == 0 so there is no tail). B == 1: the 8 rows of a tile at once, reading the
 * tile front to back; B >= 2: row pairs x 4 vectors (each weight load feeds 4 FMAs; the tile
 * stays in L1/L2 while its 4 row pairs are processed). */
NC_AVX2 static void packed_tiles(const uint16_t *Wp, int O, int K, int t0, int t1, const float *x,
                                 int ldx, int B, float *y, int ldy, int acc) {
  const int KB = K / 8;
  for (int t = t0; t < t1; t++) {
    const uint16_t *wt = Wp + (size_t)t * KB * 64;
    const int o = t * 8, nr = O - o < 8 ? O - o : 8;
    if (B == 1) {
      __m256 a[8];
      for (int r = 0; r < 8; r++) a[r] = _mm256_setzero_ps();
      const uint16_t *w = wt;
      for (int j = 0; j < KB; j++, w += 64) {
        __m256 xv = _mm256_loadu_ps(x + (size_t)j * 8);
        a[0] = _mm256_fmadd_ps(ld8_bf16(w), xv, a[0]);
        a[1] = _mm256_fmadd_ps(ld8_bf16(w + 8), xv, a[1]);
        a[2] = _mm256_fmadd_ps(ld8_bf16(w + 16), xv, a[2]);
        a[3] = _mm256_fmadd_ps(ld8_bf16(w + 24), xv, a[3]);
        a[4] = _mm256_fmadd_ps(ld8_bf16(w + 32), xv, a[4]);
        a[5] = _mm256_fmadd_ps(ld8_bf16(w + 40), xv, a[5]);
        a[6] = _mm256_fmadd_ps(ld8_bf16(w + 48), xv, a[6]);
        a[7] = _mm256_fmadd_ps(ld8_bf16(w + 56), xv, a[7]);
      }
      for (int r = 0; r < nr; r++) put(y + o + r, hsum(a[r]), acc);
      continue;
    }
    for (int r = 0; r < nr; r += 2) {
      const uint16_t *w0 = wt + (size_t)r * 8, *w1 = w0 + 8;
      const int two = r + 1 < nr;
      int b = 0;
      for (; b + 4 <= B; b += 4) {
        const float *x0 = x + (size_t)b * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;
        __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
        __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        for (int j = 0; j < KB; j++) {
          const size_t k = (size_t)j * 8, wo = (size_t)j * 64;
          __m256 v0 = ld8_bf16(w0 + wo), v1 = ld8_bf16(w1 + wo), xv;
          xv = _mm256_loadu_ps(x0 + k);
          a00 = _mm256_fmadd_ps(v0, xv, a00);
          a10 = _mm256_fmadd_ps(v1, xv, a10);
          xv = _mm256_loadu_ps(x1 + k);
          a01 = _mm256_fmadd_ps(v0, xv, a01);
          a11 = _mm256_fmadd_ps(v1, xv, a11);
          xv = _mm256_loadu_ps(x2 + k);
          a02 = _mm256_fmadd_ps(v0, xv, a02);
          a12 = _mm256_fmadd_ps(v1, xv, a12);
          xv = _mm256_loadu_ps(x3 + k);
          a03 = _mm256_fmadd_ps(v0, xv, a03);
          a13 = _mm256_fmadd_ps(v1, xv, a13);
        }
        float *yb = y + (size_t)b * ldy + o + r;
        put(yb, hsum(a00), acc);
        put(yb + ldy, hsum(a01), acc);
        put(yb + 2 * (size_t)ldy, hsum(a02), acc);
        put(yb + 3 * (size_t)ldy, hsum(a03), acc);
        if (two) {
          put(yb + 1, hsum(a10), acc);
          put(yb + ldy + 1, hsum(a11), acc);
          put(yb + 2 * (size_t)ldy + 1, hsum(a12), acc);
          put(yb + 3 * (size_t)ldy + 1, hsum(a13), acc);
        }
      }
      for (; b < B; b++) {
        const float *xb = x + (size_t)b * ldx;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        for (int j = 0; j < KB; j++) {
          __m256 xv = _mm256_loadu_ps(xb + (size_t)j * 8);
          a0 = _mm256_fmadd_ps(ld8_bf16(w0 + (size_t)j * 64), xv, a0);
          a1 = _mm256_fmadd_ps(ld8_bf16(w1 + (size_t)j * 64), xv, a1);
        }
        put(y + (size_t)b * ldy + o + r, hsum(a0), acc);
        if (two) put(y + (size_t)b * ldy + o + r + 1, hsum(a1), acc);
      }
    }
  }
}

/* AVX-512 (B >= 2): a zmm holds rows (r, r+1) of one k-block — 8 lanes each — and x's 8-lane
 * block is broadcast to both halves, so every lane half runs exactly the 8-lane chain of the
 * AVX2 kernels (lane-wise FMAs, then the same hsum on each half): bit-identical results with
 * twice the work per instruction. A tile's 4 row pairs x 4 vectors = 16 accumulators. */
#define NC_AVX512 __attribute__((target("avx512f,avx512dq,avx2,fma")))

NC_AVX512 static inline __m512 ld16_bf16(const uint16_t *p) {
  __m256i h = _mm256_loadu_si256((const __m256i *)p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

NC_AVX512 static inline void put_pair(float *y, __m512 a, int two, int acc) {
  put(y, hsum(_mm512_castps512_ps256(a)), acc);
  if (two) put(y + 1, hsum(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1))), acc);
}

NC_AVX512 static void packed_tiles_512(const uint16_t *Wp, int O, int K, int t0, int t1,
                                       const float *x, int ldx, int B, float *y, int ldy, int acc) {
  const int KB = K / 8;
  for (int t = t0; t < t1; t++) {
    const uint16_t *wt = Wp + (size_t)t * KB * 64;
    const int o = t * 8, nr = O - o < 8 ? O - o : 8;
    int b = 0;
    for (; b + 4 <= B; b += 4) {
      const float *xb = x + (size_t)b * ldx;
      __m512 a[4][4];
      for (int p = 0; p < 4; p++)
        for (int v = 0; v < 4; v++) a[p][v] = _mm512_setzero_ps();
      for (int j = 0; j < KB; j++) {
        const uint16_t *w = wt + (size_t)j * 64;
        __m512 w0 = ld16_bf16(w), w1 = ld16_bf16(w + 16), w2 = ld16_bf16(w + 32), w3 = ld16_bf16(w + 48);
        for (int v = 0; v < 4; v++) {
          __m512 xv = _mm512_broadcast_f32x8(_mm256_loadu_ps(xb + (size_t)v * ldx + (size_t)j * 8));
          a[0][v] = _mm512_fmadd_ps(w0, xv, a[0][v]);
          a[1][v] = _mm512_fmadd_ps(w1, xv, a[1][v]);
          a[2][v] = _mm512_fmadd_ps(w2, xv, a[2][v]);
          a[3][v] = _mm512_fmadd_ps(w3, xv, a[3][v]);
        }
      }
      for (int v = 0; v < 4; v++)
        for (int p = 0; p < 4 && 2 * p < nr; p++)
          put_pair(y + (size_t)(b + v) * ldy + o + 2 * p, a[p][v], 2 * p + 1 < nr, acc);
    }
    for (; b < B; b++) {
      const float *xb = x + (size_t)b * ldx;
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int j = 0; j < KB; j++) {
        const uint16_t *w = wt + (size_t)j * 64;
        __m512 xv = _mm512_broadcast_f32x8(_mm256_loadu_ps(xb + (size_t)j * 8));
        a0 = _mm512_fmadd_ps(ld16_bf16(w), xv, a0);
        a1 = _mm512_fmadd_ps(ld16_bf16(w + 16), xv, a1);
        a2 = _mm512_fmadd_ps(ld16_bf16(w + 32), xv, a2);
        a3 = _mm512_fmadd_ps(ld16_bf16(w + 48), xv, a3);
      }
      __m512 as[4] = {a0, a1, a2, a3};
      for (int p = 0; p < 4 && 2 * p < nr; p++)
        put_pair(y + (size_t)b * ldy + o + 2 * p, as[p], 2 * p + 1 < nr, acc);
    }
  }
}

static int use_avx512(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* NC_GEMV_ISA_AUTO, or a forced path (tests compare paths bit for bit). */
static _Atomic int g_isa = NC_GEMV_ISA_AUTO;

int nc_gemv_force_isa(int isa) {
  if (isa < NC_GEMV_ISA_AUTO || isa > NC_GEMV_ISA_AVX512) return NC_EINVAL;
  if (isa == NC_GEMV_ISA_AVX512 && !use_avx512()) return NC_ENOTSUP;
  if (isa == NC_GEMV_ISA_AVX2 && !nc_gemv_has_avx2()) return NC_ENOTSUP;
  g_isa = isa;
  return NC_OK;
}

static void packed_run(const uint16_t *Wp, int O, int K, int t0, int t1, const float *x, int ldx,
                       int B, float *y, int ldy, int acc, int avx512) {
  if (B >= 2 && avx512) packed_tiles_512(Wp, O, K, t0, t1, x, ldx, B, y, ldy, acc);
  else packed_tiles(Wp, O, K, t0, t1, x, ldx, B, y, ldy, acc);
}

/* Chunks of `ch` tiles, handed out first come first served (results do not depend on it). */
typedef struct packed_job {
  const uint16_t *Wp;
  int O, K;
  const float *x;
  int ldx, B;
  float *y;
  int ldy, acc, avx512, T, ch;
} packed_job;

static void packed_task(void *ctx, int c, int w) {
  (void)w;
  const packed_job *j = ctx;
  const int t1 = c * j->ch + j->ch < j->T ? c * j->ch + j->ch : j->T;
  packed_run(j->Wp, j->O, j->K, c * j->ch, t1, j->x, j->ldx, j->B, j->y, j->ldy, j->acc, j->avx512);
}

int nc_gemv_bf16_packed(const uint16_t *Wp, int O, int K, const float *x, int ldx, int B,
                        float *y, int ldy, int flags, int threads) {
  if (bad_args(Wp, O, K, x, ldx, B, y, ldy, flags) || K % 8) return NC_EINVAL;
  const int acc = flags & NC_GEMV_ACCUMULATE, isa = g_isa;
  if (isa == NC_GEMV_ISA_SCALAR || !nc_gemv_has_avx2()) {
    scalar_packed(Wp, O, K, x, ldx, B, y, ldy, acc);
    return NC_OK;
  }
  const int avx512 = isa == NC_GEMV_ISA_AVX512 || (isa == NC_GEMV_ISA_AUTO && use_avx512());
  const int T = (O + 7) / 8;
  threads = pick_threads(threads, O, K);
  if (threads > T) threads = T;
  if (threads <= 1) {
    packed_run(Wp, O, K, 0, T, x, ldx, B, y, ldy, acc, avx512);
    return NC_OK;
  }
  packed_job j = {Wp, O, K, x, ldx, B, y, ldy, acc, avx512, T, tile_chunk(T, threads)};
  nc_par_run(threads, (T + j.ch - 1) / j.ch, packed_task, &j);
  return NC_OK;
}

/* ---- bf16 x bf16 dot products (AVX512_BF16) ------------------------------------------------ */

int nc_gemv_bf16dp_available(void) {
  __builtin_cpu_init();
  return use_avx512() && __builtin_cpu_supports("avx512bf16");
}

/* Reference: y = sum_k bf16(x) * bf16(w) accumulated in double (the dot-product instructions
 * round differently; tests compare with a tolerance). */
int nc_gemv_bf16dp_packed_ref(const uint16_t *Wp, int O, int K, const uint16_t *xb, int ldx,
                              int B, float *y, int ldy) {
  if (!xb || bad_args(Wp, O, K, (const float *)xb, ldx, B, y, ldy, 0) || K % 8) return NC_EINVAL;
  const int KB = K / 8;
  for (int b = 0; b < B; b++)
    for (int o = 0; o < O; o++) {
      double s = 0;
      for (int k = 0; k < K; k++)
        s += (double)bf16_1(xb + (size_t)b * ldx + k) * bf16_1(Wp + pk_at(o, k, KB));
      y[(size_t)b * ldy + o] = (float)s;
    }
  return NC_OK;
}

/* A zmm of a packed k-block holds rows (r..r+3) x 8 k = 16 dword lanes, each a k pair; x's 8
 * bf16 of the block are broadcast to the 4 row groups; VDPBF16PS accumulates per lane. Output
 * row r+i = (lane 4i + lane 4i+1) + (lane 4i+2 + lane 4i+3). Every output runs the same lane
 * sequence whatever B or the tile shape (batch invariance). NB vectors share the weight loads. */
#define NC_AVX512BF16 __attribute__((target("avx512f,avx512dq,avx512bf16,avx512vl,avx2,fma")))

/* The readable form of a tile's reduction: output row r0+i of a k-block zmm, scalar. */
NC_AVX512BF16 static inline void dp_store(float *y, __m512 a, int r0, int nr, int acc) {
  float t[16];
  _mm512_storeu_ps(t, a);
  for (int i = 0; i < 4 && r0 + i < nr; i++) {
    float s = (t[4 * i] + t[4 * i + 1]) + (t[4 * i + 2] + t[4 * i + 3]);
    put(y + r0 + i, s, acc);
  }
}

/* The same sums for all 8 rows of a tile at once (lo: rows 0-3, hi: rows 4-7): lane 4i + its
 * neighbour, then + the pair two lanes on, i.e. (t0 + t1) + (t2 + t3) per row as dp_store
 * (addition is commutative bit for bit), gathered to 8 floats; masked to the tile's nr rows. */
NC_AVX512BF16 static inline void dp_store8(float *y, __m512 lo, __m512 hi, int nr, int acc) {
  lo = _mm512_add_ps(lo, _mm512_permute_ps(lo, 0xb1));
  hi = _mm512_add_ps(hi, _mm512_permute_ps(hi, 0xb1));
  lo = _mm512_add_ps(lo, _mm512_permute_ps(lo, 0x4e));
  hi = _mm512_add_ps(hi, _mm512_permute_ps(hi, 0x4e));
  const __m512i pick = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0);
  __m256 s = _mm512_castps512_ps256(_mm512_permutex2var_ps(lo, pick, hi));
  const __mmask8 m = (__mmask8)((1u << nr) - 1u);
  if (acc) s = _mm256_add_ps(_mm256_maskz_loadu_ps(m, y), s);
  _mm256_mask_storeu_ps(y, m, s);
}

/* NB vectors x one tile: per k-block 2 weight loads (rows 0-3, 4-7) feed 2 * NB dot products. */
#define NC_DP_TILE(NB)                                                                        \
  NC_AVX512BF16 static void dp_tile_##NB(const uint16_t *wt, int KB, const uint16_t *xb,       \
                                         int ldx, float *y, int ldy, int o, int nr, int acc, \
                                         const uint16_t *pf) {                                \
    __m512 lo[NB], hi[NB];                                                                    \
    for (int v = 0; v < NB; v++) lo[v] = hi[v] = _mm512_setzero_ps();                         \
    for (int j = 0; j < KB; j++) {                                                            \
      if (pf) {                                                                               \
        _mm_prefetch((const char *)(pf + (size_t)j * 64), _MM_HINT_T1);                       \
        _mm_prefetch((const char *)(pf + (size_t)j * 64 + 32), _MM_HINT_T1);                  \
      }                                                                                       \
      const __m512bh w0 = (__m512bh)_mm512_loadu_si512((const void *)(wt + (size_t)j * 64));  \
      const __m512bh w1 = (__m512bh)_mm512_loadu_si512((const void *)(wt + (size_t)j * 64 + 32)); \
      for (int v = 0; v < NB; v++) {                                                          \
        const __m512bh xv = (__m512bh)_mm512_broadcast_i32x4(                                 \
            _mm_loadu_si128((const __m128i *)(xb + (size_t)v * ldx + (size_t)j * 8)));        \
        lo[v] = _mm512_dpbf16_ps(lo[v], w0, xv);                                              \
        hi[v] = _mm512_dpbf16_ps(hi[v], w1, xv);                                              \
      }                                                                                       \
    }                                                                                         \
    for (int v = 0; v < NB; v++) dp_store8(y + (size_t)v * ldy + o, lo[v], hi[v], nr, acc);  \
  }
NC_DP_TILE(8)
NC_DP_TILE(4)
NC_DP_TILE(2)
NC_DP_TILE(1)

#define NC_DP_AHEAD 4 /* tiles */

NC_AVX512BF16 static void dp_tiles(const uint16_t *Wp, int O, int K, int t0, int t1,
                                   const uint16_t *xb, int ldx, int B, float *y, int ldy, int acc) {
  const int KB = K / 8, T = (O + 7) / 8;
  for (int t = t0; t < t1; t++) {
    const uint16_t *wt = Wp + (size_t)t * KB * 64;
    const int o = t * 8, nr = O - o < 8 ? O - o : 8;
    /* B >= 8 (several passes per tile): the first pass also prefetches the tile NC_DP_AHEAD
     * on into L2; the other passes find this one in L1. Measured on DRAM-resident matrices:
     * into L1 instead (evicting the tile and activations in use) is 1.5x slower, and with one
     * pass (B < 8) the hardware prefetcher alone is faster. */
    const uint16_t *pf = B >= 8 && t + NC_DP_AHEAD < T ? wt + (size_t)NC_DP_AHEAD * KB * 64 : NULL;
    int b = 0;
#define NC_DP_RUN(NB)                                                                         \
  for (; b + NB <= B; b += NB, pf = NULL)                                                     \
    dp_tile_##NB(wt, KB, xb + (size_t)b * ldx, ldx, y + (size_t)b * ldy, ldy, o, nr, acc, pf);
    NC_DP_RUN(8)
    NC_DP_RUN(4)
    NC_DP_RUN(2)
    NC_DP_RUN(1)
#undef NC_DP_RUN
  }
}

/* The plain kernel: one vector and one tile at a time, scalar reductions (dp_store). */
NC_AVX512BF16 static void dp_plain(const uint16_t *Wp, int O, int K, const uint16_t *xb, int ldx,
                                   int B, float *y, int ldy, int acc) {
  const int KB = K / 8, T = (O + 7) / 8;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      const uint16_t *wt = Wp + (size_t)t * KB * 64;
      const int o = t * 8, nr = O - o < 8 ? O - o : 8;
      __m512 lo = _mm512_setzero_ps(), hi = lo;
      for (int j = 0; j < KB; j++) {
        const __m512bh xv = (__m512bh)_mm512_broadcast_i32x4(
            _mm_loadu_si128((const __m128i *)(xb + (size_t)b * ldx + (size_t)j * 8)));
        lo = _mm512_dpbf16_ps(lo, (__m512bh)_mm512_loadu_si512((const void *)(wt + (size_t)j * 64)), xv);
        hi = _mm512_dpbf16_ps(hi, (__m512bh)_mm512_loadu_si512((const void *)(wt + (size_t)j * 64 + 32)), xv);
      }
      dp_store(y + (size_t)b * ldy + o, lo, 0, nr, acc);
      dp_store(y + (size_t)b * ldy + o, hi, 4, nr, acc);
    }
}

int nc_gemv_bf16dp_packed_plain(const uint16_t *Wp, int O, int K, const uint16_t *xb, int ldx,
                                int B, float *y, int ldy, int flags) {
  if (!xb || bad_args(Wp, O, K, (const float *)xb, ldx, B, y, ldy, flags) || K % 8) return NC_EINVAL;
  if (!nc_gemv_bf16dp_available()) return NC_ENOTSUP;
  dp_plain(Wp, O, K, xb, ldx, B, y, ldy, flags & NC_GEMV_ACCUMULATE);
  return NC_OK;
}

typedef struct dp_job {
  const uint16_t *Wp;
  int O, K;
  const uint16_t *xb;
  int ldx, B;
  float *y;
  int ldy, acc, T, ch;
} dp_job;

static void dp_task(void *ctx, int c, int w) {
  (void)w;
  const dp_job *j = ctx;
  const int t1 = c * j->ch + j->ch < j->T ? c * j->ch + j->ch : j->T;
  dp_tiles(j->Wp, j->O, j->K, c * j->ch, t1, j->xb, j->ldx, j->B, j->y, j->ldy, j->acc);
}

int nc_gemv_bf16dp_packed(const uint16_t *Wp, int O, int K, const uint16_t *xb, int ldx, int B,
                          float *y, int ldy, int flags, int threads) {
  if (!xb || bad_args(Wp, O, K, (const float *)xb, ldx, B, y, ldy, flags) || K % 8) return NC_EINVAL;
  if (!nc_gemv_bf16dp_available()) return NC_ENOTSUP;
  const int acc = flags & NC_GEMV_ACCUMULATE;
  const int T = (O + 7) / 8;
  threads = pick_threads(threads, O, K);
  if (threads > T) threads = T;
  if (threads <= 1) {
    dp_tiles(Wp, O, K, 0, T, xb, ldx, B, y, ldy, acc);
    return NC_OK;
  }
  dp_job j = {Wp, O, K, xb, ldx, B, y, ldy, acc, T, tile_chunk(T, threads)};
  nc_par_run(threads, (T + j.ch - 1) / j.ch, dp_task, &j);
  return NC_OK;
}
