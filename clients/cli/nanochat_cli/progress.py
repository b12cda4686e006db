"""Live rendering of a job's event stream: a one-line progress bar (step/total, percent, loss,
tok/s, ETA, state) redrawn in place on a terminal, with LOG / EVAL / CHECKPOINT / state lines
printed above it. Off a terminal: plain lines, progress at most once per second."""
import math
import time

from nanochat_client import kind_name, state_name, train_pb2


def fmt_duration(s):
    if s is None or not math.isfinite(s) or s < 0:
        return "--:--"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return "%d:%02d:%02d" % (h, m, sec) if h else "%d:%02d" % (m, sec)


def fmt_count(x):
    if x is None or not math.isfinite(x):
        return "-"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return "%.1f%s" % (x / div, unit)
    return "%.0f" % x if x == int(x) else "%.1f" % x


def tokens_per_sec(p):
    if p.tokens_per_sec > 0:
        return p.tokens_per_sec
    if p.elapsed_s > 0 and p.tokens_seen > 0:
        return p.tokens_seen / p.elapsed_s
    return None


def eta(p):
    if p.HasField("eta_s") and math.isfinite(p.eta_s) and p.eta_s >= 0:
        return p.eta_s
    if p.step > 0 and p.total_steps > p.step and p.elapsed_s > 0:
        return p.elapsed_s / p.step * (p.total_steps - p.step)
    return None


def bar_line(p, state, width=24):
    """The progress line for Progress p and JobState state."""
    total = p.total_steps
    if total > 0:
        frac = min(1.0, max(0.0, p.step / total))
        filled = int(frac * width)
        bar = "[" + "#" * filled + "." * (width - filled) + "]"
        steps = "step %d/%d %3d%%" % (p.step, total, int(frac * 100))
    else:
        bar = "[" + "?" * width + "]"
        steps = "step %d" % p.step
    loss = "loss %.4f" % p.loss if p.HasField("loss") and math.isfinite(p.loss) else "loss -"
    tps = tokens_per_sec(p)
    return "%s %s  %s  %s tok/s  ETA %s  %s" % (bar, steps, loss, fmt_count(tps),
                                              fmt_duration(eta(p)), state_name(state))


class ProgressView:
    def __init__(self, out, tty, job_id):
        self.out = out
        self.tty = tty
        self.job_id = job_id
        self.progress = train_pb2.Progress()
        self.state = train_pb2.JOB_STATE_UNSPECIFIED
        self.kind = None
        self._drawn = False
        self._last_plain = 0.0
        self.last_seq = 0

    def _clear(self):
        if self.tty and self._drawn:
            self.out.write("\r\x1b[K")
            self._drawn = False

    def line(self, text):
        """A line above the bar."""
        self._clear()
        self.out.write(text + "\n")
        self.redraw()

    def redraw(self):
        if self.tty:
            self.out.write("\r\x1b[K" + bar_line(self.progress, self.state))
            self._drawn = True
        self.out.flush()

    def event(self, ev):
        K = train_pb2
        if ev.seq:
            self.last_seq = max(self.last_seq, ev.seq)
        if ev.kind == K.EVENT_SNAPSHOT:
            self.state = ev.job.state
            self.kind = kind_name(ev.job.kind)
            if ev.job.HasField("progress"):
                self.progress.CopyFrom(ev.job.progress)
            self.line("job %s (%s): %s" % (ev.job.job_id, self.kind, state_name(ev.job.state)))
        elif ev.kind == K.EVENT_PROGRESS:
            self.progress.CopyFrom(ev.progress)
            if self.tty:
                self.redraw()
            else:
                now = time.monotonic()
                last = ev.progress.total_steps and ev.progress.step >= ev.progress.total_steps
                if now - self._last_plain >= 1.0 or last:
                    self._last_plain = now
                    self.out.write(bar_line(self.progress, self.state) + "\n")
                    self.out.flush()
        elif ev.kind == K.EVENT_STATE:
            self.state = ev.state
            self.line("state: %s%s" % (state_name(ev.state), ": " + ev.message if ev.message else ""))
        elif ev.kind == K.EVENT_LOG:
            self.line("log: " + ev.message)
        elif ev.kind == K.EVENT_EVAL:
            self.line("eval: " + "  ".join("%s=%.4f" % kv for kv in sorted(ev.metrics.items())))
        elif ev.kind == K.EVENT_CHECKPOINT:
            c = ev.checkpoint
            self.line("checkpoint: %s step %d (%s)" % (c.tag, c.step, c.path))

    def finish(self):
        if self.tty and self._drawn:
            self.out.write("\n")
            self._drawn = False
        self.out.flush()
