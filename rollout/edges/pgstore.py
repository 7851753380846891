"""State on PostgreSQL (`--state postgresql://...`): the folder's contract kept on a server, so two
operators on two machines share one rollout.

Three tables, every row under a namespace (`?namespace=team-a`, default `default`), so teams can
share one server:

- `rollout_states(namespace, id, created, phase, state, updated)`: each rollout's state.json bytes;
- `rollout_events(namespace, id, seq, line)`: the hash-chained journal, one row per line, append-only
  (a trigger refuses UPDATE and DELETE);
- `rollout_blobs(namespace, id, name, data)`: the frozen playbook and candidate, the baselines
  (`baseline/<host>`), the diffs and every `read_blob`/`write_blob` name, as bytes.

and, for pull fleets (edges/pgpull.py), `pull_hosts` (salted token hashes), `pull_reports` (each
host's latest report with the ids it has seen, and a version to fold only what changed),
`pull_usage` (forwarded usage lines, append-only) and `pull_current` (the rollout handed out).

A journal line and the state it changes are one transaction. The lock (one operation at a time per
namespace) is a session-level advisory lock on a connection of its own, held for one verb's
operation: it is let go when the operation ends, and by the server when the process dies (its
connection closes), so `kill -9` never leaves it held. `run --auto` takes it per step, never across
a bake, as with the folder. `run --auto` marks the rollout driven with another advisory lock, which
`rollout wait` and `status` read from `pg_locks`.

What needs a real path stays in a local cache folder, `$XDG_CACHE_HOME/rollout/pg/<server>/<id>/`:
the frozen playbook a verb loads (written there from its blob), crash.log, a webhook's sender.
psycopg is imported here only: a folder's `status` never loads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from rollout.core import machine
from rollout.core.state import RolloutState, decode, encode
from rollout.edges import driver, journal
from rollout.edges.store import Rollout, Store, _safe, held_message
from rollout.hosts import orphans
from rollout.util import who
from rollout.util.errors import BadInput, Refused, RolloutError

DEFAULT_NAMESPACE = "default"
# The first key of each kind of advisory lock ("Roll", "Driv", "Jrnl"); the second is a hash.
_LOCK, _DRIVER, _JOURNAL = 0x526F6C6C, 0x44726976, 0x4A726E6C

SCHEMA = """
CREATE TABLE IF NOT EXISTS rollout_states (
    namespace text NOT NULL, id text NOT NULL, created text NOT NULL, phase text NOT NULL,
    state bytea NOT NULL, updated timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (namespace, id));
CREATE TABLE IF NOT EXISTS rollout_events (
    namespace text NOT NULL, id text NOT NULL, seq bigint NOT NULL, line bytea NOT NULL,
    PRIMARY KEY (namespace, id, seq));
CREATE TABLE IF NOT EXISTS rollout_blobs (
    namespace text NOT NULL, id text NOT NULL, name text NOT NULL, data bytea NOT NULL,
    PRIMARY KEY (namespace, id, name));
CREATE OR REPLACE FUNCTION rollout_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$;
CREATE OR REPLACE TRIGGER rollout_events_append_only BEFORE UPDATE OR DELETE ON rollout_events
    FOR EACH ROW EXECUTE FUNCTION rollout_events_append_only();
""" + """
CREATE TABLE IF NOT EXISTS pull_hosts (
    namespace text NOT NULL, host text NOT NULL, created double precision NOT NULL,
    salt text NOT NULL, token_sha256 text NOT NULL, PRIMARY KEY (namespace, host));
CREATE SEQUENCE IF NOT EXISTS pull_report_versions;
CREATE TABLE IF NOT EXISTS pull_reports (
    namespace text NOT NULL, host text NOT NULL, report bytea NOT NULL, version bigint NOT NULL,
    PRIMARY KEY (namespace, host));
CREATE TABLE IF NOT EXISTS pull_usage (
    namespace text NOT NULL, host text NOT NULL, seq bigint GENERATED ALWAYS AS IDENTITY,
    line bytea NOT NULL, PRIMARY KEY (namespace, host, seq));
CREATE OR REPLACE TRIGGER pull_usage_append_only BEFORE UPDATE OR DELETE ON pull_usage
    FOR EACH ROW EXECUTE FUNCTION rollout_events_append_only();
CREATE TABLE IF NOT EXISTS pull_current (namespace text PRIMARY KEY, rollout text NOT NULL);
"""


class StateServerError(RolloutError):
    """The PostgreSQL server of `--state` cannot be reached or refused a statement (exit 1)."""


def _key(*parts: str) -> int:
    """Return a positive 31-bit advisory lock key for `parts`."""
    return int.from_bytes(hashlib.sha256("\0".join(parts).encode()).digest()[:4], "big") & 0x7FFFFFFF


def split_url(url: str) -> tuple[str, str, str]:
    """Return (what psycopg connects to, the namespace, the URL as messages show it: no password)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    names = [v for k, v in query if k == "namespace"]
    namespace = names[-1] if names else DEFAULT_NAMESPACE
    if not namespace or len(namespace) > 200:
        raise BadInput(f"--state {shown_url(url)}: namespace must be 1..200 characters, got {namespace!r}")
    rest = urllib.parse.urlencode([(k, v) for k, v in query if k != "namespace"])
    conninfo = urllib.parse.urlunsplit(parts._replace(query=rest))
    return conninfo, namespace, shown_url(url)


def shown_url(url: str) -> str:
    """Return `url` with its password masked."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _keepalive(conn: psycopg.Connection[Any]) -> None:
    """Have the server probe this session's socket, so a lock held by a machine that vanished
    (no FIN ever sent) is let go within about half a minute rather than the system's hours."""
    with contextlib.suppress(psycopg.Error):
        conn.execute(
            "SET tcp_keepalives_idle = 15; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3"
        )


def _app_name() -> str:
    return f"rollout pid {os.getpid()} on {socket.gethostname()}"[:63]


# This process's connection per server (a forked child makes its own), shared by its threads in turn.
_connections: dict[tuple[str, int], tuple[psycopg.Connection[Any], threading.RLock]] = {}
_connecting = threading.Lock()


def _connect(conninfo: str, shown: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(conninfo, autocommit=True, application_name=_app_name(), connect_timeout=10)
    except psycopg.Error as e:
        raise StateServerError(f"cannot reach the state server {shown}: {str(e).strip()}") from None


def _shared(conninfo: str, shown: str) -> tuple[psycopg.Connection[Any], threading.RLock]:
    """Return this process's connection to `conninfo` (made, with the tables, on first use)."""
    key = (conninfo, os.getpid())
    with _connecting:
        found = _connections.get(key)
        if found is not None and not found[0].closed:
            return found
        conn = _connect(conninfo, shown)
        try:
            # pull_current is the newest table (pull fleets): a server made before it gets them too.
            exists = conn.execute("SELECT to_regclass('pull_current') IS NOT NULL").fetchone()
            if not (exists and exists[0]):
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK, 0))  # one creator at a time
                    conn.execute(SCHEMA)
        except psycopg.Error as e:
            conn.close()
            raise StateServerError(f"cannot make the state tables on {shown}: {str(e).strip()}") from None
        _connections[key] = (conn, threading.RLock())
        return _connections[key]


class PgStore(Store):
    """The rollouts of one namespace on a PostgreSQL server, with its lock."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conninfo, self.namespace, self._shown = split_url(url)
        self.conn, self._db = _shared(self.conninfo, self._shown)
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rollout" / "pg"
        tag = hashlib.sha256(f"{self.conninfo.split('?')[0]}\0{self.namespace}".encode()).hexdigest()[:16]
        super().__init__(cache / f"{_safe(self.namespace)[:40]}-{tag}")

    @property
    def where(self) -> str:
        return self._shown

    # -- transactions ------------------------------------------------------------------
    @contextlib.contextmanager
    def tx(self, what: str) -> Iterator[psycopg.Connection[Any]]:
        """One transaction on the shared connection (threads take turns); a failure says what."""
        with self._db:
            try:
                with self.conn.transaction():
                    yield self.conn
            except psycopg.Error as e:
                raise StateServerError(
                    f"cannot {what} on the state server {self.where}: {str(e).strip()}"
                ) from None

    def fetch(self, what: str, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self.tx(what) as conn:
            return conn.execute(sql, args).fetchall()

    # -- the lock ----------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the namespace's advisory lock for one operation; refuse (exit 5) if another holds it."""
        conn = _connect(self.conninfo, self._shown)
        held = False
        try:
            _keepalive(conn)
            if not self._try_lock(conn):
                raise Refused(held_message(self.where, self._holder(conn) or "holder unknown"))
            held = True
            self.root.mkdir(parents=True, exist_ok=True)
            marker = self.root / ".lock"
            # As with the folder: a pid left here by an operation on this machine that was killed;
            # its checks may still be running.
            with contextlib.suppress(OSError):
                if marker.read_text().strip():
                    orphans.reap()
            with contextlib.suppress(OSError):
                marker.write_text(f"{os.getpid()}\n")
            try:
                yield
            finally:
                with contextlib.suppress(OSError):
                    marker.write_text("")
        finally:
            if held:  # let go now: a closed session's locks go only once the server has seen it close
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_LOCK, self._lock_key()))
            conn.close()  # a process that dies lets go by closing its session

    def _try_lock(self, conn: psycopg.Connection[Any]) -> bool:
        """Take the lock. A holder that is a dead process of this machine is let go by the server
        as soon as it sees the connection closed: wait that moment (a flock goes with the process)."""
        for _ in range(60):
            row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (_LOCK, self._lock_key())).fetchone()
            if row and row[0]:
                return True
            holder = self._holder(conn) or ""
            pid, _, host = holder.removeprefix("pid ").partition(" on ")
            if host != socket.gethostname()[: len(host)] or not pid.isdigit() or _alive(int(pid)):
                return False
            time.sleep(0.05)
        return False

    def _lock_key(self) -> int:
        return _key("lock", self.namespace)

    def _holder(self, conn: psycopg.Connection[Any]) -> str | None:
        row = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s "
            "AND l.objsubid = 2 LIMIT 1",
            (_LOCK, self._lock_key()),
        ).fetchone()
        if not row:
            return None
        name = str(row[0] or "")
        return name.removeprefix("rollout ") or "a session with no name"

    def held(self, kind: int, key: int) -> bool:
        """Return True when some session holds the advisory lock (kind, key)."""
        rows = self.fetch(
            "read the locks",
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s "
            "AND objid = %s AND objsubid = 2 LIMIT 1",
            (kind, key),
        )
        return bool(rows)

    def busy(self) -> bool:
        return self.held(_LOCK, self._lock_key())

    # -- rollouts ----------------------------------------------------------------------
    def rollouts(self) -> list[Rollout]:
        rows = self.fetch(
            "list the rollouts",
            "SELECT id, state FROM rollout_states WHERE namespace = %s",
            (self.namespace,),
        )
        found: list[Rollout] = [PgRollout(self, rid, decode(bytes(data))) for rid, data in rows]
        return sorted(found, key=lambda r: (r.state.created, r.id))

    def active(self) -> Rollout | None:
        """Return the rollout still in progress, reading only the rows whose phase is active."""
        rows = self.fetch(
            "find the active rollout",
            "SELECT id, state FROM rollout_states WHERE namespace = %s AND phase = ANY(%s)",
            (self.namespace, sorted(str(p) for p in machine.ACTIVE)),
        )
        live = [PgRollout(self, rid, decode(bytes(data))) for rid, data in rows]
        live = [r for r in live if r.state.phase in machine.ACTIVE]  # the row's phase is a copy
        return max(live, key=lambda r: (r.state.created, r.id)) if live else None

    def load(self, rollout_id: str) -> PgRollout | None:
        rows = self.fetch(
            "read a rollout",
            "SELECT state FROM rollout_states WHERE namespace = %s AND id = %s",
            (self.namespace, rollout_id),
        )
        return PgRollout(self, rollout_id, decode(bytes(rows[0][0]))) if rows else None

    def pick(self, rollout_id: str | None, verb: str, *, fallback_latest: bool = False) -> Rollout:
        if rollout_id:
            found = self.load(rollout_id)
            if found is None:
                raise BadInput(f"{self.where}: no rollout with id {rollout_id!r}")
            return found
        return super().pick(None, verb, fallback_latest=fallback_latest)

    def create(self, name: str, state: RolloutState, frozen: dict[str, bytes] | None = None) -> Rollout:
        """Insert the rollout, its frozen inputs and its first state in one transaction: a crash
        leaves all of it or nothing."""
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        base = f"{_safe(name)[:80]}-{stamp}"
        with self.tx("create a rollout") as conn:
            taken = {
                r[0]
                for r in conn.execute(
                    "SELECT id FROM rollout_states WHERE namespace = %s AND id LIKE %s",
                    (
                        self.namespace,
                        base.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",
                    ),
                ).fetchall()
            }
            rid, n = base, 1
            while rid in taken:
                n += 1
                rid = f"{base}-{n}"
            state.id = rid
            if state.journal is None:
                state.journal = journal.new_head()
            conn.execute(
                "INSERT INTO rollout_states (namespace, id, created, phase, state) VALUES (%s, %s, %s, %s, %s)",
                (self.namespace, rid, str(state.created or ""), str(state.phase), encode(state)),
            )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO rollout_blobs (namespace, id, name, data) VALUES (%s, %s, %s, %s)",
                    [(self.namespace, rid, rel, data) for rel, data in (frozen or {}).items()],
                )
        return PgRollout(self, rid, state)

    def debris(self) -> list[Path]:
        return []  # every change is one transaction: a crash leaves nothing half-written

    def sweep(self) -> list[Path]:
        return []

    def tidy(self) -> None:
        return None

class PgRollout(Rollout):
    """One rollout on the server; `dir` is its local cache folder (the frozen playbook, crash.log)."""

    def __init__(self, store: PgStore, rollout_id: str, state: RolloutState) -> None:
        self.store = store
        self.id = rollout_id
        self.state = state
        self._journal_lock = threading.Lock()
        self._cache: Path | None = None

    @property
    def dir(self) -> Path:
        """The local cache folder, with the frozen playbook written there from its blob."""
        if self._cache is None:
            folder = self.store.root / self.id
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            data = self.read_blob("playbook.yml")
            path = folder / "playbook.yml"
            if data is not None:
                try:
                    same = path.read_bytes() == data
                except OSError:
                    same = False
                if not same:
                    from rollout.util.atomic import write_atomic

                    write_atomic(path, data, mode=0o600)
            self._cache = folder
        return self._cache

    @dir.setter
    def dir(self, value: Path) -> None:
        self._cache = value

    def _what(self, what: str) -> str:
        return f"write {what} ({self._what_was_done()})"

    # -- state and journal -------------------------------------------------------------
    def save(self) -> None:
        self.state.updated = journal.now_iso()
        with self.store.tx(self._what("the state")) as conn:
            self._save(conn)

    def _save(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            "UPDATE rollout_states SET state = %s, phase = %s, updated = now() WHERE namespace = %s AND id = %s",
            (encode(self.state), str(self.state.phase), self.store.namespace, self.id),
        )

    def _journal(self, event: str, fields: dict[str, Any], *, save: bool) -> dict[str, Any]:
        record = {"time": journal.now_iso(), "event": event, "stage": self.state.stage, **fields}
        record.setdefault("operator", who.operator())
        with self._journal_lock, self.store.tx(self._what("the journal")) as conn:
            head = self._append(conn, record, chained=self.state.journal is not None)
            if head is not None:
                record.update(seq=head["seq"])
                self.state.journal = head
            if head is not None or save:
                self.state.updated = journal.now_iso()
                self._save(conn)
        from rollout.edges import notify

        notify.dispatch(self.dir, self.state, record, self.append_event)
        return record

    def _append(
        self, conn: psycopg.Connection[Any], record: dict[str, Any], *, chained: bool
    ) -> dict[str, Any] | None:
        """Append `record` as the journal's next row (inside the caller's transaction); with
        `chained`, give it `seq` and `prev` and return the new head."""
        ns = self.store.namespace
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_JOURNAL, _key("journal", ns, self.id)))
        last = conn.execute(
            "SELECT seq, line FROM rollout_events WHERE namespace = %s AND id = %s ORDER BY seq DESC LIMIT 1",
            (ns, self.id),
        ).fetchone()
        n = int(last[0]) + 1 if last else 1
        if chained:
            record = {**record, "seq": n, "prev": journal.line_hash(bytes(last[1])) if last else None}
        line = json.dumps(record, default=str).encode()
        conn.execute(
            "INSERT INTO rollout_events (namespace, id, seq, line) VALUES (%s, %s, %s, %s)",
            (ns, self.id, n, line),
        )
        return {"seq": n, "sha256": journal.line_hash(line)} if chained else None

    def append_event(self, record: dict[str, Any]) -> None:
        with self.store.tx("append to the journal") as conn:
            self._append(conn, record, chained=self.state.journal is not None)

    def journal_bytes(self) -> bytes:
        rows = self.store.fetch(
            "read the journal",
            "SELECT line FROM rollout_events WHERE namespace = %s AND id = %s ORDER BY seq",
            (self.store.namespace, self.id),
        )
        return b"".join(bytes(r[0]) + b"\n" for r in rows)

    def journal_where(self) -> str:
        return f"{self.store.where}, rollout {self.id} (table rollout_events)"

    def location(self, name: str = "") -> str:
        return f"{self.store.where}, rollout {self.id}" + (f" ({name})" if name else "")

    def reloaded(self) -> Rollout:
        found = self.store.load(self.id)
        if found is None:
            raise Refused(f"rollout {self.id} is gone from {self.store.where}")
        return found

    # -- frozen inputs, backups, blobs -------------------------------------------------
    def _backup_name(self, host: str) -> str:
        return "baseline/" + (self.state.hosts[host].backup or _safe(host))

    def write_backups(self, baselines: dict[str, bytes]) -> None:
        self.write_backup_files({self._backup_name(h)[len("baseline/") :]: d for h, d in baselines.items()})

    def write_backup_files(self, named: dict[str, bytes]) -> None:
        rows = [(self.store.namespace, self.id, f"baseline/{name}", data) for name, data in named.items()]
        with self.store.tx(self._what("the baseline backups")) as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO rollout_blobs (namespace, id, name, data) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (namespace, id, name) DO UPDATE SET data = EXCLUDED.data",
                rows,
            )

    def read_backup_file(self, name: str) -> bytes:
        data = self.read_blob(f"baseline/{name}")
        if data is None:
            raise FileNotFoundError(f"{self.location('baseline/' + name)}: the backup is missing")
        return data

    def read_backup(self, host: str) -> bytes | None:
        if self.state.hosts[host].baseline_sha256 is None:
            return None
        data = self.read_blob(self._backup_name(host))
        if data is None:
            raise FileNotFoundError(f"{self.location(self._backup_name(host))}: the backup is missing")
        return data

    def candidate(self) -> bytes:
        data = self.read_blob(f"candidate/{self.state.candidate_name}")
        if data is None:
            raise FileNotFoundError(f"{self.location('candidate')}: the frozen candidate is missing")
        return data

    def read_blob(self, name: str) -> bytes | None:
        rows = self.store.fetch(
            f"read {name}",
            "SELECT data FROM rollout_blobs WHERE namespace = %s AND id = %s AND name = %s",
            (self.store.namespace, self.id, name),
        )
        return bytes(rows[0][0]) if rows else None

    def write_blob(self, name: str, data: bytes) -> None:
        with self.store.tx(self._what(name)) as conn:
            conn.execute(
                "INSERT INTO rollout_blobs (namespace, id, name, data) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (namespace, id, name) DO UPDATE SET data = EXCLUDED.data",
                (self.store.namespace, self.id, name, data),
            )

    def read_blobs(self, names: list[str]) -> dict[str, bytes]:
        rows = self.store.fetch(
            "read blobs",
            "SELECT name, data FROM rollout_blobs WHERE namespace = %s AND id = %s AND name = ANY(%s)",
            (self.store.namespace, self.id, list(names)),
        )
        return {str(n): bytes(d) for n, d in rows}

    def write_blobs(self, named: dict[str, bytes]) -> None:
        if not named:
            return
        rows = [(self.store.namespace, self.id, name, data) for name, data in named.items()]
        with self.store.tx(self._what(f"{len(rows)} blobs")) as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO rollout_blobs (namespace, id, name, data) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (namespace, id, name) DO UPDATE SET data = EXCLUDED.data",
                rows,
            )

    # -- who drives it -----------------------------------------------------------------
    def _driver_key(self) -> int:
        return _key("driver", self.store.namespace, self.id)

    def drive(self) -> bool:
        token = (self.store.conninfo, self.store.namespace, self.id)
        if token in _driving:
            return True
        conn = _connect(self.store.conninfo, self.store._shown)
        _keepalive(conn)
        row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (_DRIVER, self._driver_key())).fetchone()
        if not (row and row[0]):
            conn.close()
            return False
        _driving[token] = conn
        return True

    def is_driven(self) -> bool:
        if (self.store.conninfo, self.store.namespace, self.id) in _driving:
            return True
        return self.store.held(_DRIVER, self._driver_key())


_driving: dict[tuple[str, str, str], psycopg.Connection[Any]] = {}


def _let_go() -> None:
    while _driving:
        (_, namespace, rollout_id), conn = _driving.popitem()
        with contextlib.suppress(psycopg.Error):
            conn.execute(
                "SELECT pg_advisory_unlock(%s, %s)", (_DRIVER, _key("driver", namespace, rollout_id))
            )
            conn.close()


driver.on_release(_let_go)
