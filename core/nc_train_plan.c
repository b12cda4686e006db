/* nc_train_plan.c — base_train's option resolution: depth rule, horizon, automatic batch
 * size, LR / weight-decay scaling, gradient accumulation (see nc_train.h). */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "nc_err.h"
#include "nc_train.h"

nc_base_opts nc_base_opts_default(void) {
  nc_base_opts o;
  memset(&o, 0, sizeof o);
  o.depth = 20;
  o.aspect_ratio = 64;
  o.head_dim = 128;
  o.max_seq_len = 2048;
  snprintf(o.window_pattern, sizeof o.window_pattern, "SSSL");
  o.num_iterations = -1;
  o.target_flops = -1;
  o.target_param_data_ratio = 12;
  o.device_batch_size = 32;
  o.total_batch_size = -1;
  o.embedding_lr = 0.3;
  o.unembedding_lr = 0.008;
  o.weight_decay = 0.28;
  o.matrix_lr = 0.02;
  o.scalar_lr = 0.5;
  o.warmup_steps = 40;
  o.warmdown_ratio = 0.65;
  o.final_lr_frac = 0.05;
  o.eval_every = 250;
  o.eval_tokens = 80LL * 524288;
  o.save_every = -1;
  o.optimizer = NC_TRAIN_OPT_MUON;
  o.seed = 42;
  return o;
}

#define fail(msg, len, ...) nc_errf(NC_EINVAL, (msg), (len), __VA_ARGS__)

/* Python's round(): half to even. */
static double py_round(double x) { return nearbyint(x); }

static int finite_nonneg(double x) { return isfinite(x) && x >= 0; }

/* The model config of `depth` with o's shape options; the reason (naming the request field)
 * on failure. */
static int shape(const nc_base_opts *o, int depth, int vocab, nc_model_config *c, char *msg, size_t len) {
  if (o->head_dim < 2 || o->head_dim % 2)
    return fail(msg, len, "head_dim: must be an even number >= 2 (got %d)", o->head_dim);
  if (o->aspect_ratio < 1) return fail(msg, len, "aspect_ratio: must be >= 1");
  if (o->max_seq_len < 2 || o->max_seq_len > NC_CFG_MAX_SEQ_LEN)
    return fail(msg, len, "max_seq_len: must be 2..%d", NC_CFG_MAX_SEQ_LEN);
  char why[200];
  if (nc_model_config_from_depth(depth, o->aspect_ratio, o->head_dim, o->max_seq_len, vocab, c, why,
                                 sizeof why) != NC_OK)
    return fail(msg, len, "depth: depth %d x aspect_ratio %d with head_dim %d gives an invalid model: %s",
                depth, o->aspect_ratio, o->head_dim, why);
  size_t wl = strnlen(o->window_pattern, sizeof o->window_pattern);
  if (wl == 0 || wl > NC_WINDOW_PATTERN_MAX) return fail(msg, len, "window_pattern: must be 1..%d characters", NC_WINDOW_PATTERN_MAX);
  for (size_t i = 0; i < wl; i++) {
    char ch = o->window_pattern[i];
    if (ch != 'S' && ch != 'L' && ch != 's' && ch != 'l')
      return fail(msg, len, "window_pattern: only S (short window) and L (full context) are allowed");
  }
  memcpy(c->window_pattern, o->window_pattern, wl + 1);
  if (o->short_window < 0 || o->short_window > NC_CFG_MAX_SEQ_LEN)
    return fail(msg, len, "short_window: must be 0..%d", NC_CFG_MAX_SEQ_LEN);
  c->short_window = o->short_window;
  if (nc_model_config_validate(c, why, sizeof why) != NC_OK) return fail(msg, len, "depth: %s", why);
  return NC_OK;
}

int nc_base_plan_make(const nc_base_opts *o, int vocab, nc_base_plan *p, char *msg, size_t len) {
  if (!o || !p) return fail(msg, len, "NULL argument");
  memset(p, 0, sizeof *p);
  if (vocab < 2 || vocab > NC_CFG_MAX_VOCAB)
    return fail(msg, len, "tokenizer: vocabulary of %d tokens is out of range", vocab);
  if (o->depth < 1 || o->depth > NC_CFG_MAX_LAYER) return fail(msg, len, "depth: must be 1..%d", NC_CFG_MAX_LAYER);
  int rc = shape(o, o->depth, vocab, &p->model, msg, len);
  if (rc) return rc;
  if (o->device_batch_size < 1) return fail(msg, len, "device_batch_size: must be >= 1");
  double lrs[] = {o->embedding_lr, o->unembedding_lr, o->matrix_lr, o->scalar_lr, o->weight_decay};
  const char *lrn[] = {"embedding_lr", "unembedding_lr", "matrix_lr", "scalar_lr", "weight_decay"};
  for (int i = 0; i < 5; i++)
    if (!finite_nonneg(lrs[i])) return fail(msg, len, "%s: must be a finite number >= 0", lrn[i]);
  if (!(o->warmdown_ratio >= 0 && o->warmdown_ratio <= 1)) return fail(msg, len, "warmdown_ratio: must be in [0, 1]");
  if (!(o->final_lr_frac >= 0 && o->final_lr_frac <= 1)) return fail(msg, len, "final_lr_frac: must be in [0, 1]");
  if (o->warmup_steps < 0) return fail(msg, len, "warmup_steps: must be >= 0");
  if (o->eval_tokens < 1) return fail(msg, len, "eval_tokens: must be >= 1");
  if (o->optimizer != NC_TRAIN_OPT_MUON && o->optimizer != NC_TRAIN_OPT_ADAMW)
    return fail(msg, len, "optimizer: must be \"muon\" or \"adamw\"");
  if (!(isfinite(o->target_param_data_ratio) && o->target_param_data_ratio > 0))
    return fail(msg, len, "target_param_data_ratio: must be > 0");

  p->params = nc_model_config_param_counts(&p->model);
  p->flops_per_token = nc_model_config_flops_per_token(&p->model);
  p->target_tokens = floor(o->target_param_data_ratio * (double)p->params.scaling);
  /* the d12 reference with the same aspect ratio, head dim, T and vocab (build_model_meta(12)) */
  nc_model_config ref;
  rc = shape(o, NC_TRAIN_REF_DEPTH, vocab, &ref, msg, len);
  if (rc) return rc;
  p->d_ref = o->target_param_data_ratio * (double)nc_model_config_param_counts(&ref).scaling;

  const int64_t per_micro = (int64_t)o->device_batch_size * o->max_seq_len;
  if (o->total_batch_size == 0 || o->total_batch_size < -1)
    return fail(msg, len, "total_batch_size: must be -1 (automatic) or >= 1");
  if (o->total_batch_size > 0) {
    p->total_batch_size = o->total_batch_size;
  } else {
    double predicted = NC_TRAIN_B_REF * pow(p->target_tokens / p->d_ref, 0.383);
    double e = py_round(log2(predicted));
    if (!isfinite(e) || e < 0 || e > 40)
      return fail(msg, len, "total_batch_size: the automatic rule gives 2^%g tokens; set total_batch_size", e);
    p->total_batch_size = (int64_t)1 << (int)e;
    p->auto_batch = 1;
  }
  if (nc_grad_accum_steps(p->total_batch_size, o->device_batch_size, o->max_seq_len, 1, &p->grad_accum) != NC_OK)
    return fail(msg, len,
                "total_batch_size: %lld%s is not a multiple of device_batch_size x max_seq_len = %d x %d = %lld",
                (long long)p->total_batch_size, p->auto_batch ? " (automatic)" : "", o->device_batch_size,
                o->max_seq_len, (long long)per_micro);

  double iters;
  if (o->num_iterations > 0) {
    iters = (double)o->num_iterations;
    p->horizon = "num_iterations";
  } else if (o->target_flops > 0) {
    if (!isfinite(o->target_flops)) return fail(msg, len, "target_flops: must be finite");
    iters = py_round(o->target_flops / ((double)p->flops_per_token * (double)p->total_batch_size));
    p->horizon = "target_flops";
  } else {
    iters = floor(p->target_tokens / (double)p->total_batch_size);
    p->horizon = "target_param_data_ratio";
  }
  if (iters < 1)
    return fail(msg, len, "%s: the horizon is 0 steps at %lld tokens per step; raise it or set num_iterations",
                p->horizon, (long long)p->total_batch_size);
  if (iters > (double)NC_TRAIN_MAX_ITERATIONS)
    return fail(msg, len, "%s: the horizon is %.0f steps (more than %lld)", p->horizon, iters,
                (long long)NC_TRAIN_MAX_ITERATIONS);
  p->num_iterations = (int64_t)iters;

  p->batch_lr_scale = nc_batch_lr_scale(p->total_batch_size, NC_TRAIN_B_REF);
  p->weight_decay_scaled = nc_weight_decay_scaled(o->weight_decay, p->total_batch_size, NC_TRAIN_B_REF,
                                                  p->d_ref, p->target_tokens);
  const double bls = p->batch_lr_scale;
  if (o->optimizer == NC_TRAIN_OPT_MUON) {
    p->optim = nc_optim_cfg_muonadamw(p->model.n_embd);
    p->optim.unembedding_lr = o->unembedding_lr * bls;
    p->optim.embedding_lr = o->embedding_lr * bls;
    p->optim.matrix_lr = o->matrix_lr * bls;
    p->optim.scalar_lr = o->scalar_lr * bls;
    p->optim.weight_decay = p->weight_decay_scaled;
  } else {
    p->optim = nc_optim_cfg_adamw(o->unembedding_lr * bls, 0.0);
  }
  p->eval_steps = o->eval_tokens / per_micro;
  if (p->eval_steps < 1) p->eval_steps = 1;
  p->memory_bytes = (uint64_t)p->params.total * 16u +
                    (uint64_t)per_micro * (uint64_t)p->model.n_layer * (uint64_t)p->model.n_embd * 128u;
  return NC_OK;
}

static void human(double x, char *buf, size_t len) {
  if (x >= 1e9) snprintf(buf, len, "%.2fB", x / 1e9);
  else if (x >= 1e6) snprintf(buf, len, "%.2fM", x / 1e6);
  else if (x >= 1e3) snprintf(buf, len, "%.1fk", x / 1e3);
  else snprintf(buf, len, "%.0f", x);
}

void nc_base_plan_describe(const nc_base_plan *p, const nc_base_opts *o, char *buf, size_t len) {
  char tot[32], sc[32], tok[32];
  human((double)p->params.total, tot, sizeof tot);
  human((double)p->params.scaling, sc, sizeof sc);
  human((double)p->total_batch_size * (double)p->num_iterations, tok, sizeof tok);
  snprintf(buf, len,
           "d%d: n_embd %d, %d heads x %d, T %d, window %s, vocab %d; %s params (%s scaling), %.3g FLOPs/token; "
           "%lld steps (%s) of %lld tokens%s = %d x %d x %d accum, %s tokens; lr scale %.4f, weight decay %.6f, %s",
           p->model.n_layer, p->model.n_embd, p->model.n_head, nc_model_config_head_dim(&p->model),
           p->model.sequence_len, p->model.window_pattern, p->model.vocab_size, tot, sc, (double)p->flops_per_token,
           (long long)p->num_iterations, p->horizon, (long long)p->total_batch_size, p->auto_batch ? " (auto)" : "",
           o->device_batch_size, o->max_seq_len, p->grad_accum, tok, p->batch_lr_scale, p->weight_decay_scaled,
           o->optimizer == NC_TRAIN_OPT_ADAMW ? "AdamW" : "MuonAdamW");
}

json_t *nc_base_opts_to_json(const nc_base_opts *o) {
  json_t *j = json_object();
  if (!j) return NULL;
  int bad = 0;
#define SETI(k, v) bad |= json_object_set_new(j, k, json_integer((json_int_t)(v)))
#define SETR(k, v) bad |= json_object_set_new(j, k, isfinite(v) ? json_real(v) : json_null())
  SETI("depth", o->depth);
  SETI("aspect_ratio", o->aspect_ratio);
  SETI("head_dim", o->head_dim);
  SETI("max_seq_len", o->max_seq_len);
  bad |= json_object_set_new(j, "window_pattern", json_string(o->window_pattern));
  SETI("short_window", o->short_window);
  SETI("num_iterations", o->num_iterations);
  SETR("target_flops", o->target_flops);
  SETR("target_param_data_ratio", o->target_param_data_ratio);
  SETI("device_batch_size", o->device_batch_size);
  SETI("total_batch_size", o->total_batch_size);
  SETR("embedding_lr", o->embedding_lr);
  SETR("unembedding_lr", o->unembedding_lr);
  SETR("weight_decay", o->weight_decay);
  SETR("matrix_lr", o->matrix_lr);
  SETR("scalar_lr", o->scalar_lr);
  SETI("warmup_steps", o->warmup_steps);
  SETR("warmdown_ratio", o->warmdown_ratio);
  SETR("final_lr_frac", o->final_lr_frac);
  SETI("eval_every", o->eval_every);
  SETI("eval_tokens", o->eval_tokens);
  SETI("save_every", o->save_every);
  bad |= json_object_set_new(j, "optimizer", json_string(o->optimizer == NC_TRAIN_OPT_ADAMW ? "adamw" : "muon"));
  bad |= json_object_set_new(j, "seed", json_integer((json_int_t)(o->seed & 0x7fffffffffffffffULL)));
#undef SETI
#undef SETR
  if (bad) {
    json_decref(j);
    return NULL;
  }
  return j;
}
