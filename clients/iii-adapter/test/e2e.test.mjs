// e2e.test.mjs — HTTP request → stand-in iii engine → adapter (child process, official iii-sdk) →
// real nanochatd (loopback, admin + user tokens, built-in test jobs) → response / SSE; plus direct
// trigger() calls and iii-state polling from a second official-SDK worker.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import grpc from '@grpc/grpc-js';
import { registerWorker } from 'iii-sdk';
import { createChannel } from 'iii-sdk/helpers';

import { loadRoot, encode } from '../src/schema.mjs';
import { codeName, httpStatus } from '../src/status.mjs';
import { get, openSse, post, readTable, request, sleep, SOURCE_DIR, startStack, waitFor, waitTerminal } from './helpers.mjs';

const ADMIN = 'admin-token-0123456789abcdef';
const USER = 'user-token-0123456789abcdef';
const A = { authorization: `Bearer ${ADMIN}` };
const U = { authorization: `Bearer ${USER}` };
const TERMINAL = ['JOB_SUCCEEDED', 'JOB_FAILED', 'JOB_CANCELLED', 'JOB_INTERRUPTED'];

/** The gRPC status nanochatd gives for a request, called directly (no adapter). */
function directStatus(client, row, bytes, token) {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return new Promise((resolve) => {
    const opts = { deadline: Date.now() + 10000 };
    if (row.server_streaming) {
      const call = client.makeServerStreamRequest(row.path, (b) => b, (b) => b, bytes, md, opts);
      call.on('data', () => {});
      call.on('error', (e) => resolve(e.code));
      call.on('status', (s) => s.code === 0 && resolve(0));
    } else {
      client.makeUnaryRequest(row.path, (b) => b, (b) => b, bytes, md, opts, (e) => resolve(e ? e.code : 0));
    }
  });
}

describe('end to end through the stand-in engine', () => {
  let s;
  let w2;
  let table;
  let root;
  const stateGet = (key) => w2.trigger({ function_id: 'state::get', payload: { scope: 'nanochat:training', key } });

  before(async () => {
    s = await startStack({ token: ADMIN, userToken: USER });
    table = readTable();
    root = loadRoot(path.join(SOURCE_DIR, 'proto'));
    w2 = registerWorker(s.engine.wsUrl, { workerName: 'e2e-caller', otel: { enabled: false }, enableMetricsReporting: false });
    await waitFor(() => s.engine.workers.size >= 2, { what: 'second worker' });
  });

  after(async () => {
    await w2?.shutdown();
    const rc = await s?.close();
    assert.equal(rc, 0, `adapter exit status\n${s?.adapter.stderr.slice(-4000)}`);
  });

  test('GET /nanochat/health → 200 JSON from Health.Check (public, no token)', async () => {
    const r = await get(`${s.base}/nanochat/health`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.json.status, 'ok');
    assert.equal(r.json.worker, 'nanochat-c');
    assert.equal(typeof r.json.uptime_s, 'number');
  });

  test('every RPC-table row with an iii id is registered as a function with its HTTP trigger', () => {
    const rows = table.methods.filter((m) => m.iii_id);
    assert.ok(rows.length >= 20);
    for (const m of rows) {
      const f = s.engine.functions.get(m.iii_id);
      assert.ok(f, `function ${m.iii_id}`);
      assert.equal(f.message.description, m.summary);
      assert.equal(f.message.request_format.type, 'object');
      assert.equal(f.message.metadata.grpc_method, m.path);
      assert.ok(s.engine.front.routes.has(`${m.http_method} ${m.http_path}`), `route ${m.http_method} ${m.http_path}`);
    }
    assert.equal(s.engine.front.routes.size, rows.length);
  });

  test('auth: no token → 401, wrong token → 401, user token on an admin method → 403', async () => {
    let r = await get(`${s.base}/nanochat/model/status`);
    assert.equal(r.status, 401);
    assert.equal(r.json.error.code, 'UNAUTHENTICATED');
    r = await get(`${s.base}/nanochat/model/status`, { headers: { authorization: 'Bearer wrong-token-0123456789' } });
    assert.equal(r.status, 401);
    r = await get(`${s.base}/nanochat/model/status`, { headers: { authorization: 'Basic abc' } });
    assert.equal(r.status, 401);
    assert.equal(r.json.error.field, 'authorization');
    r = await get(`${s.base}/nanochat/model/status`, { headers: U });
    assert.equal(r.status, 200);
    assert.equal(r.json.loaded, false);
    r = await post(`${s.base}/nanochat/train/test_job`, { steps: 1 }, { headers: U });
    assert.equal(r.status, 403);
    assert.equal(r.json.error.code, 'PERMISSION_DENIED');
  });

  test('every row: the HTTP status is the mapped gRPC status nanochatd gives directly', async () => {
    const client = new grpc.Client(s.nc.address, grpc.credentials.createInsecure());
    const seen = new Map();
    try {
      for (const m of table.methods.filter((x) => x.iii_id)) {
        const bytes = encode(root.lookupType(m.input_type), {});
        const code = await directStatus(client, m, bytes, ADMIN);
        const url = `${s.base}${m.http_path}`;
        const r = m.http_method === 'GET'
          ? await request('GET', url, { headers: { ...A, accept: 'application/json' } })
          : await request('POST', url, { headers: { ...A, accept: 'application/json' }, body: {} });
        const want = code === 0 ? (m.output_type === 'nanochat.v1.JobRef' ? 202 : 200) : httpStatus(code);
        assert.equal(r.status, want, `${m.iii_id}: gRPC ${codeName(code)} → HTTP ${r.status} ${r.text.slice(0, 200)}`);
        if (code !== 0) {
          assert.equal(r.json.error.code, codeName(code), m.iii_id);
          assert.equal(r.json.error.grpc_code, code);
          assert.ok(r.json.error.message.length > 0);
        }
        seen.set(m.iii_id, r.status);
      }
    } finally {
      client.close();
    }
    // this server (no model): status/health/history/list answer, empty chat requests are
    // invalid, model-bound calls are 409, starters accept (test job), capabilities still missing
    // are 501
    assert.equal(seen.get('nanochat.health'), 200);
    assert.equal(seen.get('nanochat.chat.complete'), 400);
    assert.equal(seen.get('nanochat.model.sample'), 409);
    assert.equal(seen.get('nanochat.eval.core'), 501);
    assert.equal(seen.get('nanochat.train.cancel'), 400);
    assert.equal(seen.get('nanochat.train.test_job'), 202);
  });

  test('chat without a model → 409 FAILED_PRECONDITION; UNIMPLEMENTED → 501, with the error envelope', async () => {
    const r = await post(`${s.base}/nanochat/chat/completions`, { messages: [{ role: 'user', content: 'hello' }] }, { headers: U });
    assert.deepEqual([r.status, r.json.error.code, r.json.error.grpc_code], [409, 'FAILED_PRECONDITION', 9]);
    assert.match(r.json.error.message, /no model loaded/);
    // a stream that fails before its first message is a plain JSON error, not an SSE stream
    const st = await post(`${s.base}/nanochat/chat/stream`, { messages: [{ role: 'user', content: 'hello' }] }, { headers: U });
    assert.deepEqual([st.status, st.json.error.code], [409, 'FAILED_PRECONDITION'], st.text);
    assert.equal(st.headers['content-type'], 'application/json');
    const u = await post(`${s.base}/nanochat/eval/core`, {}, { headers: A });
    assert.deepEqual([u.status, u.json.error.code, u.json.error.grpc_code], [501, 'UNIMPLEMENTED', 12]);
    assert.match(u.json.error.message, /\S/);
  });

  test('bad bodies: 400 naming the field (adapter and server checks), 413 oversize, 415 non-JSON', async () => {
    let r = await post(`${s.base}/nanochat/chat/completions`, { messages: [{ role: 'user', content: 'x'.repeat(9000) }] }, { headers: U });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.field, 'messages[0].content', r.text);
    r = await post(`${s.base}/nanochat/chat/completions`, { messages: [{ role: 'user', content: 42 }] }, { headers: U });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.field, 'messages[0].content');
    r = await post(`${s.base}/nanochat/chat/completions`, { messages: [{ role: 'user', content: 'hi' }], top_k: 500 }, { headers: U });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.field, 'top_k', r.text);
    r = await get(`${s.base}/nanochat/train/status?job_id=../../etc`, { headers: U });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.field, 'job_id');
    r = await post(`${s.base}/nanochat/tools/execute`, { code: 'x'.repeat(300000) }, { headers: U });
    assert.equal(r.status, 413);
    assert.equal(r.json.error.field, 'body');
    r = await post(`${s.base}/nanochat/tools/execute`, 'code=1', { headers: { ...U, 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(r.status, 415);
    r = await post(`${s.base}/nanochat/tools/execute`, '{"code": ', { headers: { ...U, 'content-type': 'application/json' } });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.field, 'body');
    r = await post(`${s.base}/nanochat/tools/execute`, { code: 'print(1)', bogus: 1 }, { headers: U });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.field, 'bogus');
  });

  test('tools.execute: a result, or 409 when this build has no sandbox (FAILED_PRECONDITION)', async () => {
    const r = await post(`${s.base}/nanochat/tools/execute`, { code: 'print(6*7)' }, { headers: U });
    if (r.status === 200) assert.equal(r.json.stdout.trim(), '42');
    else assert.deepEqual([r.status, r.json.error.code], [409, 'FAILED_PRECONDITION'], r.text);
  });

  test('training: job id at once (202), SSE progress stream, progress mirrored into iii state', async () => {
    const t0 = Date.now();
    const r = await post(`${s.base}/nanochat/train/test_job`, { steps: 15, step_ms: 100 }, { headers: A });
    const took = Date.now() - t0;
    assert.equal(r.status, 202);
    assert.ok(took < 1000, `answered in ${took} ms, before the 1.5 s job ends`);
    const id = r.json.job_id;
    assert.match(id, /^[0-9a-f]{16}$/);
    assert.ok(['JOB_QUEUED', 'JOB_RUNNING'].includes(r.json.state));
    assert.equal(r.json.status_url, `/nanochat/train/status?job_id=${id}`);
    assert.equal(r.json.state_scope, 'nanochat:training');

    const midRun = [];
    const poller = (async () => {
      for (let i = 0; i < 200; i++) {
        const v = await stateGet(id);
        if (v) midRun.push(v);
        if (v?.terminal) return;
        await sleep(40);
      }
    })();
    const sse = await openSse(`${s.base}${r.json.status_url}`, { headers: U });
    assert.equal(sse.status, 200);
    assert.match(sse.headers['content-type'], /^text\/event-stream/);
    const evs = await sse.done;
    await poller;
    assert.equal(evs[0].event, 'snapshot');
    assert.equal(evs.at(-1).event, 'end');
    const stored = evs.filter((e) => e.id !== undefined);
    assert.deepEqual(stored.map((e) => Number(e.id)), stored.map((_, i) => i + 1), 'ids are the job event seqs 1..n');
    const steps = evs.filter((e) => e.event === 'progress').map((e) => e.data.progress.step);
    assert.deepEqual(steps, Array.from({ length: 15 }, (_, i) => i + 1));
    const states = evs.filter((e) => e.event === 'state').map((e) => e.data.state);
    assert.equal(states.at(-1), 'JOB_SUCCEEDED');

    assert.ok(midRun.some((v) => !v.terminal && v.state === 'JOB_RUNNING' && v.progress?.step > 0),
      `a running value with progress was polled (${midRun.length} polls)`);
    const fin = await waitTerminal(w2, id, 'terminal state in iii state');
    assert.equal(fin.state, 'JOB_SUCCEEDED');
    assert.equal(fin.kind, 'JOB_TEST');
    assert.equal(fin.progress.step, 15);
    const evalEv = evs.find((e) => e.event === 'eval');
    assert.equal(typeof evalEv.data.metrics.val_bpb, 'number');
    assert.equal(fin.metrics.val_bpb, evalEv.data.metrics.val_bpb);
    assert.equal(fin.job_id, id);
  });

  test('SSE extras: Last-Event-ID resumes, Accept: application/json and follow=false give JSON', async () => {
    const r = await post(`${s.base}/nanochat/train/test_job`, { steps: 3, step_ms: 10 }, { headers: A });
    const id = r.json.job_id;
    await waitTerminal(w2, id);
    const all = await (await openSse(`${s.base}/nanochat/train/status?job_id=${id}`, { headers: U })).done;
    const resumed = await (await openSse(`${s.base}/nanochat/train/status?job_id=${id}`, { headers: { ...U, 'last-event-id': '4' } })).done;
    const ids = (evs) => evs.filter((e) => e.id).map((e) => Number(e.id));
    assert.deepEqual(ids(resumed), ids(all).filter((n) => n > 4));
    let j = await get(`${s.base}/nanochat/train/status?job_id=${id}`, { headers: { ...U, accept: 'application/json' } });
    assert.equal(j.status, 200);
    assert.equal(j.json.events[0].kind, 'EVENT_SNAPSHOT');
    assert.equal(j.json.events.length, ids(all).length + 1);
    j = await get(`${s.base}/nanochat/train/status?follow=false&limit=5`, { headers: U });
    assert.ok(j.json.events.length >= 1 && j.json.events.length <= 5);
    assert.ok(j.json.events.every((e) => e.kind === 'EVENT_SNAPSHOT'));
  });

  test('cancel: 200 JobInfo, the stream ends CANCELLED, the mirror says so; again → 409; unknown → 404', async () => {
    const r = await post(`${s.base}/nanochat/train/test_job`, { steps: 400, step_ms: 50 }, { headers: A });
    const id = r.json.job_id;
    const sse = await openSse(`${s.base}/nanochat/train/status?job_id=${id}`, { headers: U });
    await waitFor(async () => (await stateGet(id))?.state === 'JOB_RUNNING', { what: 'running' });
    const c = await post(`${s.base}/nanochat/train/cancel`, { job_id: id }, { headers: A });
    assert.equal(c.status, 200, c.text);
    assert.equal(c.json.job_id, id);
    const evs = await sse.done;
    assert.equal(evs.filter((e) => e.event === 'state').at(-1).data.state, 'JOB_CANCELLED');
    assert.equal(evs.at(-1).event, 'end');
    const v = await waitTerminal(w2, id, 'mirrored cancel');
    assert.equal(v.state, 'JOB_CANCELLED');
    const again = await post(`${s.base}/nanochat/train/cancel`, { job_id: id }, { headers: A });
    assert.deepEqual([again.status, again.json.error.code], [409, 'FAILED_PRECONDITION']);
    const none = await post(`${s.base}/nanochat/train/cancel`, { job_id: '0123456789abcdef' }, { headers: A });
    assert.deepEqual([none.status, none.json.error.code], [404, 'NOT_FOUND']);
  });

  test('an SSE client that goes away cancels its gRPC stream', async () => {
    const r = await post(`${s.base}/nanochat/train/test_job`, { steps: 400, step_ms: 50 }, { headers: A });
    const id = r.json.job_id;
    const inflight = async () => (await get(`${s.base}/nanochat/health`)).json.calls_in_flight;
    await waitFor(async () => (await stateGet(id))?.state === 'JOB_RUNNING', { what: 'running' });
    await sleep(300);
    const base = await inflight();
    const sse = await openSse(`${s.base}/nanochat/train/status?job_id=${id}`, { headers: U });
    await waitFor(() => sse.events.length >= 3, { what: 'events' });
    await waitFor(async () => (await inflight()) === base + 1, { what: 'the SSE stream in flight in nanochatd' });
    sse.close();
    await waitFor(async () => (await inflight()) === base, { what: 'stream cancelled in nanochatd' });
    await post(`${s.base}/nanochat/train/cancel`, { job_id: id }, { headers: A });
    await waitTerminal(w2, id);
  });

  test('direct trigger() from another worker: plain replies, errors by gRPC status, streams', async () => {
    const h = await w2.trigger({ function_id: 'nanochat.health', payload: {} });
    assert.equal(h.status, 'ok');
    assert.equal(h.status_code, undefined, 'no HTTP envelope for direct calls');
    const ms = await w2.trigger({ function_id: 'nanochat.model.status', payload: { _authorization: `Bearer ${USER}` } });
    assert.equal(ms.loaded, false);
    await assert.rejects(w2.trigger({ function_id: 'nanochat.model.status', payload: {} }),
      (e) => e.code === 'invocation_failed' && /^UNAUTHENTICATED: /.test(e.message.replace(/^invocation_failed: /, '')));
    await assert.rejects(w2.trigger({ function_id: 'nanochat.chat.history', payload: { session_id: 5, _authorization: `Bearer ${USER}` } }),
      (e) => /INVALID_ARGUMENT: session_id/.test(e.message));
    const job = await w2.trigger({ function_id: 'nanochat.train.test_job', payload: { steps: 4, step_ms: 10, _authorization: `Bearer ${ADMIN}` } });
    assert.match(job.job_id, /^[0-9a-f]{16}$/);
    assert.equal(job.state_scope, 'nanochat:training');
    const got = await w2.trigger({ function_id: 'nanochat.train.status', payload: { job_id: job.job_id, _authorization: `Bearer ${USER}` } });
    assert.equal(got.events[0].kind, 'EVENT_SNAPSHOT');
    assert.equal(got.events.filter((e) => e.kind === 'EVENT_STATE').at(-1).state, 'JOB_SUCCEEDED');
    const ch = await createChannel(w2);
    const reading = ch.reader.readAll();
    const res = await w2.trigger({ function_id: 'nanochat.train.status',
      payload: { job_id: job.job_id, follow: false, _channel: ch.writerRef, _authorization: `Bearer ${USER}` } });
    const lines = (await reading).toString().trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(res.events, lines.length);
    assert.equal(lines[0].event, 'snapshot');
    assert.equal(lines.at(-1).event, 'state');
  });
});

describe('end to end: a server without test jobs or tokens', () => {
  let s;
  before(async () => {
    s = await startStack({ nanochatdArgs: [] });
  });
  after(async () => {
    assert.equal(await s?.close(), 0);
  });

  test('Train.TestJob is UNIMPLEMENTED there → 501; methods need no token', async () => {
    const r = await post(`${s.base}/nanochat/train/test_job`, {});
    assert.equal(r.status, 501);
    assert.equal(r.json.error.code, 'UNIMPLEMENTED');
    assert.equal(r.json.error.grpc_code, 12);
    assert.equal((await get(`${s.base}/nanochat/model/status`)).status, 200);
    const h = await get(`${s.base}/nanochat/chat/history?page_size=5`);
    assert.equal(h.status, 200);
    assert.deepEqual(h.json.sessions ?? [], []);
  });
});
