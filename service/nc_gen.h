/* nc_gen.h — one generation of one gRPC call: the bridge between the engine's callbacks
 * (scheduler thread) and the call (one send in flight), used by Chat.* and Model.Sample*.
 *
 * Flow
 *   handler (worker thread): nc_gen_create (attaches the state to the call, takes the bundle
 *   reference), nc_gen_start (submits to the engine, registers the cancellation callback).
 *   engine callback (scheduler thread, never blocks): appends the token/text to the sample's
 *   accumulated text and, when streaming, to its PENDING delta, then posts a wake-up to a CQ
 *   thread (nc_call_wake; at most one is queued per call).
 *   pump (CQ thread, or the send completion): when no send is in flight, takes everything
 *   pending of one sample (all of it, coalesced: however slow the client, there is at most
 *   one pending delta per sample and tool-state change, bounded by max_tokens) and sends it.
 *   When the engine delivered the request's last DONE and nothing is pending or in flight,
 *   the call ends once: if every sample ended STOP or LENGTH the handler's `finalize` runs — on
 *   the serving thread when `finalize_blocks` is set (e.g. an LMDB session append), else inline
 *   — and must finish the call (nc_call_reply / nc_call_finish); otherwise nc_gen finishes it
 *   itself: CANCELLED (client cancel, deadline, failed send), INTERNAL "generation failed: ..."
 *   (e.g. non-finite logits), RESOURCE_EXHAUSTED (out of memory). nc_gen releases its call
 *   reference after that.
 *   client cancel, deadline or a failed send: nc_engine_cancel, so the slot is free within one
 *   decode step.
 *
 * Lifetime: the state is the call's data (freed when the call is destroyed, after every
 *   callback); the gen holds a call reference from submit until finalize finished the call,
 *   so the engine's `user` pointer and the wake-ups stay valid until the last DONE.
 */
#ifndef NC_GEN_H
#define NC_GEN_H

#include <stdbool.h>
#include <stdint.h>

#include "nc_call.h"
#include "nc_serving.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nc_gen_kind {
  NC_GENK_CHAT = 0,   /* Chat.*: stream messages are ChatStreamResponse deltas (tool flag) */
  NC_GENK_SAMPLE = 1, /* Model.Sample*: SampleStreamResponse per sample, finish_reason last */
} nc_gen_kind;

/* Growable byte / id buffers. */
typedef struct nc_gbuf {
  char *p;
  size_t n, cap;
} nc_gbuf;

typedef struct nc_gids {
  uint32_t *v;
  size_t n, cap;
} nc_gids;

/* A pending delta: text + ids with one tool flag. */
typedef struct nc_gseg {
  nc_gbuf text;
  nc_gids ids;
  bool tool;
} nc_gseg;

/* Per-sample results (read by finalize once the engine is done). */
typedef struct nc_gen_out {
  nc_gbuf text;          /* whole completion text, valid UTF-8 (NUL-terminated when n > 0) */
  nc_gids ids;           /* every delivered token */
  uint8_t *forced;       /* forced[i]: token i was injected by the tool (ids.cap entries) */
  nc_finish finish;      /* 0 until DONE */
  int error;             /* NC_E* for NC_FINISH_ERROR */
  char message[128];
  int completion_tokens, forced_tokens, tool_calls;
  /* streaming */
  nc_gseg *segs;         /* pending deltas, oldest first */
  int n_segs, cap_segs;
  bool in_tool;          /* between <|python_start|>/<|output_start|> and its end */
  bool finish_sent;      /* SAMPLE: the finish_reason went out */
} nc_gen_out;

typedef struct nc_gen nc_gen;
typedef void (*nc_gen_finalize_fn)(nc_gen *g);

/* Creates the state for `call` and attaches it as the call's data. Takes over `bundle` (one
 * reference, released when the state is freed). NC_OK or NC_ENOMEM (bundle released). */
int nc_gen_create(nc_call *call, nc_served *bundle, nc_gen_kind kind, bool stream, int n_samples,
                  nc_gen_finalize_fn finalize, bool finalize_blocks, nc_gen **out);

/* Handler data for finalize (freed with free_fn when the state is freed). */
void nc_gen_set_user(nc_gen *g, void *user, void (*free_fn)(void *));
void *nc_gen_user(const nc_gen *g);

/* Text put in front of every sample's first delta (Model.SampleStream include_prompt). */
int nc_gen_prefix(nc_gen *g, const char *text, size_t len);

/* Submits the prompt. On NC_OK the call is nc_gen's until finalize; on error nothing was
 * submitted, msg says why and the caller finishes the call. */
int nc_gen_start(nc_gen *g, const int32_t *prompt, int n_prompt, const nc_gen_params *p, char *msg,
                 size_t msglen);

/* For finalize: */
nc_call *nc_gen_call(const nc_gen *g);
nc_served *nc_gen_bundle(const nc_gen *g);
int nc_gen_n_samples(const nc_gen *g);
const nc_gen_out *nc_gen_result(const nc_gen *g, int sample);
int nc_gen_prompt_tokens(const nc_gen *g);

/* proto FinishReason of an engine finish. */
int nc_gen_finish_reason(nc_finish f);

/* A seed from getrandom (requests without one). */
uint64_t nc_random_seed(void);

/* Buffer helpers (NC_OK / NC_ENOMEM). */
int nc_gbuf_add(nc_gbuf *b, const char *s, size_t n);
int nc_gids_add(nc_gids *v, uint32_t id);

#ifdef __cplusplus
}
#endif
#endif /* NC_GEN_H */
