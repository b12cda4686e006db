// chat-sse.test.mjs — the Chat.Stream → SSE path, ahead of the server: nanochatd answers
// Chat.Stream with UNIMPLEMENTED until the inference engine lands, so here a small grpc-js
// server stands in for it on that one method (plus Health.Check) and streams ChatStreamResponse
// messages exactly as chat.proto defines them. The adapter is the real one (child process) behind
// the stand-in iii engine; when nanochatd streams, e2e covers the same path against it.
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import grpc from '@grpc/grpc-js';

import { loadRoot } from '../src/schema.mjs';
import { AdapterProc, get, parseSse, post, sleep, SOURCE_DIR, startEngine, waitFor } from './helpers.mjs';

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
      call.on('cancelled', () => log.push({ cancelled: mode }));
      const parts = ['Hé', 'llo ', 'wörld 👋'];
      if (mode === 'fail-first') return call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'engine warming up' });
      if (mode === 'slow') await sleep(2500);
      if (mode === 'hang') {
        send(call, { delta: { text: 'tick', token_ids: [1] } });
        return undefined;
      }
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

describe('Chat.Stream as SSE (fake streaming gRPC server)', () => {
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

  // POST with an SSE response (the helpers' openSse is GET-only)
  function stream(content, headers = {}) {
    const u = new URL(`${engine.httpUrl}/nanochat/chat/stream`);
    const body = JSON.stringify({ messages: [{ role: 'user', content }], temperature: 0.25 });
    return new Promise((resolve, reject) => {
      const t0 = Date.now();
      const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer tok-0123456789abcdef', ...headers } }, (res) => {
        let text = '';
        const firstByteMs = Date.now() - t0;
        res.setEncoding('utf8');
        res.on('data', (c) => { text += c; });
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text, firstByteMs, req }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  test('deltas then done stream as SSE events, UTF-8 intact, request and token forwarded', async () => {
    const r = await stream('fast');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/event-stream/);
    const evs = parseSse(r.text);
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
    const evs = parseSse(b.text);
    assert.equal(evs[0].event, 'delta');
    assert.equal(evs.at(-1).event, 'error');
    assert.equal(evs.at(-1).data.error.code, 'RESOURCE_EXHAUSTED');
    assert.equal(evs.at(-1).data.status, 429);
  });

  test('a client that disconnects cancels the generation', async () => {
    const u = new URL(`${engine.httpUrl}/nanochat/chat/stream`);
    await new Promise((resolve) => {
      const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST',
        headers: { 'content-type': 'application/json' } }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => resolve());
      req.end(JSON.stringify({ messages: [{ role: 'user', content: 'hang' }] }));
    });
    await waitFor(() => log.some((l) => l.cancelled === 'hang'), { what: 'server-side cancel' });
    assert.ok(adapter.alive());
  });

  test('non-streaming callers can ask for the whole stream as JSON', async () => {
    const r = await post(`${engine.httpUrl}/nanochat/chat/stream`, { messages: [{ role: 'user', content: 'fast' }] },
      { headers: { accept: 'application/json' } });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.events.map((e) => Object.keys(e)[0]), ['delta', 'delta', 'delta', 'done']);
  });
});
