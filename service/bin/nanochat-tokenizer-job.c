/* nanochat-tokenizer-job — the Train.Tokenizer job (JobKind JOB_TOKENIZER): trains nanochat's
 * BPE tokenizer (core/nc_tokenizer.h, rustbpe's algorithm) on the train split of a corpus and
 * installs it as <data-dir>/tokenizer/tokenizer.txt, which nanochatd picks up for Tokenizer.*
 * and later training. A child program of the job manager (protocol: service/nc_jobio.h).
 *
 * Request: nanochat.v1.TrainTokenizerRequest {max_chars, doc_cap, vocab_size, dataset}.
 * Corpus: dataset "" = <data-dir>/corpus (scripts/build-corpus), else <data-dir>/datasets/NAME.
 *
 * Events: LOG "training a V-token tokenizer on DIR", PROGRESS {step = merges done,
 * total_steps = merges to do, elapsed_s, eta_s} every 256 merges, EVAL {vocab_size, merges,
 * docs, chars, train_seconds, val_bytes_per_token} and LOG "saved ...". The previous tokenizer
 * file (if any) is kept as tokenizer.prev.txt. SIGTERM: training stops at the next progress
 * point, nothing is installed, exit 0 (the job ends CANCELLED). Exit codes: 0 done or stopped,
 * 1 failed (the last LOG line says why), 2 bad arguments/request, 3 the server went away. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nc_corpus.h"
#include "nc_err.h"
#include "nc_jobio.h"
#include "nc_tokenizer.h"

typedef struct ctx {
  nc_jobio *io;
  nc_corpus *corpus;
  double t0;
  int lost;   /* the event pipe closed */
} ctx;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int next_doc(void *arg, const char **text, size_t *len) {
  ctx *c = arg;
  nc_doc_pos pos;
  int rc = nc_corpus_next_text(c->corpus, 0, text, len, &pos);
  if (rc == NC_ENOTFOUND) return 0;
  if (rc) return rc;
  if (nc_jobio_stop_requested()) return NC_ECANCELED;
  return 1;
}

static int on_progress(void *arg, int32_t done, int32_t total) {
  ctx *c = arg;
  double el = now_s() - c->t0;
  Nanochat__V1__Progress p = NANOCHAT__V1__PROGRESS__INIT;
  p.has_step = p.has_total_steps = p.has_elapsed_s = p.has_eta_s = 1;
  p.step = done;
  p.total_steps = total;
  p.elapsed_s = el;
  p.eta_s = done > 0 ? el / done * (total - done) : 0.0;
  if (nc_jobio_progress(c->io, &p) != NC_OK) c->lost = 1;
  return nc_jobio_stop_requested() || c->lost;
}

/* Bytes per token on (up to 2 MB of) the val split, or the train split when there is none. */
static double bytes_per_token(const nc_tokenizer *t, const char *dir) {
  nc_corpus_opts o = {.dir = dir, .split = "val"};
  nc_corpus *c;
  char err[256];
  if (nc_corpus_open(&o, &c, err, sizeof err) != NC_OK) {
    o.split = "train";
    if (nc_corpus_open(&o, &c, err, sizeof err) != NC_OK) return 0.0;
  }
  uint64_t bytes = 0, tokens = 0;
  const char *text;
  size_t len;
  nc_doc_pos pos;
  while (bytes < (2u << 20) && nc_corpus_next_text(c, 0, &text, &len, &pos) == NC_OK) {
    long n = nc_tok_encode_ordinary(t, text, len, NULL, 0);
    if (n < 0) continue;
    bytes += len;
    tokens += (uint64_t)n;
  }
  nc_corpus_close(c);
  return tokens ? (double)bytes / (double)tokens : 0.0;
}

int main(int argc, char **argv) {
  nc_jobio_args a;
  ProtobufCMessage *msg;
  if (nc_jobio_start(argc, argv, "nanochat-tokenizer-job", &nanochat__v1__train_tokenizer_request__descriptor, &a, &msg) != NC_OK) return 2;
  Nanochat__V1__TrainTokenizerRequest *req = (Nanochat__V1__TrainTokenizerRequest *)msg;
  char err[512];
  nc_jobio *io;
  if (nc_jobio_open(&a, &io) != NC_OK) return 2;
  int exit_code = 1;
  ctx c = {io, NULL, now_s(), 0};
  nc_tokenizer *tok = NULL;
  char dir[4096], out_dir[4096], path[4200], prev[4200];
  const char *ds = req->dataset ? req->dataset->name : NULL;
  if (nc_corpus_resolve(a.data_dir, ds, dir, sizeof dir) != NC_OK) {
    nc_jobio_log(io, "dataset: invalid name");
    goto done;
  }
  nc_corpus_opts co = {.dir = dir, .split = "train"};
  if (nc_corpus_open(&co, &c.corpus, err, sizeof err) != NC_OK) {
    nc_jobio_log(io, "%s%s", err, ds && ds[0] ? "" : " (build the default corpus with scripts/build-corpus)");
    goto done;
  }
  int32_t vocab = req->has_vocab_size ? req->vocab_size : 32768;
  if (nc_jobio_log(io, "training a %d-token tokenizer on %s (%zu files)", (int)vocab, dir,
                   nc_corpus_files(c.corpus)) != NC_OK) {
    exit_code = 3;
    goto done;
  }
  nc_tok_train_opts to = {0};
  to.vocab_size = vocab;
  to.doc_cap = req->has_doc_cap ? (uint64_t)req->doc_cap : 10000;
  to.max_chars = req->has_max_chars ? (uint64_t)req->max_chars : 2000000000ull;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  to.threads = ncpu > 0 ? (int)ncpu : 1;
  to.progress = on_progress;
  to.progress_ctx = &c;
  nc_tok_train_stats st;
  memset(&st, 0, sizeof st);
  int rc = nc_tok_train(&to, next_doc, &c, &tok, &st, err, sizeof err);
  if (c.lost) {
    exit_code = 3;
    goto done;
  }
  if (rc == NC_ECANCELED || nc_jobio_stop_requested()) {
    nc_jobio_log(io, "stopped before the end; no tokenizer was installed");
    exit_code = 0;
    goto done;
  }
  if (rc != NC_OK) {
    nc_jobio_log(io, "tokenizer training failed: %s", err[0] ? err : nc_strerror(rc));
    goto done;
  }
  if (st.docs == 0) {
    nc_jobio_log(io, "the corpus at %s has no documents", dir);
    goto done;
  }
  snprintf(out_dir, sizeof out_dir, "%s/tokenizer", a.data_dir);
  if (mkdir(out_dir, 0700) != 0 && errno != EEXIST) {
    nc_jobio_log(io, "cannot create %s: %s", out_dir, strerror(errno));
    goto done;
  }
  snprintf(path, sizeof path, "%s/tokenizer.txt", out_dir);
  snprintf(prev, sizeof prev, "%s/tokenizer.prev.txt", out_dir);
  if (access(path, F_OK) == 0 && link(path, prev) != 0 && errno == EEXIST) {
    unlink(prev);
    if (link(path, prev) != 0) nc_jobio_log(io, "note: could not keep the previous tokenizer");
  }
  rc = nc_tok_save(tok, path, err, sizeof err);   /* temp file, fsync, rename */
  if (rc != NC_OK) {
    nc_jobio_log(io, "cannot save %s: %s", path, err);
    goto done;
  }
  double bpt = bytes_per_token(tok, dir);
  const char *names[] = {"vocab_size", "merges", "docs", "chars", "train_seconds", "val_bytes_per_token"};
  double vals[] = {(double)nc_tok_vocab_size(tok), (double)st.merges, (double)st.docs, (double)st.chars,
                   now_s() - c.t0, bpt};
  if (nc_jobio_metrics(io, names, vals, 6, "tokenizer") != NC_OK ||
      nc_jobio_log(io, "saved tokenizer/tokenizer.txt: %d tokens, %d merges, %.2f bytes/token",
                   (int)nc_tok_vocab_size(tok), (int)st.merges, bpt) != NC_OK) {
    exit_code = 3;
    goto done;
  }
  exit_code = 0;
done:
  nc_tok_free(tok);
  nc_corpus_close(c.corpus);
  nc_jobio_close(io);
  nanochat__v1__train_tokenizer_request__free_unpacked(req, NULL);
  return exit_code;
}
