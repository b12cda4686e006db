/* nc_model_layout.h — where every nanochat GPT parameter lives in the flat parameter buffer.
 *
 * The model keeps all parameters in ONE contiguous fp32 array (and the gradients in a second
 * array with identical offsets). The tensors are packed back to back, without padding, in
 * PyTorch's state_dict() order for nanochat's GPT (pinned a445144):
 *
 *   resid_lambdas [L], x0_lambdas [L], smear_lambda [1], backout_lambda [1],
 *   transformer.wte.weight [Vp, C],
 *   for each layer i:  transformer.h.{i}.attn.c_q.weight  [H*D, C]
 *                      transformer.h.{i}.attn.c_k.weight  [Hkv*D, C]
 *                      transformer.h.{i}.attn.c_v.weight  [Hkv*D, C]
 *                      transformer.h.{i}.attn.c_proj.weight [C, C]
 *                      transformer.h.{i}.attn.ve_gate.weight [Hkv, 12]   (VE layers only)
 *                      transformer.h.{i}.mlp.c_fc.weight  [4C, C]
 *                      transformer.h.{i}.mlp.c_proj.weight [C, 4C]
 *   lm_head.weight [Vp, C], smear_gate.weight [1, 24],
 *   value_embeds.{i}.weight [Vp, Hkv*D] for each VE layer i (ascending).
 *
 * c_q, c_k and c_v are adjacent, so rows [0, H*D + 2*Hkv*D) starting at c_q form one fused
 * QKV weight matrix. This layout is shared by the fast model (nc_model.c) and the reference
 * implementation (nc_model_ref.c), in float and in double.
 */
#ifndef NC_MODEL_LAYOUT_H
#define NC_MODEL_LAYOUT_H

#include <stdint.h>

#include "nc_model_config.h"
#include "nc_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nc_layer_layout {
  int64_t c_q, c_k, c_v, c_proj; /* offsets (in elements) into the flat buffer */
  int64_t ve_gate;               /* -1 when the layer has no value embedding  */
  int64_t c_fc, mlp_c_proj;
  int64_t value_embed;           /* -1 when the layer has no value embedding  */
  int window;                    /* left attention window (FA3 semantics)     */
} nc_layer_layout;

typedef struct nc_model_layout {
  int64_t resid_lambdas, x0_lambdas, smear_lambda, backout_lambda;
  int64_t wte, lm_head, smear_gate;
  nc_layer_layout layer[NC_CFG_MAX_LAYER];
  int64_t total;   /* number of elements in the flat buffer */
  int n_tensors;   /* number of named tensors                */
} nc_model_layout;

/* Fills *out for a config that passed nc_model_config_validate. Returns NC_OK or NC_EINVAL
 * (invalid config). Pure arithmetic, no allocation. */
int nc_model_layout_compute(const nc_model_config *cfg, nc_model_layout *out);

/* Longest tensor name the model produces, including the NUL. */
#define NC_TENSOR_NAME_MAX 64

/* One named tensor of the layout (what an nc_param views, without the memory). */
typedef struct nc_layout_tensor {
  char name[NC_TENSOR_NAME_MAX]; /* nanochat state-dict key                 */
  nc_param_kind kind;
  int ndim;                      /* 1 or 2                                  */
  int64_t shape[2];              /* PyTorch layout; shape[1] = 0 when 1-D   */
  int64_t numel;
  int64_t offset;                /* element offset in the flat buffer       */
} nc_layout_tensor;

/* Lists the named tensors of `cfg` in the layout order above (= nc_model_params order), with
 * the kinds nc_model_params documents. `out` must hold `max` entries; at most
 * NC_CFG_MAX_LAYER * 8 + 8 are ever needed (lay.n_tensors exactly). Pure: no allocation,
 * so a checkpoint loader can check a file's tensor set before allocating a model.
 * Returns the number of tensors, or NC_EINVAL (invalid config, NULL out, or max too small). */
int nc_model_layout_tensors(const nc_model_config *cfg, nc_layout_tensor *out, int max);

#ifdef __cplusplus
}
#endif
#endif /* NC_MODEL_LAYOUT_H */
