// http-front.mjs — the stand-in engine's iii-http worker (specs/iii.md §2.3, after the engine's
// rest_api views/types): each registered http trigger is a route; a request becomes one
// invocation with the HttpRequest envelope {query_params, path_params, headers, path, method,
// body, trigger, request_body, response}. The function either returns {status_code?, headers?,
// body?} (a missing body is {}, a non-number status is 200) or writes to the `response` channel:
// text frames set_status / set_headers, binary frames body bytes; the head goes out with the
// first binary chunk and the rest is streamed until the writer closes. Handler failure → 500
// {"error": {code, message}}; no response head within default_timeout → 504; unknown route →
// 404 "Not Found". A client that goes away drops the response channel (the writer is closed).
import http from 'node:http';

import { jsonDepth, MAX_JSON_DEPTH } from './json.mjs';

const MAX_BODY = 16 << 20;

function normPath(p) {
  const s = '/' + String(p).replace(/^\/+/, '');
  return s.length > 1 ? s.replace(/\/+$/, '') : s;
}

function headerPairs(h) {
  if (Array.isArray(h)) {
    return h.filter((x) => typeof x === 'string' && x.includes(':')).map((x) => {
      const i = x.indexOf(':');
      return [x.slice(0, i).trim(), x.slice(i + 1).trim()];
    }).filter(([k]) => k);
  }
  if (h && typeof h === 'object') return Object.entries(h).filter(([, v]) => typeof v === 'string');
  return [];
}

function validHeader(k, v) {
  return /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(k) && /^[\t\x20-\x7e\x80-\xff]*$/.test(v);
}

/** The engine's HttpResponse::from_function_return + into_axum_response. */
export function bufferedResponse(value) {
  const v = value && typeof value === 'object' && !Array.isArray(value) ? value : {};
  const status = Number.isInteger(v.status_code) && v.status_code >= 100 && v.status_code <= 599 ? v.status_code : 200;
  const headers = headerPairs(v.headers).filter(([k, x]) => validHeader(k, x));
  const body = Object.hasOwn(v, 'body') ? v.body : {};
  const ct = headers.find(([k]) => k.toLowerCase() === 'content-type')?.[1];
  let bytes;
  if (ct !== undefined && typeof body === 'string') bytes = Buffer.from(body);
  else if (ct !== undefined && body === null) bytes = Buffer.alloc(0);
  else if (ct !== undefined && !ct.toLowerCase().includes('application/json')) bytes = Buffer.from(JSON.stringify(body));
  else bytes = Buffer.from(JSON.stringify(body === undefined ? null : body));
  if (ct === undefined) headers.push(['content-type', 'application/json']);
  return { status, headers, bytes };
}

export class HttpFront {
  constructor(engine) {
    this.engine = engine;
    this.routes = new Map(); // "GET /path" -> trigger
  }

  addRoute(method, apiPath, trigger) {
    this.routes.set(`${String(method).toUpperCase()} ${normPath(apiPath)}`, trigger);
  }

  removeRoute(trigger) {
    for (const [k, t] of this.routes) if (t === trigger) this.routes.delete(k);
  }

  async listen(port) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((e) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`stand-in engine error: ${e.message}`);
      });
    });
    await new Promise((r, j) => this.server.once('error', j).listen(port, '127.0.0.1', r));
    return this.server.address().port;
  }

  async close() {
    if (!this.server) return;
    const closed = new Promise((r) => this.server.close(() => r()));
    this.server.closeAllConnections();
    await closed;
  }

  async readBody(req) {
    const chunks = [];
    let n = 0;
    for await (const c of req) {
      n += c.length;
      if (n > MAX_BODY) throw Object.assign(new Error('body too large'), { status: 413 });
      chunks.push(c);
    }
    return Buffer.concat(chunks);
  }

  async handle(req, res) {
    const url = new URL(req.url, 'http://x');
    const route = `${req.method} ${normPath(url.pathname)}`;
    const t = this.routes.get(route);
    if (!t) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found');
      return;
    }
    let raw;
    try {
      raw = await this.readBody(req);
    } catch (e) {
      res.writeHead(e.status || 400).end(e.message);
      return;
    }
    const headers = {};
    for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : v;
    const ctype = headers['content-type'] || '';
    let body = null;
    const reqCh = this.engine.channels.create(64);
    if (ctype.includes('application/json')) {
      try {
        const text = raw.toString('utf8');
        body = jsonDepth(text) > MAX_JSON_DEPTH ? null : JSON.parse(text);
      } catch {
        body = null;
      }
    } else if (raw.length) {
      reqCh.push({ binary: raw });
    }
    reqCh.close();
    reqCh.senderTaken = true;
    const resCh = this.engine.channels.create(64);
    resCh.receiverTaken = true;
    const query = Object.fromEntries(url.searchParams.entries());
    const apiPath = normPath(t.config.api_path);
    const payload = {
      query_params: query, path_params: {}, headers, path: apiPath, method: req.method, body,
      trigger: { type: 'http', path: apiPath, method: req.method },
      request_body: reqCh.refs().reader,
      response: resCh.refs().writer,
    };
    let clientGone = false;
    res.on('close', () => {
      if (!res.writableFinished) {
        clientGone = true;
        resCh.drop();
      }
    });
    const cleanup = () => {
      this.engine.channels.remove(reqCh.id);
      this.engine.channels.remove(resCh.id);
    };
    const call = this.engine.call(t.function_id, payload).then((v) => ({ ok: v }), (e) => ({ err: e }));
    let timer;
    const timeout = new Promise((r) => {
      timer = setTimeout(() => r({ timeout: true }), this.engine.defaultTimeoutMs);
    });
    let status = 200;
    const outHeaders = {};
    const control = (text) => {
      let m;
      try {
        m = JSON.parse(text);
      } catch {
        return;
      }
      if (m?.type === 'set_status' && Number.isInteger(m.status_code) && m.status_code >= 100 && m.status_code <= 599) status = m.status_code;
      if (m?.type === 'set_headers' && m.headers && typeof m.headers === 'object') {
        for (const [k, v] of Object.entries(m.headers)) if (typeof v === 'string' && validHeader(k, v)) outHeaders[k] = v;
      }
    };
    const fail = (st, code, message) => {
      clearTimeout(timer);
      cleanup();
      resCh.drop();
      if (!clientGone) res.writeHead(st, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code, message } }));
    };
    let first = null;
    let callDone = false;
    // phase 1: the first binary chunk, the end of the channel or the function's return
    let next = resCh.next();
    for (;;) {
      const r = await Promise.race([next.then((item) => ({ item })), callDone ? new Promise(() => {}) : call, timeout]);
      if (r.timeout) return fail(504, 'TIMEOUT', 'request timed out');
      if ('item' in r) {
        if (r.item === null) break;
        if (r.item.text !== undefined) {
          control(r.item.text);
          next = resCh.next();
          continue;
        }
        first = r.item.binary;
        break;
      }
      callDone = true;
      if (r.err) return fail(500, r.err.code || 'invocation_failed', r.err.message);
      if (r.ok !== null && r.ok !== undefined) {
        clearTimeout(timer);
        cleanup();
        resCh.drop();
        const b = bufferedResponse(r.ok);
        if (!clientGone) res.writeHead(b.status, b.headers.flat()).end(b.bytes);
        return;
      }
      // returned nothing: the body comes from the channel
    }
    clearTimeout(timer);
    cleanup();
    if (clientGone) return;
    const hs = Object.entries(outHeaders).flat();
    res.writeHead(status, hs);
    if (first) res.write(first);
    for (let it = await resCh.next(); it; it = await resCh.next()) {
      if (it.binary !== undefined && !res.write(it.binary)) {
        await new Promise((r) => {
          const done = () => {
            res.off('drain', done).off('close', done);
            r();
          };
          res.on('drain', done).on('close', done);
        });
      }
    }
    res.end();
  }
}
