/* nc_rpc.h — types of the RPC table, the single source of truth for every method nanochatd
 * serves.
 *
 * The table itself is generated at build time by proto/gen_rpc_table.py from the descriptor
 * set and the (nanochat.v1.rpc) / (nanochat.v1.limits) options of proto/nanochat/v1/ (*.proto files):
 * build/gen/svc/nc_rpc_table.{h,c} define
 *
 *   enum nc_method_index { NC_M_CHAT_COMPLETE, ..., NC_RPC_COUNT };
 *   extern const nc_rpc_method nc_rpc_methods[NC_RPC_COUNT];
 *   extern const nc_msg_rules  nc_msg_rules_all[NC_MSG_RULES_COUNT];
 *   int nc_h_<service>_<method>(nc_call *call, const ProtobufCMessage *req);   (one per row)
 *
 * Nothing here is mutable at run time; rows are plain constant data.
 */
#ifndef NC_RPC_H
#define NC_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nc_call nc_call;   /* one in-flight RPC: see nc_call.h */

/* A method's handler. Runs after the dispatch gate admitted the call (see nc_call.h for the
 * full contract). `req` is the unpacked, validated request (NULL for client-streaming
 * methods, which read with nc_call_recv); it stays valid until the call is destroyed.
 * Return NC_OK once the call is finished or will be finished later by anyone holding it;
 * return a negative NC_E* code (without finishing) to have the runtime finish the call with
 * that code's status and a generic message. */
typedef int (*nc_handler_fn)(nc_call *call, const ProtobufCMessage *req);

/* Method flags (nc_rpc_method.flags). */
enum nc_rpc_flag {
  NC_RPC_PUBLIC = 1u << 0,            /* callable without a token */
  NC_RPC_ADMIN = 1u << 1,             /* needs the admin token (user token: PERMISSION_DENIED) */
  NC_RPC_NEEDS_MODEL = 1u << 2,       /* FAILED_PRECONDITION "no model loaded" without a model */
  NC_RPC_WRITES_DB = 1u << 3,         /* writes the LMDB store */
  NC_RPC_SLOW = 1u << 4,              /* handler runs on the worker pool, never on a CQ thread */
  NC_RPC_CLIENT_STREAMING = 1u << 5,  /* requests arrive through nc_call_recv */
  NC_RPC_SERVER_STREAMING = 1u << 6,  /* responses go out through nc_call_send */
};

/* Field-rule flags (nc_field_rule.flags). */
enum nc_field_rule_flag {
  NC_FR_MIN = 1u << 0,        /* value >= min (numeric fields; each element when repeated) */
  NC_FR_MAX = 1u << 1,        /* value <= max */
  NC_FR_MAX_LEN = 1u << 2,    /* string/bytes length in bytes <= max_len (each element) */
  NC_FR_MIN_COUNT = 1u << 3,  /* repeated: count >= min_count */
  NC_FR_MAX_COUNT = 1u << 4,  /* repeated: count <= max_count */
  NC_FR_NONEMPTY = 1u << 5,   /* string/bytes: present and non-empty; repeated: count >= 1 */
  NC_FR_IDENT = 1u << 6,      /* string: empty, or [A-Za-z0-9_.-]+ not starting with '.' or '-' */
};

typedef struct nc_msg_rules nc_msg_rules;

/* Limits of one field. Which bound pair is meaningful depends on the field's type:
 * dmin/dmax for float/double, imin/imax for signed integers, umin/umax for unsigned ones.
 * Implicit checks that need no flag: every string is valid UTF-8 without NUL, every float is
 * finite, every enum value is one the enum declares. */
typedef struct nc_field_rule {
  uint32_t number;            /* field number; equals the descriptor's fields[i].id */
  uint32_t flags;             /* enum nc_field_rule_flag */
  double dmin, dmax;
  int64_t imin, imax;
  uint64_t umin, umax;
  uint32_t max_len;
  uint32_t min_count, max_count;
  const nc_msg_rules *sub;    /* rules of the field's message type (message fields only) */
} nc_field_rule;

/* Rules of one message type: fields[i] belongs to desc->fields[i] (protoc-c orders the
 * descriptor's fields by number, as does the generator; nc_rpc_table_check verifies it). */
struct nc_msg_rules {
  const ProtobufCMessageDescriptor *desc;
  const char *full_name;
  unsigned n_fields;
  const nc_field_rule *fields;
  int needs_walk;             /* 0: nothing in this message or below needs checking */
};

/* One row of the RPC table. */
typedef struct nc_rpc_method {
  const char *path;           /* "/nanochat.v1.Chat/Complete" */
  const char *service;        /* "nanochat.v1.Chat" */
  const char *name;           /* "Complete" */
  const char *iii_id;         /* "nanochat.chat.complete"; "" for the standard services */
  const ProtobufCMessageDescriptor *input;
  const ProtobufCMessageDescriptor *output;
  const nc_msg_rules *input_rules;
  uint32_t flags;             /* enum nc_rpc_flag */
  uint32_t max_request_bytes; /* per request message; larger: RESOURCE_EXHAUSTED */
  uint32_t default_deadline_ms; /* applied when the client sends no deadline; 0 = none */
  uint32_t max_concurrency;   /* calls at once; 0 = no method-specific cap */
  nc_handler_fn handler;
  const char *handler_name;   /* "nc_h_chat_complete" */
} nc_rpc_method;

/* The row whose path equals `path` (length `len`, not NUL-terminated), or NULL. */
const nc_rpc_method *nc_rpc_find(const char *path, size_t len);

/* Checks the generated tables against the linked protobuf-c descriptors: every rule set has
 * one rule per descriptor field with matching numbers, and every message-typed field links
 * the rule set of its type. Returns NC_OK, or NC_EINTERNAL with a description in err. */
int nc_rpc_table_check(char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* NC_RPC_H */
