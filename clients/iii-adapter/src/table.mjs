// table.mjs — the adapter's function list, read from build/gen/rpc_table.json (generated from
// proto/ by proto/gen_rpc_table.py). Nothing here is hand-copied: every iii function id, HTTP
// trigger, auth flag, size cap and deadline comes from the table rows.
import fs from 'node:fs';

const MAX_TABLE_BYTES = 16 << 20;
const ID_RE = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;
const PATH_RE = /^\/[A-Za-z0-9_\-/]+$/;
const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);

/** Job starters are the methods answering with a JobRef (training and long evals). */
export const JOB_REF_TYPE = 'nanochat.v1.JobRef';

function fail(path, msg) {
  throw new Error(`rpc table ${path}: ${msg}`);
}

/**
 * Reads and checks the RPC table. Returns {methods, rows, messages, enums} where `rows` are the
 * methods that carry an iii function id (the ones the adapter registers), each extended with
 * `kind`: 'unary' | 'stream' | 'job' (unary answering a JobRef). Throws with a clear message on a
 * missing, oversized or inconsistent table.
 */
export function loadTable(path) {
  let text;
  try {
    const st = fs.statSync(path);
    if (st.size > MAX_TABLE_BYTES) fail(path, `larger than ${MAX_TABLE_BYTES} bytes`);
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    if (e.message.startsWith('rpc table')) throw e;
    fail(path, `cannot read (${e.code || e.message}); build it with ` +
      '`cmake --build build --target ncrpc_gen` or pass --rpc-table');
  }
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    fail(path, `not JSON (${e.message})`);
  }
  if (!doc || !Array.isArray(doc.methods) || typeof doc.messages !== 'object') {
    fail(path, 'missing "methods" or "messages"');
  }
  const rows = [];
  const ids = new Set();
  const routes = new Set();
  for (const m of doc.methods) {
    if (!m || typeof m.path !== 'string') fail(path, 'a method row has no path');
    if (!m.iii_id) continue;
    if (!ID_RE.test(m.iii_id)) fail(path, `${m.path}: bad iii_id ${JSON.stringify(m.iii_id)}`);
    if (ids.has(m.iii_id)) fail(path, `duplicate iii_id ${m.iii_id}`);
    ids.add(m.iii_id);
    if (!METHODS.has(m.http_method) || !PATH_RE.test(m.http_path || '')) {
      fail(path, `${m.iii_id}: bad HTTP trigger ${m.http_method} ${m.http_path}`);
    }
    const route = `${m.http_method} ${m.http_path}`;
    if (routes.has(route)) fail(path, `duplicate HTTP route ${route}`);
    routes.add(route);
    if (m.client_streaming) fail(path, `${m.iii_id}: client streaming is not supported`);
    if (!doc.messages[m.input_type] || !doc.messages[m.output_type]) {
      fail(path, `${m.iii_id}: unknown message type`);
    }
    const kind = m.server_streaming ? 'stream' : m.output_type === JOB_REF_TYPE ? 'job' : 'unary';
    rows.push({ ...m, kind });
  }
  if (!rows.length) fail(path, 'no method carries an iii_id');
  return { methods: doc.methods, rows, messages: doc.messages, enums: doc.enums || {} };
}

/** The gRPC service and method name of a row ('/nanochat.v1.Chat/Complete' -> [svc, name]). */
export function splitPath(row) {
  const m = /^\/([A-Za-z0-9_.]+)\/([A-Za-z0-9_]+)$/.exec(row.path);
  if (!m) throw new Error(`bad gRPC path ${row.path}`);
  return [m[1], m[2]];
}
