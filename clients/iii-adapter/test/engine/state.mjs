// state.mjs — the stand-in engine's iii-state built-ins (specs/iii.md §2.4), in memory:
// state::set → {old_value, new_value}; state::get → value or null; state::delete → the deleted
// value; state::list → array of values; state::list_groups → the scopes; state::update with ops
// set / merge / increment / decrement / append / remove on a top-level path.

function need(cond, msg) {
  if (!cond) {
    const e = new Error(msg);
    e.code = 'invalid_payload';
    throw e;
  }
}

function key(p) {
  need(p && typeof p === 'object', 'payload must be an object');
  need(typeof p.scope === 'string' && p.scope, 'scope: expected a non-empty string');
  need(typeof p.key === 'string' && p.key, 'key: expected a non-empty string');
  return [p.scope, p.key];
}

export class StateStore {
  constructor() {
    this.scopes = new Map();
  }

  scope(name) {
    let m = this.scopes.get(name);
    if (!m) {
      m = new Map();
      this.scopes.set(name, m);
    }
    return m;
  }

  /** Returns {function_id: handler(payload)} for the built-in functions. */
  functions() {
    return {
      'state::set': (p) => {
        const [s, k] = key(p);
        const m = this.scope(s);
        const old = m.has(k) ? m.get(k) : null;
        const val = p.value === undefined ? null : structuredClone(p.value);
        m.set(k, val);
        return { old_value: old, new_value: val };
      },
      'state::get': (p) => {
        const [s, k] = key(p);
        const v = this.scopes.get(s)?.get(k);
        return v === undefined ? null : v;
      },
      'state::delete': (p) => {
        const [s, k] = key(p);
        const m = this.scopes.get(s);
        const v = m?.get(k);
        m?.delete(k);
        return v === undefined ? null : v;
      },
      'state::list': (p) => {
        need(p && typeof p.scope === 'string', 'scope: expected a string');
        return [...(this.scopes.get(p.scope)?.values() ?? [])];
      },
      'state::list_groups': () => [...this.scopes.keys()],
      'state::update': (p) => {
        const [s, k] = key(p);
        need(Array.isArray(p.ops), 'ops: expected an array');
        const m = this.scope(s);
        const old = m.has(k) ? m.get(k) : null;
        const v = old && typeof old === 'object' ? structuredClone(old) : {};
        for (const op of p.ops) {
          need(op && typeof op.path === 'string', 'ops[].path: expected a string');
          const cur = v[op.path];
          switch (op.type) {
            case 'set': v[op.path] = op.value; break;
            case 'merge': v[op.path] = { ...(cur || {}), ...(op.value || {}) }; break;
            case 'increment': v[op.path] = (cur || 0) + (op.by ?? 1); break;
            case 'decrement': v[op.path] = (cur || 0) - (op.by ?? 1); break;
            case 'append': v[op.path] = [...(Array.isArray(cur) ? cur : []), op.value]; break;
            case 'remove': delete v[op.path]; break;
            default: need(false, `ops[].type: unknown ${op.type}`);
          }
        }
        m.set(k, v);
        return { old_value: old, new_value: v };
      },
    };
  }
}
