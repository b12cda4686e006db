/* nc_server.c — nanochatd's gRPC server on the C core: CQ threads, request slots, dispatch
 * through the gate, default deadlines, graceful shutdown (see nc_server.h, nc_runtime.h).
 *
 * One completion queue shared by all CQ threads. Per CQ thread there is one posted request
 * per registered method plus one generic request (unregistered methods are answered
 * UNIMPLEMENTED at once instead of hanging until the client's deadline). Each request slot is
 * re-armed as soon as it delivered a call.
 *
 * Which CQ threads poll: while the server is busy all of them, otherwise only the one "on
 * duty", and the others sleep on a condition variable. Busy = calls overlap and, within the
 * last NC_LOAD_WINDOW_MS, the CQ threads together used NC_BUSY_UTIL_PCT of one core or handled
 * NC_BUSY_EVENTS events (it lingers NC_BUSY_LINGER_MS). Every thread waiting in the gRPC core is
 * a poller, and the core hands the poller role to another waiting thread after each event (a
 * futex wake-up and two context switches per event): that doubles the CPU cost of a lone
 * sequential caller, and when "busy" meant "calls overlap" it added a third to a server
 * streaming tokens to 16 clients (d4, 2 threads: 7.1-7.8 us of CQ CPU and 0.43 context
 * switches per token; 5.4 and 0.18 with one polling thread; 5.8-5.9 and 0.21-0.28 with this
 * rule), whose 16 calls overlap all the time but keep one thread ~3% busy with ~50 events per
 * flush period. Thousands of completions per window (unary load, a pipelined high-rate stream
 * such as a Train/Status replay, which needs little CQ CPU per message) do get the other
 * pollers (bench_grpc: the same ratios to grpc++ as the overlap rule, same run). The duty
 * passes to the next thread every NC_DUTY_MS: on a machine shared with other busy processes
 * the kernel gives each runnable thread a fair share, and one thread doing all the work would
 * be held to one share (measured: half the calls/s and 3 ms p99 at one caller with the other
 * cores busy); rotating spreads the work over the threads at the cost of one wake-up per
 * NC_DUTY_MS. Any one polling thread can serve everything.
 */
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nc_err.h"
#include "nc_log.h"
#include "nc_rpc_table.h"
#include "nc_runtime.h"
#include "nc_status.h"

int64_t nc_now_mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int64_t nc_now_unix_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

#define NC_BUSY_LINGER_MS 30   /* all CQ threads poll until this long after the last busy window */
#define NC_LOAD_WINDOW_MS 10   /* CQ threads' CPU is summed over windows this long */
#define NC_BUSY_UTIL_PCT 20    /* busy: the CQ threads used this much of one core in a window, */
#define NC_BUSY_EVENTS 100     /* or handled this many events in one */
#define NC_IDLE_POLL_MS 50     /* how often a thread off duty checks whether to sleep */
#define NC_DUTY_MS 2           /* the duty moves to the next CQ thread this often */

static int64_t now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* ---- request slots ---------------------------------------------------------------------------- */

static int arm(nc_req_slot *r) {
  nc_server *s = r->srv;
  grpc_completion_queue *cq = s->cq;
  grpc_call_error e;
  r->call = NULL;
  r->payload = NULL;
  grpc_metadata_array_init(&r->md);
  if (r->m) {
    const nc_rpc_method *m = r->m;
    bool payload = !(m->flags & NC_RPC_CLIENT_STREAMING);
    e = grpc_server_request_registered_call(s->gs, s->rm[m - nc_rpc_methods], &r->call,
                                            &r->deadline, &r->md, payload ? &r->payload : NULL,
                                            cq, cq, &r->tag);
  } else {
    grpc_call_details_init(&r->details);
    e = grpc_server_request_call(s->gs, &r->call, &r->details, &r->md, cq, cq, &r->tag);
  }
  if (e != GRPC_CALL_OK) {
    grpc_metadata_array_destroy(&r->md);
    if (!r->m) grpc_call_details_destroy(&r->details);
    r->armed = false;
    return NC_EINTERNAL;
  }
  r->armed = true;
  return NC_OK;
}

/* ---- deadlines ------------------------------------------------------------------------------- */

static void deadline_fire(void *arg) {
  nc_call *c = arg;
  pthread_mutex_lock(&c->mu);
  bool live = !c->closed;
  c->timer_armed = false;
  pthread_mutex_unlock(&c->mu);
  if (live) grpc_call_cancel_with_status(c->gc, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded", NULL);
  nc_call_unref(c); /* the timer's reference */
}

/* ---- which CQ threads poll ---------------------------------------------------------------- */

static void set_busy(nc_server *s, int64_t now_ms) {
  atomic_store_explicit(&s->busy_until_ms, now_ms + NC_BUSY_LINGER_MS, memory_order_relaxed);
  if (atomic_load_explicit(&s->all_poll, memory_order_relaxed)) return;
  pthread_mutex_lock(&s->park_mu);
  atomic_store(&s->all_poll, true);
  pthread_cond_broadcast(&s->park_cv);
  pthread_mutex_unlock(&s->park_mu);
}

static int64_t thread_cpu_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* After an event on CQ thread idx: every NC_LOAD_WINDOW_MS of its own the thread adds the CPU
 * it used and the events it handled to s->cq_cpu_ns / s->cq_events; every NC_LOAD_WINDOW_MS of
 * the server's, one thread compares the sums with the wall time and marks the server busy
 * (all threads poll) when either reached its threshold while calls overlap. Costs one clock
 * read per event and one thread-CPU read per window. Idle threads add nothing. */
static void note_load(nc_server *s, int idx, int64_t now_ms) {
  if (s->n_threads < 2) return;
  nc_cq_load *l = &s->cq_load[idx];
  l->events++;
  if (now_ms - l->since_ms < NC_LOAD_WINDOW_MS) return;
  int64_t cpu = thread_cpu_ns();
  if (l->since_ms) atomic_fetch_add_explicit(&s->cq_cpu_ns, cpu - l->cpu_ns, memory_order_relaxed);
  atomic_fetch_add_explicit(&s->cq_events, l->events, memory_order_relaxed);
  l->since_ms = now_ms;
  l->cpu_ns = cpu;
  l->events = 0;
  long long since = atomic_load_explicit(&s->load_since_ms, memory_order_relaxed);
  if (now_ms - since < NC_LOAD_WINDOW_MS ||
      !atomic_compare_exchange_strong(&s->load_since_ms, &since, now_ms))
    return;
  long long cpu_all = atomic_load_explicit(&s->cq_cpu_ns, memory_order_relaxed);
  long long used = cpu_all - atomic_exchange_explicit(&s->load_cpu_mark, cpu_all, memory_order_relaxed);
  long long ev_all = atomic_load_explicit(&s->cq_events, memory_order_relaxed);
  long long events = ev_all - atomic_exchange_explicit(&s->load_events_mark, ev_all, memory_order_relaxed);
  if (nc_server_load_busy(used, events, now_ms - since, atomic_load(&s->calls))) set_busy(s, now_ms);
}

bool nc_server_load_busy(int64_t cq_cpu_ns, int64_t events, int64_t wall_ms, unsigned calls) {
  if (calls < 2 || wall_ms <= 0) return false;
  return cq_cpu_ns * 100 >= wall_ms * 1000000LL * NC_BUSY_UTIL_PCT ||
         events * NC_LOAD_WINDOW_MS >= wall_ms * NC_BUSY_EVENTS;
}

static bool may_poll(nc_server *s, int idx) {
  return atomic_load(&s->all_poll) || atomic_load(&s->duty) == idx || s->polling_stop;
}

/* Before polling: returns at once when thread idx may poll, else sleeps until it may. */
static void wait_turn(nc_server *s, int idx) {
  if (s->n_threads < 2) return;
  if (atomic_load(&s->all_poll) &&
      nc_now_mono_ms() >= atomic_load_explicit(&s->busy_until_ms, memory_order_relaxed))
    atomic_store(&s->all_poll, false); /* not busy any more */
  if (atomic_load(&s->all_poll) || atomic_load(&s->duty) == idx) return;
  pthread_mutex_lock(&s->park_mu);
  while (!may_poll(s, idx)) pthread_cond_wait(&s->park_cv, &s->park_mu);
  pthread_mutex_unlock(&s->park_mu);
}

/* After an event on the thread on duty: passes the duty on every NC_DUTY_MS. */
static void maybe_rotate(nc_server *s, int idx, int64_t now) {
  if (s->n_threads < 2 || atomic_load(&s->duty) != idx) return;
  if (now - atomic_load_explicit(&s->duty_since_ms, memory_order_relaxed) < NC_DUTY_MS) return;
  atomic_store_explicit(&s->duty_since_ms, now, memory_order_relaxed);
  pthread_mutex_lock(&s->park_mu);
  atomic_store(&s->duty, (idx + 1) % s->n_threads);
  pthread_cond_broadcast(&s->park_cv);
  pthread_mutex_unlock(&s->park_mu);
}

/* ---- dispatch ------------------------------------------------------------------------------------ */

static void run_handler(nc_call *c) {
  nc_call_ref(c);
  int rc = c->m->handler(c, c->req);
  if (rc < 0) {
    pthread_mutex_lock(&c->mu);
    bool fin = c->finished;
    pthread_mutex_unlock(&c->mu);
    if (!fin) nc_call_finish(c, rc, "%s", nc_strerror(rc));
  }
  nc_call_unref(c);
}

static void pool_task(void *arg) { run_handler(arg); }

static void log_access(nc_call *c) {
  if (!nc_log_enabled(NC_LOG_INFO)) return;
  double ms = (double)(now_us() - c->start_mono_us) / 1000.0;
  nc_log(NC_LOG_INFO, "rpc %s status=%s in=%llu out=%llu ms=%.2f", c->m ? c->m->path : c->unknown_path,
         nc_status_name(c->final_code), (unsigned long long)c->bytes_in,
         (unsigned long long)c->bytes_out, ms);
}

void nc_server_call_done(struct nc_server *s, nc_call *c) {
  if (c->slot_held && c->m) nc_gate_release(&s->gate, c->m);
  log_access(c);
}

/* A new registered call from slot r (ownership of call/md/payload moves to the nc_call). */
static void new_call(nc_req_slot *r) {
  nc_server *s = r->srv;
  nc_call *c = nc_call_new(s, r->call);
  if (!c) {
    grpc_call_cancel_with_status(r->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    grpc_call_unref(r->call);
    grpc_metadata_array_destroy(&r->md);
    if (r->payload) grpc_byte_buffer_destroy(r->payload);
    return;
  }
  c->m = r->m;
  c->md = r->md; /* moved */
  c->payload = r->payload;
  c->start_mono_us = now_us();
  nc_pb_alloc_init(&c->alloc, nc_pb_alloc_budget(c->m->max_request_bytes));

  /* effective deadline */
  int64_t now = nc_now_mono_ms();
  bool client_deadline = gpr_time_cmp(r->deadline, gpr_inf_future(r->deadline.clock_type)) != 0;
  if (client_deadline) {
    gpr_timespec left = gpr_time_sub(r->deadline, gpr_now(r->deadline.clock_type));
    int64_t ms = gpr_time_to_millis(left);
    c->deadline_ms = now + (ms < 0 ? 0 : ms);
  } else if (c->m->default_deadline_ms) {
    c->deadline_ms = now + c->m->default_deadline_ms;
  }

  if (nc_call_start_close(c) != NC_OK) {
    nc_call_finish_code(c, GRPC_STATUS_INTERNAL, "internal error");
    return;
  }
  if (!client_deadline && c->m->default_deadline_ms) {
    pthread_mutex_lock(&c->mu);
    nc_call_ref(c);
    c->timer_armed = true;
    nc_timer_add(s->timer, &c->timer, c->deadline_ms, deadline_fire, c);
    pthread_mutex_unlock(&c->mu);
  }

  /* the gate */
  nc_gate_in in;
  memset(&in, 0, sizeof in);
  in.m = c->m;
  for (size_t i = 0; i < c->md.count; i++) {
    if (grpc_slice_str_cmp(c->md.metadata[i].key, "authorization") == 0) {
      if (in.n_auth == 0) {
        in.auth = (const char *)GRPC_SLICE_START_PTR(c->md.metadata[i].value);
        in.auth_len = GRPC_SLICE_LENGTH(c->md.metadata[i].value);
      }
      in.n_auth++;
    }
  }
  uint8_t *flat = NULL;
  if (c->payload) {
    flat = nc_flatten(c->payload, &in.payload_len);
    grpc_byte_buffer_destroy(c->payload);
    c->payload = NULL;
    if (!flat) {
      nc_call_finish(c, NC_ENOMEM, "out of memory");
      return;
    }
    in.has_payload = true;
    in.payload = flat;
    c->bytes_in = in.payload_len;
  }
  in.now_ms = nc_now_mono_ms();
  in.deadline_ms = c->deadline_ms;
  nc_gate_out out;
  int rc = nc_gate_admit(&s->gate, &in, &c->alloc, &out);
  free(flat);
  c->scope = out.scope;
  if (rc != NC_OK) {
    nc_call_finish(c, rc, "%s", out.msg);
    return;
  }
  c->req = out.req;
  c->slot_held = out.slot_held;
  if (c->m->flags & NC_RPC_SLOW) {
    int prc = nc_pool_submit(s->pool, pool_task, c);
    if (prc != NC_OK)
      nc_call_finish(c, prc == NC_EBUSY ? NC_EBUSY : NC_ENOTREADY,
                     prc == NC_EBUSY ? "server busy: worker queue full" : "server shutting down");
  } else {
    run_handler(c);
  }
}

/* An unregistered method: answer UNIMPLEMENTED. */
static void generic_call(nc_req_slot *r) {
  nc_server *s = r->srv;
  nc_call *c = nc_call_new(s, r->call);
  size_t plen = GRPC_SLICE_LENGTH(r->details.method);
  if (c) {
    c->md = r->md;
    c->start_mono_us = now_us();
    nc_log_sanitize(c->unknown_path, sizeof c->unknown_path,
                    (const char *)GRPC_SLICE_START_PTR(r->details.method), plen);
    if (nc_call_start_close(c) == NC_OK) {
      nc_call_finish_code(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method");
    } else {
      nc_call_finish_code(c, GRPC_STATUS_INTERNAL, "internal error");
    }
  } else {
    grpc_call_cancel_with_status(r->call, GRPC_STATUS_UNIMPLEMENTED, "unknown method", NULL);
    grpc_call_unref(r->call);
    grpc_metadata_array_destroy(&r->md);
  }
  grpc_call_details_destroy(&r->details);
}

static void on_request(nc_req_slot *r, bool ok) {
  nc_server *s = r->srv;
  r->armed = false;
  if (!ok) { /* the server is shutting down */
    grpc_metadata_array_destroy(&r->md);
    if (!r->m) grpc_call_details_destroy(&r->details);
    return;
  }
  nc_req_slot taken = *r;
  /* re-arm first so another call of this method can arrive while this one is handled */
  if (!atomic_load(&s->draining)) arm(r);
  if (taken.m) new_call(&taken);
  else generic_call(&taken);
}

static void *cq_main(void *arg) {
  nc_server *s = ((void **)arg)[0];
  int idx = (int)(intptr_t)((void **)arg)[1];
  free(arg);
  pthread_setname_np(pthread_self(), "nc-cq");
  nc_call_mark_cq_thread();
  grpc_completion_queue *cq = s->cq;
  for (;;) {
    wait_turn(s, idx);
    /* the thread on duty may wait for ever (only it passes the duty on); the others wake up
     * now and then to see whether they should sleep */
    bool duty = s->n_threads < 2 || atomic_load(&s->duty) == idx;
    gpr_timespec until = duty ? gpr_inf_future(GPR_CLOCK_MONOTONIC)
                              : gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                             gpr_time_from_millis(NC_IDLE_POLL_MS, GPR_TIMESPAN));
    grpc_event ev = grpc_completion_queue_next(cq, until, NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type != GRPC_OP_COMPLETE) continue;
    nc_tag *t = ev.tag;
    switch (t->kind) {
      case NC_TAG_REQUEST: on_request((nc_req_slot *)t->obj, ev.success != 0); break;
      case NC_TAG_CLOSE: nc_call_on_close_event(t->obj, ev.success != 0); break;
      case NC_TAG_SEND: nc_call_on_send_event(t->obj, ev.success != 0); break;
      case NC_TAG_RECV: nc_call_on_recv_event(t->obj, ev.success != 0); break;
      case NC_TAG_WAKE: nc_call_on_wake_event(t->obj, ev.success != 0); break;
      case NC_TAG_SHUTDOWN:
        pthread_mutex_lock(&s->mu);
        s->shutdown_notified = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        break;
      default: break;
    }
    int64_t now_ms = nc_now_mono_ms();
    note_load(s, idx, now_ms);
    maybe_rotate(s, idx, now_ms);
  }
  return NULL;
}

/* ---- lifecycle ---------------------------------------------------------------------------------- */

static char *read_file(const char *path, size_t cap) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = malloc(cap + 1);
  size_t n = buf ? fread(buf, 1, cap, f) : 0;
  int more = fgetc(f) != EOF;
  fclose(f);
  if (!buf || more) {
    free(buf);
    return NULL;
  }
  buf[n] = 0;
  return buf;
}

int nc_server_create(const nc_server_opts *o, nc_server **out, char *err, size_t errlen) {
  if (!o || !o->cfg || !o->auth || !o->app || !out) return NC_EINVAL;
  char terr[256];
  if (nc_rpc_table_check(terr, sizeof terr) != NC_OK) {
    snprintf(err, errlen, "RPC table: %s", terr);
    return NC_EINTERNAL;
  }
  nc_listen_addr la;
  if (nc_listen_parse(o->cfg->listen, &la) != NC_OK) {
    snprintf(err, errlen, "--listen %s: expected HOST:PORT", o->cfg->listen);
    return NC_EINVAL;
  }
  nc_server *s = calloc(1, sizeof *s);
  if (!s) return NC_ENOMEM;
  s->cfg = o->cfg;
  s->app = o->app;
  pthread_mutex_init(&s->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&s->park_mu, NULL);
  pthread_cond_init(&s->park_cv, NULL);
  atomic_init(&s->all_poll, false);
  atomic_init(&s->busy_until_ms, 0);
  atomic_init(&s->duty, 0);
  atomic_init(&s->duty_since_ms, 0);
  atomic_init(&s->cq_cpu_ns, 0);
  atomic_init(&s->load_since_ms, 0);
  atomic_init(&s->load_cpu_mark, 0);
  atomic_init(&s->cq_events, 0);
  atomic_init(&s->load_events_mark, 0);
  for (unsigned i = 0; i < NC_RPC_COUNT; i++) atomic_init(&s->inflight_per_method[i], 0);
  nc_gate_init(&s->gate, o->auth, o->app, s->inflight_per_method);

  grpc_init();
  grpc_arg args[12];
  int na = 0;
#define ARG_INT(k, v)                                   \
  do {                                                  \
    args[na].type = GRPC_ARG_INTEGER;                   \
    args[na].key = (char *)(k);                         \
    args[na].value.integer = (v);                       \
    na++;                                               \
  } while (0)
  ARG_INT(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 4 << 20);
  ARG_INT(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, (int)NC_MAX_SEND_BYTES);
  ARG_INT(GRPC_ARG_MAX_METADATA_SIZE, 16 << 10);
  ARG_INT(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 10000);
  ARG_INT(GRPC_ARG_KEEPALIVE_TIME_MS, 60000);
  ARG_INT(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  ARG_INT(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 30000);
  ARG_INT(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
  ARG_INT(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 5 * 60 * 1000);
  ARG_INT(GRPC_ARG_MAX_CONCURRENT_STREAMS, o->cfg->max_streams > 0 ? o->cfg->max_streams : 32);
#undef ARG_INT
  grpc_channel_args ch = {(size_t)na, args};
  s->gs = grpc_server_create(&ch, NULL);
  s->n_threads = o->cfg->cq_threads > 0 ? o->cfg->cq_threads : 1;
  s->cq_threads = calloc((size_t)s->n_threads, sizeof *s->cq_threads);
  s->cq_load = calloc((size_t)s->n_threads, sizeof *s->cq_load);
  if (!s->gs || !s->cq_threads || !s->cq_load) goto oom;
  s->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(s->gs, s->cq, NULL);
  for (unsigned i = 0; i < NC_RPC_COUNT; i++) {
    const nc_rpc_method *m = &nc_rpc_methods[i];
    s->rm[i] = grpc_server_register_method(
        s->gs, m->path, NULL,
        (m->flags & NC_RPC_CLIENT_STREAMING) ? GRPC_SRM_PAYLOAD_NONE : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER,
        0);
    if (!s->rm[i]) {
      snprintf(err, errlen, "cannot register %s", m->path);
      goto fail;
    }
  }
  grpc_server_credentials *creds;
  if (o->cfg->tls_cert[0]) {
    char *cert = read_file(o->cfg->tls_cert, 1 << 20), *key = read_file(o->cfg->tls_key, 1 << 20);
    if (!cert || !key) {
      free(cert);
      free(key);
      snprintf(err, errlen, "cannot read --tls-cert/--tls-key");
      grpc_server_destroy(s->gs);
      s->gs = NULL;
      goto fail_io;
    }
    grpc_ssl_pem_key_cert_pair pair = {key, cert};
    creds = grpc_ssl_server_credentials_create_ex(NULL, &pair, 1,
                                                  GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE, NULL);
    free(cert);
    free(key);
  } else {
    creds = grpc_insecure_server_credentials_create();
  }
  s->port = grpc_server_add_http2_port(s->gs, o->cfg->listen, creds);
  grpc_server_credentials_release(creds);
  if (s->port <= 0) {
    snprintf(err, errlen, "cannot bind %s", o->cfg->listen);
    goto fail_bind;
  }
  if (la.unix_socket) s->port = -1;
  *out = s;
  return NC_OK;
oom:
  snprintf(err, errlen, "out of memory");
fail:
  nc_server_free(s);
  return NC_EINTERNAL;
fail_io:
  nc_server_free(s);
  return NC_EIO;
fail_bind:
  nc_server_free(s);
  return NC_ENOTREADY;
}

int nc_server_on_drain(nc_server *s, nc_drain_fn fn, void *arg) {
  if (s->n_drain >= NC_MAX_DRAIN_HOOKS) return NC_EFULL;
  s->drain[s->n_drain].fn = fn;
  s->drain[s->n_drain].arg = arg;
  s->n_drain++;
  return NC_OK;
}

int nc_server_start(nc_server *s) {
  int rc = nc_pool_create(s->cfg->workers > 0 ? s->cfg->workers : 4,
                          s->cfg->worker_queue > 0 ? s->cfg->worker_queue : 256, &s->pool);
  if (rc) return rc;
  rc = nc_timer_create(&s->timer);
  if (rc) return rc;
  grpc_server_start(s->gs);
  s->n_slots = s->n_threads * ((int)NC_RPC_COUNT + 1);
  s->slots = calloc((size_t)s->n_slots, sizeof *s->slots);
  if (!s->slots) return NC_ENOMEM;
  for (int q = 0; q < s->n_threads; q++) {
    for (int i = 0; i <= (int)NC_RPC_COUNT; i++) {
      nc_req_slot *r = &s->slots[q * ((int)NC_RPC_COUNT + 1) + i];
      r->tag.kind = NC_TAG_REQUEST;
      r->tag.obj = r;
      r->srv = s;
      r->m = i < (int)NC_RPC_COUNT ? &nc_rpc_methods[i] : NULL;
      if (arm(r) != NC_OK) return NC_EINTERNAL;
    }
  }
  for (int q = 0; q < s->n_threads; q++) {
    void **arg = malloc(2 * sizeof *arg);
    if (!arg) return NC_ENOMEM;
    arg[0] = s;
    arg[1] = (void *)(intptr_t)q;
    if (pthread_create(&s->cq_threads[q], NULL, cq_main, arg) != 0) {
      free(arg);
      return NC_EINTERNAL;
    }
    s->n_started = q + 1;
  }
  s->threads_started = true;
  return NC_OK;
}

int nc_server_port(const nc_server *s) { return s->port; }
unsigned nc_server_calls_in_flight(const nc_server *s) { return atomic_load(&s->calls); }
bool nc_server_draining(const nc_server *s) { return atomic_load(&s->draining); }

/* Waits until no call is alive or the deadline (CLOCK_MONOTONIC ms) passes. */
static bool wait_calls(nc_server *s, int64_t until_ms) {
  pthread_mutex_lock(&s->mu);
  while (atomic_load(&s->calls) > 0 && nc_now_mono_ms() < until_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += 20 * 1000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
  }
  bool done = atomic_load(&s->calls) == 0;
  pthread_mutex_unlock(&s->mu);
  return done;
}

int nc_server_shutdown(nc_server *s, int grace_ms) {
  pthread_mutex_lock(&s->mu);
  if (s->shutdown_started) {
    pthread_mutex_unlock(&s->mu);
    return NC_ESTATE;
  }
  s->shutdown_started = true;
  pthread_mutex_unlock(&s->mu);
  atomic_store(&s->draining, true);
  for (int i = 0; i < s->n_drain; i++) s->drain[i].fn(s->drain[i].arg);
  s->shutdown_tag.kind = NC_TAG_SHUTDOWN;
  s->shutdown_tag.obj = s;
  grpc_server_shutdown_and_notify(s->gs, s->cq, &s->shutdown_tag);
  int64_t until = nc_now_mono_ms() + (grace_ms > 0 ? grace_ms : 0);
  bool clean = wait_calls(s, until);
  if (!clean) {
    nc_log(NC_LOG_WARN, "shutdown: %u calls still running after %d ms; cancelling them",
           nc_server_calls_in_flight(s), grace_ms);
    grpc_server_cancel_all_calls(s->gs);
    clean = wait_calls(s, nc_now_mono_ms() + 10000);
  }
  /* handlers on the pool may still hold calls they finish after cancellation */
  nc_pool_stop(s->pool);
  if (!clean) clean = wait_calls(s, nc_now_mono_ms() + 1000);
  pthread_mutex_lock(&s->mu);
  int64_t until2 = nc_now_mono_ms() + 5000;
  while (!s->shutdown_notified && nc_now_mono_ms() < until2) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += 20 * 1000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
  }
  bool notified = s->shutdown_notified;
  pthread_mutex_unlock(&s->mu);
  if (!clean || !notified) return NC_ETIMEDOUT;
  pthread_mutex_lock(&s->park_mu);
  s->polling_stop = true; /* every CQ thread polls until it sees the queue shut down */
  pthread_cond_broadcast(&s->park_cv);
  pthread_mutex_unlock(&s->park_mu);
  grpc_completion_queue_shutdown(s->cq);
  for (int q = 0; q < s->n_started; q++) pthread_join(s->cq_threads[q], NULL);
  s->threads_started = false;
  return NC_OK;
}

void nc_server_free(nc_server *s) {
  if (!s) return;
  if (s->threads_started) return; /* never started cleanly shut down: leak rather than crash */
  if (s->gs) {
    if (!s->shutdown_started) {
      grpc_server_shutdown_and_notify(s->gs, s->cq, &s->shutdown_tag);
      grpc_server_cancel_all_calls(s->gs);
      /* drain the notification (no CQ threads are running) */
      grpc_completion_queue_shutdown(s->cq);
      for (;;) {
        grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type == GRPC_OP_COMPLETE && ev.tag != &s->shutdown_tag) {
          nc_tag *t = ev.tag;
          if (t->kind == NC_TAG_REQUEST) on_request((nc_req_slot *)t->obj, false);
        }
      }
    }
    grpc_server_destroy(s->gs);
  } else if (s->cq) {
    grpc_completion_queue_shutdown(s->cq);
  }
  if (s->cq) grpc_completion_queue_destroy(s->cq);
  nc_pool_free(s->pool);
  nc_timer_free(s->timer);
  free(s->slots);
  free(s->cq_threads);
  free(s->cq_load);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->park_mu);
  pthread_cond_destroy(&s->park_cv);
  free(s);
  grpc_shutdown();
}
