/* nc_model_layout.c — see nc_model_layout.h. */
#include "nc_model_layout.h"

#include <stdio.h>
#include <string.h>

#include "nc_err.h"

int nc_model_layout_compute(const nc_model_config *cfg, nc_model_layout *out) {
  if (!cfg || !out || nc_model_config_validate(cfg, NULL, 0) != NC_OK) return NC_EINVAL;
  memset(out, 0, sizeof *out);
  int64_t C = cfg->n_embd, L = cfg->n_layer, Vp = nc_model_config_padded_vocab(cfg);
  int64_t KV = nc_model_config_kv_dim(cfg), Hkv = cfg->n_kv_head;
  int64_t off = 0;
  int n = 0;
  out->resid_lambdas = off; off += L; n++;
  out->x0_lambdas = off; off += L; n++;
  out->smear_lambda = off; off += 1; n++;
  out->backout_lambda = off; off += 1; n++;
  out->wte = off; off += Vp * C; n++;
  for (int i = 0; i < L; i++) {
    nc_layer_layout *ly = &out->layer[i];
    ly->c_q = off; off += C * C; n++;
    ly->c_k = off; off += KV * C; n++;
    ly->c_v = off; off += KV * C; n++;
    ly->c_proj = off; off += C * C; n++;
    if (nc_model_config_has_ve(cfg, i)) {
      ly->ve_gate = off; off += Hkv * NC_CFG_VE_GATE_CHANNELS; n++;
    } else {
      ly->ve_gate = -1;
    }
    ly->c_fc = off; off += 4 * C * C; n++;
    ly->mlp_c_proj = off; off += 4 * C * C; n++;
    ly->value_embed = -1;
    ly->window = nc_model_config_window(cfg, i);
  }
  out->lm_head = off; off += Vp * C; n++;
  out->smear_gate = off; off += NC_CFG_SMEAR_CHANNELS; n++;
  for (int i = 0; i < L; i++) {
    if (nc_model_config_has_ve(cfg, i)) {
      out->layer[i].value_embed = off; off += Vp * KV; n++;
    }
  }
  out->total = off;
  out->n_tensors = n;
  return NC_OK;
}

static void put(nc_layout_tensor *t, const char *name, nc_param_kind kind, int64_t off,
                int ndim, int64_t d0, int64_t d1) {
  snprintf(t->name, sizeof t->name, "%s", name);
  t->kind = kind;
  t->ndim = ndim;
  t->shape[0] = d0;
  t->shape[1] = ndim > 1 ? d1 : 0;
  t->numel = ndim > 1 ? d0 * d1 : d0;
  t->offset = off;
}

int nc_model_layout_tensors(const nc_model_config *cfg, nc_layout_tensor *out, int max) {
  nc_model_layout ly;
  if (!out || nc_model_layout_compute(cfg, &ly) != NC_OK || max < ly.n_tensors)
    return NC_EINVAL;
  const int64_t C = cfg->n_embd, KV = nc_model_config_kv_dim(cfg), L = cfg->n_layer;
  const int64_t Vp = nc_model_config_padded_vocab(cfg);
  int n = 0;
  char buf[NC_TENSOR_NAME_MAX];
  put(&out[n++], "resid_lambdas", NC_PK_RESID_LAMBDAS, ly.resid_lambdas, 1, L, 0);
  put(&out[n++], "x0_lambdas", NC_PK_X0_LAMBDAS, ly.x0_lambdas, 1, L, 0);
  put(&out[n++], "smear_lambda", NC_PK_GATE_SCALAR, ly.smear_lambda, 1, 1, 0);
  put(&out[n++], "backout_lambda", NC_PK_GATE_SCALAR, ly.backout_lambda, 1, 1, 0);
  put(&out[n++], "transformer.wte.weight", NC_PK_WTE, ly.wte, 2, Vp, C);
  for (int i = 0; i < L; i++) {
    const nc_layer_layout *l = &ly.layer[i];
#define P_(suffix, off, d0, d1)                                                \
  do {                                                                         \
    snprintf(buf, sizeof buf, "transformer.h.%d.%s", i, suffix);               \
    put(&out[n++], buf, NC_PK_MATRIX, off, 2, d0, d1);                         \
  } while (0)
    P_("attn.c_q.weight", l->c_q, C, C);
    P_("attn.c_k.weight", l->c_k, KV, C);
    P_("attn.c_v.weight", l->c_v, KV, C);
    P_("attn.c_proj.weight", l->c_proj, C, C);
    if (l->ve_gate >= 0)
      P_("attn.ve_gate.weight", l->ve_gate, cfg->n_kv_head, NC_CFG_VE_GATE_CHANNELS);
    P_("mlp.c_fc.weight", l->c_fc, 4 * C, C);
    P_("mlp.c_proj.weight", l->mlp_c_proj, C, 4 * C);
#undef P_
  }
  put(&out[n++], "lm_head.weight", NC_PK_LM_HEAD, ly.lm_head, 2, Vp, C);
  put(&out[n++], "smear_gate.weight", NC_PK_GATE_SCALAR, ly.smear_gate, 2, 1,
      NC_CFG_SMEAR_CHANNELS);
  for (int i = 0; i < L; i++) {
    if (ly.layer[i].value_embed < 0) continue;
    snprintf(buf, sizeof buf, "value_embeds.%d.weight", i);
    put(&out[n++], buf, NC_PK_VALUE_EMBED, ly.layer[i].value_embed, 2, Vp, KV);
  }
  return n;
}
