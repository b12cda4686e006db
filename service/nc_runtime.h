/* nc_runtime.h — INTERNAL to nc_server.c and nc_call.c: the structures of the gRPC runtime.
 * Handlers use nc_call.h; main.c uses nc_server.h.
 *
 * Threads: CQ threads sharing one completion queue (CQ): one polls (the duty rotates) and
 * the others join while calls overlap (nc_server.c), so events of one call may be handled
 * by different CQ threads, one after the other or at the same time (call state is under
 * nc_call.mu); a worker pool for slow handlers, a timer thread for default deadlines, and
 * the main thread (signals, shutdown).
 *
 * Call reference counting: a call is destroyed when its count reaches zero. References:
 *   +1 the handler's, from creation until the call is finished (nc_call_finish/reply);
 *   +1 per batch in flight (close, send/status, recv), dropped when its CQ event is handled;
 *   +1 while a default-deadline timer is armed;
 *   +1 around every handler invocation (so the runtime can look at the call afterwards);
 *   +1 per nc_call_ref.
 * Lock order: module locks (e.g. the health registry) before nc_call.mu; nc_call.mu is never
 * held while user callbacks run or while another call's lock is taken.
 */
#ifndef NC_RUNTIME_H
#define NC_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>

#include "nc_call.h"
#include "nc_gate.h"
#include "nc_pool.h"
#include "nc_server.h"
#include "nc_timer.h"
#include "nc_validate.h"

enum nc_tag_kind {
  NC_TAG_REQUEST = 1,   /* a posted request_call completed: a new call (or shutdown) */
  NC_TAG_CLOSE,         /* RECV_CLOSE_ON_SERVER: the call is over */
  NC_TAG_SEND,          /* a SEND_MESSAGE and/or SEND_STATUS batch completed */
  NC_TAG_RECV,          /* RECV_MESSAGE completed */
  NC_TAG_SHUTDOWN,      /* grpc_server_shutdown_and_notify completed */
  NC_TAG_WAKE,          /* an empty batch posted by nc_call_wake */
};

typedef struct nc_tag {
  int kind;
  void *obj;
} nc_tag;

/* One posted grpc_server_request_(registered_)call, re-armed after every new call. */
typedef struct nc_req_slot {
  nc_tag tag;
  struct nc_server *srv;
  const nc_rpc_method *m;         /* NULL: the generic request (unregistered methods) */
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_byte_buffer *payload;
  grpc_call_details details;      /* generic only */
  bool armed;
} nc_req_slot;

struct nc_call {
  nc_tag t_close, t_send, t_recv, t_wake;
  struct nc_server *srv;
  grpc_call *gc;
  const nc_rpc_method *m;         /* NULL: unknown method */
  char unknown_path[128];         /* sanitised path of an unknown method (logs) */
  grpc_metadata_array md;         /* request metadata; slices live until grpc_call_unref */
  grpc_byte_buffer *payload;      /* initial request message, freed once unpacked */
  ProtobufCMessage *req;
  nc_pb_alloc alloc;
  pthread_mutex_t mu;
  pthread_cond_t cv;              /* send_sync waiters */
  atomic_int refs;
  atomic_bool cancelled;
  nc_scope scope;
  int64_t start_mono_us;
  int64_t deadline_ms;            /* effective, CLOCK_MONOTONIC ms; INT64_MAX: none */
  bool slot_held;
  bool timer_armed;
  nc_timer_node timer;
  /* protected by mu */
  bool closed;                    /* RECV_CLOSE completed */
  int close_cancelled;            /* written by the core for RECV_CLOSE_ON_SERVER */
  bool finished;                  /* reply/finish was called */
  bool status_started;            /* the status batch was started */
  bool initial_md_sent;
  bool send_busy;                 /* a SEND_MESSAGE (or status) batch is in flight */
  bool send_has_status;
  grpc_byte_buffer *send_buf;
  nc_send_cb send_cb;
  void *send_arg;
  bool fin_pending;               /* finish requested while a send was in flight */
  grpc_status_code fin_code;
  char fin_msg[512];
  grpc_slice status_slice;        /* status details, kept until the status batch completes */
  bool status_slice_set;
  bool recv_busy;
  grpc_byte_buffer *recv_buf;
  nc_recv_cb recv_cb;
  void *recv_arg;
  bool wake_busy;                 /* an nc_call_wake batch is queued */
  nc_wake_fn wake_fn;
  void *wake_arg;
  nc_cancel_fn cancel_fn;
  void *cancel_arg;
  void *data;
  void (*data_free)(void *);
  grpc_status_code final_code;    /* for the access log */
  uint64_t bytes_in, bytes_out;
};

typedef struct nc_drain_hook {
  nc_drain_fn fn;
  void *arg;
} nc_drain_hook;

#define NC_MAX_DRAIN_HOOKS 16

/* One CQ thread's load window (written only by that thread; nc_server.c note_load). */
typedef struct nc_cq_load {
  int64_t since_ms, cpu_ns, events;
} nc_cq_load;

struct nc_server {
  grpc_server *gs;
  grpc_completion_queue *cq;      /* shared by the CQ threads */
  int n_threads;                  /* CQ threads (cfg cq_threads) */
  int n_started;
  pthread_t *cq_threads;
  bool threads_started;
  pthread_mutex_t park_mu;        /* CQ threads off duty sleep on park_cv (nc_server.c) */
  pthread_cond_t park_cv;
  atomic_bool all_poll;           /* busy: every CQ thread polls */
  atomic_llong busy_until_ms;     /* CLOCK_MONOTONIC ms: all_poll until then */
  nc_cq_load *cq_load;            /* [n_threads]: each CQ thread's own load window */
  atomic_llong cq_cpu_ns;         /* CPU the CQ threads used (summed per window) */
  atomic_llong load_since_ms;     /* start of the server's load window */
  atomic_llong load_cpu_mark;     /* cq_cpu_ns at that start */
  atomic_llong cq_events;         /* events the CQ threads handled (summed per window) */
  atomic_llong load_events_mark;  /* cq_events at that start */
  atomic_int duty;                /* the CQ thread that polls when not busy */
  atomic_llong duty_since_ms;
  bool polling_stop;              /* under park_mu: shutdown, every thread polls */
  void *rm[64];                   /* registered-method handles, by row */
  nc_req_slot *slots;
  int n_slots;
  nc_gate gate;
  atomic_uint inflight_per_method[64];
  nc_pool *pool;
  nc_timer *timer;
  nc_app *app;
  const nc_config *cfg;
  int port;
  atomic_uint calls;              /* live nc_call objects (the calls-in-flight gauge) */
  atomic_bool draining;
  nc_tag shutdown_tag;
  pthread_mutex_t mu;             /* shutdown state, drain hooks, calls==0 waits */
  pthread_cond_t cv;              /* CLOCK_MONOTONIC */
  bool shutdown_notified;
  bool shutdown_started;
  nc_drain_hook drain[NC_MAX_DRAIN_HOOKS];
  int n_drain;
};

/* nc_call.c, used by nc_server.c */
nc_call *nc_call_new(struct nc_server *s, grpc_call *gc);
void nc_call_on_close_event(nc_call *c, bool ok);
void nc_call_on_send_event(nc_call *c, bool ok);
void nc_call_on_recv_event(nc_call *c, bool ok);
void nc_call_on_wake_event(nc_call *c, bool ok);
/* Finishes with a raw gRPC status (unknown methods). Same contract as nc_call_finish. */
int nc_call_finish_code(nc_call *c, grpc_status_code code, const char *msg);
/* Starts RECV_CLOSE_ON_SERVER (first batch of every call). NC_OK or NC_EINTERNAL. */
int nc_call_start_close(nc_call *c);
/* Flattens a byte buffer into malloc'ed bytes (*len set); NULL on failure. */
uint8_t *nc_flatten(grpc_byte_buffer *bb, size_t *len);
/* Marks this thread as a CQ thread (nc_on_cq_thread). */
void nc_call_mark_cq_thread(void);

#endif /* NC_RUNTIME_H */
