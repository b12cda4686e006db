/* nc_decode.c — chunked prefill and batched decode over per-sequence KV caches. See
 * nc_decode.h; the step order is nc_model_trunk's (nc_model.c) and nc_model_ref_impl.h's. */
#include "nc_decode.h"
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "nc_attention.h"
#include "nc_err.h"
#include "nc_gemv.h"
#include "nc_kernels.h"
#include "nc_model_internal.h"
#include "nc_model_ref.h"
#include "nc_par.h"
#include "nc_vmath.h"

#define ALIGN_F 16 /* floats: 64-byte alignment of carved buffers and per-thread scratch */

typedef struct layer_w {
  const float *qkv, *proj, *fc, *mproj;  /* fp32 in the model's parameter buffer */
  const uint16_t *qkv16, *proj16, *fc16, *mproj16; /* bf16 copies, NULL for fp32 */
} layer_w;

struct nc_decoder {
  const nc_model *m;
  nc_decode_weights wt;
  int max_rows, max_chunk, t_max, cap_n;
  int packed;              /* bf16 copies in nc_gemv's packed layout (C % 8 == 0) */
  int kv512;               /* bf16 caches use the AVX-512 attention (D % 16 == 0, avx512f) */
  int threads;             /* pool threads, 0 = omp_get_max_threads() (nc_decoder_set_threads) */
  uint16_t *xbf;           /* NC_DECODE_BF16_DOT: activations rounded to bf16 [cap_n, F] */
  int C, H, Hkv, D, KV, QKV, F, V, L;
  layer_w lw[NC_CFG_MAX_LAYER];
  const float *head;       /* lm_head fp32 [V, C] */
  const uint16_t *head16;  /* bf16 copy or NULL    */
  uint16_t *w16;           /* the bf16 allocation  */
  float *cos_t, *sin_t;    /* rope [t_max, D/2]    */
  float *mem;              /* activations (carved) */
  float *xn0, *rstd, *sig, *x0, *res, *xm, *xn, *qkv, *gate, *att, *h, *xb, *xf;
  float *work;             /* attention scratch    */
  float *kvf;              /* bf16-cache prefill: widened window keys, then values (or NULL) */
  size_t kvf_half;         /* floats of kvf's key part */
  size_t work_floats;
  int work_threads;
  int32_t pos[NC_DECODE_MAX_ROWS > 1 ? NC_DECODE_MAX_ROWS : 1];
};

/* ------------------------------------------------------------------ create / weights */

static size_t rup(size_t n) { return (n + ALIGN_F - 1) / ALIGN_F * ALIGN_F; }

/* decode attention scratch of one thread: H score rows of rup(t_max), then H reciprocal sums */
static size_t dec_scratch(const nc_decoder *d) {
  return (size_t)d->H * rup((size_t)d->t_max) + rup((size_t)d->H);
}

/* attention scratch for `nth` threads: nc_attn_fwd's (prefill) or per-thread scores (decode) */
static size_t attn_floats(const nc_decoder *d, int nth) {
  int64_t keys = 0;
  for (int l = 0; l < d->L; l++) {
    int64_t k = (int64_t)d->m->lay.layer[l].window + NC_ATTN_BLOCK;
    if (k > keys) keys = k;
  }
  if (keys > d->t_max) keys = d->t_max;
  nc_attn probe;
  memset(&probe, 0, sizeof probe);
  probe.B = 1;
  probe.T = (int)keys;
  probe.window = (int)keys;
  size_t a = nc_attn_workspace_floats(&probe, nth);
  size_t s = (size_t)nth * dec_scratch(d); /* decode: every head's scores + 1/sums */
  return a > s ? a : s;
}

static int dec_threads(const nc_decoder *d) {
  return d->threads > 0 ? d->threads : omp_get_max_threads();
}

void nc_decoder_set_threads(nc_decoder *d, int threads) {
  if (d) d->threads = threads < 0 ? 0 : threads > NC_PAR_MAX_THREADS ? NC_PAR_MAX_THREADS : threads;
}

/* scratch for the larger of the pool's and OpenMP's thread counts */
static int ensure_work(nc_decoder *d) {
  int nth = omp_get_max_threads();
  if (dec_threads(d) > nth) nth = dec_threads(d);
  if (d->work && nth <= d->work_threads) return NC_OK;
  size_t n = attn_floats(d, nth);
  float *w = NULL;
  if (posix_memalign((void **)&w, 64, n * sizeof(float)) != 0) return NC_ENOMEM;
  free(d->work);
  d->work = w;
  d->work_floats = n;
  d->work_threads = nth;
  return NC_OK;
}

/* fp32 scratch for the window of a bf16 cache a prefill chunk attends to: keys then values,
 * t_max positions each (allocated when the first bf16 prefill needs it) */
static int ensure_kvf(nc_decoder *d) {
  if (d->kvf) return NC_OK;
  const size_t half = rup((size_t)d->t_max * (size_t)d->KV);
  if (posix_memalign((void **)&d->kvf, 64, 2 * half * sizeof(float)) != 0) return NC_ENOMEM;
  d->kvf_half = half;
  return NC_OK;
}

/* Stores one matrix's bf16 copy at *p (packed when d->packed) and advances *p. */
static const uint16_t *put_bf16(const nc_decoder *d, uint16_t **p, const float *w, int O, int K) {
  uint16_t *dst = *p;
  if (d->packed) {
    nc_gemv_bf16_pack(w, O, K, dst);
    *p += nc_gemv_bf16_packed_size(O, K);
  } else {
    nc_f32_to_bf16(w, dst, (size_t)O * (size_t)K);
    *p += (size_t)O * (size_t)K;
  }
  return dst;
}

static size_t bf16_elems(const nc_decoder *d, int O, int K) {
  return d->packed ? nc_gemv_bf16_packed_size(O, K) : (size_t)O * (size_t)K;
}

void nc_decoder_sync_weights(nc_decoder *d) {
  if (!d || !d->w16) return;
  const nc_model *m = d->m;
  const int C = d->C, QKV = d->QKV, F = d->F;
  uint16_t *p = d->w16;
  for (int l = 0; l < d->L; l++) {
    const nc_layer_layout *y = &m->lay.layer[l];
    layer_w *w = &d->lw[l];
    w->qkv16 = put_bf16(d, &p, m->params + y->c_q, QKV, C); /* c_q, c_k, c_v adjacent */
    w->proj16 = put_bf16(d, &p, m->params + y->c_proj, C, C);
    w->fc16 = put_bf16(d, &p, m->params + y->c_fc, F, C);
    w->mproj16 = put_bf16(d, &p, m->params + y->mlp_c_proj, C, F);
  }
  d->head16 = put_bf16(d, &p, m->params + m->lay.lm_head, d->V, C);
}

static int64_t per_layer_weights(const nc_decoder *d) {
  return (int64_t)d->QKV * d->C + (int64_t)d->C * d->C + 2LL * d->F * d->C;
}

int64_t nc_decoder_weight_bytes(const nc_decoder *d) {
  if (!d) return 0;
  int64_t n = per_layer_weights(d) * d->L + (int64_t)d->V * d->C;
  return n * (d->wt == NC_DECODE_F32 ? 4 : 2);
}

void nc_decoder_free(nc_decoder *d) {
  if (!d) return;
  free(d->w16);
  free(d->cos_t);
  free(d->sin_t);
  free(d->mem);
  free(d->work);
  free(d->kvf);
  free(d->xbf);
  free(d);
}

nc_decode_weights nc_decoder_fastest_weights(const nc_model *m) {
  return m && m->C % 8 == 0 && nc_gemv_bf16dp_available() ? NC_DECODE_BF16_DOT : NC_DECODE_BF16;
}

int nc_decoder_create(const nc_model *m, nc_decode_weights w, int max_rows, int max_chunk,
                      int t_max, nc_decoder **out) {
  if (!out) return NC_EINVAL;
  *out = NULL;
  if (m && w == NC_DECODE_AUTO) w = nc_decoder_fastest_weights(m);
  if (!m || (w != NC_DECODE_F32 && w != NC_DECODE_BF16 && w != NC_DECODE_BF16_DOT) || max_rows < 1 ||
      max_rows > NC_DECODE_MAX_ROWS || max_chunk < 1 || max_chunk > 65536 || t_max < 1 ||
      (int64_t)t_max > 10LL * m->cfg.sequence_len)
    return NC_EINVAL;
  if (w == NC_DECODE_BF16_DOT && nc_decoder_fastest_weights(m) != NC_DECODE_BF16_DOT)
    return NC_ENOTSUP;
  nc_decoder *d = calloc(1, sizeof *d);
  if (!d) return NC_ENOMEM;
  d->m = m;
  d->wt = w;
  d->max_rows = max_rows;
  d->max_chunk = max_chunk;
  d->t_max = t_max;
  d->C = m->C;
  d->H = m->H;
  d->Hkv = m->Hkv;
  d->D = m->D;
  d->KV = m->KV;
  d->QKV = m->QKV;
  d->F = m->F;
  d->V = m->V;
  d->L = m->L;
  for (int l = 0; l < d->L; l++) {
    const nc_layer_layout *y = &m->lay.layer[l];
    d->lw[l].qkv = m->params + y->c_q;
    d->lw[l].proj = m->params + y->c_proj;
    d->lw[l].fc = m->params + y->c_fc;
    d->lw[l].mproj = m->params + y->mlp_c_proj;
  }
  d->head = m->params + m->lay.lm_head;
  __builtin_cpu_init();
  d->kv512 = d->D % 16 == 0 && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
             nc_gemv_has_avx2();
  int rc = NC_ENOMEM;
  if (w != NC_DECODE_F32) {
    d->packed = d->C % 8 == 0; /* every K is C or 4C */
    size_t n = bf16_elems(d, d->V, d->C);
    n += (size_t)d->L * (bf16_elems(d, d->QKV, d->C) + bf16_elems(d, d->C, d->C) +
                         bf16_elems(d, d->F, d->C) + bf16_elems(d, d->C, d->F));
    /* 2 MiB aligned and, where the kernel allows (THP "madvise" mode), in huge pages: every
     * step streams all of it, and 4 KiB pages would cost a TLB miss per page */
    const size_t huge = (size_t)2 << 20, raw = n * sizeof(uint16_t);
    const size_t bytes = raw >= huge ? (raw + huge - 1) / huge * huge : raw;
    if (posix_memalign((void **)&d->w16, raw >= huge ? huge : 64, bytes) != 0) goto fail;
#ifdef MADV_HUGEPAGE
    if (raw >= huge) (void)madvise(d->w16, bytes, MADV_HUGEPAGE);
#endif
    nc_decoder_sync_weights(d);
  }
  const size_t half = (size_t)d->D / 2;
  d->cos_t = malloc(sizeof(float) * (size_t)t_max * half);
  d->sin_t = malloc(sizeof(float) * (size_t)t_max * half);
  if (!d->cos_t || !d->sin_t) goto fail;
  nc_ref_rope_tables_f32(d->cos_t, d->sin_t, t_max, d->D);
  /* activations for cap_n token rows (the larger of a decode batch and a prefill chunk) */
  const size_t N = (size_t)(max_rows > max_chunk ? max_rows : max_chunk);
  d->cap_n = (int)N;
  if (w == NC_DECODE_BF16_DOT) {
    d->xbf = malloc(sizeof(uint16_t) * N * (size_t)d->F);
    if (!d->xbf) goto fail;
  }
  const size_t C = (size_t)d->C, R = (size_t)max_rows;
  size_t sizes[] = {N * C, N, N, N * C, N * C, N * C, N * C, N * (size_t)d->QKV,
                    N * (size_t)d->Hkv, N * C, N * (size_t)d->F, N * C, R * C};
  float **dst[] = {&d->xn0, &d->rstd, &d->sig, &d->x0, &d->res, &d->xm, &d->xn, &d->qkv,
                   &d->gate, &d->att, &d->h, &d->xb, &d->xf};
  size_t total = 0;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += rup(sizes[i]);
  if (posix_memalign((void **)&d->mem, 64, total * sizeof(float)) != 0) goto fail;
  memset(d->mem, 0, total * sizeof(float)); /* touch once, now */
  float *p = d->mem;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    *dst[i] = p;
    p += rup(sizes[i]);
  }
  if ((rc = ensure_work(d)) != NC_OK) goto fail;
  *out = d;
  return NC_OK;
fail:
  nc_decoder_free(d);
  return rc;
}

/* ------------------------------------------------------------------ pieces */

/* y [N, O] (=, or += when acc) x [N, K] @ W^T: GEMV kernels (bf16 copy when there is one, else
 * fp32) when gemv, else sgemm on the fp32 weights. NC_DECODE_BF16_DOT runs prefill chunks through
 * the dot-product kernels too (64 rows per weight pass; twice sgemm's multiply-adds per
 * instruction), so its whole inference path uses bf16 weights and activations. */
static void mm(const nc_decoder *d, int gemv, const float *w, const uint16_t *w16, int O, int K,
               const float *x, int N, float *y, int acc) {
  if (!gemv && !d->xbf) {
    nc_gemm(0, 1, N, O, K, 1.0f, x, K, w, K, acc ? 1.0f : 0.0f, y, O);
    return;
  }
  const int fl = acc ? NC_GEMV_ACCUMULATE : 0;
  if (w16 && d->xbf) { /* bf16 activations: round x once, then dot products */
    nc_f32_to_bf16(x, d->xbf, (size_t)N * (size_t)K);
    for (int r0 = 0; r0 < N; r0 += NC_GEMV_MAX_B) {
      const int nb = N - r0 < NC_GEMV_MAX_B ? N - r0 : NC_GEMV_MAX_B;
      nc_gemv_bf16dp_packed(w16, O, K, d->xbf + (size_t)r0 * K, K, nb, y + (size_t)r0 * O, O, fl, dec_threads(d));
    }
    return;
  }
  for (int r0 = 0; r0 < N; r0 += NC_GEMV_MAX_B) {
    const int nb = N - r0 < NC_GEMV_MAX_B ? N - r0 : NC_GEMV_MAX_B;
    const float *xr = x + (size_t)r0 * K;
    float *yr = y + (size_t)r0 * O;
    if (w16 && d->packed) nc_gemv_bf16_packed(w16, O, K, xr, K, nb, yr, O, fl, dec_threads(d));
    else if (w16) nc_gemv_bf16_ex(w16, O, K, xr, K, nb, yr, O, fl, dec_threads(d));
    else nc_gemv_f32_ex(w, O, K, xr, K, nb, yr, O, fl, dec_threads(d));
  }
}

/* ---- decode attention: one query against a sequence's cached keys/values ----------------
 * Every value has one fixed operation order (a row's result does not depend on the batch):
 * score j = scale * (one 8-lane FMA chain over d, fixed hsum); y[e] = (sum_j exp_j v_j[e], in
 * j order) / sum_j exp_j. The AVX2 versions run 8 keys (scores) or 64 output lanes (values) side
 * by side; the scalar versions (also used when D % 8 != 0) are the readable definition. */

#define NC_AVX2 __attribute__((target("avx2,fma")))

/* Cached keys/values are fp32 or bf16 (nc_kvcache dtype): every kernel below exists for both,
 * with one definition (a macro over the element type and its loaders). A bf16 value is widened
 * exactly to fp32 when loaded, so the bf16 path is the fp32 path run on the rounded values. */
static inline float kv1_f32(const float *p) { return *p; }
static inline float kv1_bf16(const uint16_t *p) {
  uint32_t u = (uint32_t)*p << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
NC_AVX2 static inline __m256 kv8_f32(const float *p) { return _mm256_loadu_ps(p); }
NC_AVX2 static inline __m256 kv8_bf16(const uint16_t *p) {
  __m128i h = _mm_loadu_si128((const __m128i *)p);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

NC_AVX2 static inline float hsum8(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  return _mm_cvtss_f32(lo);
}

NC_AVX2 static void scale_avx2(float *y, int D, float inv) {
  const __m256 vi = _mm256_set1_ps(inv);
  for (int e = 0; e < D; e += 8) _mm256_storeu_ps(y + e, _mm256_mul_ps(_mm256_loadu_ps(y + e), vi));
}

/* Keys per block of the value pass: a block of every head's values (PV_BLOCK x KV elements)
 * stays in L1 while the heads of a task walk it. */
#define PV_BLOCK 16

/* Per element type KT (loaders LD1 scalar, LD8 8 lanes):
 *  qk_scalar / pv_scalar   the readable definition (also the path when D % 8 != 0);
 *  qk8 / qk1               scores of 8 keys / one key (one 8-lane chain per key, fixed hsum);
 *  pv_block                y[e] (+)= sum over keys [j0, j1) of p[j] v_j[e], in j order: 64
 *                          lanes side by side (8 chains), then 8; `first`: start from zero,
 *                          else continue the chains stored in y;
 *  attn_heads              heads [h0, h1) of one row against n cached positions (K, V:
 *                          position 0 of the window, ld elements apart; head h reads group
 *                          h / rep at offset (h / rep) * D). Every (row, head) result is the
 *                          same sequence of operations as for one head alone; the loops only
 *                          interleave heads so the cache is read front to back once per task
 *                          (scores: 8 keys of every head, values: PV_BLOCK keys). */
#define NC_DEC_ATTN(SFX, KT, LD1, LD8)                                                          \
  static void qk_scalar_##SFX(const float *q, const KT *K, size_t ld, int n, int D, float scale, \
                              float *s) {                                                       \
    for (int j = 0; j < n; j++) {                                                               \
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                                  \
      const KT *k = K + (size_t)j * ld;                                                         \
      for (int e = 0; e + 8 <= D; e += 8)                                                       \
        for (int i = 0; i < 8; i++) acc[i] += q[e + i] * LD1(k + e + i);                        \
      float t = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])); \
      for (int e = D & ~7; e < D; e++) t += q[e] * LD1(k + e);                                  \
      s[j] = scale * t;                                                                         \
    }                                                                                           \
  }                                                                                             \
  static void pv_scalar_##SFX(const float *p, const KT *V, size_t ld, int n, int D, float inv,  \
                              float *y) {                                                       \
    for (int e = 0; e < D; e++) y[e] = 0.0f;                                                    \
    for (int j = 0; j < n; j++)                                                                 \
      for (int e = 0; e < D; e++) y[e] += p[j] * LD1(V + (size_t)j * ld + e);                   \
    for (int e = 0; e < D; e++) y[e] *= inv;                                                    \
  }                                                                                             \
  NC_AVX2 static inline void qk8_##SFX(const float *q, const KT *k, size_t ld, int D,           \
                                       float scale, float *s) {                                 \
    __m256 a[8];                                                                                \
    for (int i = 0; i < 8; i++) a[i] = _mm256_setzero_ps();                                     \
    for (int e = 0; e < D; e += 8) {                                                            \
      __m256 qv = _mm256_loadu_ps(q + e);                                                       \
      for (int i = 0; i < 8; i++) a[i] = _mm256_fmadd_ps(LD8(k + (size_t)i * ld + e), qv, a[i]); \
    }                                                                                           \
    for (int i = 0; i < 8; i++) s[i] = scale * hsum8(a[i]);                                     \
  }                                                                                             \
  NC_AVX2 static inline float qk1_##SFX(const float *q, const KT *k, int D, float scale) {      \
    __m256 a = _mm256_setzero_ps();                                                             \
    for (int e = 0; e < D; e += 8) a = _mm256_fmadd_ps(LD8(k + e), _mm256_loadu_ps(q + e), a);  \
    return scale * hsum8(a);                                                                    \
  }                                                                                             \
  NC_AVX2 static void pv_block_##SFX(const float *p, const KT *V, size_t ld, int j0, int j1,     \
                                     int D, float *y, int first) {                              \
    int e0 = 0;                                                                                 \
    for (; e0 + 64 <= D; e0 += 64) {                                                            \
      __m256 a[8];                                                                              \
      for (int i = 0; i < 8; i++) a[i] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(y + e0 + 8 * i); \
      for (int j = j0; j < j1; j++) {                                                           \
        const __m256 pj = _mm256_set1_ps(p[j]);                                                 \
        const KT *v = V + (size_t)j * ld + e0;                                                  \
        for (int i = 0; i < 8; i++) a[i] = _mm256_fmadd_ps(pj, LD8(v + 8 * i), a[i]);           \
      }                                                                                         \
      for (int i = 0; i < 8; i++) _mm256_storeu_ps(y + e0 + 8 * i, a[i]);                       \
    }                                                                                           \
    for (; e0 < D; e0 += 8) {                                                                   \
      __m256 a = first ? _mm256_setzero_ps() : _mm256_loadu_ps(y + e0);                         \
      for (int j = j0; j < j1; j++)                                                             \
        a = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), LD8(V + (size_t)j * ld + e0), a);             \
      _mm256_storeu_ps(y + e0, a);                                                              \
    }                                                                                           \
  }                                                                                             \
  NC_AVX2 static void attn_heads_##SFX(const float *q, const KT *K, const KT *V, size_t ld,      \
                                       int n, int D, int h0, int h1, int rep, float scale,      \
                                       float *s, size_t sst, float *inv, float *y) {            \
    const size_t off = (size_t)(h0 / rep) * D, len = (size_t)((h1 - 1) / rep + 1) * D - off;    \
    const size_t line = 64 / sizeof(KT); /* elements per cache line */                         \
    int j = 0;                                                                                  \
    for (; j + 8 <= n; j += 8) {                                                                \
      /* the values' stream runs alongside the keys' (the value pass then finds them in L2) */ \
      for (int i = 0; i < 8; i++)                                                               \
        for (size_t e = 0; e < len; e += line)                                                  \
          _mm_prefetch((const char *)(V + (size_t)(j + i) * ld + off + e), _MM_HINT_T1);        \
      for (int h = h0; h < h1; h++)                                                             \
        qk8_##SFX(q + (size_t)h * D, K + (size_t)j * ld + (size_t)(h / rep) * D, ld, D, scale,  \
                  s + (size_t)(h - h0) * sst + j);                                              \
    }                                                                                           \
    for (; j < n; j++)                                                                          \
      for (int h = h0; h < h1; h++)                                                             \
        s[(size_t)(h - h0) * sst + j] =                                                         \
            qk1_##SFX(q + (size_t)h * D, K + (size_t)j * ld + (size_t)(h / rep) * D, D, scale); \
    for (int h = h0; h < h1; h++) {                                                             \
      float *sh = s + (size_t)(h - h0) * sst;                                                   \
      const float mx = nc_vmax(sh, n);                                                          \
      inv[h - h0] = (float)(1.0 / nc_exp_affine_sum(sh, n, 1.0f, mx));                          \
    }                                                                                           \
    for (int j0 = 0; j0 < n; j0 += PV_BLOCK) {                                                  \
      const int j1 = j0 + PV_BLOCK < n ? j0 + PV_BLOCK : n;                                     \
      for (int h = h0; h < h1; h++)                                                             \
        pv_block_##SFX(s + (size_t)(h - h0) * sst, V + (size_t)(h / rep) * D, ld, j0, j1, D,    \
                       y + (size_t)h * D, j0 == 0);                                             \
    }                                                                                           \
    for (int h = h0; h < h1; h++) scale_avx2(y + (size_t)h * D, D, inv[h - h0]);                \
  }                                                                                             \
  /* one task of attn_decode: heads [h0, h0 + hp) of the row whose window starts at K, V */     \
  static void attn_task_##SFX(const float *q, const KT *K, const KT *V, size_t ld, int n, int D, \
                              int h0, int hp, int rep, float scale, float *s, size_t sst,       \
                              int H, int vec, float *y) {                                       \
    if (vec) {                                                                                  \
      attn_heads_##SFX(q, K, V, ld, n, D, h0, h0 + hp, rep, scale, s, sst, s + (size_t)H * sst, y); \
      return;                                                                                   \
    }                                                                                           \
    const int g = h0 / rep;                                                                     \
    qk_scalar_##SFX(q + (size_t)h0 * D, K + (size_t)g * D, ld, n, D, scale, s);                 \
    const float mx = nc_vmax(s, n);                                                             \
    const float inv = (float)(1.0 / nc_exp_affine_sum(s, n, 1.0f, mx));                         \
    pv_scalar_##SFX(s, V + (size_t)g * D, ld, n, D, inv, y + (size_t)h0 * D);                   \
  }
NC_DEC_ATTN(f32, float, kv1_f32, kv8_f32)
NC_DEC_ATTN(bf16, uint16_t, kv1_bf16, kv8_bf16)

/* bf16 caches on AVX-512 CPUs with D % 16 == 0 (nc_decoder decides once at creation, so a
 * sequence always runs the same kernel): 16 lanes per instruction, half the conversions and
 * FMAs of the 8-lane kernels (decode attention at a batch of 16 spent most of its time on the
 * bf16 -> fp32 widening, not on memory). The fixed per-value sequence, whatever the batch:
 * score j = scale * reduce16(one 16-lane FMA chain over d); y[e] = (sum_j p_j v_j[e], in j
 * order) * inv. reduce16 = hsum8(lo 8 lanes + hi 8 lanes). */
#define NC_AVX512KV __attribute__((target("avx512f,avx512dq,avx512bw,avx2,fma")))

NC_AVX512KV static inline __m512 kv16_bf16(const uint16_t *p) {
  __m256i h = _mm256_loadu_si256((const __m256i *)p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

NC_AVX512KV static inline float reduce16(__m512 v) {
  __m256 lo = _mm512_castps512_ps256(v);
  __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  return hsum8(_mm256_add_ps(lo, hi));
}

/* heads [h0, h1) of one row, as attn_heads_bf16 (same loop structure and scratch) */
NC_AVX512KV static void attn_heads_bf16_512(const float *q, const uint16_t *K, const uint16_t *V,
                                           size_t ld, int n, int D, int h0, int h1, int rep,
                                           float scale, float *s, size_t sst, float *inv,
                                           float *y) {
  const size_t off = (size_t)(h0 / rep) * D, len = (size_t)((h1 - 1) / rep + 1) * D - off;
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    for (int i = 0; i < 8; i++) /* values alongside the keys, as attn_heads_bf16 */
      for (size_t e = 0; e < len; e += 32)
        _mm_prefetch((const char *)(V + (size_t)(j + i) * ld + off + e), _MM_HINT_T1);
    for (int h = h0; h < h1; h++) {
      const float *qh = q + (size_t)h * D;
      const uint16_t *k = K + (size_t)j * ld + (size_t)(h / rep) * D;
      __m512 a[8];
      for (int i = 0; i < 8; i++) a[i] = _mm512_setzero_ps();
      for (int e = 0; e < D; e += 16) {
        const __m512 qv = _mm512_loadu_ps(qh + e);
        for (int i = 0; i < 8; i++) a[i] = _mm512_fmadd_ps(kv16_bf16(k + (size_t)i * ld + e), qv, a[i]);
      }
      float *sh = s + (size_t)(h - h0) * sst + j;
      for (int i = 0; i < 8; i++) sh[i] = scale * reduce16(a[i]);
    }
  }
  for (; j < n; j++)
    for (int h = h0; h < h1; h++) {
      const float *qh = q + (size_t)h * D;
      const uint16_t *k = K + (size_t)j * ld + (size_t)(h / rep) * D;
      __m512 a = _mm512_setzero_ps();
      for (int e = 0; e < D; e += 16) a = _mm512_fmadd_ps(kv16_bf16(k + e), _mm512_loadu_ps(qh + e), a);
      s[(size_t)(h - h0) * sst + j] = scale * reduce16(a);
    }
  for (int h = h0; h < h1; h++) {
    float *sh = s + (size_t)(h - h0) * sst;
    const float mx = nc_vmax(sh, n);
    inv[h - h0] = (float)(1.0 / nc_exp_affine_sum(sh, n, 1.0f, mx));
  }
  for (int j0 = 0; j0 < n; j0 += PV_BLOCK) {
    const int j1 = j0 + PV_BLOCK < n ? j0 + PV_BLOCK : n;
    for (int h = h0; h < h1; h++) {
      const float *p = s + (size_t)(h - h0) * sst;
      const uint16_t *Vh = V + (size_t)(h / rep) * D;
      float *yh = y + (size_t)h * D;
      int e0 = 0;
      for (; e0 + 128 <= D; e0 += 128) { /* 128 lanes side by side (8 chains) */
        __m512 a[8];
        for (int i = 0; i < 8; i++) a[i] = j0 == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(yh + e0 + 16 * i);
        for (int jj = j0; jj < j1; jj++) {
          const __m512 pj = _mm512_set1_ps(p[jj]);
          const uint16_t *v = Vh + (size_t)jj * ld + e0;
          for (int i = 0; i < 8; i++) a[i] = _mm512_fmadd_ps(pj, kv16_bf16(v + 16 * i), a[i]);
        }
        for (int i = 0; i < 8; i++) _mm512_storeu_ps(yh + e0 + 16 * i, a[i]);
      }
      for (; e0 < D; e0 += 16) {
        __m512 a = j0 == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(yh + e0);
        for (int jj = j0; jj < j1; jj++)
          a = _mm512_fmadd_ps(_mm512_set1_ps(p[jj]), kv16_bf16(Vh + (size_t)jj * ld + e0), a);
        _mm512_storeu_ps(yh + e0, a);
      }
    }
  }
  for (int h = h0; h < h1; h++) {
    const __m512 vi = _mm512_set1_ps(inv[h - h0]);
    for (int e = 0; e < D; e += 16)
      _mm512_storeu_ps(y + (size_t)h * D + e, _mm512_mul_ps(_mm512_loadu_ps(y + (size_t)h * D + e), vi));
  }
}

typedef struct attn_job {
  nc_decoder *d;
  nc_kvcache *const *kcs;
  int l, window, hp, per, vec, rep;
  float scale;
  size_t stride;
} attn_job;

/* One task: heads [h0, h0 + hp) of one row, with `worker`'s score scratch. */
static void attn_task(void *ctx, int task, int worker) {
  const attn_job *j = ctx;
  const nc_decoder *d = j->d;
  const int H = d->H, D = d->D, KV = d->KV, hp = j->hp;
  const int b = task / j->per, h0 = task % j->per * hp;
  const nc_kvcache *kc = j->kcs[b];
  const int64_t p = d->pos[b];
  const int64_t lo = p - j->window > 0 ? p - j->window : 0;
  const int n = (int)(p - lo + 1);
  float *s = d->work + (size_t)worker * dec_scratch(d);
  const size_t at = (size_t)j->l * kc->t_max * KV + (size_t)lo * KV, st = j->stride;
  const float *q = d->qkv + (size_t)b * d->QKV;
  float *y = d->att + (size_t)b * d->C;
  if (kc->dtype == NC_KV_BF16 && d->kv512)
    attn_heads_bf16_512(q, kc->k16 + at, kc->v16 + at, (size_t)KV, n, D, h0, h0 + hp, j->rep,
                        j->scale, s, st, s + (size_t)H * st, y);
  else if (kc->dtype == NC_KV_BF16)
    attn_task_bf16(q, kc->k16 + at, kc->v16 + at, (size_t)KV, n, D, h0, hp, j->rep, j->scale, s,
                   st, H, j->vec, y);
  else
    attn_task_f32(q, kc->k + at, kc->v + at, (size_t)KV, n, D, h0, hp, j->rep, j->scale, s, st,
                  H, j->vec, y);
}

/* One query per sequence (decode): y(b, h) = softmax(scale q k^T over the window) v, with keys
 * and values read from sequence b's cache. A task is one row with all its heads when there are
 * at least as many rows as threads (the row's cache is read front to back once), else one
 * (row, head); results are the same either way. Tasks run on nc_par's pool, each with its
 * worker's score scratch. */
static void attn_decode(nc_decoder *d, int l, nc_kvcache *const *kcs, int B) {
  const int H = d->H, D = d->D;
  const int vec = (D % 8 == 0 && nc_gemv_has_avx2()) || d->kv512;
  double est = 0;
  for (int b = 0; b < B; b++) est += (double)(d->pos[b] + 1) * H * D;
  const int threads = dec_threads(d);
  const int par = B * H > 1 && est > 2e5;
  const int hp = vec && (!par || B >= threads) ? H : 1; /* heads per task */
  attn_job j = {d, kcs, l, d->m->lay.layer[l].window, hp, H / hp, vec, d->H / d->Hkv,
                1.0f / sqrtf((float)D), rup((size_t)d->t_max)};
  nc_par_run(par ? threads : 1, B * j.per, attn_task, &j);
}

/* 15 tanh(z / 15) in place (nc_vmath's tanh, the model's formula); a non-finite z makes the whole
 * row NaN. One pass: the finiteness test rides along with the tanh. */
static void softcap_row(float *z, int n) {
  const float cap = (float)NC_SOFTCAP, icap = 1.0f / cap;
  int bad = 0, i = 0;
#ifdef NC_VMATH_AVX2
  const __m256 vc = _mm256_set1_ps(cap), vi = _mm256_set1_ps(icap);
  const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 inf = _mm256_set1_ps(INFINITY);
  __m256 nf = _mm256_setzero_ps();
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(z + i);
    /* |v| == inf, or NaN (unordered) */
    nf = _mm256_or_ps(nf, _mm256_cmp_ps(_mm256_and_ps(v, absm), inf, _CMP_NLT_UQ));
    _mm256_storeu_ps(z + i, _mm256_mul_ps(vc, nc_tanh8(_mm256_mul_ps(v, vi))));
  }
  bad = _mm256_movemask_ps(nf) != 0;
#endif
  for (; i < n; i++) {
    bad |= !isfinite(z[i]);
    z[i] = cap * nc_tanhf_s(z[i] * icap);
  }
  if (bad)
    for (i = 0; i < n; i++) z[i] = NAN;
}

typedef struct softcap_job {
  float *logits;
  int V;
} softcap_job;

static void softcap_task(void *ctx, int b, int worker) {
  (void)worker;
  const softcap_job *j = ctx;
  softcap_row(j->logits + (size_t)b * j->V, j->V);
}

/* ------------------------------------------------------------------ forward */

static int check_cache(const nc_decoder *d, const nc_kvcache *kc, int T) {
  if (!kc || kc->B != 1 || kc->n_layer != d->L || kc->Hkv != d->Hkv || kc->D != d->D ||
      kc->C != d->C || kc->t_max > d->t_max)
    return NC_EINVAL;
  if (kc->seqlens[0] < 0 || (int64_t)kc->seqlens[0] + T > kc->t_max) return NC_EINVAL;
  if (kc->dtype == NC_KV_BF16 ? !kc->k16 || !kc->v16 : kc->dtype != NC_KV_F32 || !kc->k || !kc->v)
    return NC_EINVAL;
  return NC_OK;
}

/* B sequences of T tokens each (B == 1 for prefill, T == 1 for decode). */
static int forward(nc_decoder *d, nc_kvcache *const *kcs, const int32_t *idx, int B, int T,
                   float *logits) {
  const nc_model *m = d->m;
  const int C = d->C, H = d->H, Hkv = d->Hkv, D = d->D, KV = d->KV, QKV = d->QKV, F = d->F;
  const int L = d->L, V = d->V, N = B * T;
  const float eps = FLT_EPSILON;
  const float *P = m->params;
  const nc_model_layout *ly = &m->lay;
  int rc = nc_model_check_tokens(m, idx, NULL, N);
  if (rc) return rc;
  for (int b = 0; b < B; b++) {
    if ((rc = check_cache(d, kcs[b], T))) return rc;
    for (int c = 0; c < b; c++)
      if (kcs[c] == kcs[b]) return NC_EINVAL;
  }
  if ((rc = ensure_work(d))) return rc;
  if (T > 1 && kcs[0]->dtype == NC_KV_BF16 && (rc = ensure_kvf(d))) return rc;
  nc_blas_single_thread();
  const int gemv = T == 1 || N <= NC_DECODE_GEMV_ROWS;
  for (int b = 0; b < B; b++) d->pos[b] = kcs[b]->seqlens[0];

  /* 1. embedding + rmsnorm (only the rows of these tokens); 2. smear */
  nc_embed_fwd(d->xn0, P + ly->wte, idx, N, C);
  nc_rmsnorm_fwd(d->xn0, d->rstd, d->xn0, N, C, eps);
  const float *sg = P + ly->smear_gate, lam = P[ly->smear_lambda];
  nc_smear_fwd(d->x0, d->sig, d->xn0, NULL, B, T, C, sg, lam); /* within each chunk */
  for (int b = 0; b < B; b++) {
    nc_kvcache *kc = kcs[b];
    const size_t r0 = (size_t)b * T * C;
    /* a decoded token, or a chunk continuing a prompt: its first token smears with the
     * previous token's embedding (one prefill of the whole prompt would do the same) */
    if (kc->has_prev[0]) nc_smear_fwd(d->x0 + r0, d->sig + (size_t)b * T, d->xn0 + r0, kc->prev_emb, 1, 1, C, sg, lam);
    memcpy(kc->prev_emb, d->xn0 + r0 + (size_t)(T - 1) * C, sizeof(float) * (size_t)C);
    kc->has_prev[0] = 1;
  }
  memcpy(d->res, d->x0, sizeof(float) * (size_t)N * C);

  /* 3. blocks. n = rows still needed, tl = tokens per sequence among them: a prefill needs
   * every token's keys/values in every layer, but only its last token after the last layer's
   * attention, so that layer finishes on one row (1/L of a prefill saved). */
  const float scale = 1.0f / sqrtf((float)D);
  int n = N, tl = T;
  for (int l = 0; l < L; l++) {
    const nc_layer_layout *w = &ly->layer[l];
    const layer_w *lw = &d->lw[l];
    const float lr = P[ly->resid_lambdas + l], l0 = P[ly->x0_lambdas + l];
    float *xm = d->xm, *res = d->res, *x0 = d->x0;
    for (int64_t i = 0; i < (int64_t)n * C; i++) xm[i] = lr * res[i] + l0 * x0[i];
    nc_rmsnorm_fwd(d->xn, d->rstd, xm, n, C, eps);
    mm(d, gemv, lw->qkv, lw->qkv16, QKV, C, d->xn, n, d->qkv, 0);
    if (w->ve_gate >= 0)
      nc_ve_fwd(d->qkv + C + KV, QKV, d->gate, d->xn, C, idx, P + w->value_embed, P + w->ve_gate,
                N, Hkv, D);
    nc_qk_fwd(d->qkv, QKV, NULL, NULL, N, T, d->pos, H, Hkv, D, d->cos_t, d->sin_t, eps);
    for (int b = 0; b < B; b++) { /* append keys/values */
      nc_kvcache *kc = kcs[b];
      const size_t base = (size_t)l * kc->t_max * KV;
      for (int t = 0; t < T; t++) {
        const float *src = d->qkv + ((size_t)b * T + t) * QKV;
        const size_t at = base + ((size_t)d->pos[b] + t) * KV;
        if (kc->dtype == NC_KV_BF16) {
          nc_f32_to_bf16(src + C, kc->k16 + at, (size_t)KV);
          nc_f32_to_bf16(src + C + KV, kc->v16 + at, (size_t)KV);
        } else {
          memcpy(kc->k + at, src + C, sizeof(float) * (size_t)KV);
          memcpy(kc->v + at, src + C + KV, sizeof(float) * (size_t)KV);
        }
      }
    }
    if (T == 1) {
      attn_decode(d, l, kcs, B);
    } else if (l == L - 1) { /* prefill, last layer: the last query only (B == 1) */
      memmove(d->qkv, d->qkv + (size_t)(T - 1) * QKV, sizeof(float) * (size_t)QKV);
      memmove(xm, xm + (size_t)(T - 1) * C, sizeof(float) * (size_t)C);
      if (L / 2 < l) memmove(d->xb, d->xb + (size_t)(T - 1) * C, sizeof(float) * (size_t)C);
      d->pos[0] += T - 1;
      attn_decode(d, l, kcs, 1);
      d->pos[0] -= T - 1;
      n = tl = 1;
    } else {
      nc_kvcache *kc = kcs[0]; /* prefill: B == 1 */
      const size_t base = (size_t)l * kc->t_max * KV;
      const float *K = kc->k + base, *Vv = kc->v + base;
      int32_t p0 = d->pos[0];
      if (kc->dtype == NC_KV_BF16) {
        /* widen the positions this chunk's queries can see, [lo, pos + T), to fp32 scratch
         * and attend there with positions shifted by lo (masks depend only on differences;
         * positions below lo are outside every query's window) */
        const int64_t lo = p0 - w->window > 0 ? p0 - w->window : 0;
        const size_t cnt = (size_t)(p0 + T - lo) * KV;
        nc_bf16_to_f32(kc->k16 + base + (size_t)lo * KV, d->kvf, cnt);
        nc_bf16_to_f32(kc->v16 + base + (size_t)lo * KV, d->kvf + d->kvf_half, cnt);
        K = d->kvf;
        Vv = d->kvf + d->kvf_half;
        p0 -= (int32_t)lo;
      }
      nc_attn at = {1, T, H, Hkv, D, w->window, scale, &p0,
                    d->qkv, (int64_t)T * QKV, QKV,
                    K, Vv, (int64_t)kc->t_max * KV, KV,
                    d->att, (int64_t)T * C, C, NULL};
      nc_attn_fwd_pool(&at, d->work, dec_threads(d));
    }
    mm(d, gemv, lw->proj, lw->proj16, C, C, d->att, n, xm, 1); /* post-attention residual */
    nc_rmsnorm_fwd(d->xn, d->rstd, xm, n, C, eps);
    mm(d, gemv, lw->fc, lw->fc16, F, C, d->xn, n, d->h, 0);
    nc_relu2_fwd(d->h, d->h, (int64_t)n * F);
    memcpy(res, xm, sizeof(float) * (size_t)n * C);
    mm(d, gemv, lw->mproj, lw->mproj16, C, F, d->h, n, res, 1);
    if (l == L / 2) memcpy(d->xb, res, sizeof(float) * (size_t)n * C);
  }

  /* 4. backout + final norm + head, for the last token of each sequence only */
  const float lb = P[ly->backout_lambda];
  for (int b = 0; b < B; b++) {
    const size_t r = ((size_t)b * tl + tl - 1) * C;
    float *xf = d->xf + (size_t)b * C;
    for (int c = 0; c < C; c++) xf[c] = d->res[r + c] - lb * d->xb[r + c];
  }
  nc_rmsnorm_fwd(d->xf, d->rstd, d->xf, B, C, eps);
  if (logits) {
    mm(d, 1, d->head, d->head16, V, C, d->xf, B, logits, 0);
    softcap_job sj = {logits, V};
    nc_par_run(dec_threads(d), B, softcap_task, &sj); /* rows are independent */
  }
  for (int b = 0; b < B; b++) kcs[b]->seqlens[0] += T;
  return NC_OK;
}

int nc_decoder_prefill(nc_decoder *d, nc_kvcache *kc, const int32_t *ids, int T, float *logits) {
  if (!d || !kc || !ids || T < 1 || T > d->max_chunk) return NC_EINVAL;
  return forward(d, &kc, ids, 1, T, logits);
}

int nc_decoder_step(nc_decoder *d, nc_kvcache *const *kcs, const int32_t *ids, int B,
                    float *logits) {
  if (!d || !kcs || !ids || !logits || B < 1 || B > d->max_rows) return NC_EINVAL;
  for (int b = 0; b < B; b++)
    if (!kcs[b]) return NC_EINVAL;
  return forward(d, kcs, ids, B, 1, logits);
}

int nc_kvcache_copy(nc_kvcache *dst, const nc_kvcache *src) {
  if (!dst || !src || dst == src || dst->B != 1 || src->B != 1 || dst->n_layer != src->n_layer ||
      dst->Hkv != src->Hkv || dst->D != src->D || dst->C != src->C || dst->dtype != src->dtype)
    return NC_EINVAL;
  const int n = src->seqlens[0];
  if (n < 0 || n > dst->t_max || n > src->t_max) return NC_EINVAL;
  const size_t KV = (size_t)src->Hkv * src->D;
  const int bf = src->dtype == NC_KV_BF16;
  const size_t el = bf ? sizeof(uint16_t) : sizeof(float);
  char *dk = bf ? (char *)dst->k16 : (char *)dst->k, *dv = bf ? (char *)dst->v16 : (char *)dst->v;
  const char *sk = bf ? (const char *)src->k16 : (const char *)src->k;
  const char *sv = bf ? (const char *)src->v16 : (const char *)src->v;
  if (!dk || !dv || !sk || !sv) return NC_EINVAL;
  for (int l = 0; l < src->n_layer; l++) {
    memcpy(dk + (size_t)l * dst->t_max * KV * el, sk + (size_t)l * src->t_max * KV * el, el * (size_t)n * KV);
    memcpy(dv + (size_t)l * dst->t_max * KV * el, sv + (size_t)l * src->t_max * KV * el, el * (size_t)n * KV);
  }
  memcpy(dst->prev_emb, src->prev_emb, sizeof(float) * (size_t)src->C);
  dst->has_prev[0] = src->has_prev[0];
  dst->seqlens[0] = n;
  return NC_OK;
}
