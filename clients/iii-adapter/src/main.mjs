#!/usr/bin/env node
// main.mjs — command line of the nanochat iii adapter.
//
//   node src/main.mjs --engine ws://127.0.0.1:49134 --nanochatd 127.0.0.1:50051 \
//        [--rpc-table build/gen/rpc_table.json] [--proto-dir proto] [--include /usr/include] \
//        [--token-file FILE] [--tls-ca FILE] [--worker-name NAME] [--http-timeout-ms 30000] \
//        [--state-scope nanochat:training] [--log-level info] [--otel]
//
// Every flag also reads an environment variable (III_URL, NANOCHAT_ADDR, NANOCHAT_RPC_TABLE,
// NANOCHAT_PROTO_DIR, NANOCHAT_TOKEN_FILE, NANOCHAT_TLS_CA, ...); flags win. Exit status: 0 after
// SIGTERM/SIGINT, 2 for a bad command line or configuration.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Adapter } from './adapter.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../..');

const FLAGS = {
  engine: ['III_URL', 'ws://127.0.0.1:49134'],
  nanochatd: ['NANOCHAT_ADDR', '127.0.0.1:50051'],
  'rpc-table': ['NANOCHAT_RPC_TABLE', path.join(repo, 'build/gen/rpc_table.json')],
  'proto-dir': ['NANOCHAT_PROTO_DIR', path.join(repo, 'proto')],
  include: ['NANOCHAT_PROTO_INCLUDE', '/usr/include'],
  'token-file': ['NANOCHAT_TOKEN_FILE', ''],
  'tls-ca': ['NANOCHAT_TLS_CA', ''],
  'worker-name': ['III_WORKER_NAME', 'nanochat-iii-adapter'],
  'http-timeout-ms': ['NANOCHAT_HTTP_TIMEOUT_MS', '30000'],
  'connect-wait-ms': ['NANOCHAT_CONNECT_WAIT_MS', '3000'],
  'state-scope': ['NANOCHAT_STATE_SCOPE', 'nanochat:training'],
  'log-level': ['NANOCHAT_LOG_LEVEL', 'info'],
  otel: ['NANOCHAT_OTEL', ''],
};

function usage(msg) {
  if (msg) process.stderr.write(`nanochat-iii-adapter: ${msg}\n`);
  process.stderr.write(`usage: main.mjs ${Object.keys(FLAGS).map((f) => `[--${f}${f === 'otel' ? '' : ' V'}]`).join(' ')}\n`);
  process.exit(2);
}

export function parseArgs(argv, env = process.env) {
  const o = {};
  for (const [k, [e, d]] of Object.entries(FLAGS)) o[k] = env[e] ?? d;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') usage();
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m || !(m[1] in FLAGS)) usage(`unknown argument ${a}`);
    if (m[1] === 'otel') o.otel = '1';
    else if (m[2] !== undefined) o[m[1]] = m[2];
    else if (i + 1 < argv.length) o[m[1]] = argv[++i];
    else usage(`--${m[1]} needs a value`);
  }
  return o;
}

function readSecret(file, what) {
  const st = fs.statSync(file);
  if (!st.isFile()) throw new Error(`${what} ${file}: not a regular file`);
  if (st.mode & 0o077) throw new Error(`${what} ${file}: readable by group/others (chmod 600)`);
  return fs.readFileSync(file, 'utf8').trim();
}

function intFlag(o, k, min, max) {
  const n = Number(o[k]);
  if (!Number.isInteger(n) || n < min || n > max) usage(`--${k}: expected an integer in [${min}, ${max}]`);
  return n;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!/^wss?:\/\//.test(o.engine)) usage('--engine: expected ws://host:port');
  let token;
  let tlsCa;
  try {
    if (o['token-file']) {
      const t = readSecret(o['token-file'], 'token file');
      if (!/^[\x21-\x7e]{16,4096}$/.test(t)) throw new Error('token file: 16..4096 printable ASCII bytes expected');
      token = `Bearer ${t}`;
    }
    if (o['tls-ca']) tlsCa = fs.readFileSync(o['tls-ca']);
  } catch (e) {
    usage(e.message);
  }
  let adapter;
  try {
    adapter = new Adapter({
      engineUrl: o.engine,
      nanochatd: o.nanochatd,
      rpcTable: o['rpc-table'],
      protoDir: o['proto-dir'],
      includeDirs: o.include.split(':').filter(Boolean),
      token,
      tlsCa,
      workerName: o['worker-name'],
      httpTimeoutMs: intFlag(o, 'http-timeout-ms', 0, 86400000),
      connectWaitMs: intFlag(o, 'connect-wait-ms', 0, 600000),
      stateScope: o['state-scope'],
      logLevel: o['log-level'],
      otel: !!o.otel,
    });
  } catch (e) {
    usage(e.message);
  }
  // a bug in a handler must never take the adapter down: log and keep serving
  process.on('unhandledRejection', (e) => adapter.log('error', `unhandled rejection: ${e?.stack || e}`));
  process.on('uncaughtException', (e) => adapter.log('error', `uncaught exception: ${e?.stack || e}`));
  adapter.start();
  const stop = async (sig) => {
    adapter.log('info', `${sig}: stopping`);
    await adapter.stop().catch(() => {});
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
