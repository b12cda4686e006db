/* nc_chat.c — conversation rendering and the tool-call state machine of nc_chat.h. */
#include "nc_chat.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nc_calc.h"
#include "nc_err.h"

void nc_token_buf_free(nc_token_buf *b) {
  if (!b) return;
  free(b->ids);
  free(b->mask);
  memset(b, 0, sizeof *b);
}

static int reserve(nc_token_buf *b, size_t need) {
  if (need <= b->cap) return NC_OK;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap *= 2;
  int32_t *ids = realloc(b->ids, cap * sizeof *ids);
  if (!ids) return NC_ENOMEM;
  b->ids = ids;
  uint8_t *mask = realloc(b->mask, cap);
  if (!mask) return NC_ENOMEM;
  b->mask = mask;
  b->cap = cap;
  return NC_OK;
}

int nc_token_buf_push(nc_token_buf *b, int32_t id, uint8_t mask) {
  int rc = reserve(b, b->n + 1);
  if (rc) return rc;
  b->ids[b->n] = id;
  b->mask[b->n] = mask;
  b->n++;
  return NC_OK;
}

/* Encode text as ordinary tokens and append them with the given mask. */
static int push_text(nc_token_buf *b, const nc_tok_iface *tok, const char *text, size_t len,
                     uint8_t mask) {
  if (len == 0) return NC_OK;
  /* a token covers at least one byte: len ids always suffice */
  int rc = reserve(b, b->n + len);
  if (rc) return rc;
  long got = tok->encode(tok->ctx, text, len, b->ids + b->n, b->cap - b->n);
  if (got < 0) return (int)got;
  if ((size_t)got > b->cap - b->n) return NC_EINTERNAL; /* a tokenizer breaking the byte bound */
  memset(b->mask + b->n, mask, (size_t)got);
  b->n += (size_t)got;
  return NC_OK;
}

#define set_err(err, len, ...) nc_errf(NC_EINVAL, (err), (len), __VA_ARGS__)

int nc_chat_render(const nc_tok_iface *tok, const nc_special_ids *sp, const nc_chat_msg *msgs,
                   int n, nc_render_mode mode, size_t max_tokens, nc_token_buf *out, char *err,
                   size_t errlen) {
  if (err && errlen) err[0] = 0;
  if (!tok || !tok->encode || !sp || !out || (n > 0 && !msgs)) return NC_EINVAL;
  if (n <= 0) return set_err(err, errlen, "messages: empty conversation");
  size_t start_n = out->n;

  int first = 0;
  const nc_chat_msg *sys = NULL;
  if (msgs[0].role == NC_ROLE_SYSTEM) {
    sys = &msgs[0];
    first = 1;
    if (sys->parts) return set_err(err, errlen, "messages[%d]: system message must be text", 0);
    if (n < 2 || msgs[1].role != NC_ROLE_USER)
      return set_err(err, errlen, "messages[%d]: a system message must be followed by a user message", 0);
  }
  int last = n - 1;
  if (mode == NC_RENDER_DROP_LAST_ASSISTANT) {
    if (msgs[last].role != NC_ROLE_ASSISTANT)
      return set_err(err, errlen, "messages[%d]: expected a final assistant message", last);
    last--;
  }
  if (last < first) return set_err(err, errlen, "messages: no user message");
  if (mode != NC_RENDER_CONVERSATION && msgs[last].role != NC_ROLE_USER)
    return set_err(err, errlen, "messages[%d]: the conversation must end with a user message", last);

  /* validate everything first, so a failed render appends nothing */
  for (int i = first; i <= last; i++) {
    const nc_chat_msg *m = &msgs[i];
    nc_role want = ((i - first) % 2 == 0) ? NC_ROLE_USER : NC_ROLE_ASSISTANT;
    if (m->role == NC_ROLE_SYSTEM)
      return set_err(err, errlen, "messages[%d]: a system message is only allowed first", i);
    if (m->role != want)
      return set_err(err, errlen, "messages[%d]: expected %s message (roles must alternate)", i,
                     want == NC_ROLE_USER ? "a user" : "an assistant");
    if (m->role == NC_ROLE_USER && m->parts)
      return set_err(err, errlen, "messages[%d]: user content must be text", i);
    for (int j = 0; m->parts && j < m->n_parts; j++)
      if (m->parts[j].type != NC_PART_TEXT && m->parts[j].type != NC_PART_PYTHON &&
          m->parts[j].type != NC_PART_PYTHON_OUTPUT)
        return set_err(err, errlen, "messages[%d].parts[%d]: unknown content part type", i, j);
  }

  int rc = nc_token_buf_push(out, sp->bos, 0);
  for (int i = first; !rc && i <= last; i++) {
    const nc_chat_msg *m = &msgs[i];
    if (m->role == NC_ROLE_USER) {
      rc = nc_token_buf_push(out, sp->user_start, 0);
      if (!rc && sys && i == first) {
        rc = push_text(out, tok, sys->content, sys->len, 0);
        if (!rc) rc = push_text(out, tok, "\n\n", 2, 0);
      }
      if (!rc) rc = push_text(out, tok, m->content, m->len, 0);
      if (!rc) rc = nc_token_buf_push(out, sp->user_end, 0);
    } else {
      rc = nc_token_buf_push(out, sp->assistant_start, 0);
      if (!m->parts) {
        if (!rc) rc = push_text(out, tok, m->content, m->len, 1);
      } else {
        for (int j = 0; !rc && j < m->n_parts; j++) {
          const nc_chat_part *p = &m->parts[j];
          if (p->type == NC_PART_TEXT) {
            rc = push_text(out, tok, p->text, p->len, 1);
          } else if (p->type == NC_PART_PYTHON) {
            rc = nc_token_buf_push(out, sp->python_start, 1);
            if (!rc) rc = push_text(out, tok, p->text, p->len, 1);
            if (!rc) rc = nc_token_buf_push(out, sp->python_end, 1);
          } else {
            rc = nc_token_buf_push(out, sp->output_start, 0);
            if (!rc) rc = push_text(out, tok, p->text, p->len, 0);
            if (!rc) rc = nc_token_buf_push(out, sp->output_end, 0);
          }
        }
      }
      if (!rc) rc = nc_token_buf_push(out, sp->assistant_end, 1);
    }
  }
  if (!rc && mode != NC_RENDER_CONVERSATION) rc = nc_token_buf_push(out, sp->assistant_start, 0);
  if (rc) {
    out->n = start_n;
    return rc;
  }
  if (max_tokens > 0 && out->n - start_n > max_tokens) out->n = start_n + max_tokens;
  return NC_OK;
}

/* ---- tool-call state machine --------------------------------------------------------------- */

void nc_tool_row_init(nc_tool_row *r, int tools_enabled) {
  memset(r, 0, sizeof *r);
  r->tools_enabled = tools_enabled;
}

int32_t nc_tool_row_choose(nc_tool_row *r, int32_t sampled, int *forced) {
  if (r->forced_pos < r->n_forced) {
    if (forced) *forced = 1;
    return r->forced[r->forced_pos++];
  }
  if (forced) *forced = 0;
  return sampled;
}

static int run_tool(nc_tool_row *r, const nc_tok_iface *tok, const nc_special_ids *sp) {
  char expr[NC_CALC_MAX_INPUT + 1];
  long nbytes = tok->decode(tok->ctx, r->expr, (size_t)r->n_expr, expr, sizeof expr - 1);
  if (nbytes < 0) return (int)nbytes;
  char result[NC_CALC_MAX_OUTPUT];
  const char *text;
  if ((size_t)nbytes > sizeof expr - 1) {
    text = "error"; /* longer than the calculator accepts */
  } else {
    expr[nbytes] = 0;
    text = nc_calc_eval(expr, (size_t)nbytes, result) == NC_OK ? result : "error";
  }
  int32_t ids[NC_TOOL_MAX_FORCED];
  long nt = tok->encode(tok->ctx, text, strlen(text), ids, NC_TOOL_MAX_FORCED - 2);
  if (nt < 0) return (int)nt;
  if (nt > NC_TOOL_MAX_FORCED - 2) return NC_EINTERNAL;
  r->n_forced = 0;
  r->forced_pos = 0;
  r->forced[r->n_forced++] = sp->output_start;
  for (long i = 0; i < nt; i++) r->forced[r->n_forced++] = ids[i];
  r->forced[r->n_forced++] = sp->output_end;
  r->tool_calls++;
  return NC_OK;
}

int nc_tool_row_feed(nc_tool_row *r, const nc_tok_iface *tok, const nc_special_ids *sp,
                     int32_t token) {
  if (token == sp->assistant_end || token == sp->bos) r->completed = 1;
  if (!r->tools_enabled) return NC_OK;
  if (token == sp->python_start) {
    r->in_python = 1;
    r->n_expr = 0;
    r->expr_overflow = 0;
  } else if (token == sp->python_end && r->in_python) {
    r->in_python = 0;
    int rc = NC_OK;
    if (r->n_expr > 0 && !r->expr_overflow) rc = run_tool(r, tok, sp);
    r->n_expr = 0;
    r->expr_overflow = 0;
    return rc;
  } else if (r->in_python) {
    if (r->n_expr < NC_TOOL_MAX_EXPR_TOKENS) r->expr[r->n_expr++] = token;
    else r->expr_overflow = 1;
  }
  return NC_OK;
}
