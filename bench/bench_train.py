#!/usr/bin/env python3
"""Training throughput: nanochat-c (build/bench/bench_train) against the PyTorch 1.13
reference implementation (tests/parity/nanochat_torch.py), same config, same run.

  /usr/bin/python3 bench/bench_train.py [--build build] [--depths 4,6,8] [--threads 1,2]
                                        [--steps 5] [--rounds 2] [--optim auto|sgd|muon] [--quick]

Config per depth: nanochat's depth rule (head_dim 128), vocab 32768, T = 512, 8,192 tokens
per step (B = 16), window pattern L (as runs/runcpu.sh and specs/perf.md), fp32.
FLOPs/token from nanochat's estimate_flops. PyTorch gets its best CPU settings: tcmalloc
preloaded when available (libgoogle-perftools4), OMP_WAIT_POLICY=PASSIVE, torch threads set.
OpenBLAS's environment (OPENBLAS_CORETYPE etc.) is left exactly as given to this script.
Prints one JSON document: per (depth, threads) both implementations, the speed ratio, and
the fraction of the sgemm rate each reaches. On a shared machine the load swings by 2-3x
within minutes, so each config runs `rounds` times alternating C and PyTorch, and the
headline numbers are each side's best step over all rounds (the least disturbed sample;
medians are kept in the per-round records) together with the load average. With one
thread, tokens per second of process CPU time (tok_per_cpu_s) measure the work itself
whatever the load; with two, CPU time also counts OpenMP/OpenBLAS waiting, so there only
wall time is meaningful.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
from bench_env import tuned_env


def torch_worker(a):
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tests", "parity"))
    import nanochat_torch as nt
    torch.set_num_threads(a.threads)
    torch.manual_seed(42)
    cfg = nt.config_from_depth(a.depth, sequence_len=a.seq, vocab_size=a.vocab, window_pattern=a.pattern)
    model = nt.GPT(cfg)
    model.init_weights()
    B = a.tokens // a.seq
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, a.vocab, (B, a.seq), generator=g)
    tg = torch.roll(idx.view(-1), -1).view(B, a.seq)
    opt = model.setup_optimizer() if a.optim == "muon" else None
    times, otimes, ctimes, losses = [], [], [], []
    for it in range(a.warmup + a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        model.zero_grad(set_to_none=True)
        loss = model(idx, tg)
        loss.backward()
        t1 = time.perf_counter()
        if opt is not None:
            opt.step()
        elif a.optim == "sgd":
            with torch.no_grad():
                for p in model.parameters():
                    p.sub_(1e-3 * p.grad)
        t2 = time.perf_counter()
        losses.append(float(loss))
        if it >= a.warmup:
            times.append(t2 - t0)
            otimes.append(t2 - t1)
            ctimes.append(time.process_time() - c0)
    step = statistics.median(times)
    fpt = model.estimate_flops()
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "depth": a.depth, "threads": a.threads,
        "optim": a.optim, "step_ms": round(step * 1e3, 1),
        "optim_ms": round(statistics.median(otimes) * 1e3, 1), "tok_per_s": round(a.tokens / step, 1),
        "tok_per_s_best": round(a.tokens / min(times), 1),
        "tok_per_cpu_s": round(a.tokens / min(ctimes), 1),
        "flops_per_token": fpt, "gflops": round(a.tokens / step * fpt / 1e9, 1),
        "loss_first": losses[0], "loss_last": losses[-1],
        "tcmalloc": "tcmalloc" in os.environ.get("LD_PRELOAD", ""),
    }))


def run_c(a, depth, threads, optim, sgemm):
    exe = os.path.join(a.build, "bench", "bench_train")
    cmd = [exe, "--depth", str(depth), "--threads", str(threads), "--seq", str(a.seq),
           "--tokens", str(a.tokens), "--vocab", str(a.vocab), "--pattern", a.pattern,
           "--steps", str(a.steps), "--warmup", str(a.warmup), "--optim", optim,
           "--sgemm", "1" if sgemm else "0"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_torch(a, depth, threads, optim):
    env = tuned_env(threads)
    cmd = [sys.executable, os.path.abspath(__file__), "--torch-worker", "--depth", str(depth),
           "--threads", str(threads), "--seq", str(a.seq), "--tokens", str(a.tokens),
           "--vocab", str(a.vocab), "--pattern", a.pattern, "--steps", str(a.steps),
           "--warmup", str(a.warmup), "--optim", optim]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def c_has_muon(a):
    exe = os.path.join(a.build, "bench", "bench_train")
    r = subprocess.run([exe, "--depth", "1", "--optim", "muon", "--steps", "1", "--warmup", "0",
                        "--tokens", "64", "--seq", "32", "--vocab", "256", "--sgemm", "0"],
                       capture_output=True, text=True)
    return r.returncode == 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--depths", default="4,6,8")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--tokens", type=int, default=8192)
    p.add_argument("--vocab", type=int, default=32768)
    p.add_argument("--pattern", default="L")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--optim", default="auto", choices=["auto", "sgd", "muon"])
    p.add_argument("--quick", action="store_true", help="depth 4 only, 2 steps (smoke run)")
    p.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--depth", type=int, default=4, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.torch_worker:
        a.threads = int(a.threads)
        return torch_worker(a)
    if a.quick:
        a.depths, a.steps, a.warmup = "4", 2, 1
    optim = a.optim
    if optim == "auto":
        optim = "muon" if c_has_muon(a) else "sgd"
    results = []
    load_start = os.getloadavg()
    for d in [int(x) for x in a.depths.split(",")]:
        for th in [int(x) for x in a.threads.split(",")]:
            cs, ts = [], []
            for _ in range(a.rounds):  # alternate, so both sides sample the same load
                cs.append(run_c(a, d, th, optim, sgemm=True))
                ts.append(run_torch(a, d, th, optim))
            c = max(cs, key=lambda r: r["tok_per_s_best"])
            t = max(ts, key=lambda r: r["tok_per_s_best"])
            plateau = max(r.get("sgemm_plateau_gflops", 0.0) for r in cs)
            cplat = max(r.get("sgemm_plateau_cpu_gflops", 0.0) for r in cs)
            c_cpu = max(r["tok_per_cpu_s"] for r in cs)
            t_cpu = max(r["tok_per_cpu_s"] for r in ts)
            fpt = c["flops_per_token"]
            c_gf, t_gf = c["tok_per_s_best"] * fpt / 1e9, t["tok_per_s_best"] * fpt / 1e9
            results.append({
                "depth": d, "threads": th, "optim": optim, "flops_per_token": fpt,
                "c_tok_per_s": c["tok_per_s_best"], "torch_tok_per_s": t["tok_per_s_best"],
                "c_tok_per_s_median": [r["tok_per_s"] for r in cs],
                "torch_tok_per_s_median": [r["tok_per_s"] for r in ts],
                "c_tok_per_cpu_s": c_cpu, "torch_tok_per_cpu_s": t_cpu,
                "speedup_per_cpu_s": round(c_cpu / t_cpu, 2),
                "sgemm_plateau_cpu_gflops": cplat,
                "c_frac_of_sgemm_cpu": round(c_cpu * fpt / 1e9 / cplat, 3) if cplat else None,
                "torch_frac_of_sgemm_cpu": round(t_cpu * fpt / 1e9 / cplat, 3) if cplat else None,
                "c_optim_ms": min(r["optim_ms"] for r in cs),
                "torch_optim_ms": min(r["optim_ms"] for r in ts),
                "loadavg_1m": round(os.getloadavg()[0], 2),
                "speedup_vs_torch": round(c["tok_per_s_best"] / t["tok_per_s_best"], 2),
                "sgemm_plateau_gflops": plateau,
                "c_frac_of_sgemm": round(c_gf / plateau, 3) if plateau else None,
                "torch_frac_of_sgemm": round(t_gf / plateau, 3) if plateau else None,
                "c_rounds": cs, "torch_rounds": ts,
            })
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_WAIT_POLICY")}
    print(json.dumps({"benchmark": "train", "seq": a.seq, "tokens_per_step": a.tokens,
                      "vocab": a.vocab, "window_pattern": a.pattern,
                      "blas_core": results[0]["c_rounds"][0]["blas_core"] if results else None,
                      "env": env, "cpus": os.cpu_count(),
                      "loadavg_start": [round(x, 2) for x in load_start],
                      "loadavg_end": [round(x, 2) for x in os.getloadavg()],
                      "results": results}, indent=1))


if __name__ == "__main__":
    main()
