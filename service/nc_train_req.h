/* nc_train_req.h — TrainBaseRequest -> core's nc_base_opts, and the checks Train.Base runs
 * before a job is queued (shared by the handler in nc_h_jobs.c and the nanochat-train job).
 *
 * Layout of checkpoints under nanochatd's data dir (checkpoint.proto's CheckpointInfo.path):
 *     <data-dir>/checkpoints/<phase>/<tag>/{model,optim,meta}_<step>...   phase base|sft|rl
 * (nanochat's own layout is <base>/base_checkpoints/<tag>/; the files are the same.)
 *
 * Thread-safe; no global state. Errors: NC_OK or a negative NC_E* code with a message that
 * names the request field.
 */
#ifndef NC_TRAIN_REQ_H
#define NC_TRAIN_REQ_H

#include <stddef.h>

#include "nanochat/v1/train.pb-c.h"
#include "nc_tokenizer.h"
#include "nc_train.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NC_TRAIN_TAG_MAX 64

/* Copies every option of `r` (protobuf-c's proto2 defaults apply to unset fields) into *o.
 * Checks what nc_base_plan_make does not: optimizer ("muon" | "adamw" | "" = muon) ->
 * NC_EINVAL "optimizer: ..."; device: "", "auto" and "cpu" train on the CPU, anything else
 * (e.g. "cuda") is NC_ESTATE "device: ..." (this server has no GPU training backend). */
int nc_train_base_opts(const Nanochat__V1__TrainBaseRequest *r, nc_base_opts *o, char *msg,
                       size_t msglen);

/* The checkpoint tag: model_tag when set, else "d<depth>" (nanochat's rule). */
void nc_train_base_tag(const Nanochat__V1__TrainBaseRequest *r, char out[NC_TRAIN_TAG_MAX + 1]);

/* <data_dir>/checkpoints/<phase>/<tag> into out[cap]; with create, makes the missing
 * directories (0755). NC_OK, NC_EINVAL (bad phase/tag, too long), NC_EIO (mkdir). */
int nc_train_ckpt_dir(const char *data_dir, const char *phase, const char *tag, int create, char *out,
                      size_t cap);

/* Resolves the request's dataset (nc_corpus_resolve) into dir[cap] and checks that its
 * train split exists: NC_EINVAL "dataset.name: ..." or NC_ESTATE "dataset: no training text
 * at DIR ...". */
int nc_train_corpus_check(const char *data_dir, const Nanochat__V1__DatasetRef *ds, char *dir, size_t cap,
                          char *msg, size_t msglen);

/* Everything Train.Base can check before queueing, for the tokenizer `tok`: the options
 * (nc_train_base_opts), the plan (nc_base_plan_make: shapes, divisibility of the batch, the
 * horizon), the corpus, the training memory estimate against this machine's RAM (NC_EFULL
 * "...: needs about N GiB"), and for resume_from_step >= 0 that the checkpoint's files exist
 * (NC_ESTATE "resume_from_step: ..."). plan (may be NULL) receives the plan. */
int nc_train_base_precheck(const char *data_dir, const nc_tokenizer *tok,
                           const Nanochat__V1__TrainBaseRequest *r, nc_base_plan *plan, char *msg,
                           size_t msglen);

#ifdef __cplusplus
}
#endif
#endif /* NC_TRAIN_REQ_H */
