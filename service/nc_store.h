/* nc_store.h — nanochatd's durable store: one LMDB environment with named databases.
 *
 * Layout. One environment in a directory (nanochatd uses <data-dir>/store/: data.mdb and
 * lock.mdb, mode 0600) with these named databases:
 *
 * | database         | key                                        | value (record type)        |
 * |------------------|--------------------------------------------|----------------------------|
 * | meta             | "schema"                                   | META: u32 schema version   |
 * | sessions         | session id (16..64 chars)                  | SESSION: nanochat.v1.Session |
 * | sessions_by_time | be64(updated_ms) + session id              | SESSION_SUMMARY: SessionSummary |
 * | checkpoints      | u8 phase + tag + 0x00 + be64(step ^ 2^63)  | CHECKPOINT: CheckpointInfo |
 * | jobs             | job id (16 hex chars)                      | JOB: JobInfo               |
 * | job_queue        | be64(queue number)                         | QUEUE: the job id bytes    |
 * | job_events       | job id + be64(seq)                         | EVENT: JobEvent            |
 * | evals            | be64(eval number)                          | EVAL: JobEvent (kind EVAL) |
 *
 * Every value starts with an 8-byte record header, little-endian:
 *   u32 magic NC_STORE_MAGIC ("NCR1") | u16 record version | u16 record type
 * followed by the protobuf encoding of the message (or the raw bytes named above). Reading a
 * record whose magic or type is wrong gives NC_ECORRUPT; a record version newer than
 * NC_STORE_RECORD_VERSION gives NC_ESTATE ("written by a newer nanochatd"). A write that would
 * replace such a record fails the same way instead of overwriting it: nothing this build does
 * not understand is ever silently replaced. The meta "schema" record holds the schema version
 * of the whole environment; a newer one makes nc_store_open fail with NC_ESTATE.
 *
 * Durability. The environment is opened with LMDB's default durable flags (every commit
 * fsyncs; no MDB_NOSYNC, MDB_NOMETASYNC, MDB_WRITEMAP or MDB_NOMEMINIT) plus MDB_NOTLS, so a
 * function that returned NC_OK for a write has its data on disk. Every write is one short
 * write transaction inside one call; nothing is held across calls, and read transactions
 * never outlive the call either (values are unpacked/copied out before the transaction ends),
 * so streaming readers never pin old pages. A failed write aborts its transaction: either all
 * of a call's changes are committed or none.
 *
 * Capacity. The map size (nc_store_opts.map_size) is the most the data file may grow to.
 * When a write does not fit, LMDB's MDB_MAP_FULL becomes NC_EFULL with the message
 * "store full: ..." (the transaction is aborted; earlier data and reads are unaffected).
 * Reopening with a larger map size makes room. Sessions additionally have caps on message
 * count and encoded bytes (NC_EFULL "session full: ...", nothing appended).
 *
 * Startup checks (nc_store_open). The environment is never recreated or overwritten: an
 * existing data.mdb that is not a valid LMDB file (bad magic or version in the meta pages),
 * shorter than two pages, shorter than its last committed page (truncated), or whose internal
 * pages are damaged gives NC_ECORRUPT; a schema newer than this build gives NC_ESTATE; in both
 * cases the files are left untouched and the message says what was found. Stale reader slots
 * of dead processes are cleared (mdb_reader_check) and counted.
 *
 * Errors. Functions return NC_OK or a negative NC_E* code (core/nc_err.h). After an error,
 * nc_store_last_error() returns a one-line message for the calling thread. Mapping of LMDB
 * failures: MDB_MAP_FULL/MDB_TXN_FULL -> NC_EFULL; ENOSPC -> NC_ENOSPC; EIO -> NC_EIO;
 * MDB_CORRUPTED/MDB_PAGE_NOTFOUND/MDB_INVALID/MDB_VERSION_MISMATCH -> NC_ECORRUPT;
 * MDB_READERS_FULL -> NC_EBUSY; ENOMEM -> NC_ENOMEM; MDB_PANIC -> NC_EIO and the store turns
 * unhealthy (nc_store_healthy() false: the process should stop serving and restart).
 *
 * Threads. One nc_store per process (LMDB: one environment per process, never used in a
 * forked child; the lock file is FD_CLOEXEC). Every function is safe to call from any
 * thread concurrently, except nc_store_open/nc_store_close. Writers are serialised by LMDB.
 *
 * Messages. Functions that return protobuf messages return them unpacked by protobuf-c with
 * the default allocator: free each with nc_store_free_msg() (or protobuf_c_message_
 * free_unpacked), arrays of them with nc_store_free_msgs().
 */
#ifndef NC_STORE_H
#define NC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nanochat/v1/common.pb-c.h"
#include "nanochat/v1/train.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NC_STORE_MAGIC 0x3152434Eu          /* bytes 'N' 'C' 'R' '1' */
#define NC_STORE_RECORD_VERSION 1           /* newest record version this build writes/reads */
#define NC_STORE_SCHEMA_VERSION 1           /* newest schema version this build understands */
#define NC_STORE_HEADER_SIZE 8

#define NC_STORE_DEFAULT_MAP_SIZE (1ull << 30)   /* 1 GiB of address space */
#define NC_STORE_MIN_MAP_SIZE (64ull << 10)      /* smallest accepted map size (64 KiB) */
#define NC_STORE_DEFAULT_SESSION_MESSAGES 10000u
#define NC_STORE_DEFAULT_SESSION_BYTES (8ull << 20)

#define NC_SESSION_ID_MIN 16
#define NC_SESSION_ID_MAX 64
#define NC_SESSION_ID_NEW_LEN 32                /* generated ids: 32 lowercase hex chars */
#define NC_JOB_ID_LEN 16                        /* job ids: 16 lowercase hex chars */
#define NC_TAG_MAX 64
#define NC_STORE_PAGE_TOKEN_MAX 160             /* page tokens fit in this many bytes + NUL */

/* Expect-version value meaning "append whatever the current version is". */
#define NC_STORE_ANY_VERSION UINT64_MAX

/* Record types of the record header. */
typedef enum nc_store_rec_type {
  NC_REC_META = 1,
  NC_REC_SESSION = 2,
  NC_REC_SESSION_SUMMARY = 3,
  NC_REC_CHECKPOINT = 4,
  NC_REC_JOB = 5,
  NC_REC_QUEUE = 6,
  NC_REC_EVENT = 7,
  NC_REC_EVAL = 8,
} nc_store_rec_type;

typedef struct nc_store nc_store;

/* Options of nc_store_open (pass by value; zero fields take the defaults). */
typedef struct nc_store_opts {
  const char *dir;                 /* environment directory; created (0700) when missing, its
                                      parent must exist. Required. Never a remote filesystem. */
  uint64_t map_size;               /* bytes; 0 = NC_STORE_DEFAULT_MAP_SIZE; below
                                      NC_STORE_MIN_MAP_SIZE is NC_EINVAL. A data file already
                                      larger than this is opened at its own size. */
  unsigned max_readers;            /* concurrent read transactions; 0 = 126 (LMDB default) */
  uint32_t max_session_messages;   /* 0 = NC_STORE_DEFAULT_SESSION_MESSAGES */
  uint64_t max_session_bytes;      /* encoded Session bytes; 0 = NC_STORE_DEFAULT_SESSION_BYTES */
  bool read_only;                  /* MDB_RDONLY: every write returns NC_EPERM; the
                                      environment must already exist */
} nc_store_opts;

/* Numbers about an open store (nc_store_stats). */
typedef struct nc_store_stats {
  uint64_t map_size;               /* current map size in bytes */
  uint64_t used_bytes;             /* pages in use x page size (high-water mark of the file) */
  uint32_t page_size;
  uint32_t schema_version;
  int readers_cleared_at_open;     /* stale reader slots mdb_reader_check cleared at open */
  uint64_t sessions, checkpoints, jobs, job_events, evals;  /* entries per database */
  bool healthy;                    /* false after MDB_PANIC */
} nc_store_stats;

/* ---- lifecycle ---------------------------------------------------------------------- */

/* Opens (creating when the directory holds no data.mdb yet) the environment in o.dir, runs
 * the startup checks above, clears stale readers, and writes the schema record into a new
 * environment. On success *out owns the store (release with nc_store_close).
 * Errors: NC_EINVAL (bad options), NC_ECORRUPT (not LMDB, truncated, damaged, missing schema
 * record in a non-empty environment), NC_ESTATE (schema or record version newer than this
 * build), NC_EPERM/NC_EIO (filesystem), NC_EBUSY (environment locked by an incompatible
 * process), NC_ENOMEM. The message (nc_store_last_error) names the directory and cause. */
int nc_store_open(const nc_store_opts *o, nc_store **out);

/* Closes the environment and frees the store. No other call on `s` may be running or follow.
 * NULL is a no-op. */
void nc_store_close(nc_store *s);

/* Runs mdb_reader_check: clears reader slots of processes that died with a read transaction
 * open. *cleared (may be NULL) gets the number cleared. NC_OK or NC_EIO. Call it at startup
 * (nc_store_open does) and periodically. */
int nc_store_reader_check(nc_store *s, int *cleared);

/* Fills *st. NC_OK or an LMDB read error code. */
int nc_store_get_stats(nc_store *s, nc_store_stats *st);

/* False once LMDB reported MDB_PANIC (the environment must be closed and the process
 * restarted); true otherwise. Thread-safe, lock-free. */
bool nc_store_healthy(const nc_store *s);

/* True while the store still holds its reserve (see NC_JOB_CRITICAL): room for the final
 * state of a job. False after a full map used it; new jobs are then refused (NC_EFULL) until
 * nanochatd reopens the store with space (a larger --store-map-mb or after deleting data). */
bool nc_store_has_reserve(nc_store *s);

/* The calling thread's message for the last failing nc_store_* call (also set by nc_jobs_*
 * calls that failed in the store). Static thread-local storage, valid until the thread's next
 * store call; never NULL ("" when nothing failed yet). Contains no user content. */
const char *nc_store_last_error(void);

/* Frees one message returned by this module (protobuf_c_message_free_unpacked); NULL ok. */
void nc_store_free_msg(void *msg);

/* Frees `n` messages of an array returned by this module, then the array. `items` is the
 * array (e.g. a Nanochat__V1__JobInfo **); NULL ok. */
void nc_store_free_msgs(void *items, size_t n);

/* ---- ids and names ------------------------------------------------------------------ */

/* Writes `nchars` random lowercase hex characters (getrandom) and a NUL into out[nchars+1].
 * NC_OK or NC_EIO (no entropy source). */
int nc_store_random_hex(char *out, size_t nchars);

/* New session id: 32 lowercase hex chars + NUL into out[33]. NC_OK or NC_EIO. */
int nc_store_new_session_id(char out[NC_SESSION_ID_NEW_LEN + 1]);

/* Session id rule (faults row 17): 16..64 chars of [A-Za-z0-9_.-], and never "." or "..".
 * Ids are only ever LMDB keys, never paths. `len` is the byte length (ids with an embedded
 * NUL fail). */
bool nc_store_session_id_valid(const char *id, size_t len);

/* Job id rule: exactly 16 lowercase hex chars. */
bool nc_store_job_id_valid(const char *id, size_t len);

/* Checkpoint tag rule: 1..64 chars of [A-Za-z0-9_.-], not "." or "..". */
bool nc_store_tag_valid(const char *tag, size_t len);

/* ---- sessions (chat history) -------------------------------------------------------- */

/* What one nc_store_session_append adds. */
typedef struct nc_session_append {
  const Nanochat__V1__ChatMessage *const *messages;  /* borrowed; may be 0 messages */
  size_t n_messages;
  /* Optimistic concurrency: NC_STORE_ANY_VERSION appends to whatever is stored (creating
   * the session when create_if_missing); 0 requires that the session does not exist yet
   * (creates it); any other value requires the stored version to equal it. */
  uint64_t expect_version;
  bool create_if_missing;
  uint64_t add_tokens;             /* added to tokens_generated */
  bool set_model;                  /* when true, phase/model_tag/model_step are stored */
  Nanochat__V1__Phase phase;
  const char *model_tag;           /* NULL = unset */
  int64_t model_step;
} nc_session_append;

/* Appends a->messages to session `id` in one write transaction (read, append, bump version,
 * write session and its listing entry, commit), so concurrent appends are serialised and
 * none is lost. *new_version (may be NULL) gets the version after the append (1 for a new
 * session). Errors: NC_EINVAL (bad id), NC_ENOTFOUND (missing and not creating),
 * NC_EEXIST (expect_version 0 but it exists), NC_ECONFLICT (version differs),
 * NC_EFULL (message-count or byte cap: "session full: ...", or the store is full),
 * NC_ECORRUPT/NC_ESTATE (stored record unreadable or newer), NC_EPERM (read-only). */
int nc_store_session_append(nc_store *s, const char *id, const nc_session_append *a,
                            uint64_t *new_version);

/* Reads session `id`. *out: caller frees with nc_store_free_msg. NC_EINVAL (bad id),
 * NC_ENOTFOUND, NC_ECORRUPT, NC_ESTATE. */
int nc_store_session_get(nc_store *s, const char *id, Nanochat__V1__Session **out);

/* Deletes session `id` and its listing entry. NC_OK, NC_ENOTFOUND, NC_EINVAL. */
int nc_store_session_delete(nc_store *s, const char *id);

/* One page of session summaries, newest (most recently updated) first. */
typedef struct nc_session_page {
  Nanochat__V1__SessionSummary **items;   /* owned; free with nc_session_page_free */
  size_t n;
  char next_token[NC_STORE_PAGE_TOKEN_MAX + 1];  /* "" when this is the last page */
} nc_session_page;

/* Lists up to page_size (1..1000) sessions, starting after `page_token` (NULL or "" = from
 * the newest). The token is opaque (hex of the last listing key). A session updated between
 * two page calls moves to the front and may be missed by or repeated in later pages.
 * Errors: NC_EINVAL (page_size out of range, malformed token: "page_token: ..."). */
int nc_store_session_list(nc_store *s, uint32_t page_size, const char *page_token,
                          nc_session_page *out);
void nc_session_page_free(nc_session_page *p);

/* ---- checkpoints -------------------------------------------------------------------- */

/* Stores checkpoint metadata (key: phase, tag, step). Call only after the files are durable
 * (faults §3.4: write tmp, fsync, rename, fsync dir, then this). With replace false an
 * existing entry is NC_EEXIST. Validation (NC_EINVAL): phase 1..3, valid tag, has step,
 * path relative without ".." components, sha256 empty or 64 lowercase hex. */
int nc_store_ckpt_put(nc_store *s, const Nanochat__V1__CheckpointInfo *ci, bool replace);

/* Reads one entry. NC_ENOTFOUND, NC_EINVAL, NC_ECORRUPT, NC_ESTATE. *out: nc_store_free_msg. */
int nc_store_ckpt_get(nc_store *s, Nanochat__V1__Phase phase, const char *tag, int64_t step,
                      Nanochat__V1__CheckpointInfo **out);

/* Lists entries sorted by phase, tag (bytewise), step; phase 0 = all phases, tag NULL or ""
 * = all tags. At most max_items (0 = 100000). *items: nc_store_free_msgs(*items, *n). */
int nc_store_ckpt_list(nc_store *s, Nanochat__V1__Phase phase, const char *tag,
                       size_t max_items, Nanochat__V1__CheckpointInfo ***items, size_t *n);

/* Deletes one entry (metadata only; files are the caller's). NC_OK or NC_ENOTFOUND. */
int nc_store_ckpt_delete(nc_store *s, Nanochat__V1__Phase phase, const char *tag, int64_t step);

/* ---- jobs, the persisted queue and job events ---------------------------------------- */

/* Flags of nc_store_job_write. */
enum {
  NC_JOB_CREATE = 1u << 0,        /* the job must not exist yet (else NC_EEXIST); last_seq 0 */
  NC_JOB_QUEUE_PUSH = 1u << 1,    /* append the job id to the end of the FIFO queue */
  NC_JOB_QUEUE_REMOVE = 1u << 2,  /* remove the job id from the queue (no-op if absent) */
  NC_JOB_CRITICAL = 1u << 3,      /* a state change that must land even when the map is full:
                                   * on NC_EFULL the store's reserve record is released (once
                                   * per open) and the write retried */
};

/* The one write of a job, in one transaction: assigns the next sequence numbers to the
 * `n_events` events (seq = stored last_seq + 1, + 2, ...; time_ms set to now where 0), stores
 * them under the job, stores CheckpointInfo of CHECKPOINT events in "checkpoints" (replace,
 * job_id set to the job's), applies the queue flag, sets job->last_seq to the new last
 * sequence number and writes `job`. Without NC_JOB_CREATE the job must exist (NC_ENOTFOUND)
 * and its stored last_seq is the base. Event kinds must be STATE..LOG (no SNAPSHOT). Each
 * event is stored with job_id = job->job_id; the caller's job_id pointers are not changed,
 * only ev->seq/has_seq/time_ms/has_time_ms and job->last_seq/has_last_seq are written.
 * Errors: NC_EINVAL (bad id/kind/checkpoint), NC_ENOTFOUND, NC_EEXIST, NC_EFULL,
 * NC_ECORRUPT/NC_ESTATE (stored job unreadable or newer), NC_EPERM (read-only). */
int nc_store_job_write(nc_store *s, Nanochat__V1__JobInfo *job, unsigned flags,
                       Nanochat__V1__JobEvent *const *events, size_t n_events);

/* Appends events to an existing job without changing anything else of it but last_seq
 * (read-modify-write of the stored job in the same transaction). Same rules as above. */
int nc_store_event_append(nc_store *s, const char *job_id, Nanochat__V1__JobEvent *const *events,
                          size_t n_events);

/* Reads job `id`. NC_EINVAL, NC_ENOTFOUND, NC_ECORRUPT, NC_ESTATE. *out: nc_store_free_msg. */
int nc_store_job_get(nc_store *s, const char *id, Nanochat__V1__JobInfo **out);

/* Lists jobs newest first (created_ms, then id), at most `limit` (1..100000).
 * *items: nc_store_free_msgs(*items, *n). */
int nc_store_job_list(nc_store *s, size_t limit, Nanochat__V1__JobInfo ***items, size_t *n);

/* The queue in FIFO order: up to `cap` job ids into ids[][17]; *n gets how many were written
 * and *total (may be NULL) the queue length. */
int nc_store_job_queue(nc_store *s, char (*ids)[NC_JOB_ID_LEN + 1], size_t cap, size_t *n,
                       size_t *total);

/* Removes job id's entries from the queue only (the job record is not touched; used for
 * queue entries whose job is missing or unreadable). NC_OK also when there was none. */
int nc_store_queue_drop(nc_store *s, const char *id);

/* Deletes job `id`, all its events and its queue entry. NC_OK or NC_ENOTFOUND. */
int nc_store_job_delete(nc_store *s, const char *id);

/* Stored events copied out as protobuf bytes (the JobEvent encoding, ready to send). */
typedef struct nc_blob {
  uint64_t seq;
  const uint8_t *data;
  size_t len;
} nc_blob;
typedef struct nc_blob_list {
  nc_blob *v;            /* v[0..n) in seq order */
  size_t n;
  void *mem;             /* one allocation holding v and every data block */
} nc_blob_list;
void nc_blob_list_free(nc_blob_list *l);

/* Copies events of job `id` with seq >= from_seq (0 is treated as 1), in order, at most
 * max_count (>= 1) of them and stopping before max_bytes of payload is exceeded (at least one
 * event is returned when any exists). An empty result is NC_OK with n = 0 (whether or not the
 * job exists). Errors: NC_EINVAL, NC_ECORRUPT/NC_ESTATE (bad stored record), NC_ENOMEM. */
int nc_store_event_range(nc_store *s, const char *id, uint64_t from_seq, size_t max_count,
                         size_t max_bytes, nc_blob_list *out);

/* The same, unpacked: *items gets JobEvent messages (nc_store_free_msgs). */
int nc_store_event_list(nc_store *s, const char *id, uint64_t from_seq, size_t max_count,
                        Nanochat__V1__JobEvent ***items, size_t *n);

/* ---- evaluation results ------------------------------------------------------------- */

/* Stores an evaluation result as a JobEvent of kind EVAL: metrics (e.g. core_metric,
 * bits_per_byte, per-task accuracies), message = the eval's name (e.g. "core", "bpb/val",
 * "chat/GSM8K"), checkpoint = the model evaluated, job_id = the job that ran it (optional,
 * "" or a valid job id). ev->seq gets the result number (1, 2, ...), ev->time_ms now when 0.
 * Errors: NC_EINVAL (kind not EVAL, bad job id), NC_EFULL, NC_EPERM. */
int nc_store_eval_put(nc_store *s, Nanochat__V1__JobEvent *ev);

/* Lists results newest first, starting below `before_seq` (0 = from the newest), at most
 * `limit` (1..100000). *items: nc_store_free_msgs(*items, *n). */
int nc_store_eval_list(nc_store *s, uint64_t before_seq, size_t limit,
                       Nanochat__V1__JobEvent ***items, size_t *n);

#ifdef __cplusplus
}
#endif
#endif /* NC_STORE_H */
