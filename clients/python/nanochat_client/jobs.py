"""Job handles for the long-running methods (Train.*, Eval.Core, Eval.Chat, Train.TestJob).

    job = client.train_base(depth=4, num_iterations=100)
    for ev in job.progress():              # JobEvent stream: stored events, then live ones
        if ev.kind == EVENT_PROGRESS:
            print(ev.progress.step, ev.progress.loss)
    info = job.wait()                      # final JobInfo
"""
import time

from . import errors
from ._gen import train_pb2
from .rpc import Cancellable

TERMINAL = frozenset((train_pb2.JOB_SUCCEEDED, train_pb2.JOB_FAILED, train_pb2.JOB_CANCELLED,
                      train_pb2.JOB_INTERRUPTED))


def state_name(state):
    """JOB_RUNNING -> "running"."""
    return train_pb2.JobState.Name(state).replace("JOB_STATE_", "").replace("JOB_", "").lower()


def kind_name(kind):
    """JOB_BASE -> "base"."""
    return train_pb2.JobKind.Name(kind).replace("JOB_", "").lower()


class JobEvents(Cancellable):
    """Iterator of JobEvent (no SNAPSHOT unless asked); cancel() stops following."""

    def __init__(self, stream, include_snapshot):
        self._call = stream
        self._snap = include_snapshot
        self.snapshot = None

    def __next__(self):
        while True:
            ev = next(self._call)
            if ev.kind == train_pb2.EVENT_SNAPSHOT:
                self.snapshot = ev.job
                if not self._snap:
                    continue
            return ev


class Job:
    """A job on the server. id: the 16-hex-char job id; ref: the JobRef the starter returned."""

    def __init__(self, client, job_id, ref=None):
        self._client = client
        self.id = job_id
        self.ref = ref

    def __repr__(self):
        return "<Job %s>" % self.id

    def status(self):
        """The job as it is now (JobInfo)."""
        evs = list(self._client.rpc.Train.Status(job_id=self.id, follow=False, from_seq=0,
                                                 timeout=self._client.timeout))
        if not evs:
            raise errors.NotFound("job %s: no snapshot" % self.id)
        return evs[0].job

    def progress(self, from_seq=1, follow=True, include_snapshot=False, timeout=None):
        """JobEvent stream: stored events with seq >= from_seq (0 = none), then, with follow,
        live ones until the job ends. Events come in seq order."""
        s = self._client.rpc.Train.Status(job_id=self.id, follow=follow, from_seq=from_seq,
                                          timeout=timeout)
        return JobEvents(s, include_snapshot)

    def cancel(self):
        """Asks the server to cancel; returns JobInfo (the job may still be stopping)."""
        return self._client.rpc.Train.Cancel(job_id=self.id)

    def wait(self, timeout=None, check=False):
        """Follows the job until it ends; returns the final JobInfo. check=True raises
        JobFailed unless it SUCCEEDED. timeout (seconds) -> DeadlineExceeded."""
        deadline = None if timeout is None else time.monotonic() + timeout
        from_seq = 0
        while True:
            left = None if deadline is None else max(0.001, deadline - time.monotonic())
            try:
                for ev in self.progress(from_seq=from_seq, timeout=left):
                    from_seq = ev.seq + 1
            except errors.DeadlineExceeded:
                raise errors.DeadlineExceeded("job %s did not end within %ss" % (self.id, timeout))
            info = self.status()
            if info.state in TERMINAL:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise errors.DeadlineExceeded("job %s did not end within %ss" % (self.id, timeout))
            from_seq = max(from_seq, 1)
        if check and info.state != train_pb2.JOB_SUCCEEDED:
            raise errors.JobFailed("job %s %s%s" % (self.id, state_name(info.state),
                                                     ": " + info.error if info.error else ""), info)
        return info
