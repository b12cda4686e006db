#!/usr/bin/python3
"""tok_corpus.py — builds the tokenizer benchmark corpus from Debian packages (specs/data.md §2).

    /usr/bin/python3 bench/tok_corpus.py [--cache DIR]     (default build/tokcorpus)

`apt-get download` fetches the packages (no install, no root needed for that), `dpkg-deb -x`
unpacks them under DIR/root, and the text is written as records files ("<len>\\n<bytes>\\n"):

  DIR/docs.rec     the source files cut at blank lines into documents of at most 65,536
                   code points, sources interleaved round-robin (anarchism FAQ, Python docs,
                   perl pods, kernel docs, WordNet glosses, fortunes, Webster 1913) — the
                   encode benchmark takes its first ~50 MB
  DIR/train.rec    the same text cut at blank lines into documents of at most 10,000 code
                   points (nanochat's --doc-cap), so the whole text counts for training

Nothing here is committed or redistributed; the cache lives in the (gitignored) build dir.
"""
import argparse
import glob
import gzip
import os
import subprocess
import sys

PACKAGES = ["anarchism", "python3.11-doc", "perl-doc", "linux-doc-6.1", "wordnet-base", "fortunes",
            "fortunes-min", "dict-gcide"]


def sources(root):
    """(name, [paths]) per package, in a fixed order."""
    def g(pat):
        return sorted(glob.glob(os.path.join(root, pat), recursive=True))
    kernel = [p for p in g("usr/share/doc/linux-doc-6.1/Documentation/**/*")
              if os.path.isfile(p) and "/translations/" not in p and p.endswith((".rst", ".txt", ".rst.gz", ".txt.gz"))]
    return [
        ("anarchism", g("usr/share/doc/anarchism/markdown/*.md") + g("usr/share/doc/anarchism/markdown/*.md.gz")),
        ("python-doc", g("usr/share/doc/python3.11/html/_sources/**/*.txt")),
        ("perl-doc", g("usr/share/perl/5.36.0/pod/*.pod")),
        ("linux-doc", kernel),
        ("wordnet", g("usr/share/wordnet/data.*")),
        ("fortunes", [p for p in g("usr/share/games/fortunes/*") if os.path.isfile(p) and not p.endswith((".dat", ".u8"))]),
        ("gcide", g("usr/share/dictd/gcide.dict.dz")),
    ]


def read_text(path):
    op = gzip.open if path.endswith((".gz", ".dz")) else open
    with op(path, "rb") as f:
        data = f.read()
    text = data.decode("utf-8", "replace")
    if "wordnet/data." in path:  # keep the glosses: "... | gloss; "example""
        text = "\n".join(l.split(" | ", 1)[1] for l in text.splitlines() if " | " in l)
    return split_docs(text, 65536)


def split_docs(text, cap=10000):
    out, cur = [], ""
    for para in text.split("\n\n"):
        para += "\n\n"
        while len(para) > cap:
            if cur:
                out.append(cur)
                cur = ""
            out.append(para[:cap])
            para = para[cap:]
        if len(cur) + len(para) > cap:
            out.append(cur)
            cur = ""
        cur += para
    if cur:
        out.append(cur)
    return out


def write_rec(f, text):
    b = text.encode("utf-8")
    f.write(b"%d\n" % len(b) + b + b"\n")


def build(cache):
    debs, root = os.path.join(cache, "debs"), os.path.join(cache, "root")
    docs_path, train_path = os.path.join(cache, "docs.rec"), os.path.join(cache, "train.rec")
    if os.path.exists(docs_path) and os.path.exists(train_path):
        return docs_path, train_path
    os.makedirs(debs, exist_ok=True)
    os.makedirs(root, exist_ok=True)
    have = os.listdir(debs)
    need = [p for p in PACKAGES if not any(f.startswith(p + "_") for f in have)]
    if need:
        subprocess.run(["apt-get", "download"] + need, cwd=debs, check=True)
    for d in sorted(os.listdir(debs)):
        if d.endswith(".deb"):
            subprocess.run(["dpkg-deb", "-x", os.path.join(debs, d), root], check=True)
    per = []
    for name, paths in sources(root):
        texts = []
        for p in paths:
            texts += [t for t in read_text(p) if t.strip()]
        print("tok_corpus: %-10s %5d docs %6.1f MB" % (name, len(texts), sum(len(t) for t in texts) / 1e6), file=sys.stderr)
        per.append(texts)
    order = []
    i = 0
    while any(i < len(t) for t in per):  # round robin over the sources
        order += [t[i] for t in per if i < len(t)]
        i += 1
    with open(docs_path + ".tmp", "wb") as f:
        for t in order:
            write_rec(f, t)
    with open(train_path + ".tmp", "wb") as f:
        for t in order:
            for d in split_docs(t, 10000):
                write_rec(f, d)
    os.replace(docs_path + ".tmp", docs_path)
    os.replace(train_path + ".tmp", train_path)
    return docs_path, train_path


def head_records(src, dst, max_bytes):
    """Copies the first records of src up to max_bytes of text into dst; returns bytes."""
    total = 0
    with open(src, "rb") as f, open(dst, "wb") as o:
        while total < max_bytes:
            line = f.readline()
            if not line:
                break
            n = int(line)
            data = f.read(n + 1)
            o.write(line + data)
            total += n
    return total


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=os.path.join(os.path.dirname(__file__), "..", "build", "tokcorpus"))
    a = ap.parse_args()
    print(build(a.cache))
