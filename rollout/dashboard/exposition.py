"""/metrics: the state folder in the Prometheus text exposition format (prometheus_client's)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import exposition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from rollout.core import machine
from rollout.dashboard.series import decisions, last_results, metric_series
from rollout.dashboard.snapshot import HOST_STATES, StateView, Unreadable
from rollout.edges.store import Rollout

# The classic text format (names are plain [a-zA-Z_:]): what every Prometheus 2.x scrapes.
CONTENT_TYPE: str = getattr(exposition, "CONTENT_TYPE_PLAIN_0_0_4", exposition.CONTENT_TYPE_LATEST)
STATES = (
    machine.Phase.STARTING,
    machine.Phase.SHADOW,
    machine.Phase.LIVE,
    machine.Phase.COMPLETE,
    machine.Phase.ROLLED_BACK,
    machine.Phase.ABORTED,
    machine.Phase.REVERTING,
    machine.Phase.REVERTED,
    machine.Phase.ROLLBACK_FAILED,
)
OUTCOMES = ("pass", "fail", "error", "inconclusive")


class StateCollector(Collector):
    """Collect every rollout of the state folder at each scrape (read-only, like the page)."""

    def __init__(self, view: StateView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        g = _Families()
        for found in self.view.rollouts():
            if isinstance(found, Unreadable):
                g.unreadable.add_metric([found.id], 1)
                continue
            try:
                _rollout(g, found, self.view)
            except Exception:  # noqa: BLE001 - one odd state must not take the whole scrape down
                g.unreadable.add_metric([found.id], 1)
        yield from g.all()


class _Families:
    def __init__(self) -> None:
        r = ["rollout"]
        self.info = GaugeMetricFamily(
            "rollout_info", "A rollout (always 1), with its name.", labels=[*r, "name"]
        )
        self.state = GaugeMetricFamily(
            "rollout_state", "1 for the state the rollout is in, 0 for the others.", labels=[*r, "state"]
        )
        self.stage = GaugeMetricFamily(
            "rollout_stage", "1 for the rollout's current stage.", labels=[*r, "stage"]
        )
        self.percent = GaugeMetricFamily(
            "rollout_stage_percent", "Percent of the fleet the current stage puts live (0: shadow).", labels=r
        )
        self.active = GaugeMetricFamily("rollout_active", "1 while the rollout is in progress.", labels=r)
        self.paused = GaugeMetricFamily(
            "rollout_paused", "1 while `rollout pause` holds promotion.", labels=r
        )
        self.hosts = GaugeMetricFamily("rollout_hosts", "Hosts in each host state.", labels=[*r, "state"])
        self.bake_left = GaugeMetricFamily(
            "rollout_bake_left_seconds", "Bake time left in the current stage.", labels=r
        )
        self.decisions = CounterMetricFamily(
            "rollout_gate_decisions", "Gate decisions journaled, per stage.", labels=[*r, "stage", "decision"]
        )
        self.last_gate = GaugeMetricFamily(
            "rollout_last_gate_timestamp_seconds", "When the last gate was measured.", labels=r
        )
        self.results = GaugeMetricFamily(
            "rollout_check_results",
            "Measurements of each outcome at the check's last look (one per host for host checks).",
            labels=[*r, "check", "outcome"],
        )
        self.value = GaugeMetricFamily(
            "rollout_check_value",
            "A metric check's last measured value, for the canary and the baseline.",
            labels=[*r, "check", "metric", "cohort"],
        )
        self.samples = GaugeMetricFamily(
            "rollout_check_samples",
            "Calls behind a metric check's last value.",
            labels=[*r, "check", "cohort"],
        )
        self.bound = GaugeMetricFamily(
            "rollout_check_bound",
            "A metric check's bounds at its last look (regression: the value the margin allows).",
            labels=[*r, "check", "metric", "bound"],
        )
        self.measured = GaugeMetricFamily(
            "rollout_check_timestamp_seconds", "When a metric check was last measured.", labels=[*r, "check"]
        )
        self.unreadable = GaugeMetricFamily(
            "rollout_unreadable", "1 for a rollout folder whose state cannot be read.", labels=r
        )

    def all(self) -> list[Metric]:
        return [v for v in vars(self).values() if isinstance(v, Metric)]


def _rollout(g: _Families, rollout: Rollout, view: StateView) -> None:
    s, rid = rollout.state.to_json(), rollout.id  # as state.json holds it
    g.info.add_metric([rid, str(s["name"])], 1)
    for state in (*STATES, *([s["state"]] if s["state"] not in STATES else [])):
        g.state.add_metric([rid, state], 1 if s["state"] == state else 0)
    g.stage.add_metric([rid, str(s["stage"])], 1)
    g.percent.add_metric([rid], float(s["percent"] or 0))
    g.active.add_metric([rid], 1 if s["state"] in machine.ACTIVE else 0)
    g.paused.add_metric([rid], 1 if s.get("paused") else 0)
    counts: dict[str, int] = dict.fromkeys(HOST_STATES, 0)
    for host in s["hosts"].values():
        state = str(host.get("state"))
        counts[state] = counts.get(state, 0) + 1
    for state, n in counts.items():
        g.hosts.add_metric([rid, state], n)
    from rollout.commands.wait import timing_of

    left = timing_of(rollout).get("bake_left_s")
    if left is not None:
        g.bake_left.add_metric([rid], float(left))
    for (stage, decision), n in sorted(view.derived(rollout, "decisions", decisions).items()):
        g.decisions.add_metric([rid, stage, decision], n)
    last = s.get("last_verdict") or {}
    if isinstance(last.get("measured_at"), int | float):
        g.last_gate.add_metric([rid], float(last["measured_at"]))
    for check, outcomes in view.derived(rollout, "results", last_results).items():
        for outcome in (*OUTCOMES, *sorted(set(outcomes) - set(OUTCOMES))):
            g.results.add_metric([rid, check, outcome], outcomes.get(outcome, 0))
    for entry in view.derived(rollout, "series", metric_series):
        point = entry["points"][-1]
        check, metric = entry["check"], entry["metric"]
        g.measured.add_metric([rid, check], point["t"])
        for cohort in ("canary", "baseline"):
            if point[cohort] is not None:
                g.value.add_metric([rid, check, metric, cohort], point[cohort])
        for cohort, key in (("canary", "samples"), ("baseline", "baseline_samples")):
            if isinstance(point[key], int):
                g.samples.add_metric([rid, check, cohort], point[key])
        for bound, key in (("max", "max"), ("min", "min"), ("regression", "regression_bound")):
            if point[key] is not None:
                g.bound.add_metric([rid, check, metric, bound], point[key])


def render(view: StateView) -> bytes:
    """Return the exposition text of the state folder, as one scrape sees it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(view))
    return generate_latest(registry)
