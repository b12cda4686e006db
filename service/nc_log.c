/* nc_log.c — metadata-only logging to stderr (see nc_log.h). */
#include "nc_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "nc_err.h"

static atomic_int g_level = NC_LOG_INFO;

void nc_log_set_level(nc_log_level level) { atomic_store(&g_level, (int)level); }

nc_log_level nc_log_get_level(void) { return (nc_log_level)atomic_load(&g_level); }

bool nc_log_enabled(nc_log_level level) { return (int)level <= atomic_load(&g_level); }

int nc_log_parse_level(const char *s, nc_log_level *out) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  if (!s) return NC_EINVAL;
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, names[i]) == 0) {
      *out = (nc_log_level)i;
      return NC_OK;
    }
  }
  if (strcasecmp(s, "warning") == 0) {
    *out = NC_LOG_WARN;
    return NC_OK;
  }
  return NC_EINVAL;
}

void nc_log(nc_log_level level, const char *fmt, ...) {
  static const char *const tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};
  if (!nc_log_enabled(level)) return;
  char line[2048];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  int k = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ nanochatd[%ld] %s ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                   tm.tm_sec, ts.tv_nsec / 1000000, (long)getpid(),
                   tags[(unsigned)level < 4 ? level : 3]);
  if (k < 0) return;
  size_t n = (size_t)k < sizeof line ? (size_t)k : sizeof line - 1;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
  va_end(ap);
  if (m > 0) n += (size_t)m < sizeof line - n ? (size_t)m : sizeof line - n - 1;
  if (n >= sizeof line - 1) n = sizeof line - 2;
  line[n++] = '\n';
  const char *p = line;
  while (n > 0) {
    ssize_t w = write(STDERR_FILENO, p, n);
    if (w <= 0) break;
    p += w;
    n -= (size_t)w;
  }
}

char *nc_log_sanitize(char *dst, size_t dstlen, const char *src, size_t srclen) {
  if (!dstlen) return dst;
  size_t n = srclen < dstlen - 1 ? srclen : dstlen - 1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)src[i];
    dst[i] = (c >= 0x20 && c < 0x7F) ? (char)c : '?';
  }
  dst[n] = 0;
  if (srclen > n && n >= 3) memcpy(dst + n - 3, "...", 3);
  return dst;
}
