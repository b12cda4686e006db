#!/usr/bin/env python3
"""Pretraining through the job (nanochatd -> Train.Base -> nanochat-train child -> events in
LMDB -> a Train.Status subscriber) against the same training loop called in-process
(build/bench/bench_base_run: core/nc_base_train.h with no job, no events, no server), same
corpus, tokenizer and options, alternating A/B in the same run.

  /usr/bin/python3 bench/bench_train_job.py [--build build] [--rounds 3] [--steps 30]
        [--depth 4] [--head-dim 64] [--seq 256] [--device-batch 8] [--total-batch 4096]
        [--vocab 4096] [--threads 2] [--corpus DIR]

Measures per side: training tokens/s (tokens / sum of step times: the job's final
"tokens_per_sec" metric, and the core run's), and end-to-end tokens/s (tokens / wall time from
the start request to the end: the job's Train.Base call until its final STATE event, against the
reference process's whole life). Overhead = 1 - job / core, from the medians over rounds and
as the median of the per-round (back-to-back) ratios, and between each side's best round (the
least disturbed sample, as bench_train.py reports); plus the CPU nanochatd itself used while
the job ran (event decoding, LMDB commits, the subscriber's stream) as a share of the job's
cores x wall time: the part of the overhead that does not drown in a shared machine's noise.
Corpus: --corpus DIR (e.g. <data-dir>/corpus from scripts/build-corpus), else tinyshakespeare
(../shared/data) as documents of ~800 characters. Prints one JSON document.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def shakespeare_corpus(d):
    import nc_models   # tests/integration (on sys.path from main())
    nc_models.write_paragraph_dataset(d)
    return [nc_models.SHAKESPEARE]


def corpus_texts(d, limit=30 << 20):
    """the train split's text as files for nc_tok_train (--docs line over JSON lines' texts)"""
    out = os.path.join(d, "..", "tok_input.txt")
    n = 0
    with open(out, "w") as w:
        for root, _, files in sorted(os.walk(d)):
            for fn in sorted(files):
                if not fn.endswith(".jsonl") or "val" in fn or "/val" in root:
                    continue
                with open(os.path.join(root, fn)) as f:
                    for line in f:
                        t = json.loads(line)["text"]
                        w.write(t.replace("\n", " ") + "\n")
                        n += len(t)
                        if n > limit:
                            return out
    return out


def run_core(a, corpus, tok, ckdir):
    shutil.rmtree(ckdir, ignore_errors=True)
    cmd = [os.path.join(a.build, "bench", "bench_base_run"), "--corpus", corpus, "--tokenizer", tok,
           "--ckpt-dir", ckdir, "--depth", str(a.depth), "--head-dim", str(a.head_dim), "--seq", str(a.seq),
           "--window", "L", "--device-batch", str(a.device_batch), "--total-batch", str(a.total_batch),
           "--steps", str(a.steps), "--eval-tokens", str(a.device_batch * a.seq), "--threads", str(a.threads)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    r = json.loads(p.stdout)
    r["process_wall_s"] = wall
    r["e2e_tokens_per_sec"] = r["tokens"] / wall
    return r


def proc_cpu_s(pid):
    """utime + stime of a process (all threads), seconds"""
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def run_job(a, srv, n):
    from nanochat.v1 import train_pb2
    req = train_pb2.TrainBaseRequest(
        depth=a.depth, head_dim=a.head_dim, max_seq_len=a.seq, window_pattern="L",
        device_batch_size=a.device_batch, total_batch_size=a.total_batch, num_iterations=a.steps,
        eval_every=-1, eval_tokens=a.device_batch * a.seq, threads=a.threads, model_tag="bench%d" % n,
        dataset=train_pb2.DatasetRef(name="bench"))
    t0 = time.perf_counter()
    c0 = proc_cpu_s(srv.proc.pid)
    ref = srv.stub("Train").Base(req, timeout=30)
    final, metrics, progress = None, {}, 0
    for e in srv.stub("Train").Status(train_pb2.TrainStatusRequest(job_id=ref.job_id), timeout=3600):
        if e.kind == train_pb2.EVENT_PROGRESS:
            progress += 1
        if e.kind == train_pb2.EVENT_EVAL and e.message == "final":
            metrics = dict(e.metrics)
        if e.kind == train_pb2.EVENT_STATE and e.state not in (train_pb2.JOB_QUEUED, train_pb2.JOB_RUNNING):
            final = e.state
    wall = time.perf_counter() - t0
    server_cpu = proc_cpu_s(srv.proc.pid) - c0
    if final != train_pb2.JOB_SUCCEEDED:
        raise RuntimeError("job ended %s" % final)
    tokens = a.steps * a.total_batch
    return {"impl": "job", "steps": a.steps, "tokens": tokens, "tokens_per_sec": metrics["tokens_per_sec"],
            "final_loss": metrics["train_loss"], "wall_s": wall, "e2e_tokens_per_sec": tokens / wall,
            "progress_events": progress, "server_cpu_s": server_cpu,
            "server_cpu_share": server_cpu / (wall * a.threads)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--device-batch", type=int, default=8)
    ap.add_argument("--total-batch", type=int, default=4096)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--corpus", help="corpus directory (default: tinyshakespeare documents)")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    os.environ.setdefault("NC_BUILD_DIR", a.build)
    sys.path[:0] = [os.path.join(a.build, "gen", "python"), os.path.join(ROOT, "tests", "integration")]
    from nc_harness import Server

    tmp = tempfile.mkdtemp(prefix="nc-bench-job-")
    try:
        srv = Server()
        data = srv.data_dir
        corpus = os.path.join(data, "datasets", "bench")
        if a.corpus:
            os.makedirs(os.path.dirname(corpus), exist_ok=True)
            os.symlink(os.path.abspath(a.corpus), corpus)
            tok_in = [corpus_texts(os.path.abspath(a.corpus))]
            docs = "line"
        else:
            tok_in = shakespeare_corpus(corpus)
            docs = "blank"
        tok = os.path.join(data, "tokenizer", "tokenizer.txt")
        os.makedirs(os.path.dirname(tok), exist_ok=True)
        subprocess.run([os.path.join(a.build, "bin", "nc_tok_train"), "-o", tok, "--vocab-size", str(a.vocab),
                        "--docs", docs, "--quiet"] + tok_in, check=True, stdout=subprocess.DEVNULL)
        srv.start()
        rounds = []
        try:
            for n in range(a.rounds):
                pair = {}
                order = ("core", "job") if n % 2 == 0 else ("job", "core")
                for side in order:
                    pair[side] = run_core(a, corpus, tok, os.path.join(tmp, "ck")) if side == "core" \
                        else run_job(a, srv, n)
                rounds.append(pair)
        finally:
            srv.close()
        med = {}
        for side in ("core", "job"):
            for k in ("tokens_per_sec", "e2e_tokens_per_sec"):
                med["%s_%s" % (side, k)] = statistics.median(r[side][k] for r in rounds)
        ratio = {k: statistics.median(r["job"][k] / r["core"][k] for r in rounds)
                 for k in ("tokens_per_sec", "e2e_tokens_per_sec")}
        out = {
            "config": {"depth": a.depth, "head_dim": a.head_dim, "seq": a.seq, "device_batch": a.device_batch,
                       "total_batch": a.total_batch, "steps": a.steps, "vocab": a.vocab, "threads": a.threads,
                       "corpus": a.corpus or "tinyshakespeare"},
            "rounds": rounds,
            "median": med,
            "overhead_train": 1 - med["job_tokens_per_sec"] / med["core_tokens_per_sec"],
            "overhead_e2e": 1 - med["job_e2e_tokens_per_sec"] / med["core_e2e_tokens_per_sec"],
            "paired_overhead_train": 1 - ratio["tokens_per_sec"],
            "paired_overhead_e2e": 1 - ratio["e2e_tokens_per_sec"],
            "best": {side: max(r[side]["tokens_per_sec"] for r in rounds) for side in ("core", "job")},
            "overhead_best": 1 - max(r["job"]["tokens_per_sec"] for r in rounds)
                             / max(r["core"]["tokens_per_sec"] for r in rounds),
            "server_cpu_share": statistics.median(r["job"]["server_cpu_share"] for r in rounds),
            "loadavg": os.getloadavg(),
        }
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
