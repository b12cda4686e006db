/* nc_status.c — NC_E* → gRPC status (see nc_status.h). */
#include "nc_status.h"

#include "nc_err.h"

grpc_status_code nc_status_from_err(int err) {
  /* nc_err_grpc_status holds the numbers (one table in core/nc_err.h); unknown codes and
   * positive values are internal errors. */
  if (err > 0) return GRPC_STATUS_INTERNAL;
  int code = nc_err_grpc_status(err);
  if (code < 0 || code > GRPC_STATUS_UNAUTHENTICATED) return GRPC_STATUS_INTERNAL;
  return (grpc_status_code)code;
}

const char *nc_status_name(grpc_status_code code) {
  static const char *const names[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
      "UNAUTHENTICATED"};
  if ((int)code < 0 || (unsigned)code >= sizeof names / sizeof names[0]) return "UNKNOWN_CODE";
  return names[code];
}
