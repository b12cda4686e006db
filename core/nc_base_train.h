/* nc_base_train.h — nanochat's scripts/base_train.py loop on the CPU (specs/nanochat.md
 * §5.1, §5.2, §7, §8.1): pretraining on a corpus directory with periodic validation bpb,
 * checkpoints with everything needed for an exact resume, and events through hooks.
 *
 * The loop (base_train's, N = the plan's num_iterations, step counted from 0):
 *
 *   while true:
 *     last = (step == N)
 *     if last or (eval_every > 0 and step % eval_every == 0): val bpb          -> eval hook
 *     if last or (step > 0 and step != resume step and save_every > 0 and
 *                 step % save_every == 0): checkpoint                          -> checkpoint hook
 *     if last: break
 *     one optimizer step (grad_accum micro-batches, nc_train_step)             -> progress hook
 *     step += 1
 *
 * (eval_every <= 0 evaluates at the end only: TrainBaseRequest's "-1 = only at the end".)
 * Data: the train split of `corpus_dir` (nc_corpus.h) tokenized with <|bos|> prepended, packed
 * best-fit with cropping into rows of T+1 (nc_loader.h), produced on a prefetch thread
 * (nc_prefetch.h) so tokenization overlaps compute. Validation: the val split (the train split
 * when the corpus has none, with a log line saying so), a fresh loader per evaluation (the
 * same batches every time) that reads the split once from its start — so the value equals
 * Eval.Loss over the same rows; nanochat's loader cycles the split, which differs only when the
 * split is smaller than its 1000-document buffer (here a split shorter than one batch is
 * cycled, logged once) — eval_steps batches of device_batch_size x T, bits per byte with
 * the tokenizer's raw token byte lengths (nc_eval.h).
 *
 * Checkpoints (nc_checkpoint.h) in ckpt_dir: model + optimizer state (F32, bit-exact) + meta
 * JSON (nc_base_meta_json: user_config, loader state of the last consumed micro-batch, loop
 * state). The checkpoint hook runs only after every file is durable (fsync + rename + fsync
 * dir), so the caller may then publish it (LMDB). Resume (resume_from_step >= 0) loads model,
 * optimizer, loop state and loader state from that step and continues with exactly the batches
 * and the loss trajectory an uninterrupted run would have had (same thread count: the kernels
 * are deterministic for a given thread count).
 *
 * Stopping: stop() is polled before each step, between micro-batches and between eval
 * batches. A stop abandons the step in flight (the model and loader stay at the last completed
 * step), writes a final checkpoint unless nothing was trained since the start (or the step was
 * just saved), and returns NC_OK with res->stopped = 1. A hook returning non-zero is treated
 * the same way (the consumer is gone) and the run returns NC_EIO after the final checkpoint.
 * A non-finite loss or gradient returns NC_ERANGE with "loss diverged at step S (loss L,
 * gradient norm G)" in msg and writes nothing.
 *
 * Threads: OpenMP for the model (threads > 0 sets omp_set_num_threads), one prefetch thread.
 * The hooks run on the calling thread. Errors: NC_OK or negative NC_E* codes with a message:
 * NC_EINVAL (options; the message names the field), NC_ENOTFOUND (no corpus / no checkpoint),
 * NC_ESTATE (resume checkpoint does not match the request), NC_ERANGE (diverged), I/O errors.
 */
#ifndef NC_BASE_TRAIN_H
#define NC_BASE_TRAIN_H

#include <stdint.h>

#include "nc_tokenizer.h"
#include "nc_train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* After each optimizer step. */
typedef struct nc_train_progress {
  int64_t step;                /* steps done, 1..N (the step just run is step - 1)          */
  int64_t total_steps;         /* N                                                          */
  double loss;                 /* EMA (beta 0.9) debiased, nats/token                       */
  double raw_loss;             /* this step's mean micro-batch loss                          */
  double lrm, muon_momentum, muon_weight_decay;
  double dt_s;                 /* wall time of the step                                      */
  double tokens_per_sec;       /* total_batch_size / dt                                      */
  double mfu;                  /* percent of peak_flops                                      */
  double elapsed_s;            /* since nc_base_run started                                  */
  double eta_s;                /* base_train's rule; NaN for the first 10 steps              */
  double total_training_time;  /* base_train's (steps > 10), across resumes                  */
  int64_t tokens_seen;         /* step * total_batch_size                                    */
  int epoch;                   /* 1-based pass over the train split of the last batch        */
  uint64_t file;               /* file index of the next document to read                    */
} nc_train_progress;

/* After each validation. */
typedef struct nc_train_eval {
  int64_t step;
  double val_bpb, min_val_bpb;
  double seconds;
  int64_t tokens;              /* tokens evaluated                                           */
} nc_train_eval;

/* After a checkpoint's files are durable. Names are relative to ckpt_dir. */
typedef struct nc_train_ckpt {
  int64_t step;
  char model_file[64], optim_file[64], meta_file[64];
  uint64_t model_size, optim_size;
  char model_sha256[65];
  double val_bpb;              /* NaN when not evaluated yet                                 */
  nc_model_config config;
  int64_t parameters;
  int final;                   /* the run's last checkpoint (end of the horizon, or a stop)  */
} nc_train_ckpt;

/* Hooks (each may be NULL; ctx is passed to all). Non-zero returns stop the run (see above),
 * except stop(), whose non-zero return IS the stop request, and fault(). */
typedef struct nc_base_hooks {
  void *ctx;
  int (*stop)(void *ctx);
  int (*progress)(void *ctx, const nc_train_progress *p);
  int (*eval)(void *ctx, const nc_train_eval *e);
  int (*checkpoint)(void *ctx, const nc_train_ckpt *c);
  int (*log)(void *ctx, const char *line);
  /* Test hook (NULL in production). Points: "nan" before step `step` (non-zero: a NaN is
   * written into resid_lambdas[0], so the loss diverges through the real code path);
   * checkpoint save points "optim:header" ... "meta:rename" (nc_ckpt_save's; non-zero makes
   * the write fail; the hook may also kill the process there) and "files_durable" (after all
   * files, before the checkpoint hook). */
  int (*fault)(void *ctx, const char *point, int64_t step);
} nc_base_hooks;

typedef struct nc_base_run_cfg {
  nc_base_opts opts;
  const nc_tokenizer *tok;     /* borrowed; must have nanochat's specials (<|bos|>)         */
  const char *corpus_dir;      /* nc_corpus layout                                          */
  const char *ckpt_dir;        /* created (one level) when missing                          */
  int64_t resume_from_step;    /* -1: fresh start                                           */
  int threads;                 /* > 0: OpenMP threads; 0: leave as is                       */
  double peak_flops;           /* > 0: for MFU; else nc_cpu_peak_flops(threads)             */
  int loader_buffer;           /* documents buffered by the loader; 0: 1000 (nanochat)      */
  int prefetch_depth;          /* micro-batches produced ahead; 0: clamp(grad_accum, 2, 8)  */
} nc_base_run_cfg;

typedef struct nc_base_result {
  nc_base_plan plan;
  int64_t start_step, final_step;  /* steps done at the start and at the end                */
  int stopped;                     /* ended early by stop() or a failing hook               */
  double final_loss;               /* EMA debiased after the last step (NaN if none)        */
  double val_bpb, min_val_bpb;
  double total_training_time;      /* base_train's, across resumes                          */
  double train_seconds;            /* sum of this run's step times                          */
  double wall_seconds;             /* the whole call                                         */
  double tokens_per_sec;           /* this run's tokens / train_seconds                     */
  int64_t last_ckpt_step;          /* -1: none written                                      */
  double peak_flops;
  char peak_desc[96];
} nc_base_result;

/* Runs base_train as described above. res (may be NULL) is filled on every return where
 * the plan was made. */
int nc_base_run(const nc_base_run_cfg *cfg, const nc_base_hooks *hooks, nc_base_result *res,
                char *msg, size_t msglen);

#ifdef __cplusplus
}
#endif
#endif /* NC_BASE_TRAIN_H */
