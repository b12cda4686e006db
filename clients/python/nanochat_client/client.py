"""Client: the idiomatic wrapper over the generated stubs.

    from nanochat_client import Client
    with Client("127.0.0.1:50051", token="...") as c:
        print(c.health().status)
        for piece in c.chat("Why is the sky blue?"):
            print(piece, end="", flush=True)
        job = c.train_base(depth=4, num_iterations=50)
        for ev in job.progress(): ...

Every method of proto/ is also reachable as c.rpc.<Service>.<Method>(...) (see rpc.py).
"""
import os

import grpc

from . import errors
from ._gen import common_pb2, std_health_pb2, std_health_pb2_grpc, train_pb2
from .jobs import Job
from .rpc import Cancellable, Rpc

DEFAULT_ADDRESS = "127.0.0.1:50051"


def _messages(prompt_or_messages, system=None):
    """str -> one user message; list of str/dict/(role, text)/ChatMessage -> messages."""
    out = []
    if system:
        out.append({"role": "system", "content": system})
    if isinstance(prompt_or_messages, str):
        out.append({"role": "user", "content": prompt_or_messages})
        return out
    for m in prompt_or_messages:
        if isinstance(m, common_pb2.ChatMessage):
            out.append(m)
        elif isinstance(m, dict):
            out.append(m)
        elif isinstance(m, (tuple, list)) and len(m) == 2:
            out.append({"role": m[0], "content": m[1]})
        else:
            raise errors.InvalidArgument("chat message must be a dict, (role, text) or ChatMessage")
    return out


class ChatStream(Cancellable):
    """Iterates the reply's text pieces (str) as they are generated. After the loop: .done
    (ChatDone: finish_reason, usage, session_id, content), .text, .session_id. cancel() stops
    the generation."""

    def __init__(self, stream):
        self._call = stream
        self.done = None
        self._parts = []

    def __next__(self):
        while True:
            if self.done is not None:
                raise StopIteration
            ev = next(self._call)
            which = ev.WhichOneof("event")
            if which == "delta":
                if ev.delta.text:
                    self._parts.append(ev.delta.text)
                    return ev.delta.text
            elif which == "done":
                self.done = ev.done
                raise StopIteration

    @property
    def text(self):
        return self.done.content if self.done is not None and self.done.content else "".join(self._parts)

    @property
    def session_id(self):
        return self.done.session_id if self.done is not None else ""


class Client:
    """Connection to one nanochatd.

    address: "host:port" (also "unix:/path"). token: the bearer token (default
    $NANOCHAT_TOKEN). tls: use TLS (root_certificates: PEM bytes of the CA to trust, default
    the system roots; server_name overrides the name checked in the certificate).
    timeout: seconds for unary calls whose method has no server-side default deadline."""

    def __init__(self, address=None, token=None, tls=False, root_certificates=None,
                 server_name=None, timeout=30.0, options=()):
        self.address = address or os.environ.get("NANOCHAT_ADDRESS") or DEFAULT_ADDRESS
        if token is None:
            token = os.environ.get("NANOCHAT_TOKEN") or None
        self.timeout = timeout
        opts = list(options)
        if tls or root_certificates:
            if server_name:
                opts.append(("grpc.ssl_target_name_override", server_name))
            creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self.channel = grpc.secure_channel(self.address, creds, opts)
        else:
            self.channel = grpc.insecure_channel(self.address, opts)
        md = (("authorization", "Bearer " + token),) if token else ()
        self.rpc = Rpc(self.channel, md, timeout)

    # -- lifecycle --------------------------------------------------------------------------
    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def wait_ready(self, timeout=10.0):
        """Blocks until the channel connects; Unavailable after timeout seconds."""
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise errors.Unavailable("cannot connect to %s within %ss" % (self.address, timeout)) from None
        return self

    # -- health and model -------------------------------------------------------------------
    def health(self):
        """nanochat.v1.Health/Check: HealthCheckResponse."""
        return self.rpc.Health.Check()

    def serving(self, service=""):
        """grpc.health.v1 status of `service` ("" = the server): "SERVING", "NOT_SERVING", ..."""
        stub = std_health_pb2_grpc.HealthStub(self.channel)
        try:
            r = stub.Check(std_health_pb2.HealthCheckRequest(service=service), timeout=self.timeout)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e) from None
        return std_health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)

    def model_status(self):
        return self.rpc.Model.Status()

    def load_model(self, phase=None, model_tag=None, step=None, device=None, timeout=None):
        return self.rpc.Model.Load(phase=phase, model_tag=model_tag, step=step, device=device,
                                   timeout=timeout)

    def unload_model(self):
        return self.rpc.Model.Unload()

    # -- chat -------------------------------------------------------------------------------
    def chat(self, prompt_or_messages, system=None, timeout=None, **opts):
        """Chat.Stream: a ChatStream iterating text pieces. opts: ChatRequest fields
        (temperature, top_k, max_tokens, session_id, seed, ephemeral, tools, ...)."""
        opts["messages"] = _messages(prompt_or_messages, system)
        return ChatStream(self.rpc.Chat.Stream(timeout=timeout, **opts))

    def complete(self, prompt_or_messages, system=None, timeout=None, **opts):
        """Chat.Complete: ChatResponse (content, session_id, finish_reason, usage, parts)."""
        opts["messages"] = _messages(prompt_or_messages, system)
        return self.rpc.Chat.Complete(timeout=timeout, **opts)

    def history(self, session_id=None, page_size=None, page_token=None):
        """Chat.History: one Session (with session_id) or a page of SessionSummary."""
        return self.rpc.Chat.History(session_id=session_id, page_size=page_size,
                                     page_token=page_token)

    def sessions(self, page_size=100):
        """Every SessionSummary, newest first (follows next_page_token)."""
        token = None
        while True:
            r = self.history(page_size=page_size, page_token=token)
            yield from r.sessions
            if not r.next_page_token:
                return
            token = r.next_page_token

    def sample(self, prompt, timeout=None, **opts):
        return self.rpc.Model.Sample(prompt=prompt, timeout=timeout, **opts)

    def sample_stream(self, prompt, timeout=None, **opts):
        return self.rpc.Model.SampleStream(prompt=prompt, timeout=timeout, **opts)

    # -- tokenizer, tools, checkpoints ------------------------------------------------------
    def encode(self, text, **opts):
        if isinstance(text, str):
            return list(self.rpc.Tokenizer.Encode(text=text, **opts).tokens)
        return [list(t.ids) for t in self.rpc.Tokenizer.Encode(texts=list(text), **opts).batch]

    def decode(self, tokens):
        return self.rpc.Tokenizer.Decode(tokens=list(tokens)).text

    def execute(self, code, timeout=None, memory_limit_mb=None, stdin=None):
        """Tools.Execute in the server's sandbox: ExecuteResponse."""
        return self.rpc.Tools.Execute(code=code, timeout=timeout, memory_limit_mb=memory_limit_mb,
                                      stdin=stdin)

    def checkpoints(self, phase=None, tag=None, verify=False):
        """Checkpoint.List: list of CheckpointInfo, sorted by phase, tag, step."""
        return list(self.rpc.Checkpoint.List(phase=phase, tag=tag, verify=verify).checkpoints)

    def save_checkpoint(self, phase=None, tag=None, step=None):
        return self.rpc.Checkpoint.Save(phase=phase, tag=tag, step=step)

    # -- jobs -------------------------------------------------------------------------------
    def _job(self, ref):
        return Job(self, ref.job_id, ref)

    def train_tokenizer(self, **opts):
        """Train.Tokenizer (TrainTokenizerRequest fields) -> Job."""
        return self._job(self.rpc.Train.Tokenizer(**opts))

    def train_base(self, **opts):
        """Train.Base (TrainBaseRequest fields: depth, num_iterations, ...) -> Job."""
        return self._job(self.rpc.Train.Base(**opts))

    def train_sft(self, **opts):
        return self._job(self.rpc.Train.Sft(**opts))

    def train_rl(self, **opts):
        return self._job(self.rpc.Train.Rl(**opts))

    def test_job(self, **opts):
        """Train.TestJob (servers started with --enable-test-jobs) -> Job."""
        return self._job(self.rpc.Train.TestJob(**opts))

    def eval_core(self, **opts):
        return self._job(self.rpc.Eval.Core(**opts))

    def eval_chat(self, **opts):
        return self._job(self.rpc.Eval.Chat(**opts))

    def eval_loss(self, timeout=None, **opts):
        return self.rpc.Eval.Loss(timeout=timeout, **opts)

    def job(self, job_id):
        """Handle of an existing job (no call is made)."""
        return Job(self, job_id)

    def jobs(self, limit=100):
        """Every job the server knows, newest first: list of JobInfo."""
        return [ev.job for ev in self.rpc.Train.Status(limit=limit, timeout=self.timeout)
                if ev.kind == train_pb2.EVENT_SNAPSHOT]
