/* nc_serving_int.h — INTERNAL to nc_serving.c and nc_serving_load.c: the holder and bundle
 * structures. Handlers use nc_serving.h. */
#ifndef NC_SERVING_INT_H
#define NC_SERVING_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "nc_serving.h"
#include "nc_tokref.h"

struct nc_served {
  atomic_int refs;
  nc_serving *holder;
  nc_model *model;
  nc_engine *engine;
  nc_tokref *tokref;                  /* keeps the tokenizer alive for the engine */
  nc_special_ids sp;
  nc_served_id id;
  char *meta;                         /* owned copy behind id.meta_json */
  nc_model_config cfg;
  uint64_t parameters;
  uint64_t memory_bytes;
  pthread_mutex_t eval_mu;
  nc_serving_task free_task;          /* the deferred free */
};

struct nc_serving {
  nc_serving_opts o;
  char *data_dir;
  pthread_mutex_t mu;                 /* current, queue, live, stop */
  pthread_cond_t cv;                  /* queue non-empty / stop */
  pthread_cond_t idle_cv;             /* live reached 0 */
  nc_served *current;
  nc_serving_task *head, *tail;
  int live;                           /* bundles created and not yet freed */
  bool stop;
  pthread_t thread;
};

/* Builds a bundle (refs = 1) for a resolved spec; NC_OK or an error with msg. */
int nc_serving_build(nc_serving *s, int phase, const char *tag, int64_t step, nc_served **out,
                     char *msg, size_t msglen);
/* Frees a bundle now (service thread only, or a bundle that was never published). */
void nc_served_destroy(nc_served *b);

#endif /* NC_SERVING_INT_H */
