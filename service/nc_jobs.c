/* nc_jobs.c — job manager: queue, child processes, event pipes, subscribers. See nc_jobs.h;
 * the child protocol is in nc_jobio.h. */
#include "nc_jobs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nc_jobio.h"
#include "nc_store_int.h"

extern char **environ;

#define MAX_RUNNING_CAP 64
#define MAX_JOB_METRICS 1024
#define READ_CHUNK (64u << 10)

typedef enum { STOP_NONE, STOP_CANCEL, STOP_SHUTDOWN, STOP_PROTOCOL, STOP_STORE } stop_reason;

typedef struct job_rt {
  struct job_rt *next;
  char id[NC_JOB_ID_LEN + 1];
  Nanochat__V1__JobInfo *info;  /* manager-owned copy of the stored JobInfo */
  pid_t pid;
  int pidfd;                    /* -1 when pidfd_open is unavailable */
  int evfd;                     /* read end of the event pipe; -1 once closed */
  bool exit_seen;               /* pidfd became readable */
  uint8_t *buf;
  size_t blen, bcap;
  stop_reason stop;
  char stop_msg[320];
  int64_t term_at;              /* CLOCK_MONOTONIC ms of the SIGTERM; 0 = none sent */
  int grace_ms;
  bool killed;                  /* SIGKILL sent after the grace period */
  char last_log[NC_JOBIO_MAX_MESSAGE + 1];
} job_rt;

typedef struct unsaved {
  struct unsaved *next;
  Nanochat__V1__JobInfo *info;  /* final state that could not be written yet */
} unsaved;

struct nc_jobs_sub {
  nc_jobs_sub *next, *prev;
  char id[NC_JOB_ID_LEN + 1];
  nc_jobs_notify_fn fn;
  void *arg;
};

struct nc_jobs {
  nc_store *store;
  char *data_dir;
  char *exe[NC_JOBS_KIND_COUNT];
  char **envp;
  unsigned max_running, max_queued;
  int cancel_grace_ms, shutdown_grace_ms;

  pthread_mutex_t mu;           /* running list, queue transitions, unsaved, flags */
  pthread_cond_t cv;            /* broadcast when a job reaches a final state */
  pthread_t thr;
  bool thr_started;
  int wake_rd, wake_wr;
  job_rt *running;
  unsaved *unsaved;
  bool stopping, stopped;
  atomic_uint n_running, n_queued;
  uint32_t interrupted_at_start;
  uint64_t started, finished, events;

  pthread_mutex_t sub_mu;       /* subscriptions; callbacks run with it held */
  nc_jobs_sub *subs;
};

/* ---- small helpers ------------------------------------------------------------------- */

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool nc_job_state_final(int st) {
  return st == NANOCHAT__V1__JOB_STATE__JOB_SUCCEEDED || st == NANOCHAT__V1__JOB_STATE__JOB_FAILED ||
         st == NANOCHAT__V1__JOB_STATE__JOB_CANCELLED ||
         st == NANOCHAT__V1__JOB_STATE__JOB_INTERRUPTED;
}

const char *nc_job_state_name(int st) {
  static const char *const names[] = {"UNSPECIFIED", "QUEUED", "RUNNING", "SUCCEEDED",
                                      "FAILED", "CANCELLED", "INTERRUPTED"};
  return st >= 0 && st <= 6 ? names[st] : "UNSPECIFIED";
}

static void wake(nc_jobs *m) {
  char c = 1;
  ssize_t r = write(m->wake_wr, &c, 1);
  (void)r;  /* a full pipe already means "wake up" */
}

static void notify(nc_jobs *m, const char *id, uint64_t last_seq, bool ended) {
  pthread_mutex_lock(&m->sub_mu);
  for (nc_jobs_sub *s = m->subs; s; s = s->next)
    if (!strcmp(s->id, id)) s->fn(s->arg, id, last_seq, ended);
  pthread_mutex_unlock(&m->sub_mu);
}

/* Deep copy of a JobInfo whose pointers may be borrowed (pack + unpack). */
static Nanochat__V1__JobInfo *info_clone(const Nanochat__V1__JobInfo *v) {
  size_t n = protobuf_c_message_get_packed_size(&v->base);
  uint8_t *b = malloc(n ? n : 1);
  if (!b) return NULL;
  protobuf_c_message_pack(&v->base, b);
  Nanochat__V1__JobInfo *c = nanochat__v1__job_info__unpack(NULL, n, b);
  free(b);
  return c;
}

static void state_event(Nanochat__V1__JobEvent *ev, int state, const char *msg) {
  Nanochat__V1__JobEvent init = NANOCHAT__V1__JOB_EVENT__INIT;
  *ev = init;
  ev->has_kind = 1;
  ev->kind = NANOCHAT__V1__EVENT_KIND__EVENT_STATE;
  ev->has_state = 1;
  ev->state = state;
  ev->message = (char *)msg;
}

/* Writes `view` (a modified shallow copy of *info) plus events; on success *info becomes the
 * stored copy and subscribers are notified. Caller holds mu. */
static int commit_job(nc_jobs *m, Nanochat__V1__JobInfo **info, const Nanochat__V1__JobInfo *view,
                      unsigned flags, Nanochat__V1__JobEvent *const *evs, size_t n) {
  Nanochat__V1__JobInfo *c = info_clone(view);
  if (!c) return st_fail(NC_ENOMEM, "job: out of memory");
  /* final states must land even in a full store (they use its reserve) */
  if (nc_job_state_final(c->state)) flags |= NC_JOB_CRITICAL;
  int err = nc_store_job_write(m->store, c, flags, evs, n);
  if (err) {
    nc_store_free_msg(c);
    return err;
  }
  if (info) {
    nc_store_free_msg(*info);
    *info = c;
  }
  notify(m, c->job_id, c->last_seq, nc_job_state_final(c->state));
  if (!info) nc_store_free_msg(c);
  return NC_OK;
}

static void set_final(Nanochat__V1__JobInfo *v, int state, const char *reason) {
  v->has_state = 1;
  v->state = state;
  v->error = (char *)reason;
  v->has_finished_ms = 1;
  v->finished_ms = st_now_ms();
  v->has_pid = 1;
  v->pid = 0;
}

static void job_dir(const nc_jobs *m, const char *id, char *out, size_t cap) {
  snprintf(out, cap, "%s/jobs/%s", m->data_dir, id);
}

/* ---- environment for children -------------------------------------------------------- */

static bool secret_name(const char *kv) {
  static const char *const bad[] = {"TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL",
                                    "API_KEY", "APIKEY"};
  const char *eq = strchr(kv, '=');
  size_t n = eq ? (size_t)(eq - kv) : strlen(kv);
  char name[256];
  if (n >= sizeof name) return true;  /* absurd names are dropped too */
  for (size_t i = 0; i < n; i++) name[i] = (char)(kv[i] >= 'a' && kv[i] <= 'z' ? kv[i] - 32 : kv[i]);
  name[n] = 0;
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    if (strstr(name, bad[i])) return true;
  return false;
}

static char **build_env(const char *const *src, bool filter) {
  size_t n = 0;
  while (src && src[n]) n++;
  char **out = calloc(n + 1, sizeof *out);
  if (!out) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (filter && secret_name(src[i])) continue;
    if (!(out[k] = strdup(src[i]))) {
      for (size_t j = 0; j < k; j++) free(out[j]);
      free(out);
      return NULL;
    }
    k++;
  }
  return out;
}

static void free_env(char **e) {
  if (!e) return;
  for (size_t i = 0; e[i]; i++) free(e[i]);
  free(e);
}

/* ---- spawning ----------------------------------------------------------------------- */

static int write_request(const char *path, const Nanochat__V1__JobInfo *j) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  size_t off = 0, n = j->has_request ? j->request.len : 0;
  while (off < n) {
    ssize_t w = write(fd, j->request.data + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      close(fd);
      return -1;
    }
    off += (size_t)w;
  }
  return close(fd);
}

/* posix_spawn the job program; on success *pid and *evfd (read end) are set. On failure
 * returns an errno value and fills why. */
static int spawn_child(nc_jobs *m, job_rt *rt, const char *exe, pid_t *pid, int *evfd, char *why,
                       size_t whylen) {
  char dir[PATH_MAX], req[PATH_MAX + 16], logp[PATH_MAX + 16];
  job_dir(m, rt->id, dir, sizeof dir);
  snprintf(req, sizeof req, "%s/request.pb", dir);
  snprintf(logp, sizeof logp, "%s/output.log", dir);
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    int e = errno;
    snprintf(why, whylen, "cannot create the job directory: %s", strerror(e));
    return e;
  }
  if (write_request(req, rt->info) != 0) {
    int e = errno;
    snprintf(why, whylen, "cannot write the request file: %s", strerror(e));
    return e;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) {
    int e = errno;
    snprintf(why, whylen, "pipe: %s", strerror(e));
    return e;
  }
  /* keep the write end away from fd 3 so dup2 onto 3 always clears FD_CLOEXEC */
  int wfd = fcntl(p[1], F_DUPFD_CLOEXEC, 10);
  close(p[1]);
  if (wfd < 0) {
    int e = errno;
    close(p[0]);
    snprintf(why, whylen, "fcntl: %s", strerror(e));
    return e;
  }
  fcntl(p[0], F_SETFL, O_NONBLOCK);

  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&at);
  posix_spawn_file_actions_adddup2(&fa, wfd, NC_JOBIO_EVENTS_FD);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, logp, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addchdir_np(&fa, dir);
  posix_spawn_file_actions_addclosefrom_np(&fa, NC_JOBIO_EVENTS_FD + 1);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &all);
  posix_spawnattr_setpgroup(&at, 0);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                    POSIX_SPAWN_SETPGROUP);
  char fdnum[8];
  snprintf(fdnum, sizeof fdnum, "%d", NC_JOBIO_EVENTS_FD);
  char *argv[] = {(char *)exe, "--job-id", rt->id, "--data-dir", m->data_dir,
                  "--request", req, "--events-fd", fdnum, NULL};
  int e = posix_spawn(pid, exe, &fa, &at, argv, m->envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(wfd);
  if (e != 0) {
    close(p[0]);
    snprintf(why, whylen, "cannot start %s: %s", exe, strerror(e));
    return e;
  }
  *evfd = p[0];
  return 0;
}

/* Starts one queued job (consumes j). Caller holds mu. */
static void start_job(nc_jobs *m, Nanochat__V1__JobInfo *j) {
  job_rt *rt = calloc(1, sizeof *rt);
  if (!rt) {
    nc_store_free_msg(j);
    return;
  }
  memcpy(rt->id, j->job_id, NC_JOB_ID_LEN);
  rt->info = j;
  rt->pidfd = rt->evfd = -1;
  const char *exe = (j->kind >= 0 && j->kind < NC_JOBS_KIND_COUNT) ? m->exe[j->kind] : NULL;
  char why[PATH_MAX + 128];
  int e;
  if (!exe) {
    snprintf(why, sizeof why, "no program is configured for job kind %d", (int)j->kind);
    e = ENOENT;
  } else {
    e = spawn_child(m, rt, exe, &rt->pid, &rt->evfd, why, sizeof why);
  }
  if (e != 0) {
    Nanochat__V1__JobInfo view = *rt->info;
    set_final(&view, NANOCHAT__V1__JOB_STATE__JOB_FAILED, why);
    Nanochat__V1__JobEvent ev;
    state_event(&ev, NANOCHAT__V1__JOB_STATE__JOB_FAILED, why);
    Nanochat__V1__JobEvent *evp = &ev;
    if (commit_job(m, &rt->info, &view, NC_JOB_QUEUE_REMOVE, &evp, 1) != NC_OK)
      nc_store_queue_drop(m->store, rt->id);  /* never retry a job that cannot start forever */
    m->finished++;
    pthread_cond_broadcast(&m->cv);
    nc_store_free_msg(rt->info);
    free(rt);
    return;
  }
#ifdef SYS_pidfd_open
  rt->pidfd = (int)syscall(SYS_pidfd_open, rt->pid, 0);
  if (rt->pidfd >= 0) fcntl(rt->pidfd, F_SETFD, FD_CLOEXEC);
#endif
  rt->next = m->running;
  m->running = rt;
  atomic_fetch_add(&m->n_running, 1);
  m->started++;
  Nanochat__V1__JobInfo view = *rt->info;
  view.has_state = 1;
  view.state = NANOCHAT__V1__JOB_STATE__JOB_RUNNING;
  view.has_started_ms = 1;
  view.started_ms = st_now_ms();
  view.has_pid = 1;
  view.pid = rt->pid;
  Nanochat__V1__JobEvent ev;
  state_event(&ev, NANOCHAT__V1__JOB_STATE__JOB_RUNNING, NULL);
  Nanochat__V1__JobEvent *evp = &ev;
  int err = commit_job(m, &rt->info, &view, NC_JOB_QUEUE_REMOVE, &evp, 1);
  if (err) {
    /* the job cannot be recorded as running: stop it; finalize reports the store error */
    rt->stop = STOP_STORE;
    snprintf(rt->stop_msg, sizeof rt->stop_msg, "%s", nc_store_last_error());
    kill(-rt->pid, SIGKILL);
    rt->killed = true;
    rt->term_at = mono_ms();
  }
}

/* Starts queued jobs while slots are free. Caller holds mu. */
static void start_next_locked(nc_jobs *m) {
  for (int guard = 0; guard < 1000 && !m->stopping; guard++) {
    if (atomic_load(&m->n_running) >= m->max_running) return;
    if (!nc_store_has_reserve(m->store)) return;   /* full store: queued jobs wait */
    char ids[1][NC_JOB_ID_LEN + 1];
    size_t n = 0, total = 0;
    if (nc_store_job_queue(m->store, ids, 1, &n, &total) != NC_OK) return;
    atomic_store(&m->n_queued, (unsigned)total);
    if (n == 0) return;
    Nanochat__V1__JobInfo *j = NULL;
    int err = nc_store_job_get(m->store, ids[0], &j);
    if (err == NC_OK && j->state == NANOCHAT__V1__JOB_STATE__JOB_QUEUED) {
      atomic_store(&m->n_queued, (unsigned)(total - 1));
      start_job(m, j);
      continue;
    }
    /* stale entry: job missing, unreadable or not queued any more */
    nc_store_free_msg(j);
    if (nc_store_queue_drop(m->store, ids[0]) != NC_OK) return;
  }
}

/* ---- running jobs: events, reaping, final states ------------------------------------- */

static void stop_job(job_rt *rt, stop_reason why, const char *msg, bool hard, int grace_ms) {
  if (rt->stop == STOP_NONE || why == STOP_PROTOCOL || why == STOP_STORE) {
    rt->stop = why;
    if (msg) snprintf(rt->stop_msg, sizeof rt->stop_msg, "%s", msg);
  }
  if (hard) {
    if (!rt->killed) kill(-rt->pid, SIGKILL);
    rt->killed = true;
    if (!rt->term_at) rt->term_at = mono_ms();
  } else if (!rt->term_at) {
    kill(-rt->pid, SIGTERM);
    rt->term_at = mono_ms();
    rt->grace_ms = grace_ms;
  }
}

/* Applies and stores a batch of child events. */
static void apply_events(nc_jobs *m, job_rt *rt, Nanochat__V1__JobEvent **evs, size_t n) {
  Nanochat__V1__JobInfo view = *rt->info;
  size_t nm = rt->info->n_metrics;
  Nanochat__V1__JobInfo__MetricsEntry *ents = NULL, **eptr = NULL;
  size_t cap = nm;
  for (size_t i = 0; i < n; i++) cap += evs[i]->n_metrics;
  if (cap > MAX_JOB_METRICS) cap = MAX_JOB_METRICS;
  if (cap) {
    ents = calloc(cap, sizeof *ents);
    eptr = calloc(cap, sizeof *eptr);
    if (!ents || !eptr) {
      free(ents);
      free(eptr);
      stop_job(rt, STOP_STORE, "job manager out of memory", true, 0);
      return;
    }
  }
  for (size_t i = 0; i < nm && i < cap; i++) {
    Nanochat__V1__JobInfo__MetricsEntry e = NANOCHAT__V1__JOB_INFO__METRICS_ENTRY__INIT;
    e.key = rt->info->metrics[i]->key;
    e.has_value = 1;
    e.value = rt->info->metrics[i]->value;
    ents[i] = e;
  }
  bool too_many = false;
  bool ck_from_event = false; /* else view.checkpoint is rt->info's own (freed by commit_job) */
  for (size_t i = 0; i < n; i++) {
    Nanochat__V1__JobEvent *ev = evs[i];
    switch (ev->kind) {
      case NANOCHAT__V1__EVENT_KIND__EVENT_PROGRESS:
        if (ev->progress) view.progress = ev->progress;
        break;
      case NANOCHAT__V1__EVENT_KIND__EVENT_CHECKPOINT:
        view.checkpoint = ev->checkpoint;
        ck_from_event = true;
        break;
      case NANOCHAT__V1__EVENT_KIND__EVENT_LOG:
        snprintf(rt->last_log, sizeof rt->last_log, "%s", ev->message ? ev->message : "");
        break;
      default:
        break;
    }
    for (size_t k = 0; k < ev->n_metrics; k++) {
      const char *key = ev->metrics[k]->key;
      size_t j = 0;
      while (j < nm && strcmp(ents[j].key, key) != 0) j++;
      if (j == nm) {
        if (nm == cap) {
          too_many = true;
          continue;
        }
        Nanochat__V1__JobInfo__MetricsEntry e = NANOCHAT__V1__JOB_INFO__METRICS_ENTRY__INIT;
        e.key = (char *)key;
        ents[nm++] = e;
      }
      ents[j].has_value = 1;
      ents[j].value = ev->metrics[k]->has_value ? ev->metrics[k]->value : 0.0;
    }
  }
  for (size_t i = 0; i < nm; i++) eptr[i] = &ents[i];
  view.n_metrics = nm;
  view.metrics = eptr;
  /* the checkpoint inside JobInfo names its job, like the checkpoints database entry */
  char *saved_ck_job = ck_from_event ? view.checkpoint->job_id : NULL;
  if (ck_from_event) view.checkpoint->job_id = rt->id;
  int err = commit_job(m, &rt->info, &view, 0, evs, n);
  if (ck_from_event) view.checkpoint->job_id = saved_ck_job;
  free(ents);
  free(eptr);
  if (err) {
    char msg[400];
    snprintf(msg, sizeof msg, "job events could not be stored: %s", nc_store_last_error());
    stop_job(rt, STOP_STORE, msg, false, m->cancel_grace_ms);
  } else {
    m->events += n;
    if (too_many) {
      char msg[128];
      snprintf(msg, sizeof msg, "job protocol error: more than %d distinct metric names",
               MAX_JOB_METRICS);
      stop_job(rt, STOP_PROTOCOL, msg, true, 0);
    }
  }
}

/* Reads what is in the pipe (bounded per call), decodes whole frames and stores them. */
static void read_events(nc_jobs *m, job_rt *rt) {
  if (rt->evfd < 0) return;
  bool eof = false;
  for (int rounds = 0; rounds < 16 && !eof; rounds++) {
    if (rt->bcap - rt->blen < READ_CHUNK) {
      size_t nc = rt->blen + READ_CHUNK;
      uint8_t *nb = realloc(rt->buf, nc);
      if (!nb) {
        stop_job(rt, STOP_STORE, "job manager out of memory", true, 0);
        eof = true;
        break;
      }
      rt->buf = nb;
      rt->bcap = nc;
    }
    ssize_t r = read(rt->evfd, rt->buf + rt->blen, rt->bcap - rt->blen);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (r <= 0) {
      eof = true;
      break;
    }
    rt->blen += (size_t)r;
    /* decode every whole frame */
    size_t off = 0, nev = 0, evcap = 0;
    Nanochat__V1__JobEvent **evs = NULL;
    char err[300];
    bool bad = false;
    while (off < rt->blen) {
      size_t used;
      Nanochat__V1__JobEvent *ev;
      if (nc_jobio_frame_decode(rt->buf + off, rt->blen - off, &used, &ev, err, sizeof err)) {
        bad = true;
        break;
      }
      if (!used) break;
      if (nev == evcap) {
        evcap = evcap ? evcap * 2 : 16;
        void *ne = realloc(evs, evcap * sizeof *evs);
        if (!ne) {
          protobuf_c_message_free_unpacked(&ev->base, NULL);
          snprintf(err, sizeof err, "job manager out of memory");
          bad = true;
          break;
        }
        evs = ne;
      }
      evs[nev++] = ev;
      off += used;
    }
    if (nev) apply_events(m, rt, evs, nev);
    for (size_t i = 0; i < nev; i++) protobuf_c_message_free_unpacked(&evs[i]->base, NULL);
    free(evs);
    if (bad) {
      char msg[400];
      snprintf(msg, sizeof msg, "job protocol error: %s", err);
      stop_job(rt, STOP_PROTOCOL, msg, true, 0);
      rt->blen = 0;
      eof = true;  /* accept nothing more from this child */
      break;
    }
    memmove(rt->buf, rt->buf + off, rt->blen - off);
    rt->blen -= off;
  }
  if (eof) {
    close(rt->evfd);
    rt->evfd = -1;
  }
}

/* Reaps the child if it has exited. Caller holds mu. */
static bool try_reap(job_rt *rt, int *wstatus, bool *lost) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  *lost = false;
  if (waitid(P_PID, (id_t)rt->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) {
    if (errno == ECHILD) {  /* somebody else reaped it (SIGCHLD ignored?) */
      *lost = true;
      return true;
    }
    return false;
  }
  if (si.si_pid == 0) return false;
  kill(-rt->pid, SIGKILL);  /* leftovers of its process group; the zombie still holds the pgid */
  int st = 0;
  while (waitpid(rt->pid, &st, 0) < 0 && errno == EINTR) {
  }
  *wstatus = st;
  return true;
}

static void finish_job(nc_jobs *m, job_rt *rt, int wstatus, bool lost) {
  read_events(m, rt);  /* whatever is left in the pipe */
  if (rt->evfd >= 0) close(rt->evfd);
  rt->evfd = -1;
  if (rt->pidfd >= 0) close(rt->pidfd);
  rt->pidfd = -1;
  char reason[NC_JOBIO_MAX_MESSAGE + 128];
  int state;
  int code = lost ? -1 : WIFEXITED(wstatus) ? WEXITSTATUS(wstatus)
                       : WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : -1;
  switch (rt->stop) {
    case STOP_CANCEL:
      state = NANOCHAT__V1__JOB_STATE__JOB_CANCELLED;
      snprintf(reason, sizeof reason, "%s", rt->killed ? "cancelled (killed after the grace period)"
                                                       : "cancelled");
      break;
    case STOP_SHUTDOWN:
      state = NANOCHAT__V1__JOB_STATE__JOB_INTERRUPTED;
      snprintf(reason, sizeof reason, "server shutdown");
      break;
    case STOP_PROTOCOL:
    case STOP_STORE:
      state = NANOCHAT__V1__JOB_STATE__JOB_FAILED;
      snprintf(reason, sizeof reason, "%s", rt->stop_msg);
      break;
    default:
      if (lost) {
        state = NANOCHAT__V1__JOB_STATE__JOB_FAILED;
        snprintf(reason, sizeof reason, "exit status lost (is SIGCHLD ignored?)");
      } else if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) {
        state = NANOCHAT__V1__JOB_STATE__JOB_SUCCEEDED;
        reason[0] = 0;
      } else if (WIFEXITED(wstatus)) {
        state = NANOCHAT__V1__JOB_STATE__JOB_FAILED;
        if (rt->last_log[0]) snprintf(reason, sizeof reason, "%s", rt->last_log);
        else snprintf(reason, sizeof reason, "exited with code %d", WEXITSTATUS(wstatus));
      } else {
        state = NANOCHAT__V1__JOB_STATE__JOB_FAILED;
        snprintf(reason, sizeof reason, "killed by signal %d", WTERMSIG(wstatus));
      }
  }
  Nanochat__V1__JobInfo view = *rt->info;
  set_final(&view, state, reason[0] ? reason : NULL);
  view.has_exit_code = code >= 0;
  view.exit_code = code;
  Nanochat__V1__JobEvent ev;
  state_event(&ev, state, reason[0] ? reason : NULL);
  Nanochat__V1__JobEvent *evp = &ev;
  if (commit_job(m, &rt->info, &view, NC_JOB_QUEUE_REMOVE, &evp, 1) != NC_OK) {
    unsaved *u = calloc(1, sizeof *u);
    if (u && (u->info = info_clone(&view))) {
      u->next = m->unsaved;
      m->unsaved = u;
      notify(m, rt->id, rt->info->last_seq, true);
    } else {
      free(u);
    }
  }
  char dir[PATH_MAX], req[PATH_MAX + 16];
  job_dir(m, rt->id, dir, sizeof dir);
  snprintf(req, sizeof req, "%s/request.pb", dir);
  unlink(req);
  /* unlink from the running list */
  for (job_rt **pp = &m->running; *pp; pp = &(*pp)->next)
    if (*pp == rt) {
      *pp = rt->next;
      break;
    }
  atomic_fetch_sub(&m->n_running, 1);
  m->finished++;
  nc_store_free_msg(rt->info);
  free(rt->buf);
  free(rt);
  pthread_cond_broadcast(&m->cv);
}

static void retry_unsaved(nc_jobs *m) {
  for (unsaved **pp = &m->unsaved; *pp;) {
    unsaved *u = *pp;
    Nanochat__V1__JobEvent ev;
    state_event(&ev, u->info->state, u->info->error);
    Nanochat__V1__JobEvent *evp = &ev;
    if (commit_job(m, NULL, u->info, NC_JOB_QUEUE_REMOVE, &evp, 1) == NC_OK) {
      *pp = u->next;
      nc_store_free_msg(u->info);
      free(u);
    } else {
      pp = &u->next;
    }
  }
}

static void *manager_main(void *arg) {
  nc_jobs *m = arg;
  pthread_mutex_lock(&m->mu);
  for (;;) {
    start_next_locked(m);
    if (m->stopping && !m->running) break;
    struct pollfd pfd[1 + 2 * MAX_RUNNING_CAP];
    job_rt *who[1 + 2 * MAX_RUNNING_CAP];
    bool is_pid[1 + 2 * MAX_RUNNING_CAP];
    nfds_t np = 0;
    pfd[np].fd = m->wake_rd;
    pfd[np].events = POLLIN;
    who[np] = NULL;
    is_pid[np++] = false;
    int timeout = -1;
    int64_t now = mono_ms();
    for (job_rt *rt = m->running; rt && np + 2 <= 1 + 2 * MAX_RUNNING_CAP; rt = rt->next) {
      if (rt->evfd >= 0) {
        pfd[np].fd = rt->evfd;
        pfd[np].events = POLLIN;
        who[np] = rt;
        is_pid[np++] = false;
      }
      if (rt->pidfd >= 0 && !rt->exit_seen) {
        pfd[np].fd = rt->pidfd;
        pfd[np].events = POLLIN;
        who[np] = rt;
        is_pid[np++] = true;
      } else if (timeout < 0 || timeout > 50) {
        timeout = 50;  /* no pidfd (or exited): poll waitid */
      }
      if (rt->term_at && !rt->killed) {
        int64_t left = rt->term_at + rt->grace_ms - now;
        int t = left < 0 ? 0 : left > 60000 ? 60000 : (int)left;
        if (timeout < 0 || t < timeout) timeout = t;
      }
    }
    if (m->unsaved && (timeout < 0 || timeout > 1000)) timeout = 1000;
    pthread_mutex_unlock(&m->mu);
    int pr = poll(pfd, np, timeout);
    pthread_mutex_lock(&m->mu);
    if (pr < 0 && errno != EINTR) {
      struct timespec ts = {0, 10000000};
      nanosleep(&ts, NULL);
    }
    if (pr > 0) {
      if (pfd[0].revents) {
        char buf[256];
        while (read(m->wake_rd, buf, sizeof buf) > 0) {
        }
      }
      for (nfds_t i = 1; i < np; i++) {
        if (!pfd[i].revents) continue;
        if (is_pid[i]) who[i]->exit_seen = true;
        else if (who[i]->evfd == pfd[i].fd) read_events(m, who[i]);
      }
    }
    now = mono_ms();
    for (job_rt *rt = m->running; rt; rt = rt->next)
      if (rt->term_at && !rt->killed && now >= rt->term_at + rt->grace_ms) {
        kill(-rt->pid, SIGKILL);
        rt->killed = true;
      }
    for (job_rt *rt = m->running, *next; rt; rt = next) {
      next = rt->next;
      if (rt->pidfd >= 0 && !rt->exit_seen) continue;
      int wst = 0;
      bool lost = false;
      if (try_reap(rt, &wst, &lost)) finish_job(m, rt, wst, lost);
    }
    if (m->unsaved) retry_unsaved(m);
  }
  pthread_mutex_unlock(&m->mu);
  return NULL;
}

/* ---- start / stop -------------------------------------------------------------------- */

/* RUNNING jobs of a dead server -> INTERRUPTED; queue entries and QUEUED jobs agree. */
static int recover(nc_jobs *m) {
  Nanochat__V1__JobInfo **jobs = NULL;
  size_t n = 0;
  int err = nc_store_job_list(m->store, 100000, &jobs, &n);
  if (err) return err;
  size_t qcap = n + 1;
  char (*q)[NC_JOB_ID_LEN + 1] = calloc(qcap, sizeof *q);
  size_t qn = 0, qtotal = 0;
  if (!q) err = st_fail(NC_ENOMEM, "job recovery: out of memory");
  if (!err) err = nc_store_job_queue(m->store, q, qcap, &qn, &qtotal);
  static const char *why = "the server stopped while the job ran";
  for (size_t i = 0; !err && i < n; i++) {
    Nanochat__V1__JobInfo *j = jobs[i];
    if (j->state == NANOCHAT__V1__JOB_STATE__JOB_RUNNING) {
      Nanochat__V1__JobInfo view = *j;
      set_final(&view, NANOCHAT__V1__JOB_STATE__JOB_INTERRUPTED, why);
      Nanochat__V1__JobEvent ev;
      state_event(&ev, NANOCHAT__V1__JOB_STATE__JOB_INTERRUPTED, why);
      Nanochat__V1__JobEvent *evp = &ev;
      err = commit_job(m, NULL, &view, NC_JOB_QUEUE_REMOVE, &evp, 1);
      if (!err) m->interrupted_at_start++;
    }
  }
  /* queue entries whose job is not QUEUED */
  for (size_t k = 0; !err && k < qn; k++) {
    bool ok = false;
    for (size_t i = 0; i < n && !ok; i++)
      ok = !strcmp(jobs[i]->job_id, q[k]) && jobs[i]->state == NANOCHAT__V1__JOB_STATE__JOB_QUEUED;
    if (!ok) err = nc_store_queue_drop(m->store, q[k]);
  }
  /* QUEUED jobs missing from the queue: append, oldest first (the list is newest first) */
  for (size_t i = n; !err && i-- > 0;) {
    Nanochat__V1__JobInfo *j = jobs[i];
    if (j->state != NANOCHAT__V1__JOB_STATE__JOB_QUEUED) continue;
    bool inq = false;
    for (size_t k = 0; k < qn && !inq; k++) inq = !strcmp(j->job_id, q[k]);
    if (!inq) err = commit_job(m, NULL, j, NC_JOB_QUEUE_PUSH, NULL, 0);
  }
  free(q);
  nc_store_free_msgs(jobs, n);
  if (!err) {
    size_t total = 0;
    err = nc_store_job_queue(m->store, NULL, 0, &qn, &total);
    atomic_store(&m->n_queued, (unsigned)total);
  }
  return err;
}

static void free_manager(nc_jobs *m) {
  free_env(m->envp);
  for (int i = 0; i < NC_JOBS_KIND_COUNT; i++) free(m->exe[i]);
  free(m->data_dir);
  if (m->wake_rd >= 0) close(m->wake_rd);
  if (m->wake_wr >= 0) close(m->wake_wr);
  while (m->subs) {
    nc_jobs_sub *s = m->subs;
    m->subs = s->next;
    free(s);
  }
  while (m->unsaved) {
    unsaved *u = m->unsaved;
    m->unsaved = u->next;
    nc_store_free_msg(u->info);
    free(u);
  }
  pthread_mutex_destroy(&m->mu);
  pthread_mutex_destroy(&m->sub_mu);
  pthread_cond_destroy(&m->cv);
  free(m);
}

int nc_jobs_start(const nc_jobs_opts *o, nc_jobs **out) {
  *out = NULL;
  if (!o || !o->store || !o->data_dir || !o->data_dir[0])
    return st_fail(NC_EINVAL, "job manager: store and data dir are required");
  if (o->max_running > MAX_RUNNING_CAP)
    return st_fail(NC_EINVAL, "job manager: max_running above %d", MAX_RUNNING_CAP);
  nc_jobs *m = calloc(1, sizeof *m);
  if (!m) return st_fail(NC_ENOMEM, "job manager: out of memory");
  m->wake_rd = m->wake_wr = -1;
  pthread_mutex_init(&m->mu, NULL);
  pthread_mutex_init(&m->sub_mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&m->cv, &ca);
  pthread_condattr_destroy(&ca);
  m->store = o->store;
  m->max_running = o->max_running ? o->max_running : 1;
  m->max_queued = o->max_queued ? o->max_queued : 64;
  m->cancel_grace_ms = o->cancel_grace_ms > 0 ? o->cancel_grace_ms : 10000;
  m->shutdown_grace_ms = o->shutdown_grace_ms > 0 ? o->shutdown_grace_ms : 10000;
  atomic_init(&m->n_running, 0);
  atomic_init(&m->n_queued, 0);
  int err = NC_OK;
  m->data_dir = realpath(o->data_dir, NULL);
  if (!m->data_dir) {
    err = st_fail(NC_ENOTFOUND, "job manager: data dir %s: %s", o->data_dir, strerror(errno));
    goto fail;
  }
  for (int i = 0; i < NC_JOBS_KIND_COUNT; i++) {
    if (!o->exe[i]) continue;
    char *rp = realpath(o->exe[i], NULL);
    m->exe[i] = rp ? rp : strdup(o->exe[i]);  /* a missing program fails at spawn, clearly */
    if (!m->exe[i]) {
      err = st_fail(NC_ENOMEM, "job manager: out of memory");
      goto fail;
    }
  }
  m->envp = o->env ? build_env(o->env, false) : build_env((const char *const *)environ, true);
  if (!m->envp) {
    err = st_fail(NC_ENOMEM, "job manager: out of memory");
    goto fail;
  }
  char jobs_dir[PATH_MAX];
  snprintf(jobs_dir, sizeof jobs_dir, "%s/jobs", m->data_dir);
  if (mkdir(jobs_dir, 0700) != 0 && errno != EEXIST) {
    err = st_fail(NC_EIO, "job manager: cannot create %s: %s", jobs_dir, strerror(errno));
    goto fail;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) {
    err = st_fail(NC_EIO, "job manager: pipe: %s", strerror(errno));
    goto fail;
  }
  m->wake_rd = p[0];
  m->wake_wr = p[1];
  pthread_mutex_lock(&m->mu);
  err = recover(m);
  pthread_mutex_unlock(&m->mu);
  if (err) goto fail;
  if (pthread_create(&m->thr, NULL, manager_main, m) != 0) {
    err = st_fail(NC_EIO, "job manager: cannot start its thread");
    goto fail;
  }
  m->thr_started = true;
  *out = m;
  return NC_OK;
fail:
  free_manager(m);
  return err;
}

void nc_jobs_shutdown(nc_jobs *m) {
  if (!m) return;
  pthread_mutex_lock(&m->mu);
  if (m->stopped) {
    pthread_mutex_unlock(&m->mu);
    return;
  }
  m->stopping = true;
  for (job_rt *rt = m->running; rt; rt = rt->next)
    stop_job(rt, STOP_SHUTDOWN, NULL, false, m->shutdown_grace_ms);
  pthread_mutex_unlock(&m->mu);
  wake(m);
  if (m->thr_started) pthread_join(m->thr, NULL);
  m->thr_started = false;
  pthread_mutex_lock(&m->mu);
  m->stopped = true;
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
}

void nc_jobs_free(nc_jobs *m) {
  if (!m) return;
  nc_jobs_shutdown(m);
  free_manager(m);
}

/* ---- public operations ------------------------------------------------------------- */

int nc_jobs_submit(nc_jobs *m, Nanochat__V1__JobKind kind, const uint8_t *request,
                   size_t request_len, char out_id[NC_JOB_ID_LEN + 1], uint32_t *queue_position) {
  if ((int)kind <= 0 || (int)kind >= NC_JOBS_KIND_COUNT)
    return st_fail(NC_EINVAL, "job kind %d is out of range", (int)kind);
  if (request_len > NC_JOBIO_MAX_REQUEST || (request_len && !request))
    return st_fail(NC_EINVAL, "job request: %zu bytes (limit %u)", request_len,
                   NC_JOBIO_MAX_REQUEST);
  if (!m->exe[kind])
    return st_fail(NC_ENOTSUP, "no job program is configured for job kind %d", (int)kind);
  pthread_mutex_lock(&m->mu);
  int err = NC_OK;
  size_t n = 0, total = 0;
  if (m->stopping) {
    err = st_fail(NC_ENOTREADY, "the job manager is shutting down");
    goto out;
  }
  if (!nc_store_has_reserve(m->store)) {
    /* without the reserve this job's final state might not fit: refuse it up front */
    err = st_fail(NC_EFULL, "store full: no room left to record another job "
                            "(restart nanochatd with a larger --store-map-mb)");
    goto out;
  }
  err = nc_store_job_queue(m->store, NULL, 0, &n, &total);
  if (err) goto out;
  if (total >= m->max_queued) {
    err = st_fail(NC_EBUSY, "job queue full (%zu jobs queued, limit %u)", total, m->max_queued);
    goto out;
  }
  for (int attempt = 0; attempt < 8; attempt++) {
    char id[NC_JOB_ID_LEN + 1];
    err = nc_store_random_hex(id, NC_JOB_ID_LEN);
    if (err) break;
    Nanochat__V1__JobInfo j = NANOCHAT__V1__JOB_INFO__INIT;
    j.job_id = id;
    j.has_kind = 1;
    j.kind = kind;
    j.has_state = 1;
    j.state = NANOCHAT__V1__JOB_STATE__JOB_QUEUED;
    j.has_created_ms = 1;
    j.created_ms = st_now_ms();
    j.has_request = 1;
    j.request.data = (uint8_t *)request;
    j.request.len = request_len;
    Nanochat__V1__JobEvent ev;
    state_event(&ev, NANOCHAT__V1__JOB_STATE__JOB_QUEUED, NULL);
    Nanochat__V1__JobEvent *evp = &ev;
    err = nc_store_job_write(m->store, &j, NC_JOB_CREATE | NC_JOB_QUEUE_PUSH, &evp, 1);
    if (err == NC_EEXIST) continue;
    if (!err) {
      memcpy(out_id, id, NC_JOB_ID_LEN + 1);
      if (queue_position) *queue_position = (uint32_t)total;
      atomic_fetch_add(&m->n_queued, 1);
    }
    break;
  }
out:
  pthread_mutex_unlock(&m->mu);
  if (!err) wake(m);
  return err;
}

static unsaved *find_unsaved(nc_jobs *m, const char *id) {
  for (unsaved *u = m->unsaved; u; u = u->next)
    if (!strcmp(u->info->job_id, id)) return u;
  return NULL;
}

/* Caller holds mu. */
static int get_locked(nc_jobs *m, const char *id, Nanochat__V1__JobInfo **out) {
  unsaved *u = find_unsaved(m, id);
  if (u) {
    *out = info_clone(u->info);
    return *out ? NC_OK : st_fail(NC_ENOMEM, "job: out of memory");
  }
  return nc_store_job_get(m->store, id, out);
}

int nc_jobs_get(nc_jobs *m, const char *job_id, Nanochat__V1__JobInfo **out) {
  if (!job_id || !nc_store_job_id_valid(job_id, strnlen(job_id, NC_JOB_ID_LEN + 1)))
    return st_fail(NC_EINVAL, "job_id: must be 16 lowercase hex characters");
  pthread_mutex_lock(&m->mu);
  int err = get_locked(m, job_id, out);
  pthread_mutex_unlock(&m->mu);
  return err;
}

int nc_jobs_cancel(nc_jobs *m, const char *job_id, Nanochat__V1__JobInfo **out) {
  if (out) *out = NULL;
  if (!job_id || !nc_store_job_id_valid(job_id, strnlen(job_id, NC_JOB_ID_LEN + 1)))
    return st_fail(NC_EINVAL, "job_id: must be 16 lowercase hex characters");
  pthread_mutex_lock(&m->mu);
  int err = NC_OK;
  Nanochat__V1__JobInfo *j = NULL;
  if (m->stopping) {
    err = st_fail(NC_ENOTREADY, "the job manager is shutting down");
    goto out;
  }
  for (job_rt *rt = m->running; rt; rt = rt->next) {
    if (strcmp(rt->id, job_id)) continue;
    if (rt->stop == STOP_NONE) stop_job(rt, STOP_CANCEL, NULL, false, m->cancel_grace_ms);
    pthread_mutex_unlock(&m->mu);
    wake(m);
    return out ? nc_jobs_get(m, job_id, out) : NC_OK;
  }
  err = get_locked(m, job_id, &j);
  if (err) goto out;
  if (nc_job_state_final(j->state)) {
    err = st_fail(NC_ESTATE, "job %s already %s", job_id, nc_job_state_name(j->state));
    goto out;
  }
  /* QUEUED (or RUNNING in the store without a process here): cancel in one transaction */
  bool was_queued = j->state == NANOCHAT__V1__JOB_STATE__JOB_QUEUED;
  const char *why = was_queued ? "cancelled before it started" : "cancelled";
  Nanochat__V1__JobInfo view = *j;
  set_final(&view, NANOCHAT__V1__JOB_STATE__JOB_CANCELLED, why);
  Nanochat__V1__JobEvent ev;
  state_event(&ev, NANOCHAT__V1__JOB_STATE__JOB_CANCELLED, why);
  Nanochat__V1__JobEvent *evp = &ev;
  err = commit_job(m, &j, &view, NC_JOB_QUEUE_REMOVE, &evp, 1);
  if (!err) {
    if (was_queued && atomic_load(&m->n_queued) > 0) atomic_fetch_sub(&m->n_queued, 1);
    pthread_cond_broadcast(&m->cv);
    if (out) {
      *out = j;
      j = NULL;
    }
  }
out:
  pthread_mutex_unlock(&m->mu);
  nc_store_free_msg(j);
  return err;
}

int nc_jobs_wait(nc_jobs *m, const char *job_id, int timeout_ms, Nanochat__V1__JobInfo **out) {
  if (out) *out = NULL;
  if (!job_id || !nc_store_job_id_valid(job_id, strnlen(job_id, NC_JOB_ID_LEN + 1)))
    return st_fail(NC_EINVAL, "job_id: must be 16 lowercase hex characters");
  int64_t deadline = timeout_ms < 0 ? INT64_MAX : mono_ms() + timeout_ms;
  pthread_mutex_lock(&m->mu);
  int err;
  for (;;) {
    Nanochat__V1__JobInfo *j = NULL;
    err = get_locked(m, job_id, &j);
    if (err) break;
    int64_t now = mono_ms();
    if (nc_job_state_final(j->state) || now >= deadline || m->stopped) {
      if (!nc_job_state_final(j->state))
        err = st_fail(NC_ETIMEDOUT, "job %s is still %s", job_id, nc_job_state_name(j->state));
      if (out) *out = j;
      else nc_store_free_msg(j);
      break;
    }
    nc_store_free_msg(j);
    int64_t until = deadline - now > 1000 ? now + 1000 : deadline;  /* re-check at least 1/s */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + (until - now) * 1000000;
    ts.tv_sec += ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    pthread_cond_timedwait(&m->cv, &m->mu, &ts);
  }
  pthread_mutex_unlock(&m->mu);
  return err;
}

void nc_jobs_counts(const nc_jobs *m, uint32_t *running, uint32_t *queued) {
  nc_jobs *mm = (nc_jobs *)m;
  if (running) *running = atomic_load(&mm->n_running);
  if (queued) *queued = atomic_load(&mm->n_queued);
}

void nc_jobs_get_stats(nc_jobs *m, nc_jobs_stats *st) {
  memset(st, 0, sizeof *st);
  pthread_mutex_lock(&m->mu);
  st->running = atomic_load(&m->n_running);
  st->queued = atomic_load(&m->n_queued);
  st->interrupted_at_start = m->interrupted_at_start;
  st->started = m->started;
  st->finished = m->finished;
  st->events = m->events;
  for (unsaved *u = m->unsaved; u; u = u->next) st->unsaved++;
  pthread_mutex_unlock(&m->mu);
}

int nc_jobs_subscribe(nc_jobs *m, const char *job_id, nc_jobs_notify_fn fn, void *arg,
                      nc_jobs_sub **out) {
  *out = NULL;
  if (!fn || !job_id || !nc_store_job_id_valid(job_id, strnlen(job_id, NC_JOB_ID_LEN + 1)))
    return st_fail(NC_EINVAL, "job_id: must be 16 lowercase hex characters");
  nc_jobs_sub *s = calloc(1, sizeof *s);
  if (!s) return st_fail(NC_ENOMEM, "subscribe: out of memory");
  memcpy(s->id, job_id, NC_JOB_ID_LEN + 1);
  s->fn = fn;
  s->arg = arg;
  pthread_mutex_lock(&m->sub_mu);
  s->next = m->subs;
  if (m->subs) m->subs->prev = s;
  m->subs = s;
  pthread_mutex_unlock(&m->sub_mu);
  *out = s;
  return NC_OK;
}

void nc_jobs_unsubscribe(nc_jobs *m, nc_jobs_sub *s) {
  if (!s) return;
  pthread_mutex_lock(&m->sub_mu);
  if (s->prev) s->prev->next = s->next;
  else m->subs = s->next;
  if (s->next) s->next->prev = s->prev;
  pthread_mutex_unlock(&m->sub_mu);
  free(s);
}
