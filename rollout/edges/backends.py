"""Which backend keeps the state: a folder (edges/store.py, the default) or a PostgreSQL server
(edges/pgstore.py, for a postgresql:// URL), behind one Store/Rollout contract."""

from __future__ import annotations

from pathlib import Path

from rollout.edges.store import Store
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
        try:
            from rollout.edges.pgstore import PgStore
        except ModuleNotFoundError as e:
            if not (e.name or "").startswith("psycopg"):
                raise
            raise BadInput(
                "--state postgresql://... needs psycopg 3, which is not installed: pip install 'psycopg[binary]'"
            ) from None
        return PgStore(str(where))
    return Store(Path(where))


def local_folder(where: StateAt) -> Path | None:
    """Return the state folder `where` names, or None for a server (nothing of it is local)."""
    return None if is_url(where) else Path(where)
