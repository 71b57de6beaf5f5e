"""Free loopback ports for the processes a test starts.

Listeners whose socket the harness owns (the Python origins, grpcio) bind port 0 and keep the
socket, so they never race. Ports that must be written into a config before a process binds them
(legate's listeners, nghttpd, nghttpx, Go peers) come from pick_port(): a port below the kernel's
ephemeral range (so no outgoing connection of this machine can be holding it), checked free by
binding it, and never handed out twice in one run.
"""
import os
import random
import socket
import threading

_LOW, _HIGH = 20000, 32000  # below net.ipv4.ip_local_port_range's default 32768
_lock = threading.Lock()
_given = set()
_rng = random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), "little"))


def _free(port, host):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def pick_port(host="127.0.0.1"):
    """A TCP port on host that nothing listens on now and this run has not handed out before."""
    with _lock:
        for _ in range(2000):
            p = _rng.randrange(_LOW, _HIGH)
            if p in _given:
                continue
            if _free(p, host):
                _given.add(p)
                return p
    raise RuntimeError("no free loopback port found")


def closed_port(host="127.0.0.1"):
    """A port where a connect is refused (nothing listens): an upstream that refuses."""
    return pick_port(host)
