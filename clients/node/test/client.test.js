'use strict';
// The Node SDK against a real nanochatd: status calls, the method table from the descriptor set
// against rpc_table.json, chat (a reply or the typed Unimplemented / FailedPrecondition error
// until the engine lands), typed errors, job handles over Train.TestJob, and the example.
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

test('chat_reply_or_typed_error', async () => {
  await withServer({}, async (srv, client) => {
    const c = client();
    const chat = c.chat([{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }],
                        { max_tokens: 16, ephemeral: true });
    try {
      const pieces = await collect(chat);
      assert.ok(chat.done, 'a reply ends with done');     // the engine landed
      assert.strictEqual(pieces.join(''), chat.text);
    } catch (e) {
      assert.ok(e instanceof nc.Unimplemented || e instanceof nc.FailedPrecondition, String(e));
      assert.ok(e instanceof nc.NanochatError);
      assert.ok(e.details.length > 0);
      assert.match(e.message, /^(UNIMPLEMENTED|FAILED_PRECONDITION): /);
    }
    await assert.rejects(c.complete('hi'), (e) => e instanceof nc.Unimplemented ||
                         e instanceof nc.FailedPrecondition);
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
  await withServer({ args: ['--enable-test-jobs'] }, async (srv) => {
    const out = await new Promise((resolve, reject) => {
      execFile(process.execPath, [path.join(__dirname, '..', 'example.js'), srv.address, '--test-job'],
               { env: { ...process.env, NANOCHAT_GEN_DIR: path.join(BUILD, 'gen') }, timeout: 60000 },
               (err, stdout, stderr) => (err ? reject(new Error(`${err}\n${stdout}\n${stderr}`)) : resolve(stdout)));
    });
    assert.match(out, /health: ok/);
    assert.match(out, /chat: /);
    assert.match(out, /step 5\/5/);
    assert.match(out, /: JOB_SUCCEEDED/);
  });
});
