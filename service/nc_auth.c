/* nc_auth.c — bearer tokens (see nc_auth.h). */
#include "nc_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "nc_err.h"
#include "nc_rpc.h"

static void digest(const char *s, size_t n, unsigned char out[32]) {
  unsigned int len = 32;
  if (EVP_Digest(s, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32)
    memset(out, 0, 32);   /* unreachable with a working libcrypto; never matches a token */
}

bool nc_token_valid(const char *t, size_t n) {
  if (n < NC_TOKEN_MIN || n > NC_TOKEN_MAX) return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7F) return false;
  return true;
}

int nc_auth_set_token(nc_auth *a, bool admin, const char *token, size_t len) {
  if (!nc_token_valid(token, len)) return NC_EINVAL;
  digest(token, len, admin ? a->admin_digest : a->user_digest);
  if (admin) a->have_admin = true;
  else a->have_user = true;
  return NC_OK;
}

/* Reads a token file: regular, not group/world-accessible, <= NC_TOKEN_MAX + 2 bytes. */
static int read_token_file(const char *path, char *buf, size_t cap, size_t *len, char *err,
                           size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    snprintf(err, errlen, "token file %s: %s", path, strerror(errno));
    return NC_EIO;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    snprintf(err, errlen, "token file %s: %s", path, strerror(errno));
    close(fd);
    return NC_EIO;
  }
  if (!S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "token file %s: not a regular file", path);
    close(fd);
    return NC_EPERM;
  }
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    snprintf(err, errlen,
             "token file %s: mode %03o is accessible by group or others; chmod 600 it",
             path, (unsigned)(st.st_mode & 0777));
    close(fd);
    return NC_EPERM;
  }
  size_t n = 0;
  for (;;) {
    if (n == cap) {
      snprintf(err, errlen, "token file %s: longer than %d bytes", path, NC_TOKEN_MAX);
      close(fd);
      return NC_EINVAL;
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0) {
      if (errno == EINTR) continue;
      snprintf(err, errlen, "token file %s: %s", path, strerror(errno));
      close(fd);
      return NC_EIO;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  close(fd);
  if (n > 0 && buf[n - 1] == '\n') n--;
  if (n > 0 && buf[n - 1] == '\r') n--;
  *len = n;
  return NC_OK;
}

static int load_one(nc_auth *a, bool admin, const char *file, const char *env_value,
                    const char *what, char *err, size_t errlen) {
  char buf[NC_TOKEN_MAX + 2];
  size_t n;
  const char *src;
  if (file[0]) {
    int rc = read_token_file(file, buf, sizeof buf, &n, err, errlen);
    if (rc) return rc;
    src = file;
  } else if (env_value[0]) {
    n = strlen(env_value);
    if (n > NC_TOKEN_MAX) n = NC_TOKEN_MAX + 1;
    memcpy(buf, env_value, n < sizeof buf ? n : sizeof buf);
    src = admin ? "NANOCHAT_TOKEN" : "NANOCHAT_USER_TOKEN";
  } else {
    return NC_OK;
  }
  int rc = nc_auth_set_token(a, admin, buf, n);
  OPENSSL_cleanse(buf, sizeof buf);
  if (rc) {
    snprintf(err, errlen,
             "%s from %s: must be %d..%d bytes of printable ASCII without spaces", what, src,
             NC_TOKEN_MIN, NC_TOKEN_MAX);
    return NC_EINVAL;
  }
  return NC_OK;
}

int nc_auth_load(nc_auth *a, const nc_config *c, char *err, size_t errlen) {
  memset(a, 0, sizeof *a);
  int rc = load_one(a, true, c->token_file, c->token_env, "admin token", err, errlen);
  if (rc) return rc;
  rc = load_one(a, false, c->user_token_file, c->user_token_env, "user token", err, errlen);
  if (rc) return rc;
  if (a->have_admin && a->have_user && CRYPTO_memcmp(a->admin_digest, a->user_digest, 32) == 0) {
    snprintf(err, errlen, "the admin and user tokens must differ");
    return NC_EINVAL;
  }
  return NC_OK;
}

int nc_auth_check(const nc_auth *a, uint32_t method_flags, size_t n_headers, const char *value,
                  size_t len, nc_scope *scope, const char **msg) {
  static const char bearer[] = "bearer ";
  *scope = NC_SCOPE_NONE;
  *msg = "";
  if (!a->have_admin && !a->have_user) {
    *scope = NC_SCOPE_ADMIN;   /* open mode (loopback only) */
    return NC_OK;
  }
  if (method_flags & NC_RPC_PUBLIC) return NC_OK;
  if (n_headers == 0) {
    *msg = "missing 'authorization: Bearer <token>' metadata";
    return NC_EAUTH;
  }
  if (n_headers > 1) {
    *msg = "more than one authorization header";
    return NC_EAUTH;
  }
  if (len < sizeof bearer - 1 || strncasecmp(value, bearer, sizeof bearer - 1) != 0) {
    *msg = "authorization must be 'Bearer <token>'";
    return NC_EAUTH;
  }
  const char *tok = value + (sizeof bearer - 1);
  size_t tl = len - (sizeof bearer - 1);
  if (tl == 0 || tl > NC_TOKEN_MAX) {
    *msg = "invalid token";
    return NC_EAUTH;
  }
  unsigned char d[32];
  digest(tok, tl, d);
  /* both comparisons always run, whichever token (if any) matches */
  int admin_ne = CRYPTO_memcmp(d, a->admin_digest, 32);
  int user_ne = CRYPTO_memcmp(d, a->user_digest, 32);
  bool is_admin = a->have_admin && admin_ne == 0;
  bool is_user = a->have_user && user_ne == 0;
  if (!is_admin && !is_user) {
    *msg = "invalid token";
    return NC_EAUTH;
  }
  *scope = is_admin ? NC_SCOPE_ADMIN : NC_SCOPE_USER;
  if ((method_flags & NC_RPC_ADMIN) && !is_admin) {
    *msg = "this method needs the admin token";
    return NC_EPERM;
  }
  return NC_OK;
}
