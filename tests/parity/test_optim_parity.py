"""PyTorch parity of the optimizers and the checkpoint format.

build/bin/nc_optim_check trains the C model for a few steps on a fixed batch and saves a
safetensors checkpoint (model + optimizer state) before and after every step, plus each step's
batch, loss, logits and gradients. Here PyTorch reads OUR files with a plain struct+json+numpy
parser (nanochat_torch.read_safetensors), loads the weights into the PyTorch port of nanochat's
GPT by state-dict name (strict) and checks, step by step:
  - logits, loss and every gradient against the C values (max|C - torch| / max|torch| <= 1e-4);
  - one optimizer step from the same gradients: every updated parameter (<= 1e-5) and every
    optimizer state tensor (<= 1e-5) against C's next checkpoint. MuonAdamW is the port of
    nanochat's optim.py; plain AdamW is checked against torch.optim.AdamW itself. The
    PyTorch step runs in float64: in fp32, Polar Express amplifies rounding (5 iterations of a
    polynomial with slope up to ~18 near singular value 1), NorMuon magnifies it in rows of
    small norm, and the cautious weight-decay mask (X*p >= 0) flips where X is ~0; fp32
    PyTorch was measured 7e-5 away from float64 PyTorch on a [512, 128] matrix while the C
    step (fp32, double accumulations) was 3e-7 away. Where the orthogonalised update is ~0
    (|X| <= 1e-4 max|X|) the mask is rounding noise in any precision, so there the C value
    may also differ by the decay term lr*wd*|p| (either mask is right). Optimizer state is
    compared at 1e-4: Polar Express on a tiny [Hkv, 12] ve_gate whose singular values sit
    near 1 carries 5e-5 of fp32 rounding into the NorMuon second moment.
  - base_train's LR / momentum / weight-decay schedules (written here from base_train.py)
    against the values the C driver used.
The other direction: PyTorch writes a safetensors file (wte and value embeds in BF16, as
nanochat's GPU checkpoints store them) that the C driver loads with --init.
"""
import copy
import json
import math
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np
import torch

import nanochat_torch as nt

BUILD = os.environ.get("NC_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
EXE = os.path.join(BUILD, "bin", "nc_optim_check")
TOL_GRAD = 1e-4
TOL_STEP = 1e-5
TOL_STATE = 1e-4


def rel_err(a, b, floor=1e-30):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), floor))


# base_train.py schedules (pinned a445144), for comparison with the C functions
def lr_multiplier(it, n, warmup=40, warmdown_ratio=0.65, final_lr_frac=0.05):
    warmdown = round(warmdown_ratio * n)
    if it < warmup:
        return (it + 1) / warmup
    if it <= n - warmdown:
        return 1.0
    progress = (n - it) / warmdown
    return progress * 1.0 + (1 - progress) * final_lr_frac


def muon_momentum(it, n, warmdown_ratio=0.65):
    warmdown = round(warmdown_ratio * n)
    start = n - warmdown
    if it < 400:
        frac = it / 400
        return (1 - frac) * 0.85 + frac * 0.97
    if it >= start:
        progress = (it - start) / warmdown
        return 0.97 * (1 - progress) + 0.90 * progress
    return 0.97


def muon_weight_decay(it, n, wd):
    return wd * 0.5 * (1 + math.cos(math.pi * it / n))


def load_model(path):
    tensors, meta = nt.read_safetensors(path)
    cfg = nt.GPTConfig(**json.loads(meta["model_config"]))
    model = nt.GPT(cfg)
    sd = {k: torch.from_numpy(v.copy()) for k, v in tensors.items()}
    missing, unexpected = model.load_state_dict(sd, strict=True)
    assert not missing and not unexpected, (missing, unexpected)
    return model, meta


class OptimParity(unittest.TestCase):
    def setUp(self):
        torch.set_num_threads(1)
        self.dir = tempfile.mkdtemp(prefix="nc_optim_parity_")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_c(self, **kw):
        cmd = [EXE, "--out", self.dir]
        for k, v in kw.items():
            cmd += ["--" + k.replace("_", "-"), v if isinstance(v, str) else str(v)]
        subprocess.run(cmd, check=True)
        with open(os.path.join(self.dir, "manifest.json")) as fh:
            return json.load(fh)

    def ckpt(self, kind, step):
        name = {"model": f"model_{step:06d}.safetensors",
                "optim": f"optim_{step:06d}_rank0.safetensors"}[kind]
        return os.path.join(self.dir, "ckpt", name)

    def torch_state(self, model, opt, kind):
        """Optimizer state as a dict named like nc_optim_state."""
        names = {p: n for n, p in model.named_parameters()}
        out = {}
        if kind == "adamw":
            for p, st in opt.state.items():
                out[names[p] + ".exp_avg"] = st["exp_avg"]
                out[names[p] + ".exp_avg_sq"] = st["exp_avg_sq"]
            return out
        for g in opt.param_groups:
            if g["kind"] == "adamw":
                for p in g["params"]:
                    st = opt.state[p]
                    out[names[p] + ".exp_avg"] = st["exp_avg"]
                    out[names[p] + ".exp_avg_sq"] = st["exp_avg_sq"]
            else:
                st = opt.state[g["params"][0]]
                for k, p in enumerate(g["params"]):
                    out[names[p] + ".momentum_buffer"] = st["momentum_buffer"][k]
                    out[names[p] + ".second_momentum_buffer"] = st["second_momentum_buffer"][k]
        return out

    @staticmethod
    def mask_slack(model, opt, trace):
        """name -> allowed extra |difference| (the decay term where the mask is ambiguous)."""
        names = {p: n for n, p in model.named_parameters()}
        out = {}
        groups = [g for g in opt.param_groups if g.get("kind") == "muon"]
        for g, tr in zip(groups, trace):
            for k, p in enumerate(g["params"]):
                amb = tr["ambiguous"][k].numpy()
                out[names[p]] = np.where(amb, tr["decay"][k].numpy(), 0.0)
        return out

    def trajectory(self, optim="muonadamw", steps=2, num_iterations=0, weight_decay=0.1,
                   lr=1e-3, adamw_wd=0.01, **c_args):
        man = self.run_c(optim=optim, steps=steps, num_iterations=num_iterations,
                         weight_decay=weight_decay, lr=lr, adamw_wd=adamw_wd, **c_args)
        model, meta = load_model(self.ckpt("model", 0))
        self.assertEqual(meta["format"], "nanochat-c/1")
        self.assertEqual(json.loads(meta["meta"])["step"], 0)
        model64 = copy.deepcopy(model).double()  # the reference optimizer step (float64)
        if optim == "adamw":
            opt = torch.optim.AdamW(model64.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8,
                                    weight_decay=adamw_wd)
        else:
            opt = model64.setup_optimizer(weight_decay=weight_decay)
        params = dict(model.named_parameters())
        params64 = dict(model64.named_parameters())
        B, T, V = man["B"], man["T"], model.config.vocab_size
        for s in range(steps):
            st, _ = nt.read_safetensors(os.path.join(self.dir, f"step_{s}.safetensors"))
            idx = torch.from_numpy(st["idx"].astype(np.int64))
            tg = torch.from_numpy(st["targets"].astype(np.int64))
            with torch.no_grad():
                self.assertLess(rel_err(st["logits"], model(idx).numpy()), TOL_GRAD, f"logits {s}")
            model.zero_grad()
            loss = model(idx, tg)
            loss.backward()
            self.assertLess(abs(float(st["loss"][0]) - float(loss)) / float(loss), TOL_GRAD, "loss")
            for name, p in params.items():
                e = rel_err(st["grad." + name], p.grad.numpy(), 1e-3)
                self.assertLess(e, TOL_GRAD, f"step {s} grad {name}: {e:.2e}")
            # the optimizer step from C's gradients, so only the optimizer is compared
            for name, p in params64.items():
                p.grad = torch.from_numpy(st["grad." + name].astype(np.float64))
            sched = man["schedule"][s]
            if num_iterations > 0:
                want = (lr_multiplier(s, num_iterations), muon_momentum(s, num_iterations),
                        muon_weight_decay(s, num_iterations, weight_decay))
                got = (sched["lrm"], sched["momentum"], sched["weight_decay"])
                for w, g in zip(want, got):
                    self.assertAlmostEqual(w, g, delta=1e-15, msg=f"schedule at {s}")
            if optim != "adamw":
                for g in opt.param_groups:
                    g["lr"] = g["initial_lr"] * sched["lrm"]
                    if g["kind"] == "muon":
                        g["momentum"] = sched["momentum"]
                        g["weight_decay"] = sched["weight_decay"]
            nt.MUON_TRACE = []
            try:
                opt.step()
                slack = self.mask_slack(model64, opt, nt.MUON_TRACE)
            finally:
                nt.MUON_TRACE = None
            after, _ = nt.read_safetensors(self.ckpt("model", s + 1))
            for name, p in params64.items():
                ref = p.detach().numpy()
                diff = np.abs(after[name].astype(np.float64) - ref)
                if name in slack:
                    diff = np.maximum(diff - slack[name], 0.0)
                e = float(diff.max() / max(np.abs(ref).max(), 1e-30))
                self.assertLess(e, TOL_STEP, f"step {s} param {name}: {e:.2e}")
            ostate, ometa = nt.read_safetensors(self.ckpt("optim", s + 1))
            tstate = self.torch_state(model64, opt, "adamw" if optim == "adamw" else "muon")
            self.assertEqual(set(ostate), set(tstate))
            for name, t in tstate.items():
                self.assertEqual(tuple(ostate[name].shape), tuple(t.shape), name)
                e = rel_err(ostate[name], t.numpy())
                self.assertLess(e, TOL_STATE, f"step {s} state {name}: {e:.2e}")
            self.assertEqual(json.loads(ometa["optimizer"])["step"], s + 1)
            # continue from C's parameters (bit-identical inputs for the next step)
            with torch.no_grad():
                for name, p in params.items():
                    p.copy_(torch.from_numpy(after[name].copy()))
                    params64[name].copy_(p)
        return model

    def test_muon_adamw_gqa_value_embeds(self):
        # 3 layers (VE on 0, 2), GQA 4:2 (c_k/c_v wide [32, 64]), tall c_fc, wide c_proj and
        # ve_gate [2, 12]: every Muon shape class; cautious weight decay active (wd 0.1)
        cfg = dict(sequence_len=16, vocab_size=100, n_layer=3, n_head=4, n_kv_head=2, n_embd=64,
                   window_pattern="SSL", short_window=5)
        self.trajectory(config=json.dumps(cfg), steps=3)

    def test_muon_adamw_with_base_train_schedules(self):
        # num_iterations 4, warmup 40: lrm (it+1)/40 ramps; momentum 0.85 -> ...; cosine wd
        cfg = dict(sequence_len=32, vocab_size=128, n_layer=4, n_head=4, n_kv_head=4, n_embd=64,
                   window_pattern="SSSL", short_window=8)
        self.trajectory(config=json.dumps(cfg), steps=3, num_iterations=4, weight_decay=0.28)

    def test_muon_adamw_two_threads(self):
        cfg = dict(sequence_len=64, vocab_size=300, n_layer=2, n_head=2, n_kv_head=2, n_embd=128,
                   window_pattern="L")
        self.trajectory(config=json.dumps(cfg), steps=2, threads=2, B=4, T=64)

    def test_plain_adamw_against_torch_optim_adamw(self):
        cfg = dict(sequence_len=16, vocab_size=64, n_layer=2, n_head=2, n_kv_head=1, n_embd=32,
                   window_pattern="SL", short_window=4)
        self.trajectory(config=json.dumps(cfg), optim="adamw", steps=3, lr=3e-3, adamw_wd=0.1)

    def test_c_bf16_embeddings_readable_by_torch(self):
        cfg = dict(sequence_len=16, vocab_size=64, n_layer=2, n_head=2, n_kv_head=2, n_embd=32,
                   window_pattern="L")
        self.run_c(config=json.dumps(cfg), steps=1, bf16=1)
        tensors, _ = nt.read_safetensors(self.ckpt("model", 0))
        with open(self.ckpt("model", 0), "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(n))
        self.assertEqual(header["transformer.wte.weight"]["dtype"], "BF16")
        self.assertEqual(header["lm_head.weight"]["dtype"], "F32")
        # a BF16 value widened to F32 has 16 zero low bits
        self.assertTrue(np.all(tensors["transformer.wte.weight"].view(np.uint32) & 0xFFFF == 0))
        model, _ = load_model(self.ckpt("model", 0))
        self.assertEqual(model.transformer.wte.weight.shape[0], 64)

    def test_torch_writes_c_reads(self):
        # PyTorch-initialised weights (+ noise so no gradient path is trivially zero), saved
        # by Python with wte / value embeds in BF16 and a foreign "format" value; C loads the
        # file (--init), re-saves it as its step-0 checkpoint, and trains one Muon step.
        torch.manual_seed(7)
        cfg = nt.GPTConfig(sequence_len=16, vocab_size=90, n_layer=3, n_head=2, n_kv_head=1,
                           n_embd=32, window_pattern="SL", short_window=6)
        model = nt.GPT(cfg)
        model.init_weights()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * (2 * torch.rand_like(p) - 1))
        sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
        bf16 = {k for k in sd if k == "transformer.wte.weight" or k.startswith("value_embeds.")}
        path = os.path.join(self.dir, "from_torch.safetensors")
        nt.write_safetensors(path, sd, {"format": "pt",
                                        "model_config": json.dumps(nt.config_to_json(cfg))},
                             bf16=bf16)
        self.trajectory(init=path, steps=1)
        back, _ = nt.read_safetensors(self.ckpt("model", 0))
        self.assertEqual(set(back), set(sd))
        for k, v in sd.items():
            want = nt.bf16_round(v) if k in bf16 else v
            np.testing.assert_array_equal(back[k], want, err_msg=k)  # bit-exact

    def test_schedule_functions_match_base_train(self):
        # the C schedule values over a whole (short) horizon, through the driver's manifest
        cfg = dict(sequence_len=8, vocab_size=32, n_layer=1, n_head=1, n_kv_head=1, n_embd=32,
                   window_pattern="L")
        man = self.run_c(config=json.dumps(cfg), steps=0)
        self.assertEqual(man["schedule"], [])
        # horizons with half-way rounding (0.65 * 10 = 6.5 -> 6, Python's banker's rounding)
        man = self.run_c(config=json.dumps(cfg), steps=10, num_iterations=10, warmup=2,
                         weight_decay=0.2, B=1, T=8)
        for s, got in enumerate(man["schedule"]):
            self.assertAlmostEqual(got["lrm"], lr_multiplier(s, 10, warmup=2), delta=1e-15)
            self.assertAlmostEqual(got["momentum"], muon_momentum(s, 10), delta=1e-15)
            self.assertAlmostEqual(got["weight_decay"], muon_weight_decay(s, 10, 0.2), delta=1e-15)


if __name__ == "__main__":
    unittest.main()
