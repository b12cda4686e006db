#!/usr/bin/python3
"""gen_rpc_table.py: build-time generator for nanochatd's RPC table.

Reads the descriptor set protoc wrote (build/gen/nanochat.pb, --include_imports
--include_source_info) and the (nanochat.v1.rpc) / (nanochat.v1.limits) options declared in
proto/nanochat/v1/options.proto, and writes:

  <c-dir>/nc_rpc_table.h    method indices (NC_M_*), handler prototypes (nc_h_*)
  <c-dir>/nc_rpc_table.c    the RPC table (one row per method) and the field-rule tables the
                            generic validator (service/nc_validate.c) walks
  <c-dir>/nc_reflect_data.c serialized FileDescriptorProtos, their dependency closures and a
                            sorted symbol index for gRPC server reflection
  <json>                    rpc_table.json: methods, flags, limits and message fields for the
                            SDKs, the CLI and the iii adapter
  <md>                      the API reference (docs/api.md is a committed copy; a ctest fails
                            when the copy is stale)

It refuses (exit 1, message on stderr) to generate from a schema with a recursive message type,
limits that do not fit the field type, or defaults outside their own limits.

Usage (CMake runs it with /usr/bin/python3):
  gen_rpc_table.py --descriptor-set nanochat.pb --pythonpath build/gen/python \
      --c-dir build/gen/svc --json build/gen/rpc_table.json --md build/gen/api.md
"""
import argparse
import json
import math
import os
import sys

# Methods of the standard services carry no (rpc) option; their rows are fixed here.
STANDARD_METHODS = {
    "grpc.health.v1.Health.Check": dict(
        public=True, max_request_bytes=1024,
        summary="Standard gRPC health check (per service; \"\" = the whole server)"),
    "grpc.health.v1.Health.Watch": dict(
        public=True, max_request_bytes=1024,
        summary="Standard gRPC health watch: the current status, then every change"),
    "grpc.reflection.v1alpha.ServerReflection.ServerReflectionInfo": dict(
        public=True, max_request_bytes=65536,
        summary="gRPC server reflection (v1alpha): services, files and symbols"),
}
HANDLER_PREFIX = {
    "nanochat.v1.": "",
    "grpc.health.v1.": "grpc_",
    "grpc.reflection.v1alpha.": "grpc_",
}

# FieldDescriptorProto types
T_DOUBLE, T_FLOAT, T_INT64, T_UINT64, T_INT32, T_FIXED64, T_FIXED32, T_BOOL, T_STRING, \
    T_GROUP, T_MESSAGE, T_BYTES, T_UINT32, T_ENUM, T_SFIXED32, T_SFIXED64, T_SINT32, \
    T_SINT64 = range(1, 19)
TYPE_NAMES = {
    T_DOUBLE: "double", T_FLOAT: "float", T_INT64: "int64", T_UINT64: "uint64",
    T_INT32: "int32", T_FIXED64: "fixed64", T_FIXED32: "fixed32", T_BOOL: "bool",
    T_STRING: "string", T_GROUP: "group", T_MESSAGE: "message", T_BYTES: "bytes",
    T_UINT32: "uint32", T_ENUM: "enum", T_SFIXED32: "sfixed32", T_SFIXED64: "sfixed64",
    T_SINT32: "sint32", T_SINT64: "sint64",
}
SIGNED = {T_INT32: 32, T_SINT32: 32, T_SFIXED32: 32, T_INT64: 64, T_SINT64: 64, T_SFIXED64: 64}
UNSIGNED = {T_UINT32: 32, T_FIXED32: 32, T_UINT64: 64, T_FIXED64: 64}
FLOATS = {T_FLOAT, T_DOUBLE}
LABEL_REPEATED = 3


class GenError(Exception):
    pass


def camel_to_lower(name):
    """protoc-c's CamelToLower (c_helpers.cc): '_' before an upper-case letter that follows a
    lower-case one; everything lower-cased."""
    out = []
    was_upper = True
    for ch in name:
        up = ch.isupper()
        if up:
            if not was_upper:
                out.append("_")
            out.append(ch.lower())
        else:
            out.append(ch)
        was_upper = up
    return "".join(out)


def c_descriptor(full_name):
    """Symbol protoc-c emits for a message's descriptor, e.g.
    nanochat.v1.JobInfo.MetricsEntry -> nanochat__v1__job_info__metrics_entry__descriptor."""
    return "__".join(camel_to_lower(p) for p in full_name.split(".")) + "__descriptor"


def snake(name):
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i > 0 and (not name[i - 1].isupper() or
                                       (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def c_string(s):
    out = ['"']
    for b in s.encode("utf-8"):
        c = chr(b)
        if c in '"\\':
            out.append("\\" + c)
        elif 32 <= b < 127 and c != "?":
            out.append(c)
        else:
            out.append("\\%03o" % b)
    out.append('"')
    return "".join(out)


def fmt_num(v):
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


class Schema:
    def __init__(self, fds, options_pb2):
        self.options_pb2 = options_pb2
        self.files = list(fds.file)
        self.file_index = {f.name: i for i, f in enumerate(self.files)}
        self.messages = {}    # full name -> (DescriptorProto, file, source path)
        self.enums = {}       # full name -> (EnumDescriptorProto, file, source path)
        self.comments = {}    # (file name, tuple path) -> (leading, trailing)
        self.symbols = {}     # symbol -> file index
        self.extensions = []  # (extendee, number, file index)
        for fi, f in enumerate(self.files):
            for loc in f.source_code_info.location:
                lead = loc.leading_comments.strip("\n")
                trail = loc.trailing_comments.strip("\n")
                if lead or trail:
                    self.comments[(f.name, tuple(loc.path))] = (lead, trail)
            pkg = f.package
            prefix = pkg + "." if pkg else ""
            for mi, m in enumerate(f.message_type):
                self._add_message(f, fi, prefix + m.name, m, (4, mi))
            for ei, e in enumerate(f.enum_type):
                self._add_enum(f, fi, prefix, prefix + e.name, e, (5, ei))
            for s in f.service:
                sname = prefix + s.name
                self.symbols[sname] = fi
                for m in s.method:
                    self.symbols[sname + "." + m.name] = fi
            for x in f.extension:
                self.symbols[prefix + x.name] = fi
                self.extensions.append((x.extendee.lstrip("."), x.number, fi))

    def _add_message(self, f, fi, full, m, path):
        self.messages[full] = (m, f, path)
        self.symbols[full] = fi
        for fd in m.field:
            self.symbols[full + "." + fd.name] = fi
        for x in m.extension:
            self.symbols[full + "." + x.name] = fi
            self.extensions.append((x.extendee.lstrip("."), x.number, fi))
        for ni, n in enumerate(m.nested_type):
            self._add_message(f, fi, full + "." + n.name, n, path + (3, ni))
        for ei, e in enumerate(m.enum_type):
            self._add_enum(f, fi, full + ".", full + "." + e.name, e, path + (4, ei))

    def _add_enum(self, f, fi, scope, full, e, path):
        self.enums[full] = (e, f, path)
        self.symbols[full] = fi
        for v in e.value:   # enum values are siblings of their enum (C++ scoping)
            self.symbols[scope + v.name] = fi

    def comment(self, f, path):
        lead, trail = self.comments.get((f.name, tuple(path)), ("", ""))
        text = "\n".join(x for x in (lead, trail) if x)
        return "\n".join(line[1:] if line.startswith(" ") else line
                         for line in text.split("\n")).strip()

    def limits(self, fd):
        if fd.options.HasExtension(self.options_pb2.limits):
            return fd.options.Extensions[self.options_pb2.limits]
        return None

    def rpc(self, method):
        if method.options.HasExtension(self.options_pb2.rpc):
            return method.options.Extensions[self.options_pb2.rpc]
        return None


def check_acyclic(schema, roots):
    """Fail on any recursive or mutually recursive message type reachable from `roots` (every
    nanochat.v1 message and every method's input and output): protobuf-c's unpacker recurses
    once per nesting level (faults.md 4.5). google/protobuf/descriptor.proto is recursive, but
    it only describes the schema and never travels in a call."""
    state = {}

    def visit(name, stack):
        st = state.get(name)
        if st == 2:
            return
        if st == 1:
            cycle = stack[stack.index(name):] + [name]
            raise GenError("recursive message type: " + " -> ".join(cycle))
        state[name] = 1
        m = schema.messages[name][0]
        for fd in m.field:
            if fd.type in (T_MESSAGE, T_GROUP):
                visit(fd.type_name.lstrip("."), stack + [name])
        state[name] = 2

    for name in sorted(roots):
        visit(name, [])


def field_rule(schema, msg_full, fd):
    """The validation rule of one field as a dict (empty when nothing but the implicit
    checks applies)."""
    lim = schema.limits(fd)
    rule = {}
    where = "%s.%s" % (msg_full, fd.name)
    repeated = fd.label == LABEL_REPEATED
    if lim is None:
        return rule
    if lim.HasField("min") or lim.HasField("max"):
        if fd.type not in FLOATS and fd.type not in SIGNED and fd.type not in UNSIGNED:
            raise GenError("%s: min/max on a %s field" % (where, TYPE_NAMES[fd.type]))
        for key in ("min", "max"):
            if lim.HasField(key):
                v = getattr(lim, key)
                if not math.isfinite(v):
                    raise GenError("%s: non-finite %s" % (where, key))
                if fd.type not in FLOATS:
                    if not float(v).is_integer():
                        raise GenError("%s: %s %r on an integer field" % (where, key, v))
                    v = int(v)
                    bits = SIGNED.get(fd.type) or UNSIGNED.get(fd.type)
                    lo = -(1 << (bits - 1)) if fd.type in SIGNED else 0
                    hi = (1 << (bits - 1)) - 1 if fd.type in SIGNED else (1 << bits) - 1
                    if not lo <= v <= hi:
                        raise GenError("%s: %s %d outside the field type" % (where, key, v))
                rule[key] = v
        if "min" in rule and "max" in rule and rule["min"] > rule["max"]:
            raise GenError("%s: min > max" % where)
    if lim.HasField("max_len"):
        if fd.type not in (T_STRING, T_BYTES):
            raise GenError("%s: max_len on a %s field" % (where, TYPE_NAMES[fd.type]))
        rule["max_len"] = lim.max_len
    if lim.HasField("min_count") or lim.HasField("max_count"):
        if not repeated:
            raise GenError("%s: min_count/max_count on a non-repeated field" % where)
        if lim.HasField("min_count"):
            rule["min_count"] = lim.min_count
        if lim.HasField("max_count"):
            rule["max_count"] = lim.max_count
    if lim.nonempty:
        if fd.type not in (T_STRING, T_BYTES) and not repeated:
            raise GenError("%s: nonempty on a %s field" % (where, TYPE_NAMES[fd.type]))
        rule["nonempty"] = True
    if lim.ident:
        if fd.type != T_STRING:
            raise GenError("%s: ident on a %s field" % (where, TYPE_NAMES[fd.type]))
        if not lim.HasField("max_len"):
            raise GenError("%s: ident needs max_len" % where)
        rule["ident"] = True
    # a default must satisfy its own limits
    if fd.HasField("default_value") and not repeated:
        dv = fd.default_value
        if fd.type in FLOATS or fd.type in SIGNED or fd.type in UNSIGNED:
            x = float(dv) if fd.type in FLOATS else int(dv)
            if ("min" in rule and x < rule["min"]) or ("max" in rule and x > rule["max"]):
                raise GenError("%s: default %s outside [%s, %s]" % (
                    where, dv, rule.get("min"), rule.get("max")))
        if fd.type == T_STRING and "max_len" in rule and len(dv.encode()) > rule["max_len"]:
            raise GenError("%s: default longer than max_len" % where)
    return rule


class Method:
    pass


def collect_methods(schema):
    methods = []
    for f in schema.files:
        prefix = f.package + "." if f.package else ""
        for si, s in enumerate(f.service):
            sfull = prefix + s.name
            for mi, m in enumerate(s.method):
                x = Method()
                x.service = sfull
                x.service_short = s.name
                x.name = m.name
                x.full = sfull + "." + m.name
                x.path = "/%s/%s" % (sfull, m.name)
                x.input = m.input_type.lstrip(".")
                x.output = m.output_type.lstrip(".")
                x.client_streaming = m.client_streaming
                x.server_streaming = m.server_streaming
                x.doc = schema.comment(f, (6, si, 2, mi))
                x.file = f.name
                hp = None
                for p, hpref in HANDLER_PREFIX.items():
                    if sfull.startswith(p):
                        hp = hpref
                if hp is None:
                    raise GenError("%s: no handler prefix for package" % x.full)
                svc = snake(s.name)
                if sfull == "grpc.reflection.v1alpha.ServerReflection":
                    svc, meth = "reflection", "info"
                else:
                    meth = snake(m.name)
                x.handler = "nc_h_%s%s_%s" % (hp, svc, meth)
                x.enum = "NC_M_%s%s_%s" % (hp.upper(), svc.upper(), meth.upper())
                o = schema.rpc(m)
                if o is not None:
                    x.iii_id = o.iii_id
                    x.http_method = o.http_method
                    x.http_path = o.http_path
                    x.public = o.public
                    x.admin = o.admin
                    x.needs_model = o.needs_model
                    x.writes_db = o.writes_db
                    x.slow = o.slow
                    x.max_request_bytes = o.max_request_bytes
                    x.default_deadline_ms = o.default_deadline_ms
                    x.max_concurrency = o.max_concurrency
                    x.summary = o.summary
                elif x.full in STANDARD_METHODS:
                    d = STANDARD_METHODS[x.full]
                    x.iii_id = x.http_method = x.http_path = ""
                    x.public = d["public"]
                    x.admin = x.needs_model = x.writes_db = x.slow = False
                    x.max_request_bytes = d["max_request_bytes"]
                    x.default_deadline_ms = 0
                    x.max_concurrency = 0
                    x.summary = d["summary"]
                else:
                    raise GenError("%s: method without an (rpc) option" % x.full)
                if x.public and x.admin:
                    raise GenError("%s: both public and admin" % x.full)
                if not 0 < x.max_request_bytes <= 4 * 1024 * 1024:
                    raise GenError("%s: max_request_bytes must be in (0, 4 MiB]" % x.full)
                if x.input not in schema.messages or x.output not in schema.messages:
                    raise GenError("%s: unknown input/output type" % x.full)
                methods.append(x)
    seen = set()
    for x in methods:
        for key in (x.handler, x.enum) + ((x.iii_id,) if x.iii_id else ()):
            if key in seen:
                raise GenError("duplicate name %s" % key)
            seen.add(key)
    return methods


def reachable(schema, roots):
    out = []
    seen = set()

    def go(name):
        if name in seen:
            return
        seen.add(name)
        out.append(name)
        for fd in schema.messages[name][0].field:
            if fd.type == T_MESSAGE:
                go(fd.type_name.lstrip("."))

    for r in roots:
        go(r)
    return out


# ------------------------------------------------------------------------------------------
# C output
# ------------------------------------------------------------------------------------------

C_HEADER_NOTE = "/* Generated by proto/gen_rpc_table.py from the descriptor set. DO NOT EDIT. */\n"


def pb_c_header(file_name):
    return file_name[:-len(".proto")] + ".pb-c.h"


def emit_c(schema, methods, c_dir):
    # Rules for every message reachable from a method's input, in a stable order.
    inputs = reachable(schema, sorted({m.input for m in methods}))
    rules = {}
    for name in inputs:
        m = schema.messages[name][0]
        fr = []
        for fd in sorted(m.field, key=lambda x: x.number):
            fr.append((fd, field_rule(schema, name, fd)))
        rules[name] = fr
    idx = {name: i for i, name in enumerate(inputs)}

    # needs_walk: the message (or anything below it) has strings, floats, enums or rules
    walk = {}

    def needs(name):
        if name in walk:
            return walk[name]
        walk[name] = False
        res = False
        for fd, r in rules[name]:
            if r or fd.type in (T_STRING, T_ENUM) or fd.type in FLOATS:
                res = True
            if fd.type == T_MESSAGE and needs(fd.type_name.lstrip(".")):
                res = True
        walk[name] = res
        return res

    for name in inputs:
        needs(name)

    headers = set()
    for name in set(inputs) | {m.output for m in methods} | {m.input for m in methods}:
        headers.add(pb_c_header(schema.messages[name][1].name))

    h = []
    h.append(C_HEADER_NOTE)
    h.append("#ifndef NC_RPC_TABLE_H\n#define NC_RPC_TABLE_H\n\n#include \"nc_rpc.h\"\n\n")
    h.append("#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n")
    h.append("/* Row indices of nc_rpc_methods[]. */\nenum nc_method_index {\n")
    for i, m in enumerate(methods):
        h.append("  %s = %d,   /* %s */\n" % (m.enum, i, m.path))
    h.append("  NC_RPC_COUNT = %d\n};\n\n" % len(methods))
    h.append("/* Number of message rule sets in nc_msg_rules_all[]. */\n")
    h.append("#define NC_MSG_RULES_COUNT %d\n\n" % len(inputs))
    h.append("/* The RPC table: one row per method, in descriptor-set order. */\n"
             "extern const nc_rpc_method nc_rpc_methods[NC_RPC_COUNT];\n"
             "/* Validation rules of every message reachable from a method's input. */\n"
             "extern const nc_msg_rules nc_msg_rules_all[NC_MSG_RULES_COUNT];\n\n")
    h.append("/* Handlers: one per method (see nc_call.h for the contract). Methods whose\n"
             " * capability has not landed are answered by service/nc_h_missing.c. */\n")
    for m in methods:
        h.append("int %s(nc_call *call, const ProtobufCMessage *req);  /* %s */\n" %
                 (m.handler, m.path))
    h.append("\n#ifdef __cplusplus\n}\n#endif\n#endif /* NC_RPC_TABLE_H */\n")
    write(os.path.join(c_dir, "nc_rpc_table.h"), "".join(h))

    c = []
    c.append(C_HEADER_NOTE)
    c.append("#include \"nc_rpc_table.h\"\n\n")
    for hd in sorted(headers):
        c.append("#include \"%s\"\n" % hd)
    c.append("\n")
    for name in inputs:
        if not rules[name]:
            continue
        c.append("static const nc_field_rule nc_fr_%d[] = {   /* %s */\n" % (idx[name], name))
        for fd, r in rules[name]:
            flags = []
            if "min" in r:
                flags.append("NC_FR_MIN")
            if "max" in r:
                flags.append("NC_FR_MAX")
            if "max_len" in r:
                flags.append("NC_FR_MAX_LEN")
            if "min_count" in r:
                flags.append("NC_FR_MIN_COUNT")
            if "max_count" in r:
                flags.append("NC_FR_MAX_COUNT")
            if r.get("nonempty"):
                flags.append("NC_FR_NONEMPTY")
            if r.get("ident"):
                flags.append("NC_FR_IDENT")
            dmin = dmax = "0"
            imin = imax = "0"
            umin = umax = "0"
            if fd.type in FLOATS:
                dmin = repr(float(r["min"])) if "min" in r else "0"
                dmax = repr(float(r["max"])) if "max" in r else "0"
            elif fd.type in SIGNED:
                imin = "INT64_C(%d)" % r["min"] if "min" in r else "0"
                imax = "INT64_C(%d)" % r["max"] if "max" in r else "0"
            elif fd.type in UNSIGNED:
                umin = "UINT64_C(%d)" % max(0, r["min"]) if "min" in r else "0"
                umax = "UINT64_C(%d)" % r["max"] if "max" in r else "0"
                if "max" in r and r["max"] < 0:
                    raise GenError("%s.%s: negative max on an unsigned field" % (name, fd.name))
            sub = "NULL"
            if fd.type == T_MESSAGE:
                sub = "&nc_msg_rules_all[%d]" % idx[fd.type_name.lstrip(".")]
            c.append("  { %d, %s, %s, %s, %s, %s, %s, %s, %d, %d, %d, %s },  /* %s */\n" % (
                fd.number, " | ".join(flags) if flags else "0", dmin, dmax, imin, imax,
                umin, umax, r.get("max_len", 0), r.get("min_count", 0),
                r.get("max_count", 0), sub, fd.name))
        c.append("};\n")
    c.append("\nconst nc_msg_rules nc_msg_rules_all[NC_MSG_RULES_COUNT] = {\n")
    for name in inputs:
        n = len(rules[name])
        c.append("  { &%s, %s, %d, %s, %d },\n" % (
            c_descriptor(name), c_string(name), n,
            ("nc_fr_%d" % idx[name]) if n else "NULL", 1 if walk[name] else 0))
    c.append("};\n")
    c.append("\nconst nc_rpc_method nc_rpc_methods[NC_RPC_COUNT] = {\n")
    for m in methods:
        flags = []
        for attr, fl in (("public", "NC_RPC_PUBLIC"), ("admin", "NC_RPC_ADMIN"),
                         ("needs_model", "NC_RPC_NEEDS_MODEL"), ("writes_db", "NC_RPC_WRITES_DB"),
                         ("slow", "NC_RPC_SLOW"), ("client_streaming", "NC_RPC_CLIENT_STREAMING"),
                         ("server_streaming", "NC_RPC_SERVER_STREAMING")):
            if getattr(m, attr):
                flags.append(fl)
        c.append("  { %s, %s, %s, %s,\n" % (c_string(m.path), c_string(m.service),
                                            c_string(m.name), c_string(m.iii_id)))
        c.append("    &%s, &%s, &nc_msg_rules_all[%d],\n" % (
            c_descriptor(m.input), c_descriptor(m.output), idx[m.input]))
        c.append("    %s,\n" % (" | ".join(flags) if flags else "0"))
        c.append("    %d, %d, %d, %s, %s },\n" % (
            m.max_request_bytes, m.default_deadline_ms, m.max_concurrency, m.handler,
            c_string(m.handler)))
    c.append("};\n")
    write(os.path.join(c_dir, "nc_rpc_table.c"), "".join(c))


def file_closure(schema, fi):
    """The file itself first, then its transitive dependencies (each once)."""
    out = []
    seen = set()

    def go(i):
        if i in seen:
            return
        seen.add(i)
        out.append(i)
        for d in schema.files[i].dependency:
            go(schema.file_index[d])

    go(fi)
    return out


def emit_reflection(schema, methods, c_dir):
    c = [C_HEADER_NOTE, "#include \"nc_reflect.h\"\n\n"]
    for i, f in enumerate(schema.files):
        data = f.SerializeToString()
        c.append("static const unsigned char nc_rf_data_%d[%d] = {  /* %s */\n" % (
            i, len(data), f.name))
        for k in range(0, len(data), 20):
            c.append("  " + ",".join("0x%02x" % b for b in data[k:k + 20]) + ",\n")
        c.append("};\n")
        clo = file_closure(schema, i)
        c.append("static const unsigned short nc_rf_clo_%d[] = { %s };\n" % (
            i, ", ".join(str(x) for x in clo)))
    c.append("\nconst nc_reflect_file nc_reflect_files[] = {\n")
    for i, f in enumerate(schema.files):
        c.append("  { %s, nc_rf_data_%d, sizeof nc_rf_data_%d, nc_rf_clo_%d, %d },\n" % (
            c_string(f.name), i, i, i, len(file_closure(schema, i))))
    c.append("};\nconst unsigned nc_reflect_n_files = %d;\n\n" % len(schema.files))
    syms = sorted(schema.symbols.items(), key=lambda kv: kv[0].encode())
    c.append("/* Sorted by strcmp for bsearch. */\nconst nc_reflect_symbol nc_reflect_symbols[] = {\n")
    for name, fi in syms:
        c.append("  { %s, %d },\n" % (c_string(name), fi))
    c.append("};\nconst unsigned nc_reflect_n_symbols = %d;\n\n" % len(syms))
    c.append("const nc_reflect_extension nc_reflect_extensions[] = {\n")
    for ext, num, fi in sorted(schema.extensions):
        c.append("  { %s, %d, %d },\n" % (c_string(ext), num, fi))
    if not schema.extensions:
        c.append("  { 0 },\n")
    c.append("};\nconst unsigned nc_reflect_n_extensions = %d;\n\n" % len(schema.extensions))
    services = sorted({m.service for m in methods})
    c.append("const char *const nc_reflect_services[] = {\n")
    for s in services:
        c.append("  %s,\n" % c_string(s))
    c.append("};\nconst unsigned nc_reflect_n_services = %d;\n" % len(services))
    write(os.path.join(c_dir, "nc_reflect_data.c"), "".join(c))


# ------------------------------------------------------------------------------------------
# JSON and Markdown
# ------------------------------------------------------------------------------------------

def type_name(fd):
    if fd.type in (T_MESSAGE, T_ENUM):
        return fd.type_name.lstrip(".")
    return TYPE_NAMES[fd.type]


def message_json(schema, name):
    m, f, path = schema.messages[name]
    fields = []
    for i, fd in enumerate(m.field):
        d = {
            "name": fd.name, "number": fd.number, "type": type_name(fd),
            "repeated": fd.label == LABEL_REPEATED,
        }
        if fd.HasField("default_value"):
            d["default"] = fd.default_value
        if fd.HasField("oneof_index"):
            d["oneof"] = m.oneof_decl[fd.oneof_index].name
        r = field_rule(schema, name, fd)
        if r:
            d["limits"] = r
        doc = schema.comment(f, path + (2, i))
        if doc:
            d["doc"] = doc
        fields.append(d)
    out = {"fields": fields}
    doc = schema.comment(f, path)
    if doc:
        out["doc"] = doc
    return out


def emit_json(schema, methods, path):
    names = reachable(schema, sorted({m.input for m in methods} | {m.output for m in methods}))
    enums = set()
    for n in names:
        for fd in schema.messages[n][0].field:
            if fd.type == T_ENUM:
                enums.add(fd.type_name.lstrip("."))
    doc = {
        "generator": "proto/gen_rpc_table.py",
        "methods": [],
        "messages": {n: message_json(schema, n) for n in sorted(names)},
        "enums": {},
    }
    for e in sorted(enums):
        ed, f, p = schema.enums[e]
        doc["enums"][e] = {v.name: v.number for v in ed.value}
    for m in methods:
        doc["methods"].append({
            "path": m.path, "service": m.service, "method": m.name,
            "input_type": m.input, "output_type": m.output,
            "client_streaming": m.client_streaming, "server_streaming": m.server_streaming,
            "iii_id": m.iii_id, "http_method": m.http_method, "http_path": m.http_path,
            "public": m.public, "admin": m.admin, "needs_model": m.needs_model,
            "writes_db": m.writes_db, "slow": m.slow,
            "max_request_bytes": m.max_request_bytes,
            "default_deadline_ms": m.default_deadline_ms,
            "max_concurrency": m.max_concurrency, "summary": m.summary, "doc": m.doc,
            "handler": m.handler,
        })
    write(path, json.dumps(doc, indent=1, sort_keys=False) + "\n")


def md_escape(s):
    return s.replace("|", "\\|").replace("\n", " ")


def limits_text(r):
    parts = []
    if "min" in r and "max" in r:
        parts.append("[%s, %s]" % (fmt_num(r["min"]), fmt_num(r["max"])))
    elif "min" in r:
        parts.append(">= %s" % fmt_num(r["min"]))
    elif "max" in r:
        parts.append("<= %s" % fmt_num(r["max"]))
    if "max_len" in r:
        parts.append("len <= %d" % r["max_len"])
    if "min_count" in r or "max_count" in r:
        parts.append("count %s..%s" % (r.get("min_count", 0), r.get("max_count", "")))
    if r.get("nonempty"):
        parts.append("non-empty")
    if r.get("ident"):
        parts.append("identifier")
    return ", ".join(parts)


def emit_md(schema, methods, path):
    L = []
    L.append("# nanochat.v1 API reference\n\n")
    L.append("<!-- Generated by proto/gen_rpc_table.py from proto/nanochat/v1/*.proto. Do not edit:\n"
             "     change the .proto comments and run `cmake --build build --target api-docs`. -->\n\n")
    L.append("All methods are gRPC (HTTP/2, protobuf). Send `authorization: Bearer <token>` when the "
             "server has a token configured; public methods need none. Admin methods need the admin "
             "token (a user token gets `PERMISSION_DENIED`). Every request passes one gate before "
             "its handler: auth, request size (`max_request_bytes`, over: `RESOURCE_EXHAUSTED`), "
             "decoding (`INVALID_ARGUMENT \"malformed request\"`), field validation (the limits "
             "below; every string must be valid UTF-8 without NUL bytes; floats must be finite; "
             "enum values must be known; errors name the field path, e.g. "
             "`messages[3].content: invalid UTF-8`), model readiness for methods marked *model*, "
             "a per-method concurrency slot, and the deadline (the client's, else the method's "
             "default).\n\n")
    L.append("## Methods\n\n")
    L.append("| method | kind | auth | iii id | HTTP | flags | max request | summary |\n")
    L.append("|---|---|---|---|---|---|---|---|\n")
    for m in methods:
        kind = "unary"
        if m.client_streaming and m.server_streaming:
            kind = "bidi stream"
        elif m.server_streaming:
            kind = "server stream"
        elif m.client_streaming:
            kind = "client stream"
        auth = "public" if m.public else ("admin" if m.admin else "user")
        flags = ", ".join(n for n, v in (("model", m.needs_model), ("writes", m.writes_db),
                                          ("slow", m.slow)) if v)
        http = ("%s `%s`" % (m.http_method, m.http_path)) if m.http_path else ""
        L.append("| [`%s`](#%s) | %s | %s | %s | %s | %s | %d | %s |\n" % (
            m.path, anchor(m.service_short + "." + m.name), kind, auth,
            ("`%s`" % m.iii_id) if m.iii_id else "", http, flags, m.max_request_bytes,
            md_escape(m.summary)))
    L.append("\n")
    services = []
    for m in methods:
        if m.service not in services:
            services.append(m.service)
    for s in services:
        L.append("## %s\n\n" % s)
        for m in methods:
            if m.service != s:
                continue
            L.append("### %s.%s\n\n" % (m.service_short, m.name))
            arrow = "stream " if m.server_streaming else ""
            L.append("`%s`: [`%s`](#%s)%s → %s[`%s`](#%s)\n\n" % (
                m.path, short(m.input), anchor(short(m.input)),
                " (stream)" if m.client_streaming else "", arrow, short(m.output),
                anchor(short(m.output))))
            if m.doc:
                L.append(m.doc + "\n\n")
            elif m.summary:
                L.append(m.summary + ".\n\n")
            facts = []
            if m.iii_id:
                facts.append("iii `%s`, %s `%s`" % (m.iii_id, m.http_method, m.http_path))
            facts.append("auth: %s" % ("public" if m.public else ("admin" if m.admin else "user")))
            if m.needs_model:
                facts.append("needs a loaded model")
            if m.writes_db:
                facts.append("writes the store")
            if m.slow:
                facts.append("runs on the worker pool")
            facts.append("max request %d bytes" % m.max_request_bytes)
            if m.default_deadline_ms:
                facts.append("default deadline %d ms" % m.default_deadline_ms)
            if m.max_concurrency:
                facts.append("at most %d at once" % m.max_concurrency)
            L.append("- " + "; ".join(facts) + ".\n\n")
    names = reachable(schema, sorted({m.input for m in methods} | {m.output for m in methods}))
    L.append("## Messages\n\n")
    enums = set()
    for n in sorted(names, key=lambda x: (not x.startswith("nanochat."), x)):
        m, f, p = schema.messages[n]
        L.append("### %s\n\n" % short(n))
        if short(n) != n:
            L.append("`%s`\n\n" % n)
        doc = schema.comment(f, p)
        if doc:
            L.append(doc + "\n\n")
        if not m.field:
            L.append("(no fields)\n\n")
            continue
        L.append("| # | field | type | default | limits | description |\n|---|---|---|---|---|---|\n")
        for i, fd in enumerate(m.field):
            t = type_name(fd)
            if fd.type in (T_MESSAGE, T_ENUM):
                if fd.type == T_ENUM:
                    enums.add(t)
                t = "[%s](#%s)" % (short(t), anchor(short(t)))
            if fd.label == LABEL_REPEATED:
                t = "repeated " + t
            if fd.HasField("oneof_index"):
                t += " (oneof %s)" % m.oneof_decl[fd.oneof_index].name
            r = field_rule(schema, n, fd)
            L.append("| %d | `%s` | %s | %s | %s | %s |\n" % (
                fd.number, fd.name, t,
                ("`%s`" % fd.default_value) if fd.HasField("default_value") else "",
                limits_text(r), md_escape(schema.comment(f, p + (2, i)))))
        L.append("\n")
    L.append("## Enums\n\n")
    for e in sorted(enums, key=lambda x: (not x.startswith("nanochat."), x)):
        ed, f, p = schema.enums[e]
        L.append("### %s\n\n" % short(e))
        doc = schema.comment(f, p)
        if doc:
            L.append(doc + "\n\n")
        L.append("| value | number | description |\n|---|---|---|\n")
        for i, v in enumerate(ed.value):
            L.append("| `%s` | %d | %s |\n" % (v.name, v.number,
                                                md_escape(schema.comment(f, p + (2, i)))))
        L.append("\n")
    write(path, "".join(L))


def short(full):
    for p in ("nanochat.v1.",):
        if full.startswith(p):
            return full[len(p):]
    return full


def anchor(title):
    return "".join(ch for ch in title.lower() if ch.isalnum() or ch in "-_ ").replace(" ", "-")


def write(path, text):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--descriptor-set", required=True)
    ap.add_argument("--pythonpath", required=True,
                    help="directory holding the generated nanochat/v1/options_pb2.py")
    ap.add_argument("--c-dir")
    ap.add_argument("--json")
    ap.add_argument("--md")
    args = ap.parse_args(argv)
    sys.path.insert(0, args.pythonpath)
    from google.protobuf import descriptor_pb2
    from nanochat.v1 import options_pb2
    with open(args.descriptor_set, "rb") as f:
        fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    try:
        schema = Schema(fds, options_pb2)
        methods = collect_methods(schema)
        roots = {n for n in schema.messages if n.startswith("nanochat.")}
        roots |= {m.input for m in methods} | {m.output for m in methods}
        check_acyclic(schema, roots)
        if args.c_dir:
            emit_c(schema, methods, args.c_dir)
            emit_reflection(schema, methods, args.c_dir)
        if args.json:
            emit_json(schema, methods, args.json)
        if args.md:
            emit_md(schema, methods, args.md)
    except GenError as e:
        print("gen_rpc_table.py: error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
