/* nc_gate.c — the dispatch gate (see nc_gate.h). */
#include "nc_gate.h"

#include <stdio.h>
#include <string.h>

#include "nc_err.h"
#include "nc_rpc_table.h"

void nc_gate_init(nc_gate *g, const nc_auth *auth, const nc_app *app, atomic_uint *inflight) {
  g->auth = auth;
  g->app = app;
  g->inflight = inflight;
}

int nc_gate_unpack(const nc_rpc_method *m, const uint8_t *data, size_t len, nc_pb_alloc *alloc,
                   ProtobufCMessage **msg, char *err, size_t errlen) {
  *msg = NULL;
  if (len > m->max_request_bytes) {
    snprintf(err, errlen, "request of %zu bytes is larger than the %u bytes %s accepts", len,
             (unsigned)m->max_request_bytes, m->path);
    return NC_EFULL;
  }
  ProtobufCMessage *r = protobuf_c_message_unpack(m->input, &alloc->base, len, data);
  if (!r) {
    if (alloc->exceeded) {
      snprintf(err, errlen, "request expands beyond the server's memory budget");
      return NC_EFULL;
    }
    snprintf(err, errlen, "malformed request");
    return NC_EINVAL;
  }
  int rc = nc_validate_message(m->input_rules, r, data, len, err, errlen);
  if (rc) {
    protobuf_c_message_free_unpacked(r, &alloc->base);
    return rc;
  }
  *msg = r;
  return NC_OK;
}

static int out_err(nc_gate_out *out, int err, const char *msg) {
  out->err = err;
  snprintf(out->msg, sizeof out->msg, "%s", msg);
  return err;
}

int nc_gate_admit(nc_gate *g, const nc_gate_in *in, nc_pb_alloc *alloc, nc_gate_out *out) {
  const nc_rpc_method *m = in->m;
  memset(out, 0, sizeof *out);
  /* 1. auth */
  const char *amsg;
  int rc = nc_auth_check(g->auth, m->flags, in->n_auth, in->auth, in->auth_len, &out->scope,
                         &amsg);
  if (rc) return out_err(out, rc, amsg);
  /* 2-4. size, unpack, validation */
  if (!(m->flags & NC_RPC_CLIENT_STREAMING)) {
    if (!in->has_payload) return out_err(out, NC_EINVAL, "missing request message");
    rc = nc_gate_unpack(m, in->payload, in->payload_len, alloc, &out->req, out->msg,
                        sizeof out->msg);
    if (rc) {
      out->err = rc;
      return rc;
    }
  }
  /* 5. needs_model */
  if ((m->flags & NC_RPC_NEEDS_MODEL) && g->app && g->app->model.ready &&
      !g->app->model.ready(g->app->model.arg)) {
    rc = out_err(out, NC_ESTATE, "no model loaded");
    goto fail;
  }
  /* 6. concurrency slot */
  if (m->max_concurrency) {
    atomic_uint *c = &g->inflight[m - nc_rpc_methods];
    unsigned prev = atomic_fetch_add(c, 1);
    if (prev >= m->max_concurrency) {
      atomic_fetch_sub(c, 1);
      snprintf(out->msg, sizeof out->msg, "%s: %u calls already running (the limit)", m->path,
               (unsigned)m->max_concurrency);
      out->err = rc = NC_EBUSY;
      goto fail;
    }
    out->slot_held = true;
  }
  /* 7. deadline */
  if (in->deadline_ms != INT64_MAX && in->deadline_ms <= in->now_ms) {
    if (out->slot_held) nc_gate_release(g, m);
    out->slot_held = false;
    rc = out_err(out, NC_ETIMEDOUT, "deadline exceeded before the call started");
    goto fail;
  }
  return NC_OK;
fail:
  if (out->req) {
    protobuf_c_message_free_unpacked(out->req, &alloc->base);
    out->req = NULL;
  }
  return rc;
}

void nc_gate_release(nc_gate *g, const nc_rpc_method *m) {
  if (m->max_concurrency) atomic_fetch_sub(&g->inflight[m - nc_rpc_methods], 1);
}
