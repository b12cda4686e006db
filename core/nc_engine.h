/* nc_engine.h — the inference engine: many concurrent generations in one batched decode loop
 * (continuous batching over a fixed number of KV slots), nanochat's sampling and tool-call
 * semantics, UTF-8-safe streaming, admission control and cancellation.
 *
 * Model of operation
 *   An engine owns `slots` KV caches (one per slot, each `context` positions long, allocated at
 *   creation and touched lazily) and ONE scheduler thread. Requests are submitted from any
 *   thread; each needs num_samples free slots. A request that fits is admitted at once, one
 *   that does not waits in a FIFO queue of at most `queue_limit` requests; beyond that submit
 *   fails with NC_EBUSY (RESOURCE_EXHAUSTED). Every scheduler iteration:
 *     1. finishes cancelled requests (their slots are free for this very iteration) and admits
 *        queued requests into free slots;
 *     2. runs ONE prefill chunk (at most `prefill_chunk` tokens) of the oldest request still
 *        prefilling, so a long prompt delays the others' next token by one chunk at most;
 *        when a prompt is complete its cache is copied to the request's other sample slots
 *        (nanochat generate: one prefill shared by num_samples rows);
 *     3. for every row with fresh logits: samples (the request's own nc_sampling and its own
 *        seeded nc_rng per sample), lets the row's tool state machine substitute forced tokens,
 *        delivers the token, and stops the row on <|assistant_end|>/<|bos|> (chat) or <|bos|>
 *        (raw), max_tokens, or a full context;
 *     4. ONE batched decode step (B = rows still generating, T = 1, each row at its own
 *        position) through nc_decoder (nc_decode.h; bf16 or fp32 weights).
 *   Rows never interact numerically (the decode kernels are batch-invariant), so a request's
 *   tokens do not depend on what else is running: same prompt + params + seed -> same tokens.
 *
 * Semantics (nanochat engine.py, specs/nanochat.md §4.3)
 *   temperature 0 -> argmax; top_k / top_p / min_p as nc_sample.h; non-finite logits end the
 *   row with NC_FINISH_ERROR / NC_ERANGE "non-finite logits", never a random token.
 *   Tools: <|python_start|> expr <|python_end|> runs the calculator (nc_calc.h, no eval) and
 *   the result is injected as forced <|output_start|> result <|output_end|> tokens, one per step,
 *   each still fed through the model; nested starts restart the expression; an expression
 *   longer than NC_TOOL_MAX_EXPR_TOKENS is never run (faults.md rows 39-40; nc_chat.h).
 *   Only completion tokens are delivered, never the prompt (defect D2). The stop token
 *   (<|assistant_end|> or <|bos|>) is not delivered and not counted. Forced tokens are delivered
 *   (forced = 1) and count towards max_tokens, as in nanochat.
 *
 * Text: each token's bytes (tok.decode of that one id, specials included) go through an
 *   nc_utf8_stream per row: deltas are always valid UTF-8 and never split a code point; bytes
 *   of an incomplete character are held back, invalid bytes become U+FFFD, and a character still
 *   incomplete at the end is flushed as U+FFFD in the NC_GEN_DONE event's text.
 *
 * Threads and callbacks
 *   nc_engine_submit / nc_engine_cancel / nc_engine_stats / nc_engine_render_chat may be called
 *   from any thread, concurrently. Callbacks run ONLY on the scheduler thread (never inside
 *   submit), one at a time, without any engine lock held: they may call nc_engine_cancel or
 *   nc_engine_submit, but must not block (post the event to a queue, e.g. a gRPC stream's
 *   write queue) because every other request waits while a callback runs. A callback returns
 *   0 to continue or non-zero to cancel its request (e.g. the client went away).
 *   For each request the callbacks are: NC_GEN_TOKEN events, then one NC_GEN_DONE per sample
 *   (a request cancelled while still queued gets a single DONE for sample 0); the DONE with
 *   `last` = 1 is the final callback, after which the engine forgets the request (its id is no
 *   longer known to cancel) and `user` may be freed.
 *
 * Model and tokenizer are borrowed: both must outlive the engine. The engine reads the model
 *   only (its own decoder, workspace and rope tables; it never calls a function that writes to
 *   the model), but the parameters must not change while the engine exists (the bf16 copy is a
 *   snapshot taken at creation). tok.decode is called on the scheduler thread and tok.encode on
 *   the calling thread of nc_engine_render_chat and on the scheduler thread (tool results), so
 *   the tokenizer must allow concurrent calls.
 *
 * Errors: NC_OK, NC_EINVAL (with a reason in msg), NC_EBUSY (queue full), NC_ENOTREADY (engine
 *   shutting down), NC_ENOMEM, NC_ENOTFOUND (cancel of an unknown or finished id).
 */
#ifndef NC_ENGINE_H
#define NC_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "nc_chat.h"
#include "nc_decode.h"
#include "nc_model.h"
#include "nc_sample.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits. */
#define NC_ENGINE_MAX_SLOTS NC_DECODE_MAX_ROWS
#define NC_ENGINE_MAX_QUEUE 4096
#define NC_ENGINE_MAX_TOKEN_BYTES 4096 /* longest decoded text of one token */

/* KV cache precision of the slots (nc_kvcache dtype). */
typedef enum nc_engine_kv { NC_ENGINE_KV_AUTO = 0, NC_ENGINE_KV_BF16 = 1, NC_ENGINE_KV_F32 = 2 } nc_engine_kv;

typedef struct nc_engine_config {
  int slots;                 /* KV slots = sequences generated at once (1..NC_ENGINE_MAX_SLOTS) */
  int queue_limit;           /* requests that may wait for slots (0..NC_ENGINE_MAX_QUEUE)       */
  int context;               /* positions per slot (prompt + completion); 0 = sequence_len;     */
                             /* at most 10 * sequence_len (windows slide past sequence_len)    */
  int prefill_chunk;         /* tokens per prefill chunk (1..65536); 0 = 128                    */
  nc_decode_weights weights; /* NC_DECODE_AUTO (fastest: BF16_DOT or BF16), BF16, BF16_DOT, or    */
                             /* F32 (reference); nc_decode.h                                    */
  nc_engine_kv kv;           /* KV cache element type: NC_ENGINE_KV_AUTO (bf16, or fp32 with F32  */
                             /* weights), NC_ENGINE_KV_BF16 or NC_ENGINE_KV_F32 (nc_model.h)       */
  int threads;               /* OpenMP threads of the scheduler thread; 0 = omp default         */
  nc_tok_iface tok;          /* borrowed tokenizer (see above)                                  */
  nc_special_ids sp;         /* ids of the special tokens                                       */
} nc_engine_config;

/* slots 4, queue_limit 64, context 0, prefill_chunk 0, NC_DECODE_AUTO, NC_ENGINE_KV_AUTO,
 * threads 0; tok/sp zeroed
 * (set them). */
nc_engine_config nc_engine_config_default(void);

typedef enum nc_gen_mode {
  NC_GEN_CHAT = 0, /* stop at <|assistant_end|> or <|bos|>, or max_tokens */
  NC_GEN_RAW = 1,  /* base-model sampling: stop at <|bos|> or max_tokens   */
} nc_gen_mode;

typedef struct nc_gen_params {
  nc_gen_mode mode;
  int max_tokens;       /* completion tokens per sample, >= 1; prompt + max_tokens <= context */
  nc_sampling sampling; /* validated at submit (nc_sample.h ranges)                          */
  uint64_t seed;        /* sample i draws from nc_rng seeded with seed + i                   */
  int tools;            /* 1: run the calculator tool; 0: python tokens are plain tokens      */
  int num_samples;      /* 1..slots independent continuations of one prefill                 */
} nc_gen_params;

/* chat, max_tokens 256, nc_sampling_default(), seed 42, tools on, one sample. */
nc_gen_params nc_gen_params_default(void);

typedef enum nc_finish {
  NC_FINISH_STOP = 1,      /* stop token                                        */
  NC_FINISH_LENGTH = 2,    /* max_tokens, or the context is full                 */
  NC_FINISH_CANCELLED = 3, /* nc_engine_cancel, a callback returned non-zero, or
                              the engine is being freed                           */
  NC_FINISH_ERROR = 4,     /* see error / message (e.g. NC_ERANGE non-finite logits) */
} nc_finish;

typedef enum nc_gen_event_kind { NC_GEN_TOKEN = 1, NC_GEN_DONE = 2 } nc_gen_event_kind;

/* One callback event. Pointers are valid only during the callback. */
typedef struct nc_gen_event {
  nc_gen_event_kind kind;
  uint64_t request_id;
  int sample;           /* 0..num_samples-1                                                */
  /* NC_GEN_TOKEN */
  int32_t token;        /* the completion token                                            */
  int forced;           /* 1: injected tool output (nanochat mask 0)                       */
  /* both kinds: valid UTF-8 text delta (may be empty while a character is incomplete;
   * for DONE: what was held back, flushed) */
  const char *text;
  size_t text_len;
  /* NC_GEN_DONE */
  nc_finish finish;
  int error;            /* NC_E* code when finish == NC_FINISH_ERROR, else 0               */
  const char *message;  /* reason for errors ("" otherwise), never NULL in DONE            */
  int prompt_tokens;    /* prompt length                                                   */
  int completion_tokens;/* tokens delivered for this sample (forced ones included)         */
  int tool_calls;       /* calculator calls run for this sample                            */
  int last;             /* 1 on the request's final callback                               */
} nc_gen_event;

/* Return 0 to continue, non-zero to cancel the request. Runs on the scheduler thread. */
typedef int (*nc_gen_callback)(void *user, const nc_gen_event *ev);

typedef struct nc_engine nc_engine;

/* Creates an engine for `m` (borrowed) and starts its scheduler thread. Validates cfg
 * (NC_EINVAL with a reason in msg), allocates the slots' caches, the decoder (bf16 copy) and
 * buffers (NC_ENOMEM). On success *out owns everything; release with nc_engine_free. */
int nc_engine_create(const nc_model *m, const nc_engine_config *cfg, nc_engine **out, char *msg,
                     size_t msglen);

/* Stops the engine: the scheduler finishes the step in progress, then finishes every live
 * request with NC_FINISH_CANCELLED (callbacks still run on the scheduler thread, before this
 * returns), exits, and everything is freed. Must not be called from a callback. NULL is a
 * no-op. */
void nc_engine_free(nc_engine *e);

/* Submits a generation of `prompt` (n_prompt >= 1 token ids, copied; render chats with
 * nc_engine_render_chat). Validation happens here, before anything is queued or allocated:
 * NC_EINVAL (reason in msg) for NULL callback, empty prompt, ids out of range, bad params,
 * num_samples > slots, or n_prompt + max_tokens > context. NC_EBUSY when the request cannot get
 * slots now and the queue already holds queue_limit requests. NC_ENOTREADY while shutting down.
 * On NC_OK *id (may be NULL) receives the request id (> 0) and callbacks will follow. */
int nc_engine_submit(nc_engine *e, const int32_t *prompt, int n_prompt, const nc_gen_params *p,
                     nc_gen_callback cb, void *user, uint64_t *id, char *msg, size_t msglen);

/* Cancels request `id`. A queued request is dropped (one NC_GEN_DONE, sample 0, last = 1); a
 * running one is finished at the start of the next scheduler iteration, before any further
 * compute, so its slots are free within one decode step. Every sample ends with
 * NC_FINISH_CANCELLED. No event other than those DONEs is delivered after this returns, except
 * one that was already being delivered on the scheduler thread at that moment.
 * NC_OK, or NC_ENOTFOUND when the id is unknown or already finished. */
int nc_engine_cancel(nc_engine *e, uint64_t id);

typedef struct nc_engine_stats {
  int slots_total, slots_in_use;
  int queue_depth, queue_limit;
  int requests_active;        /* admitted, not finished   */
  int context;                /* positions per slot       */
  nc_decode_weights weights;  /* precision in use (never AUTO) */
  nc_kv_dtype kv;             /* KV cache element type in use */
  uint64_t requests_finished; /* since creation           */
  uint64_t tokens_generated;  /* delivered tokens         */
  uint64_t prefill_tokens;    /* prompt tokens prefilled  */
  uint64_t decode_steps;      /* batched decode steps     */
} nc_engine_stats;

/* A consistent snapshot of the counters (for Model.Status). */
void nc_engine_get_stats(nc_engine *e, nc_engine_stats *st);

/* Positions per slot. */
int nc_engine_context(const nc_engine *e);

/* Renders a chat for completion (nc_chat_render NC_RENDER_FOR_COMPLETION: system merge,
 * strict alternation, <|assistant_start|> primed; defect D1) into `out` (appended; the caller
 * owns it) and checks that its length plus max_tokens fits the context, so nothing is queued
 * or allocated for a request that cannot run. NC_OK, NC_EINVAL with a reason in msg (render
 * errors, "prompt of N tokens + max_tokens M exceeds the context of C tokens"), NC_ENOMEM or
 * the tokenizer's error; on error `out` is left as it was. */
int nc_engine_render_chat(const nc_engine *e, const nc_chat_msg *msgs, int n, int max_tokens,
                          nc_token_buf *out, char *msg, size_t msglen);

#ifdef __cplusplus
}
#endif
#endif /* NC_ENGINE_H */
