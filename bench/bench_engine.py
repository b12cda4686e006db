#!/usr/bin/env python3
"""Inference speed: the nanochat-c engine (build/bench/bench_engine) against the PyTorch 1.13
reference (tests/parity/nanochat_torch.py, KV-cache greedy decode as nanochat's Engine does it),
same weights, same prompt, same run.

  /usr/bin/python3 bench/bench_engine.py [--build build] [--depths 4,8] [--threads 2]
                                         [--gen 64] [--reps 5] [--streams 1,4,16] [--quick]

Per depth (nanochat's depth rule, head_dim 128, vocab 32768, sequence_len 2048, window pattern
SSSL): the C side writes its weights (random; see bench_engine.c) and the 256-token prompt, then
measures prefill tok/s (one chunk), batch-1 decode tok/s at every precision the CPU has (fp32,
bf16 weights, bf16 weights + bf16 activations), each one's accuracy against fp32, and aggregate
tok/s through the engine (its default, fastest precision) with 1/4/16 concurrent streams. The
PyTorch side loads the same weights by state-dict name and measures prefill (nanochat computes
logits for every prompt position; a last-position-only variant is reported too) and greedy
KV-cache decode, with its best CPU settings: tcmalloc preloaded when available
(libgoogle-perftools4), OMP_WAIT_POLICY=PASSIVE, torch threads set, inference_mode. Both sides
run with the same environment otherwise (OPENBLAS_* left as given). Greedy tokens of the two
fp32 implementations are compared (same weights, same prompt).
Prints one JSON document.
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
from bench_env import tuned_env


def torch_worker(a):
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tests", "parity"))
    import nanochat_torch as nt
    torch.set_num_threads(a.threads)
    cfg, model, prompt = nt.load_dump(a.dir)
    model.eval()
    P, gen = prompt.shape[1], a.gen
    idx = prompt
    res = {"impl": "pytorch", "torch": torch.__version__, "threads": a.threads,
           "tcmalloc": "tcmalloc" in os.environ.get("LD_PRELOAD", ""),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    with torch.inference_mode():
        for key, last_only in (("prefill_tok_s", False), ("prefill_last_only_tok_s", True)):
            times = []
            for r in range(a.reps + 1):
                kv = nt.KVCache(cfg, 1, P + gen + 1)
                t0 = time.perf_counter()
                logits = model.forward_cached(idx, kv, last_only=last_only)
                dt = time.perf_counter() - t0
                if r:
                    times.append(dt)
            res[key] = round(P / statistics.median(times), 1)
        # greedy decode after a prefill, one token per step (nanochat Engine.generate, batch 1)
        kv = nt.KVCache(cfg, 1, P + gen + 1)
        logits = model.forward_cached(idx, kv, last_only=True)
        tok = int(torch.argmax(logits[0, -1]))
        tokens, times = [], []
        for _ in range(gen):
            tokens.append(tok)
            t0 = time.perf_counter()
            logits = model.forward_cached(torch.tensor([[tok]]), kv)
            times.append(time.perf_counter() - t0)
            tok = int(torch.argmax(logits[0, -1]))
    ms = statistics.median(times) * 1e3
    res.update({"decode_ms": round(ms, 3), "decode_tok_s": round(1e3 / ms, 1), "greedy_tokens": tokens})
    print(json.dumps(res))


def run_c(a, depth, threads, d):
    exe = os.path.join(a.build, "bench", "bench_engine")
    cmd = [exe, "--depth", str(depth), "--threads", str(threads), "--vocab", str(a.vocab),
           "--seq", str(a.seq), "--prompt", str(a.prompt), "--gen", str(a.gen), "--reps", str(a.reps),
           "--streams", a.streams, "--stream-prompt", str(a.stream_prompt), "--dump", d]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env=tuned_env(threads, preload=False)).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_torch(a, threads, d):
    cmd = [sys.executable, os.path.abspath(__file__), "--torch-worker", "--dir", d,
           "--threads", str(threads), "--gen", str(a.gen), "--reps", str(a.reps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env=tuned_env(threads)).stdout
    return json.loads(out.strip().splitlines()[-1])


def common_prefix(x, y):
    n = 0
    while n < min(len(x), len(y)) and x[n] == y[n]:
        n += 1
    return n


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--depths", default="4,8")
    p.add_argument("--threads", default="2")
    p.add_argument("--vocab", type=int, default=32768)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--prompt", type=int, default=256)
    p.add_argument("--stream-prompt", type=int, default=64)
    p.add_argument("--gen", type=int, default=64)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--streams", default="1,4,16")
    p.add_argument("--quick", action="store_true", help="depth 4, 16 tokens, 2 reps (smoke run)")
    p.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.torch_worker:
        a.threads = int(a.threads)
        return torch_worker(a)
    if a.quick:
        a.depths, a.gen, a.reps = "4", 16, 2
    results = []
    for depth in [int(x) for x in a.depths.split(",")]:
        for th in [int(x) for x in a.threads.split(",")]:
            d = tempfile.mkdtemp(prefix="nc_bench_engine_")
            try:
                c = run_c(a, depth, th, d)
                t = run_torch(a, th, d)
            finally:
                shutil.rmtree(d, ignore_errors=True)
            single = next((s for s in c["streams"] if s["streams"] == 1), None)
            dec = c["decode"]
            best = max(dec, key=lambda k: dec[k]["tok_s"])
            r = {
                "depth": depth, "threads": th,
                "c_prefill_tok_s": c["prefill_tok_s"], "torch_prefill_tok_s": t["prefill_tok_s"],
                "torch_prefill_last_only_tok_s": t["prefill_last_only_tok_s"],
                "prefill_speedup": round(c["prefill_tok_s"] / t["prefill_tok_s"], 2),
                "prefill_speedup_vs_last_only": round(c["prefill_tok_s"] / t["prefill_last_only_tok_s"], 2),
                "c_prefill_tok_s_by_precision": {k: v["prefill_tok_s"] for k, v in dec.items()},
                "c_decode_tok_s": {k: v["tok_s"] for k, v in dec.items()},
                "torch_decode_tok_s": t["decode_tok_s"],
                "decode_speedup": {k: round(v["tok_s"] / t["decode_tok_s"], 2) for k, v in dec.items()},
                "decode_best": best,
                "engine_weights": c["engine_weights"],
                "streams": c["streams"],
                "streams_vs_single": {str(s["streams"]): round(s["steady_tok_s"] / single["steady_tok_s"], 2)
                                      for s in c["streams"]} if single else None,
                "streams_vs_single_median": {
                    str(s["streams"]): round(s["steady_median_tok_s"] / single["steady_median_tok_s"], 2)
                    for s in c["streams"]} if single and single["steady_median_tok_s"] else None,
                "accuracy_vs_f32": {k: v["accuracy_vs_f32"] for k, v in dec.items() if "accuracy_vs_f32" in v},
                "greedy_f32_common_prefix_with_torch": common_prefix(c["greedy_tokens_f32"], t["greedy_tokens"]),
                "gen": a.gen, "c": c, "torch": t,
            }
            r["c"].pop("greedy_tokens_f32", None)
            r["torch"].pop("greedy_tokens", None)
            results.append(r)
            print(json.dumps({k: v for k, v in r.items() if k not in ("c", "torch")}), file=sys.stderr, flush=True)
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    print(json.dumps({"benchmark": "engine", "vocab": a.vocab, "prompt": a.prompt,
                      "stream_prompt": a.stream_prompt, "gen": a.gen, "reps": a.reps,
                      "blas_core": results[0]["c"]["blas_core"] if results else None,
                      "env": env, "results": results}, indent=1))


if __name__ == "__main__":
    main()
