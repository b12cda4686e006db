"""A faithful PyTorch 1.13 implementation of nanochat's pinned GPT (karpathy/nanochat a445144,
nanochat/gpt.py, with HEAD's explicit init of smear/backout) and its MuonAdamW optimizer
(nanochat/optim.py, fp32 on CPU), used as the reference for the C model's parity tests and
the training benchmark. Written from specs/nanochat.md §2 and §5.2.

PyTorch 1.13 has neither F.rms_norm nor scaled_dot_product_attention, so both are written
out: rms_norm(x) = x * rsqrt(mean(x^2) + finfo(dtype).eps) (F.rms_norm's formula and default
eps), and attention materialises the masked [T, T] scores per head with the FA3/SDPA window
rule (key j visible from query i iff j <= i and i - j <= window). Parameter names equal
nanochat's state-dict keys, so `load_state_dict` accepts the C model's safetensors files.

Also here: a minimal safetensors reader/writer (json + numpy, no extra package).
"""
import json
import math
import struct
from dataclasses import dataclass, asdict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------- safetensors

_DT = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64,
       "U8": np.uint8, "F16": np.float16}


def read_safetensors(path):
    """Returns (tensors: dict name -> np.ndarray, metadata: dict). BF16 is widened to F32."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        raw = data[base + b:base + e]
        shape = tuple(info["shape"])
        if info["dtype"] == "BF16":
            u16 = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u16.view(np.float32).reshape(shape)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(_DT[info["dtype"]]).newbyteorder("<"))
            arr = arr.reshape(shape)
        out[name] = arr.copy()
    return out, meta


def f32_to_bf16_bits(a):
    """Rounds float32 values to bfloat16 (nearest even, like torch .to(bfloat16)); uint16 bits."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def bf16_round(a):
    """float32 -> bfloat16 -> float32."""
    return (f32_to_bf16_bits(a).astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path, tensors, metadata=None, bf16=()):
    """Writes numpy arrays (dict name -> array) in safetensors format; names in `bf16` are
    float32 arrays stored as BF16 (rounded to nearest even)."""
    inv = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32", np.dtype(np.int64): "I64",
           np.dtype(np.float64): "F64", np.dtype(np.uint8): "U8"}
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        if name in bf16:
            raw, dt = f32_to_bf16_bits(a).astype("<u2").tobytes(), "BF16"
        else:
            raw, dt = a.astype(a.dtype.newbyteorder("<")).tobytes(), inv[a.dtype]
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ----------------------------------------------------------------------------- model

@dataclass
class GPTConfig:
    sequence_len: int = 2048
    vocab_size: int = 32768
    n_layer: int = 12
    n_head: int = 6
    n_kv_head: int = 6
    n_embd: int = 768
    window_pattern: str = "SSSL"
    short_window: int = 0  # nanochat-c extension: explicit S window for tiny test models


def config_from_depth(depth, aspect_ratio=64, head_dim=128, sequence_len=2048, vocab_size=32768,
                      window_pattern="SSSL"):
    base_dim = depth * aspect_ratio
    model_dim = ((base_dim + head_dim - 1) // head_dim) * head_dim
    nh = model_dim // head_dim
    return GPTConfig(sequence_len=sequence_len, vocab_size=vocab_size, n_layer=depth, n_head=nh,
                     n_kv_head=nh, n_embd=model_dim, window_pattern=window_pattern)


def rms_norm(x):
    eps = torch.finfo(x.dtype).eps
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)


def has_ve(layer_idx, n_layer):
    return layer_idx % 2 == (n_layer - 1) % 2


def apply_rotary_emb(x, cos, sin):
    d = x.shape[3] // 2
    x1, x2 = x[..., :d], x[..., d:]
    y1 = x1 * cos + x2 * sin
    y2 = x1 * (-sin) + x2 * cos
    return torch.cat([y1, y2], 3)


def attention(q, k, v, window):
    """q [B,T,H,D], k/v [B,T,Hkv,D] -> [B,T,H,D]; causal with left window (FA3 semantics)."""
    B, T, H, D = q.shape
    Hkv = k.shape[2]
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if Hkv != H:  # GQA: query head h reads kv head h // (H // Hkv)
        k = k.repeat_interleave(H // Hkv, dim=1)
        v = v.repeat_interleave(H // Hkv, dim=1)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
    row = torch.arange(T).unsqueeze(1)
    col = torch.arange(T).unsqueeze(0)
    mask = (col <= row) & ((row - col) <= window)
    att = att.masked_fill(~mask, float("-inf"))
    att = F.softmax(att, dim=-1)
    return (att @ v).transpose(1, 2)


class CausalSelfAttention(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_head, self.n_kv_head, self.n_embd = config.n_head, config.n_kv_head, config.n_embd
        self.head_dim = self.n_embd // self.n_head
        assert self.n_embd % self.n_head == 0 and self.n_head % self.n_kv_head == 0
        self.c_q = nn.Linear(self.n_embd, self.n_head * self.head_dim, bias=False)
        self.c_k = nn.Linear(self.n_embd, self.n_kv_head * self.head_dim, bias=False)
        self.c_v = nn.Linear(self.n_embd, self.n_kv_head * self.head_dim, bias=False)
        self.c_proj = nn.Linear(self.n_embd, self.n_embd, bias=False)
        self.ve_gate_channels = 12
        self.ve_gate = (nn.Linear(self.ve_gate_channels, self.n_kv_head, bias=False)
                        if has_ve(layer_idx, config.n_layer) else None)

    def qkv(self, x, ve, cos_sin):
        """q, k after RoPE, QK-norm and *1.2; v after the value embedding."""
        B, T, C = x.size()
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim)
        k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)
        if ve is not None:
            ve = ve.view(B, T, self.n_kv_head, self.head_dim)
            gate = 3 * torch.sigmoid(self.ve_gate(x[..., :self.ve_gate_channels]))
            v = v + gate.unsqueeze(-1) * ve
        cos, sin = cos_sin
        q, k = apply_rotary_emb(q, cos, sin), apply_rotary_emb(k, cos, sin)
        q, k = rms_norm(q), rms_norm(k)
        q = q * 1.2
        k = k * 1.2
        return q, k, v

    def forward(self, x, ve, cos_sin, window):
        B, T, C = x.size()
        q, k, v = self.qkv(x, ve, cos_sin)
        y = attention(q, k, v, window)
        return self.c_proj(y.contiguous().view(B, T, -1))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)

    def forward(self, x):
        return self.c_proj(F.relu(self.c_fc(x)).square())


class Block(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.attn = CausalSelfAttention(config, layer_idx)
        self.mlp = MLP(config)

    def forward(self, x, ve, cos_sin, window):
        x = x + self.attn(rms_norm(x), ve, cos_sin, window)
        return x + self.mlp(rms_norm(x))


class GPT(nn.Module):
    def __init__(self, config, pad_vocab_size_to=64):
        super().__init__()
        self.config = config
        self.window_sizes = self._compute_window_sizes(config)
        pv = ((config.vocab_size + pad_vocab_size_to - 1) // pad_vocab_size_to) * pad_vocab_size_to
        self.padded_vocab = pv
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(pv, config.n_embd),
            "h": nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
        })
        self.lm_head = nn.Linear(config.n_embd, pv, bias=False)
        self.resid_lambdas = nn.Parameter(torch.ones(config.n_layer))
        self.x0_lambdas = nn.Parameter(torch.zeros(config.n_layer))
        self.smear_gate = nn.Linear(24, 1, bias=False)
        self.smear_lambda = nn.Parameter(torch.zeros(1))
        self.backout_lambda = nn.Parameter(0.2 * torch.ones(1))
        head_dim = config.n_embd // config.n_head
        kv_dim = config.n_kv_head * head_dim
        self.value_embeds = nn.ModuleDict({str(i): nn.Embedding(pv, kv_dim)
                                           for i in range(config.n_layer) if has_ve(i, config.n_layer)})
        self.rotary_seq_len = config.sequence_len * 10
        cos, sin = self._precompute_rotary_embeddings(self.rotary_seq_len, head_dim)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    @torch.no_grad()
    def init_weights(self):
        torch.nn.init.normal_(self.transformer.wte.weight, mean=0.0, std=0.8)
        torch.nn.init.normal_(self.lm_head.weight, mean=0.0, std=0.001)
        s = 3 ** 0.5 * self.config.n_embd ** -0.5
        for block in self.transformer.h:
            torch.nn.init.uniform_(block.attn.c_q.weight, -s, s)
            torch.nn.init.uniform_(block.attn.c_k.weight, -s, s)
            torch.nn.init.uniform_(block.attn.c_v.weight, -s, s)
            torch.nn.init.zeros_(block.attn.c_proj.weight)
            torch.nn.init.uniform_(block.mlp.c_fc.weight, -s * 0.4, s * 0.4)
            torch.nn.init.zeros_(block.mlp.c_proj.weight)
        n = self.config.n_layer
        for i in range(n):
            self.resid_lambdas.data[i] = 1.15 - (0.10 * i / max(n - 1, 1))
            self.x0_lambdas.data[i] = 0.20 - (0.15 * i / max(n - 1, 1))
        for ve in self.value_embeds.values():
            torch.nn.init.uniform_(ve.weight, -s, s)
        for block in self.transformer.h:
            if block.attn.ve_gate is not None:
                torch.nn.init.uniform_(block.attn.ve_gate.weight, 0.0, 0.02)
        # HEAD's explicit init (the pinned commit leaves these uninitialised)
        self.smear_lambda.fill_(0.0)
        self.backout_lambda.fill_(0.2)
        torch.nn.init.uniform_(self.smear_gate.weight, 0.0, 0.02)

    def _precompute_rotary_embeddings(self, seq_len, head_dim, base=100000):
        channel_range = torch.arange(0, head_dim, 2, dtype=torch.float32)
        inv_freq = 1.0 / (base ** (channel_range / head_dim))
        t = torch.arange(seq_len, dtype=torch.float32)
        freqs = torch.outer(t, inv_freq)
        cos, sin = freqs.cos(), freqs.sin()
        return cos[None, :, None, :], sin[None, :, None, :]

    @staticmethod
    def _compute_window_sizes(config):
        pattern = config.window_pattern.upper()
        assert all(c in "SL" for c in pattern)
        long_w = config.sequence_len
        short_w = config.short_window if config.short_window > 0 else -(-long_w // 4 // 128) * 128
        ws = [(long_w if pattern[i % len(pattern)] == "L" else short_w) for i in range(config.n_layer)]
        ws[-1] = long_w
        return ws

    def estimate_flops(self):
        nparams = sum(p.numel() for p in self.parameters())
        ve_numel = sum(ve.weight.numel() for ve in self.value_embeds.values())
        excl = (self.transformer.wte.weight.numel() + ve_numel + self.resid_lambdas.numel() +
                self.x0_lambdas.numel() + self.smear_gate.weight.numel() +
                self.smear_lambda.numel() + self.backout_lambda.numel())
        h, q, t = self.config.n_head, self.config.n_embd // self.config.n_head, self.config.sequence_len
        attn = sum(12 * h * q * min(w, t) for w in self.window_sizes)
        return 6 * (nparams - excl) + attn

    def forward(self, idx, targets=None, loss_reduction="mean"):
        B, T = idx.size()
        cos_sin = self.cos[:, :T], self.sin[:, :T]
        x = rms_norm(self.transformer.wte(idx))
        gate = self.smear_lambda * torch.sigmoid(self.smear_gate(x[:, 1:, :24]))
        x = torch.cat([x[:, :1], x[:, 1:] + gate * x[:, :-1]], dim=1)
        x0 = x
        backout_layer = self.config.n_layer // 2
        x_backout = None
        for i, block in enumerate(self.transformer.h):
            x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0
            ve = self.value_embeds[str(i)](idx) if str(i) in self.value_embeds else None
            x = block(x, ve, cos_sin, self.window_sizes[i])
            if i == backout_layer:
                x_backout = x
        if x_backout is not None:
            x = x - self.backout_lambda * x_backout
        x = rms_norm(x)
        logits = self.lm_head(x)[..., :self.config.vocab_size].float()
        logits = 15 * torch.tanh(logits / 15)
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1),
                               ignore_index=-1, reduction=loss_reduction)

    def setup_optimizer(self, unembedding_lr=0.004, embedding_lr=0.2, matrix_lr=0.02,
                        weight_decay=0.0, scalar_lr=0.5):
        model_dim = self.config.n_embd
        matrix_params = list(self.transformer.h.parameters())
        dms = (model_dim / 768) ** -0.5
        groups = [
            dict(kind="adamw", params=list(self.lm_head.parameters()), lr=unembedding_lr * dms,
                 betas=(0.8, 0.96), eps=1e-10, weight_decay=0.01),
            dict(kind="adamw", params=list(self.transformer.wte.parameters()), lr=embedding_lr * dms,
                 betas=(0.8, 0.995), eps=1e-10, weight_decay=0.001),
            dict(kind="adamw", params=list(self.value_embeds.parameters()), lr=embedding_lr * dms * 0.5,
                 betas=(0.8, 0.995), eps=1e-10, weight_decay=0.01),
            dict(kind="adamw", params=[self.resid_lambdas], lr=scalar_lr * 0.01, betas=(0.8, 0.95),
                 eps=1e-10, weight_decay=0.05),
            dict(kind="adamw", params=[self.x0_lambdas], lr=scalar_lr, betas=(0.96, 0.95), eps=1e-10,
                 weight_decay=0.0),
            dict(kind="adamw", params=[self.smear_gate.weight, self.smear_lambda, self.backout_lambda],
                 lr=0.2, betas=(0.8, 0.95), eps=1e-10, weight_decay=0.0),
        ]
        for shape in sorted({tuple(p.shape) for p in matrix_params}):
            groups.append(dict(kind="muon", params=[p for p in matrix_params if tuple(p.shape) == shape],
                               lr=matrix_lr, momentum=0.95, ns_steps=5, beta2=0.9,
                               weight_decay=weight_decay))
        opt = MuonAdamW(groups)
        for g in opt.param_groups:
            g["initial_lr"] = g["lr"]
        return opt


# ----------------------------------------------------------------------------- optimizer

POLAR_EXPRESS_COEFFS = [
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
]


def adamw_step(p, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, wd):
    p.mul_(1 - lr * wd)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.lerp_(grad.square(), 1 - beta2)
    bias1 = 1 - beta1 ** step
    bias2 = 1 - beta2 ** step
    denom = (exp_avg_sq / bias2).sqrt() + eps
    p.add_(exp_avg / denom, alpha=-(lr / bias1))


# Tests may set this to a list: muon_step then appends, per call, where the cautious
# weight-decay mask is numerically ambiguous (|X| tiny, so its sign is rounding noise).
MUON_TRACE = None


def muon_step(stacked_grads, stacked_params, momentum_buffer, second_momentum_buffer, momentum, lr,
              wd, beta2, ns_steps, red_dim):
    momentum_buffer.lerp_(stacked_grads, 1 - momentum)
    g = stacked_grads.lerp_(momentum_buffer, momentum)
    X = g / (g.norm(dim=(-2, -1), keepdim=True) * 1.01 + 1e-6)  # fp32 on CPU (no bf16 cast)
    if g.size(-2) > g.size(-1):
        for a, b, c in POLAR_EXPRESS_COEFFS[:ns_steps]:
            A = X.mT @ X
            B = b * A + c * (A @ A)
            X = a * X + X @ B
    else:
        for a, b, c in POLAR_EXPRESS_COEFFS[:ns_steps]:
            A = X @ X.mT
            B = b * A + c * (A @ A)
            X = a * X + B @ X
    g = X
    v_mean = g.float().square().mean(dim=red_dim, keepdim=True)
    red_dim_size = g.size(red_dim)
    v_norm = (v_mean.sum(dim=(-2, -1), keepdim=True) * red_dim_size).sqrt()
    second_momentum_buffer.lerp_(v_mean.to(dtype=second_momentum_buffer.dtype), 1 - beta2)
    step_size = second_momentum_buffer.clamp_min(1e-10).rsqrt()
    scaled_sq_sum = (v_mean * red_dim_size) * step_size.float().square()
    v_norm_new = scaled_sq_sum.sum(dim=(-2, -1), keepdim=True).sqrt()
    g = g * (step_size * (v_norm / v_norm_new.clamp_min(1e-10))).to(g.dtype)
    mask = (g * stacked_params) >= 0
    if MUON_TRACE is not None:
        amb = g.abs() <= 1e-4 * g.abs().amax(dim=(-2, -1), keepdim=True)
        MUON_TRACE.append(dict(ambiguous=amb.clone(), decay=(lr * wd * stacked_params).abs()))
    stacked_params.sub_(lr * g + lr * wd * stacked_params * mask)


class MuonAdamW(torch.optim.Optimizer):
    """nanochat's single-device MuonAdamW (optim.py), fp32, without torch.compile."""

    def __init__(self, param_groups):
        super().__init__(param_groups, defaults={})

    def _step_adamw(self, group):
        for p in group["params"]:
            if p.grad is None:
                continue
            st = self.state[p]
            if not st:
                st["step"] = 0
                st["exp_avg"] = torch.zeros_like(p)
                st["exp_avg_sq"] = torch.zeros_like(p)
            st["step"] += 1
            adamw_step(p, p.grad, st["exp_avg"], st["exp_avg_sq"], st["step"], group["lr"],
                       group["betas"][0], group["betas"][1], group["eps"], group["weight_decay"])

    def _step_muon(self, group):
        params = group["params"]
        if not params:
            return
        p = params[0]
        st = self.state[p]
        shape = p.shape
        if "momentum_buffer" not in st:
            st["momentum_buffer"] = torch.zeros(len(params), *shape, dtype=p.dtype)
        if "second_momentum_buffer" not in st:
            sshape = (len(params), shape[-2], 1) if shape[-2] >= shape[-1] else (len(params), 1, shape[-1])
            st["second_momentum_buffer"] = torch.zeros(sshape, dtype=p.dtype)
        red_dim = -1 if shape[-2] >= shape[-1] else -2
        stacked_grads = torch.stack([q.grad for q in params])
        stacked_params = torch.stack(params)
        lr = group["lr"] * max(1.0, shape[-2] / shape[-1]) ** 0.5
        muon_step(stacked_grads, stacked_params, st["momentum_buffer"], st["second_momentum_buffer"],
                  group["momentum"], lr, group["weight_decay"],
                  group["beta2"] if group["beta2"] is not None else 0.0, group["ns_steps"], red_dim)
        for q, s in zip(params, stacked_params.unbind(0)):
            q.copy_(s)

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            if group["kind"] == "adamw":
                self._step_adamw(group)
            elif group["kind"] == "muon":
                self._step_muon(group)
            else:
                raise ValueError(group["kind"])


def config_to_json(cfg):
    d = asdict(cfg)
    if not d.get("short_window"):
        d.pop("short_window", None)
    return d


# ----------------------------------------------------------------------------- KV-cache inference
# nanochat engine.py's KVCache and GPT.forward(idx, kv_cache=...), written out for PyTorch 1.13 on
# the CPU (nanochat calls flash_attn_with_kvcache; here the same window semantics are masked by
# hand). Used by bench/bench_engine.py as the reference decode loop.

class KVCache:
    """k, v [n_layer, B, T_max, Hkv, D]; one position for all rows (nanochat prefills batch 1 and
    broadcasts); prev_embedding = the normed embedding of the last token (smear state)."""

    def __init__(self, config, batch_size, max_len):
        D = config.n_embd // config.n_head
        shape = (config.n_layer, batch_size, max_len, config.n_kv_head, D)
        self.k = torch.zeros(shape)
        self.v = torch.zeros(shape)
        self.pos = 0
        self.prev_embedding = None


def attention_cached(q, k, v, p0, window):
    """q [B,T,H,D] at positions p0..p0+T-1; k/v [B,S,Hkv,D] for positions 0..S-1 (S = p0+T)."""
    B, T, H, D = q.shape
    S, Hkv = k.shape[1], k.shape[2]
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if Hkv != H:
        k = k.repeat_interleave(H // Hkv, dim=1)
        v = v.repeat_interleave(H // Hkv, dim=1)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
    row = torch.arange(p0, p0 + T).unsqueeze(1)
    col = torch.arange(S).unsqueeze(0)
    mask = (col <= row) & ((row - col) <= window)
    att = att.masked_fill(~mask, float("-inf"))
    att = F.softmax(att, dim=-1)
    return (att @ v).transpose(1, 2)


def _attn_forward_cached(self, x, ve, cos_sin, window, kv, li):
    B, T, C = x.size()
    q, k, v = self.qkv(x, ve, cos_sin)
    p0 = kv.pos
    kv.k[li, :B, p0:p0 + T] = k
    kv.v[li, :B, p0:p0 + T] = v
    y = attention_cached(q, kv.k[li, :B, :p0 + T], kv.v[li, :B, :p0 + T], p0, window)
    return self.c_proj(y.contiguous().view(B, T, -1))


CausalSelfAttention.forward_cached = _attn_forward_cached


def _gpt_forward_cached(self, idx, kv, last_only=False):
    """Logits [B, T, V] (nanochat computes them for every position), or [B, 1, V] with
    last_only (a tuned variant: the head only where the engine samples)."""
    B, T = idx.size()
    p0 = kv.pos
    cos_sin = self.cos[:, p0:p0 + T], self.sin[:, p0:p0 + T]
    x = rms_norm(self.transformer.wte(idx))
    if T == 1 and kv.prev_embedding is not None:
        gate = self.smear_lambda * torch.sigmoid(self.smear_gate(x[..., :24]))
        xs = x + gate * kv.prev_embedding
    else:
        gate = self.smear_lambda * torch.sigmoid(self.smear_gate(x[:, 1:, :24]))
        xs = torch.cat([x[:, :1], x[:, 1:] + gate * x[:, :-1]], dim=1)
    kv.prev_embedding = x[:, -1:, :]
    x = x0 = xs
    backout_layer = self.config.n_layer // 2
    x_backout = None
    for i, block in enumerate(self.transformer.h):
        x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0
        ve = self.value_embeds[str(i)](idx) if str(i) in self.value_embeds else None
        x = x + block.attn.forward_cached(rms_norm(x), ve, cos_sin, self.window_sizes[i], kv, i)
        x = x + block.mlp(rms_norm(x))
        if i == backout_layer:
            x_backout = x
    if x_backout is not None:
        x = x - self.backout_lambda * x_backout
    if last_only:
        x = x[:, -1:]
    x = rms_norm(x)
    logits = self.lm_head(x)[..., :self.config.vocab_size].float()
    kv.pos += T
    return 15 * torch.tanh(logits / 15)


GPT.forward_cached = _gpt_forward_cached


def load_dump(d):
    """A model written by bench_engine --dump (or nc_model_check): manifest.json (config, tensor
    names/offsets/shapes) + params.f32 (the flat buffer), loaded by state-dict name (strict), and
    prompt.i32 as a [1, T] tensor when present. Returns (config, model, prompt or None)."""
    import os
    with open(os.path.join(d, "manifest.json")) as f:
        man = json.load(f)
    flat = np.fromfile(os.path.join(d, "params.f32"), dtype="<f4")
    cfg = GPTConfig(**man["config"])
    model = GPT(cfg)
    sd = {}
    for t in man["tensors"]:
        n = int(np.prod(t["shape"]))
        sd[t["name"]] = torch.from_numpy(flat[t["offset"]:t["offset"] + n].reshape(t["shape"]).copy())
    missing, unexpected = model.load_state_dict(sd, strict=True)
    if missing or unexpected:
        raise ValueError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    prompt = None
    path = os.path.join(d, "prompt.i32")
    if os.path.exists(path):
        prompt = torch.from_numpy(np.fromfile(path, dtype="<i4").astype(np.int64)).view(1, -1)
    return cfg, model, prompt
