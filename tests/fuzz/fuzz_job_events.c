/* fuzz_job_events.c — the job manager's view of bytes written by a job process on its event
 * pipe (nc_jobio_frame_decode + nc_jobio_event_check): any byte stream must decode into valid
 * events or a protocol error, never read out of bounds, and every accepted event must encode
 * and decode again to an accepted event. */
#include <stdint.h>
#include <stdlib.h>

#include "nc_err.h"
#include "nc_jobio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t off = 0;
  char err[300];
  for (int frames = 0; frames < 4096 && off < size; frames++) {
    size_t used = 0;
    Nanochat__V1__JobEvent *ev = NULL;
    int rc = nc_jobio_frame_decode(data + off, size - off, &used, &ev, err, sizeof err);
    if (rc != NC_OK || used == 0) break;
    if (used > size - off) __builtin_trap();
    uint8_t *b = NULL;
    size_t n = 0;
    if (nc_jobio_frame_encode(ev, &b, &n) == NC_OK) {
      size_t used2 = 0;
      Nanochat__V1__JobEvent *ev2 = NULL;
      if (nc_jobio_frame_decode(b, n, &used2, &ev2, err, sizeof err) != NC_OK || used2 != n)
        __builtin_trap();
      protobuf_c_message_free_unpacked(&ev2->base, NULL);
      free(b);
    }
    protobuf_c_message_free_unpacked(&ev->base, NULL);
    off += used;
  }
  return 0;
}
