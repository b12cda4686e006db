/* nc_par.c — the fork-join pool of nc_par.h.
 *
 * Protocol (all shared state is seq_cst atomics, except the job fields, which are written only
 * while `gen` is odd and no worker is inside a job, and read only by a worker that registered
 * in `active` and then saw `gen` unchanged and even):
 *   caller: gen += 1 (odd: posting); wait active == 0 (stragglers of the last job leave);
 *           write fn/ctx/n/want, next = done = 0; gen += 1 (even: posted); wake sleepers;
 *           take tasks (next++) until none are left; wait done == n.
 *   worker: wait until gen is even and differs from the last one it saw (spin, then sleep);
 *           active += 1; if gen changed meanwhile or the job does not want this worker, leave
 *           (active -= 1); else take tasks until none are left; active -= 1.
 * A worker that registers after the caller returned finds next >= n and leaves without
 * touching fn or ctx. Lost wake-ups are impossible: a sleeper increments `sleepers` before it
 * re-reads gen under sleep_mu, and the caller reads `sleepers` after publishing gen.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "nc_par.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

typedef struct nc_pool {
  pthread_mutex_t run_mu;   /* one loop at a time (trylock: a busy pool means "run inline") */
  pthread_mutex_t sleep_mu; /* sleepers wait on sleep_cv under it */
  pthread_cond_t sleep_cv;
  _Atomic unsigned gen;     /* job generation: odd while a job is being posted */
  _Atomic int sleepers;     /* workers in (or entering) pthread_cond_wait */
  _Atomic int active;       /* workers registered in the current job */
  _Atomic int next;         /* next task to hand out */
  _Atomic int done;         /* tasks finished */
  nc_par_fn fn;             /* the job (see the protocol above) */
  void *ctx;
  int n, want;              /* tasks; workers 1..want take part */
  int nworkers;             /* started (under run_mu) */
} nc_pool;

static nc_pool P = {.run_mu = PTHREAD_MUTEX_INITIALIZER,
                    .sleep_mu = PTHREAD_MUTEX_INITIALIZER,
                    .sleep_cv = PTHREAD_COND_INITIALIZER};
static _Atomic int g_spin_us = -1; /* -1: not read from the environment yet */
static _Thread_local int t_in_task;

int nc_par_spin_us(void) {
  int us = atomic_load(&g_spin_us);
  if (us >= 0) return us;
  const char *e = getenv("NC_PAR_SPIN_US");
  char *end = NULL;
  long v = e && *e ? strtol(e, &end, 10) : -1;
  us = v >= 0 && v <= 100000 && end && !*end ? (int)v : NC_PAR_SPIN_US;
  int expect = -1;
  atomic_compare_exchange_strong(&g_spin_us, &expect, us);
  return atomic_load(&g_spin_us);
}

void nc_par_set_spin_us(int us) {
  atomic_store(&g_spin_us, us < 0 ? 0 : us > 100000 ? 100000 : us);
}

int nc_par_workers(void) {
  pthread_mutex_lock(&P.run_mu);
  int n = P.nworkers;
  pthread_mutex_unlock(&P.run_mu);
  return n;
}

static int64_t now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static int ready(unsigned g, unsigned seen) { return g != seen && !(g & 1u); }

/* The next posted generation after `seen`: spins for the budget, then sleeps. */
static unsigned wait_job(unsigned seen) {
  unsigned g = atomic_load(&P.gen);
  if (ready(g, seen)) return g;
  const int budget = nc_par_spin_us();
  if (budget > 0) {
    const int64_t end = now_us() + budget;
    for (int i = 1;; i++) {
      cpu_relax();
      g = atomic_load(&P.gen);
      if (ready(g, seen)) return g;
      if (!(i & 63) && now_us() >= end) break;
    }
  }
  pthread_mutex_lock(&P.sleep_mu);
  atomic_fetch_add(&P.sleepers, 1);
  while (!ready(g = atomic_load(&P.gen), seen)) pthread_cond_wait(&P.sleep_cv, &P.sleep_mu);
  atomic_fetch_sub(&P.sleepers, 1);
  pthread_mutex_unlock(&P.sleep_mu);
  return g;
}

/* Takes tasks of the current job until none are left. */
static void take_tasks(int worker) {
  t_in_task = 1;
  for (;;) {
    const int t = atomic_fetch_add(&P.next, 1);
    if (t >= P.n) break;
    P.fn(P.ctx, t, worker);
    atomic_fetch_add(&P.done, 1);
  }
  t_in_task = 0;
}

static void *worker_main(void *arg) {
  const int idx = (int)(intptr_t)arg;
  pthread_setname_np(pthread_self(), "nc-par");
  unsigned seen = atomic_load(&P.gen); /* started under run_mu: no job is posted now */
  for (;;) {
    const unsigned g = wait_job(seen);
    seen = g;
    atomic_fetch_add(&P.active, 1);
    if (atomic_load(&P.gen) == g && idx <= P.want) take_tasks(idx);
    atomic_fetch_sub(&P.active, 1);
  }
  return NULL;
}

/* Starts workers up to `want` (under run_mu); returns how many exist. */
static int ensure_workers(int want) {
  while (P.nworkers < want) {
    pthread_attr_t a;
    pthread_t th;
    if (pthread_attr_init(&a) != 0) break;
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    const int rc = pthread_create(&th, &a, worker_main, (void *)(intptr_t)(P.nworkers + 1));
    pthread_attr_destroy(&a);
    if (rc != 0) break;
    P.nworkers++;
  }
  return P.nworkers;
}

static void run_inline(int n, nc_par_fn fn, void *ctx) {
  for (int t = 0; t < n; t++) fn(ctx, t, 0);
}

void nc_par_run(int threads, int n, nc_par_fn fn, void *ctx) {
  if (!fn || n < 1) return;
  if (threads > NC_PAR_MAX_THREADS) threads = NC_PAR_MAX_THREADS;
  if (threads <= 1 || n == 1 || t_in_task || pthread_mutex_trylock(&P.run_mu) != 0) {
    run_inline(n, fn, ctx);
    return;
  }
  int want = ensure_workers(threads - 1);
  if (want > threads - 1) want = threads - 1;
  if (want > n - 1) want = n - 1; /* the caller takes a task too */
  if (want < 1) {
    pthread_mutex_unlock(&P.run_mu);
    run_inline(n, fn, ctx);
    return;
  }
  const unsigned g = atomic_load(&P.gen);
  atomic_store(&P.gen, g + 1); /* posting */
  while (atomic_load(&P.active) != 0) cpu_relax();
  P.fn = fn;
  P.ctx = ctx;
  P.n = n;
  P.want = want;
  atomic_store(&P.next, 0);
  atomic_store(&P.done, 0);
  atomic_store(&P.gen, g + 2); /* posted */
  if (atomic_load(&P.sleepers) > 0) {
    pthread_mutex_lock(&P.sleep_mu);
    pthread_cond_broadcast(&P.sleep_cv);
    pthread_mutex_unlock(&P.sleep_mu);
  }
  take_tasks(0);
  /* tasks still running on workers: spin briefly, then yield (one may be descheduled) */
  for (int i = 1; atomic_load(&P.done) < n; i++) {
    if (i < 4096) cpu_relax();
    else sched_yield();
  }
  pthread_mutex_unlock(&P.run_mu);
}
