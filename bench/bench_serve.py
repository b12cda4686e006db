#!/usr/bin/env python3
"""Serving throughput: aggregate tok/s of 1/4/16 concurrent Chat.Stream calls through nanochatd,
against the same engine driven in-process (build/bench/bench_serve_engine: same checkpoint,
tokenizer, prompts and engine settings) and against the PyTorch 1.13 reference (nanochat's
serving model: one KV-cache greedy generation at a time per worker, as chat_web's worker pool
with one model), all in the same run.

  /usr/bin/python3 bench/bench_serve.py [--build build] [--depths 4,8] [--threads 2]
                                        [--streams 1,4,16] [--gen 64] [--reps 3] [--quick]

Per depth: a random checkpoint (nanochat's depth rule, head_dim 128, sequence_len 2048, SSSL,
vocab 32768 from a synthetic byte-level BPE tokenizer written here) under a temp data dir;
chat prompts of ~90 tokens (one per stream); greedy, tools off, max_tokens = gen.
  engine:  bench_serve_engine submits the S requests at once; aggregate = tokens / (first submit
           → last token).
  server:  nanochatd --model sft/dD --slots 16 (engine weights auto, --engine-threads T);
           S client threads (one channel) start Chat.Stream together; aggregate = tokens /
           (start → last ChatDone). Also Chat.Complete (unary: no streaming) for S = 1.
  torch:   S requests served one after another (prefill + gen decode steps each); aggregate =
           S·gen / total time (independent of S: nanochat has no continuous batching).
Runs alternate engine / server / torch rep by rep (this machine is shared; medians reported).
Environment: OMP_WAIT_POLICY=PASSIVE and OMP_NUM_THREADS=T for every side (bench_env.tuned_env);
PyTorch also gets tcmalloc. The Python client runs on the same machine as the server and takes
CPU from it: "overhead" below is an upper bound of what gRPC streaming costs.
Prints one JSON document.
"""
import argparse
import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench_env import tuned_env  # noqa: E402

SPECIALS = ["<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>",
            "<|python_start|>", "<|python_end|>", "<|output_start|>", "<|output_end|>"]
WORDS = ["the", "and", "to", "of", "a", "in", "that", "is", "was", "he", "for", "it", "with", "as", "his",
         "on", "be", "at", "by", "i", "this", "had", "not", "are", "but", "from", "or", "have", "an", "they"]


def write_tokenizer(path, vocab=32768):
    """256 byte ranks, then printable 2-byte pairs, lowercase triples, 'a'+triples, then the nine
    specials: exactly `vocab` ids (core/nc_tokenizer.h file format)."""
    toks = [bytes([i]) for i in range(256)]
    pr = [bytes([c]) for c in range(32, 127)]
    lo = [bytes([c]) for c in range(97, 123)]
    need = vocab - len(SPECIALS)
    gens = ([a + b for a in pr for b in pr], [a + b + c for a in lo for b in lo for c in lo],
            [b"a" + a + b + c for a in lo for b in lo for c in lo])
    for g in gens:
        for t in g:
            if len(toks) >= need:
                break
            toks.append(t)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("#nanochat-tokenizer 1\n")
        for i, s in enumerate(SPECIALS):
            f.write("#special %d %s\n" % (len(toks) + i, s))
        for r, t in enumerate(toks):
            f.write("%s %d\n" % (base64.b64encode(t).decode(), r))


def prompts(n, words=48):
    out = []
    for i in range(n):
        out.append(" ".join(WORDS[(i * 7 + k * 3 + k * k) % len(WORDS)] for k in range(words)))
    return out


# ---- PyTorch reference ---------------------------------------------------------------------------

def torch_worker(a):
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tests", "parity"))
    import nanochat_torch as nt
    torch.set_num_threads(a.threads)
    tensors, meta = nt.read_safetensors(a.model)
    mc = json.loads(meta["model_config"])
    cfg = nt.GPTConfig(**{k: mc[k] for k in ("sequence_len", "vocab_size", "n_layer", "n_head", "n_kv_head",
                                             "n_embd", "window_pattern")})
    model = nt.GPT(cfg)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    model.eval()
    with open(a.prompt_ids) as f:
        plist = json.load(f)
    times = []
    with torch.inference_mode():
        for r in range(a.reps + 1):
            t0 = time.perf_counter()
            n = 0
            for ids in plist:    # one request after the other, as one chat_web worker serves them
                kv = nt.KVCache(cfg, 1, len(ids) + a.gen + 1)
                logits = model.forward_cached(torch.tensor([ids]), kv, last_only=True)
                for _ in range(a.gen):
                    tok = int(torch.argmax(logits[0, -1]))
                    n += 1
                    logits = model.forward_cached(torch.tensor([[tok]]), kv)
            if r:
                times.append(n / (time.perf_counter() - t0))
    print(json.dumps({"torch": torch.__version__, "reps_tok_s": [round(x, 1) for x in times],
                      "aggregate_tok_s": round(statistics.median(times), 1)}))


# ---- the server ------------------------------------------------------------------------------------

class Server:
    def __init__(self, a, data, depth, threads):
        self.proc = subprocess.Popen(
            [os.path.join(a.build, "bin", "nanochatd"), "--listen", "127.0.0.1:0", "--data-dir", data,
             "--model", "sft/d%d" % depth, "--slots", "16", "--engine-threads", str(threads), "--max-streams", "64",
             "--log-level", "warn", "--enable-tools", "false"] + (["--stream-flush-ms", str(a.flush_ms)] if a.flush_ms >= 0 else []),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=tuned_env(threads, preload=False))
        line = self.proc.stdout.readline().decode()
        m = re.match(r"nanochatd listening on \S+:(\d+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError("nanochatd did not start: %r" % line)
        import grpc
        self.channel = grpc.insecure_channel("127.0.0.1:" + m.group(1))
        grpc.channel_ready_future(self.channel).result(timeout=30)

    def cpu_ns(self):
        """CPU time so far of nanochatd's threads (schedstat, ns): (engine, service) where engine =
        the threads named nc-engine (the scheduler and its OpenMP workers) or nc-par (the decode
        pool, core/nc_par.h) and service = every
        other thread (completion queues, workers, gRPC's own)."""
        eng = svc = 0
        base = "/proc/%d/task" % self.proc.pid
        for t in os.listdir(base):
            try:
                with open(os.path.join(base, t, "schedstat")) as f:
                    ns = int(f.read().split()[0])
                with open(os.path.join(base, t, "comm")) as f:
                    name = f.read().strip()
            except OSError:
                continue
            if name in ("nc-engine", "nc-par"):
                eng += ns
            else:
                svc += ns
        return eng, svc

    def close(self):
        self.channel.close()
        self.proc.terminate()
        self.proc.wait(timeout=60)


def grpc_run(srv, texts, gen, unary=False):
    """S = len(texts) concurrent calls started together; returns (tokens, seconds, server engine
    CPU us per token, server service CPU us per token, client CPU us per token)."""
    from nanochat.v1 import chat_pb2, common_pb2, services_pb2_grpc
    stub = services_pb2_grpc.ChatStub(srv.channel)
    reqs = [chat_pb2.ChatRequest(messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=t)],
                                 temperature=0, max_tokens=gen, tools=False, ephemeral=True) for t in texts]
    counts, ends, errors = [0] * len(texts), [0.0] * len(texts), []
    go = threading.Barrier(len(texts) + 1)

    def one(i):
        go.wait()
        try:
            if unary:
                counts[i] = stub.Complete(reqs[i], timeout=600).tokens_generated
            else:
                for ev in stub.Stream(reqs[i], timeout=600):
                    if ev.HasField("delta"):
                        counts[i] += len(ev.delta.token_ids)
            ends[i] = time.perf_counter()
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
    ts = [threading.Thread(target=one, args=(i,)) for i in range(len(texts))]
    [t.start() for t in ts]
    c0, p0 = srv.cpu_ns(), time.process_time()
    go.wait()
    t0 = time.perf_counter()
    [t.join() for t in ts]
    if errors:
        raise RuntimeError(errors[0])
    n = sum(counts)
    c1 = srv.cpu_ns()
    return (n, max(ends) - t0, (c1[0] - c0[0]) / 1e3 / n, (c1[1] - c0[1]) / 1e3 / n,
            (time.process_time() - p0) * 1e6 / n)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--depths", default="4,8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--streams", default="1,4,16")
    p.add_argument("--gen", type=int, default=64)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--flush-ms", type=int, default=-1, help="nanochatd --stream-flush-ms (default: its own)")
    p.add_argument("--quick", action="store_true", help="depth 4, 16 tokens, 1 rep (smoke run)")
    p.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--prompt-ids", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.torch_worker:
        return torch_worker(a)
    if a.quick:
        a.depths, a.gen, a.reps = "4", 16, 1
    sys.path.insert(0, os.path.join(a.build, "gen", "python"))
    streams = [int(x) for x in a.streams.split(",")]
    texts = prompts(max(streams))
    results = []
    for depth in [int(x) for x in a.depths.split(",")]:
        tmp = tempfile.mkdtemp(prefix="nc_bench_serve_")
        try:
            data = os.path.join(tmp, "data")
            tok = os.path.join(data, "tokenizer", "tokenizer.txt")
            write_tokenizer(tok)
            subprocess.run([os.path.join(a.build, "bin", "nc_ckpt_tool"), "make", "--tokenizer", tok,
                            "--root", os.path.join(data, "checkpoints"), "--phase", "sft", "--tag", "d%d" % depth,
                            "--depth", str(depth), "--seq-len", "2048", "--window", "SSSL"],
                           check=True, capture_output=True)
            cdir = os.path.join(data, "checkpoints", "chatsft_checkpoints", "d%d" % depth)
            pfile = os.path.join(tmp, "prompts.txt")
            with open(pfile, "w") as f:
                f.write("\n".join(texts) + "\n")
            srv = Server(a, data, depth, a.threads)
            try:
                from nanochat.v1 import tokenizer_pb2, services_pb2_grpc
                tk = services_pb2_grpc.TokenizerStub(srv.channel)
                enc = [list(tk.Encode(tokenizer_pb2.EncodeRequest(text=t), timeout=60).tokens) for t in texts]
                sp = {s: i for i, s in enumerate(SPECIALS, 32768 - len(SPECIALS))}
                chat_ids = [[sp["<|bos|>"], sp["<|user_start|>"]] + e + [sp["<|user_end|>"], sp["<|assistant_start|>"]]
                            for e in enc]
                idfile = os.path.join(tmp, "ids.json")
                grpc_run(srv, texts[:2], 4)            # warm-up (first-touch of the KV caches)
                keys = ("engine", "grpc_stream", "grpc_unary", "engine_cpu", "stream_eng_cpu", "stream_svc_cpu",
                        "unary_eng_cpu", "unary_svc_cpu", "client_cpu")
                rows = {S: dict({k: [] for k in keys}, tokens=None) for S in streams}
                torch_by_s = {}
                for rep in range(a.reps):
                    eng = json.loads(subprocess.run(
                        [os.path.join(a.build, "bench", "bench_serve_engine"), "--tokenizer", tok, "--dir", cdir,
                         "--prompts", pfile, "--streams", a.streams, "--gen", str(a.gen), "--slots", "16",
                         "--threads", str(a.threads), "--reps", "1"],
                        check=True, capture_output=True, text=True, env=tuned_env(a.threads, preload=False)).stdout)
                    for r in eng["runs"]:
                        rows[r["streams"]]["engine"].append(r["aggregate_tok_s"])
                        rows[r["streams"]]["engine_cpu"].append(r["cpu_us_per_token"][0])
                    for S in streams:
                        n, dt, ecpu, scpu, ccpu = grpc_run(srv, texts[:S], a.gen)
                        for k, v in (("grpc_stream", n / dt), ("stream_eng_cpu", ecpu), ("stream_svc_cpu", scpu),
                                     ("client_cpu", ccpu)):
                            rows[S][k].append(v)
                        rows[S]["tokens"] = n
                        n1, dt1, ecpu, scpu, _ = grpc_run(srv, texts[:S], a.gen, unary=True)
                        for k, v in (("grpc_unary", n1 / dt1), ("unary_eng_cpu", ecpu), ("unary_svc_cpu", scpu)):
                            rows[S][k].append(v)
                    for S in (1, max(streams)) if rep == 0 else ():
                        with open(idfile, "w") as f:
                            json.dump(chat_ids[:S], f)
                        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--torch-worker",
                                              "--model", os.path.join(cdir, "model_000000.safetensors"),
                                              "--prompt-ids", idfile, "--gen", str(a.gen), "--reps", "1",
                                              "--threads", str(a.threads)],
                                             check=True, capture_output=True, text=True, env=tuned_env(a.threads))
                        torch_by_s[S] = json.loads(out.stdout.strip().splitlines()[-1])
            finally:
                srv.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        torch_rate = statistics.median([t["aggregate_tok_s"] for t in torch_by_s.values()])
        out = {"depth": depth, "threads": a.threads, "gen": a.gen, "torch_serial_tok_s": torch_rate,
               "torch_runs": torch_by_s, "streams": []}
        for S in streams:
            r = rows[S]
            e, g = statistics.median(r["engine"]), statistics.median(r["grpc_stream"])
            row = {"streams": S, "tokens": r["tokens"], "engine_tok_s": round(e, 1), "grpc_stream_tok_s": round(g, 1),
                   "grpc_overhead_pct": round(100 * (e / g - 1), 2),
                   "vs_torch": round(g / torch_rate, 2),
                   "engine_reps": [round(x, 1) for x in r["engine"]],
                   "grpc_reps": [round(x, 1) for x in r["grpc_stream"]]}
            u = statistics.median(r["grpc_unary"])
            med = {k: statistics.median(r[k]) for k in keys}
            row.update({"grpc_unary_tok_s": round(u, 1), "stream_vs_unary_overhead_pct": round(100 * (u / g - 1), 2),
                        "cpu_us_per_token": {
                            "engine_in_process": round(med["engine_cpu"], 1),
                            "server_stream_engine": round(med["stream_eng_cpu"], 1),
                            "server_stream_service": round(med["stream_svc_cpu"], 1),
                            "server_unary_engine": round(med["unary_eng_cpu"], 1),
                            "server_unary_service": round(med["unary_svc_cpu"], 1),
                            "client_stream": round(med["client_cpu"], 1)},
                        # the service's own CPU (gRPC, handlers, deltas) per unit of generation CPU
                        "service_cpu_pct_of_generation": {
                            "stream": round(100 * med["stream_svc_cpu"] / med["stream_eng_cpu"], 2),
                            "unary": round(100 * med["unary_svc_cpu"] / med["unary_eng_cpu"], 2)}})
            out["streams"].append(row)
        results.append(out)
        print(json.dumps(out), file=sys.stderr, flush=True)
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    print(json.dumps({"benchmark": "serve", "env": env, "load_avg": os.getloadavg(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
