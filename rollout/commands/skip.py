"""`rollout advance --to PERCENT --yes`: skip the cohorts between the current stage and PERCENT."""

from __future__ import annotations

from rollout.edges.engine import Run
from rollout.util.errors import BadInput


def target_index(run: Run, to: int | None, yes: bool) -> int | None:
    """Return the stage index `--to` names (None: the next stage, as usual); refuse a stage that is
    not ahead, and skipping any cohort without an explicit --yes (exit 2, nothing touched)."""
    if to is None:
        return None
    stages = run.playbook.stages
    index = run.rollout.state.stage_index
    found = [i for i, s in enumerate(stages) if s.percent == to and not s.is_shadow]
    if not found:
        known = ", ".join(str(s.percent) for s in stages if not s.is_shadow)
        raise BadInput(f"advance --to {to}: no stage at {to}% (stages: {known})")
    target = found[0]
    if target <= index:
        raise BadInput(f"advance --to {to}: the rollout is already at {stages[index].name}")
    skipped = [s.name for s in stages[index + 1 : target]]
    if skipped and not yes:
        raise BadInput(
            f"advance --to {to} goes live on {to}% of the hosts at once, skipping {', '.join(skipped)}: "
            "add --yes to confirm; nothing changed"
        )
    return target


def skipped_names(run: Run, index: int, target: int) -> list[str]:
    """Return the names of the stages between `index` and `target`."""
    return [s.name for s in run.playbook.stages[index + 1 : target]]
