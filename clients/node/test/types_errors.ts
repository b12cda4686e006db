// Deliberate misuse: every line after a @ts-expect-error must be a type error. tsc reports an
// unused @ts-expect-error as an error, so this file fails the check (ctest
// sdk_node.typescript_declarations) if the declarations degrade to `any` or lose a field.
import { Client, NanochatError, FailedPrecondition } from '..';
import type { JobEvent, ChatStreamResponse, JobState } from '..';

export async function misuse(c: Client, ev: JobEvent, s: ChatStreamResponse): Promise<void> {
  // @ts-expect-error: a field name that is not in the proto (camelCase instead of keepCase)
  console.log(ev.jobId);
  // @ts-expect-error: int64 arrives as number (longs: Number), not string
  const seq: string = ev.seq;
  // @ts-expect-error: enum values are names from the proto
  if (ev.kind === 'EVENT_TYPO') console.log(seq);
  // @ts-expect-error: sub-messages may be null
  console.log(ev.progress.step);
  // @ts-expect-error: oneof members exist only after narrowing on the discriminator
  console.log(s.delta.text);
  // @ts-expect-error: unknown request field
  await c.trainBase({ dept: 4 });
  // @ts-expect-error: wrong request field type
  await c.trainBase({ depth: 'four' });
  // @ts-expect-error: wrong enum name in a request
  await c.loadModel({ phase: 'PHASE_NOPE' });
  // @ts-expect-error: role must be a Role (long or short form)
  c.chat([{ role: 'robot', content: 'x' }]);
  // @ts-expect-error: chat() yields strings
  for await (const piece of c.chat('x')) console.log(piece.delta);
  // @ts-expect-error: no such method on the raw layer
  await c.rpc.Chat.Completions({});
  // @ts-expect-error: no such service
  await c.rpc.Chats.Complete({});
  // @ts-expect-error: Job.progress() yields JobEvent, whose state is a JobState
  for await (const e of (await c.trainSft()).progress()) { const n: number = e.state; console.log(n); }
  // @ts-expect-error: per-code error classes take only a message
  throw new FailedPrecondition(9, 'x');
}
export function errorFields(e: NanochatError): JobState {
  // @ts-expect-error: codeName is a string, not a JobState
  return e.codeName;
}
