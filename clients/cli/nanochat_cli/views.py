"""Text views of server answers: health, the status dashboard, jobs and checkpoints tables,
chat history. Every view also has a --json form (protobuf JSON, field names as in proto/)."""
import json
import time

from google.protobuf import json_format

from nanochat_client import common_pb2, kind_name, state_name, train_pb2

from .progress import bar_line, fmt_count, fmt_duration


def to_json(msg):
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def dump_json(out, obj):
    if isinstance(obj, list):
        obj = [to_json(m) for m in obj]
    elif not isinstance(obj, dict):
        obj = to_json(obj)
    out.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def table(rows, header):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    for r in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines) + "\n"


def phase_name(p):
    return common_pb2.Phase.Name(p).replace("PHASE_", "").lower()


def when(ms):
    if not ms:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000.0))


def health_text(h, serving=None):
    lines = ["server:   %s (%s %s, up %s)" % (h.status, h.worker or "nanochatd", h.version,
                                               fmt_duration(h.uptime_s))]
    if serving is not None:
        lines.append("grpc health: %s" % serving)
    if h.model_loaded:
        lines.append("model:    %s %s step %d on %s" % (phase_name(h.phase), h.model_tag,
                                                       h.model_step, h.device))
    else:
        lines.append("model:    none loaded (device %s)" % (h.device or "-"))
    lines.append("sandbox:  %s" % (h.sandbox_level or "-"))
    lines.append("jobs:     %d running, %d queued; calls in flight: %d"
                 % (h.jobs_running, h.jobs_queued, h.calls_in_flight))
    return "\n".join(lines) + "\n"


def model_text(m):
    if not m.loaded:
        return "model:    none loaded\n"
    c = m.config
    return ("model:    %s %s step %d on %s, %s params, %s bytes\n"
            "shape:    %d layers, %d heads, d=%d, ctx %d, vocab %d\n"
            "slots:    %d/%d in use, %d queued\n"
            % (phase_name(m.phase), m.model_tag, m.step, m.device, fmt_count(m.parameters),
               fmt_count(m.memory_bytes), c.n_layer, c.n_head, c.n_embd, c.sequence_len,
               c.vocab_size, m.slots_in_use, m.slots_total, m.queue_depth))


def job_rows(jobs):
    rows = []
    for j in jobs:
        p = j.progress
        steps = "%d/%d" % (p.step, p.total_steps) if p.total_steps else (str(p.step) if p.step else "-")
        loss = "%.4f" % p.loss if j.HasField("progress") and p.HasField("loss") else "-"
        rows.append([j.job_id, kind_name(j.kind), state_name(j.state), steps, loss,
                     when(j.created_ms), (j.error or "")[:60]])
    return rows


def jobs_text(jobs):
    if not jobs:
        return "no jobs\n"
    return table(job_rows(jobs), ["JOB", "KIND", "STATE", "STEP", "LOSS", "CREATED", "ERROR"])


def running_text(jobs):
    act = [j for j in jobs if j.state in (train_pb2.JOB_RUNNING, train_pb2.JOB_QUEUED)]
    if not act:
        return "active:   no running or queued jobs\n"
    out = []
    for j in act:
        out.append("job %s %-9s %s" % (j.job_id, kind_name(j.kind), bar_line(j.progress, j.state)))
    return "\n".join(out) + "\n"


def checkpoints_text(cks):
    if not cks:
        return "no checkpoints\n"
    rows = []
    for c in cks:
        bpb = "%.4f" % c.val_bpb if c.HasField("val_bpb") and c.val_bpb == c.val_bpb else "-"
        rows.append([phase_name(c.phase), c.tag, c.step, fmt_count(c.size), bpb,
                     common_pb2.CheckpointStatus.Name(c.status).replace("CHECKPOINT_", "").lower(),
                     c.path])
    return table(rows, ["PHASE", "TAG", "STEP", "SIZE", "VAL_BPB", "STATUS", "PATH"])


def history_text(r):
    if r.HasField("session"):
        s = r.session
        lines = ["session %s (%d messages, updated %s)" % (s.id, len(s.messages), when(s.updated_ms))]
        for m in s.messages:
            role = common_pb2.Role.Name(m.role).replace("ROLE_", "").lower()
            text = m.content or "".join(p.text for p in m.parts)
            lines.append("%s: %s" % (role, text))
        return "\n".join(lines) + "\n"
    if not r.sessions:
        return "no sessions\n"
    rows = [[s.id, s.message_count, s.tokens_generated, when(s.updated_ms)] for s in r.sessions]
    return table(rows, ["SESSION", "MESSAGES", "TOKENS", "UPDATED"])
