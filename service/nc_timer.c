/* nc_timer.c — deadline thread (see nc_timer.h). */
#include "nc_timer.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "nc_app.h"
#include "nc_err.h"

struct nc_timer {
  pthread_mutex_t mu;
  pthread_cond_t cv;   /* CLOCK_MONOTONIC */
  pthread_t thread;
  nc_timer_node head;  /* sentinel of a circular list sorted by when_ms */
  bool stop;
};

static void *timer_main(void *p) {
  nc_timer *t = p;
  pthread_mutex_lock(&t->mu);
  while (!t->stop) {
    nc_timer_node *n = t->head.next;
    if (n == &t->head) {
      pthread_cond_wait(&t->cv, &t->mu);
      continue;
    }
    int64_t now = nc_now_mono_ms();
    if (n->when_ms > now) {
      struct timespec ts = {(time_t)(n->when_ms / 1000), (long)(n->when_ms % 1000) * 1000000L};
      pthread_cond_timedwait(&t->cv, &t->mu, &ts);
      continue;
    }
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->queued = false;
    void (*fn)(void *) = n->fn;
    void *arg = n->arg;
    pthread_mutex_unlock(&t->mu);
    fn(arg);   /* n may be gone once fn returns */
    pthread_mutex_lock(&t->mu);
  }
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

int nc_timer_create(nc_timer **out) {
  nc_timer *t = calloc(1, sizeof *t);
  if (!t) return NC_ENOMEM;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&t->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&t->mu, NULL);
  t->head.next = t->head.prev = &t->head;
  if (pthread_create(&t->thread, NULL, timer_main, t) != 0) {
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
    return NC_EINTERNAL;
  }
  *out = t;
  return NC_OK;
}

void nc_timer_free(nc_timer *t) {
  if (!t) return;
  pthread_mutex_lock(&t->mu);
  t->stop = true;
  pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
  pthread_join(t->thread, NULL);
  pthread_cond_destroy(&t->cv);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

void nc_timer_add(nc_timer *t, nc_timer_node *n, int64_t when_ms, void (*fn)(void *arg),
                  void *arg) {
  n->when_ms = when_ms;
  n->fn = fn;
  n->arg = arg;
  pthread_mutex_lock(&t->mu);
  nc_timer_node *p = t->head.prev;   /* scan from the back: new deadlines are usually last */
  while (p != &t->head && p->when_ms > when_ms) p = p->prev;
  n->prev = p;
  n->next = p->next;
  p->next->prev = n;
  p->next = n;
  n->queued = true;
  if (n->prev == &t->head) pthread_cond_signal(&t->cv);   /* new earliest deadline */
  pthread_mutex_unlock(&t->mu);
}

bool nc_timer_cancel(nc_timer *t, nc_timer_node *n) {
  pthread_mutex_lock(&t->mu);
  bool removed = n->queued;
  if (removed) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->queued = false;
  }
  pthread_mutex_unlock(&t->mu);
  return removed;
}
