/* nc_reflect.c — grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo over the
 * embedded descriptor set (see nc_reflect.h). A bidirectional stream: read a request, answer
 * it, read the next, until the client half-closes.
 */
#include "nc_reflect.h"

#include <stdlib.h>
#include <string.h>

#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "nc_call.h"
#include "nc_err.h"

const nc_reflect_file *nc_reflect_file_by_name(const char *name) {
  for (unsigned i = 0; i < nc_reflect_n_files; i++)
    if (strcmp(nc_reflect_files[i].name, name) == 0) return &nc_reflect_files[i];
  return NULL;
}

static int sym_cmp(const void *key, const void *elem) {
  return strcmp((const char *)key, ((const nc_reflect_symbol *)elem)->name);
}

int nc_reflect_file_of_symbol(const char *symbol) {
  if (symbol[0] == '.') symbol++;
  const nc_reflect_symbol *s =
      bsearch(symbol, nc_reflect_symbols, nc_reflect_n_symbols, sizeof *s, sym_cmp);
  return s ? (int)s->file : -1;
}

typedef Grpc__Reflection__V1alpha__ServerReflectionRequest Req;
typedef Grpc__Reflection__V1alpha__ServerReflectionResponse Resp;

static void on_recv(nc_call *c, const ProtobufCMessage *msg, int err, const char *errmsg, void *arg);

static void on_sent(nc_call *c, bool ok, void *arg) {
  (void)arg;
  if (!ok) {
    nc_call_finish(c, NC_ECANCELED, "cancelled");
    return;
  }
  int rc = nc_call_recv(c, on_recv, NULL);
  if (rc) nc_call_finish(c, rc, "reflection stream ended");
}

static void answer_files(Resp *resp, Grpc__Reflection__V1alpha__FileDescriptorResponse *fdr,
                         ProtobufCBinaryData *bins, const nc_reflect_file *f) {
  for (unsigned k = 0; k < f->n_closure; k++) {
    const nc_reflect_file *g = &nc_reflect_files[f->closure[k]];
    bins[k].data = (uint8_t *)g->data;
    bins[k].len = g->len;
  }
  fdr->n_file_descriptor_proto = f->n_closure;
  fdr->file_descriptor_proto = bins;
  resp->message_response_case =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
  resp->file_descriptor_response = fdr;
}

static void on_recv(nc_call *c, const ProtobufCMessage *msg, int err, const char *errmsg, void *arg) {
  (void)arg;
  if (err) {
    nc_call_finish(c, err, "%s", errmsg ? errmsg : "reflection request failed");
    return;
  }
  if (!msg) { /* the client is done */
    nc_call_finish(c, NC_OK, NULL);
    return;
  }
  const Req *r = (const void *)msg;
  Resp resp = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__INIT;
  resp.valid_host = r->host;
  resp.original_request = (Req *)r;
  Grpc__Reflection__V1alpha__FileDescriptorResponse fdr =
      GRPC__REFLECTION__V1ALPHA__FILE_DESCRIPTOR_RESPONSE__INIT;
  Grpc__Reflection__V1alpha__ErrorResponse er = GRPC__REFLECTION__V1ALPHA__ERROR_RESPONSE__INIT;
  Grpc__Reflection__V1alpha__ListServiceResponse ls = GRPC__REFLECTION__V1ALPHA__LIST_SERVICE_RESPONSE__INIT;
  Grpc__Reflection__V1alpha__ExtensionNumberResponse en =
      GRPC__REFLECTION__V1ALPHA__EXTENSION_NUMBER_RESPONSE__INIT;
  Grpc__Reflection__V1alpha__ServiceResponse svc[32];
  Grpc__Reflection__V1alpha__ServiceResponse *svcp[32];
  int32_t nums[16];
  ProtobufCBinaryData *bins = calloc(nc_reflect_n_files, sizeof *bins);
  if (!bins) {
    nc_call_finish(c, NC_ENOMEM, "out of memory");
    return;
  }
  const nc_reflect_file *f = NULL;
  switch (r->message_request_case) {
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES: {
      unsigned n = nc_reflect_n_services < 32 ? nc_reflect_n_services : 32;
      for (unsigned i = 0; i < n; i++) {
        grpc__reflection__v1alpha__service_response__init(&svc[i]);
        svc[i].name = (char *)nc_reflect_services[i];
        svcp[i] = &svc[i];
      }
      ls.n_service = n;
      ls.service = svcp;
      resp.message_response_case =
          GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
      resp.list_services_response = &ls;
      break;
    }
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
      f = nc_reflect_file_by_name(r->file_by_filename);
      break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL: {
      int i = nc_reflect_file_of_symbol(r->file_containing_symbol);
      if (i >= 0) f = &nc_reflect_files[i];
      break;
    }
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION: {
      const Grpc__Reflection__V1alpha__ExtensionRequest *x = r->file_containing_extension;
      for (unsigned i = 0; x && i < nc_reflect_n_extensions; i++)
        if (strcmp(nc_reflect_extensions[i].containing_type, x->containing_type ? x->containing_type : "") == 0 &&
            nc_reflect_extensions[i].number == x->extension_number)
          f = &nc_reflect_files[nc_reflect_extensions[i].file];
      break;
    }
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE: {
      const char *t = r->all_extension_numbers_of_type;
      if (t && t[0] == '.') t++;
      size_t n = 0;
      for (unsigned i = 0; t && i < nc_reflect_n_extensions && n < 16; i++)
        if (strcmp(nc_reflect_extensions[i].containing_type, t) == 0) nums[n++] = nc_reflect_extensions[i].number;
      if (t && nc_reflect_file_of_symbol(t) >= 0) {
        en.base_type_name = (char *)t;
        en.n_extension_number = n;
        en.extension_number = nums;
        resp.message_response_case =
            GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
        resp.all_extension_numbers_response = &en;
      }
      break;
    }
    default:
      break;
  }
  if (f) answer_files(&resp, &fdr, bins, f);
  if (resp.message_response_case == GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE__NOT_SET) {
    er.error_code = 5; /* NOT_FOUND */
    er.error_message = r->message_request_case ==
                               GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST__NOT_SET
                           ? "empty request"
                           : "not found";
    resp.message_response_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    resp.error_response = &er;
  }
  int rc = nc_call_send(c, &resp.base, on_sent, NULL);
  free(bins);
  if (rc) nc_call_finish(c, rc, "reflection stream ended");
}

int nc_h_grpc_reflection_info(nc_call *c, const ProtobufCMessage *req) {
  (void)req;
  int rc = nc_call_recv(c, on_recv, NULL);
  if (rc) return nc_call_finish(c, rc, "reflection stream ended");
  return NC_OK;
}
