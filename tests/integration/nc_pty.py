"""nc_pty.py — run a command on a pseudo-terminal (its controlling tty) for CLI tests: type
into it, wait for output, send Ctrl-C through the line discipline or a signal.

    p = PtyProc([cli, "chat"], env=env)
    p.expect(b"you> ")
    p.send(b"hello\\r")
    p.expect(rb"error|nanochat> .+")
    rc = p.wait()
"""
import os
import pty
import re
import select
import signal
import termios
import time


class PtyProc:
    def __init__(self, argv, env=None, cols=120):
        self.buf = b""
        pid, fd = pty.fork()
        if pid == 0:  # child: stdin/stdout/stderr are the pty, which is its controlling tty
            try:
                # NOFLSH: a typed Ctrl-C must not flush output the test has not read yet (the
                # tty driver sends SIGINT first and flushes after, racing with the reply)
                attrs = termios.tcgetattr(0)
                attrs[3] |= termios.NOFLSH
                termios.tcsetattr(0, termios.TCSANOW, attrs)
                os.environ["COLUMNS"] = str(cols)
                os.execve(argv[0], argv, env or os.environ)
            finally:
                os._exit(127)
        self.pid = pid
        self.fd = fd
        self.rc = None

    def _read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:      # EIO: the child closed the pty
            data = b""
        if not data:
            return None
        self.buf += data
        return True

    def expect(self, pattern, timeout=30.0):
        """Waits until pattern (regex bytes) appears in the output since the last match;
        returns the match. AssertionError with the output on timeout or EOF."""
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        while True:
            m = rx.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("timeout waiting for %r; output: %r" % (pattern, self.buf[-3000:]))
            if self._read(min(left, 0.5)) is None:
                m = rx.search(self.buf)
                if m:
                    self.buf = self.buf[m.end():]
                    return m
                raise AssertionError("EOF waiting for %r; output: %r" % (pattern, self.buf[-3000:]))

    def send(self, data):
        os.write(self.fd, data)

    def ctrl_c(self):
        """Ctrl-C typed on the terminal: the tty driver sends SIGINT to the foreground group."""
        self.send(b"\x03")

    def signal(self, sig=signal.SIGINT):
        os.kill(self.pid, sig)

    def wait(self, timeout=30.0):
        """Reads the rest of the output and returns the exit status (-N: killed by signal N)."""
        deadline = time.time() + timeout
        while self.rc is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.rc = os.waitstatus_to_exitcode(status)
                break
            if time.time() > deadline:
                self.kill()
                raise AssertionError("process did not exit; output: %r" % self.buf[-3000:])
            self._read(0.1)
        while self._read(0.05):
            pass
        return self.rc

    def kill(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass

    def close(self):
        if self.rc is None:
            self.kill()
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
