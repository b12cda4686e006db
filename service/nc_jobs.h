/* nc_jobs.h — the job manager: long work (training, long evals, the test job) as child
 * processes, with a persisted FIFO queue, durable progress events and subscribers.
 *
 * Jobs. A job has an id (16 lowercase hex chars), a kind (nanochat.v1.JobKind), the
 * serialized request of that kind, and a state:
 *
 *     QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED | INTERRUPTED
 *     QUEUED -> CANCELLED
 *
 * Everything is kept in the store (nc_store.h): the JobInfo record, the FIFO queue and the
 * job's events. Every state change is a STATE event (message = the reason, if any) written in
 * the same transaction as the JobInfo, so event 1 is always STATE QUEUED and the last event
 * of a finished job is its final STATE. At most max_running jobs run at once (default 1:
 * training uses every core); others wait in submission order. The queue survives restarts.
 *
 * Processes. A job runs as a child process started with posix_spawn (never fork: the server
 * holds gRPC and LMDB state) following the protocol of nc_jobio.h: only fds 0-3 open, own
 * process group, secrets removed from the environment. A crash of a job never affects the
 * server. The manager's own thread polls the event pipes and the children's pidfds (never a
 * gRPC completion-queue thread), decodes events, assigns seq and time, appends them durably
 * to LMDB (one transaction per batch read from a pipe, also updating JobInfo: progress,
 * metrics, checkpoint; CHECKPOINT metadata lands in the checkpoints database in the same
 * transaction) and only then notifies subscribers.
 *
 * Final states: exit 0 -> SUCCEEDED; non-zero exit -> FAILED with the job's last LOG line as
 * the reason (e.g. "loss diverged") or "exited with code N"; death by signal N -> FAILED
 * "killed by signal N"; protocol error -> FAILED "job protocol error: ..."; a program that
 * cannot be started -> FAILED "cannot start <path>: <errno text>". Cancel sends SIGTERM to the
 * job's process group and SIGKILL after cancel_grace_ms; the job then ends CANCELLED.
 *
 * Restart rule. nc_jobs_start finds jobs left RUNNING by a server that died (crash, kill -9,
 * power loss) and marks them INTERRUPTED with a STATE event ("the server stopped while the
 * job ran"); every event the old server acknowledged is still in the store. Queued jobs stay
 * queued and start. (nc_jobio sets PR_SET_PDEATHSIG, so children of a dead server get
 * SIGTERM and stop.)
 *
 * Shutdown rule (nc_jobs_shutdown, called on SIGTERM of nanochatd): running jobs get SIGTERM
 * (training writes a final checkpoint), SIGKILL after shutdown_grace_ms, and end INTERRUPTED
 * ("server shutdown"), resumable from their last checkpoint; queued jobs stay queued and
 * start when the server starts again.
 *
 * Subscribers (Train.Status). Any number per job, with no per-subscriber queue in the
 * manager: events are durable in the store; a subscriber keeps its own cursor (last seq it
 * delivered), gets a notification callback whenever new events were committed for its job
 * (or the job ended), and then pulls the next batch itself with nc_store_event_range from
 * cursor + 1. A slow gRPC stream therefore never blocks the manager or grows memory; at worst
 * it reads older pages later. Notifications are level-free "doorbells": several commits may
 * produce one callback or several; the subscriber always reads up to what is in the store.
 *
 * Threads. All functions are thread-safe, except nc_jobs_start/nc_jobs_free. Notification
 * callbacks run on the manager thread or on the thread calling nc_jobs_submit/nc_jobs_cancel,
 * with internal locks held: they must be fast and non-blocking and must not call any nc_jobs_*
 * function (set a flag / post a wake-up to the subscriber's own thread instead).
 *
 * Errors: NC_OK or a negative NC_E* code; messages via nc_store_last_error() on the calling
 * thread. */
#ifndef NC_JOBS_H
#define NC_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nc_store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NC_JOBS_KIND_COUNT 8   /* Nanochat__V1__JobKind values 0..7 index nc_jobs_opts.exe */

typedef struct nc_jobs nc_jobs;
typedef struct nc_jobs_sub nc_jobs_sub;

/* Options of nc_jobs_start (by value; zero fields take the defaults). */
typedef struct nc_jobs_opts {
  nc_store *store;                      /* required, borrowed; must outlive the manager */
  const char *data_dir;                 /* required; made absolute; jobs use DIR/jobs/<id>/ */
  /* Program per job kind (index = Nanochat__V1__JobKind); NULL = that kind is unavailable
   * (nc_jobs_submit returns NC_ENOTSUP). Relative paths are resolved at start. */
  const char *exe[NC_JOBS_KIND_COUNT];
  unsigned max_running;                 /* jobs running at once; 0 = 1 */
  unsigned max_queued;                  /* queue length cap (NC_EBUSY beyond); 0 = 64 */
  int cancel_grace_ms;                  /* SIGTERM -> SIGKILL on cancel; 0 = 10000 */
  int shutdown_grace_ms;                /* SIGTERM -> SIGKILL on shutdown; 0 = 10000 */
  /* Environment for children (NULL-terminated "K=V" list, copied); NULL = this process's
   * environment minus secret-looking variables (see nc_jobio.h). */
  const char *const *env;
} nc_jobs_opts;

/* Counters (nc_jobs_get_stats). */
typedef struct nc_jobs_stats {
  uint32_t running, queued;
  uint32_t interrupted_at_start;        /* jobs marked INTERRUPTED by nc_jobs_start */
  uint64_t started, finished;           /* since start */
  uint64_t events;                      /* child events stored since start */
  uint64_t unsaved;                     /* final states not yet written (store full) */
} nc_jobs_stats;

/* Recovers state from the store (RUNNING -> INTERRUPTED, queue repair), starts the manager
 * thread and the queued jobs. *out owns the manager (nc_jobs_free). Errors: NC_EINVAL (no
 * store/data dir), NC_EIO (cannot create DIR/jobs, pipe, thread), store errors. */
int nc_jobs_start(const nc_jobs_opts *o, nc_jobs **out);

/* Stops per the shutdown rule above and joins the manager thread; blocks up to about
 * shutdown_grace_ms. Afterwards submit/cancel return NC_ENOTREADY and subscribers have been
 * notified of the final states; reads still work. Idempotent. */
void nc_jobs_shutdown(nc_jobs *m);

/* nc_jobs_shutdown (if not done) and frees the manager. Subscriptions still registered are
 * dropped (their callbacks are not called again). NULL ok. The store stays open. */
void nc_jobs_free(nc_jobs *m);

/* Queues a job: a new id is written to out_id[17] and the job is stored QUEUED (event 1) in
 * one transaction, then the manager starts it when a slot is free. `request` (borrowed,
 * copied) is the serialized request of `kind`, at most NC_JOBIO_MAX_REQUEST bytes; it is not
 * decoded here. *queue_position (may be NULL) gets the number of queued jobs ahead of it.
 * Errors: NC_EINVAL (kind out of range, request too large), NC_ENOTSUP (no program for the
 * kind), NC_EBUSY (queue full), NC_ENOTREADY (shutting down), NC_EFULL (store full). */
int nc_jobs_submit(nc_jobs *m, Nanochat__V1__JobKind kind, const uint8_t *request,
                   size_t request_len, char out_id[NC_JOB_ID_LEN + 1], uint32_t *queue_position);

/* Cancels a job. Queued: removed from the queue and CANCELLED at once. Running: SIGTERM now,
 * SIGKILL after cancel_grace_ms, CANCELLED when the process is gone (wait with nc_jobs_wait
 * or a subscription). Cancelling a running job twice is fine (no second SIGTERM). *out (may
 * be NULL) gets the JobInfo as stored after the call (nc_store_free_msg).
 * Errors: NC_EINVAL (bad id), NC_ENOTFOUND, NC_ESTATE (already finished: "job ... already
 * SUCCEEDED"), NC_ENOTREADY (shutting down), store errors. */
int nc_jobs_cancel(nc_jobs *m, const char *job_id, Nanochat__V1__JobInfo **out);

/* The job as stored (or, if its final state could not be stored yet because the store is
 * full, that final state). NC_EINVAL, NC_ENOTFOUND, store errors. *out: nc_store_free_msg. */
int nc_jobs_get(nc_jobs *m, const char *job_id, Nanochat__V1__JobInfo **out);

/* Waits until the job is in a final state or timeout_ms passes (< 0 = forever).
 * NC_OK (with *out, may be NULL), NC_ETIMEDOUT (with *out = the current state), or errors of
 * nc_jobs_get. Must not be called from a notification callback. */
int nc_jobs_wait(nc_jobs *m, const char *job_id, int timeout_ms, Nanochat__V1__JobInfo **out);

/* Running and queued counts, lock-free (for Health.Check). Either pointer may be NULL. */
void nc_jobs_counts(const nc_jobs *m, uint32_t *running, uint32_t *queued);

void nc_jobs_get_stats(nc_jobs *m, nc_jobs_stats *st);

/* Notification: new events up to last_seq are stored for job_id; `ended` is true once the
 * job is in a final state (its final STATE event is stored). See the rules above. */
typedef void (*nc_jobs_notify_fn)(void *arg, const char *job_id, uint64_t last_seq, bool ended);

/* Registers fn(arg) for job `job_id` (the job need not exist yet). Subscribe BEFORE reading
 * the job's snapshot/events so no commit can slip between the read and the subscription.
 * *out is released with nc_jobs_unsubscribe. NC_EINVAL (bad id), NC_ENOMEM. */
int nc_jobs_subscribe(nc_jobs *m, const char *job_id, nc_jobs_notify_fn fn, void *arg,
                      nc_jobs_sub **out);

/* Removes a subscription; when it returns the callback is not running and will not run again.
 * NULL ok. Must not be called from a notification callback. */
void nc_jobs_unsubscribe(nc_jobs *m, nc_jobs_sub *sub);

/* True for SUCCEEDED, FAILED, CANCELLED, INTERRUPTED. */
bool nc_job_state_final(int state);

/* "QUEUED", "RUNNING", ... ("UNSPECIFIED" for unknown values). Static strings. */
const char *nc_job_state_name(int state);

#ifdef __cplusplus
}
#endif
#endif /* NC_JOBS_H */
