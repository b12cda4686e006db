// convert.mjs — writes js-tiktoken's ranks as a nanochat-c tokenizer file (core/nc_tokenizer.h):
//   node tests/tiktoken/convert.mjs gpt2|r50k_base|p50k_base|cl100k_base|o200k_base OUT
// The header carries js-tiktoken's own pat_str and "#dialect js" (its RegExp \s set), so our
// encoder can be compared id for id with js-tiktoken; the rank lines are tiktoken's format.
import fs from "fs";
import path from "path";
import { fileURLToPath } from "url";

const here = path.dirname(fileURLToPath(import.meta.url));
const [name, out] = process.argv.slice(2);
if (!name || !out || !/^[a-z0-9_]+$/.test(name)) {
  console.error("usage: node convert.mjs NAME OUT");
  process.exit(2);
}
const mod = await import(path.join(here, "node_modules/js-tiktoken/dist/ranks", name + ".js"));
const ranks = mod.default;
// bpe_ranks: lines "<ignored> <offset> tok tok ..." where the i-th token has rank offset + i
const byRank = [];
for (const line of ranks.bpe_ranks.split("\n")) {
  if (!line) continue;
  const [, offsetStr, ...toks] = line.split(" ");
  const off = Number.parseInt(offsetStr, 10);
  toks.forEach((t, i) => { byRank[off + i] = t; });
}
const lines = ["#nanochat-tokenizer 1", "#pattern " + ranks.pat_str, "#dialect js",
               "# converted from js-tiktoken " + name + " by tests/tiktoken/convert.mjs"];
for (const [text, id] of Object.entries(ranks.special_tokens)) lines.push(`#special ${id} ${text}`);
for (let r = 0; r < byRank.length; r++) {
  if (byRank[r] === undefined) throw new Error(`rank ${r} missing`);
  lines.push(`${byRank[r]} ${r}`);
}
fs.writeFileSync(out, lines.join("\n") + "\n");
