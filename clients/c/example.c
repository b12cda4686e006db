/* example.c — C SDK example: health, model status, one streamed chat reply (or its typed
 * error while the server has no engine), and the checkpoint count.
 *
 *   build/bin/nanochat-c-example 127.0.0.1:50051 ["prompt"]     (token from $NANOCHAT_TOKEN)
 */
#include <stdio.h>
#include <stdlib.h>

#include "nc_client.h"

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
    printf("model: %s\n", m->loaded ? m->model_tag : "none loaded");
    protobuf_c_message_free_unpacked(&m->base, NULL);
  } else {
    printf("model: %s: %s\n", nc_client_code_name(err.code), err.message);
    status = 1;
  }

  nc_client_stream *s = NULL;
  const char *prompt = argc > 2 ? argv[2] : "Why is the sky blue?";
  if (nc_client_chat_open(cl, NULL, prompt, NULL, &s, &err) == NCC_OK) {
    nc_client_chat_event ev = {0};
    const Nanochat__V1__ChatDelta *d;
    const Nanochat__V1__ChatDone *done;
    int rc;
    printf("chat: ");
    while ((rc = nc_client_chat_next(s, &ev, &d, &done, &err)) == NCC_OK && (d || done)) {
      if (d && d->text) fputs(d->text, stdout);
      if (done) printf("\nchat: session %s\n", done->session_id ? done->session_id : "");
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
