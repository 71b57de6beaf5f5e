"""Retries in the router (route retry_policy): what is retried (connect failures, resets, 5xx,
retriable status codes, gRPC statuses), the body sent again, back-off, per-try timeouts, and
Envoy's replies once the retries are used up (503 URX "retried and the latest reset reason").
"""
import json

from lgharness import bootstrap as bs
from lgharness.clients import curl


def proxy(start_legate, free_port, upstreams, retry_policy=None, timeout=None):
    port = free_port()
    action = {"retry_policy": retry_policy} if retry_policy else None
    r = bs.route("/", "app", timeout=timeout, action=action)
    chain = bs.filter_chain(bs.hcm([r]))
    return start_legate(bs.bootstrap([bs.listener("ingress", port, [chain])], [bs.cluster("app", upstreams)]))


def test_connect_failure_retried_on_the_next_host(start_legate, free_port, origin):
    lg = proxy(start_legate, free_port, [free_port(), origin.port],
               {"retry_on": "connect-failure", "num_retries": 2})
    codes = [curl(lg.url("/echo/x"), "--http1.1").status for _ in range(6)]
    assert codes == [200] * 6, codes


def test_retries_used_up_is_503_urx(start_legate, free_port):
    lg = proxy(start_legate, free_port, [free_port()], {"retry_on": "connect-failure", "num_retries": 2})
    r = curl(lg.url("/"), "--http1.1")
    assert r.status == 503, r
    assert r.body.startswith(b"upstream connect error or disconnect/reset before headers. retried and the "
                             b"latest reset reason: connection failure"), r.body


def test_without_policy_no_retry(start_legate, free_port):
    lg = proxy(start_legate, free_port, [free_port()])
    r = curl(lg.url("/"), "--http1.1")
    assert r.status == 503 and b"reset reason: connection failure" in r.body and b"retried" not in r.body, r


def test_5xx_retried_and_body_sent_again(start_legate, free_port, make_origin, origin):
    bad = make_origin(default_mode="status")  # answers every request with /status/<code> or 500
    lg = proxy(start_legate, free_port, [bad.port, origin.port], {"retry_on": "5xx", "num_retries": 1})
    for _ in range(4):
        r = curl(lg.url("/echo/p"), "--http1.1", "--data-binary", "hello body")
        assert r.status == 200, r
        assert json.loads(r.body)["body"] == "hello body"


def test_retriable_status_codes(start_legate, free_port, make_origin):
    o = make_origin()
    lg = proxy(start_legate, free_port, [o.port],
               {"retry_on": "retriable-status-codes", "retriable_status_codes": [409], "num_retries": 2})
    r = curl(lg.url("/status/409"), "--http1.1")
    assert r.status == 409  # still 409 after the retries: the last answer is passed on
    assert len([h for h in o.heads if b"/status/409" in h]) == 3  # the first try and 2 retries


def test_per_try_timeout_then_retry_exhausted_is_504(start_legate, free_port, origin):
    lg = proxy(start_legate, free_port, [origin.port],
               {"retry_on": "5xx", "num_retries": 1, "per_try_timeout": "0.2s"}, timeout="5s")
    r = curl(lg.url("/stall"), "--http1.1")
    assert r.status == 504 and r.body == b"upstream request timeout", r
