"""Shared fixtures for the black-box tests of the built legate binary.

The binary comes from $LEGATE_BIN, else <repo>/build/legate (the CMake build directory the README
names). Every run of it has a timeout; every process a test starts is stopped by that test.
"""
import os
import pathlib
import subprocess

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_BIN = REPO_ROOT / "build" / "legate"
RUN_TIMEOUT = 30  # seconds; validation of a small config takes milliseconds


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
