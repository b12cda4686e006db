// json.mjs — the stand-in engine's JSON nesting limit (the real engine parses with serde_json).
// serde_json's default recursion limit: the engine cannot parse JSON nested deeper than this
export const MAX_JSON_DEPTH = 128;

/** Nesting depth of JSON text (brackets outside strings). */
export function jsonDepth(text) {
  let d = 0;
  let max = 0;
  let inStr = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inStr) {
      if (c === 92) i++; // backslash
      else if (c === 34) inStr = false;
    } else if (c === 34) inStr = true;
    else if (c === 91 || c === 123) max = Math.max(max, ++d);
    else if (c === 93 || c === 125) d--;
  }
  return max;
}
