/* nc_model_cache.c — KV cache and the cached (inference) forward. See nc_model.h. */
#include <stdlib.h>
#include <string.h>

#include "nc_attention.h"
#include "nc_err.h"
#include "nc_kernels.h"
#include "nc_model.h"
#include "nc_model_internal.h"

/* Largest cache accepted, in floats per k or v tensor (2^32 floats = 16 GiB). */
#define NC_KVCACHE_MAX_FLOATS (1LL << 32)

int nc_kvcache_create(const nc_model *m, int B, int t_max, nc_kvcache **out) {
  return nc_kvcache_create_ex(m, B, t_max, NC_KV_F32, out);
}

int nc_kvcache_create_ex(const nc_model *m, int B, int t_max, nc_kv_dtype dtype,
                         nc_kvcache **out) {
  if (!out) return NC_EINVAL;
  *out = NULL;
  if (dtype != NC_KV_F32 && dtype != NC_KV_BF16) return NC_EINVAL;
  if (!m || B < 1 || t_max < 1 || (int64_t)t_max > 10LL * m->cfg.sequence_len) return NC_EINVAL;
  const int64_t per = (int64_t)m->L * B * t_max * m->KV;
  if (per > NC_KVCACHE_MAX_FLOATS || (int64_t)B * m->C > NC_KVCACHE_MAX_FLOATS) return NC_EINVAL;
  nc_kvcache *c = calloc(1, sizeof *c);
  if (!c) return NC_ENOMEM;
  c->n_layer = m->L;
  c->B = B;
  c->t_max = t_max;
  c->Hkv = m->Hkv;
  c->D = m->D;
  c->C = m->C;
  c->dtype = dtype;
  /* calloc: pages are committed only as positions are written (huge pages were measured: a
   * little faster at batch 16, but every touched 2 MiB layer region is then resident) */
  if (dtype == NC_KV_F32) {
    c->k = calloc((size_t)per, sizeof(float));
    c->v = calloc((size_t)per, sizeof(float));
  } else {
    c->k16 = calloc((size_t)per, sizeof(uint16_t));
    c->v16 = calloc((size_t)per, sizeof(uint16_t));
  }
  c->seqlens = calloc((size_t)B, sizeof(int32_t));
  c->prev_emb = calloc((size_t)B * m->C, sizeof(float));
  c->has_prev = calloc((size_t)B, 1);
  if ((dtype == NC_KV_F32 ? !c->k || !c->v : !c->k16 || !c->v16) || !c->seqlens || !c->prev_emb || !c->has_prev) {
    nc_kvcache_free(c);
    return NC_ENOMEM;
  }
  *out = c;
  return NC_OK;
}

void nc_kvcache_free(nc_kvcache *c) {
  if (!c) return;
  free(c->k);
  free(c->v);
  free(c->k16);
  free(c->v16);
  free(c->seqlens);
  free(c->prev_emb);
  free(c->has_prev);
  free(c);
}

void nc_kvcache_reset(nc_kvcache *c) {
  if (!c) return;
  memset(c->seqlens, 0, sizeof(int32_t) * (size_t)c->B);
  memset(c->has_prev, 0, (size_t)c->B);
}

int nc_model_forward_cached(nc_model *m, nc_kvcache *kc, const int32_t *idx, int B, int T,
                            float *logits, int last_only) {
  if (!m || !kc || !idx || !logits || B < 1 || T < 1 || B > kc->B) return NC_EINVAL;
  if (kc->dtype != NC_KV_F32 || kc->n_layer != m->L || kc->Hkv != m->Hkv || kc->D != m->D || kc->C != m->C)
    return NC_EINVAL;
  if ((int64_t)B * T > NC_MODEL_MAX_TOKENS) return NC_EINVAL;
  int rc = nc_model_check_tokens(m, idx, NULL, (int64_t)B * T);
  if (rc) return rc;
  int64_t end = 0;
  for (int b = 0; b < B; b++) {
    if (kc->seqlens[b] < 0 || (int64_t)kc->seqlens[b] + T > kc->t_max) return NC_EINVAL;
    if (kc->seqlens[b] + T > end) end = kc->seqlens[b] + T;
  }
  if ((rc = nc_model_rope_ensure(m, end))) return rc;
  int64_t keys = 0;
  for (int l = 0; l < m->L; l++) {
    int64_t k = (int64_t)m->lay.layer[l].window + NC_ATTN_BLOCK;
    if (k > end) k = end;
    if (k > keys) keys = k;
  }
  if ((rc = nc_workspace_ensure(m, &m->ws_inf, B, T, 0, keys))) return rc;
  nc_blas_single_thread();
  nc_workspace *ws = &m->ws_inf;
  nc_model_trunk(m, ws, idx, B, T, 0, kc);
  const int C = m->C;
  if (last_only) {
    /* gather the last row of each sequence; ws->xm is free scratch at this point */
    for (int b = 0; b < B; b++)
      memcpy(ws->xm + (int64_t)b * C, ws->xf + ((int64_t)b * T + T - 1) * C, sizeof(float) * (size_t)C);
    nc_head(ws->xm, m->params + m->lay.lm_head, B, C, m->V, NULL, NULL, NULL, logits, NULL,
            NULL, ws->head_work);
  } else {
    nc_head(ws->xf, m->params + m->lay.lm_head, (int64_t)B * T, C, m->V, NULL, NULL, NULL,
            logits, NULL, NULL, ws->head_work);
  }
  for (int b = 0; b < B; b++) kc->seqlens[b] += T;
  return NC_OK;
}
