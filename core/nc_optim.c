/* nc_optim.c — MuonAdamW / AdamW: parameter groups, the AdamW and Muon steps, gradient
 * clipping. See nc_optim.h; state views and JSON are in nc_optim_state.c. */
#include "nc_optim.h"
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nc_err.h"
#include "nc_kernels.h"
#include "nc_optim_internal.h"


nc_optim_cfg nc_optim_cfg_muonadamw(int model_dim) {
  nc_optim_cfg c;
  memset(&c, 0, sizeof c);
  c.type = NC_OPTIM_MUONADAMW;
  c.unembedding_lr = 0.004;
  c.embedding_lr = 0.2;
  c.matrix_lr = 0.02;
  c.scalar_lr = 0.5;
  c.weight_decay = 0.0;
  c.model_dim = model_dim;
  return c;
}

nc_optim_cfg nc_optim_cfg_adamw(double lr, double weight_decay) {
  nc_optim_cfg c;
  memset(&c, 0, sizeof c);
  c.type = NC_OPTIM_ADAMW;
  c.lr = lr;
  c.beta1 = 0.9;
  c.beta2 = 0.999;
  c.eps = 1e-8;
  c.adamw_weight_decay = weight_decay;
  return c;
}

/* ------------------------------------------------------------------ groups */

static int finite_nonneg(double x) { return isfinite(x) && x >= 0; }

static int check_group(const nc_optim_group *g, char *msg, size_t len) {
  if (!finite_nonneg(g->lr) || !finite_nonneg(g->initial_lr) || !finite_nonneg(g->weight_decay))
    return nc_optim_fail(msg, len, "group %s: lr and weight_decay must be finite and >= 0", g->label);
  if (!(g->beta2 >= 0 && g->beta2 < 1))
    return nc_optim_fail(msg, len, "group %s: beta2 must be in [0, 1)", g->label);
  if (g->kind == NC_GROUP_ADAMW) {
    if (!(g->beta1 >= 0 && g->beta1 < 1) || !finite_nonneg(g->eps))
      return nc_optim_fail(msg, len, "group %s: beta1 must be in [0, 1) and eps >= 0", g->label);
  } else {
    if (!(g->momentum >= 0 && g->momentum < 1) || g->ns_steps < 1 || g->ns_steps > 5)
      return nc_optim_fail(msg, len, "group %s: momentum must be in [0, 1), ns_steps in 1..5", g->label);
  }
  return NC_OK;
}

static nc_optim_group adamw_group(const char *label, double lr, double b1, double b2, double eps,
                                  double wd) {
  nc_optim_group g;
  memset(&g, 0, sizeof g);
  g.kind = NC_GROUP_ADAMW;
  snprintf(g.label, sizeof g.label, "%s", label);
  g.initial_lr = g.lr = lr;
  g.beta1 = b1;
  g.beta2 = b2;
  g.eps = eps;
  g.weight_decay = wd;
  return g;
}

static int cmp_shape(const void *a, const void *b) {
  const int64_t *x = a, *y = b;
  if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
  return (x[1] > y[1]) - (x[1] < y[1]);
}

/* Fills o->groups / o->group_params for the configured type. */
static int build_groups(nc_optim *o, const nc_optim_cfg *c, char *msg, size_t len) {
  const int n = o->n_params;
  nc_optim_group *G = calloc((size_t)n + 8, sizeof *G);
  int *idx = malloc(sizeof(int) * (size_t)n);
  int64_t (*shapes)[2] = malloc(sizeof *shapes * (size_t)n);
  if (!G || !idx || !shapes) {
    free(G); free(idx); free(shapes);
    return NC_ENOMEM;
  }
  o->groups = G;
  o->group_params = idx;
  int ng = 0, used = 0;
  if (c->type == NC_OPTIM_ADAMW) {
    G[ng] = adamw_group("all", c->lr, c->beta1, c->beta2, c->eps, c->adamw_weight_decay);
    G[ng].params = idx;
    for (int i = 0; i < n; i++) idx[used++] = i;
    G[ng++].n_params = n;
  } else {
    const double dms = nc_dmodel_lr_scale(c->model_dim);
    struct { nc_param_kind kind; nc_optim_group g; } ad[] = {
        {NC_PK_LM_HEAD, adamw_group("lm_head", c->unembedding_lr * dms, 0.8, 0.96, 1e-10, 0.01)},
        {NC_PK_WTE, adamw_group("wte", c->embedding_lr * dms, 0.8, 0.995, 1e-10, 0.001)},
        {NC_PK_VALUE_EMBED, adamw_group("value_embeds", c->embedding_lr * dms * 0.5, 0.8, 0.995, 1e-10, 0.01)},
        {NC_PK_RESID_LAMBDAS, adamw_group("resid_lambdas", c->scalar_lr * 0.01, 0.8, 0.95, 1e-10, 0.05)},
        {NC_PK_X0_LAMBDAS, adamw_group("x0_lambdas", c->scalar_lr, 0.96, 0.95, 1e-10, 0.0)},
        {NC_PK_GATE_SCALAR, adamw_group("scalars", 0.2, 0.8, 0.95, 1e-10, 0.0)},
    };
    for (size_t a = 0; a < sizeof ad / sizeof ad[0]; a++) {
      int start = used;
      for (int i = 0; i < n; i++)
        if (o->params[i].kind == ad[a].kind) idx[used++] = i;
      if (used == start) continue;
      G[ng] = ad[a].g;
      G[ng].params = idx + start;
      G[ng++].n_params = used - start;
    }
    int nshapes = 0;
    for (int i = 0; i < n; i++) {
      const nc_param *p = &o->params[i];
      if (p->kind != NC_PK_MATRIX) continue;
      int seen = 0;
      for (int s = 0; s < nshapes && !seen; s++)
        seen = shapes[s][0] == p->shape[0] && shapes[s][1] == p->shape[1];
      if (!seen) {
        shapes[nshapes][0] = p->shape[0];
        shapes[nshapes++][1] = p->shape[1];
      }
    }
    qsort(shapes, (size_t)nshapes, sizeof *shapes, cmp_shape);
    for (int s = 0; s < nshapes; s++) {
      nc_optim_group *g = &G[ng];
      memset(g, 0, sizeof *g);
      g->kind = NC_GROUP_MUON;
      snprintf(g->label, sizeof g->label, "muon %lldx%lld", (long long)shapes[s][0],
               (long long)shapes[s][1]);
      g->initial_lr = g->lr = c->matrix_lr;
      g->momentum = 0.95;
      g->ns_steps = 5;
      g->beta2 = 0.9;
      g->weight_decay = c->weight_decay;
      g->rows = shapes[s][0];
      g->cols = shapes[s][1];
      int start = used;
      for (int i = 0; i < n; i++) {
        const nc_param *p = &o->params[i];
        if (p->kind == NC_PK_MATRIX && p->shape[0] == g->rows && p->shape[1] == g->cols)
          idx[used++] = i;
      }
      g->params = idx + start;
      g->n_params = used - start;
      ng++;
    }
  }
  free(shapes);
  o->n_groups = ng;
  if (used != n) return nc_optim_fail(msg, len, "%d parameters have a kind no group takes", n - used);
  for (int g = 0; g < ng; g++) {
    int rc = check_group(&G[g], msg, len);
    if (rc) return rc;
  }
  return NC_OK;
}

/* ------------------------------------------------------------------ create / free */

static int check_params(const nc_param *ps, int n, nc_optim_type type, char *msg, size_t len) {
  for (int i = 0; i < n; i++) {
    const nc_param *p = &ps[i];
    if (!p->name || !p->data || !p->grad || p->numel < 1 || p->ndim < 1 || p->ndim > NC_MAX_DIMS ||
        !*p->name || strlen(p->name) > 256)
      return nc_optim_fail(msg, len, "param %d: needs a name (1..256 bytes), data, grad and numel >= 1", i);
    int64_t numel = 1;
    for (int d = 0; d < p->ndim; d++) {
      if (p->shape[d] < 1 || p->shape[d] > (1LL << 31)) return nc_optim_fail(msg, len, "param %s: bad shape", p->name);
      numel *= p->shape[d];
      if (numel > (1LL << 40)) return nc_optim_fail(msg, len, "param %s: too large", p->name);
    }
    if (numel != p->numel) return nc_optim_fail(msg, len, "param %s: numel differs from its shape", p->name);
    if (type == NC_OPTIM_MUONADAMW && p->kind == NC_PK_MATRIX && (p->ndim != 2 || numel > (1LL << 31)))
      return nc_optim_fail(msg, len, "param %s: Muon needs a 2-D matrix of at most 2^31 elements", p->name);
    if ((unsigned)p->kind > NC_PK_GATE_SCALAR) return nc_optim_fail(msg, len, "param %s: unknown kind", p->name);
  }
  return NC_OK;
}

static int cmp_item(const void *a, const void *b) {
  const nc_muon_item *x = a, *y = b;
  if (x->cost != y->cost) return x->cost > y->cost ? -1 : 1;
  if (x->group != y->group) return x->group - y->group;
  return x->k - y->k;
}

int nc_optim_create(nc_param *params, int n, const nc_optim_cfg *cfg, nc_optim **out,
                    char *msg, size_t msglen) {
  if (!out) return NC_EINVAL;
  *out = NULL;
  if (!params || n < 1 || !cfg) return nc_optim_fail(msg, msglen, "no parameters or no configuration");
  if (cfg->type != NC_OPTIM_MUONADAMW && cfg->type != NC_OPTIM_ADAMW)
    return nc_optim_fail(msg, msglen, "unknown optimizer type %d", (int)cfg->type);
  if (cfg->type == NC_OPTIM_MUONADAMW && (cfg->model_dim < 1 || cfg->model_dim > (1 << 20)))
    return nc_optim_fail(msg, msglen, "model_dim must be in 1..2^20");
  if (!finite_nonneg(cfg->grad_clip)) return nc_optim_fail(msg, msglen, "grad_clip must be finite and >= 0");
  int rc = check_params(params, n, cfg->type, msg, msglen);
  if (rc) return rc;
  nc_optim *o = calloc(1, sizeof *o);
  if (!o) return NC_ENOMEM;
  o->type = cfg->type;
  o->params = params;
  o->n_params = n;
  o->grad_clip = cfg->grad_clip;
  o->reference = cfg->reference != 0;
  if ((rc = build_groups(o, cfg, msg, msglen))) goto fail_out;
  o->state_off = calloc((size_t)o->n_groups, sizeof(int64_t));
  if (!o->state_off) { rc = NC_ENOMEM; goto fail_out; }
  size_t total = 0, work = 0;
  int n_items = 0;
  for (int g = 0; g < o->n_groups; g++) {
    const nc_optim_group *G = &o->groups[g];
    o->state_off[g] = (int64_t)total;
    if (G->kind == NC_GROUP_ADAMW) {
      for (int k = 0; k < G->n_params; k++) total += 2 * (size_t)params[G->params[k]].numel;
    } else {
      size_t rc2 = (size_t)(G->rows * G->cols);
      total += (size_t)G->n_params * (rc2 + (size_t)nc_muon_red_len(G));
      size_t w = rc2 + nc_polar_express_work_floats((int)G->rows, (int)G->cols) +
                 3 * (size_t)(G->rows > G->cols ? G->rows : G->cols); /* + vm, scale */
      if (w > work) work = w;
      n_items += G->n_params;
    }
  }
  o->state_floats = total;
  o->work_per_thread = (work + 15) & ~(size_t)15;
  if (posix_memalign((void **)&o->state, 64, (total ? total : 1) * sizeof(float)) != 0) {
    o->state = NULL;
    rc = NC_ENOMEM;
    goto fail_out;
  }
  memset(o->state, 0, total * sizeof(float));
  o->items = calloc((size_t)(n_items ? n_items : 1), sizeof *o->items);
  if (!o->items) { rc = NC_ENOMEM; goto fail_out; }
  for (int g = 0; g < o->n_groups; g++) {
    const nc_optim_group *G = &o->groups[g];
    if (G->kind != NC_GROUP_MUON) continue;
    double s = (double)(G->rows < G->cols ? G->rows : G->cols);
    for (int k = 0; k < G->n_params; k++)
      o->items[o->n_items++] = (nc_muon_item){g, k, (double)G->rows * (double)G->cols * s};
  }
  qsort(o->items, (size_t)o->n_items, sizeof *o->items, cmp_item);
  if ((rc = nc_optim_build_views(o))) goto fail_out;
  *out = o;
  return NC_OK;
fail_out:
  nc_optim_free(o);
  return rc;
}

void nc_optim_free(nc_optim *o) {
  if (!o) return;
  free(o->groups);
  free(o->group_params);
  free(o->state_off);
  free(o->state);
  free(o->views);
  free(o->view_names);
  free(o->items);
  free(o->work);
  free(o);
}

nc_optim_type nc_optim_get_type(const nc_optim *o) { return o->type; }
int nc_optim_n_groups(const nc_optim *o) { return o ? o->n_groups : 0; }
nc_optim_group *nc_optim_group_at(nc_optim *o, int i) {
  return (o && i >= 0 && i < o->n_groups) ? &o->groups[i] : NULL;
}
int64_t nc_optim_step_count(const nc_optim *o) { return o->step; }

void nc_optim_set_schedule(nc_optim *o, double lrm, double momentum, double wd) {
  for (int g = 0; g < o->n_groups; g++) {
    nc_optim_group *G = &o->groups[g];
    G->lr = G->initial_lr * lrm;
    if (G->kind == NC_GROUP_MUON) {
      G->momentum = momentum;
      G->weight_decay = wd;
    }
  }
}

/* ------------------------------------------------------------------ steps */

/* torch.lerp: start + w (end - start) for |w| < 0.5, else end - (end - start)(1 - w). */
static inline float lerpf(float a, float b, float w) {
  return fabsf(w) < 0.5f ? a + w * (b - a) : b - (b - a) * (1.0f - w);
}

static void adamw_update(float *restrict p, const float *restrict g, float *restrict m,
                         float *restrict v, int64_t n, const nc_optim_group *G, int64_t t) {
  const float decay = (float)(1.0 - G->lr * G->weight_decay);
  const float w1 = (float)(1.0 - G->beta1), w2 = (float)(1.0 - G->beta2);
  const float bias2 = (float)(1.0 - pow(G->beta2, (double)t));
  const float step_size = (float)(G->lr / (1.0 - pow(G->beta1, (double)t)));
  const float eps = (float)G->eps;
#pragma omp parallel for simd schedule(static) if (n >= NC_PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    float pi = p[i] * decay, gi = g[i];
    float mi = lerpf(m[i], gi, w1), vi = lerpf(v[i], gi * gi, w2);
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step_size * (mi / (sqrtf(vi / bias2) + eps));
  }
}

/* One matrix of a Muon group: Nesterov momentum, Polar Express, NorMuon, cautious update. */
static int muon_matrix(const nc_optim_group *G, float *p, const float *grad, float *mbuf,
                       float *vbuf, float *work, int reference) {
  const int r = (int)G->rows, c = (int)G->cols;
  const int64_t n = (int64_t)r * c;
  const int per_row = r >= c; /* NorMuon reduces over the last dim, else over the rows */
  const int red = per_row ? c : r, len = per_row ? r : c;
  double *vm = (double *)work;                 /* [len] (work is 64-byte aligned) */
  float *X = work + 2 * (size_t)(r > c ? r : c);
  float *pe = X + n, *scale = pe + nc_polar_express_work_floats(r, c);
  const float mu = (float)G->momentum, w = (float)(1.0 - G->momentum);
  for (int64_t i = 0; i < n; i++) {
    mbuf[i] = lerpf(mbuf[i], grad[i], w);
    X[i] = lerpf(grad[i], mbuf[i], mu);
  }
  int rc = reference ? nc_polar_express_ref(X, r, c, G->ns_steps)
                     : nc_polar_express(X, r, c, G->ns_steps, pe);
  if (rc) return rc;
  for (int j = 0; j < len; j++) vm[j] = 0;
  for (int i = 0; i < r; i++)
    for (int j = 0; j < c; j++) {
      double x = X[(int64_t)i * c + j];
      vm[per_row ? i : j] += x * x;
    }
  double vsum = 0, ssum = 0;
  const float wb = (float)(1.0 - G->beta2);
  for (int j = 0; j < len; j++) {
    const float v = (float)(vm[j] / red); /* v_mean, fp32 like the buffer */
    vsum += v;
    vbuf[j] = lerpf(vbuf[j], v, wb);
    const float st = 1.0f / sqrtf(vbuf[j] > 1e-10f ? vbuf[j] : 1e-10f);
    scale[j] = st;
    ssum += (double)v * red * st * st;
  }
  const float v_norm = (float)sqrt(vsum * red), v_norm_new = (float)sqrt(ssum);
  const float ratio = v_norm / (v_norm_new > 1e-10f ? v_norm_new : 1e-10f);
  for (int j = 0; j < len; j++) scale[j] *= ratio;
  /* cautious weight decay + update */
  const double lr_eff = G->lr * sqrt(r > c ? (double)r / c : 1.0);
  const float lr = (float)lr_eff, lrwd = (float)(lr_eff * G->weight_decay);
  for (int i = 0; i < r; i++)
    for (int j = 0; j < c; j++) {
      int64_t q = (int64_t)i * c + j;
      float gq = X[q] * scale[per_row ? i : j], pq = p[q];
      float mask = gq * pq >= 0 ? 1.0f : 0.0f;
      p[q] = pq - (lr * gq + lrwd * pq * mask);
    }
  return NC_OK;
}

static int ensure_work(nc_optim *o, int threads) {
  if (o->n_items == 0 || threads <= o->work_threads) return NC_OK;
  float *w = NULL;
  if (posix_memalign((void **)&w, 64, o->work_per_thread * (size_t)threads * sizeof(float)) != 0)
    return NC_ENOMEM;
  free(o->work);
  o->work = w;
  o->work_threads = threads;
  return NC_OK;
}

static int muon_threads(const nc_optim *o) {
  int threads = omp_get_max_threads();
  if (threads > o->n_items) threads = o->n_items > 0 ? o->n_items : 1;
  return threads;
}

static int muon_all(nc_optim *o, int threads) {
  int bad = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1) reduction(| : bad)
  for (int it = 0; it < o->n_items; it++) {
    const nc_muon_item *item = &o->items[it];
    const nc_optim_group *G = &o->groups[item->group];
    const nc_param *P = &o->params[G->params[item->k]];
    const int64_t rcn = G->rows * G->cols, red = nc_muon_red_len(G);
    float *mbuf = o->state + o->state_off[item->group] + (int64_t)item->k * rcn;
    float *vbuf = o->state + o->state_off[item->group] + (int64_t)G->n_params * rcn +
                  (int64_t)item->k * red;
    float *work = o->work + o->work_per_thread * (size_t)omp_get_thread_num();
    if (muon_matrix(G, P->data, P->grad, mbuf, vbuf, work, o->reference)) bad |= 1;
  }
  return bad ? NC_ENOMEM : NC_OK;
}

double nc_grad_global_norm(const nc_param *ps, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) {
    const float *g = ps[i].grad;
    const int64_t m = ps[i].numel;
    double t = 0;
#pragma omp parallel for simd reduction(+ : t) schedule(static) if (m >= NC_PAR_MIN)
    for (int64_t j = 0; j < m; j++) t += (double)g[j] * g[j];
    s += t;
  }
  return sqrt(s);
}

int nc_optim_step(nc_optim *o, double *grad_norm) {
  if (!o) return NC_EINVAL;
  if (grad_norm) *grad_norm = -1;
  for (int g = 0; g < o->n_groups; g++)
    if (check_group(&o->groups[g], NULL, 0)) return NC_EINVAL;
  nc_blas_single_thread();
  const int threads = muon_threads(o);
  if (ensure_work(o, threads)) return NC_ENOMEM;
  if (o->grad_clip > 0) {
    double norm = nc_grad_global_norm(o->params, o->n_params);
    if (grad_norm) *grad_norm = norm;
    if (!isfinite(norm)) return NC_ERANGE;
    const double coef = o->grad_clip / (norm + 1e-6); /* clip_grad_norm_ */
    if (coef < 1.0) {
      const float s = (float)coef;
      for (int i = 0; i < o->n_params; i++) {
        float *g = o->params[i].grad;
        const int64_t m = o->params[i].numel;
#pragma omp parallel for simd schedule(static) if (m >= NC_PAR_MIN)
        for (int64_t j = 0; j < m; j++) g[j] *= s;
      }
    }
  }
  o->step++;
  for (int g = 0; g < o->n_groups; g++) {
    const nc_optim_group *G = &o->groups[g];
    if (G->kind != NC_GROUP_ADAMW) continue;
    float *st = o->state + o->state_off[g];
    for (int k = 0; k < G->n_params; k++) {
      const nc_param *P = &o->params[G->params[k]];
      adamw_update(P->data, P->grad, st, st + P->numel, P->numel, G, o->step);
      st += 2 * P->numel;
    }
  }
  return muon_all(o, threads);
}
