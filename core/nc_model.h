/* nc_model.h — the nanochat GPT on the CPU in fp32: parameters, initialisation, training
 * forward/backward, evaluation forward, and a KV-cache forward for inference.
 *
 * The model is nanochat's pinned GPT (specs/nanochat.md §2): embedding -> RMSNorm -> smear
 * -> per layer (resid/x0 lambdas, pre-norm attention with value embeddings, RoPE, QK-norm,
 * sliding windows; ReLU^2 MLP) -> backout at layer n_layer/2 -> RMSNorm -> lm_head ->
 * 15*tanh(z/15) -> cross-entropy (ignore_index -1). RMSNorm eps = FLT_EPSILON.
 *
 * Memory: ONE contiguous fp32 allocation holds every parameter and ONE holds the gradients,
 * both in nc_model_layout order (nc_model_layout.h); nc_model_params() returns views with
 * nanochat's state-dict names. Activations are allocated on first use for a given batch
 * shape and reused by later calls of the same or smaller size (no per-step malloc).
 *
 * Threading: all parallelism is OpenMP (omp_get_max_threads() threads, e.g. set with
 * omp_set_num_threads or OMP_NUM_THREADS); OpenBLAS is called single-threaded from inside
 * the OpenMP threads. Every compute entry point therefore calls nc_blas_single_thread(),
 * which sets OpenBLAS's thread count to 1 for the whole process. An nc_model is not
 * thread-safe: one thread at a time may call the functions that take a non-const model.
 *
 * Errors: functions return NC_OK or a negative NC_E* code (nc_err.h); NC_EINVAL for bad
 * arguments (out-of-range ids or targets, bad shapes), NC_ENOMEM when an allocation fails.
 * Nothing aborts on bad input.
 *
 * Reference: nc_model_ref.h computes the same function with plain loops (float/double);
 * tests/unit/test_model.cc checks this file against it, and tests/parity against PyTorch.
 */
#ifndef NC_MODEL_H
#define NC_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "nc_model_config.h"
#include "nc_model_layout.h"
#include "nc_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nc_model nc_model;

/* Largest batch a single call accepts, in tokens (B*T), to bound allocations. */
#define NC_MODEL_MAX_TOKENS (1 << 22)

/* Creates a model for `cfg` (validated first; on NC_EINVAL the reason is written to msg).
 * Parameters and gradients are allocated and zeroed; call nc_model_init_weights() for
 * nanochat's initialisation or fill nc_model_param_buffer() (e.g. from a checkpoint).
 * On success *out owns everything; release with nc_model_free. */
int nc_model_create(const nc_model_config *cfg, nc_model **out, char *msg, size_t msglen);

/* Frees the model, its parameters, gradients and workspaces. NULL is a no-op. */
void nc_model_free(nc_model *m);

/* The model's configuration and parameter layout (owned by the model). */
const nc_model_config *nc_model_get_config(const nc_model *m);
const nc_model_layout *nc_model_get_layout(const nc_model *m);

/* The named parameter views, in state-dict order; *n receives the count. The array and the
 * names are owned by the model and live as long as it does. data/grad point into the two
 * contiguous buffers. Kinds: wte NC_PK_WTE, lm_head NC_PK_LM_HEAD, value_embeds.*
 * NC_PK_VALUE_EMBED, everything under transformer.h.* (incl. ve_gate) NC_PK_MATRIX,
 * resid_lambdas NC_PK_RESID_LAMBDAS, x0_lambdas NC_PK_X0_LAMBDAS, smear_gate.weight /
 * smear_lambda / backout_lambda NC_PK_GATE_SCALAR. */
nc_param *nc_model_params(nc_model *m, int *n);

/* The flat parameter / gradient buffers (nc_model_layout order); *n = element count. */
float *nc_model_param_buffer(nc_model *m, int64_t *n);
float *nc_model_grad_buffer(nc_model *m, int64_t *n);

/* nanochat's init_weights() (HEAD values for smear/backout): wte N(0, 0.8); lm_head
 * N(0, 0.001); c_q/c_k/c_v U(-s, s) with s = sqrt(3/n_embd); mlp.c_fc U(-0.4s, 0.4s);
 * attn.c_proj and mlp.c_proj 0; value_embeds U(-s, s); ve_gate U(0, 0.02); resid_lambdas[i]
 * = 1.15 - 0.10 i/max(L-1,1); x0_lambdas[i] = 0.20 - 0.15 i/max(L-1,1); smear_lambda 0;
 * backout_lambda 0.2; smear_gate U(0, 0.02). Random numbers come from nc_rng (nc_sample.h:
 * xoshiro256** seeded through splitmix64); uniforms are lo + (hi-lo)*u in double, normals
 * Box-Muller pairs in double, each rounded to float. Tensors are drawn in the order listed
 * above (value embeds after the blocks, then ve_gates, then smear_gate), so a seed gives the
 * same weights on every machine and thread count. */
void nc_model_init_weights(nc_model *m, uint64_t seed);

/* Sets every gradient to 0. */
void nc_model_zero_grad(nc_model *m);

/* Training step forward + backward on a batch of B rows of T tokens.
 * idx, targets: [B*T] int32 (row-major); ids in [0, vocab_size), targets in [-1, vocab_size)
 * with -1 ignored. weights: [B*T] or NULL. The loss is
 *   weights == NULL:  mean of the per-token NLL over targets != -1 (nanochat's reduction
 *                     'mean'); 0 when every target is ignored (then no gradient is added;
 *                     PyTorch would return NaN)
 *   weights != NULL:  sum over targets != -1 of weights[i] * NLL[i] (e.g. RL objectives).
 * The gradient of grad_scale * loss is ADDED to the gradient buffer (call nc_model_zero_grad
 * before the first micro-batch; grad_scale = 1/grad_accum reproduces nanochat's
 * loss / grad_accum). *loss receives the unscaled loss (may be NULL).
 * Requires 1 <= B, 1 <= T <= 10 * sequence_len, B*T <= NC_MODEL_MAX_TOKENS.
 * Returns NC_OK, NC_EINVAL or NC_ENOMEM (gradients unchanged on error). */
int nc_model_forward_backward(nc_model *m, const int32_t *idx, const int32_t *targets,
                              const float *weights, int B, int T, float grad_scale,
                              float *loss);

/* Evaluation forward (no gradient, activations not kept: less memory than training).
 * targets may be NULL. loss (mean NLL over valid targets, 0 if none), losses [B*T] (per-token
 * NLL, 0 where the target is -1: nanochat's reduction 'none'), and logits [B*T, vocab_size]
 * (softcapped, fp32) are each optional (NULL). Same limits and errors as above. */
int nc_model_forward(nc_model *m, const int32_t *idx, const int32_t *targets, int B, int T,
                     float *loss, float *losses, float *logits);

/* ---------------------------------------------------------------- KV cache (inference) */

/* A KV cache for B rows of up to t_max positions. The layout is public so an engine can
 * copy rows (e.g. a batch-1 prefill broadcast to N samples):
 *   k, v        [n_layer, B, t_max, Hkv, D]  keys after RoPE/QK-norm/1.2, values after VE
 *               (fp32; NULL in a bf16 cache)
 *   k16, v16    the same layout in bf16 (NC_KV_BF16 only, else NULL)
 *   seqlens     [B]  positions already filled in each row (the next token's position)
 *   prev_emb    [B, C] normed embedding (pre-smear) of each row's last token
 *   has_prev    [B]  whether prev_emb is valid (nanochat's kv_cache.prev_embedding)
 * A bf16 cache holds half the bytes: decode attention reads every cached key and value once
 * per step, so at a batch of 16 sequences it streams as much memory as the weights do. Keys
 * and values are rounded to bf16 (round to nearest even) when stored, and every reader (the
 * decoder's prefill and decode attention) sees only the rounded values. Only nc_decoder
 * (nc_decode.h) reads bf16 caches; nc_model_forward_cached needs NC_KV_F32. */
typedef enum nc_kv_dtype { NC_KV_F32 = 0, NC_KV_BF16 = 1 } nc_kv_dtype;

typedef struct nc_kvcache {
  int n_layer, B, t_max, Hkv, D, C;
  nc_kv_dtype dtype;
  float *k, *v;
  uint16_t *k16, *v16;
  int32_t *seqlens;
  float *prev_emb;
  uint8_t *has_prev;
} nc_kvcache;

/* Allocates a zeroed fp32 cache (seqlens 0, no prev) for the model's shapes. 1 <= B,
 * 1 <= t_max <= 10 * sequence_len. Returns NC_OK, NC_EINVAL or NC_ENOMEM. */
int nc_kvcache_create(const nc_model *m, int B, int t_max, nc_kvcache **out);
/* The same with the element type of k/v chosen (NC_KV_F32 or NC_KV_BF16; else NC_EINVAL). */
int nc_kvcache_create_ex(const nc_model *m, int B, int t_max, nc_kv_dtype dtype,
                         nc_kvcache **out);
/* Frees the cache (NULL is a no-op). */
void nc_kvcache_free(nc_kvcache *c);
/* Empties every row (seqlens 0, no prev). */
void nc_kvcache_reset(nc_kvcache *c);

/* Runs T new tokens for each of the cache's first B rows (B <= cache->B): row b's tokens are
 * at positions seqlens[b] .. seqlens[b] + T - 1; their keys/values are appended, seqlens[b]
 * advances by T and prev_emb[b] becomes the last token's normed embedding. Exactly like
 * nanochat's GPT.forward with a KV cache: smear uses prev_emb only when T == 1 (decode); a
 * multi-token chunk smears within itself. Attention windows slide over absolute positions.
 * logits: [B, vocab_size] for the last token of each row when last_only, else
 * [B, T, vocab_size]. Requires seqlens[b] + T <= t_max and an fp32 cache (NC_EINVAL for a
 * bf16 one). On error nothing is changed. Returns NC_OK, NC_EINVAL or NC_ENOMEM. */
int nc_model_forward_cached(nc_model *m, nc_kvcache *cache, const int32_t *idx, int B, int T,
                            float *logits, int last_only);

#ifdef __cplusplus
}
#endif
#endif /* NC_MODEL_H */
