/* nc_h_tokenizer.c — Tokenizer.Encode and Tokenizer.Decode with the server's tokenizer
 * (nc_app.tokenizers: shared and hot-reloaded, service/nc_tokref.h; core/nc_tokenizer.h).
 *
 * Both answer inline on the completion-queue thread: the gate has capped the request at
 * 1 MiB, which encodes in a few tens of milliseconds. User text is encoded as ordinary text
 * unless allow_special is set; prepend_bos is explicit. Errors name the field:
 *   no tokenizer loaded                         FAILED_PRECONDITION
 *   text and texts both set                     INVALID_ARGUMENT "text, texts: ..."
 *   prepend_bos without a <|bos|> token         FAILED_PRECONDITION "prepend_bos: ..."
 *   an id that is no token                      INVALID_ARGUMENT "tokens[i]: ..."
 *   decoded text over NC_DECODE_MAX_BYTES       RESOURCE_EXHAUSTED "tokens: ..."
 *   decoded text with a NUL byte                INVALID_ARGUMENT "tokens: ..."
 * (UTF-8 validity, lengths and counts of the request are checked by the gate first.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nanochat/v1/tokenizer.pb-c.h"
#include "nc_call.h"
#include "nc_err.h"
#include "nc_tokenizer.h"
#include "nc_tokref.h"

#define NC_DECODE_MAX_BYTES (8u << 20)

static int encode_err(nc_call *c, int rc, const char *field) {
  if (rc == NC_EFULL)
    return nc_call_finish(c, rc, "%s: too complex for the tokenizer's split pattern", field);
  if (rc == NC_EINVAL) return nc_call_finish(c, rc, "%s: not valid UTF-8", field);
  return nc_call_finish(c, rc, "%s: %s", field, nc_strerror(rc));
}

static int encode_with(nc_call *c, const ProtobufCMessage *req, const nc_tokenizer *t) {
  const Nanochat__V1__EncodeRequest *r = (const void *)req;
  if (r->text && r->n_texts) return nc_call_finish(c, NC_EINVAL, "text, texts: set one of them, not both");
  int flags = (r->has_allow_special && r->allow_special ? NC_TOK_ALLOW_SPECIAL : 0) |
              (r->has_prepend_bos && r->prepend_bos ? NC_TOK_PREPEND_BOS : 0);
  if ((flags & NC_TOK_PREPEND_BOS) && nc_tok_special_id(t, "<|bos|>", 7) < 0)
    return nc_call_finish(c, NC_ESTATE, "prepend_bos: the tokenizer has no <|bos|> token");
  Nanochat__V1__EncodeResponse resp = NANOCHAT__V1__ENCODE_RESPONSE__INIT;
  resp.has_count = true;
  if (!r->n_texts) {
    const char *text = r->text ? r->text : "";
    size_t len = strlen(text), cap = len + 1;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return NC_ENOMEM;
    long n = nc_tok_encode(t, text, len, flags, ids, cap);
    if (n < 0) {
      free(ids);
      return encode_err(c, (int)n, "text");
    }
    resp.n_tokens = (size_t)n;
    resp.tokens = (uint32_t *)ids; /* ids are non-negative */
    resp.count = (uint32_t)n;
    int rc = nc_call_reply(c, &resp.base);
    free(ids);
    return rc;
  }
  size_t n = r->n_texts, bound = 0;
  size_t *lens = malloc(n * sizeof *lens), *off = malloc((n + 1) * sizeof *off);
  Nanochat__V1__TokenList *lists = calloc(n, sizeof *lists);
  Nanochat__V1__TokenList **ptrs = malloc(n * sizeof *ptrs);
  int32_t *ids = NULL;
  int rc = NC_ENOMEM;
  if (!lens || !off || !lists || !ptrs) goto done;
  for (size_t i = 0; i < n; i++) {
    lens[i] = strlen(r->texts[i]);
    bound += lens[i] + 1;
  }
  ids = malloc(bound * sizeof *ids);
  if (!ids) goto done;
  long total = nc_tok_encode_batch(t, (const char *const *)r->texts, lens, n, flags, 1, ids, bound, off);
  if (total < 0) {
    /* name the first text that fails */
    for (size_t i = 0; i < n; i++) {
      long e = nc_tok_encode(t, r->texts[i], lens[i], flags, NULL, 0);
      if (e < 0) {
        char field[32];
        snprintf(field, sizeof field, "texts[%zu]", i);
        rc = encode_err(c, (int)e, field);
        goto done;
      }
    }
    rc = (int)total;
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    Nanochat__V1__TokenList init = NANOCHAT__V1__TOKEN_LIST__INIT;
    lists[i] = init;
    lists[i].n_ids = off[i + 1] - off[i];
    lists[i].ids = (uint32_t *)ids + off[i];
    ptrs[i] = &lists[i];
  }
  resp.n_batch = n;
  resp.batch = ptrs;
  resp.count = (uint32_t)total;
  rc = nc_call_reply(c, &resp.base);
done:
  free(lens);
  free(off);
  free(lists);
  free(ptrs);
  free(ids);
  return rc;
}

static int decode_with(nc_call *c, const ProtobufCMessage *req, const nc_tokenizer *t) {
  const Nanochat__V1__DecodeRequest *r = (const void *)req;
  int32_t vocab = nc_tok_vocab_size(t);
  for (size_t i = 0; i < r->n_tokens; i++) {
    size_t len;
    if (r->tokens[i] >= (uint32_t)vocab || !nc_tok_token(t, (int32_t)r->tokens[i], &len))
      return nc_call_finish(c, NC_EINVAL, "tokens[%zu]: not a token id (vocabulary size %d)", i, (int)vocab);
  }
  const int32_t *ids = (const int32_t *)r->tokens; /* all < vocab <= 2^21 */
  long need = nc_tok_decode(t, ids, r->n_tokens, NULL, 0);
  if (need < 0) return nc_call_finish(c, (int)need, "tokens: %s", nc_strerror((int)need));
  if ((unsigned long)need > NC_DECODE_MAX_BYTES)
    return nc_call_finish(c, NC_EFULL, "tokens: the decoded text is larger than %u bytes", NC_DECODE_MAX_BYTES);
  char *text = malloc((size_t)need + 1);
  if (!text) return NC_ENOMEM;
  long got = nc_tok_decode(t, ids, r->n_tokens, text, (size_t)need);
  if (got != need) {
    free(text);
    return nc_call_finish(c, NC_EINTERNAL, "tokens: decode changed size");
  }
  text[need] = 0;
  if (memchr(text, 0, (size_t)need)) {
    free(text);
    return nc_call_finish(c, NC_EINVAL, "tokens: the text would contain a NUL byte, which a string cannot carry");
  }
  Nanochat__V1__DecodeResponse resp = NANOCHAT__V1__DECODE_RESPONSE__INIT;
  resp.text = text;
  int rc = nc_call_reply(c, &resp.base);
  free(text);
  return rc;
}

/* The handlers hold a reference on the current tokenizer for the whole call, so a tokenizer
 * swapped in meanwhile (a finished Train.Tokenizer job) never changes under a running call. */
typedef int (*tok_fn)(nc_call *c, const ProtobufCMessage *req, const nc_tokenizer *t);

static int with_tokenizer(nc_call *c, const ProtobufCMessage *req, tok_fn fn) {
  nc_tokref *ref = nc_tokref_get(nc_call_app(c)->tokenizers);
  if (!ref) return nc_call_finish(c, NC_ESTATE, "no tokenizer loaded");
  int rc = fn(c, req, nc_tokref_tok(ref));
  nc_tokref_put(ref);
  return rc;
}

int nc_h_tokenizer_encode(nc_call *c, const ProtobufCMessage *req) {
  return with_tokenizer(c, req, encode_with);
}

int nc_h_tokenizer_decode(nc_call *c, const ProtobufCMessage *req) {
  return with_tokenizer(c, req, decode_with);
}
