/* nc_tok_decode.c — ids to bytes, to UTF-8 with replacement, and the streaming decoder. */
#include <limits.h>
#include <string.h>

#include "nc_err.h"
#include "nc_tok_internal.h"

typedef struct bsink {
  char *out;
  size_t cap, n;
} bsink;

static void bput(bsink *k, const void *p, size_t n) {
  if (k->n < k->cap) {
    size_t m = k->cap - k->n < n ? k->cap - k->n : n;
    memcpy(k->out + k->n, p, m);
  }
  k->n += n;
}

static const char FFFD[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* Emits s[0..n) as valid UTF-8 (each maximal invalid subpart -> U+FFFD). Returns the bytes
 * consumed: all, except (when !final) a trailing valid-but-incomplete sequence. */
static size_t repair(const uint8_t *s, size_t n, int final, bsink *k) {
  size_t i = 0, run = 0;
  while (i < n) {
    if (s[i] < 0x80) {
      i++;
      continue;
    }
    uint32_t cp;
    size_t bad;
    int trunc;
    size_t l = nc_tok__utf8_step(s + i, n - i, &cp, &bad, &trunc);
    if (l) {
      i += l;
      continue;
    }
    bput(k, s + run, i - run);
    if (trunc && !final) return i;
    bput(k, FFFD, 3);
    i += bad;
    run = i;
  }
  bput(k, s + run, n - run);
  return n;
}

static int piece(const struct nc_tokenizer *t, int32_t id, const uint8_t **p, size_t *len) {
  *p = nc_tok_token(t, id, len);
  return *p ? NC_OK : NC_EINVAL;
}

static long result(size_t n) { return n > (size_t)LONG_MAX ? NC_EFULL : (long)n; }

long nc_tok_decode_bytes(const nc_tokenizer *t, const int32_t *ids, size_t n, char *out,
                         size_t cap) {
  if (!t || (n && !ids) || (!out && cap)) return NC_EINVAL;
  bsink k = {out, cap, 0};
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p;
    size_t len;
    if (piece(t, ids[i], &p, &len)) return NC_EINVAL;
    bput(&k, p, len);
  }
  return result(k.n);
}

/* Pushes ids through the repairer with pending state (pend, *np <= 3 bytes). */
static int push(const struct nc_tokenizer *t, uint8_t pend[4], uint8_t *np, const int32_t *ids,
                size_t n, bsink *k) {
  uint8_t buf[4 + NC_TOK_MAX_TOKEN_LEN];
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p;
    size_t len;
    if (piece(t, ids[i], &p, &len)) return NC_EINVAL;
    const uint8_t *s = p;
    size_t sn = len;
    if (*np) {
      memcpy(buf, pend, *np);
      memcpy(buf + *np, p, len);
      s = buf;
      sn = *np + len;
    }
    size_t used = repair(s, sn, 0, k);
    *np = (uint8_t)(sn - used);
    memmove(pend, s + used, *np);
  }
  return NC_OK;
}

long nc_tok_decode(const nc_tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap) {
  if (!t || (n && !ids) || (!out && cap)) return NC_EINVAL;
  bsink k = {out, cap, 0};
  uint8_t pend[4];
  uint8_t np = 0;
  int rc = push(t, pend, &np, ids, n, &k);
  if (rc) return rc;
  if (np) repair(pend, np, 1, &k);
  return result(k.n);
}

void nc_tok_stream_init(nc_tok_stream *s) { memset(s, 0, sizeof *s); }

long nc_tok_stream_push(const nc_tokenizer *t, nc_tok_stream *s, const int32_t *ids, size_t n,
                        char *out, size_t cap) {
  if (!t || !s || s->n > 3 || (n && !ids) || (!out && cap)) return NC_EINVAL;
  /* pass 1 on a copy: size and validity, so a failed push leaves the stream unchanged */
  nc_tok_stream c = *s;
  bsink count = {NULL, 0, 0};
  int rc = push(t, c.pend, &c.n, ids, n, &count);
  if (rc) return rc;
  if (count.n > cap) return result(count.n);
  bsink k = {out, cap, 0};
  push(t, s->pend, &s->n, ids, n, &k);
  return result(k.n);
}

long nc_tok_stream_flush(nc_tok_stream *s, char *out, size_t cap) {
  if (!s || s->n > 3 || (!out && cap)) return NC_EINVAL;
  if (!s->n) return 0;
  if (cap < 3) return 3;
  /* a kept sequence is a valid prefix, so it is exactly one maximal subpart: one U+FFFD */
  memcpy(out, FFFD, 3);
  s->n = 0;
  return 3;
}
