"""Which backend keeps the state: a folder (edges/store.py, the default) or a PostgreSQL server
(edges/pgstore.py, for a postgresql:// URL), behind one Store/Rollout contract."""

from __future__ import annotations

import sys
from pathlib import Path

from rollout.edges.store import Rollout, Store
from rollout.hosts.pullstore import PullBackend, PullStore
from rollout.util.errors import BadInput

URL_SCHEMES = ("postgresql://", "postgres://")

# Where the state is: a folder (a Path, or a str that is not a URL) or a postgresql:// URL.
StateAt = Path | str


def is_url(where: StateAt) -> bool:
    """Return True when `where` names a PostgreSQL server rather than a folder."""
    return isinstance(where, str) and where.startswith(URL_SCHEMES)


def open_store(where: StateAt) -> Store:
    """Return the store at `where`: the folder backend, or PostgreSQL for a postgresql:// URL
    (psycopg is imported only then, so a folder's `status` stays as fast as it was)."""
    if is_url(where):
        _need_psycopg()
        from rollout.edges.pgstore import PgStore

        return PgStore(str(where))
    return Store(Path(where))


def _need_psycopg() -> None:
    try:
        import psycopg  # noqa: F401
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith("psycopg"):
            raise
        raise BadInput(
            "--state postgresql://... needs psycopg 3, which is not installed: pip install 'psycopg[binary]'"
        ) from None


def open_pull_store(where: StateAt) -> PullBackend:
    """Return the pull fleet kept with the state at `where`: the folder's `.pull/`, or the tables
    of a PostgreSQL state's namespace (issue 15 on a shared state)."""
    if is_url(where):
        _need_psycopg()
        from rollout.edges.pgpull import PgPullStore
        from rollout.edges.pgstore import PgStore

        return PgPullStore(PgStore(str(where)))
    return PullStore(Path(where))


def pull_store_of(rollout: Rollout) -> PullBackend:
    """Return the pull fleet kept beside `rollout` (on its server, or in its state folder)."""
    pg = sys.modules.get("rollout.edges.pgstore")  # a PgRollout exists only once it is imported
    if pg is not None and isinstance(rollout, pg.PgRollout):
        from rollout.edges.pgpull import PgPullStore

        return PgPullStore(rollout.store)
    return PullStore(rollout.dir.parent)


def local_folder(where: StateAt) -> Path | None:
    """Return the state folder `where` names, or None for a server (nothing of it is local)."""
    return None if is_url(where) else Path(where)
