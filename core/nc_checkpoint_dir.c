/* nc_checkpoint_dir.c — checkpoint directories: safe opening (tag regex, O_NOFOLLOW),
 * listing complete steps, removing temp files of crashed writers. See nc_checkpoint.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nc_checkpoint.h"
#include "nc_checkpoint_internal.h"
#include "nc_err.h"

struct nc_ckpt_dir {
  int fd;
};

int nc_ckpt_dir_fd(const nc_ckpt_dir *d) { return d->fd; }

void nc_ckpt_dir_close(nc_ckpt_dir *d) {
  if (!d) return;
  if (d->fd >= 0) close(d->fd);
  free(d);
}

int nc_ckpt_valid_tag(const char *tag) {
  if (!tag) return 0;
  size_t n = strlen(tag);
  if (n < 1 || n > NC_CKPT_TAG_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = tag[i];
    int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-'))) return 0;
  }
  return 1;
}

/* Opens (and with create, makes) the directory `name` below dirfd without following a
 * symlink. */
static int open_sub(int dirfd, const char *name, int create, int *out, nc_st_error *err) {
  for (int attempt = 0; attempt < 2; attempt++) {
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
      *out = fd;
      return NC_OK;
    }
    int e = errno;
    struct stat st;
    if ((e == ELOOP || e == ENOTDIR) && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(st.st_mode))
      return nc_st_fail(err, NC_ST_E_SYMLINK, "%s is a symlink (refused)", name);
    if (e == ENOTDIR) return nc_st_fail(err, NC_ST_E_PATH, "%s is not a directory", name);
    if (e != ENOENT) return nc_st_fail(err, NC_ST_E_IO, "open %s: %s", name, strerror(e));
    if (!create) return nc_st_fail(err, NC_ST_E_NOTFOUND, "%s: no such directory", name);
    if (mkdirat(dirfd, name, 0755) != 0 && errno != EEXIST)
      return nc_st_fail(err, NC_ST_E_IO, "mkdir %s: %s", name, strerror(errno));
    fsync(dirfd); /* make the new directory entry durable */
  }
  return nc_st_fail(err, NC_ST_E_IO, "cannot open %s", name);
}

static int wrap(int fd, nc_ckpt_dir **out, nc_st_error *err) {
  nc_ckpt_dir *d = calloc(1, sizeof *d);
  if (!d) {
    close(fd);
    return nc_st_fail(err, NC_ST_E_NOMEM, "out of memory");
  }
  d->fd = fd;
  *out = d;
  return NC_OK;
}

const char *nc_ckpt_phase_dir(const char *phase) {
  if (!phase) return NULL;
  return !strcmp(phase, "base")  ? "base_checkpoints"
         : !strcmp(phase, "sft") ? "chatsft_checkpoints"
         : !strcmp(phase, "rl")  ? "chatrl_checkpoints"
                                 : NULL;
}

int nc_ckpt_dir_open(const char *root, const char *phase, const char *tag, int create,
                     nc_ckpt_dir **out, nc_st_error *err) {
  if (!out) return nc_st_fail(err, NC_ST_E_ARG, "NULL argument");
  *out = NULL;
  if (!root || !phase || !tag) return nc_st_fail(err, NC_ST_E_ARG, "NULL argument");
  const char *pdir = nc_ckpt_phase_dir(phase);
  if (!pdir) return nc_st_fail(err, NC_ST_E_PATH, "phase must be base, sft or rl");
  if (!nc_ckpt_valid_tag(tag))
    return nc_st_fail(err, NC_ST_E_PATH, "tag must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
  if (create && mkdir(root, 0755) != 0 && errno != EEXIST)
    return nc_st_fail(err, NC_ST_E_IO, "mkdir root: %s", strerror(errno));
  int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rfd < 0)
    return nc_st_fail(err, errno == ENOENT ? NC_ST_E_NOTFOUND : NC_ST_E_IO, "open root: %s",
                      strerror(errno));
  int pfd = -1, tfd = -1;
  int rc = open_sub(rfd, pdir, create, &pfd, err);
  if (!rc) rc = open_sub(pfd, tag, create, &tfd, err);
  close(rfd);
  if (pfd >= 0) close(pfd);
  return rc ? rc : wrap(tfd, out, err);
}

int nc_ckpt_dir_open_path(const char *path, int create, nc_ckpt_dir **out, nc_st_error *err) {
  if (!out || !path) return nc_st_fail(err, NC_ST_E_ARG, "NULL argument");
  *out = NULL;
  if (create && mkdir(path, 0755) != 0 && errno != EEXIST)
    return nc_st_fail(err, NC_ST_E_IO, "mkdir %s: %s", path, strerror(errno));
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return nc_st_fail(err, errno == ENOENT ? NC_ST_E_NOTFOUND : NC_ST_E_IO, "open %s: %s", path,
                      strerror(errno));
  return wrap(fd, out, err);
}

/* ------------------------------------------------------------------ listing */

void nc_ckpt_name(char *buf, size_t len, const char *kind, int64_t step) {
  if (!strcmp(kind, "model")) snprintf(buf, len, "model_%06lld.safetensors", (long long)step);
  else if (!strcmp(kind, "optim")) snprintf(buf, len, "optim_%06lld_rank0.safetensors", (long long)step);
  else snprintf(buf, len, "meta_%06lld.json", (long long)step);
}

/* "meta_<digits>.json" with at least 6 digits -> step, else -1. */
static int64_t meta_step(const char *name) {
  if (strncmp(name, "meta_", 5) != 0) return -1;
  const char *p = name + 5;
  int64_t v = 0;
  int nd = 0;
  while (*p >= '0' && *p <= '9') {
    v = v * 10 + (*p++ - '0');
    if (++nd > 9) return -1;
  }
  if (nd < 6 || strcmp(p, ".json") != 0) return -1;
  return v;
}

static int is_regular(int dirfd, const char *name) {
  struct stat st;
  return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Calls fn(ctx, name) for every entry of the directory. */
static int each_entry(nc_ckpt_dir *d, void (*fn)(void *, nc_ckpt_dir *, const char *), void *ctx,
                      nc_st_error *err) {
  int fd = openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
  if (!dir) {
    if (fd >= 0) close(fd);
    return nc_st_fail(err, NC_ST_E_IO, "opendir: %s", strerror(errno));
  }
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) fn(ctx, d, e->d_name);
  closedir(dir);
  return NC_OK;
}

typedef struct list_ctx {
  int64_t *steps;
  int max, n;
} list_ctx;

static void list_one(void *ctx, nc_ckpt_dir *d, const char *name) {
  list_ctx *c = ctx;
  int64_t s = meta_step(name);
  char model[64];
  if (s < 0) return;
  nc_ckpt_name(model, sizeof model, "model", s);
  if (!is_regular(d->fd, name) || !is_regular(d->fd, model)) return;
  if (c->n < c->max) c->steps[c->n] = s;
  c->n++;
}

int nc_ckpt_list(nc_ckpt_dir *d, int64_t *steps, int max, int *n, nc_st_error *err) {
  if (!d || !n || max < 0 || (max && !steps)) return nc_st_fail(err, NC_ST_E_ARG, "bad arguments");
  list_ctx c = {steps, max, 0};
  int rc = each_entry(d, list_one, &c, err);
  if (rc) return rc;
  qsort(steps, (size_t)(c.n < max ? c.n : max), sizeof *steps, cmp_i64);
  *n = c.n;
  return NC_OK;
}

typedef struct latest_ctx {
  int64_t best;
} latest_ctx;

static void latest_one(void *ctx, nc_ckpt_dir *d, const char *name) {
  latest_ctx *c = ctx;
  int64_t s = meta_step(name);
  char model[64];
  if (s <= c->best) return;
  nc_ckpt_name(model, sizeof model, "model", s);
  if (is_regular(d->fd, name) && is_regular(d->fd, model)) c->best = s;
}

int nc_ckpt_latest(nc_ckpt_dir *d, int64_t *step, nc_st_error *err) {
  if (!d || !step) return nc_st_fail(err, NC_ST_E_ARG, "bad arguments");
  latest_ctx c = {-1};
  int rc = each_entry(d, latest_one, &c, err);
  if (rc) return rc;
  if (c.best < 0) return nc_st_fail(err, NC_ST_E_NOTFOUND, "no complete checkpoint");
  *step = c.best;
  return NC_OK;
}

static void cleanup_one(void *ctx, nc_ckpt_dir *d, const char *name) {
  long pid;
  if (!nc_st_is_temp_name(name, &pid) || !is_regular(d->fd, name)) return;
  if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) return; /* writer still alive */
  if (unlinkat(d->fd, name, 0) == 0) (*(int *)ctx)++;
}

int nc_ckpt_cleanup(nc_ckpt_dir *d, int *removed, nc_st_error *err) {
  if (!d) return nc_st_fail(err, NC_ST_E_ARG, "bad arguments");
  int n = 0;
  int rc = each_entry(d, cleanup_one, &n, err);
  if (removed) *removed = n;
  return rc;
}
