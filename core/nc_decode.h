/* nc_decode.h — the inference forward of the nanochat GPT for an engine: chunked prefill of one
 * sequence and batched one-token decode of many, each sequence in its own KV cache, with fp32
 * or bf16 weights.
 *
 * Same function as nc_model_forward_cached (nc_model.h) with three differences an engine needs:
 *  1. Every sequence has its own nc_kvcache (B == 1 each) and a decode step takes an array of
 *     them, so sequences join and leave a batch without copying or compacting caches. A cache
 *     is fp32 or bf16 (nc_kvcache_create_ex; caches of both kinds may share a step): a bf16
 *     cache halves what decode attention streams, and every attention (prefill chunks and
 *     decode) then reads the bf16-rounded keys and values, so chunked prefill, decode and
 *     batching keep the properties below exactly.
 *  2. A prefill may be split into chunks and gives the same function as one prefill of the whole
 *     prompt: a chunk that continues a non-empty cache smears its first token with the cache's
 *     prev_emb (nc_model_forward_cached follows nanochat's code there and does not, which is only
 *     reachable by chunking; nanochat itself always prefills in one call).
 *  3. Decode (T == 1) runs every matrix through the batch-invariant GEMV kernels of nc_gemv.h,
 *     reading each weight once per step for all rows, either from the model's fp32 parameters
 *     or from a bf16 copy made at creation (half the bytes: decode is bound by weight
 *     bandwidth), optionally with bf16 activations (NC_DECODE_BF16_DOT, for batches, which are
 *     compute bound). A row's logits are bit-identical whether it is decoded alone or with
 *     others.
 *     Prefill chunks of more than NC_DECODE_GEMV_ROWS tokens use fp32 sgemm (compute bound),
 *     except with NC_DECODE_BF16_DOT, whose prefill also runs the bf16 dot-product kernels.
 * Only the embedding rows of the tokens being run are read (wte and value embeddings are
 * gathered by id); the head reads the first vocab_size rows of lm_head, and only the last
 * position of each sequence is normed and projected to logits.
 *
 * Logits are 15 * tanh(z / 15) like the model's; a non-finite z makes the row's logits NaN (the
 * softcap would otherwise map +-inf to +-15), so a sampler rejects it (faults.md row 41).
 *
 * Ownership and threads: the decoder borrows the model (read only: parameters, config, layout);
 * the model must outlive the decoder and its parameters must not change while the decoder is
 * in use (call nc_decoder_sync_weights after they change, e.g. after training steps, to refresh
 * the bf16 copy). The decoder owns its workspace and rope tables and never writes to the model,
 * so other threads may run nc_model_forward on the same model concurrently; one thread at a
 * time may use a decoder. It uses omp_get_max_threads() of the calling thread as its thread
 * count: the GEMV kernels and prefill and decode attention run on nc_par's pool (nc_par.h:
 * bounded spin between the ~40 loops of a step), the small kernels on OpenMP, with OpenBLAS
 * single-threaded (nc_blas_single_thread is called for you).
 *
 * Errors: NC_OK, NC_EINVAL (bad arguments, token ids out of range, a cache of another shape or
 * without room for the tokens; nothing is changed then), NC_ENOMEM.
 */
#ifndef NC_DECODE_H
#define NC_DECODE_H

#include <stdint.h>

#include "nc_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest decode batch (rows per nc_decoder_step). */
#define NC_DECODE_MAX_ROWS 64
/* Prefill chunks of at most this many tokens use the GEMV kernels, longer ones sgemm. */
#define NC_DECODE_GEMV_ROWS 8

typedef enum nc_decode_weights {
  NC_DECODE_F32 = 0,      /* the model's fp32 parameters (the reference path)               */
  NC_DECODE_BF16 = 1,     /* bf16 copies of the matrices and lm_head; fp32 activations and    */
                          /* accumulation (AVX2/AVX-512 FMA, any x86-64-v3 CPU)               */
  NC_DECODE_BF16_DOT = 2, /* bf16 copies and decode activations rounded to bf16 too, fp32     */
                          /* accumulation by VDPBF16PS (AVX512_BF16 CPUs, n_embd % 8 == 0):   */
                          /* 2x the multiply-adds per instruction for compute-bound batches   */
  NC_DECODE_AUTO = 3,     /* nc_decoder_fastest_weights() at creation                         */
} nc_decode_weights;

/* The fastest precision this CPU and model allow: NC_DECODE_BF16_DOT or NC_DECODE_BF16. */
nc_decode_weights nc_decoder_fastest_weights(const nc_model *m);

typedef struct nc_decoder nc_decoder;

/* Creates a decoder for `m` (borrowed). max_rows: largest decode batch (1..NC_DECODE_MAX_ROWS);
 * max_chunk: largest prefill chunk in tokens (1..65536); t_max: largest cache length it will
 * see (1..10 * sequence_len; the rope tables cover it). With NC_DECODE_BF16 the matrices
 * (c_q/c_k/c_v, c_proj, c_fc, mlp.c_proj of every layer, and lm_head's first vocab_size rows)
 * are copied to bf16 now: 2 bytes per weight. Returns NC_OK and *out (free with
 * nc_decoder_free), NC_EINVAL, NC_ENOTSUP (NC_DECODE_BF16_DOT on a CPU without AVX512_BF16 or
 * with n_embd % 8 != 0) or NC_ENOMEM. */
int nc_decoder_create(const nc_model *m, nc_decode_weights w, int max_rows, int max_chunk,
                      int t_max, nc_decoder **out);

/* Frees the decoder (NULL is a no-op). The model is not touched. */
void nc_decoder_free(nc_decoder *d);

/* Threads of the decoder's pool loops (GEMV kernels, decode attention; nc_par.h): 0 (the
 * default) = omp_get_max_threads() of the calling thread at each call, else 1..64. The OpenMP
 * parts (the small kernels: norms, RoPE, ReLU^2, ...) keep the calling thread's setting, so a
 * caller that sets OpenMP to one thread and the decoder to N runs no OpenMP team at all (the
 * engine does: libgomp's spinning workers would otherwise compete with the pool's). */
void nc_decoder_set_threads(nc_decoder *d, int threads);

/* Re-copies the bf16 weights from the model's current parameters (no-op for NC_DECODE_F32). */
void nc_decoder_sync_weights(nc_decoder *d);

/* Bytes of weights one decode step streams (matrices + head, at the decoder's precision). */
int64_t nc_decoder_weight_bytes(const nc_decoder *d);

/* Prefill: runs T (1..max_chunk) tokens of one sequence at positions seqlens[0] .. +T-1 of its
 * cache `kc` (B == 1, t_max <= the decoder's), appends their keys/values, updates prev_emb and
 * advances seqlens[0] by T. logits [vocab_size] receives the last token's logits (may be NULL
 * when only the cache is wanted). A prompt split into chunks of any sizes gives the same cache
 * and final logits as one chunk (up to fp32 rounding of the matmul path). */
int nc_decoder_prefill(nc_decoder *d, nc_kvcache *kc, const int32_t *ids, int T, float *logits);

/* Decode step: one token ids[b] for each of B (1..max_rows) sequences, sequence b in its own
 * cache kcs[b] (B == 1 each, all distinct, at any positions, each with room for one more
 * token). logits [B, vocab_size]. Rows do not interact: each row's result is bit-identical to
 * decoding it alone. */
int nc_decoder_step(nc_decoder *d, nc_kvcache *const *kcs, const int32_t *ids, int B,
                    float *logits);

/* Copies cache `src` into cache `dst` (both B == 1, same shapes, dst->t_max >= src->seqlens[0]):
 * the filled positions of every layer, prev_emb/has_prev and seqlens. Used when one prefill is
 * shared by several samples (nanochat generate with num_samples). NC_OK / NC_EINVAL. */
int nc_kvcache_copy(nc_kvcache *dst, const nc_kvcache *src);

#ifdef __cplusplus
}
#endif
#endif /* NC_DECODE_H */
