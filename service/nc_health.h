/* nc_health.h — health reporting: the standard grpc.health.v1.Health service (Check and Watch,
 * per service name; "" = the whole server) and nanochat.v1.Health/Check (a summary of the
 * server). Every service nanochatd serves is SERVING until shutdown starts; then the drain
 * hook turns everything NOT_SERVING, tells every Watch stream, and ends those streams with
 * UNAVAILABLE so shutdown does not wait for them.
 */
#ifndef NC_HEALTH_H
#define NC_HEALTH_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

struct nc_server;
typedef struct nc_health nc_health;

/* Creates the registry (all known services SERVING). NC_OK or NC_ENOMEM. */
int nc_health_create(nc_health **out);
/* Frees it; every Watch stream must have ended (the server drained). NULL is a no-op. */
void nc_health_free(nc_health *h);
/* Registers the drain hook on the server (call before nc_server_start). */
int nc_health_attach(nc_health *h, struct nc_server *s);
/* Open Watch streams right now (for tests and stats). */
unsigned nc_health_watchers(nc_health *h);

#ifdef __cplusplus
}
#endif
#endif /* NC_HEALTH_H */
