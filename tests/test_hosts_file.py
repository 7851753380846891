"""Host lists reach checks as ROLLOUT_HOSTS_FILE (always) and ROLLOUT_HOSTS (short lists only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rollout import checks
from rollout.checks.base import HOSTS_ENV_MAX_COUNT, GateContext, hosts_fit_in_env
from rollout.core import playbook
from rollout.hosts.fleet import Fleet
from rollout.hosts.transports.local import LocalTransport

# What the check saw: the number of hosts in the file, whether ROLLOUT_HOSTS was set, the file's path.
PROBE = (
    'python3 -c "import json,os; f=os.environ[\'ROLLOUT_HOSTS_FILE\']; '
    "hosts=open(f).read().splitlines(); "
    "json.dump({'n': len(hosts), 'first': hosts[0], 'last': hosts[-1], 'unique': len(set(hosts)), "
    "'env': os.environ.get('ROLLOUT_HOSTS'), 'file': f}, open('seen.json', 'w'))\""
)


def gate_context(tmp_path: Path, hosts: list[str], on: str) -> tuple[GateContext, Any]:
    (tmp_path / "candidate.json").write_text("{}\n")
    check = {"name": "probe", "run": PROBE, "timeout": "60s", **({"on": on} if on == "local" else {})}
    pb = playbook.from_dict(
        {
            "name": "many-hosts",
            "config": {"source": "candidate.json", "path": "fleet/{host}/app.json"},
            "targets": {"transport": "local", "hosts": hosts},
            "health": {"checks": [check]},
        },
        tmp_path / "playbook.yml",
    )
    (tmp_path / "state").mkdir()
    ctx = GateContext(
        playbook=pb,
        stage=pb.stages[0],
        canary=tuple(hosts),
        baseline_hosts=(),
        config_paths={h: str(tmp_path / "fleet" / h / "app.json") for h in hosts},
        switched_at={},
        fleet=Fleet(LocalTransport(tmp_path)),
        state_dir=tmp_path / "state",
    )
    return ctx, pb.health.checks[0]


def test_an_on_local_check_at_100000_hosts_starts_and_reads_every_host_from_the_file(tmp_path: Path) -> None:
    hosts = [f"host-{i:06d}.fleet.la" for i in range(100_000)]  # 20 characters each
    assert {len(h) for h in hosts} == {20}
    ctx, check = gate_context(tmp_path, hosts, "local")
    [m] = checks.get(check.kind).evaluate(check, ctx)
    assert m.outcome == "pass", m.why
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["n"] == seen["unique"] == 100_000
    assert (seen["first"], seen["last"]) == (hosts[0], hosts[-1])
    assert seen["env"] is None  # far over the limit for one variable: only the file carries it
    assert seen["file"].startswith(str((tmp_path / "state").resolve()))
    assert not Path(seen["file"]).exists()  # removed once the check is done
    assert not list((tmp_path / "state").iterdir())


def test_a_small_fleet_gets_both_forms(tmp_path: Path) -> None:
    hosts = ["dev-01", "dev-02", "dev-03"]
    ctx, check = gate_context(tmp_path, hosts, "hosts")
    ms = checks.get(check.kind).evaluate(check, ctx)
    assert [m.outcome for m in ms] == ["pass"] * 3
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["n"] == 3 and seen["env"] == "dev-01 dev-02 dev-03"


def test_the_threshold_is_the_documented_one() -> None:
    assert hosts_fit_in_env(["h"] * HOSTS_ENV_MAX_COUNT)
    assert not hosts_fit_in_env(["h"] * (HOSTS_ENV_MAX_COUNT + 1))
    assert not hosts_fit_in_env(["x" * 100] * 400)  # 40 KiB, over 32 KiB
