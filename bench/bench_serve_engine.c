/* bench_serve_engine.c — the in-process reference for bench/bench_serve.py: the SAME checkpoint,
 * tokenizer, chat prompts and engine configuration as nanochatd, but generations submitted to
 * nc_engine directly (callbacks only count), so the difference to the server's numbers is what
 * the service adds: gRPC, per-call state, streaming (and the client on the same machine).
 *
 *   bench_serve_engine --tokenizer FILE --dir CKPTDIR [--step S] --prompts FILE
 *                      [--streams 1,4,16] [--gen 64] [--slots 16] [--threads 0]
 *                      [--weights auto|bf16|bf16-dot|f32] [--reps 3]
 *
 * prompts: one user message per line (chat-rendered like Chat.Stream: <|bos|><|user_start|>
 * ... <|user_end|><|assistant_start|>); stream i uses line i mod n. Greedy, tools off, chat
 * mode, max_tokens = gen. Per S: the S requests are submitted at once; wall = first submit to
 * the last DONE; aggregate = completion tokens / wall; the median over reps is reported (and
 * every rep's), with the CPU time of every thread of the process per token (schedstat) for each
 * rep. Prints one JSON object.
 */
#include <dirent.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "nc_checkpoint.h"
#include "nc_engine.h"
#include "nc_err.h"
#include "nc_tokenizer.h"

typedef struct run_state {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
  long tokens;
  double t_last;
} run_state;

static int on_event(void *user, const nc_gen_event *ev) {
  run_state *s = user;
  pthread_mutex_lock(&s->mu);
  if (ev->kind == NC_GEN_TOKEN) {
    s->tokens++;
    s->t_last = nc_bench_now();
  } else if (ev->last) {
    s->done++;
    s->t_last = nc_bench_now();
    pthread_cond_broadcast(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  return 0;
}

/* CPU time of every thread of this process, ns (sum of /proc/self/task/N/schedstat run times). */
static double cpu_ns(void) {
  DIR *d = opendir("/proc/self/task");
  double sum = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[300];
    snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", e->d_name);
    FILE *f = fopen(path, "r");
    unsigned long long ns = 0;
    if (f && fscanf(f, "%llu", &ns) == 1) sum += (double)ns;
    if (f) fclose(f);
  }
  if (d) closedir(d);
  return sum;
}

static char **read_lines(const char *path, int *n) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  char **v = NULL, buf[65536];
  *n = 0;
  while (fgets(buf, sizeof buf, f)) {
    size_t l = strlen(buf);
    while (l && (buf[l - 1] == '\n' || buf[l - 1] == '\r')) buf[--l] = 0;
    if (!l) continue;
    v = realloc(v, (size_t)(*n + 1) * sizeof *v);
    v[(*n)++] = strdup(buf);
  }
  fclose(f);
  return v;
}

int main(int argc, char **argv) {
  const char *tokp = NULL, *dir = NULL, *prompts = NULL, *streams = "1,4,16", *weights = "auto";
  long long step = -1;
  int gen = 64, slots = 16, threads = 0, reps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--tokenizer")) tokp = v;
    else if (!strcmp(k, "--dir")) dir = v;
    else if (!strcmp(k, "--step")) step = atoll(v);
    else if (!strcmp(k, "--prompts")) prompts = v;
    else if (!strcmp(k, "--streams")) streams = v;
    else if (!strcmp(k, "--gen")) gen = atoi(v);
    else if (!strcmp(k, "--slots")) slots = atoi(v);
    else if (!strcmp(k, "--threads")) threads = atoi(v);
    else if (!strcmp(k, "--weights")) weights = v;
    else if (!strcmp(k, "--reps")) reps = atoi(v);
    else {
      fprintf(stderr, "unknown option %s\n", k);
      return 2;
    }
  }
  if (!tokp || !dir || !prompts || gen < 1 || reps < 1) {
    fprintf(stderr, "usage: bench_serve_engine --tokenizer F --dir D --prompts F [...]\n");
    return 2;
  }
  char msg[512];
  nc_tokenizer *tok;
  if (nc_tok_load(tokp, NULL, -1, &tok, msg, sizeof msg)) {
    fprintf(stderr, "tokenizer: %s\n", msg);
    return 1;
  }
  nc_special_ids sp;
  nc_ckpt_dir *d;
  nc_st_error e;
  nc_model *m = NULL;
  if (nc_tok_nanochat_specials(tok, &sp) || nc_ckpt_dir_open_path(dir, 0, &d, &e)) {
    fprintf(stderr, "tokenizer specials or checkpoint dir\n");
    return 1;
  }
  int64_t st = step;
  nc_ckpt_load_opts lo = {NULL, 1, nc_tok_vocab_size(tok)};
  if ((st < 0 && nc_ckpt_latest(d, &st, &e)) || nc_ckpt_load_model(d, st, &lo, &m, NULL, &e)) {
    fprintf(stderr, "load: %s\n", e.msg);
    return 1;
  }
  nc_ckpt_dir_close(d);
  int np = 0;
  char **lines = read_lines(prompts, &np);
  if (!lines || !np) {
    fprintf(stderr, "no prompts in %s\n", prompts);
    return 1;
  }
  nc_engine_config c = nc_engine_config_default();
  c.slots = slots;
  c.queue_limit = 64;
  c.threads = threads;
  c.weights = !strcmp(weights, "f32") ? NC_DECODE_F32 : !strcmp(weights, "bf16") ? NC_DECODE_BF16
              : !strcmp(weights, "bf16-dot") ? NC_DECODE_BF16_DOT : NC_DECODE_AUTO;
  c.tok = nc_tok_chat_iface(tok);
  c.sp = sp;
  nc_engine *eng;
  if (nc_engine_create(m, &c, &eng, msg, sizeof msg)) {
    fprintf(stderr, "engine: %s\n", msg);
    return 1;
  }
  nc_token_buf *pr = calloc((size_t)np, sizeof *pr);
  for (int i = 0; i < np; i++) {
    nc_chat_msg cm = {NC_ROLE_USER, lines[i], strlen(lines[i]), NULL, 0};
    if (nc_engine_render_chat(eng, &cm, 1, gen, &pr[i], msg, sizeof msg)) {
      fprintf(stderr, "prompt %d: %s\n", i, msg);
      return 1;
    }
  }
  nc_engine_stats es;
  nc_engine_get_stats(eng, &es);
  printf("{\"weights\": %d, \"slots\": %d, \"gen\": %d, \"omp_threads\": %d, \"runs\": [", (int)es.weights, slots,
         gen, threads ? threads : omp_get_max_threads());
  nc_gen_params p = nc_gen_params_default();
  p.mode = NC_GEN_CHAT;
  p.max_tokens = gen;
  p.sampling.temperature = 0;
  p.tools = 0;
  char *list = strdup(streams);
  int first = 1;
  for (char *tk = strtok(list, ","); tk; tk = strtok(NULL, ",")) {
    int S = atoi(tk);
    double *rates = calloc((size_t)reps, sizeof *rates), *cpu = calloc((size_t)reps, sizeof *cpu);
    long tokens = 0;
    printf("%s{\"streams\": %d, \"reps_tok_s\": [", first ? "" : ", ", S);
    first = 0;
    for (int r = 0; r < reps; r++) {
      run_state rs;
      memset(&rs, 0, sizeof rs);
      pthread_mutex_init(&rs.mu, NULL);
      pthread_cond_init(&rs.cv, NULL);
      double c0 = cpu_ns(), t0 = nc_bench_now();
      for (int i = 0; i < S; i++) {
        const nc_token_buf *b = &pr[i % np];
        if (nc_engine_submit(eng, b->ids, (int)b->n, &p, on_event, &rs, NULL, msg, sizeof msg)) {
          fprintf(stderr, "submit: %s\n", msg);
          return 1;
        }
      }
      pthread_mutex_lock(&rs.mu);
      while (rs.done < S) pthread_cond_wait(&rs.cv, &rs.mu);
      pthread_mutex_unlock(&rs.mu);
      rates[r] = (double)rs.tokens / (rs.t_last - t0);
      cpu[r] = (cpu_ns() - c0) / 1e3 / (double)rs.tokens; /* CPU us per token, every thread */
      tokens = rs.tokens;
      printf("%s%.1f", r ? ", " : "", rates[r]);
      pthread_mutex_destroy(&rs.mu);
      pthread_cond_destroy(&rs.cv);
    }
    printf("], \"cpu_us_per_token\": [");
    for (int r = 0; r < reps; r++) printf("%s%.2f", r ? ", " : "", cpu[r]);
    printf("], \"tokens\": %ld, \"aggregate_tok_s\": %.1f}", tokens, nc_bench_median(rates, reps));
    free(rates);
    free(cpu);
  }
  printf("]}\n");
  free(list);
  nc_engine_free(eng);
  for (int i = 0; i < np; i++) {
    nc_token_buf_free(&pr[i]);
    free(lines[i]);
  }
  free(pr);
  free(lines);
  nc_model_free(m);
  nc_tok_free(tok);
  return 0;
}
