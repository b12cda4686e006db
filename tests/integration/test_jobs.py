"""Integration tests of the job manager through nanochatd: the built-in test job, Train.Status
with several subscribers and replay, cancel, a crashing job, kill -9 of the server mid-job and
restart (INTERRUPTED, every acknowledged event kept), store full, Chat.History and
Checkpoint.List from the store."""
import os
import signal
import threading
import time
import unittest

import grpc

from nanochat.v1 import chat_pb2, checkpoint_pb2, train_pb2

from nc_harness import Server

TERMINAL = {train_pb2.JOB_SUCCEEDED, train_pb2.JOB_FAILED, train_pb2.JOB_CANCELLED,
            train_pb2.JOB_INTERRUPTED}


def start_job(srv, **kw):
    return srv.stub("Train").TestJob(train_pb2.TestJobRequest(**kw), timeout=10)


def follow(srv, job_id, from_seq=1, timeout=60):
    return list(srv.stub("Train").Status(
        train_pb2.TrainStatusRequest(job_id=job_id, follow=True, from_seq=from_seq), timeout=timeout))


def wait_state(srv, job_id, states, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        evs = list(srv.stub("Train").Status(train_pb2.TrainStatusRequest(job_id=job_id, follow=False,
                                                                         from_seq=0), timeout=10))
        if evs[0].job.state in states:
            return evs[0].job
        time.sleep(0.05)
    raise AssertionError("job %s never reached %s" % (job_id, states))


class Jobs(unittest.TestCase):
    def test_job_runs_and_streams_progress(self):
        with Server(args=["--enable-test-jobs"]) as srv:
            ref = start_job(srv, steps=8, step_ms=30)
            self.assertEqual(len(ref.job_id), 16)
            evs = follow(srv, ref.job_id)
            self.assertEqual(evs[0].kind, train_pb2.EVENT_SNAPSHOT)
            rest = evs[1:]
            self.assertEqual([e.seq for e in rest], list(range(1, len(rest) + 1)))
            self.assertEqual(rest[0].kind, train_pb2.EVENT_STATE)
            self.assertEqual(rest[0].state, train_pb2.JOB_QUEUED)
            steps = [e.progress.step for e in rest if e.kind == train_pb2.EVENT_PROGRESS]
            self.assertEqual(steps[-1], 8)
            self.assertEqual(rest[-1].kind, train_pb2.EVENT_STATE)
            self.assertEqual(rest[-1].state, train_pb2.JOB_SUCCEEDED)

    def test_three_subscribers_identical_and_replay(self):
        with Server(args=["--enable-test-jobs"]) as srv:
            ref = start_job(srv, steps=20, step_ms=20)
            results = [None] * 3

            def sub(i):
                results[i] = [(e.seq, e.kind, e.state, e.progress.step) for e in follow(srv, ref.job_id)[1:]]

            ts = [threading.Thread(target=sub, args=(i,)) for i in range(3)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(60)
            self.assertTrue(results[0])
            self.assertEqual(results[0], results[1])
            self.assertEqual(results[0], results[2])
            # replay from the middle after the job ended
            mid = results[0][len(results[0]) // 2][0]
            again = [(e.seq, e.kind, e.state, e.progress.step) for e in follow(srv, ref.job_id, from_seq=mid)[1:]]
            self.assertEqual(again, [r for r in results[0] if r[0] >= mid])
            # from_seq 0: snapshot only
            only = follow(srv, ref.job_id, from_seq=0)
            self.assertEqual(len(only), 1)
            self.assertEqual(only[0].job.state, train_pb2.JOB_SUCCEEDED)

    def test_long_stream_spans_store_batches(self):
        # a replay (follow=false) sends each store batch (64 events) with write-buffer hints but
        # for its last event: live and replayed streams across many batches must be complete
        # and in order
        with Server(args=["--enable-test-jobs"]) as srv:
            ref = start_job(srv, steps=500, step_ms=0)
            live = [e.seq for e in follow(srv, ref.job_id)[1:]]
            self.assertGreater(len(live), 500)
            self.assertEqual(live, list(range(1, len(live) + 1)))
            for start in (1, 64, 65, 130):
                evs = list(srv.stub("Train").Status(train_pb2.TrainStatusRequest(
                    job_id=ref.job_id, follow=False, from_seq=start), timeout=30))
                self.assertEqual(evs[0].kind, train_pb2.EVENT_SNAPSHOT)
                self.assertEqual([e.seq for e in evs[1:]], live[start - 1:])
                self.assertEqual(evs[-1].state, train_pb2.JOB_SUCCEEDED)

    def test_listing_jobs(self):
        with Server(args=["--enable-test-jobs"]) as srv:
            ids = [start_job(srv, steps=1, step_ms=1).job_id for _ in range(3)]
            for i in ids:
                wait_state(srv, i, TERMINAL)
            snaps = list(srv.stub("Train").Status(train_pb2.TrainStatusRequest(), timeout=10))
            self.assertEqual(sorted(s.job.job_id for s in snaps), sorted(ids))
            self.assertTrue(all(s.kind == train_pb2.EVENT_SNAPSHOT for s in snaps))

    def test_cancel_running_job(self):
        with Server(args=["--enable-test-jobs"]) as srv:
            ref = start_job(srv, steps=100000, step_ms=20)
            wait_state(srv, ref.job_id, {train_pb2.JOB_RUNNING})
            info = srv.stub("Train").Cancel(train_pb2.TrainCancelRequest(job_id=ref.job_id), timeout=10)
            self.assertEqual(info.job_id, ref.job_id)
            job = wait_state(srv, ref.job_id, TERMINAL)
            self.assertEqual(job.state, train_pb2.JOB_CANCELLED)
            with self.assertRaises(grpc.RpcError) as cm:
                srv.stub("Train").Cancel(train_pb2.TrainCancelRequest(job_id=ref.job_id), timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)

    def test_crashing_job_fails_with_reason(self):
        with Server(args=["--enable-test-jobs"]) as srv:
            ref = start_job(srv, steps=50, step_ms=10, crash_at=3)
            job = wait_state(srv, ref.job_id, TERMINAL)
            self.assertEqual(job.state, train_pb2.JOB_FAILED)
            self.assertIn("signal 9", job.error)
            ref = start_job(srv, steps=2, step_ms=1, fail_with="loss diverged")
            job = wait_state(srv, ref.job_id, TERMINAL)
            self.assertEqual(job.state, train_pb2.JOB_FAILED)
            self.assertIn("loss diverged", job.error)

    def test_kill9_server_mid_job_then_restart_interrupted(self):
        srv = Server(args=["--enable-test-jobs"]).start()
        try:
            ref = start_job(srv, steps=100000, step_ms=20)
            seen = []
            it = srv.stub("Train").Status(train_pb2.TrainStatusRequest(job_id=ref.job_id, follow=True), timeout=60)
            for e in it:
                if e.kind != train_pb2.EVENT_SNAPSHOT:
                    seen.append((e.seq, e.kind, e.progress.step))
                if len([s for s in seen if s[1] == train_pb2.EVENT_PROGRESS]) >= 5:
                    break
            it.cancel()
            srv.kill9()
            srv.start()
            job = wait_state(srv, ref.job_id, TERMINAL)
            self.assertEqual(job.state, train_pb2.JOB_INTERRUPTED)
            stored = [(e.seq, e.kind, e.progress.step) for e in follow(srv, ref.job_id)[1:]]
            for s in seen:  # every acknowledged (delivered) event survived
                self.assertIn(s, stored)
            self.assertEqual(stored[-1][1], train_pb2.EVENT_STATE)
        finally:
            srv.close()

    def test_test_jobs_off_by_default(self):
        with Server() as srv:
            with self.assertRaises(grpc.RpcError) as cm:
                start_job(srv, steps=1)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

    def test_unknown_and_bad_job_ids(self):
        with Server(args=["--enable-test-jobs"]) as srv:
            with self.assertRaises(grpc.RpcError) as cm:
                follow(srv, "0123456789abcdef")
            self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
            with self.assertRaises(grpc.RpcError) as cm:
                follow(srv, "../../etc/passwd")
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)


class StoreBacked(unittest.TestCase):
    def test_chat_history_unknown_and_bad_ids(self):
        with Server() as srv:
            h = srv.stub("Chat").History(chat_pb2.ChatHistoryRequest(), timeout=10)
            self.assertEqual(len(h.sessions), 0)
            with self.assertRaises(grpc.RpcError) as cm:
                srv.stub("Chat").History(chat_pb2.ChatHistoryRequest(session_id="0123456789abcdef0123"), timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
            for bad in ("../etc/passwd", "a/b", "x" * 100, "short"):
                with self.assertRaises(grpc.RpcError) as cm:
                    srv.stub("Chat").History(chat_pb2.ChatHistoryRequest(session_id=bad), timeout=10)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, bad)
            with self.assertRaises(grpc.RpcError) as cm:
                srv.stub("Chat").History(chat_pb2.ChatHistoryRequest(page_token="zz-not-a-token"), timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    def test_checkpoint_list_orphans(self):
        with Server() as srv:
            r = srv.stub("Checkpoint").List(checkpoint_pb2.CheckpointListRequest(), timeout=10)
            self.assertEqual(len(r.checkpoints), 0)
            d = os.path.join(srv.data_dir, "checkpoints", "base_checkpoints", "d4")   # nanochat layout (nc_checkpoint.h)
            os.makedirs(d)
            with open(os.path.join(d, "model_000100.safetensors"), "wb") as f:
                f.write(b"x" * 10)
            r = srv.stub("Checkpoint").List(checkpoint_pb2.CheckpointListRequest(verify=True), timeout=10)
            self.assertEqual(len(r.checkpoints), 1)
            c = r.checkpoints[0]
            self.assertEqual((c.tag, c.step, c.status), ("d4", 100, 2))  # CHECKPOINT_ORPHAN

    def test_store_full_is_resource_exhausted(self):
        with Server(args=["--enable-test-jobs", "--store-map-mb", "1"]) as srv:
            code = None
            for _ in range(200):
                try:
                    ref = start_job(srv, steps=2000, step_ms=0)
                    wait_state(srv, ref.job_id, TERMINAL, timeout=60)
                except grpc.RpcError as e:
                    code = e.code()
                    break
            self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertEqual(srv.health().status, "ok")


if __name__ == "__main__":
    unittest.main()
