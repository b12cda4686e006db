// bench_iii_adapter.mjs — what the iii path costs on top of plain gRPC, measured in one run:
//   unary:  GET /nanochat/health through the stand-in iii engine → adapter → nanochatd, against the
//           reference: Health.Check called directly over gRPC (grpc-js, same machine).
//   stream: a finished job's stored events replayed as SSE through the same path, against the
//           reference: the same Train.Status stream read directly over gRPC.
// Prints one JSON object. The stand-in engine is not the real iii engine (which is Rust), so the
// "via adapter" numbers include a Node HTTP/WebSocket hop the real engine would do natively.
//
//   node bench/bench_iii_adapter.mjs [--n 500] [--events 2000]     (needs build/bin/nanochatd)
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const adapterDir = path.join(here, '../clients/iii-adapter');
const h = await import(path.join(adapterDir, 'test/helpers.mjs'));
const { Nanochatd } = await import(path.join(adapterDir, 'src/nanochatd.mjs'));
const { loadTable } = await import(path.join(adapterDir, 'src/table.mjs'));
const { loadRoot, encode } = await import(path.join(adapterDir, 'src/schema.mjs'));

const arg = (name, d) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const N = arg('--n', 500);
const EVENTS = arg('--events', 2000);

function stats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  const total = ms.reduce((a, b) => a + b, 0);
  return { n: ms.length, p50_ms: +q(0.5).toFixed(3), p99_ms: +q(0.99).toFixed(3), per_s: +(ms.length / (total / 1000)).toFixed(1) };
}

async function timeIt(n, fn) {
  const out = [];
  for (let i = 0; i < 20; i++) await fn(); // warm-up
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await fn();
    out.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return out;
}

const s = await h.startStack({ adapterArgs: ['--log-level', 'warn'] });
try {
  const table = loadTable(h.RPC_TABLE);
  const root = loadRoot(path.join(h.SOURCE_DIR, 'proto'));
  const row = (id) => table.rows.find((r) => r.iii_id === id);
  const grpc = new Nanochatd({ address: s.nc.address });
  const health = row('nanochat.health');
  const healthOut = root.lookupType(health.output_type);
  const empty = encode(root.lookupType(health.input_type), {});

  const direct = await timeIt(N, () => grpc.unary(health, healthOut, empty, { deadlineMs: 5000 }));
  const via = await timeIt(N, async () => {
    const r = await h.get(`${s.base}/nanochat/health`);
    if (r.status !== 200) throw new Error(`health ${r.status}`);
  });

  // a finished job with EVENTS stored events, replayed both ways
  const job = await h.post(`${s.base}/nanochat/train/test_job`, { steps: EVENTS, step_ms: 0 });
  const id = job.json.job_id;
  await h.waitFor(async () => {
    const r = await h.get(`${s.base}/nanochat/train/status?job_id=${id}&follow=false&from_seq=0`);
    return r.json.events[0].job.state === 'JOB_SUCCEEDED';
  }, { timeoutMs: 120000, what: 'bench job' });
  const status = row('nanochat.train.status');
  const statusOut = root.lookupType(status.output_type);
  const req = encode(root.lookupType(status.input_type), { job_id: id, follow: false, from_seq: '1' });
  let nDirect = 0;
  const t0 = process.hrtime.bigint();
  await grpc.stream(status, statusOut, req, { onMessage: () => nDirect++ }).done;
  const directStreamMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const t1 = process.hrtime.bigint();
  const sse = await h.openSse(`${s.base}/nanochat/train/status?job_id=${id}&follow=false`);
  const evs = await sse.done;
  const sseMs = Number(process.hrtime.bigint() - t1) / 1e6;
  grpc.close();

  const d = stats(direct);
  const v = stats(via);
  console.log(JSON.stringify({
    bench: 'iii_adapter',
    note: 'via = HTTP → stand-in iii engine (Node) → adapter (iii-sdk, WebSocket) → nanochatd (gRPC); reference = direct gRPC',
    unary_health: { reference_direct_grpc: d, via_adapter: v, overhead_p50_ms: +(v.p50_ms - d.p50_ms).toFixed(3) },
    stream_replay: {
      events: nDirect,
      reference_direct_grpc: { ms: +directStreamMs.toFixed(1), events_per_s: Math.round(nDirect / (directStreamMs / 1000)) },
      via_adapter_sse: { ms: +sseMs.toFixed(1), events: evs.filter((e) => e.id).length, events_per_s: Math.round(evs.length / (sseMs / 1000)) },
    },
  }, null, 1));
} finally {
  await s.close();
}
