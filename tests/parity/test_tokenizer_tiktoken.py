"""Cross-check of the C tokenizer with js-tiktoken@1.0.21 (node): the gpt2 (r50k pattern) and
cl100k_base ranks, converted by tests/tiktoken/convert.mjs, must give identical ids on
tinyshakespeare, a Debian/shared-data sample (dialogue JSON, math, exam questions, licenses,
Python code) and generated Unicode edge cases; nanochat's own pattern is compared with the
JavaScript RegExp engine too. Decoding is compared with Python's errors="replace".

Runs `build/bin/nc_tok` (the C encoder behind a small CLI, no bindings needed) and
`node tests/tiktoken/ref.mjs`. node_modules comes from scripts/node-deps; when it is missing
these tests FAIL (they never skip).
"""
import base64
import os
import random
import subprocess
import tempfile
import unittest

import tok_corpus

SRC = os.environ.get("NC_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
BUILD = os.environ.get("NC_BUILD_DIR", os.path.join(SRC, "build"))
NC_TOK = os.path.join(BUILD, "bin", "nc_tok")
TIKTOKEN_DIR = os.path.join(SRC, "tests", "tiktoken")
CACHE = os.path.join(BUILD, "tok_parity")

# nanochat's split pattern (core/nc_tokenizer.h) ...
NANOCHAT = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*"""
            r"""|\s*[\r\n]|\s+(?!\S)|\s+""")
# ... as a JavaScript RegExp: no possessive quantifiers (here they never need to backtrack, so
# plain ones match the same), no (?i:) (spelled out, with U+017F that folds to s like in Rust
# and PCRE2).
NANOCHAT_JS = (r"""'(?:[sdmtSDMTſ]|ll|lL|Ll|LL|ve|vE|Ve|VE|re|rE|Re|RE)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,2}"""
               r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+""")


def node_ready():
    if not os.path.isdir(os.path.join(TIKTOKEN_DIR, "node_modules", "js-tiktoken")):
        raise AssertionError("tests/tiktoken/node_modules is missing: run scripts/node-deps")


def converted(name):
    """Path of js-tiktoken's `name` ranks in our format (converted once per build dir)."""
    node_ready()
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, name + ".txt")
    if not os.path.exists(path):
        tmp = path + ".tmp%d" % os.getpid()
        subprocess.run(["node", os.path.join(TIKTOKEN_DIR, "convert.mjs"), name, tmp], check=True, timeout=120)
        os.replace(tmp, path)
    return path


def run(cmd, timeout=300):
    p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (cmd[:3], p.returncode, p.stderr.decode("utf-8", "replace")))
    return p


class Parity(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="nc-tokparity-")

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def compare(self, name, texts, special=False, pattern=None, js_pattern=None, dialect=None):
        """Encodes `texts` with js-tiktoken and with nc_tok; asserts equal ids per text."""
        rec = self.path("in.rec")
        tok_corpus.write_records(rec, texts)
        js_out, c_out = self.path("js.ids"), self.path("c.ids")
        js_cmd = ["node", os.path.join(TIKTOKEN_DIR, "ref.mjs"), "encode", name, rec, js_out]
        c_cmd = [NC_TOK, "encode", converted(name), rec, c_out]
        if special:
            js_cmd.append("--special")
            c_cmd.append("--special")
        if js_pattern:
            js_cmd += ["--pattern", js_pattern]
        if pattern:
            c_cmd += ["--pattern", pattern]
        if dialect:
            c_cmd += ["--dialect", dialect]
        run(js_cmd)
        run(c_cmd)
        with open(js_out) as f:
            want = f.read().split("\n")
        with open(c_out) as f:
            got = f.read().split("\n")
        self.assertEqual(len(got), len(want))
        bad = [i for i in range(len(texts)) if got[i] != want[i]]
        if bad:
            i = bad[0]
            self.fail("%s: %d of %d texts differ; first #%d %r\n js: %s\n  c: %s" % (
                name, len(bad), len(texts), i, texts[i][:200], want[i][:300], got[i][:300]))
        return sum(len(w.split()) for w in want)

    def test_known_vectors(self):
        rec, out = self.path("hello.rec"), self.path("hello.ids")
        tok_corpus.write_records(rec, ["Hello world, this is a test."])
        for name, ids in (("gpt2", "15496 995 11 428 318 257 1332 13"), ("cl100k_base", "9906 1917 11 420 374 264 1296 13")):
            run([NC_TOK, "encode", converted(name), rec, out])
            with open(out) as f:
                self.assertEqual(f.read().strip(), ids)

    def test_gpt2_corpus(self):
        texts = tok_corpus.paragraphs(tok_corpus.shakespeare()) + tok_corpus.debian_sample(150_000)
        n = self.compare("gpt2", texts)
        self.assertGreater(n, 500_000)

    def test_cl100k_corpus(self):
        sh = tok_corpus.shakespeare()
        texts = [sh] + tok_corpus.debian_sample(250_000)  # Shakespeare as one 1.1 MB text
        n = self.compare("cl100k_base", texts)
        self.assertGreater(n, 500_000)

    def test_unicode_edge_cases(self):
        cases = tok_corpus.unicode_cases()
        for name in ("gpt2", "cl100k_base"):
            self.compare(name, cases)

    def test_specials_when_allowed(self):
        texts = ["a<|endoftext|>b", "<|endoftext|><|endoftext|>", "x <|fim_prefix|>y<|fim_middle|>z<|fim_suffix|>",
                 "<|endofprompt|>\n", "<|endoftext", "no specials here"]
        self.compare("cl100k_base", texts, special=True)
        self.compare("gpt2", texts, special=True)

    def test_nanochat_pattern_against_js_regexp(self):
        # our PCRE2 run of nanochat's pattern (with JS's \s set) vs node's RegExp engine
        texts = tok_corpus.paragraphs(tok_corpus.shakespeare(), 400_000) + tok_corpus.debian_sample(100_000) \
            + tok_corpus.unicode_cases(seed=99)
        self.compare("cl100k_base", texts, pattern=NANOCHAT, js_pattern=NANOCHAT_JS, dialect="js")

    def _ranks(self, name):
        toks = []
        with open(converted(name), "rb") as f:
            for line in f:
                if line.startswith(b"#") or not line.strip():
                    continue
                b, r = line.split()
                assert int(r) == len(toks)
                toks.append(base64.b64decode(b))
        return toks

    def test_decode_matches_python_replace(self):
        toks = self._ranks("cl100k_base")
        r = random.Random(5)
        seqs = []
        for i in range(400):
            n = r.randint(0, 40)
            if i % 3 == 0:  # byte tokens only: lots of broken sequences
                seqs.append([r.randrange(256) for _ in range(n)])
            else:
                seqs.append([r.randrange(len(toks)) for _ in range(n)])
        ids_path, out = self.path("ids.txt"), self.path("dec.rec")
        with open(ids_path, "w") as f:
            f.write("\n".join(" ".join(map(str, s)) for s in seqs) + "\n")
        for mode in ("decode", "stream"):
            run([NC_TOK, mode, converted("cl100k_base"), ids_path, out])
            got = read_records(out)
            self.assertEqual(len(got), len(seqs))
            for s, g in zip(seqs, got):
                want = b"".join(toks[i] for i in s).decode("utf-8", "replace").encode("utf-8")
                self.assertEqual(g, want, (mode, s))
        run([NC_TOK, "decode", converted("cl100k_base"), ids_path, out, "--raw"])
        for s, g in zip(seqs, read_records(out)):
            self.assertEqual(g, b"".join(toks[i] for i in s))

    def test_bad_ids_are_refused(self):
        ids_path, out = self.path("ids.txt"), self.path("dec.rec")
        for bad in ("100256", "-1", "100277", "99999999"):
            with open(ids_path, "w") as f:
                f.write("1 2 %s\n" % bad)
            p = subprocess.run([NC_TOK, "decode", converted("cl100k_base"), ids_path, out], capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 1, bad)


def read_records(path):
    with open(path, "rb") as f:
        data = f.read()
    out, pos = [], 0
    while pos < len(data):
        nl = data.index(b"\n", pos)
        n = int(data[pos:nl])
        out.append(data[nl + 1:nl + 1 + n])
        pos = nl + 1 + n + 1
    return out


if __name__ == "__main__":
    unittest.main()
