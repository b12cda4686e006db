"""Finds the Python stubs protoc + grpc_python_plugin generate from proto/ at build time
(build/gen/python: packages nanochat.v1 and nc_grpc_std) and imports them.

Search order: already importable (PYTHONPATH); $NANOCHAT_GEN_PY; <repo>/build/gen/python
next to this checkout. Nothing here is hand-written message code."""
import os
import sys


def _add_path():
    try:
        import nanochat.v1.services_pb2  # noqa: F401
        return
    except ImportError:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    cands = [os.environ.get("NANOCHAT_GEN_PY"),
             os.path.join(here, "..", "..", "..", "build", "gen", "python")]
    for c in cands:
        if c and os.path.isfile(os.path.join(c, "nanochat", "v1", "services_pb2.py")):
            sys.path.insert(0, os.path.abspath(c))
            return
    raise ImportError("nanochat_client: generated stubs not found; build the project "
                      "(cmake --build build) or set NANOCHAT_GEN_PY=build/gen/python")


_add_path()

from nanochat.v1 import (chat_pb2, checkpoint_pb2, common_pb2, eval_pb2, health_pb2,  # noqa: E402,F401
                         model_pb2, options_pb2, services_pb2, services_pb2_grpc, tokenizer_pb2,
                         tools_pb2, train_pb2)
from nc_grpc_std.health.v1 import health_pb2 as std_health_pb2  # noqa: E402,F401
from nc_grpc_std.health.v1 import health_pb2_grpc as std_health_pb2_grpc  # noqa: E402,F401
