/* nc_err.c — the error table of nc_err.h. */
#include "nc_err.h"

#include <stdarg.h>
#include <stdio.h>

struct nc_err_row {
  int code;
  int grpc;
  const char *name;
  const char *msg;
};

static const struct nc_err_row rows[] = {
#define NC_ERR_ROW(name, val, grpc, msg) {val, grpc, #name, msg},
    NC_ERR_TABLE(NC_ERR_ROW)
#undef NC_ERR_ROW
};

static const struct nc_err_row *find(int err) {
  for (unsigned i = 0; i < sizeof rows / sizeof rows[0]; i++)
    if (rows[i].code == err) return &rows[i];
  return 0;
}

const char *nc_strerror(int err) {
  const struct nc_err_row *r = find(err);
  return r ? r->msg : "unknown error";
}

const char *nc_errname(int err) {
  const struct nc_err_row *r = find(err);
  return r ? r->name : "NC_E?";
}

int nc_err_grpc_status(int err) {
  const struct nc_err_row *r = find(err);
  return r ? r->grpc : 13;
}

int nc_errf(int rc, char *msg, unsigned long len, const char *fmt, ...) {
  if (msg && len) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
  }
  return rc;
}
