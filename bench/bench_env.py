"""Environment for the PyTorch reference runs of the benchmarks (specs/perf.md: its best CPU
settings): tcmalloc preloaded when libgoogle-perftools4 is installed, OMP_WAIT_POLICY=PASSIVE,
OMP_NUM_THREADS. OPENBLAS_* are left exactly as given."""
import os

TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


def tuned_env(threads, preload=True):
    env = dict(os.environ)
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    env["OMP_NUM_THREADS"] = str(threads)
    if preload and os.path.exists(TCMALLOC):
        env["LD_PRELOAD"] = (TCMALLOC + " " + env.get("LD_PRELOAD", "")).strip()
    return env
