/* nc_rpc.c — lookups and self-checks over the generated RPC table (see nc_rpc.h). */
#include "nc_rpc.h"

#include <stdio.h>
#include <string.h>

#include "nc_err.h"
#include "nc_rpc_table.h"

const nc_rpc_method *nc_rpc_find(const char *path, size_t len) {
  for (unsigned i = 0; i < NC_RPC_COUNT; i++) {
    const char *p = nc_rpc_methods[i].path;
    if (strlen(p) == len && memcmp(p, path, len) == 0) return &nc_rpc_methods[i];
  }
  return NULL;
}

static const nc_msg_rules *rules_for(const ProtobufCMessageDescriptor *d) {
  for (unsigned i = 0; i < NC_MSG_RULES_COUNT; i++)
    if (nc_msg_rules_all[i].desc == d) return &nc_msg_rules_all[i];
  return NULL;
}

int nc_rpc_table_check(char *err, size_t errlen) {
  for (unsigned i = 0; i < NC_MSG_RULES_COUNT; i++) {
    const nc_msg_rules *r = &nc_msg_rules_all[i];
    const ProtobufCMessageDescriptor *d = r->desc;
    if (d->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC || strcmp(d->name, r->full_name) != 0) {
      snprintf(err, errlen, "rules %s: descriptor mismatch", r->full_name);
      return NC_EINTERNAL;
    }
    if (r->n_fields != d->n_fields) {
      snprintf(err, errlen, "rules %s: %u rules for %u fields", r->full_name, r->n_fields,
               d->n_fields);
      return NC_EINTERNAL;
    }
    for (unsigned k = 0; k < d->n_fields; k++) {
      const ProtobufCFieldDescriptor *fd = &d->fields[k];
      const nc_field_rule *fr = &r->fields[k];
      if (fr->number != fd->id) {
        snprintf(err, errlen, "rules %s: rule %u is for field %u, descriptor has %u",
                 r->full_name, k, (unsigned)fr->number, (unsigned)fd->id);
        return NC_EINTERNAL;
      }
      if (fd->type == PROTOBUF_C_TYPE_MESSAGE && fr->sub != rules_for(fd->descriptor)) {
        snprintf(err, errlen, "rules %s.%s: sub-message rules not linked", r->full_name,
                 fd->name);
        return NC_EINTERNAL;
      }
    }
  }
  for (unsigned i = 0; i < NC_RPC_COUNT; i++) {
    const nc_rpc_method *m = &nc_rpc_methods[i];
    if (m->input_rules != rules_for(m->input) || !m->handler || !m->max_request_bytes) {
      snprintf(err, errlen, "method %s: inconsistent row", m->path);
      return NC_EINTERNAL;
    }
  }
  return NC_OK;
}
