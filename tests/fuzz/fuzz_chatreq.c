/* Fuzz target: Chat.* request handling without an engine (service/nc_chatreq.h). The input is
 * split at its first 0xFF byte: the head is a protobuf ChatRequest (unpacked by protobuf-c as
 * the gate would), the tail a token sequence for the reply parts (each byte one token; 0xF7..0xFE
 * are specials). Invariants: nc_chatreq_check returns NC_OK or NC_EINVAL with a message; an
 * accepted request assembles into exactly n_messages (twice, with itself as the stored
 * session), every string borrowed and NUL-terminated, and renders or fails with NC_EINVAL; reply
 * parts are at most tokens + 1, each valid UTF-8, and only exist when <|python_start|> occurs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nc_chatreq.h"
#include "nc_err.h"
#include "nc_tokenizer.h"

static nc_tokenizer *tok;
static nc_special_ids sp;

static void init(void) {
  static uint8_t bytes[256];
  const uint8_t *toks[256];
  uint32_t lens[256];
  for (int i = 0; i < 256; i++) {
    bytes[i] = (uint8_t)i;
    toks[i] = &bytes[i];
    lens[i] = 1;
  }
  nc_tok_special s[NC_TOK_N_SPECIALS_NANOCHAT];
  for (int i = 0; i < NC_TOK_N_SPECIALS_NANOCHAT; i++)
    s[i] = (nc_tok_special){NC_TOK_SPECIALS_NANOCHAT[i], strlen(NC_TOK_SPECIALS_NANOCHAT[i]), 256 + i};
  if (nc_tok_create(NULL, NC_TOK_DIALECT_RUST, toks, lens, 256, s, NC_TOK_N_SPECIALS_NANOCHAT, &tok, NULL, 0) ||
      nc_tok_nanochat_specials(tok, &sp))
    abort();
}

static void conversation(const Nanochat__V1__ChatRequest *r) {
  Nanochat__V1__Session sess = NANOCHAT__V1__SESSION__INIT;
  sess.n_messages = r->n_messages;
  sess.messages = r->messages;
  nc_chat_msg *msgs;
  nc_chat_part *parts;
  int n;
  char err[256];
  if (nc_chatreq_conversation(&sess, r, &msgs, &parts, &n, err, sizeof err) != NC_OK) return;
  if ((size_t)n != 2 * r->n_messages) abort();
  for (int i = 0; i < n; i++) {
    if (msgs[i].parts) {
      for (int k = 0; k < msgs[i].n_parts; k++)
        if (!msgs[i].parts[k].text || msgs[i].parts[k].text[msgs[i].parts[k].len]) abort();
    } else if (!msgs[i].content || msgs[i].content[msgs[i].len]) {
      abort();
    }
  }
  nc_tok_iface ti = nc_tok_chat_iface(tok);
  nc_token_buf out = {0};
  int rc = nc_chat_render(&ti, &sp, msgs, (int)r->n_messages, NC_RENDER_FOR_COMPLETION, 0, &out, err, sizeof err);
  if (rc != NC_OK && rc != NC_EINVAL) abort();
  nc_token_buf_free(&out);
  free(msgs);
  free(parts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!tok) init();
  const uint8_t *cut = memchr(data, 0xFF, size);
  size_t head = cut ? (size_t)(cut - data) : size;
  Nanochat__V1__ChatRequest *r = nanochat__v1__chat_request__unpack(NULL, head, data);
  if (r) {
    char err[256] = "";
    int rc = nc_chatreq_check(r, err, sizeof err);
    if (rc != NC_OK && (rc != NC_EINVAL || !err[0])) abort();
    /* protobuf-c strings may hold invalid UTF-8 here (the gate rejects them first); the check
     * and the assembly must still be safe, rendering only runs on what the gate would pass */
    int utf8 = 1;
    for (size_t i = 0; i < r->n_messages && utf8; i++) {
      const char *c = r->messages[i]->content;
      if (c && !nc_tok_utf8_valid(c, strlen(c))) utf8 = 0;
      for (size_t k = 0; k < r->messages[i]->n_parts; k++) {
        const char *t = r->messages[i]->parts[k]->text;
        if (t && !nc_tok_utf8_valid(t, strlen(t))) utf8 = 0;
      }
    }
    if (rc == NC_OK && utf8) conversation(r);
    nanochat__v1__chat_request__free_unpacked(r, NULL);
  }
  if (cut) {
    size_t n = size - head - 1;
    if (n > 4096) n = 4096;
    uint32_t *ids = malloc((n + 1) * sizeof *ids);
    if (!ids) return 0;
    int has_start = 0;
    for (size_t i = 0; i < n; i++) {
      uint8_t b = cut[1 + i];
      ids[i] = b >= 0xF7 ? 256u + (uint32_t)(b - 0xF7) : b;
      if ((int32_t)ids[i] == sp.python_start) has_start = 1;
    }
    Nanochat__V1__ContentPart **parts;
    size_t np;
    if (nc_chatreq_reply_parts(tok, &sp, ids, n, &parts, &np) == NC_OK) {
      if (np > n + 1 || (np > 0) != has_start) abort();
      for (size_t i = 0; i < np; i++)
        if (!nc_tok_utf8_valid(parts[i]->text, strlen(parts[i]->text))) abort();
      nc_chatreq_parts_free(parts, np);
    }
    free(ids);
  }
  return 0;
}
