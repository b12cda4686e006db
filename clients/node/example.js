#!/usr/bin/env node
'use strict';
// Node SDK example: health, model status, one streamed chat reply of at most 32 tokens (without a
// loaded model: its typed FailedPrecondition error), checkpoints; with --test-job a job followed
// to its end (server run with --enable-test-jobs).
//
//   NANOCHAT_GEN_DIR=build/gen node clients/node/example.js 127.0.0.1:50051 [--test-job]
const { Client, NanochatError, FailedPrecondition } = require('./index.js');

async function main() {
  const address = process.argv[2];
  if (!address) {
    console.error('usage: example.js HOST:PORT [--test-job]');
    return 2;
  }
  const c = new Client({ address });
  try {
    await c.waitReady(10000);
    const h = await c.health();
    console.log(`health: ${h.status} (version ${h.version})`);
    const m = await c.modelStatus();
    console.log(m.loaded ? `model: ${m.phase} ${m.model_tag} step ${m.step} (${m.config.n_layer} layers, ` +
                           `context ${m.config.sequence_len})` : 'model: none loaded');
    const chat = c.chat('Why is the sky blue?', { max_tokens: 32 });
    process.stdout.write('chat: ');
    try {
      for await (const piece of chat) process.stdout.write(piece);
      const d = chat.done;
      console.log(`\nchat: done: ${d.usage.completion_tokens} tokens, ${d.finish_reason}, session ${d.session_id}`);
    } catch (e) {
      if (!(e instanceof FailedPrecondition)) throw e;   // no model loaded
      console.log(`not available: ${e.message}`);
    }
    console.log(`checkpoints: ${(await c.checkpoints()).length}`);
    if (process.argv.includes('--test-job')) {
      const job = await c.testJob({ steps: 5, step_ms: 20 });
      for await (const ev of job.progress()) {
        if (ev.kind === 'EVENT_PROGRESS') {
          console.log(`job ${job.id}: step ${ev.progress.step}/${ev.progress.total_steps} loss ${ev.progress.loss.toFixed(3)}`);
        }
      }
      console.log(`job ${job.id}: ${(await job.wait()).state}`);
    }
    return 0;
  } catch (e) {
    if (!(e instanceof NanochatError)) throw e;
    console.error(`error: ${e.message}`);
    return 1;
  } finally {
    c.close();
  }
}

main().then((rc) => { process.exitCode = rc; });
