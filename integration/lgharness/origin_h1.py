"""A scriptable HTTP/1.1 origin (threaded, raw sockets) that records what reaches it.

What it is for: the upstream of most data-plane tests. The request path picks the behaviour: the
first path segment that names a mode below decides, the segments after it are its arguments, so a
route prefix may come first (`/user/size/100`). Everything that arrives is recorded: `heads` gets
each request head as soon as it is parsed (the smuggling tests assert it stays empty), `requests`
each complete request with its body length, SHA-256 and first bytes.

Modes:
  ok (default)        200, body "hello from origin\\n" (h2spec needs a non-empty body)
  echo                200, JSON {method, target, version, headers, body, body_len, body_sha256,
                      trailers} of the request it got
  size/N              200 with N pattern bytes (pattern_bytes), Content-Length
  chunked/N           200 with N pattern bytes, chunked, trailers x-origin-trailer and x-body-sha256
  sink                reads the body (any length, streamed), 200 JSON {body_len, body_sha256}
  slow/COUNT/MS       chunked, COUNT chunks "chunk i\\n", one every MS ms
  status/CODE         that status, small body
  stall               reads the request, never answers (until the origin stops)
  close-early         reads the request, closes without a byte of response
  close-mid/N         headers with Content-Length N, N/10 body bytes, then closes
  garbage             writes bytes that are not HTTP, then closes
  bad-framing         a response with both Content-Length and Transfer-Encoding: chunked
  text/N              200 with N bytes of compressible text (text_bytes), Content-Length; query
                      options: ct=TYPE (text/plain), status=CODE (no body for 204/304),
                      h=NAME:VALUE (repeatable), chunked=1 (chunked, trailer x-origin-trailer),
                      hold=K (after K body bytes wait for `release` to be set, bounded 20 s),
                      zeros=1 (N zero bytes instead of text), gz=1 (the body gzipped, with
                      Content-Encoding: gzip; N counts the bytes before compression),
                      etag=TAG (an ETag header; a request whose If-None-Match is TAG gets a 304
                      with the ETag and the h= headers, no body)
What it is not for: being a conforming HTTP server; it parses what legate sends and fails loudly
(recorded in `errors`) on anything else.
"""
import gzip
import hashlib
import json
import socket
import threading
import time
import urllib.parse

BLOCK = None
_DOUBLE = None
BLOCK_LEN = (1 << 20) + 7  # not a power of two, so misaligned copies show in the hash


def _block():
    global BLOCK
    if BLOCK is None:
        import random
        BLOCK = random.Random(20261128).randbytes(BLOCK_LEN)
    return BLOCK


def pattern_chunks(n, chunk=1 << 20):
    """The first n bytes of the endless repetition of a fixed pseudo-random block, in chunks."""
    global _DOUBLE
    if _DOUBLE is None:
        _DOUBLE = memoryview(_block() * 2)
    b = _DOUBLE
    off = 0
    while n > 0:
        take = min(chunk, n, BLOCK_LEN)
        yield b[off:off + take]
        off = (off + take) % BLOCK_LEN
        n -= take


def pattern_bytes(n):
    return b"".join(bytes(c) for c in pattern_chunks(n))


_sha_cache = {}


def pattern_sha256(n):
    if n not in _sha_cache:
        h = hashlib.sha256()
        for c in pattern_chunks(n):
            h.update(c)
        _sha_cache[n] = h.hexdigest()
    return _sha_cache[n]


def text_bytes(n):
    """The first n bytes of a fixed, compressible text (numbered lines)."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += b"line %08d: the quick brown fox jumps over the lazy dog\n" % i
        i += 1
    return bytes(out[:n])


class BadRequest(Exception):
    pass


class _Reader:
    """Buffered reads from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self):
        d = self.sock.recv(1 << 18)
        if not d:
            raise EOFError
        self.buf += d

    def until(self, delim, limit=1 << 20):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[:i + len(delim)])
                del self.buf[:i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise BadRequest("line or head too long")
            self._fill()

    def exactly_into(self, n, sink):
        while n > 0:
            if not self.buf:
                self._fill()
            take = min(n, len(self.buf))
            sink(bytes(self.buf[:take]))
            del self.buf[:take]
            n -= take


class Request:
    def __init__(self, method, target, version, headers, raw_head):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # list of (name, value) as str, names as sent
        self.raw_head = raw_head
        self.body_len = 0
        self.body_head = bytearray()  # first MiB of the body
        self.body_sha256 = None
        self.trailers = []
        self.received_at = time.monotonic()

    def header(self, name):
        name = name.lower()
        vals = [v for n, v in self.headers if n.lower() == name]
        return vals[0] if len(vals) == 1 else (vals or None)

    @property
    def path(self):
        return self.target.split("?", 1)[0]

    def as_json(self):
        return {"method": self.method, "target": self.target, "version": self.version,
                "headers": [[n, v] for n, v in self.headers],
                "body": self.body_head.decode("latin-1") if self.body_len <= (1 << 20) else None,
                "body_len": self.body_len, "body_sha256": self.body_sha256,
                "trailers": [[n, v] for n, v in self.trailers]}


MODES = {"ok", "echo", "size", "chunked", "sink", "slow", "status", "stall", "close-early",
         "close-mid", "garbage", "bad-framing", "text"}


class H1Origin:
    def __init__(self, default_mode="ok", host="127.0.0.1", port=0):
        self.default_mode = default_mode
        self.host = host
        self.want_port = port  # 0: any free port
        self.heads = []
        self.requests = []
        self.errors = []
        self.connections = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._socks = set()
        self._threads = []
        self.lsock = None
        self.release = threading.Event()  # lets a held `text` response finish

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self):
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.want_port))
        s.listen(512)
        self.lsock = s
        self.port = s.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, name="origin-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stopping.set()
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        with self._lock:
            socks = list(self._socks)
        for c in socks:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self._threads):
            t.join(timeout=5)

    def reset(self):
        with self._lock:
            self.heads.clear()
            self.requests.clear()
            self.errors.clear()

    def wait_requests(self, n, timeout=10.0):
        """Waits until at least n complete requests were recorded; returns the list."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self.requests)

    def wait_heads(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.heads) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self.heads)

    # -- serving -----------------------------------------------------------------------------
    def _accept_loop(self):
        while not self._stopping.is_set():
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._socks.add(c)
                self.connections += 1
            t = threading.Thread(target=self._conn, args=(c,), name="origin-conn", daemon=True)
            t.start()
            self._threads = [x for x in self._threads if x.is_alive()] + [t]

    def _conn(self, c):
        r = _Reader(c)
        try:
            while not self._stopping.is_set():
                try:
                    req = self._read_head(r)
                except EOFError:
                    return
                with self._cond:
                    self.heads.append(req.raw_head)
                    self._cond.notify_all()
                mode, args = self._mode(req)
                if not self._read_body(r, req, keep_all=(mode == "echo")):
                    return
                with self._cond:
                    self.requests.append(req)
                    self._cond.notify_all()
                if not self._respond(c, req, mode, args):
                    return
                conn_hdr = (req.header("connection") or "")
                if isinstance(conn_hdr, list):
                    conn_hdr = ",".join(conn_hdr)
                if "close" in conn_hdr.lower() or (req.version == "HTTP/1.0" and "keep-alive" not in conn_hdr.lower()):
                    return
        except (OSError, EOFError):
            return
        except BadRequest as e:
            with self._lock:
                self.errors.append(str(e))
            try:
                c.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            except OSError:
                pass
        finally:
            with self._lock:
                self._socks.discard(c)
            try:
                c.close()
            except OSError:
                pass

    def _read_head(self, r):
        raw = r.until(b"\r\n\r\n", limit=256 << 10)
        lines = raw[:-4].split(b"\r\n")
        try:
            method, target, version = lines[0].decode("latin-1").split(" ")
        except ValueError:
            raise BadRequest("bad request line %r" % lines[0])
        headers = []
        for ln in lines[1:]:
            if b":" not in ln:
                raise BadRequest("header line without colon %r" % ln)
            n, v = ln.split(b":", 1)
            headers.append((n.decode("latin-1"), v.strip(b" \t").decode("latin-1")))
        return Request(method, target, version, headers, raw)

    def _read_body(self, r, req, keep_all):
        h = hashlib.sha256()
        cap = (1 << 20)

        def sink(d):
            h.update(d)
            req.body_len += len(d)
            if len(req.body_head) < cap:
                req.body_head += d[:cap - len(req.body_head)]

        te = req.header("transfer-encoding")
        cl = req.header("content-length")
        if isinstance(te, list) or isinstance(cl, list):
            raise BadRequest("repeated framing header")
        if te is not None:
            if te.lower() != "chunked" or cl is not None:
                raise BadRequest("bad framing te=%r cl=%r" % (te, cl))
            while True:
                line = r.until(b"\r\n", limit=4096)[:-2]
                size_s = line.split(b";", 1)[0]
                if not size_s or any(ch not in b"0123456789abcdefABCDEF" for ch in size_s):
                    raise BadRequest("bad chunk size %r" % line)
                size = int(size_s, 16)
                if size == 0:
                    break
                r.exactly_into(size, sink)
                if r.until(b"\r\n", limit=2) != b"\r\n":
                    raise BadRequest("chunk data not followed by CRLF")
            while True:
                line = r.until(b"\r\n", limit=65536)[:-2]
                if not line:
                    break
                n, _, v = line.partition(b":")
                req.trailers.append((n.decode("latin-1"), v.strip().decode("latin-1")))
        elif cl is not None:
            if not cl.isdigit():
                raise BadRequest("bad content-length %r" % cl)
            r.exactly_into(int(cl), sink)
        req.body_sha256 = h.hexdigest()
        return True

    def _mode(self, req):
        segs = [s for s in req.path.split("/") if s]
        for i, s in enumerate(segs):
            if s in MODES:
                return s, segs[i + 1:]
        return self.default_mode, []

    def _respond(self, c, req, mode, args):
        head_only = req.method == "HEAD"

        def send(status, body=b"", ctype="text/plain", extra=()):
            hs = ["HTTP/1.1 %s" % status, "content-type: %s" % ctype,
                  "content-length: %d" % len(body)] + list(extra)
            c.sendall(("\r\n".join(hs) + "\r\n\r\n").encode() + (b"" if head_only else body))
            return True

        if mode == "ok":
            return send("200 OK", b"hello from origin\n")
        if mode == "echo":
            return send("200 OK", json.dumps(req.as_json()).encode(), "application/json")
        if mode == "sink":
            return send("200 OK", json.dumps({"body_len": req.body_len,
                                              "body_sha256": req.body_sha256}).encode(),
                        "application/json")
        if mode == "status":
            code = int(args[0]) if args else 200
            return send("%d Status" % code, b"status %d\n" % code)
        if mode == "size":
            n = int(args[0]) if args else 0
            c.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                      b"content-length: %d\r\n\r\n" % n)
            if not head_only:
                for chunk in pattern_chunks(n):
                    c.sendall(chunk)
            return True
        if mode == "chunked":
            n = int(args[0]) if args else 0
            c.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                      b"transfer-encoding: chunked\r\n\r\n")
            if head_only:
                return True
            for chunk in pattern_chunks(n, chunk=64 << 10):
                c.sendall(b"%x\r\n" % len(chunk) + bytes(chunk) + b"\r\n")
            c.sendall(b"0\r\nx-origin-trailer: done\r\nx-body-sha256: %s\r\n\r\n"
                      % pattern_sha256(n).encode())
            return True
        if mode == "slow":
            count = int(args[0]) if args else 5
            ms = int(args[1]) if len(args) > 1 else 100
            c.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
                      b"transfer-encoding: chunked\r\n\r\n")
            for i in range(count):
                if i:
                    if self._stopping.wait(ms / 1000.0):
                        return False
                d = b"chunk %d\n" % i
                c.sendall(b"%x\r\n%s\r\n" % (len(d), d))
            c.sendall(b"0\r\n\r\n")
            return True
        if mode == "text":
            return self._respond_text(c, req, int(args[0]) if args else 0, head_only)
        if mode == "stall":
            self._stopping.wait(120)
            return False
        if mode == "close-early":
            return False
        if mode == "close-mid":
            n = int(args[0]) if args else 100000
            c.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                      b"content-length: %d\r\n\r\n" % n + pattern_bytes(n // 10))
            return False
        if mode == "garbage":
            c.sendall(b"THIS IS NOT HTTP AT ALL\r\n\x00\x01\x02\r\n\r\n")
            return False
        if mode == "bad-framing":
            c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n"
                      b"5\r\nhello\r\n0\r\n\r\n")
            return False
        return send("500 Unknown Mode", b"unknown mode\n")

    def _respond_text(self, c, req, n, head_only):
        q = urllib.parse.parse_qs(req.target.partition("?")[2])
        opt = lambda name, default="0": q.get(name, [default])[0]  # noqa: E731
        status = int(opt("status", "200"))
        if "etag" in q and req.header("if-none-match") == opt("etag"):
            status = 304
        chunked = opt("chunked") == "1"
        hold = int(opt("hold")) if "hold" in q else None
        body = bytes(n) if opt("zeros") == "1" else text_bytes(n)
        hs = ["HTTP/1.1 %d Text" % status, "content-type: %s" % opt("ct", "text/plain")]
        hs += ["%s: %s" % tuple(h.split(":", 1)) for h in q.get("h", [])]
        if "etag" in q:
            hs.append("etag: %s" % opt("etag"))
        if opt("gz") == "1":
            body = gzip.compress(body)
            hs.append("content-encoding: gzip")
        if status in (204, 304):
            pass
        elif chunked:
            hs.append("transfer-encoding: chunked")
        else:
            hs.append("content-length: %d" % len(body))
        c.sendall(("\r\n".join(hs) + "\r\n\r\n").encode())
        if head_only or status in (204, 304):
            return True
        parts = [body] if hold is None else [body[:hold], None, body[hold:]]
        for part in parts:
            if part is None:
                if not self.release.wait(20):
                    return False
                continue
            for off in range(0, len(part), 64 << 10):
                piece = part[off:off + (64 << 10)]
                c.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked:
            c.sendall(b"0\r\nx-origin-trailer: done\r\n\r\n")
        return True
