"""nanochat_client — Python SDK of nanochatd, over the stubs generated from proto/ at build time.

    from nanochat_client import Client, NanochatError
    c = Client("127.0.0.1:50051", token=None)
    for piece in c.chat("hello"):
        print(piece, end="")

API reference (generated from the proto comments): docs/api.md.
"""
from . import errors
from ._gen import (chat_pb2, checkpoint_pb2, common_pb2, eval_pb2, health_pb2, model_pb2,  # noqa: F401
                   tokenizer_pb2, tools_pb2, train_pb2)
from .client import ChatStream, Client, DEFAULT_ADDRESS
from .errors import (Aborted, AlreadyExists, Cancelled, DataLoss, DeadlineExceeded,  # noqa: F401
                     FailedPrecondition, Internal, InvalidArgument, JobFailed, NanochatError,
                     NotFound, OutOfRange, PermissionDenied, ResourceExhausted, Unauthenticated,
                     Unavailable, Unimplemented, Unknown)
from .jobs import TERMINAL, Job, JobEvents, kind_name, state_name
from .rpc import Rpc, Stream, all_methods, make_message

__all__ = ["Client", "ChatStream", "Job", "JobEvents", "Rpc", "Stream", "errors", "NanochatError",
           "TERMINAL", "DEFAULT_ADDRESS", "all_methods", "make_message", "kind_name", "state_name"]
