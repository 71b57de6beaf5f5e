"""Trace and attempt headers (issue 4, item 4) against the real binary: the connection manager's
always_set_request_id_in_response copies the request's x-request-id (received or generated) into
the response; the virtual host's include_request_attempt_count and
include_attempt_count_in_response put x-envoy-attempt-count on every upstream attempt and on the
response.
"""
import json
import re

from lgharness import bootstrap as bs
from lgharness.clients import curl

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_always_set_request_id_in_response(start_legate, free_port, origin):
    port = free_port()
    lg = start_legate(bs.simple_proxy(port, origin.port,
                                      hcm_extra={"always_set_request_id_in_response": True}))
    r = curl(lg.url("/echo/x"), "--http1.1")
    assert r.status == 200, r
    sent = {n.lower(): v for n, v in json.loads(r.body)["headers"]}
    rid = r.headers["x-request-id"]
    assert rid == [sent["x-request-id"]]  # the generated id, as the upstream got it
    assert UUID4.match(rid[0]), rid
    # A received id (an internal client: loopback) is kept and returned.
    r = curl(lg.url("/echo/x"), "--http1.1", "-H", "x-request-id: my-id-1")
    assert r.headers["x-request-id"] == ["my-id-1"], r.headers


def test_request_id_not_in_response_by_default(start_legate, free_port, origin):
    lg = start_legate(bs.simple_proxy(free_port(), origin.port))
    r = curl(lg.url("/ok"), "--http1.1")
    assert r.status == 200 and "x-request-id" not in r.headers, r.headers


def test_attempt_count_on_requests_and_response(start_legate, free_port, make_origin):
    o = make_origin()
    port = free_port()
    r = bs.route("/", "app", action={"retry_policy": {"retry_on": "retriable-status-codes",
                                                      "retriable_status_codes": [409], "num_retries": 2}})
    vh = bs.virtual_host([r], include_request_attempt_count=True, include_attempt_count_in_response=True)
    chain = bs.filter_chain(bs.hcm(virtual_hosts=[vh]))
    lg = start_legate(bs.bootstrap([bs.listener("ingress", port, [chain])], [bs.cluster("app", [o.port])]))
    res = curl(lg.url("/status/409"), "--http1.1")
    assert res.status == 409
    heads = [h.decode("latin-1").lower() for h in o.heads if b"/status/409" in h]
    counts = [re.search(r"\r\nx-envoy-attempt-count: *(\d+)\r\n", h).group(1) for h in heads]
    assert counts == ["1", "2", "3"], heads
    assert res.headers["x-envoy-attempt-count"] == ["3"], res.headers
    res = curl(lg.url("/ok"), "--http1.1")
    assert res.status == 200 and res.headers["x-envoy-attempt-count"] == ["1"], res.headers
