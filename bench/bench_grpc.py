#!/usr/bin/python3
"""bench_grpc.py — gRPC benchmark of nanochatd against a minimal grpc++ sync server, same run.

    /usr/bin/python3 bench/bench_grpc.py [--build build] [--seconds 3] [--runs 3]
        [--points 1,4,16,64] [--streams 1,4] [--steps 20000] [--quick] [--out FILE]
        [--nanochatd-arg=--log-level=warn ...]

Builds nothing: needs build/bin/nanochatd (+ nanochat-testjob), build/bench/grpc_loadgen and
build/bench/grpc_ref_server (`cmake --build build --target nanochatd nanochat-testjob
grpc_loadgen grpc_ref_server`). Loopback only.

1. starts nanochatd (fresh temp data dir, 127.0.0.1:0, --enable-test-jobs, --enable-tools=false,
   otherwise its defaults) and runs a test job of --steps steps (step_ms 0), whose stored
   events are the stream workload;
2. captures one Health/Check response and the job's Train/Status replay from nanochatd and
   starts grpc_ref_server (grpc++ sync server, builder defaults) serving the same response
   fields and the same events;
3. for each run, for each point, measures both servers back to back (order alternating
   A/B, B/A between runs and points) with grpc_loadgen: unary Health/Check at N concurrent
   callers over one channel ("NxC" = over C channels), and Train/Status replay streams
   (each on its own connection);
4. prints JSON: per point the median over runs of each metric for both servers, the ratios
   nanochatd / grpc++ (of the medians, and the median of the per-round ratios), the runs, the CPU used by other processes during each run (the
   machine is shared) and whether the target (p50 <= 1.1x grpc++, QPS >= grpc++) is met.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
UNARY_KEYS = ("qps", "p50_us", "p90_us", "p99_us", "mean_us", "resp_bytes", "server_cpu_cores",
              "server_cpu_us_per_call", "client_cpu_cores", "other_cpu_cores")
STREAM_KEYS = ("msgs_per_s", "mb_per_s", "msg_bytes", "server_cpu_cores", "server_cpu_us_per_msg",
               "client_cpu_cores", "other_cpu_cores")


def wait_port(proc, pattern, what, timeout=30.0):
    """Reads proc's stdout until a line matches `pattern` (group 1 = port)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(pattern, line.decode("utf-8", "replace"))
        if m:
            return int(m.group(1))
    proc.kill()
    proc.wait()
    raise RuntimeError("%s did not start" % what)


class Proc:
    """A server process started with a known port; stdout is read for the port, stderr logged."""

    def __init__(self, cmd, pattern, what, log_path, stdin=None):
        self.what = what
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, stdin=stdin)
        self.port = wait_port(self.proc, pattern, what)
        self.pid = self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc.stdout.close()
        if self.proc.stdin:
            self.proc.stdin.close()
        self.log.close()
        return rc


def loadgen(exe, args, timeout):
    out = subprocess.run([exe] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError("grpc_loadgen %s failed (%d): %s" % (" ".join(args), out.returncode,
                                                               out.stderr.decode()[-2000:]))
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def parse_points(text):
    pts = []
    for p in text.split(","):
        callers, _, chans = p.strip().partition("x")
        pts.append((int(callers), int(chans or 1)))
    return pts


def median_of(runs, keys):
    return {k: round(statistics.median(r[k] for r in runs), 2) for k in keys if all(k in r for r in runs)}


def ratio(a, b):
    return round(a / b, 3) if b else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--seconds", type=float, default=3.0, help="measured seconds per point")
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--runs", type=int, default=3, help="A/B rounds; medians are over these")
    ap.add_argument("--points", default="1,4,16,64", help="unary callers[xchannels], comma-separated")
    ap.add_argument("--streams", default="1,4", help="concurrent Train/Status replays per point")
    ap.add_argument("--steps", type=int, default=20000, help="test-job steps (stream length)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 s per point, 1 run")
    ap.add_argument("--nanochatd-arg", action="append", default=[],
                    help="extra nanochatd flag (repeatable), e.g. --nanochatd-arg=--log-level=warn")
    ap.add_argument("--ref-buffer-hint", type=int, choices=(0, 1), default=1,
                    help="grpc_ref_server: 1 = write-buffer hints like nanochatd, 0 = every Write unbuffered")
    ap.add_argument("--out", help="also write the JSON here")
    a = ap.parse_args()
    if a.quick:
        a.seconds, a.warmup, a.runs, a.steps = 1.0, 0.2, 1, 2000

    build = os.path.abspath(a.build)
    nanochatd = os.path.join(build, "bin", "nanochatd")
    lg = os.path.join(build, "bench", "grpc_loadgen")
    ref = os.path.join(build, "bench", "grpc_ref_server")
    for exe in (nanochatd, lg, ref, os.path.join(build, "bin", "nanochat-testjob")):
        if not os.access(exe, os.X_OK):
            sys.exit("bench_grpc: %s is missing (build it first)" % exe)

    tmp = tempfile.mkdtemp(prefix="nc-bench-grpc-")
    servers = []
    try:
        nc_cmd = [nanochatd, "--listen", "127.0.0.1:0", "--data-dir", os.path.join(tmp, "data"),
                  "--enable-test-jobs=true", "--enable-tools=false"] + a.nanochatd_arg
        nc = Proc(nc_cmd, r"listening on \S+:(\d+)", "nanochatd", os.path.join(tmp, "nanochatd.log"))
        servers.append(nc)
        nc_target = "127.0.0.1:%d" % nc.port
        job = loadgen(lg, ["make-job", "--target", nc_target, "--steps", str(a.steps)], 600)
        health_file, events_file = os.path.join(tmp, "health.bin"), os.path.join(tmp, "events.bin")
        dump = loadgen(lg, ["dump", "--target", nc_target, "--job-id", job["job_id"],
                            "--health", health_file, "--events", events_file], 300)
        rf = Proc([ref, "--health", health_file, "--events", events_file, "--port", "0",
                   "--stdin-eof-stop", "1", "--buffer-hint", str(a.ref_buffer_hint)],
                  r"listening on \S+:(\d+)", "grpc_ref_server", os.path.join(tmp, "ref.log"),
                  stdin=subprocess.PIPE)
        servers.append(rf)
        targets = {"nanochatd": ("127.0.0.1:%d" % nc.port, nc.pid),
                   "grpcpp": ("127.0.0.1:%d" % rf.port, rf.pid)}

        plan = []
        for callers, chans in parse_points(a.points):
            plan.append(("unary_%dx%d" % (callers, chans),
                         ["unary", "--callers", str(callers), "--channels", str(chans)]))
        for k in [int(x) for x in a.streams.split(",") if x.strip()]:
            plan.append(("stream_%d" % k, ["stream", "--streams", str(k), "--job-id", job["job_id"]]))
        common = ["--seconds", str(a.seconds), "--warmup", str(a.warmup)]
        raw = {name: {"nanochatd": [], "grpcpp": []} for name, _ in plan}
        load_start = os.getloadavg()
        t0 = time.time()
        for r in range(a.runs):
            for i, (name, args) in enumerate(plan):
                order = ["nanochatd", "grpcpp"] if (r + i) % 2 == 0 else ["grpcpp", "nanochatd"]
                for who in order:
                    target, pid = targets[who]
                    res = loadgen(lg, args + ["--target", target, "--pid", str(pid)] + common,
                                  a.seconds + a.warmup + 120)
                    raw[name][who].append(res)
        elapsed = time.time() - t0

        points = []
        met = True
        for name, _ in plan:
            keys = UNARY_KEYS if name.startswith("unary") else STREAM_KEYS
            m = {who: median_of(raw[name][who], keys) for who in ("nanochatd", "grpcpp")}
            n, g = m["nanochatd"], m["grpcpp"]
            p = {"point": name, "nanochatd": n, "grpcpp": g}
            if name.startswith("unary"):
                rkeys = {"qps": "qps", "p50": "p50_us", "p99": "p99_us",
                         "server_cpu_per_call": "server_cpu_us_per_call"}
            else:
                rkeys = {"msgs_per_s": "msgs_per_s", "server_cpu_per_msg": "server_cpu_us_per_msg"}
            # ratio of the medians, and the median of the per-round ratios (each round measures
            # both servers back to back, so drifting load from other processes cancels better)
            p["ratio"] = {k: ratio(n[v], g[v]) for k, v in rkeys.items()}
            pairs = list(zip(raw[name]["nanochatd"], raw[name]["grpcpp"]))
            p["ratio_paired"] = {k: round(statistics.median(ratio(x[v], y[v]) for x, y in pairs), 3)
                                 for k, v in rkeys.items()}
            if name.startswith("unary"):
                rp = p["ratio_paired"]
                p["target_met"] = rp["p50"] <= 1.1 and rp["qps"] >= 1.0
                met = met and p["target_met"]
            slim = ("qps", "p50_us", "p99_us", "msgs_per_s", "server_cpu_us_per_call",
                    "server_cpu_us_per_msg", "other_cpu_cores")
            p["runs"] = {who: [{k: r[k] for k in slim if k in r} for r in raw[name][who]]
                         for who in raw[name]}
            points.append(p)
        rc_nc = nc.stop()
        rc_ref = rf.stop()
        servers.clear()
        report = {
            "bench": "grpc",
            "machine": {"cpus": os.cpu_count(), "loadavg_start": load_start,
                        "loadavg_end": os.getloadavg(), "elapsed_s": round(elapsed, 1)},
            "method": {"seconds": a.seconds, "warmup": a.warmup, "runs": a.runs,
                       "statistic": "median over runs, servers interleaved A/B then B/A",
                       "nanochatd_flags": ["--listen", "127.0.0.1:0", "--data-dir", "TMP"] + nc_cmd[5:],
                       "reference": "grpc_ref_server: grpc++ 1.51 sync server, ServerBuilder defaults",
                       "reference_buffer_hint": a.ref_buffer_hint,
                       "stream": "Train/Status replay of a finished test job (follow=false, from_seq=1)",
                       "job": job, "capture": dump},
            "points": points,
            "target": "unary: nanochatd p50 <= 1.1x grpc++ and QPS >= grpc++ at every point "
                      "(median of the per-round ratios)",
            "target_met": met,
            "exit_codes": {"nanochatd": rc_nc, "grpc_ref_server": rc_ref},
        }
        text = json.dumps(report, indent=1)
        print(text)
        if a.out:
            with open(a.out, "w") as f:
                f.write(text + "\n")
        if rc_nc != 0 or rc_ref != 0:
            sys.exit("bench_grpc: a server exited with an error (nanochatd %s, grpc_ref_server %s)"
                     % (rc_nc, rc_ref))
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
