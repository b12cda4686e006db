/* nc_tok_encode.c — byte-pair encoding of chunks, encode_ordinary, specials, batches. */
#include <limits.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nc_err.h"
#include "nc_tok_internal.h"

/* Chunks up to this many bytes use the tiktoken loop; longer ones the heap. */
#define NC_TOK_SMALL_CHUNK 64
#define NC_TOK_HEAP_FROM 128

/* ---- BPE ------------------------------------------------------------------------------------ */

size_t nc_tok__bpe_ref(const struct nc_tokenizer *t, const uint8_t *p, size_t n, uint32_t *out,
                       uint32_t *work) {
  uint32_t *tok = out, *pr = work;
  for (size_t i = 0; i < n; i++) tok[i] = t->byte_rank[p[i]];
  size_t m = n;
  for (size_t i = 0; i + 1 < m; i++) pr[i] = nc_tok_pair(t, tok[i], tok[i + 1]);
  while (m > 1) {
    uint32_t best = NC_TOK_NO_RANK;
    size_t bi = 0;
    for (size_t i = 0; i + 1 < m; i++)
      if (pr[i] < best) {
        best = pr[i];
        bi = i;
      }
    if (best == NC_TOK_NO_RANK) break;
    tok[bi] = best;
    if (bi + 2 < m) memmove(tok + bi + 1, tok + bi + 2, (m - bi - 2) * sizeof *tok);
    if (bi + 2 < m - 1) memmove(pr + bi + 1, pr + bi + 2, (m - bi - 3) * sizeof *pr);
    m--;
    if (bi > 0) pr[bi - 1] = nc_tok_pair(t, tok[bi - 1], tok[bi]);
    if (bi + 1 < m) pr[bi] = nc_tok_pair(t, tok[bi], tok[bi + 1]);
  }
  return m;
}

/* Min-heap of (rank << 32 | left part index): lowest rank first, leftmost among equals. */
static void heap_push(uint64_t *h, size_t *n, uint64_t v) {
  size_t i = (*n)++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (h[p] <= v) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n) {
  uint64_t top = h[0], v = h[--(*n)];
  size_t i = 0, m = *n;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= m) break;
    if (c + 1 < m && h[c + 1] < h[c]) c++;
    if (h[c] >= v) break;
    h[i] = h[c];
    i = c;
  }
  if (m) h[i] = v;
  return top;
}

#define DEAD UINT32_MAX
#define END UINT32_MAX

size_t nc_tok__bpe_heap(const struct nc_tokenizer *t, const uint8_t *p, size_t n, uint32_t *out,
                        uint32_t *work) {
  /* work: tok[n] nxt[n] prv[n], then the heap (at most 3n entries of 2 words) */
  uint32_t *tok = work, *nxt = work + n, *prv = work + 2 * n;
  uint32_t *hp = work + 3 * n;
  if ((uintptr_t)hp & 7) hp++;
  uint64_t *heap = (uint64_t *)(void *)hp;
  size_t hn = 0;
  for (size_t i = 0; i < n; i++) {
    tok[i] = t->byte_rank[p[i]];
    nxt[i] = i + 1 < n ? (uint32_t)(i + 1) : END;
    prv[i] = i > 0 ? (uint32_t)(i - 1) : END;
  }
  for (size_t i = 0; i + 1 < n; i++) {
    uint32_t r = nc_tok_pair(t, tok[i], tok[i + 1]);
    if (r != NC_TOK_NO_RANK) heap_push(heap, &hn, ((uint64_t)r << 32) | i);
  }
  while (hn) {
    uint64_t e = heap_pop(heap, &hn);
    uint32_t r = (uint32_t)(e >> 32), i = (uint32_t)e;
    if (tok[i] == DEAD || nxt[i] == END) continue;
    uint32_t j = nxt[i];
    if (nc_tok_pair(t, tok[i], tok[j]) != r) continue; /* stale */
    tok[i] = r;
    tok[j] = DEAD;
    nxt[i] = nxt[j];
    if (nxt[j] != END) prv[nxt[j]] = i;
    if (prv[i] != END) {
      uint32_t q = nc_tok_pair(t, tok[prv[i]], r);
      if (q != NC_TOK_NO_RANK) heap_push(heap, &hn, ((uint64_t)q << 32) | prv[i]);
    }
    if (nxt[i] != END) {
      uint32_t q = nc_tok_pair(t, r, tok[nxt[i]]);
      if (q != NC_TOK_NO_RANK) heap_push(heap, &hn, ((uint64_t)q << 32) | i);
    }
  }
  size_t m = 0;
  for (uint32_t i = 0; i != END; i = nxt[i]) out[m++] = tok[i];
  return m;
}

/* ---- encode_ordinary ------------------------------------------------------------------------ */

typedef struct sink {
  int32_t *out;
  size_t cap, n;
} sink;

static inline void emit(sink *k, uint32_t id) {
  if (k->n < k->cap) k->out[k->n] = (int32_t)id;
  k->n++;
}

static int ensure_scratch(nc_tok_ctx *c, size_t words) {
  if (c->scratch_cap >= words) return NC_OK;
  size_t cap = c->scratch_cap ? c->scratch_cap : 4096;
  while (cap < words) cap *= 2;
  uint32_t *p = realloc(c->scratch, cap * sizeof *p);
  if (!p) return NC_ENOMEM;
  c->scratch = p;
  c->scratch_cap = cap;
  return NC_OK;
}

/* Encodes s[0..len) (valid UTF-8) as ordinary text into k. */
static int encode_ordinary_ctx(const struct nc_tokenizer *t, nc_tok_ctx *c, const uint8_t *s,
                               size_t len, sink *k) {
  size_t pos = 0, ms, me;
  for (;;) {
    int rc = nc_tok__next_chunk(t, c, s, len, &pos, &ms, &me);
    if (rc < 0) return rc;
    if (rc == 0) return NC_OK;
    const uint8_t *p = s + ms;
    size_t n = me - ms;
    if (n == 1) {
      emit(k, t->byte_rank[p[0]]);
      continue;
    }
    uint64_t h = nc_tok_hash(p, n);
    nc_tok_centry *ce = NULL;
    if (n <= NC_TOK_CACHE_LEN) {
      if (!c->cache && ++c->seen_chunks > NC_TOK_CACHE_AFTER)
        c->cache = calloc(NC_TOK_CACHE_SLOTS, sizeof *c->cache); /* NULL: just no cache */
      if (c->cache) {
        ce = &c->cache[h & (NC_TOK_CACHE_SLOTS - 1)];
        if (ce->h == h && ce->len == n && nc_tok_eq(ce->bytes, p, n)) {
          for (unsigned i = 0; i < ce->nids; i++) emit(k, ce->ids[i]);
          continue;
        }
      }
    }
    uint32_t r = nc_tok_rank_of_h(t, p, n, h);
    if (r != NC_TOK_NO_RANK) {
      emit(k, r);
      if (ce) {
        ce->h = h;
        ce->len = (uint8_t)n;
        ce->nids = 1;
        memcpy(ce->bytes, p, n);
        ce->ids[0] = r;
      }
      continue;
    }
    size_t m;
    uint32_t *ids;
    if (n <= NC_TOK_SMALL_CHUNK) {
      uint32_t buf[NC_TOK_SMALL_CHUNK + NC_TOK_WORK(NC_TOK_SMALL_CHUNK)];
      m = nc_tok__bpe_ref(t, p, n, buf, buf + NC_TOK_SMALL_CHUNK);
      for (size_t i = 0; i < m; i++) emit(k, buf[i]);
      if (ce && m <= NC_TOK_CACHE_IDS) {
        ce->h = h;
        ce->len = (uint8_t)n;
        ce->nids = (uint8_t)m;
        memcpy(ce->bytes, p, n);
        memcpy(ce->ids, buf, m * sizeof *buf);
      }
      continue;
    }
    if ((rc = ensure_scratch(c, n + NC_TOK_WORK(n))) != NC_OK) return rc;
    ids = c->scratch;
    m = n < NC_TOK_HEAP_FROM ? nc_tok__bpe_ref(t, p, n, ids, ids + n)
                             : nc_tok__bpe_heap(t, p, n, ids, ids + n);
    for (size_t i = 0; i < m; i++) emit(k, ids[i]);
  }
}

#define NOT_YET (SIZE_MAX - 1)

/* Leftmost special occurrence in s[from..len), longest at that position. *next caches each
 * special's next occurrence (SIZE_MAX = none left, NOT_YET = not searched; entries < from
 * are searched again). */
static int find_special(const struct nc_tokenizer *t, const uint8_t *s, size_t len, size_t from,
                        size_t *next, size_t *at) {
  int best = -1;
  size_t bpos = SIZE_MAX;
  for (int i = 0; i < t->n_specials; i++) {
    const nc_tok_spec *sp = &t->specials[i];
    if (next[i] == NOT_YET || (next[i] != SIZE_MAX && next[i] < from)) {
      const void *q = from < len ? memmem(s + from, len - from, sp->text, sp->len) : NULL;
      next[i] = q ? (size_t)((const uint8_t *)q - s) : SIZE_MAX;
    }
    if (next[i] == SIZE_MAX) continue;
    if (next[i] < bpos || (next[i] == bpos && sp->len > t->specials[best].len)) {
      bpos = next[i];
      best = i;
    }
  }
  *at = bpos;
  return best;
}

static int encode_ctx(const struct nc_tokenizer *t, nc_tok_ctx *c, const char *text, size_t len,
                      int flags, sink *k) {
  if (!text && len) return NC_EINVAL;
  if (flags & ~(NC_TOK_ALLOW_SPECIAL | NC_TOK_PREPEND_BOS)) return NC_EINVAL;
  const uint8_t *s = (const uint8_t *)text;
  if (len && !nc_tok_utf8_valid(text, len)) return NC_EINVAL;
  if (flags & NC_TOK_PREPEND_BOS) {
    if (t->bos_id < 0) return NC_ENOTFOUND;
    emit(k, (uint32_t)t->bos_id);
  }
  if (!(flags & NC_TOK_ALLOW_SPECIAL) || t->n_specials == 0) return encode_ordinary_ctx(t, c, s, len, k);
  size_t next[NC_TOK_MAX_SPECIALS];
  for (int i = 0; i < t->n_specials; i++) next[i] = NOT_YET;
  size_t from = 0;
  for (;;) {
    size_t at;
    int which = find_special(t, s, len, from, next, &at);
    size_t end = which < 0 ? len : at;
    int rc = encode_ordinary_ctx(t, c, s + from, end - from, k);
    if (rc) return rc;
    if (which < 0) return NC_OK;
    emit(k, (uint32_t)t->specials[which].id);
    from = at + t->specials[which].len;
  }
}

static long finish(int rc, const sink *k) {
  if (rc) return rc;
  if (k->n > (size_t)LONG_MAX) return NC_EFULL;
  return (long)k->n;
}

long nc_tok_encode(const nc_tokenizer *t, const char *text, size_t len, int flags, int32_t *out,
                   size_t cap) {
  if (!t || (!out && cap)) return NC_EINVAL;
  nc_tok_ctx c;
  if (nc_tok__ctx_init(t, &c)) return NC_ENOMEM;
  sink k = {out, cap, 0};
  int rc = encode_ctx(t, &c, text, len, flags, &k);
  nc_tok__ctx_free(&c);
  return finish(rc, &k);
}

long nc_tok_encode_ordinary(const nc_tokenizer *t, const char *text, size_t len, int32_t *out,
                            size_t cap) {
  return nc_tok_encode(t, text, len, 0, out, cap);
}

/* ---- batches -------------------------------------------------------------------------------- */

long nc_tok_encode_batch(const nc_tokenizer *t, const char *const *texts, const size_t *lens,
                         size_t n, int flags, int threads, int32_t *out, size_t cap,
                         size_t *offsets) {
  if (!t || !offsets || (n && (!texts || !lens)) || (!out && cap)) return NC_EINVAL;
  offsets[0] = 0;
  if (n == 0) return 0;
  if (n > (size_t)LONG_MAX / 2) return NC_EINVAL;
  /* provisional regions: text i gets lens[i] + 1 slots (always enough) */
  size_t bound = 0;
  for (size_t i = 0; i < n; i++) {
    if (lens[i] > SIZE_MAX / 8 - bound - 1) return NC_EFULL;
    bound += lens[i] + 1;
  }
  int direct = cap >= bound;
  if (threads < 1) threads = 1;
  if ((size_t)threads > n) threads = (int)n;
  size_t *counts = malloc(n * sizeof *counts);
  size_t *prov = malloc(n * sizeof *prov);
  int *errs = malloc(n * sizeof *errs);
  nc_tok_ctx *ctx = calloc((size_t)threads, sizeof *ctx);
  int rc = NC_OK;
  if (!counts || !prov || !errs || !ctx) {
    rc = NC_ENOMEM;
    goto done;
  }
  for (int i = 0; i < threads; i++)
    if (nc_tok__ctx_init(t, &ctx[i])) rc = NC_ENOMEM;
  if (rc) goto done;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    prov[i] = o;
    o += lens[i] + 1;
  }
  /* pass 1: encode (into the provisional regions when out is big enough, else count only) */
  long ln = (long)n;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
  for (long i = 0; i < ln; i++) {
    nc_tok_ctx *c = &ctx[omp_get_thread_num()];
    sink k = {direct ? out + prov[i] : NULL, direct ? lens[i] + 1 : 0, 0};
    errs[i] = encode_ctx(t, c, texts[i], lens[i], flags, &k);
    counts[i] = k.n;
  }
  for (size_t i = 0; i < n; i++)
    if (errs[i]) {
      rc = errs[i];
      goto done;
    }
  for (size_t i = 0; i < n; i++) offsets[i + 1] = offsets[i] + counts[i];
  size_t total = offsets[n];
  if (total > (size_t)LONG_MAX) {
    rc = NC_EFULL;
    goto done;
  }
  if (direct) {
    for (size_t i = 0; i < n; i++)
      if (offsets[i] != prov[i]) memmove(out + offsets[i], out + prov[i], counts[i] * sizeof *out);
  } else if (total <= cap) {
    /* pass 2: the exact offsets are known now */
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
    for (long i = 0; i < ln; i++) {
      nc_tok_ctx *c = &ctx[omp_get_thread_num()];
      sink k = {out + offsets[i], counts[i], 0};
      errs[i] = encode_ctx(t, c, texts[i], lens[i], flags, &k);
    }
    for (size_t i = 0; i < n; i++)
      if (errs[i]) {
        rc = errs[i];
        goto done;
      }
  }
done:
  if (ctx)
    for (int i = 0; i < threads; i++) nc_tok__ctx_free(&ctx[i]);
  free(ctx);
  free(counts);
  free(prov);
  free(errs);
  return rc ? rc : (long)offsets[n];
}
