/* nc_err.h — error codes shared by every nanochat-c module.
 *
 * Convention: functions return 0 (NC_OK) on success and a negative NC_E* code on failure.
 * Functions that return a size or count return it as a non-negative value and errors as
 * negative codes. The table below is the single list of codes; the service maps them to
 * gRPC status codes in exactly one place (service/nc_status.c: nc_status_from_err).
 *
 * | code            | meaning                                         | gRPC status          |
 * |-----------------|-------------------------------------------------|----------------------|
 * | NC_EINVAL       | invalid argument / malformed input              | INVALID_ARGUMENT     |
 * | NC_EAUTH        | missing or wrong credentials                    | UNAUTHENTICATED      |
 * | NC_EPERM        | not allowed                                     | PERMISSION_DENIED    |
 * | NC_ENOTFOUND    | no such object                                  | NOT_FOUND            |
 * | NC_EEXIST       | already exists                                  | ALREADY_EXISTS       |
 * | NC_ECONFLICT    | concurrent modification lost a race             | ABORTED              |
 * | NC_EBUSY        | all slots/queues in use                         | RESOURCE_EXHAUSTED   |
 * | NC_EFULL        | a size cap or store capacity was reached        | RESOURCE_EXHAUSTED   |
 * | NC_ENOSPC       | out of disk space                               | RESOURCE_EXHAUSTED   |
 * | NC_ENOMEM       | out of memory                                   | RESOURCE_EXHAUSTED   |
 * | NC_ESTATE       | wrong state for this call (precondition)        | FAILED_PRECONDITION  |
 * | NC_ETIMEDOUT    | deadline passed                                 | DEADLINE_EXCEEDED    |
 * | NC_ECANCELED    | cancelled by the caller                         | CANCELLED            |
 * | NC_ENOTREADY    | not ready yet (loading, shutting down)          | UNAVAILABLE          |
 * | NC_ECORRUPT     | stored data is corrupt                          | DATA_LOSS            |
 * | NC_EIO          | I/O error                                       | INTERNAL             |
 * | NC_EINTERNAL    | bug or unexpected condition                     | INTERNAL             |
 * | NC_ENOTSUP      | not implemented / not supported                 | UNIMPLEMENTED        |
 * | NC_ERANGE       | numeric value out of range (e.g. non-finite)    | INTERNAL             |
 */
#ifndef NC_ERR_H
#define NC_ERR_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, grpc_status_code, message) — grpc codes as plain integers so core
 * does not depend on gRPC headers. */
#define NC_ERR_TABLE(X)                                                     \
  X(NC_OK,         0,  0, "ok")                                             \
  X(NC_EINVAL,    -1,  3, "invalid argument")                               \
  X(NC_EAUTH,     -2, 16, "unauthenticated")                                \
  X(NC_EPERM,     -3,  7, "permission denied")                              \
  X(NC_ENOTFOUND, -4,  5, "not found")                                      \
  X(NC_EEXIST,    -5,  6, "already exists")                                 \
  X(NC_ECONFLICT, -6, 10, "conflict")                                       \
  X(NC_EBUSY,     -7,  8, "busy")                                           \
  X(NC_EFULL,     -8,  8, "capacity exhausted")                             \
  X(NC_ENOSPC,    -9,  8, "no space left")                                  \
  X(NC_ENOMEM,   -10,  8, "out of memory")                                  \
  X(NC_ESTATE,   -11,  9, "failed precondition")                            \
  X(NC_ETIMEDOUT,-12,  4, "deadline exceeded")                              \
  X(NC_ECANCELED,-13,  1, "cancelled")                                      \
  X(NC_ENOTREADY,-14, 14, "not ready")                                      \
  X(NC_ECORRUPT, -15, 15, "data corrupt")                                   \
  X(NC_EIO,      -16, 13, "i/o error")                                      \
  X(NC_EINTERNAL,-17, 13, "internal error")                                 \
  X(NC_ENOTSUP,  -18, 12, "not supported")                                  \
  X(NC_ERANGE,   -19, 13, "value out of range")

enum nc_err {
#define NC_ERR_ENUM(name, val, grpc, msg) name = val,
  NC_ERR_TABLE(NC_ERR_ENUM)
#undef NC_ERR_ENUM
};

#define NC_ERR_COUNT 20

/* Static message for a code ("unknown error" for codes not in the table). Never NULL. */
const char *nc_strerror(int err);

/* Symbolic name of a code, e.g. "NC_EINVAL" ("NC_E?" for unknown). Never NULL. */
const char *nc_errname(int err);

/* The gRPC status code (grpc_status_code numbering) a code maps to; 13 (INTERNAL) for
 * unknown codes. */
int nc_err_grpc_status(int err);

/* Formats a message into msg (when msg is non-NULL and len > 0; truncated to len) and returns
 * rc: the one helper behind every "fail with a message naming the problem" path. */
int nc_errf(int rc, char *msg, unsigned long len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#ifdef __cplusplus
}
#endif
#endif /* NC_ERR_H */
