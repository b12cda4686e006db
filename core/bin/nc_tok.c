/* nc_tok — command-line access to the tokenizer (tests, benchmarks, inspection).
 *
 *   nc_tok info    TOKFILE                         vocab size, ranks, specials, pattern (JSON)
 *   nc_tok encode  TOKFILE RECORDS OUT [--special] [--bos] [--dialect rust|js]
 *                                                  one line of space-separated ids per record
 *   nc_tok decode  TOKFILE IDLINES OUT [--raw]     one record per line of ids (UTF-8 repaired
 *                                                  like tiktoken, or --raw bytes)
 *   nc_tok stream  TOKFILE IDLINES OUT             like decode, through the streaming decoder
 *                                                  one id at a time (must equal decode)
 *   nc_tok bench   TOKFILE RECORDS [--threads N] [--repeat R] [--dialect rust|js]
 *                                                  encode throughput, JSON with an id hash
 * Every command also takes --pattern REGEX (replaces the file's split pattern) and
 * --dialect rust|js (replaces its \s dialect).
 *
 * RECORDS files hold texts as "<byte length>\n<bytes>\n" repeated (any bytes, so \r\n runs
 * and NULs survive); OUT of decode is in the same format. The id hash is FNV-1a 32 over each
 * id + 1 and a 0 after every record (bench/tok_ref.mjs computes the same for js-tiktoken).
 * Exit status 0 on success, 1 on errors (message on stderr), 2 on usage errors.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nc_err.h"
#include "nc_tokenizer.h"

static int usage(void) {
  fputs("usage: nc_tok info|encode|decode|stream|bench TOKFILE ... (see core/bin/nc_tok.c)\n", stderr);
  return 2;
}

static char *read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 20, len = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (!buf) break;
    if (len == cap) {
      char *p = realloc(buf, cap *= 2);
      if (!p) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = p;
    }
    size_t k = fread(buf + len, 1, cap - len, f);
    len += k;
    if (k == 0) break;
  }
  fclose(f);
  *n = len;
  return buf;
}

typedef struct records {
  const char **text;
  size_t *len;
  size_t n;
} records;

static int parse_records(char *buf, size_t n, records *r) {
  size_t cap = 1024;
  r->text = malloc(cap * sizeof *r->text);
  r->len = malloc(cap * sizeof *r->len);
  r->n = 0;
  size_t pos = 0;
  while (pos < n) {
    char *end;
    unsigned long long L = strtoull(buf + pos, &end, 10);
    if (end == buf + pos || *end != '\n' || (size_t)(end - buf) + 1 + L + 1 > n || end[1 + L] != '\n')
      return -1;
    if (r->n == cap) {
      cap *= 2;
      r->text = realloc(r->text, cap * sizeof *r->text);
      r->len = realloc(r->len, cap * sizeof *r->len);
      if (!r->text || !r->len) return -1;
    }
    r->text[r->n] = end + 1;
    r->len[r->n] = (size_t)L;
    r->n++;
    pos = (size_t)(end - buf) + 1 + L + 1;
  }
  return 0;
}

static double clock_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int has_flag(int argc, char **argv, const char *f) {
  for (int i = 0; i < argc; i++)
    if (strcmp(argv[i], f) == 0) return 1;
  return 0;
}

static const char *flag_value(int argc, char **argv, const char *f) {
  for (int i = 0; i + 1 < argc; i++)
    if (strcmp(argv[i], f) == 0) return argv[i + 1];
  return NULL;
}

static void json_str(FILE *f, const char *s, size_t n) {
  fputc('"', f);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

static int cmd_info(nc_tokenizer *t) {
  printf("{\"vocab_size\": %d, \"n_ranks\": %d, \"dialect\": \"%s\", \"pattern\": ", (int)nc_tok_vocab_size(t),
         (int)nc_tok_n_ranks(t), nc_tok_get_dialect(t) == NC_TOK_DIALECT_JS ? "js" : "rust");
  json_str(stdout, nc_tok_pattern(t), strlen(nc_tok_pattern(t)));
  printf(", \"specials\": {");
  for (int i = 0; i < nc_tok_n_specials(t); i++) {
    const char *s;
    size_t n;
    int32_t id;
    nc_tok_special_at(t, i, &s, &n, &id);
    printf("%s", i ? ", " : "");
    json_str(stdout, s, n);
    printf(": %d", (int)id);
  }
  printf("}}\n");
  return 0;
}

static int cmd_encode(nc_tokenizer *t, const records *r, FILE *out, int flags) {
  size_t cap = 1 << 16;
  int32_t *ids = malloc(cap * sizeof *ids);
  for (size_t i = 0; i < r->n; i++) {
    if (r->len[i] + 1 > cap) {
      cap = r->len[i] + 1;
      ids = realloc(ids, cap * sizeof *ids);
    }
    if (!ids) return 1;
    long n = nc_tok_encode(t, r->text[i], r->len[i], flags, ids, cap);
    if (n < 0) {
      fprintf(stderr, "nc_tok: record %zu: %s\n", i, nc_strerror((int)n));
      free(ids);
      return 1;
    }
    for (long k = 0; k < n; k++) fprintf(out, k ? " %d" : "%d", (int)ids[k]);
    fputc('\n', out);
  }
  free(ids);
  return 0;
}

/* Parses a line of space-separated ids; returns the count or -1. */
static long parse_ids(const char *s, size_t n, int32_t **ids, size_t *cap) {
  long k = 0;
  size_t i = 0;
  while (i < n) {
    while (i < n && s[i] == ' ') i++;
    if (i >= n) break;
    long v = 0;
    int neg = 0;
    if (s[i] == '-') {
      neg = 1;
      i++;
    }
    size_t st = i;
    while (i < n && s[i] >= '0' && s[i] <= '9' && v < (1L << 40)) v = v * 10 + (s[i++] - '0');
    if (i == st) return -1;
    if ((size_t)k == *cap) {
      *cap = *cap ? *cap * 2 : 1024;
      *ids = realloc(*ids, *cap * sizeof **ids);
      if (!*ids) return -1;
    }
    (*ids)[k++] = (int32_t)(neg ? -v : v);
  }
  return k;
}

/* Decodes one line of ids into *o (grown as needed); returns the byte count or -1. */
static long decode_one(nc_tokenizer *t, const int32_t *ids, long k, int mode, char **o, size_t *ocap) {
  long m;
  if (mode == 2) {
    /* one id at a time through the streaming decoder; 3 x raw bytes + 3 always suffice */
    long raw = nc_tok_decode_bytes(t, ids, (size_t)k, NULL, 0);
    if (raw < 0) {
      fprintf(stderr, "nc_tok: stream: %s\n", nc_strerror((int)raw));
      return -1;
    }
    if ((size_t)raw * 3 + 3 > *ocap) {
      char *p = realloc(*o, (size_t)raw * 3 + 3);
      if (!p) return -1;
      *o = p;
      *ocap = (size_t)raw * 3 + 3;
    }
    nc_tok_stream s;
    nc_tok_stream_init(&s);
    m = 0;
    for (long j = 0; j < k; j++) {
      long e = nc_tok_stream_push(t, &s, ids + j, 1, *o + m, *ocap - (size_t)m);
      if (e < 0 || (size_t)(m + e) > *ocap) return -1;
      m += e;
    }
    long e = nc_tok_stream_flush(&s, *o + m, *ocap - (size_t)m);
    return e < 0 ? -1 : m + e;
  }
  for (;;) {
    m = mode == 1 ? nc_tok_decode_bytes(t, ids, (size_t)k, *o, *ocap) : nc_tok_decode(t, ids, (size_t)k, *o, *ocap);
    if (m < 0) {
      fprintf(stderr, "nc_tok: decode: %s\n", nc_strerror((int)m));
      return -1;
    }
    if ((size_t)m <= *ocap) return m;
    char *p = realloc(*o, (size_t)m * 2);
    if (!p) return -1;
    *o = p;
    *ocap = (size_t)m * 2;
  }
}

static int cmd_decode(nc_tokenizer *t, char *buf, size_t len, FILE *out, int mode /*0 repl 1 raw 2 stream*/) {
  int32_t *ids = NULL;
  size_t icap = 0, ocap = 1 << 16, pos = 0;
  char *o = malloc(ocap);
  int status = o ? 0 : 1;
  while (!status && pos < len) {
    const char *nl = memchr(buf + pos, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - (buf + pos)) : len - pos;
    long k = parse_ids(buf + pos, n, &ids, &icap);
    pos += n + 1;
    long m = k < 0 ? -1 : decode_one(t, ids, k, mode, &o, &ocap);
    if (m < 0) {
      status = 1;
      break;
    }
    fprintf(out, "%ld\n", m);
    fwrite(o, 1, (size_t)m, out);
    fputc('\n', out);
  }
  free(ids);
  free(o);
  return status;
}

static int cmd_bench(nc_tokenizer *t, const records *r, int threads, int repeat) {
  size_t bytes = 0;
  for (size_t i = 0; i < r->n; i++) bytes += r->len[i] + 1;
  int32_t *ids = malloc(bytes * sizeof *ids);
  size_t *off = malloc((r->n + 1) * sizeof *off);
  if (!ids || !off) {
    free(ids);
    free(off);
    return 1;
  }
  double best = 1e30, best_cpu = 1e30;
  long total = 0;
  for (int rep = 0; rep < repeat; rep++) {
    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    total = nc_tok_encode_batch(t, r->text, r->len, r->n, 0, threads, ids, bytes, off);
    double dt = clock_s(CLOCK_MONOTONIC) - t0, dc = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    if (dc < best_cpu) best_cpu = dc;
    if (total < 0) {
      fprintf(stderr, "nc_tok: bench: %s\n", nc_strerror((int)total));
      free(ids);
      free(off);
      return 1;
    }
    if (dt < best) best = dt;
  }
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < r->n; i++) {
    for (size_t k = off[i]; k < off[i + 1]; k++) h = (h ^ (uint32_t)(ids[k] + 1)) * 16777619u;
    h = (h ^ 0u) * 16777619u;
  }
  size_t text_bytes = bytes - r->n;
  printf("{\"impl\": \"nanochat-c\", \"threads\": %d, \"records\": %zu, \"bytes\": %zu, \"tokens\": %ld, "
         "\"seconds\": %.4f, \"mb_per_s\": %.3f, \"cpu_seconds\": %.4f, \"hash\": %u}\n",
         threads, r->n, text_bytes, total, best, (double)text_bytes / best / 1e6, best_cpu, h);
  free(ids);
  free(off);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) return usage();
  const char *cmd = argv[1], *tokfile = argv[2];
  const char *d = flag_value(argc, argv, "--dialect");
  int dialect = !d ? -1 : strcmp(d, "js") == 0 ? NC_TOK_DIALECT_JS : strcmp(d, "rust") == 0 ? NC_TOK_DIALECT_RUST : -2;
  if (dialect == -2) return usage();
  char msg[512];
  nc_tokenizer *t = NULL;
  int rc = nc_tok_load(tokfile, flag_value(argc, argv, "--pattern"), dialect, &t, msg, sizeof msg);
  if (rc) {
    fprintf(stderr, "nc_tok: %s: %s\n", tokfile, msg);
    return 1;
  }
  int status = 0;
  if (strcmp(cmd, "info") == 0) {
    status = cmd_info(t);
  } else if ((strcmp(cmd, "encode") == 0 || strcmp(cmd, "bench") == 0) && argc >= 4) {
    size_t n;
    char *buf = read_file(argv[3], &n);
    records r = {NULL, NULL, 0};
    if (!buf || parse_records(buf, n, &r)) {
      fprintf(stderr, "nc_tok: %s: cannot read records\n", argv[3]);
      status = 1;
    } else if (cmd[0] == 'e') {
      FILE *out = argc >= 5 ? fopen(argv[4], "wb") : NULL;
      if (!out) status = usage();
      else {
        int flags = (has_flag(argc, argv, "--special") ? NC_TOK_ALLOW_SPECIAL : 0) |
                    (has_flag(argc, argv, "--bos") ? NC_TOK_PREPEND_BOS : 0);
        status = cmd_encode(t, &r, out, flags);
        if (fclose(out)) status = 1;
      }
    } else {
      const char *th = flag_value(argc, argv, "--threads"), *rp = flag_value(argc, argv, "--repeat");
      status = cmd_bench(t, &r, th ? atoi(th) : 1, rp ? atoi(rp) : 3);
    }
    free(r.text);
    free(r.len);
    free(buf);
  } else if ((strcmp(cmd, "decode") == 0 || strcmp(cmd, "stream") == 0) && argc >= 5) {
    size_t n;
    char *buf = read_file(argv[3], &n);
    FILE *out = fopen(argv[4], "wb");
    if (!buf || !out) status = 1;
    else status = cmd_decode(t, buf, n, out, cmd[0] == 's' ? 2 : has_flag(argc, argv, "--raw") ? 1 : 0);
    if (out && fclose(out)) status = 1;
    free(buf);
  } else {
    status = usage();
  }
  nc_tok_free(t);
  return status;
}
