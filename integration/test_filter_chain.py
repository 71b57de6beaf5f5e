"""The HTTP filter chain's asynchronous stop/continue, through the real binary: the reference
filter (legate.filters.http.passthrough) pauses a request on a timer when asked by a header,
and the worker keeps serving other requests meanwhile (the chain waits without blocking)."""
import threading
import time

from lgharness import bootstrap as bs
from lgharness.clients import curl


def test_paused_request_does_not_block_the_worker(start_legate, free_port, origin):
    port = free_port()
    filters = [{"name": "legate.filters.http.passthrough"}, bs.router_filter()]
    chain = bs.filter_chain(bs.hcm([bs.route("/", "app")], http_filters=filters))
    lg = start_legate(bs.bootstrap([bs.listener("ingress", port, [chain])], [bs.cluster("app", [origin.port])]))
    slow = {}

    def paused():
        t = time.monotonic()
        slow["r"] = curl(lg.url("/echo/slow"), "--http1.1", "--data-binary", "body",
                         "-H", "x-legate-passthrough-pause: 800")
        slow["t"] = time.monotonic() - t

    th = threading.Thread(target=paused)
    th.start()
    time.sleep(0.1)  # let the paused request reach the filter first
    t = time.monotonic()
    fast = curl(lg.url("/echo/fast"), "--http1.1")
    fast_t = time.monotonic() - t
    th.join(10)
    assert fast.status == 200 and fast_t < 0.5, (fast, fast_t)  # served while the other waits
    assert slow["r"].status == 200 and slow["t"] >= 0.75, slow  # resumed by the timer, body intact
    assert b'"body": "body"' in slow["r"].body
