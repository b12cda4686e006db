/* nc_client.c — the C SDK's call helper over the gRPC C core: channel setup (insecure or TLS,
 * bearer token), unary calls and server streams carrying protobuf-c messages. One completion
 * queue per call, every batch waited for before the next one starts, so no call leaves work
 * behind in a queue it destroys. */
#include "nc_client.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#define NCC_REQUEST_MAX (4u << 20) /* the channel-wide cap of nanochatd */
#define NCC_DEFAULT_TIMEOUT_MS 30000

struct nc_client {
  grpc_channel *ch;
  char *auth; /* "Bearer <token>", or NULL */
  int64_t timeout_ms;
};

struct nc_client_stream {
  grpc_call *call;
  grpc_completion_queue *cq;
  const ProtobufCMessageDescriptor *desc;
  int done; /* the final status is in `final` */
  nc_client_error final;
};

static const char *const CODE_NAMES[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED"};

const char *nc_client_code_name(int code) {
  if (code < 0 || code > NCC_UNAUTHENTICATED) return "UNKNOWN";
  return CODE_NAMES[code];
}

static int set_err(nc_client_error *err, int code, const char *fmt, ...) {
  if (err) {
    err->code = code;
    err->message[0] = '\0';
    if (fmt) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(err->message, sizeof err->message, fmt, ap);
      va_end(ap);
    }
  }
  return code;
}

static int set_err_slice(nc_client_error *err, int code, grpc_slice details) {
  if (err) {
    size_t n = GRPC_SLICE_LENGTH(details);
    if (n >= sizeof err->message) n = sizeof err->message - 1;
    memcpy(err->message, GRPC_SLICE_START_PTR(details), n);
    err->message[n] = '\0';
    err->code = code;
  }
  return code;
}

static int token_ok(const char *t) {
  size_t n = strnlen(t, NCC_TOKEN_MAX);
  if (n == 0 || n >= NCC_TOKEN_MAX) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)t[i] < 0x21 || (unsigned char)t[i] > 0x7e) return 0;
  return 1;
}

int nc_client_new(const nc_client_options *opt, nc_client **out, nc_client_error *err) {
  if (!out) return set_err(err, NCC_INVALID_ARGUMENT, "out is NULL");
  *out = NULL;
  if (!opt || !opt->address || !opt->address[0] ||
      strnlen(opt->address, NCC_ADDRESS_MAX) >= NCC_ADDRESS_MAX)
    return set_err(err, NCC_INVALID_ARGUMENT, "address missing or longer than %d bytes",
                   NCC_ADDRESS_MAX - 1);
  if (opt->token && opt->token[0] && !token_ok(opt->token))
    return set_err(err, NCC_INVALID_ARGUMENT,
                   "token must be 1..%d printable ASCII characters without spaces",
                   NCC_TOKEN_MAX - 1);
  if (opt->root_pem && strnlen(opt->root_pem, NCC_ROOT_PEM_MAX) >= NCC_ROOT_PEM_MAX)
    return set_err(err, NCC_INVALID_ARGUMENT, "root_pem larger than %u bytes", NCC_ROOT_PEM_MAX);
  if (opt->timeout_ms < 0) return set_err(err, NCC_INVALID_ARGUMENT, "timeout_ms < 0");
  nc_client *cl = calloc(1, sizeof *cl);
  if (!cl) return set_err(err, NCC_RESOURCE_EXHAUSTED, "out of memory");
  cl->timeout_ms = opt->timeout_ms ? opt->timeout_ms : NCC_DEFAULT_TIMEOUT_MS;
  if (opt->token && opt->token[0]) {
    size_t n = strlen(opt->token) + sizeof "Bearer ";
    cl->auth = malloc(n);
    if (!cl->auth) {
      free(cl);
      return set_err(err, NCC_RESOURCE_EXHAUSTED, "out of memory");
    }
    snprintf(cl->auth, n, "Bearer %s", opt->token);
  }
  grpc_init();
  grpc_channel_credentials *creds =
      (opt->tls || opt->root_pem) ? grpc_ssl_credentials_create(opt->root_pem, NULL, NULL, NULL)
                                  : grpc_insecure_credentials_create();
  grpc_arg args[1];
  grpc_channel_args chargs = {0, args};
  if (opt->server_name && opt->server_name[0]) {
    args[0].type = GRPC_ARG_STRING;
    args[0].key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
    args[0].value.string = (char *)opt->server_name;
    chargs.num_args = 1;
  }
  cl->ch = creds ? grpc_channel_create(opt->address, creds, &chargs) : NULL;
  if (creds) grpc_channel_credentials_release(creds);
  if (!cl->ch) {
    free(cl->auth);
    free(cl);
    grpc_shutdown();
    return set_err(err, NCC_INTERNAL, "cannot create a channel to %s", opt->address);
  }
  *out = cl;
  return set_err(err, NCC_OK, NULL);
}

void nc_client_free(nc_client *cl) {
  if (!cl) return;
  grpc_channel_destroy(cl->ch);
  free(cl->auth);
  free(cl);
  grpc_shutdown();
}

static gpr_timespec deadline_in(int64_t ms) {
  if (ms <= 0) return gpr_inf_future(GPR_CLOCK_REALTIME);
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* Waits for the one batch in flight on cq. */
static int wait_batch(grpc_completion_queue *cq, void *tag) {
  grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  return ev.type == GRPC_OP_COMPLETE && ev.tag == tag;
}

static void cq_destroy(grpc_completion_queue *cq) {
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
}

/* Packs req into a byte buffer (NULL + *err on failure). */
static grpc_byte_buffer *pack(const ProtobufCMessage *req, nc_client_error *err) {
  if (!protobuf_c_message_check(req)) {
    set_err(err, NCC_INVALID_ARGUMENT, "request %s is not a valid message", req->descriptor->name);
    return NULL;
  }
  size_t n = protobuf_c_message_get_packed_size(req);
  if (n > NCC_REQUEST_MAX) {
    set_err(err, NCC_RESOURCE_EXHAUSTED, "request of %zu bytes exceeds the %u byte cap", n,
            NCC_REQUEST_MAX);
    return NULL;
  }
  grpc_slice s = grpc_slice_malloc(n);
  protobuf_c_message_pack(req, GRPC_SLICE_START_PTR(s));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

/* Decodes bb (consumed) as desc. */
static int unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc,
                  ProtobufCMessage **out, nc_client_error *err) {
  grpc_byte_buffer_reader rd;
  if (!grpc_byte_buffer_reader_init(&rd, bb)) {
    grpc_byte_buffer_destroy(bb);
    return set_err(err, NCC_INTERNAL, "cannot read the response");
  }
  grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
  grpc_byte_buffer_reader_destroy(&rd);
  grpc_byte_buffer_destroy(bb);
  *out = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
  grpc_slice_unref(s);
  if (!*out) return set_err(err, NCC_INTERNAL, "undecodable %s in the response", desc->name);
  return NCC_OK;
}

static grpc_call *new_call(nc_client *cl, const char *method, grpc_completion_queue *cq,
                           int64_t timeout_ms) {
  grpc_slice m = grpc_slice_from_copied_string(method);
  grpc_call *call = grpc_channel_create_call(cl->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL,
                                             deadline_in(timeout_ms), NULL);
  grpc_slice_unref(m);
  return call;
}

static int check_args(nc_client *cl, const char *method, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *desc, void *out, nc_client_error *err) {
  if (!cl || !method || method[0] != '/' || !req || !desc || !out)
    return set_err(err, NCC_INVALID_ARGUMENT, "client, method (\"/pkg.Service/Method\"), "
                                              "request, descriptor and out are required");
  if (strnlen(method, 256) >= 256) return set_err(err, NCC_INVALID_ARGUMENT, "method too long");
  return NCC_OK;
}

/* The four ops that open every call: initial metadata (with the token), the request,
 * half-close, and the server's initial metadata. */
typedef struct {
  grpc_metadata md;
  grpc_metadata_array init_md;
} opening;

static void opening_ops(nc_client *cl, opening *o, grpc_byte_buffer *send, grpc_op ops[4]) {
  memset(o, 0, sizeof *o);
  if (cl->auth) {
    o->md.key = grpc_slice_from_static_string("authorization");
    o->md.value = grpc_slice_from_copied_string(cl->auth);
  }
  grpc_metadata_array_init(&o->init_md);
  memset(ops, 0, 4 * sizeof *ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = cl->auth ? 1 : 0;
  ops[0].data.send_initial_metadata.metadata = cl->auth ? &o->md : NULL;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &o->init_md;
}

static void opening_free(nc_client *cl, opening *o) {
  grpc_metadata_array_destroy(&o->init_md);
  if (cl->auth) grpc_slice_unref(o->md.value);
}

/* The op that receives the final status. */
typedef struct {
  grpc_metadata_array trail_md;
  grpc_status_code status;
  grpc_slice details;
  const char *error_string;
} closing;

static void closing_op(closing *c, grpc_op *op) {
  grpc_metadata_array_init(&c->trail_md);
  c->status = GRPC_STATUS_UNKNOWN;
  c->details = grpc_empty_slice();
  c->error_string = NULL;
  memset(op, 0, sizeof *op);
  op->op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  op->data.recv_status_on_client.trailing_metadata = &c->trail_md;
  op->data.recv_status_on_client.status = &c->status;
  op->data.recv_status_on_client.status_details = &c->details;
  op->data.recv_status_on_client.error_string = &c->error_string;
}

/* Fills err from the received status (ok: the batch completed); frees what closing holds. */
static int closing_done(closing *c, int ok, nc_client_error *err) {
  int rc;
  if (!ok)
    rc = set_err(err, NCC_INTERNAL, "call could not be completed");
  else if (c->status != GRPC_STATUS_OK)
    rc = set_err_slice(err, (int)c->status, c->details);
  else
    rc = set_err(err, NCC_OK, NULL);
  grpc_slice_unref(c->details);
  if (c->error_string) gpr_free((void *)c->error_string);
  grpc_metadata_array_destroy(&c->trail_md);
  return rc;
}

int nc_client_unary(nc_client *cl, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                    int64_t timeout_ms, nc_client_error *err) {
  int rc = check_args(cl, method, req, resp_desc, resp, err);
  if (rc) return rc;
  *resp = NULL;
  grpc_byte_buffer *send = pack(req, err);
  if (!send) return err ? err->code : NCC_INVALID_ARGUMENT;
  grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
  grpc_call *call = new_call(cl, method, cq, timeout_ms == 0 ? cl->timeout_ms : timeout_ms);
  grpc_op ops[6];
  opening o;
  closing c;
  grpc_byte_buffer *recv = NULL;
  opening_ops(cl, &o, send, ops);
  memset(&ops[4], 0, sizeof ops[4]);
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &recv;
  closing_op(&c, &ops[5]);
  void *tag = (void *)1;
  int ok = grpc_call_start_batch(call, ops, 6, tag, NULL) == GRPC_CALL_OK && wait_batch(cq, tag);
  rc = closing_done(&c, ok, err);
  if (rc == NCC_OK) {
    if (!recv) {
      rc = set_err(err, NCC_INTERNAL, "OK status without a response message");
    } else {
      rc = unpack(recv, resp_desc, resp, err);
      recv = NULL;
    }
  }
  if (recv) grpc_byte_buffer_destroy(recv);
  grpc_byte_buffer_destroy(send);
  opening_free(cl, &o);
  grpc_call_unref(call);
  cq_destroy(cq);
  return rc;
}

int nc_client_stream_open(nc_client *cl, const char *method, const ProtobufCMessage *req,
                          const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms,
                          nc_client_stream **out, nc_client_error *err) {
  int rc = check_args(cl, method, req, resp_desc, out, err);
  if (rc) return rc;
  *out = NULL;
  nc_client_stream *s = calloc(1, sizeof *s);
  if (!s) return set_err(err, NCC_RESOURCE_EXHAUSTED, "out of memory");
  grpc_byte_buffer *send = pack(req, err);
  if (!send) {
    free(s);
    return err ? err->code : NCC_INVALID_ARGUMENT;
  }
  s->desc = resp_desc;
  s->cq = grpc_completion_queue_create_for_next(NULL);
  s->call = new_call(cl, method, s->cq, timeout_ms);
  grpc_op ops[4];
  opening o;
  opening_ops(cl, &o, send, ops);
  void *tag = (void *)1;
  /* a failed start (e.g. unreachable server) shows in the status the first stream_next gets */
  if (grpc_call_start_batch(s->call, ops, 4, tag, NULL) == GRPC_CALL_OK) wait_batch(s->cq, tag);
  grpc_byte_buffer_destroy(send);
  opening_free(cl, &o);
  *out = s;
  return set_err(err, NCC_OK, NULL);
}

/* Receives the final status into s->final. */
static void finish(nc_client_stream *s) {
  grpc_op op;
  closing c;
  closing_op(&c, &op);
  void *tag = (void *)3;
  int ok = grpc_call_start_batch(s->call, &op, 1, tag, NULL) == GRPC_CALL_OK && wait_batch(s->cq, tag);
  closing_done(&c, ok, &s->final);
  s->done = 1;
}

int nc_client_stream_next(nc_client_stream *s, ProtobufCMessage **msg, nc_client_error *err) {
  if (!s || !msg) return set_err(err, NCC_INVALID_ARGUMENT, "stream and msg are required");
  *msg = NULL;
  if (!s->done) {
    grpc_byte_buffer *recv = NULL;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &recv;
    void *tag = (void *)2;
    if (grpc_call_start_batch(s->call, &op, 1, tag, NULL) == GRPC_CALL_OK && wait_batch(s->cq, tag) &&
        recv) {
      int rc = unpack(recv, s->desc, msg, err);
      if (rc != NCC_OK) {
        grpc_call_cancel(s->call, NULL);
        finish(s);
        set_err(&s->final, rc, "%s", err ? err->message : "undecodable message");
        return rc;
      }
      return set_err(err, NCC_OK, NULL);
    }
    if (recv) grpc_byte_buffer_destroy(recv);
    finish(s);
  }
  if (err) *err = s->final;
  return s->final.code;
}

void nc_client_stream_cancel(nc_client_stream *s) {
  if (s) grpc_call_cancel(s->call, NULL);
}

void nc_client_stream_free(nc_client_stream *s) {
  if (!s) return;
  if (!s->done) {
    grpc_call_cancel(s->call, NULL);
    finish(s);
  }
  grpc_call_unref(s->call);
  cq_destroy(s->cq);
  free(s);
}

int nc_client_wait_ready(nc_client *cl, int64_t timeout_ms, nc_client_error *err) {
  if (!cl) return set_err(err, NCC_INVALID_ARGUMENT, "client is NULL");
  gpr_timespec dl = deadline_in(timeout_ms > 0 ? timeout_ms : 1);
  grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
  grpc_connectivity_state st = grpc_channel_check_connectivity_state(cl->ch, 1);
  while (st != GRPC_CHANNEL_READY) {
    grpc_channel_watch_connectivity_state(cl->ch, st, dl, cq, (void *)4);
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE || !ev.success) break; /* deadline */
    st = grpc_channel_check_connectivity_state(cl->ch, 1);
  }
  cq_destroy(cq);
  if (st != GRPC_CHANNEL_READY)
    return set_err(err, NCC_UNAVAILABLE, "not connected within %lld ms", (long long)timeout_ms);
  return set_err(err, NCC_OK, NULL);
}
