/* nc_jobio.c — job child protocol: argument parsing, event frames, child-side sending.
 * See nc_jobio.h. */
#include "nc_jobio.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nc_err.h"
#include "nc_store.h"
#include "nc_store_int.h"

/* ---- arguments and request ----------------------------------------------------------- */

int nc_jobio_parse_args(int argc, char *const argv[], nc_jobio_args *out, char *err,
                        size_t errlen) {
  memset(out, 0, sizeof *out);
  out->events_fd = -1;
  bool have_id = false;
  for (int i = 1; i < argc; i += 2) {
    const char *opt = argv[i];
    if (i + 1 >= argc) {
      snprintf(err, errlen, "%s: missing value", opt);
      return NC_EINVAL;
    }
    const char *val = argv[i + 1];
    if (!strcmp(opt, "--job-id")) {
      if (have_id) goto dup;
      size_t n = strnlen(val, NC_JOB_ID_LEN + 1);
      if (!nc_store_job_id_valid(val, n)) {
        snprintf(err, errlen, "--job-id: must be 16 lowercase hex characters");
        return NC_EINVAL;
      }
      memcpy(out->job_id, val, n + 1);
      have_id = true;
    } else if (!strcmp(opt, "--data-dir")) {
      if (out->data_dir) goto dup;
      if (!val[0]) goto empty;
      out->data_dir = val;
    } else if (!strcmp(opt, "--request")) {
      if (out->request_path) goto dup;
      if (!val[0]) goto empty;
      out->request_path = val;
    } else if (!strcmp(opt, "--events-fd")) {
      if (out->events_fd >= 0) goto dup;
      char *end;
      errno = 0;
      long fd = strtol(val, &end, 10);
      if (errno || *end || end == val || fd < 0 || fd > 1023) {
        snprintf(err, errlen, "--events-fd: must be a file descriptor number 0..1023");
        return NC_EINVAL;
      }
      out->events_fd = (int)fd;
    } else {
      snprintf(err, errlen, "%s: unknown argument", opt);
      return NC_EINVAL;
    }
    continue;
  dup:
    snprintf(err, errlen, "%s: given twice", opt);
    return NC_EINVAL;
  empty:
    snprintf(err, errlen, "%s: empty value", opt);
    return NC_EINVAL;
  }
  const char *missing = !have_id               ? "--job-id"
                        : !out->data_dir       ? "--data-dir"
                        : !out->request_path   ? "--request"
                        : out->events_fd < 0   ? "--events-fd"
                                               : NULL;
  if (missing) {
    snprintf(err, errlen, "%s: missing", missing);
    return NC_EINVAL;
  }
  return NC_OK;
}

int nc_jobio_start(int argc, char *const argv[], const char *prog, const ProtobufCMessageDescriptor *desc,
                   nc_jobio_args *a, ProtobufCMessage **req) {
  char err[512];
  *req = NULL;
  if (nc_jobio_parse_args(argc, argv, a, err, sizeof err) != NC_OK) {
    fprintf(stderr, "%s: %s\n", prog, err);
    return NC_EINVAL;
  }
  uint8_t *buf;
  size_t len;
  if (nc_jobio_read_request(a, &buf, &len) != NC_OK) {
    fprintf(stderr, "%s: cannot read %s\n", prog, a->request_path);
    return NC_EINVAL;
  }
  *req = protobuf_c_message_unpack(desc, NULL, len, buf);
  free(buf);
  if (!*req) {
    fprintf(stderr, "%s: the request is not a %s\n", prog, desc->short_name);
    return NC_EINVAL;
  }
  return NC_OK;
}

int nc_jobio_read_request(const nc_jobio_args *a, uint8_t **buf, size_t *len) {
  *buf = NULL;
  *len = 0;
  int fd = open(a->request_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? NC_ENOTFOUND : NC_EIO;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return NC_EIO;
  }
  if (st.st_size > (off_t)NC_JOBIO_MAX_REQUEST) {
    close(fd);
    return NC_EFULL;
  }
  size_t cap = (size_t)st.st_size;
  uint8_t *b = malloc(cap ? cap : 1);
  if (!b) {
    close(fd);
    return NC_ENOMEM;
  }
  size_t got = 0;
  while (got < cap) {
    ssize_t r = read(fd, b + got, cap - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  if (got != cap) {
    free(b);
    return NC_EIO;
  }
  *buf = b;
  *len = got;
  return NC_OK;
}

/* ---- event checks and frames -------------------------------------------------------- */

static bool str_ok(const char *s, size_t max) {
  if (!s) return true;
  size_t n = strnlen(s, max + 1);
  return n <= max && st_utf8_valid(s, n);
}

int nc_jobio_event_check(const Nanochat__V1__JobEvent *ev, char *err, size_t errlen) {
  if (!ev->has_kind) {
    snprintf(err, errlen, "event without kind");
    return NC_EINVAL;
  }
  switch (ev->kind) {
    case NANOCHAT__V1__EVENT_KIND__EVENT_PROGRESS:
    case NANOCHAT__V1__EVENT_KIND__EVENT_EVAL:
    case NANOCHAT__V1__EVENT_KIND__EVENT_CHECKPOINT:
    case NANOCHAT__V1__EVENT_KIND__EVENT_LOG:
      break;
    default:
      snprintf(err, errlen, "event kind %d not allowed from a job (PROGRESS, EVAL, CHECKPOINT, LOG)",
               (int)ev->kind);
      return NC_EINVAL;
  }
  if (!str_ok(ev->message, NC_JOBIO_MAX_MESSAGE)) {
    snprintf(err, errlen, "message: invalid UTF-8 or longer than %d bytes", NC_JOBIO_MAX_MESSAGE);
    return NC_EINVAL;
  }
  if (ev->n_metrics > NC_JOBIO_MAX_METRICS) {
    snprintf(err, errlen, "metrics: %zu entries (limit %d)", ev->n_metrics, NC_JOBIO_MAX_METRICS);
    return NC_EINVAL;
  }
  for (size_t i = 0; i < ev->n_metrics; i++) {
    const char *k = ev->metrics[i]->key;
    size_t n = k ? strnlen(k, NC_JOBIO_MAX_METRIC_NAME + 1) : 0;
    if (n == 0 || n > NC_JOBIO_MAX_METRIC_NAME || !st_utf8_valid(k, n)) {
      snprintf(err, errlen, "metrics[%zu]: name must be 1..%d bytes of UTF-8", i,
               NC_JOBIO_MAX_METRIC_NAME);
      return NC_EINVAL;
    }
  }
  if (ev->kind == NANOCHAT__V1__EVENT_KIND__EVENT_CHECKPOINT) {
    const Nanochat__V1__CheckpointInfo *ci = ev->checkpoint;
    if (!ci) {
      snprintf(err, errlen, "CHECKPOINT event without checkpoint");
      return NC_EINVAL;
    }
    char why[160];
    if (!st_checkpoint_valid(ci, why, sizeof why)) {
      snprintf(err, errlen, "%s", why);
      return NC_EINVAL;
    }
    if (!str_ok(ci->optimizer_path, 4096) ||
        (ci->config && !str_ok(ci->config->window_pattern, 64))) {
      snprintf(err, errlen, "checkpoint: invalid UTF-8 or oversized string");
      return NC_EINVAL;
    }
  }
  return NC_OK;
}

static uint32_t rd_le32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

int nc_jobio_frame_decode(const uint8_t *buf, size_t len, size_t *consumed,
                          Nanochat__V1__JobEvent **ev, char *err, size_t errlen) {
  *consumed = 0;
  *ev = NULL;
  if (len < 4) return NC_OK;
  uint32_t n = rd_le32(buf);
  if (n == 0 || n > NC_JOBIO_MAX_FRAME) {
    snprintf(err, errlen, "frame length %u out of range 1..%u", n, NC_JOBIO_MAX_FRAME);
    return NC_EINVAL;
  }
  if (len - 4 < n) return NC_OK;
  Nanochat__V1__JobEvent *e = nanochat__v1__job_event__unpack(NULL, n, buf + 4);
  if (!e) {
    snprintf(err, errlen, "frame of %u bytes is not a JobEvent", n);
    return NC_EINVAL;
  }
  /* Job programs pack with protobuf-c, which always writes the canonical encoding; anything
   * else (unknown fields, overlong varints, repeated scalars) is a protocol error, so every
   * stored event re-encodes to exactly the bytes that were checked. */
  if (protobuf_c_message_get_packed_size(&e->base) != n || e->base.n_unknown_fields) {
    snprintf(err, errlen, "frame of %u bytes is not canonically encoded (unknown fields?)", n);
    protobuf_c_message_free_unpacked(&e->base, NULL);
    return NC_EINVAL;
  }
  int rc = nc_jobio_event_check(e, err, errlen);
  if (rc) {
    protobuf_c_message_free_unpacked(&e->base, NULL);
    return rc;
  }
  /* fields the manager owns: drop what the child sent */
  if (e->job) {
    protobuf_c_message_free_unpacked(&e->job->base, NULL);
    e->job = NULL;
  }
  free(e->job_id);  /* protobuf-c's default allocator is malloc/free */
  e->job_id = NULL;
  if (e->checkpoint) {
    free(e->checkpoint->job_id);
    e->checkpoint->job_id = NULL;
  }
  e->has_state = 0;
  e->has_seq = 0;
  e->seq = 0;
  e->has_time_ms = 0;
  e->time_ms = 0;
  *ev = e;
  *consumed = 4 + (size_t)n;
  return NC_OK;
}

int nc_jobio_frame_encode(const Nanochat__V1__JobEvent *ev, uint8_t **out, size_t *len) {
  size_t n = protobuf_c_message_get_packed_size(&ev->base);
  if (n > NC_JOBIO_MAX_FRAME) return NC_EFULL;
  uint8_t *b = malloc(4 + (n ? n : 1));
  if (!b) return NC_ENOMEM;
  for (int i = 0; i < 4; i++) b[i] = (uint8_t)(n >> (8 * i));
  protobuf_c_message_pack(&ev->base, b + 4);
  *out = b;
  *len = 4 + n;
  return NC_OK;
}

/* ---- child side --------------------------------------------------------------------- */

static volatile sig_atomic_t g_stop = 0;

static void on_term(int sig) {
  (void)sig;
  g_stop = 1;
}

bool nc_jobio_stop_requested(void) { return g_stop != 0; }

struct nc_jobio {
  int fd;
  pthread_mutex_t mu;
};

int nc_jobio_open(const nc_jobio_args *a, nc_jobio **out) {
  *out = NULL;
  if (a->events_fd < 0 || fcntl(a->events_fd, F_GETFD) < 0) return NC_EINVAL;
  nc_jobio *io = calloc(1, sizeof *io);
  if (!io) return NC_ENOMEM;
  io->fd = a->events_fd;
  pthread_mutex_init(&io->mu, NULL);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  /* no SA_RESTART: sleeps and reads return EINTR */
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() == 1) g_stop = 1;  /* the server died before we got here */
  *out = io;
  return NC_OK;
}

void nc_jobio_close(nc_jobio *io) {
  if (!io) return;
  close(io->fd);
  pthread_mutex_destroy(&io->mu);
  free(io);
}

int nc_jobio_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L}, rem;
  while (!g_stop) {
    if (nanosleep(&ts, &rem) == 0) return NC_OK;
    if (errno != EINTR) return NC_OK;
    ts = rem;
  }
  return NC_ECANCELED;
}

int nc_jobio_send(nc_jobio *io, const Nanochat__V1__JobEvent *ev) {
  char why[256];
  if (nc_jobio_event_check(ev, why, sizeof why)) return NC_EINVAL;
  uint8_t *b;
  size_t n;
  int rc = nc_jobio_frame_encode(ev, &b, &n);
  if (rc) return rc;
  pthread_mutex_lock(&io->mu);
  size_t off = 0;
  rc = NC_OK;
  while (off < n) {
    ssize_t w = write(io->fd, b + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      rc = NC_EIO;
      break;
    }
    off += (size_t)w;
  }
  pthread_mutex_unlock(&io->mu);
  free(b);
  return rc;
}

int nc_jobio_progress(nc_jobio *io, const Nanochat__V1__Progress *p) {
  Nanochat__V1__JobEvent ev = NANOCHAT__V1__JOB_EVENT__INIT;
  ev.has_kind = 1;
  ev.kind = NANOCHAT__V1__EVENT_KIND__EVENT_PROGRESS;
  ev.progress = (Nanochat__V1__Progress *)p;
  return nc_jobio_send(io, &ev);
}

int nc_jobio_metrics(nc_jobio *io, const char *const *names, const double *values, size_t n,
                     const char *message) {
  if (n > NC_JOBIO_MAX_METRICS) return NC_EINVAL;
  Nanochat__V1__JobEvent__MetricsEntry ents[NC_JOBIO_MAX_METRICS];
  Nanochat__V1__JobEvent__MetricsEntry *ptrs[NC_JOBIO_MAX_METRICS];
  for (size_t i = 0; i < n; i++) {
    Nanochat__V1__JobEvent__MetricsEntry e = NANOCHAT__V1__JOB_EVENT__METRICS_ENTRY__INIT;
    e.key = (char *)names[i];
    e.has_value = 1;
    e.value = values[i];
    ents[i] = e;
    ptrs[i] = &ents[i];
  }
  Nanochat__V1__JobEvent ev = NANOCHAT__V1__JOB_EVENT__INIT;
  ev.has_kind = 1;
  ev.kind = NANOCHAT__V1__EVENT_KIND__EVENT_EVAL;
  ev.n_metrics = n;
  ev.metrics = n ? ptrs : NULL;
  ev.message = (char *)message;
  return nc_jobio_send(io, &ev);
}

int nc_jobio_checkpoint(nc_jobio *io, const Nanochat__V1__CheckpointInfo *ci) {
  Nanochat__V1__JobEvent ev = NANOCHAT__V1__JOB_EVENT__INIT;
  ev.has_kind = 1;
  ev.kind = NANOCHAT__V1__EVENT_KIND__EVENT_CHECKPOINT;
  ev.checkpoint = (Nanochat__V1__CheckpointInfo *)ci;
  return nc_jobio_send(io, &ev);
}

int nc_jobio_log(nc_jobio *io, const char *fmt, ...) {
  char msg[NC_JOBIO_MAX_MESSAGE + 1];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) return NC_EINVAL;
  size_t len = strlen(msg);
  /* cut back to a UTF-8 boundary (and drop invalid bytes at the end) */
  while (len && !st_utf8_valid(msg, len)) len--;
  msg[len] = 0;
  Nanochat__V1__JobEvent ev = NANOCHAT__V1__JOB_EVENT__INIT;
  ev.has_kind = 1;
  ev.kind = NANOCHAT__V1__EVENT_KIND__EVENT_LOG;
  ev.message = msg;
  return nc_jobio_send(io, &ev);
}
