"""nanochat — the command-line client of nanochatd, built on the Python SDK (nanochat_client).

    nanochat [-a HOST:PORT] [--token-file F] [--tls [--ca-file PEM]] COMMAND ...
      health | status [--watch S] | chat [PROMPT...] | jobs | watch JOB | cancel JOB
      train tokenizer|base|sft|rl|test [--FIELD V ...] [--detach] [--on-interrupt ask|detach|cancel]
      eval core|chat|loss [--FIELD V ...] | checkpoints | history [SESSION] | methods
      model load|unload|status [--phase base|sft|rl] [--model-tag T] [--step N]
      sample PROMPT [--FIELD V ...] | save [--phase P] [--tag T]

Exit status: 0 ok; 2 usage; 3 invalid argument; 4 deadline; 5 not found; 6 already exists;
7 unauthenticated / permission denied; 8 resource exhausted; 9 failed precondition;
10 unimplemented; 11 internal / data loss; 12 unavailable; 13 the job did not succeed;
130 interrupted (Ctrl-C, or a job cancelled from Ctrl-C)."""
import argparse
import os
import queue
import sys
import threading
import time

import nanochat_client as nc
from nanochat_client import train_pb2

from . import flags, views
from .progress import ProgressView
from .repl import Conversation, one_shot, repl

EXIT_INTERRUPTED = 130
# train/eval sub-commands -> the method that starts the job (its request message gives the flags)
STARTERS = {
    ("train", "tokenizer"): "/nanochat.v1.Train/Tokenizer",
    ("train", "base"): "/nanochat.v1.Train/Base",
    ("train", "sft"): "/nanochat.v1.Train/Sft",
    ("train", "rl"): "/nanochat.v1.Train/Rl",
    ("train", "test"): "/nanochat.v1.Train/TestJob",
    ("eval", "core"): "/nanochat.v1.Eval/Core",
    ("eval", "chat"): "/nanochat.v1.Eval/Chat",
    ("eval", "loss"): "/nanochat.v1.Eval/Loss",
}
# model sub-commands -> method (load's flags come from ModelLoadRequest)
MODEL_CMDS = {"load": "/nanochat.v1.Model/Load", "unload": "/nanochat.v1.Model/Unload",
              "status": "/nanochat.v1.Model/Status"}
SAMPLE_PATH = "/nanochat.v1.Model/SampleStream"
SAVE_PATH = "/nanochat.v1.Checkpoint/Save"
CHAT_FLAGS = ("temperature", "top_k", "top_p", "min_p", "max_tokens", "seed", "tools")


def read_token(a):
    if a.token_file:
        with open(a.token_file) as f:
            return f.read().strip()
    return a.token or os.environ.get("NANOCHAT_TOKEN") or None


def make_client(a):
    root = None
    if a.ca_file:
        with open(a.ca_file, "rb") as f:
            root = f.read()
    return nc.Client(a.address, token=read_token(a), tls=a.tls or bool(root),
                     root_certificates=root, server_name=a.server_name, timeout=a.timeout)


# -- commands -----------------------------------------------------------------------------------
def cmd_health(c, a, out, err):
    h = c.health()
    serving = c.serving()
    if a.json:
        d = views.to_json(h)
        d["grpc_health"] = serving
        views.dump_json(out, d)
    else:
        out.write(views.health_text(h, serving))
    return 0 if h.status == "ok" else nc.Unavailable.exit_code


def status_once(c, out):
    h = c.health()
    text = views.health_text(h)
    try:
        text += views.model_text(c.model_status())
        text += views.running_text(c.jobs())
    except (nc.Unauthenticated, nc.PermissionDenied) as e:
        text += "model/jobs: %s (give --token-file)\n" % e
    out.write(text)
    out.flush()


def cmd_status(c, a, out, err):
    if a.json:
        views.dump_json(out, {"health": views.to_json(c.health()),
                              "model": views.to_json(c.model_status()),
                              "jobs": [views.to_json(j) for j in c.jobs()]})
        return 0
    if not a.watch:
        status_once(c, out)
        return 0
    try:
        while True:
            if out.isatty():
                out.write("\x1b[H\x1b[2J")
            out.write("nanochat status  %s  (every %gs, Ctrl-C to leave)\n"
                      % (time.strftime("%H:%M:%S"), a.watch))
            status_once(c, out)
            time.sleep(a.watch)
    except KeyboardInterrupt:
        out.write("\n")
        return 0


def emit(a, out, obj, text):
    """obj as JSON with --json, else text(obj)."""
    if a.json:
        views.dump_json(out, obj)
    else:
        out.write(text(obj))
    return 0


def cmd_jobs(c, a, out, err):
    return emit(a, out, c.jobs(limit=a.limit), views.jobs_text)


def cmd_checkpoints(c, a, out, err):
    return emit(a, out, c.checkpoints(phase=a.phase, tag=a.tag, verify=a.verify),
                views.checkpoints_text)


def cmd_history(c, a, out, err):
    return emit(a, out, c.history(session_id=a.session, page_size=a.limit), views.history_text)


def cmd_methods(c, a, out, err):
    rows = []
    for m in nc.all_methods().values():
        o = m.options
        rows.append([m.path, "stream" if m.server_streaming else "unary",
                     "public" if o.public else "admin" if o.admin else "user", o.iii_id, o.summary])
    out.write(views.table(rows, ["METHOD", "KIND", "AUTH", "III", "SUMMARY"]))
    return 0


def cmd_cancel(c, a, out, err):
    info = c.job(a.job).cancel()
    out.write("cancel requested: job %s is %s\n" % (info.job_id, nc.state_name(info.state)))
    return 0


def ask_interrupt(job, out, err):
    err.write("\ninterrupted: [d]etach (the job keeps running) or [c]ancel job %s? [d/c] " % job.id)
    err.flush()
    try:
        ans = sys.stdin.readline().strip().lower()
    except KeyboardInterrupt:
        return "detach"
    return "cancel" if ans.startswith("c") else "detach"


def follow(c, job, out, err, on_interrupt, from_seq=1):
    """Shows the job's events live until it ends; returns the exit status."""
    view = ProgressView(out, out.isatty(), job.id)
    events = job.progress(from_seq=from_seq, include_snapshot=True)
    # The stream is read on a helper thread: a Ctrl-C (KeyboardInterrupt) then only ever lands
    # in the main thread's queue wait, never inside grpc's own locks, which it can leave in a
    # state where later calls on the channel hang.
    q = queue.Queue()

    def pump():
        try:
            for e in events:
                q.put(("ev", e))
            q.put(("end", None))
        except Exception as ex:  # noqa: BLE001 - handed to the main thread
            q.put(("err", ex))

    threading.Thread(target=pump, daemon=True).start()
    try:
        while True:
            try:
                kind, item = q.get(timeout=0.2)
            except queue.Empty:
                continue
            if kind == "end":
                break
            if kind == "err":
                if isinstance(item, nc.Cancelled):
                    break
                raise item
            view.event(item)
    except KeyboardInterrupt:
        events.cancel()
        view.finish()
        action = on_interrupt
        if action == "ask":
            action = ask_interrupt(job, out, err) if sys.stdin.isatty() else "detach"
        if action == "cancel":
            out.write("cancelling job %s ...\n" % job.id)
            out.flush()
            job.cancel()
            info = job.wait(timeout=120)
            out.write("job %s %s\n" % (job.id, nc.state_name(info.state)))
            return EXIT_INTERRUPTED
        out.write("detached: job %s keeps running (nanochat watch %s)\n" % (job.id, job.id))
        return 0
    view.finish()
    info = job.status()
    msg = "job %s %s" % (job.id, nc.state_name(info.state))
    if info.error:
        msg += ": " + info.error
    if info.metrics:
        msg += "  " + "  ".join("%s=%.4f" % kv for kv in sorted(info.metrics.items()))
    out.write(msg + "\n")
    return 0 if info.state == train_pb2.JOB_SUCCEEDED else nc.JobFailed.exit_code


def cmd_watch(c, a, out, err):
    return follow(c, c.job(a.job), out, err, "detach", from_seq=a.from_seq)


def cmd_start(c, a, out, err):
    path = STARTERS[(a.cmd, a.what)]
    m = nc.all_methods()[path]
    fields = flags.collect(a, m.input_cls.DESCRIPTOR)
    r = c.rpc.call(path, **fields)
    if m.output_cls is not train_pb2.JobRef:   # synchronous (Eval.Loss)
        if a.json:
            views.dump_json(out, r)
        else:
            out.write("".join("%s: %s\n" % (k, v) for k, v in sorted(views.to_json(r).items())))
        return 0
    job = nc.Job(c, r.job_id, r)
    if a.json and a.detach:
        views.dump_json(out, r)
        return 0
    out.write("started job %s (%s %s), %s%s\n" % (
        r.job_id, a.cmd, a.what, nc.state_name(r.state),
        ", %d ahead in the queue" % r.queue_position if r.queue_position else ""))
    out.flush()
    if a.detach:
        return 0
    return follow(c, job, out, err, a.on_interrupt)


def cmd_chat(c, a, out, err):
    opts = {k: getattr(a, k) for k in CHAT_FLAGS if getattr(a, k) is not None}
    conv = Conversation(c, opts, system=a.system, ephemeral=a.ephemeral, session_id=a.session)
    prompt = " ".join(a.prompt) if a.prompt else None
    if prompt == "-" or (prompt is None and not sys.stdin.isatty()):
        prompt = sys.stdin.read().strip()
        if not prompt:
            raise nc.InvalidArgument("empty prompt on stdin")
    if prompt is not None:
        return one_shot(conv, prompt, out)
    return repl(conv, out, err)


def cmd_model(c, a, out, err):
    path = MODEL_CMDS[a.what]
    m = nc.all_methods()[path]
    r = c.rpc.call(path, timeout=a.timeout if a.what != "load" else max(a.timeout, 300.0),
                   **flags.collect(a, m.input_cls.DESCRIPTOR))
    if a.what == "unload":
        r = c.model_status()
    return emit(a, out, r, views.model_text)


def cmd_sample(c, a, out, err):
    """Model.SampleStream: raw continuations of PROMPT (no chat template), printed as they come;
    with --num-samples N > 1 each sample is printed whole, in index order, once it is done."""
    m = nc.all_methods()[SAMPLE_PATH]
    fields = flags.collect(a, m.input_cls.DESCRIPTOR)
    fields["prompt"] = " ".join(a.prompt)
    if fields["prompt"] == "-":
        fields["prompt"] = sys.stdin.read()
    n = fields.get("num_samples") or 1
    texts = [""] * n
    finish = [None] * n
    for r in c.rpc.call(SAMPLE_PATH, timeout=None, **fields):
        if r.index < 0 or r.index >= n:
            continue
        texts[r.index] += r.text
        if n == 1 and not a.json:
            out.write(r.text)
            out.flush()
        if r.HasField("finish_reason"):
            finish[r.index] = r.finish_reason
    if a.json:
        views.dump_json(out, {"samples": texts})
    elif n == 1:
        out.write("\n")
    else:
        for i, t in enumerate(texts):
            out.write("--- sample %d\n%s\n" % (i, t))
    return 0


def cmd_save(c, a, out, err):
    m = nc.all_methods()[SAVE_PATH]
    r = c.rpc.call(SAVE_PATH, **flags.collect(a, m.input_cls.DESCRIPTOR))
    return emit(a, out, r, lambda x: "".join("%s: %s\n" % kv for kv in sorted(views.to_json(x).items())))


COMMANDS = {"health": cmd_health, "status": cmd_status, "jobs": cmd_jobs,
            "checkpoints": cmd_checkpoints, "history": cmd_history, "methods": cmd_methods,
            "cancel": cmd_cancel, "watch": cmd_watch, "train": cmd_start, "eval": cmd_start,
            "chat": cmd_chat, "model": cmd_model, "sample": cmd_sample, "save": cmd_save}


# -- argument parsing ---------------------------------------------------------------------------
def add_common(p, suppress):
    """Connection and output options; accepted before and after the command."""
    def d(v):
        return argparse.SUPPRESS if suppress else v
    p.add_argument("-a", "--address", default=d(os.environ.get("NANOCHAT_ADDRESS", nc.DEFAULT_ADDRESS)),
                   help="server HOST:PORT or unix:/path (default $NANOCHAT_ADDRESS or 127.0.0.1:50051)")
    p.add_argument("--token", default=d(None), help="bearer token (prefer --token-file or $NANOCHAT_TOKEN)")
    p.add_argument("--token-file", default=d(None), help="file holding the bearer token")
    p.add_argument("--tls", action="store_true", default=d(False), help="connect with TLS (system roots)")
    p.add_argument("--ca-file", default=d(None), help="PEM of the CA to trust (implies --tls)")
    p.add_argument("--server-name", default=d(None), help="name to check in the server certificate")
    p.add_argument("--timeout", type=float, default=d(30.0), help="seconds per unary call (default 30)")
    p.add_argument("--json", action="store_true", default=d(False), help="machine-readable output")


def parser():
    p = argparse.ArgumentParser(prog="nanochat", description="Command-line client of nanochatd.",
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(p, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    add_common(common, suppress=True)   # the same options after the command: nanochat jobs --json
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    sub.add_parser("health", parents=[common], help="server health (exit 0 when ok)")
    s = sub.add_parser("status", parents=[common], help="dashboard: server, model, running jobs")
    s.add_argument("--watch", type=float, metavar="SECONDS", help="refresh every SECONDS until Ctrl-C")
    s = sub.add_parser("chat", parents=[common], help="chat REPL, or one reply to PROMPT ('-' reads stdin)")
    s.add_argument("prompt", nargs="*")
    s.add_argument("--system", help="system prompt")
    s.add_argument("--session", help="continue this session id")
    s.add_argument("--ephemeral", action="store_true", help="store nothing on the server")
    s.add_argument("--temperature", type=float)
    s.add_argument("--top-k", dest="top_k", type=int)
    s.add_argument("--top-p", dest="top_p", type=float)
    s.add_argument("--min-p", dest="min_p", type=float)
    s.add_argument("--max-tokens", dest="max_tokens", type=int)
    s.add_argument("--seed", type=int)
    s.add_argument("--tools", action=argparse.BooleanOptionalAction, default=None,
                   help="run the calculator tool (default on)")
    s = sub.add_parser("jobs", parents=[common], help="list jobs")
    s.add_argument("--limit", type=int, default=100)
    s = sub.add_parser("watch", parents=[common], help="follow a job's progress until it ends (Ctrl-C leaves)")
    s.add_argument("job")
    s.add_argument("--from-seq", type=int, default=1, help="replay stored events from this seq")
    s = sub.add_parser("cancel", parents=[common], help="cancel a job")
    s.add_argument("job")
    s = sub.add_parser("checkpoints", parents=[common], help="list checkpoints")
    s.add_argument("--phase", choices=["base", "sft", "rl"])
    s.add_argument("--tag")
    s.add_argument("--verify", action="store_true", help="re-check files (size, SHA-256)")
    s = sub.add_parser("history", parents=[common], help="list chat sessions, or show one")
    s.add_argument("session", nargs="?")
    s.add_argument("--limit", type=int, default=None)
    sub.add_parser("methods", parents=[common], help="the RPC table (every method of proto/)")

    methods = nc.all_methods()
    g = sub.add_parser("model", help="load, unload or show the served model")
    gs = g.add_subparsers(dest="what", required=True, metavar="ACTION")
    for what, path in MODEL_CMDS.items():
        s = gs.add_parser(what, parents=[common], help=methods[path].options.summary)
        flags.add_message_flags(s, methods[path].input_cls.DESCRIPTOR)
    s = sub.add_parser("sample", parents=[common],
                       help="raw text continuation of PROMPT by the served model ('-' reads stdin)")
    s.add_argument("prompt", nargs="+")
    flags.add_message_flags(s, methods[SAMPLE_PATH].input_cls.DESCRIPTOR, skip=("prompt",))
    s = sub.add_parser("save", parents=[common], help=methods[SAVE_PATH].options.summary)
    flags.add_message_flags(s, methods[SAVE_PATH].input_cls.DESCRIPTOR)
    for group in ("train", "eval"):
        g = sub.add_parser(group, help="start a %s job and show its progress" % group
                           if group == "train" else "run an evaluation")
        gs = g.add_subparsers(dest="what", required=True, metavar="KIND")
        for (grp, what), path in STARTERS.items():
            if grp != group:
                continue
            m = methods[path]
            s = gs.add_parser(what, parents=[common], help=m.options.summary)
            flags.add_message_flags(s, m.input_cls.DESCRIPTOR)
            if m.output_cls is train_pb2.JobRef:
                s.add_argument("--detach", action="store_true", help="print the job id and return")
                s.add_argument("--on-interrupt", choices=["ask", "detach", "cancel"], default="ask",
                               help="what Ctrl-C does: ask (terminal only, else detach), "
                                    "detach (the job keeps running) or cancel the job")
    return p


def main(argv=None, out=None, err=None):
    out = out or sys.stdout
    err = err or sys.stderr
    a = parser().parse_args(argv)
    try:
        with make_client(a) as c:
            return COMMANDS[a.cmd](c, a, out, err)
    except nc.NanochatError as e:
        out.flush()
        err.write("nanochat: error: %s\n" % e)
        return e.exit_code
    except KeyboardInterrupt:
        err.write("\ninterrupted\n")
        return EXIT_INTERRUPTED
    except OSError as e:
        err.write("nanochat: error: %s\n" % e)
        return 1
