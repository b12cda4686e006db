// robust.test.mjs — malformed invocations never crash the adapter: garbage payloads through the
// official SDK's trigger() for every function, a seeded fuzz of every table row over HTTP and
// direct calls, and raw garbage frames pushed from the engine straight into the adapter's socket.
// After every batch the adapter process must still be alive, answer /nanochat/health, and have
// logged no uncaught exception or unhandled rejection.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { registerWorker } from 'iii-sdk';

import { get, post, readTable, request, sleep, startStack, waitFor } from './helpers.mjs';

const SEED = Number(process.env.NC_FUZZ_SEED || 20261201);

function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

function deep(n) {
  let v = [];
  const top = v;
  for (let i = 0; i < n; i++) v = v[0] = [];
  return top;
}

const GARBAGE = [
  null, undefined, 0, -1, 1e308, '', 'str', true, [], [1, 2], {}, { a: 1 },
  { messages: 'x' }, { messages: [1, 2] }, { messages: [{ role: {}, content: [] }] },
  JSON.parse('{"__proto__": {"polluted": 1}}'), { constructor: 1 }, { toString: 'x' }, { hasOwnProperty: 1 },
  { job_id: { channel_id: 'c', access_key: 'k', direction: 'write' } },
  { session_id: 'a'.repeat(100000) }, { code: 'x'.repeat(2 << 20) }, { x: deep(120) }, { messages: [{ parts: deep(120) }] },
  { _channel: 'x' }, { _timeout_ms: 'soon' }, { _authorization: 'Bearer \n' }, { _authorization: 12 },
  { trigger: { type: 'http' }, headers: 'x', query_params: 5, method: 'GET' },
  { trigger: { type: 'http' }, headers: { 'content-type': 'application/json', 'content-length': '9' }, method: 'POST', body: 'str' },
  { trigger: { type: 'http' }, query_params: { job_id: 'x' }, headers: {}, method: 'GET',
    response: { channel_id: 'nope', access_key: 'nope', direction: 'write' } },
];

function randomValue(r, depth = 0) {
  const k = Math.floor(r() * 10);
  switch (k) {
    case 0: return null;
    case 1: return Math.floor(r() * 2 ** 40) - 2 ** 39;
    case 2: return r() * 1e6 - 5e5;
    case 3: return r() < 0.5;
    case 4: return 'x'.repeat(Math.floor(r() * 70));
    case 5: return String.fromCharCode(...Array.from({ length: 8 }, () => Math.floor(r() * 0xd7ff)));
    case 6: return depth < 3 ? Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1)) : [];
    case 7: return depth < 3 ? { role: randomValue(r, depth + 1), content: randomValue(r, depth + 1) } : {};
    case 8: return ['ROLE_USER', 'user', 'PHASE_SFT', 'JOB_RUNNING', 'nope'][Math.floor(r() * 5)];
    default: return String(Math.floor(r() * 1e6));
  }
}

function randomRequest(r, table, typeName) {
  const m = table.messages[typeName];
  const out = {};
  for (const f of m.fields) if (r() < 0.5) out[f.name] = randomValue(r);
  if (r() < 0.1) out[`bogus_${Math.floor(r() * 100)}`] = 1;
  return out;
}

describe('malformed invocations never crash the adapter', () => {
  let s;
  let w2;
  let table;

  async function healthy(what, { sdkRecursion = false } = {}) {
    assert.ok(s.adapter.alive(), `adapter died after ${what}\n${s.adapter.stderr.slice(-4000)}`);
    const r = await get(`${s.base}/nanochat/health`);
    assert.equal(r.status, 200, `health after ${what}: ${r.status} ${r.text}`);
    // the one tolerated failure: iii-sdk's own resolveChannelValue recursing over a payload no
    // real engine can forward (logged and survived; the invocation gets no answer)
    const bad = s.adapter.stderr.split(/\n(?=nanochat-iii-adapter: )/)
      .filter((l) => /uncaught exception|unhandled rejection/.test(l))
      .filter((l) => !(sdkRecursion && /Maximum call stack size exceeded[\s\S]*resolveChannelValue/.test(l)));
    assert.deepEqual(bad, [], `after ${what}`);
  }

  before(async () => {
    s = await startStack({ nanochatdArgs: [] });
    table = readTable();
    w2 = registerWorker(s.engine.wsUrl, { workerName: 'robust-caller', otel: { enabled: false }, enableMetricsReporting: false, invocationTimeoutMs: 20000 });
    await waitFor(() => s.engine.workers.size >= 2, { what: 'second worker' });
  });

  after(async () => {
    await w2?.shutdown();
    assert.equal(await s?.close(), 0);
  });

  test('garbage payloads through trigger() for every function: an answer or an error, never a crash', async () => {
    let answered = 0;
    let failed = 0;
    for (const m of table.methods.filter((x) => x.iii_id)) {
      await Promise.all(GARBAGE.map((g) => w2.trigger({ function_id: m.iii_id, payload: g }).then(() => answered++, (e) => {
        assert.ok(e.code === 'invocation_failed', `${m.iii_id}: ${e.code} ${e.message}`);
        failed++;
      })));
    }
    assert.ok(failed > answered, `${failed} refused, ${answered} answered`);
    await healthy('garbage trigger() payloads');
  });

  test(`seeded fuzz of every row over HTTP and direct calls (seed ${SEED})`, async () => {
    const r = rng(SEED);
    const statuses = new Map();
    for (const m of table.methods.filter((x) => x.iii_id)) {
      for (let i = 0; i < 12; i++) {
        const req = randomRequest(r, table, m.input_type);
        let res;
        if (m.http_method === 'GET') {
          const q = new URLSearchParams(Object.entries(req).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
          res = await request('GET', `${s.base}${m.http_path}?${q}`, { headers: { accept: 'application/json' } });
        } else {
          res = await post(`${s.base}${m.http_path}`, req, { headers: { accept: 'application/json' } });
        }
        assert.ok(res.status < 500 || res.status === 501 || res.status === 503, `${m.iii_id} ${JSON.stringify(req).slice(0, 300)} → ${res.status} ${res.text.slice(0, 300)}`);
        if (res.status >= 400) assert.equal(typeof res.json.error.code, 'string', `${m.iii_id}: error envelope`);
        statuses.set(res.status, (statuses.get(res.status) || 0) + 1);
        await w2.trigger({ function_id: m.iii_id, payload: randomRequest(r, table, m.input_type), timeoutMs: 20000 }).catch(() => {});
      }
    }
    assert.ok(statuses.get(400) > 0, `some requests were refused: ${[...statuses]}`);
    await healthy('seeded fuzz');
  });

  test('raw garbage frames from the engine into the adapter socket', async () => {
    const frames = [
      'not json', Buffer.from([0, 1, 2, 255, 254]), '[]', 'null', '"str"', '42', '{}', '{"type":5}',
      '{"type":"invokefunction"}',
      '{"type":"invokefunction","invocation_id":"x1","function_id":"nanochat.health"}',
      '{"type":"invokefunction","function_id":"nanochat.health","data":"garbage"}',
      '{"type":"invokefunction","invocation_id":"x2","function_id":"nope.nope","data":{}}',
      '{"type":"invokefunction","invocation_id":"x3","function_id":"nanochat.train.status","data":{"trigger":{"type":"http"},"query_params":{},"headers":{},"method":"GET","response":{"channel_id":"bad","access_key":"bad","direction":"write"}}}',
      '{"type":"invocationresult","invocation_id":"never-sent","result":{}}',
      '{"type":"invocationresult"}',
      '{"type":"registertrigger","id":"t1","trigger_type":"unknown","function_id":"nanochat.health","config":{}}',
      '{"type":"unregistertrigger","id":"t1","trigger_type":"unknown"}',
      '{"type":"workerregistered"}',
      '{"type":"triggerregistrationresult","id":"t1","error":{"code":"x","message":"y"}}',
      JSON.stringify({ type: 'invokefunction', invocation_id: 'x4', function_id: 'nanochat.chat.history', data: { x: deep(120) } }),
      // deeper than the engine could ever parse and forward (serde_json stops at 128 levels)
      `{"type":"invokefunction","invocation_id":"x6","function_id":"nanochat.health","data":{"x":${'['.repeat(20000)}${']'.repeat(20000)}}}`,
      '{"type":"invokefunction","invocation_id":"x5","function_id":"nanochat.model.status","data":{"_authorization":"Bearer \\u0000"}}',
    ];
    assert.ok([...s.engine.workers.values()].some((w) => w.info?.name === 'nanochat-iii-adapter'));
    for (const f of frames) s.engine.sendRaw(f, 'nanochat-iii-adapter');
    await sleep(1500);
    await healthy('raw frames', { sdkRecursion: true });
    // the adapter answered the well-formed invocation of an id it never saw from a caller
    const replies = s.engine.frames.filter((x) => x.dir === 'in' && x.frame.type === 'invocationresult');
    assert.ok(replies.some((x) => x.frame.invocation_id === 'x1' && x.frame.result?.status === 'ok'));
    assert.ok(replies.some((x) => x.frame.invocation_id === 'x2' && x.frame.error?.code === 'function_not_found'));
    assert.ok(replies.some((x) => x.frame.invocation_id === 'x4' && /INVALID_ARGUMENT/.test(x.frame.error?.message)));
  });
});
