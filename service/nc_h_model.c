/* nc_h_model.c — Model.Status: what is served, from the engine's hook (nc_app.model). */
#include <string.h>

#include "nanochat/v1/model.pb-c.h"
#include "nc_call.h"
#include "nc_err.h"

int nc_h_model_status(nc_call *c, const ProtobufCMessage *req) {
  (void)req;
  nc_app *app = nc_call_app(c);
  nc_model_info mi;
  memset(&mi, 0, sizeof mi);
  if (app->model.info) app->model.info(app->model.arg, &mi);
  Nanochat__V1__ModelStatus st = NANOCHAT__V1__MODEL_STATUS__INIT;
  Nanochat__V1__ModelConfig cfg = NANOCHAT__V1__MODEL_CONFIG__INIT;
  st.has_loaded = true;
  st.loaded = mi.loaded;
  st.has_slots_total = st.has_slots_in_use = st.has_queue_depth = true;
  st.slots_total = mi.slots_total;
  st.slots_in_use = mi.slots_in_use;
  st.queue_depth = mi.queue_depth;
  if (mi.loaded) {
    st.has_phase = true;
    st.phase = (Nanochat__V1__Phase)mi.phase;
    st.model_tag = mi.model_tag;
    st.has_step = true;
    st.step = mi.step;
    st.device = mi.device;
    cfg.has_sequence_len = cfg.has_vocab_size = cfg.has_n_layer = true;
    cfg.has_n_head = cfg.has_n_kv_head = cfg.has_n_embd = true;
    cfg.sequence_len = mi.sequence_len;
    cfg.vocab_size = mi.vocab_size;
    cfg.n_layer = mi.n_layer;
    cfg.n_head = mi.n_head;
    cfg.n_kv_head = mi.n_kv_head;
    cfg.n_embd = mi.n_embd;
    cfg.window_pattern = mi.window_pattern;
    st.config = &cfg;
    st.has_parameters = st.has_memory_bytes = st.has_loaded_ms = true;
    st.parameters = mi.parameters;
    st.memory_bytes = mi.memory_bytes;
    st.loaded_ms = mi.loaded_ms;
    st.sha256 = mi.sha256;
  }
  return nc_call_reply(c, &st.base);
}
