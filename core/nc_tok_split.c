/* nc_tok_split.c — the split regex: \s rewrite per dialect, PCRE2 compile + JIT, matching. */
#include <stdlib.h>
#include <string.h>

#include "nc_err.h"
#include "nc_tok_internal.h"

/* Unicode White_Space (Rust regex \s): tab..CR, space, NEL, NBSP, ogham, en quad..hair
 * space, line/paragraph separators, narrow NBSP, medium math space, ideographic space. */
static const char WS_RUST[] =
    "\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}"
    "\\x{205f}\\x{3000}";
/* JavaScript \s: the same without NEL, plus U+FEFF. */
static const char WS_JS[] =
    "\\x{9}-\\x{d}\\x{20}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}"
    "\\x{205f}\\x{3000}\\x{feff}";

/* Largest match effort per chunk (PCRE2 match limit); nanochat's pattern needs one unit per
 * byte of a whitespace run (measured), so this allows 64 MiB runs and stops pathological
 * patterns (NC_EFULL). */
#define NC_TOK_MATCH_LIMIT (1u << 26)
#define NC_TOK_JIT_STACK_MAX (8u << 20)

typedef struct sbuf {
  char *p;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t c = b->cap ? b->cap : 256;
    while (c < b->n + n + 1) c *= 2;
    char *q = realloc(b->p, c);
    if (!q) {
      b->oom = 1;
      return;
    }
    b->p = q;
    b->cap = c;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

int nc_tok__rewrite_pattern(const char *pat, nc_tok_dialect dialect, char **out, char *msg,
                            size_t msglen) {
  const char *ws = dialect == NC_TOK_DIALECT_JS ? WS_JS : WS_RUST;
  size_t wsn = strlen(ws);
  sbuf b = {0};
  size_t n = strlen(pat);
  int in_class = 0;
  for (size_t i = 0; i < n;) {
    char ch = pat[i];
    if (ch == '\\') {
      if (i + 1 >= n) {
        free(b.p);
        return nc_tok__err(msg, msglen, NC_EINVAL, "pattern ends with a backslash");
      }
      char e = pat[i + 1];
      if (e == 's' || e == 'S') {
        if (in_class && e == 'S') {
          free(b.p);
          return nc_tok__err(msg, msglen, NC_EINVAL,
                             "pattern offset %zu: \\S inside a character class is not supported", i);
        }
        if (!in_class) sb_put(&b, e == 's' ? "[" : "[^", e == 's' ? 1 : 2);
        sb_put(&b, ws, wsn);
        if (!in_class) sb_put(&b, "]", 1);
        i += 2;
        continue;
      }
      if (e == 'Q' || e == 'E') {
        free(b.p);
        return nc_tok__err(msg, msglen, NC_EINVAL, "pattern offset %zu: \\Q...\\E is not supported", i);
      }
      size_t k = (e == 'c' && i + 2 < n) ? 3 : 2; /* \cX takes one more character */
      sb_put(&b, pat + i, k);
      i += k;
      continue;
    }
    if (!in_class) {
      if (ch == '[') {
        in_class = 1;
        size_t k = 1;
        if (i + k < n && pat[i + k] == '^') k++;
        if (i + k < n && pat[i + k] == ']') k++; /* a leading ] is literal */
        sb_put(&b, pat + i, k);
        i += k;
        continue;
      }
      if (ch == '(' && i + 2 < n && pat[i + 1] == '?' && pat[i + 2] == '#') {
        const char *end = strchr(pat + i, ')');
        size_t k = end ? (size_t)(end - (pat + i)) + 1 : n - i;
        sb_put(&b, pat + i, k);
        i += k;
        continue;
      }
      sb_put(&b, pat + i, 1);
      i++;
      continue;
    }
    /* inside a class */
    if (ch == '[' && i + 1 < n && pat[i + 1] == ':') {
      const char *end = strstr(pat + i + 2, ":]");
      if (end) {
        size_t k = (size_t)(end - (pat + i)) + 2;
        sb_put(&b, pat + i, k);
        i += k;
        continue;
      }
    }
    if (ch == ']') in_class = 0;
    sb_put(&b, pat + i, 1);
    i++;
  }
  if (b.oom) {
    free(b.p);
    return NC_ENOMEM;
  }
  if (in_class) {
    free(b.p);
    return nc_tok__err(msg, msglen, NC_EINVAL, "pattern has an unterminated character class");
  }
  if (!b.p) sb_put(&b, "", 0);
  if (b.oom) return NC_ENOMEM;
  *out = b.p;
  return NC_OK;
}

int nc_tok__compile(struct nc_tokenizer *t, char *msg, size_t msglen) {
  int ec = 0;
  PCRE2_SIZE eo = 0;
  pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
  if (!cc) return NC_ENOMEM;
  pcre2_set_max_pattern_length(cc, 1u << 20);
  pcre2_set_parens_nest_limit(cc, 64);
  t->re = pcre2_compile((PCRE2_SPTR)t->compiled_pattern, PCRE2_ZERO_TERMINATED,
                        PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C, &ec,
                        &eo, cc);
  pcre2_compile_context_free(cc);
  if (!t->re) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(ec, buf, sizeof buf);
    return nc_tok__err(msg, msglen, NC_EINVAL, "pattern does not compile: %s (offset %zu of the rewritten pattern)",
                       (const char *)buf, (size_t)eo);
  }
  t->jit = pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;
  t->mctx = pcre2_match_context_create(NULL);
  if (!t->mctx) return NC_ENOMEM;
  pcre2_set_match_limit(t->mctx, NC_TOK_MATCH_LIMIT);
  return NC_OK;
}

int nc_tok__ctx_init(const struct nc_tokenizer *t, nc_tok_ctx *c) {
  memset(c, 0, sizeof *c);
  c->md = pcre2_match_data_create_from_pattern(t->re, NULL);
  return c->md ? NC_OK : NC_ENOMEM;
}

void nc_tok__ctx_free(nc_tok_ctx *c) {
  if (c->md) pcre2_match_data_free(c->md);
  if (c->mctx) pcre2_match_context_free(c->mctx);
  if (c->jstack) pcre2_jit_stack_free(c->jstack);
  free(c->scratch);
  free(c->cache);
  memset(c, 0, sizeof *c);
}

/* The first time the default 32 KiB JIT stack is too small, this call gets its own. */
static int grow_jit_stack(const struct nc_tokenizer *t, nc_tok_ctx *c) {
  if (c->jstack) return NC_EFULL;
  c->mctx = pcre2_match_context_copy(t->mctx);
  c->jstack = pcre2_jit_stack_create(64u << 10, NC_TOK_JIT_STACK_MAX, NULL);
  if (!c->mctx || !c->jstack) return NC_ENOMEM;
  pcre2_jit_stack_assign(c->mctx, NULL, c->jstack);
  return NC_OK;
}

int nc_tok__next_chunk(const struct nc_tokenizer *t, nc_tok_ctx *c, const uint8_t *s, size_t len,
                       size_t *pos, size_t *ms, size_t *me) {
  while (*pos < len) {
    pcre2_match_context *mc = c->mctx ? c->mctx : t->mctx;
    int rc = t->jit ? pcre2_jit_match(t->re, s, len, *pos, 0, c->md, mc)
                    : pcre2_match(t->re, s, len, *pos, PCRE2_NO_UTF_CHECK, c->md, mc);
    if (rc == PCRE2_ERROR_NOMATCH) {
      *pos = len;
      return 0;
    }
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      int g = grow_jit_stack(t, c);
      if (g) return g;
      continue;
    }
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT)
      return NC_EFULL;
    if (rc == PCRE2_ERROR_NOMEMORY) return NC_ENOMEM;
    if (rc < 0) return NC_EINTERNAL;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
    if (ov[1] > ov[0] && ov[1] <= len) {
      *ms = ov[0];
      *me = ov[1];
      *pos = ov[1];
      return 1;
    }
    /* an empty match (or \K games): step one character past its start */
    size_t p = (ov[0] < len ? ov[0] : *pos) + 1;
    while (p < len && (s[p] & 0xC0) == 0x80) p++;
    if (p <= *pos) p = *pos + 1;
    *pos = p;
  }
  return 0;
}
