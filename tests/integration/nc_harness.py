"""nc_harness.py — start a real nanochatd on loopback for integration tests.

    with Server(token="secret-token-0123456789", args=["--enable-test-jobs"]) as srv:
        stub = srv.stub("Health")              # nanochat.v1.Health stub
        stub.Check(health_pb2.HealthCheckRequest(), metadata=srv.auth())

The binary comes from $NC_BUILD_DIR/bin/nanochatd; every server gets a fresh temp data dir
(kept across restart() so tests can kill -9 and restart on the same data). Generated stubs
are on PYTHONPATH ($NC_BUILD_DIR/gen/python, set by ctest).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import grpc

from nanochat.v1 import services_pb2_grpc

BUILD = os.environ.get("NC_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
NANOCHATD = os.path.join(BUILD, "bin", "nanochatd")


def rpc_table():
    with open(os.path.join(BUILD, "gen", "rpc_table.json")) as f:
        return json.load(f)


class Server:
    def __init__(self, token=None, user_token=None, args=(), data_dir=None, env=None,
                 listen="127.0.0.1:0", start_timeout=20.0, tls_root=None):
        self.tmp = tempfile.mkdtemp(prefix="nc-int-")
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        self.token = token
        self.user_token = user_token
        self.args = list(args)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.listen = listen
        self.start_timeout = start_timeout
        self.tls_root = tls_root          # PEM bytes: connect with TLS, trusting this root
        self.proc = None
        self.port = None
        self.channel = None
        self.log_path = os.path.join(self.tmp, "nanochatd.log")

    # -- lifecycle ----------------------------------------------------------------------------
    def command(self):
        cmd = [NANOCHATD, "--listen", self.listen, "--data-dir", self.data_dir] + self.args
        if self.token:
            path = os.path.join(self.tmp, "token")
            with open(path, "w") as f:
                f.write(self.token + "\n")
            os.chmod(path, 0o600)
            cmd += ["--token-file", path]
        if self.user_token:
            path = os.path.join(self.tmp, "user_token")
            with open(path, "w") as f:
                f.write(self.user_token + "\n")
            os.chmod(path, 0o600)
            cmd += ["--user-token-file", path]
        return cmd

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=self.log,
                                     env=self.env)
        deadline = time.time() + self.start_timeout
        line = b""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.match(rb"nanochatd listening on (\S+):(\d+)", line)
            if m:
                self.port = int(m.group(2))
                break
        if self.port is None:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("nanochatd did not start: %r\n%s" % (line, self.logs()))
        if self.tls_root:
            creds = grpc.ssl_channel_credentials(root_certificates=self.tls_root)
            self.channel = grpc.secure_channel("localhost:%d" % self.port, creds)
        else:
            self.channel = grpc.insecure_channel("127.0.0.1:%d" % self.port)
        grpc.channel_ready_future(self.channel).result(timeout=10)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Stops the server; returns its exit code (negative = killed by that signal)."""
        if self.channel:
            self.channel.close()
            self.channel = None
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc.stdout.close()
        self.log.close()
        self.proc = None
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        self.port = None
        return self.start()

    def close(self):
        rc = self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        rc = self.stop()
        logs = self.logs()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if exc[0] is not None or rc not in (0, None):
            # the server's log explains most failures (sanitizer reports included)
            sys.stderr.write("---- nanochatd log (exit %s) ----\n%s\n" % (rc, logs[-20000:]))
        if exc[0] is None and rc not in (0, None):
            raise AssertionError("nanochatd exited with %s" % rc)

    # -- helpers ------------------------------------------------------------------------------
    def logs(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def auth(self, token=None):
        t = token if token is not None else self.token
        return (("authorization", "Bearer " + t),) if t else ()

    def stub(self, service):
        return getattr(services_pb2_grpc, service + "Stub")(self.channel)

    def health(self):
        from nanochat.v1 import health_pb2
        return self.stub("Health").Check(health_pb2.HealthCheckRequest(), timeout=10)

    def wait_calls_baseline(self, baseline=0, timeout=10.0):
        """Waits until Health.calls_in_flight drops to baseline; returns the last value."""
        deadline = time.time() + timeout
        n = None
        while time.time() < deadline:
            n = self.health().calls_in_flight
            if n <= baseline:
                return n
            time.sleep(0.05)
        return n
