/* nc_client.h — C SDK of nanochatd: the protobuf-c messages generated from proto/ at build time
 * (build/gen/c, library ncproto) plus a small call helper over the gRPC C core.
 *
 *   nc_client_options o = {.address = "127.0.0.1:50051", .token = getenv("NANOCHAT_TOKEN")};
 *   nc_client *cl; nc_client_error err;
 *   if (nc_client_new(&o, &cl, &err) != NCC_OK) { fprintf(stderr, "%s\n", err.message); ... }
 *   Nanochat__V1__HealthCheckRequest rq = NANOCHAT__V1__HEALTH_CHECK_REQUEST__INIT;
 *   Nanochat__V1__HealthCheckResponse *h;
 *   if (ncc_health_check(cl, &rq, &h, 0, &err) == NCC_OK) {
 *     puts(h->status);
 *     protobuf_c_message_free_unpacked(&h->base, NULL);
 *   }
 *   nc_client_free(cl);
 *
 * Every method of proto/ has a typed function in the generated nc_client_methods.h
 * (ncc_<group>_<method>, built from build/gen/rpc_table.json); streaming methods open an
 * nc_client_stream. The helpers below add the idiomatic layer: chat from a prompt, job
 * handles (start, status, progress stream, cancel, wait). API reference: docs/api.md.
 *
 * Errors. Every function returns an nc_client_code: NCC_OK (0) or the gRPC status code the call
 * ended with (the same numbers as grpc_status_code), and fills *err (when err is not NULL) with
 * that code and the server's status message. Failures detected in the client are reported with
 * the matching code too: bad arguments NCC_INVALID_ARGUMENT, out of memory
 * NCC_RESOURCE_EXHAUSTED, an undecodable response NCC_INTERNAL.
 *
 * Threads. A client may be used from several threads at once (each call has its own
 * completion queue). A stream is used by one thread at a time, except nc_client_stream_cancel,
 * which any thread may call.
 *
 * Ownership. Messages passed in are borrowed for the call. Messages returned in *resp / *msg
 * are owned by the caller: free them with protobuf_c_message_free_unpacked(m, NULL).
 */
#ifndef NC_CLIENT_H
#define NC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "nanochat/v1/chat.pb-c.h"
#include "nanochat/v1/checkpoint.pb-c.h"
#include "nanochat/v1/common.pb-c.h"
#include "nanochat/v1/eval.pb-c.h"
#include "nanochat/v1/health.pb-c.h"
#include "nanochat/v1/model.pb-c.h"
#include "nanochat/v1/tokenizer.pb-c.h"
#include "nanochat/v1/tools.pb-c.h"
#include "nanochat/v1/train.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* gRPC status codes (values of grpc_status_code). */
typedef enum {
  NCC_OK = 0,
  NCC_CANCELLED = 1,
  NCC_UNKNOWN = 2,
  NCC_INVALID_ARGUMENT = 3,
  NCC_DEADLINE_EXCEEDED = 4,
  NCC_NOT_FOUND = 5,
  NCC_ALREADY_EXISTS = 6,
  NCC_PERMISSION_DENIED = 7,
  NCC_RESOURCE_EXHAUSTED = 8,
  NCC_FAILED_PRECONDITION = 9,
  NCC_ABORTED = 10,
  NCC_OUT_OF_RANGE = 11,
  NCC_UNIMPLEMENTED = 12,
  NCC_INTERNAL = 13,
  NCC_UNAVAILABLE = 14,
  NCC_DATA_LOSS = 15,
  NCC_UNAUTHENTICATED = 16
} nc_client_code;

#define NCC_MESSAGE_MAX 512
#define NCC_ADDRESS_MAX 1024
#define NCC_TOKEN_MAX 4096
#define NCC_ROOT_PEM_MAX (1u << 20)

/* The outcome of a call: code and the server's (or client's) message, NUL-terminated,
 * truncated to NCC_MESSAGE_MAX - 1 bytes. */
typedef struct {
  int code;
  char message[NCC_MESSAGE_MAX];
} nc_client_error;

/* "UNIMPLEMENTED" for NCC_UNIMPLEMENTED, ...; "UNKNOWN" for values outside the enum. */
const char *nc_client_code_name(int code);

typedef struct {
  const char *address;     /* "host:port", "unix:/path" (required, < NCC_ADDRESS_MAX bytes) */
  const char *token;       /* bearer token, NULL/"" = none (printable ASCII, < NCC_TOKEN_MAX) */
  int tls;                 /* nonzero: TLS (root_pem or the system roots) */
  const char *root_pem;    /* PEM of the CA to trust, NULL = system roots */
  const char *server_name; /* name to check in the certificate, NULL = from the address */
  int64_t timeout_ms;      /* unary calls whose method has no server default; 0 = 30000 */
} nc_client_options;

typedef struct nc_client nc_client;
typedef struct nc_client_stream nc_client_stream;

/* Creates a client (no connection is made until the first call). Strings are copied.
 * *out is owned by the caller: nc_client_free. */
int nc_client_new(const nc_client_options *opt, nc_client **out, nc_client_error *err);
/* Frees the client; NULL is fine. Streams must be freed before. */
void nc_client_free(nc_client *cl);

/* Blocks until the channel is connected or timeout_ms passes (NCC_UNAVAILABLE). */
int nc_client_wait_ready(nc_client *cl, int64_t timeout_ms, nc_client_error *err);

/* Generic unary call of `method` ("/nanochat.v1.Health/Check"). timeout_ms: < 0 = none (the
 * server's default deadline for the method applies), 0 = the client's default timeout.
 * On NCC_OK *resp is the decoded response (caller frees), else NULL. */
int nc_client_unary(nc_client *cl, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                    int64_t timeout_ms, nc_client_error *err);

/* Opens a server stream. timeout_ms: <= 0 = no deadline. *out owned by the caller. */
int nc_client_stream_open(nc_client *cl, const char *method, const ProtobufCMessage *req,
                          const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms,
                          nc_client_stream **out, nc_client_error *err);
/* Next message: NCC_OK with *msg set (caller frees); NCC_OK with *msg == NULL at the end of a
 * stream that ended OK; else the status the stream ended with (also on every later call). */
int nc_client_stream_next(nc_client_stream *s, ProtobufCMessage **msg, nc_client_error *err);
/* Cancels the call (any thread); the next stream_next returns NCC_CANCELLED. */
void nc_client_stream_cancel(nc_client_stream *s);
/* Cancels if still open and frees; NULL is fine. */
void nc_client_stream_free(nc_client_stream *s);

/* ---- idiomatic helpers ---------------------------------------------------------------- */

/* Chat.Stream with one user message `prompt` (and an optional system message); opts may be
 * NULL (defaults) — its messages are ignored, its other fields (temperature, session_id, ...)
 * are used. Read with nc_client_chat_next. */
int nc_client_chat_open(nc_client *cl, const char *system, const char *prompt,
                        const Nanochat__V1__ChatRequest *opts, nc_client_stream **out,
                        nc_client_error *err);
/* Next piece of the reply: NCC_OK with *delta (borrowed from *ev until the next call) set,
 * or with *done set at the end (ChatDone: finish_reason, usage, session_id, content); both
 * are NULL once the stream is over. */
typedef struct {
  Nanochat__V1__ChatStreamResponse *ev; /* owned by the iterator */
} nc_client_chat_event;
int nc_client_chat_next(nc_client_stream *s, nc_client_chat_event *state,
                        const Nanochat__V1__ChatDelta **delta, const Nanochat__V1__ChatDone **done,
                        nc_client_error *err);
/* Frees what the iterator holds. */
void nc_client_chat_event_clear(nc_client_chat_event *state);

/* A job on the server (from a Train.* / Eval.Core / Eval.Chat / Train.TestJob starter). */
typedef struct {
  char id[65];
  Nanochat__V1__JobState state; /* as the starter returned it */
  uint32_t queue_position;
} nc_client_job;

/* Starts a job with `method` (e.g. NCC_M_TRAIN_BASE) and request `req`. */
int nc_client_job_start(nc_client *cl, const char *method, const ProtobufCMessage *req,
                        nc_client_job *job, nc_client_error *err);
/* The job as it is now (SNAPSHOT of Train.Status); *info owned by the caller. */
int nc_client_job_status(nc_client *cl, const char *job_id, Nanochat__V1__JobInfo **info,
                         nc_client_error *err);
/* Train.Status stream of the job: stored events from from_seq (0 = none), then live ones when
 * follow is set, preceded by one SNAPSHOT. Read with nc_client_stream_next (JobEvent). */
int nc_client_job_progress(nc_client *cl, const char *job_id, uint64_t from_seq, int follow,
                           int64_t timeout_ms, nc_client_stream **out, nc_client_error *err);
/* Train.Cancel; *info (may be NULL) owned by the caller. */
int nc_client_job_cancel(nc_client *cl, const char *job_id, Nanochat__V1__JobInfo **info,
                         nc_client_error *err);
/* Follows the job until it ends (timeout_ms <= 0: no limit, else NCC_DEADLINE_EXCEEDED);
 * *info (may be NULL) gets the final JobInfo. */
int nc_client_job_wait(nc_client *cl, const char *job_id, int64_t timeout_ms,
                       Nanochat__V1__JobInfo **info, nc_client_error *err);
/* True for SUCCEEDED, FAILED, CANCELLED, INTERRUPTED. */
int nc_client_job_state_terminal(Nanochat__V1__JobState s);

#ifdef __cplusplus
}
#endif

#include "nc_client_methods.h"

#endif
