/* nanochat-testjob — the built-in test job (JobKind JOB_TEST, Train.TestJob), a child program
 * of the job manager that speaks the protocol of nc_jobio.h. It exists to prove the job
 * manager: it sleeps and reports like a training run, and can fail, crash or be stopped.
 *
 * Request: nanochat.v1.TestJobRequest
 *   steps      PROGRESS events to send, one every step_ms milliseconds (step 1..steps)
 *   fail_with  after the steps, send this as a LOG line and exit 1 (the job ends FAILED with
 *              it as the reason)
 *   crash_at   SIGKILL itself when step crash_at is due (0 = before the first step; -1 never)
 *
 * Events: LOG "test job: N steps of M ms", PROGRESS {step, total_steps, loss, lrm, dt_ms,
 * elapsed_s, eta_s, tokens_seen} per step, then EVAL {val_bpb, steps} and LOG "done".
 * SIGTERM: stops after the current sleep, sends PROGRESS for the last completed step and
 * LOG "stopped by SIGTERM after step K", exits 0. Exit codes: 0 done or stopped, 1 fail_with,
 * 2 bad arguments or request, 3 the server went away (event pipe closed). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "nc_err.h"
#include "nc_jobio.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One PROGRESS event; NC_OK, or the write error (the server is gone: main exits 3). */
static int progress(nc_jobio *io, int step, int steps, double t0, int step_ms) {
  Nanochat__V1__Progress p = NANOCHAT__V1__PROGRESS__INIT;
  p.has_step = 1;
  p.step = step;
  p.has_total_steps = 1;
  p.total_steps = steps;
  p.has_loss = 1;
  p.loss = 4.0 / (1.0 + 0.1 * step);
  p.has_lrm = 1;
  p.lrm = 1.0;
  p.has_dt_ms = 1;
  p.dt_ms = step_ms;
  p.has_elapsed_s = 1;
  p.elapsed_s = now_s() - t0;
  p.has_eta_s = 1;
  p.eta_s = (steps - step) * step_ms / 1000.0;
  p.has_tokens_seen = 1;
  p.tokens_seen = (int64_t)step * 1024;
  return nc_jobio_progress(io, &p);
}

int main(int argc, char **argv) {
  nc_jobio_args a;
  ProtobufCMessage *msg;
  if (nc_jobio_start(argc, argv, "nanochat-testjob", &nanochat__v1__test_job_request__descriptor, &a, &msg) != NC_OK) return 2;
  Nanochat__V1__TestJobRequest *req = (Nanochat__V1__TestJobRequest *)msg;
  nc_jobio *io;
  if (nc_jobio_open(&a, &io) != NC_OK) {
    fprintf(stderr, "nanochat-testjob: bad events fd\n");
    return 2;
  }
  int steps = req->steps, step_ms = req->step_ms, crash_at = req->crash_at;
  if (steps < 0 || steps > 100000 || step_ms < 0 || step_ms > 60000) {
    nc_jobio_log(io, "invalid test job request (steps %d, step_ms %d)", steps, step_ms);
    return 2;
  }
  if (nc_jobio_log(io, "test job: %d steps of %d ms", steps, step_ms) != NC_OK) return 3;
  double t0 = now_s();
  int done = 0;
  for (int step = 1; step <= steps; step++) {
    if (crash_at >= 0 && step >= crash_at) kill(getpid(), SIGKILL);
    if (nc_jobio_sleep_ms(step_ms) != NC_OK) break;
    if (progress(io, step, steps, t0, step_ms) != NC_OK) return 3;
    done = step;
  }
  if (crash_at == 0) kill(getpid(), SIGKILL);
  if (nc_jobio_stop_requested()) {
    if (progress(io, done, steps, t0, step_ms) != NC_OK) return 3;
    nc_jobio_log(io, "stopped by SIGTERM after step %d", done);
    nc_jobio_close(io);
    nanochat__v1__test_job_request__free_unpacked(req, NULL);
    return 0;
  }
  const char *names[] = {"val_bpb", "steps"};
  double vals[] = {1.0 + 1.0 / (1.0 + steps), (double)steps};
  if (nc_jobio_metrics(io, names, vals, 2, "test") != NC_OK) return 3;
  int rc = 0;
  if (req->fail_with && req->fail_with[0]) {
    nc_jobio_log(io, "%s", req->fail_with);
    rc = 1;
  } else {
    nc_jobio_log(io, "done");
  }
  nc_jobio_close(io);
  nanochat__v1__test_job_request__free_unpacked(req, NULL);
  return rc;
}
