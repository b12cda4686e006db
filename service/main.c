/* main.c — nanochatd: configuration, store, job manager, sandbox, gRPC server, signals.
 *
 *   nanochatd --listen HOST:PORT --data-dir DIR [--token-file FILE] [...]   (see --help)
 *
 * Exit codes: 0 clean shutdown (SIGTERM/SIGINT), 1 startup failure, 2 refused configuration
 * (bad flags, non-loopback listener without token/TLS, unsafe token file), 3 shutdown timed out.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nc_app.h"
#include "nc_auth.h"
#include "nc_config.h"
#include "nc_err.h"
#include "nc_health.h"
#include "nc_jobs.h"
#include "nc_log.h"
#include "nc_sandbox.h"
#include "nc_server.h"
#include "nc_serving.h"
#include "nc_store.h"
#include "nc_tokref.h"

#define NANOCHATD_VERSION "0.1.0"

extern char **environ;

static char sandbox_level_text[320];

static const char *sandbox_level(void *arg) {
  (void)arg;
  return sandbox_level_text;
}

static void job_counts(void *arg, uint32_t *running, uint32_t *queued) {
  nc_jobs_counts(arg, running, queued);
}

/* mkdir -p with mode 0700 for new components. */
static int mkdirs(const char *path) {
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -1;
  return 0;
}

/* Directory holding this executable (the job programs and nc-sandbox live next to it). */
static void exe_dir(char *out, size_t n) {
  char buf[PATH_MAX];
  ssize_t k = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (k <= 0) {
    snprintf(out, n, ".");
    return;
  }
  buf[k] = 0;
  char *slash = strrchr(buf, '/');
  if (slash) *slash = 0;
  snprintf(out, n, "%s", buf);
}

/* Shutdown signals go through a self-pipe: the handler may run on ANY thread (libraries such
 * as OpenBLAS start threads before main() with every signal unblocked, so masking the signals
 * in main's threads and sigwait()ing would let those threads take SIGTERM's default action and
 * kill the process). The handler only write()s the signal number; main reads it. */
static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig) {
  int saved = errno;
  unsigned char b = (unsigned char)sig;
  ssize_t r = write(sig_pipe[1], &b, 1);
  (void)r;
  errno = saved;
}

static int install_signals(void) {
  if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigfillset(&sa.sa_mask);
  if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL) || sigaction(SIGHUP, &sa, NULL))
    return -1;
  signal(SIGPIPE, SIG_IGN);
  return 0;
}

/* Blocks until SIGTERM or SIGINT arrived (SIGHUP: nothing to reload; keep serving). */
static int wait_for_stop_signal(void) {
  for (;;) {
    struct pollfd p = {sig_pipe[0], POLLIN, 0};
    if (poll(&p, 1, -1) < 0) continue;
    unsigned char b;
    if (read(sig_pipe[0], &b, 1) == 1 && b != SIGHUP) return b;
  }
}

/* Frees what startup built so far; returns exit code 1. */
static int startup_failed(nc_serving *serving, nc_jobs *jobs, nc_store *store, nc_sandbox *sandbox) {
  nc_serving_free(serving);
  nc_jobs_shutdown(jobs);
  nc_jobs_free(jobs);
  nc_store_close(store);
  nc_sandbox_free(sandbox);
  return 1;
}

int main(int argc, char **argv) {
  if (install_signals() != 0) {
    fprintf(stderr, "nanochatd: cannot install signal handlers: %s\n", strerror(errno));
    return 1;
  }

  static nc_config cfg;
  char err[1024] = "";
  nc_config_defaults(&cfg, (const char *const *)environ);
  if (nc_config_load(&cfg, argc, argv, (const char *const *)environ, err, sizeof err) != NC_OK) {
    fprintf(stderr, "nanochatd: %s\n%s", err, nc_config_usage());
    return 2;
  }
  if (cfg.action == NC_CONFIG_HELP) {
    fputs(nc_config_usage(), stdout);
    return 0;
  }
  if (cfg.action == NC_CONFIG_VERSION) {
    printf("nanochatd %s\n", NANOCHATD_VERSION);
    return 0;
  }
  nc_log_set_level((nc_log_level)cfg.log_level);

  static nc_auth auth;
  int rc = nc_auth_load(&auth, &cfg, err, sizeof err);
  if (rc != NC_OK) {
    fprintf(stderr, "nanochatd: %s\n", err);
    return 2;
  }
  nc_listen_addr la;
  if (nc_listen_parse(cfg.listen, &la) != NC_OK) {
    fprintf(stderr, "nanochatd: --listen %s: expected HOST:PORT\n", cfg.listen);
    return 2;
  }
  if (nc_config_check_exposure(&cfg, &la, auth.have_admin || auth.have_user, err, sizeof err) != NC_OK) {
    fprintf(stderr, "nanochatd: %s\n", err);
    return 2;
  }
  if (cfg.tls_key[0]) {
    struct stat kst;
    if (stat(cfg.tls_key, &kst) != 0 || !S_ISREG(kst.st_mode)) {
      fprintf(stderr, "nanochatd: --tls-key %s: not a readable regular file\n", cfg.tls_key);
      return 2;
    }
    if (kst.st_mode & (S_IRWXG | S_IRWXO)) {
      fprintf(stderr, "nanochatd: --tls-key %s: mode %03o is accessible by group or others; chmod 600 it\n",
              cfg.tls_key, (unsigned)(kst.st_mode & 0777));
      return 2;
    }
  }
  if (mkdirs(cfg.data_dir) != 0) {
    fprintf(stderr, "nanochatd: cannot create data dir %s: %s\n", cfg.data_dir, strerror(errno));
    return 1;
  }

  /* tokenizer: --tokenizer FILE must load; else <data-dir>/tokenizer/tokenizer.txt when it
   * exists (now or later: a Train.Tokenizer job writes it; the holder picks up new files) */
  nc_tokholder *tokenizers = NULL;
  {
    char tpath[NC_CONFIG_STR + 32];
    if (cfg.tokenizer[0]) snprintf(tpath, sizeof tpath, "%s", cfg.tokenizer);
    else snprintf(tpath, sizeof tpath, "%s/tokenizer/tokenizer.txt", cfg.data_dir);
    rc = nc_tokholder_create(tpath, cfg.tokenizer[0] != 0, 1000, &tokenizers, err, sizeof err);
    if (rc != NC_OK) {
      fprintf(stderr, "nanochatd: cannot load the tokenizer: %s\n", err);
      return 1;
    }
    if (!nc_tokholder_generation(tokenizers))
      nc_log(NC_LOG_INFO, "tokenizer: none yet at %s (Tokenizer.* answer FAILED_PRECONDITION)", tpath);
  }

  /* store */
  char store_dir[NC_CONFIG_STR + 16];
  snprintf(store_dir, sizeof store_dir, "%s/store", cfg.data_dir);
  nc_store_opts so;
  memset(&so, 0, sizeof so);
  so.dir = store_dir;
  so.map_size = (uint64_t)cfg.store_map_mb << 20;
  nc_store *store = NULL;
  rc = nc_store_open(&so, &store);
  if (rc != NC_OK) {
    fprintf(stderr, "nanochatd: cannot open the store in %s: %s\n", store_dir, nc_store_last_error());
    return 1;
  }

  /* job manager */
  char bindir[PATH_MAX], testjob[PATH_MAX + 32], tokjob[PATH_MAX + 32], trainjob[PATH_MAX + 32];
  exe_dir(bindir, sizeof bindir);
  snprintf(testjob, sizeof testjob, "%s/nanochat-testjob", bindir);
  snprintf(tokjob, sizeof tokjob, "%s/nanochat-tokenizer-job", bindir);
  snprintf(trainjob, sizeof trainjob, "%s/nanochat-train", bindir);
  /* training jobs read the served tokenizer from here (a name without "TOKEN": the job
   * manager strips secret-looking variables, TOKENIZER included, from children) */
  if (cfg.tokenizer[0]) {
    char tabs[PATH_MAX];
    setenv("NANOCHAT_TOK_FILE", realpath(cfg.tokenizer, tabs) ? tabs : cfg.tokenizer, 1);
  }
  nc_jobs_opts jo;
  memset(&jo, 0, sizeof jo);
  jo.store = store;
  jo.data_dir = cfg.data_dir;
  if (cfg.enable_test_jobs) jo.exe[NANOCHAT__V1__JOB_KIND__JOB_TEST] = testjob;
  jo.exe[NANOCHAT__V1__JOB_KIND__JOB_TOKENIZER] = tokjob;
  jo.exe[NANOCHAT__V1__JOB_KIND__JOB_BASE] = trainjob;
  nc_jobs *jobs = NULL;
  rc = nc_jobs_start(&jo, &jobs);
  if (rc != NC_OK) {
    fprintf(stderr, "nanochatd: cannot start the job manager: %s\n", nc_store_last_error());
    nc_store_close(store);
    return 1;
  }

  /* sandbox (self-test now; Tools.Execute fails closed when a layer is missing) */
  nc_sandbox *sandbox = NULL;
  if (cfg.enable_tools) {
    nc_sandbox_cfg sc = nc_sandbox_cfg_default();
    sc.max_concurrent = cfg.tools_max_concurrent;
    sc.max_memory_bytes = (uint64_t)cfg.tools_max_memory_mb << 20;
    sc.max_timeout_ms = (uint32_t)cfg.tools_max_timeout_ms;
    nc_sandbox_level lvl;
    memset(&lvl, 0, sizeof lvl);
    if (nc_sandbox_create(sc, &sandbox) == NC_OK) {
      nc_sandbox_level_get(sandbox, &lvl);
      if (lvl.available)
        snprintf(sandbox_level_text, sizeof sandbox_level_text, "%s (cgroup %s)", lvl.level, lvl.cgroup);
      else
        snprintf(sandbox_level_text, sizeof sandbox_level_text, "unavailable: %s", lvl.reason);
    } else {
      snprintf(sandbox_level_text, sizeof sandbox_level_text, "unavailable: the sandbox could not be set up");
    }
  } else {
    snprintf(sandbox_level_text, sizeof sandbox_level_text, "unavailable: Tools.Execute disabled (--enable-tools false)");
  }
  nc_log(NC_LOG_INFO, "sandbox: %s", sandbox_level_text);

  /* served model (engine): nothing loaded unless --model names a checkpoint */
  nc_serving *serving = NULL;
  {
    nc_serving_opts vo;
    memset(&vo, 0, sizeof vo);
    vo.data_dir = cfg.data_dir;
    vo.tokenizers = tokenizers;
    vo.store = store;
    vo.slots = cfg.slots;
    vo.queue_limit = cfg.engine_queue;
    vo.threads = cfg.engine_threads;
    vo.weights = !strcmp(cfg.engine_weights, "f32")        ? NC_DECODE_F32
                 : !strcmp(cfg.engine_weights, "bf16")     ? NC_DECODE_BF16
                 : !strcmp(cfg.engine_weights, "bf16-dot") ? NC_DECODE_BF16_DOT
                                                           : NC_DECODE_AUTO;
    vo.kv = !strcmp(cfg.engine_kv, "f32")    ? NC_ENGINE_KV_F32
            : !strcmp(cfg.engine_kv, "bf16") ? NC_ENGINE_KV_BF16
                                             : NC_ENGINE_KV_AUTO;
    rc = nc_serving_create(&vo, &serving, err, sizeof err);
    if (rc == NC_OK && cfg.model[0]) {
      rc = nc_serving_load_text(serving, cfg.model, err, sizeof err);
      if (rc != NC_OK) fprintf(stderr, "nanochatd: --model %s: %s\n", cfg.model, err);
    } else if (rc != NC_OK) {
      fprintf(stderr, "nanochatd: %s\n", err);
    }
    if (rc != NC_OK) return startup_failed(serving, jobs, store, sandbox);
  }

  /* server */
  static nc_app app;
  app.cfg = &cfg;
  app.store = store;
  app.jobs = jobs;
  app.sandbox = sandbox;
  app.tokenizers = tokenizers;
  app.serving = serving;
  app.model.ready = nc_serving_ready;
  app.model.info = nc_serving_info;
  app.model.arg = serving;
  app.sandbox_level = sandbox_level;
  app.job_counts = job_counts;
  app.jobs_arg = jobs;
  app.version = NANOCHATD_VERSION;
  app.started_mono_ms = nc_now_mono_ms();
  nc_health *health = NULL;
  if (nc_health_create(&health) != NC_OK) return 1;
  app.health = health;
  nc_server_opts opts = {&cfg, &auth, &app};
  nc_server *srv = NULL;
  rc = nc_server_create(&opts, &srv, err, sizeof err);
  if (rc != NC_OK) {
    fprintf(stderr, "nanochatd: %s\n", err);
    return startup_failed(serving, jobs, store, sandbox);
  }
  app.server = srv;
  nc_health_attach(health, srv);
  rc = nc_server_start(srv);
  if (rc != NC_OK) {
    fprintf(stderr, "nanochatd: cannot start the server: %s\n", nc_strerror(rc));
    return 1;
  }
  if (la.unix_socket) printf("nanochatd listening on %s\n", cfg.listen);
  else printf("nanochatd listening on %s:%d\n", la.host, nc_server_port(srv));
  fflush(stdout);
  nc_log(NC_LOG_INFO, "serving on port %d (data dir %s, auth %s)", nc_server_port(srv), cfg.data_dir,
         auth.have_admin || auth.have_user ? "token" : "open, loopback only");

  int sig = wait_for_stop_signal();
  nc_log(NC_LOG_INFO, "signal %d: shutting down (grace %d ms)", sig, cfg.grace_ms);
  rc = nc_server_shutdown(srv, cfg.grace_ms);
  nc_jobs_shutdown(jobs);
  if (rc != NC_OK) {
    nc_log(NC_LOG_ERROR, "shutdown timed out; exiting without cleanup");
    nc_store_close(store);
    return 3;
  }
  nc_server_free(srv);
  nc_serving_free(serving);
  nc_jobs_free(jobs);
  nc_store_close(store);
  nc_sandbox_free(sandbox);
  nc_tokholder_free(tokenizers);
  nc_health_free(health);
  nc_log(NC_LOG_INFO, "stopped");
  return 0;
}
