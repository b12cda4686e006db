// channels.mjs — the stand-in engine's byte/message channels (specs/iii.md §2.7): one channel has a
// write end and a read end (same channel_id and access_key, direction "write"/"read"). Items are
// {text} (messages) or {binary} (data). The write end closes the channel; a dropped read end
// makes further writes fail. Writers are paused (WebSocket pause) while more than `limit` bytes
// are queued, like the engine's bounded channel.
import crypto from 'node:crypto';

const DEFAULT_LIMIT = 1 << 20;

export class Channel {
  constructor(bufferSize = 64) {
    this.id = crypto.randomUUID();
    this.key = crypto.randomUUID();
    this.items = [];
    this.bytes = 0;
    this.limit = Math.max(DEFAULT_LIMIT, bufferSize * 65536);
    this.closed = false;
    this.dropped = false;
    this.waiter = null;
    this.senderTaken = false;
    this.receiverTaken = false;
    this.onDrop = null;
    this.onRoom = null;
  }

  refs() {
    return {
      writer: { channel_id: this.id, access_key: this.key, direction: 'write' },
      reader: { channel_id: this.id, access_key: this.key, direction: 'read' },
    };
  }

  /** Queues an item; false when the reader is gone. */
  push(item) {
    if (this.dropped || this.closed) return !this.dropped;
    this.items.push(item);
    this.bytes += (item.binary ?? item.text ?? '').length;
    this.wake();
    return true;
  }

  full() {
    return this.bytes > this.limit;
  }

  close() {
    this.closed = true;
    this.wake();
  }

  /** The reader goes away: writers are told, queued items are dropped. */
  drop() {
    this.dropped = true;
    this.items = [];
    this.bytes = 0;
    if (this.onDrop) this.onDrop();
    this.wake();
  }

  wake() {
    const w = this.waiter;
    this.waiter = null;
    if (w) w();
  }

  /** Next item, or null at the end of the channel. */
  async next() {
    for (;;) {
      if (this.items.length) {
        const it = this.items.shift();
        this.bytes -= (it.binary ?? it.text ?? '').length;
        if (!this.full() && this.onRoom) this.onRoom();
        return it;
      }
      if (this.closed || this.dropped) return null;
      await new Promise((r) => { this.waiter = r; });
    }
  }
}

export class ChannelManager {
  constructor() {
    this.channels = new Map();
  }

  create(bufferSize) {
    const ch = new Channel(bufferSize);
    this.channels.set(ch.id, ch);
    return ch;
  }

  get(id, key) {
    const ch = this.channels.get(id);
    return ch && ch.key === key ? ch : null;
  }

  remove(id) {
    this.channels.delete(id);
  }

  /** Serves one /ws/channels/<id>?key=…&dir=… WebSocket (or closes it at once). */
  attach(ws, ch, dir) {
    if (dir === 'write') {
      if (ch.senderTaken) return ws.close();
      ch.senderTaken = true;
      ch.onDrop = () => ws.terminate();
      ch.onRoom = () => ws.isPaused && ws.resume();
      ws.on('message', (data, isBinary) => {
        const ok = ch.push(isBinary ? { binary: Buffer.from(data) } : { text: data.toString('utf8') });
        if (!ok) ws.terminate();
        else if (ch.full()) ws.pause();
      });
      ws.on('close', () => ch.close());
      ws.on('error', () => ch.close());
      return undefined;
    }
    if (ch.receiverTaken) return ws.close();
    ch.receiverTaken = true;
    ws.on('close', () => ch.drop());
    ws.on('error', () => ch.drop());
    (async () => {
      for (let it = await ch.next(); it; it = await ch.next()) {
        if (ws.readyState !== ws.OPEN) return;
        ws.send(it.binary ?? it.text, { binary: it.binary !== undefined });
      }
      if (ws.readyState === ws.OPEN) ws.close(1000);
    })();
    return undefined;
  }
}
