/* nc_tensor.h — the small shared vocabulary for named tensors.
 *
 * The model owns ONE contiguous fp32 allocation for all parameters and ONE for all
 * gradients; an nc_param is a view (name, shape, pointers into those allocations).
 * The optimizer (nc_optim.h) and checkpoint I/O (nc_safetensors.h) work on arrays of these,
 * so they never need to know the model's internals.
 *
 * Ownership: nc_param never owns memory. `name` points to storage owned by whoever produced
 * the array (the model), and stays valid as long as that owner lives.
 */
#ifndef NC_TENSOR_H
#define NC_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NC_MAX_DIMS 4

/* Element types that can appear in checkpoint files. Compute is fp32 on the CPU. */
typedef enum nc_dtype {
  NC_DT_F32 = 0,
  NC_DT_BF16 = 1,
  NC_DT_F16 = 2,
  NC_DT_I32 = 3,
  NC_DT_U8 = 4,
  NC_DT_I64 = 5,
} nc_dtype;

/* Bytes per element, 0 for an unknown dtype. */
size_t nc_dtype_size(nc_dtype dt);
/* Safetensors dtype string ("F32", "BF16", ...), NULL for unknown. */
const char *nc_dtype_name(nc_dtype dt);
/* Parse a safetensors dtype string; returns 0 and sets *out, or NC_EINVAL. */
int nc_dtype_parse(const char *s, nc_dtype *out);

/* What a parameter is, for the optimizer's grouping (nanochat GPT.setup_optimizer). */
typedef enum nc_param_kind {
  NC_PK_WTE = 0,          /* transformer.wte.weight            AdamW, embedding lr        */
  NC_PK_LM_HEAD = 1,      /* lm_head.weight                    AdamW, unembedding lr      */
  NC_PK_VALUE_EMBED = 2,  /* value_embeds.{i}.weight           AdamW, 0.5 x embedding lr  */
  NC_PK_MATRIX = 3,       /* every parameter inside transformer.h.* (incl. ve_gate): Muon */
  NC_PK_RESID_LAMBDAS = 4,/* resid_lambdas                     AdamW, 0.01 x scalar lr    */
  NC_PK_X0_LAMBDAS = 5,   /* x0_lambdas                        AdamW, scalar lr           */
  NC_PK_GATE_SCALAR = 6,  /* smear_gate.weight, smear_lambda, backout_lambda: AdamW lr 0.2 */
} nc_param_kind;

typedef struct nc_param {
  const char *name;               /* nanochat state-dict key, e.g. "transformer.h.0.attn.c_q.weight" */
  nc_param_kind kind;
  int ndim;                       /* 1..NC_MAX_DIMS */
  int64_t shape[NC_MAX_DIMS];     /* PyTorch layout: Linear weights are [out, in] */
  int64_t numel;                  /* product of shape */
  float *data;                    /* view into the model's parameter allocation, row-major */
  float *grad;                    /* view into the gradient allocation, or NULL */
} nc_param;

#ifdef __cplusplus
}
#endif
#endif /* NC_TENSOR_H */
