/* nc_eval.c — bits-per-byte evaluation of nc_eval.h. */
#include "nc_eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nc_err.h"

int nc_bpb_add(nc_bpb_acc *acc, const float *losses, const int32_t *targets, size_t n,
               const int32_t *token_bytes, int vocab_size) {
  if (!acc || (n && (!losses || !targets)) || !token_bytes || vocab_size < 1) return NC_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (targets[i] < -1 || targets[i] >= vocab_size) return NC_EINVAL;
  for (size_t i = 0; i < n; i++) {
    int32_t t = targets[i];
    if (t < 0 || token_bytes[t] <= 0) continue;
    acc->nats += (double)losses[i];
    acc->bytes += (uint64_t)token_bytes[t];
    acc->tokens++;
  }
  return NC_OK;
}

double nc_bpb_value(const nc_bpb_acc *acc) {
  if (!acc || acc->bytes == 0) return INFINITY;
  return acc->nats / (log(2.0) * (double)acc->bytes);
}

int nc_eval_bpb(nc_model *model, nc_loader *loader, int B, int T, int steps,
                const int32_t *token_bytes, nc_bpb_acc *out, int (*cancel)(void *), void *cancel_ctx) {
  if (!model || !loader || B < 1 || T < 1 || steps < 1 || !token_bytes || !out) return NC_EINVAL;
  memset(out, 0, sizeof *out);
  const size_t n = (size_t)B * (size_t)T;
  int32_t *in = malloc(n * sizeof *in), *tg = malloc(n * sizeof *tg);
  float *losses = malloc(n * sizeof *losses);
  int rc = (in && tg && losses) ? NC_OK : NC_ENOMEM;
  const int vocab = (int)nc_model_get_config(model)->vocab_size;
  int done = 0;
  for (int s = 0; !rc && s < steps; s++) {
    if (cancel && cancel(cancel_ctx)) {
      rc = NC_ECANCELED;
      break;
    }
    rc = nc_loader_next(loader, in, tg);
    if (rc == NC_ENOTFOUND && done > 0) {
      rc = NC_OK; /* a finite split ran out: evaluate what there was */
      break;
    }
    if (!rc) rc = nc_model_forward(model, in, tg, B, T, NULL, losses, NULL);
    if (!rc) rc = nc_bpb_add(out, losses, tg, n, token_bytes, vocab);
    if (!rc) done++;
  }
  free(in);
  free(tg);
  free(losses);
  return rc;
}
