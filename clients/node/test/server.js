'use strict';
// Starts a real nanochatd ($NC_BUILD_DIR/bin/nanochatd) on 127.0.0.1:0 with a temp data dir,
// like tests/integration/nc_harness.py; stop() sends SIGTERM and checks the exit status.
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const BUILD = process.env.NC_BUILD_DIR || path.join(__dirname, '..', '..', '..', 'build');

async function startServer({ token, userToken, args = [] } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nc-node-'));
  const argv = ['--listen', '127.0.0.1:0', '--data-dir', path.join(dir, 'data'), ...args];
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
