"""A scriptable DNS server on loopback UDP for the DNS discovery tests.

What it is for: answering A and AAAA queries from a table the test changes while legate runs, and
misbehaving on demand (NXDOMAIN for every name, SERVFAIL, or silence), counting the queries it saw.
What it is not for: anything beyond one-question queries over UDP (no TCP, no EDNS, no CNAME).
The machine's own resolver must never be used by tests (DESIGN §2): point legate here.
"""
import socket
import struct
import threading
import time

QTYPE_A, QTYPE_AAAA = 1, 28
RCODE_NOERROR, RCODE_SERVFAIL, RCODE_NXDOMAIN = 0, 2, 3


class DnsStub:
    def __init__(self, host="127.0.0.1", ttl=30):
        self.host = host
        self.ttl = ttl
        self.records = {}  # "svc.test" -> ["127.0.0.2", "::1", ...]
        self.mode = "ok"   # ok | nxdomain | servfail | silent
        self.queries = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sock = None
        self.thread = None

    def set(self, name, addrs):
        with self._lock:
            self.records[name.lower().rstrip(".")] = list(addrs)

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((self.host, 0))
        s.settimeout(0.1)
        self.sock = s
        self.port = s.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, name="dns-stub", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self._stop.set()
        self.thread.join(timeout=5)
        self.sock.close()

    def wait_queries(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.queries >= n:
                return True
            time.sleep(0.02)
        return False

    def _serve(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            reply = self._answer(data)
            if reply is not None:
                try:
                    self.sock.sendto(reply, peer)
                except OSError:
                    pass

    def _answer(self, q):
        if len(q) < 12:
            return None
        qid, flags, qd = struct.unpack("!HHH", q[:6])
        if qd != 1:
            return None
        # The question: labels up to the root, then type and class.
        i, labels = 12, []
        while i < len(q) and q[i] != 0:
            n = q[i]
            labels.append(q[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += 1 + n
        question = q[12:i + 5]
        if len(question) < 5:
            return None
        qtype = struct.unpack("!H", q[i + 1:i + 3])[0]
        name = ".".join(labels).lower()
        with self._lock:
            self.queries += 1
            mode = self.mode
            addrs = self.records.get(name)
        if mode == "silent":
            return None
        rcode = RCODE_NOERROR
        answers = []
        if mode == "servfail":
            rcode = RCODE_SERVFAIL
        elif mode == "nxdomain" or addrs is None:
            rcode = RCODE_NXDOMAIN
        else:
            fam = socket.AF_INET if qtype == QTYPE_A else socket.AF_INET6 if qtype == QTYPE_AAAA else None
            for a in addrs:
                is6 = ":" in a
                if fam == (socket.AF_INET6 if is6 else socket.AF_INET):
                    rdata = socket.inet_pton(fam, a)
                    answers.append(struct.pack("!HHHIH", 0xC00C, qtype, 1, self.ttl, len(rdata)) + rdata)
        head = struct.pack("!HHHHHH", qid, 0x8180 | (flags & 0x0100) | rcode, 1, len(answers), 0, 0)
        return head + question + b"".join(answers)
