"""The Python SDK (clients/python/nanochat_client) against a real nanochatd: the raw RPC layer
covers every method of rpc_table.json, typed errors per status code, the chat stream, job
handles over Train.TestJob (ordered progress, replay, cancel, wait/check), TLS, and the example.

Without a model, Chat.*, Model.Sample and Eval.Loss must end with the typed FailedPrecondition
"no model loaded"; training starters that have not landed (Train.Base, ...) with Unimplemented.
Against a served tiny model (class Served, tests/integration/nc_models.py: tokenizer + random
sft/d2 checkpoint) Model.Load/Status (with its config), a greedy complete() reply that the
chat() stream reproduces piece by piece, history, sampling and unload succeed through the SDK,
and the example prints the model and a streamed reply."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import nanochat_client as nc
from nanochat_client import train_pb2

import nc_models as M
from nc_harness import Server, rpc_table

TOKEN = "sdk-admin-token-0123456789"
USER = "sdk-user-token-0123456789"
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("NC_SOURCE_DIR", os.path.join(HERE, "..", ".."))


def client(srv, token=None, **kw):
    return nc.Client("127.0.0.1:%d" % srv.port, token=token, **kw)


class Rpc(unittest.TestCase):
    def test_methods_match_rpc_table(self):
        table = {m["path"]: m for m in rpc_table()["methods"] if m["service"].startswith("nanochat.v1.")}
        ms = nc.all_methods()
        self.assertEqual(sorted(ms), sorted(table))
        for path, m in ms.items():
            self.assertEqual(m.server_streaming, table[path]["server_streaming"], path)
            self.assertEqual(m.options.admin, table[path]["admin"], path)
            self.assertEqual(m.options.default_deadline_ms, table[path]["default_deadline_ms"], path)
            self.assertEqual(m.input_cls.DESCRIPTOR.full_name, table[path]["input_type"], path)

    def test_make_message_enums_nested_and_bad_fields(self):
        r = nc.make_message(nc.chat_pb2.ChatRequest,
                            {"messages": [{"role": "user", "content": "hi"}], "top_k": 5})
        self.assertEqual(r.messages[0].role, nc.common_pb2.ROLE_USER)
        self.assertEqual(r.top_k, 5)
        self.assertEqual(nc.make_message(nc.model_pb2.ModelLoadRequest, {"phase": "sft"}).phase,
                         nc.common_pb2.PHASE_SFT)
        with self.assertRaises(nc.InvalidArgument):
            nc.make_message(nc.model_pb2.ModelLoadRequest, {"phase": "nosuch"})
        with self.assertRaises(nc.InvalidArgument):
            nc.make_message(nc.model_pb2.ModelLoadRequest, {"nosuch_field": 1})
        with self.assertRaises(nc.InvalidArgument):
            nc.make_message(nc.model_pb2.ModelLoadRequest, {"step": "ten"})

    def test_status_calls_succeed(self):
        with Server() as srv, client(srv) as c:
            self.assertEqual(c.health().status, "ok")
            self.assertEqual(c.health().worker, "nanochat-c")
            self.assertEqual(c.serving(), "SERVING")
            self.assertFalse(c.model_status().loaded)
            self.assertEqual(c.checkpoints(), [])
            self.assertEqual(list(c.sessions()), [])
            self.assertEqual(c.jobs(), [])
            # the raw layer reaches the same method by path
            self.assertEqual(c.rpc.call("/nanochat.v1.Health/Check").status, "ok")


class Errors(unittest.TestCase):
    def test_auth_errors_are_typed(self):
        with Server(token=TOKEN, user_token=USER) as srv:
            with client(srv) as c:
                self.assertEqual(c.health().status, "ok")        # public
                with self.assertRaises(nc.Unauthenticated) as cm:
                    c.model_status()
                self.assertTrue(cm.exception.message)
                self.assertEqual(cm.exception.exit_code, 7)
            with client(srv, token="wrong-token-0123456789") as c:
                with self.assertRaises(nc.Unauthenticated):
                    c.checkpoints()
            with client(srv, token=USER) as c:
                self.assertFalse(c.model_status().loaded)
                with self.assertRaises(nc.PermissionDenied):
                    c.job("0123456789abcdef").cancel()
            with client(srv, token=TOKEN) as c:
                self.assertEqual(c.checkpoints(), [])

    def test_invalid_argument_not_found_failed_precondition(self):
        with Server(args=["--enable-test-jobs"]) as srv, client(srv) as c:
            with self.assertRaises(nc.InvalidArgument) as cm:
                c.history(page_size=5000)
            self.assertIn("page_size", cm.exception.message)
            with self.assertRaises(nc.NotFound):
                c.history(session_id="0123456789abcdef0123")
            with self.assertRaises(nc.NotFound):
                c.job("0123456789abcdef").status()
            job = c.test_job(steps=1, step_ms=1)
            job.wait(timeout=30)
            with self.assertRaises(nc.FailedPrecondition):
                job.cancel()
            # every error is a NanochatError carrying its grpc code
            with self.assertRaises(nc.NanochatError) as cm:
                job.cancel()
            self.assertEqual(cm.exception.code.name, "FAILED_PRECONDITION")

    def test_unavailable_and_deadline(self):
        with Server(args=["--enable-test-jobs"]) as srv, client(srv) as c:
            job = c.test_job(steps=100000, step_ms=20)
            with self.assertRaises(nc.DeadlineExceeded):
                list(job.progress(timeout=0.3))
            with self.assertRaises(nc.DeadlineExceeded):
                job.wait(timeout=0.3)
            job.cancel()
            self.assertEqual(job.wait(timeout=30).state, train_pb2.JOB_CANCELLED)
            port = srv.port
        with nc.Client("127.0.0.1:%d" % port, timeout=2) as c:   # server gone
            with self.assertRaises(nc.Unavailable):
                c.health()
            with self.assertRaises(nc.Unavailable):
                c.wait_ready(0.5)

    def test_model_methods_need_a_model_starters_typed(self):
        """Without a model: chat, complete, sampling, Eval.Loss are FailedPrecondition; the
        Train.* / Eval starters give a job handle or Unimplemented (not landed)."""
        with Server(args=["--enable-test-jobs"]) as srv, client(srv) as c:
            for call in (lambda: list(c.chat("hello", max_tokens=8, ephemeral=True)),
                         lambda: c.complete([("user", "hi")], max_tokens=4, ephemeral=True),
                         lambda: c.sample("hi", max_tokens=2), lambda: list(c.sample_stream("hi")),
                         lambda: c.eval_loss(steps=1)):
                with self.assertRaises(nc.FailedPrecondition) as cm:
                    call()
                self.assertIn("no model loaded", cm.exception.message)
            for start in (lambda: c.train_base(depth=1, num_iterations=1),
                          lambda: c.train_tokenizer(max_chars=1000, vocab_size=300),
                          lambda: c.train_sft(), lambda: c.train_rl(),
                          lambda: c.eval_core(max_per_task=1), lambda: c.eval_chat(task_name="GSM8K")):
                try:
                    job = start()
                except (nc.Unimplemented, nc.FailedPrecondition) as e:
                    self.assertTrue(e.message)
                    continue
                self.assertEqual(len(job.id), 16)   # landed: a job handle
                job.cancel()


class Chat(unittest.TestCase):
    def test_chat_stream_error_is_typed_not_grpc(self):
        with Server() as srv, client(srv) as c:
            stream = c.chat([{"role": "system", "content": "be brief"}, ("user", "hi")])
            with self.assertRaises(nc.FailedPrecondition) as cm:
                for _ in stream:
                    pass
            self.assertNotIsInstance(cm.exception, __import__("grpc").RpcError)
            self.assertEqual(str(cm.exception), "FAILED_PRECONDITION: no model loaded")
            self.assertIsNone(stream.done)

    def test_chat_bad_request_is_invalid_argument(self):
        with Server() as srv, client(srv) as c:
            with self.assertRaises(nc.InvalidArgument) as cm:   # field rules come before the model
                list(c.chat("x", temperature=5.0))
            self.assertIn("temperature", cm.exception.message)
            with self.assertRaises(nc.InvalidArgument):
                c.chat([object()])


GREEDY = dict(max_tokens=16, temperature=0, tools=False)   # the served-model tests' request


class Served(unittest.TestCase):
    def test_chat_complete_history_sample_with_a_loaded_model(self):
        srv = M.model_server(token=TOKEN)
        with srv, client(srv, token=TOKEN) as c:
            with self.assertRaises(nc.FailedPrecondition):
                c.complete("hi", max_tokens=2)
            st = c.load_model(phase="sft", model_tag="d2")
            self.assertTrue(st.loaded)
            st = c.model_status()
            self.assertEqual((st.loaded, st.phase, st.model_tag, st.step, st.device),
                             (True, nc.common_pb2.PHASE_SFT, "d2", 0, "cpu"))
            self.assertEqual((st.config.n_layer, st.config.n_embd, st.config.sequence_len, st.config.vocab_size),
                             (2, 128, 128, 2048))
            self.assertEqual(st.sha256, srv.ckpts[("sft", "d2")]["sha256"])
            r = c.complete("Hello there", ephemeral=True, **GREEDY)
            self.assertTrue(r.content)
            self.assertGreater(r.tokens_generated, 0)
            self.assertLessEqual(r.tokens_generated, 16)
            stream = c.chat("Hello there", **GREEDY)
            pieces = list(stream)
            self.assertGreater(len(pieces), 0)
            self.assertEqual("".join(pieces), r.content)
            self.assertEqual(stream.text, r.content)
            self.assertEqual(stream.done.usage.completion_tokens, r.tokens_generated)
            self.assertEqual(stream.done.finish_reason, r.finish_reason)
            self.assertEqual(len(stream.session_id), 32)
            self.assertEqual([m.content for m in c.history(stream.session_id).session.messages],
                             ["Hello there", r.content])
            s = c.sample("ROMEO:", max_tokens=4, temperature=0, num_samples=2)
            self.assertEqual(len(s.samples), 2)
            self.assertTrue(s.samples[0])
            self.assertEqual(s.samples[0], s.samples[1])
            self.assertFalse(c.unload_model().loaded)
            with self.assertRaises(nc.FailedPrecondition):
                list(c.chat("hi", max_tokens=2))

    def test_example_with_and_without_a_model(self):
        srv = M.model_server(args=["--enable-test-jobs"])
        with srv, client(srv) as c:
            out = run_example(self, srv, "--test-job")           # no model loaded yet
            self.assertIn("health: ok", out)
            self.assertIn("model: none loaded", out)
            self.assertIn("chat: not available: FAILED_PRECONDITION: no model loaded", out)
            self.assertIn("step 5/5", out)
            self.assertIn(": succeeded", out)
            c.load_model(phase="sft")
            out = run_example(self, srv, "--prompt", "Hello")    # a model: status and a streamed reply
            self.assertIn("model: PHASE_SFT d2 step 0 (2 layers, context 128)", out)
            self.assertRegex(out, r"chat: done: [1-9][0-9]* tokens, FINISH_(LENGTH|STOP), session [0-9a-f]{32}\n")


def run_example(test, srv, *args):
    p = subprocess.run([sys.executable, os.path.join(SRC, "clients", "python", "example.py"),
                        "127.0.0.1:%d" % srv.port] + list(args), capture_output=True, text=True, timeout=120)
    test.assertEqual(p.returncode, 0, p.stderr)
    return p.stdout


class Jobs(unittest.TestCase):
    def test_progress_in_order_and_wait(self):
        with Server(args=["--enable-test-jobs"]) as srv, client(srv, token=None) as c:
            job = c.test_job(steps=6, step_ms=20)
            self.assertEqual(len(job.id), 16)
            evs = list(job.progress())
            self.assertEqual([e.seq for e in evs], list(range(1, len(evs) + 1)))
            steps = [e.progress.step for e in evs if e.kind == train_pb2.EVENT_PROGRESS]
            self.assertEqual(steps, list(range(1, 7)))
            self.assertEqual(evs[-1].state, train_pb2.JOB_SUCCEEDED)
            info = job.wait(timeout=30, check=True)
            self.assertEqual(info.state, train_pb2.JOB_SUCCEEDED)
            self.assertEqual(nc.state_name(info.state), "succeeded")
            self.assertEqual(nc.kind_name(info.kind), "test")
            self.assertEqual(job.status().last_seq, evs[-1].seq)
            # replay from the middle, snapshot on request, listing
            mid = evs[len(evs) // 2].seq
            self.assertEqual([e.seq for e in job.progress(from_seq=mid)],
                             [e.seq for e in evs if e.seq >= mid])
            snap = list(job.progress(from_seq=0, include_snapshot=True))
            self.assertEqual(len(snap), 1)
            self.assertEqual(snap[0].kind, train_pb2.EVENT_SNAPSHOT)
            self.assertEqual([j.job_id for j in c.jobs()], [job.id])

    def test_cancel_and_failed_jobs(self):
        with Server(args=["--enable-test-jobs"]) as srv, client(srv) as c:
            job = c.test_job(steps=100000, step_ms=20)
            events = job.progress()
            for ev in events:
                if ev.kind == train_pb2.EVENT_PROGRESS and ev.progress.step >= 2:
                    break
            info = job.cancel()
            self.assertEqual(info.job_id, job.id)
            rest = list(events)                  # the live stream ends with the final state
            self.assertEqual(rest[-1].state, train_pb2.JOB_CANCELLED)
            with self.assertRaises(nc.JobFailed) as cm:
                job.wait(timeout=30, check=True)
            self.assertEqual(cm.exception.job.state, train_pb2.JOB_CANCELLED)
            bad = c.test_job(steps=2, step_ms=1, fail_with="loss diverged")
            info = bad.wait(timeout=30)
            self.assertEqual(info.state, train_pb2.JOB_FAILED)
            self.assertIn("loss diverged", info.error)

    def test_following_stream_can_be_cancelled(self):
        with Server(args=["--enable-test-jobs"]) as srv, client(srv) as c:
            job = c.test_job(steps=100000, step_ms=20)
            with job.progress() as events:
                next(events)
            with self.assertRaises(nc.Cancelled):
                next(events)
            self.assertEqual(srv.wait_calls_baseline(0), 0)
            job.cancel()
            job.wait(timeout=30)


class Tls(unittest.TestCase):
    def test_tls_with_token(self):
        d = tempfile.mkdtemp(prefix="nc-sdk-tls-")
        try:
            key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                            key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                           check=True, capture_output=True)
            os.chmod(key, 0o600)
            with open(cert, "rb") as f:
                root = f.read()
            with Server(token=TOKEN, tls_root=root, args=["--tls-cert", cert, "--tls-key", key]) as srv:
                with nc.Client("localhost:%d" % srv.port, token=TOKEN, tls=True,
                               root_certificates=root) as c:
                    self.assertEqual(c.health().status, "ok")
                    self.assertEqual(c.checkpoints(), [])
                with nc.Client("localhost:%d" % srv.port, tls=True, root_certificates=root) as c:
                    with self.assertRaises(nc.Unauthenticated):
                        c.checkpoints()
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
