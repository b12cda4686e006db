/* nc_eval.h — bits per byte (nanochat loss_eval.evaluate_bpb, specs §8.1).
 *
 *   bpb = sum over counted targets of loss_nats / (ln 2 * sum over counted targets of bytes)
 * where a target counts iff target >= 0 and token_bytes[target] > 0 (special tokens have 0
 * bytes and never count). token_bytes are RAW byte lengths of each token (nanochat HEAD; the
 * pinned commit inflated 193/32768 tokens that are not valid UTF-8 on their own, reading about
 * 0.05% lower — documented difference).
 * Returns +inf when no byte counted (nanochat does the same).
 */
#ifndef NC_EVAL_H
#define NC_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "nc_loader.h"
#include "nc_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Running sums of one bpb evaluation. */
typedef struct nc_bpb_acc {
  double nats;    /* sum of per-token losses of counted targets */
  uint64_t bytes; /* sum of token_bytes of counted targets */
  uint64_t tokens;/* counted targets */
} nc_bpb_acc;

/* Add one batch: losses[i] is the per-token NLL (nats) for targets[i] (n entries);
 * token_bytes has vocab_size entries. Targets outside [-1, vocab_size) are NC_EINVAL. */
int nc_bpb_add(nc_bpb_acc *acc, const float *losses, const int32_t *targets, size_t n,
               const int32_t *token_bytes, int vocab_size);

/* The bpb of the accumulated sums (+inf when no bytes counted). */
double nc_bpb_value(const nc_bpb_acc *acc);

/* Evaluate `steps` batches from `loader` (B x T as configured there) on `model`.
 * `scratch_*` can be NULL (allocated internally). *out receives the sums; returns NC_OK,
 * NC_ENOTFOUND if the loader ran dry before any batch, or an error from the model/loader.
 * `cancel` (optional) is polled between batches; non-zero stops with NC_ECANCELED. */
int nc_eval_bpb(nc_model *model, nc_loader *loader, int B, int T, int steps,
                const int32_t *token_bytes, nc_bpb_acc *out, int (*cancel)(void *), void *cancel_ctx);

#ifdef __cplusplus
}
#endif
#endif /* NC_EVAL_H */
