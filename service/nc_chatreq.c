/* nc_chatreq.c — chat_web limits, conversation assembly, reply parts (see nc_chatreq.h). */
#include "nc_chatreq.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nc_err.h"

static size_t slen(const char *s) { return s ? strlen(s) : 0; }

int nc_chatreq_check(const Nanochat__V1__ChatRequest *r, char *err, size_t errlen) {
  if (r->n_messages == 0) {
    snprintf(err, errlen, "messages: at least one message is required");
    return NC_EINVAL;
  }
  size_t total = 0;
  for (size_t i = 0; i < r->n_messages; i++) {
    const Nanochat__V1__ChatMessage *m = r->messages[i];
    int role = m->has_role ? (int)m->role : 0;
    if (role != NC_ROLE_USER && role != NC_ROLE_ASSISTANT && role != NC_ROLE_SYSTEM) {
      snprintf(err, errlen, "messages[%zu].role: must be user, assistant or system", i);
      return NC_EINVAL;
    }
    size_t cl = slen(m->content);
    if (m->n_parts) {
      if (role != NC_ROLE_ASSISTANT) {
        snprintf(err, errlen, "messages[%zu].parts: only assistant messages have parts", i);
        return NC_EINVAL;
      }
      if (cl) {
        snprintf(err, errlen, "messages[%zu]: content and parts are exclusive", i);
        return NC_EINVAL;
      }
      for (size_t k = 0; k < m->n_parts; k++) total += slen(m->parts[k]->text);
    } else if (!cl) {
      snprintf(err, errlen, "messages[%zu].content: must not be empty", i);
      return NC_EINVAL;
    }
    total += cl;
  }
  if (total > NC_CHAT_MAX_TOTAL_BYTES) {
    snprintf(err, errlen, "messages: contents together are %zu bytes, more than %d", total,
             NC_CHAT_MAX_TOTAL_BYTES);
    return NC_EINVAL;
  }
  return NC_OK;
}

/* Appends message m (borrowed) to msgs/parts. */
static int add_msg(const Nanochat__V1__ChatMessage *m, nc_chat_msg *msgs, int *n, nc_chat_part *parts,
                   size_t *np, const char *where, size_t idx, char *err, size_t errlen) {
  int role = m->has_role ? (int)m->role : 0;
  if (role != NC_ROLE_USER && role != NC_ROLE_ASSISTANT && role != NC_ROLE_SYSTEM) {
    snprintf(err, errlen, "%s[%zu].role: unknown role", where, idx);
    return NC_EINVAL;
  }
  nc_chat_msg *o = &msgs[(*n)++];
  memset(o, 0, sizeof *o);
  o->role = (nc_role)role;
  if (m->n_parts) {
    o->parts = &parts[*np];
    o->n_parts = (int)m->n_parts;
    for (size_t k = 0; k < m->n_parts; k++) {
      nc_chat_part *p = &parts[(*np)++];
      p->type = m->parts[k]->has_type ? (nc_part_type)m->parts[k]->type : NC_PART_TEXT;
      p->text = m->parts[k]->text ? m->parts[k]->text : "";
      p->len = strlen(p->text);
    }
  } else {
    o->content = m->content ? m->content : "";
    o->len = strlen(o->content);
  }
  return NC_OK;
}

int nc_chatreq_conversation(const Nanochat__V1__Session *stored, const Nanochat__V1__ChatRequest *r,
                            nc_chat_msg **msgs, nc_chat_part **parts, int *n, char *err, size_t errlen) {
  size_t ns = stored ? stored->n_messages : 0, nm = ns + r->n_messages, npart = 0;
  for (size_t i = 0; i < ns; i++) npart += stored->messages[i]->n_parts;
  for (size_t i = 0; i < r->n_messages; i++) npart += r->messages[i]->n_parts;
  *msgs = calloc(nm ? nm : 1, sizeof **msgs);
  *parts = calloc(npart ? npart : 1, sizeof **parts);
  *n = 0;
  if (!*msgs || !*parts || nm > 0x7fffffff) {
    free(*msgs);
    free(*parts);
    *msgs = NULL;
    *parts = NULL;
    return NC_ENOMEM;
  }
  size_t np = 0;
  int rc = NC_OK;
  for (size_t i = 0; !rc && i < ns; i++)
    rc = add_msg(stored->messages[i], *msgs, n, *parts, &np, "session.messages", i, err, errlen);
  for (size_t i = 0; !rc && i < r->n_messages; i++)
    rc = add_msg(r->messages[i], *msgs, n, *parts, &np, "messages", i, err, errlen);
  if (rc) {
    free(*msgs);
    free(*parts);
    *msgs = NULL;
    *parts = NULL;
  }
  return rc;
}

void nc_chatreq_parts_free(Nanochat__V1__ContentPart **parts, size_t n) {
  for (size_t i = 0; parts && i < n; i++) {
    free(parts[i]->text);
    free(parts[i]);
  }
  free(parts);
}

/* Decodes ids[a, b) into a new part of `type`. */
static int push_part(const nc_tokenizer *tok, const uint32_t *ids, size_t a, size_t b, int type,
                     Nanochat__V1__ContentPart **parts, size_t *n) {
  if (b <= a && type == NC_PART_TEXT) return NC_OK; /* no empty text parts */
  int32_t *tmp = malloc((b - a + 1) * sizeof *tmp);
  if (!tmp) return NC_ENOMEM;
  for (size_t i = a; i < b; i++) tmp[i - a] = (int32_t)ids[i];
  long need = nc_tok_decode(tok, tmp, b - a, NULL, 0);
  char *txt = need >= 0 ? malloc((size_t)need + 1) : NULL;
  if (need >= 0 && txt) nc_tok_decode(tok, tmp, b - a, txt, (size_t)need);
  free(tmp);
  if (need < 0) return (int)need;
  Nanochat__V1__ContentPart *p = txt ? malloc(sizeof *p) : NULL;
  if (!p) {
    free(txt);
    return NC_ENOMEM;
  }
  txt[need] = 0;
  nanochat__v1__content_part__init(p);
  p->has_type = true;
  p->type = (Nanochat__V1__PartType)type;
  p->text = txt;
  parts[(*n)++] = p;
  return NC_OK;
}

int nc_chatreq_reply_parts(const nc_tokenizer *tok, const nc_special_ids *sp, const uint32_t *ids,
                           size_t n, Nanochat__V1__ContentPart ***parts, size_t *n_parts) {
  *parts = NULL;
  *n_parts = 0;
  bool tool = false;
  for (size_t i = 0; i < n && !tool; i++) tool = (int32_t)ids[i] == sp->python_start;
  if (!tool) return NC_OK;
  Nanochat__V1__ContentPart **v = calloc(n + 1, sizeof *v); /* at most one part per token + 1 */
  if (!v) return NC_ENOMEM;
  size_t k = 0, start = 0;
  int type = NC_PART_TEXT, rc = NC_OK;
  for (size_t i = 0; i < n && !rc; i++) {
    int32_t t = (int32_t)ids[i];
    if (t == sp->python_start || t == sp->output_start) {
      rc = push_part(tok, ids, start, i, type, v, &k); /* a nested start restarts the call */
      type = t == sp->python_start ? NC_PART_PYTHON : NC_PART_PYTHON_OUTPUT;
      start = i + 1;
    } else if ((t == sp->python_end && type == NC_PART_PYTHON) ||
               (t == sp->output_end && type == NC_PART_PYTHON_OUTPUT)) {
      rc = push_part(tok, ids, start, i, type, v, &k);
      type = NC_PART_TEXT;
      start = i + 1;
    }
  }
  if (!rc) rc = push_part(tok, ids, start, n, type, v, &k); /* an unterminated call stays a part */
  if (rc) {
    nc_chatreq_parts_free(v, k);
    return rc;
  }
  *parts = v;
  *n_parts = k;
  return NC_OK;
}
