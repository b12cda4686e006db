/* nc_status.h — the one place where NC_E* error codes (core/nc_err.h) become gRPC status
 * codes, plus the names of gRPC status codes for logs.
 *
 * Mapping (faults.md §7): NC_OK→OK, NC_EINVAL→INVALID_ARGUMENT, NC_EAUTH→UNAUTHENTICATED,
 * NC_EPERM→PERMISSION_DENIED, NC_ENOTFOUND→NOT_FOUND, NC_EEXIST→ALREADY_EXISTS,
 * NC_ECONFLICT→ABORTED, NC_EBUSY/NC_EFULL/NC_ENOSPC/NC_ENOMEM→RESOURCE_EXHAUSTED,
 * NC_ESTATE→FAILED_PRECONDITION, NC_ETIMEDOUT→DEADLINE_EXCEEDED, NC_ECANCELED→CANCELLED,
 * NC_ENOTREADY→UNAVAILABLE, NC_ECORRUPT→DATA_LOSS, NC_EIO/NC_EINTERNAL/NC_ERANGE→INTERNAL,
 * NC_ENOTSUP→UNIMPLEMENTED; any other value (including positive ones)→INTERNAL.
 */
#ifndef NC_STATUS_H
#define NC_STATUS_H

#include <grpc/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* gRPC status code for an NC_E* code (see the table above). */
grpc_status_code nc_status_from_err(int err);

/* Upper-case name of a gRPC status code ("INVALID_ARGUMENT"); "UNKNOWN_CODE" when out of
 * range. Never NULL; static storage. */
const char *nc_status_name(grpc_status_code code);

#ifdef __cplusplus
}
#endif
#endif /* NC_STATUS_H */
