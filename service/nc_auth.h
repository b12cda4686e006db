/* nc_auth.h — bearer-token authentication and authorisation decisions of the dispatch gate.
 *
 * Tokens: an admin token (grants every method) and an optional user token (every method
 * except admin ones; an admin method with it is PERMISSION_DENIED). Each comes from a file
 * (--token-file / --user-token-file; the file must be a regular file that is not group- or
 * world-accessible, at most 4 KiB; one trailing newline is stripped) or from an environment
 * variable (NANOCHAT_TOKEN / NANOCHAT_USER_TOKEN; the file wins when both are given). A token
 * is 16..4096 bytes of printable ASCII without spaces. Only SHA-256 digests are kept;
 * comparison is constant-time (CRYPTO_memcmp over digests) and always checks both digests.
 *
 * Requests carry `authorization: Bearer <token>` (scheme case-insensitive, exactly one space).
 * Public methods (NC_RPC_PUBLIC) never look at it. With no token configured every method is
 * open (nanochatd then refuses non-loopback listeners, see nc_config_check_exposure).
 */
#ifndef NC_AUTH_H
#define NC_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nc_config.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NC_TOKEN_MIN 16
#define NC_TOKEN_MAX 4096

/* What a caller is allowed to do. */
typedef enum nc_scope {
  NC_SCOPE_NONE = 0,   /* anonymous: public methods only */
  NC_SCOPE_USER = 1,   /* the user token */
  NC_SCOPE_ADMIN = 2,  /* the admin token, or any caller when no token is configured */
} nc_scope;

typedef struct nc_auth {
  bool have_admin, have_user;
  unsigned char admin_digest[32];
  unsigned char user_digest[32];
} nc_auth;

/* Loads the tokens named by `c` (files or env values). Returns NC_OK; NC_EPERM when a token
 * file is group/world-accessible or not a regular file; NC_EIO when it cannot be read;
 * NC_EINVAL for a malformed token or when the admin and user tokens are equal. err[errlen]
 * names the file or variable (never the token). */
int nc_auth_load(nc_auth *a, const nc_config *c, char *err, size_t errlen);

/* Sets a token directly (tests; `admin` selects which). NC_OK or NC_EINVAL. */
int nc_auth_set_token(nc_auth *a, bool admin, const char *token, size_t len);

/* Validates token syntax (length and characters). */
bool nc_token_valid(const char *token, size_t len);

/* The gate's decision for a method with flags `method_flags` (enum nc_rpc_flag). `n_headers`
 * is how many `authorization` metadata entries the call carried and `value`/`len` the first
 * one. Returns NC_OK (scope in *scope), NC_EAUTH (missing, duplicated, malformed or wrong
 * token) or NC_EPERM (user token on an admin method); *msg gets a static message. */
int nc_auth_check(const nc_auth *a, uint32_t method_flags, size_t n_headers, const char *value,
                  size_t len, nc_scope *scope, const char **msg);

#ifdef __cplusplus
}
#endif
#endif /* NC_AUTH_H */
