// sse.mjs — Server-Sent Events over the iii HTTP response channel (specs/iii.md §2.3: text
// frames are control messages set_status / set_headers, binary frames are body bytes; the engine
// sends the response head with the first binary chunk and streams the rest).
//
// Event naming, derived from the message type: a message with a one-member oneof set (Chat.Stream
// delta/done) is `event: <member>` with that member as data; a message with a `kind` enum
// (JobEvent) is `event: <kind without its prefix, lower case>` (snapshot, state, progress, eval,
// checkpoint, log) with `id: <seq>` on stored events, so a reconnecting EventSource resumes with
// Last-Event-ID; anything else is `event: message`. The stream ends with `event: end` or, after
// a failure, `event: error` carrying the error body and the HTTP status it maps to.

const KEEPALIVE_MS = 15000;

/** {event, id?, data} for one decoded stream message of protobufjs type `type`. */
export function sseFrame(type, msg) {
  for (const o of type.oneofsArray) {
    const set = o.oneof.filter((n) => Object.hasOwn(msg, n));
    if (set.length === 1 && Object.keys(msg).length === 1) return { event: set[0], data: msg[set[0]] };
  }
  const kindField = type.fields.kind;
  if (kindField && kindField.resolvedType && typeof msg.kind === 'string') {
    const event = msg.kind.replace(/^[A-Z0-9]+_/, '').toLowerCase();
    const id = event !== 'snapshot' && msg.seq !== undefined ? String(msg.seq) : undefined;
    return { event, id, data: msg };
  }
  return { event: 'message', data: msg };
}

/** One SSE event as text. */
export function formatEvent({ event, id, data }) {
  let s = '';
  if (event) s += `event: ${event}\n`;
  if (id !== undefined) s += `id: ${id}\n`;
  s += `data: ${JSON.stringify(data)}\n\n`;
  return s;
}

/** Writes SSE to an iii ChannelWriter (the `response` of an HTTP invocation). */
export class SseWriter {
  constructor(response, { keepaliveMs = KEEPALIVE_MS } = {}) {
    this.response = response;
    this.closed = false;
    this.started = false;
    this.onClose = null;
    this.keepaliveMs = keepaliveMs;
    this.timer = null;
    this.drainers = new Set();
    const s = response.stream;
    // a Writable without an 'error' listener would throw from the SDK's channel code
    s.on('error', () => this.markClosed());
    s.on('close', () => this.markClosed());
  }

  markClosed() {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const h of [...this.drainers]) h();
    if (this.onClose) this.onClose();
  }

  /** Sends the status and SSE headers, then a comment so the engine sends the head at once. */
  start(status = 200) {
    if (this.started) return;
    this.started = true;
    this.response.sendMessage(JSON.stringify({ type: 'set_status', status_code: status }));
    this.response.sendMessage(JSON.stringify({
      type: 'set_headers',
      headers: {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        'x-accel-buffering': 'no',
      },
    }));
    this.write(': ok\n\n');
    this.timer = setInterval(() => this.write(': keepalive\n\n'), this.keepaliveMs);
    this.timer.unref?.();
  }

  /** Writes raw text; returns false when the caller should wait for 'drain'. */
  write(text) {
    if (this.closed) return true;
    try {
      return this.response.stream.write(Buffer.from(text, 'utf8'));
    } catch {
      this.markClosed();
      return true;
    }
  }

  send(frame) {
    return this.write(formatEvent(frame));
  }

  /** Calls fn once the channel has room again (or is closed). */
  onDrain(fn) {
    if (this.closed) return fn();
    const s = this.response.stream;
    const h = () => {
      s.off('drain', h);
      this.drainers.delete(h);
      fn();
    };
    this.drainers.add(h);
    s.on('drain', h);
  }

  end() {
    if (this.timer) clearInterval(this.timer);
    if (this.closed) return;
    try {
      this.response.stream.end();
    } catch {
      this.markClosed();
    }
  }
}
