/* nc_client_helpers.c — the idiomatic layer of the C SDK over nc_client.c: chat from a prompt
 * (Chat.Stream iterator) and job handles (start, status, progress, cancel, wait). */
#include "nc_client.h"

#include <stdio.h>
#include <string.h>

static int fail(nc_client_error *err, int code, const char *msg) {
  if (err) {
    err->code = code;
    snprintf(err->message, sizeof err->message, "%s", msg);
  }
  return code;
}

int nc_client_chat_open(nc_client *cl, const char *system, const char *prompt,
                        const Nanochat__V1__ChatRequest *opts, nc_client_stream **out,
                        nc_client_error *err) {
  if (!prompt) return fail(err, NCC_INVALID_ARGUMENT, "prompt is NULL");
  Nanochat__V1__ChatRequest rq = NANOCHAT__V1__CHAT_REQUEST__INIT;
  if (opts) rq = *opts; /* shallow: every pointer stays borrowed */
  Nanochat__V1__ChatMessage sys = NANOCHAT__V1__CHAT_MESSAGE__INIT;
  Nanochat__V1__ChatMessage user = NANOCHAT__V1__CHAT_MESSAGE__INIT;
  Nanochat__V1__ChatMessage *msgs[2];
  size_t n = 0;
  if (system && system[0]) {
    sys.has_role = 1;
    sys.role = NANOCHAT__V1__ROLE__ROLE_SYSTEM;
    sys.content = (char *)system;
    msgs[n++] = &sys;
  }
  user.has_role = 1;
  user.role = NANOCHAT__V1__ROLE__ROLE_USER;
  user.content = (char *)prompt;
  msgs[n++] = &user;
  rq.n_messages = n;
  rq.messages = msgs;
  return ncc_chat_stream(cl, &rq, 0, out, err);
}

void nc_client_chat_event_clear(nc_client_chat_event *state) {
  if (state && state->ev) {
    protobuf_c_message_free_unpacked(&state->ev->base, NULL);
    state->ev = NULL;
  }
}

int nc_client_chat_next(nc_client_stream *s, nc_client_chat_event *state,
                        const Nanochat__V1__ChatDelta **delta, const Nanochat__V1__ChatDone **done,
                        nc_client_error *err) {
  if (!state || !delta || !done) return fail(err, NCC_INVALID_ARGUMENT, "state/delta/done NULL");
  *delta = NULL;
  *done = NULL;
  nc_client_chat_event_clear(state);
  ProtobufCMessage *m = NULL;
  int rc = nc_client_stream_next(s, &m, err);
  if (rc != NCC_OK || !m) return rc;
  state->ev = (Nanochat__V1__ChatStreamResponse *)m;
  if (state->ev->event_case == NANOCHAT__V1__CHAT_STREAM_RESPONSE__EVENT_DELTA)
    *delta = state->ev->delta;
  else if (state->ev->event_case == NANOCHAT__V1__CHAT_STREAM_RESPONSE__EVENT_DONE)
    *done = state->ev->done;
  return NCC_OK;
}

int nc_client_job_state_terminal(Nanochat__V1__JobState s) {
  return s == NANOCHAT__V1__JOB_STATE__JOB_SUCCEEDED || s == NANOCHAT__V1__JOB_STATE__JOB_FAILED ||
         s == NANOCHAT__V1__JOB_STATE__JOB_CANCELLED || s == NANOCHAT__V1__JOB_STATE__JOB_INTERRUPTED;
}

int nc_client_job_start(nc_client *cl, const char *method, const ProtobufCMessage *req,
                        nc_client_job *job, nc_client_error *err) {
  if (!job) return fail(err, NCC_INVALID_ARGUMENT, "job is NULL");
  memset(job, 0, sizeof *job);
  ProtobufCMessage *m = NULL;
  int rc = nc_client_unary(cl, method, req, &nanochat__v1__job_ref__descriptor, &m, 0, err);
  if (rc != NCC_OK) return rc;
  Nanochat__V1__JobRef *ref = (Nanochat__V1__JobRef *)m;
  if (!ref->job_id || strlen(ref->job_id) >= sizeof job->id) {
    protobuf_c_message_free_unpacked(m, NULL);
    return fail(err, NCC_INTERNAL, "the server returned no usable job id");
  }
  snprintf(job->id, sizeof job->id, "%s", ref->job_id);
  job->state = ref->state;
  job->queue_position = ref->queue_position;
  protobuf_c_message_free_unpacked(m, NULL);
  return NCC_OK;
}

int nc_client_job_progress(nc_client *cl, const char *job_id, uint64_t from_seq, int follow,
                           int64_t timeout_ms, nc_client_stream **out, nc_client_error *err) {
  if (!job_id) return fail(err, NCC_INVALID_ARGUMENT, "job_id is NULL");
  Nanochat__V1__TrainStatusRequest rq = NANOCHAT__V1__TRAIN_STATUS_REQUEST__INIT;
  rq.job_id = (char *)job_id;
  rq.has_follow = 1;
  rq.follow = follow ? 1 : 0;
  rq.has_from_seq = 1;
  rq.from_seq = from_seq;
  return ncc_train_status(cl, &rq, timeout_ms, out, err);
}

int nc_client_job_status(nc_client *cl, const char *job_id, Nanochat__V1__JobInfo **info,
                         nc_client_error *err) {
  if (!info) return fail(err, NCC_INVALID_ARGUMENT, "info is NULL");
  *info = NULL;
  nc_client_stream *s = NULL;
  int rc = nc_client_job_progress(cl, job_id, 0, 0, 30000, &s, err);
  if (rc != NCC_OK) return rc;
  ProtobufCMessage *m = NULL;
  rc = nc_client_stream_next(s, &m, err);
  if (rc == NCC_OK && !m) rc = fail(err, NCC_NOT_FOUND, "no snapshot for the job");
  if (rc == NCC_OK) {
    Nanochat__V1__JobEvent *ev = (Nanochat__V1__JobEvent *)m;
    if (ev->kind != NANOCHAT__V1__EVENT_KIND__EVENT_SNAPSHOT || !ev->job) {
      rc = fail(err, NCC_INTERNAL, "first event is not a snapshot");
    } else {
      *info = ev->job; /* detach the JobInfo from the event */
      ev->job = NULL;
    }
    protobuf_c_message_free_unpacked(m, NULL);
  }
  nc_client_stream_free(s);
  return rc;
}

int nc_client_job_cancel(nc_client *cl, const char *job_id, Nanochat__V1__JobInfo **info,
                         nc_client_error *err) {
  if (!job_id) return fail(err, NCC_INVALID_ARGUMENT, "job_id is NULL");
  Nanochat__V1__TrainCancelRequest rq = NANOCHAT__V1__TRAIN_CANCEL_REQUEST__INIT;
  rq.job_id = (char *)job_id;
  Nanochat__V1__JobInfo *ji = NULL;
  int rc = ncc_train_cancel(cl, &rq, &ji, 0, err);
  if (info)
    *info = ji;
  else if (ji)
    protobuf_c_message_free_unpacked(&ji->base, NULL);
  return rc;
}

int nc_client_job_wait(nc_client *cl, const char *job_id, int64_t timeout_ms,
                       Nanochat__V1__JobInfo **info, nc_client_error *err) {
  if (info) *info = NULL;
  nc_client_stream *s = NULL;
  /* snapshot only, then live events until the job ends (the stream ends with it) */
  int rc = nc_client_job_progress(cl, job_id, 0, 1, timeout_ms, &s, err);
  if (rc != NCC_OK) return rc;
  ProtobufCMessage *m = NULL;
  while ((rc = nc_client_stream_next(s, &m, err)) == NCC_OK && m)
    protobuf_c_message_free_unpacked(m, NULL);
  nc_client_stream_free(s);
  if (rc != NCC_OK) return rc;
  Nanochat__V1__JobInfo *ji = NULL;
  rc = nc_client_job_status(cl, job_id, &ji, err);
  if (rc != NCC_OK) return rc;
  if (!nc_client_job_state_terminal(ji->state)) {
    protobuf_c_message_free_unpacked(&ji->base, NULL);
    return fail(err, NCC_INTERNAL, "the job's stream ended before the job did");
  }
  if (info)
    *info = ji;
  else
    protobuf_c_message_free_unpacked(&ji->base, NULL);
  return NCC_OK;
}
