/* nc_pool.c — worker pool (see nc_pool.h). */
#include "nc_pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "nc_err.h"

typedef struct task {
  void (*fn)(void *);
  void *arg;
} task;

struct nc_pool {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t *threads;
  int n_threads;
  task *q;          /* ring buffer */
  size_t cap, head, len;
  size_t running;
  bool stopping, stopped;
};

static void *worker_main(void *p_) {
  nc_pool *p = p_;
  pthread_setname_np(pthread_self(), "nc-worker");
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (p->len == 0 && !p->stopping) pthread_cond_wait(&p->cv, &p->mu);
    if (p->len == 0) break;   /* stopping and drained */
    task t = p->q[p->head];
    p->head = (p->head + 1) % p->cap;
    p->len--;
    p->running++;
    pthread_mutex_unlock(&p->mu);
    t.fn(t.arg);
    pthread_mutex_lock(&p->mu);
    p->running--;
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

int nc_pool_create(int threads, int queue_cap, nc_pool **out) {
  if (threads < 1 || threads > 256 || queue_cap < 1) return NC_EINVAL;
  nc_pool *p = calloc(1, sizeof *p);
  if (!p) return NC_ENOMEM;
  p->q = calloc((size_t)queue_cap, sizeof *p->q);
  p->threads = calloc((size_t)threads, sizeof *p->threads);
  if (!p->q || !p->threads) {
    free(p->q);
    free(p->threads);
    free(p);
    return NC_ENOMEM;
  }
  p->cap = (size_t)queue_cap;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  for (int i = 0; i < threads; i++) {
    if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
      p->n_threads = i;
      nc_pool_free(p);
      return NC_EINTERNAL;
    }
    p->n_threads = i + 1;
  }
  *out = p;
  return NC_OK;
}

int nc_pool_submit(nc_pool *p, void (*fn)(void *arg), void *arg) {
  pthread_mutex_lock(&p->mu);
  if (p->stopping) {
    pthread_mutex_unlock(&p->mu);
    return NC_ESTATE;
  }
  if (p->len == p->cap) {
    pthread_mutex_unlock(&p->mu);
    return NC_EBUSY;
  }
  p->q[(p->head + p->len) % p->cap] = (task){fn, arg};
  p->len++;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  return NC_OK;
}

size_t nc_pool_pending(nc_pool *p) {
  pthread_mutex_lock(&p->mu);
  size_t n = p->len + p->running;
  pthread_mutex_unlock(&p->mu);
  return n;
}

void nc_pool_stop(nc_pool *p) {
  pthread_mutex_lock(&p->mu);
  if (p->stopped) {
    pthread_mutex_unlock(&p->mu);
    return;
  }
  p->stopping = true;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
  pthread_mutex_lock(&p->mu);
  p->stopped = true;
  pthread_mutex_unlock(&p->mu);
}

void nc_pool_free(nc_pool *p) {
  if (!p) return;
  nc_pool_stop(p);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p->q);
  free(p->threads);
  free(p);
}
