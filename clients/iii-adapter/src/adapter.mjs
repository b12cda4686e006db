// adapter.mjs — registers one iii function and one HTTP trigger per RPC-table row that carries an
// iii_id, and forwards each invocation to nanochatd over gRPC.
//
//  unary  → HTTP: {status_code: 200, body: reply}; direct: the reply.
//  job    → like unary with 202 Accepted, plus status_url / state_scope; the job is mirrored
//           into iii state (jobs.mjs).
//  stream → HTTP: SSE on the response channel (sse.mjs), or one JSON {events:[…]} when the caller
//           asks for JSON (Accept: application/json without text/event-stream, or follow=false);
//           direct: NDJSON on the caller's `_channel` writer, else {events:[…]}.
// Errors: HTTP callers get {status_code: <mapped>, body: {error: {code, message, grpc_code,
// field?}}} (status.mjs); direct callers get a rejected invocation whose message starts with the
// gRPC status name ("NOT_FOUND: …"). No invocation can throw out of a handler unhandled.
import { registerWorker } from 'iii-sdk';
import grpc from '@grpc/grpc-js';

import { loadTable } from './table.mjs';
import { loadRoot } from './schema.mjs';
import { messageSchema } from './jsonschema.mjs';
import { Nanochatd } from './nanochatd.mjs';
import { parseInvocation, header, isHttpEnvelope } from './request.mjs';
import { Code, codeName, errorBody, errorResponse, fromGrpcError, httpStatus } from './status.mjs';
import { SseWriter, sseFrame } from './sse.mjs';
import { JobMirror } from './jobs.mjs';

const MAX_COLLECTED = 10000;
const LEVELS = { error: 0, warn: 1, info: 2, debug: 3 };

function makeLogger(level) {
  const max = LEVELS[level] ?? LEVELS.info;
  return (lvl, msg) => {
    if ((LEVELS[lvl] ?? 0) <= max) process.stderr.write(`nanochat-iii-adapter: ${lvl}: ${msg}\n`);
  };
}

/** JSON response envelope for a success. */
function okResponse(status, body) {
  return { status_code: status, headers: { 'content-type': 'application/json' }, body };
}

function wantsJson(headers, msg) {
  const accept = (header(headers, 'accept') || '').toLowerCase();
  if (accept.includes('text/event-stream')) return false;
  return accept.includes('application/json') || msg.follow === false;
}

export class Adapter {
  /**
   * opts: engineUrl, nanochatd (address), rpcTable, protoDir, includeDirs, tlsCa, token
   * (own "Bearer …" for rescans), workerName, httpTimeoutMs, commitMs, stateScope, logLevel,
   * reconnect ({initialDelayMs, maxDelayMs}), otel (bool), connectWaitMs.
   */
  constructor(opts) {
    this.opts = opts;
    this.log = opts.log || makeLogger(opts.logLevel || 'info');
    this.table = loadTable(opts.rpcTable);
    this.root = loadRoot(opts.protoDir, opts.includeDirs);
    this.rows = this.table.rows;
    for (const r of this.rows) {
      r.inType = this.root.lookupType(r.input_type);
      r.outType = this.root.lookupType(r.output_type);
    }
    this.statusRow = this.rows.find((r) => r.kind === 'stream' && r.output_type === 'nanochat.v1.JobEvent');
    this.nanochatd = new Nanochatd({ address: opts.nanochatd, tlsCa: opts.tlsCa, connectWaitMs: opts.connectWaitMs });
    this.httpTimeoutMs = opts.httpTimeoutMs ?? 30000;
    this.commitMs = opts.commitMs ?? 1000;
    this.scope = opts.stateScope || 'nanochat:training';
    this.stopped = false;
  }

  /** Connects to the engine, registers every function and trigger, starts watching nanochatd. */
  start() {
    const o = this.opts;
    this.iii = registerWorker(o.engineUrl, {
      workerName: o.workerName || 'nanochat-iii-adapter',
      invocationTimeoutMs: 30000,
      enableMetricsReporting: false,
      otel: { enabled: !!o.otel },
      reconnectionConfig: { initialDelayMs: 500, maxDelayMs: 10000, maxRetries: -1, ...(o.reconnect || {}) },
    });
    if (this.statusRow) {
      this.jobs = new JobMirror({
        nanochatd: this.nanochatd, statusRow: this.statusRow, root: this.root, scope: this.scope,
        log: this.log, throttleMs: o.stateThrottleMs ?? 250,
        stateSet: (scope, key, value) => this.iii.trigger({ function_id: 'state::set', payload: { scope, key, value } }),
      });
    }
    for (const row of this.rows) {
      this.iii.registerFunction(row.iii_id, (input, metadata) => this.invoke(row, input, metadata), {
        description: row.summary || row.path,
        request_format: messageSchema(this.table, row.input_type),
        response_format: messageSchema(this.table, row.output_type),
        metadata: { grpc_method: row.path, kind: row.kind, public: !!row.public, admin: !!row.admin },
      });
      this.iii.registerTrigger({
        type: 'http',
        function_id: row.iii_id,
        config: { api_path: row.http_path, http_method: row.http_method },
      });
    }
    this.log('info', `registered ${this.rows.length} functions with HTTP triggers (engine ${o.engineUrl}, nanochatd ${o.nanochatd})`);
    this.watchNanochatd();
    return this;
  }

  /** Follows the gRPC channel's connectivity; on every (re)connect, re-mirrors running jobs. */
  watchNanochatd() {
    const ch = this.nanochatd.client.getChannel();
    let was = null;
    const step = () => {
      if (this.stopped) return;
      const st = ch.getConnectivityState(true);
      if (st !== was) {
        if (st === grpc.connectivityState.READY) {
          this.log('info', `connected to nanochatd at ${this.opts.nanochatd}`);
          this.rescan();
        } else if (was === grpc.connectivityState.READY) {
          this.log('warn', `lost nanochatd at ${this.opts.nanochatd}; reconnecting`);
        }
        was = st;
      }
      ch.watchConnectivityState(st, Date.now() + 5000, step);
    };
    step();
  }

  rescan() {
    if (!this.jobs || this.stopped) return;
    this.jobs.rescan(this.opts.token).then((n) => this.log('debug', `job mirror: ${n} jobs listed`),
      (e) => this.log('info', `job mirror: listing jobs failed (${codeName(e.code)}: ${e.message})`));
  }

  /** Entry point of every invocation. Never throws for HTTP calls. */
  async invoke(row, input, _metadata) {
    const t0 = Date.now();
    let req;
    let status = 200;
    let result;
    try {
      req = parseInvocation(row, row.inType, input);
      if (row.kind === 'stream') {
        result = req.http ? await this.streamHttp(row, req) : await this.streamDirect(row, req);
      } else {
        const deadline = this.deadline(row, req);
        const reply = await this.nanochatd.unary(row, row.outType, req.bytes, { auth: req.auth, deadlineMs: deadline });
        if (row.kind === 'job') {
          status = 202;
          this.decorateJob(reply, req.auth);
        }
        result = req.http ? okResponse(status, reply) : reply;
      }
    } catch (err) {
      const e = fromGrpcError(err);
      status = e.http ?? httpStatus(e.code);
      this.log(e.code === Code.INTERNAL ? 'warn' : 'debug', `${row.iii_id}: ${codeName(e.code)} (${e.message.slice(0, 200)})`);
      if (req ? req.http : isHttpEnvelope(input)) result = errorResponse(e);
      else {
        this.logCall(row, status, t0);
        throw new Error(`${codeName(e.code)}: ${e.message}`);
      }
    }
    this.logCall(row, result?.status_code ?? status, t0);
    return result;
  }

  logCall(row, status, t0) {
    this.log('debug', `${row.iii_id} ${row.path} -> ${status} in ${Date.now() - t0} ms`);
  }

  deadline(row, req) {
    let d = req.timeoutMs ?? (row.default_deadline_ms || 60000);
    // an HTTP caller is gone after the engine's HTTP timeout; stop the work before that
    if (req.http && this.httpTimeoutMs > 0) d = Math.min(d, Math.max(1000, this.httpTimeoutMs - 1000));
    return d;
  }

  decorateJob(reply, auth) {
    if (typeof reply.job_id !== 'string' || !this.statusRow) return;
    reply.status_url = `${this.statusRow.http_path}?job_id=${encodeURIComponent(reply.job_id)}`;
    reply.state_scope = this.scope;
    reply.state_key = reply.job_id;
    this.jobs?.watch(reply.job_id, auth);
  }

  /** A stream for an HTTP caller: SSE, or buffered JSON when asked for. */
  async streamHttp(row, req) {
    if (wantsJson(req.headers, req.msg) || !req.response || typeof req.response.sendMessage !== 'function') {
      const events = await this.collect(row, req);
      return okResponse(200, events);
    }
    const sse = new SseWriter(req.response);
    const deadline = row.default_deadline_ms || 0;
    const pending = [];
    let committed = false;
    let paused = false;
    let handle;
    const sendOne = (msg) => {
      if (!sse.send(sseFrame(row.outType, msg)) && !paused) {
        paused = true;
        handle.pause?.();
        sse.onDrain(() => {
          paused = false;
          handle.resume?.();
        });
      }
    };
    const commit = () => {
      if (committed) return;
      committed = true;
      sse.start(200);
      for (const m of pending.splice(0)) sendOne(m);
    };
    handle = this.nanochatd.stream(row, row.outType, req.bytes, {
      auth: req.auth,
      deadlineMs: deadline,
      onMessage: (msg) => {
        this.onStreamMessage(row, msg, req.auth);
        if (committed) sendOne(msg);
        else {
          pending.push(msg);
          commit();
        }
      },
    });
    sse.onClose = () => handle.cancel();
    const timer = setTimeout(commit, this.commitMs);
    try {
      await handle.done;
      clearTimeout(timer);
      commit();
      sse.send({ event: 'end', data: {} });
      sse.end();
      return undefined;
    } catch (err) {
      clearTimeout(timer);
      if (!committed) throw err; // nothing sent yet: a normal JSON error response
      const e = fromGrpcError(err);
      if (!sse.closed) {
        sse.send({ event: 'error', data: { ...errorBody(e), status: e.http ?? httpStatus(e.code) } });
      }
      sse.end();
      return undefined;
    }
  }

  onStreamMessage(row, msg, auth) {
    // a job first seen through its progress stream gets mirrored too
    if (row === this.statusRow && msg.kind === 'EVENT_SNAPSHOT' && msg.job && this.jobs) {
      if (!['JOB_SUCCEEDED', 'JOB_FAILED', 'JOB_CANCELLED', 'JOB_INTERRUPTED'].includes(msg.job.state)) {
        this.jobs.watch(msg.job.job_id, auth);
      }
    }
  }

  /** Collects a whole stream: {events: [...], truncated?}. */
  async collect(row, req) {
    const events = [];
    let truncated = false;
    const h = this.nanochatd.stream(row, row.outType, req.bytes, {
      auth: req.auth,
      deadlineMs: req.http ? this.deadline(row, req) : (req.timeoutMs ?? row.default_deadline_ms ?? 0),
      onMessage: (msg) => {
        this.onStreamMessage(row, msg, req.auth);
        if (events.length < MAX_COLLECTED) events.push(msg);
        else if (!truncated) {
          truncated = true;
          h.cancel();
        }
      },
    });
    try {
      await h.done;
    } catch (err) {
      if (!truncated) throw err;
    }
    return truncated ? { events, truncated } : { events };
  }

  /** A stream for a worker: NDJSON lines on its `_channel`, else everything at once. */
  async streamDirect(row, req) {
    if (!req.channel) return this.collect(row, req);
    const w = req.channel;
    let n = 0;
    let last;
    let gone = false;
    w.stream.on('error', () => { gone = true; });
    const h = this.nanochatd.stream(row, row.outType, req.bytes, {
      auth: req.auth,
      deadlineMs: req.timeoutMs ?? row.default_deadline_ms ?? 0,
      onMessage: (msg) => {
        n++;
        last = msg;
        if (!gone) w.stream.write(Buffer.from(JSON.stringify(sseFrame(row.outType, msg)) + '\n'));
      },
    });
    w.stream.on('close', () => h.cancel());
    try {
      await h.done;
    } finally {
      if (!gone) w.stream.end();
    }
    return { events: n, last };
  }

  async stop() {
    this.stopped = true;
    this.jobs?.stop();
    this.nanochatd.close();
    if (this.iii) await this.iii.shutdown();
  }
}
