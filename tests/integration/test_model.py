"""Integration tests of Model.Load / Status / Unload / Sample / SampleStream, Checkpoint.Save and
Eval.Loss against a real nanochatd with tiny random checkpoints (nc_models.py): status fields, the
default tag (largest d<N>) and step (latest), precise load errors (NOT_FOUND, DATA_LOSS,
INVALID_ARGUMENT, FAILED_PRECONDITION for a vocab mismatch or no tokenizer, PERMISSION_DENIED for a
symlink) with the old model still serving the same tokens, Load and Unload while streams run (they
finish on the old model), raw sampling equal to the library's greedy decoding, Save → List →
Load bit-identical, a metadata hash mismatch refused, bits per byte equal to the library's, and
the --model startup flag."""
import hashlib
import json
import os
import shutil
import struct
import subprocess
import threading
import time
import unittest

import grpc

from nanochat.v1 import checkpoint_pb2, common_pb2, eval_pb2, model_pb2, train_pb2

import nc_models as M
from nc_harness import NANOCHATD


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def model_file(srv, phase, tag, step=0):
    return os.path.join(M.ckpt_dir(srv.data_dir, phase, tag), "model_%06d.safetensors" % step)


def greedy_ids(srv, text="Hello there", n=10):
    return M.stream(srv.stub("Chat"), M.chat_req(text, max_tokens=n, ephemeral=True))[1]


def tensor_offset(path, name):
    """Byte offset of tensor `name`'s data in a safetensors file."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    return 8 + n + hdr[name]["data_offsets"][0]


class Load(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = M.model_server(args=["--model", "sft/d2", "--slots", "4"], models=[
            ("sft", "d2", {}), ("sft", "d2", dict(step=5, seed=2)), ("sft", "d10", dict(seed=3)),
            ("sft", "abc", dict(seed=4)), ("base", "zzz", dict(seed=5)), ("base", "yyy", dict(seed=6)),
            ("sft", "d4", dict(depth=4, seq_len=1024, seed=7))]).start()
        cls.model = cls.srv.stub("Model")

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.close()
        assert rc == 0, rc

    def test_status_and_health_describe_the_served_model(self):
        st = M.load(self.srv, "sft", "d2", 0)
        self.assertTrue(st.loaded)
        self.assertEqual((st.phase, st.model_tag, st.step, st.device), (common_pb2.PHASE_SFT, "d2", 0, "cpu"))
        c = st.config
        self.assertEqual((c.sequence_len, c.vocab_size, c.n_layer, c.n_head, c.n_kv_head, c.n_embd, c.window_pattern),
                         (128, 2048, 2, 2, 2, 128, "L"))
        self.assertEqual(st.parameters, self.srv.ckpts[("sft", "d2")]["parameters"])
        self.assertEqual(st.sha256, sha256(model_file(self.srv, "sft", "d2")))
        self.assertGreater(st.memory_bytes, st.parameters * 4)
        self.assertEqual((st.slots_total, st.slots_in_use, st.queue_depth), (4, 0, 0))
        self.assertLessEqual(abs(st.loaded_ms / 1000 - time.time()), 120)
        self.assertEqual(M.status(self.srv), st)
        h = self.srv.health()
        self.assertEqual((h.model_loaded, h.model_tag, h.model_step, h.phase), (True, "d2", 0, common_pb2.PHASE_SFT))

    def test_default_tag_is_the_largest_depth_and_step_the_latest(self):
        st = M.load(self.srv, "sft")
        self.assertEqual((st.model_tag, st.step), ("d10", 0))
        st = M.load(self.srv, "sft", "d2")
        self.assertEqual(st.step, 5)
        self.assertEqual(st.sha256, sha256(model_file(self.srv, "sft", "d2", 5)))
        # no d<N> tag: the most recently modified one
        os.utime(M.ckpt_dir(self.srv.data_dir, "base", "yyy"), (time.time() - 100, time.time() - 100))
        self.assertEqual(M.load(self.srv, "base").model_tag, "zzz")
        os.utime(M.ckpt_dir(self.srv.data_dir, "base", "zzz"), (time.time() - 200, time.time() - 200))
        self.assertEqual(M.load(self.srv, "base").model_tag, "yyy")

    def test_load_errors_are_precise_and_the_old_model_keeps_serving(self):
        M.load(self.srv, "sft", "d2", 0)
        before_ids, before_st = greedy_ids(self.srv), M.status(self.srv)
        tok = self.srv.tok

        def corrupt(tag, fn, **kw):
            M.make_ckpt(self.srv.data_dir, tok, "sft", tag, **kw)
            p = model_file(self.srv, "sft", tag)
            with open(p, "r+b") as f:
                fn(f, p)
            return tag

        def truncate(f, p):
            f.truncate(os.path.getsize(p) - 100)

        def bad_magic(f, p):
            f.seek(8)
            f.write(b"[")

        def pickle(f, p):
            f.seek(0)
            f.write(b"PK\x03\x04")

        def nan(f, p):
            f.seek(tensor_offset(p, "lm_head.weight") + 4 * 7)
            f.write(struct.pack("<f", float("nan")))

        def huge_header(f, p):
            f.seek(0)
            f.write(struct.pack("<Q", 1 << 40))

        other = M.make_tokenizer(os.path.join(self.srv.tmp, "tok1024.txt"), vocab=1024)
        M.make_ckpt(self.srv.data_dir, other, "sft", "v1024")
        os.symlink(M.ckpt_dir(self.srv.data_dir, "sft", "d2"), M.ckpt_dir(self.srv.data_dir, "sft", "link"))
        with open(os.path.join(M.ckpt_dir(self.srv.data_dir, "sft", "d2"), "meta_000009.json"), "w") as f:
            f.write("{}")   # meta without its model file: not a complete step
        cases = [
            (("sft", "nosuch", None), grpc.StatusCode.NOT_FOUND, "model_tag"),
            (("sft", "d2", 3), grpc.StatusCode.NOT_FOUND, "step"),
            (("sft", "d2", 9), grpc.StatusCode.NOT_FOUND, "step"),
            (("rl", "", None), grpc.StatusCode.NOT_FOUND, "rl"),
            ((("sft", corrupt("trunc", truncate), 0)), grpc.StatusCode.DATA_LOSS, "model_000000.safetensors"),
            ((("sft", corrupt("magic", bad_magic), 0)), grpc.StatusCode.INVALID_ARGUMENT, "{"),
            ((("sft", corrupt("pickle", pickle), 0)), grpc.StatusCode.INVALID_ARGUMENT, "pickle"),
            ((("sft", corrupt("nan", nan), 0)), grpc.StatusCode.DATA_LOSS, "lm_head.weight"),
            ((("sft", corrupt("huge", huge_header), 0)), grpc.StatusCode.INVALID_ARGUMENT, "header"),
            (("sft", "v1024", 0), grpc.StatusCode.FAILED_PRECONDITION, "vocab"),
            (("sft", "link", 0), grpc.StatusCode.PERMISSION_DENIED, ""),
        ]
        for (phase, tag, step), code, word in cases:
            with self.subTest(tag=tag, step=step):
                c, d = M.code_of(lambda: M.load(self.srv, phase, tag, step))
                self.assertEqual(c, code, d)
                self.assertIn(word, d)
                self.assertEqual(M.status(self.srv), before_st)   # the old model keeps serving
        rq = model_pb2.ModelLoadRequest
        for req, code, word in ((rq(model_tag="../d2"), grpc.StatusCode.INVALID_ARGUMENT, "model_tag"),
                                (rq(device="cuda"), grpc.StatusCode.FAILED_PRECONDITION, "device"),
                                (rq(device="tpu"), grpc.StatusCode.INVALID_ARGUMENT, "device")):
            c, d = M.code_of(lambda: self.model.Load(req, timeout=60))
            self.assertEqual((c, word in d), (code, True), d)
        self.assertEqual(greedy_ids(self.srv), before_ids)
        self.assertEqual(M.status(self.srv), before_st)

    def test_load_while_streams_run_they_finish_on_the_old_model(self):
        M.load(self.srv, "sft", "d4")
        chat = self.srv.stub("Chat")
        req = lambda i: M.chat_req("story %d" % i, max_tokens=600, ephemeral=True)
        solo = {i: M.stream(chat, req(i))[1] for i in range(3)}
        out, started = {}, threading.Barrier(4)

        def one(i):
            ids = []
            it = chat.Stream(req(i), timeout=300)
            for k, ev in enumerate(it):
                if k == 0:
                    started.wait()
                if ev.HasField("delta"):
                    ids += list(ev.delta.token_ids)
            out[i] = ids
        ts = [threading.Thread(target=one, args=(i,)) for i in range(3)]
        [t.start() for t in ts]
        started.wait()
        mid = M.status(self.srv)
        st = M.load(self.srv, "sft", "d2", 0)       # swap while the three streams generate
        self.assertEqual(st.model_tag, "d2")
        self.assertEqual(st.slots_in_use, 0)         # the new engine is idle
        self.assertEqual(greedy_ids(self.srv), M.greedy(self.srv.tok, M.ckpt_dir(self.srv.data_dir, "sft", "d2"),
                                                        chat="Hello there", max_tokens=10, step=0)["tokens"])
        [t.join() for t in ts]
        self.assertEqual(out, solo)
        self.assertEqual(mid.model_tag, "d4")

    def test_unload_while_streaming_lets_the_stream_finish(self):
        M.load(self.srv, "sft", "d4")
        chat = self.srv.stub("Chat")
        req = M.chat_req("story 0", max_tokens=600, ephemeral=True)    # 600 tokens: still running at Unload
        solo = M.stream(chat, req)[1]
        it = chat.Stream(req, timeout=300)
        first = next(it)
        st = self.model.Unload(model_pb2.ModelUnloadRequest(), timeout=60)
        self.assertFalse(st.loaded)
        self.assertEqual(M.code_of(lambda: chat.Complete(M.chat_req(), timeout=10))[0],
                         grpc.StatusCode.FAILED_PRECONDITION)
        rest = list(it)
        ids = list(first.delta.token_ids) + [i for e in rest if e.HasField("delta") for i in e.delta.token_ids]
        self.assertEqual(ids, solo)
        self.assertTrue(rest[-1].HasField("done"))
        self.assertFalse(M.status(self.srv).loaded)
        for method in ("Sample", "SampleStream"):
            c, _ = M.code_of(lambda: list(getattr(self.model, method)(model_pb2.SampleRequest(prompt="x"), timeout=10))
                             if method == "SampleStream" else self.model.Sample(model_pb2.SampleRequest(prompt="x"),
                                                                                timeout=10))
            self.assertEqual(c, grpc.StatusCode.FAILED_PRECONDITION)
        M.load(self.srv, "sft", "d2", 0)

    def test_sample_raw_completions(self):
        M.load(self.srv, "sft", "d2", 0)
        ref = M.greedy(self.srv.tok, M.ckpt_dir(self.srv.data_dir, "sft", "d2"), raw="ROMEO:", max_tokens=12, step=0)
        r = self.model.Sample(model_pb2.SampleRequest(prompt="ROMEO:", max_tokens=12, temperature=0, num_samples=3),
                              timeout=60)
        self.assertEqual(r.num_samples, 3)
        self.assertEqual(len(set(r.samples)), 1)
        dec = self.srv.stub("Tokenizer").Decode(__import__("nanochat.v1.tokenizer_pb2", fromlist=["x"]).DecodeRequest(
            tokens=ref["tokens"]), timeout=10).text
        self.assertEqual(r.samples[0], dec)
        self.assertEqual(r.usage.prompt_tokens, len(ref["prompt"]))
        self.assertEqual(r.usage.completion_tokens, 3 * len(ref["tokens"]))
        r = self.model.Sample(model_pb2.SampleRequest(prompt="ROMEO:", max_tokens=12, temperature=0, include_prompt=True),
                              timeout=60)
        self.assertEqual(r.samples[0], "ROMEO:" + dec)
        # sampled: seeds reproduce; sample i of a request == a one-sample request with seed + i
        s = dict(prompt="JULIET:", max_tokens=20, temperature=1.0, top_k=0)
        a = self.model.Sample(model_pb2.SampleRequest(num_samples=4, seed=11, **s), timeout=60).samples
        self.assertEqual(len(set(a)), 4)
        self.assertEqual(self.model.Sample(model_pb2.SampleRequest(num_samples=1, seed=13, **s), timeout=60).samples[0],
                         a[2])
        # streamed: per-index concatenation == the unary samples; one finish_reason per index, last
        texts, fins, ids = {}, {}, {}
        for ev in self.model.SampleStream(model_pb2.SampleRequest(num_samples=4, seed=11, include_prompt=True, **s),
                                          timeout=60):
            self.assertNotIn(ev.index, fins)
            texts[ev.index] = texts.get(ev.index, "") + ev.text
            ids.setdefault(ev.index, []).extend(ev.token_ids)
            if ev.finish_reason:
                fins[ev.index] = ev.finish_reason
        self.assertEqual([texts[i] for i in range(4)], ["JULIET:" + x for x in a])
        self.assertEqual(sorted(fins), [0, 1, 2, 3])
        for i in range(4):
            self.assertLessEqual(len(ids[i]), 20)
            self.assertEqual(len(ids[i]) == 20, fins[i] == common_pb2.FINISH_LENGTH)
        # limits: num_samples > slots (4), context
        I = grpc.StatusCode.INVALID_ARGUMENT
        for req, word in ((model_pb2.SampleRequest(prompt="x", num_samples=5, max_tokens=4), "num_samples"),
                          (model_pb2.SampleRequest(prompt="x", num_samples=9, max_tokens=4), "num_samples"),
                          (model_pb2.SampleRequest(prompt="x", max_tokens=128), "exceeds the context"),
                          (model_pb2.SampleRequest(prompt="x" * 32001, max_tokens=4), "prompt")):
            c, d = M.code_of(lambda: self.model.Sample(req, timeout=10))
            self.assertEqual((c, word in d), (I, True), d)
        self.assertEqual(M.status(self.srv).slots_in_use, 0)


class SaveEval(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = M.model_server(args=["--model", "sft/d2"],
                                 models=[("sft", "d2", dict(bf16=True)), ("sft", "d3", dict(seed=9))],
                                 user_token="user-token-0123456789", token="admin-token-0123456789").start()
        cls.ckpt = cls.srv.stub("Checkpoint")

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.close()
        assert rc == 0, rc

    def save(self, md=None, **kw):
        return self.ckpt.Save(checkpoint_pb2.CheckpointSaveRequest(**kw), timeout=60,
                              metadata=self.srv.auth() if md is None else md)

    def chat_ids(self):
        chat = self.srv.stub("Chat")
        return M.stream(chat, M.chat_req("Hello there", max_tokens=16, ephemeral=True), metadata=self.srv.auth())[1]

    def test_save_then_list_then_load_is_bit_identical(self):
        before = self.chat_ids()
        info = self.save(phase=common_pb2.PHASE_SFT, tag="saved", step=7)
        path = os.path.join(self.srv.data_dir, info.path)
        self.assertEqual(info.path, "checkpoints/chatsft_checkpoints/saved/model_000007.safetensors")
        self.assertEqual((info.phase, info.tag, info.step, info.status), (common_pb2.PHASE_SFT, "saved", 7,
                                                                           common_pb2.CHECKPOINT_OK))
        self.assertEqual(info.sha256, sha256(path))
        self.assertEqual(info.size, os.path.getsize(path))
        self.assertEqual(info.parameters, self.srv.ckpts[("sft", "d2")]["parameters"])
        self.assertEqual(info.config.vocab_size, 2048)
        self.assertTrue(os.path.exists(path.replace("model_", "meta_").replace(".safetensors", ".json")))
        self.assertEqual([n for n in os.listdir(os.path.dirname(path)) if ".tmp" in n], [])
        lst = self.ckpt.List(checkpoint_pb2.CheckpointListRequest(verify=True), timeout=60, metadata=self.srv.auth())
        mine = [c for c in lst.checkpoints if c.tag == "saved"]
        self.assertEqual([(c.step, c.sha256, c.status) for c in mine], [(7, info.sha256, common_pb2.CHECKPOINT_OK)])
        orphans = sorted(c.tag for c in lst.checkpoints if c.status == common_pb2.CHECKPOINT_ORPHAN)
        self.assertEqual(orphans, ["d2", "d3"])    # made by the tool, no metadata
        st = M.load(self.srv, "sft", "saved", 7)
        self.assertEqual((st.model_tag, st.step, st.sha256), ("saved", 7, info.sha256))
        self.assertEqual(self.chat_ids(), before)  # bf16 embeddings → fp32 in memory → F32 file: same model
        # existing (phase, tag, step): store or disk
        for kw in (dict(phase=common_pb2.PHASE_SFT, tag="saved", step=7), {}, dict(tag="d2", step=0)):
            c, d = M.code_of(lambda: self.save(**kw))
            self.assertEqual(c, grpc.StatusCode.ALREADY_EXISTS, (kw, d))
        info2 = self.save(tag="saved2")            # phase and step of the served model
        self.assertEqual((info2.phase, info2.tag, info2.step), (common_pb2.PHASE_SFT, "saved2", 7))
        info3 = self.save(phase=common_pb2.PHASE_BASE, tag="manual", step=1)
        self.assertTrue(info3.path.startswith("checkpoints/base_checkpoints/manual/"))
        # admin only
        user = (("authorization", "Bearer user-token-0123456789"),)
        self.assertEqual(M.code_of(lambda: self.save(md=user, tag="x1"))[0], grpc.StatusCode.PERMISSION_DENIED)
        # a file that no longer matches its metadata is refused (faults §3.4: hash checked on load)
        shutil.copy(model_file(self.srv, "sft", "d3"), path.replace("saved", "saved2"))
        c, d = M.code_of(lambda: M.load(self.srv, "sft", "saved2", 7))
        self.assertEqual(c, grpc.StatusCode.DATA_LOSS, d)
        self.assertIn("SHA-256", d)
        self.assertEqual(M.status(self.srv).model_tag, "saved")

    def test_eval_loss_equals_the_library_bpb(self):
        corpus = M.write_corpus(os.path.join(self.srv.data_dir, "corpus"))
        M.write_corpus(os.path.join(self.srv.data_dir, "datasets", "shake"))
        ev = self.srv.stub("Eval")
        r = ev.Loss(eval_pb2.EvalLossRequest(steps=3, device_batch_size=2), timeout=300, metadata=self.srv.auth())
        ref = M.bpb(self.srv.tok, M.ckpt_dir(self.srv.data_dir, "sft", "d2"), corpus, B=2, steps=3)
        self.assertTrue(0 < r.bits_per_byte < 100, r)
        self.assertAlmostEqual(r.bits_per_byte, ref["bpb"], delta=1e-9 * ref["bpb"])
        self.assertEqual((r.tokens, r.bytes), (ref["tokens"], ref["bytes"]))
        self.assertEqual((r.split, r.model_tag, r.model_step, r.phase), ("val", "d2", 0, common_pb2.PHASE_SFT))
        r2 = ev.Loss(eval_pb2.EvalLossRequest(steps=3, device_batch_size=2, dataset=train_pb2.DatasetRef(name="shake")),
                     timeout=300, metadata=self.srv.auth())
        self.assertEqual(r2.bits_per_byte, r.bits_per_byte)
        tr = ev.Loss(eval_pb2.EvalLossRequest(split="train", steps=2, device_batch_size=1), timeout=300,
                     metadata=self.srv.auth())
        ref = M.bpb(self.srv.tok, M.ckpt_dir(self.srv.data_dir, "sft", "d2"), corpus, split="train", B=1, steps=2)
        self.assertAlmostEqual(tr.bits_per_byte, ref["bpb"], delta=1e-9 * ref["bpb"])
        # a split shorter than asked: what there is (the whole val split, ~25k tokens, < 1000 batches)
        big = ev.Loss(eval_pb2.EvalLossRequest(steps=1000, device_batch_size=1), timeout=300, metadata=self.srv.auth())
        self.assertLess(big.tokens, 1000 * 128)
        F, I = grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT
        for req, code, word in ((eval_pb2.EvalLossRequest(dataset=train_pb2.DatasetRef(name="nosuch")), F, "dataset"),
                                (eval_pb2.EvalLossRequest(split="test"), I, "split"),
                                (eval_pb2.EvalLossRequest(device_batch_size=1024), I, "device_batch_size"),
                                (eval_pb2.EvalLossRequest(steps=100000, device_batch_size=512), I, "steps")):
            c, d = M.code_of(lambda: ev.Loss(req, timeout=60, metadata=self.srv.auth()))
            self.assertEqual((c, word in d), (code, True), d)


    def test_eval_loss_runs_beside_generation(self):
        """Eval.Loss uses the served model's own workspace: streams running meanwhile give exactly
        their solo tokens, and a second evaluation at the same time is RESOURCE_EXHAUSTED."""
        M.write_corpus(os.path.join(self.srv.data_dir, "corpus"))
        chat, ev = self.srv.stub("Chat"), self.srv.stub("Eval")
        md = self.srv.auth()
        req = lambda i: M.chat_req("while evaluating %d" % i, max_tokens=60, ephemeral=True)
        solo = [M.stream(chat, req(i), metadata=md)[1] for i in range(4)]
        result = {}

        def evaluate():
            result["r"] = ev.Loss(eval_pb2.EvalLossRequest(steps=100, device_batch_size=1), timeout=300, metadata=md)
        t = threading.Thread(target=evaluate)
        t.start()
        time.sleep(0.05)
        busy = M.code_of(lambda: ev.Loss(eval_pb2.EvalLossRequest(steps=1, device_batch_size=1), timeout=60,
                                         metadata=md))[0]
        during = [M.stream(chat, req(i), metadata=md)[1] for i in range(4)]
        t.join()
        self.assertEqual(during, solo)
        self.assertGreater(result["r"].tokens, 0)
        self.assertIn(busy, (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.OK))


class KvPrecision(unittest.TestCase):
    """--engine-kv: the slots' KV caches in bf16 (the default with bf16 weights) or fp32."""

    def test_bf16_kv_cache_serves_consistently_and_halves_the_cache(self):
        mem, out = {}, {}
        for kv in ("f32", "bf16"):
            srv = M.model_server(args=["--model", "sft/d2", "--slots", "4", "--engine-kv", kv])
            with srv:
                mem[kv] = M.status(srv).memory_bytes
                chat = srv.stub("Chat")
                prompts = ["Hello there", "ROMEO: what light", "a b c d e f", "JULIET:"]
                # unary == streamed, and 4 concurrent streams == each alone (batch invariance)
                alone = [M.stream(chat, M.chat_req(p, max_tokens=12, ephemeral=True))[1] for p in prompts]
                res = [None] * 4

                def run(i):
                    res[i] = M.stream(chat, M.chat_req(prompts[i], max_tokens=12, ephemeral=True))[1]
                th = [threading.Thread(target=run, args=(i,)) for i in range(4)]
                for t in th:
                    t.start()
                for t in th:
                    t.join(60)
                self.assertEqual(res, alone, kv)
                r = chat.Complete(M.chat_req(prompts[0], max_tokens=12, ephemeral=True), timeout=60)
                self.assertEqual(r.usage.completion_tokens, len(alone[0]))
                out[kv] = alone
        # slots * context * layers * (k + v) * kv_dim: 4 * 128 * 2 * 2 * 128 elements, 2 bytes fewer each
        self.assertEqual(mem["f32"] - mem["bf16"], 4 * 128 * 2 * 2 * 128 * 2)
        self.assertTrue(all(len(x) > 0 for x in out["bf16"]))


class Startup(unittest.TestCase):
    def test_model_flag_latest_and_failures(self):
        srv = M.model_server(args=["--model", "latest"], models=[("base", "d2", {}), ("sft", "d3", {})])
        with srv:
            st = M.status(srv)
            self.assertEqual((st.phase, st.model_tag), (common_pb2.PHASE_SFT, "d3"))
        for spec, tok in (("sft/nosuch", True), ("bogus", True), ("base", False)):
            srv = M.model_server(models=[("base", "d2", {})])
            if not tok:
                os.remove(srv.tok)
            p = subprocess.run(srv.command() + ["--model", spec], capture_output=True, text=True, timeout=60)
            shutil.rmtree(srv.tmp, ignore_errors=True)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("--model", p.stderr)

    def test_no_tokenizer_is_failed_precondition(self):
        srv = M.model_server()
        os.remove(srv.tok)
        with srv:
            c, d = M.code_of(lambda: M.load(srv, "sft", "d2"))
            self.assertEqual(c, grpc.StatusCode.FAILED_PRECONDITION, d)
            self.assertIn("tokenizer", d)


if __name__ == "__main__":
    unittest.main()
