/* nc_timer.h — one thread that runs callbacks at CLOCK_MONOTONIC deadlines (the gRPC C core
 * has no public alarm API). Used to enforce a method's default deadline when the client sent
 * none. Entries live in caller-owned nodes kept in a list sorted by deadline (O(n) insert;
 * n is bounded by the calls in flight that have a default deadline).
 */
#ifndef NC_TIMER_H
#define NC_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nc_timer nc_timer;

/* Caller-owned entry; must stay valid from nc_timer_add until it fired or was cancelled. */
typedef struct nc_timer_node {
  struct nc_timer_node *prev, *next;
  int64_t when_ms;
  void (*fn)(void *arg);
  void *arg;
  bool queued;
} nc_timer_node;

/* Starts the timer thread. NC_OK or NC_ENOMEM / NC_EINTERNAL. */
int nc_timer_create(nc_timer **out);

/* Stops and joins the thread; entries still queued are dropped without running.
 * NULL is a no-op. */
void nc_timer_free(nc_timer *t);

/* Queues n to run fn(arg) on the timer thread once CLOCK_MONOTONIC reaches when_ms. */
void nc_timer_add(nc_timer *t, nc_timer_node *n, int64_t when_ms, void (*fn)(void *arg),
                  void *arg);

/* Removes n if it has not started running. True when removed (fn will never run); false when
 * it already ran or is running (fn runs / ran exactly once). */
bool nc_timer_cancel(nc_timer *t, nc_timer_node *n);

#ifdef __cplusplus
}
#endif
#endif /* NC_TIMER_H */
