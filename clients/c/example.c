/* example.c — C SDK example: health, model status, one streamed chat reply of at most 32
 * tokens (without a loaded model: its typed FAILED_PRECONDITION error), and the checkpoint count.
 *
 *   build/bin/nanochat-c-example 127.0.0.1:50051 ["prompt"]     (token from $NANOCHAT_TOKEN)
 */
#include <stdio.h>
#include <stdlib.h>

#include "nc_client.h"

static const char *enum_name(const ProtobufCEnumDescriptor *d, int v) {
  const ProtobufCEnumValue *e = protobuf_c_enum_descriptor_get_value(d, v);
  return e ? e->name : "?";
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s HOST:PORT [PROMPT]\n", argv[0]);
    return 2;
  }
  nc_client_options o = {.address = argv[1], .token = getenv("NANOCHAT_TOKEN")};
  nc_client *cl = NULL;
  nc_client_error err;
  if (nc_client_new(&o, &cl, &err) != NCC_OK) {
    fprintf(stderr, "error: %s\n", err.message);
    return 1;
  }
  int status = 0;
  Nanochat__V1__HealthCheckRequest hq = NANOCHAT__V1__HEALTH_CHECK_REQUEST__INIT;
  Nanochat__V1__HealthCheckResponse *h = NULL;
  if (ncc_health_check(cl, &hq, &h, 0, &err) != NCC_OK) {
    fprintf(stderr, "health: %s: %s\n", nc_client_code_name(err.code), err.message);
    nc_client_free(cl);
    return 1;
  }
  printf("health: %s (version %s)\n", h->status, h->version);
  protobuf_c_message_free_unpacked(&h->base, NULL);

  Nanochat__V1__ModelStatusRequest mq = NANOCHAT__V1__MODEL_STATUS_REQUEST__INIT;
  Nanochat__V1__ModelStatus *m = NULL;
  if (ncc_model_status(cl, &mq, &m, 0, &err) == NCC_OK) {
    if (m->loaded && m->config)
      printf("model: %s %s step %lld (%u layers, context %u)\n",
             enum_name(&nanochat__v1__phase__descriptor, m->phase), m->model_tag,
             (long long)m->step, m->config->n_layer, m->config->sequence_len);
    else
      printf("model: none loaded\n");
    protobuf_c_message_free_unpacked(&m->base, NULL);
  } else {
    printf("model: %s: %s\n", nc_client_code_name(err.code), err.message);
    status = 1;
  }

  nc_client_stream *s = NULL;
  const char *prompt = argc > 2 ? argv[2] : "Why is the sky blue?";
  Nanochat__V1__ChatRequest opts = NANOCHAT__V1__CHAT_REQUEST__INIT;
  opts.has_max_tokens = 1;
  opts.max_tokens = 32;
  if (nc_client_chat_open(cl, NULL, prompt, &opts, &s, &err) == NCC_OK) {
    nc_client_chat_event ev = {0};
    const Nanochat__V1__ChatDelta *d;
    const Nanochat__V1__ChatDone *done;
    int rc;
    printf("chat: ");
    while ((rc = nc_client_chat_next(s, &ev, &d, &done, &err)) == NCC_OK && (d || done)) {
      if (d && d->text) fputs(d->text, stdout);
      if (done)
        printf("\nchat: done: %u tokens, %s, session %s\n",
               done->usage ? done->usage->completion_tokens : 0,
               enum_name(&nanochat__v1__finish_reason__descriptor, done->finish_reason),
               done->session_id ? done->session_id : "");
      fflush(stdout);
    }
    nc_client_chat_event_clear(&ev);
    if (rc != NCC_OK) printf("not available: %s: %s\n", nc_client_code_name(rc), err.message);
    nc_client_stream_free(s);
  }

  Nanochat__V1__CheckpointListRequest cq = NANOCHAT__V1__CHECKPOINT_LIST_REQUEST__INIT;
  Nanochat__V1__CheckpointListResponse *ck = NULL;
  if (ncc_checkpoint_list(cl, &cq, &ck, 0, &err) == NCC_OK) {
    printf("checkpoints: %zu\n", ck->n_checkpoints);
    protobuf_c_message_free_unpacked(&ck->base, NULL);
  } else {
    printf("checkpoints: %s: %s\n", nc_client_code_name(err.code), err.message);
    status = 1;
  }
  nc_client_free(cl);
  return status;
}
