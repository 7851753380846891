"""`rollout demo`: copy the shipped demo into a folder, (re)create its fleet, run it end to end."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from rollout.commands.abort import abort
from rollout.commands.auto import run_auto
from rollout.commands.common import Report
from rollout.commands.show import status
from rollout.core.machine import Phase
from rollout.edges.backends import StateAt, open_store
from rollout.edges.demo import copy_demo, prepare_fleet
from rollout.edges.demo_traffic import for_demo
from rollout.util.errors import BadInput


def demo(
    folder: Path, playbook_path: Path | None, state_dir: StateAt, bad: bool, say: Callable[[str], None]
) -> Report:
    """Reset the demo fleet, roll the demo candidate through every stage, show the final status.

    Given `playbook_path`, the demo runs where that playbook is; otherwise the shipped demo is
    copied into `folder` first, so it runs from any folder, also from an installed wheel.
    """
    from rollout.util.render import status_text

    if playbook_path is None:
        playbook_path = copy_demo(folder)
        say(f"demo playbooks copied to {playbook_path.parent.resolve()}")
    if bad:
        playbook_path = playbook_path.with_name(f"{playbook_path.stem}-bad{playbook_path.suffix}")
    if not playbook_path.is_file():
        raise BadInput(f"{playbook_path}: demo playbook not found")
    active = open_store(state_dir).active()
    if active is not None and active.state.name == "demo-model-assignment":
        say(f"aborting the unfinished demo rollout {active.id} first")
        abort(state_dir, active.id, "a new demo started")
    pb = prepare_fleet(playbook_path)
    say(f"demo fleet ready: {len(pb.hosts)} hosts under {pb.base_dir / 'demo' / 'fleet'}")
    traffic = for_demo(pb)
    if traffic is not None:
        traffic.reset()
        traffic.history(10.0)  # calls from before the rollout: each canary host's own "before"
        say(f"simulating agent traffic on every host into {traffic.path}, from the models live there")

    def sleep(seconds: float) -> None:  # agents keep calling their models while a stage bakes
        time.sleep(seconds)
        if traffic is not None:
            traffic.tick()

    result = run_auto(state_dir, playbook_path, None, say, sleep=sleep)
    final = status(state_dir, result.data.get("id")).data
    say("")
    say(status_text(final))
    if (
        result.data.get("id")
        and open_store(state_dir).pick(result.data["id"], "demo").state.phase == Phase.COMPLETE
    ):
        say("\nnext: `rollout diff`, `rollout history`, `rollout undo` (all take --state-dir)")
    return Report(exit_code=result.exit_code, data=final)
