/* nc_tok_train — trains a nanochat BPE tokenizer from text files (nc_tok_train in
 * core/nc_tokenizer.h; nanochat's scripts/tok_train.py with rustbpe).
 *
 *   nc_tok_train -o OUT [options] FILE...
 *     --vocab-size N   ranks + the nine specials (default 32768)
 *     --doc-cap N      code points kept of each document (default 10000; 0 = no cap)
 *     --max-chars N    stop after the document that passes N code points (default 2e9)
 *     --threads N      splitting/counting threads (default: online CPUs, at most 8)
 *     --docs MODE      what a document is: file (each FILE, default), blank (paragraphs split
 *                      at blank lines), line (each line), record ("<len>\n<bytes>\n" records)
 *     --pattern P      split regex (default nanochat's); --dialect rust|js
 *     --quiet          no progress on stderr
 *
 * Writes OUT atomically in the tokenizer file format and prints one JSON line of statistics.
 * Exit status 0, 1 on errors, 2 on usage errors.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nc_err.h"
#include "nc_tokenizer.h"

typedef enum { DOC_FILE, DOC_BLANK, DOC_LINE, DOC_RECORD } doc_mode;

typedef struct src {
  char **files;
  int nfiles, cur;
  doc_mode mode;
  char *buf;
  size_t len, pos;
  int err;
} src;

static int load(src *s) {
  free(s->buf);
  s->buf = NULL;
  s->len = s->pos = 0;
  if (s->cur >= s->nfiles) return 0;
  const char *path = s->files[s->cur++];
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "nc_tok_train: cannot open %s\n", path);
    s->err = 1;
    return -1;
  }
  size_t cap = 1 << 20;
  s->buf = malloc(cap);
  for (;;) {
    if (!s->buf) break;
    if (s->len == cap) {
      char *p = realloc(s->buf, cap *= 2);
      if (!p) {
        free(s->buf);
        s->buf = NULL;
        break;
      }
      s->buf = p;
    }
    size_t k = fread(s->buf + s->len, 1, cap - s->len, f);
    s->len += k;
    if (!k) break;
  }
  int bad = ferror(f) || !s->buf;
  fclose(f);
  if (bad) {
    fprintf(stderr, "nc_tok_train: cannot read %s\n", path);
    s->err = 1;
    return -1;
  }
  return 1;
}

static int next_doc(void *ctx, const char **text, size_t *len) {
  src *s = ctx;
  for (;;) {
    if (!s->buf || s->pos >= s->len) {
      int r = load(s);
      if (r <= 0) return r < 0 ? NC_EIO : 0;
      if (s->mode == DOC_FILE) {
        *text = s->buf;
        *len = s->len;
        s->pos = s->len;
        return 1;
      }
      continue;
    }
    const char *p = s->buf + s->pos;
    size_t left = s->len - s->pos, n;
    if (s->mode == DOC_LINE) {
      const char *nl = memchr(p, '\n', left);
      n = nl ? (size_t)(nl - p) + 1 : left;
    } else if (s->mode == DOC_BLANK) {
      const char *e = memmem(p, left, "\n\n", 2);
      n = e ? (size_t)(e - p) + 2 : left;
    } else {
      char *end;
      unsigned long long L = strtoull(p, &end, 10);
      if (end == p || *end != '\n' || (size_t)(end - p) + 1 + L + 1 > left || end[1 + L] != '\n') {
        fprintf(stderr, "nc_tok_train: %s: bad record at byte %zu\n", s->files[s->cur - 1], s->pos);
        return NC_EINVAL;
      }
      *text = end + 1;
      *len = (size_t)L;
      s->pos += (size_t)(end - p) + 1 + L + 1;
      return 1;
    }
    *text = p;
    *len = n;
    s->pos += n;
    return 1;
  }
}

static int quiet;
static int progress(void *ctx, int32_t done, int32_t total) {
  (void)ctx;
  if (!quiet && (done % 4096 == 0 || done == total)) fprintf(stderr, "nc_tok_train: %d / %d merges\n", done, total);
  return 0;
}

static int usage(void) {
  fputs("usage: nc_tok_train -o OUT [--vocab-size N] [--doc-cap N] [--max-chars N] [--threads N]\n"
        "                    [--docs file|blank|line|record] [--pattern P] [--dialect rust|js] [--quiet] FILE...\n",
        stderr);
  return 2;
}

static int parse_u64(const char *s, uint64_t *out) {
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (!*s || *end || s[0] == '-') return -1;
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  nc_tok_train_opts o;
  memset(&o, 0, sizeof o);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  o.threads = cpus < 1 ? 1 : cpus > 8 ? 8 : (int)cpus;
  const char *outp = NULL;
  src s;
  memset(&s, 0, sizeof s);
  s.files = calloc((size_t)argc, sizeof *s.files);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    uint64_t x;
    if (strcmp(a, "--quiet") == 0) {
      quiet = 1;
      continue;
    }
    if (a[0] != '-' || strcmp(a, "-") == 0) {
      s.files[s.nfiles++] = argv[i];
      continue;
    }
    if (!v) return usage();
    i++;
    if (strcmp(a, "-o") == 0) outp = v;
    else if (strcmp(a, "--vocab-size") == 0 && !parse_u64(v, &x) && x <= NC_TOK_MAX_VOCAB) o.vocab_size = (int32_t)x;
    else if (strcmp(a, "--doc-cap") == 0 && !parse_u64(v, &x)) o.doc_cap = x ? x : UINT64_MAX;
    else if (strcmp(a, "--max-chars") == 0 && !parse_u64(v, &x) && x > 0) o.max_chars = x;
    else if (strcmp(a, "--threads") == 0 && !parse_u64(v, &x) && x >= 1 && x <= 64) o.threads = (int)x;
    else if (strcmp(a, "--pattern") == 0) o.pattern = v;
    else if (strcmp(a, "--dialect") == 0 && (!strcmp(v, "rust") || !strcmp(v, "js")))
      o.dialect = !strcmp(v, "js") ? NC_TOK_DIALECT_JS : NC_TOK_DIALECT_RUST;
    else if (strcmp(a, "--docs") == 0 && !strcmp(v, "file")) s.mode = DOC_FILE;
    else if (strcmp(a, "--docs") == 0 && !strcmp(v, "blank")) s.mode = DOC_BLANK;
    else if (strcmp(a, "--docs") == 0 && !strcmp(v, "line")) s.mode = DOC_LINE;
    else if (strcmp(a, "--docs") == 0 && !strcmp(v, "record")) s.mode = DOC_RECORD;
    else return usage();
  }
  if (!outp || s.nfiles == 0) return usage();
  o.progress = progress;
  nc_tokenizer *t = NULL;
  nc_tok_train_stats st;
  char msg[512] = "";
  int rc = nc_tok_train(&o, next_doc, &s, &t, &st, msg, sizeof msg);
  free(s.buf);
  if (rc != NC_OK) {
    fprintf(stderr, "nc_tok_train: %s\n", msg[0] ? msg : nc_strerror(rc));
    free(s.files);
    return 1;
  }
  rc = nc_tok_save(t, outp, msg, sizeof msg);
  if (rc != NC_OK) fprintf(stderr, "nc_tok_train: %s\n", msg);
  else
    printf("{\"vocab_size\": %d, \"merges\": %d, \"docs\": %llu, \"chars\": %llu, \"bytes\": %llu, "
           "\"invalid_bytes\": %llu, \"chunks\": %llu, \"unique_chunks\": %llu, \"duplicate_tokens\": %d, "
           "\"threads\": %d, \"count_seconds\": %.3f, \"merge_seconds\": %.3f}\n",
           (int)nc_tok_vocab_size(t), (int)st.merges, (unsigned long long)st.docs,
           (unsigned long long)st.chars, (unsigned long long)st.bytes, (unsigned long long)st.invalid_bytes,
           (unsigned long long)st.chunks, (unsigned long long)st.unique_chunks, (int)st.duplicate_tokens, o.threads,
           st.count_seconds, st.merge_seconds);
  nc_tok_free(t);
  free(s.files);
  return rc == NC_OK ? 0 : 1;
}
