"""Peers that are built or generated rather than installed: Go binaries and test certificates.

What it is for: `go_peer()` builds a Go main package once into build/peers/ (GOBIN) and reuses it
while present, so h2spec and grpc-go's interop client and server cost one build per machine
(the server from integration/peers/grpc_interop_server, a loopback-only main around grpc-go's
interop TestService);
`make_certs()` writes a private CA, server certificates (SANs localhost, *.test, 127.0.0.1, ::1;
and one for wrong.example) and a client certificate with openssl. What it is not for: installing
Debian packages (scripts/lib.sh does that).
"""
import fcntl
import os
import pathlib
import shutil
import subprocess

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
PEERS = REPO_ROOT / "build" / "peers"

# h2spec: @master is not served by the Go module proxy here, @latest is v1.x without cmd/h2spec;
# v2.2.1+incompatible (the last v2 tag) builds with current dependencies and reports 2.0.0.
H2SPEC_PKG = "github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible"
GRPC_VERSION = "v1.83.1"
# envoyproxy/ratelimit: its tags are from 2020 and the commit peer-tests.md names is not served by
# the module proxy here; @latest resolves to this pseudo-version (main, 2026-01-22).
RATELIMIT_PKG = "github.com/envoyproxy/ratelimit/src/service_cmd@v1.4.1-0.20260122083618-3fb702589d36"


class BuildError(Exception):
    pass


def go_peer(name, packages, subdir=""):
    """Path of build/peers/<subdir>/<name>, building `packages` with `go install` into that
    directory when the binary is missing. Raises BuildError with go's output on failure."""
    outdir = PEERS / subdir if subdir else PEERS
    binary = outdir / name
    if binary.is_file() and os.access(binary, os.X_OK):
        return str(binary)
    outdir.mkdir(parents=True, exist_ok=True)
    go = shutil.which("go") or "/usr/local/go/bin/go"
    with open(PEERS / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file():
            return str(binary)
        env = dict(os.environ, GOBIN=str(outdir), GOFLAGS="-buildvcs=false", CGO_ENABLED="0")
        r = subprocess.run([go, "install", *packages], env=env, cwd=str(outdir),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=900)
        if r.returncode != 0 or not binary.is_file():
            raise BuildError("go install %s failed:\n%s" % (" ".join(packages), r.stdout[-5000:]))
    return str(binary)


def h2spec():
    return go_peer("h2spec", [H2SPEC_PKG])


def local_go_peer(name, src=None, binary=None, package="."):
    """A Go main of this repository (integration/peers/<name>, or `src`, with its own go.mod)
    built with `go build` into build/peers/<name> (or `binary`), rebuilt when a source file is
    newer than the binary. `package` names a main package of a dependency instead, built with
    the versions `src`'s go.mod pins. Raises BuildError with go's output on failure."""
    src = pathlib.Path(src) if src else REPO_ROOT / "integration" / "peers" / name
    binary = pathlib.Path(binary) if binary else PEERS / name
    binary.parent.mkdir(parents=True, exist_ok=True)
    PEERS.mkdir(parents=True, exist_ok=True)
    newest = max(p.stat().st_mtime for p in src.iterdir() if p.is_file())
    with open(PEERS / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file() and binary.stat().st_mtime >= newest:
            return str(binary)
        go = shutil.which("go") or "/usr/local/go/bin/go"
        r = subprocess.run([go, "build", "-o", str(binary), package], cwd=str(src),
                           env=dict(os.environ, GOFLAGS="-buildvcs=false", CGO_ENABLED="0"),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
        if r.returncode != 0:
            raise BuildError("go build %s in %s failed:\n%s" % (package, src, r.stdout[-5000:]))
    return str(binary)


def ratelimit_service():
    """Envoy's reference rate-limit service (binary service_cmd), built once."""
    return go_peer("service_cmd", [RATELIMIT_PKG], subdir="ratelimit-3fb7025")


def grpc_interop():
    """(client, server) paths of grpc-go's interop client (go install) and of
    integration/peers/grpc_interop_server, grpc-go's interop TestService on a loopback address
    (grpc-go's own interop/server binds every interface)."""
    sub = "grpc-interop-" + GRPC_VERSION
    client = go_peer("client", ["google.golang.org/grpc/interop/client@" + GRPC_VERSION], subdir=sub)
    server = local_go_peer("grpc_interop_server", binary=PEERS / sub / "loopback-server")
    return client, server


def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=str(cwd), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60)
    if r.returncode != 0:
        raise BuildError("openssl %s failed:\n%s" % (" ".join(args), r.stdout))


def _leaf(d, name, subj, san, ext_usage):
    ext = d / (name + ".ext")
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=%s\n%s" % (ext_usage, ("subjectAltName=%s\n" % san) if san else ""))
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", name + ".key", "-out", name + ".csr", "-subj", subj, cwd=d)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", name + ".pem", "-extfile", ext.name, cwd=d)


def make_certs(d):
    """Writes into directory d: ca.pem/ca.key, server.pem/key (localhost, *.test, 127.0.0.1, ::1),
    wrong.pem/key (wrong.example only), client.pem/key (clientAuth). Returns d as a Path."""
    d = pathlib.Path(d)
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=legate test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _leaf(d, "server", "/CN=localhost",
          "DNS:localhost,DNS:*.test,DNS:a.test,DNS:b.test,IP:127.0.0.1,IP:::1", "serverAuth")
    _leaf(d, "wrong", "/CN=wrong.example", "DNS:wrong.example", "serverAuth")
    _leaf(d, "client", "/CN=legate test client", None, "clientAuth")
    return d
