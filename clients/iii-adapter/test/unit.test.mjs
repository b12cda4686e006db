// unit.test.mjs — the adapter's pieces without servers: the RPC table reader, the status
// mapping, the strict JSON ⇄ protobuf mapping, invocation unwrapping, SSE framing, JSON Schema.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';

import { loadTable, splitPath } from '../src/table.mjs';
import { CallError, Code, codeName, errorResponse, fromGrpcError, httpStatus } from '../src/status.mjs';
import { decodeJson, encode, loadRoot, queryToMessage, toMessage } from '../src/schema.mjs';
import { isHttpEnvelope, parseInvocation } from '../src/request.mjs';
import { formatEvent, sseFrame } from '../src/sse.mjs';
import { messageSchema } from '../src/jsonschema.mjs';
import { checkAuthorization } from '../src/nanochatd.mjs';
import { ADAPTER_DIR, RPC_TABLE, SOURCE_DIR } from './helpers.mjs';
import { parseArgs } from '../src/main.mjs';

const table = loadTable(RPC_TABLE);
const root = loadRoot(path.join(SOURCE_DIR, 'proto'));
const T = (n) => root.lookupType(`nanochat.v1.${n}`);
const row = (id) => {
  const r = table.rows.find((x) => x.iii_id === id);
  return { ...r, inType: root.lookupType(r.input_type), outType: root.lookupType(r.output_type) };
};
const bad = (fn, field) => assert.throws(fn, (e) => e instanceof CallError && e.code === Code.INVALID_ARGUMENT &&
  (field === undefined || e.field === field));

describe('rpc table', () => {
  test('the twenty nanochat functions (and the extras) come from the table with their triggers', () => {
    const ids = table.rows.map((r) => r.iii_id);
    for (const id of ['nanochat.chat.complete', 'nanochat.chat.stream', 'nanochat.chat.history', 'nanochat.model.load',
      'nanochat.model.status', 'nanochat.model.sample', 'nanochat.tokenizer.encode', 'nanochat.tokenizer.decode',
      'nanochat.tools.execute', 'nanochat.train.tokenizer', 'nanochat.train.base', 'nanochat.train.sft', 'nanochat.train.rl',
      'nanochat.train.status', 'nanochat.eval.core', 'nanochat.eval.loss', 'nanochat.eval.chat', 'nanochat.checkpoint.save',
      'nanochat.checkpoint.list', 'nanochat.health']) assert.ok(ids.includes(id), id);
    assert.equal(row('nanochat.chat.complete').http_path, '/nanochat/chat/completions');
    assert.equal(row('nanochat.health').http_method, 'GET');
    assert.equal(row('nanochat.chat.stream').kind, 'stream');
    assert.equal(row('nanochat.train.base').kind, 'job');
    assert.equal(row('nanochat.train.cancel').kind, 'unary');
    // rows without an iii id (grpc.health, reflection) are not registered
    assert.ok(!table.rows.some((r) => r.path.startsWith('/grpc.')));
    assert.deepEqual(splitPath(row('nanochat.health')), ['nanochat.v1.Health', 'Check']);
    for (const r of table.rows) {
      assert.ok(root.lookupType(r.input_type) && root.lookupType(r.output_type), r.iii_id);
    }
  });

  test('a missing, broken or inconsistent table is refused with a clear message', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iii-table-'));
    const write = (doc) => {
      const p = path.join(dir, 't.json');
      fs.writeFileSync(p, typeof doc === 'string' ? doc : JSON.stringify(doc));
      return p;
    };
    const good = JSON.parse(fs.readFileSync(RPC_TABLE, 'utf8'));
    assert.throws(() => loadTable(path.join(dir, 'none.json')), /cannot read/);
    assert.throws(() => loadTable(write('{')), /not JSON/);
    assert.throws(() => loadTable(write({ methods: [] })), /missing/);
    const dup = structuredClone(good);
    dup.methods[1].iii_id = dup.methods[0].iii_id;
    assert.throws(() => loadTable(write(dup)), /duplicate iii_id/);
    const route = structuredClone(good);
    route.methods[1].http_path = route.methods[0].http_path;
    route.methods[1].http_method = route.methods[0].http_method;
    assert.throws(() => loadTable(write(route)), /duplicate HTTP route/);
    const badPath = structuredClone(good);
    badPath.methods[0].http_path = '../x';
    assert.throws(() => loadTable(write(badPath)), /bad HTTP trigger/);
    fs.rmSync(dir, { recursive: true });
  });
});

describe('README', () => {
  test('the function/trigger table in the iii section is the RPC table', () => {
    const readme = fs.readFileSync(path.join(SOURCE_DIR, 'README.md'), 'utf8');
    const sec = readme.slice(readme.indexOf('<!-- section:iii -->'), readme.indexOf('<!-- /section:iii -->'));
    assert.ok(sec.length > 100, 'README has an iii section');
    const have = sec.split('\n').filter((l) => l.startsWith('| `nanochat.'));
    const want = table.rows.map((m) => {
      const kind = m.kind === 'stream' ? 'stream (SSE)' : m.kind === 'job' ? 'job (202)' : 'unary';
      const auth = m.public ? 'public' : m.admin ? 'admin' : 'user';
      return `| \`${m.iii_id}\` | ${m.http_method} \`${m.http_path}\` | \`${m.path}\` | ${kind} | ${auth} |`;
    });
    assert.deepEqual(have, want);
  });
});

describe('status mapping', () => {
  test('every gRPC code has its documented HTTP status', () => {
    const want = {
      OK: 200, CANCELLED: 499, UNKNOWN: 500, INVALID_ARGUMENT: 400, DEADLINE_EXCEEDED: 504, NOT_FOUND: 404,
      ALREADY_EXISTS: 409, PERMISSION_DENIED: 403, RESOURCE_EXHAUSTED: 429, FAILED_PRECONDITION: 409, ABORTED: 409,
      OUT_OF_RANGE: 400, UNIMPLEMENTED: 501, INTERNAL: 500, UNAVAILABLE: 503, DATA_LOSS: 500, UNAUTHENTICATED: 401,
    };
    assert.equal(Object.keys(want).length, 17);
    for (const [name, http] of Object.entries(want)) {
      assert.equal(httpStatus(Code[name]), http, name);
      assert.equal(codeName(Code[name]), name);
    }
    assert.equal(httpStatus(99), 500);
    assert.equal(httpStatus(-1), 500);
    assert.equal(codeName(17), 'UNKNOWN');
  });

  test('grpc errors become envelopes; field paths are picked out of INVALID_ARGUMENT messages', () => {
    let r = errorResponse({ code: 3, details: 'messages[3].content: invalid UTF-8' });
    assert.equal(r.status_code, 400);
    assert.deepEqual(r.body.error, { code: 'INVALID_ARGUMENT', message: 'messages[3].content: invalid UTF-8', grpc_code: 3, field: 'messages[3].content' });
    r = errorResponse({ code: 8, details: 'busy' });
    assert.equal(r.status_code, 429);
    assert.equal(r.headers['retry-after'], '1');
    r = errorResponse({ code: 12, details: 'x: y' });
    assert.equal(r.body.error.field, undefined, 'only INVALID_ARGUMENT names a field');
    r = errorResponse(new CallError(Code.RESOURCE_EXHAUSTED, 'big', { http: 413, field: 'body' }));
    assert.equal(r.status_code, 413);
    assert.equal(fromGrpcError(new Error('plain')).code, Code.INTERNAL);
    assert.equal(fromGrpcError({ code: 0, details: 'odd' }).code, Code.INTERNAL, 'OK is never an error code');
    assert.ok(fromGrpcError({ code: 2, details: 'x'.repeat(5000) }).message.length < 1100);
  });
});

describe('JSON → protobuf', () => {
  const chat = T('ChatRequest');
  test('accepts proto and camelCase names, friendly enum names, nulls as unset', () => {
    const m = toMessage(chat, { messages: [{ role: 'user', content: 'hi' }, { role: 'ROLE_ASSISTANT', content: 'yo' }],
      topK: 5, temperature: 0.5, session_id: null, seed: '18446744073709551615' });
    assert.deepEqual(m, { messages: [{ role: 1, content: 'hi' }, { role: 2, content: 'yo' }], top_k: 5, temperature: 0.5, seed: '18446744073709551615' });
    const d = T('ChatRequest').decode(encode(chat, m));
    assert.equal(d.messages[1].role, 2);
    assert.equal(d.seed.toString(), '18446744073709551615');
    assert.deepEqual(toMessage(T('ModelLoadRequest'), { phase: 'sft' }), { phase: 2 });
  });

  test('wrong types, unknown fields and bad values name the field', () => {
    bad(() => toMessage(chat, { messages: [{ role: 'user', content: 5 }] }), 'messages[0].content');
    bad(() => toMessage(chat, { messages: [{ role: 'wizard', content: 'x' }] }), 'messages[0].role');
    bad(() => toMessage(chat, { messages: {} }), 'messages');
    bad(() => toMessage(chat, { messages: [null] }), 'messages[0]');
    bad(() => toMessage(chat, { nope: 1 }), 'nope');
    bad(() => toMessage(chat, { __proto__x: 1 }), '__proto__x');
    bad(() => toMessage(chat, JSON.parse('{"__proto__": {"a": 1}}')), '__proto__');
    bad(() => toMessage(chat, { top_k: 1.5 }), 'top_k');
    bad(() => toMessage(chat, { top_k: 2 ** 31 }), 'top_k');
    bad(() => toMessage(chat, { top_k: '12abc' }), 'top_k');
    bad(() => toMessage(chat, { temperature: 'hot' }), 'temperature');
    bad(() => toMessage(chat, { seed: -1 }), 'seed');
    bad(() => toMessage(chat, { seed: 2 ** 60 }), 'seed');
    bad(() => toMessage(chat, { ephemeral: 'yes' }), 'ephemeral');
    bad(() => toMessage(chat, { top_k: 1, topK: 2 }), 'topK');
    bad(() => toMessage(chat, []), 'body');
    bad(() => toMessage(T('ExecuteRequest'), { code: 'x', stdin: '@@not base64@@' }), 'stdin');
    assert.deepEqual(toMessage(T('ExecuteRequest'), { code: 'x', stdin: 'aGk=' }).stdin, Buffer.from('hi'));
  });

  test('only one member of a oneof; garbage nesting stops at the first unknown key', () => {
    bad(() => toMessage(T('ChatStreamResponse'), { delta: {}, done: {} }), 'done');
    let deep = {};
    const top = { messages: [{ parts: [{ text: deep }] }] };
    for (let i = 0; i < 10000; i++) deep = deep.x = {};
    bad(() => toMessage(chat, top), 'messages[0].parts[0].text');
  });

  test('query parameters are parsed per field type', () => {
    const st = T('TrainStatusRequest');
    assert.deepEqual(queryToMessage(st, { job_id: 'abc', follow: 'false', from_seq: '3', limit: '7' }),
      { job_id: 'abc', follow: false, from_seq: '3', limit: 7 });
    bad(() => queryToMessage(st, { follow: 'maybe' }), 'follow');
    bad(() => queryToMessage(st, { limit: '1e3' }), 'limit');
    bad(() => queryToMessage(st, { extra: '1' }), 'extra');
    assert.deepEqual(queryToMessage(T('CheckpointListRequest'), { phase: 'base', verify: '1' }), { phase: 1, verify: true });
    assert.deepEqual(queryToMessage(T('DecodeRequest'), { tokens: '[1,2]' }), { tokens: [1, 2] });
    bad(() => queryToMessage(T('DecodeRequest'), { tokens: '[1,' }), 'tokens');
  });

  test('protobuf → JSON: presence, int64 as numbers when safe, enums by name, NaN as null', () => {
    const ev = T('JobEvent');
    const bytes = ev.encode(ev.fromObject({ job_id: 'j', seq: '9007199254740993', kind: 'EVENT_PROGRESS',
      progress: { step: 3, eta_s: NaN }, metrics: { a: 1.5 } })).finish();
    const j = decodeJson(ev, bytes);
    assert.deepEqual(j, { job_id: 'j', seq: '9007199254740993', kind: 'EVENT_PROGRESS', progress: { step: 3, eta_s: null }, metrics: { a: 1.5 } });
    const j2 = decodeJson(ev, ev.encode(ev.fromObject({ seq: 5, time_ms: -2 })).finish());
    assert.equal(j2.seq, 5);
    assert.equal(j2.time_ms, -2);
    assert.ok(!('state' in j2) && !('message' in j2));
  });
});

describe('invocation unwrapping', () => {
  const envelope = (extra) => ({ query_params: {}, path_params: {}, headers: {}, method: 'POST', body: null,
    trigger: { type: 'http', path: '/x', method: 'POST' }, ...extra });

  test('HTTP POST: the body is the request; the authorization header is the token', () => {
    const r = parseInvocation(row('nanochat.tools.execute'), row('nanochat.tools.execute').inType,
      envelope({ body: { code: 'print(1)' }, headers: { 'content-type': 'application/json', authorization: 'Bearer t0k3n' } }));
    assert.equal(r.http, true);
    assert.equal(r.auth, 'Bearer t0k3n');
    assert.deepEqual(r.msg, { code: 'print(1)' });
    assert.ok(r.bytes.length > 0);
  });

  test('HTTP POST body rules: empty is {}, invalid JSON is 400, non-JSON content is 415', () => {
    const rw = row('nanochat.train.test_job');
    assert.deepEqual(parseInvocation(rw, rw.inType, envelope({})).msg, {});
    assert.throws(() => parseInvocation(rw, rw.inType, envelope({ headers: { 'content-type': 'application/json', 'content-length': '5' } })),
      (e) => e.code === Code.INVALID_ARGUMENT && e.field === 'body' && e.http === undefined);
    assert.throws(() => parseInvocation(rw, rw.inType, envelope({ headers: { 'content-type': 'text/plain', 'content-length': '3' } })),
      (e) => e.http === 415);
    assert.throws(() => parseInvocation(rw, rw.inType, envelope({ body: [1], headers: { 'content-type': 'application/json', 'content-length': '3' } })),
      (e) => e.field === 'body');
  });

  test('HTTP GET: query parameters; Last-Event-ID resumes from_seq', () => {
    const rw = row('nanochat.train.status');
    let r = parseInvocation(rw, rw.inType, envelope({ method: 'GET', query_params: { job_id: 'j1' }, body: { ignored: true } }));
    assert.deepEqual(r.msg, { job_id: 'j1' });
    r = parseInvocation(rw, rw.inType, envelope({ method: 'GET', query_params: { job_id: 'j1' }, headers: { 'last-event-id': '41' } }));
    assert.equal(r.msg.from_seq, '42');
  });

  test('oversized requests are 413 before anything is sent', () => {
    const rw = row('nanochat.health');
    const big = 'x'.repeat(row('nanochat.tools.execute').max_request_bytes + 10);
    const ex = row('nanochat.tools.execute');
    assert.throws(() => parseInvocation(ex, ex.inType, { code: big }), (e) => e.http === 413 && e.code === Code.RESOURCE_EXHAUSTED);
    assert.ok(parseInvocation(rw, rw.inType, {}).bytes.length <= rw.max_request_bytes);
  });

  test('direct calls: control keys, _caller_worker_id dropped, garbage refused', () => {
    const rw = row('nanochat.chat.history');
    const r = parseInvocation(rw, rw.inType, { session_id: 'abc', _caller_worker_id: 'w', _authorization: 'Bearer x', _timeout_ms: 500 });
    assert.equal(r.http, false);
    assert.deepEqual(r.msg, { session_id: 'abc' });
    assert.equal(r.auth, 'Bearer x');
    assert.equal(r.timeoutMs, 500);
    assert.deepEqual(parseInvocation(rw, rw.inType, undefined).msg, {});
    for (const g of [5, 'str', [1], true]) bad(() => parseInvocation(rw, rw.inType, g), 'payload');
    bad(() => parseInvocation(rw, rw.inType, { _secret: 1 }), '_secret');
    bad(() => parseInvocation(rw, rw.inType, { _timeout_ms: -5 }), '_timeout_ms');
    bad(() => parseInvocation(rw, rw.inType, { _channel: { channel_id: 'x' } }), '_channel');
    assert.equal(isHttpEnvelope({ query_params: {}, headers: {}, method: 'GET' }), true);
    assert.equal(isHttpEnvelope({ session_id: 'x' }), false);
  });

  test('authorization values are checked before they become metadata', () => {
    assert.equal(checkAuthorization(undefined), undefined);
    assert.equal(checkAuthorization('Bearer abc'), 'Bearer abc');
    for (const v of ['abc', 'Bearer ', 'Bearer a b', 'Bearer \n', 7]) {
      assert.throws(() => checkAuthorization(v), (e) => e.code === Code.UNAUTHENTICATED);
    }
  });
});

describe('input fuzz', () => {
  // xorshift32, seeded: NC_FUZZ_SEED reproduces a failure
  const seed = Number(process.env.NC_FUZZ_SEED || 7);
  let x = seed >>> 0 || 1;
  const r = () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 2 ** 32;
  };
  const pick = (a) => a[Math.floor(r() * a.length)];
  const names = [...new Set(Object.values(table.messages).flatMap((m) => m.fields.map((f) => f.name)))];
  const keys = [...names, '__proto__', 'constructor', '_caller_worker_id', '_channel', '_timeout_ms', '_authorization', '_x',
    'query_params', 'headers', 'body', 'method', 'trigger', 'response', 'content-type', 'content-length', 'last-event-id', 'authorization'];
  const gen = (d) => {
    switch (Math.floor(r() * (d > 4 ? 7 : 10))) {
      case 0: return null;
      case 1: return Math.floor(r() * 2 ** 34) - 2 ** 33;
      case 2: return r() * 1e9 - 5e8;
      case 3: return r() < 0.5;
      case 4: return pick(['', 'user', 'PHASE_SFT', 'Bearer abcdefghijklmnop', '1', '-1', '1e999', 'true', '[1,2]', '{"a":1}', 'aGk=', 'http', 'GET', 'POST']);
      case 5: return String.fromCharCode(...Array.from({ length: Math.floor(r() * 12) }, () => Math.floor(r() * 0x10000)));
      case 6: return String(Math.floor(r() * 1e12));
      case 7: return Array.from({ length: Math.floor(r() * 4) }, () => gen(d + 1));
      default: {
        const o = {};
        for (let i = Math.floor(r() * 5); i > 0; i--) o[pick(keys)] = gen(d + 1);
        if (r() < 0.2) o.trigger = { type: 'http' };
        return o;
      }
    }
  };

  test(`parseInvocation answers a message or a CallError for any input (seed ${seed}, 30,000 cases)`, () => {
    let ok = 0;
    for (let i = 0; i < 30000; i++) {
      const rw = row(pick(table.rows).iii_id);
      const input = gen(0);
      try {
        const out = parseInvocation(rw, rw.inType, input);
        assert.ok(out.bytes.length <= rw.max_request_bytes);
        rw.inType.decode(out.bytes);
        ok++;
      } catch (e) {
        if (!(e instanceof CallError)) {
          throw new Error(`case ${i} (${rw.iii_id}): ${e.stack}\ninput: ${JSON.stringify(input)?.slice(0, 500)}`);
        }
        assert.ok(e.code === Code.INVALID_ARGUMENT || e.code === Code.RESOURCE_EXHAUSTED, e.message);
      }
    }
    assert.ok(ok > 300, `${ok} inputs were valid requests`);
  });
});

describe('SSE framing and schemas', () => {
  test('event names come from the message type', () => {
    const cs = T('ChatStreamResponse');
    assert.deepEqual(sseFrame(cs, { delta: { text: 'He' } }), { event: 'delta', data: { text: 'He' } });
    assert.deepEqual(sseFrame(cs, { done: { content: 'Hey' } }), { event: 'done', data: { content: 'Hey' } });
    const ev = T('JobEvent');
    assert.deepEqual(sseFrame(ev, { kind: 'EVENT_PROGRESS', seq: 4 }), { event: 'progress', id: '4', data: { kind: 'EVENT_PROGRESS', seq: 4 } });
    assert.equal(sseFrame(ev, { kind: 'EVENT_SNAPSHOT', seq: 9 }).id, undefined);
    assert.equal(sseFrame(T('SampleStreamResponse'), { index: 0, text: 'a' }).event, 'message');
    assert.equal(formatEvent({ event: 'x', id: '3', data: { a: 'b\nc' } }), 'event: x\nid: 3\ndata: {"a":"b\\nc"}\n\n');
  });

  test('request_format schemas carry types, enums, defaults and limits', () => {
    const s = messageSchema(table, 'nanochat.v1.ChatRequest');
    assert.equal(s.type, 'object');
    assert.equal(s.properties.messages.type, 'array');
    assert.equal(s.properties.messages.maxItems, 500);
    assert.deepEqual(s.properties.messages.items.properties.role.enum, ['ROLE_UNSPECIFIED', 'ROLE_USER', 'ROLE_ASSISTANT', 'ROLE_SYSTEM']);
    assert.equal(s.properties.temperature.default, 0.6);
    assert.equal(s.properties.tools.default, true);
    assert.equal(s.properties.session_id.maxLength, 64);
    const ji = messageSchema(table, 'nanochat.v1.JobInfo');
    assert.equal(ji.properties.metrics.type, 'object');
    assert.equal(ji.properties.metrics.additionalProperties.type, 'number');
  });
});

describe('command line', () => {
  const run = (...args) => spawnSync(process.execPath, [path.join(ADAPTER_DIR, 'src/main.mjs'), ...args], { encoding: 'utf8', timeout: 20000 });

  test('flags win over the environment, which wins over defaults', () => {
    const o = parseArgs(['--nanochatd', 'unix:/tmp/s', '--otel', '--http-timeout-ms=5000'], { III_URL: 'ws://h:1', NANOCHAT_ADDR: 'x:1' });
    assert.equal(o.engine, 'ws://h:1');
    assert.equal(o.nanochatd, 'unix:/tmp/s');
    assert.equal(o['http-timeout-ms'], '5000');
    assert.equal(o.otel, '1');
    assert.equal(parseArgs([], {})['state-scope'], 'nanochat:training');
  });

  test('a bad command line, table or token file exits 2 with the reason', () => {
    let r = run('--bogus');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown argument --bogus/);
    r = run('--engine', 'http://x');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--engine/);
    r = run('--rpc-table', '/nonexistent/rpc_table.json');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /rpc table .*cannot read/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iii-cli-'));
    const tok = path.join(dir, 'token');
    fs.writeFileSync(tok, 'secret-secret-secret\n', { mode: 0o644 });
    r = run('--token-file', tok);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /readable by group\/others/);
    r = run('--http-timeout-ms', 'soon');
    assert.equal(r.status, 2);
    fs.rmSync(dir, { recursive: true });
  });
});
