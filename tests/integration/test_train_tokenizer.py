"""Train.Tokenizer end to end through a real nanochatd: a user dataset (tinyshakespeare as a
.txt file under <data-dir>/datasets/), the job returns at once, streams progress (merges done),
reports metrics, installs <data-dir>/tokenizer/tokenizer.txt, and Tokenizer.Encode picks the
new tokenizer up without a restart; a second job keeps the previous file; a missing corpus is
FAILED_PRECONDITION before any job is queued; cancel leaves no tokenizer installed."""
import os
import shutil
import time
import unittest

import grpc

from nanochat.v1 import common_pb2, tokenizer_pb2, train_pb2

from nc_harness import Server

SRC = os.environ.get("NC_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
SHAKESPEARE = os.path.join(SRC, "..", "shared", "data", "tinyshakespeare", "input.txt")
TERMINAL = {train_pb2.JOB_SUCCEEDED, train_pb2.JOB_FAILED, train_pb2.JOB_CANCELLED,
            train_pb2.JOB_INTERRUPTED}


def put_dataset(srv, name, copies=1):
    d = os.path.join(srv.data_dir, "datasets", name)
    os.makedirs(d, exist_ok=True)
    for i in range(copies):
        shutil.copy(SHAKESPEARE, os.path.join(d, "part%d.txt" % i))
    return d


def events(srv, job_id, timeout=120):
    return list(srv.stub("Train").Status(
        train_pb2.TrainStatusRequest(job_id=job_id, follow=True, from_seq=1), timeout=timeout))


def final_state(evs):
    st = [e.state for e in evs if e.kind == train_pb2.EVENT_STATE]
    return st[-1] if st else None


class TrainTokenizer(unittest.TestCase):
    def test_train_install_and_serve(self):
        with Server() as srv:
            put_dataset(srv, "shakespeare")
            enc = srv.stub("Tokenizer").Encode
            with self.assertRaises(grpc.RpcError) as cm:
                enc(tokenizer_pb2.EncodeRequest(text="hello"), timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
            t0 = time.time()
            ref = srv.stub("Train").Tokenizer(train_pb2.TrainTokenizerRequest(
                vocab_size=1024, dataset=train_pb2.DatasetRef(name="shakespeare")), timeout=10)
            self.assertLess(time.time() - t0, 5)   # the job id comes back at once
            self.assertEqual(len(ref.job_id), 16)
            evs = events(srv, ref.job_id)
            self.assertEqual(final_state(evs), train_pb2.JOB_SUCCEEDED,
                             [e.message for e in evs if e.message])
            prog = [e.progress for e in evs if e.kind == train_pb2.EVENT_PROGRESS]
            self.assertGreater(len(prog), 0)
            self.assertEqual(prog[-1].step, prog[-1].total_steps)
            self.assertEqual(prog[-1].total_steps, 1024 - 256 - 9)
            steps = [p.step for p in prog]
            self.assertEqual(steps, sorted(steps))
            metrics = {}
            for e in evs:
                metrics.update(e.metrics)
            self.assertEqual(metrics["vocab_size"], 1024)
            self.assertGreater(metrics["val_bytes_per_token"], 2.0)
            path = os.path.join(srv.data_dir, "tokenizer", "tokenizer.txt")
            self.assertTrue(os.path.exists(path))
            # served without a restart (the holder checks the file at most once a second)
            deadline = time.time() + 10
            while True:
                try:
                    r = enc(tokenizer_pb2.EncodeRequest(text="To be, or not to be"), timeout=10)
                    break
                except grpc.RpcError as e:
                    self.assertEqual(e.code(), grpc.StatusCode.FAILED_PRECONDITION)
                    self.assertLess(time.time(), deadline)
                    time.sleep(0.2)
            self.assertGreater(r.count, 0)
            self.assertLess(r.count, len("To be, or not to be"))   # merges were learned
            back = srv.stub("Tokenizer").Decode(tokenizer_pb2.DecodeRequest(tokens=r.tokens), timeout=10)
            self.assertEqual(back.text, "To be, or not to be")
            # a second job with another vocabulary replaces it and keeps the previous file
            ref2 = srv.stub("Train").Tokenizer(train_pb2.TrainTokenizerRequest(
                vocab_size=600, dataset=train_pb2.DatasetRef(name="shakespeare")), timeout=10)
            self.assertEqual(final_state(events(srv, ref2.job_id)), train_pb2.JOB_SUCCEEDED)
            self.assertTrue(os.path.exists(os.path.join(srv.data_dir, "tokenizer", "tokenizer.prev.txt")))
            deadline = time.time() + 10
            while True:
                r2 = enc(tokenizer_pb2.EncodeRequest(text="<|bos|>", allow_special=True), timeout=10)
                if r2.tokens[0] == 600 - 9:
                    break
                self.assertLess(time.time(), deadline, "the new tokenizer was not picked up")
                time.sleep(0.2)

    def test_missing_corpus_is_failed_precondition(self):
        with Server() as srv:
            for ds in (None, train_pb2.DatasetRef(name="nope")):
                with self.assertRaises(grpc.RpcError) as cm:
                    srv.stub("Train").Tokenizer(train_pb2.TrainTokenizerRequest(vocab_size=1024, dataset=ds),
                                                timeout=10)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
                self.assertIn("no training text", cm.exception.details())
            with self.assertRaises(grpc.RpcError) as cm:
                srv.stub("Train").Tokenizer(train_pb2.TrainTokenizerRequest(
                    dataset=train_pb2.DatasetRef(name="../etc")), timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            with self.assertRaises(grpc.RpcError) as cm:
                srv.stub("Train").Tokenizer(train_pb2.TrainTokenizerRequest(vocab_size=100), timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("vocab_size", cm.exception.details())

    def test_cancel_installs_nothing(self):
        with Server() as srv:
            put_dataset(srv, "big", copies=16)
            ref = srv.stub("Train").Tokenizer(train_pb2.TrainTokenizerRequest(
                vocab_size=60000, dataset=train_pb2.DatasetRef(name="big")), timeout=10)
            it = srv.stub("Train").Status(train_pb2.TrainStatusRequest(job_id=ref.job_id, follow=True),
                                          timeout=120)
            for e in it:   # wait until it runs
                if e.kind == train_pb2.EVENT_STATE and e.state == train_pb2.JOB_RUNNING:
                    break
            srv.stub("Train").Cancel(train_pb2.TrainCancelRequest(job_id=ref.job_id), timeout=10)
            rest = list(it)
            self.assertEqual(final_state(rest), train_pb2.JOB_CANCELLED)
            self.assertFalse(os.path.exists(os.path.join(srv.data_dir, "tokenizer", "tokenizer.txt")))


if __name__ == "__main__":
    unittest.main()
