/* nc_base_train.c — base_train's loop (nc_base_train.h): setup and resume, the step loop,
 * validation bpb, checkpoints. */
#include "nc_base_train.h"

#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "nc_checkpoint.h"
#include "nc_corpus.h"
#include "nc_err.h"
#include "nc_eval.h"
#include "nc_kernels.h"
#include "nc_prefetch.h"


typedef struct run {
  const nc_base_run_cfg *cfg;
  const nc_base_hooks *h;
  nc_base_plan *plan;
  nc_base_result *res;
  char *msg;
  size_t msglen;
  nc_tok_iface tok;
  int32_t bos;
  int32_t *token_bytes;
  nc_ckpt_dir *dir;
  nc_model *m;
  nc_optim *o;
  nc_corpus *corpus;
  nc_corpus_source src;
  nc_loader *loader;
  nc_prefetch *pf;
  size_t n_files;
  nc_loader_state committed; /* after the last micro-batch of the last completed step */
  nc_loader_state current;   /* after the last micro-batch consumed                   */
  nc_train_loop_state s;
  int64_t start_step, last_saved;
  int lost;                  /* a hook failed: stop and report NC_EIO                  */
  const char *val_split;     /* "val", or "train" when the corpus has no val split     */
  int eval_wraps;            /* the val split is shorter than one batch (logged once)  */
  double t0;
} run;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int failf(run *r, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int failf(run *r, int rc, const char *fmt, ...) {
  if (r->msg && r->msglen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, r->msglen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

static void logf_(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(run *r, const char *fmt, ...) {
  if (!r->h || !r->h->log) return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (r->h->log(r->h->ctx, line)) r->lost = 1;
}

static int stop_cb(void *arg) {
  run *r = arg;
  return r->lost || (r->h && r->h->stop && r->h->stop(r->h->ctx));
}

static int fault(run *r, const char *point, int64_t step) {
  return r->h && r->h->fault ? r->h->fault(r->h->ctx, point, step) : 0;
}

/* ------------------------------------------------------------------ setup */

static int same_config(const nc_model_config *a, const nc_model_config *b) {
  return a->sequence_len == b->sequence_len && a->vocab_size == b->vocab_size && a->n_layer == b->n_layer &&
         a->n_head == b->n_head && a->n_kv_head == b->n_kv_head && a->n_embd == b->n_embd &&
         strcasecmp(a->window_pattern, b->window_pattern) == 0 && a->short_window == b->short_window;
}

static void config_text(const nc_model_config *c, char *buf, size_t len) {
  snprintf(buf, len, "T %d, vocab %d, %d layers, %d heads, n_embd %d, window %s%s", c->sequence_len,
           c->vocab_size, c->n_layer, c->n_head, c->n_embd, c->window_pattern, c->short_window ? " (short)" : "");
}

static int open_model(run *r) {
  const nc_base_run_cfg *cfg = r->cfg;
  nc_st_error err = {0};
  int rc = nc_ckpt_dir_open_path(cfg->ckpt_dir, 1, &r->dir, &err);
  if (rc) return failf(r, rc, "checkpoint directory %s: %s", cfg->ckpt_dir, err.msg);
  nc_ckpt_cleanup(r->dir, NULL, &err); /* temp files of crashed writers */
  char why[256];
  if (cfg->resume_from_step < 0) {
    rc = nc_model_create(&r->plan->model, &r->m, why, sizeof why);
    if (rc) return failf(r, rc, "model: %s", why);
    nc_model_init_weights(r->m, cfg->opts.seed);
  } else {
    nc_ckpt_load_opts lo = {0};
    lo.expected_vocab_size = r->plan->model.vocab_size;
    lo.reject_nonfinite = 1;
    char *meta = NULL;
    rc = nc_ckpt_load_model(r->dir, cfg->resume_from_step, &lo, &r->m, &meta, &err);
    if (rc == NC_ENOTFOUND || err.kind == NC_ST_E_NOTFOUND)
      return failf(r, NC_ENOTFOUND, "resume_from_step: no checkpoint at step %lld in %s",
                   (long long)cfg->resume_from_step, cfg->ckpt_dir);
    if (rc) return failf(r, rc, "resume_from_step: cannot load step %lld: %s", (long long)cfg->resume_from_step, err.msg);
    const nc_model_config *got = nc_model_get_config(r->m);
    if (!same_config(got, &r->plan->model)) {
      char a[160], b[160];
      config_text(got, a, sizeof a);
      config_text(&r->plan->model, b, sizeof b);
      free(meta);
      return failf(r, NC_ESTATE, "resume_from_step: the checkpoint's model (%s) differs from the request's (%s)", a, b);
    }
    rc = meta ? nc_base_meta_parse(meta, &r->s, &r->committed, why, sizeof why) : NC_EINVAL;
    free(meta);
    if (rc) return failf(r, NC_ESTATE, "resume_from_step: %s", meta ? why : "the checkpoint has no meta");
    if (r->s.step != cfg->resume_from_step)
      return failf(r, NC_ESTATE, "resume_from_step: the checkpoint's meta says step %lld", (long long)r->s.step);
  }
  int np;
  nc_param *ps = nc_model_params(r->m, &np);
  rc = nc_optim_create(ps, np, &r->plan->optim, &r->o, why, sizeof why);
  if (rc) return failf(r, rc, "optimizer: %s", why);
  if (cfg->resume_from_step >= 0) {
    rc = nc_ckpt_load_optim(r->dir, cfg->resume_from_step, r->o, &err);
    if (rc) return failf(r, rc == NC_ENOTFOUND ? NC_ESTATE : rc, "resume_from_step: optimizer state: %s", err.msg);
  }
  return NC_OK;
}

static int open_data(run *r) {
  const nc_base_run_cfg *cfg = r->cfg;
  char err[512];
  nc_corpus_opts co = {.dir = cfg->corpus_dir, .split = "train"};
  int rc = nc_corpus_open(&co, &r->corpus, err, sizeof err);
  if (rc) return failf(r, rc, "corpus: %s", err);
  r->n_files = nc_corpus_files(r->corpus);
  r->src.c = r->corpus;
  r->src.tok = &r->tok;
  r->src.bos = r->bos;
  r->src.wrap = 1;
  nc_loader_cfg lc = {cfg->opts.device_batch_size, cfg->opts.max_seq_len,
                      cfg->loader_buffer > 0 ? cfg->loader_buffer : 1000};
  rc = nc_loader_create(lc, nc_corpus_doc_source(&r->src), &r->loader);
  if (rc) return failf(r, rc, "loader: %s", nc_strerror(rc));
  if (cfg->resume_from_step >= 0) {
    rc = nc_loader_restore(r->loader, &r->committed);
    if (rc) return failf(r, NC_ESTATE, "resume_from_step: the data loader state does not fit this corpus (%s)", nc_strerror(rc));
  } else {
    rc = nc_loader_save(r->loader, &r->committed);
    if (rc) return failf(r, rc, "loader: %s", nc_strerror(rc));
  }
  /* the val split, else the train split */
  nc_corpus_opts vo = {.dir = cfg->corpus_dir, .split = "val"};
  nc_corpus *vc;
  r->val_split = "val";
  if (nc_corpus_open(&vo, &vc, err, sizeof err) == NC_OK) {
    nc_corpus_close(vc);
  } else {
    r->val_split = "train";
    logf_(r, "the corpus has no val split: validation bpb is measured on the train split");
  }
  int depth = cfg->prefetch_depth;
  if (depth <= 0) depth = r->plan->grad_accum < 2 ? 2 : r->plan->grad_accum > 8 ? 8 : r->plan->grad_accum;
  rc = nc_prefetch_start(r->loader, cfg->opts.device_batch_size, cfg->opts.max_seq_len, depth, &r->pf);
  if (rc) return failf(r, rc, "prefetch: %s", nc_strerror(rc));
  return NC_OK;
}

static void teardown(run *r) {
  nc_prefetch_stop(r->pf);
  nc_loader_free(r->loader);
  nc_corpus_close(r->corpus);
  nc_loader_state_free(&r->committed);
  nc_loader_state_free(&r->current);
  nc_optim_free(r->o);
  nc_model_free(r->m);
  nc_ckpt_dir_close(r->dir);
  free(r->token_bytes);
}

/* ------------------------------------------------------------------ evaluation */

/* One pass of the validation loader: the split read once from its start (wrap 0), so the value
 * equals Eval.Loss / nc_ckpt_tool bpb over the same rows; wrap 1 cycles a split shorter than
 * one batch. */
static int eval_pass(run *r, int wrap, nc_bpb_acc *acc, char *err, size_t errlen) {
  const nc_base_opts *o = &r->cfg->opts;
  nc_corpus_opts vo = {.dir = r->cfg->corpus_dir, .split = r->val_split};
  nc_corpus *vc = NULL;
  nc_loader *vl = NULL;
  int rc = nc_corpus_open(&vo, &vc, err, errlen);
  if (rc) return rc;
  err[0] = 0;
  nc_corpus_source vs = {vc, &r->tok, r->bos, wrap};
  nc_loader_cfg lc = {o->device_batch_size, o->max_seq_len, 1000};
  rc = nc_loader_create(lc, nc_corpus_doc_source(&vs), &vl);
  memset(acc, 0, sizeof *acc);
  if (!rc)
    rc = nc_eval_bpb(r->m, vl, o->device_batch_size, o->max_seq_len,
                     r->plan->eval_steps > 1000000 ? 1000000 : (int)r->plan->eval_steps, r->token_bytes,
                     acc, stop_cb, r);
  nc_loader_free(vl);
  nc_corpus_close(vc);
  return rc;
}

static int evaluate(run *r, int64_t step) {
  double t = now_s();
  nc_bpb_acc acc;
  char err[512];
  int rc = eval_pass(r, r->eval_wraps, &acc, err, sizeof err);
  if (rc == NC_ENOTFOUND && !r->eval_wraps && !err[0]) {
    logf_(r, "the %s split is shorter than one batch: validation cycles it", r->val_split);
    r->eval_wraps = 1;
    rc = eval_pass(r, 1, &acc, err, sizeof err);
  }
  if (rc == NC_ECANCELED) return rc;
  if (rc && err[0]) return failf(r, rc, "validation corpus: %s", err);
  if (rc) return failf(r, rc, "validation at step %lld: %s", (long long)step, nc_strerror(rc));
  double bpb = nc_bpb_value(&acc);
  r->s.val_bpb = bpb;
  if (bpb < r->s.min_val_bpb) r->s.min_val_bpb = bpb;
  nc_train_eval e = {step, bpb, r->s.min_val_bpb, now_s() - t, (int64_t)acc.tokens};
  if (r->h && r->h->eval && r->h->eval(r->h->ctx, &e)) r->lost = 1;
  return NC_OK;
}

/* ------------------------------------------------------------------ checkpoints */

typedef struct fault_ctx {
  run *r;
  int64_t step;
} fault_ctx;

static int save_fault(void *ctx, const char *point) {
  fault_ctx *f = ctx;
  return fault(f->r, point, f->step);
}

static uint64_t file_size(int dirfd, const char *name) {
  struct stat st;
  return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? (uint64_t)st.st_size : 0;
}

static int save(run *r, int64_t step, int final) {
  r->s.step = step;
  char *meta = nc_base_meta_json(&r->cfg->opts, r->plan, &r->s, &r->committed);
  if (!meta) return failf(r, NC_ENOMEM, "checkpoint meta: out of memory");
  nc_train_ckpt c;
  memset(&c, 0, sizeof c);
  fault_ctx fc = {r, step};
  nc_ckpt_save_opts so = {0};
  if (r->h && r->h->fault) {
    so.fault = save_fault;
    so.fault_ctx = &fc;
  }
  nc_st_error err = {0};
  int rc = nc_ckpt_save(r->dir, step, r->m, r->o, meta, &so, c.model_sha256, &err);
  free(meta);
  if (rc) return failf(r, rc, "checkpoint at step %lld: %s", (long long)step, err.msg);
  r->last_saved = step;
  if (r->res) r->res->last_ckpt_step = step;
  if (fault(r, "files_durable", step))
    return failf(r, NC_EIO, "checkpoint at step %lld: fault injected after its files", (long long)step);
  c.step = step;
  snprintf(c.model_file, sizeof c.model_file, "model_%06lld.safetensors", (long long)step);
  snprintf(c.optim_file, sizeof c.optim_file, "optim_%06lld_rank0.safetensors", (long long)step);
  snprintf(c.meta_file, sizeof c.meta_file, "meta_%06lld.json", (long long)step);
  int fd = nc_ckpt_dir_fd(r->dir);
  c.model_size = file_size(fd, c.model_file);
  c.optim_size = file_size(fd, c.optim_file);
  c.val_bpb = r->s.val_bpb;
  c.config = r->plan->model;
  c.parameters = r->plan->params.total;
  c.final = final;
  if (r->h && r->h->checkpoint && r->h->checkpoint(r->h->ctx, &c)) r->lost = 1;
  return NC_OK;
}

/* ------------------------------------------------------------------ the loop */

static int next_batch(void *arg, int32_t *in, int32_t *tg) {
  run *r = arg;
  return nc_prefetch_next(r->pf, in, tg, &r->current);
}

static void poison(nc_model *m) {
  int n;
  nc_param *ps = nc_model_params(m, &n);
  for (int i = 0; i < n; i++)
    if (ps[i].kind == NC_PK_RESID_LAMBDAS) ps[i].data[0] = NAN;
}

static int one_step(run *r, int64_t step, int32_t *in, int32_t *tg, double *train_s) {
  const nc_base_opts *o = &r->cfg->opts;
  const nc_base_plan *p = r->plan;
  const int64_t N = p->num_iterations;
  nc_train_step_cfg sc;
  memset(&sc, 0, sizeof sc);
  sc.grad_accum = p->grad_accum;
  sc.B = o->device_batch_size;
  sc.T = o->max_seq_len;
  sc.lrm = nc_lr_multiplier(step, N, o->warmup_steps, o->warmdown_ratio, o->final_lr_frac);
  sc.muon_momentum = nc_muon_momentum(step, N, o->warmdown_ratio);
  sc.muon_weight_decay = nc_muon_weight_decay(step, N, p->weight_decay_scaled);
  sc.next = next_batch;
  sc.next_ctx = r;
  sc.stop = stop_cb;
  sc.stop_ctx = r;
  sc.inputs = in;
  sc.targets = tg;
  if (fault(r, "nan", step)) poison(r->m);
  nc_train_step_out so;
  double t = now_s();
  int rc = nc_train_step(r->m, r->o, &sc, &so);
  double dt = now_s() - t;
  if (rc == NC_ECANCELED) return rc;
  if (rc == NC_ERANGE)
    return failf(r, rc, "loss diverged at step %lld (loss %g, gradient norm %g)", (long long)step,
                 (double)so.last_loss, so.grad_norm);
  if (rc) return failf(r, rc, "training step %lld: %s", (long long)step, nc_strerror(rc));
  /* the step is complete: its micro-batches are now part of the committed data position */
  nc_loader_state tmp = r->committed;
  r->committed = r->current;
  r->current = tmp;
  *train_s += dt;
  r->s.step = step;
  double loss = nc_train_ema_update(&r->s, so.loss, dt);
  r->s.step = step + 1;
  nc_train_progress pr;
  memset(&pr, 0, sizeof pr);
  pr.step = step + 1;
  pr.total_steps = N;
  pr.loss = loss;
  pr.raw_loss = so.loss;
  pr.lrm = sc.lrm;
  pr.muon_momentum = sc.muon_momentum;
  pr.muon_weight_decay = sc.muon_weight_decay;
  pr.dt_s = dt;
  pr.tokens_per_sec = dt > 0 ? (double)p->total_batch_size / dt : 0;
  pr.mfu = nc_train_mfu(p->flops_per_token, p->total_batch_size, dt, r->res->peak_flops);
  pr.elapsed_s = now_s() - r->t0;
  pr.eta_s = nc_train_eta(&r->s, step, N);
  pr.total_training_time = r->s.total_training_time;
  pr.tokens_seen = (step + 1) * p->total_batch_size;
  pr.epoch = r->n_files ? (int)(r->committed.next.a / r->n_files) + 1 : 1;
  pr.file = r->n_files ? r->committed.next.a % r->n_files : 0;
  r->res->final_loss = loss;
  if (r->h && r->h->progress && r->h->progress(r->h->ctx, &pr)) r->lost = 1;
  return NC_OK;
}

static int loop(run *r) {
  const nc_base_opts *o = &r->cfg->opts;
  const int64_t N = r->plan->num_iterations;
  const size_t n = (size_t)o->device_batch_size * (size_t)o->max_seq_len;
  int32_t *in = malloc(n * sizeof *in), *tg = malloc(n * sizeof *tg);
  if (!in || !tg) {
    free(in);
    free(tg);
    return failf(r, NC_ENOMEM, "out of memory");
  }
  int rc = NC_OK, stopping = 0;
  double train_s = 0;
  int64_t step = r->start_step;
  for (;;) {
    int last = step == N;
    if (stop_cb(r)) {
      stopping = 1;
      break;
    }
    if (last || (o->eval_every > 0 && step % o->eval_every == 0)) {
      rc = evaluate(r, step);
      if (rc == NC_ECANCELED) {
        rc = NC_OK;
        stopping = 1;
        break;
      }
      if (rc) break;
    }
    if (last || (step > 0 && step != r->cfg->resume_from_step && o->save_every > 0 && step % o->save_every == 0)) {
      rc = save(r, step, last);
      if (rc) break;
    }
    if (last) break;
    rc = one_step(r, step, in, tg, &train_s);
    if (rc == NC_ECANCELED) {
      rc = NC_OK;
      stopping = 1;
      break;
    }
    if (rc) break;
    step++;
  }
  r->s.step = step;
  if (!rc && stopping) {
    r->res->stopped = 1;
    if (step > r->start_step && r->last_saved != step) {
      int was_lost = r->lost;
      r->lost = 0;  /* the final checkpoint is written even when the consumer is gone */
      rc = save(r, step, 1);
      r->lost |= was_lost;
    }
  }
  free(in);
  free(tg);
  r->res->final_step = step;
  r->res->train_seconds = train_s;
  int64_t tokens = (step - r->start_step) * r->plan->total_batch_size;
  r->res->tokens_per_sec = train_s > 0 ? (double)tokens / train_s : 0;
  if (!rc && r->lost) rc = failf(r, NC_EIO, "the event consumer went away");
  return rc;
}

int nc_base_run(const nc_base_run_cfg *cfg, const nc_base_hooks *h, nc_base_result *res_out, char *msg,
                size_t msglen) {
  nc_base_result res_local;
  nc_base_result *res = res_out ? res_out : &res_local;
  memset(res, 0, sizeof *res);
  res->last_ckpt_step = -1;
  res->final_loss = NAN;
  if (msg && msglen) msg[0] = 0;
  run r;
  memset(&r, 0, sizeof r);
  r.cfg = cfg;
  r.h = h;
  r.res = res;
  r.plan = &res->plan;
  r.msg = msg;
  r.msglen = msglen;
  r.last_saved = -1;
  r.t0 = now_s();
  r.s = nc_train_loop_state_init();
  if (!cfg || !cfg->tok || !cfg->corpus_dir || !cfg->ckpt_dir) return failf(&r, NC_EINVAL, "NULL argument");
  if (cfg->threads > 0) omp_set_num_threads(cfg->threads);
  nc_blas_single_thread();
  nc_train_flush_denormals();
  int vocab = nc_tok_vocab_size(cfg->tok);
  int rc = nc_base_plan_make(&cfg->opts, vocab, r.plan, msg, msglen);
  if (rc) return rc;
  nc_special_ids sp;
  if (nc_tok_nanochat_specials(cfg->tok, &sp) != NC_OK)
    return failf(&r, NC_EINVAL, "tokenizer: it lacks nanochat's special tokens (<|bos|>)");
  r.bos = sp.bos;
  r.tok = nc_tok_chat_iface(cfg->tok);
  r.token_bytes = malloc(sizeof(int32_t) * (size_t)vocab);
  if (!r.token_bytes) return failf(&r, NC_ENOMEM, "out of memory");
  nc_tok_token_bytes(cfg->tok, r.token_bytes, (size_t)vocab);
  res->peak_flops = cfg->peak_flops > 0 ? cfg->peak_flops
                                        : nc_cpu_peak_flops(cfg->threads > 0 ? cfg->threads : omp_get_max_threads(),
                                                            res->peak_desc, sizeof res->peak_desc);
  if (cfg->peak_flops > 0) snprintf(res->peak_desc, sizeof res->peak_desc, "%.3g FLOP/s (given)", cfg->peak_flops);
  rc = open_model(&r);
  if (!rc) {
    r.start_step = cfg->resume_from_step >= 0 ? r.s.step : 0;
    res->start_step = r.start_step;
    if (r.start_step > r.plan->num_iterations)
      rc = failf(&r, NC_ESTATE, "resume_from_step: step %lld is past the horizon of %lld steps",
                 (long long)r.start_step, (long long)r.plan->num_iterations);
  }
  if (!rc) rc = open_data(&r);
  if (!rc) {
    char line[768];
    nc_base_plan_describe(r.plan, &cfg->opts, line, sizeof line);
    logf_(&r, "%s", line);
    logf_(&r, "MFU is relative to a CPU peak of %.3g FLOP/s: %s; %d threads", res->peak_flops, res->peak_desc,
          omp_get_max_threads());
    if (cfg->resume_from_step >= 0)
      logf_(&r, "resumed from step %lld (EMA loss %.6f, %.1f s trained)", (long long)r.start_step,
            r.s.step > 0 ? r.s.smooth_train_loss / (1 - pow(0.9, (double)r.s.step)) : 0.0, r.s.total_training_time);
    rc = loop(&r);
  }
  res->val_bpb = r.s.val_bpb;
  res->min_val_bpb = r.s.min_val_bpb;
  res->total_training_time = r.s.total_training_time;
  res->wall_seconds = now_s() - r.t0;
  teardown(&r);
  return rc;
}
