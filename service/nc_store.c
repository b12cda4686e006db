/* nc_store.c — LMDB environment, record header, sessions and checkpoint metadata.
 * Jobs, the queue, job events and eval results are in nc_store_jobs.c. See nc_store.h. */
#include "nc_store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nc_store_int.h"

const char *const nc_store_db_names[ST_DB_COUNT] = {
    "meta", "sessions", "sessions_by_time", "checkpoints",
    "jobs", "job_queue", "job_events", "evals"};

static _Thread_local char tl_err[512];

const char *nc_store_last_error(void) { return tl_err; }

int st_fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tl_err, sizeof tl_err, fmt, ap);
  va_end(ap);
  return code;
}

int st_mdb(nc_store *s, int rc, const char *what) {
  switch (rc) {
    case MDB_SUCCESS: return NC_OK;
    case MDB_NOTFOUND: return st_fail(NC_ENOTFOUND, "%s: not found", what);
    case MDB_MAP_FULL:
      return st_fail(NC_EFULL,
                     "store full: %s does not fit in the %" PRIu64
                     "-byte LMDB map (raise --store-map-mb); nothing was written",
                     what, s ? s->map_size : 0);
    case MDB_TXN_FULL:
      return st_fail(NC_EFULL, "store full: %s touches too many pages in one transaction", what);
    case MDB_READERS_FULL:
      return st_fail(NC_EBUSY, "%s: all LMDB reader slots are in use", what);
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
      return st_fail(NC_ECORRUPT, "%s: LMDB store is corrupt (%s)", what, mdb_strerror(rc));
    case MDB_INVALID:
      return st_fail(NC_ECORRUPT, "%s: not a valid LMDB file (meta pages damaged?)", what);
    case MDB_VERSION_MISMATCH:
      return st_fail(NC_ESTATE, "%s: the LMDB file format version differs from this build's",
                     what);
    case MDB_PANIC:
      if (s) atomic_store(&s->panicked, true);
      return st_fail(NC_EIO, "%s: LMDB panic: the store must be reopened (restart nanochatd)",
                     what);
    case MDB_MAP_RESIZED:
      return st_fail(NC_ENOTREADY, "%s: the map was grown by another process; reopen", what);
    case MDB_KEYEXIST: return st_fail(NC_EEXIST, "%s: already exists", what);
    case ENOSPC: return st_fail(NC_ENOSPC, "%s: no space left on device", what);
    case ENOMEM: return st_fail(NC_ENOMEM, "%s: out of memory", what);
    case EIO: return st_fail(NC_EIO, "%s: I/O error", what);
    case EACCES:
    case EPERM:
    case EROFS: return st_fail(NC_EPERM, "%s: %s", what, strerror(rc));
    case EAGAIN:
    case EBUSY: return st_fail(NC_EBUSY, "%s: store is locked by another process", what);
    default:
      return st_fail(NC_EINTERNAL, "%s: %s", what, mdb_strerror(rc));
  }
}

int st_wbegin(nc_store *s, MDB_txn **t) {
  if (s->ro) return st_fail(NC_EPERM, "store is open read-only");
  if (atomic_load(&s->panicked))
    return st_fail(NC_EIO, "store is unhealthy after an LMDB panic (restart nanochatd)");
  int rc = mdb_txn_begin(s->env, NULL, 0, t);
  return rc ? st_mdb(s, rc, "begin write transaction") : NC_OK;
}

int st_rbegin(nc_store *s, MDB_txn **t) {
  if (atomic_load(&s->panicked))
    return st_fail(NC_EIO, "store is unhealthy after an LMDB panic (restart nanochatd)");
  int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, t);
  return rc ? st_mdb(s, rc, "begin read transaction") : NC_OK;
}

int st_commit(nc_store *s, MDB_txn *t, const char *what) {
  int rc = mdb_txn_commit(t);  /* frees t even on failure */
  return rc ? st_mdb(s, rc, what) : NC_OK;
}

int64_t st_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void st_be64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)v;
    v >>= 8;
  }
}

uint64_t st_rd_be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

static void wr_le16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static void wr_le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t rd_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd_le32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void put_hdr(uint8_t *p, uint16_t type) {
  wr_le32(p, NC_STORE_MAGIC);
  wr_le16(p + 4, NC_STORE_RECORD_VERSION);
  wr_le16(p + 6, type);
}

int st_check_hdr(const MDB_val *v, uint16_t type, int db, const uint8_t **p, size_t *n) {
  *p = NULL;
  *n = 0;
  const char *dbn = nc_store_db_names[db];
  if (v->mv_size < NC_STORE_HEADER_SIZE)
    return st_fail(NC_ECORRUPT, "%s: record of %zu bytes is shorter than its header", dbn,
                   v->mv_size);
  const uint8_t *b = v->mv_data;
  uint32_t magic = rd_le32(b);
  uint16_t ver = rd_le16(b + 4), ty = rd_le16(b + 6);
  if (magic != NC_STORE_MAGIC)
    return st_fail(NC_ECORRUPT, "%s: record has bad magic 0x%08x (expected 0x%08x)", dbn, magic,
                   NC_STORE_MAGIC);
  if (ver > NC_STORE_RECORD_VERSION)
    return st_fail(NC_ESTATE,
                   "%s: record version %u is newer than this build's %u (written by a newer "
                   "nanochatd); refusing to read or overwrite it",
                   dbn, ver, NC_STORE_RECORD_VERSION);
  if (ver == 0) return st_fail(NC_ECORRUPT, "%s: record version 0 is invalid", dbn);
  if (ty != type)
    return st_fail(NC_ECORRUPT, "%s: record type %u where type %u was expected", dbn, ty, type);
  *p = b + NC_STORE_HEADER_SIZE;
  *n = v->mv_size - NC_STORE_HEADER_SIZE;
  return NC_OK;
}

int st_decode(const MDB_val *v, uint16_t type, int db, const ProtobufCMessageDescriptor *d,
              ProtobufCMessage **out) {
  const uint8_t *p;
  size_t n;
  int rc = st_check_hdr(v, type, db, &p, &n);
  if (rc) return rc;
  ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, n, p);
  if (!m)
    return st_fail(NC_ECORRUPT, "%s: record payload (%zu bytes) does not decode as %s",
                   nc_store_db_names[db], n, d->name);
  *out = m;
  return NC_OK;
}

int st_get_msg(nc_store *s, MDB_txn *t, int db, MDB_val *k, uint16_t type,
               const ProtobufCMessageDescriptor *d, ProtobufCMessage **out) {
  MDB_val v;
  int rc = mdb_get(t, s->dbi[db], k, &v);
  if (rc == MDB_NOTFOUND) return NC_ENOTFOUND;
  if (rc) return st_mdb(s, rc, nc_store_db_names[db]);
  return st_decode(&v, type, db, d, out);
}

int st_check_overwrite(nc_store *s, MDB_txn *t, int db, MDB_val *k, uint16_t type, bool *exists) {
  MDB_val v;
  if (exists) *exists = false;
  int rc = mdb_get(t, s->dbi[db], k, &v);
  if (rc == MDB_NOTFOUND) return NC_OK;
  if (rc) return st_mdb(s, rc, nc_store_db_names[db]);
  if (exists) *exists = true;
  const uint8_t *p;
  size_t n;
  return st_check_hdr(&v, type, db, &p, &n);
}

int st_put_raw(nc_store *s, MDB_txn *t, int db, MDB_val *k, uint16_t type, const void *p,
               size_t n, unsigned flags, const char *what) {
  MDB_val v = {.mv_size = NC_STORE_HEADER_SIZE + n, .mv_data = NULL};
  int rc = mdb_put(t, s->dbi[db], k, &v, flags | MDB_RESERVE);
  if (rc) return st_mdb(s, rc, what);
  put_hdr(v.mv_data, type);
  if (n) memcpy((uint8_t *)v.mv_data + NC_STORE_HEADER_SIZE, p, n);
  return NC_OK;
}

int st_put_msg(nc_store *s, MDB_txn *t, int db, MDB_val *k, uint16_t type,
               const ProtobufCMessage *m, unsigned flags, const char *what) {
  size_t n = protobuf_c_message_get_packed_size(m);
  MDB_val v = {.mv_size = NC_STORE_HEADER_SIZE + n, .mv_data = NULL};
  int rc = mdb_put(t, s->dbi[db], k, &v, flags | MDB_RESERVE);
  if (rc) return st_mdb(s, rc, what);
  put_hdr(v.mv_data, type);
  size_t w = protobuf_c_message_pack(m, (uint8_t *)v.mv_data + NC_STORE_HEADER_SIZE);
  if (w != n) return st_fail(NC_EINTERNAL, "%s: packed %zu bytes, expected %zu", what, w, n);
  return NC_OK;
}

void nc_store_free_msg(void *msg) {
  if (msg) protobuf_c_message_free_unpacked((ProtobufCMessage *)msg, NULL);
}

void nc_store_free_msgs(void *items, size_t n) {
  if (!items) return;
  void **v = items;
  for (size_t i = 0; i < n; i++) nc_store_free_msg(v[i]);
  free(v);
}

/* ---- ids ----------------------------------------------------------------------------- */

int nc_store_random_hex(char *out, size_t nchars) {
  static const char hex[] = "0123456789abcdef";
  uint8_t buf[64];
  size_t need = (nchars + 1) / 2;
  if (!out || need > sizeof buf) return st_fail(NC_EINVAL, "random id: bad length");
  size_t got = 0;
  while (got < need) {
    ssize_t r = getrandom(buf + got, need - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return st_fail(NC_EIO, "getrandom: %s", strerror(errno));
    }
    got += (size_t)r;
  }
  for (size_t i = 0; i < nchars; i++) out[i] = hex[(buf[i / 2] >> ((i & 1) ? 0 : 4)) & 15];
  out[nchars] = 0;
  return NC_OK;
}

int nc_store_new_session_id(char out[NC_SESSION_ID_NEW_LEN + 1]) {
  return nc_store_random_hex(out, NC_SESSION_ID_NEW_LEN);
}

static bool ident_chars(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '.' || c == '-'))
      return false;
  }
  return !(len == 1 && s[0] == '.') && !(len == 2 && s[0] == '.' && s[1] == '.');
}

bool nc_store_session_id_valid(const char *id, size_t len) {
  return id && len >= NC_SESSION_ID_MIN && len <= NC_SESSION_ID_MAX && ident_chars(id, len);
}

bool nc_store_job_id_valid(const char *id, size_t len) {
  if (!id || len != NC_JOB_ID_LEN) return false;
  for (size_t i = 0; i < len; i++)
    if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'))) return false;
  return true;
}

bool nc_store_tag_valid(const char *tag, size_t len) {
  return tag && len >= 1 && len <= NC_TAG_MAX && ident_chars(tag, len);
}

bool st_utf8_valid(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c == 0) return false;
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return false;
    if (i + len > n) return false;
    for (size_t j = 1; j < len; j++) {
      if ((s[i + j] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + j] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
      return false;
    i += len;
  }
  return true;
}

/* ---- open / close -------------------------------------------------------------------- */

static int open_dbis(nc_store *s, MDB_txn *t, bool create) {
  for (int i = 0; i < ST_DB_COUNT; i++) {
    int rc = mdb_dbi_open(t, nc_store_db_names[i], create ? MDB_CREATE : 0, &s->dbi[i]);
    if (rc == MDB_NOTFOUND)
      return st_fail(NC_ECORRUPT, "%s: database \"%s\" is missing", s->dir, nc_store_db_names[i]);
    if (rc) return st_mdb(s, rc, nc_store_db_names[i]);
  }
  return NC_OK;
}

/* Touches the first and last leaf of every database: damaged tree pages show up at open. */
static int probe_dbis(nc_store *s, MDB_txn *t) {
  for (int i = 0; i < ST_DB_COUNT; i++) {
    MDB_cursor *c;
    int rc = mdb_cursor_open(t, s->dbi[i], &c);
    if (rc) return st_mdb(s, rc, nc_store_db_names[i]);
    MDB_val k, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    if (rc == MDB_SUCCESS) rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND) {
      char what[128];
      snprintf(what, sizeof what, "database \"%s\"", nc_store_db_names[i]);
      return st_mdb(s, rc, what);
    }
  }
  return NC_OK;
}

/* Reserve size: 1/16 of the map, within [16 KiB, 4 MiB]. */
static size_t reserve_bytes(const nc_store *s) {
  uint64_t r = s->map_size / 16;
  if (r < (16u << 10)) r = 16u << 10;
  if (r > (4u << 20)) r = 4u << 20;
  return (size_t)r;
}

static const MDB_val reserve_key = {7, (void *)"reserve"};

void st_reserve_ensure(nc_store *s) {
  MDB_txn *t;
  if (st_wbegin(s, &t) != NC_OK) return;
  MDB_val k = reserve_key, v;
  int rc = mdb_get(t, s->dbi[ST_DB_META], &k, &v);
  if (rc == MDB_SUCCESS) {
    mdb_txn_abort(t);
    atomic_store(&s->reserve_held, true);
    return;
  }
  size_t n = reserve_bytes(s);
  void *zero = calloc(1, n);
  int err = zero ? st_put_raw(s, t, ST_DB_META, &k, NC_REC_META, zero, n, 0, "store reserve")
                 : NC_ENOMEM;
  free(zero);
  if (err == NC_OK) err = st_commit(s, t, "store reserve");
  else mdb_txn_abort(t);
  atomic_store(&s->reserve_held, err == NC_OK);
}

bool nc_store_has_reserve(nc_store *s) { return s && atomic_load(&s->reserve_held); }

int st_reserve_release(nc_store *s) {
  if (!atomic_exchange(&s->reserve_held, false)) return NC_ENOTFOUND;
  MDB_txn *t;
  int err = st_wbegin(s, &t);
  if (err) return err;
  MDB_val k = reserve_key;
  int rc = mdb_del(t, s->dbi[ST_DB_META], &k, NULL);
  if (rc) {
    mdb_txn_abort(t);
    return st_mdb(s, rc, "store reserve");
  }
  return st_commit(s, t, "store reserve release");
}

static int check_schema(nc_store *s, MDB_txn *t, bool may_write) {
  MDB_val k = {6, (void *)"schema"}, v;
  int rc = mdb_get(t, s->dbi[ST_DB_META], &k, &v);
  if (rc == MDB_SUCCESS) {
    const uint8_t *p;
    size_t n;
    rc = st_check_hdr(&v, NC_REC_META, ST_DB_META, &p, &n);
    if (rc) return rc;
    if (n != 4) return st_fail(NC_ECORRUPT, "%s: schema record has %zu bytes", s->dir, n);
    s->schema = rd_le32(p);
    if (s->schema > NC_STORE_SCHEMA_VERSION)
      return st_fail(NC_ESTATE,
                     "%s: store schema version %u is newer than this build's %u (written by a "
                     "newer nanochatd); refusing to open it",
                     s->dir, s->schema, NC_STORE_SCHEMA_VERSION);
    if (s->schema == 0) return st_fail(NC_ECORRUPT, "%s: schema version 0 is invalid", s->dir);
    return NC_OK;
  }
  if (rc != MDB_NOTFOUND) return st_mdb(s, rc, "schema record");
  /* No schema record: only acceptable in a brand-new (empty) environment. */
  for (int i = 0; i < ST_DB_COUNT; i++) {
    MDB_stat st;
    rc = mdb_stat(t, s->dbi[i], &st);
    if (rc) return st_mdb(s, rc, nc_store_db_names[i]);
    if (st.ms_entries)
      return st_fail(NC_ECORRUPT,
                     "%s: the schema record is missing but database \"%s\" holds %zu entries",
                     s->dir, nc_store_db_names[i], (size_t)st.ms_entries);
  }
  if (!may_write) return st_fail(NC_ECORRUPT, "%s: the schema record is missing", s->dir);
  uint8_t ver[4];
  wr_le32(ver, NC_STORE_SCHEMA_VERSION);
  s->schema = NC_STORE_SCHEMA_VERSION;
  return st_put_raw(s, t, ST_DB_META, &k, NC_REC_META, ver, 4, 0, "schema record");
}

int nc_store_open(const nc_store_opts *o, nc_store **out) {
  tl_err[0] = 0;
  if (!o || !out || !o->dir || !o->dir[0]) return st_fail(NC_EINVAL, "store: no directory given");
  *out = NULL;
  uint64_t map = o->map_size ? o->map_size : NC_STORE_DEFAULT_MAP_SIZE;
  if (map < NC_STORE_MIN_MAP_SIZE)
    return st_fail(NC_EINVAL, "store map size %" PRIu64 " is below the minimum %llu", map,
                   (unsigned long long)NC_STORE_MIN_MAP_SIZE);
  if (strlen(o->dir) > 4000) return st_fail(NC_EINVAL, "store directory path too long");

  if (!o->read_only && mkdir(o->dir, 0700) != 0 && errno != EEXIST)
    return st_fail(errno == ENOENT ? NC_ENOTFOUND : NC_EPERM, "%s: cannot create: %s", o->dir,
                   strerror(errno));
  struct stat dst;
  if (stat(o->dir, &dst) != 0)
    return st_fail(NC_ENOTFOUND, "%s: %s", o->dir, strerror(errno));
  if (!S_ISDIR(dst.st_mode)) return st_fail(NC_EINVAL, "%s: not a directory", o->dir);

  char path[4096 + 16];
  snprintf(path, sizeof path, "%s/data.mdb", o->dir);
  struct stat fst;
  bool exists = stat(path, &fst) == 0;
  if (exists && !S_ISREG(fst.st_mode)) return st_fail(NC_EINVAL, "%s: not a regular file", path);
  if (exists && fst.st_size < 2 * 4096)
    return st_fail(NC_ECORRUPT,
                   "%s: data file is %lld bytes, shorter than LMDB's two meta pages "
                   "(truncated); not recreating it",
                   path, (long long)fst.st_size);
  if (!exists && o->read_only) return st_fail(NC_ENOTFOUND, "%s: no store here", o->dir);

  nc_store *s = calloc(1, sizeof *s);
  if (!s) return st_fail(NC_ENOMEM, "store: out of memory");
  s->dir = strdup(o->dir);
  s->ro = o->read_only;
  s->max_msgs = o->max_session_messages ? o->max_session_messages
                                        : NC_STORE_DEFAULT_SESSION_MESSAGES;
  s->max_bytes = o->max_session_bytes ? o->max_session_bytes : NC_STORE_DEFAULT_SESSION_BYTES;
  atomic_init(&s->panicked, false);
  int err;
  if (!s->dir) {
    err = st_fail(NC_ENOMEM, "store: out of memory");
    goto fail;
  }
  int rc = mdb_env_create(&s->env);
  if (rc) {
    err = st_mdb(s, rc, "mdb_env_create");
    goto fail;
  }
  mdb_env_set_mapsize(s->env, (size_t)map);
  mdb_env_set_maxdbs(s->env, 16);
  if (o->max_readers) mdb_env_set_maxreaders(s->env, o->max_readers);
  rc = mdb_env_open(s->env, o->dir, MDB_NOTLS | (o->read_only ? MDB_RDONLY : 0), 0600);
  if (rc) {
    char what[4200];
    snprintf(what, sizeof what, "%s: cannot open the store", o->dir);
    err = st_mdb(s, rc, what);
    goto fail;
  }
  MDB_envinfo info;
  MDB_stat est;
  mdb_env_info(s->env, &info);
  mdb_env_stat(s->env, &est);
  s->map_size = info.me_mapsize;
  if (exists) {
    uint64_t need = ((uint64_t)info.me_last_pgno + 1) * est.ms_psize;
    if ((uint64_t)fst.st_size < need) {
      err = st_fail(NC_ECORRUPT,
                    "%s: data file is %lld bytes but its last committed page ends at %" PRIu64
                    " (truncated); not recreating it",
                    path, (long long)fst.st_size, need);
      goto fail;
    }
  }
  int dead = 0;
  rc = mdb_reader_check(s->env, &dead);
  if (rc) {
    err = st_mdb(s, rc, "mdb_reader_check");
    goto fail;
  }
  s->readers_cleared = dead;

  MDB_txn *t;
  rc = mdb_txn_begin(s->env, NULL, o->read_only ? MDB_RDONLY : 0, &t);
  if (rc) {
    err = st_mdb(s, rc, "begin transaction");
    goto fail;
  }
  err = open_dbis(s, t, !o->read_only);
  if (!err) err = check_schema(s, t, !o->read_only);
  if (!err) err = probe_dbis(s, t);
  if (err) {
    mdb_txn_abort(t);
    goto fail;
  }
  if (o->read_only) {
    mdb_txn_abort(t);  /* dbi handles stay valid for the environment's life */
  } else {
    err = st_commit(s, t, "store initialisation");
    if (err) goto fail;
    st_reserve_ensure(s);
  }
  *out = s;
  return NC_OK;
fail:
  if (s->env) mdb_env_close(s->env);
  free(s->dir);
  free(s);
  return err;
}

void nc_store_close(nc_store *s) {
  if (!s) return;
  mdb_env_close(s->env);
  free(s->dir);
  free(s);
}

int nc_store_reader_check(nc_store *s, int *cleared) {
  int dead = 0;
  int rc = mdb_reader_check(s->env, &dead);
  if (rc) return st_mdb(s, rc, "mdb_reader_check");
  if (cleared) *cleared = dead;
  return NC_OK;
}

bool nc_store_healthy(const nc_store *s) {
  return s && !atomic_load(&((nc_store *)s)->panicked);
}

int nc_store_get_stats(nc_store *s, nc_store_stats *st) {
  memset(st, 0, sizeof *st);
  MDB_envinfo info;
  MDB_stat est;
  mdb_env_info(s->env, &info);
  mdb_env_stat(s->env, &est);
  st->map_size = info.me_mapsize;
  st->page_size = est.ms_psize;
  st->used_bytes = ((uint64_t)info.me_last_pgno + 1) * est.ms_psize;
  st->schema_version = s->schema;
  st->readers_cleared_at_open = s->readers_cleared;
  st->healthy = nc_store_healthy(s);
  MDB_txn *t;
  int err = st_rbegin(s, &t);
  if (err) return err;
  uint64_t *dst[ST_DB_COUNT] = {NULL,     &st->sessions, NULL,          &st->checkpoints,
                                &st->jobs, NULL,         &st->job_events, &st->evals};
  for (int i = 0; i < ST_DB_COUNT; i++) {
    if (!dst[i]) continue;
    MDB_stat ds;
    int rc = mdb_stat(t, s->dbi[i], &ds);
    if (rc) {
      mdb_txn_abort(t);
      return st_mdb(s, rc, nc_store_db_names[i]);
    }
    *dst[i] = ds.ms_entries;
  }
  mdb_txn_abort(t);
  return NC_OK;
}

/* ---- sessions ------------------------------------------------------------------------- */

static int check_sid(const char *id, size_t *len) {
  *len = 0;
  size_t n = id ? strnlen(id, NC_SESSION_ID_MAX + 1) : 0;
  if (!nc_store_session_id_valid(id, n))
    return st_fail(NC_EINVAL, "session_id: must be 16..64 characters of [A-Za-z0-9_.-]");
  *len = n;
  return NC_OK;
}

/* sessions_by_time key: be64(updated_ms) + id */
static size_t time_key(uint8_t *buf, int64_t updated_ms, const char *id, size_t idlen) {
  st_be64(buf, (uint64_t)updated_ms);
  memcpy(buf + 8, id, idlen);
  return 8 + idlen;
}

static int put_summary(nc_store *s, MDB_txn *t, const Nanochat__V1__Session *ss, size_t idlen) {
  uint8_t kb[8 + NC_SESSION_ID_MAX];
  MDB_val k = {time_key(kb, ss->updated_ms, ss->id, idlen), kb};
  Nanochat__V1__SessionSummary sum = NANOCHAT__V1__SESSION_SUMMARY__INIT;
  sum.id = ss->id;
  sum.has_message_count = 1;
  sum.message_count = (uint32_t)ss->n_messages;
  sum.has_created_ms = 1;
  sum.created_ms = ss->created_ms;
  sum.has_updated_ms = 1;
  sum.updated_ms = ss->updated_ms;
  sum.has_tokens_generated = 1;
  sum.tokens_generated = ss->tokens_generated;
  return st_put_msg(s, t, ST_DB_SESS_TIME, &k, NC_REC_SESSION_SUMMARY, &sum.base, 0,
                    "session listing entry");
}

static int del_summary(nc_store *s, MDB_txn *t, int64_t updated_ms, const char *id, size_t idlen) {
  uint8_t kb[8 + NC_SESSION_ID_MAX];
  MDB_val k = {time_key(kb, updated_ms, id, idlen), kb};
  int rc = mdb_del(t, s->dbi[ST_DB_SESS_TIME], &k, NULL);
  if (rc && rc != MDB_NOTFOUND) return st_mdb(s, rc, "session listing entry");
  return NC_OK;
}

int nc_store_session_append(nc_store *s, const char *id, const nc_session_append *a,
                            uint64_t *new_version) {
  size_t idlen = 0;
  int err = check_sid(id, &idlen);
  if (err) return err;
  if (!a || (a->n_messages && !a->messages)) return st_fail(NC_EINVAL, "append: no messages");
  for (size_t i = 0; i < a->n_messages; i++)
    if (!a->messages[i]) return st_fail(NC_EINVAL, "append: message %zu is NULL", i);
  if (a->set_model && a->model_tag && strnlen(a->model_tag, NC_TAG_MAX + 1) > NC_TAG_MAX)
    return st_fail(NC_EINVAL, "model_tag: longer than %d bytes", NC_TAG_MAX);

  MDB_txn *t;
  err = st_wbegin(s, &t);
  if (err) return err;
  MDB_val k = {idlen, (void *)id};
  Nanochat__V1__Session *old = NULL;
  err = st_get_msg(s, t, ST_DB_SESSIONS, &k, NC_REC_SESSION, &nanochat__v1__session__descriptor,
                   (ProtobufCMessage **)&old);
  if (err == NC_ENOTFOUND) {
    if (a->expect_version != 0 && !(a->expect_version == NC_STORE_ANY_VERSION &&
                                    a->create_if_missing)) {
      mdb_txn_abort(t);
      return st_fail(NC_ENOTFOUND, "session %s not found", id);
    }
    err = NC_OK;
  } else if (err) {
    mdb_txn_abort(t);
    return err;
  } else if (a->expect_version == 0) {
    err = st_fail(NC_EEXIST, "session %s already exists", id);
  } else if (a->expect_version != NC_STORE_ANY_VERSION && a->expect_version != old->version) {
    err = st_fail(NC_ECONFLICT, "session %s: version is %" PRIu64 ", expected %" PRIu64
                  " (changed concurrently)", id, old->version, a->expect_version);
  }
  if (err) goto out;

  Nanochat__V1__Session fresh = NANOCHAT__V1__SESSION__INIT;
  Nanochat__V1__Session *ss = old ? old : &fresh;
  size_t n_old = ss->n_messages;
  size_t n_total = n_old + a->n_messages;
  if (n_total > s->max_msgs) {
    err = st_fail(NC_EFULL, "session full: %zu messages would exceed the limit of %u", n_total,
                  s->max_msgs);
    goto out;
  }
  Nanochat__V1__ChatMessage **msgs = malloc((n_total ? n_total : 1) * sizeof *msgs);
  if (!msgs) {
    err = st_fail(NC_ENOMEM, "append: out of memory");
    goto out;
  }
  if (n_old) memcpy(msgs, ss->messages, n_old * sizeof *msgs);
  for (size_t i = 0; i < a->n_messages; i++)
    msgs[n_old + i] = (Nanochat__V1__ChatMessage *)a->messages[i];
  Nanochat__V1__ChatMessage **saved_msgs = ss->messages;
  char *saved_tag = ss->model_tag, *saved_id = ss->id;
  int64_t now = st_now_ms();
  int64_t old_updated = ss->updated_ms;
  ss->messages = msgs;
  ss->n_messages = n_total;
  ss->id = (char *)id;
  if (!old) {
    ss->has_created_ms = 1;
    ss->created_ms = now;
  }
  ss->has_updated_ms = 1;
  ss->updated_ms = now;
  ss->has_version = 1;
  ss->version = (old ? old->version : 0) + 1;
  ss->has_tokens_generated = 1;
  ss->tokens_generated += a->add_tokens;
  if (a->set_model) {
    ss->has_phase = 1;
    ss->phase = a->phase;
    ss->model_tag = (char *)a->model_tag;
    ss->has_model_step = 1;
    ss->model_step = a->model_step;
  }
  size_t bytes = NC_STORE_HEADER_SIZE + protobuf_c_message_get_packed_size(&ss->base);
  if (bytes > s->max_bytes) {
    err = st_fail(NC_EFULL, "session full: %zu bytes would exceed the limit of %" PRIu64, bytes,
                  s->max_bytes);
  } else {
    err = st_put_msg(s, t, ST_DB_SESSIONS, &k, NC_REC_SESSION, &ss->base, 0, "session");
    if (!err && old) err = del_summary(s, t, old_updated, id, idlen);
    if (!err) err = put_summary(s, t, ss, idlen);
  }
  uint64_t v = ss->version;
  ss->messages = saved_msgs;
  ss->n_messages = n_old;
  ss->model_tag = saved_tag;
  ss->id = saved_id;
  free(msgs);
  if (!err && new_version) *new_version = v;
out:
  nc_store_free_msg(old);
  if (err) {
    mdb_txn_abort(t);
    return err;
  }
  return st_commit(s, t, "session append");
}

int nc_store_session_get(nc_store *s, const char *id, Nanochat__V1__Session **out) {
  size_t idlen = 0;
  int err = check_sid(id, &idlen);
  if (err) return err;
  MDB_txn *t;
  err = st_rbegin(s, &t);
  if (err) return err;
  MDB_val k = {idlen, (void *)id};
  err = st_get_msg(s, t, ST_DB_SESSIONS, &k, NC_REC_SESSION, &nanochat__v1__session__descriptor,
                   (ProtobufCMessage **)out);
  mdb_txn_abort(t);
  if (err == NC_ENOTFOUND) return st_fail(NC_ENOTFOUND, "session %s not found", id);
  return err;
}

int nc_store_session_delete(nc_store *s, const char *id) {
  size_t idlen = 0;
  int err = check_sid(id, &idlen);
  if (err) return err;
  MDB_txn *t;
  err = st_wbegin(s, &t);
  if (err) return err;
  MDB_val k = {idlen, (void *)id};
  Nanochat__V1__Session *old = NULL;
  err = st_get_msg(s, t, ST_DB_SESSIONS, &k, NC_REC_SESSION, &nanochat__v1__session__descriptor,
                   (ProtobufCMessage **)&old);
  if (err == NC_ENOTFOUND) err = st_fail(NC_ENOTFOUND, "session %s not found", id);
  if (!err) err = del_summary(s, t, old->updated_ms, id, idlen);
  if (!err) {
    int rc = mdb_del(t, s->dbi[ST_DB_SESSIONS], &k, NULL);
    if (rc) err = st_mdb(s, rc, "session delete");
  }
  nc_store_free_msg(old);
  if (err) {
    mdb_txn_abort(t);
    return err;
  }
  return st_commit(s, t, "session delete");
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

void nc_session_page_free(nc_session_page *p) {
  if (!p) return;
  nc_store_free_msgs(p->items, p->n);
  p->items = NULL;
  p->n = 0;
}

/* A read transaction with a cursor on database `db` (close both: mdb_cursor_close,
 * mdb_txn_abort). */
static int st_read_cursor(nc_store *s, int db, const char *what, MDB_txn **t, MDB_cursor **c) {
  int err = st_rbegin(s, t);
  if (err) return err;
  int rc = mdb_cursor_open(*t, s->dbi[db], c);
  if (rc) {
    mdb_txn_abort(*t);
    return st_mdb(s, rc, what);
  }
  return NC_OK;
}

int nc_store_session_list(nc_store *s, uint32_t page_size, const char *page_token,
                          nc_session_page *out) {
  memset(out, 0, sizeof *out);
  if (page_size < 1 || page_size > 1000)
    return st_fail(NC_EINVAL, "page_size: must be 1..1000 (got %u)", page_size);
  uint8_t tok[8 + NC_SESSION_ID_MAX];
  size_t toklen = 0;
  if (page_token && page_token[0]) {
    size_t n = strnlen(page_token, NC_STORE_PAGE_TOKEN_MAX + 1);
    if (n > 2 * sizeof tok || n % 2 || n < 2 * (8 + NC_SESSION_ID_MIN))
      return st_fail(NC_EINVAL, "page_token: malformed");
    for (size_t i = 0; i < n; i += 2) {
      int hi = hexval(page_token[i]), lo = hexval(page_token[i + 1]);
      if (hi < 0 || lo < 0) return st_fail(NC_EINVAL, "page_token: malformed");
      tok[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    toklen = n / 2;
    if (!nc_store_session_id_valid((const char *)tok + 8, toklen - 8))
      return st_fail(NC_EINVAL, "page_token: malformed");
  }
  MDB_txn *t;
  MDB_cursor *c;
  int err = st_read_cursor(s, ST_DB_SESS_TIME, "session list", &t, &c);
  if (err) return err;
  int rc;
  MDB_val k, v;
  if (toklen) {
    k.mv_size = toklen;
    k.mv_data = tok;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc == MDB_SUCCESS) rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
    else if (rc == MDB_NOTFOUND) rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
  } else {
    rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
  }
  out->items = calloc(page_size, sizeof *out->items);
  if (!out->items) err = st_fail(NC_ENOMEM, "session list: out of memory");
  uint8_t lastkey[8 + NC_SESSION_ID_MAX];
  size_t lastlen = 0;
  while (!err && rc == MDB_SUCCESS && out->n < page_size) {
    err = st_decode(&v, NC_REC_SESSION_SUMMARY, ST_DB_SESS_TIME,
                    &nanochat__v1__session_summary__descriptor,
                    (ProtobufCMessage **)&out->items[out->n]);
    if (err) break;
    out->n++;
    lastlen = k.mv_size <= sizeof lastkey ? k.mv_size : sizeof lastkey;
    memcpy(lastkey, k.mv_data, lastlen);
    rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
  }
  if (!err && rc != MDB_SUCCESS && rc != MDB_NOTFOUND) err = st_mdb(s, rc, "session list");
  /* more entries remain when the loop stopped on a full page with the cursor still valid */
  if (!err && rc == MDB_SUCCESS && out->n == page_size) {
    for (size_t i = 0; i < lastlen; i++)
      snprintf(out->next_token + 2 * i, 3, "%02x", lastkey[i]);
  }
  mdb_cursor_close(c);
  mdb_txn_abort(t);
  if (err) nc_session_page_free(out);
  return err;
}

/* ---- checkpoints ---------------------------------------------------------------------- */

int st_ckpt_key(uint8_t *buf, size_t cap, int phase, const char *tag, int64_t step,
                size_t *klen) {
  size_t tl = tag ? strnlen(tag, NC_TAG_MAX + 1) : 0;
  if (phase < 1 || phase > 3)
    return st_fail(NC_EINVAL, "phase: must be BASE, SFT or RL (got %d)", phase);
  if (!nc_store_tag_valid(tag, tl))
    return st_fail(NC_EINVAL, "tag: must be 1..64 characters of [A-Za-z0-9_.-]");
  if (cap < 1 + tl + 1 + 8) return st_fail(NC_EINTERNAL, "checkpoint key buffer too small");
  buf[0] = (uint8_t)phase;
  memcpy(buf + 1, tag, tl);
  buf[1 + tl] = 0;
  st_be64(buf + 2 + tl, (uint64_t)step ^ (1ull << 63));
  *klen = 1 + tl + 1 + 8;
  return NC_OK;
}

bool st_checkpoint_valid(const Nanochat__V1__CheckpointInfo *ci, char *why, size_t whylen) {
  if (!ci->has_phase || ci->phase < 1 || ci->phase > 3) {
    snprintf(why, whylen, "checkpoint.phase: must be BASE, SFT or RL");
    return false;
  }
  if (!ci->tag || !nc_store_tag_valid(ci->tag, strnlen(ci->tag, NC_TAG_MAX + 1))) {
    snprintf(why, whylen, "checkpoint.tag: must be 1..64 characters of [A-Za-z0-9_.-]");
    return false;
  }
  if (!ci->has_step) {
    snprintf(why, whylen, "checkpoint.step: missing");
    return false;
  }
  if (ci->path) {
    size_t n = strnlen(ci->path, 4097);
    bool bad = n == 0 || n > 4096 || ci->path[0] == '/' || !st_utf8_valid(ci->path, n);
    for (const char *p = ci->path; !bad && *p;) {  /* no ".." component */
      const char *e = strchr(p, '/');
      size_t cl = e ? (size_t)(e - p) : strlen(p);
      if (cl == 2 && p[0] == '.' && p[1] == '.') bad = true;
      p += cl + (e ? 1 : 0);
    }
    if (bad) {
      snprintf(why, whylen, "checkpoint.path: must be relative to the data dir without \"..\"");
      return false;
    }
  }
  if (ci->sha256 && ci->sha256[0]) {
    size_t n = strnlen(ci->sha256, 65);
    bool ok = n == 64;
    for (size_t i = 0; ok && i < n; i++) ok = hexval(ci->sha256[i]) >= 0;
    if (!ok) {
      snprintf(why, whylen, "checkpoint.sha256: must be 64 lowercase hex characters");
      return false;
    }
  }
  if (ci->optimizer_path && strnlen(ci->optimizer_path, 4097) > 4096) {
    snprintf(why, whylen, "checkpoint.optimizer_path: too long");
    return false;
  }
  return true;
}

int nc_store_ckpt_put(nc_store *s, const Nanochat__V1__CheckpointInfo *ci, bool replace) {
  char why[160];
  if (!ci) return st_fail(NC_EINVAL, "checkpoint: missing");
  if (!st_checkpoint_valid(ci, why, sizeof why)) return st_fail(NC_EINVAL, "%s", why);
  uint8_t kb[1 + NC_TAG_MAX + 1 + 8];
  size_t kl = 0;
  int err = st_ckpt_key(kb, sizeof kb, ci->phase, ci->tag, ci->step, &kl);
  if (err) return err;
  MDB_txn *t;
  err = st_wbegin(s, &t);
  if (err) return err;
  MDB_val k = {kl, kb};
  bool exists;
  err = st_check_overwrite(s, t, ST_DB_CKPT, &k, NC_REC_CHECKPOINT, &exists);
  if (!err && exists && !replace)
    err = st_fail(NC_EEXIST, "checkpoint %s step %" PRId64 " already exists", ci->tag, ci->step);
  if (!err)
    err = st_put_msg(s, t, ST_DB_CKPT, &k, NC_REC_CHECKPOINT, &ci->base, 0, "checkpoint");
  if (err) {
    mdb_txn_abort(t);
    return err;
  }
  return st_commit(s, t, "checkpoint put");
}

int nc_store_ckpt_get(nc_store *s, Nanochat__V1__Phase phase, const char *tag, int64_t step,
                      Nanochat__V1__CheckpointInfo **out) {
  uint8_t kb[1 + NC_TAG_MAX + 1 + 8];
  size_t kl = 0;
  int err = st_ckpt_key(kb, sizeof kb, phase, tag, step, &kl);
  if (err) return err;
  MDB_txn *t;
  err = st_rbegin(s, &t);
  if (err) return err;
  MDB_val k = {kl, kb};
  err = st_get_msg(s, t, ST_DB_CKPT, &k, NC_REC_CHECKPOINT,
                   &nanochat__v1__checkpoint_info__descriptor, (ProtobufCMessage **)out);
  mdb_txn_abort(t);
  if (err == NC_ENOTFOUND)
    return st_fail(NC_ENOTFOUND, "checkpoint %s step %" PRId64 " not found", tag, step);
  return err;
}

int nc_store_ckpt_list(nc_store *s, Nanochat__V1__Phase phase, const char *tag,
                       size_t max_items, Nanochat__V1__CheckpointInfo ***items, size_t *n) {
  *items = NULL;
  *n = 0;
  if (max_items == 0) max_items = 100000;
  size_t tl = tag ? strnlen(tag, NC_TAG_MAX + 1) : 0;
  if (tl && !nc_store_tag_valid(tag, tl))
    return st_fail(NC_EINVAL, "tag: must be 1..64 characters of [A-Za-z0-9_.-]");
  if (phase < 0 || phase > 3) return st_fail(NC_EINVAL, "phase: unknown value %d", (int)phase);
  uint8_t prefix[1 + NC_TAG_MAX + 1];
  size_t pl = 0;
  if (phase) {
    prefix[pl++] = (uint8_t)phase;
    if (tl) {
      memcpy(prefix + pl, tag, tl);
      pl += tl;
      prefix[pl++] = 0;
    }
  }
  MDB_txn *t;
  MDB_cursor *c;
  int err = st_read_cursor(s, ST_DB_CKPT, "checkpoint list", &t, &c);
  if (err) return err;
  int rc;
  MDB_val k = {pl, prefix}, v;
  rc = pl ? mdb_cursor_get(c, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(c, &k, &v, MDB_FIRST);
  size_t cap = 0;
  Nanochat__V1__CheckpointInfo **arr = NULL;
  while (rc == MDB_SUCCESS && *n < max_items) {
    if (k.mv_size < pl || memcmp(k.mv_data, prefix, pl) != 0) break;
    bool match = true;
    if (!phase && tl) {  /* tag filter across phases: key = phase + tag + 0 + step */
      match = k.mv_size == 1 + tl + 1 + 8 && memcmp((uint8_t *)k.mv_data + 1, tag, tl) == 0;
    }
    if (match) {
      if (*n == cap) {
        cap = cap ? cap * 2 : 16;
        void *na = realloc(arr, cap * sizeof *arr);
        if (!na) {
          err = st_fail(NC_ENOMEM, "checkpoint list: out of memory");
          break;
        }
        arr = na;
      }
      err = st_decode(&v, NC_REC_CHECKPOINT, ST_DB_CKPT, &nanochat__v1__checkpoint_info__descriptor,
                      (ProtobufCMessage **)&arr[*n]);
      if (err) break;
      (*n)++;
    }
    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
  }
  if (!err && rc != MDB_SUCCESS && rc != MDB_NOTFOUND) err = st_mdb(s, rc, "checkpoint list");
  mdb_cursor_close(c);
  mdb_txn_abort(t);
  if (err) {
    nc_store_free_msgs(arr, *n);
    *n = 0;
    return err;
  }
  *items = arr;
  return NC_OK;
}

int nc_store_ckpt_delete(nc_store *s, Nanochat__V1__Phase phase, const char *tag, int64_t step) {
  uint8_t kb[1 + NC_TAG_MAX + 1 + 8];
  size_t kl = 0;
  int err = st_ckpt_key(kb, sizeof kb, phase, tag, step, &kl);
  if (err) return err;
  MDB_txn *t;
  err = st_wbegin(s, &t);
  if (err) return err;
  MDB_val k = {kl, kb};
  int rc = mdb_del(t, s->dbi[ST_DB_CKPT], &k, NULL);
  if (rc) {
    mdb_txn_abort(t);
    if (rc == MDB_NOTFOUND)
      return st_fail(NC_ENOTFOUND, "checkpoint %s step %" PRId64 " not found", tag, step);
    return st_mdb(s, rc, "checkpoint delete");
  }
  return st_commit(s, t, "checkpoint delete");
}
