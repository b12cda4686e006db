/* nc_model.c — parameters, init, workspace, training forward/backward and evaluation
 * forward of the nanochat GPT. See nc_model.h; the readable specification of every step is
 * nc_model_ref_impl.h (same order, same names). */
#include "nc_model.h"
#if defined(__clang__)
/* `omp simd` loops are vectorisation hints; coverage-instrumented (fuzz) builds cannot honour
 * them, which clang reports as -Wpass-failed. */
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nc_attention.h"
#include "nc_err.h"
#include "nc_kernels.h"
#include "nc_model_internal.h"
#include "nc_model_ref.h"
#include "nc_sample.h" /* nc_rng: xoshiro256** seeded through splitmix64 */

#define NC_ALIGN_FLOATS 16 /* 64-byte alignment of every carved buffer */

/* ------------------------------------------------------------------ create / free */

int nc_model_rope_ensure(nc_model *m, int64_t n_pos) {
  if (n_pos <= m->rope_len) return NC_OK;
  if (n_pos > 10LL * m->cfg.sequence_len) return NC_EINVAL;
  int64_t want = n_pos;
  if (want < 2LL * m->rope_len) want = 2LL * m->rope_len; /* amortised growth */
  if (want > 10LL * m->cfg.sequence_len) want = 10LL * m->cfg.sequence_len;
  size_t n = (size_t)want * (size_t)(m->D / 2);
  float *c = malloc(n * sizeof(float)), *s = malloc(n * sizeof(float));
  if (!c || !s) {
    free(c);
    free(s);
    return NC_ENOMEM;
  }
  nc_ref_rope_tables_f32(c, s, (int)want, m->D);
  free(m->cos_t);
  free(m->sin_t);
  m->cos_t = c;
  m->sin_t = s;
  m->rope_len = (int)want;
  return NC_OK;
}

int nc_model_create(const nc_model_config *cfg, nc_model **out, char *msg, size_t msglen) {
  if (!out) return NC_EINVAL;
  *out = NULL;
  int rc = nc_model_config_validate(cfg, msg, msglen);
  if (rc) return rc;
  nc_model *m = calloc(1, sizeof *m);
  if (!m) return NC_ENOMEM;
  m->cfg = *cfg;
  nc_model_layout_compute(cfg, &m->lay);
  m->C = cfg->n_embd;
  m->H = cfg->n_head;
  m->Hkv = cfg->n_kv_head;
  m->D = m->C / m->H;
  m->KV = m->Hkv * m->D;
  m->QKV = m->C + 2 * m->KV;
  m->F = 4 * m->C;
  m->V = cfg->vocab_size;
  m->Vp = nc_model_config_padded_vocab(cfg);
  m->L = cfg->n_layer;
  size_t total = (size_t)m->lay.total;
  if (posix_memalign((void **)&m->params, 64, total * sizeof(float)) != 0) m->params = NULL;
  if (posix_memalign((void **)&m->grads, 64, total * sizeof(float)) != 0) m->grads = NULL;
  m->plist = calloc((size_t)m->lay.n_tensors, sizeof(nc_param));
  m->names = malloc((size_t)m->lay.n_tensors * NC_TENSOR_NAME_MAX);
  if (!m->params || !m->grads || !m->plist || !m->names) {
    nc_model_free(m);
    return NC_ENOMEM;
  }
  memset(m->params, 0, total * sizeof(float));
  memset(m->grads, 0, total * sizeof(float));
  if (nc_model_rope_ensure(m, cfg->sequence_len) != NC_OK) {
    nc_model_free(m);
    return NC_ENOMEM;
  }
  /* named views in state-dict order */
  nc_layout_tensor *lt = malloc((size_t)m->lay.n_tensors * sizeof *lt);
  if (!lt) {
    nc_model_free(m);
    return NC_ENOMEM;
  }
  m->n_params = nc_model_layout_tensors(cfg, lt, m->lay.n_tensors);
  for (int i = 0; i < m->n_params; i++) {
    nc_param *p = &m->plist[i];
    char *name = m->names + (size_t)i * NC_TENSOR_NAME_MAX;
    memcpy(name, lt[i].name, NC_TENSOR_NAME_MAX);
    p->name = name;
    p->kind = lt[i].kind;
    p->ndim = lt[i].ndim;
    memset(p->shape, 0, sizeof p->shape);
    p->shape[0] = lt[i].shape[0];
    p->shape[1] = lt[i].shape[1];
    p->numel = lt[i].numel;
    p->data = m->params + lt[i].offset;
    p->grad = m->grads + lt[i].offset;
  }
  free(lt);
  *out = m;
  return NC_OK;
}

void nc_workspace_free(nc_workspace *ws) {
  free(ws->mem);
  free(ws->L);
  memset(ws, 0, sizeof *ws);
}

void nc_model_free(nc_model *m) {
  if (!m) return;
  nc_workspace_free(&m->ws);
  nc_workspace_free(&m->ws_inf);
  free(m->params);
  free(m->grads);
  free(m->plist);
  free(m->names);
  free(m->cos_t);
  free(m->sin_t);
  free(m);
}

const nc_model_config *nc_model_get_config(const nc_model *m) { return &m->cfg; }
const nc_model_layout *nc_model_get_layout(const nc_model *m) { return &m->lay; }

nc_param *nc_model_params(nc_model *m, int *n) {
  if (n) *n = m->n_params;
  return m->plist;
}

float *nc_model_param_buffer(nc_model *m, int64_t *n) {
  if (n) *n = m->lay.total;
  return m->params;
}

float *nc_model_grad_buffer(nc_model *m, int64_t *n) {
  if (n) *n = m->lay.total;
  return m->grads;
}

void nc_model_zero_grad(nc_model *m) { memset(m->grads, 0, sizeof(float) * (size_t)m->lay.total); }

/* ------------------------------------------------------------------ init */

/* Box-Muller: two uniforms -> two independent standard normals */
static void fill_normal(nc_rng *r, float *p, int64_t n, double std) {
  for (int64_t i = 0; i < n; i += 2) {
    double u1 = nc_rng_uniform(r), u2 = nc_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    double mag = std * sqrt(-2.0 * log(u1));
    p[i] = (float)(mag * cos(2.0 * M_PI * u2));
    if (i + 1 < n) p[i + 1] = (float)(mag * sin(2.0 * M_PI * u2));
  }
}

static void fill_uniform(nc_rng *r, float *p, int64_t n, double lo, double hi) {
  for (int64_t i = 0; i < n; i++) p[i] = (float)(lo + (hi - lo) * nc_rng_uniform(r));
}

void nc_model_init_weights(nc_model *m, uint64_t seed) {
  nc_rng r;
  nc_rng_seed(&r, seed);
  const nc_model_layout *ly = &m->lay;
  float *P = m->params;
  const int64_t C = m->C, KV = m->KV, Vp = m->Vp;
  const int L = m->L;
  fill_normal(&r, P + ly->wte, Vp * C, 0.8);
  fill_normal(&r, P + ly->lm_head, Vp * C, 0.001);
  const double s = sqrt(3.0) / sqrt((double)C);
  for (int i = 0; i < L; i++) {
    const nc_layer_layout *l = &ly->layer[i];
    fill_uniform(&r, P + l->c_q, C * C, -s, s);
    fill_uniform(&r, P + l->c_k, KV * C, -s, s);
    fill_uniform(&r, P + l->c_v, KV * C, -s, s);
    memset(P + l->c_proj, 0, sizeof(float) * (size_t)(C * C));
    fill_uniform(&r, P + l->c_fc, 4 * C * C, -0.4 * s, 0.4 * s);
    memset(P + l->mlp_c_proj, 0, sizeof(float) * (size_t)(4 * C * C));
  }
  for (int i = 0; i < L; i++) {
    double den = L - 1 > 1 ? (double)(L - 1) : 1.0;
    P[ly->resid_lambdas + i] = (float)(1.15 - 0.10 * i / den);
    P[ly->x0_lambdas + i] = (float)(0.20 - 0.15 * i / den);
  }
  for (int i = 0; i < L; i++)
    if (ly->layer[i].value_embed >= 0) fill_uniform(&r, P + ly->layer[i].value_embed, Vp * KV, -s, s);
  for (int i = 0; i < L; i++)
    if (ly->layer[i].ve_gate >= 0)
      fill_uniform(&r, P + ly->layer[i].ve_gate, (int64_t)m->Hkv * NC_CFG_VE_GATE_CHANNELS, 0.0, 0.02);
  P[ly->smear_lambda] = 0.0f;
  P[ly->backout_lambda] = 0.2f;
  fill_uniform(&r, P + ly->smear_gate, NC_CFG_SMEAR_CHANNELS, 0.0, 0.02);
}

/* ------------------------------------------------------------------ workspace */

typedef struct carver {
  float *base; /* NULL while counting */
  size_t used;
} carver;

static float *carve(carver *c, size_t n) {
  size_t at = c->used;
  c->used += (n + NC_ALIGN_FLOATS - 1) / NC_ALIGN_FLOATS * NC_ALIGN_FLOATS;
  return c->base ? c->base + at : NULL;
}

static void carve_all(nc_model *m, nc_workspace *ws, carver *cv, int64_t N, int B, int T,
                      int grad, int nth, int64_t keys) {
  const size_t NC_ = (size_t)N * m->C, NF = (size_t)N * m->F, NQ = (size_t)N * m->QKV;
  for (int s = 0; s < ws->nsets; s++) {
    nc_layer_acts *a = &ws->L[s];
    a->res = carve(cv, NC_);
    a->xn1 = carve(cv, NC_);
    a->rstd1 = carve(cv, (size_t)N);
    a->qkv = carve(cv, NQ);
    a->rq = carve(cv, (size_t)N * m->H);
    a->rk = carve(cv, (size_t)N * m->Hkv);
    a->gate = carve(cv, (size_t)N * m->Hkv);
    a->att = carve(cv, NC_);
    a->lse = carve(cv, (size_t)B * m->H * T);
    a->xn2 = carve(cv, NC_);
    a->rstd2 = carve(cv, (size_t)N);
    a->h = carve(cv, NF);
  }
  ws->res_final = grad ? carve(cv, NC_) : NULL;
  ws->xn0 = carve(cv, NC_);
  ws->rstd0 = carve(cv, (size_t)N);
  ws->sig = carve(cv, (size_t)N);
  ws->x0 = carve(cv, NC_);
  ws->xm = carve(cv, NC_);
  ws->act = carve(cv, NF);
  ws->xb = carve(cv, NC_);
  ws->xf = carve(cv, NC_);
  ws->rstdf = carve(cv, (size_t)N);
  ws->nll = carve(cv, (size_t)N);
  ws->omega = carve(cv, (size_t)N);
  if (grad) {
    ws->dres = carve(cv, NC_);
    ws->dx0 = carve(cv, NC_);
    ws->dxm = carve(cv, NC_);
    ws->dxn = carve(cv, NC_);
    ws->datt = carve(cv, NC_);
    ws->dxf = carve(cv, NC_);
    ws->dh = carve(cv, NF);
    ws->dqkv = carve(cv, NQ);
  } else {
    ws->dres = ws->dx0 = ws->dxm = ws->dxn = ws->datt = ws->dxf = ws->dh = ws->dqkv = NULL;
  }
  nc_attn probe;
  memset(&probe, 0, sizeof probe);
  probe.B = 1;
  probe.T = (int)keys;
  probe.window = (int)keys;
  ws->attn_floats = nc_attn_workspace_floats(&probe, nth);
  ws->attn_work = carve(cv, ws->attn_floats);
  ws->head_work = carve(cv, nc_head_workspace_floats(nc_head_block_rows(m->V), m->V, m->C, nth));
}

int nc_workspace_ensure(nc_model *m, nc_workspace *ws, int B, int T, int grad, int64_t keys) {
  const int64_t N = (int64_t)B * T;
  const int nsets = grad ? m->L : 1;
  const int nth = omp_get_max_threads();
  if (ws->mem && ws->cap_n >= N && ws->cap_bt_b * ws->cap_bt_t >= N && ws->cap_bt_t >= T &&
      ws->cap_bt_b >= B && ws->nsets >= nsets && ws->nthreads >= nth && ws->cap_keys >= keys &&
      (!grad || ws->dres)) {
    return NC_OK;
  }
  /* grow: keep the larger of the old and new sizes so alternating shapes do not thrash */
  int64_t capN = N > ws->cap_n ? N : ws->cap_n;
  int capB = B > ws->cap_bt_b ? B : ws->cap_bt_b, capT = T > ws->cap_bt_t ? T : ws->cap_bt_t;
  if ((int64_t)capB * capT > capN) capN = (int64_t)capB * capT;
  int ns = nsets > ws->nsets ? nsets : ws->nsets;
  int g = grad || (ws->mem && ws->dres);
  int nt = nth > ws->nthreads ? nth : ws->nthreads;
  int64_t kk = keys > ws->cap_keys ? keys : ws->cap_keys;
  nc_workspace nw;
  memset(&nw, 0, sizeof nw);
  nw.nsets = ns;
  nw.L = calloc((size_t)ns, sizeof(nc_layer_acts));
  if (!nw.L) return NC_ENOMEM;
  carver cv = {NULL, 0};
  carve_all(m, &nw, &cv, capN, capB, capT, g, nt, kk);
  if (posix_memalign((void **)&nw.mem, 64, cv.used * sizeof(float)) != 0) {
    free(nw.L);
    return NC_ENOMEM;
  }
  nw.mem_floats = cv.used;
  cv.base = nw.mem;
  cv.used = 0;
  carve_all(m, &nw, &cv, capN, capB, capT, g, nt, kk);
  nw.cap_n = capN;
  nw.cap_bt_b = capB;
  nw.cap_bt_t = capT;
  nw.nthreads = nt;
  nw.cap_keys = kk;
  nc_workspace_free(ws);
  *ws = nw;
  return NC_OK;
}

int nc_model_check_tokens(const nc_model *m, const int32_t *idx, const int32_t *targets,
                          int64_t n) {
  int bad = 0;
  const int V = m->V;
  for (int64_t i = 0; i < n; i++) {
    bad |= idx[i] < 0 || idx[i] >= V;
    if (targets) bad |= targets[i] < -1 || targets[i] >= V;
  }
  return bad ? NC_EINVAL : NC_OK;
}

/* ------------------------------------------------------------------ forward */

/* Keys an attention query block can see in a training/eval forward of length T. */
static int64_t train_keys(const nc_model *m, int T) {
  int64_t w = 0;
  for (int l = 0; l < m->L; l++)
    if (m->lay.layer[l].window > w) w = m->lay.layer[l].window;
  w += NC_ATTN_BLOCK;
  return w < T ? w : T;
}

void nc_model_trunk(nc_model *m, nc_workspace *ws, const int32_t *idx, int B, int T,
                    int grad, nc_kvcache *kc) {
  const int C = m->C, H = m->H, Hkv = m->Hkv, D = m->D, KV = m->KV, QKV = m->QKV, F = m->F;
  const int L = m->L;
  const int64_t N = (int64_t)B * T;
  const float eps = FLT_EPSILON, scale = 1.0f / sqrtf((float)D);
  const float *P = m->params;
  const nc_model_layout *ly = &m->lay;
  const float *lam_r = P + ly->resid_lambdas, *lam_0 = P + ly->x0_lambdas;

  /* 1. embedding + rmsnorm ; 2. smear */
  nc_embed_fwd(ws->xn0, P + ly->wte, idx, N, C);
  nc_rmsnorm_fwd(ws->xn0, ws->rstd0, ws->xn0, N, C, eps);
  const int32_t *pos0 = kc ? kc->seqlens : NULL;
  if (!kc) {
    nc_smear_fwd(ws->x0, ws->sig, ws->xn0, NULL, B, T, C, P + ly->smear_gate,
                 P[ly->smear_lambda]);
  } else {
    /* KV cache: a single decoded token mixes in the row's previous embedding; rows without
     * one (and chunks of T > 1 at their first position) are left unchanged, as in nanochat */
    nc_smear_fwd(ws->x0, ws->sig, ws->xn0, T == 1 ? kc->prev_emb : NULL, B, T, C,
                 P + ly->smear_gate, P[ly->smear_lambda]);
    for (int b = 0; b < B && T == 1; b++)
      if (!kc->has_prev[b]) memcpy(ws->x0 + (int64_t)b * C, ws->xn0 + (int64_t)b * C, sizeof(float) * (size_t)C);
    for (int b = 0; b < B; b++) {
      memcpy(kc->prev_emb + (int64_t)b * C, ws->xn0 + ((int64_t)b * T + T - 1) * C, sizeof(float) * (size_t)C);
      kc->has_prev[b] = 1;
    }
  }
  float *x0 = ws->x0;
  /* training: layer 0 reads x0 itself; no-grad: the residual lives in L[0].res, in place */
  if (!grad) memcpy(ws->L[0].res, x0, sizeof(float) * (size_t)N * C);
  /* 3. blocks */
  for (int l = 0; l < L; l++) {
    nc_layer_acts *a = &ws->L[grad ? l : 0];
    const nc_layer_layout *w = &ly->layer[l];
    float *out = grad ? (l + 1 < L ? ws->L[l + 1].res : ws->res_final) : a->res;
    const float lr = lam_r[l], l0 = lam_0[l];
    const float *rin = (grad && l == 0) ? x0 : a->res;
    float *xm = ws->xm;
#pragma omp parallel for simd schedule(static) if (N * C > NC_PAR_MIN)
    for (int64_t i = 0; i < N * C; i++) xm[i] = lr * rin[i] + l0 * x0[i];
    nc_rmsnorm_fwd(a->xn1, a->rstd1, xm, N, C, eps);
    nc_gemm(0, 1, (int)N, QKV, C, 1.0f, a->xn1, C, P + w->c_q, C, 0.0f, a->qkv, QKV);
    if (w->ve_gate >= 0)
      nc_ve_fwd(a->qkv + C + KV, QKV, a->gate, a->xn1, C, idx, P + w->value_embed,
                P + w->ve_gate, N, Hkv, D);
    nc_qk_fwd(a->qkv, QKV, a->rq, a->rk, N, T, pos0, H, Hkv, D, m->cos_t, m->sin_t, eps);
    nc_attn at = {B, T, H, Hkv, D, w->window, scale, NULL,
                  a->qkv, (int64_t)T * QKV, QKV,
                  a->qkv + C, a->qkv + C + KV, (int64_t)T * QKV, QKV,
                  a->att, (int64_t)T * C, C, grad ? a->lse : NULL};
    if (kc) {
      /* append this chunk's keys/values, then attend over the cache */
      const int64_t row = (int64_t)kc->t_max * KV, lay_off = (int64_t)l * kc->B * row;
      float *kl = kc->k + lay_off, *vl = kc->v + lay_off;
      for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
          const float *src = a->qkv + ((int64_t)b * T + t) * QKV;
          int64_t dst = b * row + ((int64_t)pos0[b] + t) * KV;
          memcpy(kl + dst, src + C, sizeof(float) * (size_t)KV);
          memcpy(vl + dst, src + C + KV, sizeof(float) * (size_t)KV);
        }
      at.pos0 = pos0;
      at.k = kl;
      at.v = vl;
      at.kv_bs = row;
      at.kv_ts = KV;
    }
    nc_attn_fwd(&at, ws->attn_work);
    /* xm <- xm + att @ Wproj^T  (post-attention residual) */
    nc_gemm(0, 1, (int)N, C, C, 1.0f, a->att, C, P + w->c_proj, C, 1.0f, xm, C);
    nc_rmsnorm_fwd(a->xn2, a->rstd2, xm, N, C, eps);
    nc_gemm(0, 1, (int)N, F, C, 1.0f, a->xn2, C, P + w->c_fc, C, 0.0f, a->h, F);
    nc_relu2_fwd(ws->act, a->h, N * F);
    if (out != xm) memcpy(out, xm, sizeof(float) * (size_t)N * C);
    nc_gemm(0, 1, (int)N, C, F, 1.0f, ws->act, F, P + w->mlp_c_proj, F, 1.0f, out, C);
    if (!grad && l == L / 2) memcpy(ws->xb, out, sizeof(float) * (size_t)N * C);
  }
  /* 4. backout + final norm */
  const float *xl = grad ? ws->res_final : ws->L[0].res;
  const float *xb = grad ? (L / 2 + 1 < L ? ws->L[L / 2 + 1].res : ws->res_final) : ws->xb;
  const float lb = P[ly->backout_lambda];
  float *xf = ws->xf;
#pragma omp parallel for simd schedule(static) if (N * C > NC_PAR_MIN)
  for (int64_t i = 0; i < N * C; i++) xf[i] = xl[i] - lb * xb[i];
  nc_rmsnorm_fwd(xf, ws->rstdf, xf, N, C, eps);
}

/* omega = dLoss/dnll per row; returns the number of valid targets */
static int64_t fill_omega(float *omega, const int32_t *targets, const float *weights, int64_t N,
                          float scale) {
  int64_t nvalid = 0;
  for (int64_t i = 0; i < N; i++) nvalid += targets && targets[i] >= 0;
  for (int64_t i = 0; i < N; i++) {
    if (!targets || targets[i] < 0) {
      omega[i] = 0;
      continue;
    }
    omega[i] = weights ? scale * weights[i] : scale / (float)nvalid;
  }
  return nvalid;
}

static float reduce_loss(const float *nll, const int32_t *targets, const float *weights,
                         int64_t N, int64_t nvalid) {
  double s = 0;
  for (int64_t i = 0; i < N; i++) {
    if (!targets || targets[i] < 0) continue;
    s += weights ? (double)weights[i] * nll[i] : nll[i];
  }
  if (!weights) s = nvalid > 0 ? s / (double)nvalid : 0.0;
  return (float)s;
}

static int check_call(const nc_model *m, const int32_t *idx, const int32_t *targets, int B,
                      int T) {
  if (!idx || B < 1 || T < 1) return NC_EINVAL;
  if ((int64_t)T > 10LL * m->cfg.sequence_len) return NC_EINVAL;
  if ((int64_t)B * T > NC_MODEL_MAX_TOKENS) return NC_EINVAL;
  return nc_model_check_tokens(m, idx, targets, (int64_t)B * T);
}

int nc_model_forward(nc_model *m, const int32_t *idx, const int32_t *targets, int B, int T,
                     float *loss, float *losses, float *logits) {
  if (!m) return NC_EINVAL;
  int rc = check_call(m, idx, targets, B, T);
  if (rc) return rc;
  if ((rc = nc_model_rope_ensure(m, T))) return rc;
  if ((rc = nc_workspace_ensure(m, &m->ws, B, T, 0, train_keys(m, T)))) return rc;
  nc_blas_single_thread();
  nc_workspace *ws = &m->ws;
  const int64_t N = (int64_t)B * T;
  /* a no-grad call may use a training workspace: use layer set 0 in place */
  nc_model_trunk(m, ws, idx, B, T, 0, NULL);
  int64_t nvalid = fill_omega(ws->omega, targets, NULL, N, 1.0f);
  nc_head(ws->xf, m->params + m->lay.lm_head, N, m->C, m->V, targets, ws->omega, ws->nll,
          logits, NULL, NULL, ws->head_work);
  if (losses) memcpy(losses, ws->nll, sizeof(float) * (size_t)N);
  if (loss) *loss = reduce_loss(ws->nll, targets, NULL, N, nvalid);
  return NC_OK;
}

/* ------------------------------------------------------------------ backward */

int nc_model_forward_backward(nc_model *m, const int32_t *idx, const int32_t *targets,
                              const float *weights, int B, int T, float grad_scale,
                              float *loss) {
  if (!m || !targets) return NC_EINVAL;
  int rc = check_call(m, idx, targets, B, T);
  if (rc) return rc;
  if ((rc = nc_model_rope_ensure(m, T))) return rc;
  if ((rc = nc_workspace_ensure(m, &m->ws, B, T, 1, train_keys(m, T)))) return rc;
  nc_blas_single_thread();
  nc_workspace *ws = &m->ws;
  const int C = m->C, H = m->H, Hkv = m->Hkv, D = m->D, KV = m->KV, QKV = m->QKV, F = m->F;
  const int L = m->L;
  const int64_t N = (int64_t)B * T;
  const float scale = 1.0f / sqrtf((float)D);
  const float *P = m->params;
  float *G = m->grads;
  const nc_model_layout *ly = &m->lay;

  nc_model_trunk(m, ws, idx, B, T, 1, NULL);
  int64_t nvalid = fill_omega(ws->omega, targets, weights, N, grad_scale);
  /* 5-6. head + loss, fused with its backward: dxf (=) and d lm_head (+=) */
  nc_head(ws->xf, P + ly->lm_head, N, C, m->V, targets, ws->omega, ws->nll, NULL, ws->dxf,
          G + ly->lm_head, ws->head_work);
  if (loss) *loss = reduce_loss(ws->nll, targets, weights, N, nvalid);
  if (nvalid == 0) return NC_OK; /* nothing to learn from */

  /* final rmsnorm backward, in place: dxf becomes d(res_L - lam_b * xb) */
  nc_rmsnorm_bwd(ws->dxf, ws->dxf, ws->xf, ws->rstdf, N, C, 0);
  const float *dxfp = ws->dxf;
  const int bl = L / 2;
  const float *xb = bl + 1 < L ? ws->L[bl + 1].res : ws->res_final;
  const float lam_b = P[ly->backout_lambda];
  {
    double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (N * C > NC_PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
      float t = 0;
#pragma omp simd reduction(+ : t)
      for (int c = 0; c < C; c++) t += dxfp[n * C + c] * xb[n * C + c];
      s += t;
    }
    G[ly->backout_lambda] -= (float)s;
  }
  float *dres = ws->dres, *dx0 = ws->dx0, *dxm = ws->dxm, *dxn = ws->dxn;
  memcpy(dres, dxfp, sizeof(float) * (size_t)N * C);
  memset(dx0, 0, sizeof(float) * (size_t)N * C);
  const float *x0 = ws->x0;
  for (int l = L - 1; l >= 0; l--) {
    nc_layer_acts *a = &ws->L[l];
    const nc_layer_layout *w = &ly->layer[l];
    if (l == bl) {
#pragma omp parallel for simd schedule(static) if (N * C > NC_PAR_MIN)
      for (int64_t i = 0; i < N * C; i++) dres[i] -= lam_b * dxfp[i];
    }
    /* MLP: out = xmid + relu(xn2 Wfc^T)^2 Wp^T */
    nc_relu2_fwd(ws->act, a->h, N * F);
    nc_gemm(1, 0, C, F, (int)N, 1.0f, dres, C, ws->act, F, 1.0f, G + w->mlp_c_proj, F);
    nc_gemm(0, 0, (int)N, F, C, 1.0f, dres, C, P + w->mlp_c_proj, F, 0.0f, ws->dh, F);
    nc_relu2_bwd(ws->dh, ws->dh, a->h, N * F);
    nc_gemm(1, 0, F, C, (int)N, 1.0f, ws->dh, F, a->xn2, C, 1.0f, G + w->c_fc, C);
    nc_gemm(0, 0, (int)N, C, F, 1.0f, ws->dh, F, P + w->c_fc, C, 0.0f, dxn, C);
    memcpy(dxm, dres, sizeof(float) * (size_t)N * C);
    nc_rmsnorm_bwd(dxm, dxn, a->xn2, a->rstd2, N, C, 1); /* dxm = d xmid */
    /* attention: xmid = xm + att Wproj^T */
    nc_gemm(1, 0, C, C, (int)N, 1.0f, dxm, C, a->att, C, 1.0f, G + w->c_proj, C);
    nc_gemm(0, 0, (int)N, C, C, 1.0f, dxm, C, P + w->c_proj, C, 0.0f, ws->datt, C);
    nc_attn at = {B, T, H, Hkv, D, w->window, scale, NULL,
                  a->qkv, (int64_t)T * QKV, QKV,
                  a->qkv + C, a->qkv + C + KV, (int64_t)T * QKV, QKV,
                  a->att, (int64_t)T * C, C, a->lse};
    nc_attn_bwd(&at, ws->datt, ws->dqkv, ws->dqkv + C, ws->dqkv + C + KV, ws->attn_work);
    nc_qk_bwd(ws->dqkv, QKV, a->qkv, a->rq, a->rk, N, T, NULL, H, Hkv, D, m->cos_t, m->sin_t);
    nc_gemm(1, 0, QKV, C, (int)N, 1.0f, ws->dqkv, QKV, a->xn1, C, 1.0f, G + w->c_q, C);
    nc_gemm(0, 0, (int)N, C, QKV, 1.0f, ws->dqkv, QKV, P + w->c_q, C, 0.0f, dxn, C);
    if (w->ve_gate >= 0)
      nc_ve_bwd(ws->dqkv + C + KV, QKV, a->gate, a->xn1, C, idx, P + w->value_embed,
                P + w->ve_gate, dxn, G + w->ve_gate, G + w->value_embed, N, Hkv, D);
    nc_rmsnorm_bwd(dxm, dxn, a->xn1, a->rstd1, N, C, 1); /* dxm = d xm */
    /* xm = lam_r res + lam_0 x0 */
    const float lr = P[ly->resid_lambdas + l], l0 = P[ly->x0_lambdas + l];
    const float *rin = l == 0 ? x0 : a->res;
    double sr = 0, s0 = 0;
#pragma omp parallel for reduction(+ : sr, s0) schedule(static) if (N * C > NC_PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
      float tr = 0, t0 = 0;
      const int64_t o = n * C;
#pragma omp simd reduction(+ : tr, t0)
      for (int c = 0; c < C; c++) {
        float g = dxm[o + c];
        tr += g * rin[o + c];
        t0 += g * x0[o + c];
        dx0[o + c] += l0 * g;
        dres[o + c] = lr * g;
      }
      sr += tr;
      s0 += t0;
    }
    G[ly->resid_lambdas + l] += (float)sr;
    G[ly->x0_lambdas + l] += (float)s0;
  }
#pragma omp parallel for simd schedule(static) if (N * C > NC_PAR_MIN)
  for (int64_t i = 0; i < N * C; i++) dx0[i] += dres[i]; /* res[0] = x0 */
  /* smear, embedding rmsnorm, embedding */
  nc_smear_bwd(dxn, dx0, ws->xn0, ws->sig, B, T, C, P + ly->smear_gate, P[ly->smear_lambda],
               G + ly->smear_gate, G + ly->smear_lambda);
  nc_rmsnorm_bwd(dxm, dxn, ws->xn0, ws->rstd0, N, C, 0);
  nc_embed_bwd(G + ly->wte, dxm, idx, N, C);
  return NC_OK;
}
