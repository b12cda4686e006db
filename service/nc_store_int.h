/* nc_store_int.h — internals shared by nc_store.c (environment, records, sessions,
 * checkpoints) and nc_store_jobs.c (jobs, queue, events, evals). Not a public API. */
#ifndef NC_STORE_INT_H
#define NC_STORE_INT_H

#include <lmdb.h>
#include <stdatomic.h>
#include <stdint.h>

#include "nc_err.h"
#include "nc_store.h"

enum {
  ST_DB_META,
  ST_DB_SESSIONS,
  ST_DB_SESS_TIME,
  ST_DB_CKPT,
  ST_DB_JOBS,
  ST_DB_QUEUE,
  ST_DB_EVENTS,
  ST_DB_EVALS,
  ST_DB_COUNT
};

struct nc_store {
  MDB_env *env;
  MDB_dbi dbi[ST_DB_COUNT];
  char *dir;
  uint64_t map_size;
  uint32_t max_msgs;
  uint64_t max_bytes;
  bool ro;
  int readers_cleared;
  uint32_t schema;
  atomic_bool panicked;
  atomic_bool reserve_held;   /* the meta "reserve" record exists (see st_reserve_*) */
};

extern const char *const nc_store_db_names[ST_DB_COUNT];

/* Sets the thread's error message; returns `code`. */
int st_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Maps an LMDB or errno code to an NC_E code, sets the message "<what>: <cause>". */
int st_mdb(nc_store *s, int rc, const char *what);

int st_wbegin(nc_store *s, MDB_txn **t);
int st_rbegin(nc_store *s, MDB_txn **t);
int st_commit(nc_store *s, MDB_txn *t, const char *what);

/* Checks the record header of v: magic, version, type. On success p and n give the payload. */
int st_check_hdr(const MDB_val *v, uint16_t type, int db, const uint8_t **p, size_t *n);
/* Decodes a record value into a protobuf message (checks the header). */
int st_decode(const MDB_val *v, uint16_t type, int db, const ProtobufCMessageDescriptor *d,
              ProtobufCMessage **out);
/* mdb_get + st_decode; NC_ENOTFOUND (no message set) when the key is absent. */
int st_get_msg(nc_store *s, MDB_txn *t, int db, MDB_val *k, uint16_t type,
               const ProtobufCMessageDescriptor *d, ProtobufCMessage **out);
/* If key k exists in db, checks its header (refuses to overwrite newer/foreign records).
 * NC_OK when absent or readable. *exists (may be NULL) tells which. */
int st_check_overwrite(nc_store *s, MDB_txn *t, int db, MDB_val *k, uint16_t type, bool *exists);
/* Puts header + packed message under k (flags: 0 or MDB_NOOVERWRITE). */
int st_put_msg(nc_store *s, MDB_txn *t, int db, MDB_val *k, uint16_t type,
               const ProtobufCMessage *m, unsigned flags, const char *what);
/* Puts header + raw bytes under k. */
int st_put_raw(nc_store *s, MDB_txn *t, int db, MDB_val *k, uint16_t type, const void *p,
               size_t n, unsigned flags, const char *what);

/* The reserve: a filler record in "meta" written at open, so that a full map still has room
 * for the writes that must land (a job's final state). st_reserve_ensure writes it when
 * absent (best effort: a full map just leaves it out); st_reserve_release deletes it in its
 * own committed transaction, so its pages are free for the next write. NC_OK when released,
 * NC_ENOTFOUND when there was none. */
void st_reserve_ensure(nc_store *s);
int st_reserve_release(nc_store *s);

int64_t st_now_ms(void);
void st_be64(uint8_t *p, uint64_t v);
uint64_t st_rd_be64(const uint8_t *p);
bool st_checkpoint_valid(const Nanochat__V1__CheckpointInfo *ci, char *why, size_t whylen);
int st_ckpt_key(uint8_t *buf, size_t cap, int phase, const char *tag, int64_t step, size_t *klen);
bool st_utf8_valid(const char *s, size_t n);

#endif /* NC_STORE_INT_H */
