// jobs.mjs — mirrors nanochatd jobs into iii state so iii callers can poll them
// (state::get {scope: "nanochat:training", key: <job_id>}).
//
// For every job the adapter starts (or finds running when it connects to nanochatd), it follows
// the job's progress stream (the table's streaming method answering JobEvent) and keeps one state
// value per job: {job_id, kind, state, terminal, progress, metrics, error, checkpoint, exit_code,
// created_ms, started_ms, finished_ms, last_seq, last_log, updated_ms}. Writes are coalesced
// (at most one per `throttleMs` per job, always one for a state change and one at the end). When
// the stream breaks (nanochatd restarts) the mirror reconnects with backoff and resumes at
// last_seq + 1; nanochatd's SNAPSHOT re-synchronises the value.
import { Code, codeName } from './status.mjs';
import { encode } from './schema.mjs';

export const TERMINAL = new Set(['JOB_SUCCEEDED', 'JOB_FAILED', 'JOB_CANCELLED', 'JOB_INTERRUPTED']);
const JOB_FIELDS = ['kind', 'state', 'created_ms', 'started_ms', 'finished_ms', 'error', 'last_seq',
  'progress', 'metrics', 'checkpoint', 'exit_code'];
const MAX_WATCHED = 256;
const GIVE_UP = new Set([Code.NOT_FOUND, Code.UNAUTHENTICATED, Code.PERMISSION_DENIED,
  Code.INVALID_ARGUMENT, Code.UNIMPLEMENTED]);

export class JobMirror {
  /**
   * nanochatd: Nanochatd; statusRow: the table row of the job progress stream; root: protobufjs
   * root; stateSet(scope, key, value) → Promise; log(level, msg).
   */
  constructor({ nanochatd, statusRow, root, stateSet, scope = 'nanochat:training', log, throttleMs = 250 }) {
    this.nanochatd = nanochatd;
    this.row = statusRow;
    this.inType = root.lookupType(statusRow.input_type);
    this.outType = root.lookupType(statusRow.output_type);
    this.stateSet = stateSet;
    this.scope = scope;
    this.log = log;
    this.throttleMs = throttleMs;
    this.jobs = new Map();
    this.stopped = false;
  }

  /** Starts mirroring job `jobId` with the caller's token (idempotent). */
  watch(jobId, auth) {
    if (this.stopped || typeof jobId !== 'string' || !jobId) return;
    const have = this.jobs.get(jobId);
    if (have) {
      if (auth && !have.auth) have.auth = auth;
      return;
    }
    if (this.jobs.size >= MAX_WATCHED) {
      this.log('warn', `job mirror: ${MAX_WATCHED} jobs already followed, not following ${jobId}`);
      return;
    }
    const j = {
      id: jobId, auth, value: { job_id: jobId }, lastSeq: 0, stream: null, timer: null, retryTimer: null,
      writing: false, dirty: false, lastWrite: 0, backoff: 250, done: false,
    };
    this.jobs.set(jobId, j);
    this.follow(j);
  }

  /** Current mirrored value of a job (what was last written or is about to be). */
  value(jobId) {
    return this.jobs.get(jobId)?.value;
  }

  follow(j) {
    if (this.stopped || j.done) return;
    const req = { job_id: j.id, follow: true, from_seq: String(j.lastSeq + 1) };
    const bytes = encode(this.inType, req);
    j.stream = this.nanochatd.stream(this.row, this.outType, bytes, {
      auth: j.auth,
      onMessage: (ev) => this.apply(j, ev),
    });
    j.stream.done.then(() => {
      if (!TERMINAL.has(j.value.state)) return this.retry(j);
      j.done = true;
      j.value.terminal = true;
      this.schedule(j, true);
    }, (err) => {
      if (this.stopped) return;
      if (GIVE_UP.has(err.code)) {
        this.log('warn', `job mirror: ${j.id}: ${codeName(err.code)}: ${err.message}; not following`);
        j.done = true;
        j.value.mirror_error = `${codeName(err.code)}: ${err.message}`;
        this.schedule(j, true);
        return;
      }
      this.log('info', `job mirror: ${j.id}: stream broke (${codeName(err.code)}), retrying in ${j.backoff} ms`);
      this.retry(j);
    });
  }

  retry(j) {
    if (this.stopped) return;
    j.retryTimer = setTimeout(() => {
      j.retryTimer = null;
      this.follow(j);
    }, j.backoff);
    j.backoff = Math.min(j.backoff * 2, 5000);
  }

  apply(j, ev) {
    j.backoff = 250;
    const v = j.value;
    const before = v.state;
    if (ev.kind === 'EVENT_SNAPSHOT' && ev.job) {
      for (const k of JOB_FIELDS) if (ev.job[k] !== undefined) v[k] = ev.job[k];
    } else {
      if (ev.state !== undefined) v.state = ev.state;
      if (ev.job) for (const k of JOB_FIELDS) if (ev.job[k] !== undefined) v[k] = ev.job[k];
      if (ev.progress) v.progress = ev.progress;
      if (ev.metrics) v.metrics = { ...(v.metrics || {}), ...ev.metrics };
      if (ev.checkpoint) v.checkpoint = ev.checkpoint;
      if (ev.kind === 'EVENT_LOG' && typeof ev.message === 'string') v.last_log = ev.message.slice(0, 512);
      if (typeof ev.seq === 'number' && ev.seq > (v.last_seq || 0)) v.last_seq = ev.seq;
    }
    if (typeof v.last_seq === 'number' && v.last_seq > j.lastSeq) j.lastSeq = v.last_seq;
    v.terminal = TERMINAL.has(v.state);
    this.schedule(j, v.state !== before);
  }

  schedule(j, now) {
    j.dirty = true;
    if (j.writing) return;
    const wait = now ? 0 : Math.max(0, j.lastWrite + this.throttleMs - Date.now());
    if (j.timer && !now) return;
    if (j.timer) clearTimeout(j.timer);
    j.timer = setTimeout(() => {
      j.timer = null;
      this.flush(j);
    }, wait);
  }

  async flush(j) {
    if (!j.dirty || j.writing) return;
    j.dirty = false;
    j.writing = true;
    j.value.updated_ms = Date.now();
    const value = structuredClone(j.value);
    try {
      await this.stateSet(this.scope, j.id, value);
    } catch (e) {
      this.log('warn', `job mirror: state::set ${j.id} failed: ${e.message}`);
      j.dirty = true;
    }
    j.writing = false;
    j.lastWrite = Date.now();
    if (j.dirty && !this.stopped) this.schedule(j, false);
    else if (j.done && !j.dirty) this.jobs.delete(j.id);
  }

  /**
   * Lists nanochatd's jobs (one SNAPSHOT each) with `auth` and mirrors them: finished ones get
   * one state write, queued/running ones are followed.
   */
  async rescan(auth, limit = 100) {
    const bytes = encode(this.inType, { follow: false, limit });
    const snaps = [];
    const s = this.nanochatd.stream(this.row, this.outType, bytes, {
      auth, deadlineMs: 10000, onMessage: (ev) => snaps.push(ev),
    });
    await s.done;
    for (const ev of snaps) {
      const info = ev.job;
      if (!info || typeof info.job_id !== 'string') continue;
      if (TERMINAL.has(info.state)) {
        if (this.jobs.has(info.job_id)) continue;
        const value = { job_id: info.job_id, terminal: true, updated_ms: Date.now() };
        for (const k of JOB_FIELDS) if (info[k] !== undefined) value[k] = info[k];
        await this.stateSet(this.scope, info.job_id, value).catch((e) => {
          this.log('warn', `job mirror: state::set ${info.job_id} failed: ${e.message}`);
        });
      } else {
        this.watch(info.job_id, auth);
      }
    }
    return snaps.length;
  }

  stop() {
    this.stopped = true;
    for (const j of this.jobs.values()) {
      if (j.timer) clearTimeout(j.timer);
      if (j.retryTimer) clearTimeout(j.retryTimer);
      if (j.stream) j.stream.cancel();
    }
    this.jobs.clear();
  }
}
