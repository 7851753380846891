"""Webhooks (`notify:` in the playbook): tell people what a rollout did, never in its way.

Every journal event that matters to a person (started, stage-live, a gate's decision, the end) is
posted to the webhooks that ask for it, from one background thread per webhook with a bounded queue;
a webhook that fails is retried with backoff (tenacity) for `retry_for`, then recorded in the journal
as `notify-undelivered`. The rollout never waits for a webhook, except for at most `EXIT_GRACE`
seconds when the process ends, so that what was sent last (complete, rolled-back) goes out.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import os
import queue
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import urllib.request

from rollout.core.state import HostState, RolloutState
from rollout.core.webhooks import EVENTS, Webhook, parse
from rollout.edges import journal
from rollout.util import who, yamlload
from rollout.util.errors import BadInput
from rollout.util.redact import MASK, redact_text

EXIT_GRACE = 2.0  # seconds a finishing process waits for deliveries still under way
QUEUE_SIZE = 100  # events waiting per webhook; past that they are recorded as undelivered
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Journal event -> notification event (a gate's decision is mapped by `_event_for`).
_SAME = set(EVENTS) - {"stage-live", "gate-passed", "gate-failed", "inconclusive"}
_GATE = {"pass": "gate-passed", "fail": "gate-failed", "inconclusive": "inconclusive"}


# -- what is sent ---------------------------------------------------------------------------
def _event_for(folder: Path, record: dict[str, Any]) -> str | None:
    """Return the notification a journal record makes, if any. A gate measured again and again
    while a stage bakes notifies when its decision changes, not at every look."""
    name = record.get("event")
    if name in _SAME:
        return str(name)
    if name == "stage-entered":
        return "stage-live"
    if name == "gate" and record.get("decision") in _GATE:
        seen = (record.get("stage"), record.get("decision"))
        if _last_gate.get(folder) == seen:
            return None
        _last_gate[folder] = seen
        return _GATE[str(record["decision"])]
    return None


def payload(event: str, state: RolloutState, record: dict[str, Any]) -> dict[str, Any]:
    """Return the event object a `json` webhook receives."""
    hosts = state.hosts
    concerned = record.get("cohort") or record.get("hosts") or record.get("restored")
    if not isinstance(concerned, list):
        concerned = sorted(state.hosts_in(HostState.CANDIDATE))
    live = len(state.hosts_in(HostState.CANDIDATE))
    reason = record.get("why") or record.get("reason") or _default_reason(event, record, live, len(hosts))
    return {
        "event": event,
        "rollout": state.id,
        "name": state.name,
        "stage": record.get("stage") or state.stage,
        "percent": record.get("percent", state.percent),
        "hosts": concerned,
        "hosts_live": live,
        "hosts_total": len(hosts),
        "reason": redact_text(str(reason)),
        "operator": record.get("operator"),
        "time": record.get("time"),
    }


def _default_reason(event: str, record: dict[str, Any], live: int, total: int) -> str:
    if event == "started":
        return f"{total} host(s); candidate sha256 {str(record.get('candidate_sha256'))[:12]}"
    if event == "stage-live":
        skipped = record.get("skipped") or {}
        tail = f"; not switched: {', '.join(sorted(skipped))}" if skipped else ""
        return f"candidate live on {live}/{total} host(s){tail}"
    if event == "complete":
        return f"candidate live on {live}/{total} host(s)"
    if event == "resumed":
        return f"resumed after {record.get('paused_for_s')}s paused"
    return event


def slack_text(body: dict[str, Any]) -> str:
    """Return the sentence a `slack` webhook receives as {"text": ...}."""
    return (
        f"rollout {body['name']} ({body['rollout']}): {body['event']} at {body['stage']} "
        f"({body['percent']}%, {body['hosts_live']}/{body['hosts_total']} hosts on the candidate): "
        f"{body['reason']}. By {body['operator']} at {body['time']}."
    )


# -- sending --------------------------------------------------------------------------------
@dataclass
class _Item:
    hook: Webhook
    body: dict[str, Any]
    folder: Path
    chained: bool
    append: Callable[[dict[str, Any]], None] | None = None
    done: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def finish(self) -> bool:
        """Mark the item handled; False when someone else (the exit grace) already did."""
        with self.lock:
            if self.done:
                return False
            self.done = True
            return True


class _Permanent(Exception):
    """The receiver refused the request (4xx): sending it again would not help."""


class _MissingEnv(_Permanent):
    """A header names an environment variable that is not set."""


_last_gate: dict[Path, tuple[Any, Any]] = {}
_senders: dict[Webhook, queue.Queue[_Item]] = {}
_pending: list[_Item] = []
_cond = threading.Condition()
_atexit_armed = False


def dispatch(
    folder: Path,
    state: RolloutState,
    record: dict[str, Any],
    append: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Queue the notification `record` makes for every webhook of the rollout in `folder` that wants
    it; `append` records an undelivered one in the rollout's journal (default: the folder's)."""
    event = _event_for(folder, record)
    if event is None:
        return
    hooks = [h for h in webhooks(folder) if event in h.events]
    if not hooks:
        return
    body = payload(event, state, record)
    for hook in hooks:
        _enqueue(_Item(hook, body, folder, state.journal is not None, append))


_hooks: dict[Path, tuple[Webhook, ...]] = {}


def webhooks(folder: Path) -> tuple[Webhook, ...]:
    """Return the webhooks of the rollout in `folder`, from its frozen playbook."""
    if folder not in _hooks:
        try:
            doc = yamlload.safe_load((folder / "playbook.yml").read_text())
            _hooks[folder] = parse(doc.get("notify") if isinstance(doc, dict) else None, _ignore)
        except (OSError, BadInput, ValueError):
            _hooks[folder] = ()
    return _hooks[folder]


def _ignore(field: str, message: str) -> BadInput:
    return BadInput(f"{field}: {message}")


def _enqueue(item: _Item) -> None:
    global _atexit_armed
    with _cond:
        if not _atexit_armed:
            atexit.register(drain)
            _atexit_armed = True
        q = _senders.get(item.hook)
        if q is None:
            q = _senders[item.hook] = queue.Queue(QUEUE_SIZE)
            threading.Thread(target=_send_loop, args=(q,), name="rollout-notify", daemon=True).start()
        _pending.append(item)
    try:
        q.put_nowait(item)
    except queue.Full:
        _give_up(item, f"{QUEUE_SIZE} notifications already waiting for this webhook", attempts=0)


def _send_loop(q: queue.Queue[_Item]) -> None:
    while True:
        item = q.get()
        if item.done:  # given up on at exit
            continue
        attempts = 0
        # Imported here, in the sender thread: `status` and every verb load this module.
        from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

        try:
            retrying = Retrying(
                stop=stop_after_delay(item.hook.retry_for),
                wait=wait_exponential(multiplier=0.25, max=5),
                retry=retry_if_exception(lambda e: not isinstance(e, _Permanent)),
                reraise=True,
            )
            for attempt in retrying:
                with attempt:
                    attempts += 1
                    _post(item.hook, item.body)
        except Exception as e:  # noqa: BLE001 - a webhook's failure is recorded, never raised
            _give_up(item, _describe(item.hook, e), attempts)
        else:
            if item.finish():
                _settle(item)


def _post(hook: Webhook, body: dict[str, Any]) -> None:
    import urllib.error
    import urllib.request

    data = body if hook.format == "json" else {"text": slack_text(body)}
    headers = {"Content-Type": "application/json", "User-Agent": "rollout"}
    headers.update({k: _expand(v) for k, v in hook.headers})
    request = urllib.request.Request(hook.url, data=json.dumps(data).encode(), headers=headers, method="POST")
    try:
        with _opener(hook.url).open(request, timeout=hook.timeout) as response:
            response.read(65536)
    except urllib.error.HTTPError as e:
        if 400 <= e.code < 500 and e.code not in (408, 429):
            raise _Permanent(f"HTTP {e.code} {e.reason}") from None
        raise


def _opener(url: str) -> urllib.request.OpenerDirector:
    """Return an opener; a loopback receiver is reached directly, never through a proxy."""
    import urllib.request

    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def _expand(value: str) -> str:
    def one(m: re.Match[str]) -> str:
        got = os.environ.get(m.group(1))
        if got is None:
            raise _MissingEnv(f"environment variable {m.group(1)} is not set")
        return got

    return _ENV.sub(one, value)


def _describe(hook: Webhook, e: BaseException) -> str:
    """Say why a delivery failed, with the URL's path and every header value masked."""
    import urllib.error

    if isinstance(e, urllib.error.HTTPError):
        text = f"HTTP {e.code} {e.reason}"
    elif isinstance(e, urllib.error.URLError):
        text = f"{type(e.reason).__name__}: {e.reason}" if not isinstance(e.reason, str) else e.reason
    elif isinstance(e, TimeoutError | socket.timeout):
        text = f"no answer within {hook.timeout:g}s"
    else:
        text = str(e) or type(e).__name__
    return redact(hook, text)


def redact(hook: Webhook, text: str) -> str:
    """Mask a webhook's URL path and header values (as written and as expanded) in `text`."""
    text = text.replace(hook.url, hook.shown)
    for _, value in hook.headers:
        for secret in {value, _ENV.sub(lambda m: os.environ.get(m.group(1), m.group(0)), value)}:
            if secret and not _ENV.fullmatch(secret):
                text = text.replace(secret, MASK)
    return redact_text(text)


def _give_up(item: _Item, why: str, attempts: int | None) -> None:
    """Record in the journal that a notification was not delivered."""
    if not item.finish():
        return
    try:
        record = {
            "time": _now(),
            "event": "notify-undelivered",
            "stage": item.body.get("stage"),
            "operator": who.operator(),
            "notify_event": item.body["event"],
            "webhook": item.hook.shown,
            "attempts": attempts,
            "error": why,
        }
        if item.append is not None:
            item.append(record)
        else:
            journal.append(item.folder, record, chained=item.chained)
    except OSError:
        pass  # the state folder is full or gone: nothing more can be said, and the rollout goes on
    finally:
        _settle(item)


def _settle(item: _Item) -> None:
    with _cond:
        if item in _pending:
            _pending.remove(item)
        _cond.notify_all()


def _now() -> str:
    return journal.now_iso()


def drain(grace: float = EXIT_GRACE) -> None:
    """Wait at most `grace` seconds for deliveries under way; record the rest as undelivered."""
    end = time.monotonic() + grace
    with _cond:
        while _pending and time.monotonic() < end:
            _cond.wait(max(0.0, end - time.monotonic()))
        left = list(_pending)
    for item in left:
        _give_up(item, f"not confirmed within {grace:g}s of the rollout process ending", attempts=None)
