"""Command-line flags generated from a request message of proto/ (never hand-listed):
every scalar field becomes --field-name (sub-messages flatten to --parent-field), enum fields
take their value names (lower case, without the enum prefix), bools get --x / --no-x, repeated
scalars may be given several times. Help text, defaults and limits come from rpc_table.json
(built from the proto comments) when it is available."""
import argparse
import json
import os

from google.protobuf.descriptor import FieldDescriptor as FD

INTS = {FD.TYPE_INT32, FD.TYPE_INT64, FD.TYPE_UINT32, FD.TYPE_UINT64, FD.TYPE_SINT32,
        FD.TYPE_SINT64, FD.TYPE_FIXED32, FD.TYPE_FIXED64, FD.TYPE_SFIXED32, FD.TYPE_SFIXED64}
FLOATS = {FD.TYPE_FLOAT, FD.TYPE_DOUBLE}
PREFIX = "f:"

_TABLE = None


def rpc_table():
    """rpc_table.json (path from $NANOCHAT_RPC_TABLE, set by the build/bin/nanochat launcher),
    or {} when it cannot be read (help is then shorter, nothing else changes)."""
    global _TABLE
    if _TABLE is None:
        _TABLE = {}
        path = os.environ.get("NANOCHAT_RPC_TABLE")
        if path:
            try:
                with open(path) as f:
                    _TABLE = json.load(f)
            except (OSError, ValueError):
                _TABLE = {}
    return _TABLE


def _field_docs(msg_desc):
    m = rpc_table().get("messages", {}).get(msg_desc.full_name, {})
    return {f["name"]: f for f in m.get("fields", [])}


def enum_short(ev_name, enum_desc):
    """PHASE_SFT -> "sft" (the common prefix of the enum's value names dropped)."""
    names = [v.name for v in enum_desc.values]
    prefix = os.path.commonprefix(names)
    prefix = prefix[:prefix.rfind("_") + 1] if "_" in prefix else ""
    return ev_name[len(prefix):].lower() if ev_name.startswith(prefix) and prefix else ev_name.lower()


def _help(info):
    parts = []
    if info.get("doc"):
        parts.append(" ".join(info["doc"].split()))
    if info.get("default") not in (None, ""):
        parts.append("default %s" % info["default"])
    lim = info.get("limits") or {}
    if "min" in lim or "max" in lim:
        parts.append("range [%s, %s]" % (lim.get("min", ""), lim.get("max", "")))
    if "max_len" in lim:
        parts.append("max %d bytes" % lim["max_len"])
    return "; ".join(parts) or None


def add_message_flags(parser, msg_desc, prefix="", skip=(), depth=0):
    """Adds one flag per field of msg_desc (recursing once into sub-messages)."""
    docs = _field_docs(msg_desc)
    for fd in msg_desc.fields:
        if fd.name in skip:
            continue
        path = prefix + fd.name
        flag = "--" + path.replace(".", "-").replace("_", "-")
        dest = PREFIX + path
        h = _help(docs.get(fd.name, {}))
        if fd.type == FD.TYPE_MESSAGE:
            if fd.message_type.GetOptions().map_entry or fd.label == FD.LABEL_REPEATED or depth > 0:
                continue
            add_message_flags(parser, fd.message_type, path + ".", depth=depth + 1)
            continue
        kw = dict(dest=dest, default=None, help=h)
        if fd.type == FD.TYPE_BOOL:
            kw["action"] = argparse.BooleanOptionalAction
        elif fd.type == FD.TYPE_ENUM:
            kw["choices"] = [enum_short(v.name, fd.enum_type) for v in fd.enum_type.values]
        elif fd.type in INTS:
            kw["type"] = int
            kw["metavar"] = "N"
        elif fd.type in FLOATS:
            kw["type"] = float
            kw["metavar"] = "X"
        else:
            kw["metavar"] = "TEXT"
        if fd.label == FD.LABEL_REPEATED and fd.type != FD.TYPE_BOOL:
            kw["action"] = "append"
        parser.add_argument(flag, **kw)


def collect(ns, msg_desc):
    """The flags given on the command line as a nested dict for nanochat_client.make_message."""
    out = {}
    for key, val in vars(ns).items():
        if not key.startswith(PREFIX) or val is None:
            continue
        parts = key[len(PREFIX):].split(".")
        d = out
        desc = msg_desc
        for p in parts[:-1]:
            d = d.setdefault(p, {})
            desc = desc.fields_by_name[p].message_type
        fd = desc.fields_by_name[parts[-1]]
        if fd.type == FD.TYPE_BYTES:
            val = [v.encode() for v in val] if isinstance(val, list) else val.encode()
        d[parts[-1]] = val
    return out
