"""A pull fleet on a PostgreSQL state (`--state postgresql://...`): what the folder backend keeps in
`.pull/` (hosts/pullstore.py), kept in tables under the same namespace as the rollouts, so several
operators and several `rollout serve` processes (behind one load balancer) share one fleet.

- `pull_hosts(namespace, host, created, salt, token_sha256)`: who may pull (tokens only hashed);
- `pull_reports(namespace, host, report, version)`: each host's latest report (the document the
  folder keeps as `report.json`, with the ids of the reports it has seen); `version` comes from one
  sequence, so a fold can read only the reports written since the last one;
- `pull_usage(namespace, host, seq, line)`: forwarded usage records, one row each, append-only;
- `pull_current(namespace, rollout)`: the rollout whose assignments are handed out.

Assignments are the rollout's `pull/assign/<host>.json` blobs (rollout_blobs). A poll is one
indexed read (the host's row joined to the current rollout's blob); a report is one transaction
that checks its id, appends its usage and replaces the host's report, under a per-host advisory
lock: a report retried (to the same or another server) does nothing twice.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from rollout.edges.pgstore import PgStore, _key
from rollout.hosts.pullstore import (
    TOKEN_BYTES,
    Report,
    check_name,
    merge_report,
    new_host,
    report_of,
    token_matches,
    usage_lines,
)
from rollout.util.errors import BadInput

# The first key of the pull fleet's advisory locks ("Pull"); the second is a hash.
_PULL = 0x50756C6C
_ASSIGN = "pull/assign/"


class PgPullStore:
    """The pull fleet of one namespace of a PostgreSQL state (the PullBackend of a server)."""

    def __init__(self, store: PgStore) -> None:
        self.pg = store
        self.ns = store.namespace
        self.where = store.where

    # -- hosts and tokens ---------------------------------------------------------------
    def hosts(self) -> dict[str, Any]:
        rows = self.pg.fetch(
            "read the pull hosts",
            "SELECT host, created, salt, token_sha256 FROM pull_hosts WHERE namespace = %s",
            (self.ns,),
        )
        return {h: {"created": c, "salt": s, "token_sha256": t} for h, c, s, t in rows}

    def add(self, name: str) -> str:
        return self.add_many([name])[name]

    def add_many(self, names: list[str]) -> dict[str, str]:
        tokens: dict[str, str] = {}
        for name in names:
            check_name(name)
            if name in tokens:
                raise BadInput(f"host {name!r} is already added (`rollout hosts revoke {name}` first)")
            tokens[name] = secrets.token_urlsafe(TOKEN_BYTES)
        with self.pg.tx("add pull hosts") as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_PULL, _key("hosts", self.ns)))
            taken = conn.execute(
                "SELECT host FROM pull_hosts WHERE namespace = %s AND host = ANY(%s) ORDER BY host LIMIT 1",
                (self.ns, list(tokens)),
            ).fetchone()
            if taken:
                raise BadInput(f"host {taken[0]!r} is already added (`rollout hosts revoke {taken[0]}` first)")
            rows = []
            for name, token in tokens.items():
                entry = new_host(token)
                rows.append((self.ns, name, entry["created"], entry["salt"], entry["token_sha256"]))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO pull_hosts (namespace, host, created, salt, token_sha256) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    rows,
                )
        return tokens

    def revoke(self, name: str) -> None:
        with self.pg.tx("revoke a pull host") as conn:
            gone = conn.execute(
                "DELETE FROM pull_hosts WHERE namespace = %s AND host = %s RETURNING host", (self.ns, name)
            ).fetchone()
        if not gone:
            known = sorted(self.hosts())
            raise BadInput(f"host {name!r} is not added (known: {', '.join(known) or 'none'})")

    def _entry(self, name: str) -> dict[str, Any] | None:
        rows = self.pg.fetch(
            "read a pull host",
            "SELECT salt, token_sha256 FROM pull_hosts WHERE namespace = %s AND host = %s",
            (self.ns, name),
        )
        return {"salt": rows[0][0], "token_sha256": rows[0][1]} if rows else None

    def authenticate(self, name: str, token: str) -> bool:
        return token_matches(self._entry(name), token)

    def missing(self, names: tuple[str, ...] | list[str]) -> list[str]:
        rows = self.pg.fetch(
            "read the pull hosts",
            "SELECT host FROM pull_hosts WHERE namespace = %s AND host = ANY(%s)",
            (self.ns, list(names)),
        )
        known = {r[0] for r in rows}
        return [n for n in names if n not in known]

    # -- reports and usage --------------------------------------------------------------
    def read_report(self, host: str) -> Report | None:
        return self.read_reports([host]).get(host)

    def read_reports(self, hosts: list[str]) -> dict[str, Report]:
        """Return the latest report of each host of `hosts` that has one (one query)."""
        rows = self.pg.fetch(
            "read the pull reports",
            "SELECT host, report FROM pull_reports WHERE namespace = %s AND host = ANY(%s)",
            (self.ns, list(hosts)),
        )
        return {h: report_of(h, json.loads(bytes(data))) for h, data in rows}

    def report_marks(self, hosts: list[str]) -> dict[str, Any]:
        """Return each reported host's report version (a new one with every write; one query that
        reads no report)."""
        wanted = set(hosts)
        rows = self.pg.fetch(
            "read the pull report versions",
            "SELECT host, version FROM pull_reports WHERE namespace = %s",
            (self.ns,),
        )
        return {h: int(v) for h, v in rows if h in wanted}

    def write_report(self, host: str, raw: dict[str, Any]) -> None:
        with self.pg.tx(f"keep {host}'s report") as conn:
            self._put_report(conn, host, raw)

    def _put_report(self, conn: Any, host: str, raw: dict[str, Any]) -> None:
        conn.execute(
            "INSERT INTO pull_reports (namespace, host, report, version) "
            "VALUES (%s, %s, %s, nextval('pull_report_versions')) ON CONFLICT (namespace, host) "
            "DO UPDATE SET report = EXCLUDED.report, version = EXCLUDED.version",
            (self.ns, check_name(host), json.dumps(raw).encode()),
        )

    def keep_report(self, host: str, checked: dict[str, Any]) -> bool:
        """Keep a checked report and append its usage in one transaction, under the host's
        advisory lock (two servers take turns); return True when its id was seen already."""
        with self.pg.tx(f"keep {host}'s report") as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_PULL, _key("report", self.ns, host)))
            row = conn.execute(
                "SELECT report FROM pull_reports WHERE namespace = %s AND host = %s", (self.ns, host)
            ).fetchone()
            try:
                before = json.loads(bytes(row[0])) if row else {}
            except ValueError:
                before = {}
            kept = merge_report(before, checked, time.time())
            if kept is None:
                return True
            self._append(conn, host, usage_lines(checked))
            self._put_report(conn, host, kept)
        return False

    def append_usage(self, host: str, lines: list[bytes]) -> None:
        if not lines:
            return
        with self.pg.tx(f"append {host}'s usage") as conn:
            self._append(conn, host, lines)

    def _append(self, conn: Any, host: str, lines: list[bytes]) -> None:
        if not lines:
            return
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO pull_usage (namespace, host, line) VALUES (%s, %s, %s)",
                [(self.ns, check_name(host), line.rstrip(b"\n")) for line in lines],
            )

    def read_usage(self, host: str) -> bytes | None:
        rows = self.pg.fetch(
            f"read {host}'s usage",
            "SELECT line FROM pull_usage WHERE namespace = %s AND host = %s ORDER BY seq",
            (self.ns, host),
        )
        return b"".join(bytes(r[0]) + b"\n" for r in rows) if rows else None

    # -- which rollout the server hands out ------------------------------------------------
    def set_current(self, rollout_id: str) -> None:
        with self.pg.tx("point the pull hosts at a rollout") as conn:
            conn.execute(
                "INSERT INTO pull_current (namespace, rollout) VALUES (%s, %s) ON CONFLICT (namespace) "
                "DO UPDATE SET rollout = EXCLUDED.rollout WHERE pull_current.rollout <> EXCLUDED.rollout",
                (self.ns, rollout_id),
            )

    def current(self) -> str | None:
        rows = self.pg.fetch(
            "read the current pull rollout", "SELECT rollout FROM pull_current WHERE namespace = %s", (self.ns,)
        )
        return str(rows[0][0]) if rows else None

    def assignment(self, host: str) -> bytes | None:
        rows = self.pg.fetch(
            f"read {host}'s assignment",
            "SELECT b.data FROM pull_current c JOIN rollout_blobs b ON b.namespace = c.namespace "
            "AND b.id = c.rollout AND b.name = %s WHERE c.namespace = %s",
            (f"{_ASSIGN}{check_name(host)}.json", self.ns),
        )
        return bytes(rows[0][0]) if rows else None

    def authorized_assignment(self, host: str, token: str) -> tuple[bool, bytes | None]:
        """A poll: the host's token hash and its assignment in one indexed read."""
        rows = self.pg.fetch(
            f"read {host}'s assignment",
            "SELECT h.salt, h.token_sha256, b.data FROM pull_hosts h "
            "LEFT JOIN pull_current c ON c.namespace = h.namespace "
            "LEFT JOIN rollout_blobs b ON b.namespace = h.namespace AND b.id = c.rollout AND b.name = %s "
            "WHERE h.namespace = %s AND h.host = %s",
            (f"{_ASSIGN}{host}.json", self.ns, host),
        )
        entry = {"salt": rows[0][0], "token_sha256": rows[0][1]} if rows else None
        if not token_matches(entry, token):
            return False, None
        return True, bytes(rows[0][2]) if rows[0][2] is not None else None
