/* nc_store_jobs.c — jobs, the persisted FIFO queue, job events and eval results.
 * See nc_store.h for the contract; nc_store.c for the environment and record helpers. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nc_store.h"
#include "nc_store_int.h"

static int check_jid(const char *id) {
  size_t n = id ? strnlen(id, NC_JOB_ID_LEN + 1) : 0;
  if (!nc_store_job_id_valid(id, n))
    return st_fail(NC_EINVAL, "job_id: must be 16 lowercase hex characters");
  return NC_OK;
}

static size_t event_key(uint8_t *buf, const char *id, uint64_t seq) {
  memcpy(buf, id, NC_JOB_ID_LEN);
  st_be64(buf + NC_JOB_ID_LEN, seq);
  return NC_JOB_ID_LEN + 8;
}

/* Next key of an auto-numbered database (queue, evals): last key + 1, or 1. */
static int next_number(nc_store *s, MDB_txn *t, int db, uint64_t *out) {
  MDB_cursor *c;
  int rc = mdb_cursor_open(t, s->dbi[db], &c);
  if (rc) return st_mdb(s, rc, nc_store_db_names[db]);
  MDB_val k, v;
  rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
  mdb_cursor_close(c);
  if (rc == MDB_NOTFOUND) {
    *out = 1;
    return NC_OK;
  }
  if (rc) return st_mdb(s, rc, nc_store_db_names[db]);
  if (k.mv_size != 8) return st_fail(NC_ECORRUPT, "%s: key of %zu bytes", nc_store_db_names[db],
                                     k.mv_size);
  *out = st_rd_be64(k.mv_data) + 1;
  return NC_OK;
}

static int queue_remove(nc_store *s, MDB_txn *t, const char *id) {
  MDB_cursor *c;
  int rc = mdb_cursor_open(t, s->dbi[ST_DB_QUEUE], &c);
  if (rc) return st_mdb(s, rc, "job queue");
  MDB_val k, v;
  int err = NC_OK;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    const uint8_t *p;
    size_t n;
    err = st_check_hdr(&v, NC_REC_QUEUE, ST_DB_QUEUE, &p, &n);
    if (err) break;
    if (n == NC_JOB_ID_LEN && memcmp(p, id, NC_JOB_ID_LEN) == 0) {
      rc = mdb_cursor_del(c, 0);
      if (rc) {
        err = st_mdb(s, rc, "job queue");
        break;
      }
    }
  }
  if (!err && rc != MDB_SUCCESS && rc != MDB_NOTFOUND) err = st_mdb(s, rc, "job queue");
  mdb_cursor_close(c);
  return err;
}

static int validate_event(const Nanochat__V1__JobEvent *ev, size_t i) {
  if (!ev) return st_fail(NC_EINVAL, "event %zu: NULL", i);
  if (!ev->has_kind || ev->kind < NANOCHAT__V1__EVENT_KIND__EVENT_STATE ||
      ev->kind > NANOCHAT__V1__EVENT_KIND__EVENT_LOG)
    return st_fail(NC_EINVAL, "event %zu: kind must be STATE, PROGRESS, EVAL, CHECKPOINT or LOG",
                   i);
  if (ev->kind == NANOCHAT__V1__EVENT_KIND__EVENT_CHECKPOINT && ev->checkpoint) {
    char why[160];
    if (!st_checkpoint_valid(ev->checkpoint, why, sizeof why))
      return st_fail(NC_EINVAL, "event %zu: %s", i, why);
  }
  return NC_OK;
}

/* Writes events seq = *last + 1 ... into the open txn; updates *last. */
static int put_events(nc_store *s, MDB_txn *t, const char *id, uint64_t *last,
                      Nanochat__V1__JobEvent *const *evs, size_t n) {
  int64_t now = st_now_ms();
  for (size_t i = 0; i < n; i++) {
    Nanochat__V1__JobEvent *ev = evs[i];
    uint64_t seq = *last + 1;
    ev->has_seq = 1;
    ev->seq = seq;
    if (!ev->has_time_ms || ev->time_ms == 0) {
      ev->has_time_ms = 1;
      ev->time_ms = now;
    }
    uint8_t kb[NC_JOB_ID_LEN + 8];
    MDB_val k = {event_key(kb, id, seq), kb};
    char *saved = ev->job_id;
    ev->job_id = (char *)id;
    int err = st_put_msg(s, t, ST_DB_EVENTS, &k, NC_REC_EVENT, &ev->base, MDB_NOOVERWRITE,
                         "job event");
    ev->job_id = saved;
    if (err == NC_EEXIST)
      err = st_fail(NC_ECORRUPT, "job %s: event %" PRIu64 " already stored (last_seq behind)", id,
                    seq);
    if (err) return err;
    if (ev->kind == NANOCHAT__V1__EVENT_KIND__EVENT_CHECKPOINT && ev->checkpoint) {
      Nanochat__V1__CheckpointInfo *ci = ev->checkpoint;
      uint8_t ck[1 + NC_TAG_MAX + 1 + 8];
      size_t kl = 0;
      err = st_ckpt_key(ck, sizeof ck, ci->phase, ci->tag, ci->step, &kl);
      if (err) return err;
      MDB_val ckk = {kl, ck};
      err = st_check_overwrite(s, t, ST_DB_CKPT, &ckk, NC_REC_CHECKPOINT, NULL);
      if (err) return err;
      char *saved_jid = ci->job_id;
      ci->job_id = (char *)id;
      err = st_put_msg(s, t, ST_DB_CKPT, &ckk, NC_REC_CHECKPOINT, &ci->base, 0, "checkpoint");
      ci->job_id = saved_jid;
      if (err) return err;
    }
    *last = seq;
  }
  return NC_OK;
}

static int job_write_once(nc_store *s, Nanochat__V1__JobInfo *job, unsigned flags,
                          Nanochat__V1__JobEvent *const *evs, size_t n);

int nc_store_job_write(nc_store *s, Nanochat__V1__JobInfo *job, unsigned flags,
                       Nanochat__V1__JobEvent *const *evs, size_t n) {
  int err = job_write_once(s, job, flags, evs, n);
  if (err == NC_EFULL && (flags & NC_JOB_CRITICAL) && st_reserve_release(s) == NC_OK)
    err = job_write_once(s, job, flags, evs, n);
  return err;
}

static int job_write_once(nc_store *s, Nanochat__V1__JobInfo *job, unsigned flags,
                          Nanochat__V1__JobEvent *const *evs, size_t n) {
  if (!job) return st_fail(NC_EINVAL, "job: missing");
  int err = check_jid(job->job_id);
  if (err) return err;
  if (n && !evs) return st_fail(NC_EINVAL, "events: missing");
  if ((flags & NC_JOB_QUEUE_PUSH) && (flags & NC_JOB_QUEUE_REMOVE))
    return st_fail(NC_EINVAL, "job write: push and remove together");
  for (size_t i = 0; i < n; i++)
    if ((err = validate_event(evs[i], i))) return err;
  const char *id = job->job_id;
  MDB_txn *t;
  err = st_wbegin(s, &t);
  if (err) return err;
  MDB_val k = {NC_JOB_ID_LEN, (void *)id};
  uint64_t last = 0;
  uint64_t saved_last = job->last_seq;
  protobuf_c_boolean saved_has = job->has_last_seq;
  if (flags & NC_JOB_CREATE) {
    bool exists;
    err = st_check_overwrite(s, t, ST_DB_JOBS, &k, NC_REC_JOB, &exists);
    if (!err && exists) err = st_fail(NC_EEXIST, "job %s already exists", id);
  } else {
    Nanochat__V1__JobInfo *old = NULL;
    err = st_get_msg(s, t, ST_DB_JOBS, &k, NC_REC_JOB, &nanochat__v1__job_info__descriptor,
                     (ProtobufCMessage **)&old);
    if (err == NC_ENOTFOUND) err = st_fail(NC_ENOTFOUND, "job %s not found", id);
    if (!err) last = old->last_seq;
    nc_store_free_msg(old);
  }
  if (!err) err = put_events(s, t, id, &last, evs, n);
  if (!err && (flags & NC_JOB_QUEUE_PUSH)) {
    uint64_t q;
    err = next_number(s, t, ST_DB_QUEUE, &q);
    if (!err) {
      uint8_t qb[8];
      st_be64(qb, q);
      MDB_val qk = {8, qb};
      err = st_put_raw(s, t, ST_DB_QUEUE, &qk, NC_REC_QUEUE, id, NC_JOB_ID_LEN, MDB_NOOVERWRITE,
                       "job queue");
    }
  }
  if (!err && (flags & NC_JOB_QUEUE_REMOVE)) err = queue_remove(s, t, id);
  if (!err) {
    job->has_last_seq = 1;
    job->last_seq = last;
    err = st_put_msg(s, t, ST_DB_JOBS, &k, NC_REC_JOB, &job->base, 0, "job");
  }
  if (!err) err = st_commit(s, t, "job write");
  else mdb_txn_abort(t);
  if (err) {
    job->last_seq = saved_last;
    job->has_last_seq = saved_has;
  }
  return err;
}

int nc_store_event_append(nc_store *s, const char *job_id, Nanochat__V1__JobEvent *const *evs,
                          size_t n) {
  int err = check_jid(job_id);
  if (err) return err;
  if (n && !evs) return st_fail(NC_EINVAL, "events: missing");
  for (size_t i = 0; i < n; i++)
    if ((err = validate_event(evs[i], i))) return err;
  MDB_txn *t;
  err = st_wbegin(s, &t);
  if (err) return err;
  MDB_val k = {NC_JOB_ID_LEN, (void *)job_id};
  Nanochat__V1__JobInfo *job = NULL;
  err = st_get_msg(s, t, ST_DB_JOBS, &k, NC_REC_JOB, &nanochat__v1__job_info__descriptor,
                   (ProtobufCMessage **)&job);
  if (err == NC_ENOTFOUND) err = st_fail(NC_ENOTFOUND, "job %s not found", job_id);
  if (!err) {
    uint64_t last = job->last_seq;
    err = put_events(s, t, job_id, &last, evs, n);
    if (!err) {
      job->has_last_seq = 1;
      job->last_seq = last;
      err = st_put_msg(s, t, ST_DB_JOBS, &k, NC_REC_JOB, &job->base, 0, "job");
    }
  }
  nc_store_free_msg(job);
  if (err) {
    mdb_txn_abort(t);
    return err;
  }
  return st_commit(s, t, "event append");
}

int nc_store_job_get(nc_store *s, const char *id, Nanochat__V1__JobInfo **out) {
  int err = check_jid(id);
  if (err) return err;
  MDB_txn *t;
  err = st_rbegin(s, &t);
  if (err) return err;
  MDB_val k = {NC_JOB_ID_LEN, (void *)id};
  err = st_get_msg(s, t, ST_DB_JOBS, &k, NC_REC_JOB, &nanochat__v1__job_info__descriptor,
                   (ProtobufCMessage **)out);
  mdb_txn_abort(t);
  if (err == NC_ENOTFOUND) return st_fail(NC_ENOTFOUND, "job %s not found", id);
  return err;
}

static int job_newest_first(const void *a, const void *b) {
  const Nanochat__V1__JobInfo *x = *(Nanochat__V1__JobInfo *const *)a;
  const Nanochat__V1__JobInfo *y = *(Nanochat__V1__JobInfo *const *)b;
  if (x->created_ms != y->created_ms) return x->created_ms > y->created_ms ? -1 : 1;
  return -strcmp(x->job_id ? x->job_id : "", y->job_id ? y->job_id : "");
}

int nc_store_job_list(nc_store *s, size_t limit, Nanochat__V1__JobInfo ***items, size_t *n) {
  *items = NULL;
  *n = 0;
  if (limit < 1 || limit > 100000) return st_fail(NC_EINVAL, "limit: must be 1..100000");
  MDB_txn *t;
  int err = st_rbegin(s, &t);
  if (err) return err;
  MDB_cursor *c;
  int rc = mdb_cursor_open(t, s->dbi[ST_DB_JOBS], &c);
  if (rc) {
    mdb_txn_abort(t);
    return st_mdb(s, rc, "job list");
  }
  Nanochat__V1__JobInfo **arr = NULL;
  size_t cnt = 0, cap = 0;
  MDB_val k, v;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    if (cnt == cap) {
      cap = cap ? cap * 2 : 32;
      void *na = realloc(arr, cap * sizeof *arr);
      if (!na) {
        err = st_fail(NC_ENOMEM, "job list: out of memory");
        break;
      }
      arr = na;
    }
    err = st_decode(&v, NC_REC_JOB, ST_DB_JOBS, &nanochat__v1__job_info__descriptor,
                    (ProtobufCMessage **)&arr[cnt]);
    if (err) break;
    cnt++;
  }
  if (!err && rc != MDB_NOTFOUND) err = st_mdb(s, rc, "job list");
  mdb_cursor_close(c);
  mdb_txn_abort(t);
  if (err) {
    nc_store_free_msgs(arr, cnt);
    return err;
  }
  if (cnt) qsort(arr, cnt, sizeof *arr, job_newest_first);
  while (cnt > limit) nc_store_free_msg(arr[--cnt]);
  *items = arr;
  *n = cnt;
  return NC_OK;
}

int nc_store_job_queue(nc_store *s, char (*ids)[NC_JOB_ID_LEN + 1], size_t cap, size_t *n,
                       size_t *total) {
  *n = 0;
  if (total) *total = 0;
  MDB_txn *t;
  int err = st_rbegin(s, &t);
  if (err) return err;
  MDB_cursor *c;
  int rc = mdb_cursor_open(t, s->dbi[ST_DB_QUEUE], &c);
  if (rc) {
    mdb_txn_abort(t);
    return st_mdb(s, rc, "job queue");
  }
  MDB_val k, v;
  size_t cnt = 0;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    const uint8_t *p;
    size_t len;
    err = st_check_hdr(&v, NC_REC_QUEUE, ST_DB_QUEUE, &p, &len);
    if (err) break;
    if (len != NC_JOB_ID_LEN) {
      err = st_fail(NC_ECORRUPT, "job queue: entry of %zu bytes", len);
      break;
    }
    if (cnt < cap && ids) {
      memcpy(ids[cnt], p, NC_JOB_ID_LEN);
      ids[cnt][NC_JOB_ID_LEN] = 0;
      (*n)++;
    }
    cnt++;
  }
  if (!err && rc != MDB_NOTFOUND) err = st_mdb(s, rc, "job queue");
  mdb_cursor_close(c);
  mdb_txn_abort(t);
  if (!err && total) *total = cnt;
  return err;
}

int nc_store_queue_drop(nc_store *s, const char *id) {
  int err = check_jid(id);
  if (err) return err;
  MDB_txn *t;
  err = st_wbegin(s, &t);
  if (err) return err;
  err = queue_remove(s, t, id);
  if (err) {
    mdb_txn_abort(t);
    return err;
  }
  return st_commit(s, t, "job queue");
}

int nc_store_job_delete(nc_store *s, const char *id) {
  int err = check_jid(id);
  if (err) return err;
  MDB_txn *t;
  err = st_wbegin(s, &t);
  if (err) return err;
  MDB_val k = {NC_JOB_ID_LEN, (void *)id};
  int rc = mdb_del(t, s->dbi[ST_DB_JOBS], &k, NULL);
  if (rc == MDB_NOTFOUND) err = st_fail(NC_ENOTFOUND, "job %s not found", id);
  else if (rc) err = st_mdb(s, rc, "job delete");
  if (!err) err = queue_remove(s, t, id);
  if (!err) {
    MDB_cursor *c;
    rc = mdb_cursor_open(t, s->dbi[ST_DB_EVENTS], &c);
    if (rc) err = st_mdb(s, rc, "job events");
    else {
      uint8_t kb[NC_JOB_ID_LEN + 8];
      MDB_val ek = {event_key(kb, id, 0), kb}, ev;
      for (rc = mdb_cursor_get(c, &ek, &ev, MDB_SET_RANGE); rc == MDB_SUCCESS;
           rc = mdb_cursor_get(c, &ek, &ev, MDB_NEXT)) {
        if (ek.mv_size != NC_JOB_ID_LEN + 8 || memcmp(ek.mv_data, id, NC_JOB_ID_LEN) != 0) break;
        rc = mdb_cursor_del(c, 0);
        if (rc) break;
      }
      if (rc && rc != MDB_NOTFOUND) err = st_mdb(s, rc, "job events");
      mdb_cursor_close(c);
    }
  }
  if (err) {
    mdb_txn_abort(t);
    return err;
  }
  return st_commit(s, t, "job delete");
}

void nc_blob_list_free(nc_blob_list *l) {
  if (!l) return;
  free(l->mem);
  memset(l, 0, sizeof *l);
}

int nc_store_event_range(nc_store *s, const char *id, uint64_t from_seq, size_t max_count,
                         size_t max_bytes, nc_blob_list *out) {
  memset(out, 0, sizeof *out);
  int err = check_jid(id);
  if (err) return err;
  if (max_count < 1) return st_fail(NC_EINVAL, "event range: max_count must be >= 1");
  if (from_seq == 0) from_seq = 1;
  MDB_txn *t;
  err = st_rbegin(s, &t);
  if (err) return err;
  MDB_cursor *c;
  int rc = mdb_cursor_open(t, s->dbi[ST_DB_EVENTS], &c);
  if (rc) {
    mdb_txn_abort(t);
    return st_mdb(s, rc, "job events");
  }
  /* first pass: find the payloads (pointers valid until the txn ends) */
  size_t cap = 0, cnt = 0, total = 0;
  struct {
    uint64_t seq;
    const uint8_t *p;
    size_t n;
  } *tmp = NULL;
  uint8_t kb[NC_JOB_ID_LEN + 8];
  MDB_val k = {event_key(kb, id, from_seq), kb}, v;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS && cnt < max_count;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    if (k.mv_size != NC_JOB_ID_LEN + 8 || memcmp(k.mv_data, id, NC_JOB_ID_LEN) != 0) break;
    const uint8_t *p;
    size_t n;
    err = st_check_hdr(&v, NC_REC_EVENT, ST_DB_EVENTS, &p, &n);
    if (err) break;
    if (cnt && total + n > max_bytes) break;
    if (cnt == cap) {
      cap = cap ? cap * 2 : 64;
      void *na = realloc(tmp, cap * sizeof *tmp);
      if (!na) {
        err = st_fail(NC_ENOMEM, "event range: out of memory");
        break;
      }
      tmp = na;
    }
    tmp[cnt].seq = st_rd_be64((const uint8_t *)k.mv_data + NC_JOB_ID_LEN);
    tmp[cnt].p = p;
    tmp[cnt].n = n;
    cnt++;
    total += n;
  }
  if (!err && rc != MDB_SUCCESS && rc != MDB_NOTFOUND) err = st_mdb(s, rc, "job events");
  if (!err && cnt) {
    uint8_t *mem = malloc(cnt * sizeof(nc_blob) + total);
    if (!mem) {
      err = st_fail(NC_ENOMEM, "event range: out of memory");
    } else {
      nc_blob *bv = (nc_blob *)mem;
      uint8_t *data = mem + cnt * sizeof(nc_blob);
      for (size_t i = 0; i < cnt; i++) {
        memcpy(data, tmp[i].p, tmp[i].n);
        bv[i].seq = tmp[i].seq;
        bv[i].data = data;
        bv[i].len = tmp[i].n;
        data += tmp[i].n;
      }
      out->v = bv;
      out->n = cnt;
      out->mem = mem;
    }
  }
  free(tmp);
  mdb_cursor_close(c);
  mdb_txn_abort(t);
  return err;
}

int nc_store_event_list(nc_store *s, const char *id, uint64_t from_seq, size_t max_count,
                        Nanochat__V1__JobEvent ***items, size_t *n) {
  *items = NULL;
  *n = 0;
  nc_blob_list bl;
  int err = nc_store_event_range(s, id, from_seq, max_count, SIZE_MAX, &bl);
  if (err) return err;
  if (!bl.n) return NC_OK;
  Nanochat__V1__JobEvent **arr = calloc(bl.n, sizeof *arr);
  if (!arr) {
    nc_blob_list_free(&bl);
    return st_fail(NC_ENOMEM, "event list: out of memory");
  }
  for (size_t i = 0; i < bl.n; i++) {
    arr[i] = nanochat__v1__job_event__unpack(NULL, bl.v[i].len, bl.v[i].data);
    if (!arr[i]) {
      nc_store_free_msgs(arr, i);
      nc_blob_list_free(&bl);
      return st_fail(NC_ECORRUPT, "job_events: event %" PRIu64 " of job %s does not decode",
                     bl.v[i].seq, id);
    }
  }
  *items = arr;
  *n = bl.n;
  nc_blob_list_free(&bl);
  return NC_OK;
}

/* ---- evals ----------------------------------------------------------------------------- */

int nc_store_eval_put(nc_store *s, Nanochat__V1__JobEvent *ev) {
  if (!ev || !ev->has_kind || ev->kind != NANOCHAT__V1__EVENT_KIND__EVENT_EVAL)
    return st_fail(NC_EINVAL, "eval result: kind must be EVAL");
  if (ev->job_id && ev->job_id[0]) {
    int err = check_jid(ev->job_id);
    if (err) return err;
  }
  if (ev->checkpoint) {
    char why[160];
    if (!st_checkpoint_valid(ev->checkpoint, why, sizeof why))
      return st_fail(NC_EINVAL, "eval result: %s", why);
  }
  MDB_txn *t;
  int err = st_wbegin(s, &t);
  if (err) return err;
  uint64_t num;
  err = next_number(s, t, ST_DB_EVALS, &num);
  if (!err) {
    uint8_t kb[8];
    st_be64(kb, num);
    MDB_val k = {8, kb};
    uint64_t saved_seq = ev->seq;
    int64_t saved_time = ev->time_ms;
    protobuf_c_boolean hs = ev->has_seq, ht = ev->has_time_ms;
    ev->has_seq = 1;
    ev->seq = num;
    if (!ev->has_time_ms || !ev->time_ms) {
      ev->has_time_ms = 1;
      ev->time_ms = st_now_ms();
    }
    err = st_put_msg(s, t, ST_DB_EVALS, &k, NC_REC_EVAL, &ev->base, MDB_NOOVERWRITE, "eval result");
    if (!err) err = st_commit(s, t, "eval result");
    else mdb_txn_abort(t);
    if (err) {
      ev->seq = saved_seq;
      ev->has_seq = hs;
      ev->time_ms = saved_time;
      ev->has_time_ms = ht;
    }
    return err;
  }
  mdb_txn_abort(t);
  return err;
}

int nc_store_eval_list(nc_store *s, uint64_t before_seq, size_t limit,
                       Nanochat__V1__JobEvent ***items, size_t *n) {
  *items = NULL;
  *n = 0;
  if (limit < 1 || limit > 100000) return st_fail(NC_EINVAL, "limit: must be 1..100000");
  MDB_txn *t;
  int err = st_rbegin(s, &t);
  if (err) return err;
  MDB_cursor *c;
  int rc = mdb_cursor_open(t, s->dbi[ST_DB_EVALS], &c);
  if (rc) {
    mdb_txn_abort(t);
    return st_mdb(s, rc, "eval list");
  }
  MDB_val k, v;
  uint8_t kb[8];
  if (before_seq) {
    st_be64(kb, before_seq);
    k.mv_size = 8;
    k.mv_data = kb;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc == MDB_SUCCESS) rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
    else if (rc == MDB_NOTFOUND) rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
  } else {
    rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
  }
  Nanochat__V1__JobEvent **arr = NULL;
  size_t cnt = 0, cap = 0;
  for (; rc == MDB_SUCCESS && cnt < limit; rc = mdb_cursor_get(c, &k, &v, MDB_PREV)) {
    if (cnt == cap) {
      cap = cap ? cap * 2 : 16;
      void *na = realloc(arr, cap * sizeof *arr);
      if (!na) {
        err = st_fail(NC_ENOMEM, "eval list: out of memory");
        break;
      }
      arr = na;
    }
    err = st_decode(&v, NC_REC_EVAL, ST_DB_EVALS, &nanochat__v1__job_event__descriptor,
                    (ProtobufCMessage **)&arr[cnt]);
    if (err) break;
    cnt++;
  }
  if (!err && rc != MDB_SUCCESS && rc != MDB_NOTFOUND) err = st_mdb(s, rc, "eval list");
  mdb_cursor_close(c);
  mdb_txn_abort(t);
  if (err) {
    nc_store_free_msgs(arr, cnt);
    return err;
  }
  *items = arr;
  *n = cnt;
  return NC_OK;
}
