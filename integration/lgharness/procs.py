"""Processes a test starts: legate itself and external peers (nghttpd, nghttpx, Go binaries).

What it is for: starting a program with its stdout and stderr going to files in the test's
directory, waiting (bounded) until a TCP port accepts, and stopping it for sure: SIGTERM, then
SIGKILL after a bound, always reaped. A ProcGroup stops everything it started, last first.
What it is not for: judging the exit; callers look at `returncode` and `stderr_text()`.
"""
import os
import pathlib
import re
import signal
import socket
import subprocess
import time

STOP_TIMEOUT = 10.0


class StartError(Exception):
    """The process exited, or its port never accepted, within the start bound."""


def port_accepts(host, port, timeout=0.2):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class Proc:
    def __init__(self, argv, *, name, log_dir, env=None, cwd=None):
        self.argv = [str(a) for a in argv]
        self.name = name
        self.log_dir = pathlib.Path(log_dir)
        self.env = env
        self.cwd = cwd
        self.popen = None
        self.returncode = None
        self.stdout_path = self.log_dir / ("%s.stdout" % name)
        self.stderr_path = self.log_dir / ("%s.stderr" % name)

    @property
    def pid(self):
        return self.popen.pid

    def start(self):
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=err, env=self.env, cwd=self.cwd,
                                          start_new_session=True)
        return self

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def wait_ports(self, ports, host="127.0.0.1", timeout=15.0):
        """Polls until every port accepts a connection. Raises StartError if the process exits
        first or the bound passes."""
        deadline = time.monotonic() + timeout
        pending = list(ports)
        while pending:
            if self.popen.poll() is not None:
                raise StartError("%s exited with %s before listening on %s" %
                                 (self.name, self.popen.returncode, pending))
            if port_accepts(host, pending[0]):
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                raise StartError("%s did not accept on %s:%s within %.0f s" %
                                 (self.name, host, pending[0], timeout))
            time.sleep(0.02)
        return self

    def wait_exit(self, timeout):
        try:
            self.returncode = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Sends `sig`, waits up to `timeout`, then SIGKILLs the process group. Returns the exit
        code (negative for a signal, as subprocess reports it). Idempotent."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                try:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(timeout=timeout)
        self.returncode = self.popen.returncode
        return self.returncode

    def stderr_text(self, limit=200000):
        try:
            data = self.stderr_path.read_bytes()
        except OSError:
            return ""
        return data[-limit:].decode("utf-8", "replace")

    def stdout_text(self, limit=200000):
        try:
            return self.stdout_path.read_bytes()[-limit:].decode("utf-8", "replace")
        except OSError:
            return ""

    def rss_kib(self):
        """VmRSS of the process in KiB (None once it exited)."""
        try:
            with open("/proc/%d/status" % self.popen.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None


SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer")


class Legate(Proc):
    """legate serving one bootstrap file. `ports` are its listener ports (waited for at start)."""

    def __init__(self, binary, config_path, ports, *, log_dir, name="legate", extra_args=(),
                 log_level="warning", env=None):
        log_level = os.environ.get("LEGATE_LOG_LEVEL", log_level)
        argv = [binary, "-c", config_path, "--concurrency", "1", "-l", log_level,
                "--drain-time-s", "1", *extra_args]
        super().__init__(argv, name=name, log_dir=log_dir, env=env)
        self.binary = binary
        self.config_path = config_path
        self.ports = list(ports)

    @property
    def port(self):
        return self.ports[0]

    def url(self, path="/", scheme="http", port=None):
        return "%s://127.0.0.1:%d%s" % (scheme, port or self.port, path)

    def sanitizer_report(self):
        m = SANITIZER_RE.search(self.stderr_text())
        return m is not None


class ProcGroup:
    """Owns processes started for one test (or one module) and stops them all, last first."""

    def __init__(self):
        self.procs = []

    def add(self, proc):
        self.procs.append(proc)
        return proc

    def stop_all(self):
        for p in reversed(self.procs):
            p.stop()
