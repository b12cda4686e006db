// restart.test.mjs — the adapter reconnects when either side restarts: nanochatd (graceful and
// kill -9, same port and data dir; calls answer 503 meanwhile, job mirrors resume and see the
// job INTERRUPTED), the iii engine (the SDK reconnects, reattaches and re-registers every
// function and trigger; mirroring continues into the new engine), and the adapter itself (it
// re-mirrors running jobs from nanochatd's job list).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { registerWorker } from 'iii-sdk';

import { AdapterProc, get, openSse, post, sleep, startStack, waitFor, waitTerminal } from './helpers.mjs';
import { StandInEngine } from './engine/engine.mjs';

const OPTS = { otel: { enabled: false }, enableMetricsReporting: false, reconnectionConfig: { initialDelayMs: 200, maxDelayMs: 1000 } };

describe('restarts', () => {
  let s;
  let w2;

  const stateGet = (key) => w2.trigger({ function_id: 'state::get', payload: { scope: 'nanochat:training', key }, timeoutMs: 5000 });
  const health = () => get(`${s.base}/nanochat/health`).catch(() => ({ status: 0 }));

  before(async () => {
    s = await startStack();
    w2 = registerWorker(s.engine.wsUrl, { ...OPTS, workerName: 'restart-caller' });
    await waitFor(() => s.engine.workers.size >= 2, { what: 'second worker' });
  });

  after(async () => {
    await w2?.shutdown();
    assert.equal(await s?.close(), 0, s?.adapter.stderr.slice(-3000));
  });

  test('nanochatd kill -9 + restart: 503 meanwhile, then 200; a running job is mirrored INTERRUPTED', async () => {
    const r = await post(`${s.base}/nanochat/train/test_job`, { steps: 400, step_ms: 50 });
    const id = r.json.job_id;
    await waitFor(async () => (await stateGet(id))?.progress?.step > 0, { what: 'progress mirrored' });
    const sse = await openSse(`${s.base}/nanochat/train/status?job_id=${id}`);
    await waitFor(() => sse.events.length > 2, { what: 'sse events' });
    await s.nc.stop('SIGKILL');
    const down = await waitFor(async () => {
      const h = await health();
      return h.status === 503 && h;
    }, { what: '503 while nanochatd is down' });
    assert.equal(down.json.error.code, 'UNAVAILABLE');
    const evs = await sse.done;
    assert.equal(evs.at(-1).event, 'error', 'the open SSE stream ends with an error event');
    assert.equal(evs.at(-1).data.status, 503);
    await s.nc.start();
    await waitFor(async () => (await health()).status === 200, { what: 'health after restart' });
    const v = await waitTerminal(w2, id, 'mirror sees the job end');
    assert.equal(v.state, 'JOB_INTERRUPTED');
    assert.match(s.adapter.stderr, /lost nanochatd/);
  });

  test('nanochatd graceful restart (SIGTERM): back to 200, new jobs mirrored to the end', async () => {
    await s.nc.restart();
    await waitFor(async () => (await health()).status === 200, { what: 'health after graceful restart' });
    const r = await post(`${s.base}/nanochat/train/test_job`, { steps: 5, step_ms: 20 });
    assert.equal(r.status, 202);
    const v = await waitTerminal(w2, r.json.job_id, 'job end mirrored');
    assert.equal(v.state, 'JOB_SUCCEEDED');
  });

  test('engine restart: the adapter reconnects and re-registers; mirroring continues', async () => {
    const r = await post(`${s.base}/nanochat/train/test_job`, { steps: 60, step_ms: 50 });
    const id = r.json.job_id;
    await waitFor(async () => (await stateGet(id))?.progress?.step > 0, { what: 'progress' });
    const { wsPort, httpPort } = s.engine;
    const nFunctions = s.engine.functions.size;
    await s.engine.stop();
    await sleep(500);
    s.engine = await new StandInEngine({ wsPort, httpPort }).start();
    await waitFor(async () => (await health()).status === 200, { what: 'routes after engine restart', timeoutMs: 20000 });
    await waitFor(() => s.engine.functions.size === nFunctions, { what: 'every function re-registered' });
    assert.equal(s.engine.front.routes.size, nFunctions, 'one HTTP trigger per function');
    assert.ok(s.engine.frames.some((f) => f.dir === 'in' && f.frame.type === 'reattach'));
    await waitFor(() => s.engine.workers.size >= 2, { what: 'caller reconnected' });
    const v = await waitTerminal(w2, id, 'mirror writes into the new engine');
    assert.equal(v.state, 'JOB_SUCCEEDED');
    assert.equal(v.progress.step, 60);
  });

  test('adapter restart: running jobs are found again and mirrored', async () => {
    const r = await post(`${s.base}/nanochat/train/test_job`, { steps: 40, step_ms: 50 });
    const id = r.json.job_id;
    await waitFor(async () => (await stateGet(id))?.progress?.step > 0, { what: 'progress' });
    assert.equal(await s.adapter.stop(), 0);
    await w2.trigger({ function_id: 'state::delete', payload: { scope: 'nanochat:training', key: id } });
    s.adapter = new AdapterProc({ engineUrl: s.engine.wsUrl, nanochatd: s.nc.address }).start();
    await waitFor(async () => (await health()).status === 200, { what: 'new adapter' });
    const v = await waitTerminal(w2, id, 'job mirrored by the new adapter');
    assert.equal(v.state, 'JOB_SUCCEEDED');
    assert.equal(v.progress.step, 40);
  });

  test('an adapter started while the engine is down registers once the engine comes up', async () => {
    assert.equal(await s.adapter.stop(), 0);
    const { wsPort, httpPort } = s.engine;
    await s.engine.stop();
    s.adapter = new AdapterProc({ engineUrl: `ws://127.0.0.1:${wsPort}`, nanochatd: s.nc.address }).start();
    await sleep(1500);
    assert.ok(s.adapter.alive(), s.adapter.stderr.slice(-2000));
    s.engine = await new StandInEngine({ wsPort, httpPort }).start();
    await waitFor(async () => (await health()).status === 200, { what: 'routes once the engine is up', timeoutMs: 20000 });
    const r = await post(`${s.base}/nanochat/train/test_job`, { steps: 2, step_ms: 10 });
    assert.equal(r.status, 202);
  });
});
