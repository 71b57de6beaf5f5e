"""Shared fixtures for the black-box tests of the built legate binary.

The binary comes from $LEGATE_BIN, else <repo>/build/legate (the CMake build directory the README
names). Every run of it has a timeout; every process a test starts is stopped by that test.

Data-plane fixtures (the machinery lives in lgharness/):
  free_port()                a loopback port nothing listens on (for configs and peers)
  certs                      a private CA and server/client certificates made with openssl
  start_legate(cfg, ...)     writes the bootstrap dict as YAML, runs `legate -c cfg --concurrency 1
                             -l warning`, waits (bounded) until every listener port accepts;
                             stops it at teardown (SIGTERM, SIGKILL after a bound) and fails the
                             test if it crashed, did not exit 0 or printed a sanitizer report.
                             While legate's serve mode is not built (exit 2, "serving is not built
                             yet") the test is skipped after the config passed --mode validate;
                             LG_REQUIRE_SERVING=1 turns that skip into a failure.
  origin / make_origin()     the scriptable HTTP/1.1 origin (lgharness/origin_h1.py)
  start_peer(argv, ...)      any other process (nghttpd, nghttpx, Go peers), stopped at teardown
  nghttpd(...)               an h2c (or TLS h2) origin from Debian's nghttp2-server
  grpc_server                the grpcio TestService (lgharness/grpc_service.py)
On a failed test, the stderr of every process still running is attached to the report.
"""
import os
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from lgharness import bootstrap as bs  # noqa: E402
from lgharness import peers  # noqa: E402
from lgharness.origin_h1 import H1Origin  # noqa: E402
from lgharness.ports import pick_port  # noqa: E402
from lgharness.procs import Legate, Proc, StartError  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_BIN = REPO_ROOT / "build" / "legate"
RUN_TIMEOUT = 30  # seconds; validation of a small config takes milliseconds
NOT_SERVING_MARK = "serving is not built"

# An ASan build run by hand (LEGATE_BIN=build-asan/legate pytest ...) gets the suppressions
# scripts/test passes: h2o keeps freed buffers in a per-thread cache LSan reports otherwise.
os.environ.setdefault("LSAN_OPTIONS", "suppressions=%s" % (REPO_ROOT / "tests" / "lsan.supp"))

# Processes running right now, for the failure report hook below.
_ACTIVE = []


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope="session")
def legate_bin():
    """Absolute path of the legate binary under test. Fails (not skips) when it is missing, so a
    broken build cannot pass as a run with no tests."""
    path = pathlib.Path(os.environ.get("LEGATE_BIN", str(DEFAULT_BIN))).resolve()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail("legate binary not found at %s (build it, or set LEGATE_BIN)" % path)
    return str(path)


@pytest.fixture
def legate(legate_bin, repo_root):
    """Runs legate with the given arguments from the repository root and returns the
    CompletedProcess (text mode). `timeout=` and `cwd=` may be passed."""

    def run(*args, timeout=RUN_TIMEOUT, cwd=None):
        return subprocess.run(
            [legate_bin, *[str(a) for a in args]],
            cwd=str(cwd or repo_root),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


# ------------------------------------------------------------------------------------------------
# Data-plane fixtures
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def legate_is_asan(legate_bin):
    """True when the binary under test is built with AddressSanitizer (RSS bounds do not apply:
    ASan's shadow memory and quarantine dominate it)."""
    with open(legate_bin, "rb") as f:
        return b"__asan_init" in f.read()


@pytest.fixture
def free_port():
    return pick_port


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return peers.make_certs(tmp_path_factory.mktemp("certs"))


def _ports_of(cfg):
    out = []
    for lst in cfg.get("static_resources", {}).get("listeners", []):
        out.append(int(lst["address"]["socket_address"]["port_value"]))
    return out


class LegateRunner:
    """Starts legate instances for one scope and checks how each one ended."""

    def __init__(self, binary, log_dir):
        self.binary = binary
        self.log_dir = pathlib.Path(log_dir)
        self.started = []
        self.n = 0

    def start(self, cfg, *, ports=None, extra_args=(), name=None, start_timeout=20.0,
              log_level="warning", env=None):
        self.n += 1
        name = name or ("legate-%d" % self.n)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        path = self.log_dir / (name + ".yaml")
        path.write_text(cfg if isinstance(cfg, str) else bs.to_yaml(cfg))
        ports = list(ports) if ports is not None else _ports_of(cfg)
        p = Legate(self.binary, str(path), ports, log_dir=self.log_dir, name=name,
                   extra_args=extra_args, log_level=log_level, env=env)
        p.start()
        self.started.append(p)
        _ACTIVE.append(p)
        try:
            p.wait_ports(ports, timeout=start_timeout)
        except StartError as e:
            rc = p.popen.poll()
            err = p.stderr_text()
            if rc == 2 and NOT_SERVING_MARK in err and os.environ.get("LG_REQUIRE_SERVING") != "1":
                v = subprocess.run([self.binary, "--mode", "validate", "-c", str(path)],
                                   capture_output=True, text=True, timeout=RUN_TIMEOUT)
                if v.returncode != 0:
                    pytest.fail("the test's bootstrap does not validate:\n%s\n%s" %
                                (v.stdout + v.stderr, path.read_text()))
                pytest.skip("legate cannot serve yet (%s); the bootstrap validates" % err.strip())
            pytest.fail("%s\n--- legate stderr ---\n%s\n--- config ---\n%s" %
                        (e, err, path.read_text()))
        return p

    def finish(self):
        """Stops every instance; returns a list of problems (crash, exit code, sanitizer)."""
        problems = []
        for p in reversed(self.started):
            died_early = p.popen.poll() is not None
            rc = p.stop()
            if p in _ACTIVE:
                _ACTIVE.remove(p)
            err = p.stderr_text()
            if NOT_SERVING_MARK in err and rc == 2:
                continue
            if died_early and getattr(p, "expected_exit", False):
                if rc != 0:
                    problems.append("%s exited with %s after the test stopped it" % (p.name, rc))
            elif died_early:
                problems.append("%s exited by itself during the test (code %s)" % (p.name, rc))
            elif getattr(p, "killed", False):
                problems.append("%s did not exit within the bound after SIGTERM" % p.name)
            elif rc != 0:
                problems.append("%s exited with %s after SIGTERM" % (p.name, rc))
            if p.sanitizer_report():
                problems.append("%s printed a sanitizer report" % p.name)
            if problems:
                problems.append("--- %s stderr (tail) ---\n%s" % (p.name, err[-8000:]))
        return problems


def _legate_runner(request, legate_bin, log_dir):
    runner = LegateRunner(legate_bin, log_dir)

    def fin():
        problems = runner.finish()
        if problems:
            if request.session.shouldstop or request.session.shouldfail:
                # Torn down after the session stopped (-x, Ctrl-C): no test to attach a failure
                # to, and raising here would crash pytest; the report goes to stderr.
                sys.stderr.write("\n".join(problems) + "\n")
                return
            pytest.fail("\n".join(problems), pytrace=False)

    request.addfinalizer(fin)
    return runner


@pytest.fixture
def start_legate(request, legate_bin, tmp_path):
    """start_legate(cfg_dict_or_yaml, ports=None, extra_args=(), name=None) -> Legate."""
    return _legate_runner(request, legate_bin, tmp_path / "legate").start


@pytest.fixture(scope="module")
def start_legate_module(request, legate_bin, tmp_path_factory):
    """Like start_legate, for one legate shared by a module's tests."""
    return _legate_runner(request, legate_bin, tmp_path_factory.mktemp("legate")).start


class PeerRunner:
    def __init__(self, log_dir):
        self.log_dir = pathlib.Path(log_dir)
        self.procs = []

    def start(self, argv, *, name, ports=(), cwd=None, env=None, timeout=20.0, host="127.0.0.1"):
        p = Proc(argv, name=name, log_dir=self.log_dir, cwd=cwd, env=env)
        p.start()
        self.procs.append(p)
        _ACTIVE.append(p)
        try:
            p.wait_ports(list(ports), host=host, timeout=timeout)
        except StartError as e:
            pytest.fail("%s\n--- %s stderr ---\n%s\n%s" % (e, name, p.stderr_text(), p.stdout_text()))
        return p

    def stop_all(self):
        for p in reversed(self.procs):
            p.stop()
            if p in _ACTIVE:
                _ACTIVE.remove(p)


@pytest.fixture
def start_peer(tmp_path):
    r = PeerRunner(tmp_path / "peers")
    yield r.start
    r.stop_all()


@pytest.fixture(scope="module")
def start_peer_module(tmp_path_factory):
    r = PeerRunner(tmp_path_factory.mktemp("peers"))
    yield r.start
    r.stop_all()


@pytest.fixture
def make_origin():
    """make_origin(default_mode="ok") -> started H1Origin, stopped at teardown."""
    made = []

    def make(default_mode="ok", host="127.0.0.1"):
        o = H1Origin(default_mode, host).start()
        made.append(o)
        return o

    yield make
    for o in made:
        o.stop()


@pytest.fixture
def origin(make_origin):
    return make_origin()


@pytest.fixture(scope="module")
def origin_module():
    o = H1Origin().start()
    yield o
    o.stop()


def docroot(d):
    """A docroot for nghttpd: index.html, 1k, 64k, 1m (pattern bytes)."""
    from lgharness.origin_h1 import pattern_bytes
    d = pathlib.Path(d)
    d.mkdir(parents=True, exist_ok=True)
    (d / "index.html").write_bytes(b"hello from nghttpd\n")
    for name, n in (("1k", 1024), ("64k", 65536), ("1m", 1 << 20)):
        (d / name).write_bytes(pattern_bytes(n))
    return d


def _nghttpd(start, tmp, certs=None, tls=False, trailer=None):
    port = pick_port()
    root = docroot(pathlib.Path(tmp) / ("htdocs-%d" % port))
    argv = ["nghttpd", "-a", "127.0.0.1", "-d", str(root), "--echo-upload"]
    if trailer:
        argv.append("--trailer=%s" % trailer)
    if tls:
        argv += [str(port), str(certs / "server.key"), str(certs / "server.pem")]
    else:
        argv += ["--no-tls", str(port)]
    p = start(argv, name="nghttpd-%d" % port, ports=[port])
    p.port = port
    p.docroot = root
    return p


@pytest.fixture
def nghttpd(start_peer, tmp_path, certs):
    """nghttpd(tls=False, trailer=None) -> Proc with .port and .docroot: an HTTP/2 origin
    (h2c prior knowledge, or TLS with ALPN h2) that serves the docroot and echoes uploads."""
    return lambda tls=False, trailer=None: _nghttpd(start_peer, tmp_path, certs, tls, trailer)


@pytest.fixture
def grpc_server():
    from lgharness.grpc_service import GrpcServer
    s = GrpcServer().start()
    yield s
    s.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ("call", "setup"):
        for p in list(_ACTIVE):
            text = p.stderr_text(limit=6000)
            if text.strip():
                rep.sections.append(("%s stderr (tail)" % p.name, text))
