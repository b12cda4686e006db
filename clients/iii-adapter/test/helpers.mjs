// helpers.mjs — test fixtures: a real nanochatd on loopback (from $NC_BUILD_DIR/bin), the
// stand-in iii engine (in this process), the adapter (a child process running src/main.mjs),
// HTTP and SSE clients, and polling.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

import { StandInEngine } from './engine/engine.mjs';

export const ADAPTER_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SOURCE_DIR = process.env.NC_SOURCE_DIR || path.resolve(ADAPTER_DIR, '../..');
// NC_BUILD_DIR may be relative to the source dir (e.g. build-asan)
export const BUILD_DIR = path.resolve(SOURCE_DIR, process.env.NC_BUILD_DIR || 'build');
export const RPC_TABLE = path.join(BUILD_DIR, 'gen', 'rpc_table.json');
export const NANOCHATD = path.join(BUILD_DIR, 'bin', 'nanochatd');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls fn() until it returns a truthy value (returned) or throws after timeoutMs. */
export async function waitFor(fn, { timeoutMs = 15000, intervalMs = 50, what = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(intervalMs);
  }
}

function writeSecret(dir, name, value) {
  const p = path.join(dir, name);
  fs.writeFileSync(p, value + '\n', { mode: 0o600 });
  return p;
}

/**
 * Writes the SDK tests' tiny served model into dataDir (clients/testutil/nc_tiny_model: tokenizer
 * + random sft/d2 checkpoint; `slow` adds sft/d6) and returns the nanochatd flags to serve it with.
 */
export function tinyModel(dataDir, { slow = false } = {}) {
  const out = execFileSync(path.join(SOURCE_DIR, 'clients', 'testutil', 'nc_tiny_model'),
    [BUILD_DIR, dataDir, ...(slow ? ['--slow'] : [])], { encoding: 'utf8', timeout: 120000 });
  return out.split('\n').filter((l) => l);
}

/**
 * A nanochatd child process with its own temp data dir. model: true (or 'slow') first writes
 * the tiny model there and adds its engine flags; add ['--model', 'sft/d2'] to args to serve it
 * from startup.
 */
export class Nanochatd {
  constructor({ args = ['--enable-test-jobs'], token, userToken, model = false } = {}) {
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nc-iii-'));
    this.dataDir = path.join(this.tmp, 'data');
    this.args = model ? [...tinyModel(this.dataDir, { slow: model === 'slow' }), ...args] : args;
    this.token = token;
    this.userToken = userToken;
    this.listen = '127.0.0.1:0';
    this.log = path.join(this.tmp, 'nanochatd.log');
  }

  get address() {
    return `127.0.0.1:${this.port}`;
  }

  async start() {
    const cmd = ['--listen', this.listen, '--data-dir', this.dataDir, ...this.args];
    if (this.token) cmd.push('--token-file', writeSecret(this.tmp, 'token', this.token));
    if (this.userToken) cmd.push('--user-token-file', writeSecret(this.tmp, 'user_token', this.userToken));
    const err = fs.openSync(this.log, 'a');
    this.proc = spawn(NANOCHATD, cmd, { stdio: ['ignore', 'pipe', err] });
    fs.closeSync(err);
    const rl = readline.createInterface({ input: this.proc.stdout });
    this.port = await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`nanochatd did not start:\n${this.logs()}`)), 20000);
      rl.on('line', (line) => {
        const m = /^nanochatd listening on \S+:(\d+)/.exec(line);
        if (m) {
          clearTimeout(t);
          resolve(Number(m[1]));
        }
      });
      this.proc.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`nanochatd exited with ${code}:\n${this.logs()}`));
      });
    });
    this.proc.stdout.resume();
    this.listen = `127.0.0.1:${this.port}`; // a restart comes back on the same port
    return this;
  }

  /** Stops it (SIGTERM by default); resolves with the exit code or signal name. */
  async stop(sig = 'SIGTERM') {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return p ? (p.exitCode ?? p.signalCode) : null;
    const exited = new Promise((r) => p.once('exit', (code, signal) => r(code ?? signal)));
    p.kill(sig);
    const t = setTimeout(() => p.kill('SIGKILL'), 30000);
    const rc = await exited;
    clearTimeout(t);
    return rc;
  }

  async restart() {
    await this.stop();
    return this.start();
  }

  logs() {
    try {
      return fs.readFileSync(this.log, 'utf8');
    } catch {
      return '';
    }
  }

  /** Stops it and removes its data; throws (with its log) unless it exited 0. */
  async close() {
    const rc = await this.stop();
    const log = this.logs();
    fs.rmSync(this.tmp, { recursive: true, force: true });
    if (rc !== 0 && rc !== null) throw new Error(`nanochatd exited with ${rc}:\n${log.slice(-20000)}`);
    return rc;
  }
}

export async function startEngine(opts = {}) {
  return new StandInEngine(opts).start();
}

/** The adapter as a child process; `stderr` collects its log. */
export class AdapterProc {
  constructor({ engineUrl, nanochatd, args = [], env = {} }) {
    this.engineUrl = engineUrl;
    this.nanochatd = nanochatd;
    this.args = args;
    this.env = env;
    this.stderr = '';
  }

  start() {
    const cmd = [path.join(ADAPTER_DIR, 'src/main.mjs'), '--engine', this.engineUrl, '--nanochatd', this.nanochatd,
      '--rpc-table', RPC_TABLE, '--proto-dir', path.join(SOURCE_DIR, 'proto'), '--log-level', 'debug', ...this.args];
    this.proc = spawn(process.execPath, cmd, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...this.env } });
    this.proc.stderr.on('data', (d) => {
      this.stderr += d.toString();
      if (this.stderr.length > 4 << 20) this.stderr = this.stderr.slice(-(2 << 20));
    });
    return this;
  }

  alive() {
    return this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async stop() {
    const p = this.proc;
    if (!this.alive()) return p?.exitCode ?? p?.signalCode;
    const exited = new Promise((r) => p.once('exit', (code, signal) => r(code ?? signal)));
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 10000);
    const rc = await exited;
    clearTimeout(t);
    return rc;
  }
}

/** One HTTP request: resolves {status, headers, text, json}. */
export function request(method, url, { body, headers = {}, timeoutMs = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    let data;
    if (body !== undefined) {
      data = Buffer.isBuffer(body) || typeof body === 'string' ? Buffer.from(body) : Buffer.from(JSON.stringify(body));
      if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type') && typeof body !== 'string' && !Buffer.isBuffer(body)) {
        headers = { ...headers, 'content-type': 'application/json' };
      }
    }
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timeout`)));
    req.on('error', reject);
    req.end(data);
  });
}

export const get = (url, opts) => request('GET', url, opts);
export const post = (url, body, opts = {}) => request('POST', url, { ...opts, body });

/** Parses SSE text into [{event, id, data}] (data JSON-decoded). */
export function parseSse(text) {
  const out = [];
  for (const block of text.split('\n\n')) {
    const ev = {};
    let data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) ev.event = line.slice(7);
      else if (line.startsWith('id: ')) ev.id = line.slice(4);
      else if (line.startsWith('data: ')) data += line.slice(6);
    }
    if (ev.event || data) {
      ev.data = data ? JSON.parse(data) : undefined;
      out.push(ev);
    }
  }
  return out;
}

/**
 * Opens an SSE stream (GET, or POST with a JSON `body`). Resolves {status, headers, firstByteMs,
 * events (growing array), text (growing raw body), done (Promise of all events at the end),
 * close()}; `onEvent(ev)` sees every event as it arrives.
 */
export function openSse(url, { headers = {}, body, onEvent } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const method = body === undefined ? 'GET' : 'POST';
    const h = { accept: 'text/event-stream', ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers };
    const t0 = Date.now();
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: h }, (res) => {
      const out = { status: res.statusCode, headers: res.headers, firstByteMs: Date.now() - t0, events: [], text: '' };
      let buf = '';
      let finish;
      out.done = new Promise((r) => { finish = r; });
      out.close = () => req.destroy();
      res.setEncoding('utf8');
      res.on('data', (c) => {
        out.text += c;
        buf += c;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i + 2);
          buf = buf.slice(i + 2);
          for (const ev of parseSse(block)) {
            out.events.push(ev);
            onEvent?.(ev);
          }
        }
      });
      res.on('end', () => finish(out.events));
      res.on('close', () => finish(out.events));
      resolve(out);
    });
    req.on('error', (e) => reject(e));
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Starts nanochatd + stand-in engine + adapter and waits until the health route answers. */
export async function startStack({ nanochatdArgs, token, userToken, model, adapterArgs = [], engineOpts = {} } = {}) {
  const nc = await new Nanochatd({ args: nanochatdArgs, token, userToken, model }).start();
  const engine = await startEngine(engineOpts);
  const adapter = new AdapterProc({ engineUrl: engine.wsUrl, nanochatd: nc.address, args: adapterArgs }).start();
  const base = engine.httpUrl;
  await waitFor(async () => (await get(`${base}/nanochat/health`)).status === 200, { what: 'adapter routes', timeoutMs: 20000 });
  return {
    nc, engine, adapter, base,
    async close() {
      // the fields, not the locals: restart tests replace the engine and the adapter
      const rc = await this.adapter.stop();
      await this.engine.stop();
      await this.nc.close();
      return rc;
    },
  };
}

/** Polls iii state (through SDK worker `w`) until job `id`'s mirrored value is terminal. */
export function waitTerminal(w, id, what = `job ${id} to end in iii state`) {
  return waitFor(async () => {
    const v = await w.trigger({ function_id: 'state::get', payload: { scope: 'nanochat:training', key: id }, timeoutMs: 5000 });
    return v?.terminal && v;
  }, { what, timeoutMs: 20000 });
}

export function readTable() {
  return JSON.parse(fs.readFileSync(RPC_TABLE, 'utf8'));
}
