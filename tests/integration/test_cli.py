"""The nanochat CLI (build/bin/nanochat) driven against a real nanochatd: health/status/jobs/
checkpoints/history/methods output and --json, exit codes per error kind, `train test` with a
live progress bar on a pty, Ctrl-C on a running `train` (detach, cancel, ask), `watch JOB`,
`status --watch`, and the chat REPL on a pty (prompt, /commands, /quit) plus one-shot mode:
without a model the typed FAILED_PRECONDITION error (exit 9); against a served tiny model
(class Served, nc_models.py) `status`/`health` show the model, and the one-shot, stdin and REPL
replies are exactly the SDK's greedy Chat.Complete content for the same request."""
import json
import os
import re
import signal
import subprocess
import time
import unittest

import nanochat_client as nc
from nanochat_client import train_pb2

import nc_models as M
from nc_harness import BUILD, Server, rpc_table
from nc_pty import PtyProc

CLI = os.path.join(BUILD, "bin", "nanochat")
TOKEN = "cli-admin-token-0123456789"
USER = "cli-user-token-0123456789"
NO_MODEL_RC = 9           # FAILED_PRECONDITION "no model loaded"


def run(srv, *args, token_file=None, input=None, timeout=60, port=None):
    cmd = [CLI, "-a", "127.0.0.1:%d" % (port or srv.port)]
    if token_file:
        cmd += ["--token-file", token_file]
    p = subprocess.run(cmd + list(args), capture_output=True, text=True, input=input,
                       timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
    return p


def pty(srv, *args):
    env = dict(os.environ, TERM="xterm")
    return PtyProc([CLI, "-a", "127.0.0.1:%d" % srv.port] + list(args), env=env)


def token_file(srv, token):
    path = os.path.join(srv.tmp, "cli-token-%d" % len(token))
    with open(path, "w") as f:
        f.write(token + "\n")
    return path


def sdk(srv):
    return nc.Client("127.0.0.1:%d" % srv.port)


class Basic(unittest.TestCase):
    def test_health_status_and_empty_listings(self):
        with Server() as srv:
            p = run(srv, "health")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("server:   ok", p.stdout)
            self.assertIn("grpc health: SERVING", p.stdout)
            p = run(srv, "health", "--json")          # options after the command work too
            self.assertEqual(json.loads(p.stdout)["status"], "ok")
            p = run(srv, "status")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("model:    none loaded", p.stdout)
            self.assertIn("no running or queued jobs", p.stdout)
            d = json.loads(run(srv, "--json", "status").stdout)
            self.assertEqual(d["health"]["status"], "ok")
            self.assertEqual(d["jobs"], [])
            self.assertEqual(run(srv, "checkpoints").stdout, "no checkpoints\n")
            self.assertEqual(json.loads(run(srv, "checkpoints", "--json").stdout), [])
            self.assertEqual(run(srv, "jobs").stdout, "no jobs\n")
            self.assertEqual(run(srv, "history").stdout, "no sessions\n")

    def test_methods_lists_the_rpc_table(self):
        with Server() as srv:
            out = run(srv, "methods").stdout
            for m in rpc_table()["methods"]:
                if m["service"].startswith("nanochat.v1."):
                    self.assertIn(m["path"], out)

    def test_exit_codes_per_error_kind(self):
        with Server(token=TOKEN, user_token=USER, args=["--enable-test-jobs"]) as srv:
            admin, user = token_file(srv, TOKEN), token_file(srv, USER)
            self.assertEqual(run(srv, "health").returncode, 0)                   # public
            p = run(srv, "jobs")
            self.assertEqual(p.returncode, 7)                                     # UNAUTHENTICATED
            self.assertIn("UNAUTHENTICATED", p.stderr)
            self.assertEqual(run(srv, "jobs", token_file=user).returncode, 0)
            p = run(srv, "train", "test", "--detach", token_file=user)
            self.assertEqual(p.returncode, 7)                                     # PERMISSION_DENIED
            self.assertIn("PERMISSION_DENIED", p.stderr)
            p = run(srv, "train", "base", "--depth", "100", token_file=admin)
            self.assertEqual(p.returncode, 3)                                     # INVALID_ARGUMENT
            self.assertIn("depth", p.stderr)
            p = run(srv, "watch", "0123456789abcdef", token_file=admin)
            self.assertEqual(p.returncode, 5, p.stderr)                           # NOT_FOUND
            p = run(srv, "train", "test", "--steps", "1", "--step-ms", "1", token_file=admin)
            self.assertEqual(p.returncode, 0, p.stderr)
            job = p.stdout.split()[2]
            p = run(srv, "cancel", job, token_file=admin)
            self.assertEqual(p.returncode, 9, p.stderr)                           # FAILED_PRECONDITION
            p = run(srv, "train", "base", "--depth", "2", "--num-iterations", "1", "--detach",
                    token_file=admin)
            self.assertIn(p.returncode, (0, 9), p.stderr)                         # 9: no tokenizer yet
            if p.returncode == 0:
                run(srv, "cancel", p.stdout.split()[2], token_file=admin)
            p = run(srv, "eval", "loss", "--steps", "1", token_file=admin)
            self.assertEqual(p.returncode, NO_MODEL_RC, p.stderr)
            self.assertIn("FAILED_PRECONDITION: no model loaded", p.stderr)
            self.assertEqual(run(srv, "nosuchcommand").returncode, 2)             # usage
            self.assertEqual(run(srv, "train", "base", "--depth", "x").returncode, 2)
            port = srv.port
        p = run(None, "health", port=port)                                        # UNAVAILABLE
        self.assertEqual(p.returncode, 12)
        self.assertIn("UNAVAILABLE", p.stderr)


class Train(unittest.TestCase):
    def test_train_shows_live_progress_bar_until_done(self):
        with Server(args=["--enable-test-jobs"]) as srv:
            with pty(srv, "train", "test", "--steps", "20", "--step-ms", "40") as p:
                m = p.expect(rb"started job ([0-9a-f]{16})")
                job = m.group(1).decode()
                p.expect(rb"step \d+/20 +\d+%  loss \d+\.\d+  [0-9.]+k? tok/s  ETA \d+:\d\d  running")
                p.expect(rb"\r\x1b\[K\[#+\] step 20/20 100%")    # redrawn in place
                p.expect(rb"job %s succeeded" % job.encode())
                self.assertEqual(p.wait(), 0)
            # off a terminal: plain lines
            p = run(srv, "train", "test", "--steps", "3", "--step-ms", "10")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("step 3/3 100%", p.stdout)
            self.assertNotIn("\x1b[K", p.stdout)
            # a failed job: exit 13 with the reason
            p = run(srv, "train", "test", "--steps", "2", "--step-ms", "1", "--fail-with", "loss diverged")
            self.assertEqual(p.returncode, 13)
            self.assertIn("failed: loss diverged", p.stdout)

    def _running(self, p):
        job = p.expect(rb"started job ([0-9a-f]{16})").group(1).decode()
        p.expect(rb"step [3-9]/100000")
        return job

    def test_ctrl_c_detaches(self):
        with Server(args=["--enable-test-jobs"]) as srv, sdk(srv) as c:
            with pty(srv, "train", "test", "--steps", "100000", "--step-ms", "20",
                     "--on-interrupt", "detach") as p:
                job = self._running(p)
                p.ctrl_c()
                p.expect(rb"detached: job %s keeps running" % job.encode())
                self.assertEqual(p.wait(), 0)
            self.assertEqual(c.job(job).status().state, train_pb2.JOB_RUNNING)
            # watch it, Ctrl-C leaves the dashboard, the job still runs
            with pty(srv, "watch", job) as p:
                p.expect(rb"step \d+/100000")
                p.ctrl_c()
                p.expect(rb"detached")
                self.assertEqual(p.wait(), 0)
            self.assertEqual(c.job(job).status().state, train_pb2.JOB_RUNNING)
            c.job(job).cancel()
            c.job(job).wait(timeout=30)

    def test_sigint_cancels_when_asked(self):
        with Server(args=["--enable-test-jobs"]) as srv, sdk(srv) as c:
            with pty(srv, "train", "test", "--steps", "100000", "--step-ms", "20",
                     "--on-interrupt", "cancel") as p:
                job = self._running(p)
                p.signal(signal.SIGINT)
                p.expect(rb"cancelling job %s" % job.encode())
                p.expect(rb"job %s cancelled" % job.encode())
                self.assertEqual(p.wait(), 130)
            self.assertEqual(c.job(job).status().state, train_pb2.JOB_CANCELLED)

    def test_ctrl_c_asks_detach_or_cancel(self):
        with Server(args=["--enable-test-jobs"]) as srv, sdk(srv) as c:
            with pty(srv, "train", "test", "--steps", "100000", "--step-ms", "20") as p:
                job = self._running(p)
                p.ctrl_c()
                p.expect(rb"\[d\]etach .* \[c\]ancel job %s\? \[d/c\]" % job.encode())
                p.send(b"c\r")
                p.expect(rb"job %s cancelled" % job.encode())
                self.assertEqual(p.wait(), 130)
            self.assertEqual(c.job(job).status().state, train_pb2.JOB_CANCELLED)
            with pty(srv, "train", "test", "--steps", "100000", "--step-ms", "20") as p:
                job = self._running(p)
                p.ctrl_c()
                p.expect(rb"\[d/c\]")
                p.send(b"d\r")
                p.expect(rb"detached")
                self.assertEqual(p.wait(), 0)
            self.assertEqual(c.job(job).status().state, train_pb2.JOB_RUNNING)
            c.job(job).cancel()

    def test_watch_and_jobs_listing(self):
        with Server(args=["--enable-test-jobs"]) as srv, sdk(srv) as c:
            job = c.test_job(steps=5, step_ms=20)
            p = run(srv, "watch", job.id)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("job %s (test)" % job.id, p.stdout)
            self.assertIn("step 5/5 100%", p.stdout)
            self.assertIn("eval: steps=5.0000", p.stdout)
            self.assertIn("job %s succeeded" % job.id, p.stdout)
            # replay from a later seq shows only the end
            p = run(srv, "watch", job.id, "--from-seq", "9")
            self.assertNotIn("log: test job", p.stdout)
            bad = c.test_job(steps=1, step_ms=1, crash_at=1)
            bad.wait(timeout=30)
            p = run(srv, "watch", bad.id)
            self.assertEqual(p.returncode, 13)
            self.assertIn("signal 9", p.stdout)
            out = run(srv, "jobs").stdout
            self.assertRegex(out, r"%s\s+test\s+succeeded\s+5/5" % job.id)
            self.assertRegex(out, r"%s\s+test\s+failed" % bad.id)
            ids = [j["job_id"] for j in json.loads(run(srv, "jobs", "--json").stdout)]
            self.assertEqual(sorted(ids), sorted([job.id, bad.id]))

    def test_status_watch_dashboard(self):
        with Server(args=["--enable-test-jobs"]) as srv, sdk(srv) as c:
            job = c.test_job(steps=100000, step_ms=20)
            with pty(srv, "status", "--watch", "0.2") as p:
                p.expect(rb"nanochat status")
                p.expect(rb"job %s test +\[" % job.id.encode())
                p.expect(rb"nanochat status")              # refreshed
                p.ctrl_c()
                self.assertEqual(p.wait(), 0)
            job.cancel()


class Chat(unittest.TestCase):
    def test_repl_on_a_pty(self):
        with Server() as srv:
            with pty(srv, "chat", "--ephemeral") as p:
                p.expect(rb"/quit to leave")
                p.expect(rb"you> ")
                p.send(b"/help\r")
                p.expect(rb"/new +start a new conversation")
                p.send(b"/set temperature 0.5\r")
                p.expect(rb"temperature = 0.5")
                p.send(b"/bogus\r")
                p.expect(rb"unknown command /bogus")
                p.send(b"Why is the sky blue?\r")
                p.expect(rb"nanochat> \r?\n")            # no model: the typed error, then the prompt
                p.expect(rb"error: FAILED_PRECONDITION: no model loaded")
                p.expect(rb"you> ")
                p.send(b"/session\r")
                p.expect(rb"session: ")
                p.send(b"/quit\r")
                self.assertEqual(p.wait(), 0)
            with pty(srv, "chat") as p:               # Ctrl-C at the prompt, then Ctrl-D
                p.expect(rb"you> ")
                # a SIGINT that lands between readline's prompt and its select() is only seen at
                # the next key (CPython readline without an input hook): type it as a person would
                time.sleep(0.5)
                p.ctrl_c()
                p.expect(rb"you> ")
                p.send(b"\x04")
                self.assertEqual(p.wait(), 0)

    def test_one_shot_and_stdin(self):
        with Server() as srv:
            p = run(srv, "chat", "Why", "is", "the", "sky", "blue?")
            self.assertEqual(p.returncode, NO_MODEL_RC, p.stderr)
            self.assertIn("nanochat: error: FAILED_PRECONDITION: no model loaded", p.stderr)
            p = run(srv, "chat", input="hello from stdin\n")
            self.assertEqual(p.returncode, NO_MODEL_RC, p.stderr)
            p = run(srv, "chat", input="")
            self.assertEqual(p.returncode, 3)
            p = run(srv, "chat", "x", "--temperature", "9")
            self.assertEqual(p.returncode, 3)        # the gate checks ranges before the model


GREEDY = ["--temperature", "0", "--max-tokens", "16", "--no-tools"]   # = SDK_GREEDY
SDK_GREEDY = dict(temperature=0, max_tokens=16, tools=False)


class Served(unittest.TestCase):
    def test_status_one_shot_and_repl_with_a_served_model(self):
        srv = M.model_server(args=["--model", "latest"])
        with srv, sdk(srv) as c:
            p = run(srv, "status")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("model:    sft d2 step 0 on cpu", p.stdout)
            self.assertIn("shape:    2 layers, 2 heads, d=128, ctx 128, vocab 2048", p.stdout)
            self.assertIn("model:    sft d2 step 0 on cpu", run(srv, "health").stdout)
            self.assertEqual(json.loads(run(srv, "--json", "status").stdout)["model"]["model_tag"], "d2")
            want = c.complete("Hello there", ephemeral=True, **SDK_GREEDY)
            self.assertTrue(want.content)
            self.assertGreater(want.tokens_generated, 0)
            # one-shot, from the arguments and from stdin: exactly the reply
            p = run(srv, "chat", "Hello", "there", "--ephemeral", *GREEDY)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout, want.content + "\n")
            p = run(srv, "chat", "--ephemeral", *GREEDY, input="Hello there\n")
            self.assertEqual((p.returncode, p.stdout), (0, want.content + "\n"), p.stderr)
            # the REPL on a pty: the streamed reply after the prompt, a server-side session, /quit
            with pty(srv, "chat", *GREEDY) as p:
                p.expect(rb"you> ")
                p.send(b"Hello there\r")
                p.expect(rb"nanochat> " + re.escape(want.content.encode().replace(b"\n", b"\r\n")) + rb"\r\n")
                p.expect(rb"you> ")
                p.send(b"/session\r")
                sid = p.expect(rb"session: ([0-9a-f]{32})\r\n").group(1).decode()
                p.send(b"/quit\r")
                self.assertEqual(p.wait(), 0)
            self.assertEqual([m.content for m in c.history(sid).session.messages], ["Hello there", want.content])

    def test_model_load_unload_sample_and_save(self):
        srv = M.model_server()
        with srv, sdk(srv) as c:
            p = run(srv, "model", "status")
            self.assertEqual((p.returncode, p.stdout), (0, "model:    none loaded\n"), p.stderr)
            p = run(srv, "sample", "Once", "upon", "--temperature", "0", "--max-tokens", "8")
            self.assertEqual(p.returncode, NO_MODEL_RC, p.stderr)
            p = run(srv, "model", "load", "--phase", "sft", "--model-tag", "d2")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("model:    sft d2 step 0 on cpu", p.stdout)
            self.assertIn("shape:    2 layers, 2 heads, d=128, ctx 128, vocab 2048", p.stdout)
            p = run(srv, "model", "load", "--model-tag", "nosuch")
            self.assertEqual(p.returncode, 5, p.stderr)                  # NOT_FOUND
            self.assertIn("nosuch", p.stderr)
            want = c.sample("Once upon", temperature=0, max_tokens=8).samples[0]
            self.assertTrue(want)
            p = run(srv, "sample", "Once", "upon", "--temperature", "0", "--max-tokens", "8")
            self.assertEqual((p.returncode, p.stdout), (0, want + "\n"), p.stderr)
            p = run(srv, "sample", "-", "--temperature", "0", "--max-tokens", "8", input="Once upon")
            self.assertEqual((p.returncode, p.stdout), (0, want + "\n"), p.stderr)
            p = run(srv, "--json", "sample", "Once upon", "--temperature", "0", "--max-tokens", "8",
                    "--num-samples", "2")
            self.assertEqual(json.loads(p.stdout), {"samples": [want, want]}, p.stderr)
            p = run(srv, "sample", "x", "--temperature", "3")
            self.assertEqual(p.returncode, 3, p.stderr)                  # INVALID_ARGUMENT
            self.assertIn("temperature", p.stderr)
            p = run(srv, "save", "--tag", "copy", "--step", "5")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("copy", run(srv, "checkpoints", "--tag", "copy").stdout)
            self.assertEqual(run(srv, "save", "--tag", "copy", "--step", "5").returncode, 6)
            p = run(srv, "model", "unload")
            self.assertEqual((p.returncode, p.stdout), (0, "model:    none loaded\n"), p.stderr)
            self.assertFalse(c.model_status().loaded)


if __name__ == "__main__":
    unittest.main()
