/* nc_tok_train.c — BPE training like rustbpe (train_from_iterator + train_core_incremental).
 *
 * 1. Documents are cut to doc_cap code points (invalid UTF-8 -> U+FFFD), batched, and split
 *    by the regex on `threads` threads, each counting its chunks in its own map; the maps are
 *    summed at the end.
 * 2. Every unique chunk becomes a word (its bytes as ids) with its count; pairs are counted
 *    weighted by the word counts, and each pair keeps the list of words it occurs in.
 * 3. Each merge pops the pair with the highest count, ties to the smallest (a, b), from a
 *    max-heap with lazy refresh (a popped entry whose count is stale is pushed back with the
 *    current count). Counts only fall after a pair's creation step, so this is the exact
 *    maximum. The merge rewrites every listed word left to right, applying rustbpe's pair
 *    deltas; pairs created in this step get their word lists and one heap entry each.
 */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nc_err.h"
#include "nc_tok_internal.h"

#define BATCH_BYTES (8u << 20)
#define BATCH_DOCS 8192

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- chunk counting ------------------------------------------------------------------------- */

typedef struct cslot {
  uint64_t h;
  uint64_t off; /* into the arena */
  uint32_t len;
  int64_t count; /* 0 = empty slot */
} cslot;

typedef struct cmap {
  cslot *slot;
  size_t mask, used;
  uint8_t *arena;
  size_t an, acap;
  int oom;
} cmap;

static int cmap_init(cmap *m) {
  memset(m, 0, sizeof *m);
  m->slot = calloc(1u << 16, sizeof *m->slot);
  m->mask = (1u << 16) - 1;
  return m->slot ? NC_OK : NC_ENOMEM;
}

static void cmap_free(cmap *m) {
  free(m->slot);
  free(m->arena);
  memset(m, 0, sizeof *m);
}

static int cmap_grow(cmap *m) {
  size_t cap = (m->mask + 1) * 2;
  cslot *s = calloc(cap, sizeof *s);
  if (!s) return NC_ENOMEM;
  for (size_t i = 0; i <= m->mask; i++) {
    if (!m->slot[i].count) continue;
    size_t j = (size_t)m->slot[i].h & (cap - 1);
    while (s[j].count) j = (j + 1) & (cap - 1);
    s[j] = m->slot[i];
  }
  free(m->slot);
  m->slot = s;
  m->mask = cap - 1;
  return NC_OK;
}

static void cmap_add(cmap *m, const uint8_t *p, size_t n, int64_t c) {
  if (m->oom) return;
  uint64_t h = nc_tok_hash(p, n);
  size_t i = (size_t)h & m->mask;
  for (;; i = (i + 1) & m->mask) {
    cslot *s = &m->slot[i];
    if (!s->count) break;
    if (s->h == h && s->len == n && memcmp(m->arena + s->off, p, n) == 0) {
      s->count += c;
      return;
    }
  }
  if (m->an + n > m->acap) {
    size_t cap = m->acap ? m->acap : (1u << 20);
    while (cap < m->an + n) cap *= 2;
    uint8_t *a = realloc(m->arena, cap);
    if (!a) {
      m->oom = 1;
      return;
    }
    m->arena = a;
    m->acap = cap;
  }
  memcpy(m->arena + m->an, p, n);
  cslot *s = &m->slot[i];
  s->h = h;
  s->off = m->an;
  s->len = (uint32_t)n;
  s->count = c;
  m->an += n;
  if (++m->used * 2 > m->mask + 1 && cmap_grow(m)) m->oom = 1;
}

/* A batch of documents, back to back. */
typedef struct batch {
  uint8_t *buf;
  size_t n, cap;
  size_t *start; /* ndocs + 1 */
  size_t ndocs, dcap;
} batch;

static int batch_reserve(batch *b, size_t more) {
  if (b->n + more <= b->cap) return NC_OK;
  size_t cap = b->cap ? b->cap : BATCH_BYTES + 64;
  while (cap < b->n + more) cap *= 2;
  uint8_t *p = realloc(b->buf, cap);
  if (!p) return NC_ENOMEM;
  b->buf = p;
  b->cap = cap;
  return NC_OK;
}

/* Appends the document cut to `cap` code points, invalid subparts as U+FFFD. */
static int batch_add(batch *b, const uint8_t *s, size_t len, uint64_t cap, nc_tok_train_stats *st,
                     uint64_t *chars) {
  if (b->ndocs + 2 > b->dcap) {
    size_t dc = b->dcap ? b->dcap * 2 : BATCH_DOCS + 2;
    size_t *p = realloc(b->start, dc * sizeof *p);
    if (!p) return NC_ENOMEM;
    b->start = p;
    b->dcap = dc;
  }
  b->start[b->ndocs] = b->n;
  size_t i = 0;
  uint64_t c = 0;
  while (i < len && c < cap) {
    size_t run = i;
    while (i < len && c < cap && s[i] < 0x80) {
      i++;
      c++;
    }
    if (i > run) {
      if (batch_reserve(b, i - run)) return NC_ENOMEM;
      memcpy(b->buf + b->n, s + run, i - run);
      b->n += i - run;
      continue;
    }
    if (i >= len || c >= cap) break;
    uint32_t cp;
    size_t bad;
    int tr;
    size_t k = nc_tok__utf8_step(s + i, len - i, &cp, &bad, &tr);
    if (batch_reserve(b, 4)) return NC_ENOMEM;
    if (k) {
      memcpy(b->buf + b->n, s + i, k);
      b->n += k;
      i += k;
    } else {
      memcpy(b->buf + b->n, "\xEF\xBF\xBD", 3);
      b->n += 3;
      i += bad;
      st->invalid_bytes += bad;
    }
    c++;
  }
  b->ndocs++;
  b->start[b->ndocs] = b->n;
  *chars = c;
  return NC_OK;
}

typedef struct tstate {
  nc_tok_ctx ctx;
  cmap map;
  uint64_t chunks;
  int err;
} tstate;

static int split_batch(const struct nc_tokenizer *re, batch *b, tstate *ts, int threads) {
  long nd = (long)b->ndocs;
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads) if (threads > 1)
  for (long d = 0; d < nd; d++) {
    tstate *s = &ts[omp_get_thread_num()];
    if (s->err) continue;
    const uint8_t *p = b->buf + b->start[d];
    size_t len = b->start[d + 1] - b->start[d], pos = 0, ms, me;
    for (;;) {
      int rc = nc_tok__next_chunk(re, &s->ctx, p, len, &pos, &ms, &me);
      if (rc < 0) {
        s->err = rc;
        break;
      }
      if (!rc) break;
      cmap_add(&s->map, p + ms, me - ms, 1);
      s->chunks++;
    }
    if (s->map.oom) s->err = NC_ENOMEM;
  }
  for (int i = 0; i < threads; i++)
    if (ts[i].err) return ts[i].err;
  b->n = 0;
  b->ndocs = 0;
  return NC_OK;
}

/* ---- merging -------------------------------------------------------------------------------- */

typedef struct pinfo {
  uint32_t a, b;
  int64_t count;
  uint32_t *pos; /* words containing the pair (ascending, may be stale) */
  uint32_t npos, cpos;
  int64_t step;  /* last merge step that added positions (-1 none) */
} pinfo;

typedef struct hent {
  int64_t count;
  uint32_t a, b, p;
} hent;

typedef struct trainer {
  /* words */
  uint32_t *ids;
  uint64_t *wstart;
  uint32_t *wlen;
  int64_t *wcount;
  size_t nwords;
  /* pairs */
  pinfo *pairs;
  size_t npairs, cpairs;
  uint64_t *pkey;
  uint32_t *pidx;
  size_t pmask;
  /* heap */
  hent *heap;
  size_t hn, hcap;
  /* pairs given positions in the current step */
  uint32_t *fresh;
  uint32_t nfresh, cfresh;
  int oom;
} trainer;

static inline int hent_above(const hent *x, const hent *y) {
  if (x->count != y->count) return x->count > y->count;
  if (x->a != y->a) return x->a < y->a;
  return x->b < y->b;
}

static void hpush(trainer *T, hent e) {
  if (T->hn == T->hcap) {
    size_t cap = T->hcap ? T->hcap * 2 : 1024;
    hent *h = realloc(T->heap, cap * sizeof *h);
    if (!h) {
      T->oom = 1;
      return;
    }
    T->heap = h;
    T->hcap = cap;
  }
  size_t i = T->hn++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!hent_above(&e, &T->heap[p])) break;
    T->heap[i] = T->heap[p];
    i = p;
  }
  T->heap[i] = e;
}

static hent hpop(trainer *T) {
  hent top = T->heap[0], v = T->heap[--T->hn];
  size_t i = 0, m = T->hn;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= m) break;
    if (c + 1 < m && hent_above(&T->heap[c + 1], &T->heap[c])) c++;
    if (!hent_above(&T->heap[c], &v)) break;
    T->heap[i] = T->heap[c];
    i = c;
  }
  if (m) T->heap[i] = v;
  return top;
}

static int pmap_grow(trainer *T) {
  size_t cap = T->pmask ? (T->pmask + 1) * 2 : (1u << 16);
  uint64_t *k = malloc(cap * sizeof *k);
  uint32_t *v = malloc(cap * sizeof *v);
  if (!k || !v) {
    free(k);
    free(v);
    return NC_ENOMEM;
  }
  for (size_t i = 0; i < cap; i++) k[i] = UINT64_MAX;
  for (size_t p = 0; p < T->npairs; p++) {
    uint64_t key = ((uint64_t)T->pairs[p].a << 32) | T->pairs[p].b;
    size_t i = (size_t)(key * 0x9E3779B97F4A7C15ull >> 20) & (cap - 1);
    while (k[i] != UINT64_MAX) i = (i + 1) & (cap - 1);
    k[i] = key;
    v[i] = (uint32_t)p;
  }
  free(T->pkey);
  free(T->pidx);
  T->pkey = k;
  T->pidx = v;
  T->pmask = cap - 1;
  return NC_OK;
}

/* Index of pair (a, b), created with count 0 when new; UINT32_MAX when out of memory. */
static uint32_t pair_get(trainer *T, uint32_t a, uint32_t b) {
  uint64_t key = ((uint64_t)a << 32) | b;
  size_t i = (size_t)(key * 0x9E3779B97F4A7C15ull >> 20) & T->pmask;
  for (;; i = (i + 1) & T->pmask) {
    if (T->pkey[i] == key) return T->pidx[i];
    if (T->pkey[i] == UINT64_MAX) break;
  }
  if (T->npairs == T->cpairs) {
    size_t cap = T->cpairs ? T->cpairs * 2 : 4096;
    pinfo *p = realloc(T->pairs, cap * sizeof *p);
    if (!p) {
      T->oom = 1;
      return UINT32_MAX;
    }
    T->pairs = p;
    T->cpairs = cap;
  }
  uint32_t idx = (uint32_t)T->npairs++;
  pinfo *pi = &T->pairs[idx];
  memset(pi, 0, sizeof *pi);
  pi->a = a;
  pi->b = b;
  pi->step = -1;
  T->pkey[i] = key;
  T->pidx[i] = idx;
  if (T->npairs * 2 > T->pmask + 1 && pmap_grow(T)) T->oom = 1;
  return idx;
}

/* Appends x to a growable u32 array; sets T->oom on failure. */
static void u32_push(trainer *T, uint32_t **v, uint32_t *n, uint32_t *cap, uint32_t x) {
  if (*n == *cap) {
    uint32_t c = *cap ? *cap * 2 : 4;
    uint32_t *q = realloc(*v, (size_t)c * sizeof *q);
    if (!q) {
      T->oom = 1;
      return;
    }
    *v = q;
    *cap = c;
  }
  (*v)[(*n)++] = x;
}

static void pos_add(trainer *T, pinfo *p, uint32_t w) {
  if (!p->npos || p->pos[p->npos - 1] != w) u32_push(T, &p->pos, &p->npos, &p->cpos, w);
}

/* Adds d to pair (x, y); for d > 0 also records word w and marks the pair fresh in `step`. */
static void delta(trainer *T, uint32_t x, uint32_t y, int64_t d, uint32_t w, int64_t step) {
  uint32_t q = pair_get(T, x, y);
  if (q == UINT32_MAX) return;
  pinfo *p = &T->pairs[q];
  p->count += d;
  if (d <= 0) return;
  pos_add(T, p, w);
  if (p->step != step) {
    p->step = step;
    u32_push(T, &T->fresh, &T->nfresh, &T->cfresh, q);
  }
}

/* Replaces (a, b) by z left to right in word w (rustbpe Word::merge_pair). */
static void merge_word(trainer *T, uint32_t w, uint32_t a, uint32_t b, uint32_t z, int64_t step) {
  uint32_t *ids = T->ids + T->wstart[w];
  uint32_t n = T->wlen[w], o = 0;
  int64_t c = T->wcount[w];
  for (uint32_t i = 0; i < n;) {
    if (i + 1 < n && ids[i] == a && ids[i + 1] == b) {
      if (o > 0) {
        uint32_t x = ids[o - 1];
        delta(T, x, a, -c, w, step);
        delta(T, x, z, c, w, step);
      }
      delta(T, a, b, -c, w, step);
      if (i + 2 < n) {
        uint32_t y = ids[i + 2];
        delta(T, b, y, -c, w, step);
        delta(T, z, y, c, w, step);
      }
      ids[o++] = z;
      i += 2;
    } else {
      ids[o++] = ids[i++];
    }
  }
  T->wlen[w] = o;
}

static void trainer_free(trainer *T) {
  for (size_t p = 0; p < T->npairs; p++) free(T->pairs[p].pos);
  free(T->pairs);
  free(T->pkey);
  free(T->pidx);
  free(T->heap);
  free(T->fresh);
  free(T->ids);
  free(T->wstart);
  free(T->wlen);
  free(T->wcount);
}

/* Runs up to n_merges merges; merges[k] = (a, b) of id 256 + k. Returns merges done or < 0. */
static long run_merges(trainer *T, long n_merges, uint32_t (*merges)[2], const nc_tok_train_opts *o) {
  if (pmap_grow(T)) return NC_ENOMEM;
  for (size_t w = 0; w < T->nwords; w++) {
    uint32_t *ids = T->ids + T->wstart[w];
    for (uint32_t i = 0; i + 1 < T->wlen[w]; i++) {
      uint32_t q = pair_get(T, ids[i], ids[i + 1]);
      if (q == UINT32_MAX) return NC_ENOMEM;
      T->pairs[q].count += T->wcount[w];
      pos_add(T, &T->pairs[q], (uint32_t)w);
    }
    if (T->oom) return NC_ENOMEM;
  }
  for (size_t p = 0; p < T->npairs; p++)
    if (T->pairs[p].count > 0) {
      hent e = {T->pairs[p].count, T->pairs[p].a, T->pairs[p].b, (uint32_t)p};
      hpush(T, e);
    }
  if (T->oom) return NC_ENOMEM;
  long done = 0;
  while (done < n_merges && T->hn) {
    hent top = hpop(T);
    int64_t cur = T->pairs[top.p].count;
    if (cur <= 0) continue;
    if (cur != top.count) {
      top.count = cur;
      hpush(T, top);
      continue;
    }
    uint32_t z = (uint32_t)(256 + done);
    merges[done][0] = top.a;
    merges[done][1] = top.b;
    T->nfresh = 0;
    /* the list may grow while we walk it only for fresh pairs, never for this one */
    pinfo *mp = &T->pairs[top.p];
    uint32_t *pos = mp->pos, npos = mp->npos;
    mp->pos = NULL;
    mp->npos = mp->cpos = 0;
    for (uint32_t k = 0; k < npos; k++) merge_word(T, pos[k], top.a, top.b, z, done);
    free(pos);
    if (T->oom) return NC_ENOMEM;
    for (uint32_t f = 0; f < T->nfresh; f++) {
      pinfo *p = &T->pairs[T->fresh[f]];
      if (p->count > 0) {
        hent e = {p->count, p->a, p->b, T->fresh[f]};
        hpush(T, e);
      }
    }
    if (T->oom) return NC_ENOMEM;
    done++;
    if (o->progress && (done % 256 == 0) && o->progress(o->progress_ctx, (int32_t)done, (int32_t)n_merges))
      return NC_ECANCELED;
  }
  return done;
}

/* ---- the whole run -------------------------------------------------------------------------- */

static int words_from_map(trainer *T, const cmap *m) {
  size_t nw = m->used, total = m->an;
  T->nwords = nw;
  T->ids = malloc((total ? total : 1) * sizeof *T->ids);
  T->wstart = malloc((nw ? nw : 1) * sizeof *T->wstart);
  T->wlen = malloc((nw ? nw : 1) * sizeof *T->wlen);
  T->wcount = malloc((nw ? nw : 1) * sizeof *T->wcount);
  if (!T->ids || !T->wstart || !T->wlen || !T->wcount) return NC_ENOMEM;
  size_t w = 0, o = 0;
  for (size_t i = 0; i <= m->mask; i++) {
    const cslot *s = &m->slot[i];
    if (!s->count) continue;
    T->wstart[w] = o;
    T->wlen[w] = s->len;
    T->wcount[w] = s->count;
    for (uint32_t k = 0; k < s->len; k++) T->ids[o + k] = m->arena[s->off + k];
    o += s->len;
    w++;
  }
  return NC_OK;
}

static int build_result(const nc_tok_train_opts *o, const char *pattern, uint32_t (*merges)[2],
                        long done, const char *const *spec, int nspec, nc_tokenizer **out,
                        nc_tok_train_stats *st, char *msg, size_t msglen) {
  int32_t n = (int32_t)(256 + done);
  uint32_t *off = malloc(((size_t)n + 1) * sizeof *off);
  const uint8_t **tok = malloc((size_t)n * sizeof *tok);
  uint32_t *len = malloc((size_t)n * sizeof *len);
  size_t cap = 4096, used = 0;
  uint8_t *arena = malloc(cap);
  int rc = NC_ENOMEM;
  if (!off || !tok || !len || !arena) goto done;
  for (int32_t r = 0; r < n; r++) {
    uint32_t a = r < 256 ? 0 : off[merges[r - 256][0]], la = r < 256 ? 1 : len[merges[r - 256][0]];
    uint32_t b = r < 256 ? 0 : off[merges[r - 256][1]], lb = r < 256 ? 0 : len[merges[r - 256][1]];
    if (la + lb > NC_TOK_MAX_TOKEN_LEN) {
      rc = nc_tok__err(msg, msglen, NC_EINVAL, "merge %d makes a token longer than %d bytes", (int)r,
                       NC_TOK_MAX_TOKEN_LEN);
      goto done;
    }
    if (used + la + lb > cap) {
      while (used + la + lb > cap) cap *= 2;
      uint8_t *p = realloc(arena, cap);
      if (!p) goto done;
      arena = p;
    }
    off[r] = (uint32_t)used;
    len[r] = la + lb;
    if (r < 256) arena[used] = (uint8_t)r;
    else {
      memcpy(arena + used, arena + a, la);
      memcpy(arena + used + la, arena + b, lb);
    }
    used += la + lb;
  }
  for (int32_t r = 0; r < n; r++) tok[r] = arena + off[r];
  nc_tok_special sp[NC_TOK_MAX_SPECIALS];
  for (int i = 0; i < nspec; i++) {
    sp[i].text = spec[i];
    sp[i].len = strlen(spec[i]);
    sp[i].id = n + i;
  }
  rc = nc_tok_create(pattern, o->dialect, tok, len, n, sp, nspec, out, msg, msglen);
  if (rc == NC_OK) {
    int32_t dup = 0;
    for (int32_t r = 0; r < n; r++)
      if (nc_tok_rank_of(*out, tok[r], len[r]) != (uint32_t)r) dup++;
    st->duplicate_tokens = dup;
  }
done:
  free(off);
  free(tok);
  free(len);
  free(arena);
  return rc;
}

int nc_tok_train(const nc_tok_train_opts *opts, nc_tok_doc_fn next, void *ctx, nc_tokenizer **out,
                 nc_tok_train_stats *stats, char *msg, size_t msglen) {
  if (msg && msglen) msg[0] = 0;
  if (!opts || !next || !out) return NC_EINVAL;
  *out = NULL;
  nc_tok_train_stats stl;
  nc_tok_train_stats *st = stats ? stats : &stl;
  memset(st, 0, sizeof *st);
  const char *const *spec = opts->specials ? opts->specials : NC_TOK_SPECIALS_NANOCHAT;
  int nspec = opts->specials ? opts->n_specials : NC_TOK_N_SPECIALS_NANOCHAT;
  if (nspec < 0 || nspec > NC_TOK_MAX_SPECIALS)
    return nc_tok__err(msg, msglen, NC_EINVAL, "n_specials must be 0..%d", NC_TOK_MAX_SPECIALS);
  for (int i = 0; i < nspec; i++)
    if (!spec[i]) return nc_tok__err(msg, msglen, NC_EINVAL, "special %d is NULL", i);
  int32_t vocab = opts->vocab_size ? opts->vocab_size : 32768;
  if (vocab < 256 + nspec || vocab > NC_TOK_MAX_VOCAB)
    return nc_tok__err(msg, msglen, NC_EINVAL, "vocab_size must be in [%d, %d]", 256 + nspec, NC_TOK_MAX_VOCAB);
  uint64_t doc_cap = opts->doc_cap ? opts->doc_cap : 10000;
  uint64_t max_chars = opts->max_chars ? opts->max_chars : 2000000000ull;
  int threads = opts->threads < 1 ? 1 : opts->threads > 64 ? 64 : opts->threads;
  const char *pattern = opts->pattern ? opts->pattern : NC_TOK_PATTERN_NANOCHAT;
  long n_merges = (long)vocab - nspec - 256;

  /* the regex alone (a tokenizer shell without ranks) */
  struct nc_tokenizer *re = calloc(1, sizeof *re);
  tstate *ts = calloc((size_t)threads, sizeof *ts);
  batch b = {0};
  trainer T;
  memset(&T, 0, sizeof T);
  uint32_t (*merges)[2] = NULL;
  int rc = NC_ENOMEM;
  if (!re || !ts) goto done;
  if (strnlen(pattern, NC_TOK_MAX_PATTERN + 1) > NC_TOK_MAX_PATTERN) {
    rc = nc_tok__err(msg, msglen, NC_EINVAL, "pattern longer than %d bytes", NC_TOK_MAX_PATTERN);
    goto done;
  }
  rc = nc_tok__rewrite_pattern(pattern, opts->dialect, &re->compiled_pattern, msg, msglen);
  if (rc) goto done;
  rc = nc_tok__compile(re, msg, msglen);
  if (rc) goto done;
  rc = NC_ENOMEM;
  for (int i = 0; i < threads; i++)
    if (nc_tok__ctx_init(re, &ts[i].ctx) || cmap_init(&ts[i].map)) goto done;

  double t0 = now_s();
  uint64_t total_chars = 0;
  for (;;) {
    const char *text = NULL;
    size_t len = 0;
    int got = next(ctx, &text, &len);
    if (got < 0) {
      rc = got;
      nc_tok__err(msg, msglen, rc, "the document source failed: %s", nc_strerror(rc));
      goto done;
    }
    if (got == 0) break;
    if (!text && len) {
      rc = nc_tok__err(msg, msglen, NC_EINVAL, "document %llu: NULL text", (unsigned long long)st->docs);
      goto done;
    }
    uint64_t chars = 0;
    size_t before = b.n;
    if ((rc = batch_add(&b, (const uint8_t *)text, len, doc_cap, st, &chars)) != NC_OK) goto done;
    st->docs++;
    st->chars += chars;
    st->bytes += b.n - before;
    total_chars += chars;
    int last = total_chars > max_chars;
    if (b.n >= BATCH_BYTES || b.ndocs >= BATCH_DOCS || last)
      if ((rc = split_batch(re, &b, ts, threads)) != NC_OK) goto done;
    if (last) break;
  }
  if (b.ndocs && (rc = split_batch(re, &b, ts, threads)) != NC_OK) goto done;
  rc = NC_ENOMEM;
  for (int i = 1; i < threads; i++) {
    cmap *m = &ts[i].map;
    for (size_t k = 0; k <= m->mask; k++)
      if (m->slot[k].count) cmap_add(&ts[0].map, m->arena + m->slot[k].off, m->slot[k].len, m->slot[k].count);
    cmap_free(m);
    if (ts[0].map.oom) goto done;
  }
  for (int i = 0; i < threads; i++) st->chunks += ts[i].chunks;
  st->unique_chunks = ts[0].map.used;
  if (words_from_map(&T, &ts[0].map)) goto done;
  cmap_free(&ts[0].map);
  st->count_seconds = now_s() - t0;

  double t1 = now_s();
  merges = malloc((size_t)(n_merges > 0 ? n_merges : 1) * sizeof *merges);
  if (!merges) goto done;
  long done_m = run_merges(&T, n_merges, merges, opts);
  if (done_m < 0) {
    rc = (int)done_m;
    if (rc == NC_ECANCELED) nc_tok__err(msg, msglen, rc, "training cancelled");
    goto done;
  }
  st->merges = (int32_t)done_m;
  st->merge_seconds = now_s() - t1;
  trainer_free(&T);
  memset(&T, 0, sizeof T);
  if (opts->progress && opts->progress(opts->progress_ctx, (int32_t)done_m, (int32_t)n_merges)) {
    rc = nc_tok__err(msg, msglen, NC_ECANCELED, "training cancelled");
    goto done;
  }
  rc = build_result(opts, pattern, merges, done_m, spec, nspec, out, st, msg, msglen);
done:
  if (rc == NC_ENOMEM && msg && msglen && !msg[0]) nc_tok__err(msg, msglen, rc, "out of memory");
  if (ts)
    for (int i = 0; i < threads; i++) {
      nc_tok__ctx_free(&ts[i].ctx);
      cmap_free(&ts[i].map);
    }
  free(ts);
  nc_tok_free(re);
  free(b.buf);
  free(b.start);
  trainer_free(&T);
  free(merges);
  return rc;
}
