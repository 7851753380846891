"""Metric gates with a Prometheus source: a real server scraping a loopback exporter."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from rollout import checks
from rollout.checks.base import Measurement
from rollout.checks.metrics.prometheus import cohort_regex, render
from tests.prometheus import PrometheusServer, free_port, prometheus_fixture  # noqa: F401 - fixture
from tests.test_gates_metric import context, make_playbook

EXPOSITION = [
    "# TYPE agent_error_ratio gauge",
    'agent_error_ratio{host="dev-01"} 0.2',
    'agent_error_ratio{host="dev-02"} 0.02',
    'agent_error_ratio{host="dev-03"} 0.03',
    'agent_error_ratio{host="dev-04"} 0.01',
    "# TYPE agent_calls gauge",
    'agent_calls{host="dev-01"} 400',
    'agent_calls{host="dev-02"} 400',
    'agent_calls{host="dev-03"} 400',
    'agent_calls{host="dev-04"} 400',
    "# TYPE agent_latency_seconds gauge",
    'agent_latency_seconds{host="dev-01"} 4.0',
    'agent_latency_seconds{host="dev-02"} 6.0',
    'agent_latency_seconds{host="dev-03"} 3.0',
    'agent_latency_seconds{host="dev-04"} 3.0',
]


def prom_check(server: PrometheusServer, **keys: Any) -> dict[str, Any]:
    source = {"type": "prometheus", "url": server.url, **keys.pop("source", {})}
    return {"name": "prom", "source": source, **keys}


def measure(tmp_path: Path, spec: dict[str, Any], settle_s: float = 20.0) -> Measurement:
    """Measure once; a query that finds no data yet (a loaded machine between scrapes) is
    measured again, bounded, so only a settled outcome is asserted on."""
    pb = make_playbook(tmp_path, [spec])
    check = pb.health.checks[0]
    deadline = time.monotonic() + settle_s
    while True:
        (m,) = checks.get("metric").evaluate(check, context(pb))
        if m.outcome != "inconclusive" or time.monotonic() > deadline:
            return m
        time.sleep(0.5)


def ready(server: PrometheusServer) -> None:
    server.exporter.set(EXPOSITION)
    server.wait_for('agent_calls{host=~"dev-0[1-4]"}', count=4)


def test_templating_names_the_cohort_hosts() -> None:
    assert cohort_regex(("dev-01", "db.2")) == "dev\\\\-01|db\\\\.2"
    assert render('x{host=~"{cohort}"}[{window}]', ("a",), None, 600) == 'x{host=~"a"}[600s]'
    assert render('x{host="{host}"}', ("a", "b"), "b", 60) == 'x{host="b"}'


def test_error_rate_from_prometheus_fails_the_canary(tmp_path: Path, prometheus: PrometheusServer) -> None:
    ready(prometheus)
    m = measure(
        tmp_path,
        prom_check(
            prometheus,
            metric="error_rate",
            source={
                "query": 'avg(agent_error_ratio{host=~"{cohort}"})',
                "samples_query": 'sum(agent_calls{host=~"{cohort}"})',
            },
            max=0.05,
            max_regression=0.1,
            min_samples=100,
        ),
    )
    assert m.outcome == "fail"
    assert m.why.startswith("error_rate 20.0% on canary (80/400 calls, 1 host) is above max 5.0% (its ")
    assert "lower bound is 1" in m.why  # the Wilson bound on 80/400, well above 5%
    assert m.details["baseline"] == pytest.approx(0.02) and m.details["baseline_samples"] == 1200
    assert m.details["source"] == "prometheus"


def test_regression_against_baseline_from_prometheus(tmp_path: Path, prometheus: PrometheusServer) -> None:
    ready(prometheus)
    spec = prom_check(
        prometheus,
        metric="error_rate",
        source={
            "query": 'avg(agent_error_ratio{host=~"{cohort}"})',
            "samples_query": 'sum(agent_calls{host=~"{cohort}"})',
        },
        max_regression=0.1,
        min_samples=100,
    )
    m = measure(tmp_path, spec)
    assert m.outcome == "fail"
    assert m.why.startswith(
        "error_rate 20.0% on canary (80/400 calls, 1 host) vs baseline 2.0% (24/1200 calls, 3 hosts): "
        "900.0% worse, significantly over the 10% allowed (p="
    )


def test_per_host_query_without_sample_counts(tmp_path: Path, prometheus: PrometheusServer) -> None:
    ready(prometheus)
    spec = prom_check(
        prometheus,
        metric="latency_mean_s",
        source={"query": 'agent_latency_seconds{host="{host}"}'},
        max=10,
        max_regression=0.1,
    )
    m = measure(tmp_path, spec)
    # canary 4.0s; baseline is the mean of 6, 3 and 3 = 4.0s: no regression, and no samples to test.
    assert m.outcome == "pass"
    assert m.why == (
        "latency_mean_s 4.00s on canary (1 host) is within max 10.00s, "
        "and vs baseline 4.00s (3 hosts): no change, within 10%"
    )
    assert m.details["p_value"] is None


def test_query_with_no_data_is_inconclusive(tmp_path: Path, prometheus: PrometheusServer) -> None:
    ready(prometheus)
    m = measure(
        tmp_path,
        prom_check(prometheus, metric="error_rate", source={"query": "absent_metric"}, max=0.1),
        settle_s=0,
    )
    assert m.outcome == "inconclusive"
    assert m.why == "error_rate: no data for the canary yet"


def test_bad_query_is_an_error_with_prometheus_reason(tmp_path: Path, prometheus: PrometheusServer) -> None:
    ready(prometheus)
    m = measure(tmp_path, prom_check(prometheus, metric="error_rate", source={"query": "sum(("}, max=0.1))
    assert m.outcome == "error"
    assert m.why.startswith("error_rate: HTTP 400 from http://127.0.0.1:")
    assert "parse error" in m.why


def test_many_series_must_be_aggregated(tmp_path: Path, prometheus: PrometheusServer) -> None:
    ready(prometheus)
    m = measure(
        tmp_path, prom_check(prometheus, metric="error_rate", source={"query": "agent_calls"}, max=0.1)
    )
    assert m.outcome == "error"
    assert m.why == "error_rate: query returned 4 series, expected one (aggregate with sum or avg)"


def test_unreachable_prometheus_is_an_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    spec = {
        "name": "p",
        "metric": "error_rate",
        "source": {"type": "prometheus", "url": url, "query": "up"},
        "max": 1,
    }
    m = measure(tmp_path, spec)
    assert m.outcome == "error"
    assert m.why.startswith(f"error_rate: cannot reach Prometheus at {url}: ")
