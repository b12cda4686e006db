/* nc_model_ref.h — readable reference implementation of the nanochat GPT, in float and double.
 *
 * Plain loops, no BLAS, no threads, no fusion: this is the executable specification the
 * fast model (nc_model.c) is tested against, kernel by kernel and as a whole. The same source
 * (nc_model_ref_impl.h) is compiled twice: the *_f32 functions compute in float (what the
 * fast path must match to fp32 rounding), the *_f64 functions compute in double (what the
 * finite-difference gradient checks run on, where rounding noise is ~1e-12).
 *
 * Shapes use N = B*T token rows; C = n_embd; H, Hkv heads of size D; KV = Hkv*D;
 * QKV = H*D + 2*KV; V = vocab_size (unpadded). Row n = b*T + t has position t.
 * The rmsnorm eps is whatever the caller passes; the model uses FLT_EPSILON (fp32 eps).
 *
 * All functions only read their inputs and write their outputs; they allocate nothing except
 * nc_ref_model_*, which mallocs its activations and returns NC_ENOMEM if that fails.
 */
#ifndef NC_MODEL_REF_H
#define NC_MODEL_REF_H

#include <stdint.h>

#include "nc_model_config.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NC_QK_SCALE 1.2   /* q and k are multiplied by 1.2 after QK-norm             */
#define NC_SOFTCAP 15.0   /* logits = 15 * tanh(z / 15)                              */
#define NC_VE_GATE_MAX 3.0 /* value-embedding gate = 3 * sigmoid(...)               */
#define NC_ROPE_BASE 100000.0

#define NC_REF_DECLARE(R, SFX)                                                                 \
  /* y [rows, C] = x * rstd; rstd [rows] = 1 / sqrt(mean(x^2) + eps). y may alias x. */        \
  void nc_ref_rmsnorm_fwd_##SFX(R *y, R *rstd, const R *x, int64_t rows, int C, R eps);        \
  /* dx [rows, C] (= or += when accumulate) = rstd * (dy - y * mean(dy * y)). */               \
  void nc_ref_rmsnorm_bwd_##SFX(R *dx, const R *dy, const R *y, const R *rstd, int64_t rows,   \
                                int C, int accumulate);                                        \
  /* In place on qkv [N, ld]: each q head (cols [h*D, h*D+D)) and k head (cols H*D + ...)  */  \
  /* becomes 1.2 * rmsnorm(rope(x)). rstd_q [N, H], rstd_k [N, Hkv]. cos/sin [>= T, D/2]. */   \
  void nc_ref_qk_fwd_##SFX(R *qkv, int64_t ld, R *rstd_q, R *rstd_k, int64_t N, int T, int H,  \
                           int Hkv, int D, const R *cos_t, const R *sin_t, R eps);             \
  /* In place on dqkv [N, ld] (q, k columns): gradient w.r.t. the fwd outputs -> gradient */   \
  /* w.r.t. the raw projections. qkv holds the fwd outputs. */                                 \
  void nc_ref_qk_bwd_##SFX(R *dqkv, int64_t ld, const R *qkv, const R *rstd_q,                 \
                           const R *rstd_k, int64_t N, int T, int H, int Hkv, int D,           \
                           const R *cos_t, const R *sin_t);                                    \
  /* Causal attention with left window `window` (query t sees keys [t-window, t]).       */    \
  /* qkv [B*T, ld]: q at col h*D, k at H*D + g*D, v at H*D + KV + g*D (g = h / (H/Hkv)). */    \
  /* y [B*T, H*D]; lse [B, H, T] = log-sum-exp of the scaled scores. */                        \
  void nc_ref_attn_fwd_##SFX(R *y, R *lse, const R *qkv, int64_t ld, int B, int T, int H,      \
                             int Hkv, int D, int window, R scale);                             \
  /* Writes (=) the q, k, v columns of dqkv [B*T, ld] from dy [B*T, H*D]. */                   \
  void nc_ref_attn_bwd_##SFX(R *dqkv, const R *dy, const R *y, const R *lse, const R *qkv,     \
                             int64_t ld, int B, int T, int H, int Hkv, int D, int window,      \
                             R scale);                                                         \
  /* LM head + softcap + cross-entropy. xf [N, C], W [>= V, C] (first V rows used).       */   \
  /* nll [N] = logsumexp(l) - l[target], 0 where target == -1; logits [N, V] (optional)   */   \
  /* = 15 tanh(xf W^T / 15). When dxf != NULL: omega [N] = dLoss/dnll; dxf [N, C] (=),     */  \
  /* dW [V, C] (+=). */                                                                        \
  void nc_ref_head_##SFX(const R *xf, const R *W, int64_t N, int C, int V,                     \
                         const int32_t *targets, const R *omega, R *nll, R *logits, R *dxf,    \
                         R *dW);                                                               \
  /* cos/sin tables [n_pos, D/2], computed the way nanochat does (fp32 angle t*inv_freq). */   \
  void nc_ref_rope_tables_##SFX(R *cos_t, R *sin_t, int n_pos, int D);                         \
  /* Whole model, training forward (+ backward when grads != NULL).                       */   \
  /* params/grads: flat buffers in nc_model_layout order (nc_model_layout.h).             */   \
  /* idx, targets [B*T] (targets -1 = ignored; targets may be NULL when loss is NULL).    */   \
  /* weights [B*T] or NULL: loss = sum(weights * nll) over valid targets; NULL: mean over   */ \
  /* valid targets (0 and no gradient when there are none). grads are written (=).        */   \
  /* logits [B*T, V] optional. Returns NC_OK, NC_EINVAL (bad config/ids), NC_ENOMEM. */        \
  int nc_ref_model_##SFX(const nc_model_config *cfg, const R *params, const int32_t *idx,      \
                         const int32_t *targets, const R *weights, int B, int T, R *loss,      \
                         R *logits, R *grads);

NC_REF_DECLARE(float, f32)
NC_REF_DECLARE(double, f64)

#ifdef __cplusplus
}
#endif
#endif /* NC_MODEL_REF_H */
