/* nc_call.c — per-call state machine of nanochatd's gRPC runtime (see nc_call.h for the
 * handler contract and nc_runtime.h for the structures and the reference-count rules).
 *
 * Every grpc_call_start_batch on a call runs under c->mu (batches are not thread-safe per
 * call). User callbacks (send, recv, cancel) run with no lock held.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "nc_err.h"
#include "nc_log.h"
#include "nc_runtime.h"
#include "nc_status.h"

static _Thread_local bool on_cq_thread;

void nc_call_mark_cq_thread(void) { on_cq_thread = true; }
bool nc_on_cq_thread(void) { return on_cq_thread; }

/* ---- lifetime ------------------------------------------------------------------------------ */

nc_call *nc_call_new(struct nc_server *s, grpc_call *gc) {
  nc_call *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->t_close.kind = NC_TAG_CLOSE;
  c->t_close.obj = c;
  c->t_send.kind = NC_TAG_SEND;
  c->t_send.obj = c;
  c->t_recv.kind = NC_TAG_RECV;
  c->t_recv.obj = c;
  c->t_wake.kind = NC_TAG_WAKE;
  c->t_wake.obj = c;
  c->srv = s;
  c->gc = gc;
  pthread_mutex_init(&c->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->cv, &ca);
  pthread_condattr_destroy(&ca);
  atomic_init(&c->refs, 1); /* the handler's reference */
  atomic_init(&c->cancelled, false);
  c->deadline_ms = INT64_MAX;
  c->final_code = GRPC_STATUS_OK;
  grpc_metadata_array_init(&c->md);
  atomic_fetch_add(&s->calls, 1);
  return c;
}

/* Defined in nc_server.c: access log, gate slot, server gauge. */
void nc_server_call_done(struct nc_server *s, nc_call *c);

static void destroy(nc_call *c) {
  nc_server_call_done(c->srv, c);
  if (c->data_free) c->data_free(c->data);
  if (c->req) protobuf_c_message_free_unpacked(c->req, &c->alloc.base);
  if (c->payload) grpc_byte_buffer_destroy(c->payload);
  if (c->send_buf) grpc_byte_buffer_destroy(c->send_buf);
  if (c->recv_buf) grpc_byte_buffer_destroy(c->recv_buf);
  if (c->status_slice_set) grpc_slice_unref(c->status_slice);
  grpc_metadata_array_destroy(&c->md);
  if (c->gc) grpc_call_unref(c->gc);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  struct nc_server *s = c->srv;
  free(c);
  pthread_mutex_lock(&s->mu);
  atomic_fetch_sub(&s->calls, 1);
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

void nc_call_ref(nc_call *c) { atomic_fetch_add(&c->refs, 1); }

void nc_call_unref(nc_call *c) {
  if (atomic_fetch_sub(&c->refs, 1) == 1) destroy(c);
}

/* ---- identity --------------------------------------------------------------------------- */

const nc_rpc_method *nc_call_method(const nc_call *c) { return c->m; }
nc_app *nc_call_app(const nc_call *c) { return c->srv->app; }
nc_scope nc_call_scope(const nc_call *c) { return c->scope; }
int64_t nc_call_deadline_ms(const nc_call *c) { return c->deadline_ms; }
bool nc_call_is_cancelled(const nc_call *c) { return atomic_load(&c->cancelled); }

void nc_call_set_data(nc_call *c, void *data, void (*free_fn)(void *)) {
  pthread_mutex_lock(&c->mu);
  c->data = data;
  c->data_free = free_fn;
  pthread_mutex_unlock(&c->mu);
}

void *nc_call_data(const nc_call *c) { return c->data; }

int nc_call_on_cancel(nc_call *c, nc_cancel_fn fn, void *arg) {
  pthread_mutex_lock(&c->mu);
  int rc = NC_OK;
  if (c->finished) rc = NC_ESTATE;
  else if (atomic_load(&c->cancelled)) rc = NC_ECANCELED;
  else {
    c->cancel_fn = fn;
    c->cancel_arg = arg;
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

/* ---- batches ------------------------------------------------------------------------------ */

/* Starts a batch with tag `t`; takes a reference when it was accepted. Under c->mu. */
static int start_batch(nc_call *c, const grpc_op *ops, size_t n, nc_tag *t) {
  nc_call_ref(c);
  grpc_call_error e = grpc_call_start_batch(c->gc, ops, n, t, NULL);
  if (e != GRPC_CALL_OK) {
    atomic_fetch_sub(&c->refs, 1); /* cannot reach zero: the caller holds a reference */
    nc_log(NC_LOG_ERROR, "grpc_call_start_batch failed (%d) on %s", (int)e,
           c->m ? c->m->path : c->unknown_path);
    return NC_EINTERNAL;
  }
  return NC_OK;
}

int nc_call_start_close(nc_call *c) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &c->close_cancelled;
  pthread_mutex_lock(&c->mu);
  int rc = start_batch(c, &op, 1, &c->t_close);
  pthread_mutex_unlock(&c->mu);
  return rc;
}

static int pack(const ProtobufCMessage *msg, grpc_byte_buffer **out, uint64_t *bytes) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  if (n > NC_MAX_SEND_BYTES) return NC_EFULL;
  grpc_slice s = grpc_slice_malloc(n);
  protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
  *out = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  if (!*out) return NC_ENOMEM;
  *bytes += n;
  return NC_OK;
}

/* Fills the initial-metadata op if it was not sent yet. Returns the number of ops added. */
static size_t add_initial_md(nc_call *c, grpc_op *op) {
  if (c->initial_md_sent) return 0;
  memset(op, 0, sizeof *op);
  op->op = GRPC_OP_SEND_INITIAL_METADATA;
  c->initial_md_sent = true;
  return 1;
}

/* Starts the status batch (under c->mu; no send in flight). */
static void start_status(nc_call *c, grpc_status_code code, const char *msg) {
  c->final_code = code;
  if (atomic_load(&c->cancelled)) return; /* a cancelled call gets no status */
  grpc_op ops[2];
  size_t n = add_initial_md(c, &ops[0]);
  memset(&ops[n], 0, sizeof ops[n]);
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = code;
  if (c->status_slice_set) grpc_slice_unref(c->status_slice);
  c->status_slice = grpc_slice_from_copied_string(msg ? msg : "");
  c->status_slice_set = true;
  ops[n].data.send_status_from_server.status_details = code == GRPC_STATUS_OK ? NULL : &c->status_slice;
  n++;
  c->send_busy = true;
  c->send_has_status = true;
  c->status_started = true;
  if (start_batch(c, ops, n, &c->t_send) != NC_OK) {
    c->send_busy = false;
    c->send_has_status = false;
  }
}

/* ---- responding ------------------------------------------------------------------------------ */

/* The method's concurrency slot goes back when the call is finished, not when it is destroyed
 * (later: after the status went out), so a client's next call never finds it still taken. */
static void release_slot_locked(nc_call *c) {
  if (c->slot_held && c->m) {
    nc_gate_release(&c->srv->gate, c->m);
    c->slot_held = false;
  }
}

int nc_call_reply(nc_call *c, const ProtobufCMessage *resp) {
  pthread_mutex_lock(&c->mu);
  if (c->finished) {
    pthread_mutex_unlock(&c->mu);
    return NC_ESTATE;
  }
  if (c->send_busy) {
    pthread_mutex_unlock(&c->mu);
    return NC_EBUSY;
  }
  c->finished = true;
  c->cancel_fn = NULL;
  release_slot_locked(c);
  int rc = NC_OK;
  if (!atomic_load(&c->cancelled)) {
    grpc_byte_buffer *buf = NULL;
    rc = pack(resp, &buf, &c->bytes_out);
    if (rc == NC_OK) {
      grpc_op ops[3];
      size_t n = add_initial_md(c, &ops[0]);
      memset(&ops[n], 0, sizeof ops[n]);
      ops[n].op = GRPC_OP_SEND_MESSAGE;
      ops[n].data.send_message.send_message = buf;
      n++;
      memset(&ops[n], 0, sizeof ops[n]);
      ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
      ops[n].data.send_status_from_server.status = GRPC_STATUS_OK;
      n++;
      c->send_buf = buf;
      c->send_busy = true;
      c->send_has_status = true;
      c->status_started = true;
      c->final_code = GRPC_STATUS_OK;
      if (start_batch(c, ops, n, &c->t_send) != NC_OK) {
        c->send_busy = false;
        c->send_has_status = false;
      }
    } else {
      /* could not pack the reply: report it instead */
      start_status(c, nc_status_from_err(rc), rc == NC_EFULL ? "response too large" : "out of memory");
    }
  } else {
    c->final_code = GRPC_STATUS_CANCELLED;
  }
  pthread_mutex_unlock(&c->mu);
  nc_call_unref(c); /* the handler's reference */
  return NC_OK;
}

static int send_msg(nc_call *c, const ProtobufCMessage *msg, uint32_t flags, nc_send_cb cb, void *arg) {
  pthread_mutex_lock(&c->mu);
  int rc = NC_OK;
  if (c->finished) rc = NC_ESTATE;
  else if (atomic_load(&c->cancelled) || c->closed) rc = NC_ECANCELED;
  else if (c->send_busy) rc = NC_EBUSY;
  if (rc) {
    pthread_mutex_unlock(&c->mu);
    return rc;
  }
  grpc_byte_buffer *buf = NULL;
  rc = pack(msg, &buf, &c->bytes_out);
  if (rc == NC_OK) {
    grpc_op ops[2];
    size_t n = add_initial_md(c, &ops[0]);
    memset(&ops[n], 0, sizeof ops[n]);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].flags = flags;
    ops[n].data.send_message.send_message = buf;
    n++;
    c->send_buf = buf;
    c->send_busy = true;
    c->send_has_status = false;
    c->send_cb = cb;
    c->send_arg = arg;
    rc = start_batch(c, ops, n, &c->t_send);
    if (rc) {
      c->send_busy = false;
      c->send_buf = NULL;
      grpc_byte_buffer_destroy(buf);
    }
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

int nc_call_send(nc_call *c, const ProtobufCMessage *msg, nc_send_cb cb, void *arg) {
  return send_msg(c, msg, 0, cb, arg);
}

int nc_call_send_more(nc_call *c, const ProtobufCMessage *msg, nc_send_cb cb, void *arg) {
  return send_msg(c, msg, GRPC_WRITE_BUFFER_HINT, cb, arg);
}

typedef struct sync_wait {
  bool done, ok;
} sync_wait;

static void sync_cb(nc_call *c, bool ok, void *arg) {
  sync_wait *w = arg;
  pthread_mutex_lock(&c->mu);
  w->done = true;
  w->ok = ok;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

int nc_call_send_sync(nc_call *c, const ProtobufCMessage *msg) {
  if (nc_on_cq_thread()) return NC_ESTATE;
  sync_wait w = {false, false};
  nc_call_ref(c);
  int rc = nc_call_send(c, msg, sync_cb, &w);
  if (rc == NC_OK) {
    pthread_mutex_lock(&c->mu);
    while (!w.done) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    rc = w.ok ? NC_OK : NC_ECANCELED;
  }
  nc_call_unref(c);
  return rc;
}

static int finish_locked_and_release(nc_call *c, grpc_status_code code, const char *msg) {
  if (c->finished) {
    pthread_mutex_unlock(&c->mu);
    return NC_ESTATE;
  }
  c->finished = true;
  c->cancel_fn = NULL;
  release_slot_locked(c);
  if (atomic_load(&c->cancelled)) {
    c->final_code = code == GRPC_STATUS_OK ? GRPC_STATUS_CANCELLED : code;
  } else if (c->send_busy) {
    c->fin_pending = true;
    c->fin_code = code;
    snprintf(c->fin_msg, sizeof c->fin_msg, "%s", msg ? msg : "");
  } else {
    start_status(c, code, msg);
  }
  pthread_mutex_unlock(&c->mu);
  nc_call_unref(c); /* the handler's reference */
  return NC_OK;
}

int nc_call_finish(nc_call *c, int err, const char *fmt, ...) {
  char msg[512] = "";
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
  }
  if (err != NC_OK && !msg[0]) snprintf(msg, sizeof msg, "%s", nc_strerror(err));
  pthread_mutex_lock(&c->mu);
  return finish_locked_and_release(c, err == NC_OK ? GRPC_STATUS_OK : nc_status_from_err(err), msg);
}

int nc_call_finish_code(nc_call *c, grpc_status_code code, const char *msg) {
  pthread_mutex_lock(&c->mu);
  return finish_locked_and_release(c, code, msg);
}

/* ---- receiving -------------------------------------------------------------------------------- */

int nc_call_recv(nc_call *c, nc_recv_cb cb, void *arg) {
  pthread_mutex_lock(&c->mu);
  int rc = NC_OK;
  if (c->finished) rc = NC_ESTATE;
  else if (atomic_load(&c->cancelled) || c->closed) rc = NC_ECANCELED;
  else if (c->recv_busy) rc = NC_EBUSY;
  if (!rc) {
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv_buf;
    c->recv_busy = true;
    c->recv_cb = cb;
    c->recv_arg = arg;
    rc = start_batch(c, &op, 1, &c->t_recv);
    if (rc) c->recv_busy = false;
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

/* Flattens a byte buffer into malloc'ed bytes (caller frees). NULL on failure. */
uint8_t *nc_flatten(grpc_byte_buffer *bb, size_t *len) {
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, bb)) return NULL;
  grpc_slice s = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  size_t n = GRPC_SLICE_LENGTH(s);
  uint8_t *p = malloc(n ? n : 1);
  if (p) memcpy(p, GRPC_SLICE_START_PTR(s), n);
  grpc_slice_unref(s);
  *len = n;
  return p;
}

/* ---- completion events (CQ threads) ---------------------------------------------------------- */

void nc_call_on_close_event(nc_call *c, bool ok) {
  (void)ok;
  pthread_mutex_lock(&c->mu);
  c->closed = true;
  nc_cancel_fn fn = NULL;
  void *arg = NULL;
  bool timer = c->timer_armed;
  c->timer_armed = false;
  if (c->close_cancelled) {
    /* the client cancelled, the deadline passed, or the server cancelled every call */
    atomic_store(&c->cancelled, true);
    if (!c->finished) {
      fn = c->cancel_fn;
      arg = c->cancel_arg;
      c->cancel_fn = NULL;
    }
  }
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  if (timer && nc_timer_cancel(c->srv->timer, &c->timer)) nc_call_unref(c);
  if (fn) fn(c, arg);
  nc_call_unref(c); /* the close batch's reference */
}

void nc_call_on_send_event(nc_call *c, bool ok) {
  pthread_mutex_lock(&c->mu);
  bool was_status = c->send_has_status;
  c->send_busy = false;
  c->send_has_status = false;
  if (c->send_buf) {
    grpc_byte_buffer_destroy(c->send_buf);
    c->send_buf = NULL;
  }
  nc_send_cb cb = NULL;
  void *arg = NULL;
  if (!was_status) {
    cb = c->send_cb;
    arg = c->send_arg;
    c->send_cb = NULL;
    if (c->fin_pending) {
      c->fin_pending = false;
      if (!ok) atomic_store(&c->cancelled, true);
      start_status(c, c->fin_code, c->fin_msg);
    }
  }
  pthread_mutex_unlock(&c->mu);
  if (cb) cb(c, ok, arg);
  nc_call_unref(c); /* the batch's reference */
}

void nc_call_on_recv_event(nc_call *c, bool ok) {
  pthread_mutex_lock(&c->mu);
  grpc_byte_buffer *bb = c->recv_buf;
  c->recv_buf = NULL;
  c->recv_busy = false;
  nc_recv_cb cb = c->recv_cb;
  void *arg = c->recv_arg;
  c->recv_cb = NULL;
  pthread_mutex_unlock(&c->mu);
  if (cb) {
    if (!ok) {
      cb(c, NULL, NC_ECANCELED, "call ended", arg);
    } else if (!bb) {
      cb(c, NULL, NC_OK, NULL, arg); /* half-close */
    } else {
      size_t len = 0;
      uint8_t *data = nc_flatten(bb, &len);
      c->bytes_in += len;
      char err[256] = "";
      ProtobufCMessage *msg = NULL;
      nc_pb_alloc alloc;
      nc_pb_alloc_init(&alloc, nc_pb_alloc_budget(c->m->max_request_bytes));
      int rc = data ? nc_gate_unpack(c->m, data, len, &alloc, &msg, err, sizeof err) : NC_ENOMEM;
      cb(c, msg, rc, rc ? err : NULL, arg);
      if (msg) protobuf_c_message_free_unpacked(msg, &alloc.base);
      free(data);
    }
  }
  if (bb) grpc_byte_buffer_destroy(bb);
  nc_call_unref(c); /* the batch's reference */
}

int nc_call_wake(nc_call *c, nc_wake_fn fn, void *arg) {
  pthread_mutex_lock(&c->mu);
  int rc = NC_OK;
  if (c->finished) rc = NC_ESTATE;
  else if (atomic_load(&c->cancelled)) rc = NC_ECANCELED;
  else if (!c->wake_busy) {
    c->wake_fn = fn;
    c->wake_arg = arg;
    c->wake_busy = true;
    rc = start_batch(c, NULL, 0, &c->t_wake);
    if (rc) c->wake_busy = false;
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

void nc_call_on_wake_event(nc_call *c, bool ok) {
  (void)ok;
  pthread_mutex_lock(&c->mu);
  c->wake_busy = false;
  nc_wake_fn fn = c->wake_fn;
  void *arg = c->wake_arg;
  c->wake_fn = NULL;
  bool run = !c->finished;
  pthread_mutex_unlock(&c->mu);
  if (fn && run) fn(c, arg);
  nc_call_unref(c); /* the batch's reference */
}
