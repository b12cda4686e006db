/* nc_train.h — the pieces of nanochat's training scripts that every training job shares
 * (scripts/base_train.py at the pinned commit; specs/nanochat.md §5.2), as plain functions:
 *
 *   - base_train's option set (nc_base_opts) and its resolution into a plan (nc_base_plan):
 *     the depth rule, the training horizon, the automatic total batch size ("Power Lines"),
 *     the batch-size LR scale, the weight-decay scaling, gradient accumulation, eval steps;
 *   - one optimizer step with gradient accumulation (nc_train_step): zero grads, grad_accum
 *     micro-batches of loss / grad_accum, a finiteness check, the schedule, the update;
 *   - the loop state kept across resumes (step, EMA loss, min/last val bpb, training time),
 *     the EMA-debiased loss, the ETA rule and MFU, and the meta JSON of a base checkpoint;
 *   - a documented estimate of the CPU's peak fp32 FLOP/s, for MFU on machines without GPUs.
 *
 * The base_train loop itself (data, evaluation, checkpoints, events) is nc_base_train.h;
 * SFT and RL reuse nc_train_step, the loop state and the MFU helpers.
 *
 * Everything here is thread-compatible: no global state; the functions that take a model or
 * optimizer have their threading rules (one caller at a time). Errors: NC_OK or a negative
 * NC_E* code; NC_EINVAL messages start with the request field they are about
 * ("total_batch_size: ...").
 */
#ifndef NC_TRAIN_H
#define NC_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "nc_loader.h"
#include "nc_model.h"
#include "nc_model_config.h"
#include "nc_optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* base_train's reference points: d12 is the muP reference; B_REF = 2^19 tokens. */
#define NC_TRAIN_B_REF 524288
#define NC_TRAIN_REF_DEPTH 12
/* Time is accumulated (and the ETA known) only after this many steps (base_train: 10). */
#define NC_TRAIN_TIMING_WARMUP 10
/* Largest horizon accepted (TrainBaseRequest.num_iterations' limit). */
#define NC_TRAIN_MAX_ITERATIONS 100000000LL

typedef enum nc_train_optimizer { NC_TRAIN_OPT_MUON = 0, NC_TRAIN_OPT_ADAMW = 1 } nc_train_optimizer;

/* base_train's options (same names, same defaults: nc_base_opts_default). */
typedef struct nc_base_opts {
  int depth, aspect_ratio, head_dim, max_seq_len;
  char window_pattern[NC_WINDOW_PATTERN_MAX + 1];
  int short_window;                /* 0: nanochat's S rule (nanochat-c extension)        */
  int64_t num_iterations;          /* > 0 wins                                          */
  double target_flops;             /* > 0 next                                          */
  double target_param_data_ratio;  /* else tokens = ratio x scaling params              */
  int device_batch_size;           /* rows per micro-batch                              */
  int64_t total_batch_size;        /* tokens per step; -1 = automatic                   */
  double embedding_lr, unembedding_lr, weight_decay, matrix_lr, scalar_lr;
  int warmup_steps;
  double warmdown_ratio, final_lr_frac;
  int eval_every;                  /* val bpb every N steps and at the end; <= 0: end only */
  int64_t eval_tokens;
  int save_every;                  /* checkpoint every N steps and at the end; <= 0: end only */
  int optimizer;                   /* nc_train_optimizer                                */
  uint64_t seed;                   /* weight init                                       */
} nc_base_opts;

/* depth 20, aspect 64, head_dim 128, T 2048, "SSSL", num_iterations -1, target_flops -1,
 * ratio 12, device batch 32, total batch -1, LRs 0.3 / 0.008 / 0.02 / 0.5, wd 0.28,
 * warmup 40, warmdown 0.65, final 0.05, eval every 250 over 80 x 2^19 tokens, save -1,
 * Muon, seed 42. */
nc_base_opts nc_base_opts_default(void);

/* What base_train derives from its options before the loop. */
typedef struct nc_base_plan {
  nc_model_config model;           /* depth rule + window pattern + vocab                */
  nc_param_counts params;
  int64_t flops_per_token;         /* estimate_flops                                    */
  double target_tokens;            /* int(ratio * scaling params)                       */
  double d_ref;                    /* ratio * scaling params of the d12 reference        */
  int64_t total_batch_size;
  int auto_batch;                  /* 1: total_batch_size came from the automatic rule   */
  int64_t num_iterations;
  const char *horizon;             /* "num_iterations" | "target_flops" | "target_param_data_ratio" */
  int grad_accum;                  /* total_batch_size / (device_batch_size * T)         */
  double batch_lr_scale;           /* sqrt(B / B_REF)                                   */
  double weight_decay_scaled;      /* wd * sqrt(B / B_REF) * D_REF / target_tokens       */
  nc_optim_cfg optim;              /* ready for nc_optim_create (LRs already scaled)     */
  int64_t eval_steps;              /* max(1, eval_tokens / (device_batch_size * T))      */
  uint64_t memory_bytes;           /* rough training memory estimate (see below)         */
} nc_base_plan;

/* Resolves `o` for a tokenizer of vocab_size tokens, exactly as base_train does:
 *   model   base_dim = depth*aspect_ratio, n_embd = ceil(base_dim/head_dim)*head_dim,
 *           n_head = n_kv_head = n_embd/head_dim (nc_model_config_from_depth)
 *   tokens  target_tokens = int(ratio * scaling_params); D_REF = ratio * scaling_params(d12
 *           with the same aspect ratio, head dim, T, vocab)
 *   batch   total_batch_size, or 2^round(log2(B_REF * (target_tokens/D_REF)^0.383))
 *   horizon num_iterations > 0; else round(target_flops / (flops_per_token * B)); else
 *           target_tokens // B
 *   optim   Muon: setup_optimizer(unembedding_lr*bls, embedding_lr*bls, matrix_lr*bls,
 *           scalar_lr*bls, weight_decay_scaled); AdamW (nanochat-c option): every parameter
 *           in one torch.optim.AdamW group, lr = unembedding_lr*bls, betas (0.9, 0.999),
 *           eps 1e-8, no weight decay, the same LR multiplier schedule.
 * memory_bytes = 16 bytes per parameter (weights, grads, two optimizer moments) + 128
 * bytes per token per layer per channel of one micro-batch (activations kept for the
 * backward, a deliberate over-estimate), for refusing requests that cannot fit.
 * NC_EINVAL with "field: reason" in msg for: a shape the model refuses (depth,
 * aspect_ratio, head_dim, max_seq_len, window_pattern, short_window), total_batch_size 0 or
 * not a multiple of device_batch_size * max_seq_len (also when it came from the automatic
 * rule), a horizon of 0 steps or more than NC_TRAIN_MAX_ITERATIONS, bad LRs/schedule values
 * (negative or non-finite, warmdown_ratio or final_lr_frac outside [0, 1]), eval_tokens < 1,
 * an unknown optimizer, vocab_size out of range. */
int nc_base_plan_make(const nc_base_opts *o, int vocab_size, nc_base_plan *p, char *msg,
                      size_t msglen);

/* One line describing the plan (shape, params, FLOPs/token, horizon, batch, accumulation,
 * LR scale, weight decay) into buf[len]. */
void nc_base_plan_describe(const nc_base_plan *p, const nc_base_opts *o, char *buf, size_t len);

/* The options as nanochat's meta "user_config" (base_train's argument names, with
 * "optimizer", "short_window" and "seed" added). New reference; NULL on OOM. */
struct json_t *nc_base_opts_to_json(const nc_base_opts *o);

/* ------------------------------------------------------------------ one training step */

/* Fills the next micro-batch (B*T inputs and targets). NC_OK or an error code. */
typedef int (*nc_batch_fn)(void *ctx, int32_t *inputs, int32_t *targets);
/* Polled between micro-batches; non-zero asks to abandon the step. */
typedef int (*nc_stop_fn)(void *ctx);

typedef struct nc_train_step_cfg {
  int grad_accum, B, T;
  double lrm, muon_momentum, muon_weight_decay; /* nc_optim_set_schedule arguments         */
  nc_batch_fn next;
  void *next_ctx;
  nc_stop_fn stop;                              /* may be NULL                              */
  void *stop_ctx;
  int32_t *inputs, *targets;                    /* caller scratch, B*T each                 */
} nc_train_step_cfg;

typedef struct nc_train_step_out {
  double loss;        /* mean of the micro-batch losses (nats/token)                          */
  float last_loss;    /* the last micro-batch's loss (what base_train logs)                   */
  int micro_done;     /* micro-batches consumed (grad_accum on success)                       */
  double grad_norm;   /* global L2 norm of the accumulated gradient (before any clipping)     */
} nc_train_step_out;

/* base_train's step: zero grads; for each of grad_accum micro-batches: next(), forward +
 * backward of loss / grad_accum; every micro-batch loss and the gradient's global norm must
 * be finite (the softcapped head can turn a NaN model into a finite loss); then the schedule
 * (lr = initial_lr * lrm; Muon momentum and weight decay) and one optimizer step; grads
 * are left as computed. Returns
 *   NC_OK
 *   NC_ERANGE     a micro-batch loss or the gradient norm was NaN/inf: no optimizer step
 *                 (the model is unchanged; the caller reports "loss diverged")
 *   NC_ECANCELED  stop() returned non-zero before the last micro-batch: the step is
 *                 abandoned, grads zeroed, the model unchanged (out->micro_done batches
 *                 were consumed)
 *   errors of next(), the model or the optimizer. */
int nc_train_step(nc_model *m, nc_optim *o, const nc_train_step_cfg *c, nc_train_step_out *out);

/* Sets flush-to-zero and denormals-are-zero (x86 MXCSR) on the calling thread and on every
 * thread of the OpenMP pool (call it after omp_set_num_threads, before training). Tiny
 * optimizer moments and activations otherwise become denormal floats, which cost ~100 cycles
 * per operation: measured here, d4 steps ran 4x slower for tens of steps (1.8 s -> 7 s) and the
 * losses were the same to 6 digits with the flush. No-op elsewhere. */
void nc_train_flush_denormals(void);

/* ----------------------------------------------------------------- loop state and timing */

/* Everything base_train keeps across a resume besides model, optimizer and data. */
typedef struct nc_train_loop_state {
  int64_t step;                  /* next step to run (= steps done)                        */
  double smooth_train_loss;      /* EMA accumulator (not debiased), starts at 0             */
  double min_val_bpb;            /* +inf until evaluated                                    */
  double val_bpb;                /* last val bpb, NaN until evaluated                       */
  double total_training_time;    /* seconds, counted for steps > NC_TRAIN_TIMING_WARMUP    */
} nc_train_loop_state;

/* step 0, EMA 0, min +inf, val NaN, time 0. */
nc_train_loop_state nc_train_loop_state_init(void);

/* After running step index s->step with mean loss `loss` and wall time dt: EMA with
 * beta 0.9, debiased by 1 - 0.9^(step+1) (returned); adds dt to total_training_time when
 * step > NC_TRAIN_TIMING_WARMUP. Does not advance s->step. */
double nc_train_ema_update(nc_train_loop_state *s, double loss, double dt);

/* base_train's ETA after step index `step`: (N - step) * total_training_time /
 * (step - 10); NaN while step <= 10. */
double nc_train_eta(const nc_train_loop_state *s, int64_t step, int64_t num_iterations);

/* MFU in percent: 100 * flops_per_token * tokens / dt / peak_flops (0 when peak <= 0 or
 * dt <= 0). */
double nc_train_mfu(int64_t flops_per_token, int64_t tokens, double dt, double peak_flops);

/* Peak fp32 FLOP/s of `threads` cores of this CPU: threads x clock x FLOPs per cycle, with
 * the clock from /sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq, else the largest
 * "cpu MHz" of /proc/cpuinfo, else 2.5 GHz; FLOPs per cycle = 2 FMA pipes x SIMD lanes x 2:
 * 64 with AVX-512F, 32 with AVX2+FMA, 16 with AVX, 8 otherwise. threads <= 0 = all online
 * CPUs. It is an upper bound (AVX-512 clocks lower; one FMA port on some parts): MFU is an
 * honest lower bound of the fraction used. desc[len] (may be NULL) gets e.g.
 * "2 cores x 3.10 GHz x 64 FLOP/cycle (avx512f)". */
double nc_cpu_peak_flops(int threads, char *desc, size_t len);

/* ----------------------------------------------------------------- checkpoint meta JSON */

/* nanochat's base meta (without "step" and "model_config", which nc_ckpt_save adds):
 *   {"val_bpb": x|null, "user_config": {...}, "device_batch_size", "max_seq_len",
 *    "total_batch_size", "num_iterations", "dataloader_state_dict": <nc_loader state>,
 *    "loop_state": {"min_val_bpb": x|null, "smooth_train_loss", "total_training_time"},
 *    "trainer": "nanochat-c"}
 * (+inf and NaN are written as null). Returns malloc'd compact JSON (caller frees) or NULL. */
char *nc_base_meta_json(const nc_base_opts *o, const nc_base_plan *p,
                        const nc_train_loop_state *s, const nc_loader_state *ls);

/* Reads the loop state and the loader state back from such meta (the "step" key included).
 * ls receives an owned state (nc_loader_state_free). NC_OK or NC_EINVAL with a message
 * naming the missing or malformed key. */
int nc_base_meta_parse(const char *json, nc_train_loop_state *s, nc_loader_state *ls, char *msg,
                       size_t msglen);

#ifdef __cplusplus
}
#endif
#endif /* NC_TRAIN_H */
