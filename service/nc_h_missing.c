/* nc_h_missing.c — the methods whose capability has not landed yet. Each answers UNIMPLEMENTED
 * with a message naming what is missing; nothing here pretends to work. Rows move out of this
 * file as their capability lands (training jobs, evaluations); the served-model methods moved to
 * nc_h_chat.c, nc_h_model.c, nc_h_ckpt_save.c and nc_h_eval_loss.c with the engine. */
#include "nc_call.h"
#include "nc_err.h"

#define MISSING(fn, what)                                              \
  int fn(nc_call *c, const ProtobufCMessage *req) {                    \
    (void)req;                                                         \
    return nc_call_finish(c, NC_ENOTSUP, "%s", what);                  \
  }

MISSING(nc_h_train_sft, "Train.Sft: supervised fine-tuning jobs are not built yet")
MISSING(nc_h_train_rl, "Train.Rl: reinforcement-learning jobs are not built yet")
MISSING(nc_h_eval_core, "Eval.Core: the CORE evaluation is not built yet")
MISSING(nc_h_eval_chat, "Eval.Chat: chat evaluations are not built yet")
