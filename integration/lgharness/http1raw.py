"""A raw HTTP/1.1 client: exact bytes out, responses parsed back, and the connection's fate.

What it is for: smuggling and framing cases that curl would normalise, pipelining, and checking
that the server closed the connection after an error. What it is not for: general use; it reads
only what these tests need (status line, headers, Content-Length or chunked bodies, or until close).
"""
import socket
import time


class Response:
    def __init__(self, version, status, reason, headers, body, trailers=None):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (lowercased name, value)
        self.body = body
        self.trailers = trailers or []

    def header(self, name):
        vals = [v for n, v in self.headers if n == name.lower()]
        return vals[0] if vals else None

    def __repr__(self):
        return "<Response %s %r %r>" % (self.status, self.headers, self.body[:200])


class Conn:
    def __init__(self, host, port, timeout=10.0):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = bytearray()
        self.eof = False
        self.timeout = timeout

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _fill(self, deadline):
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no response data within the bound")
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(1 << 16)
        except ConnectionResetError:
            d = b""
        except socket.timeout:
            raise TimeoutError("no response data within the bound")
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def _until(self, delim, deadline):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + len(delim)]
                return out
            if not self._fill(deadline):
                return None

    def _exactly(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                break
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_response(self, timeout=None, head_request=False):
        """The next response, or None if the connection closed before a status line."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            head = self._until(b"\r\n\r\n", deadline)
            if head is None:
                return None
            lines = head.split(b"\r\n")
            version, _, rest = lines[0].partition(b" ")
            status_s, _, reason = rest.partition(b" ")
            status = int(status_s)
            headers = []
            for ln in lines[1:]:
                n, _, v = ln.partition(b":")
                headers.append((n.decode("latin-1").lower(), v.strip().decode("latin-1")))
            if 100 <= status < 200 and status != 101:
                continue  # interim response
            break
        resp = Response(version.decode(), status, reason.decode("latin-1"), headers, b"")
        te = resp.header("transfer-encoding")
        cl = resp.header("content-length")
        if head_request or status in (204, 304):
            return resp
        if te and "chunked" in te.lower():
            body = bytearray()
            while True:
                line = self._until(b"\r\n", deadline)
                if line is None:
                    break
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while True:
                        t = self._until(b"\r\n", deadline)
                        if not t:
                            break
                        n, _, v = t.partition(b":")
                        resp.trailers.append((n.decode().lower(), v.strip().decode()))
                    break
                body += self._exactly(size, deadline)
                self._until(b"\r\n", deadline)
            resp.body = bytes(body)
        elif cl is not None:
            resp.body = self._exactly(int(cl), deadline)
        else:
            while self._fill(deadline):
                pass
            resp.body = bytes(self.buf)
            self.buf.clear()
        return resp

    def closed_by_peer(self, timeout=5.0):
        """True if the server closes the connection (EOF or reset) within the bound, with no
        further bytes arriving; False if it stays open (or sends more)."""
        deadline = time.monotonic() + timeout
        try:
            while not self.eof:
                before = len(self.buf)
                if not self._fill(deadline):
                    break
                if len(self.buf) > before:
                    return False
        except TimeoutError:
            return False
        return not self.buf


def request(host, port, method="GET", target="/", headers=(), body=b"", timeout=10.0):
    """One request on a fresh connection; returns the Response (or None)."""
    hs = [("Host", "localhost")] + list(headers)
    if body and not any(n.lower() in ("content-length", "transfer-encoding") for n, _ in hs):
        hs.append(("Content-Length", str(len(body))))
    data = ("%s %s HTTP/1.1\r\n" % (method, target)).encode() + \
        b"".join(("%s: %s\r\n" % (n, v)).encode("latin-1") for n, v in hs) + b"\r\n" + body
    with Conn(host, port, timeout) as c:
        c.send(data)
        return c.read_response(head_request=(method == "HEAD"))
