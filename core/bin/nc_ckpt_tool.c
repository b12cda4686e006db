/* nc_ckpt_tool — tiny checkpoints for tests and benchmarks, and reference computations on them
 * straight from libnccore (no server, no engine): the integration tests compare nanochatd's
 * answers with these.
 *
 *   nc_ckpt_tool make   --tokenizer FILE --root DIR --phase base|sft|rl --tag TAG [--step 0]
 *                       (--depth D [--aspect 64] [--head-dim 128] | --config JSON)
 *                       [--seq-len 256] [--window L] [--seed 1] [--noise 0.05] [--bf16]
 *       A nanochat-initialised model (seed) plus uniform noise of scale X on every tensor (so
 *       no path is trivially zero: nanochat zeroes c_proj), vocab = the tokenizer's, saved with
 *       nc_ckpt_save under ROOT/<phase_dir>/TAG/. Prints {"path", "sha256", "parameters"}.
 *   nc_ckpt_tool greedy --tokenizer FILE --dir CKPTDIR [--step S] (--chat TEXT | --raw TEXT)
 *                       [--max-tokens 16]
 *       Greedy decoding by the plain full forward (nc_model_forward over the whole sequence at
 *       every step, no KV cache, fp32): chat = render_for_completion of one user message, stop
 *       at <|assistant_end|>/<|bos|>; raw = <|bos|> + text, stop at <|bos|>. No tool calls.
 *       Prints {"prompt": [ids], "tokens": [ids]}.
 *   nc_ckpt_tool bpb    --tokenizer FILE --dir CKPTDIR [--step S] --corpus DIR [--split val]
 *                       [--B 4] [--steps 50]
 *       nc_eval_bpb over the split read once with the BOS best-fit loader (B x sequence_len).
 *       Prints {"bpb", "tokens", "bytes"} (%.17g).
 * Exit status: 0 ok, 1 failure (message on stderr), 2 usage.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nc_checkpoint.h"
#include "nc_corpus.h"
#include "nc_err.h"
#include "nc_eval.h"
#include "nc_sample.h"
#include "nc_tokenizer.h"

typedef struct args {
  const char *cmd, *tokenizer, *root, *phase, *tag, *config, *window, *dir, *chat, *raw, *corpus, *split;
  long long step;
  int depth, aspect, head_dim, seq_len, max_tokens, B, steps, bf16;
  unsigned long long seed;
  double noise;
} args;

static int usage(void) {
  fprintf(stderr, "usage: nc_ckpt_tool make|greedy|bpb ... (see the comment at the top of nc_ckpt_tool.c)\n");
  return 2;
}

static int fail(const char *what, const char *msg) {
  fprintf(stderr, "nc_ckpt_tool: %s: %s\n", what, msg);
  return 1;
}

static int parse(int argc, char **argv, args *a) {
  memset(a, 0, sizeof *a);
  a->step = -1;
  a->aspect = 64;
  a->head_dim = 128;
  a->seq_len = 256;
  a->window = "L";
  a->seed = 1;
  a->noise = 0.05;
  a->max_tokens = 16;
  a->B = 4;
  a->steps = 50;
  a->split = "val";
  if (argc < 2) return -1;
  a->cmd = argv[1];
  for (int i = 2; i < argc; i++) {
    const char *k = argv[i];
    if (!strcmp(k, "--bf16")) {
      a->bf16 = 1;
      continue;
    }
    if (i + 1 >= argc) return -1;
    const char *v = argv[++i];
    if (!strcmp(k, "--tokenizer")) a->tokenizer = v;
    else if (!strcmp(k, "--root")) a->root = v;
    else if (!strcmp(k, "--phase")) a->phase = v;
    else if (!strcmp(k, "--tag")) a->tag = v;
    else if (!strcmp(k, "--config")) a->config = v;
    else if (!strcmp(k, "--window")) a->window = v;
    else if (!strcmp(k, "--dir")) a->dir = v;
    else if (!strcmp(k, "--chat")) a->chat = v;
    else if (!strcmp(k, "--raw")) a->raw = v;
    else if (!strcmp(k, "--corpus")) a->corpus = v;
    else if (!strcmp(k, "--split")) a->split = v;
    else if (!strcmp(k, "--step")) a->step = atoll(v);
    else if (!strcmp(k, "--depth")) a->depth = atoi(v);
    else if (!strcmp(k, "--aspect")) a->aspect = atoi(v);
    else if (!strcmp(k, "--head-dim")) a->head_dim = atoi(v);
    else if (!strcmp(k, "--seq-len")) a->seq_len = atoi(v);
    else if (!strcmp(k, "--max-tokens")) a->max_tokens = atoi(v);
    else if (!strcmp(k, "--B")) a->B = atoi(v);
    else if (!strcmp(k, "--steps")) a->steps = atoi(v);
    else if (!strcmp(k, "--seed")) a->seed = strtoull(v, NULL, 10);
    else if (!strcmp(k, "--noise")) a->noise = atof(v);
    else return -1;
  }
  return a->tokenizer ? 0 : -1;
}

/* ---- make ---------------------------------------------------------------------------------- */

static int config_of(const args *a, int vocab, nc_model_config *cfg) {
  char msg[256];
  if (a->config) {
    json_error_t je;
    json_t *o = json_loads(a->config, 0, &je);
    if (!o || !json_is_object(o)) return fail("--config", "not a JSON object");
    json_object_set_new(o, "vocab_size", json_integer(vocab));
    int rc = nc_model_config_from_json(o, cfg, msg, sizeof msg);
    json_decref(o);
    return rc ? fail("--config", msg) : 0;
  }
  if (nc_model_config_from_depth(a->depth, a->aspect, a->head_dim, a->seq_len, vocab, cfg, msg, sizeof msg))
    return fail("--depth", msg);
  snprintf(cfg->window_pattern, sizeof cfg->window_pattern, "%s", a->window);
  return nc_model_config_validate(cfg, msg, sizeof msg) ? fail("--window", msg) : 0;
}

static int cmd_make(const args *a, const nc_tokenizer *tok) {
  if (!a->root || !a->phase || !a->tag || (!a->config && a->depth < 1)) return usage();
  nc_model_config cfg;
  if (config_of(a, nc_tok_vocab_size(tok), &cfg)) return 1;
  nc_model *m;
  char msg[256];
  if (nc_model_create(&cfg, &m, msg, sizeof msg)) return fail("model", msg);
  nc_model_init_weights(m, a->seed);
  int64_t n;
  float *w = nc_model_param_buffer(m, &n);
  nc_rng rng;
  nc_rng_seed(&rng, a->seed ^ 0x5eedULL);
  for (int64_t i = 0; i < n; i++) w[i] += (float)(a->noise * (2.0 * nc_rng_uniform(&rng) - 1.0));
  nc_ckpt_dir *d;
  nc_st_error e;
  int rc = nc_ckpt_dir_open(a->root, a->phase, a->tag, 1, &d, &e);
  if (rc) {
    nc_model_free(m);
    return fail("checkpoint dir", e.msg);
  }
  long long step = a->step < 0 ? 0 : a->step;
  char sha[65] = "";
  nc_ckpt_save_opts so = {a->bf16, NULL, NULL};
  rc = nc_ckpt_save(d, step, m, NULL, "{\"source\":\"nc_ckpt_tool\"}", &so, sha, &e);
  nc_ckpt_dir_close(d);
  nc_param_counts pc = nc_model_config_param_counts(&cfg);
  nc_model_free(m);
  if (rc) return fail("save", e.msg);
  printf("{\"step\": %lld, \"sha256\": \"%s\", \"parameters\": %lld}\n", step, sha, (long long)pc.total);
  return 0;
}

/* ---- loading ------------------------------------------------------------------------------ */

static int load(const args *a, const nc_tokenizer *tok, nc_model **m) {
  if (!a->dir) return usage();
  nc_ckpt_dir *d;
  nc_st_error e;
  if (nc_ckpt_dir_open_path(a->dir, 0, &d, &e)) return fail("--dir", e.msg);
  int64_t step = a->step;
  int rc = step < 0 ? nc_ckpt_latest(d, &step, &e) : NC_OK;
  nc_ckpt_load_opts lo = {NULL, 1, nc_tok_vocab_size(tok)};
  if (!rc) rc = nc_ckpt_load_model(d, step, &lo, m, NULL, &e);
  nc_ckpt_dir_close(d);
  return rc ? fail("load", e.msg) : 0;
}

static void print_ids(const char *key, const int32_t *v, size_t n, int comma) {
  printf("\"%s\": [", key);
  for (size_t i = 0; i < n; i++) printf("%s%d", i ? ", " : "", v[i]);
  printf("]%s", comma ? ", " : "");
}

/* ---- greedy ------------------------------------------------------------------------------ */

static int cmd_greedy(const args *a, const nc_tokenizer *tok) {
  if (!a->chat == !a->raw || a->max_tokens < 1) return usage();
  nc_special_ids sp;
  if (nc_tok_nanochat_specials(tok, &sp)) return fail("tokenizer", "no nanochat specials");
  nc_model *m;
  if (load(a, tok, &m)) return 1;
  nc_tok_iface ti = nc_tok_chat_iface(tok);
  nc_token_buf buf = {0};
  char err[256] = "";
  int rc;
  if (a->chat) {
    nc_chat_msg msg = {NC_ROLE_USER, a->chat, strlen(a->chat), NULL, 0};
    rc = nc_chat_render(&ti, &sp, &msg, 1, NC_RENDER_FOR_COMPLETION, 0, &buf, err, sizeof err);
  } else {
    size_t len = strlen(a->raw);
    int32_t *ids = malloc((len + 2) * sizeof *ids);
    long n = ids ? nc_tok_encode(tok, a->raw, len, NC_TOK_PREPEND_BOS, ids, len + 1) : NC_ENOMEM;
    rc = n < 0 ? (int)n : NC_OK;
    for (long i = 0; !rc && i < n; i++) rc = nc_token_buf_push(&buf, ids[i], 0);
    free(ids);
  }
  if (rc) {
    nc_model_free(m);
    return fail("prompt", err[0] ? err : nc_strerror(rc));
  }
  const nc_model_config *cfg = nc_model_get_config(m);
  size_t n_prompt = buf.n, V = (size_t)cfg->vocab_size;
  float *logits = malloc((n_prompt + (size_t)a->max_tokens) * V * sizeof *logits);
  if (!logits) rc = NC_ENOMEM;
  for (int k = 0; !rc && k < a->max_tokens; k++) {
    rc = nc_model_forward(m, buf.ids, NULL, 1, (int)buf.n, NULL, NULL, logits);
    if (rc) break;
    const float *last = logits + (buf.n - 1) * V;
    int32_t best = 0;
    for (size_t v = 1; v < V; v++)
      if (last[v] > last[best]) best = (int32_t)v;
    if (best == sp.bos || (a->chat && best == sp.assistant_end)) break;
    rc = nc_token_buf_push(&buf, best, 1);
  }
  free(logits);
  nc_model_free(m);
  if (rc) {
    nc_token_buf_free(&buf);
    return fail("forward", nc_strerror(rc));
  }
  printf("{");
  print_ids("prompt", buf.ids, n_prompt, 1);
  print_ids("tokens", buf.ids + n_prompt, buf.n - n_prompt, 0);
  printf("}\n");
  nc_token_buf_free(&buf);
  return 0;
}

/* ---- bpb -------------------------------------------------------------------------------- */

static int cmd_bpb(const args *a, const nc_tokenizer *tok) {
  if (!a->corpus || a->B < 1 || a->steps < 1) return usage();
  nc_special_ids sp;
  if (nc_tok_nanochat_specials(tok, &sp)) return fail("tokenizer", "no nanochat specials");
  nc_model *m;
  if (load(a, tok, &m)) return 1;
  nc_corpus_opts co = {.dir = a->corpus, .split = a->split};
  nc_corpus *c;
  char err[512];
  if (nc_corpus_open(&co, &c, err, sizeof err)) {
    nc_model_free(m);
    return fail("corpus", err);
  }
  int32_t V = nc_tok_vocab_size(tok);
  int32_t *tb = malloc((size_t)V * sizeof *tb);
  nc_tok_iface ti = nc_tok_chat_iface(tok);
  nc_corpus_source cs = {c, &ti, sp.bos, 0};
  nc_loader_cfg lc = {a->B, nc_model_get_config(m)->sequence_len, 1000};
  nc_loader *ld = NULL;
  int rc = tb ? nc_tok_token_bytes(tok, tb, (size_t)V) : NC_ENOMEM;
  if (!rc) rc = nc_loader_create(lc, nc_corpus_doc_source(&cs), &ld);
  nc_bpb_acc acc;
  if (!rc) rc = nc_eval_bpb(m, ld, lc.B, lc.T, a->steps, tb, &acc, NULL, NULL);
  nc_loader_free(ld);
  nc_corpus_close(c);
  free(tb);
  nc_model_free(m);
  if (rc) return fail("bpb", nc_strerror(rc));
  printf("{\"bpb\": %.17g, \"tokens\": %llu, \"bytes\": %llu}\n", nc_bpb_value(&acc),
         (unsigned long long)acc.tokens, (unsigned long long)acc.bytes);
  return 0;
}

int main(int argc, char **argv) {
  args a;
  if (parse(argc, argv, &a)) return usage();
  nc_tokenizer *tok;
  char msg[512];
  if (nc_tok_load(a.tokenizer, NULL, -1, &tok, msg, sizeof msg)) return fail("--tokenizer", msg);
  int rc;
  if (!strcmp(a.cmd, "make")) rc = cmd_make(&a, tok);
  else if (!strcmp(a.cmd, "greedy")) rc = cmd_greedy(&a, tok);
  else if (!strcmp(a.cmd, "bpb")) rc = cmd_bpb(&a, tok);
  else rc = usage();
  nc_tok_free(tok);
  return rc;
}
