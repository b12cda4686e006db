/* nc_jobio.h — the job child protocol, and the helpers job programs link to speak it.
 *
 * Job programs are the child processes of the job manager (service/nc_jobs.h): the built-in
 * test job (nanochat-testjob), and later training and evaluation programs. nanochatd never
 * forks with its gRPC/LMDB state; it posix_spawns the program for the job's kind.
 *
 * Invocation (exactly these arguments, in this order):
 *
 *     <program> --job-id ID --data-dir DIR --request FILE --events-fd 3
 *
 *   ID    the job id, 16 lowercase hex chars.
 *   DIR   nanochatd's data directory (absolute path). Checkpoints go under DIR/checkpoints/.
 *   FILE  DIR/jobs/ID/request.pb: the serialized request protobuf of the job's kind
 *         (TestJobRequest, TrainTokenizerRequest, TrainBaseRequest, TrainSftRequest,
 *         TrainRlRequest, EvalCoreRequest, EvalChatRequest), at most NC_JOBIO_MAX_REQUEST
 *         bytes, written by the manager (mode 0600) before the spawn.
 *   3     the write end of the event pipe.
 *
 * Process setup done by the manager: working directory DIR/jobs/ID/; fd 0 = /dev/null;
 * fds 1 and 2 = DIR/jobs/ID/output.log (append); fd 3 = events; no other fd is open
 * (closefrom 4). The child leads its own process group (pgid = pid), has an empty signal mask
 * and default signal dispositions, and gets nanochatd's environment minus every variable
 * whose name contains TOKEN, SECRET, PASSWORD, PASSWD, CREDENTIAL or API_KEY (any case).
 *
 * Events. The child writes frames to fd 3: a u32 little-endian length N
 * (1 <= N <= NC_JOBIO_MAX_FRAME) followed by N bytes, the serialized nanochat.v1.JobEvent.
 * Allowed kinds and what the manager does with them:
 *   PROGRESS    `progress` becomes JobInfo.progress.
 *   EVAL        `metrics` are merged into JobInfo.metrics (same name: newer value wins).
 *   CHECKPOINT  `checkpoint` (phase, tag, step, relative path, size, sha256, ...) is stored in
 *               the checkpoints database in the same LMDB transaction as the event and
 *               becomes JobInfo.checkpoint. Send it only after the files are durable
 *               (faults.md §3.4: write tmp, fsync, rename, fsync dir).
 *   LOG         `message`, a human-readable line (never prompt or completion text). The last
 *               LOG line before a non-zero exit is the job's failure reason.
 * The child's job_id, seq, time_ms, state and job fields are ignored: the manager assigns
 * seq (1, 2, ... per job, after its own STATE events) and time, appends each event durably to
 * LMDB, and only then fans it out to subscribers. Limits (else a protocol error): strings
 * valid UTF-8 without NUL, message <= NC_JOBIO_MAX_MESSAGE bytes, metric names 1..64 bytes,
 * <= NC_JOBIO_MAX_METRICS metrics per event, a CHECKPOINT event carries a valid checkpoint
 * (nc_store_ckpt_put's rules). A protocol error
 * makes the manager kill the job's process group: FAILED "job protocol error: <what>".
 *
 * Exit status -> final state: 0 -> SUCCEEDED; non-zero exit code -> FAILED with the last LOG
 * message as the reason (or "exited with code N" when there was none); death by a signal ->
 * FAILED "killed by signal N". JobInfo.exit_code is the exit code, or 128 + N for a signal.
 *
 * Stopping. SIGTERM asks the child to stop soon and cleanly (training: finish the step, write
 * a final checkpoint, send its CHECKPOINT event, exit 0). After the manager's grace period it
 * sends SIGKILL to the whole process group. A job stopped by Train.Cancel ends CANCELLED, one
 * stopped by a server shutdown ends INTERRUPTED, whatever its exit status.
 *
 * Parent death. nc_jobio_open sets PR_SET_PDEATHSIG(SIGTERM) (so a child whose nanochatd was
 * killed stops like on a cancel) and ignores SIGPIPE (so event writes to a dead server fail
 * with NC_EIO instead of killing the child). A child should exit when sends fail.
 *
 * Thread safety: nc_jobio_send and its wrappers may be called from several threads of the
 * child (writes are serialised); nc_jobio_stop_requested is async-signal-safe. */
#ifndef NC_JOBIO_H
#define NC_JOBIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nanochat/v1/train.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NC_JOBIO_MAX_FRAME (64u << 10)     /* bytes of one serialized JobEvent */
#define NC_JOBIO_MAX_REQUEST (1u << 20)    /* bytes of the request file */
#define NC_JOBIO_MAX_MESSAGE 4096          /* bytes of a LOG message */
#define NC_JOBIO_MAX_METRICS 256           /* metrics per event */
#define NC_JOBIO_MAX_METRIC_NAME 64
#define NC_JOBIO_EVENTS_FD 3

/* The parsed command line of a job program. Pointers point into argv. */
typedef struct nc_jobio_args {
  char job_id[17];
  const char *data_dir;
  const char *request_path;
  int events_fd;
} nc_jobio_args;

/* Parses the invocation above (each of the four options exactly once; "--opt value" form;
 * nothing else). NC_OK, or NC_EINVAL with a message in err[errlen] naming the argument. */
int nc_jobio_parse_args(int argc, char *const argv[], nc_jobio_args *out, char *err,
                        size_t errlen);

/* Reads the request file into a malloc'd buffer (*buf, *len; caller frees *buf). Refuses
 * symlinks (O_NOFOLLOW) and files larger than NC_JOBIO_MAX_REQUEST (NC_EFULL).
 * NC_OK, NC_ENOTFOUND, NC_EIO, NC_ENOMEM. An empty file gives *len 0 and a non-NULL *buf. */
int nc_jobio_read_request(const nc_jobio_args *a, uint8_t **buf, size_t *len);

/* The start of every job executable: parses argv into *a, reads the request file and unpacks it
 * as a `desc` message (protobuf-c default allocator; the caller frees *req with
 * protobuf_c_message_free_unpacked). On failure it prints "<prog>: <why>" to stderr and returns
 * NC_EINVAL (a job exits 2 then). */
int nc_jobio_start(int argc, char *const argv[], const char *prog, const ProtobufCMessageDescriptor *desc,
                   nc_jobio_args *a, ProtobufCMessage **req);

typedef struct nc_jobio nc_jobio;

/* Starts speaking the protocol on a->events_fd: installs a SIGTERM handler that sets the stop
 * flag (without SA_RESTART, so sleeps return early), ignores SIGPIPE, sets
 * PR_SET_PDEATHSIG(SIGTERM) and raises the stop flag at once if the parent is already gone.
 * *out owns the fd; release with nc_jobio_close. NC_OK, NC_EINVAL (bad fd), NC_ENOMEM. */
int nc_jobio_open(const nc_jobio_args *a, nc_jobio **out);

/* Closes the event fd and frees `io` (NULL ok). */
void nc_jobio_close(nc_jobio *io);

/* True once SIGTERM was received (or the parent died before nc_jobio_open). */
bool nc_jobio_stop_requested(void);

/* Sleeps `ms` milliseconds; returns NC_ECANCELED as soon as a stop is requested, else NC_OK. */
int nc_jobio_sleep_ms(int ms);

/* Sends one event (any kind allowed above; validated first with nc_jobio_event_check).
 * NC_OK, NC_EINVAL (invalid event: not sent), NC_EFULL (frame too large), NC_EIO (the pipe is
 * closed: the server is gone). */
int nc_jobio_send(nc_jobio *io, const Nanochat__V1__JobEvent *ev);

/* PROGRESS event carrying *p. */
int nc_jobio_progress(nc_jobio *io, const Nanochat__V1__Progress *p);

/* EVAL event with n named metrics (names[i] -> values[i]) and an optional message (the eval's
 * name, e.g. "val_bpb"; NULL = none). */
int nc_jobio_metrics(nc_jobio *io, const char *const *names, const double *values, size_t n,
                     const char *message);

/* CHECKPOINT event (send after the checkpoint files are durable). */
int nc_jobio_checkpoint(nc_jobio *io, const Nanochat__V1__CheckpointInfo *ci);

/* LOG event; printf-style, truncated to NC_JOBIO_MAX_MESSAGE bytes at a UTF-8 boundary. */
int nc_jobio_log(nc_jobio *io, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- manager side (also used by tests and the fuzz target) --------------------------- */

/* Checks an event received from a child against the rules above. NC_OK or NC_EINVAL with a
 * message in err[errlen]. */
int nc_jobio_event_check(const Nanochat__V1__JobEvent *ev, char *err, size_t errlen);

/* Decodes the first frame of buf[0..len). Returns NC_OK and sets *consumed (> 0) and *ev (the
 * checked event; free with protobuf_c_message_free_unpacked) when a whole valid frame is
 * there; NC_OK with *consumed 0 and *ev NULL when more bytes are needed; NC_EINVAL (protocol
 * error, message in err) for a bad length, an undecodable payload or an event that fails
 * nc_jobio_event_check. Never reads past len. */
int nc_jobio_frame_decode(const uint8_t *buf, size_t len, size_t *consumed,
                          Nanochat__V1__JobEvent **ev, char *err, size_t errlen);

/* Encodes ev as one frame into a malloc'd buffer (*out, *len). NC_OK, NC_EFULL, NC_ENOMEM. */
int nc_jobio_frame_encode(const Nanochat__V1__JobEvent *ev, uint8_t **out, size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* NC_JOBIO_H */
