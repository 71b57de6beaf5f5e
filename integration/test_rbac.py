"""envoy.filters.http.rbac through the real binary (issue 10): ALLOW and DENY policies over
headers, paths, methods, remote and destination addresses and ports, and/or/not, 403 "RBAC: access
denied" with the matched policy in the response details, shadow rules counted but not enforced,
per-route override and disable, and the config errors of what legate does not support."""
import pytest

from lgharness import bootstrap as bs
from lgharness.clients import curl
from test_admin import Admin

RBAC = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute"


def header(name, exact):
    return {"header": {"name": name, "string_match": {"exact": exact}}}


def proxy(start_legate, free_port, origin, cfg, routes=None):
    port, admin_port = free_port(), free_port()
    rbac = {"@type": RBAC}
    rbac.update(cfg)
    boot = bs.filter_proxy(port, admin_port, [{"name": "envoy.filters.http.rbac", "typed_config": rbac}],
                           [bs.cluster("app", [origin.port])], routes)
    lg = start_legate(boot, ports=[port, admin_port])
    lg.admin = Admin(admin_port)
    return lg


def stats(lg):
    return {k.split("rbac.", 1)[1]: v for k, v in lg.admin.stats("?filter=rbac").items()}


def test_allow_policy(start_legate, free_port, origin):
    policies = {
        "admins": {"permissions": [{"any": True}], "principals": [header("x-role", "admin")]},
        "readers": {"permissions": [{"and_rules": {"rules": [header(":method", "GET"),
                                                             {"url_path": {"path": {"prefix": "/public/"}}}]}}],
                    "principals": [{"direct_remote_ip": {"address_prefix": "127.0.0.0", "prefix_len": 8}}]},
    }
    lg = proxy(start_legate, free_port, origin, {"rules": {"action": "ALLOW", "policies": policies}})
    assert curl(lg.url("/echo/x"), "-H", "x-role: admin", "-X", "DELETE").status == 200
    assert curl(lg.url("/public/doc?q=1")).status == 200
    denied = curl(lg.url("/private/doc"))
    assert (denied.status, denied.body) == (403, b"RBAC: access denied"), denied
    assert curl(lg.url("/public/doc"), "-X", "POST", "--data", "x").status == 403
    assert stats(lg) == {"allowed": 2, "denied": 2, "shadow_allowed": 0, "shadow_denied": 0}


def test_deny_policy_with_not_and_ports(start_legate, free_port, origin):
    policies = {"no-debug": {
        "permissions": [{"or_rules": {"rules": [{"url_path": {"path": {"prefix": "/debug"}}},
                                                {"not_rule": {"destination_port_range": {"start": 1, "end": 1024}}}]}}],
        "principals": [{"not_id": header("x-internal", "yes")}]}}
    lg = proxy(start_legate, free_port, origin, {"rules": {"action": "DENY", "policies": policies}})
    # the listener's port is above 1023: every request from outside matches the not_rule
    assert curl(lg.url("/echo/a")).status == 403
    assert curl(lg.url("/echo/a"), "-H", "x-internal: yes").status == 200


def test_shadow_rules_count_but_do_not_enforce(start_legate, free_port, origin):
    shadow = {"action": "ALLOW", "policies": {"only-admins": {"permissions": [{"any": True}],
                                                              "principals": [header("x-role", "admin")]}}}
    lg = proxy(start_legate, free_port, origin, {"shadow_rules": shadow, "shadow_rules_stat_prefix": "audit_"})
    assert curl(lg.url("/echo/a")).status == 200
    assert curl(lg.url("/echo/a"), "-H", "x-role: admin").status == 200
    s = lg.admin.stats("?filter=rbac")
    assert s["http.ingress_http.rbac.audit_shadow_denied"] == 1 and s["http.ingress_http.rbac.audit_shadow_allowed"] == 1, s


def test_per_route_override_and_disable(start_legate, free_port, origin):
    deny_all = {"action": "DENY", "policies": {"all": {"permissions": [{"any": True}], "principals": [{"any": True}]}}}
    routes = [bs.route("/open/", "app", typed_per_filter_config={
                  "envoy.filters.http.rbac": {"@type": PER_ROUTE}}),
              bs.route("/admin/", "app", typed_per_filter_config={
                  "envoy.filters.http.rbac": {"@type": PER_ROUTE, "rbac": {"rules": {
                      "action": "ALLOW", "policies": {"a": {"permissions": [{"any": True}],
                                                            "principals": [header("x-role", "admin")]}}}}}}),
              bs.route("/", "app")]
    lg = proxy(start_legate, free_port, origin, {"rules": deny_all}, routes)
    assert curl(lg.url("/other")).status == 403
    assert curl(lg.url("/open/x")).status == 200
    assert curl(lg.url("/admin/x")).status == 403
    assert curl(lg.url("/admin/x"), "-H", "x-role: admin").status == 200


@pytest.mark.parametrize("rule,message", [
    ({"metadata": {"filter": "f", "path": [{"key": "k"}], "value": {"present_match": True}}},
     "metadata rules are not supported by legate"),
    ({"destination_ip": {"address_prefix": "not-an-ip", "prefix_len": 8}}, "\"not-an-ip\" is not an IP address"),
])
def test_config_errors(legate, tmp_path, free_port, rule, message):
    cfg = {"@type": RBAC, "rules": {"policies": {"p": {"permissions": [rule], "principals": [{"any": True}]}}}}
    path = tmp_path / "b.yaml"
    path.write_text(bs.to_yaml(bs.with_filter(free_port(), free_port(), "envoy.filters.http.rbac", cfg)))
    r = legate("--mode", "validate", "-c", str(path))
    assert r.returncode == 1 and message in r.stdout + r.stderr, r
    assert "rules.policies[p].permissions[0]" in r.stdout + r.stderr, r
