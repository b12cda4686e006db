'use strict';
// The Node SDK against a real nanochatd: status calls, the method table from the descriptor set
// against rpc_table.json, chat without a model (typed FailedPrecondition) and against a served
// tiny model (--model latest: Model.Status with its config, a greedy complete() reply that the
// streamed pieces reproduce, sample()), typed errors, job handles over Train.TestJob, and the
// example with and without a model.
const test = require('node:test');
const assert = require('node:assert');
const { execFile } = require('child_process');
const fs = require('fs');
const path = require('path');
const nc = require('..');
const { startServer, BUILD } = require('./server.js');

async function withServer(opts, fn) {
  const srv = await startServer(opts);
  const clients = [];
  const client = (o = {}) => {
    const c = new nc.Client({ address: srv.address, timeoutMs: 10000, ...o });
    clients.push(c);
    return c;
  };
  try {
    await fn(srv, client);
  } finally {
    for (const c of clients) c.close();
    await srv.stop();
  }
}

async function collect(iterable) {
  const out = [];
  for await (const x of iterable) out.push(x);
  return out;
}

test('status_calls_succeed', async () => {
  await withServer({}, async (srv, client) => {
    const c = client();
    await c.waitReady(10000);
    const h = await c.health();
    assert.strictEqual(h.status, 'ok');
    assert.strictEqual(h.worker, 'nanochat-c');
    assert.strictEqual((await c.modelStatus()).loaded, false);
    assert.deepStrictEqual(await c.checkpoints(), []);
    assert.deepStrictEqual((await c.history()).sessions, []);
    assert.deepStrictEqual(await c.jobs(), []);
  });
});

test('methods_match_rpc_table', () => {
  const table = JSON.parse(fs.readFileSync(path.join(BUILD, 'gen', 'rpc_table.json'), 'utf8'));
  const want = table.methods.filter((m) => m.service.startsWith('nanochat.v1.'));
  const got = nc.methods();
  assert.deepStrictEqual(Object.keys(got).sort(), want.map((m) => m.path).sort());
  for (const m of want) assert.strictEqual(got[m.path].responseStream, m.server_streaming, m.path);
});

// The request of the served-model tests: greedy, 16 tokens, no tool, nothing stored.
const GREEDY = Object.freeze({ max_tokens: 16, temperature: 0, tools: false, ephemeral: true });

test('chat_without_model_is_failed_precondition', async () => {
  await withServer({}, async (srv, client) => {
    const c = client();
    const chat = c.chat([{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }], GREEDY);
    await assert.rejects(collect(chat), (e) => {
      assert.ok(e instanceof nc.FailedPrecondition, String(e));
      assert.ok(e instanceof nc.NanochatError);
      assert.match(e.details, /no model loaded/);
      assert.match(e.message, /^FAILED_PRECONDITION: /);
      return true;
    });
    assert.strictEqual(chat.done, null);
    await assert.rejects(c.complete('hi', GREEDY), nc.FailedPrecondition);
    // the gate checks ranges before the model
    await assert.rejects(c.complete('hi', { ...GREEDY, temperature: 5 }), nc.InvalidArgument);
  });
});

test('served_model_status_chat_sample', async () => {
  await withServer({ model: true, args: ['--model', 'latest'] }, async (srv, client) => {
    const c = client();
    const m = await c.modelStatus();
    assert.strictEqual(m.loaded, true);
    assert.strictEqual(m.phase, 'PHASE_SFT');
    assert.strictEqual(m.model_tag, 'd2');
    assert.strictEqual(m.step, 0);
    assert.strictEqual(m.device, 'cpu');
    assert.deepStrictEqual([m.config.n_layer, m.config.n_embd, m.config.sequence_len, m.config.vocab_size],
                           [2, 128, 128, 2048]);
    const r = await c.complete('Hello there', GREEDY);
    assert.ok(r.content.length > 0, 'a non-empty reply');
    assert.ok(r.tokens_generated > 0 && r.tokens_generated <= 16, String(r.tokens_generated));
    const chat = c.chat('Hello there', GREEDY);
    const pieces = await collect(chat);
    assert.ok(pieces.length > 0);
    assert.strictEqual(pieces.join(''), r.content);
    assert.strictEqual(chat.done.usage.completion_tokens, r.tokens_generated);
    assert.strictEqual(chat.done.finish_reason, r.finish_reason);
    const s = await c.sample('ROMEO:', { max_tokens: 4, temperature: 0, num_samples: 2 });
    assert.strictEqual(s.samples.length, 2);
    assert.ok(s.samples[0].length > 0);
    assert.strictEqual(s.samples[0], s.samples[1]);
  });
});

test('typed_auth_errors', async () => {
  const token = 'node-admin-token-0123456789';
  const user = 'node-user-token-0123456789';
  await withServer({ token, userToken: user }, async (srv, client) => {
    assert.strictEqual((await client().health()).status, 'ok');
    await assert.rejects(client().modelStatus(), nc.Unauthenticated);
    await assert.rejects(client({ token: 'wrong-token-0123456789' }).modelStatus(), nc.Unauthenticated);
    const u = client({ token: user });
    assert.strictEqual((await u.modelStatus()).loaded, false);
    await assert.rejects(u.job('0123456789abcdef').cancel(), nc.PermissionDenied);
    assert.deepStrictEqual(await client({ token }).checkpoints(), []);
  });
});

test('argument_and_state_errors', async () => {
  await withServer({ args: ['--enable-test-jobs'] }, async (srv, client) => {
    const c = client();
    await assert.rejects(c.history({ page_size: 5000 }), (e) =>
      e instanceof nc.InvalidArgument && /page_size/.test(e.details));
    await assert.rejects(c.job('0123456789abcdef').status(), nc.NotFound);
    await assert.rejects(c.trainBase({ depth: 100 }), nc.InvalidArgument);
    try {
      const j = await c.trainBase({ depth: 1 });   // landed: a job handle
      await j.cancel();
    } catch (e) {
      assert.ok(e instanceof nc.Unimplemented || e instanceof nc.FailedPrecondition, String(e)); // no tokenizer
    }
    const job = await c.testJob({ steps: 1, step_ms: 1 });
    await job.wait();
    await assert.rejects(job.cancel(), nc.FailedPrecondition);
  });
});

test('job_progress_wait_cancel', async () => {
  await withServer({ args: ['--enable-test-jobs'] }, async (srv, client) => {
    const c = client();
    const job = await c.testJob({ steps: 5, step_ms: 20 });
    assert.strictEqual(job.id.length, 16);
    const evs = await collect(job.progress());
    assert.deepStrictEqual(evs.map((e) => e.seq), evs.map((_, i) => i + 1));
    assert.deepStrictEqual(evs.filter((e) => e.kind === 'EVENT_PROGRESS').map((e) => e.progress.step),
                           [1, 2, 3, 4, 5]);
    assert.strictEqual(evs[evs.length - 1].state, 'JOB_SUCCEEDED');
    assert.strictEqual((await job.wait()).state, 'JOB_SUCCEEDED');
    const mid = evs[2].seq;
    assert.deepStrictEqual((await collect(job.progress({ fromSeq: mid }))).map((e) => e.seq),
                           evs.filter((e) => e.seq >= mid).map((e) => e.seq));

    const long = await c.testJob({ steps: 100000, step_ms: 20 });
    await assert.rejects(long.wait({ timeoutMs: 300 }), nc.DeadlineExceeded);
    const stream = long.progress();
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    stream.cancel();
    await assert.rejects(it.next(), nc.Cancelled);
    assert.strictEqual((await long.cancel()).job_id, long.id);
    assert.strictEqual((await long.wait()).state, 'JOB_CANCELLED');
    assert.strictEqual((await c.jobs()).length, 2);
  });
});

test('unavailable_server', async () => {
  const srv = await startServer();
  const address = srv.address;
  await srv.stop();
  const c = new nc.Client({ address, timeoutMs: 2000 });
  try {
    await assert.rejects(c.health(), nc.Unavailable);
    await assert.rejects(c.waitReady(300), nc.Unavailable);
  } finally {
    c.close();
  }
});

test('example_runs', async () => {
  await withServer({ model: true, args: ['--enable-test-jobs'] }, async (srv, client) => {
    const example = (...args) => new Promise((resolve, reject) => {
      execFile(process.execPath, [path.join(__dirname, '..', 'example.js'), srv.address, ...args],
               { env: { ...process.env, NANOCHAT_GEN_DIR: path.join(BUILD, 'gen') }, timeout: 60000 },
               (err, stdout, stderr) => (err ? reject(new Error(`${err}\n${stdout}\n${stderr}`)) : resolve(stdout)));
    });
    let out = await example('--test-job');              // no model loaded yet
    assert.match(out, /health: ok/);
    assert.match(out, /model: none loaded/);
    assert.match(out, /chat: not available: FAILED_PRECONDITION: /);
    assert.match(out, /step 5\/5/);
    assert.match(out, /: JOB_SUCCEEDED/);
    assert.strictEqual((await client().loadModel({ phase: 'PHASE_SFT' })).loaded, true);
    out = await example();                              // a model: its status and a streamed reply
    assert.match(out, /model: PHASE_SFT d2 step 0 \(2 layers, context 128\)/);
    assert.match(out, /chat: done: [1-9][0-9]* tokens, FINISH_(LENGTH|STOP), session [0-9a-f]{32}\n/);
  });
});

// index.d.ts declares exactly what index.js exports (no server needed).
test('declarations_match_exports', () => {
  const dts = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8');
  const declared = new Set([...dts.matchAll(/^export declare (?:class|const|function) (\w+)/gm)]
    .map((m) => m[1]));
  assert.deepStrictEqual([...declared].sort(), Object.keys(nc).sort());
  const errorsType = dts.match(/^export declare const errors: \{\n([^}]*)\};/m);
  assert.ok(errorsType, 'errors declared');
  assert.deepStrictEqual([...errorsType[1].matchAll(/^\s+(\w+): typeof \1;$/gm)].map((m) => m[1]).sort(),
                         Object.keys(nc.errors).sort());
  for (const name of Object.keys(nc.errors)) {
    assert.ok(new RegExp(`^export declare class ${name} extends ${name === 'NanochatError' ? 'Error' : 'NanochatError'} `, 'm')
      .test(dts), `${name} declared as a class`);
  }
});

// The shape index.d.ts promises for responses, checked on what the loader delivers for an empty
// message of every response type: each field outside a oneof present (sub-message null,
// repeated [], 64-bit as number, enum as its name), oneof members and the discriminator absent.
test('declared_response_shapes_match_loader', () => {
  const table = JSON.parse(fs.readFileSync(path.join(BUILD, 'gen', 'rpc_table.json'), 'utf8'));
  const c = new nc.Client({ address: '127.0.0.1:1' });
  try {
    let checked = 0;
    for (const [svc, stub] of Object.entries(c.rpc.stubs)) {
      for (const def of Object.values(stub.constructor.service)) {
        const row = table.methods.find((m) => m.path === def.path);
        const msg = table.messages[row.output_type];
        const obj = def.responseDeserialize(Buffer.alloc(0));
        const plain = msg.fields.filter((f) => f.oneof === undefined);
        assert.deepStrictEqual(Object.keys(obj).sort(), plain.map((f) => f.name).sort(), def.path);
        for (const f of plain) {
          const v = obj[f.name];
          if (f.repeated) assert.deepStrictEqual(v, [], `${def.path} ${f.name}`);
          else if (table.messages[f.type]) assert.strictEqual(v, null, `${def.path} ${f.name}`);
          else if (table.enums[f.type]) assert.strictEqual(typeof v, 'string', `${def.path} ${f.name}`);
          else if (f.type === 'bytes') assert.ok(Buffer.isBuffer(v), `${def.path} ${f.name}`);
          else if (f.type === 'bool') assert.strictEqual(typeof v, 'boolean', `${def.path} ${f.name}`);
          else if (f.type === 'string') assert.strictEqual(typeof v, 'string', `${def.path} ${f.name}`);
          else assert.strictEqual(typeof v, 'number', `${def.path} ${f.name} ${svc}`);
        }
        checked++;
      }
    }
    assert.ok(checked >= 20, `checked ${checked} methods`);
  } finally {
    c.close();
  }
});
