/* nc_h_tools.c — Tools.Execute: model-written Python in the sandbox (core/nc_sandbox.h), never
 * in the server process. No sandbox, or one that failed its self-test: FAILED_PRECONDITION
 * "sandbox unavailable: <why>" — nothing ever runs unsandboxed. */
#include <stdlib.h>
#include <string.h>

#include "nanochat/v1/tools.pb-c.h"
#include "nc_call.h"
#include "nc_err.h"
#include "nc_sandbox.h"

static int call_cancelled(void *arg) { return nc_call_is_cancelled(arg); }

/* Tool output as a protobuf string: valid UTF-8 (invalid bytes -> U+FFFD) without NUL bytes
 * (protobuf-c strings end at the first NUL; they become U+FFFD too). */
static char *as_text(const uint8_t *data, size_t n) {
  char *s = NULL;
  size_t len = 0;
  if (nc_sandbox_utf8_sanitize(data, n, &s, &len) != NC_OK) return NULL;
  size_t nul = 0;
  for (size_t i = 0; i < len; i++) nul += s[i] == 0;
  if (!nul) return s;
  char *t = malloc(len + 2 * nul + 1);
  if (!t) {
    free(s);
    return NULL;
  }
  size_t k = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i]) t[k++] = s[i];
    else { t[k++] = (char)0xEF; t[k++] = (char)0xBF; t[k++] = (char)0xBD; }
  }
  t[k] = 0;
  free(s);
  return t;
}

int nc_h_tools_execute(nc_call *c, const ProtobufCMessage *req) {
  const Nanochat__V1__ExecuteRequest *r = (const void *)req;
  nc_sandbox *sb = nc_call_app(c)->sandbox;
  if (!sb) return nc_call_finish(c, NC_ESTATE, "sandbox unavailable: Tools.Execute is disabled on this server");
  nc_sandbox_req sr;
  memset(&sr, 0, sizeof sr);
  sr.lang = NC_SANDBOX_PYTHON3;
  sr.code = r->code;
  sr.code_len = strlen(r->code);
  if (r->has_stdin) {
    sr.stdin_data = r->stdin.data ? (const void *)r->stdin.data : (const void *)"";
    sr.stdin_len = r->stdin.len;
  }
  double timeout = r->has_timeout ? r->timeout : 5.0;
  sr.timeout_ms = (uint32_t)(timeout * 1000.0 + 0.5);
  if (sr.timeout_ms == 0) sr.timeout_ms = 1;
  sr.memory_bytes = (uint64_t)(r->has_memory_limit_mb ? r->memory_limit_mb : 256) << 20;
  sr.cancel = call_cancelled;
  sr.cancel_ctx = c;
  nc_sandbox_result res;
  memset(&res, 0, sizeof res);
  int rc = nc_sandbox_run(sb, &sr, &res);
  if (rc != NC_OK) {
    int frc = nc_call_finish(c, rc, "%s", res.error[0] ? res.error : nc_strerror(rc));
    nc_sandbox_result_free(&res);
    return frc;
  }
  Nanochat__V1__ExecuteResponse resp = NANOCHAT__V1__EXECUTE_RESPONSE__INIT;
  char *out = as_text(res.stdout_data, res.stdout_len), *err = as_text(res.stderr_data, res.stderr_len);
  if (!out || !err) {
    free(out);
    free(err);
    nc_sandbox_result_free(&res);
    return nc_call_finish(c, NC_ENOMEM, "out of memory");
  }
  nc_sandbox_level lvl;
  nc_sandbox_level_get(sb, &lvl);
  resp.has_success = resp.has_exit_code = resp.has_timeout = resp.has_memory_exceeded = true;
  resp.has_truncated = resp.has_duration_ms = true;
  resp.success = res.success;
  resp.stdout = out;
  resp.stderr = err;
  resp.exit_code = res.exit_code;
  resp.error = res.error;
  resp.timeout = res.timed_out;
  resp.memory_exceeded = res.memory_exceeded;
  resp.truncated = res.truncated;
  resp.duration_ms = res.duration_s * 1000.0;
  resp.sandbox_level = lvl.level;
  rc = nc_call_reply(c, &resp.base);
  free(out);
  free(err);
  nc_sandbox_result_free(&res);
  return rc;
}
