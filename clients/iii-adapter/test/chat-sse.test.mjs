// chat-sse.test.mjs — the Chat.Stream → SSE frames a real nanochatd does not produce on demand:
// a small grpc-js server stands in for it on that one method (plus Health.Check) and streams
// ChatStreamResponse messages as chat.proto defines them, with scripted timing and failures — a
// first token after 2.5 s (the head must go out within the commit window), UNAVAILABLE before the
// first message (a JSON error) and RESOURCE_EXHAUSTED after deltas (`event: error`), and exact
// multi-byte UTF-8 text. The adapter is the real one (child process) behind the stand-in iii
// engine. The ordinary paths (deltas then done equal to Chat.Complete, JSON mode, a disconnect
// freeing the slot) run against the real nanochatd and its served model in e2e-model.test.mjs.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import grpc from '@grpc/grpc-js';

import { loadRoot } from '../src/schema.mjs';
import { AdapterProc, get, openSse, sleep, SOURCE_DIR, startEngine, waitFor } from './helpers.mjs';

const root = loadRoot(path.join(SOURCE_DIR, 'proto'));
const ChatRequest = root.lookupType('nanochat.v1.ChatRequest');
const ChatStreamResponse = root.lookupType('nanochat.v1.ChatStreamResponse');
const HealthRes = root.lookupType('nanochat.v1.HealthCheckResponse');

function fakeServer(log) {
  const server = new grpc.Server();
  const raw = (b) => b;
  const send = (call, obj) => call.write(Buffer.from(ChatStreamResponse.encode(ChatStreamResponse.fromObject(obj)).finish()));
  server.addService({
    Stream: { path: '/nanochat.v1.Chat/Stream', requestStream: false, responseStream: true,
      requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
    Check: { path: '/nanochat.v1.Health/Check', requestStream: false, responseStream: false,
      requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
  }, {
    Check: (_call, cb) => cb(null, Buffer.from(HealthRes.encode(HealthRes.fromObject({ status: 'ok', worker: 'fake' })).finish())),
    Stream: async (call) => {
      const req = ChatRequest.toObject(ChatRequest.decode(call.request), { enums: String });
      const mode = req.messages[0].content;
      log.push({ mode, req, auth: call.metadata.get('authorization')[0] });
      const parts = ['Hé', 'llo ', 'wörld 👋'];
      if (mode === 'fail-first') return call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'engine warming up' });
      if (mode === 'slow') await sleep(2500);
      for (const [i, t] of parts.entries()) {
        send(call, { delta: { text: t, token_ids: [10 + i] } });
        await sleep(20);
        if (mode === 'fail-mid') return call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: 'KV cache full' });
      }
      send(call, { done: { finish_reason: 'FINISH_STOP', content: parts.join(''), session_id: 's'.repeat(32),
        usage: { prompt_tokens: 5, completion_tokens: 3 } } });
      call.end();
      return undefined;
    },
  });
  return new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(),
    (e, port) => (e ? reject(e) : resolve({ server, port }))));
}

describe('Chat.Stream SSE frames nanochatd does not produce on demand (fake gRPC server)', () => {
  let engine;
  let adapter;
  let fake;
  const log = [];

  before(async () => {
    fake = await fakeServer(log);
    engine = await startEngine();
    adapter = new AdapterProc({ engineUrl: engine.wsUrl, nanochatd: `127.0.0.1:${fake.port}` }).start();
    await waitFor(async () => (await get(`${engine.httpUrl}/nanochat/health`)).status === 200, { what: 'adapter' });
  });

  after(async () => {
    assert.equal(await adapter.stop(), 0);
    await engine.stop();
    fake.server.forceShutdown();
  });

  // POST with an SSE response: {status, headers, text, events, firstByteMs} once it has ended
  async function stream(content) {
    const r = await openSse(`${engine.httpUrl}/nanochat/chat/stream`, {
      headers: { authorization: 'Bearer tok-0123456789abcdef' },
      body: { messages: [{ role: 'user', content }], temperature: 0.25 },
    });
    await r.done;
    return r;
  }

  test('deltas then done stream as SSE events, UTF-8 intact, request and token forwarded', async () => {
    const r = await stream('fast');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/event-stream/);
    const evs = r.events;
    assert.deepEqual(evs.map((e) => e.event), ['delta', 'delta', 'delta', 'done', 'end']);
    assert.equal(evs.slice(0, 3).map((e) => e.data.text).join(''), 'Héllo wörld 👋');
    assert.deepEqual(evs[0].data.token_ids, [10]);
    assert.equal(evs[3].data.finish_reason, 'FINISH_STOP');
    assert.equal(evs[3].data.content, 'Héllo wörld 👋');
    assert.equal(evs[3].data.usage.completion_tokens, 3);
    const seen = log.find((l) => l.mode === 'fast');
    assert.equal(seen.auth, 'Bearer tok-0123456789abcdef');
    assert.equal(seen.req.messages[0].role, 'ROLE_USER');
    assert.equal(Math.round(seen.req.temperature * 100), 25);
  });

  test('a slow first token: the head and a comment go out within the commit window', async () => {
    const r = await stream('slow');
    assert.equal(r.status, 200);
    assert.ok(r.firstByteMs < 2200, `response head after ${r.firstByteMs} ms, before the first token at 2.5 s`);
    assert.ok(r.text.startsWith(': ok\n\n'));
    assert.ok(r.text.includes('event: done'));
  });

  test('an error before the first message is a JSON error; after it, an SSE error event', async () => {
    const a = await stream('fail-first');
    assert.equal(a.status, 503);
    assert.equal(JSON.parse(a.text).error.code, 'UNAVAILABLE');
    const b = await stream('fail-mid');
    assert.equal(b.status, 200);
    const evs = b.events;
    assert.equal(evs[0].event, 'delta');
    assert.equal(evs.at(-1).event, 'error');
    assert.equal(evs.at(-1).data.error.code, 'RESOURCE_EXHAUSTED');
    assert.equal(evs.at(-1).data.status, 429);
  });
});
