/* nc_model_internal.h — the nc_model struct and workspace, shared by nc_model.c (training,
 * evaluation) and nc_model_cache.c (KV-cache inference). Internal to core/. */
#ifndef NC_MODEL_INTERNAL_H
#define NC_MODEL_INTERNAL_H

#include <stdint.h>

#include "nc_model.h"

/* Per-layer saved activations (N = B*T rows). In no-grad mode every layer shares one set. */
typedef struct nc_layer_acts {
  float *res;   /* res [N, C]    residual stream entering the layer (before the lambdas) */
  float *xn1;   /* xn1 [N, C]    rmsnorm of the lambda-mixed input (attention input)     */
  float *rstd1; /* rstd1 [N]                                                            */
  float *qkv;   /* qkv [N, QKV]  q, k after RoPE/QK-norm/1.2; v after value embedding    */
  float *rq;    /* rq [N, H]     QK-norm statistics                                     */
  float *rk;    /* rk [N, Hkv]                                                          */
  float *gate;  /* gate [N, Hkv] 3*sigmoid value-embedding gate (VE layers)             */
  float *att;   /* att [N, C]    attention output before c_proj                         */
  float *lse;   /* lse [B, H, T] attention log-sum-exp                                   */
  float *xn2;   /* xn2 [N, C]    rmsnorm of the post-attention residual (MLP input)     */
  float *rstd2; /* rstd2 [N]                                                            */
  float *h;     /* h [N, 4C]     c_fc output (pre-activation)                           */
} nc_layer_acts;

typedef struct nc_workspace {
  int64_t cap_n;      /* rows the buffers were sized for          */
  int cap_bt_b, cap_bt_t;/* B and T the lse buffers were sized for (B*T <= cap) */
  int nsets;          /* 1 (no-grad) or n_layer (training)         */
  int nthreads;       /* OpenMP threads the scratch was sized for  */
  int64_t cap_keys;   /* attention key range the scratch covers    */
  float *mem;         /* one allocation for everything below       */
  size_t mem_floats;
  nc_layer_acts *L;   /* [nsets]                                   */
  float *res_final;   /* res_final [N, C] training: residual after the last layer (= L[n].res) */
  float *xn0, *rstd0; /* xn0 [N, C] normed embedding, rstd0 [N]    */
  float *sig;         /* sig [N] smear sigmoid                     */
  float *x0;          /* x0 [N, C] after smear                     */
  float *xm;          /* xm [N, C] lambda mix, then post-attention residual */
  float *act;         /* act [N, 4C] relu^2 scratch                */
  float *xb;          /* xb [N, C] backout copy (no-grad mode)     */
  float *xf, *rstdf;  /* xf [N, C] final normed, rstdf [N]         */
  float *nll, *omega; /* nll [N], omega [N] dLoss/dnll             */
  /* backward only (NULL in no-grad workspaces) */
  float *dres, *dx0, *dxm, *dxn, *datt, *dxf; /* [N, C] each */
  float *dh;          /* dh [N, 4C]                                */
  float *dqkv;        /* dqkv [N, QKV]                             */
  float *attn_work;   /* attention scratch                         */
  size_t attn_floats;
  float *head_work;   /* fused head scratch                        */
} nc_workspace;

struct nc_model {
  nc_model_config cfg;
  nc_model_layout lay;
  int C, H, Hkv, D, KV, QKV, F, V, Vp, L;
  float *params, *grads; /* the two contiguous buffers, lay.total floats each */
  nc_param *plist;
  int n_params;
  char *names;
  float *cos_t, *sin_t;  /* rope tables [rope_len, D/2] */
  int rope_len;
  nc_workspace ws;       /* training / evaluation workspace */
  nc_workspace ws_inf;   /* KV-cache inference workspace    */
};

/* Makes sure the rope tables cover positions [0, n_pos). NC_OK / NC_ENOMEM / NC_EINVAL. */
int nc_model_rope_ensure(nc_model *m, int64_t n_pos);

/* Sizes `ws` for B rows of T tokens, nsets layer sets (1 or n_layer), with backward buffers
 * when grad, attention scratch covering `keys` keys per query block. Reuses the existing
 * allocation when it is large enough. NC_OK / NC_ENOMEM. */
int nc_workspace_ensure(nc_model *m, nc_workspace *ws, int B, int T, int grad, int64_t keys);
void nc_workspace_free(nc_workspace *ws);

/* Forward of the trunk: embedding ... final RMSNorm, leaving the result in ws->xf [B*T, C].
 * grad: keep every layer's activations (ws sized with grad), else run in place in layer set 0.
 * kc: NULL for training/evaluation; else a KV cache (no grad) whose rows 0..B-1 are at
 * positions kc->seqlens[b]: keys/values are appended and prev_emb updated (seqlens are NOT
 * advanced here). The caller validated everything and sized ws and the rope tables. */
void nc_model_trunk(nc_model *m, nc_workspace *ws, const int32_t *idx, int B, int T, int grad,
                    nc_kvcache *kc);

/* Checks ids (and targets when non-NULL) are in range. */
int nc_model_check_tokens(const nc_model *m, const int32_t *idx, const int32_t *targets,
                          int64_t n);

#endif /* NC_MODEL_INTERNAL_H */
