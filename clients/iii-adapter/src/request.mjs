// request.mjs — unwraps one iii invocation into a nanochat request.
//
// Two shapes arrive (specs/iii.md §2.2–2.3):
//  * HTTP-triggered: the engine's HttpRequest envelope {query_params, path_params, headers, path,
//    method, body, trigger:{type:"http"}, request_body, response}. The request message is the
//    JSON body (POST) or the query parameters (GET); the bearer token is the `authorization`
//    header; `response` is the channel writer used for SSE.
//  * Direct (another worker's iii.trigger()): the payload is the request message itself plus
//    optional adapter keys: `_authorization` ("Bearer <token>"), `_channel` (a channel writer for
//    streaming methods), `_timeout_ms`. The engine's `_caller_worker_id` is dropped.
import { CallError, Code } from './status.mjs';
import { encode, queryToMessage, toMessage } from './schema.mjs';

const CONTROL_KEYS = new Set(['_caller_worker_id', '_authorization', '_channel', '_timeout_ms']);

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** True for the engine's HTTP request envelope. */
export function isHttpEnvelope(input) {
  return isObject(input) && ((isObject(input.trigger) && input.trigger.type === 'http') ||
    (isObject(input.query_params) && isObject(input.headers) && typeof input.method === 'string'));
}

/** Header lookup tolerant of case and of list values (the engine sends lower-case strings). */
export function header(headers, name) {
  if (!isObject(headers)) return undefined;
  let v = headers[name];
  if (v === undefined) {
    const k = Object.keys(headers).find((h) => h.toLowerCase() === name);
    if (k !== undefined) v = headers[k];
  }
  if (Array.isArray(v)) v = v[0];
  return typeof v === 'string' ? v : undefined;
}

function httpBody(input) {
  const ctype = (header(input.headers, 'content-type') || '').toLowerCase();
  const clen = Number(header(input.headers, 'content-length') || 0);
  const hasBody = clen > 0 || header(input.headers, 'transfer-encoding') !== undefined;
  if (ctype.includes('application/json')) {
    if (input.body === null || input.body === undefined) {
      if (!hasBody) return {};
      throw new CallError(Code.INVALID_ARGUMENT, 'body: not a JSON object (invalid JSON or null)', { field: 'body' });
    }
    if (!isObject(input.body)) {
      throw new CallError(Code.INVALID_ARGUMENT, 'body: expected a JSON object', { field: 'body' });
    }
    return input.body;
  }
  if (hasBody) {
    throw new CallError(Code.INVALID_ARGUMENT, 'body: send it as JSON with Content-Type: application/json',
      { field: 'body', http: 415 });
  }
  return {};
}

/**
 * Parses an invocation for table row `row` (input type `inType`). Returns
 * {http, msg, bytes, auth, timeoutMs, channel, response, headers}. Throws CallError.
 */
export function parseInvocation(row, inType, input) {
  let http = false;
  let raw;
  const out = { auth: undefined, timeoutMs: undefined, channel: undefined, response: undefined, headers: {} };
  if (isHttpEnvelope(input)) {
    http = true;
    out.headers = isObject(input.headers) ? input.headers : {};
    out.response = input.response;
    out.auth = header(out.headers, 'authorization');
    if (row.http_method === 'GET') {
      out.msg = queryToMessage(inType, isObject(input.query_params) ? input.query_params : {});
    } else {
      out.msg = toMessage(inType, httpBody(input));
    }
  } else {
    if (input === null || input === undefined) raw = {};
    else if (isObject(input)) raw = input;
    else throw new CallError(Code.INVALID_ARGUMENT, 'payload: expected a JSON object', { field: 'payload' });
    const fields = {};
    for (const [k, v] of Object.entries(raw)) {
      if (!k.startsWith('_')) fields[k] = v;
      else if (!CONTROL_KEYS.has(k)) {
        throw new CallError(Code.INVALID_ARGUMENT, `${k}: unknown field`, { field: k });
      }
    }
    if (raw._authorization !== undefined) out.auth = raw._authorization;
    if (raw._timeout_ms !== undefined) {
      const t = raw._timeout_ms;
      if (!Number.isInteger(t) || t < 1 || t > 86400000) {
        throw new CallError(Code.INVALID_ARGUMENT, '_timeout_ms: expected an integer in [1, 86400000]', { field: '_timeout_ms' });
      }
      out.timeoutMs = t;
    }
    if (raw._channel !== undefined) {
      const c = raw._channel;
      if (!c || typeof c.sendMessage !== 'function' || !c.stream || typeof c.stream.write !== 'function') {
        throw new CallError(Code.INVALID_ARGUMENT, '_channel: expected a channel writer reference', { field: '_channel' });
      }
      out.channel = c;
    }
    out.msg = toMessage(inType, fields);
  }
  out.http = http;
  // SSE resumption: Last-Event-ID n continues a from_seq stream at n + 1
  const last = http ? header(out.headers, 'last-event-id') : undefined;
  if (last !== undefined && /^\d{1,19}$/.test(last) && inType.fields.from_seq && out.msg.from_seq === undefined) {
    out.msg.from_seq = (BigInt(last) + 1n).toString();
  }
  out.bytes = encode(inType, out.msg);
  if (out.bytes.length > row.max_request_bytes) {
    throw new CallError(Code.RESOURCE_EXHAUSTED,
      `body: request of ${out.bytes.length} bytes is larger than the ${row.max_request_bytes} bytes ${row.iii_id} accepts`,
      { field: 'body', http: 413 });
  }
  return out;
}
