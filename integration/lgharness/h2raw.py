"""A raw HTTP/2 client built from hand-made frames, for the cases real clients refuse to send.

What it is for: flood and protocol-abuse tests (PING, SETTINGS, rapid reset, CONTINUATION, empty
DATA): write frames byte for byte, optionally without reading, then find out what the server did:
a GOAWAY (with its error code), a close, or nothing within a bound. HPACK comes from Debian's
python3-hpack. What it is not for: correct HTTP/2 use; it keeps no stream state and never sends
WINDOW_UPDATE unless told to.
"""
import socket
import struct
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIO_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, \
    ENHANCE_YOUR_CALM = range(12)


def frame(ftype, flags, stream_id, payload=b""):
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, ftype, flags, stream_id & 0x7FFFFFFF) + payload


def settings(pairs=()):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def ping(data=b"12345678", ack=False):
    return frame(PING, ACK if ack else 0, 0, data)


def rst(stream_id, code=CANCEL):
    return frame(RST_STREAM, 0, stream_id, struct.pack(">I", code))


def window_update(stream_id, inc):
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", inc))


class H2Raw:
    def __init__(self, host, port, *, rcvbuf=None, timeout=10.0, track=True):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.buf = bytearray()
        self.closed = False
        self.goaway = None  # (last_stream_id, error_code) once seen
        self.track = track  # decode headers, keep stream state, answer PING/SETTINGS
        self.resets = {}  # stream id -> RST_STREAM error code, as read
        self.headers_on = set()  # stream ids a HEADERS frame arrived on
        self.streams = {}  # stream id -> response state (see _track)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def handshake(self, pairs=()):
        self.send(PREFACE + settings(pairs))

    def send(self, data):
        """Sends everything; returns False if the peer closed or reset the connection."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True
            return False
        except socket.timeout:
            return False

    def header_block(self, headers):
        return self.enc.encode(headers)

    def request_headers(self, stream_id, path="/", method="GET", authority="localhost",
                        end_stream=True, extra=()):
        hs = [(":method", method), (":scheme", "http"), (":path", path),
              (":authority", authority)] + list(extra)
        flags = END_HEADERS | (END_STREAM if end_stream else 0)
        return frame(HEADERS, flags, stream_id, self.header_block(hs))

    def read_frame(self, timeout):
        """The next frame as (type, flags, stream_id, payload), or None at EOF/reset or when the
        deadline passes (self.closed tells which)."""
        deadline = time.monotonic() + timeout
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(1 << 16)
            except socket.timeout:
                return None
            except (ConnectionResetError, BrokenPipeError):
                self.closed = True
                return None
            if not d:
                self.closed = True
                return None
            self.buf += d
        n = int.from_bytes(self.buf[:3], "big")
        ftype, flags, sid = self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
        payload = bytes(self.buf[9:9 + n])
        del self.buf[:9 + n]
        if ftype == RST_STREAM and len(payload) == 4:
            self.resets[sid] = int.from_bytes(payload, "big")
        if ftype == HEADERS:
            self.headers_on.add(sid)
        if ftype == GOAWAY and len(payload) >= 8:
            self.goaway = struct.unpack(">II", payload[:8])
            self.goaway = (self.goaway[0] & 0x7FFFFFFF, self.goaway[1])
        if self.track:
            self._track(ftype, flags, sid, payload)
        return ftype, flags, sid, payload

    def wait_goaway_or_close(self, timeout=10.0):
        """Reads (and drops) frames until a GOAWAY arrived and the connection closed, or the
        connection closed, or the bound passed. Returns 'closed', 'goaway' (GOAWAY seen but the
        connection stayed open for 1 s after it) or 'open'."""
        deadline = time.monotonic() + timeout
        goaway_at = None
        while True:
            now = time.monotonic()
            if now >= deadline:
                return "goaway" if self.goaway else "open"
            if goaway_at is not None and now - goaway_at > 1.0:
                return "goaway"
            f = self.read_frame(min(deadline - now, 0.5))
            if f is None and self.closed:
                return "closed"
            if self.goaway and goaway_at is None:
                goaway_at = time.monotonic()

    def wait_until(self, pred, timeout=10.0):
        """Reads (and drops) frames until pred() is true, the connection closed, or the bound
        passed; returns pred()."""
        deadline = time.monotonic() + timeout
        while not pred() and not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.read_frame(min(left, 0.5))
        return bool(pred())

    def _track(self, ftype, flags, sid, payload):
        """Keeps per-stream response state for every stream, decoding every header block in
        arrival order (HPACK state is per connection), and answers PING and SETTINGS."""
        if ftype == PING and not flags & ACK:
            self.send(ping(payload, ack=True))
        if ftype == SETTINGS and not flags & ACK:
            self.send(frame(SETTINGS, ACK, 0))
        if sid == 0:
            return
        st = self.streams.setdefault(sid, {"headers": None, "body": bytearray(), "trailers": None,
                                           "done": False, "reset": None, "block": b"",
                                           "end_after_block": False})
        if ftype == RST_STREAM:
            st["reset"] = int.from_bytes(payload[:4], "big")
            st["done"] = True
        elif ftype in (HEADERS, CONTINUATION):
            p = payload
            if ftype == HEADERS:
                pad = 0
                if flags & PADDED:
                    pad, p = p[0], p[1:]
                if flags & PRIO_FLAG:
                    p = p[5:]
                if pad:
                    p = p[:-pad]
                st["end_after_block"] = bool(flags & END_STREAM)
            st["block"] += p
            if flags & END_HEADERS:
                hs = [(k if isinstance(k, str) else k.decode(), v if isinstance(v, str) else v.decode())
                      for k, v in self.dec.decode(st["block"])]
                st["block"] = b""
                if st["headers"] is None or (dict(st["headers"]).get(":status", "200").startswith("1")):
                    st["headers"] = hs
                else:
                    st["trailers"] = hs
                if st["end_after_block"]:
                    st["done"] = True
        elif ftype == DATA:
            p = payload
            if flags & PADDED:
                p = p[1:len(p) - p[0]]
            st["body"] += p
            if payload:
                self.send(window_update(0, len(payload)) + window_update(sid, len(payload)))
            if flags & END_STREAM:
                st["done"] = True

    def read_response(self, stream_id, timeout=10.0):
        """Collects the response on one stream: (headers, body, trailers), or None if the stream
        was reset, the connection ended or the bound passed. Frames of other streams are kept."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.streams.get(stream_id)
            if st and st["done"]:
                if st["reset"] is not None and st["headers"] is None:
                    return None
                if st["reset"] is not None:
                    return None
                return st["headers"], bytes(st["body"]), st["trailers"]
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return None
            self.read_frame(left)
