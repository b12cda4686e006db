/* nc_tok_core.c — creating a tokenizer (validation, the rank maps), accessors, UTF-8 helpers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nc_err.h"
#include "nc_tok_internal.h"

const char *const NC_TOK_SPECIALS_NANOCHAT[NC_TOK_N_SPECIALS_NANOCHAT] = {
    "<|bos|>",          "<|user_start|>",   "<|user_end|>",
    "<|assistant_start|>", "<|assistant_end|>", "<|python_start|>",
    "<|python_end|>",   "<|output_start|>", "<|output_end|>",
};

/* Work budget of the pair map: sum over ranks of len * (len - 1) byte hashes. Real
 * vocabularies need a few million; this keeps a hostile file from taking minutes. */
#define NC_TOK_SPLIT_BUDGET (1ull << 28)


/* ---- UTF-8 ---------------------------------------------------------------------------------- */

size_t nc_tok__utf8_step(const uint8_t *s, size_t n, uint32_t *cp, size_t *bad, int *truncated) {
  uint8_t b = s[0];
  if (b < 0x80) {
    *cp = b;
    return 1;
  }
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF;
  uint32_t c;
  if (b >= 0xC2 && b <= 0xDF) {
    need = 1;
    c = b & 0x1Fu;
  } else if (b >= 0xE0 && b <= 0xEF) {
    need = 2;
    c = b & 0x0Fu;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 3;
    c = b & 0x07u;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    *bad = 1;
    *truncated = 0;
    return 0;
  }
  for (size_t i = 1; i <= need; i++) {
    if (i >= n) {
      *bad = i;
      *truncated = 1;
      return 0;
    }
    uint8_t x = s[i];
    if (x < lo || x > hi) {
      *bad = i;
      *truncated = 0;
      return 0;
    }
    lo = 0x80;
    hi = 0xBF;
    c = (c << 6) | (x & 0x3Fu);
  }
  *cp = c;
  return need + 1;
}

int nc_tok_utf8_valid(const char *str, size_t len) {
  const uint8_t *s = (const uint8_t *)str;
  size_t i = 0;
  while (i < len) {
    if (i + 8 <= len) {
      uint64_t v;
      memcpy(&v, s + i, 8);
      if ((v & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    if (s[i] < 0x80) {
      i++;
      continue;
    }
    uint32_t cp;
    size_t bad;
    int tr;
    size_t k = nc_tok__utf8_step(s + i, len - i, &cp, &bad, &tr);
    if (!k) return 0;
    i += k;
  }
  return 1;
}

/* ---- maps ----------------------------------------------------------------------------------- */

static size_t pow2_at_least(size_t n) {
  size_t c = 16;
  while (c < n) c <<= 1;
  return c;
}

static int pair_insert(struct nc_tokenizer *t, uint32_t l, uint32_t r, uint32_t v) {
  uint64_t key = ((uint64_t)l << 21) | r;
  for (size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> t->pshift);; i = (i + 1) & t->pmask) {
    if (t->pslot[i] == UINT64_MAX) {
      t->pslot[i] = (key << 21) | v;
      return 1;
    }
    if ((t->pslot[i] >> 21) == key) return 0;
  }
}

int nc_tok__build_maps(struct nc_tokenizer *t, char *msg, size_t msglen) {
  int32_t n = t->n_ranks;
  for (int i = 0; i < 256; i++) t->byte_rank[i] = NC_TOK_NO_RANK;
  t->max_len = 0;
  uint64_t split_work = 0;
  size_t multi = 0;
  for (int32_t r = 0; r < n; r++) {
    uint32_t len = t->off[r + 1] - t->off[r];
    if (len > t->max_len) t->max_len = len;
    if (len == 1) t->byte_rank[t->bytes[t->off[r]]] = (uint32_t)r;
    else multi++;
    split_work += (uint64_t)len * (len - 1);
  }
  for (int i = 0; i < 256; i++)
    if (t->byte_rank[i] == NC_TOK_NO_RANK)
      return nc_tok__err(msg, msglen, NC_EINVAL, "byte 0x%02x has no rank (byte-level BPE needs all 256)", i);
  if (split_work > NC_TOK_SPLIT_BUDGET)
    return nc_tok__err(msg, msglen, NC_EINVAL, "tokens too long in total (split work %llu > %llu)",
                       (unsigned long long)split_work, (unsigned long long)NC_TOK_SPLIT_BUDGET);
  size_t cap = pow2_at_least(2 * multi + 2);
  t->bmap = malloc(cap * sizeof *t->bmap);
  if (!t->bmap) return NC_ENOMEM;
  t->bmask = cap - 1;
  for (size_t i = 0; i < cap; i++) t->bmap[i].rank = NC_TOK_NO_RANK;
  for (int32_t r = 0; r < n; r++) {
    const uint8_t *p = t->bytes + t->off[r];
    uint32_t len = t->off[r + 1] - t->off[r];
    if (len < 2) continue;
    uint64_t h = nc_tok_hash(p, len);
    uint32_t tag = (uint32_t)(h >> 32);
    for (size_t i = (size_t)h & t->bmask;; i = (i + 1) & t->bmask) {
      nc_tok_bslot *s = &t->bmap[i];
      if (s->rank == NC_TOK_NO_RANK) {
        s->tag = tag;
        s->rank = (uint32_t)r;
        break;
      }
      if (s->tag == tag) {
        uint32_t a = t->off[s->rank], b = t->off[s->rank + 1];
        if (b - a == len && memcmp(t->bytes + a, p, len) == 0) {
          s->rank = (uint32_t)r; /* later rank wins, like tiktoken's dict */
          break;
        }
      }
    }
  }
  /* pair map: every split of a canonical rank into two ranks */
  size_t npairs = 0;
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) {
      size_t pc = pow2_at_least(2 * npairs + 2);
      unsigned bits = 0;
      while (((size_t)1 << bits) < pc) bits++;
      t->pslot = malloc(pc * sizeof *t->pslot);
      if (!t->pslot) return NC_ENOMEM;
      for (size_t i = 0; i < pc; i++) t->pslot[i] = UINT64_MAX;
      t->pmask = pc - 1;
      t->pshift = 64 - bits;
    }
    for (int32_t r = 0; r < n; r++) {
      const uint8_t *p = t->bytes + t->off[r];
      uint32_t len = t->off[r + 1] - t->off[r];
      if (len < 2 || nc_tok_rank_of(t, p, len) != (uint32_t)r) continue;
      for (uint32_t k = 1; k < len; k++) {
        uint32_t a = nc_tok_rank_of(t, p, k);
        if (a == NC_TOK_NO_RANK) continue;
        uint32_t b = nc_tok_rank_of(t, p + k, len - k);
        if (b == NC_TOK_NO_RANK) continue;
        if (pass == 0) npairs++;
        else pair_insert(t, a, b, (uint32_t)r);
      }
    }
  }
  return NC_OK;
}

/* ---- create / free -------------------------------------------------------------------------- */

static int special_text_ok(const char *s, size_t n) {
  if (n < 1 || n > NC_TOK_MAX_SPECIAL_LEN) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7F) return 0;
  return 1;
}

static int cmp_spec(const void *a, const void *b) {
  const nc_tok_spec *x = a, *y = b;
  return x->id < y->id ? -1 : x->id > y->id;
}

int nc_tok_create(const char *pattern, nc_tok_dialect dialect, const uint8_t *const *tokens,
                  const uint32_t *lens, int32_t n_ranks, const nc_tok_special *specials,
                  int n_specials, nc_tokenizer **out, char *msg, size_t msglen) {
  if (msg && msglen) msg[0] = 0;
  if (!out) return NC_EINVAL;
  *out = NULL;
  if (!pattern) pattern = NC_TOK_PATTERN_NANOCHAT;
  size_t plen = strnlen(pattern, NC_TOK_MAX_PATTERN + 1);
  if (plen == 0 || plen > NC_TOK_MAX_PATTERN)
    return nc_tok__err(msg, msglen, NC_EINVAL, "pattern must be 1..%d bytes", NC_TOK_MAX_PATTERN);
  if (!nc_tok_utf8_valid(pattern, plen))
    return nc_tok__err(msg, msglen, NC_EINVAL, "pattern is not valid UTF-8");
  if (dialect != NC_TOK_DIALECT_RUST && dialect != NC_TOK_DIALECT_JS)
    return nc_tok__err(msg, msglen, NC_EINVAL, "unknown regex dialect %d", (int)dialect);
  if (n_ranks < 256 || n_ranks > NC_TOK_MAX_VOCAB || !tokens || !lens)
    return nc_tok__err(msg, msglen, NC_EINVAL, "need 256..%d ranks, got %d", NC_TOK_MAX_VOCAB, (int)n_ranks);
  if (n_specials < 0 || n_specials > NC_TOK_MAX_SPECIALS || (n_specials > 0 && !specials))
    return nc_tok__err(msg, msglen, NC_EINVAL, "need 0..%d special tokens", NC_TOK_MAX_SPECIALS);
  uint64_t total = 0;
  for (int32_t r = 0; r < n_ranks; r++) {
    if (lens[r] < 1 || lens[r] > NC_TOK_MAX_TOKEN_LEN || !tokens[r])
      return nc_tok__err(msg, msglen, NC_EINVAL, "rank %d: token must be 1..%d bytes", (int)r,
                         NC_TOK_MAX_TOKEN_LEN);
    total += lens[r];
  }
  int32_t vocab = n_ranks;
  for (int i = 0; i < n_specials; i++) {
    const nc_tok_special *s = &specials[i];
    if (!s->text || !special_text_ok(s->text, s->len))
      return nc_tok__err(msg, msglen, NC_EINVAL,
                         "special %d: text must be 1..%d bytes of printable ASCII without spaces", i,
                         NC_TOK_MAX_SPECIAL_LEN);
    if (s->id < n_ranks || s->id >= NC_TOK_MAX_VOCAB)
      return nc_tok__err(msg, msglen, NC_EINVAL, "special %d: id %d must be in [%d, %d)", i,
                         (int)s->id, (int)n_ranks, NC_TOK_MAX_VOCAB);
    for (int j = 0; j < i; j++) {
      if (specials[j].id == s->id)
        return nc_tok__err(msg, msglen, NC_EINVAL, "special %d: id %d used twice", i, (int)s->id);
      if (specials[j].len == s->len && memcmp(specials[j].text, s->text, s->len) == 0)
        return nc_tok__err(msg, msglen, NC_EINVAL, "special %d: text used twice", i);
    }
    if (s->id + 1 > vocab) vocab = s->id + 1;
  }

  struct nc_tokenizer *t = calloc(1, sizeof *t);
  if (!t) return NC_ENOMEM;
  int rc = NC_ENOMEM;
  t->dialect = dialect;
  t->n_ranks = n_ranks;
  t->vocab_size = vocab;
  t->bos_id = -1;
  t->pattern = malloc(plen + 1);
  t->bytes = malloc(total ? total : 1);
  t->off = malloc(((size_t)n_ranks + 1) * sizeof *t->off);
  t->specials = calloc((size_t)(n_specials ? n_specials : 1), sizeof *t->specials);
  if (!t->pattern || !t->bytes || !t->off || !t->specials) goto fail;
  memcpy(t->pattern, pattern, plen + 1);
  uint32_t o = 0;
  for (int32_t r = 0; r < n_ranks; r++) {
    t->off[r] = o;
    memcpy(t->bytes + o, tokens[r], lens[r]);
    o += lens[r];
  }
  t->off[n_ranks] = o;
  for (int i = 0; i < n_specials; i++) {
    t->specials[i].text = malloc(specials[i].len + 1);
    if (!t->specials[i].text) goto fail;
    t->n_specials = i + 1;
    memcpy(t->specials[i].text, specials[i].text, specials[i].len);
    t->specials[i].text[specials[i].len] = 0;
    t->specials[i].len = (uint32_t)specials[i].len;
    t->specials[i].id = specials[i].id;
  }
  qsort(t->specials, (size_t)t->n_specials, sizeof *t->specials, cmp_spec);
  t->bos_id = nc_tok_special_id(t, "<|bos|>", 7);
  if (t->bos_id < 0) t->bos_id = -1;
  rc = nc_tok__rewrite_pattern(t->pattern, dialect, &t->compiled_pattern, msg, msglen);
  if (rc) goto fail;
  rc = nc_tok__compile(t, msg, msglen);
  if (rc) goto fail;
  rc = nc_tok__build_maps(t, msg, msglen);
  if (rc) goto fail;
  *out = t;
  return NC_OK;
fail:
  nc_tok_free(t);
  if (rc == NC_ENOMEM) nc_tok__err(msg, msglen, rc, "out of memory");
  return rc;
}

void nc_tok_free(nc_tokenizer *t) {
  if (!t) return;
  if (t->re) pcre2_code_free(t->re);
  if (t->mctx) pcre2_match_context_free(t->mctx);
  for (int i = 0; i < t->n_specials; i++) free(t->specials[i].text);
  free(t->specials);
  free(t->pattern);
  free(t->compiled_pattern);
  free(t->bytes);
  free(t->off);
  free(t->bmap);
  free(t->pslot);
  free(t);
}

/* ---- accessors ------------------------------------------------------------------------------ */

int32_t nc_tok_vocab_size(const nc_tokenizer *t) { return t->vocab_size; }
int32_t nc_tok_n_ranks(const nc_tokenizer *t) { return t->n_ranks; }
const char *nc_tok_pattern(const nc_tokenizer *t) { return t->pattern; }
nc_tok_dialect nc_tok_get_dialect(const nc_tokenizer *t) { return t->dialect; }
int nc_tok_n_specials(const nc_tokenizer *t) { return t->n_specials; }

int nc_tok_special_at(const nc_tokenizer *t, int i, const char **text, size_t *len, int32_t *id) {
  if (i < 0 || i >= t->n_specials) return NC_EINVAL;
  if (text) *text = t->specials[i].text;
  if (len) *len = t->specials[i].len;
  if (id) *id = t->specials[i].id;
  return NC_OK;
}

int32_t nc_tok_special_id(const nc_tokenizer *t, const char *text, size_t len) {
  if (!text) return NC_ENOTFOUND;
  for (int i = 0; i < t->n_specials; i++)
    if (t->specials[i].len == len && memcmp(t->specials[i].text, text, len) == 0)
      return t->specials[i].id;
  return NC_ENOTFOUND;
}

int nc_tok_nanochat_specials(const nc_tokenizer *t, nc_special_ids *out) {
  int32_t v[NC_TOK_N_SPECIALS_NANOCHAT];
  for (int i = 0; i < NC_TOK_N_SPECIALS_NANOCHAT; i++) {
    const char *s = NC_TOK_SPECIALS_NANOCHAT[i];
    v[i] = nc_tok_special_id(t, s, strlen(s));
    if (v[i] < 0) return NC_ENOTFOUND;
  }
  out->bos = v[0];
  out->user_start = v[1];
  out->user_end = v[2];
  out->assistant_start = v[3];
  out->assistant_end = v[4];
  out->python_start = v[5];
  out->python_end = v[6];
  out->output_start = v[7];
  out->output_end = v[8];
  return NC_OK;
}

const uint8_t *nc_tok_token(const nc_tokenizer *t, int32_t id, size_t *len) {
  if (id >= 0 && id < t->n_ranks) {
    *len = t->off[id + 1] - t->off[id];
    return t->bytes + t->off[id];
  }
  int lo = 0, hi = t->n_specials - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if (t->specials[mid].id == id) {
      *len = t->specials[mid].len;
      return (const uint8_t *)t->specials[mid].text;
    }
    if (t->specials[mid].id < id) lo = mid + 1;
    else hi = mid - 1;
  }
  *len = 0;
  return NULL;
}

int nc_tok_token_bytes(const nc_tokenizer *t, int32_t *out, size_t n) {
  if (!out || n < (size_t)t->vocab_size) return NC_EINVAL;
  for (size_t i = 0; i < n; i++) out[i] = 0;
  for (int32_t r = 0; r < t->n_ranks; r++) out[r] = (int32_t)(t->off[r + 1] - t->off[r]);
  return NC_OK;
}

/* ---- nc_chat interface ---------------------------------------------------------------------- */

static long iface_encode(void *ctx, const char *text, size_t len, int32_t *out, size_t cap) {
  return nc_tok_encode_ordinary(ctx, text, len, out, cap);
}

static long iface_decode(void *ctx, const int32_t *ids, size_t n, char *out, size_t cap) {
  return nc_tok_decode_bytes(ctx, ids, n, out, cap);
}

nc_tok_iface nc_tok_chat_iface(const nc_tokenizer *t) {
  nc_tok_iface f;
  f.ctx = (void *)(uintptr_t)t;
  f.encode = iface_encode;
  f.decode = iface_decode;
  return f;
}
