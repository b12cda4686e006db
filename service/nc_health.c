/* nc_health.c — grpc.health.v1 Check/Watch and nanochat.v1.Health/Check (see nc_health.h). */
#include "nc_health.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "nanochat/v1/health.pb-c.h"
#include "nc_call.h"
#include "nc_err.h"
#include "nc_reflect.h"
#include "nc_server.h"

typedef struct watcher {
  struct watcher *next;
  nc_call *call;
  char service[128];
  int last_sent;  /* status last sent, -1 = none */
  bool sending;
  bool listed;
  nc_health *h;
} watcher;

struct nc_health {
  pthread_mutex_t mu;
  bool draining;
  watcher *list;
  unsigned n;
};

int nc_health_create(nc_health **out) {
  nc_health *h = calloc(1, sizeof *h);
  if (!h) return NC_ENOMEM;
  pthread_mutex_init(&h->mu, NULL);
  *out = h;
  return NC_OK;
}

void nc_health_free(nc_health *h) {
  if (!h) return;
  pthread_mutex_destroy(&h->mu);
  free(h);
}

unsigned nc_health_watchers(nc_health *h) {
  pthread_mutex_lock(&h->mu);
  unsigned n = h->n;
  pthread_mutex_unlock(&h->mu);
  return n;
}

static bool known_service(const char *name) {
  if (!name[0]) return true;
  for (unsigned i = 0; i < nc_reflect_n_services; i++)
    if (strcmp(nc_reflect_services[i], name) == 0) return true;
  return false;
}

/* Status of `service` right now (under h->mu). */
static int status_of(nc_health *h, const char *service) {
  if (!known_service(service)) return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
  return h->draining ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                     : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
}

static nc_health *health_of(nc_call *c) { return (nc_health *)nc_call_app(c)->health; }

int nc_h_grpc_health_check(nc_call *c, const ProtobufCMessage *req) {
  const Grpc__Health__V1__HealthCheckRequest *r = (const void *)req;
  const char *svc = r->service ? r->service : "";
  if (!known_service(svc)) return nc_call_finish(c, NC_ENOTFOUND, "unknown service");
  nc_health *h = health_of(c);
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  pthread_mutex_lock(&h->mu);
  resp.status = status_of(h, svc);
  pthread_mutex_unlock(&h->mu);
  return nc_call_reply(c, &resp.base);
}

/* ---- Watch --------------------------------------------------------------------------------- */

static void unlist(nc_health *h, watcher *w) {
  for (watcher **p = &h->list; *p; p = &(*p)->next) {
    if (*p == w) {
      *p = w->next;
      h->n--;
      w->listed = false;
      return;
    }
  }
}

static void watch_sent(nc_call *c, bool ok, void *arg);

/* Sends the current status if it changed and nothing is in flight (under h->mu). */
static void pump(nc_health *h, watcher *w) {
  if (w->sending || !w->listed) return;
  int st = status_of(h, w->service);
  if (st == w->last_sent) return;
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  resp.status = st;
  if (nc_call_send(w->call, &resp.base, watch_sent, w) == NC_OK) {
    w->sending = true;
    w->last_sent = st;
  }
}

static void watch_sent(nc_call *c, bool ok, void *arg) {
  (void)c;
  watcher *w = arg;
  nc_health *h = w->h;
  pthread_mutex_lock(&h->mu);
  w->sending = false;
  if (ok) pump(h, w);
  pthread_mutex_unlock(&h->mu);
}

static void watch_cancelled(nc_call *c, void *arg) {
  watcher *w = arg;
  nc_health *h = w->h;
  pthread_mutex_lock(&h->mu);
  bool was = w->listed;
  if (was) unlist(h, w);
  pthread_mutex_unlock(&h->mu);
  if (was) {
    nc_call_finish(c, NC_ECANCELED, "cancelled");
    nc_call_unref(c); /* the list's reference */
  }
}

int nc_h_grpc_health_watch(nc_call *c, const ProtobufCMessage *req) {
  const Grpc__Health__V1__HealthCheckRequest *r = (const void *)req;
  nc_health *h = health_of(c);
  watcher *w = calloc(1, sizeof *w);
  if (!w) return NC_ENOMEM;
  w->call = c;
  w->h = h;
  w->last_sent = -1;
  snprintf(w->service, sizeof w->service, "%s", r->service ? r->service : "");
  nc_call_set_data(c, w, free);
  pthread_mutex_lock(&h->mu);
  if (h->draining) {
    pthread_mutex_unlock(&h->mu);
    return nc_call_finish(c, NC_ENOTREADY, "server shutting down");
  }
  nc_call_ref(c); /* the list's reference */
  w->next = h->list;
  h->list = w;
  w->listed = true;
  h->n++;
  pump(h, w);
  pthread_mutex_unlock(&h->mu);
  if (nc_call_on_cancel(c, watch_cancelled, w) == NC_ECANCELED) watch_cancelled(c, w);
  return NC_OK;
}

static void drain(void *arg) {
  nc_health *h = arg;
  pthread_mutex_lock(&h->mu);
  h->draining = true;
  watcher *list = h->list;
  for (watcher *w = list; w; w = w->next) pump(h, w); /* NOT_SERVING where possible */
  for (watcher *w = list; w; w = w->next) w->listed = false;
  h->list = NULL;
  h->n = 0;
  pthread_mutex_unlock(&h->mu);
  while (list) {
    watcher *next = list->next;
    nc_call *c = list->call;
    nc_call_finish(c, NC_ENOTREADY, "server shutting down");
    nc_call_unref(c);
    list = next;
  }
}

int nc_health_attach(nc_health *h, struct nc_server *s) { return nc_server_on_drain(s, drain, h); }

/* ---- nanochat.v1.Health/Check --------------------------------------------------------------- */

int nc_h_health_check(nc_call *c, const ProtobufCMessage *req) {
  (void)req;
  nc_app *app = nc_call_app(c);
  Nanochat__V1__HealthCheckResponse resp = NANOCHAT__V1__HEALTH_CHECK_RESPONSE__INIT;
  bool draining = app->server && nc_server_draining(app->server);
  resp.status = draining ? "not_ready" : "ok";
  nc_model_info mi;
  memset(&mi, 0, sizeof mi);
  if (app->model.info) app->model.info(app->model.arg, &mi);
  resp.has_model_loaded = true;
  resp.model_loaded = mi.loaded;
  resp.device = mi.loaded ? mi.device : "cpu";
  if (mi.loaded) {
    resp.has_phase = true;
    resp.phase = (Nanochat__V1__Phase)mi.phase;
    resp.model_tag = mi.model_tag;
    resp.has_model_step = true;
    resp.model_step = mi.step;
  }
  resp.version = (char *)(app->version ? app->version : "");
  resp.has_uptime_s = true;
  resp.uptime_s = (double)(nc_now_mono_ms() - app->started_mono_ms) / 1000.0;
  resp.sandbox_level = (char *)(app->sandbox_level ? app->sandbox_level(app->sandbox_arg)
                                                   : "unavailable: sandbox not configured");
  uint32_t running = 0, queued = 0;
  if (app->job_counts) app->job_counts(app->jobs_arg, &running, &queued);
  resp.has_jobs_running = resp.has_jobs_queued = true;
  resp.jobs_running = running;
  resp.jobs_queued = queued;
  resp.has_calls_in_flight = true;
  /* the gauge counts this call too: report the others */
  unsigned calls = app->server ? nc_server_calls_in_flight(app->server) : 0;
  resp.calls_in_flight = calls > 0 ? calls - 1 : 0;
  resp.worker = "nanochat-c";
  return nc_call_reply(c, &resp.base);
}
