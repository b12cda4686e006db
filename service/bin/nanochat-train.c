/* nanochat-train — the Train.Base job (JobKind JOB_BASE): nanochat's base_train on the CPU
 * (core/nc_base_train.h) as a child program of the job manager (protocol: service/nc_jobio.h).
 *
 * Request: nanochat.v1.TrainBaseRequest (every base_train option; service/nc_train_req.h maps
 * it). Inputs under the data dir: the tokenizer (tokenizer/tokenizer.txt, or the file named by
 * $NANOCHAT_TOK_FILE, which nanochatd sets when it runs with --tokenizer), the corpus (dataset
 * "" = corpus/, else datasets/NAME). Checkpoints: checkpoints/base/<tag>/ (tag = model_tag, or
 * d<depth>).
 *
 * Events:
 *   LOG         the plan (shape, params, FLOPs/token, horizon, batch, accumulation, scaling),
 *               the CPU peak used for MFU, resume point, notes
 *   PROGRESS    after optimizer steps: step/total, EMA-debiased loss, lrm, tokens/s, MFU,
 *               elapsed, ETA (NaN for the first 10 steps), dt, tokens seen, epoch — at most one
 *               per $NANOCHAT_PROGRESS_MIN_MS (default 250) ms, always the first and the last
 *   EVAL        "val_bpb" {val_bpb, min_val_bpb, step}; at the end "final" {train_loss,
 *               val_bpb, min_val_bpb, steps, tokens_per_sec, total_training_time_s}
 *   CHECKPOINT  after the files of a checkpoint are durable (every save_every steps, at the
 *               end, and on SIGTERM): phase BASE, tag, step, path, size, sha256, config, val bpb
 * stdout (jobs/<id>/output.log) gets nanochat's base_train lines ("step 00042/00300 (14.00%) |
 * loss: ...", "Step 00100 | Validation bpb: ...").
 *
 * SIGTERM (Train.Cancel, server shutdown or death): the step in flight is abandoned, a final
 * checkpoint is written and announced, exit 0. A NaN/inf loss: LOG "loss diverged at step S
 * (loss nan)", exit 1 (the job ends FAILED with that reason). Exit codes: 0 done or stopped,
 * 1 failed (the last LOG line says why), 2 bad arguments/request, 3 the server went away.
 *
 * Test hooks (environment; never set in production): NC_TRAIN_FAULT=POINT[@STEP] — "nan"
 * poisons the model before step STEP; a checkpoint point ("model:rename", "meta:data", ...,
 * "files_durable") kills the process with SIGKILL there, as a crash would. */
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nc_checkpoint.h"
#include "nc_base_train.h"
#include "nc_err.h"
#include "nc_jobio.h"
#include "nc_train_req.h"

typedef struct job {
  nc_jobio *io;
  const char *data_dir;
  char tag[NC_TRAIN_TAG_MAX + 1];
  int lost;                      /* the event pipe closed */
  int min_ms;
  double last_sent;
  Nanochat__V1__Progress pending;
  int have_pending;
  char fault_point[64];
  int64_t fault_step;            /* -1: any step */
} job;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int64_t unix_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sent(job *j, int rc) {
  if (rc != NC_OK) j->lost = 1;
}

/* 1234567 -> "1,234,567" (Python's {:,}) */
static void commas(double x, char *out, size_t len) {
  char d[32];
  snprintf(d, sizeof d, "%lld", (long long)x);
  size_t n = strlen(d), o = 0;
  size_t lead = d[0] == '-' ? 1 : 0;
  for (size_t i = 0; i < n && o + 2 < len; i++) {
    out[o++] = d[i];
    size_t left = n - i - 1;
    if (i >= lead && left > 0 && left % 3 == 0) out[o++] = ',';
  }
  out[o] = 0;
}

static int h_stop(void *ctx) {
  job *j = ctx;
  return j->lost || nc_jobio_stop_requested();
}

static int h_log(void *ctx, const char *line) {
  job *j = ctx;
  printf("%s\n", line);
  sent(j, nc_jobio_log(j->io, "%s", line));
  return j->lost;
}

static void flush_pending(job *j) {
  if (!j->have_pending) return;
  sent(j, nc_jobio_progress(j->io, &j->pending));
  j->have_pending = 0;
  j->last_sent = now_s();
}

static int h_progress(void *ctx, const nc_train_progress *p) {
  job *j = ctx;
  char tps[40];
  commas(floor(p->tokens_per_sec), tps, sizeof tps);
  int64_t idx = p->step - 1;
  printf("step %05lld/%05lld (%.2f%%) | loss: %.6f | lrm: %.2f | dt: %.2fms | tok/sec: %s | mfu: %.2f | "
         "epoch: %d file: %llu | total time: %.2fm",
         (long long)idx, (long long)p->total_steps, 100.0 * (double)idx / (double)p->total_steps, p->loss, p->lrm,
         p->dt_s * 1e3, tps, p->mfu, p->epoch, (unsigned long long)p->file, p->total_training_time / 60);
  if (isfinite(p->eta_s)) printf(" | eta: %.1fm", p->eta_s / 60);
  printf("\n");
  Nanochat__V1__Progress *q = &j->pending;
  nanochat__v1__progress__init(q);
  q->has_step = q->has_total_steps = q->has_loss = q->has_lrm = q->has_tokens_per_sec = 1;
  q->has_mfu = q->has_elapsed_s = q->has_eta_s = q->has_dt_ms = q->has_tokens_seen = q->has_epoch = 1;
  q->step = p->step;
  q->total_steps = p->total_steps;
  q->loss = p->loss;
  q->lrm = p->lrm;
  q->tokens_per_sec = p->tokens_per_sec;
  q->mfu = p->mfu;
  q->elapsed_s = p->elapsed_s;
  q->eta_s = p->eta_s;
  q->dt_ms = p->dt_s * 1e3;
  q->tokens_seen = p->tokens_seen;
  q->epoch = p->epoch;
  j->have_pending = 1;
  double t = now_s();
  if (p->step == p->total_steps || j->last_sent == 0 || (t - j->last_sent) * 1000 >= j->min_ms) flush_pending(j);
  return j->lost;
}

static int h_eval(void *ctx, const nc_train_eval *e) {
  job *j = ctx;
  flush_pending(j);   /* the step the evaluation belongs to comes first */
  printf("Step %05lld | Validation bpb: %.6f\n", (long long)e->step, e->val_bpb);
  const char *names[] = {"val_bpb", "min_val_bpb", "step"};
  double vals[] = {e->val_bpb, e->min_val_bpb, (double)e->step};
  sent(j, nc_jobio_metrics(j->io, names, vals, 3, "val_bpb"));
  return j->lost;
}

static int h_checkpoint(void *ctx, const nc_train_ckpt *c) {
  job *j = ctx;
  flush_pending(j);
  char path[512], opath[512], wp[NC_WINDOW_PATTERN_MAX + 1];
  snprintf(path, sizeof path, "checkpoints/%s/%s/%s", nc_ckpt_phase_dir("base"), j->tag, c->model_file);
  snprintf(opath, sizeof opath, "checkpoints/%s/%s/%s", nc_ckpt_phase_dir("base"), j->tag, c->optim_file);
  snprintf(wp, sizeof wp, "%s", c->config.window_pattern);
  Nanochat__V1__ModelConfig mc = NANOCHAT__V1__MODEL_CONFIG__INIT;
  mc.has_sequence_len = mc.has_vocab_size = mc.has_n_layer = mc.has_n_head = mc.has_n_kv_head = mc.has_n_embd = 1;
  mc.sequence_len = (uint32_t)c->config.sequence_len;
  mc.vocab_size = (uint32_t)c->config.vocab_size;
  mc.n_layer = (uint32_t)c->config.n_layer;
  mc.n_head = (uint32_t)c->config.n_head;
  mc.n_kv_head = (uint32_t)c->config.n_kv_head;
  mc.n_embd = (uint32_t)c->config.n_embd;
  mc.window_pattern = wp;
  Nanochat__V1__CheckpointInfo ci = NANOCHAT__V1__CHECKPOINT_INFO__INIT;
  ci.has_phase = ci.has_step = ci.has_size = ci.has_created_ms = ci.has_val_bpb = ci.has_status = 1;
  ci.has_parameters = 1;
  ci.phase = NANOCHAT__V1__PHASE__PHASE_BASE;
  ci.tag = j->tag;
  ci.step = c->step;
  ci.path = path;
  ci.size = c->model_size;
  ci.sha256 = (char *)c->model_sha256;
  ci.created_ms = unix_ms();
  ci.config = &mc;
  ci.val_bpb = c->val_bpb;
  ci.status = NANOCHAT__V1__CHECKPOINT_STATUS__CHECKPOINT_OK;
  ci.optimizer_path = opath;
  ci.parameters = (uint64_t)c->parameters;
  printf("saved checkpoint %s (%llu bytes, sha256 %s)\n", path, (unsigned long long)c->model_size, c->model_sha256);
  sent(j, nc_jobio_checkpoint(j->io, &ci));
  return j->lost;
}

static int h_fault(void *ctx, const char *point, int64_t step) {
  job *j = ctx;
  if (!j->fault_point[0] || strcmp(point, j->fault_point) != 0) return 0;
  if (j->fault_step >= 0 && step != j->fault_step) return 0;
  if (strcmp(point, "nan") == 0) return 1;
  fflush(stdout);
  raise(SIGKILL); /* a crash at this point of the checkpoint write */
  return 1;
}

static void parse_fault(job *j) {
  const char *f = getenv("NC_TRAIN_FAULT");
  j->fault_step = -1;
  if (!f || !f[0]) return;
  snprintf(j->fault_point, sizeof j->fault_point, "%s", f);
  char *at = strchr(j->fault_point, '@');
  if (at) {
    *at = 0;
    j->fault_step = atoll(at + 1);
  }
}

static int run(job *j, const nc_jobio_args *a, const Nanochat__V1__TrainBaseRequest *req) {
  char msg[1024];
  nc_base_run_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  int rc = nc_train_base_opts(req, &cfg.opts, msg, sizeof msg);
  if (rc) {
    nc_jobio_log(j->io, "%s", msg);
    return 1;
  }
  nc_train_base_tag(req, j->tag);
  char corpus[4096], ckdir[4200], tpath[4200];
  rc = nc_train_corpus_check(a->data_dir, req->dataset, corpus, sizeof corpus, msg, sizeof msg);
  if (!rc && nc_train_ckpt_dir(a->data_dir, "base", j->tag, 1, ckdir, sizeof ckdir) != NC_OK) {
    snprintf(msg, sizeof msg, "cannot create the checkpoint directory checkpoints/base/%s", j->tag);
    rc = NC_EIO;
  }
  if (rc) {
    nc_jobio_log(j->io, "%s", msg);
    return 1;
  }
  const char *tf = getenv("NANOCHAT_TOK_FILE");
  if (tf && tf[0]) snprintf(tpath, sizeof tpath, "%s", tf);
  else snprintf(tpath, sizeof tpath, "%s/tokenizer/tokenizer.txt", a->data_dir);
  nc_tokenizer *tok = NULL;
  if (nc_tok_load(tpath, NULL, -1, &tok, msg, sizeof msg) != NC_OK) {
    nc_jobio_log(j->io, "tokenizer %s: %s", tpath, msg);
    return 1;
  }
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  cfg.threads = req->threads > 0 ? req->threads : (ncpu > 0 ? (int)ncpu : 1);
  const char *pk = getenv("NANOCHAT_PEAK_FLOPS");
  cfg.peak_flops = pk ? atof(pk) : 0;
  cfg.tok = tok;
  cfg.corpus_dir = corpus;
  cfg.ckpt_dir = ckdir;
  cfg.resume_from_step = req->resume_from_step;
  if ((req->has_core_metric_every && req->core_metric_every > 0) || (req->has_sample_every && req->sample_every > 0))
    h_log(j, "note: CORE metric and sampling during training are not built yet (core_metric_every and "
             "sample_every are ignored); run Eval.Core on the checkpoint instead");
  nc_base_hooks h = {j, h_stop, h_progress, h_eval, h_checkpoint, h_log, j->fault_point[0] ? h_fault : NULL};
  nc_base_result res;
  rc = nc_base_run(&cfg, &h, &res, msg, sizeof msg);
  flush_pending(j);
  nc_tok_free(tok);
  if (rc == NC_OK || (rc == NC_EIO && j->lost)) {
    if (j->lost) return 3;
    printf("Peak memory usage: n/a (CPU)\nTotal training time: %.2fm\nMinimum validation bpb: %.6f\n",
           res.total_training_time / 60, res.min_val_bpb);
    const char *names[] = {"train_loss", "val_bpb", "min_val_bpb", "steps", "tokens_per_sec", "total_training_time_s"};
    double vals[] = {res.final_loss, res.val_bpb, res.min_val_bpb, (double)res.final_step, res.tokens_per_sec,
                     res.total_training_time};
    sent(j, nc_jobio_metrics(j->io, names, vals, 6, "final"));
    if (res.stopped)
      sent(j, nc_jobio_log(j->io, "stopped at step %lld of %lld; final checkpoint %s", (long long)res.final_step,
                           (long long)res.plan.num_iterations,
                           res.last_ckpt_step >= 0 ? "written" : "not needed (nothing trained)"));
    else
      sent(j, nc_jobio_log(j->io, "done: %lld steps, %.0f tokens/s, min val bpb %.4f", (long long)res.final_step,
                           res.tokens_per_sec, res.min_val_bpb));
    return j->lost ? 3 : 0;
  }
  if (j->lost) return 3;
  nc_jobio_log(j->io, "%s", msg[0] ? msg : nc_strerror(rc));
  return 1;
}

int main(int argc, char **argv) {
  nc_jobio_args a;
  ProtobufCMessage *msg;
  if (nc_jobio_start(argc, argv, "nanochat-train", &nanochat__v1__train_base_request__descriptor, &a, &msg) != NC_OK) return 2;
  Nanochat__V1__TrainBaseRequest *req = (Nanochat__V1__TrainBaseRequest *)msg;
  setvbuf(stdout, NULL, _IOLBF, 0);
  job j;
  memset(&j, 0, sizeof j);
  j.data_dir = a.data_dir;
  const char *mm = getenv("NANOCHAT_PROGRESS_MIN_MS");
  j.min_ms = mm ? atoi(mm) : 250;
  parse_fault(&j);
  if (nc_jobio_open(&a, &j.io) != NC_OK) {
    fprintf(stderr, "nanochat-train: bad events fd\n");
    nanochat__v1__train_base_request__free_unpacked(req, NULL);
    return 2;
  }
  int rc = run(&j, &a, req);
  nc_jobio_close(j.io);
  nanochat__v1__train_base_request__free_unpacked(req, NULL);
  return rc;
}
