// conformance.test.mjs — the UNMODIFIED official iii-sdk (0.22.1) against the stand-in engine.
// Every check here is SDK behaviour the adapter relies on; if the stand-in drifted from the
// protocol in specs/iii.md, the official client would fail these.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { registerWorker, TriggerAction } from 'iii-sdk';
import { createChannel } from 'iii-sdk/helpers';
import { http as httpHelper } from '@iii-dev/helpers/http';

import { get, openSse, post, request, sleep, startEngine, waitFor } from './helpers.mjs';
import { StandInEngine } from './engine/engine.mjs';

const OPTS = { otel: { enabled: false }, enableMetricsReporting: false, reconnectionConfig: { initialDelayMs: 200, maxDelayMs: 1000 } };

async function routeUp(base, path) {
  await waitFor(async () => (await get(`${base}${path}`)).status !== 404, { what: `route ${path}` });
}

describe('official iii-sdk against the stand-in engine', () => {
  let engine;
  let w1;
  let w2;
  const seen = [];

  before(async () => {
    engine = await startEngine();
    w1 = registerWorker(engine.wsUrl, { ...OPTS, workerName: 'conf-1' });
    w2 = registerWorker(engine.wsUrl, { ...OPTS, workerName: 'conf-2' });
    w1.registerFunction('conf.echo', async (req) => {
      seen.push(req);
      return { status_code: 201, headers: { 'x-echo': 'yes' }, body: { method: req.method, query: req.query_params, body: req.body } };
    }, { description: 'echo' });
    w1.registerTrigger({ type: 'http', function_id: 'conf.echo', config: { api_path: '/conf/echo', http_method: 'GET' } });
    w1.registerTrigger({ type: 'http', function_id: 'conf.echo', config: { api_path: 'conf/echo', http_method: 'POST' } });
    w1.registerFunction('conf.nobody', async () => ({ status_code: 204 }));
    w1.registerTrigger({ type: 'http', function_id: 'conf.nobody', config: { api_path: '/conf/nobody', http_method: 'GET' } });
    w1.registerFunction('conf.plain', async () => ({ hello: 'world' }));
    w1.registerTrigger({ type: 'http', function_id: 'conf.plain', config: { api_path: '/conf/plain', http_method: 'GET' } });
    w1.registerFunction('conf.throws', async () => {
      throw new Error('boom');
    });
    w1.registerTrigger({ type: 'http', function_id: 'conf.throws', config: { api_path: '/conf/throws', http_method: 'GET' } });
    w1.registerFunction('conf.raw', async (req) => {
      const bytes = await req.request_body.readAll();
      return { status_code: 200, body: { len: bytes.length, text: bytes.toString('utf8'), parsed: req.body } };
    });
    w1.registerTrigger({ type: 'http', function_id: 'conf.raw', config: { api_path: '/conf/raw', http_method: 'POST' } });
    w1.registerFunction('conf.sse', httpHelper(async (_req, res) => {
      res.status(202);
      res.headers({ 'content-type': 'text/event-stream' });
      for (let i = 0; i < 3; i++) {
        res.stream.write(`data: ${i}\n\n`);
        await sleep(150);
      }
      res.stream.end();
    }));
    w1.registerTrigger({ type: 'http', function_id: 'conf.sse', config: { api_path: '/conf/sse', http_method: 'GET' } });
    w1.registerFunction('conf.add', async (p) => ({ sum: p.a + p.b, caller: p._caller_worker_id }));
    w1.registerFunction('conf.void', async (p) => {
      seen.push({ void: p });
    });
    await routeUp(engine.httpUrl, '/conf/echo');
    await routeUp(engine.httpUrl, '/conf/sse');
  });

  after(async () => {
    await w1?.shutdown();
    await w2?.shutdown();
    await engine?.stop();
  });

  test('registration frames have the v0.22 wire shape', () => {
    const inFrames = engine.frames.filter((f) => f.dir === 'in').map((f) => f.frame);
    const fn = inFrames.find((f) => f.type === 'registerfunction' && f.id === 'conf.echo');
    assert.equal(fn.description, 'echo');
    const trig = inFrames.find((f) => f.type === 'registertrigger' && f.function_id === 'conf.echo');
    assert.equal(trig.trigger_type, 'http');
    assert.deepEqual(trig.config, { api_path: '/conf/echo', http_method: 'GET' });
    assert.match(trig.id, /^[0-9a-f-]{36}$/);
    const reg = inFrames.find((f) => f.type === 'invokefunction' && f.function_id === 'engine::workers::register');
    assert.equal(reg.action.type, 'void');
    assert.equal(reg.invocation_id, undefined);
    assert.equal(reg.data.runtime, 'node');
    assert.equal(reg.data.version, '0.22.1');
    const out = engine.frames.find((f) => f.dir === 'out' && f.frame.type === 'workerregistered');
    assert.ok(out.frame.worker_id && out.frame.reattach_token);
  });

  test('GET: the handler gets the HttpRequest envelope; status, headers and body come back', async () => {
    const r = await get(`${engine.httpUrl}/conf/echo?x=1&y=two&x=3`, { headers: { 'x-test': 'abc' } });
    assert.equal(r.status, 201);
    assert.equal(r.headers['x-echo'], 'yes');
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(r.json, { method: 'GET', query: { x: '3', y: 'two' }, body: null });
    const req = seen.at(-1);
    assert.equal(req.trigger.type, 'http');
    assert.equal(req.path, '/conf/echo');
    assert.equal(req.headers['x-test'], 'abc');
    assert.deepEqual(req.path_params, {});
    // the SDK turned the channel refs into reader/writer objects
    assert.equal(typeof req.request_body.readAll, 'function');
    assert.equal(typeof req.response.sendMessage, 'function');
  });

  test('POST: JSON bodies are parsed, invalid JSON becomes null, other types go to request_body', async () => {
    let r = await post(`${engine.httpUrl}/conf/echo`, { a: [1, 2] });
    assert.deepEqual(r.json.body, { a: [1, 2] });
    r = await post(`${engine.httpUrl}/conf/echo`, '{nope', { headers: { 'content-type': 'application/json' } });
    assert.equal(r.json.body, null);
    r = await post(`${engine.httpUrl}/conf/raw`, 'plain bytes', { headers: { 'content-type': 'text/plain' } });
    assert.deepEqual(r.json, { len: 11, text: 'plain bytes', parsed: null });
  });

  test('a return value without body is an empty {} body (from_function_return)', async () => {
    let r = await get(`${engine.httpUrl}/conf/nobody`);
    assert.equal(r.status, 204);
    r = await get(`${engine.httpUrl}/conf/plain`);
    // from_function_return: no `body` key → {} (the original worker's defect D4)
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, {});
  });

  test('a throwing handler is a 500 error envelope; unknown routes are 404', async () => {
    const r = await get(`${engine.httpUrl}/conf/throws`);
    assert.equal(r.status, 500);
    assert.equal(r.json.error.code, 'invocation_failed');
    assert.equal(r.json.error.message, 'boom');
    assert.equal((await get(`${engine.httpUrl}/conf/none`)).status, 404);
  });

  test('streaming through the response channel (official http() helper): head first, then chunks', async () => {
    const t0 = Date.now();
    const times = [];
    const s = await openSse(`${engine.httpUrl}/conf/sse`, { onEvent: () => times.push(Date.now() - t0) });
    assert.equal(s.status, 202);
    assert.equal(s.headers['content-type'], 'text/event-stream');
    const evs = await s.done;
    assert.deepEqual(evs.map((e) => e.data), [0, 1, 2]);
    assert.ok(times[2] - times[0] >= 200, `chunks arrived as written, not all at the end (${times})`);
  });

  test('worker → worker trigger(): result, _caller_worker_id, void, not found, enqueue', async () => {
    const r = await w2.trigger({ function_id: 'conf.add', payload: { a: 2, b: 3 } });
    assert.equal(r.sum, 5);
    assert.match(r.caller, /^[0-9a-f-]{36}$/);
    await w2.trigger({ function_id: 'conf.void', payload: { n: 1 }, action: TriggerAction.Void() });
    await waitFor(() => seen.some((s) => s.void?.n === 1), { what: 'void call' });
    await assert.rejects(w2.trigger({ function_id: 'conf.missing', payload: {} }), (e) => e.code === 'function_not_found');
    await assert.rejects(w2.trigger({ function_id: 'conf.throws', payload: {} }),
      (e) => e.code === 'invocation_failed' && /boom/.test(e.message));
    await assert.rejects(w2.trigger({ function_id: 'conf.add', payload: {}, action: TriggerAction.Enqueue({ queue: 'q' }) }),
      (e) => e.code === 'enqueue_error');
  });

  test('JSON nested deeper than serde_json parses (128) is dropped by the engine, like the real one', async () => {
    const nest = (n) => JSON.parse('['.repeat(n) + ']'.repeat(n));
    assert.equal((await w2.trigger({ function_id: 'conf.add', payload: { a: 1, b: 1, x: nest(100) } })).sum, 2);
    await assert.rejects(w2.trigger({ function_id: 'conf.add', payload: { a: 1, b: 1, x: nest(200) }, timeoutMs: 500 }),
      (e) => e.code === 'TIMEOUT');
    const r = await post(`${engine.httpUrl}/conf/echo`, { x: nest(200) });
    assert.equal(r.json.body, null);
  });

  test('state::set/get/list/update/delete', async () => {
    const t = (function_id, payload) => w2.trigger({ function_id, payload });
    const s1 = await t('state::set', { scope: 'conf', key: 'k', value: { a: 1 } });
    assert.deepEqual(s1, { old_value: null, new_value: { a: 1 } });
    assert.deepEqual(await t('state::get', { scope: 'conf', key: 'k' }), { a: 1 });
    assert.equal(await t('state::get', { scope: 'conf', key: 'nope' }), null);
    await t('state::update', { scope: 'conf', key: 'k', ops: [{ type: 'increment', path: 'a', by: 2 }] });
    assert.deepEqual(await t('state::list', { scope: 'conf' }), [{ a: 3 }]);
    assert.ok((await t('state::list_groups', {})).includes('conf'));
    assert.deepEqual(await t('state::delete', { scope: 'conf', key: 'k' }), { a: 3 });
    await assert.rejects(t('state::get', { scope: 5 }));
  });

  test('channels: createChannel() gives a writer/reader pair across workers', async () => {
    const ch = await createChannel(w2);
    w1.registerFunction('conf.writer', async ({ out }) => {
      out.stream.write(Buffer.from('line 1\n'));
      out.stream.end(Buffer.from('line 2\n'));
      return { ok: true };
    });
    await waitFor(() => engine.functions.has('conf.writer'));
    const reading = ch.reader.readAll();
    assert.deepEqual(await w2.trigger({ function_id: 'conf.writer', payload: { out: ch.writerRef } }), { ok: true });
    assert.equal((await reading).toString(), 'line 1\nline 2\n');
  });

  test('a trigger of an unknown type is parked, then handed to the worker that registers the type', async () => {
    const got = [];
    w1.registerFunction('conf.ticked', async () => ({}));
    w1.registerTrigger({ type: 'conf-tick', function_id: 'conf.ticked', config: { every: 5 } });
    await sleep(200);
    assert.ok(!engine.frames.some((f) => f.dir === 'out' && f.frame.type === 'triggerregistrationresult'));
    w2.registerTriggerType({ id: 'conf-tick', description: 'test type' }, {
      registerTrigger: async (cfg) => got.push(cfg),
      unregisterTrigger: async () => {},
    });
    await waitFor(() => got.length === 1, { what: 'parked trigger delivery' });
    assert.equal(got[0].function_id, 'conf.ticked');
    assert.deepEqual(got[0].config, { every: 5 });
  });

  test('a worker that goes away loses its routes; in-flight calls fail with invocation_stopped', async () => {
    const w3 = registerWorker(engine.wsUrl, { ...OPTS, workerName: 'conf-3' });
    w3.registerFunction('conf.slow', () => new Promise(() => {}));
    w3.registerTrigger({ type: 'http', function_id: 'conf.slow', config: { api_path: '/conf/slow', http_method: 'GET' } });
    await waitFor(() => engine.functions.has('conf.slow'));
    const pending = w2.trigger({ function_id: 'conf.slow', payload: {} });
    await sleep(100);
    await w3.shutdown();
    await assert.rejects(pending, (e) => e.code === 'invocation_stopped');
    await waitFor(async () => (await get(`${engine.httpUrl}/conf/slow`)).status === 404, { what: 'route removal' });
  });

  test('engine restart: the SDK reconnects, sends reattach and re-registers everything', async () => {
    const { wsPort, httpPort } = engine;
    await engine.stop();
    await sleep(300);
    engine = await new StandInEngine({ wsPort, httpPort }).start();
    await routeUp(engine.httpUrl, '/conf/echo');
    const r = await request('GET', `${engine.httpUrl}/conf/echo?again=1`);
    assert.equal(r.status, 201);
    assert.deepEqual(r.json.query, { again: '1' });
    assert.ok(engine.frames.some((f) => f.dir === 'in' && f.frame.type === 'reattach' && f.frame.previous_worker_id));
    assert.deepEqual(await w2.trigger({ function_id: 'conf.add', payload: { a: 1, b: 1 } }).then((x) => x.sum), 2);
  });
});
