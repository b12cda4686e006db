// nanochatd.mjs — the gRPC side: one grpc-js channel to nanochatd, unary and server-streaming
// calls by the table's method paths, with the caller's bearer token, a deadline on every unary
// call, and a bounded wait for the channel when nanochatd is (re)starting. grpc-js reconnects by
// itself; the backoff is capped low so a restarted nanochatd is picked up within ~2 s.
import grpc from '@grpc/grpc-js';

import { CallError, Code, fromGrpcError } from './status.mjs';
import { decodeJson } from './schema.mjs';

const TOKEN_VALUE_RE = /^Bearer [\x21-\x7e]{1,4096}$/;

/** Checks an `authorization` value before it becomes gRPC metadata (grpc-js throws otherwise). */
export function checkAuthorization(v) {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string' || !TOKEN_VALUE_RE.test(v)) {
    throw new CallError(Code.UNAUTHENTICATED, 'authorization: expected "Bearer <token>" (printable ASCII)',
      { field: 'authorization' });
  }
  return v;
}

export class Nanochatd {
  /**
   * address: "127.0.0.1:50051" (or unix:/path); tlsCa: PEM buffer to connect with TLS;
   * connectWaitMs: how long a call waits for an unready channel before UNAVAILABLE.
   */
  constructor({ address, tlsCa, connectWaitMs = 3000, maxMessageBytes = 16 << 20 }) {
    this.address = address;
    this.connectWaitMs = connectWaitMs;
    const creds = tlsCa ? grpc.credentials.createSsl(tlsCa) : grpc.credentials.createInsecure();
    this.client = new grpc.Client(address, creds, {
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.min_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2000,
      'grpc.max_receive_message_length': maxMessageBytes,
      'grpc.max_send_message_length': maxMessageBytes,
      'grpc.enable_retries': 0,
    });
  }

  close() {
    this.client.close();
  }

  /** Resolves once the channel is READY; rejects with UNAVAILABLE after connectWaitMs. */
  ready() {
    const ch = this.client.getChannel();
    if (ch.getConnectivityState(true) === grpc.connectivityState.READY) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.client.waitForReady(Date.now() + this.connectWaitMs, (err) => {
        if (err) {
          reject(new CallError(Code.UNAVAILABLE, `nanochatd at ${this.address} is not reachable`));
        } else resolve();
      });
    });
  }

  metadata(auth) {
    const md = new grpc.Metadata();
    const v = checkAuthorization(auth);
    if (v) md.set('authorization', v);
    return md;
  }

  /** Unary call: resolves with the JSON reply, rejects with a CallError. */
  async unary(row, outType, reqBytes, { auth, deadlineMs }) {
    const md = this.metadata(auth);
    await this.ready();
    return new Promise((resolve, reject) => {
      const opts = deadlineMs > 0 ? { deadline: Date.now() + deadlineMs } : {};
      this.client.makeUnaryRequest(row.path, (b) => b, (b) => b, reqBytes, md, opts, (err, buf) => {
        if (err) return reject(fromGrpcError(err));
        try {
          resolve(decodeJson(outType, buf));
        } catch (e) {
          reject(new CallError(Code.INTERNAL, `undecodable ${outType.name} from nanochatd: ${e.message}`));
        }
      });
    });
  }

  /**
   * Server-streaming call. Calls onMessage(json) per message, then resolves on a clean end or
   * rejects with a CallError. Returns {done: Promise, cancel()}; cancel() ends it with CANCELLED.
   */
  stream(row, outType, reqBytes, { auth, deadlineMs, onMessage }) {
    let call = null;
    let cancelled = false;
    const done = (async () => {
      const md = this.metadata(auth);
      await this.ready();
      if (cancelled) throw new CallError(Code.CANCELLED, 'cancelled');
      const opts = deadlineMs > 0 ? { deadline: Date.now() + deadlineMs } : {};
      call = this.client.makeServerStreamRequest(row.path, (b) => b, (b) => b, reqBytes, md, opts);
      await new Promise((resolve, reject) => {
        let failed = false;
        call.on('data', (buf) => {
          if (failed) return;
          let msg;
          try {
            msg = decodeJson(outType, buf);
          } catch (e) {
            failed = true;
            call.cancel();
            reject(new CallError(Code.INTERNAL, `undecodable ${outType.name} from nanochatd: ${e.message}`));
            return;
          }
          try {
            onMessage(msg);
          } catch (e) {
            failed = true;
            call.cancel();
            reject(fromGrpcError(e));
          }
        });
        call.on('error', (err) => {
          if (!failed) reject(fromGrpcError(err));
          failed = true;
        });
        call.on('status', (st) => {
          if (st.code === grpc.status.OK && !failed) resolve();
        });
      });
    })();
    return {
      done,
      pause: () => call?.pause(),
      resume: () => call?.resume(),
      cancel() {
        cancelled = true;
        if (call) call.cancel();
      },
    };
  }
}
