/* nc_call.h — the handler API: everything a method handler does with its call.
 *
 * A handler is the function named in the method's row of the RPC table
 * (int nc_h_<service>_<method>(nc_call *call, const ProtobufCMessage *req), declared in the
 * generated nc_rpc_table.h). The runtime calls it once per call, after the dispatch gate has
 * admitted the call (auth, size, decoding, validation, needs_model, concurrency slot,
 * deadline). Cast `req` to the method's request type, e.g.
 *     const Nanochat__V1__ChatHistoryRequest *r = (const void *)req;
 *
 * WHERE IT RUNS
 *   - methods flagged `slow` run on the worker pool (may block: LMDB, disk, CPU work);
 *   - all others run on a completion-queue (CQ) thread and MUST NOT block (no disk I/O, no
 *     locks held for long, no nc_call_send_sync): every call on that CQ waits meanwhile.
 *   Anything may be handed to another thread (a job-event pump, a token generator): every
 *   function below is thread-safe and callable from any thread unless it says otherwise.
 *
 * THE CONTRACT
 *   1. Every call is finished exactly once: nc_call_reply (unary success) or nc_call_finish
 *      (any status, any kind of method), from any thread, now or later, also after the call
 *      was cancelled. A handler may instead return a negative NC_E* code without finishing;
 *      the runtime then finishes with that code (nc_status_from_err) and its generic text.
 *   2. After finishing, the finisher must not touch `call` again unless it holds its own
 *      reference (nc_call_ref / nc_call_unref). Until then `call` and `req` stay valid.
 *   3. Server streaming: at most one message in flight. nc_call_send returns at once; its
 *      callback runs on a CQ thread when the message has been accepted by HTTP/2 flow
 *      control (ok = true) or the call died (ok = false). Chain the next send from that
 *      callback, or from your own thread after it (nc_call_send_sync does this for you off
 *      CQ threads). A slow client therefore slows the producer (backpressure), and memory
 *      stays bounded. nc_call_finish while a send is in flight is fine: the status goes out
 *      after that message.
 *   4. Cancellation (client cancel, deadline, server shutdown) is cooperative: poll
 *      nc_call_is_cancelled between steps, or register nc_call_on_cancel. Then stop work and
 *      still finish (rule 1); the status is not sent to a cancelled call, it only releases it.
 *   5. Callbacks (send, recv, cancel, wake) run on CQ threads with no runtime lock held —
 *      not always the same thread, and two callbacks of one call (e.g. cancel and send) may
 *      run at the same time, so guard shared per-call state with a lock; they must not block. The runtime never calls them after the call was destroyed. Per-call state
 *      attached with nc_call_set_data is freed when the call is destroyed, i.e. after the
 *      last callback, which makes it the safe place for callback arguments.
 *   6. Never log request or response content (nc_log.h).
 *
 * ERRORS: functions return NC_OK or a negative NC_E* code (core/nc_err.h):
 *   NC_ESTATE     the call was already finished (a bug in the caller);
 *   NC_ECANCELED  the call is cancelled or over (nothing was sent; still finish it);
 *   NC_EBUSY      a send (or recv) is already in flight on this call;
 *   NC_EFULL      the message is larger than the server's 16 MiB send limit;
 *   NC_ENOMEM     out of memory;  NC_EINTERNAL  gRPC refused the operation.
 */
#ifndef NC_CALL_H
#define NC_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "nc_app.h"
#include "nc_auth.h"
#include "nc_rpc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest message nanochatd sends (GRPC_ARG_MAX_SEND_MESSAGE_LENGTH). */
#define NC_MAX_SEND_BYTES (16u << 20)

/* ---- identity -------------------------------------------------------------------------- */

/* The call's RPC table row (never NULL for calls given to handlers). */
const nc_rpc_method *nc_call_method(const nc_call *call);

/* The process-wide context (store, jobs, engine hooks, config). */
nc_app *nc_call_app(const nc_call *call);

/* Who is calling: NC_SCOPE_ADMIN, NC_SCOPE_USER, or NC_SCOPE_NONE on public methods called
 * without a token. With no token configured every caller is NC_SCOPE_ADMIN. */
nc_scope nc_call_scope(const nc_call *call);

/* Effective deadline in CLOCK_MONOTONIC milliseconds (nc_now_mono_ms): the client's, else
 * now + the method's default_deadline_ms; INT64_MAX when there is none. The runtime cancels
 * the call when it passes (nc_call_is_cancelled turns true). */
int64_t nc_call_deadline_ms(const nc_call *call);

/* ---- lifetime and cancellation ---------------------------------------------------------- */

/* Extra references for threads that keep the call past finishing it (rule 2). */
void nc_call_ref(nc_call *call);
void nc_call_unref(nc_call *call);

/* True once the client cancelled, the deadline passed or the server cancelled the call. */
bool nc_call_is_cancelled(const nc_call *call);

/* Registers fn(call, arg) to run once, on a CQ thread, when the call is cancelled before it
 * was finished (it never runs for a call that finished first). One callback per call; a
 * second registration replaces the first; fn = NULL clears it. Returns NC_OK, NC_ECANCELED
 * when the call is already cancelled (fn not registered: handle it now) or NC_ESTATE when the
 * call was already finished. */
typedef void (*nc_cancel_fn)(nc_call *call, void *arg);
int nc_call_on_cancel(nc_call *call, nc_cancel_fn fn, void *arg);

/* Attaches per-call state; free_fn(data) (may be NULL) runs when the call is destroyed, after
 * every callback. Replacing earlier data does not free it. */
void nc_call_set_data(nc_call *call, void *data, void (*free_fn)(void *data));
void *nc_call_data(const nc_call *call);

/* ---- responding ------------------------------------------------------------------------- */

/* Unary success: sends `resp` (packed before returning; the caller keeps ownership) and
 * status OK in one batch, and finishes the call. Also valid on a server-streaming call as
 * "last message + OK" when no send is in flight (NC_EBUSY otherwise). */
int nc_call_reply(nc_call *call, const ProtobufCMessage *resp);

/* Streaming: starts sending `msg` (packed before returning; the caller keeps ownership).
 * cb(call, ok, arg) runs on a CQ thread when the send completes (cb may be NULL). */
typedef void (*nc_send_cb)(nc_call *call, bool ok, void *arg);
int nc_call_send(nc_call *call, const ProtobufCMessage *msg, nc_send_cb cb, void *arg);

/* Streaming, for a message that is followed at once by more: like nc_call_send, but gRPC
 * may keep it in the stream's write buffer (at most 64 KiB per stream) instead of writing it
 * now, and cb runs as soon as it is buffered, so a burst of small messages (a replay) goes
 * out in a few large writes instead of one TCP write each. The next nc_call_send writes
 * everything buffered: send the LAST message of a burst with nc_call_send, never leave a call
 * waiting after nc_call_send_more, and do not follow it directly with nc_call_reply or
 * nc_call_finish (tried for a chat stream's last delta before its final message + status:
 * with 32 concurrent streams some stalled for up to 60 s). */
int nc_call_send_more(nc_call *call, const ProtobufCMessage *msg, nc_send_cb cb, void *arg);

/* Streaming, blocking: sends `msg` and waits until it completed. NOT on a CQ thread
 * (returns NC_ESTATE there). NC_OK when the message was accepted, NC_ECANCELED when the call
 * died meanwhile. */
int nc_call_send_sync(nc_call *call, const ProtobufCMessage *msg);

/* Finishes the call with the status of `err` (NC_OK = OK; otherwise nc_status_from_err) and
 * a message (printf format; at most 512 bytes are sent; name fields, never echo values).
 * The status goes out after a send in flight. Returns NC_OK or NC_ESTATE (already
 * finished); either way the caller's use of `call` ends (rule 2). */
int nc_call_finish(nc_call *call, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- receiving (client-streaming and bidi methods) -------------------------------------- */

/* Reads the next request message. cb runs on a CQ thread with:
 *   msg != NULL, err == NC_OK: the next request, unpacked and validated like a unary request
 *                              (valid only during the callback);
 *   msg == NULL, err == NC_OK: the client half-closed (no more requests);
 *   msg == NULL, err <  0    : the message was too large (NC_EFULL), malformed or invalid
 *                              (NC_EINVAL; errmsg names the field), or the call died
 *                              (NC_ECANCELED). Finish the call with err/errmsg.
 * One recv in flight per call (NC_EBUSY otherwise). */
typedef void (*nc_recv_cb)(nc_call *call, const ProtobufCMessage *msg, int err,
                           const char *errmsg, void *arg);
int nc_call_recv(nc_call *call, nc_recv_cb cb, void *arg);

/* ---- waking up on a CQ thread -------------------------------------------------------------- */

/* Runs fn(call, arg) soon on a CQ thread (an empty batch completes at once). For
 * threads that must not do work themselves (e.g. job-manager notifications): post a wake and
 * do the work in fn. At most one wake is queued per call: while one is queued, further calls
 * return NC_OK without queueing another (fn/arg of the queued one stay). NC_ESTATE when the
 * call is finished, NC_ECANCELED when it is cancelled. */
typedef void (*nc_wake_fn)(nc_call *call, void *arg);
int nc_call_wake(nc_call *call, nc_wake_fn fn, void *arg);

/* True on a completion-queue thread of this process (where blocking is forbidden). */
bool nc_on_cq_thread(void);

#ifdef __cplusplus
}
#endif
#endif /* NC_CALL_H */
