/* nc_par.h — the decoder's fork-join pool: parallel loops with a short, bounded spin.
 *
 * Why not OpenMP here: a decode step runs ~40 short parallel loops (every GEMV, attention), a
 * few to a few hundred microseconds each. libgomp's default wait policy spins for a long time
 * between them (on a machine busy with other processes a spinning worker takes a core another
 * process needs: decode measured up to 10x slower), and OMP_WAIT_POLICY=PASSIVE puts every
 * worker to sleep at once, so each loop starts with a futex wake-up (on this VM tens of
 * microseconds: batch-1 decode ~25% slower). Here a worker spins for at most nc_par_spin_us()
 * (default NC_PAR_SPIN_US) after its last loop, which covers the gaps inside a step, then
 * sleeps. Tasks are handed out one at a time, so a worker that is descheduled or still asleep
 * never holds a loop up: the caller (and whoever is awake) takes the remaining tasks.
 *
 * Results must not depend on which thread runs a task (the decoder's kernels are batch- and
 * split-invariant); `worker` is only for per-thread scratch.
 *
 * Threads: one process-wide pool, created on first use, workers named "nc-par" (joined at
 * exit). Any thread may call nc_par_run; one loop runs at a time, and a call that finds the pool
 * busy (another thread's loop) or comes from inside a task runs its tasks inline on the calling
 * thread, in order, so calls never wait for each other and never deadlock. No allocation after
 * the workers exist; no errors reach the caller (a worker that cannot be created just leaves
 * its share to the others).
 */
#ifndef NC_PAR_H
#define NC_PAR_H

#ifdef __cplusplus
extern "C" {
#endif

#define NC_PAR_MAX_THREADS 64 /* largest `threads` honoured (more are clamped) */
#define NC_PAR_SPIN_US 200    /* default spin after a loop before a worker sleeps */

/* One task: `task` in [0, n), `worker` in [0, threads) (0 = the calling thread). */
typedef void (*nc_par_fn)(void *ctx, int task, int worker);

/* Runs fn(ctx, t, w) once for every t in [0, n) on up to `threads` threads, the caller being
 * one of them, and returns when all have returned. threads <= 1 or n <= 1 (or a busy pool / a
 * call from inside a task): inline, t in order, w = 0. Writes made by the tasks are visible to
 * the caller on return. */
void nc_par_run(int threads, int n, nc_par_fn fn, void *ctx);

/* The spin budget in microseconds (0 = sleep at once; at most 100000). Read from the
 * environment variable NC_PAR_SPIN_US at first use, else NC_PAR_SPIN_US; tests and benchmarks
 * may set it. */
void nc_par_set_spin_us(int us);
int nc_par_spin_us(void);

/* Workers started so far (0 before the first parallel call). */
int nc_par_workers(void);

#ifdef __cplusplus
}
#endif
#endif /* NC_PAR_H */
