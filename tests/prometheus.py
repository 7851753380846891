"""A real Prometheus on loopback scraping a tiny exporter served by the test (fixtures)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
READY_TIMEOUT_S = 60.0
INSTALL = "apt-get install -y prometheus"


def missing() -> str | None:
    """Say that Prometheus is not on this machine (one line, with the package), or None."""
    if os.path.isfile(PROMETHEUS) and os.access(PROMETHEUS, os.X_OK):
        return None
    return f"the Prometheus tests need the prometheus server ({PROMETHEUS}), which is missing: {INSTALL}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Exporter:
    """Serves `metrics` (exposition text lines) on /metrics; tests change them between scrapes."""

    port: int
    lines: list[str] = field(default_factory=list)

    def set(self, lines: list[str]) -> None:
        self.lines = list(lines)


@dataclass
class PrometheusServer:
    url: str
    exporter: Exporter

    def query(self, promql: str) -> list[dict[str, object]]:
        """Run an instant query; return the result vector."""
        with urllib.request.urlopen(
            f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}), timeout=5
        ) as r:
            return list(json.loads(r.read())["data"]["result"])

    def wait_for(self, promql: str, count: int = 1) -> None:
        """Wait (bounded) until `promql` returns at least `count` series."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if len(self.query(promql)) >= count:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"Prometheus never returned {count} series for {promql!r}")


def _serve_exporter() -> tuple[Exporter, http.server.ThreadingHTTPServer]:
    exporter = Exporter(port=0)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = ("\n".join(exporter.lines) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    exporter.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return exporter, server


@pytest.fixture(scope="module", name="prometheus")
def prometheus_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """Start Prometheus (1s scrapes) against a loopback exporter; stop both afterwards."""
    why = missing()
    if why is not None:
        pytest.fail(why, pytrace=False)
    tmp: Path = tmp_path_factory.mktemp("prometheus")
    exporter, server = _serve_exporter()
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: agents\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{exporter.port}']\n"
    )
    port = free_port()
    log = (tmp / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        yield PrometheusServer(f"http://127.0.0.1:{port}", exporter)
    finally:
        proc.kill()  # its storage is a throwaway temp folder: no clean shutdown needed
        proc.wait()
        log.close()
        server.shutdown()
        server.server_close()
