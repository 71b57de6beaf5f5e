"""Black-box tests of legate's command line: Envoy's flags, --mode validate, -c/--config-yaml
merging (protobuf MergeFrom, as Envoy applies --config-yaml over -c) and --print-config.

Nothing here serves traffic: `--mode serve` is only checked to either refuse cleanly (exit 2 while
serving is not built) or start, in which case the test stops it at once.
"""
import json
import re
import signal
import subprocess

import pytest

# A small but complete static bootstrap. Port 0 everywhere: nothing in this file may bind a fixed
# port if a test ever lets legate serve it.
MINIMAL = """\
node:
  id: cli-test
  cluster: cli
admin:
  address:
    socket_address: { address: 127.0.0.1, port_value: 0 }
static_resources:
  listeners:
  - name: ingress
    address:
      socket_address: { address: 127.0.0.1, port_value: 0 }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          route_config:
            name: local_route
            virtual_hosts:
            - name: app
              domains: ["*"]
              routes:
              - match: { prefix: / }
                route: { cluster: app }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: app
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: { address: 127.0.0.1, port_value: 10100 }
"""

# One cluster, in flow style so it fits on one --config-yaml line.
EXTRA_CLUSTER = (
    "{name: %s, connect_timeout: %s, type: STATIC, load_assignment: {cluster_name: %s, "
    "endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: "
    "{address: 127.0.0.1, port_value: 10101}}}}]}]}}"
)


def extra_cluster(name, connect_timeout="1s"):
    return EXTRA_CLUSTER % (name, connect_timeout, name)


@pytest.fixture
def minimal(tmp_path):
    path = tmp_path / "minimal.yaml"
    path.write_text(MINIMAL)
    return path


def field(msg, snake):
    """A field of printed JSON by its proto name, whichever of the two JSON spellings is used."""
    if snake in msg:
        return msg[snake]
    camel = re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), snake)
    if camel in msg:
        return msg[camel]
    raise KeyError("%s (or %s) not in %s" % (snake, camel, sorted(msg)))


def printed_config(result):
    """The bootstrap --print-config printed; stdout must be nothing but that JSON document."""
    assert result.returncode == 0, result.stderr
    try:
        return json.loads(result.stdout)
    except ValueError as e:
        pytest.fail("--print-config stdout is not one JSON document (%s): %r" % (e, result.stdout[:500]))


# --------------------------------------------------------------------------------------------
# --version, --help, bad flags
# --------------------------------------------------------------------------------------------

def test_version(legate):
    r = legate("--version")
    assert r.returncode == 0, r.stderr
    assert re.search(r"version: \S*\d+\.\d+\.\d+", r.stdout), r.stdout


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_envoys_flags(legate, flag):
    r = legate(flag)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "usage" in out.lower()
    for f in ["-c", "--config-path", "--config-yaml", "--mode", "-l", "--log-level",
              "--concurrency", "--service-node", "--service-cluster", "--print-config"]:
        assert re.search(r"(^|[\s,\[])%s\b" % re.escape(f), out), "help does not mention %s" % f


def test_unknown_flag_prints_usage(legate, minimal):
    r = legate("--mode", "validate", "-c", minimal, "--no-such-flag")
    assert r.returncode == 1
    assert "--no-such-flag" in r.stderr
    assert "usage" in r.stderr.lower()
    assert "OK" not in r.stdout


def test_flag_without_its_value(legate):
    r = legate("--mode", "validate", "-c")
    assert r.returncode == 1
    assert "usage" in r.stderr.lower()


def test_bad_mode(legate, minimal):
    r = legate("--mode", "check", "-c", minimal)
    assert r.returncode == 1
    assert '"check"' in r.stderr or "check" in r.stderr


@pytest.mark.parametrize("flag", ["-l", "--log-level"])
def test_bad_log_level(legate, minimal, flag):
    r = legate("--mode", "validate", "-c", minimal, flag, "loud")
    assert r.returncode == 1
    assert "loud" in r.stderr
    assert "log-level" in r.stderr or "log level" in r.stderr
    assert "OK" not in r.stdout


@pytest.mark.parametrize("level", ["trace", "debug", "info", "warning", "warn", "error", "critical", "off"])
def test_envoys_log_levels(legate, minimal, level):
    r = legate("--mode", "validate", "-c", minimal, "-l", level)
    assert r.returncode == 0, r.stderr
    assert "configuration '%s' OK" % minimal in r.stdout


def test_envoy_command_line_from_the_design(legate, minimal):
    r = legate("--mode", "validate", "-c", minimal, "--concurrency", "2", "--log-level", "debug",
               "--service-node", "n1", "--service-cluster", "c1")
    assert r.returncode == 0, r.stderr
    assert "configuration '%s' OK" % minimal in r.stdout


def test_hot_restart_flags_are_accepted(legate, minimal):
    r = legate("--mode", "validate", "-c", minimal, "--disable-hot-restart", "--base-id", "7",
               "--restart-epoch", "0")
    assert r.returncode == 0, r.stderr


# --------------------------------------------------------------------------------------------
# -c and --mode validate
# --------------------------------------------------------------------------------------------

def test_missing_config_file(legate, tmp_path):
    path = tmp_path / "does-not-exist.yaml"
    r = legate("--mode", "validate", "-c", path)
    assert r.returncode == 1
    assert str(path) in r.stderr
    assert "no such file" in r.stderr.lower()
    assert "OK" not in r.stdout


def test_no_config_at_all(legate):
    # Envoy: "At least one of --config-path or --config-yaml ... should be non-empty".
    r = legate("--mode", "validate")
    assert r.returncode == 1, r.stdout
    assert "config" in r.stderr
    assert "OK" not in r.stdout


def test_validate_ok(legate, minimal):
    r = legate("--mode", "validate", "-c", minimal)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "configuration '%s' OK\n" % minimal


def test_validate_names_the_path_as_given(legate):
    rel = "tests/configs/valid/front_proxy_routes.yaml"
    r = legate("--mode", "validate", "--config-path", rel)
    assert r.returncode == 0, r.stderr
    assert "configuration '%s' OK" % rel in r.stdout


def test_validate_json_file(legate, tmp_path):
    doc = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"clusters": [{
            "name": "app", "connect_timeout": "0.5s", "type": "STATIC",
            "load_assignment": {"cluster_name": "app", "endpoints": [{"lb_endpoints": [{
                "endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                            "port_value": 10100}}}}]}]}}]},
    }
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(doc, indent=2))
    r = legate("--mode", "validate", "-c", path)
    assert r.returncode == 0, r.stderr
    assert "configuration '%s' OK" % path in r.stdout


def test_validate_refuses_with_file_line_and_path(legate, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(MINIMAL.replace("connect_timeout: 1s", "connect_timeout: 5x"))
    line = MINIMAL.splitlines().index("    connect_timeout: 1s") + 1
    r = legate("--mode", "validate", "-c", path)
    assert r.returncode == 1
    assert ('%s:%d: static_resources.clusters[0].connect_timeout: invalid duration "5x"'
            % (path, line)) in r.stderr
    assert "OK" not in r.stdout


def test_validate_reports_semantic_errors(legate, tmp_path):
    path = tmp_path / "unknown-cluster.yaml"
    path.write_text(MINIMAL.replace("route: { cluster: app }", "route: { cluster: nowhere }"))
    r = legate("--mode", "validate", "-c", path)
    assert r.returncode == 1
    assert 'unknown cluster "nowhere"' in r.stderr


# --------------------------------------------------------------------------------------------
# --config-yaml, alone and merged over -c
# --------------------------------------------------------------------------------------------

def test_config_yaml_alone(legate):
    r = legate("--mode", "validate", "--config-yaml", MINIMAL)
    assert r.returncode == 0, r.stderr
    assert "configuration '<config-yaml>' OK" in r.stdout


def test_config_yaml_alone_as_json(legate, minimal):
    doc = printed_config(legate("--mode", "validate", "-c", minimal, "--print-config"))
    r = legate("--mode", "validate", "--config-yaml", json.dumps(doc))
    assert r.returncode == 0, r.stderr
    assert "configuration '<config-yaml>' OK" in r.stdout


def test_config_yaml_errors_name_config_yaml(legate):
    r = legate("--mode", "validate", "--config-yaml",
               "static_resources: {clusters: [%s]}" % extra_cluster("x", "5x"))
    assert r.returncode == 1
    assert re.search(r'<config-yaml>:1: static_resources\.clusters\[0\]\.connect_timeout: '
                     r'invalid duration "5x"', r.stderr), r.stderr


def test_config_yaml_merges_over_file(legate, minimal):
    """Envoy applies --config-yaml with MergeFrom: scalars replaced, sub-messages merged field by
    field, repeated fields appended."""
    overlay = ("{node: {id: overridden}, "
               "admin: {address: {socket_address: {port_value: 10999}}}, "
               "static_resources: {clusters: [%s]}}" % extra_cluster("extra"))
    cfg = printed_config(legate("--mode", "validate", "-c", minimal, "--config-yaml", overlay,
                                "--print-config"))

    node = field(cfg, "node")
    assert field(node, "id") == "overridden"          # scalar replaced
    assert field(node, "cluster") == "cli"            # untouched sibling kept

    sa = field(field(field(cfg, "admin"), "address"), "socket_address")
    assert int(field(sa, "port_value")) == 10999      # scalar inside a sub-message replaced
    assert field(sa, "address") == "127.0.0.1"        # the rest of the sub-message merged, not lost

    clusters = field(field(cfg, "static_resources"), "clusters")
    assert [c["name"] for c in clusters] == ["app", "extra"]   # list appended, file's first
    listeners = field(field(cfg, "static_resources"), "listeners")
    assert [l["name"] for l in listeners] == ["ingress"]


def test_config_yaml_list_append_can_duplicate(legate, minimal):
    # Appending, not replacing, is what makes a second "app" a duplicate.
    r = legate("--mode", "validate", "-c", minimal, "--config-yaml",
               "static_resources: {clusters: [%s]}" % extra_cluster("app"))
    assert r.returncode == 1
    assert 'duplicate cluster name "app"' in r.stderr
    assert "static_resources.clusters[1].name" in r.stderr


def test_config_yaml_merged_error_points_into_config_yaml(legate, minimal):
    r = legate("--mode", "validate", "-c", minimal, "--config-yaml",
               "static_resources: {clusters: [%s]}" % extra_cluster("slow", "0s"))
    assert r.returncode == 1
    assert re.search(r"<config-yaml>:1: static_resources\.clusters\[\d\]\.connect_timeout: "
                     r"value must be greater than 0s", r.stderr), r.stderr


def test_service_node_and_cluster_flags_override_node(legate, minimal):
    cfg = printed_config(legate("--mode", "validate", "-c", minimal, "--print-config",
                                "--service-node", "n1", "--service-cluster", "c1"))
    node = field(cfg, "node")
    assert field(node, "id") == "n1"
    assert field(node, "cluster") == "c1"


# --------------------------------------------------------------------------------------------
# --print-config
# --------------------------------------------------------------------------------------------

def test_print_config_round_trips(legate, minimal):
    first = legate("--mode", "validate", "-c", minimal, "--print-config")
    cfg = printed_config(first)
    assert field(field(cfg, "static_resources"), "clusters")[0]["name"] == "app"
    second = legate("--mode", "validate", "--config-yaml", first.stdout, "--print-config")
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout


def test_print_config_keeps_any_contents(legate, minimal):
    cfg = printed_config(legate("--mode", "validate", "-c", minimal, "--print-config"))
    listener = field(cfg, "static_resources")["listeners"][0]
    hcm = field(field(listener, "filter_chains")[0], "filters")[0]
    tc = field(hcm, "typed_config")
    assert tc["@type"].endswith("HttpConnectionManager")
    assert field(tc, "stat_prefix") == "ingress_http"


# --------------------------------------------------------------------------------------------
# --mode serve
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode_args", [["--mode", "serve"], []], ids=["--mode serve", "default mode"])
def test_serve_refuses_cleanly_or_starts(legate_bin, minimal, mode_args):
    """While serving is not built, legate must say so and exit 2; once it is, it must keep running
    (the test then stops it)."""
    p = subprocess.Popen([legate_bin, *mode_args, "-c", str(minimal), "--concurrency", "1"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        out, err = p.communicate(timeout=3)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        try:
            p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
        return  # a real server: it started and kept running
    assert p.returncode == 2, (p.returncode, err)
    assert "serv" in err
    assert "OK" not in out
