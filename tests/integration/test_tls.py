"""TLS through a real nanochatd: --tls-cert/--tls-key serve gRPC over TLS (checked with a
self-signed certificate made by openssl for this test), plaintext clients are refused, the
token still applies over TLS, and a group/world-readable key is refused at startup."""
import os
import shutil
import subprocess
import tempfile
import unittest

import grpc

from nanochat.v1 import chat_pb2

from nc_harness import NANOCHATD, Server

TOKEN = "tls-admin-token-0123456789ab"


def make_cert(d):
    key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


class Tls(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="nc-tls-")
        self.cert, self.key = make_cert(self.dir)
        with open(self.cert, "rb") as f:
            self.root = f.read()

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_tls_serves_and_token_still_applies(self):
        with Server(token=TOKEN, tls_root=self.root,
                    args=["--tls-cert", self.cert, "--tls-key", self.key]) as srv:
            self.assertEqual(srv.health().status, "ok")
            hist = srv.stub("Chat").History
            with self.assertRaises(grpc.RpcError) as cm:
                hist(chat_pb2.ChatHistoryRequest(), timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
            hist(chat_pb2.ChatHistoryRequest(), timeout=10, metadata=srv.auth())
            # a plaintext client cannot talk to the TLS port
            plain = grpc.insecure_channel("127.0.0.1:%d" % srv.port)
            with self.assertRaises(grpc.FutureTimeoutError):
                grpc.channel_ready_future(plain).result(timeout=2)
            plain.close()

    def test_untrusted_certificate_is_rejected_by_the_client(self):
        other_dir = tempfile.mkdtemp(prefix="nc-tls-other-")
        try:
            other_cert, _ = make_cert(other_dir)
            with open(other_cert, "rb") as f:
                other_root = f.read()
            with Server(tls_root=self.root,
                        args=["--tls-cert", self.cert, "--tls-key", self.key]) as srv:
                ch = grpc.secure_channel("localhost:%d" % srv.port,
                                         grpc.ssl_channel_credentials(root_certificates=other_root))
                with self.assertRaises(grpc.FutureTimeoutError):
                    grpc.channel_ready_future(ch).result(timeout=2)
                ch.close()
        finally:
            shutil.rmtree(other_dir, ignore_errors=True)

    def test_readable_key_refused(self):
        os.chmod(self.key, 0o644)
        p = subprocess.run([NANOCHATD, "--listen", "127.0.0.1:0", "--data-dir",
                            os.path.join(self.dir, "data"), "--tls-cert", self.cert,
                            "--tls-key", self.key], capture_output=True, timeout=20)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"chmod 600", p.stderr)

    def test_cert_without_key_refused(self):
        p = subprocess.run([NANOCHATD, "--listen", "127.0.0.1:0", "--data-dir",
                            os.path.join(self.dir, "data"), "--tls-cert", self.cert],
                           capture_output=True, timeout=20)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"--tls-key", p.stderr)


if __name__ == "__main__":
    unittest.main()
