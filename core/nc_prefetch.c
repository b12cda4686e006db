/* nc_prefetch.c — the loader on a producer thread with a ring of ready batches (nc_prefetch.h). */
#include "nc_prefetch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "nc_err.h"

typedef struct slot {
  int32_t *in, *tg;
  nc_loader_state st;
} slot;

struct nc_prefetch {
  nc_loader *l;
  int B, T, depth;
  slot *ring;
  int head, count; /* next slot to consume, ready slots */
  int err;         /* producer error, reported after the ready slots */
  int stop;
  pthread_mutex_t mu;
  pthread_cond_t ready, space;
  pthread_t thread;
};

static void *produce(void *arg) {
  nc_prefetch *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->stop && p->count == p->depth) pthread_cond_wait(&p->space, &p->mu);
    if (p->stop) break;
    slot *s = &p->ring[(p->head + p->count) % p->depth];
    pthread_mutex_unlock(&p->mu);
    /* the slot is free: only this thread touches it until count covers it */
    int rc = nc_loader_next(p->l, s->in, s->tg);
    nc_loader_state_free(&s->st);
    if (!rc) rc = nc_loader_save(p->l, &s->st);
    pthread_mutex_lock(&p->mu);
    if (rc) {
      p->err = rc;
      pthread_cond_broadcast(&p->ready);
      break;
    }
    p->count++;
    pthread_cond_broadcast(&p->ready);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static void free_ring(nc_prefetch *p) {
  if (!p->ring) return;
  for (int i = 0; i < p->depth; i++) {
    free(p->ring[i].in);
    free(p->ring[i].tg);
    nc_loader_state_free(&p->ring[i].st);
  }
  free(p->ring);
}

int nc_prefetch_start(nc_loader *l, int B, int T, int depth, nc_prefetch **out) {
  if (!l || !out || B < 1 || T < 1 || depth < 1 || depth > 64 || (int64_t)B * T > (1 << 26))
    return NC_EINVAL;
  *out = NULL;
  nc_prefetch *p = calloc(1, sizeof *p);
  if (!p) return NC_ENOMEM;
  p->l = l;
  p->B = B;
  p->T = T;
  p->depth = depth;
  p->ring = calloc((size_t)depth, sizeof *p->ring);
  const size_t n = (size_t)B * (size_t)T;
  int ok = p->ring != NULL;
  for (int i = 0; ok && i < depth; i++) {
    p->ring[i].in = malloc(n * sizeof(int32_t));
    p->ring[i].tg = malloc(n * sizeof(int32_t));
    ok = p->ring[i].in && p->ring[i].tg;
  }
  if (!ok) {
    free_ring(p);
    free(p);
    return NC_ENOMEM;
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->ready, NULL);
  pthread_cond_init(&p->space, NULL);
  if (pthread_create(&p->thread, NULL, produce, p) != 0) {
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->ready);
    pthread_cond_destroy(&p->space);
    free_ring(p);
    free(p);
    return NC_EIO;
  }
  *out = p;
  return NC_OK;
}

int nc_prefetch_next(nc_prefetch *p, int32_t *inputs, int32_t *targets, nc_loader_state *state) {
  if (!p || !inputs || !targets) return NC_EINVAL;
  pthread_mutex_lock(&p->mu);
  while (p->count == 0 && !p->err) pthread_cond_wait(&p->ready, &p->mu);
  if (p->count == 0) {
    int rc = p->err;
    pthread_mutex_unlock(&p->mu);
    return rc;
  }
  slot *s = &p->ring[p->head];
  pthread_mutex_unlock(&p->mu);
  /* the producer never touches a ready slot */
  const size_t n = (size_t)p->B * (size_t)p->T;
  memcpy(inputs, s->in, n * sizeof(int32_t));
  memcpy(targets, s->tg, n * sizeof(int32_t));
  if (state) {
    nc_loader_state_free(state);
    *state = s->st;
    memset(&s->st, 0, sizeof s->st);
  }
  pthread_mutex_lock(&p->mu);
  p->head = (p->head + 1) % p->depth;
  p->count--;
  pthread_cond_signal(&p->space);
  pthread_mutex_unlock(&p->mu);
  return NC_OK;
}

void nc_prefetch_stop(nc_prefetch *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_broadcast(&p->space);
  pthread_mutex_unlock(&p->mu);
  pthread_join(p->thread, NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->ready);
  pthread_cond_destroy(&p->space);
  free_ring(p);
  free(p);
}
