// status.mjs — gRPC status → HTTP status, and the one error envelope the adapter answers with.
//
// The mapping follows google/rpc/code.proto's HTTP equivalents, with one documented choice:
// FAILED_PRECONDITION → 409 Conflict (the server is not in the state the call needs: no model
// loaded, job already finished, sandbox unavailable). 412 is left to HTTP conditional requests
// (If-Match), which this API does not use.

/** gRPC status codes by number (grpc/status.h). */
export const GRPC_CODE_NAMES = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND',
  'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED',
  'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
];

export const Code = Object.freeze(Object.fromEntries(GRPC_CODE_NAMES.map((n, i) => [n, i])));

/** HTTP status for each gRPC code (index = code). */
const HTTP_BY_CODE = [
  200, // OK
  499, // CANCELLED (client closed request)
  500, // UNKNOWN
  400, // INVALID_ARGUMENT
  504, // DEADLINE_EXCEEDED
  404, // NOT_FOUND
  409, // ALREADY_EXISTS
  403, // PERMISSION_DENIED
  429, // RESOURCE_EXHAUSTED
  409, // FAILED_PRECONDITION (documented choice, see above)
  409, // ABORTED
  400, // OUT_OF_RANGE
  501, // UNIMPLEMENTED
  500, // INTERNAL
  503, // UNAVAILABLE
  500, // DATA_LOSS
  401, // UNAUTHENTICATED
];

/** Name of a gRPC status code; 'UNKNOWN' for anything out of range. */
export function codeName(code) {
  return Number.isInteger(code) && code >= 0 && code < GRPC_CODE_NAMES.length
    ? GRPC_CODE_NAMES[code] : 'UNKNOWN';
}

/** HTTP status for a gRPC status code; 500 for anything out of range. */
export function httpStatus(code) {
  return Number.isInteger(code) && code >= 0 && code < HTTP_BY_CODE.length
    ? HTTP_BY_CODE[code] : 500;
}

/**
 * An error the adapter raises itself (bad JSON, wrong type, size cap) or got from nanochatd.
 * `code` is a gRPC status code; `http` overrides the mapped HTTP status (413, 415); `field`
 * names the offending request field when known.
 */
export class CallError extends Error {
  constructor(code, message, { field, http } = {}) {
    super(message);
    this.name = 'CallError';
    this.code = code;
    if (field !== undefined) this.field = field;
    if (http !== undefined) this.http = http;
  }
}

// nanochatd's field errors read "<field path>: <rule>", e.g. "messages[3].content: invalid UTF-8"
const FIELD_RE = /^([A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])*(?:\.[A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])*)*): /;

/** Turns a grpc-js error (or anything thrown) into a CallError. */
export function fromGrpcError(err) {
  if (err instanceof CallError) return err;
  const code = Number.isInteger(err?.code) && err.code > 0 && err.code < GRPC_CODE_NAMES.length
    ? err.code : Code.INTERNAL;
  let message = typeof err?.details === 'string' ? err.details
    : typeof err?.message === 'string' ? err.message : String(err);
  if (message.length > 1024) message = message.slice(0, 1024) + '…';
  const out = new CallError(code, message);
  if (code === Code.INVALID_ARGUMENT) {
    const m = FIELD_RE.exec(message);
    if (m) out.field = m[1];
  }
  return out;
}

/** The JSON body of an error: {error: {code, message, grpc_code, field?}}. */
export function errorBody(err) {
  const e = fromGrpcError(err);
  const body = { error: { code: codeName(e.code), message: e.message, grpc_code: e.code } };
  if (e.field !== undefined) body.error.field = e.field;
  return body;
}

/** The iii HTTP response envelope of an error ({status_code, headers, body}). */
export function errorResponse(err) {
  const e = fromGrpcError(err);
  const status = e.http ?? httpStatus(e.code);
  const headers = { 'content-type': 'application/json' };
  if (status === 429 || status === 503) headers['retry-after'] = '1';
  return { status_code: status, headers, body: errorBody(e) };
}
