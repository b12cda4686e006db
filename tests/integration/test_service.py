"""Integration tests of nanochatd's gRPC foundation against a real server on loopback:
health (both services), reflection, the auth table over every method, size limits, UTF-8/NUL
validation, malformed and deeply nested requests, deadlines and cancellation on a stream,
exposure refusal, token file permissions, SIGTERM drain, and no content in logs."""
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import grpc

from nanochat.v1 import health_pb2, model_pb2, tokenizer_pb2, chat_pb2, common_pb2
from nc_grpc_std.health.v1 import health_pb2 as std_health, health_pb2_grpc as std_health_grpc
from nc_grpc_std.reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from nc_harness import NANOCHATD, Server, rpc_table

ADMIN = "admin-token-0123456789abcdef"
USER = "user-token-0123456789abcdef"


def raw_unary(srv, path):
    return srv.channel.unary_unary(path, request_serializer=None, response_deserializer=None)


def raw_stream(srv, path):
    return srv.channel.unary_stream(path, request_serializer=None, response_deserializer=None)


def call_raw(srv, m, payload=b"", metadata=(), timeout=10):
    """Calls method row m with raw request bytes; returns the status code (OK or the error)."""
    try:
        if m["client_streaming"]:
            fn = srv.channel.stream_stream(m["path"], request_serializer=None, response_deserializer=None)
            for _ in fn(iter([payload]), metadata=metadata, timeout=timeout):
                break
        elif m["server_streaming"]:
            for _ in raw_stream(srv, m["path"])(payload, metadata=metadata, timeout=timeout):
                break
        else:
            raw_unary(srv, m["path"])(payload, metadata=metadata, timeout=timeout)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


class HealthAndReflection(unittest.TestCase):
    def test_nanochat_health_check(self):
        with Server() as srv:
            h = srv.health()
            self.assertEqual(h.status, "ok")
            self.assertEqual(h.worker, "nanochat-c")
            self.assertFalse(h.model_loaded)
            self.assertTrue(h.version)
            self.assertGreaterEqual(h.uptime_s, 0.0)
            self.assertTrue(h.sandbox_level)

    def test_grpc_health_check_and_unknown_service(self):
        with Server() as srv:
            stub = std_health_grpc.HealthStub(srv.channel)
            r = stub.Check(std_health.HealthCheckRequest(service=""), timeout=5)
            self.assertEqual(r.status, std_health.HealthCheckResponse.SERVING)
            r = stub.Check(std_health.HealthCheckRequest(service="nanochat.v1.Chat"), timeout=5)
            self.assertEqual(r.status, std_health.HealthCheckResponse.SERVING)
            with self.assertRaises(grpc.RpcError) as cm:
                stub.Check(std_health.HealthCheckRequest(service="no.such.Service"), timeout=5)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_grpc_health_watch_first_message(self):
        with Server() as srv:
            stub = std_health_grpc.HealthStub(srv.channel)
            it = stub.Watch(std_health.HealthCheckRequest(service=""), timeout=5)
            first = next(it)
            self.assertEqual(first.status, std_health.HealthCheckResponse.SERVING)
            it.cancel()

    def test_reflection_lists_services_and_resolves_symbols(self):
        with Server() as srv:
            stub = reflection_pb2_grpc.ServerReflectionStub(srv.channel)
            reqs = [reflection_pb2.ServerReflectionRequest(list_services=""),
                    reflection_pb2.ServerReflectionRequest(file_containing_symbol="nanochat.v1.Chat"),
                    reflection_pb2.ServerReflectionRequest(file_containing_symbol="nanochat.v1.ChatRequest"),
                    reflection_pb2.ServerReflectionRequest(file_by_filename="nanochat/v1/train.proto"),
                    reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.such.Thing")]
            resps = list(stub.ServerReflectionInfo(iter(reqs), timeout=10))
            self.assertEqual(len(resps), 5)
            names = {s.name for s in resps[0].list_services_response.service}
            for svc in ["nanochat.v1.Chat", "nanochat.v1.Model", "nanochat.v1.Tokenizer", "nanochat.v1.Tools",
                        "nanochat.v1.Train", "nanochat.v1.Eval", "nanochat.v1.Checkpoint", "nanochat.v1.Health",
                        "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"]:
                self.assertIn(svc, names)
            from google.protobuf import descriptor_pb2
            files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                     for b in resps[1].file_descriptor_response.file_descriptor_proto]
            self.assertEqual(files[0].name, "nanochat/v1/services.proto")
            self.assertIn("nanochat/v1/common.proto", [f.name for f in files])  # dependency closure
            files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                     for b in resps[2].file_descriptor_response.file_descriptor_proto]
            self.assertEqual(files[0].name, "nanochat/v1/chat.proto")
            self.assertEqual(descriptor_pb2.FileDescriptorProto.FromString(
                resps[3].file_descriptor_response.file_descriptor_proto[0]).name, "nanochat/v1/train.proto")
            self.assertEqual(resps[4].error_response.error_code, grpc.StatusCode.NOT_FOUND.value[0])

    def test_unknown_method_is_unimplemented_fast(self):
        with Server() as srv:
            t0 = time.time()
            with self.assertRaises(grpc.RpcError) as cm:
                raw_unary(srv, "/nanochat.v1.Nope/Nothing")(b"", timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
            self.assertLess(time.time() - t0, 5.0)

    def test_missing_capability_named(self):
        with Server() as srv:
            with self.assertRaises(grpc.RpcError) as cm:
                srv.stub("Train").Sft(__import__("nanochat.v1.train_pb2", fromlist=["x"]).TrainSftRequest(), timeout=5)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
            self.assertIn("Train.Sft", cm.exception.details())

    def test_model_status_without_model(self):
        with Server() as srv:
            st = srv.stub("Model").Status(model_pb2.ModelStatusRequest(), timeout=5)
            self.assertFalse(st.loaded)


class Auth(unittest.TestCase):
    def test_every_method_without_or_with_bad_token(self):
        methods = rpc_table()["methods"]
        self.assertGreaterEqual(len([m for m in methods if m["iii_id"]]), 20)
        with Server(token=ADMIN, user_token=USER) as srv:
            bad = [(), (("authorization", "Bearer wrong-token-0123456789"),),
                   (("authorization", "Bearer " + ADMIN + " "),),
                   (("authorization", ADMIN),),
                   (("authorization", "Bearer " + "x" * 8192),),
                   (("authorization", "Bearer " + ADMIN), ("authorization", "Bearer " + ADMIN))]
            for m in methods:
                if m["public"]:
                    continue
                for md in bad:
                    code = call_raw(srv, m, metadata=md)
                    self.assertIn(code, (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.RESOURCE_EXHAUSTED,
                                         grpc.StatusCode.INTERNAL) if len(str(md)) > 8000 else
                                  (grpc.StatusCode.UNAUTHENTICATED,), (m["path"], str(md)[:60], code))
                if m["admin"]:
                    code = call_raw(srv, m, metadata=srv.auth(USER))
                    self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED, m["path"])
                # the right token passes the gate (the handler may still refuse for other reasons)
                code = call_raw(srv, m, metadata=srv.auth(ADMIN))
                self.assertNotIn(code, (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED),
                                 m["path"])
            # public methods work without a token
            self.assertEqual(srv.health().status, "ok")
            self.assertEqual(len([m for m in methods if m["public"] and m["iii_id"]]), 1)

    def test_non_loopback_without_token_refused(self):
        d = tempfile.mkdtemp()
        p = subprocess.run([NANOCHATD, "--listen", "0.0.0.0:0", "--data-dir", d],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"token", p.stderr)

    def test_world_readable_token_file_refused(self):
        d = tempfile.mkdtemp()
        tf = os.path.join(d, "tok")
        with open(tf, "w") as f:
            f.write(ADMIN)
        os.chmod(tf, 0o644)
        p = subprocess.run([NANOCHATD, "--listen", "127.0.0.1:0", "--data-dir", d + "/data", "--token-file", tf],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"chmod 600", p.stderr)


class Limits(unittest.TestCase):
    def test_oversize_request_then_channel_still_works(self):
        with Server() as srv:
            big = b"\x0a" + b"\x80\x80\x80\x02" + b"a" * (4 * 1024 * 1024 + 1)
            with self.assertRaises(grpc.RpcError) as cm:
                raw_unary(srv, "/nanochat.v1.Tokenizer/Encode")(big, timeout=30)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertEqual(srv.health().status, "ok")

    def test_method_size_cap(self):
        with Server() as srv:
            # Chat.History accepts 4096 bytes; a 10 KB page_token is refused by size first
            payload = b"\x1a" + bytes([0x90, 0x4e]) + b"a" * 10000
            with self.assertRaises(grpc.RpcError) as cm:
                raw_unary(srv, "/nanochat.v1.Chat/History")(payload, timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)

    def test_invalid_utf8_and_nul_named(self):
        with Server() as srv:
            for bad in (b"a\xff\xfeb", b"a\x00b", b"\xc0\xaf"):
                payload = b"\x0a" + bytes([len(bad)]) + bad  # EncodeRequest.text
                with self.assertRaises(grpc.RpcError) as cm:
                    raw_unary(srv, "/nanochat.v1.Tokenizer/Encode")(payload, timeout=10)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
                self.assertIn("text", cm.exception.details())
            # nested: ChatRequest.messages[0].content
            inner = b"\x08\x01\x12\x03a\xffb"
            payload = b"\x0a" + bytes([len(inner)]) + inner
            with self.assertRaises(grpc.RpcError) as cm:
                raw_unary(srv, "/nanochat.v1.Chat/Complete")(payload, timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("messages[0].content", cm.exception.details())

    def test_range_limits_name_the_field(self):
        with Server() as srv:
            req = chat_pb2.ChatRequest(messages=[common_pb2.ChatMessage(role=1, content="hi")], temperature=3.0)
            with self.assertRaises(grpc.RpcError) as cm:
                srv.stub("Chat").Complete(req, timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("temperature", cm.exception.details())
            req = chat_pb2.ChatRequest(messages=[common_pb2.ChatMessage(role=1, content="hi")], top_k=201)
            with self.assertRaises(grpc.RpcError) as cm:
                srv.stub("Chat").Complete(req, timeout=10)
            self.assertIn("top_k", cm.exception.details())
            with self.assertRaises(grpc.RpcError) as cm:
                srv.stub("Chat").Complete(chat_pb2.ChatRequest(), timeout=10)
            self.assertIn("messages", cm.exception.details())

    def test_malformed_protobuf(self):
        with Server() as srv:
            for payload in (b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x05ab", b"\x07", b"\x00\x01"):
                with self.assertRaises(grpc.RpcError) as cm:
                    raw_unary(srv, "/nanochat.v1.Tokenizer/Decode")(payload, timeout=10)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, payload)

    def test_deeply_nested_blob_does_not_crash(self):
        with Server() as srv:
            blob = b""
            for _ in range(10000):
                blob = b"\x7a" + _varint(len(blob)) + blob  # field 15, length-delimited, nested
            for m in rpc_table()["methods"]:
                if m["client_streaming"] or m["server_streaming"]:
                    continue
                code = call_raw(srv, m, payload=blob[:60000])
                self.assertNotEqual(code, grpc.StatusCode.UNAVAILABLE, m["path"])
            self.assertEqual(srv.health().status, "ok")


def _varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


class StreamsAndShutdown(unittest.TestCase):
    def test_deadline_on_stream_frees_call(self):
        with Server() as srv:
            stub = std_health_grpc.HealthStub(srv.channel)
            it = stub.Watch(std_health.HealthCheckRequest(service=""), timeout=0.5)
            with self.assertRaises(grpc.RpcError) as cm:
                for _ in it:
                    pass
            self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
            self.assertEqual(srv.wait_calls_baseline(0), 0)

    def test_client_cancel_on_stream_frees_call(self):
        with Server() as srv:
            stub = std_health_grpc.HealthStub(srv.channel)
            its = [stub.Watch(std_health.HealthCheckRequest(service="")) for _ in range(5)]
            for it in its:
                next(it)
            self.assertGreaterEqual(srv.health().calls_in_flight, 5)
            for it in its:
                it.cancel()
            self.assertEqual(srv.wait_calls_baseline(0), 0)

    def test_sigterm_drains_open_stream(self):
        srv = Server(args=["--grace-ms", "500"]).start()
        try:
            stub = std_health_grpc.HealthStub(srv.channel)
            it = stub.Watch(std_health.HealthCheckRequest(service=""))
            self.assertEqual(next(it).status, std_health.HealthCheckResponse.SERVING)
            t0 = time.time()
            srv.proc.send_signal(signal.SIGTERM)
            got = []
            try:
                for r in it:
                    got.append(r.status)
            except grpc.RpcError as e:
                self.assertIn(e.code(), (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED))
            rc = srv.proc.wait(timeout=30)
            self.assertEqual(rc, 0, srv.logs())
            self.assertLess(time.time() - t0, 15)
            if got:
                self.assertEqual(got[-1], std_health.HealthCheckResponse.NOT_SERVING)
        finally:
            srv.close()

    def test_canary_never_logged(self):
        canary = "CANARY-7f3a9c-secret-prompt"
        srv = Server(args=["--log-level", "debug"]).start()
        try:
            req = chat_pb2.ChatRequest(messages=[common_pb2.ChatMessage(role=1, content=canary)])
            try:
                srv.stub("Chat").Complete(req, timeout=10)
            except grpc.RpcError:
                pass
            try:
                srv.stub("Tokenizer").Encode(tokenizer_pb2.EncodeRequest(text=canary), timeout=10)
            except grpc.RpcError:
                pass
        finally:
            rc = srv.stop()
            logs = srv.logs()
            srv.close()
        self.assertEqual(rc, 0)
        self.assertNotIn(canary, logs)
        self.assertIn("rpc /nanochat.v1.Chat/Complete", logs)

    def test_concurrent_unary_calls(self):
        with Server() as srv:
            errors = []

            def worker():
                try:
                    for _ in range(50):
                        srv.stub("Health").Check(health_pb2.HealthCheckRequest(), timeout=10)
                except Exception as e:  # noqa: BLE001
                    errors.append(e)

            ts = [threading.Thread(target=worker) for _ in range(8)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            self.assertEqual(errors, [])


if __name__ == "__main__":
    unittest.main()
