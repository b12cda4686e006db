/* nc_optim_internal.h — the nc_optim struct, shared by nc_optim.c (groups, steps) and
 * nc_optim_state.c (state views, JSON). Internal to core/. */
#ifndef NC_OPTIM_INTERNAL_H
#define NC_OPTIM_INTERNAL_H

#include <stddef.h>

#include "nc_err.h"
#include "nc_optim.h"

/* One matrix of a Muon group: the unit of parallel work. */
typedef struct nc_muon_item {
  int group, k;   /* group index, position in the group */
  double cost;    /* flops estimate, for largest-first scheduling */
} nc_muon_item;

struct nc_optim {
  nc_optim_type type;
  nc_param *params;      /* borrowed */
  int n_params;
  nc_optim_group *groups;
  int n_groups;
  int *group_params;     /* storage behind groups[g].params */
  int64_t *state_off;    /* per group: offset of its state in `state` */
  int64_t step;
  double grad_clip;
  int reference;
  float *state;          /* ONE allocation: all optimizer state */
  size_t state_floats;
  nc_param *views;       /* named state views (nc_optim_state) */
  int n_views;
  char *view_names;
  nc_muon_item *items;
  int n_items;
  float *work;           /* per-thread Polar Express scratch */
  size_t work_per_thread;/* floats, multiple of 16 */
  int work_threads;
};

/* Writes a printf-style message to msg (may be NULL) and returns NC_EINVAL. */
#define nc_optim_fail(msg, len, ...) nc_errf(NC_EINVAL, (msg), (len), __VA_ARGS__)

/* Builds o->views over o->state (called once by nc_optim_create). NC_OK / NC_ENOMEM. */
int nc_optim_build_views(nc_optim *o);

/* Length of a Muon group's factored second moment per matrix: rows if rows >= cols, else cols. */
static inline int64_t nc_muon_red_len(const nc_optim_group *g) {
  return g->rows >= g->cols ? g->rows : g->cols;
}

#endif /* NC_OPTIM_INTERNAL_H */
