/* nc_gate.h — the dispatch gate: the one admission check every call passes before its
 * handler, in this order:
 *
 *   1. auth          bearer token vs the method's public/admin flags   UNAUTHENTICATED /
 *                                                                        PERMISSION_DENIED
 *   2. size          request bytes <= max_request_bytes                 RESOURCE_EXHAUSTED
 *   3. unpack        protobuf-c, with a bounded allocator               INVALID_ARGUMENT
 *                                                                        "malformed request"
 *   4. validation    field limits, UTF-8/NUL, finite floats, enums      INVALID_ARGUMENT
 *                                                                        "<field path>: ..."
 *   5. needs_model   nc_app.model.ready()                               FAILED_PRECONDITION
 *                                                                        "no model loaded"
 *   6. concurrency   per-method slot (max_concurrency)                  RESOURCE_EXHAUSTED
 *   7. deadline      already passed?                                    DEADLINE_EXCEEDED
 *
 * Client-streaming methods have no initial message: steps 2-4 run on every message read with
 * nc_call_recv instead (nc_gate_unpack). The gate is pure decision logic over plain inputs,
 * so unit tests drive it without a network.
 */
#ifndef NC_GATE_H
#define NC_GATE_H

#ifdef __cplusplus
#include <atomic>
typedef std::atomic<unsigned> atomic_uint;   /* same layout as C11 atomic_uint (gcc/clang) */
#else
#include <stdatomic.h>
#endif
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nc_app.h"
#include "nc_auth.h"
#include "nc_rpc.h"
#include "nc_validate.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nc_gate {
  const nc_auth *auth;
  const nc_app *app;        /* model hook; may be NULL (no hook) */
  atomic_uint *inflight;    /* per method row (index = row - nc_rpc_methods), NC_RPC_COUNT */
} nc_gate;

/* Inputs of one admission. */
typedef struct nc_gate_in {
  const nc_rpc_method *m;
  size_t n_auth;            /* number of `authorization` metadata entries */
  const char *auth;         /* the first one's value (not NUL-terminated) */
  size_t auth_len;
  bool has_payload;         /* a request message arrived (unary / server-streaming) */
  const uint8_t *payload;   /* flattened request bytes */
  size_t payload_len;
  int64_t now_ms;           /* CLOCK_MONOTONIC ms */
  int64_t deadline_ms;      /* effective deadline, INT64_MAX = none */
} nc_gate_in;

typedef struct nc_gate_out {
  int err;                  /* NC_OK or the NC_E* code to finish the call with */
  char msg[256];            /* status message when err != NC_OK */
  ProtobufCMessage *req;    /* NC_OK + has_payload: the request, allocated from `alloc` */
  nc_scope scope;
  bool slot_held;           /* release with nc_gate_release when the call ends */
} nc_gate_out;

/* Initialises a gate; `inflight` must hold NC_RPC_COUNT counters that outlive it. */
void nc_gate_init(nc_gate *g, const nc_auth *auth, const nc_app *app, atomic_uint *inflight);

/* Runs steps 1-7. On NC_OK the caller owns out->req (free it with
 * protobuf_c_message_free_unpacked(out->req, &alloc->base)) and, if out->slot_held, the slot.
 * On error nothing is held. `alloc` must be initialised with the method's budget
 * (nc_pb_alloc_budget). Returns out->err. */
int nc_gate_admit(nc_gate *g, const nc_gate_in *in, nc_pb_alloc *alloc, nc_gate_out *out);

/* Steps 2-4 for one message of method m (also used by nc_call_recv). On NC_OK *msg is the
 * unpacked message (free with protobuf_c_message_free_unpacked(*msg, &alloc->base)). */
int nc_gate_unpack(const nc_rpc_method *m, const uint8_t *data, size_t len, nc_pb_alloc *alloc,
                   ProtobufCMessage **msg, char *err, size_t errlen);

/* Gives back a slot taken by nc_gate_admit. */
void nc_gate_release(nc_gate *g, const nc_rpc_method *m);

#ifdef __cplusplus
}
#endif
#endif /* NC_GATE_H */
