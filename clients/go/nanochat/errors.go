package nanochat

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is the typed error of every call: the gRPC status code and the server's message.
// Match kinds with errors.Is(err, nanochat.ErrUnimplemented) (any *Error with the same code
// matches) or read Code(err).
type Error struct {
	Code    codes.Code
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return codeName(e.Code)
	}
	return codeName(e.Code) + ": " + e.Message
}

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

// Sentinels for errors.Is, one per status code a call can end with.
var (
	ErrCancelled          = &Error{Code: codes.Canceled}
	ErrUnknown            = &Error{Code: codes.Unknown}
	ErrInvalidArgument    = &Error{Code: codes.InvalidArgument}
	ErrDeadlineExceeded   = &Error{Code: codes.DeadlineExceeded}
	ErrNotFound           = &Error{Code: codes.NotFound}
	ErrAlreadyExists      = &Error{Code: codes.AlreadyExists}
	ErrPermissionDenied   = &Error{Code: codes.PermissionDenied}
	ErrResourceExhausted  = &Error{Code: codes.ResourceExhausted}
	ErrFailedPrecondition = &Error{Code: codes.FailedPrecondition}
	ErrAborted            = &Error{Code: codes.Aborted}
	ErrOutOfRange         = &Error{Code: codes.OutOfRange}
	ErrUnimplemented      = &Error{Code: codes.Unimplemented}
	ErrInternal           = &Error{Code: codes.Internal}
	ErrUnavailable        = &Error{Code: codes.Unavailable}
	ErrDataLoss           = &Error{Code: codes.DataLoss}
	ErrUnauthenticated    = &Error{Code: codes.Unauthenticated}
)

var codeNames = map[codes.Code]string{
	codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN",
	codes.InvalidArgument: "INVALID_ARGUMENT", codes.DeadlineExceeded: "DEADLINE_EXCEEDED",
	codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
	codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED",
	codes.OutOfRange: "OUT_OF_RANGE", codes.Unimplemented: "UNIMPLEMENTED",
	codes.Internal: "INTERNAL", codes.Unavailable: "UNAVAILABLE", codes.DataLoss: "DATA_LOSS",
	codes.Unauthenticated: "UNAUTHENTICATED",
}

func codeName(c codes.Code) string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("CODE_%d", uint32(c))
}

// wrap turns a gRPC (or context) error into an *Error; nil stays nil.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: codes.DeadlineExceeded, Message: err.Error()}
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Code: codes.Canceled, Message: err.Error()}
	}
	st, _ := status.FromError(err)
	return &Error{Code: st.Code(), Message: st.Message()}
}

// Code is the status code of err (codes.OK for nil, codes.Unknown for foreign errors).
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return status.Code(err)
}
