"""The raw RPC layer, derived from the generated descriptors of proto/ (never hand-listed):

    rpc = Rpc(channel, metadata)
    rpc.Health.Check()                               # unary -> HealthCheckResponse
    rpc.Train.Status(job_id="...", follow=True)      # server stream -> Stream of JobEvent
    rpc.methods["/nanochat.v1.Chat/Complete"].options.default_deadline_ms

Requests are either a message or keyword fields (nested dicts for sub-messages, enum values
by name with or without their prefix: phase="sft" == phase="PHASE_SFT"). Every grpc.RpcError is
re-raised as the typed error of nanochat_client.errors.
"""
import grpc

from . import errors
from ._gen import options_pb2, services_pb2
from google.protobuf import symbol_database
from google.protobuf.descriptor import FieldDescriptor

_SYMBOLS = symbol_database.Default()


class Method:
    """One RPC of proto/nanochat/v1/services.proto with its (nanochat.v1.rpc) options."""

    def __init__(self, service_desc, method_desc):
        self.service = service_desc.name
        self.name = method_desc.name
        self.path = "/%s/%s" % (service_desc.full_name, method_desc.name)
        self.input_cls = _SYMBOLS.GetSymbol(method_desc.input_type.full_name)
        self.output_cls = _SYMBOLS.GetSymbol(method_desc.output_type.full_name)
        self.client_streaming = method_desc.client_streaming
        self.server_streaming = method_desc.server_streaming
        self.options = method_desc.GetOptions().Extensions[options_pb2.rpc]

    def __repr__(self):
        return "<Method %s%s>" % (self.path, " (stream)" if self.server_streaming else "")


def all_methods():
    """path -> Method for every method of every nanochat.v1 service."""
    out = {}
    for sd in services_pb2.DESCRIPTOR.services_by_name.values():
        for md in sd.methods:
            m = Method(sd, md)
            out[m.path] = m
    return out


def _enum_value(fd, v):
    if not isinstance(v, str):
        return v
    names = {ev.name: ev.number for ev in fd.enum_type.values}
    if v in names:
        return names[v]
    # accept the name without the enum's common prefix, any case: "sft" -> PHASE_SFT
    up = v.upper()
    for name, num in names.items():
        if name.endswith("_" + up):
            return num
    raise errors.InvalidArgument("%s: unknown value %r (one of %s)" % (fd.name, v, ", ".join(names)))


def make_message(cls, fields):
    """Builds cls from a dict of field values (nested dicts, enum names, lists)."""
    msg = cls()
    if isinstance(fields, cls):
        return fields
    for key, val in fields.items():
        if val is None:
            continue
        fd = cls.DESCRIPTOR.fields_by_name.get(key)
        if fd is None:
            raise errors.InvalidArgument("%s has no field %r" % (cls.DESCRIPTOR.name, key))
        is_map = (fd.type == FieldDescriptor.TYPE_MESSAGE and
                  fd.message_type.GetOptions().map_entry)
        if is_map:
            getattr(msg, key).update(val)
        elif fd.label == FieldDescriptor.LABEL_REPEATED:
            target = getattr(msg, key)
            for item in val:
                if fd.type == FieldDescriptor.TYPE_MESSAGE:
                    target.add().CopyFrom(make_message(_SYMBOLS.GetSymbol(fd.message_type.full_name), item))
                elif fd.type == FieldDescriptor.TYPE_ENUM:
                    target.append(_enum_value(fd, item))
                else:
                    target.append(item)
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:
            sub = make_message(_SYMBOLS.GetSymbol(fd.message_type.full_name), val)
            getattr(msg, key).CopyFrom(sub)
        elif fd.type == FieldDescriptor.TYPE_ENUM:
            setattr(msg, key, _enum_value(fd, val))
        else:
            try:
                setattr(msg, key, val)
            except (TypeError, ValueError) as e:
                raise errors.InvalidArgument("%s: %s" % (key, e)) from None
    return msg


class Cancellable:
    """An iterator over a running call: cancel() ends it early; as a context manager it
    cancels on exit. Subclasses define __next__ and self._call (anything with cancel())."""

    def __iter__(self):
        return self

    def cancel(self):
        self._call.cancel()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cancel()


class Stream(Cancellable):
    """A server stream: iterate for messages. Errors are typed."""

    def __init__(self, call):
        self._call = call

    def __next__(self):
        try:
            return next(self._call)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e) from None


class _Bound:
    """A Method bound to a channel: call it with a request message or keyword fields."""

    def __init__(self, rpc, method):
        self._rpc = rpc
        self.method = method
        if method.server_streaming:
            self._mc = rpc.channel.unary_stream(method.path, method.input_cls.SerializeToString,
                                                method.output_cls.FromString)
        else:
            self._mc = rpc.channel.unary_unary(method.path, method.input_cls.SerializeToString,
                                               method.output_cls.FromString)

    def __call__(self, request=None, timeout=None, **fields):
        m = self.method
        req = make_message(m.input_cls, request if request is not None else fields)
        if timeout is None and not m.server_streaming and not m.options.default_deadline_ms:
            timeout = self._rpc.timeout   # else the server applies the method's default
        try:
            call = self._mc(req, timeout=timeout, metadata=self._rpc.metadata)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e) from None
        return Stream(call) if m.server_streaming else call


class _Service:
    def __init__(self, rpc, name):
        self._rpc = rpc
        self._name = name

    def __getattr__(self, name):
        m = self._rpc.methods.get("/nanochat.v1.%s/%s" % (self._name, name))
        if m is None:
            raise AttributeError("nanochat.v1.%s has no method %s" % (self._name, name))
        b = _Bound(self._rpc, m)
        setattr(self, name, b)
        return b


class Rpc:
    """Every nanochat.v1 method as rpc.<Service>.<Method>(...)."""

    def __init__(self, channel, metadata=(), timeout=30.0):
        self.channel = channel
        self.metadata = tuple(metadata)
        self.timeout = timeout
        self.methods = all_methods()
        self.services = sorted({m.service for m in self.methods.values()})

    def __getattr__(self, name):
        if name in self.__dict__.get("services", ()):
            s = _Service(self, name)
            setattr(self, name, s)
            return s
        raise AttributeError(name)

    def call(self, path, request=None, timeout=None, **fields):
        """Calls a method by its path, e.g. "/nanochat.v1.Health/Check"."""
        m = self.methods.get(path)
        if m is None:
            raise errors.InvalidArgument("unknown method %s" % path)
        return _Bound(self, m)(request, timeout, **fields)
