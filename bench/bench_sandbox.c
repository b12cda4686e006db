/* bench_sandbox — latency and throughput of nc_sandbox_run for `print(1)`, next to the
 * reference measured in the same run: plain `/usr/bin/python3 -c 'print(1)'` started with
 * posix_spawn and a stdout pipe (no sandbox). Prints one JSON object.
 *
 *   bench_sandbox [--runs N] [--launcher PATH]
 *
 * Sequential: N runs each (after 5 warm-up runs), p50/p99 in ms. Concurrent: 2 threads,
 * N runs in total, executions per second. Target: sandbox p50 <= 2x the reference p50. */
#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nc_err.h"
#include "nc_sandbox.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double pct(double *v, int n, double p) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  int i = (int)(p * (n - 1) + 0.5);
  return v[i];
}

/* Reference: python3 -c 'print(1)' with stdout captured. Returns 0 on success. */
static int run_plain(void) {
  int p[2];
  if (pipe(p) != 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_addclose(&fa, p[0]);
  posix_spawn_file_actions_addclose(&fa, p[1]);
  char *argv[] = {"/usr/bin/python3", "-c", "print(1)", NULL};
  char *envp[] = {"PATH=/usr/bin:/bin", NULL};
  pid_t pid;
  int e = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  close(p[1]);
  if (e != 0) {
    close(p[0]);
    return -1;
  }
  char buf[64];
  size_t got = 0;
  ssize_t r;
  while ((r = read(p[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
  close(p[0]);
  int st;
  waitpid(pid, &st, 0);
  return (WIFEXITED(st) && WEXITSTATUS(st) == 0 && got == 2 && buf[0] == '1') ? 0 : -1;
}

static nc_sandbox *g_sb;

static int run_sbx(void) {
  nc_sandbox_req req;
  memset(&req, 0, sizeof req);
  req.lang = NC_SANDBOX_PYTHON3;
  req.code = "print(1)";
  req.code_len = 8;
  nc_sandbox_result r;
  int rc = nc_sandbox_run(g_sb, &req, &r);
  int ok = rc == NC_OK && r.success && r.stdout_len == 2 && r.stdout_data[0] == '1';
  if (!ok) fprintf(stderr, "sandbox run failed: rc=%d %s\n", rc, r.error);
  nc_sandbox_result_free(&r);
  return ok ? 0 : -1;
}

struct worker {
  int (*fn)(void);
  int n, fails;
};

static void *work(void *arg) {
  struct worker *w = arg;
  for (int i = 0; i < w->n; i++)
    if (w->fn() != 0) w->fails++;
  return NULL;
}

/* Sequential latency (ms) into lat[n]; returns failures. */
static int latency(int (*fn)(void), int n, double *lat) {
  int fails = 0;
  for (int i = 0; i < 5; i++) fn();
  for (int i = 0; i < n; i++) {
    double t = now_s();
    if (fn() != 0) fails++;
    lat[i] = (now_s() - t) * 1e3;
  }
  return fails;
}

static double throughput2(int (*fn)(void), int n, int *fails) {
  struct worker w[2] = {{fn, n / 2, 0}, {fn, n - n / 2, 0}};
  pthread_t th[2];
  double t = now_s();
  for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, work, &w[i]);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  double el = now_s() - t;
  *fails = w[0].fails + w[1].fails;
  return n / el;
}

int main(int argc, char **argv) {
  int n = 100;
  const char *launcher = NC_BINARY_DIR "/bin/nc-sandbox";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--runs") == 0) n = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--launcher") == 0) launcher = argv[i + 1];
  }
  if (n < 2 || n > 100000) {
    fprintf(stderr, "--runs must be 2..100000\n");
    return 2;
  }
  nc_sandbox_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.launcher_path = launcher;
  if (nc_sandbox_create(cfg, &g_sb) != NC_OK) return 1;
  nc_sandbox_level lv;
  nc_sandbox_level_get(g_sb, &lv);
  if (!lv.available) {
    fprintf(stderr, "sandbox unavailable: %s\n", lv.reason);
    nc_sandbox_free(g_sb);
    return 1;
  }
  double *a = malloc(sizeof(double) * (size_t)n), *b = malloc(sizeof(double) * (size_t)n);
  if (!a || !b) return 1;
  int fa = latency(run_plain, n, a);
  int fb = latency(run_sbx, n, b);
  double ref50 = pct(a, n, 0.5), ref99 = pct(a, n, 0.99);
  double sbx50 = pct(b, n, 0.5), sbx99 = pct(b, n, 0.99);
  int fc = 0, fd = 0;
  double ref_tp = throughput2(run_plain, n, &fc);
  double sbx_tp = throughput2(run_sbx, n, &fd);
  printf("{\n"
         "  \"bench\": \"sandbox_print1\",\n"
         "  \"level\": \"%s\",\n"
         "  \"runs\": %d,\n"
         "  \"reference\": {\"what\": \"posix_spawn /usr/bin/python3 -c 'print(1)'\", "
         "\"p50_ms\": %.2f, \"p99_ms\": %.2f, \"exec_per_s_2_callers\": %.1f, \"failures\": %d},\n"
         "  \"sandbox\": {\"what\": \"nc_sandbox_run print(1)\", "
         "\"p50_ms\": %.2f, \"p99_ms\": %.2f, \"exec_per_s_2_callers\": %.1f, \"failures\": %d},\n"
         "  \"overhead_p50\": %.2f,\n"
         "  \"overhead_throughput\": %.2f,\n"
         "  \"target_overhead\": 2.0\n"
         "}\n",
         lv.level, n, ref50, ref99, ref_tp, fa + fc, sbx50, sbx99, sbx_tp, fb + fd,
         sbx50 / ref50, ref_tp / sbx_tp);
  free(a);
  free(b);
  nc_sandbox_free(g_sb);
  return (fa + fb + fc + fd) ? 1 : 0;
}
