/* nc_config.c — flags + environment + config file (see nc_config.h). */
#include "nc_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "nc_err.h"
#include "nc_log.h"
#include "nc_validate.h"

#define NC_CONFIG_FILE_MAX (1u << 20)

typedef enum otype { T_STR, T_INT, T_BOOL, T_LEVEL, T_WEIGHTS, T_KV } otype;

typedef struct opt {
  const char *name;   /* flag and file key; NULL for environment-only values */
  const char *env;    /* NULL: no environment variable */
  otype type;
  size_t off;
  int min, max;       /* T_INT range */
  bool in_file;       /* may appear in the config file */
} opt;

#define OFF(f) offsetof(nc_config, f)
static const opt opts[] = {
    {"listen", "NANOCHAT_LISTEN", T_STR, OFF(listen), 0, 0, true},
    {"data-dir", "NANOCHAT_DATA_DIR", T_STR, OFF(data_dir), 0, 0, true},
    {"tokenizer", "NANOCHAT_TOKENIZER", T_STR, OFF(tokenizer), 0, 0, true},
    {"token-file", "NANOCHAT_TOKEN_FILE", T_STR, OFF(token_file), 0, 0, true},
    {NULL, "NANOCHAT_TOKEN", T_STR, OFF(token_env), 0, 0, false},
    {"user-token-file", "NANOCHAT_USER_TOKEN_FILE", T_STR, OFF(user_token_file), 0, 0, true},
    {NULL, "NANOCHAT_USER_TOKEN", T_STR, OFF(user_token_env), 0, 0, false},
    {"tls-cert", "NANOCHAT_TLS_CERT", T_STR, OFF(tls_cert), 0, 0, true},
    {"tls-key", "NANOCHAT_TLS_KEY", T_STR, OFF(tls_key), 0, 0, true},
    {"insecure-remote", "NANOCHAT_INSECURE_REMOTE", T_BOOL, OFF(insecure_remote), 0, 0, true},
    {"log-level", "NANOCHAT_LOG_LEVEL", T_LEVEL, OFF(log_level), 0, 0, true},
    {"workers", "NANOCHAT_WORKERS", T_INT, OFF(workers), 1, 256, true},
    {"worker-queue", "NANOCHAT_WORKER_QUEUE", T_INT, OFF(worker_queue), 1, 100000, true},
    {"cq-threads", "NANOCHAT_CQ_THREADS", T_INT, OFF(cq_threads), 1, 64, true},
    {"grace-ms", "NANOCHAT_GRACE_MS", T_INT, OFF(grace_ms), 0, 600000, true},
    {"max-streams", "NANOCHAT_MAX_STREAMS", T_INT, OFF(max_streams), 1, 100000, true},
    {"enable-test-jobs", "NANOCHAT_ENABLE_TEST_JOBS", T_BOOL, OFF(enable_test_jobs), 0, 0, true},
    {"enable-tools", "NANOCHAT_ENABLE_TOOLS", T_BOOL, OFF(enable_tools), 0, 0, true},
    {"store-map-mb", "NANOCHAT_STORE_MAP_MB", T_INT, OFF(store_map_mb), 1, 1048576, true},
    {"tools-max-concurrent", "NANOCHAT_TOOLS_MAX_CONCURRENT", T_INT, OFF(tools_max_concurrent), 1, 64, true},
    {"tools-max-memory-mb", "NANOCHAT_TOOLS_MAX_MEMORY_MB", T_INT, OFF(tools_max_memory_mb), 16, 65536, true},
    {"tools-max-timeout-ms", "NANOCHAT_TOOLS_MAX_TIMEOUT_MS", T_INT, OFF(tools_max_timeout_ms), 1, 3600000, true},
    {"model", "NANOCHAT_MODEL", T_STR, OFF(model), 0, 0, true},
    {"slots", "NANOCHAT_SLOTS", T_INT, OFF(slots), 1, 64, true},
    {"engine-queue", "NANOCHAT_ENGINE_QUEUE", T_INT, OFF(engine_queue), 0, 4096, true},
    {"engine-threads", "NANOCHAT_ENGINE_THREADS", T_INT, OFF(engine_threads), 0, 256, true},
    {"stream-flush-ms", "NANOCHAT_STREAM_FLUSH_MS", T_INT, OFF(stream_flush_ms), 0, 1000, true},
    {"engine-weights", "NANOCHAT_ENGINE_WEIGHTS", T_WEIGHTS, OFF(engine_weights), 0, 0, true},
    {"engine-kv", "NANOCHAT_ENGINE_KV", T_KV, OFF(engine_kv), 0, 0, true},
    {"config", "NANOCHAT_CONFIG", T_STR, OFF(config_file), 0, 0, false},
};
#undef OFF
#define N_OPTS (sizeof opts / sizeof opts[0])

#define errf(err, len, ...) nc_errf(NC_EINVAL, (err), (len), __VA_ARGS__)

static const char *env_get(const char *const *env, const char *key) {
  if (!env) return NULL;
  size_t k = strlen(key);
  for (; *env; env++)
    if (strncmp(*env, key, k) == 0 && (*env)[k] == '=') return *env + k + 1;
  return NULL;
}

static const opt *find_flag(const char *name, size_t len) {
  for (size_t i = 0; i < N_OPTS; i++)
    if (opts[i].name && strlen(opts[i].name) == len && memcmp(opts[i].name, name, len) == 0)
      return &opts[i];
  return NULL;
}

static int parse_bool(const char *v, bool *out) {
  static const char *const yes[] = {"1", "true", "yes", "on"};
  static const char *const no[] = {"0", "false", "no", "off"};
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(v, yes[i]) == 0) { *out = true; return NC_OK; }
    if (strcasecmp(v, no[i]) == 0) { *out = false; return NC_OK; }
  }
  return NC_EINVAL;
}

/* Sets option `o` from text `v`; `where` names the source in messages. */
static int set_opt(nc_config *c, const opt *o, const char *v, const char *where, char *err,
                   size_t errlen) {
  char *field = (char *)c + o->off;
  switch (o->type) {
    case T_STR: {
      size_t n = strlen(v);
      if (n >= NC_CONFIG_STR) return errf(err, errlen, "%s: value too long", where);
      memcpy(field, v, n + 1);
      return NC_OK;
    }
    case T_INT: {
      errno = 0;
      char *end;
      long x = strtol(v, &end, 10);
      if (errno || end == v || *end || x < o->min || x > o->max)
        return errf(err, errlen, "%s: expected an integer in [%d, %d]", where, o->min, o->max);
      int xi = (int)x;
      memcpy(field, &xi, sizeof xi);
      return NC_OK;
    }
    case T_BOOL: {
      bool b;
      if (parse_bool(v, &b)) return errf(err, errlen, "%s: expected true or false", where);
      memcpy(field, &b, sizeof b);
      return NC_OK;
    }
    case T_WEIGHTS: {
      static const char *const w[] = {"auto", "bf16", "bf16-dot", "f32"};
      for (int i = 0; i < 4; i++)
        if (strcmp(v, w[i]) == 0) {
          snprintf(field, 16, "%s", w[i]);
          return NC_OK;
        }
      return errf(err, errlen, "%s: expected auto, bf16, bf16-dot or f32", where);
    }
    case T_KV: {
      static const char *const w[] = {"auto", "bf16", "f32"};
      for (int i = 0; i < 3; i++)
        if (strcmp(v, w[i]) == 0) {
          snprintf(field, 16, "%s", w[i]);
          return NC_OK;
        }
      return errf(err, errlen, "%s: expected auto, bf16 or f32", where);
    }
    case T_LEVEL: {
      nc_log_level l;
      if (nc_log_parse_level(v, &l))
        return errf(err, errlen, "%s: expected error, warn, info or debug", where);
      int li = (int)l;
      memcpy(field, &li, sizeof li);
      return NC_OK;
    }
  }
  return NC_EINVAL;
}

void nc_config_defaults(nc_config *c, const char *const *env) {
  memset(c, 0, sizeof *c);
  snprintf(c->listen, sizeof c->listen, "127.0.0.1:50051");
  const char *home = env_get(env, "HOME");
  if (home && *home && strlen(home) + 16 < sizeof c->data_dir)
    snprintf(c->data_dir, sizeof c->data_dir, "%s/.nanochat", home);
  else
    snprintf(c->data_dir, sizeof c->data_dir, ".nanochat");
  c->log_level = NC_LOG_INFO;
  c->workers = 4;
  c->worker_queue = 256;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  c->cq_threads = cpus < 1 ? 1 : (cpus > 4 ? 4 : (int)cpus);
  c->grace_ms = 10000;
  c->max_streams = 32;
  c->enable_tools = true;
  c->tools_max_concurrent = 2;
  c->tools_max_memory_mb = 1024;
  c->tools_max_timeout_ms = 60000;
  c->slots = 8;
  c->engine_queue = 64;
  c->stream_flush_ms = 50;
  snprintf(c->engine_weights, sizeof c->engine_weights, "auto");
  snprintf(c->engine_kv, sizeof c->engine_kv, "auto");
  c->action = NC_CONFIG_RUN;
}

int nc_config_apply_text(nc_config *c, const char *text, size_t len, const char *source,
                         char *err, size_t errlen) {
  size_t pos = 0;
  int lineno = 0;
  char line[NC_CONFIG_STR + 256];
  while (pos < len) {
    lineno++;
    size_t e = pos;
    while (e < len && text[e] != '\n') e++;
    size_t n = e - pos;
    if (n >= sizeof line) return errf(err, errlen, "%s:%d: line too long", source, lineno);
    memcpy(line, text + pos, n);
    line[n] = 0;
    pos = e < len ? e + 1 : e;
    if (memchr(line, 0, n)) return errf(err, errlen, "%s:%d: NUL byte", source, lineno);
    if (!nc_text_valid((const uint8_t *)line, n))
      return errf(err, errlen, "%s:%d: invalid UTF-8", source, lineno);
    /* trim */
    char *s = line;
    while (*s == ' ' || *s == '\t' || *s == '\r') s++;
    char *end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) *--end = 0;
    if (!*s || *s == '#') continue;
    char *eq = strchr(s, '=');
    if (!eq) return errf(err, errlen, "%s:%d: expected key = value", source, lineno);
    char *k_end = eq;
    while (k_end > s && (k_end[-1] == ' ' || k_end[-1] == '\t')) k_end--;
    char *v = eq + 1;
    while (*v == ' ' || *v == '\t') v++;
    size_t vl = strlen(v);
    if (vl >= 1 && (v[0] == '"' || v[vl - 1] == '"')) {
      if (vl < 2 || v[0] != '"' || v[vl - 1] != '"')
        return errf(err, errlen, "%s:%d: unbalanced double quote", source, lineno);
      v[vl - 1] = 0;
      v++;
    }
    const opt *o = find_flag(s, (size_t)(k_end - s));
    char where[128];
    if (!o || !o->in_file) {
      *k_end = 0;
      char key[64];
      nc_log_sanitize(key, sizeof key, s, strlen(s));
      return errf(err, errlen, "%s:%d: unknown key '%s'", source, lineno, key);
    }
    snprintf(where, sizeof where, "%s:%d: %s", source, lineno, o->name);
    int rc = set_opt(c, o, v, where, err, errlen);
    if (rc) return rc;
  }
  return NC_OK;
}

static int read_config_file(nc_config *c, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) return errf(err, errlen, "config file %s: %s", path, strerror(errno));
  char *buf = malloc(NC_CONFIG_FILE_MAX + 1);
  if (!buf) {
    fclose(f);
    return errf(err, errlen, "config file %s: out of memory", path);
  }
  size_t n = fread(buf, 1, NC_CONFIG_FILE_MAX + 1, f);
  int ferr = ferror(f);
  fclose(f);
  int rc;
  if (ferr)
    rc = errf(err, errlen, "config file %s: read error", path);
  else if (n > NC_CONFIG_FILE_MAX)
    rc = errf(err, errlen, "config file %s: larger than 1 MiB", path);
  else
    rc = nc_config_apply_text(c, buf, n, path, err, errlen);
  free(buf);
  return rc;
}

int nc_config_load(nc_config *c, int argc, char *const argv[], const char *const *env,
                   char *err, size_t errlen) {
  /* 1. the config file: --config on the command line wins over NANOCHAT_CONFIG */
  const char *cfg_path = env_get(env, "NANOCHAT_CONFIG");
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) cfg_path = argv[i + 1];
    else if (strncmp(argv[i], "--config=", 9) == 0) cfg_path = argv[i] + 9;
  }
  if (cfg_path && *cfg_path) {
    if (strlen(cfg_path) >= sizeof c->config_file)
      return errf(err, errlen, "--config: path too long");
    snprintf(c->config_file, sizeof c->config_file, "%s", cfg_path);
    int rc = read_config_file(c, cfg_path, err, errlen);
    if (rc) return rc;
  }
  /* 2. environment */
  for (size_t i = 0; i < N_OPTS; i++) {
    const opt *o = &opts[i];
    if (!o->env || o->off == offsetof(nc_config, config_file)) continue;
    const char *v = env_get(env, o->env);
    if (!v || !*v) continue;
    int rc = set_opt(c, o, v, o->env, err, errlen);
    if (rc) return rc;
  }
  /* 3. command line */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      c->action = NC_CONFIG_HELP;
      return NC_OK;
    }
    if (strcmp(a, "--version") == 0) {
      c->action = NC_CONFIG_VERSION;
      return NC_OK;
    }
    if (strncmp(a, "--", 2) != 0) {
      char shown[64];
      nc_log_sanitize(shown, sizeof shown, a, strlen(a));
      return errf(err, errlen, "unexpected argument '%s' (see --help)", shown);
    }
    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t nl = eq ? (size_t)(eq - name) : strlen(name);
    const opt *o = find_flag(name, nl);
    if (!o) {
      char shown[64];
      nc_log_sanitize(shown, sizeof shown, a, eq ? (size_t)(eq - a) : strlen(a));
      return errf(err, errlen, "unknown flag '%s' (see --help)", shown);
    }
    const char *v;
    if (eq) {
      v = eq + 1;
    } else if (o->type == T_BOOL &&
               (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0 || parse_bool(argv[i + 1], &(bool){0}))) {
      v = "true";
    } else {
      if (i + 1 >= argc) return errf(err, errlen, "--%s needs a value", o->name);
      v = argv[++i];
    }
    char where[64];
    snprintf(where, sizeof where, "--%s", o->name);
    int rc = set_opt(c, o, v, where, err, errlen);
    if (rc) return rc;
  }
  if (!c->listen[0]) return errf(err, errlen, "--listen must not be empty");
  if (!c->data_dir[0]) return errf(err, errlen, "--data-dir must not be empty");
  if (!!c->tls_cert[0] != !!c->tls_key[0])
    return errf(err, errlen, "--tls-cert and --tls-key must be given together");
  return NC_OK;
}

int nc_listen_parse(const char *s, nc_listen_addr *out) {
  memset(out, 0, sizeof *out);
  size_t n = strlen(s);
  if (strncmp(s, "unix:", 5) == 0 || strncmp(s, "unix-abstract:", 14) == 0) {
    if (n >= sizeof out->host || n <= 5) return NC_EINVAL;
    memcpy(out->host, s, n + 1);
    out->port = -1;
    out->loopback = true;
    out->unix_socket = true;
    return NC_OK;
  }
  const char *colon;
  const char *h = s;
  size_t hl;
  if (s[0] == '[') {
    const char *rb = strchr(s, ']');
    if (!rb || rb[1] != ':') return NC_EINVAL;
    h = s + 1;
    hl = (size_t)(rb - h);
    colon = rb + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon) return NC_EINVAL;
    hl = (size_t)(colon - s);
    if (memchr(s, ':', hl)) return NC_EINVAL;   /* bare IPv6 needs brackets */
  }
  if (hl == 0 || hl >= sizeof out->host) return NC_EINVAL;
  memcpy(out->host, h, hl);
  out->host[hl] = 0;
  const char *p = colon + 1;
  if (!*p || strlen(p) > 5) return NC_EINVAL;
  long port = 0;
  for (; *p; p++) {
    if (*p < '0' || *p > '9') return NC_EINVAL;
    port = port * 10 + (*p - '0');
  }
  if (port > 65535) return NC_EINVAL;
  out->port = (int)port;
  unsigned char a6[16];
  struct in_addr a4;
  if (strcasecmp(out->host, "localhost") == 0) {
    out->loopback = true;
  } else if (inet_pton(AF_INET, out->host, &a4) == 1) {
    out->loopback = (ntohl(a4.s_addr) >> 24) == 127;
  } else if (inet_pton(AF_INET6, out->host, a6) == 1) {
    static const unsigned char lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    out->loopback = memcmp(a6, lo6, 16) == 0 || (memcmp(a6, mapped, 12) == 0 && a6[12] == 127);
  } else {
    /* a host name: not resolved here, so never trusted as loopback */
    for (size_t i = 0; i < hl; i++) {
      char c = out->host[i];
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.'))
        return NC_EINVAL;
    }
    out->loopback = false;
  }
  return NC_OK;
}

int nc_config_check_exposure(const nc_config *c, const nc_listen_addr *addr, bool have_token,
                             char *err, size_t errlen) {
  if (addr->loopback) return NC_OK;
  bool have_tls = c->tls_cert[0] && c->tls_key[0];
  bool need_tls = !have_tls && !c->insecure_remote;
  if (!have_token || need_tls) {
    if (err && errlen)
      snprintf(err, errlen,
               "refusing to listen on non-loopback address %s without %s%s%s", c->listen,
               have_token ? "" : "an auth token (--token-file or NANOCHAT_TOKEN)",
               (!have_token && need_tls) ? " and " : "",
               need_tls ? "TLS (--tls-cert and --tls-key, or --insecure-remote behind a "
                          "TLS-terminating proxy)" : "");
    return NC_EPERM;
  }
  return NC_OK;
}

const char *nc_config_usage(void) {
  return "usage: nanochatd [--listen HOST:PORT] [--data-dir DIR] [--token-file FILE]\n"
         "                 [--user-token-file FILE] [--tls-cert FILE --tls-key FILE]\n"
         "                 [--insecure-remote] [--log-level error|warn|info|debug]\n"
         "                 [--workers N] [--worker-queue N] [--cq-threads N] [--grace-ms MS]\n"
         "                 [--max-streams N] [--enable-test-jobs] [--enable-tools BOOL]\n"
         "                 [--store-map-mb N] [--tools-max-concurrent N]\n"
         "                 [--tools-max-memory-mb N] [--tools-max-timeout-ms MS] [--tokenizer FILE]\n"
         "                 [--model latest|PHASE[/TAG[/STEP]]] [--slots N] [--engine-queue N]\n"
         "                 [--engine-threads N] [--engine-weights auto|bf16|bf16-dot|f32]\n"
         "                 [--engine-kv auto|bf16|f32]\n"
         "                 [--stream-flush-ms MS]\n"
         "                 [--config FILE]\n"
         "                 [--help] [--version]\n"
         "\n"
         "  --listen HOST:PORT   address (default 127.0.0.1:50051; port 0 picks a free port and\n"
         "                       prints 'nanochatd listening on HOST:PORT' once serving)\n"
         "  --data-dir DIR       data directory (default $HOME/.nanochat)\n"
         "  --tokenizer FILE     tokenizer for Tokenizer.* (default DIR/tokenizer/tokenizer.txt if present)\n"
         "  --token-file FILE    admin bearer token (mode 0600); env NANOCHAT_TOKEN also works\n"
         "  --user-token-file F  user token: every method except admin ones\n"
         "  --tls-cert/--tls-key PEM files enabling TLS\n"
         "  --grace-ms MS        on SIGTERM/SIGINT: let calls finish this long, then cancel\n"
         "  --model SPEC         serve a checkpoint from startup (latest, or e.g. sft/d4/500)\n"
         "  --slots N            generations at once (engine KV slots, default 8)\n"
         "Every flag also has an environment variable NANOCHAT_<FLAG> and a config-file key.\n"
         "Without a token every method is open, so nanochatd then listens on loopback only.\n";
}
