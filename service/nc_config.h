/* nc_config.h — nanochatd configuration: flags, environment, an optional config file.
 *
 * Precedence (later wins): built-in defaults < config file < environment < command line.
 *
 * | flag / file key      | environment               | default                 | meaning |
 * |----------------------|---------------------------|-------------------------|---------|
 * | --listen HOST:PORT   | NANOCHAT_LISTEN           | 127.0.0.1:50051         | address; port 0 picks a free port; also [::1]:P, localhost:P, unix:/path |
 * | --data-dir DIR       | NANOCHAT_DATA_DIR         | $HOME/.nanochat         | store, checkpoints, tokenizer |
 * | --tokenizer FILE     | NANOCHAT_TOKENIZER        | DATA/tokenizer/tokenizer.txt if present | tokenizer file for Tokenizer.* (core/nc_tokenizer.h format); a given file must load |
 * | --token-file FILE    | NANOCHAT_TOKEN_FILE       | none                    | admin token (file must not be group/world-readable) |
 * |   (no flag)          | NANOCHAT_TOKEN            | none                    | admin token value (the file wins when both are set) |
 * | --user-token-file F  | NANOCHAT_USER_TOKEN_FILE  | none                    | user token: every non-admin method |
 * |   (no flag)          | NANOCHAT_USER_TOKEN       | none                    | user token value |
 * | --tls-cert FILE      | NANOCHAT_TLS_CERT         | none                    | PEM certificate chain; with --tls-key enables TLS |
 * | --tls-key FILE       | NANOCHAT_TLS_KEY          | none                    | PEM private key (must not be group/world-readable) |
 * | --insecure-remote    | NANOCHAT_INSECURE_REMOTE  | false                   | allow a non-loopback listener without TLS (a token is still required) |
 * | --log-level L        | NANOCHAT_LOG_LEVEL        | info                    | error, warn, info, debug |
 * | --workers N          | NANOCHAT_WORKERS          | 4                       | worker-pool threads for slow methods, 1..256 |
 * | --worker-queue N     | NANOCHAT_WORKER_QUEUE     | 256                     | slow calls waiting for a worker; beyond: RESOURCE_EXHAUSTED |
 * | --cq-threads N       | NANOCHAT_CQ_THREADS       | min(CPUs, 4)            | completion-queue threads, 1..64 |
 * | --grace-ms MS        | NANOCHAT_GRACE_MS         | 10000                   | shutdown grace period before in-flight calls are cancelled |
 * | --max-streams N      | NANOCHAT_MAX_STREAMS      | 32                      | concurrent streams per HTTP/2 connection |
 * | --enable-test-jobs   | NANOCHAT_ENABLE_TEST_JOBS | false                   | allow Train.TestJob (job-manager tests) |
 * | --enable-tools BOOL  | NANOCHAT_ENABLE_TOOLS     | true                    | Tools.Execute through the sandbox (fails closed without one) |
 * | --store-map-mb N     | NANOCHAT_STORE_MAP_MB     | store default           | LMDB map size in MiB (1..1048576) |
 * | --tools-max-concurrent N | NANOCHAT_TOOLS_MAX_CONCURRENT | 2               | Tools.Execute runs at once, 1..64 |
 * | --tools-max-memory-mb N  | NANOCHAT_TOOLS_MAX_MEMORY_MB  | 1024            | largest memory_limit_mb a request may ask |
 * | --tools-max-timeout-ms N | NANOCHAT_TOOLS_MAX_TIMEOUT_MS | 60000           | largest timeout a request may ask |
 * | --model SPEC         | NANOCHAT_MODEL            | none                    | load at startup: latest, or PHASE[/TAG[/STEP]] (nc_serving.h); failure exits 1 |
 * | --slots N            | NANOCHAT_SLOTS            | 8                       | engine KV slots = generations at once, 1..64 |
 * | --engine-queue N     | NANOCHAT_ENGINE_QUEUE     | 64                      | generations waiting for a slot; beyond: RESOURCE_EXHAUSTED |
 * | --engine-threads N   | NANOCHAT_ENGINE_THREADS   | 0                       | OpenMP threads of the engine's scheduler, 0 = OpenMP default (OMP_NUM_THREADS) |
 * | --stream-flush-ms MS  | NANOCHAT_STREAM_FLUSH_MS  | 50                      | streams: deltas of one call are coalesced into at most one message per MS (0 = every token) |
 * | --engine-weights W   | NANOCHAT_ENGINE_WEIGHTS   | auto                    | decode precision: auto, bf16, bf16-dot, f32 (reference) |
 * | --engine-kv K        | NANOCHAT_ENGINE_KV        | auto                    | KV cache precision: auto (bf16, f32 with f32 weights), bf16, f32 |
 * | --config FILE        | NANOCHAT_CONFIG           | none                    | config file (below) |
 * | --help, --version    |                           |                         | print and exit 0 |
 *
 * Flags take "--name value" or "--name=value"; boolean flags also stand alone ("--name") and
 * accept true/false/1/0/yes/no/on/off. The config file is UTF-8 text of `key = value` lines,
 * keys are the flag names without "--", '#' starts a comment line, values may be wrapped in
 * double quotes, unknown keys are an error (with the line number). Token values cannot be put
 * in the config file, only token files.
 */
#ifndef NC_CONFIG_H
#define NC_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NC_CONFIG_STR 4096   /* capacity of every string/path field, including the NUL */

typedef enum nc_config_action {
  NC_CONFIG_RUN = 0,
  NC_CONFIG_HELP,      /* --help was given: print nc_config_usage() and exit 0 */
  NC_CONFIG_VERSION,   /* --version was given */
} nc_config_action;

typedef struct nc_config {
  char listen[NC_CONFIG_STR];
  char data_dir[NC_CONFIG_STR];
  char token_file[NC_CONFIG_STR];        /* "" = none */
  char token_env[NC_CONFIG_STR];         /* value of NANOCHAT_TOKEN, "" = none (secret) */
  char user_token_file[NC_CONFIG_STR];
  char user_token_env[NC_CONFIG_STR];    /* value of NANOCHAT_USER_TOKEN (secret) */
  char tls_cert[NC_CONFIG_STR];
  char tls_key[NC_CONFIG_STR];
  char config_file[NC_CONFIG_STR];       /* the file that was read, "" = none */
  char tokenizer[NC_CONFIG_STR];         /* --tokenizer, "" = <data_dir>/tokenizer/tokenizer.txt if present */
  bool insecure_remote;
  bool enable_test_jobs;
  bool enable_tools;                     /* Tools.Execute through the sandbox (default on) */
  int store_map_mb;                      /* LMDB map size in MiB; 0 = the store's default */
  int tools_max_concurrent;              /* sandbox runs at once (beyond: RESOURCE_EXHAUSTED) */
  int tools_max_memory_mb;               /* largest memory_limit_mb a request may ask */
  int tools_max_timeout_ms;              /* largest timeout a request may ask */
  int log_level;                         /* nc_log_level */
  int workers;
  int worker_queue;
  int cq_threads;
  int grace_ms;
  int max_streams;
  /* serving (nc_serving.h) */
  char model[NC_CONFIG_STR];             /* --model spec, "" = none */
  int slots;
  int engine_queue;
  int engine_threads;
  int stream_flush_ms;
  char engine_weights[16];               /* auto | bf16 | bf16-dot | f32 (checked at load) */
  char engine_kv[16];                    /* auto | bf16 | f32 */
  nc_config_action action;
} nc_config;

/* Fills built-in defaults. `env` is a NULL-terminated array of "KEY=VALUE" strings (pass
 * `environ`); only HOME is read here (data dir default). */
void nc_config_defaults(nc_config *c, const char *const *env);

/* Applies the config file (from --config / NANOCHAT_CONFIG), then the environment, then the
 * command line (argv[0] is skipped) on top of what `c` holds (call nc_config_defaults first).
 * Returns NC_OK, or NC_EINVAL with a one-line message naming the flag/key/variable in
 * err[errlen]. Never prints, never exits. */
int nc_config_load(nc_config *c, int argc, char *const argv[], const char *const *env,
                   char *err, size_t errlen);

/* Applies config-file text (the format above); `source` names it in messages. NC_OK or
 * NC_EINVAL (message "source:LINE: ..."). */
int nc_config_apply_text(nc_config *c, const char *text, size_t len, const char *source,
                         char *err, size_t errlen);

/* Parsed --listen value. */
typedef struct nc_listen_addr {
  char host[256];     /* without brackets; for unix: the whole "unix:..." target */
  int port;           /* 0..65535; -1 for unix sockets */
  bool loopback;      /* 127.0.0.0/8, ::1, ::ffff:127.x, "localhost", or a unix socket */
  bool unix_socket;
} nc_listen_addr;

/* Parses "HOST:PORT", "[V6]:PORT" or "unix:PATH". NC_OK or NC_EINVAL. Host names other than
 * "localhost" are never resolved and count as non-loopback. */
int nc_listen_parse(const char *s, nc_listen_addr *out);

/* Exposure rule: a non-loopback listener needs an admin token, and TLS unless
 * insecure_remote is set. Returns NC_OK or NC_EPERM with a message naming the missing
 * piece(s). */
int nc_config_check_exposure(const nc_config *c, const nc_listen_addr *addr, bool have_token,
                             char *err, size_t errlen);

/* Usage text for --help (static storage). */
const char *nc_config_usage(void);

#ifdef __cplusplus
}
#endif
#endif /* NC_CONFIG_H */
