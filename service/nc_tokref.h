/* nc_tokref.h — the server's tokenizer, shared by reference and reloaded when its file
 * changes (a Train.Tokenizer job renames a new tokenizer.txt into place; a user may replace it
 * too).
 *
 * The holder knows one path (--tokenizer FILE, else <data-dir>/tokenizer/tokenizer.txt).
 * nc_tokref_get returns the current tokenizer with a reference held: it stays valid, unchanged,
 * until the caller's nc_tokref_put, even if a newer file is loaded meanwhile (calls in flight
 * finish with the tokenizer they started with). At most once per `check_ms` a get stat()s the
 * path; when (device, inode, size, mtime) differ from the loaded file it loads the new file
 * (outside the lock) and swaps it in. A file that fails to load is logged once per change
 * and the previous tokenizer keeps serving; a file that disappears keeps the loaded one too.
 *
 * Thread safety: every function may be called from any thread concurrently.
 */
#ifndef NC_TOKREF_H
#define NC_TOKREF_H

#include <stdint.h>

#include "nc_tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nc_tokholder nc_tokholder;
typedef struct nc_tokref nc_tokref;   /* one loaded tokenizer + its reference count */

/* Creates a holder for `path` and loads it now if it exists. `required` = the file must exist
 * and load (NC_ENOTFOUND / the load error otherwise, message in err). check_ms: minimum time
 * between file checks (0 = 1000). NC_OK or an error; *out freed with nc_tokholder_free (after
 * every reference was put back). */
int nc_tokholder_create(const char *path, int required, int check_ms, nc_tokholder **out,
                        char *err, size_t errlen);
void nc_tokholder_free(nc_tokholder *h);

/* The current tokenizer with a reference, or NULL when none is loaded (no file yet). Checks
 * the file first when check_ms has passed since the last check. */
nc_tokref *nc_tokref_get(nc_tokholder *h);
/* The tokenizer of a reference (never NULL for a non-NULL ref). */
const nc_tokenizer *nc_tokref_tok(const nc_tokref *r);
/* Gives a reference back (NULL ok). */
void nc_tokref_put(nc_tokref *r);

/* Forces a check of the file now (e.g. after a tokenizer job succeeded). Returns 1 when a new
 * tokenizer was loaded, 0 when nothing changed, a negative NC_E* code when the new file failed
 * to load (the old one stays). */
int nc_tokholder_refresh(nc_tokholder *h);

/* Generation counter: increases with every tokenizer swapped in (0 = none loaded yet). */
uint64_t nc_tokholder_generation(nc_tokholder *h);

#ifdef __cplusplus
}
#endif
#endif /* NC_TOKREF_H */
