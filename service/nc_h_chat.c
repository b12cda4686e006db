/* nc_h_chat.c — Chat.Complete and Chat.Stream on the served model.
 *
 * Worker thread (the methods are `slow`): chat_web's limits (nc_chatreq_check), the stored
 * session when session_id is given (NOT_FOUND for an unknown id), rendering with the context
 * check before anything is queued or allocated (nc_engine_render_chat: "exceeds the context"),
 * then submit; the generation runs on the engine (nc_gen.h) and the handler returns.
 *
 * Sessions: when generation ends with STOP or LENGTH and the request is not ephemeral, the
 * request's messages and the assistant reply are appended in ONE nc_store_session_append (a
 * new session, with a fresh id, when none was given) on the serving thread, then the reply /
 * final ChatDone goes out. Concurrent appends to one session are serialised by the store and
 * none is lost: each (turns, reply) group lands whole, in the order generations finish (a reply
 * generated concurrently with another on the same session did not see that other turn).
 * A cancelled or failed generation (client cancel, deadline, non-finite logits) stores NOTHING.
 * The reply is stored as plain content, or as content parts when the calculator tool ran (so the
 * session renders back to the same tokens).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "nanochat/v1/chat.pb-c.h"
#include "nc_call.h"
#include "nc_chatreq.h"
#include "nc_err.h"
#include "nc_gen.h"
#include "nc_store.h"

typedef struct chat_ctx {
  const Nanochat__V1__ChatRequest *req;  /* valid until the call is finished */
  nc_store *store;
  bool stream;
  bool store_it;
  bool new_session;
  char session_id[NC_SESSION_ID_MAX + 1];
} chat_ctx;

uint64_t nc_random_seed(void) {
  uint64_t s = 0;
  if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s) s = (uint64_t)nc_now_unix_ms() * 0x9E3779B97F4A7C15ull;
  return s;
}

/* Appends the request's messages + the reply in one transaction. */
static int store_turn(chat_ctx *x, nc_served *b, const char *content, Nanochat__V1__ContentPart **parts,
                      size_t n_parts, uint64_t tokens) {
  const Nanochat__V1__ChatRequest *r = x->req;
  const Nanochat__V1__ChatMessage **v = malloc((r->n_messages + 1) * sizeof *v);
  if (!v) return NC_ENOMEM;
  for (size_t i = 0; i < r->n_messages; i++) v[i] = r->messages[i];
  Nanochat__V1__ChatMessage reply = NANOCHAT__V1__CHAT_MESSAGE__INIT;
  reply.has_role = true;
  reply.role = NANOCHAT__V1__ROLE__ROLE_ASSISTANT;
  if (n_parts) {
    reply.n_parts = n_parts;
    reply.parts = parts;
  } else {
    reply.content = (char *)content;
  }
  v[r->n_messages] = &reply;
  const nc_served_id *id = nc_served_identity(b);
  nc_session_append a;
  memset(&a, 0, sizeof a);
  a.messages = v;
  a.n_messages = r->n_messages + 1;
  a.expect_version = x->new_session ? 0 : NC_STORE_ANY_VERSION;
  a.create_if_missing = x->new_session;
  a.add_tokens = tokens;
  a.set_model = true;
  a.phase = (Nanochat__V1__Phase)id->phase;
  a.model_tag = id->tag;
  a.model_step = id->step;
  int rc = nc_store_session_append(x->store, x->session_id, &a, NULL);
  free(v);
  return rc;
}

static void chat_finalize(nc_gen *g) {
  chat_ctx *x = nc_gen_user(g);
  nc_call *c = nc_gen_call(g);
  nc_served *b = nc_gen_bundle(g);
  const nc_gen_out *o = nc_gen_result(g, 0);
  const char *content = o->text.p ? o->text.p : "";
  Nanochat__V1__ContentPart **parts = NULL;
  size_t n_parts = 0;
  int rc = nc_chatreq_reply_parts(nc_served_tokenizer(b), nc_served_specials(b), o->ids.v, o->ids.n, &parts, &n_parts);
  if (rc) {
    nc_call_finish(c, rc, "decoding the reply failed");
    return;
  }
  if (x->store_it) {
    rc = store_turn(x, b, content, parts, n_parts, (uint64_t)o->completion_tokens);
    if (rc) {
      const char *m = nc_store_last_error();
      nc_chatreq_parts_free(parts, n_parts);
      if (rc == NC_ENOTFOUND) nc_call_finish(c, rc, "session_id: the session was deleted");
      else nc_call_finish(c, rc, "session: %s", m && m[0] ? m : nc_strerror(rc));
      return;
    }
  }
  Nanochat__V1__Usage usage = NANOCHAT__V1__USAGE__INIT;
  usage.has_prompt_tokens = usage.has_completion_tokens = usage.has_forced_tokens = true;
  usage.prompt_tokens = (uint32_t)nc_gen_prompt_tokens(g);
  usage.completion_tokens = (uint32_t)o->completion_tokens;
  usage.forced_tokens = (uint32_t)o->forced_tokens;
  Nanochat__V1__FinishReason fr = (Nanochat__V1__FinishReason)nc_gen_finish_reason(o->finish);
  char *sid = x->store_it || x->session_id[0] ? x->session_id : NULL;
  if (x->stream) {
    Nanochat__V1__ChatDone done = NANOCHAT__V1__CHAT_DONE__INIT;
    done.has_finish_reason = true;
    done.finish_reason = fr;
    done.usage = &usage;
    done.session_id = sid;
    done.content = (char *)content;
    Nanochat__V1__ChatStreamResponse m = NANOCHAT__V1__CHAT_STREAM_RESPONSE__INIT;
    m.event_case = NANOCHAT__V1__CHAT_STREAM_RESPONSE__EVENT_DONE;
    m.done = &done;
    nc_call_reply(c, &m.base);
  } else {
    Nanochat__V1__ChatResponse resp = NANOCHAT__V1__CHAT_RESPONSE__INIT;
    resp.content = (char *)content;
    resp.has_tokens_generated = true;
    resp.tokens_generated = (uint32_t)o->completion_tokens;
    resp.session_id = sid;
    resp.has_finish_reason = true;
    resp.finish_reason = fr;
    resp.usage = &usage;
    resp.n_parts = n_parts;
    resp.parts = parts;
    nc_call_reply(c, &resp.base);
  }
  nc_chatreq_parts_free(parts, n_parts);
}

static int chat_run(nc_call *c, const Nanochat__V1__ChatRequest *r, bool stream) {
  nc_app *app = nc_call_app(c);
  char err[512];
  int rc = nc_chatreq_check(r, err, sizeof err);
  if (rc) return nc_call_finish(c, rc, "%s", err);
  bool have_sid = r->session_id && r->session_id[0];
  if (have_sid && !nc_store_session_id_valid(r->session_id, strlen(r->session_id)))
    return nc_call_finish(c, NC_EINVAL, "session_id: must be 16..64 characters [A-Za-z0-9_.-]");
  bool store_it = !r->ephemeral;
  if ((store_it || have_sid) && !app->store) return nc_call_finish(c, NC_ENOTREADY, "session store not open");
  nc_served *b = nc_serving_acquire(app->serving);
  if (!b) return nc_call_finish(c, NC_ESTATE, "no model loaded");
  Nanochat__V1__Session *stored = NULL;
  if (have_sid) {
    rc = nc_store_session_get(app->store, r->session_id, &stored);
    if (rc) {
      nc_served_release(b);
      if (rc == NC_ENOTFOUND) return nc_call_finish(c, rc, "session_id: no such session");
      return nc_call_finish(c, rc, "session: %s", nc_store_last_error());
    }
  }
  nc_chat_msg *msgs = NULL;
  nc_chat_part *parts = NULL;
  int n = 0;
  nc_token_buf prompt = {0};
  rc = nc_chatreq_conversation(stored, r, &msgs, &parts, &n, err, sizeof err);
  if (!rc) rc = nc_engine_render_chat(nc_served_engine(b), msgs, n, r->has_max_tokens ? r->max_tokens : 1, &prompt,
                                      err, sizeof err);
  free(msgs);
  free(parts);
  nc_store_free_msg(stored);
  if (rc) {
    nc_served_release(b);
    nc_token_buf_free(&prompt);
    return nc_call_finish(c, rc, "%s", rc == NC_ENOMEM ? "out of memory" : err);
  }
  int ctx = nc_engine_context(nc_served_engine(b));
  nc_gen_params p = nc_gen_params_default();
  p.mode = NC_GEN_CHAT;
  p.max_tokens = r->has_max_tokens ? r->max_tokens : NC_CHAT_DEFAULT_MAX_TOKENS;
  if (!r->has_max_tokens && p.max_tokens > ctx - (int)prompt.n) p.max_tokens = ctx - (int)prompt.n;
  p.sampling.temperature = r->temperature;
  p.sampling.top_k = r->top_k;
  p.sampling.top_p = r->top_p;
  p.sampling.min_p = r->min_p;
  p.seed = r->has_seed ? r->seed : nc_random_seed();
  p.tools = r->tools;
  p.num_samples = 1;
  chat_ctx *x = calloc(1, sizeof *x);
  nc_gen *g = NULL;
  if (!x || nc_gen_create(c, b, NC_GENK_CHAT, stream, 1, chat_finalize, store_it, &g) != NC_OK) {
    if (x) free(x);
    else nc_served_release(b);
    nc_token_buf_free(&prompt);
    return nc_call_finish(c, NC_ENOMEM, "out of memory");
  }
  nc_gen_set_user(g, x, free);
  x->req = r;
  x->store = app->store;
  x->stream = stream;
  x->store_it = store_it;
  x->new_session = store_it && !have_sid;
  if (have_sid) snprintf(x->session_id, sizeof x->session_id, "%s", r->session_id);
  else if (store_it && nc_store_new_session_id(x->session_id) != NC_OK) {
    nc_token_buf_free(&prompt);
    return nc_call_finish(c, NC_EIO, "cannot generate a session id");
  }
  rc = nc_gen_start(g, prompt.ids, (int)prompt.n, &p, err, sizeof err);
  nc_token_buf_free(&prompt);
  if (rc) return nc_call_finish(c, rc, "%s", err);
  return NC_OK;
}

int nc_h_chat_complete(nc_call *c, const ProtobufCMessage *req) { return chat_run(c, (const void *)req, false); }
int nc_h_chat_stream(nc_call *c, const ProtobufCMessage *req) { return chat_run(c, (const void *)req, true); }
