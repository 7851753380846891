"""The command line: parse, call a command function, print its report, exit with its code."""

from __future__ import annotations

import json
import os
import sys
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from rollout.errors import UNEXPECTED, RolloutError
from rollout.redact import redact_text

STATE_ENV = "ROLLOUT_STATE_DIR"


def _state_dir(ctx: click.Context, local: str | None) -> Path:
    root = ctx.find_root()
    folder = Path(local or root.params.get("state_dir") or os.environ.get(STATE_ENV) or "state")
    root.meta["rollout.state_dir"] = folder  # where a crash report goes
    return folder


def _progress(quiet: bool) -> Callable[[str, str, Any], None] | None:
    if quiet:
        return None
    # On a terminal every host is shown as it finishes; otherwise only the hosts that failed.
    every_host = sys.stderr.isatty()
    lock = threading.Lock()

    def show(label: str, host: str, result: Any) -> None:
        with lock:
            if not result.ok:
                click.echo(f"  {label}: {host}: {result.error}", err=True)
            elif every_host:
                click.echo(f"  {label or 'hosts'}: {host} ok", err=True)

    return show


def _emit(report: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.data, indent=2, default=str))
    else:
        for line in report.lines:
            click.echo(line)
    sys.exit(report.exit_code)


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    default=None,
    help=f"Folder holding rollouts (env {STATE_ENV}, default ./state).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
rollout_id = click.argument("rollout_id", required=False)


class RolloutGroup(click.Group):
    """Maps every error to the contract's exit codes, in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except RolloutError as e:
            click.echo(redact_text(f"error: {e}"), err=True)
            for problem in getattr(e, "problems", []):
                click.echo(redact_text(f"  {problem}"), err=True)
            ctx.exit(e.exit_code)
        except Exception:
            where = _crash_log(ctx.meta.get("rollout.state_dir"))
            click.echo(f"error: unexpected failure; traceback written to {where}", err=True)
            ctx.exit(UNEXPECTED)


@click.group(cls=RolloutGroup, context_settings={"help_option_names": ["-h", "--help"]})
@state_dir_option
@click.version_option(package_name="rollout")
def cli(state_dir: str | None) -> None:
    """Roll one config file across a fleet: shadow, 25%, 50%, 100%, health-gated."""


@cli.command()
@click.argument("playbook", type=click.Path())
@json_option
def validate(playbook: str, as_json: bool) -> None:
    """Check the playbook and the candidate config; touches nothing."""
    from rollout.commands.inspect import validate as run

    _emit(run(playbook), as_json)


@cli.command()
@click.argument("playbook", type=click.Path())
@json_option
def plan(playbook: str, as_json: bool) -> None:
    """Show cohorts, checks and per-host diffs; touches nothing."""
    from rollout.commands.inspect import plan as run

    _emit(run(playbook, _progress(as_json)), as_json)


@cli.command()
@click.argument("playbook", type=click.Path())
@state_dir_option
@json_option
@click.pass_context
def start(ctx: click.Context, playbook: str, state_dir: str | None, as_json: bool) -> None:
    """Snapshot every host, stage the shadow copy and run the shadow checks."""
    from rollout.commands.start import start as run

    _emit(run(playbook, _state_dir(ctx, state_dir), _progress(as_json)), as_json)


@cli.command()
@rollout_id
@state_dir_option
@json_option
@click.pass_context
def advance(ctx: click.Context, rollout_id: str | None, state_dir: str | None, as_json: bool) -> None:
    """Gate the current stage, then go live on the next cohort."""
    from rollout.commands.advance import advance as run

    _emit(run(_state_dir(ctx, state_dir), rollout_id, _progress(as_json)), as_json)


def _restore_verb(fn: Callable[..., None]) -> Callable[..., None]:
    """The arguments `abort` and `undo` share: which rollout, why, where its state is, --json."""
    for decorate in (
        click.pass_context,
        json_option,
        state_dir_option,
        click.option("--reason", default="", help="Why, recorded in the journal."),
        rollout_id,
    ):
        fn = decorate(fn)
    return fn


@cli.command()
@_restore_verb
def abort(
    ctx: click.Context, rollout_id: str | None, reason: str, state_dir: str | None, as_json: bool
) -> None:
    """Restore every touched host to its baseline bytes, now."""
    from rollout.commands.abort import abort as run

    _emit(run(_state_dir(ctx, state_dir), rollout_id, reason, _progress(as_json)), as_json)


@cli.command()
@_restore_verb
def undo(
    ctx: click.Context, rollout_id: str | None, reason: str, state_dir: str | None, as_json: bool
) -> None:
    """Take a complete rollout back to the baseline on every host."""
    from rollout.commands.abort import undo as run

    _emit(run(_state_dir(ctx, state_dir), rollout_id, reason, _progress(as_json)), as_json)


@cli.command()
@rollout_id
@state_dir_option
@json_option
@click.pass_context
def status(ctx: click.Context, rollout_id: str | None, state_dir: str | None, as_json: bool) -> None:
    """Where the rollout stands, per host."""
    from rollout.commands.show import status as run

    report = run(_state_dir(ctx, state_dir), rollout_id)
    if not as_json:
        from rollout.render import status_text

        report.lines = [status_text(report.data)]
    _emit(report, as_json)


@cli.command()
@rollout_id
@state_dir_option
@json_option
@click.pass_context
def diff(ctx: click.Context, rollout_id: str | None, state_dir: str | None, as_json: bool) -> None:
    """Baseline vs candidate per host (secrets redacted)."""
    from rollout.commands.show import diff as run

    _emit(run(_state_dir(ctx, state_dir), rollout_id), as_json)


@cli.command()
@rollout_id
@click.option("--list", "list_all", is_flag=True, help="List every rollout instead.")
@state_dir_option
@json_option
@click.pass_context
def history(
    ctx: click.Context, rollout_id: str | None, list_all: bool, state_dir: str | None, as_json: bool
) -> None:
    """The rollout's event journal."""
    from rollout.commands.show import history as run
    from rollout.commands.show import rollouts

    folder = _state_dir(ctx, state_dir)
    _emit(rollouts(folder) if list_all else run(folder, rollout_id), as_json)


@cli.command("run")
@click.argument("playbook", type=click.Path(), required=False)
@click.option("--auto", is_flag=True, required=True, help="Drive every stage unattended.")
@state_dir_option
@json_option
@click.pass_context
def run_cmd(
    ctx: click.Context, playbook: str | None, auto: bool, state_dir: str | None, as_json: bool
) -> None:
    """Start (given a playbook) and drive the rollout through every stage."""
    from rollout.commands.auto import run_auto

    if not auto:
        raise click.UsageError("run needs --auto (drive every stage unattended)")
    say = None if as_json else click.echo
    report = run_auto(_state_dir(ctx, state_dir), playbook, _progress(as_json), say)
    if not as_json:
        report.lines = []
    _emit(report, as_json)


@cli.command()
@click.option("--playbook", default="playbooks/demo.yml", show_default=True, type=click.Path())
@click.option("--bad", is_flag=True, help="Roll out a bad assignment and watch it roll back.")
@state_dir_option
@click.pass_context
def demo(ctx: click.Context, playbook: str, bad: bool, state_dir: str | None) -> None:
    """Create the demo fleet and roll the demo playbook through every stage."""
    from rollout.commands.demo import demo as run

    report = run(Path(playbook), _state_dir(ctx, state_dir), bad, click.echo)
    _emit(report, False)


def main() -> None:
    """Run the CLI (click maps usage errors to exit 2; RolloutGroup maps the rest)."""
    cli.main(prog_name="rollout")


def _crash_log(state_dir: Path | None) -> Path:
    """Write the traceback (redacted) to the active rollout's crash.log, else to the state folder."""
    from rollout.store import Store

    root = state_dir or Path(os.environ.get(STATE_ENV) or "state")
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    text = redact_text(f"{stamp} rollout {' '.join(sys.argv[1:])}\n{traceback.format_exc()}\n")
    try:
        active = Store(root).active() if root.is_dir() else None
        if active is not None:
            path = active.crash_log()
        else:
            root.mkdir(parents=True, exist_ok=True)
            path = root / "crash.log"
        with path.open("a") as f:
            f.write(text)
    except Exception:  # noqa: BLE001 - the crash report must not crash
        click.echo(text, err=True)
        return Path("<stderr>")
    return path.resolve()
