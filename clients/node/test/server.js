'use strict';
// Starts a real nanochatd ($NC_BUILD_DIR/bin/nanochatd) on 127.0.0.1:0 with a temp data dir,
// like tests/integration/nc_harness.py; stop() sends SIGTERM and checks the exit status.
// model: true first writes the tiny served model (clients/testutil/nc_tiny_model: tokenizer +
// random sft/d2 checkpoint) into the data dir and adds its engine flags; add
// args ['--model', 'latest'] to load it at startup (else Model.Load).
const { execFileSync, spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const SOURCE = process.env.NC_SOURCE_DIR || path.join(__dirname, '..', '..', '..');
const BUILD = process.env.NC_BUILD_DIR || path.join(SOURCE, 'build');

// The tiny model's files into dataDir; returns the nanochatd flags to serve it with.
function tinyModel(dataDir) {
  const out = execFileSync(path.join(SOURCE, 'clients', 'testutil', 'nc_tiny_model'), [BUILD, dataDir],
                           { encoding: 'utf8', timeout: 120000 });
  return out.split('\n').filter((l) => l);
}

async function startServer({ token, userToken, args = [], model = false } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nc-node-'));
  const data = path.join(dir, 'data');
  const argv = ['--listen', '127.0.0.1:0', '--data-dir', data, ...(model ? tinyModel(data) : []), ...args];
  for (const [flag, value] of [['--token-file', token], ['--user-token-file', userToken]]) {
    if (!value) continue;
    const p = path.join(dir, flag.slice(2));
    fs.writeFileSync(p, `${value}\n`, { mode: 0o600 });
    argv.push(flag, p);
  }
  const log = fs.openSync(path.join(dir, 'nanochatd.log'), 'w');
  const proc = spawn(path.join(BUILD, 'bin', 'nanochatd'), argv, { stdio: ['ignore', 'pipe', log] });
  fs.closeSync(log);
  const address = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('nanochatd did not start')), 20000);
    proc.stdout.on('data', (d) => {
      buf += d.toString();
      const m = /listening on (\S+)/.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => reject(new Error(`nanochatd exited with ${code}`)));
  });
  // "serving on port" is logged just before nanochatd's main thread waits for signals; a SIGTERM
  // sent earlier can land on a thread created before main() blocked them
  const logPath = path.join(dir, 'nanochatd.log');
  for (let i = 0; i < 100 && !fs.readFileSync(logPath, 'utf8').includes('serving on port'); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    address,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      const rc = await new Promise((resolve) => {
        proc.on('exit', (code, sig) => resolve(sig ? -1 : code));
        proc.kill('SIGTERM');
      });
      const logs = fs.readFileSync(path.join(dir, 'nanochatd.log'), 'utf8');
      fs.rmSync(dir, { recursive: true, force: true });
      if (rc !== 0) throw new Error(`nanochatd exited with ${rc}\n${logs}`);
      return rc;
    },
  };
}

module.exports = { startServer, BUILD };
