/* nc_attention.h — causal sliding-window attention (fp32, CPU), forward and backward.
 *
 * Semantics are FA3's window_size = (window, 0) as nanochat uses it: a query at absolute
 * position p attends to the keys at positions [max(0, p - window), p] with softmax scale
 * `scale` (nanochat: 1/sqrt(D), q and k already multiplied by 1.2 after QK-norm).
 * GQA: query head h reads kv head h / (H / Hkv).
 *
 * Memory is O(T * window) at most and in practice O(block * (window + block)) per thread:
 * queries are processed in blocks of NC_ATTN_BLOCK rows; each block's scores against its key
 * range are one sgemm, the masked softmax runs on the valid (contiguous) range of each row,
 * and the output is a second sgemm. No [T, T] matrix is ever built. The backward pass
 * recomputes the probabilities from the saved log-sum-exp (FlashAttention-style).
 *
 * The same forward serves training (keys = the current T tokens, pos0 = NULL) and KV-cache
 * inference: pass per-sequence start positions pos0[b] and k/v pointers into a cache whose
 * sequence b holds keys for positions [0, pos0[b] + T). Strides make any layout usable:
 * nanochat's fused qkv rows, a [B, T_max, Hkv, D] cache, etc.
 *
 * Reference: nc_ref_attn_fwd_f32 / nc_ref_attn_bwd_f32 (nc_model_ref.h), same semantics
 * for the training layout; tests compare them.
 *
 * Threading as in nc_kernels.h: call from outside an OpenMP region with OpenBLAS set to
 * one thread (nc_blas_single_thread()).
 */
#ifndef NC_ATTENTION_H
#define NC_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NC_ATTN_BLOCK 64 /* query rows per block */

typedef struct nc_attn {
  int B, T;            /* B sequences of T query rows each                                 */
  int H, Hkv, D;       /* query heads, kv heads (H % Hkv == 0), head size                   */
  int window;          /* left window; >= every position means plain causal                */
  float scale;         /* softmax scale                                                     */
  const int32_t *pos0; /* [B] position of each sequence's first query, NULL = all 0          */
  const float *q;      /* q(b, t, h) = q + b*q_bs + t*q_ts + h*D                            */
  int64_t q_bs, q_ts;
  const float *k, *v;  /* k(b, j, g) = k + b*kv_bs + j*kv_ts + g*D (v the same), j = position */
  int64_t kv_bs, kv_ts;
  float *y;            /* y(b, t, h) = y + b*y_bs + t*y_ts + h*D                            */
  int64_t y_bs, y_ts;
  float *lse;          /* [B, H, T] log-sum-exp of each query's scaled scores, or NULL      */
} nc_attn;

/* Floats of scratch nc_attn_fwd / nc_attn_bwd need with `nthreads` OpenMP threads. */
size_t nc_attn_workspace_floats(const nc_attn *a, int nthreads);

/* y = softmax(scale q k^T + mask) v for every (b, t, h); lse filled when non-NULL.
 * work: nc_attn_workspace_floats(a, omp_get_max_threads()) floats. */
void nc_attn_fwd(const nc_attn *a, float *work);

/* nc_attn_fwd with its tasks on nc_par's pool (nc_par.h) over `threads` threads instead of
 * OpenMP (the decoder's prefill); work: nc_attn_workspace_floats(a, threads) floats. Same
 * results. */
void nc_attn_fwd_pool(const nc_attn *a, float *work, int threads);

/* Backward of a training forward (a->pos0 must be NULL, keys = the T query positions,
 * a->lse and a->y from nc_attn_fwd). dy has y's strides; dq has q's strides; dk, dv have
 * k/v's strides. dq, dk, dv are written (=) for all T positions. */
void nc_attn_bwd(const nc_attn *a, const float *dy, float *dq, float *dk, float *dv,
                 float *work);

#ifdef __cplusplus
}
#endif
#endif /* NC_ATTENTION_H */
