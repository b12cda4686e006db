// ref.mjs — js-tiktoken as the reference encoder (tests and bench/):
//   node tests/tiktoken/ref.mjs encode NAME RECORDS OUT [--special]   one line of ids per record
//   node tests/tiktoken/ref.mjs bench NAME RECORDS [--repeat R]       JSON: MB/s and an id hash
// --pattern P replaces the encoding's pat_str (a JavaScript RegExp source, flags "gu").
// RECORDS: "<byte length>\n<bytes>\n" repeated (core/bin/nc_tok.c). The hash is FNV-1a 32 over
// each id + 1 and a 0 after every record, the same as `nc_tok bench`.
import fs from "fs";
import path from "path";
import { fileURLToPath } from "url";
import { Tiktoken } from "js-tiktoken/lite";

const here = path.dirname(fileURLToPath(import.meta.url));
const [cmd, name, input, out] = process.argv.slice(2);
const args = process.argv.slice(2);
const ranks = (await import(path.join(here, "node_modules/js-tiktoken/dist/ranks", name + ".js"))).default;
const pi = args.indexOf("--pattern");
const enc = new Tiktoken(pi >= 0 ? { ...ranks, pat_str: args[pi + 1] } : ranks);

function readRecords(file) {
  const buf = fs.readFileSync(file);
  const recs = [];
  let pos = 0;
  while (pos < buf.length) {
    const nl = buf.indexOf(10, pos);
    const len = Number.parseInt(buf.toString("latin1", pos, nl), 10);
    recs.push(buf.toString("utf8", nl + 1, nl + 1 + len));
    pos = nl + 1 + len + 1;
  }
  return recs;
}

const recs = readRecords(input);
if (cmd === "encode") {
  const special = args.includes("--special") ? "all" : [];
  const lines = recs.map((t) => enc.encode(t, special, special === "all" ? [] : []).join(" "));
  fs.writeFileSync(out, lines.join("\n") + (lines.length ? "\n" : ""));
} else if (cmd === "bench") {
  const ri = args.indexOf("--repeat");
  const repeat = ri >= 0 ? Number.parseInt(args[ri + 1], 10) : 1;
  let bytes = 0;
  for (const t of recs) bytes += Buffer.byteLength(t, "utf8");
  let best = Infinity, bestCpu = Infinity, all = null;
  for (let r = 0; r < repeat; r++) {
    const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
    const res = recs.map((t) => enc.encode(t));
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    const cu = process.cpuUsage(c0), dc = (cu.user + cu.system) / 1e6;
    if (dt < best) best = dt;
    if (dc < bestCpu) bestCpu = dc;
    all = res;
  }
  let h = 2166136261 >>> 0, tokens = 0;
  for (const ids of all) {
    for (const id of ids) h = Math.imul(h ^ (id + 1), 16777619) >>> 0;
    h = Math.imul(h ^ 0, 16777619) >>> 0;
    tokens += ids.length;
  }
  console.log(JSON.stringify({ impl: "js-tiktoken@1.0.21", node: process.version, records: recs.length,
    bytes, tokens, seconds: best, mb_per_s: bytes / best / 1e6, cpu_seconds: bestCpu, hash: h }));
} else {
  console.error("usage: node ref.mjs encode|bench NAME RECORDS [OUT]");
  process.exit(2);
}
