"""Real clients driven from tests: curl, nghttp, h2load (Debian's curl and nghttp2-client).

What it is for: running a real client against legate with a bound and giving back what it saw
(status, protocol version, headers, body, exit code). What it is not for: raw or malformed
traffic (http1raw.py, h2raw.py).
"""
import os
import re
import subprocess
import tempfile
import urllib.request


class CurlResult:
    def __init__(self, rc, status, version, headers, body, stderr):
        self.rc = rc
        self.status = status
        self.version = version
        self.headers = headers  # lowercased name -> list of values (last response head)
        self.body = body
        self.stderr = stderr

    def header(self, name):
        v = self.headers.get(name.lower())
        return v[0] if v else None

    def __repr__(self):
        return "<curl rc=%s status=%s version=%s headers=%r body=%r stderr=%r>" % (
            self.rc, self.status, self.version, self.headers, self.body[:300], self.stderr[-500:])


def curl(url, *args, timeout=30, data_stdin=None):
    """Runs curl -sS against url with extra args; returns CurlResult. Never raises on HTTP or
    transport errors (rc tells)."""
    with tempfile.TemporaryDirectory() as d:
        hf, bf = os.path.join(d, "h"), os.path.join(d, "b")
        argv = ["curl", "-sS", "--max-time", str(timeout), "-D", hf, "-o", bf,
                "-w", "%{http_code} %{http_version}", *args, url]
        try:
            r = subprocess.run(argv, input=data_stdin, capture_output=True, timeout=timeout + 10)
        except subprocess.TimeoutExpired as e:
            return CurlResult(-1, 0, "", {}, b"", "timeout: %s" % e)
        parts = r.stdout.decode().split()
        status = int(parts[0]) if parts and parts[0].isdigit() else 0
        version = parts[1] if len(parts) > 1 else ""
        headers = {}
        if os.path.exists(hf):
            raw = open(hf, "rb").read().decode("latin-1")
            # the last response head (after any 1xx); trailers, when curl prints them, follow
            # it as a block without a status line and are not headers
            blocks = [b for b in re.split(r"\r?\n\r?\n", raw) if b.strip().startswith("HTTP/")]
            if blocks:
                for line in blocks[-1].splitlines()[1:]:
                    n, _, v = line.partition(":")
                    headers.setdefault(n.strip().lower(), []).append(v.strip())
        body = open(bf, "rb").read() if os.path.exists(bf) else b""
        return CurlResult(r.returncode, status, version, headers, body, r.stderr.decode("utf-8", "replace"))


def run(argv, timeout=60):
    """Runs a client; returns the CompletedProcess (text, both streams captured)."""
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)


H2LOAD_RE = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored")


def h2load_counts(output):
    """(total, done, succeeded, failed, errored) from h2load's summary, or None."""
    m = H2LOAD_RE.search(output)
    if not m:
        return None
    t, _, d, s, f, e = (int(x) for x in m.groups())
    return t, d, s, f, e


def admin_counters(admin_port, name_filter):
    """The admin /stats lines whose name matches `name_filter`, as {name: int} (integers only)."""
    url = "http://127.0.0.1:%d/stats?filter=%s" % (admin_port, name_filter)
    with urllib.request.urlopen(url, timeout=10) as r:
        out = {}
        for line in r.read().decode().splitlines():
            name, _, value = line.partition(": ")
            if value.strip().isdigit():
                out[name] = int(value)
        return out
