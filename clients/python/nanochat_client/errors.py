"""Typed errors: every gRPC status code a nanochatd call can end with becomes one exception class.

    try:
        client.complete("hi")
    except nanochat_client.FailedPrecondition as e:   # "no model loaded"
        print(e.code, e.message)
    except nanochat_client.NanochatError as e:        # any other failure
        ...

`NanochatError.code` is the grpc.StatusCode, `.message` the server's status message (never the
request text). `exit_code` is what the nanochat CLI exits with for this kind of error.
"""
import grpc


class NanochatError(Exception):
    """Base class. code: grpc.StatusCode; message: the server's (or the client's) message."""
    code = grpc.StatusCode.UNKNOWN
    exit_code = 1

    def __init__(self, message="", code=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self):
        name = self.code.name if isinstance(self.code, grpc.StatusCode) else str(self.code)
        return "%s: %s" % (name, self.message) if self.message else name


class Cancelled(NanochatError):
    code = grpc.StatusCode.CANCELLED
    exit_code = 130


class InvalidArgument(NanochatError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    exit_code = 3


class DeadlineExceeded(NanochatError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    exit_code = 4


class NotFound(NanochatError):
    code = grpc.StatusCode.NOT_FOUND
    exit_code = 5


class AlreadyExists(NanochatError):
    code = grpc.StatusCode.ALREADY_EXISTS
    exit_code = 6


class PermissionDenied(NanochatError):
    code = grpc.StatusCode.PERMISSION_DENIED
    exit_code = 7


class Unauthenticated(NanochatError):
    code = grpc.StatusCode.UNAUTHENTICATED
    exit_code = 7


class ResourceExhausted(NanochatError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    exit_code = 8


class FailedPrecondition(NanochatError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    exit_code = 9


class Aborted(NanochatError):
    code = grpc.StatusCode.ABORTED
    exit_code = 9


class OutOfRange(NanochatError):
    code = grpc.StatusCode.OUT_OF_RANGE
    exit_code = 3


class Unimplemented(NanochatError):
    code = grpc.StatusCode.UNIMPLEMENTED
    exit_code = 10


class Internal(NanochatError):
    code = grpc.StatusCode.INTERNAL
    exit_code = 11


class DataLoss(NanochatError):
    code = grpc.StatusCode.DATA_LOSS
    exit_code = 11


class Unavailable(NanochatError):
    code = grpc.StatusCode.UNAVAILABLE
    exit_code = 12


class Unknown(NanochatError):
    code = grpc.StatusCode.UNKNOWN
    exit_code = 1


class JobFailed(NanochatError):
    """Job.wait(check=True) on a job that ended FAILED / CANCELLED / INTERRUPTED. `.job` is the
    final JobInfo; code is ABORTED (the call worked, the job did not)."""
    code = grpc.StatusCode.ABORTED
    exit_code = 13

    def __init__(self, message, job):
        super().__init__(message)
        self.job = job


BY_CODE = {cls.code: cls for cls in (
    Cancelled, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists, PermissionDenied,
    Unauthenticated, ResourceExhausted, FailedPrecondition, Aborted, OutOfRange, Unimplemented,
    Internal, DataLoss, Unavailable, Unknown)}


def from_rpc_error(err):
    """grpc.RpcError (or anything with code()/details()) -> the matching NanochatError."""
    try:
        code = err.code()
        details = err.details() or ""
    except Exception:  # not a call object (e.g. a bare RpcError)
        return Unknown(str(err))
    cls = BY_CODE.get(code, Unknown)
    e = cls(details, code)
    e.__cause__ = err if isinstance(err, BaseException) else None
    return e
