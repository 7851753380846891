"""Metric gates through `evaluate(check, ctx)` over real usage files on local-transport hosts."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest

from rollout import checks
from rollout.checks.base import GateContext, Measurement
from rollout.checks.judge import judge
from rollout.core import playbook
from rollout.hosts.fleet import Fleet
from rollout.hosts.transports.local import LocalTransport
from rollout.models.usage import UsageRecord, dump_usage_lines
from rollout.util.errors import BadInput
from tests import opencode_db

HOSTS = ["dev-01", "dev-02", "dev-03", "dev-04"]
LIVE_FOR = 600.0  # the canary went live this many seconds ago


def make_playbook(tmp_path: Path, checks: list[dict[str, Any]]) -> playbook.Playbook:
    (tmp_path / "candidate.json").write_text('{"model": "anthropic/claude-sonnet-4"}\n')
    data = {
        "name": "metric-gates",
        "config": {"source": "candidate.json", "path": "fleet/{host}/opencode.json"},
        "targets": {"transport": "local", "hosts": HOSTS},
        "health": {"checks": checks},
    }
    return playbook.from_dict(data, tmp_path / "playbook.yml")


def context(pb: playbook.Playbook, stage: int = 1, canary: tuple[str, ...] = ("dev-01",)) -> GateContext:
    now = time.time()
    return GateContext(
        playbook=pb,
        stage=pb.stages[stage],
        canary=canary,
        baseline_hosts=tuple(h for h in HOSTS if h not in canary),
        config_paths={h: str(pb.base_dir / f"fleet/{h}/opencode.json") for h in HOSTS},
        switched_at={h: now - LIVE_FOR for h in canary},
        fleet=Fleet(LocalTransport(pb.base_dir)),
        state_dir=pb.base_dir / "state",
        bake_s=pb.stages[stage].bake,
        extension_s=pb.health.extension(pb.stages[stage]),
    )


def traffic(
    rng: random.Random,
    n: int,
    error_rate: float = 0.03,
    latency_s: float = 4.0,
    cost: float = 0.01,
    start: float | None = None,
) -> list[UsageRecord]:
    """Return `n` calls spread over the last LIVE_FOR seconds (lognormal latency around `latency_s`)."""
    now = time.time()
    begin = now - LIVE_FOR + 5 if start is None else start
    return [
        UsageRecord(
            ts=begin + (now - 5 - begin) * i / max(n - 1, 1),
            agent="build",
            model="anthropic/claude-sonnet-4",
            input_tokens=1000,
            output_tokens=rng.randint(100, 400),
            cost_usd=cost,
            duration_s=round(rng.lognormvariate(0, 0.5) * latency_s, 3),
            outcome="error" if rng.random() < error_rate else "success",
            failover=False,
        )
        for i in range(n)
    ]


def write_usage(base: Path, host: str, records: list[UsageRecord], extra: str = "") -> None:
    path = base / "fleet" / host / "usage.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_usage_lines(records) + extra)


def check(name: str = "gate", **keys: Any) -> dict[str, Any]:
    return {"name": name, "source": {"type": "usage-log", "path": "fleet/{host}/usage.jsonl"}, **keys}


def measure(pb: playbook.Playbook, ctx: GateContext, index: int = 0) -> Measurement:
    spec = pb.health.checks[index]
    (m,) = checks.get(spec.kind).evaluate(spec, ctx)
    return m


def test_error_rate_of_20_percent_on_the_canary_fails_the_gate(tmp_path: Path) -> None:
    rng = random.Random(7)
    pb = make_playbook(
        tmp_path, [check("error-rate", metric="error_rate", max=0.05, max_regression=0.10, min_samples=50)]
    )
    write_usage(tmp_path, "dev-01", traffic(rng, 200, error_rate=0.20))
    for host in HOSTS[1:]:
        write_usage(tmp_path, host, traffic(rng, 200, error_rate=0.02))
    m = measure(pb, context(pb))
    errors = m.details["samples"] and round(m.details["value"] * 200)
    assert m.outcome == "fail"
    assert m.why.startswith(
        f"error_rate {errors / 2:.1f}% on canary ({errors}/200 calls, 1 host) is above max 5.0%"
    )
    assert m.details["metric"] == "error_rate"
    assert m.details["bound"] == "max 5.0%, regression <= 10%"
    assert m.details["samples"] == 200 and m.details["baseline_samples"] == 600
    assert 0.15 < m.details["value"] < 0.25 and m.details["baseline"] < 0.05
    verdict = judge([m], failure_limit=0, consecutive_error_limit=4)
    assert verdict.decision == "fail"
    assert verdict.why.startswith("error-rate: error_rate ")


def test_aa_comparison_never_fails_over_50_seeded_runs(tmp_path: Path) -> None:
    pb = make_playbook(
        tmp_path,
        [
            check("errors", metric="error_rate", max_regression=0.10, min_samples=50),
            check("latency", metric="latency_mean_s", max_regression=0.10, min_samples=50),
            check("p95", metric="latency_p95_s", max_regression=0.10, min_samples=50),
        ],
    )
    outcomes: dict[str, int] = {}
    for seed in range(50):
        rng = random.Random(seed)
        for host in HOSTS:
            write_usage(tmp_path, host, traffic(rng, 300, error_rate=0.05))
        ctx = context(pb)
        for i in range(3):
            m = measure(pb, ctx, i)
            outcomes[m.outcome] = outcomes.get(m.outcome, 0) + 1
    assert outcomes == {"pass": 150}  # 50 runs x 3 checks


def test_latency_30_percent_slower_is_caught_with_max_regression_10_percent(tmp_path: Path) -> None:
    pb = make_playbook(
        tmp_path, [check("latency", metric="latency_mean_s", max_regression=0.10, min_samples=50)]
    )
    caught = 0
    for seed in range(10):
        rng = random.Random(1000 + seed)
        write_usage(tmp_path, "dev-01", traffic(rng, 300, latency_s=4.0 * 1.3))
        for host in HOSTS[1:]:
            write_usage(tmp_path, host, traffic(rng, 300, latency_s=4.0))
        m = measure(pb, context(pb))
        caught += m.outcome == "fail"
        if seed == 0:
            assert m.outcome == "fail"
            assert "worse, significantly over the 10% allowed (p=" in m.why
            assert m.details["p_value"] < 0.01
            assert 0.15 < m.details["regression"] < 0.5
    assert caught == 10


def test_too_few_samples_is_inconclusive_and_says_how_many_more(tmp_path: Path) -> None:
    rng = random.Random(3)
    pb = make_playbook(
        tmp_path, [check("errors", metric="error_rate", max=0.05, max_regression=0.1, min_samples=50)]
    )
    write_usage(tmp_path, "dev-01", traffic(rng, 12, error_rate=0.5))
    for host in HOSTS[1:]:
        write_usage(tmp_path, host, traffic(rng, 100))
    m = measure(pb, context(pb))
    assert m.outcome == "inconclusive"
    assert m.details["needed"] == 38
    assert m.why.startswith("error_rate: too few samples (canary has 12, need 50 each): 38 more needed")
    verdict = judge([m], failure_limit=0, consecutive_error_limit=4)
    assert (verdict.decision, verdict.needed) == ("inconclusive", 38)


def test_records_before_the_switch_do_not_count_for_the_canary(tmp_path: Path) -> None:
    rng = random.Random(4)
    pb = make_playbook(tmp_path, [check("errors", metric="error_rate", max=0.05, min_samples=20)])
    old = traffic(rng, 100, error_rate=1.0, start=time.time() - 3 * LIVE_FOR)
    old = [r for r in old if r.ts < time.time() - LIVE_FOR - 1]
    # 0/200 since the switch: the 99% upper bound (2.6%) is below max 5% (0/30 could not tell).
    write_usage(tmp_path, "dev-01", old + traffic(rng, 200, error_rate=0.0))
    m = measure(pb, context(pb))
    assert (m.outcome, m.details["samples"], m.details["value"]) == ("pass", 200, 0.0)


def test_observe_only_check_is_measured_but_never_decides(tmp_path: Path) -> None:
    rng = random.Random(5)
    pb = make_playbook(
        tmp_path,
        [check("cost", metric="cost_per_day_usd", max=100, enforce=False, min_samples=5)],
    )
    write_usage(tmp_path, "dev-01", traffic(rng, 40, cost=0.025))
    m = measure(pb, context(pb))
    # $1.00 over 10 minutes on one host: $144/day per host, $576/day for the 4-host fleet; 40 calls
    # put the lower bound of that spend rate above $100/day (10 calls of $0.10 could not).
    assert m.outcome == "fail" and m.enforce is False
    assert m.details["value"] == pytest.approx(576.0, rel=1e-3)
    assert m.why.startswith("cost_per_day_usd $57")
    assert "is above max $100.00/day" in m.why
    assert judge([m], failure_limit=0, consecutive_error_limit=4).decision == "pass"


def test_unreadable_lines_and_missing_logs_are_reported_not_fatal(tmp_path: Path) -> None:
    rng = random.Random(6)
    pb = make_playbook(tmp_path, [check("tokens", metric="tokens_per_call", max=5000, min_samples=10)])
    write_usage(tmp_path, "dev-01", traffic(rng, 20), extra="{oops\n" + json.dumps({"ts": 1}) + "\n")
    m = measure(pb, context(pb))  # dev-02..04 have no usage log yet
    assert m.outcome == "pass"
    assert "(2 unreadable usage lines skipped)" in m.why
    assert m.details["baseline_samples"] is None or m.details["baseline"] is None


def test_a_host_that_cannot_be_read_is_an_error_naming_it(tmp_path: Path) -> None:
    pb = make_playbook(tmp_path, [check("errors", metric="error_rate", max=0.05)])
    (tmp_path / "fleet" / "dev-01" / "usage.jsonl").mkdir(parents=True)  # a folder, not a file
    m = measure(pb, context(pb))
    assert m.outcome == "error"
    assert m.why.startswith("cannot read usage-log on dev-01: IsADirectoryError")


def test_shadow_stage_measures_nothing(tmp_path: Path) -> None:
    pb = make_playbook(tmp_path, [check("errors", metric="error_rate", max=0.05)])
    m = measure(pb, context(pb, stage=0))
    assert (m.outcome, m.why) == (
        "pass",
        "error_rate: not measured in shadow (the candidate serves no traffic yet)",
    )


def test_at_100_percent_only_absolute_bounds_apply(tmp_path: Path) -> None:
    rng = random.Random(8)
    pb = make_playbook(tmp_path, [check("errors", metric="error_rate", max=0.05, max_regression=0.1)])
    for host in HOSTS:
        write_usage(tmp_path, host, traffic(rng, 50, error_rate=0.0))  # 0/200: upper bound 2.6% < 5%
    m = measure(pb, context(pb, stage=3, canary=tuple(HOSTS)))
    assert m.outcome == "pass"
    assert "no baseline hosts left to compare with" in m.why


def test_opencode_store_source(tmp_path: Path) -> None:
    pb = make_playbook(
        tmp_path,
        [
            {
                "name": "latency",
                "metric": "latency_mean_s",
                "source": {"type": "opencode", "path": "fleet/{host}/opencode.db"},
                "max": 10,
                "min_samples": 5,
            }
        ],
    )
    now_ms = int(time.time() * 1000)
    for host, seconds in (("dev-01", 12_000), ("dev-02", 3_000)):
        (tmp_path / "fleet" / host).mkdir(parents=True)
        messages = [opencode_db.assistant(now_ms - 60_000 + i * 1000, seconds) for i in range(8)]
        opencode_db.create(tmp_path / "fleet" / host / "opencode.db", messages, wal=True).close()
    m = measure(pb, context(pb))
    assert m.outcome == "fail"
    assert m.why.startswith("latency_mean_s 12.00s on canary (8 calls, 1 host) is above max 10.00s")
    assert m.details["baseline"] == 3.0


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (
            {"metric": "error_rate", "max_regression": -1},
            "health.checks[0].max_regression: must be a number >= 0, got -1",
        ),
        (
            {"metric": "errors", "max": 1},
            "health.checks[0].metric: unknown metric 'errors' (known: error_rate, success_rate, "
            "failover_rate, latency_mean_s, latency_p95_s, cost_per_day_usd, tokens_per_call, cost_usd)",
        ),
        (
            {"metric": "error_rate", "max": 1, "source": {"type": "datadog"}},
            "health.checks[0].source.type: unknown source type 'datadog' "
            "(known: usage-log, prometheus, opencode)",
        ),
        (
            {"metric": "error_rate", "max": 1, "min_samples": 0},
            "health.checks[0].min_samples: must be a whole number >= 1, got 0",
        ),
        (
            {"metric": "error_rate", "max": 1, "window": "soon"},
            "health.checks[0].window: must be a duration like 10m, got 'soon'",
        ),
        ({"metric": "error_rate"}, "health.checks[0]: a metric check needs max, min or max_regression"),
        (
            {
                "metric": "error_rate",
                "max": 1,
                "source": {"type": "prometheus", "url": "localhost:9090", "query": "up"},
            },
            "health.checks[0].source.url: must start with http:// or https://, got 'localhost:9090'",
        ),
        (
            {"metric": "success_rate", "max_regression": 1.5},
            "health.checks[0].max_regression: must be below 1 for success_rate, got 1.5",
        ),
    ],
)
def test_bad_metric_check_is_rejected_naming_the_field(
    tmp_path: Path, keys: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadInput) as e:
        make_playbook(tmp_path, [{**check("bad"), **keys}])
    assert str(e.value) == f"{tmp_path / 'playbook.yml'}: {message}"
