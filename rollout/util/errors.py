"""The one exception root and the exit codes of the contract."""

from __future__ import annotations

OK = 0
UNEXPECTED = 1
BAD_INPUT = 2
ROLLED_BACK = 3
ROLLBACK_INCOMPLETE = 4
REFUSED = 5


class RolloutError(Exception):
    """Base of every error the CLI turns into an exit code."""

    exit_code = UNEXPECTED


class BadInput(RolloutError):
    """Usage, playbook or config is invalid; nothing was touched."""

    exit_code = BAD_INPUT

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class Refused(RolloutError):
    """The verb is not allowed now (lock held, wrong state, bake not over); nothing changed."""

    exit_code = REFUSED


class TransportError(RolloutError):
    """A host could not be reached or an operation on it failed."""


class StateWriteError(RolloutError):
    """The state folder could not be written (full, read-only); says what was and was not done."""

    exit_code = UNEXPECTED
