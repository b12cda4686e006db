/* nc_model_layout.c — see nc_model_layout.h. */
#include "nc_model_layout.h"

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
