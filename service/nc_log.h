/* nc_log.h — nanochatd's log: one line per event on stderr, metadata only.
 *
 * Rule: request and response CONTENT is never logged at any level (no prompt, completion,
 * code, token or field value). Log method names, status codes, latencies, byte counts, peers,
 * ids. Strings that come from a client (an unknown method path, a peer address) go through
 * nc_log_sanitize first.
 *
 * Line format: "2026-11-23T22:30:01.123Z nanochatd[1234] INFO <message>\n", written with one
 * write(2) so lines from different threads never interleave. Thread-safe.
 */
#ifndef NC_LOG_H
#define NC_LOG_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nc_log_level {
  NC_LOG_ERROR = 0,
  NC_LOG_WARN = 1,
  NC_LOG_INFO = 2,   /* default: startup, shutdown, one line per finished RPC */
  NC_LOG_DEBUG = 3,
} nc_log_level;

/* Sets the most verbose level that is written (process-wide). */
void nc_log_set_level(nc_log_level level);
nc_log_level nc_log_get_level(void);

/* True when a message at `level` would be written. */
bool nc_log_enabled(nc_log_level level);

/* Parses "error", "warn", "info" or "debug". Returns 0 (NC_OK) or NC_EINVAL. */
int nc_log_parse_level(const char *s, nc_log_level *out);

/* Writes one line at `level` (lines longer than 2 KiB are cut). */
void nc_log(nc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Copies src[0..srclen) into dst (capacity dstlen >= 1, always NUL-terminated), replacing
 * every byte outside printable ASCII with '?' and cutting at dstlen-1 bytes (the last three
 * become "..." when cut). Returns dst. */
char *nc_log_sanitize(char *dst, size_t dstlen, const char *src, size_t srclen);

#ifdef __cplusplus
}
#endif
#endif /* NC_LOG_H */
