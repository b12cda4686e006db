// e2e-model.test.mjs — the chat and sampling paths end to end against a served model: HTTP
// request → stand-in iii engine → adapter (child process, official iii-sdk) → real nanochatd
// serving the SDK tests' tiny model (clients/testutil/nc_tiny_model: sft/d2 from startup, plus
// the slower sft/d6 for the disconnect test) → JSON response / SSE. Every reply is compared with
// the same request made directly over gRPC (greedy decoding and seeded sampling are
// deterministic on nc_tiny_model's fp32 single-thread flags). Also: a direct trigger() from a
// second official-SDK worker, Model.Load/Unload/Status over HTTP, chat without a model (409) and
// an SSE client that goes away mid-generation (the slot is freed, nothing is stored).
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import grpc from '@grpc/grpc-js';
import { registerWorker } from 'iii-sdk';
import { createChannel } from 'iii-sdk/helpers';

import { decodeJson, loadRoot } from '../src/schema.mjs';
import { get, openSse, post, readTable, SOURCE_DIR, startStack, waitFor } from './helpers.mjs';

const ADMIN = 'admin-token-0123456789abcdef';
const USER = 'user-token-0123456789abcdef';
const A = { authorization: `Bearer ${ADMIN}` };
const U = { authorization: `Bearer ${USER}` };

// greedy, short, no calculator tool: the same tokens every time
const CHAT = Object.freeze({ messages: [{ role: 'user', content: 'Hello there, who are you?' }], temperature: 0, max_tokens: 24, tools: false });
// the same request as protobufjs objects for the direct gRPC calls (enum names, not the adapter's
// friendly forms)
const CHAT_PB = Object.freeze({ ...CHAT, messages: [{ role: 'ROLE_USER', content: CHAT.messages[0].content }] });
const SESSION_RE = /^[0-9a-f]{32}$/;

/** Direct gRPC calls to nanochatd by the RPC table's rows, decoded like the adapter does. */
class Direct {
  constructor(address, root, table) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure());
    this.root = root;
    this.rows = new Map(table.methods.map((m) => [m.iii_id, m]));
  }

  types(id) {
    const row = this.rows.get(id);
    return [row, this.root.lookupType(row.input_type), this.root.lookupType(row.output_type)];
  }

  md(token) {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    return md;
  }

  unary(id, obj, token = USER) {
    const [row, In, Out] = this.types(id);
    const bytes = Buffer.from(In.encode(In.fromObject(obj)).finish());
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(row.path, (b) => b, (b) => b, bytes, this.md(token), { deadline: Date.now() + 60000 },
        (err, buf) => (err ? reject(err) : resolve(decodeJson(Out, buf))));
    });
  }

  stream(id, obj, token = USER) {
    const [row, In, Out] = this.types(id);
    const bytes = Buffer.from(In.encode(In.fromObject(obj)).finish());
    return new Promise((resolve, reject) => {
      const call = this.client.makeServerStreamRequest(row.path, (b) => b, (b) => b, bytes, this.md(token),
        { deadline: Date.now() + 60000 });
      const out = [];
      call.on('data', (buf) => out.push(decodeJson(Out, buf)));
      call.on('error', reject);
      call.on('status', (st) => st.code === grpc.status.OK && resolve(out));
    });
  }

  close() {
    this.client.close();
  }
}

/** Checks the SSE wire format of a whole body: `: ok` first, then only well-formed blocks. */
function checkFraming(text) {
  assert.ok(text.startsWith(': ok\n\n'), JSON.stringify(text.slice(0, 40)));
  assert.ok(text.endsWith('\n\n'));
  for (const block of text.slice(0, -2).split('\n\n')) {
    if (block.startsWith(':')) continue; // comment (keepalive)
    const lines = block.split('\n');
    assert.match(lines[0], /^event: [a-z_]+$/, block);
    assert.equal(lines.length, 2, `one event and one data line: ${block}`);
    assert.match(lines[1], /^data: \{/, block);
    JSON.parse(lines[1].slice(6));
  }
}

/** Sum of a Chat.Stream's deltas and its done event. */
function chatStreamResult(frames) {
  const deltas = frames.filter((f) => f.event === 'delta');
  const done = frames.filter((f) => f.event === 'done');
  assert.equal(done.length, 1);
  return {
    text: deltas.map((f) => f.data.text ?? '').join(''),
    tokenIds: deltas.flatMap((f) => f.data.token_ids ?? []),
    done: done[0].data,
  };
}

/** Per-index concatenation of Model.SampleStream messages: [{text, ids, finish_reason}]. */
function samplesOf(msgs) {
  const out = [];
  for (const m of msgs) {
    const i = m.index ?? 0;
    out[i] ??= { text: '', ids: [], finish_reason: undefined };
    out[i].text += m.text ?? '';
    out[i].ids.push(...(m.token_ids ?? []));
    if (m.finish_reason) {
      assert.equal(out[i].finish_reason, undefined, `one finish_reason for sample ${i}`);
      out[i].finish_reason = m.finish_reason;
    }
  }
  return out;
}

const withoutSession = ({ session_id: _s, ...rest }) => rest;

describe('end to end against a served model', () => {
  let s;
  let w2;
  let direct;
  let unary; // the HTTP chat.complete reply of CHAT, for the later comparisons
  const status = async () => (await get(`${s.base}/nanochat/model/status`, { headers: U })).json;
  const sessions = async () => (await get(`${s.base}/nanochat/chat/history?page_size=1000`, { headers: U })).json.sessions ?? [];

  before(async () => {
    s = await startStack({ token: ADMIN, userToken: USER, model: 'slow', nanochatdArgs: ['--model', 'sft/d2'] });
    direct = new Direct(s.nc.address, loadRoot(path.join(SOURCE_DIR, 'proto')), readTable());
    w2 = registerWorker(s.engine.wsUrl, { workerName: 'e2e-model-caller', otel: { enabled: false }, enableMetricsReporting: false });
    await waitFor(() => s.engine.workers.size >= 2, { what: 'second worker' });
  });

  after(async () => {
    direct?.close();
    await w2?.shutdown();
    const rc = await s?.close();
    assert.equal(rc, 0, `adapter exit status\n${s?.adapter.stderr.slice(-4000)}`);
  });

  test('model.status over HTTP: the served sft/d2, as Model.Status says directly', async () => {
    const r = await get(`${s.base}/nanochat/model/status`, { headers: U });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.json.loaded, true);
    assert.equal(r.json.phase, 'PHASE_SFT');
    assert.equal(r.json.model_tag, 'd2');
    assert.equal(r.json.config.n_layer, 2);
    assert.equal(r.json.slots_in_use ?? 0, 0);
    assert.deepEqual(r.json, await direct.unary('nanochat.model.status', {}));
    assert.equal((await get(`${s.base}/nanochat/model/status`)).status, 401);
  });

  test('POST chat.complete → 200 JSON reply equal to a direct Chat.Complete; the session is stored', async () => {
    const r = await post(`${s.base}/nanochat/chat/completions`, CHAT, { headers: U });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['content-type'], 'application/json');
    unary = r.json;
    assert.equal(typeof unary.content, 'string');
    assert.ok(unary.content.length > 0);
    assert.ok(['FINISH_STOP', 'FINISH_LENGTH'].includes(unary.finish_reason), unary.finish_reason);
    assert.ok(unary.usage.prompt_tokens > 0);
    assert.equal(unary.usage.completion_tokens, unary.tokens_generated);
    assert.ok(unary.tokens_generated >= 1 && unary.tokens_generated <= CHAT.max_tokens);
    assert.match(unary.session_id, SESSION_RE);
    const d = await direct.unary('nanochat.chat.complete', CHAT_PB);
    assert.deepEqual(withoutSession(unary), withoutSession(d));
    assert.notEqual(d.session_id, unary.session_id, 'a new session per call');
    // the same request again over HTTP: deterministic
    const again = await post(`${s.base}/nanochat/chat/completions`, { ...CHAT, ephemeral: true }, { headers: U });
    assert.equal(again.json.content, unary.content);
  });

  test('chat.history shows the session created through HTTP: the user turn and the reply', async () => {
    const r = await get(`${s.base}/nanochat/chat/history?session_id=${unary.session_id}`, { headers: U });
    assert.equal(r.status, 200, r.text);
    const sess = r.json.session;
    assert.equal(sess.id, unary.session_id);
    assert.deepEqual(sess.messages.map((m) => [m.role, m.content]),
      [['ROLE_USER', CHAT.messages[0].content], ['ROLE_ASSISTANT', unary.content]]);
    assert.equal(sess.tokens_generated, unary.tokens_generated);
    assert.equal(sess.model_tag, 'd2');
    assert.ok((await sessions()).some((x) => x.id === unary.session_id && x.message_count === 2));
    // continuing the session through HTTP appends to it
    const next = await post(`${s.base}/nanochat/chat/completions`,
      { ...CHAT, session_id: unary.session_id, messages: [{ role: 'user', content: 'And then?' }] }, { headers: U });
    assert.equal(next.status, 200, next.text);
    assert.equal(next.json.session_id, unary.session_id);
    const h = await get(`${s.base}/nanochat/chat/history?session_id=${unary.session_id}`, { headers: U });
    assert.equal(h.json.session.messages.length, 4);
    assert.equal(h.json.session.messages[3].content, next.json.content);
    const none = await get(`${s.base}/nanochat/chat/history?session_id=${'0'.repeat(32)}`, { headers: U });
    assert.deepEqual([none.status, none.json.error.code], [404, 'NOT_FOUND']);
  });

  test('chat.stream as SSE: deltas in order, then done; deltas add up to the unary content', async () => {
    const sse = await openSse(`${s.base}/nanochat/chat/stream`, { headers: U, body: CHAT });
    assert.equal(sse.status, 200);
    assert.equal(sse.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.equal(sse.headers['cache-control'], 'no-cache');
    const evs = await sse.done;
    checkFraming(sse.text);
    const names = evs.map((e) => e.event);
    assert.ok(names.length >= 3, names.join());
    assert.ok(names.slice(0, -2).every((n) => n === 'delta'), names.join());
    assert.deepEqual(names.slice(-2), ['done', 'end']);
    assert.deepEqual(evs.at(-1).data, {});
    const got = chatStreamResult(evs);
    assert.equal(got.text, unary.content);
    assert.equal(got.done.content, unary.content);
    assert.equal(got.done.finish_reason, unary.finish_reason);
    assert.deepEqual(got.done.usage, unary.usage);
    assert.equal(got.tokenIds.length, unary.usage.completion_tokens);
    assert.match(got.done.session_id, SESSION_RE);
    assert.notEqual(got.done.session_id, unary.session_id);
    // the same as Chat.Stream called directly (delta boundaries are timing: compare the sums)
    const d = chatStreamResult((await direct.stream('nanochat.chat.stream', CHAT_PB)).map((m) => ({ event: Object.keys(m)[0], data: Object.values(m)[0] })));
    assert.equal(d.text, got.text);
    assert.deepEqual(d.tokenIds, got.tokenIds);
    assert.deepEqual(withoutSession(d.done), withoutSession(got.done));
    // the streamed turn is stored like the unary one
    const h = await get(`${s.base}/nanochat/chat/history?session_id=${got.done.session_id}`, { headers: U });
    assert.equal(h.json.session.messages[1].content, unary.content);
  });

  test('chat.stream for JSON callers: the same events as {events: [...]}', async () => {
    const r = await post(`${s.base}/nanochat/chat/stream`, { ...CHAT, ephemeral: true }, { headers: { ...U, accept: 'application/json' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json');
    const frames = r.json.events.map((m) => ({ event: Object.keys(m)[0], data: Object.values(m)[0] }));
    const got = chatStreamResult(frames);
    assert.equal(frames.at(-1).event, 'done');
    assert.equal(got.text, unary.content);
  });

  test('model.sample (greedy and seeded) over HTTP equals Model.Sample directly', async () => {
    for (const req of [{ prompt: 'To be, or not to be', max_tokens: 20, temperature: 0, num_samples: 2 },
      { prompt: 'ROMEO:', max_tokens: 12, temperature: 0.9, top_k: 40, seed: 7, num_samples: 3 }]) {
      const r = await post(`${s.base}/nanochat/model/sample`, req, { headers: U });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.num_samples, req.num_samples);
      assert.equal(r.json.samples.length, req.num_samples);
      assert.ok(r.json.samples.every((x) => typeof x === 'string' && x.length > 0));
      assert.ok(r.json.usage.completion_tokens > 0);
      assert.deepEqual(r.json, await direct.unary('nanochat.model.sample', req));
      if (req.temperature === 0) assert.equal(r.json.samples[0], r.json.samples[1], 'greedy samples agree');
    }
  });

  test('model.sample_stream as SSE: per-sample texts equal Model.Sample and SampleStream directly', async () => {
    const req = { prompt: 'ROMEO:', max_tokens: 12, temperature: 0.9, top_k: 40, seed: 7, num_samples: 3 };
    const sse = await openSse(`${s.base}/nanochat/model/sample/stream`, { headers: U, body: req });
    assert.equal(sse.status, 200);
    assert.equal(sse.headers['content-type'], 'text/event-stream; charset=utf-8');
    const evs = await sse.done;
    checkFraming(sse.text);
    assert.equal(evs.at(-1).event, 'end');
    assert.ok(evs.slice(0, -1).every((e) => e.event === 'message'), evs.map((e) => e.event).join());
    const got = samplesOf(evs.slice(0, -1).map((e) => e.data));
    const want = await direct.unary('nanochat.model.sample', req);
    assert.deepEqual(got.map((x) => x.text), want.samples);
    const d = samplesOf(await direct.stream('nanochat.model.sample_stream', req));
    assert.deepEqual(got, d);
    assert.ok(got.every((x) => ['FINISH_STOP', 'FINISH_LENGTH'].includes(x.finish_reason)));
    assert.equal(got.reduce((n, x) => n + x.ids.length, 0), want.usage.completion_tokens);
  });

  test('direct trigger() from another worker: chat.complete replies, chat.stream over a channel', async () => {
    const r = await w2.trigger({ function_id: 'nanochat.chat.complete', payload: { ...CHAT, ephemeral: true, _authorization: `Bearer ${USER}` } });
    assert.equal(r.status_code, undefined, 'no HTTP envelope for direct calls');
    assert.deepEqual(withoutSession(r), withoutSession(unary));
    await assert.rejects(w2.trigger({ function_id: 'nanochat.chat.complete', payload: { ...CHAT, temperature: 5, _authorization: `Bearer ${USER}` } }),
      (e) => /INVALID_ARGUMENT: temperature/.test(e.message));
    const ch = await createChannel(w2);
    const reading = ch.reader.readAll();
    const res = await w2.trigger({ function_id: 'nanochat.chat.stream',
      payload: { ...CHAT, ephemeral: true, _channel: ch.writerRef, _authorization: `Bearer ${USER}` } });
    const lines = (await reading).toString().trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(res.events, lines.length);
    assert.equal(res.last.done.content, unary.content);
    assert.equal(chatStreamResult(lines).text, unary.content);
  });

  test('nothing of the chat calls is mirrored into iii state', async () => {
    assert.deepEqual(await w2.trigger({ function_id: 'state::list_groups', payload: {} }), []);
  });

  test('checkpoint.save over HTTP (admin): listed, loadable, answers the same; again → 409', async () => {
    let r = await post(`${s.base}/nanochat/checkpoint/save`, { tag: 'saved' }, { headers: U });
    assert.deepEqual([r.status, r.json.error.code], [403, 'PERMISSION_DENIED']);
    r = await post(`${s.base}/nanochat/checkpoint/save`, { tag: 'saved' }, { headers: A });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual([r.json.phase, r.json.tag, r.json.step], ['PHASE_SFT', 'saved', 0]);
    assert.match(r.json.sha256, /^[0-9a-f]{64}$/);
    const info = r.json;
    r = await post(`${s.base}/nanochat/checkpoint/save`, { tag: 'saved' }, { headers: A });
    assert.deepEqual([r.status, r.json.error.code], [409, 'ALREADY_EXISTS'], r.text);
    const list = await get(`${s.base}/nanochat/checkpoint/list?tag=saved`, { headers: U });
    assert.equal(list.status, 200);
    assert.deepEqual(list.json.checkpoints.map((c) => [c.tag, c.step, c.sha256]), [['saved', 0, info.sha256]]);
    r = await post(`${s.base}/nanochat/model/load`, { phase: 'sft', model_tag: 'saved', step: 0 }, { headers: A });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual([r.json.model_tag, r.json.sha256], ['saved', info.sha256]);
    const c = await post(`${s.base}/nanochat/chat/completions`, { ...CHAT, ephemeral: true }, { headers: U });
    assert.equal(c.json.content, unary.content, 'the saved copy of the served model answers the same');
    r = await post(`${s.base}/nanochat/model/load`, { phase: 'sft', model_tag: 'd2' }, { headers: A });
    assert.equal(r.status, 200, r.text);
  });

  test('model.load / model.unload over HTTP: admin only, 404 for a missing tag, then no model → 409', async () => {
    let r = await post(`${s.base}/nanochat/model/load`, { phase: 'sft', model_tag: 'd6' }, { headers: U });
    assert.deepEqual([r.status, r.json.error.code], [403, 'PERMISSION_DENIED']);
    r = await post(`${s.base}/nanochat/model/load`, { phase: 'sft', model_tag: 'd99' }, { headers: A });
    assert.deepEqual([r.status, r.json.error.code, r.json.error.grpc_code], [404, 'NOT_FOUND', 5], r.text);
    assert.match(r.json.error.message, /\S/);
    assert.equal((await status()).model_tag, 'd2', 'a failed load keeps the served model');
    r = await post(`${s.base}/nanochat/model/unload`, {}, { headers: U });
    assert.equal(r.status, 403);
    r = await post(`${s.base}/nanochat/model/unload`, {}, { headers: A });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.loaded, false);
    assert.equal((await status()).loaded, false);

    for (const [p, body] of [['/nanochat/chat/completions', CHAT], ['/nanochat/chat/stream', CHAT],
      ['/nanochat/model/sample', { prompt: 'x' }], ['/nanochat/model/sample/stream', { prompt: 'x' }]]) {
      const e = await post(`${s.base}${p}`, body, { headers: U });
      assert.deepEqual([e.status, e.json?.error.code, e.json?.error.grpc_code], [409, 'FAILED_PRECONDITION', 9], `${p}: ${e.text}`);
      assert.equal(e.headers['content-type'], 'application/json', `${p}: a JSON error, not an SSE stream`);
      assert.match(e.json.error.message, /no model loaded/);
    }
    await assert.rejects(w2.trigger({ function_id: 'nanochat.chat.complete', payload: { ...CHAT, _authorization: `Bearer ${USER}` } }),
      (e) => /FAILED_PRECONDITION: /.test(e.message));

    r = await post(`${s.base}/nanochat/model/load`, { phase: 'sft', model_tag: 'd2' }, { headers: A });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual([r.json.loaded, r.json.model_tag], [true, 'd2']);
    const again = await post(`${s.base}/nanochat/chat/completions`, { ...CHAT, ephemeral: true }, { headers: U });
    assert.equal(again.json.content, unary.content, 'the reloaded model answers the same');
  });

  test('an SSE client that goes away mid-generation cancels it: the slot is freed, nothing stored', async () => {
    const r = await post(`${s.base}/nanochat/model/load`, { phase: 'sft', model_tag: 'd6' }, { headers: A });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual([r.json.model_tag, r.json.config.n_layer, r.json.config.sequence_len], ['d6', 6, 1024]);
    const before = (await sessions()).length;
    const inflight = async () => (await get(`${s.base}/nanochat/health`)).json.calls_in_flight;
    const base = await inflight();
    // 1000 greedy tokens of the d6 model take seconds (nc_tiny_model --slow)
    const body = { messages: [{ role: 'user', content: 'Tell me a long story' }], temperature: 0, max_tokens: 1000, tools: false };
    const sse = await openSse(`${s.base}/nanochat/chat/stream`, { headers: U, body });
    assert.equal(sse.status, 200);
    await waitFor(() => sse.events.some((e) => e.event === 'delta'), { what: 'a first delta' });
    const mid = await status();
    assert.equal(mid.slots_in_use, 1, 'generating');
    assert.ok(!sse.events.some((e) => e.event === 'done'), 'still running when the client goes away');
    sse.close();
    await waitFor(async () => ((await status()).slots_in_use ?? 0) === 0, { what: 'the slot freed' });
    // <= base: a call of an earlier test that was still open when base was read may end meanwhile
    await waitFor(async () => (await inflight()) <= base, { what: 'the gRPC stream gone from nanochatd' });
    assert.equal((await sessions()).length, before, 'a cancelled generation stores nothing');
    // the served model still answers afterwards
    const after = await post(`${s.base}/nanochat/chat/completions`, { ...CHAT, ephemeral: true }, { headers: U });
    assert.equal(after.status, 200, after.text);
    assert.equal((await status()).slots_in_use ?? 0, 0);
  });
});
