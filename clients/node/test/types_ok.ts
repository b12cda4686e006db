// Type-checked (tsc --noEmit --strict, ctest sdk_node.typescript_declarations) but never run:
// typical SDK use from TypeScript must compile against the generated index.d.ts without casts.
import { Client, Job, ChatStream, NanochatError, FailedPrecondition, Unimplemented, errors,
         fromGrpcError, methods, TERMINAL, Stream } from '..';
import type { ChatDone, JobEvent, JobInfo, JobState, ModelStatus, ChatStreamResponse,
              MethodPath, RpcTableRow } from '..';

export async function main(): Promise<void> {
  const c = new Client({ address: '127.0.0.1:50051', token: 'secret', timeoutMs: 5000 });
  await c.waitReady(1000);
  const h = await c.health();
  const status: string = h.status;
  const ms: ModelStatus = await c.modelStatus();
  const loaded: boolean = ms.loaded;
  console.log(status, loaded, ms.config && ms.config.n_layer);

  const chat: ChatStream = c.chat('Why is the sky blue?', { temperature: 0.2, max_tokens: 32,
                                                          system: 'be brief', timeoutMs: 1000 });
  for await (const piece of chat) {
    const p: string = piece;
    console.log(p);
  }
  const done: ChatDone | null = chat.done;
  console.log(chat.text, chat.sessionId, done && done.finish_reason, done && done.usage);
  const r = await c.complete([{ role: 'user', content: 'hi' }, { role: 'ASSISTANT', content: 'yo' },
                              { role: 'ROLE_USER', content: 'again' }], { seed: 7 });
  console.log(r.content, r.tokens_generated, r.session_id);

  const job: Job = await c.trainBase({ depth: 4 });
  for await (const ev of job.progress({ fromSeq: 1, includeSnapshot: true })) {
    const e: JobEvent = ev;
    const st: JobState = e.state;
    if (e.kind === 'EVENT_PROGRESS' && e.progress) console.log(e.progress.step, st);
    for (const m of e.metrics) console.log(m.key, m.value.toFixed(3));
  }
  const info: JobInfo = await job.wait({ timeoutMs: 60000 });
  if (TERMINAL.has(info.state)) console.log(info.job_id, info.exit_code, info.request.length);
  const jobs: JobInfo[] = await c.jobs(10);
  console.log(jobs.length, c.job('x').id, (await job.cancel()).state);

  // the raw layer: typed requests and responses; a oneof narrows on its discriminator
  const s: Stream<ChatStreamResponse> = c.rpc.Chat.Stream({ messages: [{ role: 'ROLE_USER',
                                                                       content: 'x' }] });
  for await (const ev of s) {
    if (ev.event === 'delta') console.log(ev.delta.text, ev.delta.token_ids.length);
    else if (ev.event === 'done') console.log(ev.done.content);
  }
  const enc = await c.rpc.Tokenizer.Encode({ text: 'hello' });
  console.log(enc.tokens.map((t) => t + 1), enc.count);
  const ex = await c.execute('print(1)', { timeout: 1.5, stdin: 'aGk=' });
  console.log(ex.stdout, ex.exit_code);

  const table = methods();
  const path: MethodPath = '/nanochat.v1.Chat/Complete';
  const row = table[path].row as RpcTableRow;
  console.log(table[path].responseStream, row.default_deadline_ms, row.needs_model);

  try {
    await c.loadModel({ phase: 'PHASE_BASE', model_tag: 'd4', step: '1000' });
  } catch (e) {
    if (e instanceof FailedPrecondition) console.log(e.code, e.codeName, e.details);
    else if (e instanceof errors.NotFound || e instanceof Unimplemented) console.log(e.message);
    else if (e instanceof NanochatError) throw fromGrpcError({ code: e.code, details: e.details });
  }
  c.close();
}
