// engine.mjs — a stand-in for the iii engine (the real one, a Rust binary, cannot be installed
// here). It implements the subset of the v0.22 worker protocol in specs/iii.md §2 that the
// official iii-sdk and the nanochat adapter use, with the real engine's semantics:
//
//  * worker socket ws://127.0.0.1:<wsPort>/ : workerregistered on connect; registerfunction /
//    unregisterfunction, registertrigger / unregistertrigger (http triggers become routes;
//    triggers of an unknown type are parked silently and activated when a worker registers the
//    type), registertriggertype, invokefunction ⇄ invocationresult routing (with
//    `_caller_worker_id` injected into object payloads of worker-originated calls, void and
//    enqueue actions), reattach, ping/pong; a worker's functions and triggers go away with it and
//    its in-flight invocations fail with invocation_stopped.
//  * built-ins: engine::workers::register, engine::channels::create, engine::functions::list,
//    engine::workers::list, state::* (state.mjs).
//  * channel sockets /ws/channels/<id>?key=…&dir=read|write (channels.mjs); /otel is accepted
//    and ignored.
//  * the HTTP front on 127.0.0.1:<httpPort> (http-front.mjs).
//  * JSON nested deeper than serde_json's recursion limit (128) cannot be parsed: such frames are
//    dropped and such HTTP bodies become null, as in the engine.
//
// Run standalone: node test/engine/engine.mjs [--ws-port 49134] [--http-port 3111]
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';

import { ChannelManager } from './channels.mjs';
import { StateStore } from './state.mjs';
import { HttpFront } from './http-front.mjs';
import { jsonDepth, MAX_JSON_DEPTH } from './json.mjs';

const MAX_FRAME = 64 << 20;
const MAX_LOG = 20000;

function invErr(code, message) {
  const e = new Error(message);
  e.code = code;
  return e;
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export class StandInEngine {
  constructor({ wsPort = 0, httpPort = 0, defaultTimeoutMs = 30000, log = () => {} } = {}) {
    this.wsPort = wsPort;
    this.httpPort = httpPort;
    this.defaultTimeoutMs = defaultTimeoutMs;
    this.log = log;
    this.workers = new Map(); // id -> {id, ws, name, info}
    this.functions = new Map(); // id -> {id, worker, message}
    this.triggers = new Map(); // id -> {id, worker, trigger_type, function_id, config, active}
    this.triggerTypes = new Map(); // id -> {worker, message}
    this.pending = new Map(); // invocation_id -> {resolve, reject, worker}
    this.channels = new ChannelManager();
    this.state = new StateStore();
    this.frames = [];
    this.builtins = {
      ...this.state.functions(),
      'engine::workers::register': (p, caller) => {
        if (caller) caller.info = p;
        return null;
      },
      'engine::channels::create': (p) => this.channels.create(p?.buffer_size).refs(),
      'engine::functions::list': () => ({
        functions: [...this.functions.values()].map((f) => ({
          function_id: f.id, description: f.message.description, worker_id: f.worker.id,
        })),
      }),
      'engine::workers::list': () => ({
        workers: [...this.workers.values()].map((w) => ({ id: w.id, name: w.info?.name })),
      }),
    };
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.wsPort}`;
  }

  get httpUrl() {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  record(dir, worker, frame) {
    if (this.frames.length < MAX_LOG) this.frames.push({ dir, worker: worker?.id, frame });
  }

  async start() {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME });
    this.server = http.createServer((_req, res) => {
      res.writeHead(404).end('Not Found');
    });
    this.sockets = new Set();
    this.server.on('connection', (sock) => {
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
    });
    this.server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
    await new Promise((r, j) => this.server.once('error', j).listen(this.wsPort, '127.0.0.1', r));
    this.wsPort = this.server.address().port;
    this.front = new HttpFront(this);
    this.httpPort = await this.front.listen(this.httpPort);
    this.log(`stand-in engine: workers ${this.wsUrl}, http ${this.httpUrl}`);
    return this;
  }

  async stop() {
    this.stopping = true;
    for (const w of this.workers.values()) w.ws.terminate();
    for (const c of this.wss?.clients ?? []) c.terminate();
    await this.front?.close();
    if (!this.server) return;
    const closed = new Promise((r) => this.server.close(() => r()));
    for (const sock of this.sockets) sock.destroy();
    await closed;
  }

  upgrade(req, socket, head) {
    if (this.stopping) return socket.destroy();
    const url = new URL(req.url, 'http://x');
    const ch = /^\/ws\/channels\/([^/]+)$/.exec(url.pathname);
    if (url.pathname === '/' || url.pathname === '/otel') {
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        if (url.pathname === '/otel') ws.on('message', () => {});
        else this.onWorker(ws);
      });
    } else if (ch) {
      const c = this.channels.get(ch[1], url.searchParams.get('key'));
      const dir = url.searchParams.get('dir');
      if (!c || (dir !== 'read' && dir !== 'write')) {
        socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 17\r\n\r\nChannel not found');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.channels.attach(ws, c, dir));
    } else {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
    }
  }

  send(worker, frame) {
    this.record('out', worker, frame);
    if (worker.ws.readyState === worker.ws.OPEN) worker.ws.send(JSON.stringify(frame));
  }

  /** Test hook: sends raw text (or a Buffer) to the workers registered as `name` (default: all). */
  sendRaw(data, name) {
    for (const w of this.workers.values()) if (name === undefined || w.info?.name === name) w.ws.send(data);
  }

  onWorker(ws) {
    const w = { id: crypto.randomUUID(), ws, info: null };
    this.workers.set(w.id, w);
    ws.on('message', (data) => this.onFrame(w, data));
    ws.on('close', () => this.dropWorker(w));
    ws.on('error', () => {});
    this.send(w, { type: 'workerregistered', worker_id: w.id, reattach_token: crypto.randomUUID() });
  }

  dropWorker(w) {
    if (!this.workers.delete(w.id)) return;
    for (const [id, f] of this.functions) if (f.worker === w) this.functions.delete(id);
    for (const [id, t] of this.triggers) if (t.worker === w) this.removeTrigger(id);
    for (const [id, t] of this.triggerTypes) if (t.worker === w) this.triggerTypes.delete(id);
    for (const [id, p] of this.pending) {
      if (p.worker === w) {
        this.pending.delete(id);
        p.reject(invErr('invocation_stopped', 'worker disconnected'));
      }
    }
  }

  onFrame(w, data) {
    let f;
    try {
      const text = data.toString('utf8');
      if (jsonDepth(text) > MAX_JSON_DEPTH) throw new Error('recursion limit exceeded');
      f = JSON.parse(text);
    } catch {
      this.log(`worker ${w.id}: frame is not JSON, ignored`);
      return;
    }
    if (!isPlainObject(f)) return;
    this.record('in', w, f);
    switch (f.type) {
      case 'registerfunction':
        if (typeof f.id === 'string' && f.id) this.functions.set(f.id, { id: f.id, worker: w, message: f });
        break;
      case 'unregisterfunction':
        if (this.functions.get(f.id)?.worker === w) this.functions.delete(f.id);
        break;
      case 'registertrigger':
        this.addTrigger(w, f);
        break;
      case 'unregistertrigger':
        if (this.triggers.get(f.id)?.worker === w) this.removeTrigger(f.id);
        break;
      case 'registertriggertype':
        this.triggerTypes.set(f.id, { worker: w, message: f });
        for (const t of this.triggers.values()) if (t.trigger_type === f.id && !t.active) this.activate(t);
        break;
      case 'invokefunction':
        this.onInvoke(w, f);
        break;
      case 'invocationresult': {
        const p = this.pending.get(f.invocation_id);
        if (!p || p.worker !== w) break;
        this.pending.delete(f.invocation_id);
        if (f.error) p.reject(invErr(f.error.code ?? 'invocation_failed', f.error.message ?? ''));
        else p.resolve(f.result === undefined ? null : f.result);
        break;
      }
      case 'reattach':
        w.previous = f.previous_worker_id;
        break;
      case 'ping':
        this.send(w, { type: 'pong' });
        break;
      default:
        this.log(`worker ${w.id}: unknown frame type ${String(f.type).slice(0, 40)}`);
    }
  }

  addTrigger(w, f) {
    const t = { id: f.id, worker: w, trigger_type: f.trigger_type, function_id: f.function_id, config: f.config, active: false };
    if (typeof t.id !== 'string' || typeof t.trigger_type !== 'string') return;
    if (t.trigger_type === 'http') {
      const c = t.config;
      if (!isPlainObject(c) || typeof c.api_path !== 'string' || typeof c.http_method !== 'string') {
        this.send(w, { type: 'triggerregistrationresult', id: t.id, trigger_type: 'http', function_id: t.function_id,
          error: { code: 'invalid_config', message: 'http trigger needs config.api_path and config.http_method' } });
        return;
      }
    }
    this.triggers.set(t.id, t);
    if (t.trigger_type === 'http' || this.triggerTypes.has(t.trigger_type)) this.activate(t);
    // else: parked without an ack, activated when a worker registers the type
  }

  activate(t) {
    t.active = true;
    if (t.trigger_type === 'http') {
      this.front.addRoute(t.config.http_method, t.config.api_path, t);
      return;
    }
    const tt = this.triggerTypes.get(t.trigger_type);
    this.send(tt.worker, { type: 'registertrigger', id: t.id, trigger_type: t.trigger_type, function_id: t.function_id, config: t.config });
  }

  removeTrigger(id) {
    const t = this.triggers.get(id);
    if (!t) return;
    this.triggers.delete(id);
    if (t.trigger_type === 'http' && t.active) this.front.removeRoute(t);
  }

  async onInvoke(w, f) {
    const id = f.invocation_id;
    const reply = (body) => {
      if (id) this.send(w, { type: 'invocationresult', invocation_id: id, function_id: f.function_id, ...body });
    };
    try {
      if (f.action?.type === 'enqueue') throw invErr('enqueue_error', 'No queue provider is installed');
      let data = f.data;
      if (isPlainObject(data) && !f.function_id?.startsWith?.('engine::')) data = { ...data, _caller_worker_id: w.id };
      const void_ = f.action?.type === 'void' || !id;
      const result = await this.call(f.function_id, data, { caller: w, void: void_, metadata: f.metadata });
      reply({ result });
    } catch (e) {
      reply({ error: { code: e.code ?? 'invocation_failed', message: e.message } });
    }
  }

  /**
   * Invokes a function (built-in or a worker's). Resolves with its result (null for void calls)
   * or rejects with an Error carrying `code`.
   */
  call(functionId, data, { caller = null, void: isVoid = false, metadata, timeoutMs = 0 } = {}) {
    const b = this.builtins[functionId];
    if (b) {
      const d = isPlainObject(data) ? { ...data } : data;
      if (isPlainObject(d)) delete d._caller_worker_id;
      return Promise.resolve().then(() => b(d, caller));
    }
    const fn = this.functions.get(functionId);
    if (!fn) return Promise.reject(invErr('function_not_found', `Function ${String(functionId).slice(0, 200)} not found`));
    if (fn.message.invocation) return Promise.reject(invErr('function_not_invokable', 'external HTTP functions are not supported here'));
    if (isVoid) {
      this.send(fn.worker, { type: 'invokefunction', function_id: functionId, data, metadata, action: { type: 'void' } });
      return Promise.resolve(null);
    }
    const invocationId = crypto.randomUUID();
    return new Promise((resolve, reject) => {
      let timer = null;
      const done = (fnc) => (v) => {
        if (timer) clearTimeout(timer);
        fnc(v);
      };
      this.pending.set(invocationId, { resolve: done(resolve), reject: done(reject), worker: fn.worker });
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          this.pending.delete(invocationId);
          reject(invErr('TIMEOUT', `invocation timed out after ${timeoutMs}ms`));
        }, timeoutMs);
      }
      this.send(fn.worker, { type: 'invokefunction', invocation_id: invocationId, function_id: functionId, data, metadata });
    });
  }
}

async function cli() {
  const args = process.argv.slice(2);
  const get = (n, d) => {
    const i = args.indexOf(n);
    return i >= 0 ? Number(args[i + 1]) : d;
  };
  const e = new StandInEngine({ wsPort: get('--ws-port', 49134), httpPort: get('--http-port', 3111), log: console.error });
  await e.start();
  console.log(`iii stand-in engine listening: workers ${e.wsUrl} http ${e.httpUrl}`);
  const stop = () => e.stop().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) cli();
