"""Without sshd or prometheus on the machine, the tests that need them fail with one line naming the package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SSH_TESTS = """
import tests.sshd
tests.sshd.SSHD = "/nonexistent/sbin/sshd"
from tests.sshd import own_sshd, sshd, sshd_keys  # noqa: F401 - fixtures

def test_shared(sshd): pass
def test_own(own_sshd): pass
def test_shared_again(sshd): pass
"""

PROMETHEUS_TESTS = """
import tests.prometheus
tests.prometheus.PROMETHEUS = "/nonexistent/bin/prometheus"
from tests.prometheus import prometheus_fixture  # noqa: F401 - fixture

def test_query(prometheus): pass
def test_query_again(prometheus): pass
"""


def _run_pytest(tmp_path: Path, source: str) -> str:
    (tmp_path / "test_needs_it.py").write_text(source)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        cwd=REPO,  # `tests` importable
        # Under CI=true pytest repeats each error in full in its summary: count the errors only.
        env={k: v for k, v in os.environ.items() if k not in ("CI", "BUILD_NUMBER")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return proc.stdout


def test_without_sshd_the_ssh_tests_fail_with_one_line_naming_the_package(tmp_path: Path) -> None:
    out = _run_pytest(tmp_path, SSH_TESTS)
    line = "the SSH tests need OpenSSH's server at /nonexistent/sbin/sshd, which is missing: apt-get install -y openssh-server"
    assert out.count(line) == 3, out  # one line per test, no traceback
    assert "FileNotFoundError" not in out
    assert "Traceback" not in out and "raise " not in out


def test_without_prometheus_its_tests_fail_with_one_line_naming_the_package(tmp_path: Path) -> None:
    out = _run_pytest(tmp_path, PROMETHEUS_TESTS)
    line = (
        "the Prometheus tests need the prometheus server (/nonexistent/bin/prometheus), "
        "which is missing: apt-get install -y prometheus"
    )
    assert out.count(line) == 2, out
    assert "FileNotFoundError" not in out
