"""nc_models.py — tiny tokenizers and random checkpoints for the serving tests, and reference
computations on them straight from libnccore (build/bin/nc_ckpt_tool: full-forward greedy
decoding without a KV cache, bits per byte through nc_eval_bpb).

    srv = model_server(args=[...], models=[("sft", "d2", {})])   # data dir prepared, not started
    with srv: ...

Random weights give gibberish, but greedy decoding is deterministic, which is what the tests
compare. Everything is small: a 2048-token BPE tokenizer trained on tinyshakespeare in ~0.1 s,
d2 models of ~1.2 M parameters (sequence_len 128).
"""
import json
import os
import subprocess

import grpc

from nanochat.v1 import chat_pb2, common_pb2, model_pb2

from nc_harness import BUILD, Server

SRC = os.environ.get("NC_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
SHAKESPEARE = os.path.join(SRC, "..", "shared", "data", "tinyshakespeare", "input.txt")
TOOL = os.path.join(BUILD, "bin", "nc_ckpt_tool")
PHASE_DIRS = {"base": "base_checkpoints", "sft": "chatsft_checkpoints", "rl": "chatrl_checkpoints"}
PHASES = {"base": common_pb2.PHASE_BASE, "sft": common_pb2.PHASE_SFT, "rl": common_pb2.PHASE_RL}
# engine flags for tests: fp32 decode (the reference path: equal to the full-forward greedy
# tokens) and one OpenMP thread (spinning barriers on this shared 2-core machine are slow)
ENGINE_ARGS = ["--engine-weights", "f32", "--engine-threads", "1"]


def make_tokenizer(path, vocab=2048):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    subprocess.run([os.path.join(BUILD, "bin", "nc_tok_train"), "-o", path, "--vocab-size", str(vocab),
                    "--docs", "blank", "--quiet", SHAKESPEARE], check=True, capture_output=True, timeout=120)
    return path


def ckpt_dir(data_dir, phase, tag):
    return os.path.join(data_dir, "checkpoints", PHASE_DIRS[phase], tag)


def make_ckpt(data_dir, tokenizer, phase="sft", tag="d2", step=0, depth=2, seq_len=128, head_dim=64, seed=1,
              bf16=False, config=None, noise=0.05):
    """A random checkpoint under data_dir/checkpoints; returns the tool's JSON (sha256, parameters)."""
    cmd = [TOOL, "make", "--tokenizer", tokenizer, "--root", os.path.join(data_dir, "checkpoints"),
           "--phase", phase, "--tag", tag, "--step", str(step), "--seed", str(seed), "--noise", str(noise)]
    cmd += ["--config", json.dumps(config)] if config else ["--depth", str(depth), "--seq-len", str(seq_len),
                                                            "--head-dim", str(head_dim)]
    if bf16:
        cmd.append("--bf16")
    p = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)
    return json.loads(p.stdout)


def tool_json(args):
    p = subprocess.run([TOOL] + args, check=True, capture_output=True, text=True, timeout=300)
    return json.loads(p.stdout)


def greedy(tokenizer, cdir, chat=None, raw=None, max_tokens=16, step=None):
    args = ["greedy", "--tokenizer", tokenizer, "--dir", cdir, "--max-tokens", str(max_tokens)]
    args += ["--chat", chat] if chat is not None else ["--raw", raw]
    if step is not None:
        args += ["--step", str(step)]
    return tool_json(args)


def bpb(tokenizer, cdir, corpus, split="val", B=2, steps=3):
    return tool_json(["bpb", "--tokenizer", tokenizer, "--dir", cdir, "--corpus", corpus, "--split", split,
                      "--B", str(B), "--steps", str(steps)])


def write_corpus(root, n_docs=120, doc_chars=600):
    """root/train/a.jsonl and root/val/val.jsonl of tinyshakespeare pieces (nc_corpus layout)."""
    with open(SHAKESPEARE, encoding="utf-8") as f:
        text = f.read()
    for split, off in (("train", 0), ("val", len(text) // 2)):
        os.makedirs(os.path.join(root, split), exist_ok=True)
        with open(os.path.join(root, split, "a.jsonl" if split == "train" else "val.jsonl"), "w") as f:
            for i in range(n_docs):
                piece = text[off + i * doc_chars: off + (i + 1) * doc_chars]
                f.write(json.dumps({"text": piece}) + "\n")
    return root


def write_paragraph_dataset(d, doc_chars=800, val_every=20):
    """tinyshakespeare as documents of ~doc_chars characters (whole paragraphs):
    d/train.jsonl and d/val.jsonl (the last 1/val_every of the documents). Returns d."""
    os.makedirs(d, exist_ok=True)
    with open(SHAKESPEARE, encoding="utf-8") as f:
        paras = [p.strip() for p in f.read().split("\n\n") if p.strip()]
    docs, cur = [], ""
    for p in paras:
        if cur and len(cur) + len(p) > doc_chars:
            docs.append(cur)
            cur = ""
        cur += ("\n\n" if cur else "") + p
    docs.append(cur)
    nval = len(docs) // val_every
    for name, part in (("train.jsonl", docs[:-nval]), ("val.jsonl", docs[-nval:])):
        with open(os.path.join(d, name), "w") as f:
            for doc in part:
                f.write(json.dumps({"text": doc}) + "\n")
    return d


def model_server(args=(), models=(("sft", "d2", {}),), vocab=2048, **kw):
    """A Server whose data dir holds a tokenizer (data/tokenizer/tokenizer.txt) and the given
    checkpoints [(phase, tag, make_ckpt kwargs)]; srv.tok is the tokenizer path, srv.ckpts the
    make_ckpt results by (phase, tag)."""
    srv = Server(args=list(ENGINE_ARGS) + list(args), **kw)
    srv.tok = make_tokenizer(os.path.join(srv.data_dir, "tokenizer", "tokenizer.txt"), vocab)
    srv.ckpts = {}
    for phase, tag, opts in models:
        srv.ckpts[(phase, tag)] = make_ckpt(srv.data_dir, srv.tok, phase, tag, **opts)
    return srv


# ---- request helpers --------------------------------------------------------------------------

def user(text):
    return common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=text)


def assistant(text):
    return common_pb2.ChatMessage(role=common_pb2.ROLE_ASSISTANT, content=text)


def chat_req(text="Hello there", **kw):
    msgs = kw.pop("messages", None) or [user(text)]
    kw.setdefault("temperature", 0.0)
    kw.setdefault("tools", False)
    return chat_pb2.ChatRequest(messages=msgs, **kw)


def stream(stub, req, timeout=60, metadata=()):
    """Chat.Stream → (text, ids, done, deltas)."""
    text, ids, done, deltas = "", [], None, 0
    for ev in stub.Stream(req, timeout=timeout, metadata=metadata):
        if ev.HasField("delta"):
            text += ev.delta.text
            ids += list(ev.delta.token_ids)
            deltas += 1
        else:
            assert done is None
            done = ev.done
    return text, ids, done, deltas


def load(srv, phase="sft", tag="", step=None, timeout=60):
    kw = {"phase": PHASES[phase], "model_tag": tag}
    if step is not None:
        kw["step"] = step
    return srv.stub("Model").Load(model_pb2.ModelLoadRequest(**kw), timeout=timeout, metadata=srv.auth())


def status(srv):
    return srv.stub("Model").Status(model_pb2.ModelStatusRequest(), timeout=10, metadata=srv.auth())


def code_of(fn):
    try:
        fn()
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""
