/* nc_tokref.c — shared, hot-reloaded tokenizer (see nc_tokref.h). */
#include "nc_tokref.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "nc_err.h"
#include "nc_log.h"

struct nc_tokref {
  atomic_int refs;
  nc_tokenizer *tok;
};

typedef struct file_id {
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
} file_id;

struct nc_tokholder {
  pthread_mutex_t mu;      /* guards cur, loaded_id, failed_id, last_check_ms, generation */
  pthread_mutex_t load_mu; /* one load at a time */
  char *path;
  int check_ms;
  nc_tokref *cur;
  file_id loaded_id, failed_id;
  int have_loaded, have_failed;
  int64_t last_check_ms;
  uint64_t generation;
};

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int same_id(const file_id *a, const file_id *b) {
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
         a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static int stat_id(const char *path, file_id *id) {
  struct stat st;
  if (stat(path, &st) != 0) return errno == ENOENT ? NC_ENOTFOUND : NC_EIO;
  id->dev = st.st_dev;
  id->ino = st.st_ino;
  id->size = st.st_size;
  id->mtime = st.st_mtim;
  return NC_OK;
}

void nc_tokref_put(nc_tokref *r) {
  if (!r) return;
  if (atomic_fetch_sub(&r->refs, 1) == 1) {
    nc_tok_free(r->tok);
    free(r);
  }
}

const nc_tokenizer *nc_tokref_tok(const nc_tokref *r) { return r->tok; }

/* Loads the file if its identity differs from what is loaded (or failed last time).
 * Returns 1 swapped, 0 unchanged, < 0 load error. */
static int reload(nc_tokholder *h, char *err, size_t errlen) {
  pthread_mutex_lock(&h->load_mu);
  file_id id;
  int rc = stat_id(h->path, &id);
  if (rc != NC_OK) {
    pthread_mutex_unlock(&h->load_mu);
    if (err && errlen) snprintf(err, errlen, "%s: %s", h->path, rc == NC_ENOTFOUND ? "no such file" : "cannot stat");
    return rc == NC_ENOTFOUND ? 0 : rc;
  }
  pthread_mutex_lock(&h->mu);
  int unchanged = (h->have_loaded && same_id(&id, &h->loaded_id)) ||
                  (h->have_failed && same_id(&id, &h->failed_id));
  pthread_mutex_unlock(&h->mu);
  if (unchanged) {
    pthread_mutex_unlock(&h->load_mu);
    return 0;
  }
  nc_tokenizer *t = NULL;
  char msg[512] = "";
  rc = nc_tok_load(h->path, NULL, -1, &t, msg, sizeof msg);
  if (rc != NC_OK) {
    pthread_mutex_lock(&h->mu);
    h->failed_id = id;
    h->have_failed = 1;
    pthread_mutex_unlock(&h->mu);
    pthread_mutex_unlock(&h->load_mu);
    nc_log(NC_LOG_WARN, "tokenizer %s did not load (%s); the previous one keeps serving", h->path, msg);
    if (err && errlen) snprintf(err, errlen, "%s", msg);
    return rc;
  }
  nc_tokref *r = malloc(sizeof *r);
  if (!r) {
    nc_tok_free(t);
    pthread_mutex_unlock(&h->load_mu);
    return NC_ENOMEM;
  }
  atomic_init(&r->refs, 1);   /* the holder's reference */
  r->tok = t;
  pthread_mutex_lock(&h->mu);
  nc_tokref *old = h->cur;
  h->cur = r;
  h->loaded_id = id;
  h->have_loaded = 1;
  h->have_failed = 0;
  h->generation++;
  pthread_mutex_unlock(&h->mu);
  pthread_mutex_unlock(&h->load_mu);
  nc_tokref_put(old);
  nc_log(NC_LOG_INFO, "tokenizer: %s (vocabulary %d)", h->path, (int)nc_tok_vocab_size(t));
  return 1;
}

int nc_tokholder_create(const char *path, int required, int check_ms, nc_tokholder **out,
                        char *err, size_t errlen) {
  *out = NULL;
  nc_tokholder *h = calloc(1, sizeof *h);
  if (!h) return NC_ENOMEM;
  h->path = strdup(path);
  if (!h->path) {
    free(h);
    return NC_ENOMEM;
  }
  h->check_ms = check_ms > 0 ? check_ms : 1000;
  pthread_mutex_init(&h->mu, NULL);
  pthread_mutex_init(&h->load_mu, NULL);
  h->last_check_ms = mono_ms();
  int rc = reload(h, err, errlen);
  if (rc < 0 || (required && !h->cur)) {
    if (rc >= 0) {
      rc = NC_ENOTFOUND;
      if (err && errlen) snprintf(err, errlen, "%s: no such file", path);
    }
    nc_tokholder_free(h);
    return rc;
  }
  *out = h;
  return NC_OK;
}

void nc_tokholder_free(nc_tokholder *h) {
  if (!h) return;
  nc_tokref_put(h->cur);
  pthread_mutex_destroy(&h->mu);
  pthread_mutex_destroy(&h->load_mu);
  free(h->path);
  free(h);
}

nc_tokref *nc_tokref_get(nc_tokholder *h) {
  if (!h) return NULL;
  int64_t now = mono_ms();
  pthread_mutex_lock(&h->mu);
  int due = now - h->last_check_ms >= h->check_ms;
  if (due) h->last_check_ms = now;
  pthread_mutex_unlock(&h->mu);
  if (due) reload(h, NULL, 0);
  pthread_mutex_lock(&h->mu);
  nc_tokref *r = h->cur;
  if (r) atomic_fetch_add(&r->refs, 1);
  pthread_mutex_unlock(&h->mu);
  return r;
}

int nc_tokholder_refresh(nc_tokholder *h) {
  pthread_mutex_lock(&h->mu);
  h->last_check_ms = mono_ms();
  pthread_mutex_unlock(&h->mu);
  return reload(h, NULL, 0);
}

uint64_t nc_tokholder_generation(nc_tokholder *h) {
  pthread_mutex_lock(&h->mu);
  uint64_t g = h->generation;
  pthread_mutex_unlock(&h->mu);
  return g;
}
