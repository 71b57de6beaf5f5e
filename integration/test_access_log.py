"""Access logs of the HTTP connection manager, black-box (issue 4, item 3): the file logger with
Envoy's default format (every line parsed by the regex that parses Envoy's default lines, fields
checked against the requests made), a JSON log_format with Envoy's types and a status_code_filter,
the stdout logger, the gRPC access log service accepted without being refused, and reopening the
file on SIGUSR1 after rotation. One line per request; lines reach the file within the flush
interval (1 s) without legate exiting.
"""
import datetime
import json
import os
import pathlib
import re
import signal
import time

from lgharness import bootstrap as bs
from lgharness.clients import curl

FILE_TYPE = bs.T + "envoy.extensions.access_loggers.file.v3.FileAccessLog"
STDOUT_TYPE = bs.T + "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
HTTP_GRPC_TYPE = bs.T + "envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig"

# The regex log pipelines use for Envoy's default format.
ENVOY_DEFAULT_RE = re.compile(
    r'^\[(?P<start_time>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) (?P<protocol>\S+)" '
    r'(?P<response_code>\d+) (?P<response_flags>\S+) (?P<bytes_received>\d+) (?P<bytes_sent>\d+) '
    r'(?P<duration>\d+) (?P<upstream_service_time>\S+) "(?P<x_forwarded_for>[^"]*)" '
    r'"(?P<user_agent>[^"]*)" "(?P<request_id>[^"]*)" "(?P<authority>[^"]*)" '
    r'"(?P<upstream_host>[^"]*)"$')
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def file_log(path, log_format=None, log_filter=None):
    cfg = {"@type": FILE_TYPE, "path": str(path)}
    if log_format is not None:
        cfg["log_format"] = log_format
    al = {"name": "envoy.access_loggers.file", "typed_config": cfg}
    if log_filter is not None:
        al["filter"] = log_filter
    return al


def proxy_with_logs(port, upstream, access_logs, routes=None):
    """One listener whose HCM has `access_logs`; routes default to a catch-all to `app`."""
    r = routes or [bs.route("/", "app")]
    chain = bs.filter_chain(bs.hcm(r, access_log=list(access_logs)))
    return bs.bootstrap([bs.listener("ingress", port, [chain])], [bs.cluster("app", [upstream])])


def wait_lines(path, n, timeout=10.0):
    """The file's lines once it holds at least n of them (bounded wait: the writer flushes every
    second)."""
    path = pathlib.Path(path)
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        lines = text.splitlines()
        if len(lines) >= n or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def parse_default(line):
    m = ENVOY_DEFAULT_RE.match(line)
    assert m, "not Envoy's default format: %r" % line
    return m.groupdict()


def assert_recent(start_time):
    t = datetime.datetime.strptime(start_time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()) < 120, start_time
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", start_time), start_time


def test_default_format_one_line_per_request(start_legate, free_port, origin, tmp_path):
    log = tmp_path / "access.log"
    port = free_port()
    routes = [bs.route("/app", "app"), bs.route("/dead", "dead")]
    cfg = proxy_with_logs(port, origin.port, [file_log(log)], routes=routes)
    cfg["static_resources"]["clusters"].append(bs.cluster("dead", [free_port()]))
    lg = start_legate(cfg)

    r1 = curl(lg.url("/app/ok?x=1"), "--http1.1", "-A", "lg-test/1", "-H", "x-forwarded-for: 192.0.2.7")
    assert r1.status == 200, r1
    r2 = curl(lg.url("/app/echo"), "--http2-prior-knowledge", "-A", "lg-test/2", "--data-binary", "abc")
    assert r2.status == 200, r2
    r3 = curl(lg.url("/nowhere"), "--http1.1", "-A", "lg-test/3")
    assert r3.status == 404, r3
    r4 = curl(lg.url("/dead/x"), "--http1.1", "-A", "lg-test/4")
    assert r4.status == 503, r4

    lines = wait_lines(log, 4)
    assert len(lines) == 4, lines
    f = [parse_default(line) for line in lines]
    for e in f:
        assert_recent(e["start_time"])
        assert UUID_RE.match(e["request_id"]), e
        assert e["authority"] == "127.0.0.1:%d" % port
        assert e["duration"].isdigit()

    assert (f[0]["method"], f[0]["path"], f[0]["protocol"]) == ("GET", "/app/ok?x=1", "HTTP/1.1")
    assert (f[0]["response_code"], f[0]["response_flags"]) == ("200", "-")
    assert (f[0]["bytes_received"], f[0]["bytes_sent"]) == ("0", str(len(r1.body)))
    assert f[0]["upstream_service_time"].isdigit()
    assert f[0]["upstream_service_time"] == r1.header("x-envoy-upstream-service-time")
    assert f[0]["x_forwarded_for"] == "192.0.2.7"
    assert f[0]["user_agent"] == "lg-test/1"
    assert f[0]["upstream_host"] == "127.0.0.1:%d" % origin.port

    assert (f[1]["method"], f[1]["path"], f[1]["protocol"]) == ("POST", "/app/echo", "HTTP/2")
    assert (f[1]["response_code"], f[1]["response_flags"]) == ("200", "-")
    assert (f[1]["bytes_received"], f[1]["bytes_sent"]) == ("3", str(len(r2.body)))
    assert f[1]["user_agent"] == "lg-test/2"
    assert f[1]["x_forwarded_for"] == "-"  # not an edge proxy: nothing appended, absent header
    # The request id in the line is the one the origin saw.
    echoed = {n.lower(): v for n, v in json.loads(r2.body)["headers"]}
    assert f[1]["request_id"] == echoed["x-request-id"]

    assert (f[2]["path"], f[2]["response_code"], f[2]["response_flags"]) == ("/nowhere", "404", "NR")
    assert (f[2]["upstream_service_time"], f[2]["upstream_host"]) == ("-", "-")
    assert f[2]["bytes_sent"] == str(len(r3.body))

    assert (f[3]["path"], f[3]["response_code"]) == ("/dead/x", "503")
    assert "UF" in f[3]["response_flags"].split(","), f[3]
    assert f[3]["upstream_service_time"] == "-"


def test_json_format_with_status_filter(start_legate, free_port, origin, tmp_path):
    log = tmp_path / "errors.json"
    fmt = {"json_format": {
        "start": "%START_TIME%",
        "method": "%REQ(:METHOD)%",
        "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
        "code": "%RESPONSE_CODE%",
        "flags": "%RESPONSE_FLAGS%",
        "duration": "%DURATION%",
        "rx": "%BYTES_RECEIVED%",
        "tx": "%BYTES_SENT%",
        "client": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
        "cluster": "%UPSTREAM_CLUSTER%",
        "missing": "%REQ(X-NOT-SENT)%",
        "mixed": "ua=%REQ(USER-AGENT)% none=%REQ(X-NOT-SENT)%",
        "nested": {"protocol": "%PROTOCOL%", "route": "%ROUTE_NAME%"},
    }}
    flt = {"status_code_filter": {"comparison": {"op": "GE", "value": {"default_value": 400,
                                                                       "runtime_key": "access_log.min_status"}}}}
    port = free_port()
    lg = start_legate(proxy_with_logs(port, origin.port, [file_log(log, fmt, flt)]))
    assert curl(lg.url("/ok"), "--http1.1").status == 200
    r = curl(lg.url("/status/418"), "--http1.1", "-A", "teapot")
    assert r.status == 418, r
    assert curl(lg.url("/ok"), "--http1.1").status == 200
    r2 = curl(lg.url("/status/500"), "--http2-prior-knowledge", "-A", "h2")
    assert r2.status == 500, r2

    lines = wait_lines(log, 2)
    assert len(lines) == 2, lines  # the 200s were filtered out
    a, b = (json.loads(line) for line in lines)
    assert a["code"] == 418 and isinstance(a["code"], int)
    assert b["code"] == 500
    assert a["method"] == "GET" and a["path"] == "/status/418"
    assert a["flags"] == "-"
    assert isinstance(a["duration"], int) and a["duration"] >= 0
    assert a["rx"] == 0 and a["tx"] == len(r.body)
    assert a["client"] == "127.0.0.1"
    assert a["cluster"] == "app"
    assert a["missing"] is None
    assert a["mixed"] == "ua=teapot none=-"
    assert a["nested"]["protocol"] == "HTTP/1.1" and b["nested"]["protocol"] == "HTTP/2"
    assert a["nested"]["route"] is None  # the route has no name
    assert_recent(a["start"])


def test_stdout_logger_and_grpc_logger_accepted(start_legate, free_port, origin):
    stdout_log = {"name": "envoy.access_loggers.stdout",
                  "typed_config": {"@type": STDOUT_TYPE, "log_format": {
                      "text_format_source": {"inline_string": "STDOUT %REQ(:PATH)% %RESPONSE_CODE%\n"}}}}
    grpc_log = {"name": "envoy.access_loggers.http_grpc",
                "typed_config": {"@type": HTTP_GRPC_TYPE, "common_config": {
                    "log_name": "echo", "transport_api_version": "V3",
                    "grpc_service": {"envoy_grpc": {"cluster_name": "app"}}}}}
    port = free_port()
    lg = start_legate(proxy_with_logs(port, origin.port, [stdout_log, grpc_log]))
    for i in range(3):
        assert curl(lg.url("/ok/%d" % i)).status == 200
    deadline = time.monotonic() + 10
    while True:
        got = [line for line in lg.stdout_text().splitlines() if line.startswith("STDOUT ")]
        if len(got) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert got == ["STDOUT /ok/0 200", "STDOUT /ok/1 200", "STDOUT /ok/2 200"], lg.stdout_text()


def test_reopen_on_sigusr1_after_rotation(start_legate, free_port, origin, tmp_path):
    log = tmp_path / "rotate.log"
    port = free_port()
    fmt = {"text_format_source": {"inline_string": "%REQ(:PATH)%\n"}}
    lg = start_legate(proxy_with_logs(port, origin.port, [file_log(log, fmt)]))
    assert curl(lg.url("/before")).status == 200
    assert wait_lines(log, 1) == ["/before"]
    os.rename(log, tmp_path / "rotate.log.1")
    lg.popen.send_signal(signal.SIGUSR1)
    # The writer reopens (creating the file again) as soon as the signal reaches it.
    deadline = time.monotonic() + 10
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.exists(), "SIGUSR1 did not reopen the access log"
    assert curl(lg.url("/after")).status == 200
    assert wait_lines(log, 1) == ["/after"]
    assert (tmp_path / "rotate.log.1").read_text().splitlines() == ["/before"]


def test_listener_access_log_one_line_per_connection(start_legate, free_port, origin, tmp_path):
    """A listener-level access_log writes one line per downstream connection, with the
    connection's addresses and no request fields (Envoy's listener access log)."""
    log = tmp_path / "listener.log"
    port = free_port()
    chain = bs.filter_chain(bs.hcm([bs.route("/", "app")]))
    lst = bs.listener("ingress", port, [chain])
    lst["access_log"] = [file_log(log, log_format={"text_format_source": {
        "inline_string": "conn %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %REQ(:PATH)%\n"}})]
    lg = start_legate(bs.bootstrap([lst], [bs.cluster("app", [origin.port])]))
    for _ in range(2):
        assert curl(lg.url("/echo/x"), "--http1.1").status == 200  # one connection each
    lines = wait_lines(log, 2)
    assert lines == ["conn 127.0.0.1 -", "conn 127.0.0.1 -"], lines
