"""A gRPC test service on Python grpcio (Debian python3-grpcio), with raw-bytes messages.

What it is for: the upstream of the gRPC tests: the four call kinds, deadlines, statuses with
message and details, metadata both ways, large messages. Methods of `lg.test.TestService`
(generic handlers, no .proto: requests and responses are bytes):
  Unary          echoes the request message
  ServerStream   request b"COUNT,SIZE": COUNT messages of SIZE pattern bytes
  ClientStream   answers b"N,TOTAL,SHA256" over all request messages
  Bidi           echoes each message as it arrives (ping-pong)
  Sleep          request b"SECONDS": waits that long or until cancelled; records cancellations
  Fail           request b"CODE|MESSAGE": fails with that status, message and a
                 grpc-status-details-bin trailer holding google.rpc.Status{code, message}
Metadata: every request key starting with "x-echo" is sent back in the initial metadata, and
again in the trailing metadata with "x-echo" replaced by "x-echo-t" (a -bin suffix is kept).
What it is not for: proto-typed services (the grpc-go interop peer covers those).
"""
import hashlib
import threading
from concurrent import futures

import grpc

SERVICE = "lg.test.TestService"
MAX_MSG = 16 << 20
CHANNEL_OPTIONS = [("grpc.max_send_message_length", MAX_MSG),
                   ("grpc.max_receive_message_length", MAX_MSG)]


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def status_proto(code, message):
    """google.rpc.Status{code=1, message=2} serialized by hand (no googleapis package needed)."""
    m = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(m)) + m


class TestService:
    def __init__(self):
        self.cancelled = threading.Event()
        self.sleep_started = threading.Event()
        self.calls = []
        self._lock = threading.Lock()

    def _record(self, name, context):
        with self._lock:
            self.calls.append((name, tuple(context.invocation_metadata())))

    @staticmethod
    def _echo_metadata(context):
        md = [(k, v) for k, v in context.invocation_metadata() if k.startswith("x-echo")]
        if md:
            context.send_initial_metadata(md)
            context.set_trailing_metadata([("x-echo-t" + k[len("x-echo"):], v) for k, v in md])

    def unary(self, request, context):
        self._record("Unary", context)
        self._echo_metadata(context)
        return request

    def server_stream(self, request, context):
        self._record("ServerStream", context)
        self._echo_metadata(context)
        count, size = (int(x) for x in request.decode().split(","))
        from .origin_h1 import pattern_bytes
        payload = pattern_bytes(size)
        for i in range(count):
            yield i.to_bytes(4, "big") + payload

    def client_stream(self, request_iterator, context):
        self._record("ClientStream", context)
        self._echo_metadata(context)
        n, total, h = 0, 0, hashlib.sha256()
        for m in request_iterator:
            n += 1
            total += len(m)
            h.update(m)
        return b"%d,%d,%s" % (n, total, h.hexdigest().encode())

    def bidi(self, request_iterator, context):
        self._record("Bidi", context)
        self._echo_metadata(context)
        for m in request_iterator:
            yield m

    def sleep(self, request, context):
        self._record("Sleep", context)
        secs = float(request.decode() or "10")
        done = threading.Event()
        context.add_callback(done.set)
        self.sleep_started.set()
        done.wait(secs)
        if not context.is_active():
            self.cancelled.set()
            return b""
        return b"slept"

    def fail(self, request, context):
        self._record("Fail", context)
        code_s, _, message = request.decode().partition("|")
        code = int(code_s)
        sc = next(c for c in grpc.StatusCode if c.value[0] == code)
        context.set_trailing_metadata([("grpc-status-details-bin", status_proto(code, message))])
        context.abort(sc, message)

    def handler(self):
        return grpc.method_handlers_generic_handler(SERVICE, {
            "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
            "Sleep": grpc.unary_unary_rpc_method_handler(self.sleep),
            "Fail": grpc.unary_unary_rpc_method_handler(self.fail),
        })


class GrpcServer:
    """A grpcio server for TestService on 127.0.0.1, plaintext HTTP/2."""

    def __init__(self):
        self.service = TestService()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                                  options=CHANNEL_OPTIONS)
        self.server.add_generic_rpc_handlers((self.service.handler(),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def start(self):
        self.server.start()
        return self

    def stop(self):
        self.server.stop(grace=None).wait(10)


class Client:
    """Callables for TestService's methods over a channel (bytes in, bytes out)."""

    def __init__(self, target):
        self.channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        p = "/%s/" % SERVICE
        self.unary = self.channel.unary_unary(p + "Unary")
        self.server_stream = self.channel.unary_stream(p + "ServerStream")
        self.client_stream = self.channel.stream_unary(p + "ClientStream")
        self.bidi = self.channel.stream_stream(p + "Bidi")
        self.sleep = self.channel.unary_unary(p + "Sleep")
        self.fail = self.channel.unary_unary(p + "Fail")
        self.unknown = self.channel.unary_unary(p + "NoSuchMethod")

    def close(self):
        self.channel.close()
