"""Integration tests of Tokenizer.Encode / Tokenizer.Decode against a real nanochatd with a
tokenizer trained by build/bin/nc_tok_train on tinyshakespeare: round trip, ids equal to the
C library's (nc_tok), the explicit BOS option, specials only when asked ("<|python_start|>" as
user text stays ordinary), batches, limits naming the field, no tokenizer -> FAILED_PRECONDITION,
the data-dir default file, and a bad --tokenizer refusing to start."""
import base64
import os
import shutil
import subprocess
import tempfile
import unittest

import grpc

from nanochat.v1 import tokenizer_pb2

from nc_harness import BUILD, NANOCHATD, Server

SRC = os.environ.get("NC_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
SHAKESPEARE = os.path.join(SRC, "..", "shared", "data", "tinyshakespeare", "input.txt")
VOCAB = 2048
TMP = tempfile.mkdtemp(prefix="nc-int-tok-")
TOKFILE = os.path.join(TMP, "tokenizer.txt")


def setUpModule():
    subprocess.run([os.path.join(BUILD, "bin", "nc_tok_train"), "-o", TOKFILE, "--vocab-size", str(VOCAB),
                    "--docs", "blank", "--quiet", SHAKESPEARE], check=True, capture_output=True, timeout=120)


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def c_encode(text, special=False):
    """Ids from the C library through build/bin/nc_tok (records format)."""
    rec, out = os.path.join(TMP, "r.rec"), os.path.join(TMP, "r.ids")
    b = text.encode("utf-8")
    with open(rec, "wb") as f:
        f.write(b"%d\n" % len(b) + b + b"\n")
    cmd = [os.path.join(BUILD, "bin", "nc_tok"), "encode", TOKFILE, rec, out] + (["--special"] if special else [])
    subprocess.run(cmd, check=True, timeout=60)
    with open(out) as f:
        return [int(x) for x in f.read().split()]


BOS = VOCAB - 9
PYTHON_START = VOCAB - 4


class Tokenizer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(args=["--tokenizer", TOKFILE]).start()
        cls.stub = cls.srv.stub("Tokenizer")

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        shutil.rmtree(cls.srv.tmp, ignore_errors=True)
        assert rc == 0, rc

    def encode(self, **kw):
        return self.stub.Encode(tokenizer_pb2.EncodeRequest(**kw), timeout=30)

    def decode(self, ids):
        return self.stub.Decode(tokenizer_pb2.DecodeRequest(tokens=ids), timeout=30).text

    def assertCode(self, fn, code, field):
        with self.assertRaises(grpc.RpcError) as cm:
            fn()
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        self.assertIn(field, cm.exception.details())

    def test_round_trip_and_same_ids_as_the_library(self):
        for text in ["To be, or not to be: that is the question.", "日本語 🙂 café e\u0301\r\n\r\n  12345",
                     "", " ", "\t\tindent\n", "x" * 5000]:
            r = self.encode(text=text)
            self.assertEqual(list(r.tokens), c_encode(text))
            self.assertEqual(r.count, len(r.tokens))
            self.assertEqual(self.decode(list(r.tokens)), text)
        with open(SHAKESPEARE, encoding="utf-8") as f:
            big = f.read()[:250_000]
        r = self.encode(text=big)
        self.assertEqual(list(r.tokens), c_encode(big))
        self.assertLess(len(r.tokens), len(big) // 3)
        self.assertEqual(self.decode(list(r.tokens)), big)

    def test_prepend_bos_is_explicit(self):
        plain = list(self.encode(text="Hello there").tokens)
        self.assertNotIn(BOS, plain)
        withbos = list(self.encode(text="Hello there", prepend_bos=True).tokens)
        self.assertEqual(withbos, [BOS] + plain)
        self.assertEqual(list(self.encode(text="", prepend_bos=True).tokens), [BOS])
        self.assertEqual(self.decode(withbos), "<|bos|>Hello there")

    def test_specials_only_when_asked(self):
        text = "<|python_start|>"
        ordinary = list(self.encode(text=text).tokens)
        self.assertGreater(len(ordinary), 1)
        self.assertTrue(all(i < VOCAB - 9 for i in ordinary), ordinary)
        self.assertEqual(ordinary, c_encode(text))
        self.assertEqual(self.decode(ordinary), text)
        self.assertEqual(list(self.encode(text=text, allow_special=True).tokens), [PYTHON_START])
        mixed = "hi <|user_start|>there<|user_end|>"
        self.assertEqual(list(self.encode(text=mixed, allow_special=True).tokens), c_encode(mixed, special=True))
        self.assertTrue(all(i < VOCAB - 9 for i in self.encode(text=mixed).tokens))

    def test_batch(self):
        texts = ["first text", "", "<|bos|> second", "third\r\n"]
        r = self.encode(texts=texts, prepend_bos=True)
        self.assertEqual(len(r.batch), len(texts))
        self.assertEqual(len(r.tokens), 0)
        for t, lst in zip(texts, r.batch):
            self.assertEqual(list(lst.ids), [BOS] + c_encode(t))
        self.assertEqual(r.count, sum(len(lst.ids) for lst in r.batch))

    def test_decode_replacement_and_errors(self):
        self.assertEqual(self.decode([0xE2, 0x82]), "\ufffd")
        self.assertEqual(self.decode([0xFF, ord("a")]), "\ufffda")
        self.assertEqual(self.decode([]), "")
        self.assertCode(lambda: self.decode([1, VOCAB]), grpc.StatusCode.INVALID_ARGUMENT, "tokens[1]")
        self.assertCode(lambda: self.decode([ord("a"), 0]), grpc.StatusCode.INVALID_ARGUMENT, "tokens")

    def test_limits_name_the_field(self):
        self.assertCode(lambda: self.encode(text="a", texts=["b"]), grpc.StatusCode.INVALID_ARGUMENT, "texts")
        self.assertCode(lambda: self.encode(text="a" * 262145), grpc.StatusCode.INVALID_ARGUMENT, "text")
        self.assertCode(lambda: self.encode(texts=["a"] * 257), grpc.StatusCode.INVALID_ARGUMENT, "texts")
        self.assertCode(lambda: self.encode(texts=["a" * 1000, "b" * 262145]), grpc.StatusCode.INVALID_ARGUMENT,
                        "texts[1]")
        self.assertCode(lambda: self.decode([65] * 262145), grpc.StatusCode.INVALID_ARGUMENT, "tokens")
        # the whole request is capped at 1 MiB
        with self.assertRaises(grpc.RpcError) as cm:
            self.encode(texts=["a" * 262000] * 5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        # the largest accepted batch still works
        r = self.encode(texts=["abc " * 65000] * 4)
        self.assertEqual(len(r.batch), 4)
        self.assertEqual(self.srv.health().status, "ok")


class Setup(unittest.TestCase):
    def test_no_tokenizer_is_failed_precondition(self):
        with Server() as srv:
            stub = srv.stub("Tokenizer")
            for fn in (lambda: stub.Encode(tokenizer_pb2.EncodeRequest(text="hi"), timeout=10),
                       lambda: stub.Decode(tokenizer_pb2.DecodeRequest(tokens=[1]), timeout=10)):
                with self.assertRaises(grpc.RpcError) as cm:
                    fn()
                self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
                self.assertIn("no tokenizer loaded", cm.exception.details())

    def test_data_dir_default_file(self):
        with tempfile.TemporaryDirectory(prefix="nc-int-tokdd-") as d:
            os.makedirs(os.path.join(d, "data", "tokenizer"))
            shutil.copy(TOKFILE, os.path.join(d, "data", "tokenizer", "tokenizer.txt"))
            with Server(data_dir=os.path.join(d, "data")) as srv:
                r = srv.stub("Tokenizer").Encode(tokenizer_pb2.EncodeRequest(text="hi", prepend_bos=True), timeout=10)
                self.assertEqual(list(r.tokens), [BOS] + c_encode("hi"))

    def test_bad_tokenizer_file_refuses_to_start(self):
        with tempfile.TemporaryDirectory(prefix="nc-int-tokbad-") as d:
            bad = os.path.join(d, "bad.txt")
            with open(bad, "w") as f:
                f.write("#nanochat-tokenizer 1\nnot a rank line\n")
            for path, what in ((bad, "line 2"), (os.path.join(d, "missing.txt"), "missing.txt")):
                p = subprocess.run([NANOCHATD, "--listen", "127.0.0.1:0", "--data-dir", os.path.join(d, "data"),
                                    "--tokenizer", path], capture_output=True, timeout=30)
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn(b"tokenizer", p.stderr)
                self.assertIn(what.encode(), p.stderr)

    def test_decoded_text_cap(self):
        # 262144 ids of a 64-byte token decode to 16 MiB: over the 8 MiB cap
        with tempfile.TemporaryDirectory(prefix="nc-int-tokcap-") as d:
            path = os.path.join(d, "wide.txt")
            with open(path, "w") as f:
                f.write("#nanochat-tokenizer 1\n")
                for i in range(256):
                    f.write("%s %d\n" % (base64.b64encode(bytes([i])).decode(), i))
                f.write("%s 256\n" % base64.b64encode(b"a" * 64).decode())
            with Server(args=["--tokenizer", path]) as srv:
                stub = srv.stub("Tokenizer")
                self.assertEqual(stub.Decode(tokenizer_pb2.DecodeRequest(tokens=[256] * 1000), timeout=30).text,
                                 "a" * 64000)
                with self.assertRaises(grpc.RpcError) as cm:
                    stub.Decode(tokenizer_pb2.DecodeRequest(tokens=[256] * 262144), timeout=30)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
                self.assertIn("tokens", cm.exception.details())


if __name__ == "__main__":
    unittest.main()
