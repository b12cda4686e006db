/* nc_reflect.h — gRPC server reflection (grpc.reflection.v1alpha) over the descriptor set that
 * proto/gen_rpc_table.py embeds into nanochatd (build/gen/svc/nc_reflect_data.c).
 *
 * The data tables are generated; nc_reflect.c answers ServerReflectionInfo requests from them:
 * list_services, file_by_filename and file_containing_symbol (each answered with the file and
 * its whole dependency closure, dependencies after the file), file_containing_extension and
 * all_extension_numbers_of_type for the two custom options.
 */
#ifndef NC_REFLECT_H
#define NC_REFLECT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One serialized google.protobuf.FileDescriptorProto and its dependency closure: indices into
 * nc_reflect_files, the file itself first. */
typedef struct nc_reflect_file {
  const char *name;
  const unsigned char *data;
  size_t len;
  const unsigned short *closure;
  unsigned n_closure;
} nc_reflect_file;

/* A fully qualified symbol (message, field, enum, value, service, method, extension) and the
 * file declaring it; sorted by strcmp. */
typedef struct nc_reflect_symbol {
  const char *name;
  unsigned file;
} nc_reflect_symbol;

typedef struct nc_reflect_extension {
  const char *containing_type;
  int number;
  unsigned file;
} nc_reflect_extension;

extern const nc_reflect_file nc_reflect_files[];
extern const unsigned nc_reflect_n_files;
extern const nc_reflect_symbol nc_reflect_symbols[];
extern const unsigned nc_reflect_n_symbols;
extern const nc_reflect_extension nc_reflect_extensions[];
extern const unsigned nc_reflect_n_extensions;
extern const char *const nc_reflect_services[];
extern const unsigned nc_reflect_n_services;

/* Lookups (NULL / -1 when absent). */
const nc_reflect_file *nc_reflect_file_by_name(const char *name);
int nc_reflect_file_of_symbol(const char *symbol);

#ifdef __cplusplus
}
#endif
#endif /* NC_REFLECT_H */
