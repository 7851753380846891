"""How often the metric gates decide right: simulated fleets through the real `rollout run --auto`.

Each trial builds a local-transport fleet in a temporary folder, pre-generates every host's calls
(timestamps, outcomes, latencies, costs, under both the baseline and the candidate config, from the
same random numbers), writes the calls of the last 30 seconds before the rollout, then starts
`python -m rollout run PLAYBOOK --auto` as a subprocess while a writer thread appends each host's
calls as their time comes, from whichever config is live on the host at that moment. It prints, per
scenario, how many trials completed, rolled back or stopped, how many were caught before 50% went
live, and the median decision time after the canary went live, with 95% Wilson intervals.

    python bench/judge.py --trials 100 --jobs 8
    python bench/judge.py --trials 30 --scenarios error-1-to-6 --rate 5
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HISTORY_S = 30.0  # calls written before the rollout starts: each host's own "before"
WRITE_EVERY_S = 0.2
# JUDGE_PROFILE=FILE runs each trial's rollout under cProfile, writing FILE (to see where a trial's time goes).
PROFILE = ["-m", "cProfile", "-o", os.environ["JUDGE_PROFILE"]] if os.environ.get("JUDGE_PROFILE") else []


@dataclass(frozen=True)
class Scenario:
    """A fleet and what the candidate does to each call."""

    name: str
    hetero: bool  # hosts differ, traffic is bursty, the provider has short fleet-wide incidents
    errors: float = 1.0  # candidate's error rate multiplier
    latency: float = 1.0  # candidate's latency multiplier
    cost: float = 1.0  # candidate's cost-per-call multiplier
    should: str = "complete"  # what a good gate does: complete | roll back


SCENARIOS = [
    Scenario("aa-heterogeneous", True),
    Scenario("aa-alike", False),
    Scenario("error-1-to-6", True, errors=6.0, should="roll back"),
    Scenario("latency+30", True, latency=1.3, should="roll back"),
    Scenario("cost/day+50", True, cost=1.5, should="roll back"),
    Scenario("all+5", True, 1.05, 1.05, 1.05),
    Scenario("all+15", True, 1.15, 1.15, 1.15, should="roll back"),
    Scenario("all+30", True, 1.3, 1.3, 1.3, should="roll back"),
]


@dataclass
class Call:
    ts: float
    u_error: float  # uniform: the call fails when below its error rate
    latency_s: float
    cost_usd: float


@dataclass
class HostTraffic:
    """One host's pre-generated calls and how it behaves."""

    calls: list[Call]
    error_rate: float
    written: int = 0


@dataclass
class Fleet:
    hosts: dict[str, HostTraffic]
    incidents: list[tuple[float, float]]  # (start, end): the provider fails 15% more calls
    scenario: Scenario


def make_traffic(
    scenario: Scenario, hosts: list[str], rate: float, t0: float, span: float, seed: int
) -> Fleet:
    """Pre-generate every host's calls from t0 - HISTORY_S to t0 + span."""
    rng = random.Random(seed)
    incidents = []
    if scenario.hetero:
        t = t0 - HISTORY_S
        while t < t0 + span:
            t += rng.expovariate(1 / 120.0)  # one incident every 2 minutes on average, 1-2 s long
            incidents.append((t, t + rng.uniform(1.0, 2.0)))
    out = {}
    for host in hosts:
        if scenario.hetero:
            host_rate = rate * math.exp(rng.gauss(0, 0.5) - 0.125)
            error_rate = min(0.03, 0.01 * math.exp(rng.gauss(0, 0.5) - 0.125))
            latency = 4.0 * math.exp(rng.gauss(0, 0.25))
            price = 0.01 * math.exp(rng.gauss(0, 0.3))
        else:
            host_rate, error_rate, latency, price = rate, 0.01, 4.0, 0.01
        calls = []
        t, burst_left = t0 - HISTORY_S, 0.0
        while t < t0 + span:
            # Bursts: a host doubles its call rate for 1-3 s, now and then.
            if scenario.hetero and burst_left <= 0 and rng.random() < 0.02:
                burst_left = rng.uniform(1.0, 3.0)
            level = host_rate * (2.0 if burst_left > 0 else 1.0)
            n = _poisson(rng, level * 1.0)
            for _ in range(n):
                heavy = rng.paretovariate(2.5) if rng.random() < 0.02 else 1.0  # rare very slow calls
                calls.append(
                    Call(
                        ts=t + rng.random(),
                        u_error=rng.random(),
                        latency_s=latency * rng.lognormvariate(-0.18, 0.6) * heavy,
                        cost_usd=price * rng.lognormvariate(-0.32, 0.8),
                    )
                )
            t += 1.0
            burst_left -= 1.0
        calls.sort(key=lambda c: c.ts)
        out[host] = HostTraffic(calls, error_rate)
    return Fleet(out, incidents, scenario)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 30:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def record(fleet: Fleet, traffic: HostTraffic, call: Call, candidate: bool) -> str:
    """Return one usage line for `call` on the config the host has (candidate or baseline)."""
    s = fleet.scenario
    rate = traffic.error_rate * (s.errors if candidate else 1.0)
    if any(a <= call.ts < b for a, b in fleet.incidents):
        rate += 0.15
    failed = call.u_error < rate
    latency = call.latency_s * (s.latency if candidate else 1.0)
    cost = call.cost_usd * (s.cost if candidate else 1.0)
    # A format string, not json.dumps: the writer serves every running trial from one process.
    return LINE.format(ts=call.ts, cost=cost, latency=latency, outcome="error" if failed else "success")


LINE = (
    '{{"ts": {ts:.3f}, "gen_ai.agent.name": "build", "gen_ai.request.model": "acme/model", '
    '"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 200, "cost_usd": {cost:.6f}, '
    '"duration_s": {latency:.3f}, "outcome": "{outcome}"}}'
)


def write_until(fleet: Fleet, root: Path, now: float) -> None:
    """Append every call that started by `now`, from the config live on its host."""
    for host, traffic in fleet.hosts.items():
        try:
            candidate = b"candidate" in (root / "fleet" / host / "config.json").read_bytes()
        except OSError:
            candidate = False
        lines = []
        while traffic.written < len(traffic.calls) and traffic.calls[traffic.written].ts <= now:
            lines.append(record(fleet, traffic, traffic.calls[traffic.written], candidate))
            traffic.written += 1
        if lines:
            with (root / "fleet" / host / "usage.jsonl").open("a") as f:
                f.write("\n".join(lines) + "\n")


def playbook(hosts: list[str], bake: float, interval: float) -> dict[str, object]:
    usage = {"type": "usage-log", "path": "fleet/{host}/usage.jsonl"}
    return {
        "name": "judge",
        "config": {"source": "candidate.json", "path": "fleet/{host}/config.json"},
        "targets": {"transport": "local", "hosts": hosts},
        "stages": ["shadow", *({"percent": p, "bake": f"{bake}s"} for p in (25, 50, 100))],
        "health": {
            "interval": f"{interval}s",
            "checks": [
                {"name": "error-rate", "metric": "error_rate", "source": usage, "max": 0.05,
                 "max_regression": 0.10, "min_samples": 50},
                {"name": "latency", "metric": "latency_mean_s", "source": usage, "max": 10,
                 "max_regression": 0.10, "min_samples": 50},
                {"name": "cost", "metric": "cost_per_day_usd", "source": usage,
                 "max_regression": 0.10, "min_samples": 50},
            ],
        },
    }  # fmt: skip


@dataclass
class Trial:
    outcome: str  # complete | rolled back | stopped | error
    caught_before_50: bool
    decision_s: float | None  # from the canary going live to the 25% gate's decision
    reasons: list[str] = field(default_factory=list)
    failed_at: int | None = None  # the percent live when a gate failed (None: none failed)
    canary_looks: list[str] = field(default_factory=list)  # the 25% gate's looks, one line each


def run_trial(scenario: Scenario, seed: int, args: argparse.Namespace) -> Trial:
    hosts = [f"h{i:02d}" for i in range(1, args.hosts + 1)]
    root = Path(tempfile.mkdtemp(prefix="judge-"))
    try:
        (root / "candidate.json").write_text('{"model": "acme/model", "variant": "candidate"}\n')
        for h in hosts:
            (root / "fleet" / h).mkdir(parents=True)
            (root / "fleet" / h / "config.json").write_text(
                '{"model": "acme/model", "variant": "baseline"}\n'
            )
        (root / "playbook.yml").write_text(json.dumps(playbook(hosts, args.bake, args.interval)))
        t0 = time.time()
        span = 3 * 2 * args.bake + 30
        fleet = make_traffic(scenario, hosts, args.rate, t0, span, seed)
        write_until(fleet, root, t0)
        stop = threading.Event()

        def writer() -> None:
            while not stop.is_set():
                write_until(fleet, root, time.time())
                stop.wait(WRITE_EVERY_S)

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        try:
            proc = subprocess.run(
                [sys.executable, *PROFILE, "-m", "rollout", "--state-dir", str(root / "state"), "run",
                 str(root / "playbook.yml"), "--auto"],
                cwd=root, env=env, capture_output=True, text=True, timeout=span + 120,
            )  # fmt: skip
        finally:
            stop.set()
            thread.join()
        return _read_trial(root, proc.returncode, proc.stdout + proc.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def _read_trial(root: Path, code: int, output: str) -> Trial:
    outcome = {0: "complete", 3: "rolled back", 5: "stopped"}.get(code, "error")
    events = []
    for folder in (root / "state").iterdir():
        if (folder / "events.jsonl").is_file():
            events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines() if line]
    entered = {e.get("percent"): _time(e["time"]) for e in events if e["event"] == "stage-entered"}
    live = entered.get(25)
    decided = None
    if live is not None:
        after = [e for e in events if _time(e["time"]) >= live and e["event"] in ("stage-entered", "gate")]
        for e in after:
            if e["event"] == "stage-entered" and e.get("percent") == 50:
                decided = _time(e["time"])
                break
            if e["event"] == "gate" and e.get("decision") == "fail":
                decided = _time(e["time"])
                break
        if decided is None and outcome == "stopped":
            decided = _time(events[-1]["time"])
    reasons = [line for line in output.splitlines() if ": FAIL:" in line or "INCONCLUSIVE" in line]
    if outcome == "error":
        reasons.append(output[-400:])
    failed_at, percent = None, None
    looks = []
    for e in events:
        if e["event"] == "stage-entered":
            percent = e.get("percent")
        if e["event"] == "gate" and e.get("decision") == "fail" and failed_at is None:
            failed_at = percent
        if e["event"] == "gate" and percent == 25 and live is not None:
            looks.append(f"{_time(e['time']) - live:5.1f}s {e.get('decision')}: {_look_numbers(e)}")
    return Trial(
        outcome,
        outcome == "rolled back" and 50 not in entered,
        decided - live if decided is not None and live is not None else None,
        reasons,
        failed_at,
        looks,
    )


def _look_numbers(event: dict[str, object]) -> str:
    """One gate look's deciding numbers per metric check: outcome, change, p against the look's alpha."""
    verdict = event.get("verdict")
    parts = []
    for m in (verdict or {}).get("measurements", []) if isinstance(verdict, dict) else []:
        d = m.get("details") or {}
        if "metric" not in d or d.get("look") is None:
            continue
        rel, p, spend = d.get("regression"), d.get("p_value"), d.get("alpha_look")
        rel_text = f"{rel * 100:+.0f}%" if isinstance(rel, float) else "-"
        p_text = f"p={p:.2g}/{spend:.2g}" if isinstance(p, float) and isinstance(spend, float) else ""
        parts.append(f"{m['check']} {m['outcome']} {rel_text} {p_text} n={d.get('samples')}")
    return "; ".join(parts)


def _time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - half) / (1 + z * z / n)), min(1.0, (centre + half) / (1 + z * z / n))


def median_text(times: list[float]) -> str:
    """The median with a distribution-free 95% interval (order statistics n/2 -+ 0.98 sqrt(n))."""
    if not times:
        return "-"
    ordered = sorted(times)
    n = len(ordered)
    lo = max(0, int(math.floor(n / 2 - 0.98 * math.sqrt(n))))
    hi = min(n - 1, int(math.ceil(n / 2 + 0.98 * math.sqrt(n))))
    return f"{statistics.median(ordered):.1f}s [{ordered[lo]:.1f}-{ordered[hi]:.1f}]"


def share(k: int, n: int) -> str:
    if n == 0:
        return "-"
    lo, hi = wilson(k, n)
    return f"{k:>3}/{n} {k / n * 100:5.1f}% [{lo * 100:4.1f}-{hi * 100:5.1f}]"


def print_table(chosen: list[Scenario], results: dict[str, list[Trial]]) -> None:
    """Print one row per scenario: outcomes, caught before 50%, median decision time."""
    header = (
        f"{'scenario':<17} {'should':<9} {'completed':<26} {'rolled back':<26} {'stopped':<26} "
        f"{'caught before 50%':<26} {'median decision':>18}"
    )
    print(header)
    for s in chosen:
        trials = results[s.name]
        n = len(trials)

        def count(outcome: str, trials: list[Trial] = trials) -> int:
            return sum(1 for t in trials if t.outcome == outcome)

        caught = sum(1 for t in trials if t.caught_before_50)
        times = [t.decision_s for t in trials if t.decision_s is not None]
        median = median_text(times)
        errors = count("error")
        print(
            f"{s.name:<17} {s.should:<9} {share(count('complete'), n):<26} {share(count('rolled back'), n):<26} "
            f"{share(count('stopped'), n):<26} {share(caught, n):<26} {median:>18}"
            + (f"  ({errors} errors)" if errors else "")
        )
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per scenario (default 20)")
    parser.add_argument("--jobs", type=int, default=8, help="trials running at once (default 8)")
    parser.add_argument(
        "--rate", type=float, default=80.0, help="mean calls per host per second (default 80)"
    )
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument(
        "--bake", type=float, default=5.0, help="bake of each live stage, seconds (default 5)"
    )
    parser.add_argument("--interval", type=float, default=1.0, help="health.interval, seconds (default 1)")
    parser.add_argument("--scenarios", nargs="*", help="names to run (default all)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--every", type=int, default=0, help="print the table every N trials too")
    parser.add_argument("--keep", action="store_true", help="keep each trial's folder")
    parser.add_argument("--verbose", action="store_true", help="print the reason of every rollback and stop")
    parser.add_argument(
        "--trace", action="store_true", help="print each trial's decision stage and its 25%% gate's looks"
    )
    args = parser.parse_args()
    chosen = [s for s in SCENARIOS if not args.scenarios or s.name in args.scenarios]
    print(
        f"{args.hosts} hosts, {args.rate:g} calls/host/s on average, bakes of {args.bake:g}s, "
        f"interval {args.interval:g}s, {args.trials} trials per scenario, {args.jobs} at once",
        flush=True,
    )
    jobs: list[tuple[Scenario, int]] = [
        (s, args.seed * 100_000 + i) for i in range(args.trials) for s in chosen
    ]
    results: dict[str, list[Trial]] = {s.name: [] for s in chosen}
    started = time.time()
    done = 0
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_trial, s, seed, args): s for s, seed in jobs}
        seed_of = {f: seed for f, (_, seed) in zip(futures, jobs, strict=True)}
        for future, s in futures.items():
            trial = future.result()
            results[s.name].append(trial)
            done += 1
            if args.every and done % args.every == 0 and done < len(jobs):
                print(f"after {done} trials ({time.time() - started:.0f}s):", flush=True)
                print_table(chosen, results)
            if args.verbose and trial.outcome != "complete":
                print(f"  {s.name}: {trial.outcome}: {' | '.join(trial.reasons)[:600]}", flush=True)
            if args.trace:
                where = f"failed at {trial.failed_at}%" if trial.failed_at is not None else "no gate failed"
                print(f"  {s.name} seed {seed_of[future]}: {trial.outcome}, {where}", flush=True)
                for line in trial.canary_looks:
                    print(f"      {line}", flush=True)
    print_table(chosen, results)
    print(f"wall time {time.time() - started:.0f}s; intervals are 95% Wilson")


if __name__ == "__main__":
    main()
