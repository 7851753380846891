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
from click.shell_completion import CompletionItem

from rollout.util.errors import OK, UNEXPECTED, RolloutError

STATE_ENV = "ROLLOUT_STATE_DIR"
STATE_URL_ENV = "ROLLOUT_STATE"

EPILOG = """\b
Exit codes:
  0  done
  1  unexpected error (traceback written to a crash log, its path printed)
  2  bad input (usage, invalid playbook or config); nothing touched
  3  a health gate failed; the automatic rollback restored every touched host
  4  a rollback could not restore some hosts (named; `rollout abort` retries them)
  5  refused (lock held, verb not allowed now, bake not over, gate inconclusive); nothing changed

\b
With --json every verb prints one JSON object on stdout, errors included:
  {"error": {"exit_code": 5, "message": "..."}}

\b
Shell completion (verbs, options, rollout ids), e.g. in ~/.bashrc:
  eval "$(_ROLLOUT_COMPLETE=bash_source rollout)"   (zsh_source, fish_source alike)
"""


def _given_state_dir(ctx: click.Context, local: str | None) -> Path | str | None:
    """Return the state the user named, if any: a folder (a Path) or a postgresql:// URL (a str).
    The verb's option wins over the one before the verb, --state-dir over --state at the same
    place, and either over the environment (ROLLOUT_STATE, then ROLLOUT_STATE_DIR)."""
    meta = ctx.find_root().meta
    named = (
        local
        or meta.get("rollout.state.verb")
        or ctx.find_root().params.get("state_dir")
        or meta.get("rollout.state.root")
        or os.environ.get(STATE_URL_ENV)
        or os.environ.get(STATE_ENV)
    )
    if not named:
        return None
    return named if named.startswith(("postgresql://", "postgres://")) else Path(named)


def _state_dir(ctx: click.Context, local: str | None) -> Path | str:
    where = _given_state_dir(ctx, local) or Path("state")
    ctx.find_root().meta["rollout.state_dir"] = where  # where a crash report goes
    return where


def _note_state_dir(ctx: click.Context, local: str | None) -> None:
    """For verbs that hold no rollout: a crash report goes to the named state folder, if any."""
    folder = _given_state_dir(ctx, local)
    if folder is not None:
        ctx.find_root().meta["rollout.state_dir"] = folder


def _complete_rollout_id(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Complete a rollout id from the rollout folders of the state folder (with their state)."""
    from rollout.edges.backends import open_store

    folder = _given_state_dir(ctx, ctx.params.get("state_dir")) or Path("state")
    try:
        every = open_store(folder).rollouts()
        return [CompletionItem(r.id, help=str(r.state.phase)) for r in every if r.id.startswith(incomplete)]
    except Exception:  # noqa: BLE001 - completion must never print a traceback into the shell
        return []


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
        data = report.data
        if report.exit_code != OK and "error" not in data:
            # A refusal or a rollback still carries its data; `error` says so the same way as elsewhere.
            message = "; ".join(report.lines) or f"exit {report.exit_code}"
            data = {**data, "error": {"exit_code": report.exit_code, "message": message}}
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        for line in report.lines:
            click.echo(line)
    sys.stdout.flush()  # a closed pipe shows here, inside the error handler, not at interpreter exit
    sys.exit(report.exit_code)


def _json_error(exit_code: int, message: str, problems: list[str] | None = None) -> None:
    """Print the contract's error object on stdout."""
    error: dict[str, Any] = {"exit_code": exit_code, "message": message}
    if problems:
        error["problems"] = problems
    click.echo(json.dumps({"error": error}, indent=2))


def _wants_json(args: list[str]) -> bool:
    """Return True when the verb's arguments ask for --json (before a `--`)."""
    for arg in args:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def _end_on_closed_pipe() -> None:
    """The reader went away (`| head -1`): a normal end; stop writing to the dead pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def _set_state(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.find_root().meta["rollout.state.verb" if ctx.parent is not None else "rollout.state.root"] = value


def state_dir_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--state-dir FOLDER and --state FOLDER-or-URL, before the verb or after it."""
    fn = click.option(
        "--state-dir",
        type=click.Path(file_okay=False),
        default=None,
        help=f"Folder holding rollouts (env {STATE_ENV}, default ./state).",
    )(fn)
    return click.option(
        "--state",
        metavar="FOLDER|URL",
        default=None,
        expose_value=False,
        callback=_set_state,
        help=f"Where rollouts are kept: a folder, or postgresql://... to share them (env {STATE_URL_ENV}).",
    )(fn)

json_option = click.option(
    "--json", "as_json", is_flag=True, help='Print one JSON object (errors too: {"error": ...}).'
)
rollout_id = click.argument("rollout_id", required=False, shell_complete=_complete_rollout_id)


def _set_operator(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:
        from rollout.util.who import set_operator

        set_operator(value)


OPERATOR_HELP = "Who acts, recorded on every event (env ROLLOUT_OPERATOR, default login@hostname)."
operator_option = click.option(
    "--operator", metavar="NAME", expose_value=False, callback=_set_operator, help=OPERATOR_HELP
)
force_option = click.option(
    "--force", is_flag=True, help="Act even on a rollout whose journal fails `history --verify`."
)


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    from rollout.util.durations import parse_duration

    if value is None:
        return None
    seconds = parse_duration(value)
    if seconds is None:
        raise click.BadParameter(f"must be a duration like 30s, 5m or 1h, got {value!r}")
    return seconds


class RolloutGroup(click.Group):
    """Maps every error to the contract's exit codes, in one place."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["rollout.json"] = _wants_json(args)
        try:
            return super().parse_args(ctx, args)
        except BrokenPipeError:  # `rollout --help | head -1`
            _end_on_closed_pipe()
            ctx.exit(OK)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return self._invoke(ctx)
        finally:
            notify = sys.modules.get("rollout.edges.notify")  # loaded only if an event was sent
            if notify is not None:
                notify.drain()  # at most a short grace for webhooks still under way

    def _invoke(self, ctx: click.Context) -> Any:
        as_json = bool(ctx.meta.get("rollout.json"))
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _end_on_closed_pipe()
            ctx.exit(OK)
        except (click.exceptions.Exit, click.Abort, SystemExit):
            raise
        # --json changes only stdout: stderr says the same to a human either way.
        except click.ClickException as e:
            if not as_json:
                raise
            e.show()
            _json_error(e.exit_code, e.format_message())
            ctx.exit(e.exit_code)
        except RolloutError as e:
            # A message may quote a playbook value: never a secret on the terminal or in --json.
            from rollout.util.redact import redact_text  # only when there is an error to print

            message = redact_text(str(e))
            problems = [redact_text(str(p)) for p in getattr(e, "problems", [])]
            click.echo(f"error: {message}", err=True)
            for problem in problems:
                if problem != message:  # one problem is its own message
                    click.echo(f"  {problem}", err=True)
            if as_json:
                _json_error(e.exit_code, message, problems)
            ctx.exit(e.exit_code)
        except Exception:
            where = _crash_log(ctx.meta.get("rollout.state_dir"))
            message = f"unexpected failure; traceback written to {where}"
            click.echo(f"error: {message}", err=True)
            if as_json:
                _json_error(UNEXPECTED, message)
            ctx.exit(UNEXPECTED)


@click.group(cls=RolloutGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@state_dir_option
@click.option("--operator", metavar="NAME", default=None, help=OPERATOR_HELP)
@click.version_option(package_name="rollout")
def cli(state_dir: str | None, operator: str | None) -> None:
    """Roll one config file across a fleet: shadow, 25%, 50%, 100%, health-gated."""
    from rollout.util.who import set_operator

    set_operator(operator)  # each invocation starts from its own (a verb's --operator overrides)


@cli.command()
@click.argument("playbook", type=click.Path())
@state_dir_option
@json_option
@click.pass_context
def validate(ctx: click.Context, playbook: str, state_dir: str | None, as_json: bool) -> None:
    """Check the playbook and the candidate config; touches nothing.

    \b
    Example:
      rollout validate playbooks/model-assignment.yml
    """
    from rollout.commands.inspect import validate as run

    _note_state_dir(ctx, state_dir)
    _emit(run(playbook, _given_state_dir(ctx, state_dir)), as_json)


@cli.command()
@click.argument("playbook", type=click.Path())
@state_dir_option
@json_option
@click.pass_context
def plan(ctx: click.Context, playbook: str, state_dir: str | None, as_json: bool) -> None:
    """Show cohorts, checks and per-host diffs; touches nothing.

    \b
    Example:
      rollout plan playbooks/model-assignment.yml | less
    """
    from rollout.commands.inspect import plan as run

    _note_state_dir(ctx, state_dir)
    where = _given_state_dir(ctx, state_dir) or Path("state")  # a pull playbook's hosts report there
    _emit(run(playbook, _progress(as_json), where if isinstance(where, Path) else None), as_json)


allow_overridden_option = click.option(
    "--allow-overridden",
    is_flag=True,
    help="Start even where a higher OpenCode layer sets keys this change changes (warned, not refused).",
)


@cli.command()
@click.argument("playbook", type=click.Path())
@state_dir_option
@json_option
@operator_option
@allow_overridden_option
@click.pass_context
def start(
    ctx: click.Context, playbook: str, state_dir: str | None, as_json: bool, allow_overridden: bool
) -> None:
    """Snapshot every host, stage the shadow copy and run the shadow checks.

    \b
    Example:
      rollout start playbooks/model-assignment.yml
    """
    from rollout.commands.start import start as run

    report = run(playbook, _state_dir(ctx, state_dir), _progress(as_json), allow_overridden=allow_overridden)
    _emit(report, as_json)


@cli.command()
@rollout_id
@state_dir_option
@json_option
@operator_option
@force_option
@click.option(
    "--to",
    "to",
    type=click.IntRange(1, 100),
    default=None,
    metavar="PERCENT",
    help="After the gate passes, go live on this stage's cohort at once (needs --yes to skip stages).",
)
@click.option("--full", is_flag=True, help="The same as --to 100.")
@click.option("--yes", is_flag=True, help="Confirm skipping cohorts with --to / --full.")
@click.pass_context
def advance(
    ctx: click.Context,
    rollout_id: str | None,
    state_dir: str | None,
    as_json: bool,
    force: bool,
    to: int | None,
    full: bool,
    yes: bool,
) -> None:
    """Gate the current stage, then go live on the next cohort.

    \b
    Example:
      rollout advance            # the active rollout; exits 5 while the stage bakes
      rollout advance --to 100 --yes   # gate this stage, then live everywhere
    """
    from rollout.commands.advance import advance as run

    folder = _state_dir(ctx, state_dir)
    target = 100 if full else to
    _emit(run(folder, rollout_id, _progress(as_json), force=force, to=target, yes=yes), as_json)


def _restore_verb(fn: Callable[..., None]) -> Callable[..., None]:
    """The arguments `abort` and `undo` share: which rollout, why, where its state is, --json."""
    for decorate in (
        click.pass_context,
        force_option,
        operator_option,
        json_option,
        state_dir_option,
        click.option("--reason", default="", help="Why, recorded in the journal."),
        rollout_id,
    ):
        fn = decorate(fn)
    return fn


@cli.command()
@_restore_verb
@click.option(
    "--accept-drift",
    "accept_drift",
    multiple=True,
    metavar="HOST",
    help="Leave this drifted host as it is, by decision, so the rollout can end (repeatable).",
)
def abort(
    ctx: click.Context,
    rollout_id: str | None,
    reason: str,
    state_dir: str | None,
    as_json: bool,
    force: bool,
    accept_drift: tuple[str, ...],
) -> None:
    """Restore every touched host to its baseline bytes, now.

    \b
    Example:
      rollout abort --reason "latency up on the canary"
    """
    from rollout.commands.abort import abort as run

    folder = _state_dir(ctx, state_dir)
    report = run(folder, rollout_id, reason, _progress(as_json), accept_drift=accept_drift, force=force)
    _emit(report, as_json)


@cli.command()
@_restore_verb
def undo(
    ctx: click.Context,
    rollout_id: str | None,
    reason: str,
    state_dir: str | None,
    as_json: bool,
    force: bool,
) -> None:
    """Take a complete rollout back to the baseline on every host.

    \b
    Example:
      rollout undo --reason "cost doubled overnight"
    """
    from rollout.commands.abort import undo as run

    _emit(run(_state_dir(ctx, state_dir), rollout_id, reason, _progress(as_json), force=force), as_json)


@cli.command()
@rollout_id
@state_dir_option
@json_option
@operator_option
@force_option
@click.pass_context
def retry(
    ctx: click.Context, rollout_id: str | None, state_dir: str | None, as_json: bool, force: bool
) -> None:
    """Start a new rollout from a rolled-back or aborted one's frozen playbook and candidate.

    \b
    Example:
      rollout retry              # the latest rollout, if it was rolled back or aborted
    """
    from rollout.commands.retry import retry as run

    _emit(run(_state_dir(ctx, state_dir), rollout_id, _progress(as_json), force=force), as_json)


@cli.command()
@rollout_id
@click.option("--timeout", callback=_duration, metavar="D", help="Give up (exit 5) after D, e.g. 2h.")
@click.option(
    "--interval", callback=_duration, default="1s", show_default=True, metavar="D", help="How often to look."
)
@state_dir_option
@json_option
@click.pass_context
def wait(
    ctx: click.Context,
    rollout_id: str | None,
    timeout: float | None,
    interval: float,
    state_dir: str | None,
    as_json: bool,
) -> None:
    """Block until the rollout is finished or waits for a human (for CI).

    Exit 0 complete; 3 rolled back, aborted or reverted; 4 rollback failed; 5 still going at the
    timeout, or waiting for a human (paused; or, with no `run --auto` driving it, a gate that is
    inconclusive or could not measure, a bake that is over, an interrupted start or undo).

    \b
    Example:
      rollout wait --timeout 6h && echo "rolled out everywhere"
    """
    from rollout.commands.wait import wait as run

    _emit(run(_state_dir(ctx, state_dir), rollout_id, timeout, interval), as_json)


@cli.command()
@rollout_id
@click.option("--reason", default="", help="Why, recorded in the journal and kept in `reasons`.")
@state_dir_option
@json_option
@operator_option
@force_option
@click.pass_context
def pause(
    ctx: click.Context, rollout_id: str | None, reason: str, state_dir: str | None, as_json: bool, force: bool
) -> None:
    """Stop promoting: gates still measure and still roll back on a failure.

    \b
    Example:
      rollout pause --reason "holiday freeze until Monday"
    """
    from rollout.commands.pause import pause as run

    _emit(run(_state_dir(ctx, state_dir), rollout_id, reason, force=force), as_json)


@cli.command()
@rollout_id
@state_dir_option
@json_option
@operator_option
@force_option
@click.pass_context
def resume(
    ctx: click.Context, rollout_id: str | None, state_dir: str | None, as_json: bool, force: bool
) -> None:
    """Let a paused rollout promote again.

    \b
    Example:
      rollout resume             # run --auto promotes at its next look
    """
    from rollout.commands.pause import resume as run

    _emit(run(_state_dir(ctx, state_dir), rollout_id, force=force), as_json)


@cli.command()
@rollout_id
@state_dir_option
@json_option
@operator_option
@click.pass_context
@click.option("--watch", is_flag=True, help="Redraw until finished or waiting for a human (exit as `wait`).")
@click.option(
    "--interval", callback=_duration, default="2s", show_default=True, metavar="D", help="Redraw this often."
)
@click.option(
    "--hosts",
    "all_hosts",
    is_flag=True,
    help="List every host (past 40 hosts, text status shows counts per state and the hosts that need a person).",
)
def status(
    ctx: click.Context,
    rollout_id: str | None,
    state_dir: str | None,
    as_json: bool,
    watch: bool,
    interval: float,
    all_hosts: bool,
) -> None:
    """Where the rollout stands, per host.

    \b
    Example:
      rollout status --json | jq '.hosts | map_values(.state)'
      rollout status --watch     # redraws in place; exits 0, 3, 4 or 5 like `rollout wait`
    """
    from rollout.commands.show import status as run

    if watch:
        _watch(_state_dir(ctx, state_dir), rollout_id, interval, as_json, all_hosts)
    report = run(_state_dir(ctx, state_dir), rollout_id)
    if not as_json:
        from rollout.util.render import status_text

        report.lines = [status_text(report.data, all_hosts)]
    _emit(report, as_json)


@cli.command()
@rollout_id
@state_dir_option
@json_option
@click.pass_context
def diff(ctx: click.Context, rollout_id: str | None, state_dir: str | None, as_json: bool) -> None:
    """Baseline vs candidate per host (secrets redacted).

    \b
    Example:
      rollout diff model-assignment-20261125-100000
    """
    from rollout.commands.show import diff as run

    _emit(run(_state_dir(ctx, state_dir), rollout_id), as_json)


@cli.command()
@rollout_id
@click.option("--list", "list_all", is_flag=True, help="List every rollout instead.")
@click.option(
    "--verify",
    is_flag=True,
    help="Check the journal's hash chain: exit 0 whole, 2 naming the first line touched.",
)
@state_dir_option
@json_option
@click.pass_context
def history(
    ctx: click.Context,
    rollout_id: str | None,
    list_all: bool,
    verify: bool,
    state_dir: str | None,
    as_json: bool,
) -> None:
    """The rollout's event journal.

    \b
    Example:
      rollout history --list     # every rollout id and its state
      rollout history --verify   # exit 2 naming the first line edited, removed or inserted
    """
    from rollout.commands.show import history as run
    from rollout.commands.show import rollouts

    folder = _state_dir(ctx, state_dir)
    if verify:
        from rollout.commands.verify import verify as check

        _emit(check(folder, rollout_id), as_json)
        return
    _emit(rollouts(folder) if list_all else run(folder, rollout_id), as_json)


@cli.command("run")
@click.argument("playbook", type=click.Path(), required=False)
@click.option("--auto", is_flag=True, required=True, help="Drive every stage unattended.")
@state_dir_option
@json_option
@operator_option
@force_option
@allow_overridden_option
@click.pass_context
def run_cmd(
    ctx: click.Context,
    playbook: str | None,
    auto: bool,
    state_dir: str | None,
    as_json: bool,
    force: bool,
    allow_overridden: bool,
) -> None:
    """Start (given a playbook) and drive the rollout through every stage.

    \b
    Example:
      rollout run playbooks/model-assignment.yml --auto
    """
    from rollout.commands.auto import run_auto

    if not auto:
        raise click.UsageError("run needs --auto (drive every stage unattended)")
    say = None if as_json else click.echo
    from rollout.edges.driver import driving

    with driving():
        report = run_auto(
            _state_dir(ctx, state_dir),
            playbook,
            _progress(as_json),
            say,
            force=force,
            allow_overridden=allow_overridden,
        )
    if not as_json:
        report.lines = []
    _emit(report, as_json)


@cli.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False),
    default="rollout-demo",
    show_default=True,
    help="Folder to create the demo playbooks and fleet in.",
)
@click.option(
    "--playbook",
    type=click.Path(dir_okay=False),
    default=None,
    help="Run this demo playbook where it is instead (its fleet beside it).",
)
@click.option("--bad", is_flag=True, help="Roll out a bad assignment and watch it roll back.")
@state_dir_option
@json_option
@click.pass_context
def demo(
    ctx: click.Context,
    folder: str,
    playbook: str | None,
    bad: bool,
    state_dir: str | None,
    as_json: bool,
) -> None:
    """Create the demo fleet and roll the demo playbook through every stage.

    \b
    Example:
      rollout demo --bad --dir /tmp/demo   # a bad model, rolled back at 25%
    """
    from rollout.commands.demo import demo as run
    from rollout.edges.driver import driving

    say = (lambda line: None) if as_json else click.echo
    with driving():  # run --auto inside lets go of the rollouts it drove when the demo ends
        report = run(Path(folder), Path(playbook) if playbook else None, _state_dir(ctx, state_dir), bad, say)
    _emit(report, as_json)


@cli.command()
@click.argument("what", type=click.Choice(["playbook"]))
def schema(what: str) -> None:
    """Print the JSON Schema of a playbook (Draft 2020-12), for editors and other tools.

    \b
    Example:
      rollout schema playbook > playbook.schema.json
      # then, as the first line of a playbook (yaml-language-server, e.g. VS Code's YAML extension):
      # yaml-language-server: $schema=./playbook.schema.json
    """
    from rollout.core.playbook_schema import schema_text

    click.echo(schema_text(), nl=False)


@cli.command()
@click.option(
    "--listen",
    default="127.0.0.1:8470",
    show_default=True,
    metavar="HOST:PORT",
    help="Where to serve (port 0: any free port). Not a loopback address: needs --token-file.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="A file holding a token every request must carry (Authorization: Bearer, or ?token= once).",
)
@state_dir_option
@json_option
@click.pass_context
def serve(
    ctx: click.Context, listen: str, token_file: str | None, state_dir: str | None, as_json: bool
) -> None:
    """Serve a live, read-only dashboard of the state folder.

    \b
    The page at / shows every rollout, its stage, hosts by state, each gate's checks
    with their numbers, and a plot of each metric (canary, baseline, bound) over time.
    /api/rollouts lists them; /api/rollouts/ID is `status --json`; /metrics is for
    Prometheus. It never takes the lock and never changes anything.

    \b
    Example:
      rollout serve                                   # http://127.0.0.1:8470/
      openssl rand -hex 32 > ~/.rollout-token && chmod 600 ~/.rollout-token
      rollout serve --listen 0.0.0.0:8470 --token-file ~/.rollout-token
      curl -H "Authorization: Bearer $(cat ~/.rollout-token)" http://HOST:8470/metrics
    """
    from rollout.commands.serve import serve as run

    def listening(url: str, warning: str | None) -> None:
        if warning:
            click.echo(warning, err=True)
        if as_json:
            click.echo(json.dumps({"url": url, "state_dir": str(folder)}))
        else:
            click.echo(f"serving {folder} at {url} (read-only; Ctrl-C stops)")
        sys.stdout.flush()

    folder = _state_dir(ctx, state_dir)
    report = run(folder, listen, token_file, listening)
    if as_json:  # the one JSON object was printed when it began listening
        sys.exit(report.exit_code)
    _emit(report, as_json)


def _watch(
    folder: Path | str, rollout_id: str | None, interval: float, as_json: bool, all_hosts: bool = False
) -> None:
    """Redraw the status in place on a terminal (elsewhere: again whenever it changes), then exit."""
    from rollout.commands.watch import watch
    from rollout.util.render import status_text

    tty, shown = sys.stdout.isatty(), [""]

    def draw(data: dict[str, Any]) -> None:
        if as_json:
            return
        text = status_text(data, all_hosts)
        if tty:
            click.clear()
            click.echo(text)
        elif _without_clock(text) != _without_clock(shown[0]):
            click.echo(text + "\n")
        shown[0] = text

    _emit(watch(folder, rollout_id, interval, draw), as_json)


def _without_clock(text: str) -> str:
    """Return the status text without its lines that change every second (for a log, not a screen)."""
    return "\n".join(line for line in text.splitlines() if not line.startswith(("in stage for ", "bake: ")))


def main() -> None:
    """Run the CLI (click maps usage errors to exit 2; RolloutGroup maps the rest)."""
    try:
        cli.main(prog_name="rollout")
    except BrokenPipeError:  # written outside a verb (help, usage): the reader went away
        _end_on_closed_pipe()
        sys.exit(OK)


def _crash_log(state_dir: Path | str | None) -> Path:
    """Write the traceback (redacted) to the active rollout's crash.log, else to the state folder.

    With no state folder involved (`validate`, `plan` without --state-dir) it goes to a new file
    in the temp folder rather than a ./state the user never asked for; the caller prints the path.
    """
    import tempfile

    from rollout.edges.backends import is_url, open_store

    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    from rollout.util.redact import redact_text

    text = redact_text(f"{stamp} rollout {' '.join(sys.argv[1:])}\n{traceback.format_exc()}\n")
    try:
        if state_dir is None:
            fd, name = tempfile.mkstemp(prefix="rollout-crash-", suffix=".log")
            os.close(fd)
            path = Path(name)
        else:
            store = open_store(state_dir)
            active = store.active() if is_url(state_dir) or store.root.is_dir() else None
            if active is not None:
                path = active.crash_log()
            else:
                store.root.mkdir(parents=True, exist_ok=True)
                path = store.root / "crash.log"
        with path.open("a") as f:
            f.write(text)
    except Exception:  # noqa: BLE001 - the crash report must not crash
        click.echo(text, err=True)
        return Path("<stderr>")
    return path.resolve()


# -- pull fleets (issue 15) ---------------------------------------------------------------------
@cli.group()
def hosts() -> None:
    """The hosts of pull fleets and their tokens (`targets.transport: pull`).

    \b
    Example:
      rollout hosts add dev-laptop-07 > dev-laptop-07.token
      rollout hosts list
      rollout hosts revoke dev-laptop-07
    """


@hosts.command("add")
@click.argument("name")
@state_dir_option
@json_option
@click.pass_context
def hosts_add(ctx: click.Context, name: str, state_dir: str | None, as_json: bool) -> None:
    """Add a pull host and print its new token on stdout, once (only its hash is kept).

    \b
    Example:
      (umask 077; rollout hosts add dev-laptop-07 > dev-laptop-07.token)   # give it to that laptop's agent
      (the agent refuses a token file other users can read: keep it 0600)
    """
    from rollout.commands.pullhosts import add

    _emit(add(_state_dir(ctx, state_dir), name), as_json)


@hosts.command("list")
@state_dir_option
@json_option
@click.pass_context
def hosts_list(ctx: click.Context, state_dir: str | None, as_json: bool) -> None:
    """List pull hosts: when added, when last seen (never their tokens)."""
    from rollout.commands.pullhosts import list_hosts

    _emit(list_hosts(_state_dir(ctx, state_dir)), as_json)


@hosts.command("revoke")
@click.argument("name")
@state_dir_option
@json_option
@click.pass_context
def hosts_revoke(ctx: click.Context, name: str, state_dir: str | None, as_json: bool) -> None:
    """Revoke a pull host's token: its agent is refused (401) from now on."""
    from rollout.commands.pullhosts import revoke

    _emit(revoke(_state_dir(ctx, state_dir), name), as_json)


@cli.command()
@click.option("--server", metavar="URL", help="The `rollout serve` URL, e.g. https://rollout.example:8470.")
@click.option(
    "--host", "host_name", metavar="NAME", help="This host's name (as `rollout hosts add` made it)."
)
@click.option("--token-file", type=click.Path(dir_okay=False), help="The file holding this host's token.")
@click.option(
    "--interval", callback=_duration, metavar="D", help="Poll every D (default: the server's, 60s)."
)
@click.option(
    "--once",
    is_flag=True,
    help="Poll, apply and report once; exit 0, 1 (server, report), 3 (switch failed, put back), 4 (not put back), 5 (drift).",
)
@click.option(
    "--config", "config_file", type=click.Path(dir_okay=False), help="A YAML file with these settings."
)
@click.option("--usage-log", type=click.Path(dir_okay=False), help="A usage log (JSON lines) to forward.")
@click.option(
    "--opencode-db",
    metavar="PATH",
    help="OpenCode's SQLite store on this laptop (read-only): its finished calls are forwarded as usage.",
)
@click.option("--state-file", type=click.Path(dir_okay=False), help="Where the agent keeps its own state.")
@json_option
def agent(
    server: str | None,
    host_name: str | None,
    token_file: str | None,
    interval: float | None,
    once: bool,
    config_file: str | None,
    usage_log: str | None,
    opencode_db: str | None,
    state_file: str | None,
    as_json: bool,
) -> None:
    """Keep this laptop's config in step with a pull rollout (run it as a user service).

    \b
    Fail static: when the server cannot be reached or answers garbage, nothing is written and
    the last applied file stays. A file is replaced only over the bytes the server expects;
    anything else is drift, reported and left alone.
    \b
    Example:
      rollout agent --server https://rollout.example:8470 --host dev-07 --token-file ~/.rollout-agent.token
    """
    from rollout.commands.agent import agent as run
    from rollout.commands.agent import make_config

    cfg = make_config(server, host_name, token_file, interval, state_file, usage_log, config_file, opencode_db)

    def say(line: str, bad: bool) -> None:
        click.echo(line, err=bad or as_json)

    _emit(run(cfg, once, say), as_json)
