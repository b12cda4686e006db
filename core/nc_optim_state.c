/* nc_optim_state.c — the optimizer's state as named tensor views and its hyperparameters
 * as JSON, for checkpoints (nc_checkpoint.c). See nc_optim.h. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nc_err.h"
#include "nc_optim_internal.h"

#define VIEW_NAME_MAX 320 /* param name (<= 256) + the longest suffix */

static void view(nc_param *v, char *name, const nc_param *p, const char *suffix, float *data,
                 int64_t d0, int64_t d1, int ndim) {
  snprintf(name, VIEW_NAME_MAX, "%s.%s", p->name, suffix);
  memset(v, 0, sizeof *v);
  v->name = name;
  v->kind = p->kind;
  v->data = data;
  if (ndim == 0) { /* same shape as the param */
    v->ndim = p->ndim;
    memcpy(v->shape, p->shape, sizeof v->shape);
    v->numel = p->numel;
  } else {
    v->ndim = 2;
    v->shape[0] = d0;
    v->shape[1] = d1;
    v->numel = d0 * d1;
  }
}

int nc_optim_build_views(nc_optim *o) {
  int n = 2 * o->n_params; /* two state tensors per parameter for both kinds */
  o->views = calloc((size_t)n, sizeof *o->views);
  o->view_names = malloc((size_t)n * VIEW_NAME_MAX);
  if (!o->views || !o->view_names) return NC_ENOMEM;
  int v = 0;
  for (int g = 0; g < o->n_groups; g++) {
    const nc_optim_group *G = &o->groups[g];
    float *st = o->state + o->state_off[g];
    for (int k = 0; k < G->n_params; k++) {
      const nc_param *p = &o->params[G->params[k]];
      char *n0 = o->view_names + (size_t)v * VIEW_NAME_MAX, *n1 = n0 + VIEW_NAME_MAX;
      if (G->kind == NC_GROUP_ADAMW) {
        view(&o->views[v], n0, p, "exp_avg", st, 0, 0, 0);
        view(&o->views[v + 1], n1, p, "exp_avg_sq", st + p->numel, 0, 0, 0);
        st += 2 * p->numel;
      } else {
        const int64_t rc = G->rows * G->cols, red = nc_muon_red_len(G);
        float *m = o->state + o->state_off[g] + (int64_t)k * rc;
        float *s2 = o->state + o->state_off[g] + (int64_t)G->n_params * rc + (int64_t)k * red;
        view(&o->views[v], n0, p, "momentum_buffer", m, G->rows, G->cols, 2);
        if (G->rows >= G->cols) view(&o->views[v + 1], n1, p, "second_momentum_buffer", s2, G->rows, 1, 2);
        else view(&o->views[v + 1], n1, p, "second_momentum_buffer", s2, 1, G->cols, 2);
      }
      v += 2;
    }
  }
  o->n_views = v;
  return NC_OK;
}

const nc_param *nc_optim_state(const nc_optim *o, int *n) {
  if (n) *n = o->n_views;
  return o->views;
}

nc_param *nc_optim_state_mut(nc_optim *o, int *n) {
  if (n) *n = o->n_views;
  return o->views;
}

/* ------------------------------------------------------------------ JSON */

static const char *type_name(nc_optim_type t) { return t == NC_OPTIM_ADAMW ? "adamw" : "muonadamw"; }

char *nc_optim_meta_to_json(const nc_optim *o) {
  json_t *groups = json_array();
  json_t *root = json_pack("{s:s,s:I,s:f,s:o}", "type", type_name(o->type), "step",
                           (json_int_t)o->step, "grad_clip", o->grad_clip, "groups", groups);
  if (!root) return NULL;
  for (int g = 0; g < o->n_groups; g++) {
    const nc_optim_group *G = &o->groups[g];
    json_t *names = json_array();
    for (int k = 0; names && k < G->n_params; k++)
      json_array_append_new(names, json_string(o->params[G->params[k]].name));
    json_t *j;
    if (G->kind == NC_GROUP_ADAMW)
      j = json_pack("{s:s,s:s,s:f,s:f,s:f,s:f,s:f,s:f,s:o}", "label", G->label, "kind", "adamw",
                    "lr", G->lr, "initial_lr", G->initial_lr, "beta1", G->beta1, "beta2",
                    G->beta2, "eps", G->eps, "weight_decay", G->weight_decay, "params", names);
    else
      j = json_pack("{s:s,s:s,s:f,s:f,s:f,s:f,s:i,s:f,s:[I,I],s:o}", "label", G->label, "kind",
                    "muon", "lr", G->lr, "initial_lr", G->initial_lr, "momentum", G->momentum,
                    "beta2", G->beta2, "ns_steps", G->ns_steps, "weight_decay", G->weight_decay,
                    "shape", (json_int_t)G->rows, (json_int_t)G->cols, "params", names);
    if (!j || json_array_append_new(groups, j)) {
      json_decref(root);
      return NULL;
    }
  }
  char *s = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(17));
  json_decref(root);
  return s;
}

static int num(json_t *obj, const char *key, double *out) {
  json_t *v = json_object_get(obj, key);
  if (!json_is_number(v)) return -1;
  *out = json_number_value(v);
  return isfinite(*out) ? 0 : -1;
}

/* Checks one group object against G and reads its values into *out (no side effects). */
static int read_group(const nc_optim *o, const nc_optim_group *G, json_t *j, nc_optim_group *out,
                      char *msg, size_t len) {
  const char *label = json_string_value(json_object_get(j, "label"));
  const char *kind = json_string_value(json_object_get(j, "kind"));
  if (!label || strcmp(label, G->label))
    return nc_optim_fail(msg, len, "optimizer group '%s': saved label differs", G->label);
  if (!kind || strcmp(kind, G->kind == NC_GROUP_ADAMW ? "adamw" : "muon"))
    return nc_optim_fail(msg, len, "optimizer group '%s': saved kind differs", G->label);
  json_t *names = json_object_get(j, "params");
  if (!json_is_array(names) || json_array_size(names) != (size_t)G->n_params)
    return nc_optim_fail(msg, len, "optimizer group '%s': saved parameter count differs", G->label);
  for (int k = 0; k < G->n_params; k++) {
    const char *nm = json_string_value(json_array_get(names, (size_t)k));
    if (!nm || strcmp(nm, o->params[G->params[k]].name))
      return nc_optim_fail(msg, len, "optimizer group '%s': parameter %d differs", G->label, k);
  }
  *out = *G;
  int bad = num(j, "lr", &out->lr) | num(j, "initial_lr", &out->initial_lr) |
            num(j, "beta2", &out->beta2) | num(j, "weight_decay", &out->weight_decay);
  if (G->kind == NC_GROUP_ADAMW) {
    bad |= num(j, "beta1", &out->beta1) | num(j, "eps", &out->eps);
  } else {
    json_t *sh = json_object_get(j, "shape"), *ns = json_object_get(j, "ns_steps");
    if (!json_is_array(sh) || json_array_size(sh) != 2 ||
        json_integer_value(json_array_get(sh, 0)) != G->rows ||
        json_integer_value(json_array_get(sh, 1)) != G->cols)
      return nc_optim_fail(msg, len, "optimizer group '%s': saved shape differs", G->label);
    bad |= num(j, "momentum", &out->momentum) | !json_is_integer(ns);
    out->ns_steps = (int)json_integer_value(ns);
  }
  if (bad) return nc_optim_fail(msg, len, "optimizer group '%s': missing or non-finite values", G->label);
  return NC_OK;
}

int nc_optim_meta_from_json(nc_optim *o, const char *json, size_t len, char *msg, size_t msglen) {
  if (!o || !json) return nc_optim_fail(msg, msglen, "NULL argument");
  json_error_t je;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
  if (!root) return nc_optim_fail(msg, msglen, "optimizer meta is not JSON: %s", je.text);
  int rc = NC_OK;
  nc_optim_group *tmp = calloc((size_t)o->n_groups, sizeof *tmp);
  const char *type = json_string_value(json_object_get(root, "type"));
  json_t *step = json_object_get(root, "step"), *groups = json_object_get(root, "groups");
  double clip = 0;
  if (!tmp) rc = NC_ENOMEM;
  else if (!type || strcmp(type, type_name(o->type)))
    rc = nc_optim_fail(msg, msglen, "optimizer type differs (saved '%s', have '%s')", type ? type : "?",
              type_name(o->type));
  else if (!json_is_integer(step) || json_integer_value(step) < 0 || num(root, "grad_clip", &clip) ||
           clip < 0)
    rc = nc_optim_fail(msg, msglen, "optimizer meta: bad step or grad_clip");
  else if (!json_is_array(groups) || json_array_size(groups) != (size_t)o->n_groups)
    rc = nc_optim_fail(msg, msglen, "optimizer meta: %zu groups saved, optimizer has %d",
              json_is_array(groups) ? json_array_size(groups) : 0, o->n_groups);
  for (int g = 0; !rc && g < o->n_groups; g++) {
    rc = read_group(o, &o->groups[g], json_array_get(groups, (size_t)g), &tmp[g], msg, msglen);
    if (!rc) {
      /* the same checks nc_optim_step applies */
      nc_optim_group *t = &tmp[g];
      int ok = t->lr >= 0 && t->initial_lr >= 0 && t->weight_decay >= 0 && t->beta2 >= 0 &&
               t->beta2 < 1 &&
               (t->kind == NC_GROUP_ADAMW ? (t->beta1 >= 0 && t->beta1 < 1 && t->eps >= 0)
                                          : (t->momentum >= 0 && t->momentum < 1 &&
                                             t->ns_steps >= 1 && t->ns_steps <= 5));
      if (!ok) rc = nc_optim_fail(msg, msglen, "optimizer group '%s': values out of range", t->label);
    }
  }
  if (!rc) {
    memcpy(o->groups, tmp, sizeof *tmp * (size_t)o->n_groups);
    o->step = json_integer_value(step);
    o->grad_clip = clip;
  }
  free(tmp);
  json_decref(root);
  return rc;
}
