/* nc_tok_internal.h — the tokenizer's private layout, shared by nc_tok_*.c (and unit tests).
 * Not part of the API: nothing outside core/nc_tok_*.c and tests/unit may include it. */
#ifndef NC_TOK_INTERNAL_H
#define NC_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <string.h>

#include "nc_err.h"
#include "nc_tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NC_TOK_NO_RANK UINT32_MAX

typedef struct nc_tok_spec {
  char *text;
  uint32_t len;
  int32_t id;
} nc_tok_spec;

/* bytes -> rank: open addressing; slot empty when rank == NC_TOK_NO_RANK. */
typedef struct nc_tok_bslot {
  uint32_t tag;  /* high 32 bits of the hash */
  uint32_t rank;
} nc_tok_bslot;

struct nc_tokenizer {
  char *pattern;           /* as given */
  char *compiled_pattern;  /* after the \s rewrite */
  nc_tok_dialect dialect;
  pcre2_code *re;
  int jit;                 /* JIT compiled */
  int32_t n_ranks, vocab_size;
  uint32_t max_len;        /* longest rank, bytes */
  uint8_t *bytes;          /* all ranks' bytes back to back */
  uint32_t *off;           /* n_ranks + 1 offsets into bytes */
  uint32_t byte_rank[256]; /* rank of each single byte */
  nc_tok_bslot *bmap;      /* bytes -> rank (later rank wins on equal bytes) */
  size_t bmask;
  uint64_t *pslot;         /* left << 42 | right << 21 | merged rank (all < 2^21); empty = UINT64_MAX */
  size_t pmask;
  unsigned pshift;
  pcre2_match_context *mctx; /* match limits (read only while matching, shared) */
  int n_specials;
  nc_tok_spec *specials;   /* sorted by id */
  int32_t bos_id;          /* -1 when there is no <|bos|> */
};

/* 64-bit hash of a byte string (fast for the short strings chunks are). */
static inline uint64_t nc_tok_hash(const uint8_t *p, size_t n) {
  const uint64_t m = 0x9E3779B97F4A7C15ull;
  uint64_t h = 0x243F6A8885A308D3ull ^ (n * m);
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    __uint128_t x = (__uint128_t)(h ^ v) * (m ^ 0xA0761D6478BD642Full);
    h = (uint64_t)x ^ (uint64_t)(x >> 64);
    p += 8;
    n -= 8;
  }
  if (n) {
    uint64_t v = 0;
    memcpy(&v, p, n);
    __uint128_t x = (__uint128_t)(h ^ v ^ ((uint64_t)n << 59)) * (m ^ 0xE7037ED1A0B428DBull);
    h = (uint64_t)x ^ (uint64_t)(x >> 64);
  }
  __uint128_t x = (__uint128_t)h * 0x8EBC6AF09C88C6E3ull;
  return (uint64_t)x ^ (uint64_t)(x >> 64);
}

/* Equality of two byte strings of the same length n (short ones without a call). */
static inline int nc_tok_eq(const uint8_t *a, const uint8_t *b, size_t n) {
  if (n >= 8 && n <= 16) {
    uint64_t x, y, u, v;
    memcpy(&x, a, 8);
    memcpy(&y, b, 8);
    memcpy(&u, a + n - 8, 8);
    memcpy(&v, b + n - 8, 8);
    return x == y && u == v;
  }
  if (n < 8) {
    for (size_t i = 0; i < n; i++)
      if (a[i] != b[i]) return 0;
    return 1;
  }
  return memcmp(a, b, n) == 0;
}

/* Rank whose bytes are p[0..n) with hash h = nc_tok_hash(p, n), or NC_TOK_NO_RANK (n >= 2). */
static inline uint32_t nc_tok_rank_of_h(const struct nc_tokenizer *t, const uint8_t *p, size_t n,
                                        uint64_t h) {
  if (n > t->max_len) return NC_TOK_NO_RANK;
  uint32_t tag = (uint32_t)(h >> 32);
  for (size_t i = (size_t)h & t->bmask;; i = (i + 1) & t->bmask) {
    const nc_tok_bslot *s = &t->bmap[i];
    if (s->rank == NC_TOK_NO_RANK) return NC_TOK_NO_RANK;
    if (s->tag == tag) {
      uint32_t a = t->off[s->rank], b = t->off[s->rank + 1];
      if (b - a == n && nc_tok_eq(t->bytes + a, p, n)) return s->rank;
    }
  }
}

/* Rank whose bytes are p[0..n), or NC_TOK_NO_RANK. */
static inline uint32_t nc_tok_rank_of(const struct nc_tokenizer *t, const uint8_t *p, size_t n) {
  if (n == 1) return t->byte_rank[p[0]];
  if (n == 0 || n > t->max_len) return NC_TOK_NO_RANK;
  return nc_tok_rank_of_h(t, p, n, nc_tok_hash(p, n));
}

/* Rank of the concatenation of ranks l and r, or NC_TOK_NO_RANK. */
static inline uint32_t nc_tok_pair(const struct nc_tokenizer *t, uint32_t l, uint32_t r) {
  uint64_t key = ((uint64_t)l << 21) | r;
  for (size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> t->pshift);; i = (i + 1) & t->pmask) {
    uint64_t s = t->pslot[i];
    if ((s >> 21) == key) return (uint32_t)(s & ((1u << 21) - 1));
    if (s == UINT64_MAX) return NC_TOK_NO_RANK;
  }
}

/* ---- split (nc_tok_split.c) ---- */

/* Rewrites \s and \S of `pat` for `dialect` into a malloc'ed string (*out). NC_OK, NC_EINVAL
 * (unsupported construct; msg), NC_ENOMEM. */
int nc_tok__rewrite_pattern(const char *pat, nc_tok_dialect dialect, char **out, char *msg,
                            size_t msglen);
/* Compiles t->compiled_pattern into t->re (+ JIT). */
int nc_tok__compile(struct nc_tokenizer *t, char *msg, size_t msglen);

/* Chunk cache of one encoder context: recent chunks with their ids, direct mapped by hash,
 * 64-byte entries (256 KiB: stays in L2, while the rank map of a large vocabulary does not).
 * Only chunks of 2..NC_TOK_CACHE_LEN bytes and <= NC_TOK_CACHE_IDS ids. Allocated lazily once
 * a call has seen NC_TOK_CACHE_AFTER such chunks, so short calls never pay for it. */
#define NC_TOK_CACHE_SLOTS 4096
#define NC_TOK_CACHE_LEN 22
#define NC_TOK_CACHE_IDS 8
#define NC_TOK_CACHE_AFTER 256
typedef struct nc_tok_centry {
  uint64_t h;
  uint8_t len, nids; /* len 0 = empty */
  uint8_t bytes[NC_TOK_CACHE_LEN];
  uint32_t ids[NC_TOK_CACHE_IDS];
} nc_tok_centry;

/* Per-call encoder state: PCRE2 match data, a growable scratch for long chunks, the cache. */
typedef struct nc_tok_ctx {
  pcre2_match_data *md;
  pcre2_match_context *mctx;
  pcre2_jit_stack *jstack;
  uint32_t *scratch; /* growable: ids + NC_TOK_WORK of the longest chunk so far */
  size_t scratch_cap; /* words */
  nc_tok_centry *cache;
  size_t seen_chunks;
} nc_tok_ctx;

int nc_tok__ctx_init(const struct nc_tokenizer *t, nc_tok_ctx *c);
void nc_tok__ctx_free(nc_tok_ctx *c);

/* Finds the next match at or after `*pos` in s[0..len). Returns 1 with [*ms, *me) (me > ms),
 * 0 when there is none, or a negative NC_E* code. *pos is advanced past the match. Empty
 * matches are skipped one character at a time (they produce nothing, as in tiktoken). */
int nc_tok__next_chunk(const struct nc_tokenizer *t, nc_tok_ctx *c, const uint8_t *s, size_t len,
                       size_t *pos, size_t *ms, size_t *me);

/* ---- BPE (nc_tok_encode.c) ---- */

/* Work space (32-bit words) the BPE functions need for an n-byte chunk. */
#define NC_TOK_WORK(n) (10 * (size_t)(n) + 8)

/* Encodes one chunk (n >= 2 bytes) into out[0..n) and returns the number of ids. `work`
 * holds NC_TOK_WORK(n) words. The reference is the tiktoken loop (O(n^2));
 * the heap version (O(n log n)) is used for long chunks and must agree. */
size_t nc_tok__bpe_ref(const struct nc_tokenizer *t, const uint8_t *p, size_t n, uint32_t *out,
                       uint32_t *work);
size_t nc_tok__bpe_heap(const struct nc_tokenizer *t, const uint8_t *p, size_t n, uint32_t *out,
                        uint32_t *work);

/* ---- building (nc_tok_core.c) ---- */

/* Builds the maps of a tokenizer whose bytes/off/n_ranks are set. */
int nc_tok__build_maps(struct nc_tokenizer *t, char *msg, size_t msglen);

/* printf into msg (when msg && msglen) and return code (nc_errf). */
#define nc_tok__err(msg, msglen, code, ...) nc_errf((code), (msg), (msglen), __VA_ARGS__)

/* Decodes one UTF-8 character at s[0..n): returns its length (1..4) and *cp, or 0 when the
 * bytes there are not a valid character (then *bad = length of the maximal invalid subpart,
 * 1..3, and *truncated = 1 when the subpart is a valid prefix cut short by the end). */
size_t nc_tok__utf8_step(const uint8_t *s, size_t n, uint32_t *cp, size_t *bad, int *truncated);

#ifdef __cplusplus
}
#endif
#endif /* NC_TOK_INTERNAL_H */
