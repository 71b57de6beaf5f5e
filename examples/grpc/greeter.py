#!/usr/bin/env python3
"""A tiny gRPC service and client for the quick start, with Python grpcio only (no protoc, no
generated code): the method /demo.Greeter/Hello takes the request bytes as a UTF-8 name and
answers "hello, <name>".

  greeter.py serve [--port 50051]            # the service, plain HTTP/2 (h2c) on 127.0.0.1
  greeter.py call  [--target 127.0.0.1:10001] [--name legate]

Debian: apt-get install python3-grpcio. Stops on Ctrl-C.
"""
import argparse
import sys
from concurrent import futures

import grpc

METHOD = "/demo.Greeter/Hello"


def hello(request, context):
    context.set_trailing_metadata((("served-by", "greeter.py"),))
    return b"hello, " + request


def serve(port):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        "demo.Greeter", {"Hello": grpc.unary_unary_rpc_method_handler(hello)})
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port("127.0.0.1:%d" % port)
    server.start()
    print("greeter listening on 127.0.0.1:%d" % port, flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(0)


def call(target, name):
    with grpc.insecure_channel(target) as channel:
        stub = channel.unary_unary(METHOD)
        try:
            reply, rpc = stub.with_call(name.encode(), timeout=5)
        except grpc.RpcError as e:
            print("error: %s %s" % (e.code().name, e.details()))
            return 1
        print(reply.decode())
        print("status: %s, trailers: %s" % (rpc.code().name, dict(rpc.trailing_metadata())))
        return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, default=50051)
    c = sub.add_parser("call")
    c.add_argument("--target", default="127.0.0.1:10001")
    c.add_argument("--name", default="legate")
    a = p.parse_args()
    if a.cmd == "serve":
        serve(a.port)
        return 0
    return call(a.target, a.name)


if __name__ == "__main__":
    sys.exit(main())
