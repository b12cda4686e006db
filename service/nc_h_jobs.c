/* nc_h_jobs.c — Train.Status (server-streaming job events), Train.Cancel, Train.TestJob.
 *
 * Train.Status with a job id: SNAPSHOT first (the job as it is now), then the stored events
 * with seq >= from_seq, then — with follow — live events until the job's final STATE event.
 * The stream subscribes to the job manager BEFORE reading the snapshot, so nothing slips
 * between; notifications only post a wake-up to a CQ thread (nc_call_wake), where the
 * next batch is read from the store and sent one message at a time (one send in flight:
 * backpressure; memory stays bounded however slow the client is).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nanochat/v1/train.pb-c.h"
#include "nc_call.h"
#include "nc_corpus.h"
#include "nc_err.h"
#include "nc_jobs.h"
#include "nc_store.h"
#include "nc_tokref.h"
#include "nc_train_req.h"

#define BATCH 64

typedef struct status_stream {
  pthread_mutex_t mu;
  nc_jobs *jobs;
  nc_store *store;
  nc_jobs_sub *sub;
  char job_id[NC_JOB_ID_LEN + 1];
  bool follow;
  uint64_t cursor;             /* next seq to send */
  bool ended;                  /* the job reached a final state (its last event is stored) */
  uint64_t end_seq;
  Nanochat__V1__JobEvent **batch; /* events read but not yet sent */
  size_t n_batch, next;
  bool sending, done;
  /* listing mode */
  Nanochat__V1__JobInfo **jobs_list;
  size_t n_jobs, next_job;
} status_stream;

static void stream_free(void *p) {
  status_stream *s = p;
  if (s->batch) nc_store_free_msgs(s->batch, s->n_batch);
  if (s->jobs_list) nc_store_free_msgs(s->jobs_list, s->n_jobs);
  pthread_mutex_destroy(&s->mu);
  free(s);
}


/* The SNAPSHOT event of job j (borrows j). */
static void snapshot_event(Nanochat__V1__JobEvent *ev, Nanochat__V1__JobInfo *j) {
  Nanochat__V1__JobEvent init = NANOCHAT__V1__JOB_EVENT__INIT;
  *ev = init;
  ev->job_id = j->job_id;
  ev->has_seq = true;
  ev->seq = j->last_seq;
  ev->has_time_ms = true;
  ev->time_ms = nc_now_unix_ms();
  ev->has_kind = true;
  ev->kind = NANOCHAT__V1__EVENT_KIND__EVENT_SNAPSHOT;
  ev->job = j;
  ev->has_state = j->has_state;
  ev->state = j->state;
}

/* Ends the stream: unsubscribes (never from a notification callback: we run on a CQ thread
 * or the handler's thread) and finishes. */
static void stream_end(nc_call *c, status_stream *s, int err, const char *msg) {
  pthread_mutex_lock(&s->mu);
  bool was = s->done;
  s->done = true;
  nc_jobs_sub *sub = s->sub;
  s->sub = NULL;
  pthread_mutex_unlock(&s->mu);
  if (was) return;
  if (sub) nc_jobs_unsubscribe(s->jobs, sub);
  nc_call_finish(c, err, "%s", msg ? msg : "");
}

static void pump(nc_call *c, void *arg);

static void sent(nc_call *c, bool ok, void *arg) {
  status_stream *s = arg;
  if (!ok) {
    stream_end(c, s, NC_ECANCELED, "cancelled");
    return;
  }
  pthread_mutex_lock(&s->mu);
  s->sending = false;
  pthread_mutex_unlock(&s->mu);
  pump(c, s);
}

/* Sends the next message, reading the next batch from the store when needed. Runs on
 * a CQ thread (wake-ups, send completions) or the handler's thread (the start); s->mu
 * serialises them. */
static void pump(nc_call *c, void *arg) {
  status_stream *s = arg;
  pthread_mutex_lock(&s->mu);
  if (s->done || s->sending) {
    pthread_mutex_unlock(&s->mu);
    return;
  }
  if (s->jobs_list) { /* listing: one SNAPSHOT per job, then the end */
    if (s->next_job >= s->n_jobs) {
      pthread_mutex_unlock(&s->mu);
      stream_end(c, s, NC_OK, NULL);
      return;
    }
    Nanochat__V1__JobInfo *j = s->jobs_list[s->next_job++];
    Nanochat__V1__JobEvent ev;
    snapshot_event(&ev, j);
    s->sending = true;
    pthread_mutex_unlock(&s->mu);
    int rc = nc_call_send(c, &ev.base, sent, s);
    if (rc) stream_end(c, s, rc, "stream ended");
    return;
  }
  if (s->next >= s->n_batch) {
    if (s->batch) nc_store_free_msgs(s->batch, s->n_batch);
    s->batch = NULL;
    s->n_batch = s->next = 0;
    int rc = nc_store_event_list(s->store, s->job_id, s->cursor, BATCH, &s->batch, &s->n_batch);
    if (rc) {
      pthread_mutex_unlock(&s->mu);
      stream_end(c, s, rc, "reading job events failed");
      return;
    }
    if (s->n_batch == 0) {
      bool finished = !s->follow || (s->ended && s->cursor > s->end_seq);
      pthread_mutex_unlock(&s->mu);
      if (finished) stream_end(c, s, NC_OK, NULL);
      return; /* wait for the next notification */
    }
  }
  Nanochat__V1__JobEvent *ev = s->batch[s->next++];
  s->cursor = ev->seq + 1;
  s->sending = true;
  /* a replay (no follow) sends a batch buffered but for its last event (nc_call_send_more):
   * a few TCP writes instead of one per event; followers get every event as it is sent */
  bool more = !s->follow && s->next < s->n_batch;
  pthread_mutex_unlock(&s->mu);
  int rc = more ? nc_call_send_more(c, &ev->base, sent, s) : nc_call_send(c, &ev->base, sent, s);
  if (rc) stream_end(c, s, rc, "stream ended");
}

/* Job-manager notification (manager thread, its locks held): just post a wake-up. */
static void notified(void *arg, const char *job_id, uint64_t last_seq, bool ended) {
  (void)job_id;
  nc_call *c = arg;
  status_stream *s = nc_call_data(c);
  pthread_mutex_lock(&s->mu);
  if (ended) {
    s->ended = true;
    s->end_seq = last_seq;
  }
  pthread_mutex_unlock(&s->mu);
  nc_call_wake(c, pump, s);
}

static void cancelled(nc_call *c, void *arg) { stream_end(c, arg, NC_ECANCELED, "cancelled"); }

int nc_h_train_status(nc_call *c, const ProtobufCMessage *req) {
  const Nanochat__V1__TrainStatusRequest *r = (const void *)req;
  nc_app *app = nc_call_app(c);
  if (!app->store || !app->jobs) return nc_call_finish(c, NC_ENOTREADY, "job manager not running");
  status_stream *s = calloc(1, sizeof *s);
  if (!s) return NC_ENOMEM;
  pthread_mutex_init(&s->mu, NULL);
  s->jobs = app->jobs;
  s->store = app->store;
  nc_call_set_data(c, s, stream_free);
  if (!r->job_id || !r->job_id[0]) {
    int rc = nc_store_job_list(app->store, r->has_limit ? r->limit : 100, &s->jobs_list, &s->n_jobs);
    if (rc) return nc_call_finish(c, rc, "listing jobs failed");
    if (!s->jobs_list) {
      s->jobs_list = malloc(sizeof *s->jobs_list); /* listing mode marker for an empty list */
      if (!s->jobs_list) return NC_ENOMEM;
      s->n_jobs = 0;
    }
  } else {
    if (!nc_store_job_id_valid(r->job_id, strlen(r->job_id)))
      return nc_call_finish(c, NC_EINVAL, "job_id: must be 16 lowercase hex characters");
    snprintf(s->job_id, sizeof s->job_id, "%s", r->job_id);
    s->follow = r->has_follow ? r->follow : true;
    int rc = s->follow ? nc_jobs_subscribe(app->jobs, s->job_id, notified, c, &s->sub) : NC_OK;
    if (rc) return nc_call_finish(c, rc, "subscribing failed");
    Nanochat__V1__JobInfo *j = NULL;
    rc = nc_store_job_get(app->store, s->job_id, &j);
    if (rc) {
      stream_end(c, s, rc, rc == NC_ENOTFOUND ? "job_id: no such job" : "reading the job failed");
      return NC_OK;
    }
    uint64_t from = r->has_from_seq ? r->from_seq : 1;
    s->cursor = from == 0 ? j->last_seq + 1 : from;
    if (nc_job_state_final(j->state)) {
      s->ended = true;
      s->end_seq = j->last_seq;
    }
    Nanochat__V1__JobEvent ev;
    snapshot_event(&ev, j);
    pthread_mutex_lock(&s->mu);
    s->sending = true;
    pthread_mutex_unlock(&s->mu);
    rc = nc_call_send(c, &ev.base, sent, s);
    nc_store_free_msg(j);
    if (rc) {
      stream_end(c, s, rc, "stream ended");
      return NC_OK;
    }
    if (nc_call_on_cancel(c, cancelled, s) == NC_ECANCELED) stream_end(c, s, NC_ECANCELED, "cancelled");
    return NC_OK;
  }
  if (nc_call_on_cancel(c, cancelled, s) == NC_ECANCELED) {
    stream_end(c, s, NC_ECANCELED, "cancelled");
    return NC_OK;
  }
  pump(c, s);
  return NC_OK;
}

int nc_h_train_cancel(nc_call *c, const ProtobufCMessage *req) {
  const Nanochat__V1__TrainCancelRequest *r = (const void *)req;
  nc_app *app = nc_call_app(c);
  if (!app->jobs) return nc_call_finish(c, NC_ENOTREADY, "job manager not running");
  if (!nc_store_job_id_valid(r->job_id, strlen(r->job_id)))
    return nc_call_finish(c, NC_EINVAL, "job_id: must be 16 lowercase hex characters");
  Nanochat__V1__JobInfo *j = NULL;
  int rc = nc_jobs_cancel(app->jobs, r->job_id, &j);
  if (rc == NC_ENOTFOUND) return nc_call_finish(c, rc, "job_id: no such job");
  if (rc) return nc_call_finish(c, rc, "%s", nc_store_last_error());
  rc = nc_call_reply(c, &j->base);
  nc_store_free_msg(j);
  return rc;
}

/* Submits a job of `kind` with the serialized request; replies with a JobRef. */
int nc_submit_job(nc_call *c, int kind, const ProtobufCMessage *req) {
  nc_app *app = nc_call_app(c);
  if (!app->jobs) return nc_call_finish(c, NC_ENOTREADY, "job manager not running");
  size_t n = protobuf_c_message_get_packed_size(req);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) return NC_ENOMEM;
  protobuf_c_message_pack(req, buf);
  char id[NC_JOB_ID_LEN + 1];
  uint32_t pos = 0;
  int rc = nc_jobs_submit(app->jobs, (Nanochat__V1__JobKind)kind, buf, n, id, &pos);
  free(buf);
  if (rc == NC_ENOTSUP) return nc_call_finish(c, rc, "this job kind is not available on this server");
  if (rc) return nc_call_finish(c, rc, "%s", nc_store_last_error());
  Nanochat__V1__JobRef ref = NANOCHAT__V1__JOB_REF__INIT;
  ref.job_id = id;
  ref.has_state = true;
  ref.state = NANOCHAT__V1__JOB_STATE__JOB_QUEUED;
  ref.has_queue_position = true;
  ref.queue_position = pos;
  return nc_call_reply(c, &ref.base);
}

int nc_h_train_test_job(nc_call *c, const ProtobufCMessage *req) {
  if (!nc_call_app(c)->cfg->enable_test_jobs)
    return nc_call_finish(c, NC_ENOTSUP, "Train.TestJob: test jobs are off (start nanochatd with --enable-test-jobs)");
  return nc_submit_job(c, NANOCHAT__V1__JOB_KIND__JOB_TEST, req);
}

/* Train.Tokenizer: the corpus must exist before a job is queued (FAILED_PRECONDITION naming the
 * directory), so a typo'd dataset fails at once instead of as a failed job. */
int nc_h_train_tokenizer(nc_call *c, const ProtobufCMessage *req) {
  const Nanochat__V1__TrainTokenizerRequest *r = (const void *)req;
  nc_app *app = nc_call_app(c);
  char dir[NC_CONFIG_STR + 64];
  const char *name = r->dataset ? r->dataset->name : NULL;
  if (nc_corpus_resolve(app->cfg->data_dir, name, dir, sizeof dir) != NC_OK)
    return nc_call_finish(c, NC_EINVAL, "dataset.name: not a dataset name");
  nc_corpus_opts o = {.dir = dir, .split = "train", .max_files = 100000};
  nc_corpus *corpus;
  char err[512];
  int rc = nc_corpus_open(&o, &corpus, err, sizeof err);
  if (rc != NC_OK)
    return nc_call_finish(c, NC_ESTATE, "dataset: no training text at %s%s", dir,
                          name && name[0] ? "" : " (build the default corpus with scripts/build-corpus)");
  nc_corpus_close(corpus);
  return nc_submit_job(c, NANOCHAT__V1__JOB_KIND__JOB_TOKENIZER, req);
}

/* Train.Base (issue 6): a tokenizer must be served and the request must resolve to a valid
 * plan — shapes, total_batch_size divisible by device_batch_size x max_seq_len, a horizon of
 * at least one step, a corpus with a train split, memory that fits, the resume checkpoint's
 * files — before a job is queued (INVALID_ARGUMENT / FAILED_PRECONDITION /
 * RESOURCE_EXHAUSTED naming the field); the nanochat-train job does the rest
 * (service/nc_train_req.h, core/nc_base_train.h). */
int nc_h_train_base(nc_call *c, const ProtobufCMessage *req) {
  const Nanochat__V1__TrainBaseRequest *r = (const void *)req;
  nc_app *app = nc_call_app(c);
  nc_tokref *tr = app->tokenizers ? nc_tokref_get(app->tokenizers) : NULL;
  if (!tr)
    return nc_call_finish(c, NC_ESTATE, "no tokenizer loaded: train one first (Train.Tokenizer) or start nanochatd "
                                        "with --tokenizer");
  char msg[768];
  int rc = nc_train_base_precheck(app->cfg->data_dir, nc_tokref_tok(tr), r, NULL, msg, sizeof msg);
  nc_tokref_put(tr);
  if (rc) return nc_call_finish(c, rc, "%s", msg);
  return nc_submit_job(c, NANOCHAT__V1__JOB_KIND__JOB_BASE, req);
}
