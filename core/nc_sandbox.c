/* nc_sandbox.c — the caller's side of the sandbox (see nc_sandbox.h): configuration, the
 * uid pool, spawning the launcher, the I/O + deadline loop, result classification and the
 * self-test. The seccomp allowlist is in nc_sandbox_policy.c, the launcher in
 * core/bin/nc-sandbox.c. */
#include "nc_sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nc_err.h"

#define MiB (1ull << 20)
#define KILL_GRACE_MS 5000   /* SIGTERM to launcher -> SIGKILL of its process group      */
#define DRAIN_GRACE_MS 2000  /* launcher gone -> stop waiting for output EOF             */
#define POLL_SLICE_MS 50     /* cancel-callback polling period                           */
#define TAIL_BYTES 2048      /* stderr tail kept for the error line and memory heuristic */

/* Everything a run needs, resolved once (paths after env overrides, the BPF program). */
struct sbx_env {
  nc_sandbox_cfg cfg; /* string fields point at the arrays below */
  char launcher[PATH_MAX], bwrap[PATH_MAX], python[PATH_MAX], lock_dir[PATH_MAX];
  uint8_t *bpf;
  size_t bpf_len;
  char static_reason[256]; /* non-empty: a static check failed, never spawn */
};

struct nc_sandbox {
  struct sbx_env env;
  pthread_mutex_t mu;
  nc_sandbox_level level;
  int max_concurrent, in_flight;
  uint32_t next_uid;
  nc_sandbox_stats stats;
};

/* ---- small utilities ------------------------------------------------------------------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void setf(char *dst, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(dst, cap, fmt, ap);
  va_end(ap);
}

static int write_all(int fd, const void *p, size_t n) {
  const uint8_t *b = p;
  while (n > 0) {
    ssize_t w = write(fd, b, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

/* A sealed-size memfd holding `len` bytes, offset 0. -1 on failure (errno set). */
static int memfd_with(const char *name, const void *data, size_t len) {
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return -1;
  if ((len && write_all(fd, data, len) != 0) || lseek(fd, 0, SEEK_SET) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* ---- configuration ---------------------------------------------------------------------- */

nc_sandbox_cfg nc_sandbox_cfg_default(void) {
  nc_sandbox_cfg c;
  memset(&c, 0, sizeof c);
  c.launcher_path = NULL; /* resolved at create time */
  c.bwrap_path = "/usr/bin/bwrap";
  c.python_path = "/usr/bin/python3";
  c.lock_dir = "/run/nc-sandbox";
  c.uid_base = 200000;
  c.uid_count = 256;
  c.max_concurrent = 2;
  c.default_timeout_ms = 10000;
  c.max_timeout_ms = 60000;
  c.default_memory_bytes = 256 * MiB;
  c.max_memory_bytes = 1024 * MiB;
  c.default_output_bytes = 64 * 1024;
  c.max_output_bytes = 1 * MiB;
  c.max_code_bytes = 1 * MiB;
  c.max_stdin_bytes = 1 * MiB;
  c.max_files = 16;
  c.max_files_bytes = 8 * MiB;
  c.tmp_bytes = 16 * MiB;
  c.work_bytes = 32 * MiB;
  c.shm_bytes = 4 * MiB;
  c.file_size_bytes = 8 * MiB;
  c.nofile = 64;
  c.nproc = 16;
  return c;
}

/* Fill zero fields with defaults and check ranges. why: field name on error. */
static int cfg_complete(nc_sandbox_cfg *c, char *why, size_t why_cap) {
  const nc_sandbox_cfg d = nc_sandbox_cfg_default();
#define DEF(f) \
  if (!c->f) c->f = d.f
  DEF(bwrap_path);
  DEF(python_path);
  DEF(lock_dir);
  DEF(uid_base);
  DEF(uid_count);
  DEF(max_concurrent);
  DEF(default_timeout_ms);
  DEF(max_timeout_ms);
  DEF(default_memory_bytes);
  DEF(max_memory_bytes);
  DEF(default_output_bytes);
  DEF(max_output_bytes);
  DEF(max_code_bytes);
  DEF(max_stdin_bytes);
  DEF(max_files);
  DEF(max_files_bytes);
  DEF(tmp_bytes);
  DEF(work_bytes);
  DEF(shm_bytes);
  DEF(file_size_bytes);
  DEF(nofile);
  DEF(nproc);
#undef DEF
#define CHECK(cond, name)                       \
  if (!(cond)) {                                \
    setf(why, why_cap, "invalid cfg.%s", name); \
    return NC_EINVAL;                           \
  }
  CHECK(c->uid_base >= NC_SANDBOX_UID_BASE_MIN && c->uid_count >= 1 && c->uid_count <= 65536 &&
            (uint64_t)c->uid_base + c->uid_count < 0xFFFFFFFEull,
        "uid_base/uid_count");
  CHECK(c->max_concurrent >= 1 && (uint32_t)c->max_concurrent <= c->uid_count,
        "max_concurrent");
  CHECK(c->max_timeout_ms <= 3600000u && c->default_timeout_ms <= c->max_timeout_ms,
        "default_timeout_ms/max_timeout_ms");
  CHECK(c->max_memory_bytes <= (64ull << 30) && c->default_memory_bytes >= NC_SANDBOX_MIN_MEMORY &&
            c->default_memory_bytes <= c->max_memory_bytes,
        "default_memory_bytes/max_memory_bytes");
  CHECK(c->max_output_bytes <= 64 * MiB && c->default_output_bytes <= c->max_output_bytes,
        "default_output_bytes/max_output_bytes");
  CHECK(c->file_size_bytes >= 64 * 1024 && c->file_size_bytes <= (1ull << 40), "file_size_bytes");
  CHECK(c->max_code_bytes <= c->file_size_bytes && c->max_code_bytes <= 64 * MiB,
        "max_code_bytes");
  CHECK(c->max_stdin_bytes <= 64 * MiB, "max_stdin_bytes");
  CHECK(c->max_files >= 0 && c->max_files <= NC_SANDBOX_MAX_FILES, "max_files");
  CHECK(c->max_files_bytes <= 1024 * MiB, "max_files_bytes");
  CHECK(c->work_bytes >= 1 * MiB && c->work_bytes <= (1ull << 40) &&
            c->work_bytes >= (uint64_t)c->max_code_bytes + 64 * 1024,
        "work_bytes");
  CHECK(c->tmp_bytes >= 64 * 1024 && c->tmp_bytes <= (1ull << 40), "tmp_bytes");
  CHECK(c->shm_bytes >= 64 * 1024 && c->shm_bytes <= (1ull << 40), "shm_bytes");
  CHECK(c->nofile >= 16 && c->nofile <= 4096, "nofile");
  CHECK(c->nproc >= 8 && c->nproc <= 4096, "nproc");
#undef CHECK
  return NC_OK;
}

static void copy_path(char *dst, const char *env_name, const char *cfg_val) {
  const char *e = env_name ? getenv(env_name) : NULL;
  const char *v = (e && *e) ? e : cfg_val;
  snprintf(dst, PATH_MAX, "%s", v ? v : "");
}

static int check_exec(const char *what, const char *path, char *why, size_t cap) {
  if (path[0] != '/') {
    setf(why, cap, "%s path '%s' is not absolute", what, path);
    return -1;
  }
  struct stat st;
  if (stat(path, &st) != 0) {
    setf(why, cap, "%s not found at %s: %s", what, path, strerror(errno));
    return -1;
  }
  if (!S_ISREG(st.st_mode) || access(path, X_OK) != 0) {
    setf(why, cap, "%s at %s is not an executable file", what, path);
    return -1;
  }
  return 0;
}

/* Create (0700) or verify the lock dir: a real directory owned by us, not writable by others. */
static int prepare_lock_dir(const char *dir, char *why, size_t cap) {
  if (dir[0] != '/') {
    setf(why, cap, "lock dir '%s' is not absolute", dir);
    return -1;
  }
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    setf(why, cap, "cannot create lock dir %s: %s", dir, strerror(errno));
    return -1;
  }
  struct stat st;
  if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
      (st.st_mode & 022)) {
    setf(why, cap, "lock dir %s must be a directory owned by uid %u and not group/world "
         "writable", dir, (unsigned)geteuid());
    return -1;
  }
  return 0;
}

/* Resolve paths, build the BPF program and run the static checks. Returns NC_EINVAL for a bad
 * cfg (why set), NC_ENOMEM, or NC_OK (env->static_reason set when a check failed). */
static int env_init(struct sbx_env *env, nc_sandbox_cfg cfg, char *why, size_t cap) {
  memset(env, 0, sizeof *env);
  int rc = cfg_complete(&cfg, why, cap);
  if (rc) return rc;
  char def_launcher[PATH_MAX] = "";
  if (!cfg.launcher_path) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
      exe[n] = 0;
      char *slash = strrchr(exe, '/');
      if (slash) *slash = 0;
      snprintf(def_launcher, sizeof def_launcher, "%.*s/nc-sandbox", PATH_MAX - 16, exe);
    }
  }
  copy_path(env->launcher, "NC_SANDBOX_LAUNCHER", cfg.launcher_path ? cfg.launcher_path : def_launcher);
  copy_path(env->bwrap, "NC_BWRAP", cfg.bwrap_path);
  copy_path(env->python, "NC_SANDBOX_PYTHON", cfg.python_path);
  copy_path(env->lock_dir, NULL, cfg.lock_dir);
  cfg.launcher_path = env->launcher;
  cfg.bwrap_path = env->bwrap;
  cfg.python_path = env->python;
  cfg.lock_dir = env->lock_dir;
  env->cfg = cfg;

  char *r = env->static_reason;
  const size_t rc_cap = sizeof env->static_reason;
  if (check_exec("launcher", env->launcher, r, rc_cap) != 0) return NC_OK;
  if (check_exec("bwrap", env->bwrap, r, rc_cap) != 0) return NC_OK;
  if (strncmp(env->python, "/usr/", 5) != 0 || strstr(env->python, "/../")) {
    setf(r, rc_cap, "python path %s is not under /usr/ (only /usr is visible in the sandbox)",
         env->python);
    return NC_OK;
  }
  if (check_exec("python", env->python, r, rc_cap) != 0) return NC_OK;
  if (access("/proc/self/ns/user", F_OK) != 0) {
    setf(r, rc_cap, "kernel has no user namespaces");
    return NC_OK;
  }
  FILE *f = fopen("/proc/sys/user/max_user_namespaces", "r");
  if (f) {
    long v = -1;
    if (fscanf(f, "%ld", &v) == 1 && v == 0) setf(r, rc_cap, "user namespaces are disabled "
                                                  "(/proc/sys/user/max_user_namespaces = 0)");
    fclose(f);
    if (r[0]) return NC_OK;
  }
  /* The pool uids must belong to nothing else: the launcher kills every process of its uid. */
  for (uint32_t i = 0; i < cfg.uid_count; i++) {
    struct passwd pw, *res = NULL;
    char buf[1024];
    if (getpwuid_r(cfg.uid_base + i, &pw, buf, sizeof buf, &res) == 0 && res) {
      setf(r, rc_cap, "pool uid %u belongs to user '%.64s'", (unsigned)(cfg.uid_base + i),
           pw.pw_name);
      return NC_OK;
    }
  }
  if (prepare_lock_dir(env->lock_dir, r, rc_cap) != 0) return NC_OK;
  rc = nc_sandbox_seccomp_bpf(&env->bpf, &env->bpf_len);
  if (rc == NC_ENOMEM) return rc;
  if (rc) setf(r, rc_cap, "cannot build the seccomp filter (%s)", nc_strerror(rc));
  return NC_OK;
}

static void env_fini(struct sbx_env *env) {
  free(env->bpf);
  env->bpf = NULL;
}

/* ---- uid pool ----------------------------------------------------------------------------- */

/* Take a free pool uid: an exclusive, non-blocking flock on <lock_dir>/<uid>.lock, held (by
 * *lock_fd) until every process of the run is reaped. NC_EBUSY when all are taken. */
static int uid_acquire(const struct sbx_env *env, uint32_t start, uint32_t *uid, int *lock_fd) {
  const nc_sandbox_cfg *c = &env->cfg;
  for (uint32_t i = 0; i < c->uid_count; i++) {
    uint32_t u = c->uid_base + (start + i) % c->uid_count;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%u.lock", env->lock_dir, (unsigned)u);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return NC_EIO;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
      *uid = u;
      *lock_fd = fd;
      return NC_OK;
    }
    close(fd);
  }
  return NC_EBUSY;
}

/* ---- one run ------------------------------------------------------------------------------ */

struct stream {
  uint8_t *buf;
  size_t len, cap, limit;
  int truncated, eof;
  uint8_t tail[TAIL_BYTES]; /* last bytes ever written, even beyond the limit */
  size_t tail_len;
};

static int stream_add(struct stream *s, const uint8_t *p, size_t n) {
  if (n >= TAIL_BYTES) {
    memcpy(s->tail, p + n - TAIL_BYTES, TAIL_BYTES);
    s->tail_len = TAIL_BYTES;
  } else {
    size_t keep = s->tail_len + n > TAIL_BYTES ? TAIL_BYTES - n : s->tail_len;
    memmove(s->tail, s->tail + s->tail_len - keep, keep);
    memcpy(s->tail + keep, p, n);
    s->tail_len = keep + n;
  }
  size_t room = s->limit - s->len;
  size_t take = n < room ? n : room;
  if (take < n) s->truncated = 1;
  if (take == 0) return 0;
  if (s->len + take + 1 > s->cap) {
    size_t nc = s->cap ? s->cap : 4096;
    while (nc < s->len + take + 1) nc *= 2;
    if (nc > s->limit + 1) nc = s->limit + 1;
    uint8_t *nb = realloc(s->buf, nc);
    if (!nb) return -1;
    s->buf = nb;
    s->cap = nc;
  }
  memcpy(s->buf + s->len, p, take);
  s->len += take;
  return 0;
}

/* The last non-empty line of a byte tail, made printable UTF-8, into dst. */
static void last_line(const uint8_t *t, size_t n, char *dst, size_t cap) {
  dst[0] = 0;
  while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' ')) n--;
  size_t b = n;
  while (b > 0 && t[b - 1] != '\n') b--;
  if (n <= b) return;
  char *clean = NULL;
  size_t clen = 0;
  if (nc_sandbox_utf8_sanitize(t + b, n - b, &clean, &clen) != NC_OK) return;
  size_t m = clen < cap - 1 ? clen : cap - 1;
  while (m > 0 && m < clen && ((unsigned char)clean[m] & 0xC0) == 0x80) m--; /* whole chars */
  for (size_t i = 0; i < m; i++) {
    unsigned char c = (unsigned char)clean[i];
    dst[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
  }
  dst[m] = 0;
  free(clean);
}

static int contains(const uint8_t *h, size_t n, const char *needle) {
  size_t k = strlen(needle);
  for (size_t i = 0; i + k <= n; i++)
    if (memcmp(h + i, needle, k) == 0) return 1;
  return 0;
}

static int has_line_prefix(const uint8_t *h, size_t n, const char *prefix) {
  size_t k = strlen(prefix);
  for (size_t i = 0; i + k <= n; i++)
    if ((i == 0 || h[i - 1] == '\n') && memcmp(h + i, prefix, k) == 0) return 1;
  return 0;
}

struct run_params {
  uint32_t timeout_ms;
  uint64_t memory;
  size_t out_cap;
};

/* Validate req against cfg; fills p. why: message on NC_EINVAL. */
static int validate(const nc_sandbox_cfg *c, const nc_sandbox_req *req, struct run_params *p,
                    char *why, size_t cap) {
#define BAD(...)                  \
  do {                            \
    setf(why, cap, __VA_ARGS__);  \
    return NC_EINVAL;             \
  } while (0)
  if (req->lang != NC_SANDBOX_PYTHON3) BAD("lang: unsupported language %d", (int)req->lang);
  if (req->code_len > c->max_code_bytes)
    BAD("code: %zu bytes exceeds the limit of %zu", req->code_len, c->max_code_bytes);
  if (!req->code && req->code_len) BAD("code: NULL with non-zero length");
  if (req->stdin_data && req->stdin_len > c->max_stdin_bytes)
    BAD("stdin: %zu bytes exceeds the limit of %zu", req->stdin_len, c->max_stdin_bytes);
  if (req->timeout_ms > c->max_timeout_ms)
    BAD("timeout_ms: %u exceeds the maximum of %u", (unsigned)req->timeout_ms,
        (unsigned)c->max_timeout_ms);
  if (req->memory_bytes &&
      (req->memory_bytes < NC_SANDBOX_MIN_MEMORY || req->memory_bytes > c->max_memory_bytes))
    BAD("memory_bytes: %llu outside %llu..%llu", (unsigned long long)req->memory_bytes,
        (unsigned long long)NC_SANDBOX_MIN_MEMORY, (unsigned long long)c->max_memory_bytes);
  if (req->max_output_bytes > c->max_output_bytes)
    BAD("max_output_bytes: %zu exceeds the maximum of %zu", req->max_output_bytes,
        c->max_output_bytes);
  if (req->nfiles < 0 || req->nfiles > c->max_files)
    BAD("files: %d files, the limit is %d", req->nfiles, c->max_files);
  if (req->nfiles && !req->files) BAD("files: NULL with nfiles > 0");
  uint64_t total = 0, pages = ((uint64_t)req->code_len + 4095) / 4096 + 1;
  for (int i = 0; i < req->nfiles; i++) {
    const nc_sandbox_file *f = &req->files[i];
    if (!nc_sandbox_valid_filename(f->name))
      BAD("files[%d].name: must be 1..%d of [A-Za-z0-9_.-], not starting with '.', not main.py",
          i, NC_SANDBOX_NAME_MAX);
    for (int j = 0; j < i; j++)
      if (strcmp(req->files[j].name, f->name) == 0) BAD("files[%d].name: duplicate", i);
    if (!f->data && f->len) BAD("files[%d].data: NULL with non-zero length", i);
    if (f->len > c->file_size_bytes)
      BAD("files[%d]: %zu bytes exceeds the file size limit", i, f->len);
    total += f->len;
    pages += (f->len + 4095) / 4096 + 1;
  }
  if (total > c->max_files_bytes)
    BAD("files: %llu bytes in total exceeds the limit of %zu", (unsigned long long)total,
        c->max_files_bytes);
  if (pages * 4096 > c->work_bytes) BAD("files: code and files do not fit in /work");
#undef BAD
  p->timeout_ms = req->timeout_ms ? req->timeout_ms : c->default_timeout_ms;
  p->memory = req->memory_bytes ? req->memory_bytes : c->default_memory_bytes;
  p->out_cap = req->max_output_bytes ? req->max_output_bytes : c->default_output_bytes;
  return NC_OK;
}

/* Spawn the launcher with fds 0..first_free-1 = src[0..] and nothing else. */
static int spawn_launcher(const struct sbx_env *env, char **argv, const int *src, int nsrc,
                          pid_t *pid, char *why, size_t cap) {
  int hi[6 + NC_SANDBOX_MAX_FILES];
  int rc = NC_OK, n = 0;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  if (posix_spawn_file_actions_init(&fa) != 0) return NC_ENOMEM;
  if (posix_spawnattr_init(&at) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    return NC_ENOMEM;
  }
  /* Copies above the target range so that no dup2 overwrites a later source. */
  for (n = 0; n < nsrc; n++) {
    hi[n] = fcntl(src[n], F_DUPFD_CLOEXEC, nsrc);
    if (hi[n] < 0) {
      rc = NC_EIO;
      setf(why, cap, "dup: %s", strerror(errno));
      goto out;
    }
  }
  for (int i = 0; i < nsrc; i++)
    if (posix_spawn_file_actions_adddup2(&fa, hi[i], i) != 0) {
      rc = NC_ENOMEM;
      goto out;
    }
  if (posix_spawn_file_actions_addclosefrom_np(&fa, nsrc) != 0) {
    rc = NC_ENOMEM;
    goto out;
  }
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &all);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  char *envp[] = {(char *)"PATH=/usr/bin:/bin", NULL};
  int e = posix_spawn(pid, env->launcher, &fa, &at, argv, envp);
  if (e != 0) {
    rc = NC_ESTATE;
    setf(why, cap, "cannot start launcher %s: %s", env->launcher, strerror(e));
  }
out:
  for (int i = 0; i < n; i++) close(hi[i]);
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  return rc;
}

/* Parse the launcher's status line. Returns 1 for "ok ...", 0 for "err ...", -1 if none. */
static int parse_status(const char *s, int *exec, int *exit_code, int *killed, long *maxrss_kb,
                        char *err, size_t cap) {
  if (strncmp(s, "ok ", 3) == 0) {
    if (sscanf(s, "ok exec=%d exit=%d killed=%d maxrss_kb=%ld", exec, exit_code, killed,
               maxrss_kb) == 4)
      return 1;
    return -1;
  }
  if (strncmp(s, "err ", 4) == 0) {
    last_line((const uint8_t *)s + 4, strlen(s + 4), err, cap);
    return 0;
  }
  return -1;
}

static void kill_launcher_hard(pid_t pid) {
  kill(-pid, SIGKILL); /* its process group (setsid): bubblewrap if still there */
  kill(pid, SIGKILL);
}

/* The whole run with an already-acquired uid. Fills out; returns an NC code. */
static int run_with_uid(const struct sbx_env *env, const nc_sandbox_req *req,
                        const struct run_params *p, uint32_t uid, nc_sandbox_result *out) {
  const nc_sandbox_cfg *c = &env->cfg;
  int rc = NC_OK;
  int fds[6 + NC_SANDBOX_MAX_FILES];
  int nfds = 6 + req->nfiles;
  int out_p[2] = {-1, -1}, err_p[2] = {-1, -1}, st_p[2] = {-1, -1};
  for (int i = 0; i < nfds; i++) fds[i] = -1;
  struct stream so = {0}, se = {0};
  so.limit = se.limit = p->out_cap;
  char status[1024];
  size_t status_len = 0;
  int status_eof = 0;
  pid_t pid = -1;

  if (pipe2(out_p, O_CLOEXEC) != 0 || pipe2(err_p, O_CLOEXEC) != 0 || pipe2(st_p, O_CLOEXEC) != 0) {
    rc = NC_EIO;
    setf(out->error, sizeof out->error, "pipe: %s", strerror(errno));
    goto done;
  }
  /* Bigger pipes: fewer wake-ups when a program floods its output (best effort). */
  (void)fcntl(out_p[0], F_SETPIPE_SZ, 1 << 20);
  (void)fcntl(err_p[0], F_SETPIPE_SZ, 1 << 20);
  fds[0] = req->stdin_data ? memfd_with("nc-stdin", req->stdin_data, req->stdin_len)
                           : open("/dev/null", O_RDONLY | O_CLOEXEC);
  fds[1] = out_p[1];
  fds[2] = err_p[1];
  fds[3] = st_p[1];
  fds[4] = memfd_with("nc-seccomp", env->bpf, env->bpf_len);
  fds[5] = memfd_with("nc-main", req->code, req->code_len);
  for (int i = 0; i < req->nfiles; i++)
    fds[6 + i] = memfd_with("nc-file", req->files[i].data, req->files[i].len);
  for (int i = 0; i < nfds; i++)
    if (fds[i] < 0) {
      rc = errno == ENOMEM ? NC_ENOMEM : NC_EIO;
      setf(out->error, sizeof out->error, "memfd: %s", strerror(errno));
      goto done;
    }

  /* Launcher command line: only numbers, fixed words, validated names and config paths. */
  char nums[13][32];
  const uint64_t cpu_s = (p->timeout_ms + 999) / 1000 + 1;
  const uint64_t vals[] = {(uint64_t)getpid(), uid, uid, cpu_s, p->memory, c->file_size_bytes,
                           (uint64_t)c->nofile, (uint64_t)c->nproc, c->tmp_bytes,
                           c->work_bytes, c->shm_bytes};
  const char *keys[] = {"--ppid", "--uid", "--gid", "--cpu-s", "--as", "--fsize", "--nofile",
                        "--nproc", "--tmp", "--work", "--shm"};
  char *argv[2 + 2 * 13 + 2 * NC_SANDBOX_MAX_FILES + 1];
  int a = 0;
  argv[a++] = (char *)"nc-sandbox";
  for (int i = 0; i < 11; i++) {
    snprintf(nums[i], sizeof nums[i], "%llu", (unsigned long long)vals[i]);
    argv[a++] = (char *)keys[i];
    argv[a++] = nums[i];
  }
  argv[a++] = (char *)"--bwrap";
  argv[a++] = (char *)env->bwrap;
  argv[a++] = (char *)"--python";
  argv[a++] = (char *)env->python;
  for (int i = 0; i < req->nfiles; i++) {
    argv[a++] = (char *)"--file";
    argv[a++] = (char *)req->files[i].name;
  }
  argv[a] = NULL;

  const double t0 = now_s();
  rc = spawn_launcher(env, argv, fds, nfds, &pid, out->error, sizeof out->error);
  for (int i = 0; i < nfds; i++) close_fd(&fds[i]); /* includes the pipes' write ends */
  out_p[1] = err_p[1] = st_p[1] = -1;
  if (rc != NC_OK) {
    pid = -1;
    goto done;
  }

  /* I/O + deadline loop. */
  const double deadline = t0 + p->timeout_ms / 1000.0;
  double kill_at = 0, drain_until = 0;
  int term_sent = 0, hard_killed = 0, timed_out = 0, canceled = 0;
  uint8_t chunk[65536];
  for (;;) {
    if (status_eof && so.eof && se.eof) break;
    double t = now_s();
    if (!term_sent && !status_eof) { /* once the launcher has reported, the run is over */
      if (t >= deadline)
        timed_out = 1;
      else if (req->cancel && req->cancel(req->cancel_ctx))
        canceled = 1;
    }
    if (!term_sent && (timed_out || canceled) && !status_eof) {
      kill(pid, SIGTERM); /* the launcher kills everything of the uid and reaps it */
      term_sent = 1;
      kill_at = t + KILL_GRACE_MS / 1000.0;
    }
    if (term_sent && !hard_killed && !status_eof && t >= kill_at) {
      kill_launcher_hard(pid);
      hard_killed = 1;
    }
    if (status_eof && drain_until == 0) drain_until = t + DRAIN_GRACE_MS / 1000.0;
    if (status_eof && t >= drain_until) break; /* writers are gone; never wait forever */
    double until = term_sent ? (hard_killed ? t + 0.05 : kill_at) : deadline;
    if (status_eof) until = drain_until;
    int wait_ms = (int)((until - t) * 1000.0) + 1;
    if (wait_ms > POLL_SLICE_MS) wait_ms = POLL_SLICE_MS;
    if (wait_ms < 0) wait_ms = 0;
    struct pollfd pf[3];
    int np = 0, idx_o = -1, idx_e = -1, idx_s = -1;
    if (!so.eof) pf[idx_o = np++] = (struct pollfd){out_p[0], POLLIN, 0};
    if (!se.eof) pf[idx_e = np++] = (struct pollfd){err_p[0], POLLIN, 0};
    if (!status_eof) pf[idx_s = np++] = (struct pollfd){st_p[0], POLLIN, 0};
    int pr = poll(pf, (nfds_t)np, wait_ms);
    if (pr < 0 && errno != EINTR) {
      rc = NC_EINTERNAL;
      setf(out->error, sizeof out->error, "poll: %s", strerror(errno));
      if (!hard_killed) kill_launcher_hard(pid);
      hard_killed = 1;
      break;
    }
    if (pr <= 0) continue;
    struct {
      int idx, fd;
      struct stream *s;
    } io[2] = {{idx_o, out_p[0], &so}, {idx_e, err_p[0], &se}};
    for (int k = 0; k < 2; k++) {
      if (io[k].idx < 0 || !(pf[io[k].idx].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = read(io[k].fd, chunk, sizeof chunk);
      if (r > 0) {
        if (stream_add(io[k].s, chunk, (size_t)r) != 0) {
          rc = NC_ENOMEM;
          setf(out->error, sizeof out->error, "out of memory for output");
        }
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        io[k].s->eof = 1;
      }
    }
    if (idx_s >= 0 && (pf[idx_s].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t r = read(st_p[0], status + status_len, sizeof status - 1 - status_len);
      if (r > 0)
        status_len += (size_t)r;
      else if (r == 0 || (errno != EINTR && errno != EAGAIN))
        status_eof = 1;
      if (status_len >= sizeof status - 1) status_eof = 1;
    }
  }
  int wst = 0;
  while (waitpid(pid, &wst, 0) < 0 && errno == EINTR) {
  }
  pid = -1;
  out->duration_s = now_s() - t0;
  status[status_len] = 0;

  if (rc != NC_OK) goto done;
  int exec = 0, code = -1, killed = 0;
  long maxrss_kb = 0;
  char msg[400] = "";
  int st = parse_status(status, &exec, &code, &killed, &maxrss_kb, msg, sizeof msg);
  out->peak_rss_bytes = maxrss_kb > 0 ? (uint64_t)maxrss_kb * 1024 : 0;
  if (st == 0) {
    rc = NC_ESTATE;
    setf(out->error, sizeof out->error, "sandbox unavailable: %s", msg);
    goto done;
  }
  if (st < 0 && !term_sent) {
    rc = NC_EINTERNAL;
    if (WIFSIGNALED(wst))
      setf(out->error, sizeof out->error, "sandbox launcher died (signal %d)", WTERMSIG(wst));
    else
      setf(out->error, sizeof out->error, "sandbox launcher failed (exit status %d)",
           WIFEXITED(wst) ? WEXITSTATUS(wst) : -1);
    goto done;
  }
  int finished = st == 1 && exec && !killed; /* bubblewrap reported the program's exit */
  if (!finished && !term_sent) {
    /* bubblewrap never got to exec the program: its own error is on stderr. */
    char why[300];
    last_line(se.tail, se.tail_len, why, sizeof why);
    rc = NC_ESTATE;
    setf(out->error, sizeof out->error, "sandbox unavailable: bwrap setup failed: %s",
         why[0] ? why : "no message");
    goto done;
  }
  if (finished) {
    out->exit_code = code;
    out->signal = (code > 128 && code <= 128 + 64) ? code - 128 : 0;
  } else {
    out->exit_code = -1;
    out->timed_out = timed_out;
    out->canceled = canceled;
  }
  /* Memory heuristic (documented in nc_sandbox.h). */
  const uint8_t *h = se.tail;
  size_t hn = se.tail_len;
  int mem = has_line_prefix(h, hn, "MemoryError") || contains(h, hn, "Cannot allocate memory") ||
            contains(h, hn, "out of memory") || contains(h, hn, "std::bad_alloc");
  if (!mem && finished && (out->signal == SIGSEGV || out->signal == SIGBUS ||
                           out->signal == SIGABRT || out->signal == SIGKILL))
    mem = out->peak_rss_bytes * 4 >= p->memory * 3;
  out->memory_exceeded = mem;
  out->success = finished && code == 0 && !mem;
  if (out->timed_out)
    setf(out->error, sizeof out->error, "timed out after %.3f s", p->timeout_ms / 1000.0);
  else if (out->canceled)
    setf(out->error, sizeof out->error, "canceled");
  else if (!out->success) {
    char line[300];
    last_line(se.tail, se.tail_len, line, sizeof line);
    if (mem)
      setf(out->error, sizeof out->error, "memory limit exceeded (%llu MiB)%s%s",
           (unsigned long long)(p->memory >> 20), line[0] ? ": " : "", line);
    else if (line[0])
      setf(out->error, sizeof out->error, "%s", line);
    else if (out->signal)
      setf(out->error, sizeof out->error, "killed by signal %d", out->signal);
    else
      setf(out->error, sizeof out->error, "exited with status %d", code);
  }
  if (out->canceled) rc = NC_ECANCELED;

done:
  if (pid > 0) {
    kill_launcher_hard(pid);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
  }
  for (int i = 0; i < nfds; i++) close_fd(&fds[i]);
  close_fd(&out_p[0]), close_fd(&out_p[1]), close_fd(&err_p[0]), close_fd(&err_p[1]);
  close_fd(&st_p[0]), close_fd(&st_p[1]);
  if (rc == NC_OK || rc == NC_ECANCELED) {
    if (!so.buf) so.buf = malloc(1);
    if (!se.buf) se.buf = malloc(1);
    if (!so.buf || !se.buf) {
      free(so.buf), free(se.buf);
      setf(out->error, sizeof out->error, "out of memory");
      return NC_ENOMEM;
    }
    out->stdout_data = so.buf;
    out->stderr_data = se.buf;
    out->stdout_data[so.len] = 0;
    out->stderr_data[se.len] = 0;
    out->stdout_len = so.len;
    out->stderr_len = se.len;
    out->stdout_truncated = so.truncated;
    out->stderr_truncated = se.truncated;
    out->truncated = so.truncated || se.truncated;
  } else {
    free(so.buf);
    free(se.buf);
  }
  return rc;
}

/* Validate, take a uid, run, release the uid. `available` gate is the caller's job. */
static int run_env(const struct sbx_env *env, uint32_t start, const nc_sandbox_req *req,
                   nc_sandbox_result *out) {
  struct run_params p;
  int rc = validate(&env->cfg, req, &p, out->error, sizeof out->error);
  if (rc) return rc;
  uint32_t uid = 0;
  int lock_fd = -1;
  rc = uid_acquire(env, start, &uid, &lock_fd);
  if (rc == NC_EBUSY) {
    setf(out->error, sizeof out->error, "no free sandbox uid in %u..%u",
         (unsigned)env->cfg.uid_base, (unsigned)(env->cfg.uid_base + env->cfg.uid_count - 1));
    return rc;
  }
  if (rc) {
    setf(out->error, sizeof out->error, "sandbox unavailable: cannot open uid lock in %s: %s",
         env->lock_dir, strerror(errno));
    return NC_ESTATE;
  }
  out->uid = uid;
  rc = run_with_uid(env, req, &p, uid, out);
  close(lock_fd); /* every process of the run is reaped: the uid is free again */
  return rc;
}

/* ---- self-test ---------------------------------------------------------------------------- */

static void detect_cgroup(char *dst, size_t cap) {
  FILE *f = fopen("/sys/fs/cgroup/cgroup.controllers", "r");
  if (f) {
    char line[512] = "";
    if (!fgets(line, sizeof line, f)) line[0] = 0;
    fclose(f);
    if (strstr(line, "memory") && strstr(line, "pids")) {
      snprintf(dst, cap, "v2");
      return;
    }
  }
  struct stat st;
  if (stat("/sys/fs/cgroup/pids", &st) == 0 || stat("/sys/fs/cgroup/memory", &st) == 0)
    snprintf(dst, cap, "v1-only");
  else
    snprintf(dst, cap, "none");
}

static void compose_level(nc_sandbox_level *lv) {
  static const char *names[] = {"ns", "seccomp", "rlimits", "uid"};
  lv->level[0] = 0;
  for (int i = 0; i < 4; i++) {
    if (!(lv->layers & (1u << i))) continue;
    if (lv->level[0]) strncat(lv->level, "+", sizeof lv->level - strlen(lv->level) - 1);
    strncat(lv->level, names[i], sizeof lv->level - strlen(lv->level) - 1);
  }
  if (!lv->level[0]) snprintf(lv->level, sizeof lv->level, "none");
  lv->available = (lv->layers & NC_SANDBOX_LAYERS_REQUIRED) == NC_SANDBOX_LAYERS_REQUIRED;
}

/* The probe program: checks each layer from inside and prints "<layer>=ok" or
 * "<layer>=fail:<detail>". Only numbers and the caller's namespace ids (readlink text such
 * as "net:[4026531840]", checked to be [a-z]+:\[[0-9]+\]) are substituted in. */
static int probe_code(char *buf, size_t cap, const struct sbx_env *env, uint32_t uid,
                      const struct run_params *p) {
  static const char *ns[] = {"user", "mnt", "pid", "net", "ipc", "uts", "cgroup"};
  char host[512] = "";
  for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
    char path[64], link[64];
    snprintf(path, sizeof path, "/proc/self/ns/%s", ns[i]);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n <= 0) return -1;
    link[n] = 0;
    for (ssize_t k = 0; k < n; k++)
      if (!((link[k] >= 'a' && link[k] <= 'z') || (link[k] >= '0' && link[k] <= '9') ||
            link[k] == ':' || link[k] == '[' || link[k] == ']'))
        return -1;
    size_t l = strlen(host);
    snprintf(host + l, sizeof host - l, "%s'%s': '%s'", i ? ", " : "", ns[i], link);
  }
  const nc_sandbox_cfg *c = &env->cfg;
  const unsigned long long cpu = (p->timeout_ms + 999) / 1000 + 1;
  int n = snprintf(
      buf, cap,
      "import errno, os, resource as R, socket\n"
      "host = {%s}\n"
      "same = [k for k, v in host.items() if os.readlink('/proc/self/ns/' + k) == v]\n"
      "ifs = [l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]]\n"
      "routes = open('/proc/net/route').read().splitlines()[1:]\n"
      "ok = not same and ifs == ['lo'] and not routes\n"
      "print('ns=' + ('ok' if ok else 'fail:shared=%%s ifaces=%%s' %% (same, ifs)))\n"
      "st = open('/proc/self/status').read()\n"
      "flt = 'Seccomp:\\t2' in st and 'NoNewPrivs:\\t1' in st\n"
      "try:\n"
      "    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close(); e = 0\n"
      "except OSError as x:\n"
      "    e = x.errno\n"
      "print('seccomp=' + ('ok' if flt and e == errno.EACCES else 'fail:filter=%%s inet=%%s' %% (flt, e)))\n"
      "want = {R.RLIMIT_AS: (%llu, %llu), R.RLIMIT_CPU: (%llu, %llu), R.RLIMIT_FSIZE: (%llu, %llu),\n"
      "        R.RLIMIT_NOFILE: (%d, %d), R.RLIMIT_NPROC: (%d, %d), R.RLIMIT_CORE: (0, 0)}\n"
      "bad = [k for k, v in want.items() if R.getrlimit(k) != v]\n"
      "print('rlimits=' + ('ok' if not bad else 'fail:%%s' %% bad))\n"
      "m = open('/proc/self/uid_map').read().split()\n"
      "u = os.getuid()\n"
      "print('uid=' + ('ok' if u == %u and os.geteuid() == u and len(m) == 3 and m[2] == '1'"
      " else 'fail:uid=%%d map=%%s' %% (u, m)))\n",
      host, (unsigned long long)p->memory, (unsigned long long)p->memory, cpu, cpu + 1,
      (unsigned long long)c->file_size_bytes, (unsigned long long)c->file_size_bytes, c->nofile,
      c->nofile, c->nproc, c->nproc, (unsigned)uid);
  return (n > 0 && (size_t)n < cap) ? n : -1;
}

static int selftest_env(const struct sbx_env *env, nc_sandbox_level *lv) {
  memset(lv, 0, sizeof *lv);
  detect_cgroup(lv->cgroup, sizeof lv->cgroup);
  if (env->static_reason[0]) {
    snprintf(lv->reason, sizeof lv->reason, "%s", env->static_reason);
    compose_level(lv);
    return NC_ESTATE;
  }
  /* The probe needs its uid in the program text, so take the uid here and run under it. */
  nc_sandbox_req req;
  memset(&req, 0, sizeof req);
  req.lang = NC_SANDBOX_PYTHON3;
  req.timeout_ms = env->cfg.max_timeout_ms < 20000 ? env->cfg.max_timeout_ms : 20000;
  if (req.timeout_ms == 0) req.timeout_ms = 1;
  struct run_params p;
  char why[256];
  nc_sandbox_result res;
  memset(&res, 0, sizeof res);
  char code[4096];
  int rc = validate(&env->cfg, &req, &p, why, sizeof why);
  uint32_t uid = 0;
  int lock_fd = -1;
  if (rc == NC_OK) rc = uid_acquire(env, (uint32_t)getpid(), &uid, &lock_fd);
  if (rc != NC_OK) {
    snprintf(lv->reason, sizeof lv->reason, "self-test could not take a pool uid (%s)",
             nc_strerror(rc));
  } else {
    int n = probe_code(code, sizeof code, env, uid, &p);
    if (n < 0) {
      snprintf(lv->reason, sizeof lv->reason, "cannot read this process's namespace ids");
      rc = NC_EINTERNAL;
    } else {
      req.code = code;
      req.code_len = (size_t)n;
      rc = run_with_uid(env, &req, &p, uid, &res);
    }
    close(lock_fd);
  }
  if (rc == NC_OK) {
    static const char *names[] = {"ns=", "seccomp=", "rlimits=", "uid="};
    const char *o = (const char *)res.stdout_data;
    for (int i = 0; i < 4; i++) {
      const char *hit = strstr(o, names[i]);
      size_t k = strlen(names[i]);
      if (hit && (hit == o || hit[-1] == '\n') && strncmp(hit + k, "ok\n", 3) == 0)
        lv->layers |= 1u << i;
      else if (!lv->reason[0]) {
        char line[200] = "";
        if (hit) last_line((const uint8_t *)hit, strcspn(hit, "\n"), line, sizeof line);
        setf(lv->reason, sizeof lv->reason, "probe: %s",
                 line[0] ? line : (res.error[0] ? res.error : "no output"));
      }
    }
  } else if (!lv->reason[0]) {
    const char *e = res.error;
    const char *pre = "sandbox unavailable: ";
    if (strncmp(e, pre, strlen(pre)) == 0) e += strlen(pre);
    setf(lv->reason, sizeof lv->reason, "%s", e[0] ? e : nc_strerror(rc));
  }
  nc_sandbox_result_free(&res);
  compose_level(lv);
  if (!lv->available && !lv->reason[0]) snprintf(lv->reason, sizeof lv->reason, "incomplete");
  if (lv->available) lv->reason[0] = 0;
  return lv->available ? NC_OK : NC_ESTATE;
}

int nc_sandbox_selftest(nc_sandbox_cfg cfg, nc_sandbox_level *out) {
  if (!out) return NC_EINVAL;
  memset(out, 0, sizeof *out);
  struct sbx_env *env = malloc(sizeof *env);
  if (!env) return NC_ENOMEM;
  int rc = env_init(env, cfg, out->reason, sizeof out->reason);
  if (rc == NC_OK) rc = selftest_env(env, out);
  else snprintf(out->level, sizeof out->level, "none");
  env_fini(env);
  free(env);
  return rc;
}

/* ---- handle ------------------------------------------------------------------------------- */

int nc_sandbox_create(nc_sandbox_cfg cfg, nc_sandbox **out) {
  if (!out) return NC_EINVAL;
  *out = NULL;
  nc_sandbox *sb = calloc(1, sizeof *sb);
  if (!sb) return NC_ENOMEM;
  char why[256] = "";
  int rc = env_init(&sb->env, cfg, why, sizeof why);
  if (rc) {
    env_fini(&sb->env);
    free(sb);
    return rc;
  }
  if (pthread_mutex_init(&sb->mu, NULL) != 0) {
    env_fini(&sb->env);
    free(sb);
    return NC_ENOMEM;
  }
  sb->max_concurrent = sb->env.cfg.max_concurrent;
  sb->next_uid = (uint32_t)getpid() * 7u;
  selftest_env(&sb->env, &sb->level);
  *out = sb;
  return NC_OK;
}

void nc_sandbox_free(nc_sandbox *sb) {
  if (!sb) return;
  pthread_mutex_destroy(&sb->mu);
  env_fini(&sb->env);
  free(sb);
}

int nc_sandbox_level_get(const nc_sandbox *sb, nc_sandbox_level *out) {
  if (!sb || !out) return NC_EINVAL;
  pthread_mutex_lock((pthread_mutex_t *)&sb->mu);
  *out = sb->level;
  pthread_mutex_unlock((pthread_mutex_t *)&sb->mu);
  return NC_OK;
}

int nc_sandbox_recheck(nc_sandbox *sb, nc_sandbox_level *out) {
  if (!sb) return NC_EINVAL;
  nc_sandbox_level lv;
  int rc = selftest_env(&sb->env, &lv);
  pthread_mutex_lock(&sb->mu);
  sb->level = lv;
  pthread_mutex_unlock(&sb->mu);
  if (out) *out = lv;
  return rc;
}

int nc_sandbox_set_max_concurrent(nc_sandbox *sb, int n) {
  if (!sb || n < 1 || (uint32_t)n > sb->env.cfg.uid_count) return NC_EINVAL;
  pthread_mutex_lock(&sb->mu);
  sb->max_concurrent = n;
  pthread_mutex_unlock(&sb->mu);
  return NC_OK;
}

void nc_sandbox_get_stats(const nc_sandbox *sb, nc_sandbox_stats *out) {
  if (!out) return;
  memset(out, 0, sizeof *out);
  if (!sb) return;
  pthread_mutex_lock((pthread_mutex_t *)&sb->mu);
  *out = sb->stats;
  out->max_concurrent = sb->max_concurrent;
  out->in_flight = sb->in_flight;
  pthread_mutex_unlock((pthread_mutex_t *)&sb->mu);
}

int nc_sandbox_run(nc_sandbox *sb, const nc_sandbox_req *req, nc_sandbox_result *out) {
  if (!out) return NC_EINVAL;
  memset(out, 0, sizeof *out);
  out->exit_code = -1;
  if (!sb || !req) {
    setf(out->error, sizeof out->error, "invalid argument: NULL %s", sb ? "request" : "sandbox");
    return NC_EINVAL;
  }
  pthread_mutex_lock(&sb->mu);
  if (!sb->level.available) {
    sb->stats.unavailable++;
    setf(out->error, sizeof out->error, "sandbox unavailable: %s", sb->level.reason);
    pthread_mutex_unlock(&sb->mu);
    return NC_ESTATE;
  }
  if (sb->in_flight >= sb->max_concurrent) {
    sb->stats.busy++;
    setf(out->error, sizeof out->error, "sandbox busy: %d executions in flight (limit %d)",
         sb->in_flight, sb->max_concurrent);
    pthread_mutex_unlock(&sb->mu);
    return NC_EBUSY;
  }
  sb->in_flight++;
  uint32_t start = sb->next_uid++;
  pthread_mutex_unlock(&sb->mu);

  int rc = run_env(&sb->env, start, req, out);

  pthread_mutex_lock(&sb->mu);
  sb->in_flight--;
  if (out->uid) sb->stats.runs++;
  if (rc == NC_EBUSY) sb->stats.busy++;
  if (rc == NC_ESTATE) sb->stats.unavailable++;
  if (out->timed_out) sb->stats.timeouts++;
  pthread_mutex_unlock(&sb->mu);
  return rc;
}

void nc_sandbox_result_free(nc_sandbox_result *r) {
  if (!r) return;
  free(r->stdout_data);
  free(r->stderr_data);
  memset(r, 0, sizeof *r);
}
