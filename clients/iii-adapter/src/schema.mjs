// schema.mjs — the nanochat.v1 protobuf types (protobufjs reflection over proto/) and the strict
// JSON ⇄ protobuf mapping the adapter applies to untrusted input.
//
// JSON → protobuf (toMessage): field names as in the .proto (snake_case) or their lowerCamelCase
// JSON names; unknown fields, wrong types, non-integers for integer fields, out-of-range
// integers, unknown enum names, bad base64 and two members of one oneof are INVALID_ARGUMENT
// naming the field path (e.g. "messages[0].role"). null means "unset". Range/length limits are
// left to nanochatd's gate, which names the field the same way. Query strings (GET) are parsed
// per field type. protobuf → JSON (toJson): only the fields present on the wire, int64 as a
// number when it is a safe integer (else a decimal string), enums by name, bytes as base64,
// non-finite floats as null.
import fs from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';

import { CallError, Code } from './status.mjs';

const MAX_DEPTH = 32;
const INT_RE = /^-?\d{1,20}$/;
const NUM_RE = /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const B64URL_RE = /^[A-Za-z0-9_-]*$/;

const INT_RANGE = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n], sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n], uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n], int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n], sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n], fixed64: [0n, 2n ** 64n - 1n],
};
const LONG_TYPES = new Set(['int64', 'sint64', 'sfixed64', 'uint64', 'fixed64']);

/** Loads proto/nanochat/v1/*.proto (services.proto imports them all). */
export function loadRoot(protoDir, includeDirs = ['/usr/include']) {
  const dirs = [protoDir, ...includeDirs];
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const d of dirs) {
      const p = path.join(d, target);
      if (fs.existsSync(p)) return p;
    }
    return target;
  };
  const entry = 'nanochat/v1/services.proto';
  if (!fs.existsSync(path.join(protoDir, entry))) {
    throw new Error(`proto dir ${protoDir}: no ${entry} (pass --proto-dir)`);
  }
  root.loadSync(entry, { keepCase: true });
  root.resolveAll();
  return root;
}

function bad(where, msg) {
  return new CallError(Code.INVALID_ARGUMENT, `${where || 'body'}: ${msg}`, { field: where || 'body' });
}

function isPlainObject(v) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

function camel(name) {
  return name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
}

// field lookup by proto name or lowerCamelCase JSON name, cached per type
const fieldMaps = new WeakMap();
function fieldsOf(type) {
  let m = fieldMaps.get(type);
  if (!m) {
    m = new Map();
    for (const f of type.fieldsArray) {
      m.set(f.name, f);
      if (!m.has(camel(f.name))) m.set(camel(f.name), f);
    }
    fieldMaps.set(type, m);
  }
  return m;
}

function enumValue(en, v, where, query) {
  if (typeof v === 'number' || (query && INT_RE.test(v))) {
    const n = Number(v);
    if (Number.isInteger(n) && Object.values(en.values).includes(n)) return n;
    return bad(where, `${v} is not a value of ${en.name}`);
  }
  if (typeof v !== 'string') return bad(where, `expected a ${en.name} name`);
  if (Object.hasOwn(en.values, v)) return en.values[v];
  // friendly forms: "user" → ROLE_USER, "sft" → PHASE_SFT, "running" → JOB_RUNNING
  const up = v.toUpperCase();
  const hits = Object.keys(en.values).filter((k) => k === up || k.endsWith('_' + up));
  if (hits.length === 1 && /^[A-Z0-9_]{1,64}$/.test(up)) return en.values[hits[0]];
  return bad(where, `unknown ${en.name} value`);
}

function integer(type, v, where) {
  let s;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) return bad(where, `expected an integer (${type})`);
    if (!Number.isSafeInteger(v) && LONG_TYPES.has(type)) {
      return bad(where, 'integer beyond 2^53: send it as a decimal string');
    }
    s = BigInt(v);
  } else if (typeof v === 'string' && INT_RE.test(v)) {
    s = BigInt(v);
  } else {
    return bad(where, `expected an integer (${type})`);
  }
  const [lo, hi] = INT_RANGE[type];
  if (s < lo || s > hi) return bad(where, `out of range for ${type}`);
  return LONG_TYPES.has(type) ? s.toString() : Number(s);
}

function scalar(field, v, where, query) {
  const t = field.type;
  if (field.resolvedType instanceof protobuf.Enum) return enumValue(field.resolvedType, v, where, query);
  switch (t) {
    case 'string':
      if (typeof v !== 'string') return bad(where, 'expected a string');
      return v;
    case 'bool':
      if (typeof v === 'boolean') return v;
      if (query && (v === 'true' || v === '1')) return true;
      if (query && (v === 'false' || v === '0')) return false;
      return bad(where, 'expected true or false');
    case 'double':
    case 'float': {
      let n = v;
      if (typeof v === 'string' && NUM_RE.test(v)) n = Number(v);
      if (typeof n !== 'number' || !Number.isFinite(n)) return bad(where, 'expected a finite number');
      return n;
    }
    case 'bytes':
      if (typeof v !== 'string' || v.length > 64 << 20) return bad(where, 'expected a base64 string');
      if (B64_RE.test(v)) return Buffer.from(v, 'base64');
      if (B64URL_RE.test(v)) return Buffer.from(v, 'base64url');
      return bad(where, 'expected a base64 string');
    default:
      if (INT_RANGE[t]) return integer(t, v, where);
      return bad(where, `unsupported field type ${t}`);
  }
}

function value(field, v, where, query, depth) {
  if (field.resolvedType instanceof protobuf.Type) {
    return message(field.resolvedType, v, where, query, depth + 1);
  }
  return scalar(field, v, where, query);
}

function message(type, obj, where, query, depth) {
  if (depth > MAX_DEPTH) return bad(where, 'nested too deeply');
  if (!isPlainObject(obj)) return bad(where, `expected an object (${type.name})`);
  const out = {};
  const oneofSeen = new Map();
  const names = fieldsOf(type);
  for (const key of Object.keys(obj)) {
    const v = obj[key];
    const f = names.get(key);
    const at = where ? `${where}.${key}` : key;
    if (!f) return bad(at, 'unknown field');
    if (v === null || v === undefined) continue;
    if (Object.hasOwn(out, f.name)) return bad(at, `given twice (as ${f.name} and ${camel(f.name)})`);
    if (f.partOf) {
      const other = oneofSeen.get(f.partOf.name);
      if (other) return bad(at, `only one of ${other} and ${f.name} may be set`);
      oneofSeen.set(f.partOf.name, f.name);
    }
    const fat = where ? `${where}.${f.name}` : f.name;
    let r;
    if (f.map) {
      if (!isPlainObject(v)) return bad(fat, 'expected an object (map)');
      r = Object.create(null);
      for (const k of Object.keys(v)) {
        const kat = `${fat}[${JSON.stringify(k).slice(0, 80)}]`;
        if (f.keyType !== 'string' && !INT_RE.test(k) && f.keyType !== 'bool') return bad(kat, 'bad map key');
        const x = value(f, v[k], kat, query, depth);
        if (x instanceof CallError) return x;
        r[k] = x;
      }
    } else if (f.repeated) {
      if (!Array.isArray(v)) return bad(fat, 'expected an array');
      r = new Array(v.length);
      for (let i = 0; i < v.length; i++) {
        if (v[i] === null || v[i] === undefined) return bad(`${fat}[${i}]`, 'null element');
        const x = value(f, v[i], `${fat}[${i}]`, query, depth);
        if (x instanceof CallError) return x;
        r[i] = x;
      }
    } else {
      r = value(f, v, fat, query, depth);
      if (r instanceof CallError) return r;
    }
    out[f.name] = r;
  }
  return out;
}

/**
 * Checks `obj` (parsed JSON) against message type `type` and returns a plain object protobufjs
 * can encode. Throws CallError(INVALID_ARGUMENT, "<field>: <why>", {field}) on the first problem.
 */
export function toMessage(type, obj) {
  const r = message(type, obj, '', false, 0);
  if (r instanceof CallError) throw r;
  return r;
}

/**
 * Like toMessage for GET query parameters ({name: string}): values are parsed per field type
 * ("true", "42", "PHASE_SFT"/"sft"); repeated and message fields take JSON text ("[1,2]").
 */
export function queryToMessage(type, params) {
  if (!isPlainObject(params)) throw bad('query', 'expected query parameters');
  const obj = {};
  for (const [k, v] of Object.entries(params)) {
    const f = fieldsOf(type).get(k);
    if (f && typeof v === 'string' && (f.repeated || f.map || f.resolvedType instanceof protobuf.Type)) {
      try {
        obj[k] = JSON.parse(v);
      } catch {
        throw bad(f.name, 'expected JSON in the query parameter');
      }
    } else {
      obj[k] = v;
    }
  }
  const r = message(type, obj, '', true, 0);
  if (r instanceof CallError) throw r;
  return r;
}

/** Encodes a plain object from toMessage (the bytes sent to nanochatd). */
export function encode(type, obj) {
  return type.encode(type.fromObject(obj)).finish();
}

function jsonScalar(field, v) {
  if (field.resolvedType instanceof protobuf.Enum) {
    return field.resolvedType.valuesById[v] ?? v;
  }
  if (LONG_TYPES.has(field.type)) {
    const s = typeof v === 'number' ? String(v) : protobuf.util.Long.fromValue(v).toString();
    const n = Number(s);
    return Number.isSafeInteger(n) ? n : s;
  }
  if (field.type === 'bytes') return Buffer.from(v).toString('base64');
  if ((field.type === 'double' || field.type === 'float') && !Number.isFinite(v)) return null;
  return v;
}

function jsonValue(field, v) {
  return field.resolvedType instanceof protobuf.Type ? toJson(field.resolvedType, v) : jsonScalar(field, v);
}

/** A decoded protobufjs message as plain JSON (only fields present on the wire). */
export function toJson(type, msg) {
  const out = {};
  for (const f of type.fieldsArray) {
    if (!Object.hasOwn(msg, f.name)) continue;
    const v = msg[f.name];
    if (f.map) {
      const o = {};
      for (const k of Object.keys(v)) o[k] = jsonValue(f, v[k]);
      out[f.name] = o;
    } else if (f.repeated) {
      out[f.name] = v.map((x) => jsonValue(f, x));
    } else {
      out[f.name] = jsonValue(f, v);
    }
  }
  return out;
}

/** Decodes wire bytes of `type` into JSON. */
export function decodeJson(type, buf) {
  return toJson(type, type.decode(buf));
}
