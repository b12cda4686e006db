'use strict';
// nanochat-client — Node.js SDK of nanochatd over @grpc/grpc-js. The services and messages come
// from the descriptor set protoc writes from proto/ at build time (build/gen/nanochat.pb, loaded
// with @grpc/proto-loader) and the method flags from build/gen/rpc_table.json; nothing here
// restates a message definition. API reference: docs/api.md.
//
//   const { Client } = require('nanochat-client');
//   const c = new Client({ address: '127.0.0.1:50051', token: process.env.NANOCHAT_TOKEN });
//   console.log((await c.health()).status);
//   const chat = c.chat('Why is the sky blue?');
//   for await (const piece of chat) process.stdout.write(piece);
//   const job = await c.trainBase({ depth: 4 });
//   for await (const ev of job.progress()) console.log(ev.kind, ev.progress && ev.progress.step);
//
// Messages are plain objects with the proto field names (job_id, total_steps), enums as their
// names ('JOB_SUCCEEDED'), 64-bit integers as Numbers. Failures reject / throw a subclass of
// NanochatError (Unimplemented, FailedPrecondition, ...) carrying the gRPC code and message.
const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

// ---- typed errors ------------------------------------------------------------------------------
class NanochatError extends Error {
  constructor(code, message) {
    const name = CODE_NAMES[code] || 'UNKNOWN';
    super(message ? `${name}: ${message}` : name);
    this.code = code;          // numeric gRPC status code (grpc.status.*)
    this.codeName = name;      // 'UNIMPLEMENTED', ...
    this.details = message || '';
  }
}
// grpc.status is a TypeScript enum: keep the name -> number entries only
const STATUS = Object.entries(grpc.status).filter(([, v]) => typeof v === 'number');
const CODE_NAMES = {};
for (const [name, code] of STATUS) CODE_NAMES[code] = name;
// One class per status code: InvalidArgument, Unimplemented, ... (new Unimplemented(message)).
const ERROR_CLASSES = {};
const errors = { NanochatError };
for (const [name, code] of STATUS) {
  if (code === grpc.status.OK) continue;
  const cls = name.toLowerCase().replace(/(^|_)([a-z])/g, (_, __, c) => c.toUpperCase());
  const C = { [cls]: class extends NanochatError { constructor(m) { super(code, m); } } }[cls];
  ERROR_CLASSES[code] = C;
  errors[cls] = C;
}

function fromGrpcError(err) {
  if (err instanceof NanochatError) return err;
  const code = typeof err.code === 'number' ? err.code : grpc.status.UNKNOWN;
  const C = ERROR_CLASSES[code] || ERROR_CLASSES[grpc.status.UNKNOWN];
  const e = new C(err.details !== undefined ? err.details : err.message);
  e.cause = err;
  return e;
}

// ---- generated definitions ---------------------------------------------------------------------
function genDir() {
  const cands = [process.env.NANOCHAT_GEN_DIR, path.join(__dirname, '..', '..', 'build', 'gen')];
  for (const d of cands) if (d && fs.existsSync(path.join(d, 'nanochat.pb'))) return d;
  throw new Error('nanochat-client: build/gen/nanochat.pb not found; build the project ' +
                  '(cmake --build build) or set NANOCHAT_GEN_DIR');
}

const LOADER_OPTIONS = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };
let defs = null;
function definitions() {
  if (!defs) {
    const dir = genDir();
    const pkg = protoLoader.loadFileDescriptorSetFromBuffer(
      fs.readFileSync(path.join(dir, 'nanochat.pb')), LOADER_OPTIONS);
    const table = JSON.parse(fs.readFileSync(path.join(dir, 'rpc_table.json'), 'utf8'));
    const rows = {};
    for (const m of table.methods) rows[m.path] = m;
    defs = { grpcObject: grpc.loadPackageDefinition(pkg), rows, pkg };
  }
  return defs;
}

// Every method of nanochat.v1 as { path: { service, name, requestStream, responseStream, row } }.
function methods() {
  const { grpcObject, rows } = definitions();
  const out = {};
  for (const [svc, ctor] of Object.entries(grpcObject.nanochat.v1)) {
    if (typeof ctor !== 'function' || !ctor.service) continue;
    for (const [name, def] of Object.entries(ctor.service)) {
      out[def.path] = { service: svc, name, requestStream: def.requestStream,
                        responseStream: def.responseStream, row: rows[def.path] || {} };
    }
  }
  return out;
}

// Async iterator over a server stream; errors become NanochatError; cancel() ends it.
class Stream {
  constructor(call) {
    this.call = call;
  }
  cancel() {
    this.call.cancel();
  }
  async *[Symbol.asyncIterator]() {
    try {
      for await (const m of this.call) yield m;
    } catch (e) {
      throw fromGrpcError(e);
    }
  }
}

// ---- raw RPC layer: rpc.<Service>.<Method>(request, {timeoutMs}) ---------------------------------
class Rpc {
  constructor(address, credentials, channelOptions, metadataFn, timeoutMs) {
    const { grpcObject } = definitions();
    this.methods = methods();
    this.stubs = {};
    for (const [svc, ctor] of Object.entries(grpcObject.nanochat.v1)) {
      if (typeof ctor !== 'function' || !ctor.service) continue;
      const stub = new ctor(address, credentials, channelOptions);
      this.stubs[svc] = stub;
      this[svc] = {};
      for (const name of Object.keys(ctor.service)) {
        const m = this.methods[ctor.service[name].path];
        this[svc][name] = (req = {}, opts = {}) => {
          const callOpts = {};
          let t = opts.timeoutMs;
          if (t === undefined && !m.responseStream && !m.row.default_deadline_ms) t = timeoutMs;
          if (t) callOpts.deadline = new Date(Date.now() + t);
          if (m.responseStream) return new Stream(stub[name](req, metadataFn(), callOpts));
          return new Promise((resolve, reject) => {
            stub[name](req, metadataFn(), callOpts, (err, resp) =>
              (err ? reject(fromGrpcError(err)) : resolve(resp)));
          });
        };
      }
    }
  }
  close() {
    for (const s of Object.values(this.stubs)) s.close();
  }
}

// ---- chat and jobs ----------------------------------------------------------------------------------
function toMessages(prompt, system) {
  const out = [];
  if (system) out.push({ role: 'ROLE_SYSTEM', content: system });
  if (typeof prompt === 'string') {
    out.push({ role: 'ROLE_USER', content: prompt });
    return out;
  }
  for (const m of prompt) {
    const role = String(m.role || 'user').toUpperCase();
    out.push({ ...m, role: role.startsWith('ROLE_') ? role : `ROLE_${role}` });
  }
  return out;
}

// Async iterator of the reply's text pieces; .done (ChatDone), .text after the loop.
class ChatStream {
  constructor(stream) {
    this.stream = stream;
    this.done = null;
    this.parts = [];
  }
  cancel() {
    this.stream.cancel();
  }
  get text() {
    return this.done && this.done.content ? this.done.content : this.parts.join('');
  }
  get sessionId() {
    return this.done ? this.done.session_id : '';
  }
  async *[Symbol.asyncIterator]() {
    for await (const ev of this.stream) {
      if (ev.event === 'delta' && ev.delta.text) {
        this.parts.push(ev.delta.text);
        yield ev.delta.text;
      } else if (ev.event === 'done') {
        this.done = ev.done;
      }
    }
  }
}

const TERMINAL = new Set(['JOB_SUCCEEDED', 'JOB_FAILED', 'JOB_CANCELLED', 'JOB_INTERRUPTED']);

class Job {
  constructor(client, jobId, ref = null) {
    this.client = client;
    this.id = jobId;
    this.ref = ref;
  }
  // The job now (JobInfo).
  async status() {
    const s = this.client.rpc.Train.Status({ job_id: this.id, follow: false, from_seq: 0 },
                                           { timeoutMs: this.client.timeoutMs });
    for await (const ev of s) if (ev.kind === 'EVENT_SNAPSHOT') return ev.job;
    throw new errors.NotFound(`no snapshot for job ${this.id}`);
  }
  // Async iterable of JobEvent: stored events from fromSeq (0 = none), then live ones.
  progress({ fromSeq = 1, follow = true, includeSnapshot = false, timeoutMs } = {}) {
    const s = this.client.rpc.Train.Status({ job_id: this.id, follow, from_seq: fromSeq },
                                           { timeoutMs });
    const out = {
      cancel: () => s.cancel(),
      async *[Symbol.asyncIterator]() {
        for await (const ev of s) {
          if (ev.kind === 'EVENT_SNAPSHOT' && !includeSnapshot) continue;
          yield ev;
        }
      },
    };
    return out;
  }
  cancel() {
    return this.client.rpc.Train.Cancel({ job_id: this.id });
  }
  // Follows the job until it ends; resolves to the final JobInfo.
  async wait({ timeoutMs } = {}) {
    // eslint-disable-next-line no-unused-vars
    for await (const _ of this.progress({ fromSeq: 0, timeoutMs })) { /* drain */ }
    const info = await this.status();
    if (!TERMINAL.has(info.state)) {
      throw new errors.Internal('the job stream ended before the job did');
    }
    return info;
  }
}

class Client {
  // address: 'host:port'; token: bearer token (default $NANOCHAT_TOKEN); tls / rootPem /
  // serverName: TLS; timeoutMs: unary calls whose method has no server default deadline.
  constructor({ address, token, tls = false, rootPem, serverName, timeoutMs = 30000 } = {}) {
    this.address = address || process.env.NANOCHAT_ADDRESS || '127.0.0.1:50051';
    const tok = token !== undefined ? token : process.env.NANOCHAT_TOKEN;
    this.timeoutMs = timeoutMs;
    const creds = tls || rootPem
      ? grpc.credentials.createSsl(rootPem ? Buffer.from(rootPem) : null)
      : grpc.credentials.createInsecure();
    const channelOptions = serverName ? { 'grpc.ssl_target_name_override': serverName } : {};
    const metadataFn = () => {
      const md = new grpc.Metadata();
      if (tok) md.add('authorization', `Bearer ${tok}`);
      return md;
    };
    this.rpc = new Rpc(this.address, creds, channelOptions, metadataFn, timeoutMs);
  }
  close() {
    this.rpc.close();
  }
  // Resolves once connected; Unavailable after timeoutMs.
  waitReady(timeoutMs = 10000) {
    const stub = this.rpc.stubs.Health;
    return new Promise((resolve, reject) => {
      stub.waitForReady(new Date(Date.now() + timeoutMs), (err) =>
        (err ? reject(new errors.Unavailable(err.message)) : resolve()));
    });
  }
  health() { return this.rpc.Health.Check({}); }
  modelStatus() { return this.rpc.Model.Status({}); }
  loadModel(req = {}) { return this.rpc.Model.Load(req); }
  unloadModel() { return this.rpc.Model.Unload({}); }
  // prompt: string or [{role: 'user'|'assistant'|'system', content}]; opts: ChatRequest fields.
  chat(prompt, { system, timeoutMs, ...opts } = {}) {
    return new ChatStream(this.rpc.Chat.Stream({ ...opts, messages: toMessages(prompt, system) },
                                               { timeoutMs }));
  }
  complete(prompt, { system, timeoutMs, ...opts } = {}) {
    return this.rpc.Chat.Complete({ ...opts, messages: toMessages(prompt, system) }, { timeoutMs });
  }
  history(req = {}) { return this.rpc.Chat.History(req); }
  async checkpoints(req = {}) { return (await this.rpc.Checkpoint.List(req)).checkpoints; }
  execute(code, opts = {}) { return this.rpc.Tools.Execute({ ...opts, code }); }
  sample(prompt, opts = {}) { return this.rpc.Model.Sample({ ...opts, prompt }); }
  async _job(p) {
    const ref = await p;
    return new Job(this, ref.job_id, ref);
  }
  trainTokenizer(req = {}) { return this._job(this.rpc.Train.Tokenizer(req)); }
  trainBase(req = {}) { return this._job(this.rpc.Train.Base(req)); }
  trainSft(req = {}) { return this._job(this.rpc.Train.Sft(req)); }
  trainRl(req = {}) { return this._job(this.rpc.Train.Rl(req)); }
  testJob(req = {}) { return this._job(this.rpc.Train.TestJob(req)); }
  evalCore(req = {}) { return this._job(this.rpc.Eval.Core(req)); }
  evalChat(req = {}) { return this._job(this.rpc.Eval.Chat(req)); }
  evalLoss(req = {}) { return this.rpc.Eval.Loss(req); }
  job(jobId) { return new Job(this, jobId); }
  async jobs(limit = 100) {
    const out = [];
    for await (const ev of this.rpc.Train.Status({ limit }, { timeoutMs: this.timeoutMs })) {
      if (ev.kind === 'EVENT_SNAPSHOT') out.push(ev.job);
    }
    return out;
  }
}

module.exports = { Client, Job, ChatStream, Stream, Rpc, NanochatError, errors, fromGrpcError,
                   methods, TERMINAL, ...errors };
