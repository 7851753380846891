"""What every verb returns (kept apart from `common`, so `status` loads no engine or fleet)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollout.util.errors import OK

if TYPE_CHECKING:
    from rollout.core.playbook import Playbook
    from rollout.edges.store import Rollout


@dataclass
class Report:
    """A verb's outcome: exit code, lines for humans, data for --json."""

    exit_code: int = OK
    lines: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def say(self, line: str) -> None:
        self.lines.append(line)


def frozen_playbook(rollout: Rollout) -> Playbook:
    """Return the playbook as it was frozen at start (paths resolved from its original folder)."""
    from rollout.core import playbook
    from rollout.util import yamlload

    data = yamlload.safe_load(rollout.playbook_copy.read_text())
    return playbook.from_dict(data, Path(rollout.state.playbook_file), require_source=False)
