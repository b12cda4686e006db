"""Train.Base end to end through a real nanochatd (issue 6): a tokenizer from the
Train.Tokenizer job, a tiny model pretrained on tinyshakespeare by the nanochat-train job with two
subscribers receiving identical ordered events, checkpoints in LMDB (Checkpoint.List verifies the
files), validation before queueing (INVALID_ARGUMENT / FAILED_PRECONDITION / RESOURCE_EXHAUSTED
naming the field), Train.Cancel (final checkpoint), kill -9 of the training child (FAILED with
the reason), a NaN loss (FAILED "loss diverged"), kill -9 of the server (INTERRUPTED) and a resume
whose loss trajectory equals an uninterrupted run's, and a crash inside a checkpoint write (the
previous step stays complete and loadable; the half-written one is never published)."""
import os
import signal
import subprocess
import threading
import time
import unittest

import grpc

from nanochat.v1 import checkpoint_pb2, common_pb2, eval_pb2, model_pb2, train_pb2

import nc_models as M
from nc_harness import BUILD, Server

SHAKESPEARE = M.SHAKESPEARE
TERMINAL = {train_pb2.JOB_SUCCEEDED, train_pb2.JOB_FAILED, train_pb2.JOB_CANCELLED,
            train_pb2.JOB_INTERRUPTED}
# every step reported (the job rate-limits PROGRESS to one per 250 ms by default)
EVERY_STEP = {"NANOCHAT_PROGRESS_MIN_MS": "0"}
# a tiny model: depth 2, n_embd 128 (4 heads of 32), T 64, 8 rows per micro-batch
TINY = dict(depth=2, aspect_ratio=64, head_dim=32, max_seq_len=64, window_pattern="SL",
            device_batch_size=8, total_batch_size=512, warmup_steps=2, eval_tokens=1024,
            dataset=train_pb2.DatasetRef(name="shake"))


def put_dataset(data_dir):
    """tinyshakespeare as documents of ~800 characters: datasets/shake/{train,val}.jsonl"""
    M.write_paragraph_dataset(os.path.join(data_dir, "datasets", "shake"))


def put_tokenizer(data_dir, vocab=1024):
    """a tokenizer trained with build/bin/nc_tok_train (faster than the job for most tests)"""
    os.makedirs(os.path.join(data_dir, "tokenizer"), exist_ok=True)
    subprocess.run([os.path.join(BUILD, "bin", "nc_tok_train"), "-o",
                    os.path.join(data_dir, "tokenizer", "tokenizer.txt"), "--vocab-size", str(vocab),
                    "--docs", "blank", "--quiet", SHAKESPEARE], check=True, stdout=subprocess.DEVNULL)


def prepared(env=None, tokenizer=True):
    srv = Server(env=env)
    put_dataset(srv.data_dir)
    if tokenizer:
        put_tokenizer(srv.data_dir)
    return srv


def base(srv, **kw):
    args = dict(TINY)
    args.update(kw)
    return srv.stub("Train").Base(train_pb2.TrainBaseRequest(**args), timeout=20)


def events(srv, job_id, timeout=300, from_seq=1):
    return list(srv.stub("Train").Status(
        train_pb2.TrainStatusRequest(job_id=job_id, follow=True, from_seq=from_seq), timeout=timeout))


def final_state(evs):
    st = [e.state for e in evs if e.kind == train_pb2.EVENT_STATE]
    return st[-1] if st else None


def reason(evs):
    return [e.message for e in evs if e.message]


def job_info(srv, job_id):
    evs = list(srv.stub("Train").Status(train_pb2.TrainStatusRequest(job_id=job_id, follow=False,
                                                                      from_seq=0), timeout=10))
    return evs[0].job


def wait_for(it, pred):
    """consumes a Status stream until pred(event) holds; returns that event"""
    for e in it:
        if pred(e):
            return e
    raise AssertionError("the stream ended first")


def losses(evs):
    return {e.progress.step: e.progress.loss for e in evs if e.kind == train_pb2.EVENT_PROGRESS}


def listed(srv, tag):
    r = srv.stub("Checkpoint").List(checkpoint_pb2.CheckpointListRequest(
        phase=common_pb2.PHASE_BASE, tag=tag, verify=True), timeout=30)
    return r.checkpoints


class TrainBase(unittest.TestCase):
    def test_tokenizer_then_base_two_subscribers_checkpoints(self):
        srv = prepared(env=EVERY_STEP, tokenizer=False)
        with srv:
            tref = srv.stub("Train").Tokenizer(train_pb2.TrainTokenizerRequest(
                vocab_size=1024, dataset=train_pb2.DatasetRef(name="shake")), timeout=10)
            self.assertEqual(final_state(events(srv, tref.job_id)), train_pb2.JOB_SUCCEEDED)
            # the served tokenizer is picked up within a second
            deadline = time.time() + 10
            while True:
                try:
                    t0 = time.time()
                    ref = base(srv, num_iterations=12, eval_every=6, save_every=6)
                    break
                except grpc.RpcError as e:
                    self.assertEqual(e.code(), grpc.StatusCode.FAILED_PRECONDITION, e.details())
                    self.assertLess(time.time(), deadline)
                    time.sleep(0.2)
            self.assertLess(time.time() - t0, 5)   # a job id at once
            self.assertEqual(len(ref.job_id), 16)
            out = [None, None]

            def sub(i):
                out[i] = events(srv, ref.job_id)
            ths = [threading.Thread(target=sub, args=(i,)) for i in range(2)]
            for t in ths:
                t.start()
            for t in ths:
                t.join(300)
            a, b = ([e.SerializeToString() for e in evs[1:]] for evs in out)
            self.assertEqual(a, b)   # identical, ordered
            evs = out[0][1:]
            self.assertEqual([e.seq for e in evs], list(range(1, len(evs) + 1)))
            self.assertEqual(final_state(evs), train_pb2.JOB_SUCCEEDED, reason(evs))
            prog = [e.progress for e in evs if e.kind == train_pb2.EVENT_PROGRESS]
            self.assertEqual([p.step for p in prog], list(range(1, 13)))
            last = prog[-1]
            self.assertEqual(last.total_steps, 12)
            self.assertEqual(last.tokens_seen, 12 * 512)
            self.assertGreater(last.tokens_per_sec, 0)
            self.assertGreater(last.mfu, 0)
            self.assertGreater(last.elapsed_s, 0)
            self.assertTrue(last.eta_s >= 0)       # known after step 10
            self.assertLess(last.loss, prog[0].loss)
            evals = [e for e in evs if e.kind == train_pb2.EVENT_EVAL and e.message == "val_bpb"]
            self.assertEqual([int(e.metrics["step"]) for e in evals], [0, 6, 12])
            self.assertLess(evals[-1].metrics["val_bpb"], evals[0].metrics["val_bpb"])
            cks = [e.checkpoint for e in evs if e.kind == train_pb2.EVENT_CHECKPOINT]
            self.assertEqual([c.step for c in cks], [6, 12])
            self.assertEqual(cks[-1].tag, "d2")
            self.assertEqual(cks[-1].path, "checkpoints/base_checkpoints/d2/model_000012.safetensors")
            self.assertEqual(cks[-1].config.n_embd, 128)
            self.assertEqual(cks[-1].config.vocab_size, 1024)
            self.assertAlmostEqual(cks[-1].val_bpb, evals[-1].metrics["val_bpb"], places=9)
            info = job_info(srv, ref.job_id)
            self.assertEqual(info.checkpoint.step, 12)
            self.assertEqual(info.checkpoint.job_id, ref.job_id)
            self.assertIn("val_bpb", info.metrics)
            self.assertIn("train_loss", info.metrics)
            ls = listed(srv, "d2")
            self.assertEqual([(c.step, c.status) for c in ls],
                             [(6, common_pb2.CHECKPOINT_OK), (12, common_pb2.CHECKPOINT_OK)])
            self.assertEqual(ls[1].job_id, ref.job_id)
            for f in ("model_000012.safetensors", "optim_000012_rank0.safetensors", "meta_000012.json"):
                self.assertTrue(os.path.exists(os.path.join(srv.data_dir, "checkpoints", "base_checkpoints", "d2", f)))
            with open(os.path.join(srv.data_dir, "jobs", ref.job_id, "output.log")) as f:
                log = f.read()
            self.assertIn("step 00011/00012 (91.67%) | loss: ", log)
            self.assertIn("Step 00012 | Validation bpb: ", log)
            # the trained checkpoint serves: Model.Load (latest step of base/d2), a raw sample,
            # and Eval.Loss over the same val rows as the job's last evaluation gives its bpb
            st = srv.stub("Model").Load(model_pb2.ModelLoadRequest(
                phase=common_pb2.PHASE_BASE, model_tag="d2"), timeout=60)
            self.assertEqual((st.loaded, st.model_tag, st.step), (True, "d2", 12))
            self.assertEqual((st.config.n_layer, st.config.n_embd, st.config.vocab_size), (2, 128, 1024))
            sm = srv.stub("Model").Sample(model_pb2.SampleRequest(
                prompt="ROMEO:", temperature=0, max_tokens=8), timeout=60)
            self.assertTrue(sm.samples[0])
            ev = srv.stub("Eval").Loss(eval_pb2.EvalLossRequest(
                split="val", steps=2, device_batch_size=8, dataset=TINY["dataset"]), timeout=120)
            self.assertEqual((ev.model_tag, ev.model_step), ("d2", 12))
            # (fp32 forward in two processes with their own thread counts: equal to ~1e-7, not bit-exact)
            self.assertAlmostEqual(ev.bits_per_byte, evals[-1].metrics["val_bpb"], delta=1e-4)

    def test_requests_are_checked_before_queueing(self):
        srv = prepared(tokenizer=False)
        with srv:
            def code_of(**kw):
                with self.assertRaises(grpc.RpcError) as cm:
                    base(srv, **kw)
                return cm.exception.code(), cm.exception.details()
            c, d = code_of(num_iterations=5)
            self.assertEqual(c, grpc.StatusCode.FAILED_PRECONDITION)
            self.assertIn("tokenizer", d)
            put_tokenizer(srv.data_dir)
            time.sleep(1.1)   # the server checks the tokenizer file at most once a second
            cases = [
                (dict(total_batch_size=1000), grpc.StatusCode.INVALID_ARGUMENT,
                 "device_batch_size x max_seq_len = 8 x 64 = 512"),
                (dict(total_batch_size=-1, max_seq_len=60), grpc.StatusCode.INVALID_ARGUMENT, "(automatic)"),
                (dict(device="cuda"), grpc.StatusCode.FAILED_PRECONDITION, "device"),
                (dict(window_pattern="SXL"), grpc.StatusCode.INVALID_ARGUMENT, "window_pattern"),
                (dict(head_dim=33), grpc.StatusCode.INVALID_ARGUMENT, "head_dim"),
                (dict(optimizer="sgd"), grpc.StatusCode.INVALID_ARGUMENT, "optimizer"),
                (dict(dataset=train_pb2.DatasetRef(name="nope")), grpc.StatusCode.FAILED_PRECONDITION,
                 "dataset"),
                (dict(dataset=None), grpc.StatusCode.FAILED_PRECONDITION, "build-corpus"),
                (dict(num_iterations=10, resume_from_step=5), grpc.StatusCode.FAILED_PRECONDITION,
                 "resume_from_step"),
                (dict(depth=64, aspect_ratio=256, head_dim=128, num_iterations=10),
                 grpc.StatusCode.RESOURCE_EXHAUSTED, "GiB"),
                (dict(num_iterations=-1, target_param_data_ratio=0.001, total_batch_size=1 << 20),
                 grpc.StatusCode.INVALID_ARGUMENT, "horizon is 0 steps"),
            ]
            for kw, code, text in cases:
                c, d = code_of(**kw)
                self.assertEqual(c, code, (kw, d))
                self.assertIn(text, d, kw)
            jobs = list(srv.stub("Train").Status(train_pb2.TrainStatusRequest(), timeout=10))
            self.assertEqual(jobs, [])   # nothing was queued

    def test_cancel_stops_with_a_final_checkpoint(self):
        srv = prepared()
        with srv:
            ref = base(srv, num_iterations=100000, eval_every=-1, model_tag="cancel")
            it = srv.stub("Train").Status(train_pb2.TrainStatusRequest(job_id=ref.job_id), timeout=300)
            wait_for(it, lambda e: e.kind == train_pb2.EVENT_PROGRESS and e.progress.step >= 3)
            srv.stub("Train").Cancel(train_pb2.TrainCancelRequest(job_id=ref.job_id), timeout=10)
            rest = list(it)
            self.assertEqual(final_state(rest), train_pb2.JOB_CANCELLED, reason(rest))
            cks = [e.checkpoint for e in rest if e.kind == train_pb2.EVENT_CHECKPOINT]
            self.assertEqual(len(cks), 1, reason(rest))
            info = job_info(srv, ref.job_id)
            self.assertEqual(info.checkpoint.step, cks[0].step)
            self.assertGreaterEqual(cks[0].step, 3)
            self.assertEqual(info.progress.step, cks[0].step)   # the step in flight was abandoned
            self.assertEqual([c.step for c in listed(srv, "cancel")], [cks[0].step])
            self.assertEqual(listed(srv, "cancel")[0].status, common_pb2.CHECKPOINT_OK)

    def test_nan_loss_fails_with_loss_diverged(self):
        srv = prepared(env={"NC_TRAIN_FAULT": "nan@3"})
        with srv:
            ref = base(srv, num_iterations=20, model_tag="nan")
            evs = events(srv, ref.job_id)
            self.assertEqual(final_state(evs), train_pb2.JOB_FAILED)
            info = job_info(srv, ref.job_id)
            self.assertIn("loss diverged at step 3", info.error)
            self.assertEqual(info.exit_code, 1)
            self.assertEqual(list(listed(srv, "nan")), [])

    def test_killed_child_fails_with_reason(self):
        srv = prepared()
        with srv:
            ref = base(srv, num_iterations=100000, eval_every=-1, model_tag="kill")
            it = srv.stub("Train").Status(train_pb2.TrainStatusRequest(job_id=ref.job_id), timeout=300)
            wait_for(it, lambda e: e.kind == train_pb2.EVENT_PROGRESS)
            pid = job_info(srv, ref.job_id).pid
            self.assertGreater(pid, 0)
            os.kill(pid, signal.SIGKILL)
            rest = list(it)
            self.assertEqual(final_state(rest), train_pb2.JOB_FAILED)
            info = job_info(srv, ref.job_id)
            self.assertIn("killed by signal 9", info.error)
            self.assertEqual(info.exit_code, 128 + 9)

    def test_server_kill9_interrupted_then_resume_matches_uninterrupted(self):
        N, SAVE = 16, 6
        cfg = dict(num_iterations=N, save_every=SAVE, eval_every=-1, total_batch_size=1024, threads=2)
        srv = prepared(env=EVERY_STEP)
        srv.start()
        try:
            ref = base(srv, model_tag="ref", **cfg)
            want = losses(events(srv, ref.job_id))
            self.assertEqual(sorted(want), list(range(1, N + 1)))
            job = base(srv, model_tag="run", **cfg)
            it = srv.stub("Train").Status(train_pb2.TrainStatusRequest(job_id=job.job_id), timeout=300)
            wait_for(it, lambda e: e.kind == train_pb2.EVENT_CHECKPOINT and e.checkpoint.step == SAVE)
            wait_for(it, lambda e: e.kind == train_pb2.EVENT_PROGRESS and e.progress.step >= SAVE + 2)
            it.cancel()
            srv.kill9()
            srv.start()
            info = job_info(srv, job.job_id)
            self.assertEqual(info.state, train_pb2.JOB_INTERRUPTED)
            self.assertEqual(info.checkpoint.step, SAVE)   # the last checkpoint in LMDB
            resumed = base(srv, model_tag="run", resume_from_step=info.checkpoint.step, **cfg)
            evs = events(srv, resumed.job_id)
            self.assertEqual(final_state(evs), train_pb2.JOB_SUCCEEDED, reason(evs))
            got = losses(evs)
            self.assertEqual(sorted(got), list(range(SAVE + 1, N + 1)))
            for step, loss in got.items():
                self.assertAlmostEqual(loss, want[step], delta=1e-6 * abs(want[step]), msg="step %d" % step)
            ok = [c.step for c in listed(srv, "run") if c.status == common_pb2.CHECKPOINT_OK]
            self.assertEqual(ok, [SAVE, 2 * SAVE, N])   # (+ an orphan: the child's SIGTERM checkpoint)
        finally:
            srv.close()

    def test_crash_inside_a_checkpoint_write_keeps_the_previous_step(self):
        srv = prepared(env={"NC_TRAIN_FAULT": "model:rename@8"})
        with srv:
            ref = base(srv, num_iterations=12, save_every=4, eval_every=-1, model_tag="crash")
            evs = events(srv, ref.job_id)
            self.assertEqual(final_state(evs), train_pb2.JOB_FAILED)
            self.assertIn("killed by signal 9", job_info(srv, ref.job_id).error)
            ls = listed(srv, "crash")
            ok = [c.step for c in ls if c.status == common_pb2.CHECKPOINT_OK]
            self.assertEqual(ok, [4])   # step 8 was never published
            for c in ls:
                if c.step == 8:   # its model file may exist (renamed before the crash): an orphan
                    self.assertEqual(c.status, common_pb2.CHECKPOINT_ORPHAN)
            d = os.path.join(srv.data_dir, "checkpoints", "base_checkpoints", "crash")
            self.assertFalse(os.path.exists(os.path.join(d, "meta_000008.json")))
            # the previous step is complete: training resumes from it (the fault fires at step 8
            # only of a fresh write; the resumed job rewrites 8 and the crash repeats there, so
            # resume with save_every 5 which never saves step 8)
            again = base(srv, num_iterations=12, save_every=5, eval_every=-1, model_tag="crash",
                         resume_from_step=4)
            evs = events(srv, again.job_id)
            self.assertEqual(final_state(evs), train_pb2.JOB_SUCCEEDED, reason(evs))
            ok = [c.step for c in listed(srv, "crash") if c.status == common_pb2.CHECKPOINT_OK]
            self.assertEqual(ok, [4, 5, 10, 12])


if __name__ == "__main__":
    unittest.main()
