#!/usr/bin/python3
"""bench_tokenizer.py — tokenizer benchmark (by hand; prints JSON):

  1. encode throughput with the cl100k_base ranks on ~50 MB of Debian documentation
     (bench/tok_corpus.py), nanochat-c with 1 and 2 threads vs js-tiktoken@1.0.21 on node in the
     same run; the id streams must be identical (same token count and FNV-1a hash);
  2. BPE training to vocab 32768 on ~100 MB of the same text in documents of <= 10,000 code
     points (nanochat's doc cap), 2 threads (and 1 thread with --train-threads 1,2).

    cmake --build build --target nc_tok nc_tok_train && scripts/node-deps
    /usr/bin/python3 bench/bench_tokenizer.py [--encode-mb 50] [--train-mb 100] [--skip-train]
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import tok_corpus  # noqa: E402


def run_json(cmd):
    p = subprocess.run(cmd, capture_output=True, check=True)
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--encode-mb", type=float, default=50)
    ap.add_argument("--train-mb", type=float, default=100)
    ap.add_argument("--train-threads", default="2")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    cache = os.path.join(a.build, "tokcorpus")
    docs, train = tok_corpus.build(cache)
    nc_tok = os.path.join(a.build, "bin", "nc_tok")
    nc_train = os.path.join(a.build, "bin", "nc_tok_train")
    tk = os.path.join(SRC, "tests", "tiktoken")
    out = {"machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()[0]}}

    enc_rec = os.path.join(cache, "encode_%dmb.rec" % a.encode_mb)
    nbytes = tok_corpus.head_records(docs, enc_rec, int(a.encode_mb * 1e6))
    cl100k = os.path.join(cache, "cl100k_base.txt")
    if not os.path.exists(cl100k):
        subprocess.run(["node", os.path.join(tk, "convert.mjs"), "cl100k_base", cl100k], check=True)
    js = run_json(["node", os.path.join(tk, "ref.mjs"), "bench", "cl100k_base", enc_rec, "--repeat", "1"])
    c1 = run_json([nc_tok, "bench", cl100k, enc_rec, "--threads", "1", "--repeat", str(a.repeat)])
    c2 = run_json([nc_tok, "bench", cl100k, enc_rec, "--threads", "2", "--repeat", str(a.repeat)])
    same = js["hash"] == c1["hash"] == c2["hash"] and js["tokens"] == c1["tokens"] == c2["tokens"]
    out["encode"] = {
        "text": "Debian docs (anarchism FAQ, Python docs, perl pods, kernel docs, WordNet, fortunes, "
                "Webster 1913) in documents of <= 65,536 code points cut at blank lines, sources round robin",
        "bytes": nbytes, "records": c1["records"], "tokens": c1["tokens"], "ids_identical": same,
        "js_tiktoken_mb_s": round(js["mb_per_s"], 2), "nanochat_c_1t_mb_s": round(c1["mb_per_s"], 2),
        "nanochat_c_2t_mb_s": round(c2["mb_per_s"], 2),
        "speedup_1t": round(c1["mb_per_s"] / js["mb_per_s"], 1), "speedup_2t": round(c2["mb_per_s"] / js["mb_per_s"], 1),
        # CPU time (process, all threads): less sensitive to other load on a shared machine
        "js_tiktoken_cpu_s": round(js["cpu_seconds"], 2), "nanochat_c_1t_cpu_s": round(c1["cpu_seconds"], 3),
        "cpu_speedup_1t": round(js["cpu_seconds"] / c1["cpu_seconds"], 1),
        "js": js, "c_1t": c1, "c_2t": c2,
    }
    if not a.skip_train:
        tr_rec = os.path.join(cache, "train_%dmb.rec" % a.train_mb)
        tbytes = tok_corpus.head_records(train, tr_rec, int(a.train_mb * 1e6))
        runs = []
        for th in a.train_threads.split(","):
            outp = os.path.join(cache, "bench_tok_%s.txt" % th)
            t0 = time.time()
            st = run_json([nc_train, "-o", outp, "--vocab-size", "32768", "--docs", "record", "--threads", th,
                           "--quiet", tr_rec])
            st["wall_seconds"] = round(time.time() - t0, 2)
            runs.append(st)
        out["train"] = {"text": "the same Debian text, documents of <= 10,000 code points", "bytes": tbytes,
                        "vocab_size": 32768, "target_seconds": 120, "runs": runs}
    out["machine"]["loadavg_end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
