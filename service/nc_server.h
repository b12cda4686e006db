/* nc_server.h — nanochatd's gRPC server on the gRPC C core: lifecycle for main.c.
 *
 * nc_server_create   grpc_init, channel args (faults.md §4.1), credentials (insecure or TLS),
 *                    one registered method per RPC-table row, bind; nothing runs yet.
 * nc_server_start    starts CQ threads, the worker pool and the timer, posts requests.
 * nc_server_shutdown graceful stop: drain hooks run (e.g. health → NOT_SERVING, watch streams
 *                    end), no new calls are accepted, in-flight calls get `grace_ms` to
 *                    finish, then every remaining call is cancelled; waits for every handler
 *                    and stream to finish, then stops all threads.
 * nc_server_free     destroys everything, grpc_shutdown.
 *
 * Channel args: max receive 4 MiB, max send 16 MiB, max metadata 16 KiB, handshake timeout
 * 10 s, keepalive 60 s / 20 s, min ping interval without data 30 s, 2 ping strikes,
 * max connection idle 5 min, `max_streams` concurrent streams per connection, a 512 MiB
 * resource quota.
 */
#ifndef NC_SERVER_H
#define NC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nc_app.h"
#include "nc_auth.h"
#include "nc_config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nc_server nc_server;

typedef struct nc_server_opts {
  const nc_config *cfg;   /* listen, tls_*, cq_threads, workers, worker_queue, max_streams */
  const nc_auth *auth;    /* must outlive the server */
  nc_app *app;            /* must outlive the server; handlers see it via nc_call_app */
} nc_server_opts;

/* Creates and binds the server. Returns NC_OK; NC_EINVAL (bad listen address, unreadable or
 * group/world-readable TLS key), NC_EIO (TLS files unreadable), NC_ENOTREADY (cannot bind),
 * NC_EINTERNAL. err[errlen] explains. On failure nothing is left allocated. */
int nc_server_create(const nc_server_opts *o, nc_server **out, char *err, size_t errlen);

/* Registers fn(arg) to run once, on the thread calling nc_server_shutdown, when shutdown
 * starts (before the grace period). Call before nc_server_start. NC_OK or NC_EFULL. */
typedef void (*nc_drain_fn)(void *arg);
int nc_server_on_drain(nc_server *s, nc_drain_fn fn, void *arg);

/* Starts serving. NC_OK or NC_EINTERNAL / NC_ENOMEM. */
int nc_server_start(nc_server *s);

/* The bound TCP port (the real one when the listen port was 0); -1 for unix sockets. */
int nc_server_port(const nc_server *s);

/* Calls alive right now (accepted and not yet destroyed), including the caller's own. */
unsigned nc_server_calls_in_flight(const nc_server *s);

/* The CQ threads' load rule (nc_server.c, "Which CQ threads poll"): whether a load window of
 * wall_ms in which the CQ threads used cq_cpu_ns of CPU and handled `events` completion-queue
 * events, with `calls` calls alive, makes every CQ thread poll: calls overlap (>= 2) and the
 * CPU reached 20% of one core or the events 100 per 10 ms. Pure; exposed for its tests. */
bool nc_server_load_busy(int64_t cq_cpu_ns, int64_t events, int64_t wall_ms, unsigned calls);

/* True once shutdown started. */
bool nc_server_draining(const nc_server *s);

/* Graceful shutdown (see above). Returns NC_OK when everything stopped cleanly, NC_ETIMEDOUT
 * when calls were still alive 10 s after they were cancelled (the process should then exit
 * non-zero without freeing the server). Call once. */
int nc_server_shutdown(nc_server *s, int grace_ms);

/* Frees a server that was never started, or was shut down with NC_OK. NULL is a no-op. */
void nc_server_free(nc_server *s);

#ifdef __cplusplus
}
#endif
#endif /* NC_SERVER_H */
