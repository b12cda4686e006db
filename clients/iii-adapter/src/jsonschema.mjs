// jsonschema.mjs — JSON Schema of a message from the RPC table (types, enums, defaults and the
// (limits) of every field), sent as the function's request_format / response_format so the iii
// engine's function listing documents the API. Documentation only: nanochatd enforces limits.
const INT_TYPES = new Set(['int32', 'sint32', 'sfixed32', 'uint32', 'fixed32']);
const LONG_TYPES = new Set(['int64', 'sint64', 'sfixed64', 'uint64', 'fixed64']);
const MAX_DEPTH = 16;

function scalarSchema(table, f) {
  if (f.type === 'string') return { type: 'string' };
  if (f.type === 'bool') return { type: 'boolean' };
  if (f.type === 'double' || f.type === 'float') return { type: 'number' };
  if (f.type === 'bytes') return { type: 'string', contentEncoding: 'base64' };
  if (INT_TYPES.has(f.type)) return { type: 'integer' };
  if (LONG_TYPES.has(f.type)) return { type: ['integer', 'string'] };
  const en = table.enums[f.type];
  if (en) return { type: 'string', enum: Object.keys(en) };
  return null;
}

function applyLimits(s, f, repeated) {
  const l = f.limits || {};
  const item = repeated ? s.items : s;
  if (l.min !== undefined) item.minimum = l.min;
  if (l.max !== undefined) item.maximum = l.max;
  if (l.max_len !== undefined) item.maxLength = l.max_len;
  if (l.ident) item.pattern = '^[A-Za-z0-9_.-]+$';
  if (l.nonempty && !repeated) item.minLength = 1;
  if (repeated) {
    if (l.min_count !== undefined) s.minItems = l.min_count;
    if (l.max_count !== undefined) s.maxItems = l.max_count;
    if (l.nonempty) s.minItems = Math.max(1, s.minItems || 0);
  }
}

function defaultOf(f) {
  const d = f.default;
  if (f.type === 'bool') return d === 'true';
  if (INT_TYPES.has(f.type) || LONG_TYPES.has(f.type) || f.type === 'double' || f.type === 'float') {
    const n = Number(d);
    return Number.isFinite(n) ? n : d;
  }
  return d;
}

function isMapEntry(table, typeName) {
  const m = table.messages[typeName];
  return typeName.endsWith('Entry') && m && m.fields.length === 2 &&
    m.fields[0].name === 'key' && m.fields[1].name === 'value';
}

/** JSON Schema for message `typeName` of the table ({} for an unknown type). */
export function messageSchema(table, typeName, depth = 0) {
  const m = table.messages[typeName];
  if (!m || depth > MAX_DEPTH) return {};
  const props = {};
  for (const f of m.fields) {
    let s;
    if (f.repeated && isMapEntry(table, f.type)) {
      const vf = table.messages[f.type].fields[1];
      s = { type: 'object', additionalProperties: scalarSchema(table, vf) ?? messageSchema(table, vf.type, depth + 1) };
    } else {
      const one = scalarSchema(table, f) ?? messageSchema(table, f.type, depth + 1);
      s = f.repeated ? { type: 'array', items: one } : one;
      applyLimits(s, f, f.repeated);
    }
    if (f.default !== undefined && !f.repeated) s.default = defaultOf(f);
    if (f.doc) s.description = f.doc;
    props[f.name] = s;
  }
  const out = { type: 'object', properties: props, additionalProperties: false };
  if (m.doc) out.description = m.doc;
  return out;
}
