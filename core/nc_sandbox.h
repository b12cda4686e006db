/* nc_sandbox.h — run untrusted (model-written) Python 3 in a kernel-enforced sandbox.
 *
 * Used by Tools.Execute (the python tool of the chat engine) and by the HumanEval checks of
 * Eval.Chat. nanochat's execution.py says of itself that it "is not a security sandbox"; this
 * module is one: every run gets
 *
 *   - a dedicated unprivileged uid from a pool (uid_base + k, default 200000..200255), taken
 *     with an flock on <lock_dir>/<uid>.lock so concurrent processes never share one;
 *   - rlimits: RLIMIT_AS (memory), RLIMIT_CPU (= timeout + 1 s), RLIMIT_FSIZE, RLIMIT_NOFILE,
 *     RLIMIT_NPROC (enforced because the uid is not 0 and is used by nothing else),
 *     RLIMIT_CORE = 0, RLIMIT_MEMLOCK = 0;
 *   - new user, mount, pid, net, ipc, uts and cgroup namespaces (bubblewrap, run unprivileged
 *     under the pool uid, with --disable-userns): an empty root with read-only /usr (plus the
 *     /bin /lib /lib64 /sbin symlinks), a fresh /proc and /dev, size-capped tmpfs /tmp,
 *     /dev/shm and /work; the root and /dev are remounted read-only; no /etc, /home, /run, no
 *     host files at all; only a private loopback interface and no route;
 *   - a default-deny seccomp allowlist (libseccomp): sockets only AF_UNIX (others EACCES),
 *     clone only without namespace flags, clone3 -> ENOSYS (glibc falls back to clone), a
 *     short ioctl allowlist (no TIOCSTI), and no ptrace, mount, umount2, bpf, keyctl, add_key,
 *     perf_event_open, userfaultfd, unshare, setns, pivot_root, chroot, kexec_*, *_module,
 *     memfd_create, io_uring_*, SysV IPC, ... (all EPERM);
 *   - PR_SET_NO_NEW_PRIVS, a cleared environment, stdin from /dev/null or the given bytes,
 *     and only fds 0, 1, 2 open in the program.
 *
 * The program text is written to /work/main.py (a file, never a shell string) and run as
 * `/usr/bin/python3 -I /work/main.py` with cwd /work. -I (isolated mode) ignores PYTHON*
 * variables, the user site directory and the script directory on sys.path; optional extra
 * files are copied next to main.py and are readable as data (import them with an explicit
 * sys.path.insert(0, '/work') if needed). The environment the program sees is exactly
 * PATH=/usr/bin:/bin, PWD=/work (set by bubblewrap) and LC_CTYPE=C.UTF-8 (set by Python's
 * own PEP 538 locale coercion at startup; nothing is inherited).
 *
 * Process model. The calling process never forks with its own state: nc_sandbox_run
 * posix_spawns the small launcher executable `nc-sandbox` (core/bin/nc-sandbox.c) with a
 * cleared environment and every inherited fd closed except the pipes and memfds it needs.
 * The launcher does setsid, drops to the pool uid (setgroups/setresgid/setresuid), sets
 * PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER and PR_SET_NO_NEW_PRIVS, then forks bwrap with
 * the rlimits applied and stays as the reaper: on exit or when told to stop it kills every
 * process of the pool uid (kill(-1, SIGKILL) as that uid), reaps all of them, and only then
 * reports. The caller enforces the wall-clock timeout (SIGTERM to the launcher, SIGKILL to
 * its process group after a grace period), reads stdout/stderr concurrently with per-stream
 * caps, and holds the uid lock until everything is reaped, so no process of a finished run
 * outlives nc_sandbox_run and a uid is never shared by two live runs.
 *
 * Fail closed. nc_sandbox_create runs a self-test (nc_sandbox_selftest): static checks of the
 * launcher, bwrap and python paths and of user namespaces, then one real sandboxed probe
 * program that verifies each layer from inside (namespace ids differ from the caller's,
 * Seccomp: 2 and NoNewPrivs: 1 in /proc/self/status, socket(AF_INET) -> EACCES, the rlimits
 * as set, a non-zero uid mapped 1:1 to the pool uid, only `lo` in /proc/net/dev). All four
 * layers (ns, seccomp, rlimits, uid) are mandatory; if any is missing the sandbox is
 * "unavailable" and nc_sandbox_run returns NC_ESTATE with the error text
 * "sandbox unavailable: <why>". There is no partial mode and no unsandboxed fallback. A run
 * whose launcher or bubblewrap setup fails at call time also returns NC_ESTATE
 * "sandbox unavailable: ...". cgroups are detected and reported ("v2", "v1-only", "none")
 * but not used (the CI container has v1 controllers only, see README).
 *
 * Paths. Each of launcher/bwrap/python is taken from, in order: the environment variable
 * (NC_SANDBOX_LAUNCHER, NC_BWRAP, NC_SANDBOX_PYTHON) when set and non-empty, then the cfg
 * field, then the default. The environment wins so that tests and operators can point a
 * configured server at a missing binary (NC_BWRAP=/nonexistent) to prove fail-closed.
 *
 * Thread safety: nc_sandbox_run, nc_sandbox_level_get, nc_sandbox_get_stats and
 * nc_sandbox_set_max_concurrent may be called concurrently on one handle. nc_sandbox_run is
 * synchronous and must be called from a thread that stays alive for the call (the launcher's
 * parent-death signal follows the spawning thread). nc_sandbox_recheck and nc_sandbox_free
 * must not overlap with runs on the same handle.
 *
 * Requirements: root (or CAP_SETUID+CAP_SETGID for the launcher) so the launcher can switch
 * to pool uids, unprivileged user namespaces, bubblewrap >= 0.8, libseccomp. The pool uids
 * must not belong to anything else on the host (the launcher kills every process of its uid
 * when a run ends): uid_base < 100000 is NC_EINVAL, and a pool uid that has a passwd entry
 * makes the sandbox unavailable.
 */
#ifndef NC_SANDBOX_H
#define NC_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nc_sandbox nc_sandbox;

/* Languages. Only Python 3 (the host's /usr/bin/python3, seen read-only through /usr). */
typedef enum nc_sandbox_lang { NC_SANDBOX_PYTHON3 = 0 } nc_sandbox_lang;

/* Layer bits of nc_sandbox_level.layers. All of NC_SANDBOX_LAYERS_REQUIRED must be present. */
enum {
  NC_SANDBOX_LAYER_NS = 1u,      /* user+mount+pid+net+ipc+uts(+cgroup) namespaces */
  NC_SANDBOX_LAYER_SECCOMP = 2u, /* our default-deny filter is loaded, no_new_privs set */
  NC_SANDBOX_LAYER_RLIMITS = 4u, /* AS, CPU, FSIZE, NOFILE, NPROC, CORE as configured */
  NC_SANDBOX_LAYER_UID = 8u,     /* runs as a dedicated non-root pool uid */
  NC_SANDBOX_LAYERS_REQUIRED = 15u,
};

/* Hard limits of the API (requests and configs beyond them are NC_EINVAL). */
#define NC_SANDBOX_MAX_FILES 64                 /* extra files per request                */
#define NC_SANDBOX_NAME_MAX 64                  /* extra file name length, bytes          */
#define NC_SANDBOX_MIN_MEMORY (32ull << 20)     /* smallest RLIMIT_AS python starts under  */
#define NC_SANDBOX_UID_BASE_MIN 100000u         /* pool uids must be >= this              */

/* Server-side configuration. Zero / NULL fields take the default in brackets; a value
 * outside the documented range makes nc_sandbox_create / nc_sandbox_selftest return
 * NC_EINVAL. Strings are copied; the caller keeps ownership. */
typedef struct nc_sandbox_cfg {
  const char *launcher_path;     /* [$NC_SANDBOX_LAUNCHER, else <dir of /proc/self/exe>/nc-sandbox] */
  const char *bwrap_path;        /* [/usr/bin/bwrap]; $NC_BWRAP overrides                 */
  const char *python_path;       /* [/usr/bin/python3]; $NC_SANDBOX_PYTHON overrides; must
                                    be an absolute path under /usr/                        */
  const char *lock_dir;          /* [/run/nc-sandbox] uid lock files (created 0700)       */
  uint32_t uid_base;             /* [200000] first pool uid (gid = uid), >= 100000        */
  uint32_t uid_count;            /* [256] pool size, 1..65536                             */
  int max_concurrent;            /* [2] runs in flight per handle, 1..uid_count           */
  uint32_t default_timeout_ms;   /* [10000] wall clock per run                            */
  uint32_t max_timeout_ms;       /* [60000] largest timeout a request may ask, <= 3600000 */
  uint64_t default_memory_bytes; /* [256 MiB] RLIMIT_AS per process                        */
  uint64_t max_memory_bytes;     /* [1 GiB] largest a request may ask, <= 64 GiB           */
  size_t default_output_bytes;   /* [64 KiB] cap per stream (stdout and stderr each)      */
  size_t max_output_bytes;       /* [1 MiB] largest cap a request may ask, <= 64 MiB       */
  size_t max_code_bytes;         /* [1 MiB] program text                                  */
  size_t max_stdin_bytes;        /* [1 MiB]                                               */
  int max_files;                 /* [16] extra files per request, <= NC_SANDBOX_MAX_FILES  */
  size_t max_files_bytes;        /* [8 MiB] total size of the extra files                 */
  uint64_t tmp_bytes;            /* [16 MiB] tmpfs /tmp size                              */
  uint64_t work_bytes;           /* [32 MiB] tmpfs /work size (holds main.py + files)     */
  uint64_t shm_bytes;            /* [4 MiB] tmpfs /dev/shm size                           */
  uint64_t file_size_bytes;      /* [8 MiB] RLIMIT_FSIZE                                  */
  int nofile;                    /* [64] RLIMIT_NOFILE, 16..4096                          */
  int nproc;                     /* [16] RLIMIT_NPROC for the pool uid (processes and
                                    threads, including the launcher, bwrap and its init),
                                    8..4096                                               */
} nc_sandbox_cfg;

/* The configuration with every default filled in (paths after the environment overrides
 * are NOT applied: those happen in create/selftest). */
nc_sandbox_cfg nc_sandbox_cfg_default(void);

/* What the self-test found. */
typedef struct nc_sandbox_level {
  int available;        /* 1 when every layer of NC_SANDBOX_LAYERS_REQUIRED was verified */
  unsigned layers;      /* NC_SANDBOX_LAYER_* bits verified by the live probe            */
  char level[64];       /* e.g. "ns+seccomp+rlimits+uid"; "none" when nothing verified    */
  char cgroup[16];      /* "v2" (unified hierarchy with controllers), "v1-only", "none";
                           informational, not enforced                                   */
  char reason[256];     /* why unavailable ("" when available)                           */
} nc_sandbox_level;

/* An extra file placed in /work next to main.py. name: 1..64 bytes of [A-Za-z0-9_.-], not
 * starting with '.', not "main.py", unique within the request. */
typedef struct nc_sandbox_file {
  const char *name;
  const void *data;
  size_t len;
} nc_sandbox_file;

/* One execution request. Borrowed for the duration of nc_sandbox_run only. */
typedef struct nc_sandbox_req {
  nc_sandbox_lang lang;          /* NC_SANDBOX_PYTHON3                                     */
  const void *code;              /* program text (bytes; may be NULL when code_len == 0)  */
  size_t code_len;               /* <= cfg.max_code_bytes                                 */
  const void *stdin_data;        /* NULL: stdin is /dev/null; else these bytes (may be 0) */
  size_t stdin_len;              /* <= cfg.max_stdin_bytes                                */
  uint32_t timeout_ms;           /* 0: cfg.default_timeout_ms; else <= cfg.max_timeout_ms */
  uint64_t memory_bytes;         /* 0: default; else NC_SANDBOX_MIN_MEMORY..max_memory    */
  size_t max_output_bytes;       /* 0: default; else 1..cfg.max_output_bytes, per stream  */
  const nc_sandbox_file *files;  /* optional extra files (NULL when nfiles == 0)          */
  int nfiles;                    /* 0..cfg.max_files                                      */
  /* Optional cancellation: polled about every 50 ms; returning non-zero stops the run
   * like a timeout does (nc_sandbox_run then returns NC_ECANCELED). */
  int (*cancel)(void *ctx);
  void *cancel_ctx;
} nc_sandbox_req;

/* The outcome. stdout_data/stderr_data are malloc'd, owned by the result, NUL-terminated
 * for convenience (the NUL is not counted in *_len) and may contain any bytes, including
 * NUL, invalid UTF-8 and special-token text such as "<|python_start|>": they are returned
 * verbatim, never interpreted. Release with nc_sandbox_result_free. */
typedef struct nc_sandbox_result {
  int success;            /* program ran, exited 0, not timed out/cancelled, no memory error */
  int exit_code;          /* exit status 0..255 as bubblewrap reports it (128+N when killed
                             by signal N, the shell convention); -1 when it did not finish */
  int signal;             /* N when exit_code is 129..192 (inferred: a program that calls
                             sys.exit(137) looks the same as SIGKILL); 0 otherwise          */
  int timed_out;          /* killed at the wall-clock timeout                               */
  int canceled;           /* stopped because req->cancel returned non-zero                  */
  int memory_exceeded;    /* see "memory heuristic" below                                   */
  int stdout_truncated;   /* more than the cap was written; the rest was read and dropped   */
  int stderr_truncated;
  int truncated;          /* stdout_truncated || stderr_truncated                           */
  uint8_t *stdout_data;
  size_t stdout_len;
  uint8_t *stderr_data;
  size_t stderr_len;
  char error[512];        /* "" on success; else a one-line description: the last line of
                             stderr (e.g. "ZeroDivisionError: division by zero"), "timed out
                             after 5.000 s", "memory limit exceeded (256 MiB)", "killed by
                             signal 11", or "sandbox unavailable: <why>" / argument errors
                             when nc_sandbox_run fails                                      */
  double duration_s;      /* wall clock from spawn to the last process reaped              */
  uint64_t peak_rss_bytes;/* largest RSS of any process of the run (getrusage)             */
  uint32_t uid;           /* the pool uid the run used (0 if none was taken)              */
} nc_sandbox_result;
/* Memory heuristic: memory_exceeded is set when stderr has a line starting with
 * "MemoryError" (Python's reaction to RLIMIT_AS), or contains "Cannot allocate memory" /
 * "out of memory" / "std::bad_alloc", or the program died of SIGSEGV/SIGBUS/SIGABRT/SIGKILL
 * (not sent by us) while its peak RSS was at least 75% of the memory limit. RLIMIT_AS makes
 * allocations fail, it never kills, so a clean "killed" signal for memory only happens with
 * cgroup OOM, which this module does not use. */

/* Live counters (for Health/Status). */
typedef struct nc_sandbox_stats {
  int max_concurrent;
  int in_flight;
  uint64_t runs;          /* runs that reached the sandbox (spawned)                   */
  uint64_t busy;          /* rejected with NC_EBUSY                                    */
  uint64_t timeouts;
  uint64_t unavailable;   /* returned NC_ESTATE                                        */
} nc_sandbox_stats;

/* Probe every layer with cfg (zero fields = defaults, env overrides applied) and fill *out.
 * Spawns one real sandboxed probe (about one run's cost, ~50 ms).
 * Returns NC_OK when the sandbox is available, NC_ESTATE when it is not (out->reason says
 * why), NC_EINVAL for an invalid cfg or NULL out (out->reason says which field). */
int nc_sandbox_selftest(nc_sandbox_cfg cfg, nc_sandbox_level *out);

/* Create a handle: validates cfg, prepares the lock dir and the seccomp program, and runs
 * nc_sandbox_selftest. Succeeds (NC_OK, *out set) even when the sandbox is unavailable, so
 * the service can start and report the level; runs then fail with NC_ESTATE.
 * Errors: NC_EINVAL (bad cfg or NULL out), NC_ENOMEM. Free with nc_sandbox_free. */
int nc_sandbox_create(nc_sandbox_cfg cfg, nc_sandbox **out);

/* Free a handle (NULL is a no-op). No run may be in flight. */
void nc_sandbox_free(nc_sandbox *sb);

/* Copy the level found by the last self-test. NC_EINVAL on NULL arguments. */
int nc_sandbox_level_get(const nc_sandbox *sb, nc_sandbox_level *out);

/* Run the self-test again and replace the stored level (admin action, e.g. after installing
 * bubblewrap). Must not overlap with runs. Returns what nc_sandbox_selftest returns. */
int nc_sandbox_recheck(nc_sandbox *sb, nc_sandbox_level *out);

/* Change the concurrency limit (admin). n: 1..cfg.uid_count, else NC_EINVAL. Runs already in
 * flight are not affected; lowering the limit only rejects new runs. */
int nc_sandbox_set_max_concurrent(nc_sandbox *sb, int n);

/* Snapshot of the counters. */
void nc_sandbox_get_stats(const nc_sandbox *sb, nc_sandbox_stats *out);

/* Run one program. *out is always initialised (zeroed, then filled) and must be released
 * with nc_sandbox_result_free whatever the return code.
 * Returns:
 *   NC_OK         the program was started in the full sandbox; see out->success,
 *                 exit_code, timed_out, memory_exceeded, truncated...
 *   NC_ECANCELED  req->cancel asked to stop (out holds what was captured, canceled = 1)
 *   NC_EINVAL     bad request (out->error names the field); nothing was spawned
 *   NC_ESTATE     "sandbox unavailable: <why>" (self-test failed, or the launcher/bwrap
 *                 could not set the sandbox up for this call); the program did NOT run
 *   NC_EBUSY      max_concurrent runs in flight, or no free pool uid
 *   NC_ENOMEM, NC_EIO, NC_EINTERNAL  resource or unexpected failures (nothing left running)
 */
int nc_sandbox_run(nc_sandbox *sb, const nc_sandbox_req *req, nc_sandbox_result *out);

/* Release the buffers of a result and zero it (NULL is a no-op). */
void nc_sandbox_result_free(nc_sandbox_result *r);

/* ---- helpers (also used by the launcher and the tests) ---------------------------------- */

/* 1 when name is a valid extra-file name (see nc_sandbox_file), else 0. */
int nc_sandbox_valid_filename(const char *name);

/* Build the seccomp BPF program (struct sock_filter array, the format bwrap --seccomp
 * reads) for the native architecture. *bpf is malloc'd (caller frees), *len in bytes.
 * Returns NC_OK, NC_ENOMEM, or NC_EINTERNAL (libseccomp failed). */
int nc_sandbox_seccomp_bpf(uint8_t **bpf, size_t *len);

/* Copy bytes to valid UTF-8: every byte that does not start a valid sequence (invalid lead
 * or continuation bytes, truncated sequences, overlong forms, surrogates, code points above
 * U+10FFFF) becomes U+FFFD; valid text and NUL bytes are kept as they are. For callers
 * that must put tool output in a protobuf `string`. *out is malloc'd and NUL-terminated
 * (caller frees), *out_len excludes the NUL. Returns NC_OK, NC_EINVAL (NULL out/out_len or
 * NULL in with n > 0), NC_ENOMEM. */
int nc_sandbox_utf8_sanitize(const uint8_t *in, size_t n, char **out, size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif /* NC_SANDBOX_H */
