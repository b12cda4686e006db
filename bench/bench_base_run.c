/* bench_base_run.c — the reference side of bench/bench_train_job.py: nanochat's base_train
 * loop (core/nc_base_train.h) called in-process, with no job, no events and no server, on the
 * same corpus, tokenizer and options the job gets. Prints one JSON object.
 *
 *   bench_base_run --corpus DIR --tokenizer FILE --ckpt-dir DIR [--depth 4] [--aspect 64]
 *                  [--head-dim 64] [--seq 256] [--window L] [--device-batch 8]
 *                  [--total-batch 4096] [--steps 30] [--eval-tokens 4096] [--threads 0]
 *
 * tokens_per_sec = training tokens / the sum of step times (what the job reports as its final
 * tokens_per_sec); wall_s = the whole nc_base_run call (setup, final eval, checkpoint).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "nc_base_train.h"
#include "nc_err.h"

int main(int argc, char **argv) {
  const char *corpus = NULL, *tokfile = NULL, *ckdir = NULL, *window = "L";
  int depth = 4, aspect = 64, head_dim = 64, seq = 256, dbatch = 8, threads = 0;
  long long total = 4096, steps = 30, eval_tokens = 4096;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--corpus")) corpus = v;
    else if (!strcmp(k, "--tokenizer")) tokfile = v;
    else if (!strcmp(k, "--ckpt-dir")) ckdir = v;
    else if (!strcmp(k, "--window")) window = v;
    else if (!strcmp(k, "--depth")) depth = atoi(v);
    else if (!strcmp(k, "--aspect")) aspect = atoi(v);
    else if (!strcmp(k, "--head-dim")) head_dim = atoi(v);
    else if (!strcmp(k, "--seq")) seq = atoi(v);
    else if (!strcmp(k, "--device-batch")) dbatch = atoi(v);
    else if (!strcmp(k, "--threads")) threads = atoi(v);
    else if (!strcmp(k, "--total-batch")) total = atoll(v);
    else if (!strcmp(k, "--steps")) steps = atoll(v);
    else if (!strcmp(k, "--eval-tokens")) eval_tokens = atoll(v);
    else {
      fprintf(stderr, "unknown option %s\n", k);
      return 2;
    }
  }
  if (!corpus || !tokfile || !ckdir) {
    fprintf(stderr, "usage: bench_base_run --corpus DIR --tokenizer FILE --ckpt-dir DIR [options]\n");
    return 2;
  }
  double t0 = nc_bench_now();
  char msg[1024];
  nc_tokenizer *tok;
  if (nc_tok_load(tokfile, NULL, -1, &tok, msg, sizeof msg) != NC_OK) {
    fprintf(stderr, "tokenizer: %s\n", msg);
    return 1;
  }
  nc_base_run_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.opts = nc_base_opts_default();
  cfg.opts.depth = depth;
  cfg.opts.aspect_ratio = aspect;
  cfg.opts.head_dim = head_dim;
  cfg.opts.max_seq_len = seq;
  snprintf(cfg.opts.window_pattern, sizeof cfg.opts.window_pattern, "%s", window);
  cfg.opts.device_batch_size = dbatch;
  cfg.opts.total_batch_size = total;
  cfg.opts.num_iterations = steps;
  cfg.opts.eval_every = -1;
  cfg.opts.eval_tokens = eval_tokens;
  cfg.tok = tok;
  cfg.corpus_dir = corpus;
  cfg.ckpt_dir = ckdir;
  cfg.resume_from_step = -1;
  cfg.threads = threads;
  nc_base_result res;
  int rc = nc_base_run(&cfg, NULL, &res, msg, sizeof msg);
  double wall = nc_bench_now() - t0;
  nc_tok_free(tok);
  if (rc != NC_OK) {
    fprintf(stderr, "nc_base_run: %s\n", msg);
    return 1;
  }
  printf("{\"impl\":\"core\",\"steps\":%lld,\"tokens\":%lld,\"tokens_per_sec\":%.1f,\"train_s\":%.3f,"
         "\"run_s\":%.3f,\"wall_s\":%.3f,\"final_loss\":%.6f,\"val_bpb\":%.6f,\"params\":%lld,"
         "\"flops_per_token\":%lld}\n",
         (long long)res.final_step, (long long)(res.final_step * res.plan.total_batch_size), res.tokens_per_sec,
         res.train_seconds, res.wall_seconds, wall, res.final_loss, res.val_bpb, (long long)res.plan.params.total,
         (long long)res.plan.flops_per_token);
  return 0;
}
