"""Path normalization in the connection manager (normalize_path, merge_slashes,
path_with_escaped_slashes_action), the edge defence that keeps `/public/../admin` and
`%2F..%2Fadmin` away from routes the operator closed. Envoy's behaviour is the expectation.
"""
import json

from lgharness import bootstrap as bs
from lgharness.http1raw import Conn


def target_seen(lg, raw_path):
    """Sends a raw request line (curl would normalize it itself) and returns (status, origin target)."""
    with Conn("127.0.0.1", lg.port) as c:
        c.send(b"GET " + raw_path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
    target = json.loads(r.body)["target"] if r.status == 200 else None
    return r.status, target, r


def start(start_legate, free_port, origin, **hcm_extra):
    port = free_port()
    return start_legate(bs.simple_proxy(port, origin.port, hcm_extra=hcm_extra))


def test_dot_segments_and_slashes_normalized(start_legate, free_port, origin):
    lg = start(start_legate, free_port, origin, normalize_path=True, merge_slashes=True)
    assert target_seen(lg, b"/echo/public/../admin")[:2] == (200, "/echo/admin")
    assert target_seen(lg, b"/echo/sub/%2e%2e/x//y?q=/../z")[:2] == (200, "/echo/x/y?q=/../z")


def test_without_normalization_the_path_is_forwarded_as_sent(start_legate, free_port, origin):
    lg = start(start_legate, free_port, origin)
    assert target_seen(lg, b"/echo/a/../b")[:2] == (200, "/echo/a/../b")


def test_bad_escape_is_400(start_legate, free_port, origin):
    lg = start(start_legate, free_port, origin, normalize_path=True)
    status, _, _ = target_seen(lg, b"/echo/%zz")
    assert status == 400
    assert origin.heads == [] if hasattr(origin, "heads") else True


def test_escaped_slash_actions(start_legate, free_port, origin):
    lg = start(start_legate, free_port, origin, path_with_escaped_slashes_action="REJECT_REQUEST")
    assert target_seen(lg, b"/echo/a%2Fb")[0] == 400
    lg2 = start(start_legate, free_port, origin, path_with_escaped_slashes_action="UNESCAPE_AND_FORWARD")
    assert target_seen(lg2, b"/echo/a%2Fb")[:2] == (200, "/echo/a/b")
    lg3 = start(start_legate, free_port, origin, path_with_escaped_slashes_action="UNESCAPE_AND_REDIRECT")
    status, _, r = target_seen(lg3, b"/echo/a%2Fb")
    assert status == 307
    assert dict((k.lower(), v) for k, v in r.headers)["location"] == "/echo/a/b"
