"""Runs tests/proto_compat/check.py: legate's proto/ must be wire-compatible with Envoy's API.

The checker fetches the reference (npm @grpc/grpc-js-xds) into build/envoy-api-ref/ on first
use. The test is skipped only when that is impossible (exit 3: no cache and npm failed);
any problem the checker finds fails the test with its report.
"""
import os
import subprocess

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CHECK = os.path.join(REPO, "tests", "proto_compat", "check.py")
# The checker needs google.protobuf, which the Debian python3-protobuf gives /usr/bin/python3.
PYTHON = "/usr/bin/python3"
EXIT_NO_REFERENCE = 3


def test_proto_wire_compatible_with_envoy():
    r = subprocess.run([PYTHON, CHECK], cwd=REPO, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, timeout=600)
    print(r.stdout)
    if r.returncode == EXIT_NO_REFERENCE:
        pytest.skip("Envoy API reference unavailable:\n" + r.stdout)
    assert r.returncode == 0, "proto/ differs from Envoy's API:\n" + r.stdout


BROKEN_PERCENT = """
syntax = "proto3";
package envoy.type.v3;
message Percent { float value = 1; }
message FractionalPercent {
  enum DenominatorType { HUNDRED = 0; TEN_THOUSAND = 5; BILLION = 3; }
  repeated uint32 numerator = 1;
  DenominatorType denominator = 3;
  string bogus = 9;
}
"""


def test_checker_catches_mismatches(tmp_path):
    """The checker itself: a deliberately wrong percent.proto must be caught."""
    f = tmp_path / "envoy" / "type" / "v3" / "percent.proto"
    f.parent.mkdir(parents=True)
    f.write_text(BROKEN_PERCENT)
    r = subprocess.run([PYTHON, CHECK, "--proto-dir", str(tmp_path)], cwd=REPO,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=600)
    print(r.stdout)
    if r.returncode == EXIT_NO_REFERENCE:
        pytest.skip("Envoy API reference unavailable")
    assert r.returncode == 1
    for want in [
        "envoy.type.v3.Percent.value: type float != reference double",
        "envoy.type.v3.FractionalPercent.numerator: label repeated != reference singular",
        "envoy.type.v3.FractionalPercent.denominator: number 3 != reference 2",
        "envoy.type.v3.FractionalPercent.bogus: field (number 9) does not exist in reference",
        "envoy.type.v3.FractionalPercent.DenominatorType.TEN_THOUSAND: enum value 5 != "
        "reference 1",
        "envoy.type.v3.FractionalPercent.DenominatorType.BILLION: enum value (= 3) does not "
        "exist in reference",
    ]:
        assert want in r.stdout
    assert r.stdout.splitlines()[-1] == "0 passed, 3 failed"
