#!/usr/bin/env python3
"""Three tiny demo services for ./scripts/run: user, order and payment, each an HTTP/1.1 server
on its own loopback port, answering JSON.

What it is for: giving the demo bootstrap (bootstrap.yaml) real upstreams to route to, so a person
can see legate route /user/..., /order/... and /payment/... by prefix, over HTTP/1.1 or HTTP/2,
and see the headers legate adds on the way (x-request-id, x-forwarded-proto, ...). What it is not
for: tests or benchmarks (integration/ and bench/ have their own origins). Standard library only.

Usage: services.py [--host 127.0.0.1] [--user 18081] [--order 18082] [--payment 18083]
Stops on SIGINT or SIGTERM.
"""
import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATA = {
    "user": {"1": {"id": 1, "name": "Ada Lovelace", "email": "ada@example.test"},
             "2": {"id": 2, "name": "Alan Turing", "email": "alan@example.test"}},
    "order": {"100": {"id": 100, "user_id": 1, "items": ["notebook", "pencil"], "total_cents": 1250},
              "101": {"id": 101, "user_id": 2, "items": ["tape"], "total_cents": 399}},
    "payment": {"9000": {"id": 9000, "order_id": 100, "status": "captured"},
                "9001": {"id": 9001, "order_id": 101, "status": "pending"}},
}


def handler_for(service, port):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so legate's connection pool is reused
        server_version = "demo-%s" % service

        def log_message(self, fmt, *args):  # quiet: legate is the thing being shown
            pass

        def reply(self, status, obj):
            body = (json.dumps(obj, indent=2) + "\n").encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def route(self):
            n = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(n).decode("utf-8", "replace") if n else ""
            path = self.path.split("?", 1)[0]
            parts = [p for p in path.split("/") if p]
            seen = {"service": service, "port": port, "method": self.command, "path": self.path,
                    "request_headers": {k.lower(): v for k, v in self.headers.items()}}
            if parts[:1] != [service]:
                return self.reply(404, dict(seen, error="not a %s path" % service))
            if len(parts) == 1:
                if self.command == "POST":
                    return self.reply(201, dict(seen, created=body))
                return self.reply(200, dict(seen, items=list(DATA[service].values())))
            item = DATA[service].get(parts[1])
            if item is None:
                return self.reply(404, dict(seen, error="no %s %s" % (service, parts[1])))
            return self.reply(200, dict(seen, item=item))

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = route

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--user", type=int, default=18081)
    ap.add_argument("--order", type=int, default=18082)
    ap.add_argument("--payment", type=int, default=18083)
    a = ap.parse_args()
    servers = []
    for name in ("user", "order", "payment"):
        port = getattr(a, name)
        try:
            s = ThreadingHTTPServer((a.host, port), handler_for(name, port))
        except OSError as e:
            sys.exit("services.py: cannot listen on %s:%d for %s: %s" % (a.host, port, name, e))
        s.daemon_threads = True
        servers.append(s)
        threading.Thread(target=s.serve_forever, daemon=True).start()
        print("demo %-7s service on http://%s:%d/%s" % (name, a.host, port, name), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for s in servers:
        s.shutdown()
        s.server_close()


if __name__ == "__main__":
    main()
