"""PyTorch parity of the C model: build/bin/nc_model_check runs the C model on a deterministic
batch and writes its weights, batch, logits, losses and gradients; the PyTorch 1.13 port of
nanochat's GPT (nanochat_torch.py) loads the same weights by state-dict name (strict, so the
names must match exactly), runs the same batch, and every output is compared.
Tolerance: max |C - torch| / max |torch| <= 1e-4 per tensor (fp32 against fp32).
"""
import json
import os
import subprocess
import tempfile
import unittest

import numpy as np
import torch
import torch.nn.functional as F

import nanochat_torch as nt

BUILD = os.environ.get("NC_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
EXE = os.path.join(BUILD, "bin", "nc_model_check")
TOL = 1e-4


def rel_err(a, b, floor=1e-30):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), floor))


def run_c(cfg, B, T, seed=3, ignore=0, weighted=0, threads=1, noise=0.05):
    d = tempfile.mkdtemp(prefix="nc_parity_")
    subprocess.run([EXE, "--config", json.dumps(cfg), "--out", d, "--seed", str(seed),
                    "--B", str(B), "--T", str(T), "--ignore", str(ignore),
                    "--weighted", str(weighted), "--threads", str(threads), "--noise", str(noise)],
                   check=True)
    with open(os.path.join(d, "manifest.json")) as fh:
        man = json.load(fh)
    f32 = lambda n: np.fromfile(os.path.join(d, n), dtype="<f4")
    i32 = lambda n: np.fromfile(os.path.join(d, n), dtype="<i4")
    out = dict(man=man, params=f32("params.f32"), grads=f32("grads.f32"), logits=f32("logits.f32"),
               losses=f32("losses.f32"), idx=i32("idx.i32"), targets=i32("targets.i32"),
               weights=f32("weights.f32") if weighted else None)
    for n in os.listdir(d):
        os.unlink(os.path.join(d, n))
    os.rmdir(d)
    return out


def tensor_views(man, flat):
    views = {}
    for t in man["tensors"]:
        n = int(np.prod(t["shape"]))
        views[t["name"]] = flat[t["offset"]:t["offset"] + n].reshape(t["shape"])
    return views


class ModelParity(unittest.TestCase):
    def check(self, cfg, B, T, ignore=0, weighted=0, threads=1, grad_floor=1e-30):
        torch.set_num_threads(1)
        c = run_c(cfg, B, T, ignore=ignore, weighted=weighted, threads=threads)
        man = c["man"]
        gcfg = nt.GPTConfig(**man["config"])
        model = nt.GPT(gcfg)
        sd = {k: torch.from_numpy(v.copy()) for k, v in tensor_views(man, c["params"]).items()}
        missing, unexpected = model.load_state_dict(sd, strict=True)
        self.assertEqual((list(missing), list(unexpected)), ([], []))
        V = gcfg.vocab_size
        idx = torch.from_numpy(c["idx"].astype(np.int64)).view(B, T)
        tg = torch.from_numpy(c["targets"].astype(np.int64)).view(B, T)
        # logits and per-token losses (evaluation forward)
        with torch.no_grad():
            logits = model(idx)
            self.assertLess(rel_err(c["logits"].reshape(B, T, V), logits.numpy()), TOL, "logits")
            none = F.cross_entropy(logits.view(-1, V), tg.view(-1), ignore_index=-1, reduction="none")
            self.assertLess(rel_err(c["losses"], none.numpy()), TOL, "per-token losses")
        # training loss + every gradient
        model.zero_grad()
        if weighted:
            w = torch.from_numpy(c["weights"])
            loss = (model(idx, tg, loss_reduction="none") * w).sum()
        else:
            loss = model(idx, tg)
        loss.backward()
        self.assertLess(abs(man["loss"] - float(loss)) / max(abs(float(loss)), 1e-6), TOL, "loss")
        if not weighted:
            self.assertLess(abs(man["eval_loss"] - float(loss)) / abs(float(loss)), TOL, "eval loss")
        grads = tensor_views(man, c["grads"])
        names = dict(model.named_parameters())
        self.assertEqual(set(grads), set(names))
        for name, p in names.items():
            e = rel_err(grads[name], p.grad.numpy(), grad_floor)
            self.assertLess(e, TOL, f"grad {name}: rel err {e:.2e}")
        return model

    def test_gqa_short_windows_value_embeds(self):
        # 3 layers (VE on 0 and 2), 4 query heads on 2 kv heads, windows 5, 5, full; padded vocab
        cfg = dict(sequence_len=16, vocab_size=100, n_layer=3, n_head=4, n_kv_head=2, n_embd=64,
                   window_pattern="SSL", short_window=5)
        self.check(cfg, B=2, T=16, ignore=5)

    def test_four_layers_sssl_backout(self):
        cfg = dict(sequence_len=32, vocab_size=128, n_layer=4, n_head=4, n_kv_head=4, n_embd=64,
                   window_pattern="SSSL", short_window=8)
        self.check(cfg, B=2, T=32)

    def test_weighted_per_token_loss(self):
        cfg = dict(sequence_len=16, vocab_size=64, n_layer=3, n_head=2, n_kv_head=1, n_embd=32,
                   window_pattern="SL", short_window=4)
        self.check(cfg, B=2, T=16, ignore=3, weighted=1)

    def test_nanochat_window_rule_and_head_dim_128(self):
        # the real S rule (ceil(256/4/128)*128 = 128 < T = 256), head_dim 128 (depth-rule shapes)
        cfg = dict(sequence_len=256, vocab_size=512, n_layer=3, n_head=2, n_kv_head=2, n_embd=256,
                   window_pattern="SSSL")
        self.check(cfg, B=1, T=256, ignore=7)

    def test_two_threads_threaded_paths(self):
        # large enough that every OpenMP path of the C model runs with 2 threads
        cfg = dict(sequence_len=128, vocab_size=1000, n_layer=2, n_head=8, n_kv_head=8, n_embd=128,
                   window_pattern="SL", short_window=40)
        self.check(cfg, B=8, T=128, ignore=11, threads=2, grad_floor=1e-3)

    def test_two_layer_model(self):
        # n_layer = 2: the backout layer is the last layer; its gradient is eps-level, so
        # compare with a floor of 1e-3 (masks only absolute errors below 1e-7)
        cfg = dict(sequence_len=16, vocab_size=64, n_layer=2, n_head=2, n_kv_head=2, n_embd=32,
                   window_pattern="L")
        self.check(cfg, B=2, T=16, grad_floor=1e-3)


if __name__ == "__main__":
    unittest.main()
