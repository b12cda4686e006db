"""PyTorch parity of the inference path: build/bench/bench_engine runs the C decoder on random
weights (fp32 and bf16) and writes the weights and prompt; the PyTorch port (nanochat_torch.py)
loads them by state-dict name, checks that its KV-cache forward (nanochat's Engine path) equals
its full forward, and greedy-decodes the same prompt. The C fp32 greedy tokens must equal
PyTorch's; the C bf16 decoders (bf16 weights; bf16 weights and activations where the CPU has
AVX512_BF16) must agree on the first tokens and almost everywhere when teacher forced (the
accuracy check bench_engine reports).
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import torch

import nanochat_torch as nt

BUILD = os.environ.get("NC_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
EXE = os.path.join(BUILD, "bench", "bench_engine")


def run_c(depth, vocab, prompt, gen, d):
    cmd = [EXE, "--depth", str(depth), "--vocab", str(vocab), "--seq", "256", "--threads", "1",
           "--prompt", str(prompt), "--gen", str(gen), "--reps", "1", "--streams", "2",
           "--stream-prompt", "8", "--dump", d]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


class EngineParity(unittest.TestCase):
    def run_case(self, depth, vocab, prompt, gen):
        torch.set_num_threads(1)
        d = tempfile.mkdtemp(prefix="nc_engine_parity_")
        try:
            c = run_c(depth, vocab, prompt, gen, d)
            cfg, model, idx = nt.load_dump(d)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        with torch.inference_mode():
            # the reference KV-cache path equals the full forward (prefill + token by token)
            full = model(idx)
            kv = nt.KVCache(cfg, 1, prompt + 1)
            a = model.forward_cached(idx[:, :prompt - 5], kv)
            err = float((a - full[:, :prompt - 5]).abs().max())
            for t in range(prompt - 5, prompt):
                o = model.forward_cached(idx[:, t:t + 1], kv)
                err = max(err, float((o[:, 0] - full[:, t]).abs().max()))
            self.assertLess(err, 1e-4)
            # greedy decode as nanochat's Engine does it
            kv = nt.KVCache(cfg, 1, prompt + gen + 1)
            logits = model.forward_cached(idx, kv, last_only=True)
            tok, tokens = int(torch.argmax(logits[0, -1])), []
            for _ in range(gen):
                tokens.append(tok)
                logits = model.forward_cached(torch.tensor([[tok]]), kv)
                tok = int(torch.argmax(logits[0, -1]))
        self.assertEqual(c["greedy_tokens_f32"], tokens)
        self.assertIn("bf16", c["decode"])
        for name, d in c["decode"].items():
            if name == "f32":
                continue
            acc = d["accuracy_vs_f32"]
            self.assertGreaterEqual(acc["teacher_forced_argmax_agree"], int(0.9 * acc["steps"]), name)
            self.assertLess(acc["max_abs_logit_diff"], 0.1, name)
            self.assertGreaterEqual(acc["greedy_common_prefix"], 1, name)
        self.assertGreater(c["streams"][0]["tokens"], 0)  # two streams through the engine ran

    def test_depth1_small_vocab(self):
        self.run_case(1, 512, 24, 24)

    def test_depth3_longer_prompt_backout_before_last_layer(self):
        self.run_case(3, 1024, 70, 16)


if __name__ == "__main__":
    unittest.main()
