#!/usr/bin/python3
"""gen_node_types.py: writes the Node SDK's TypeScript declarations (index.d.ts) from
build/gen/rpc_table.json (itself generated from proto/) and the hand-written declarations of
index.js's classes (index.d.ts.in). No message definition is restated by hand.

Generated, for every nanochat.v1 message reachable from a nanochat.v1 method:
  <Msg>       the object the SDK delivers (@grpc/proto-loader with keepCase, longs: Number,
              enums: String, defaults: true, oneofs: true): proto field names; every field
              outside a oneof present (scalars at their proto2 default, sub-messages null,
              repeated []); a oneof as a union discriminated by its virtual name field
              (`event: 'delta'`); 64-bit integers as number; bytes as Buffer; map fields as
              arrays of {key, value} (proto-loader's descriptor-set path keeps entry messages).
  <Msg>Input  what a request may hold: every field optional, enums by name or number,
              64-bit integers as number or decimal string, bytes as Uint8Array or base64.
and every enum as a union of its value names, the method paths, and RpcServices (the typed
rpc.<Service>.<Method> layer).

Usage: gen_node_types.py RPC_TABLE_JSON TEMPLATE OUT
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto"))
from gen_rpc_table import write  # noqa: E402  (atomic write, one copy)

PKG = "nanochat.v1."
SCALAR_OUT = {
    "double": "number", "float": "number", "int32": "number", "uint32": "number",
    "sint32": "number", "fixed32": "number", "sfixed32": "number",
    "int64": "number", "uint64": "number", "sint64": "number", "fixed64": "number",
    "sfixed64": "number", "bool": "boolean", "string": "string", "bytes": "Buffer",
}
LONGS = {"int64", "uint64", "sint64", "fixed64", "sfixed64"}
MARKER = "/* @GENERATED_MESSAGES@ */"


class GenError(Exception):
    pass


def ts_name(full):
    """nanochat.v1.JobInfo.MetricsEntry -> JobInfo_MetricsEntry."""
    if not full.startswith(PKG):
        raise GenError("type outside %s: %s" % (PKG, full))
    return full[len(PKG):].replace(".", "_")


def doc_comment(text, indent, extra=()):
    lines = [l.rstrip() for l in (text or "").strip().splitlines()] + list(extra)
    lines = [l.replace("*/", "*\\/") for l in lines]
    while lines and not lines[0]:
        lines.pop(0)
    if not lines:
        return []
    if len(lines) == 1:
        return ["%s/** %s */" % (indent, lines[0])]
    # the first line opens the comment (keeps the generated file compact)
    return ["%s/** %s" % (indent, lines[0])] + \
        ["%s * %s" % (indent, l) if l else indent + " *" for l in lines[1:]] + [indent + " */"]


def field_notes(f):
    notes = []
    if "default" in f:
        notes.append("Default: %s." % f["default"])
    lim = f.get("limits")
    if lim:
        notes.append("Limits: %s." % ", ".join("%s %s" % (k, json.dumps(v))
                                              for k, v in sorted(lim.items())))
    return [" ".join(notes)] if notes else []


def out_type(f):
    t = f["type"]
    return SCALAR_OUT[t] if t in SCALAR_OUT else ts_name(t)


def in_type(f, messages):
    t = f["type"]
    if t in LONGS:
        return "number | string"
    if t == "bytes":
        return "Uint8Array | string"
    if t in SCALAR_OUT:
        return SCALAR_OUT[t]
    if t not in messages:
        return "%s | number" % ts_name(t)  # an enum
    if t in messages:
        return ts_name(t) + "Input"
    raise GenError("unknown type %s" % t)


def reachable(table, roots):
    seen, order = set(), []

    def go(n):
        if n in seen:
            return
        if n not in table["messages"]:
            raise GenError("message %s missing from rpc_table.json" % n)
        seen.add(n)
        order.append(n)
        for f in table["messages"][n]["fields"]:
            if f["type"] in table["messages"]:
                go(f["type"])
    for r in roots:
        go(r)
    return sorted(order)


def emit_message(name, msg, messages, want_out, want_in):
    tn = ts_name(name)
    fields = msg["fields"]
    plain = [f for f in fields if "oneof" not in f]
    oneofs = {}
    for f in fields:
        if "oneof" in f:
            oneofs.setdefault(f["oneof"], []).append(f)
    out = []
    if want_out:
        out += emit_output(tn, name, msg, plain, oneofs, messages)
    if want_in:
        out += emit_input(tn, name, msg, messages)
    return out


def field_lines(f, t, messages, opt):
    """The doc comment and declaration of field f of element type t (opt: "" or "?")."""
    if f["repeated"]:
        t = "%s[]" % (t if " " not in t else "(%s)" % t)
    elif f["type"] in messages:
        t += " | null"
    return doc_comment(f.get("doc"), "  ", field_notes(f)) + ["  %s%s: %s;" % (f["name"], opt, t)]


def emit_output(tn, name, msg, plain, oneofs, messages):
    out = doc_comment(msg.get("doc"), "", ["", "As delivered by the SDK (proto `%s`)." % name])
    body = []
    for f in plain:
        body += field_lines(f, out_type(f), messages, "")
    if not oneofs:
        out.append("export interface %s {" % tn)
        out += body
        out.append("}")
    else:
        if body:
            out.append("export type %s = {" % tn)
            out += body
            out.append("}")
        else:
            out.append("export type %s = {}" % tn)
        for oname, members in sorted(oneofs.items()):
            alts = ["{ %s?: undefined; %s }" % (oname, " ".join("%s?: undefined;" % m["name"]
                                                                for m in members))]
            for m in members:
                others = " ".join("%s?: undefined;" % o["name"] for o in members if o is not m)
                alts.append("{ %s: '%s'; %s: %s; %s}" % (oname, m["name"], m["name"],
                                                         out_type(m),
                                                         others + " " if others else ""))
            out.append("  & (" + "\n    | ".join(alts) + ")")
        out[-1] += ";"
    out.append("")
    return out


def emit_input(tn, name, msg, messages):
    out = doc_comment(msg.get("doc"), "", ["", "Request form of `%s` (every field optional)."
                                            % name])
    out.append("export interface %sInput {" % tn)
    for f in msg["fields"]:
        out += field_lines(f, in_type(f, messages), messages, "?")
    out.append("}")
    out.append("")
    return out


def generate(table, template):
    methods = [m for m in table["methods"] if m["service"].startswith(PKG)]
    if not methods:
        raise GenError("no %s methods in rpc_table.json" % PKG)
    for m in methods:
        if m["client_streaming"]:
            raise GenError("%s: client streaming is not supported by index.js" % m["path"])
    outs = set(reachable(table, sorted({m["output_type"] for m in methods})))
    ins = set(reachable(table, sorted({m["input_type"] for m in methods})))
    names = sorted(outs | ins)
    messages = set(names)
    used_enums = sorted({f["type"] for n in names for f in table["messages"][n]["fields"]
                         if f["type"] in table["enums"]})
    out = ["// index.d.ts — GENERATED by clients/node/gen_node_types.py from rpc_table.json",
           "// (proto/ is the source) and index.d.ts.in. Do not edit: `cmake --build build "
           "--target node-types`",
           "// refreshes this copy; ctest sdk_node.typescript_declarations_current fails when "
           "it is stale.", ""]
    tmpl_head, sep, tmpl_tail = template.partition(MARKER)
    if not sep:
        raise GenError("template lacks %s" % MARKER)
    out.append(tmpl_head.rstrip("\n"))
    out.append("")
    out.append("// ---- enums (value names, as proto-loader's enums: String delivers them) ----")
    out.append("")
    for e in used_enums:
        vals = table["enums"][e]
        out += doc_comment("Enum `%s`." % e, "")
        out.append("export type %s =\n  | %s;" % (ts_name(e), "\n  | ".join(
            "'%s'" % v for v in sorted(vals, key=lambda k: vals[k]))))
        out.append("")
    out.append("// ---- messages ----")
    out.append("")
    for n in names:
        out += emit_message(n, table["messages"][n], messages, n in outs, n in ins)
    out.append("// ---- methods ----")
    out.append("")
    out.append("/** Every nanochat.v1 method path (keys of methods()). */")
    out.append("export type MethodPath =\n  | %s;" % "\n  | ".join("'%s'" % m["path"]
                                                             for m in methods))
    out.append("")
    out.append("/** One row of rpc_table.json's methods (MethodInfo.row). */")
    out.append("export interface RpcTableRow {")
    for k, v in methods[0].items():
        t = {bool: "boolean", int: "number", str: "string"}.get(type(v))
        if t is None:
            raise GenError("rpc_table.json method key %s: unexpected value %r" % (k, v))
        out.append("  %s: %s;" % (k, t))
    out.append("}")
    out.append("")
    out.append("/** rpc.<Service>.<Method>(request, {timeoutMs}): unary methods resolve to the "
               "response,")
    out.append(" *  server-streaming ones return a Stream of responses. */")
    out.append("export interface RpcServices {")
    services = {}
    for m in methods:
        services.setdefault(m["service"][len(PKG):], []).append(m)
    for svc in sorted(services):
        out.append("  %s: {" % svc)
        for m in services[svc]:
            req, resp = ts_name(m["input_type"]) + "Input", ts_name(m["output_type"])
            ret = ("Stream<%s>" if m["server_streaming"] else "Promise<%s>") % resp
            out += doc_comment(m.get("doc") or m.get("summary"), "    ",
                               ["", "`%s`%s" % (m["path"], (", server default deadline %d ms"
                                                            % m["default_deadline_ms"])
                                                if m["default_deadline_ms"] else "")])
            out.append("    %s(request?: %s, options?: CallOptions): %s;" % (m["method"], req, ret))
        out.append("  };")
    out.append("}")
    out.append(tmpl_tail.rstrip("\n"))
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    try:
        with open(argv[1]) as f:
            table = json.load(f)
        with open(argv[2]) as f:
            template = f.read()
        text = generate(table, template)
    except (OSError, ValueError, KeyError, GenError) as e:
        sys.stderr.write("gen_node_types.py: %s\n" % e)
        return 1
    write(argv[3], text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
