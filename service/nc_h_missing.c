/* nc_h_missing.c — the methods whose capability has not landed yet. Each answers UNIMPLEMENTED
 * with a message naming what is missing; nothing here pretends to work. Rows move out of this
 * file as their capability lands (the inference engine, training jobs, evaluations). */
#include "nc_call.h"
#include "nc_err.h"

#define MISSING(fn, what)                                              \
  int fn(nc_call *c, const ProtobufCMessage *req) {                    \
    (void)req;                                                         \
    return nc_call_finish(c, NC_ENOTSUP, "%s", what);                  \
  }

MISSING(nc_h_chat_complete, "Chat.Complete: the inference engine is not built into this server yet")
MISSING(nc_h_chat_stream, "Chat.Stream: the inference engine is not built into this server yet")
MISSING(nc_h_model_load, "Model.Load: the inference engine is not built into this server yet")
MISSING(nc_h_model_sample, "Model.Sample: the inference engine is not built into this server yet")
MISSING(nc_h_model_sample_stream, "Model.SampleStream: the inference engine is not built into this server yet")
MISSING(nc_h_model_unload, "Model.Unload: the inference engine is not built into this server yet")
MISSING(nc_h_checkpoint_save, "Checkpoint.Save: saving the served model needs the inference engine, not built yet")
MISSING(nc_h_train_sft, "Train.Sft: supervised fine-tuning jobs are not built yet")
MISSING(nc_h_train_rl, "Train.Rl: reinforcement-learning jobs are not built yet")
MISSING(nc_h_eval_core, "Eval.Core: the CORE evaluation is not built yet")
MISSING(nc_h_eval_loss, "Eval.Loss: bits-per-byte evaluation through the server needs the inference engine, not built yet")
MISSING(nc_h_eval_chat, "Eval.Chat: chat evaluations are not built yet")
