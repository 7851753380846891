"""State on disk: one folder per rollout, atomic state.json, append-only events.jsonl, a lock."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import posixpath
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rollout.core import machine
from rollout.core.machine import Phase
from rollout.core.state import RolloutState, decode, encode
from rollout.edges import driver, journal
from rollout.hosts import orphans
from rollout.util import who
from rollout.util.atomic import TEMP_SUFFIX, fsync_dir, write_atomic
from rollout.util.errors import BadInput, Refused, StateWriteError

_STATE_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)
def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]", "_", name)


def backup_names(hosts: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Return a file name under `baseline/` for each host, unique even where names differ only in
    punctuation (`a;b`, `a b`) or case (a case-insensitive disk): a name that is not safe as it
    stands, or that another host already took, gets a hash of the host name appended."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for host in hosts:
        base = _safe(host).lstrip(".")[:80] or "_"
        name = base
        if name != host or name.casefold() in taken:
            digest = hashlib.sha256(host.encode()).hexdigest()
            name, n = f"{base}-{digest[:12]}", 12
            while name.casefold() in taken:  # only a hash prefix clash: take more of it
                n += 4
                name = f"{base}-{digest[:n]}"
        taken.add(name.casefold())
        names[host] = name
    return names


class Rollout:
    """One rollout's folder: state, journal, frozen inputs, baseline backups, diffs."""

    def __init__(self, folder: Path, state: RolloutState | None = None) -> None:
        """Open the rollout in `folder`; `state` is its state.json already read (else it is read)."""
        self.dir = folder
        self.id = folder.name
        self.state: RolloutState = state if state is not None else decode((folder / "state.json").read_bytes())
        self._journal_lock = threading.Lock()  # a fleet's worker threads log too

    # -- state and journal -------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self, what: str) -> Iterator[None]:
        """Turn a failed write here (disk full, read-only) into an error that says what the
        hosts went through: nothing, or an operation whose intent is journaled."""
        try:
            yield
        except OSError as e:
            if e.errno not in _STATE_WRITE_ERRORS:
                raise
            raise StateWriteError(
                f"cannot write {what} in the state folder {self.dir}: {e.strerror}; {self._what_was_done()}"
            ) from None

    def _what_was_done(self) -> str:
        intent = self.state.intent
        if self.state.phase == Phase.STARTING:
            return (
                "nothing was written to any host. Free space, then `rollout abort` ends this rollout "
                "and `rollout start` begins again"
            )
        if intent is not None:
            return (
                f"the {intent.action} of {len(intent.hosts)} host(s) was journaled and may be part "
                "done. Free space, then `rollout status` reads the hosts and records what they hold, "
                "and `rollout abort` restores them"
            )
        return "no host was changed by this step. Free space and run the verb again"

    def save(self) -> None:
        """Write state.json atomically."""
        self.state.updated = journal.now_iso()
        with self.writing("state.json"):
            write_atomic(self.dir / "state.json", encode(self.state))

    def log(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event (with its operator) to the journal, fsync it, and record the chain's
        new head in state.json (a rollout started before the chain existed stays unchained)."""
        return self._journal(event, fields, save=False)

    def commit(self, event: str, **fields: Any) -> dict[str, Any]:
        """Journal one event and save the state changed with it: one state.json write, which also
        carries the chain's new head (a save followed by a log wrote it twice)."""
        return self._journal(event, fields, save=True)

    def _journal(self, event: str, fields: dict[str, Any], *, save: bool) -> dict[str, Any]:
        record = {"time": journal.now_iso(), "event": event, "stage": self.state.stage, **fields}
        record.setdefault("operator", who.operator())
        chained = self.state.journal is not None
        with self._journal_lock:
            with self.writing("the journal (events.jsonl)"):
                head = journal.append(self.dir, record, chained=chained)
            if head is not None:
                record.update(seq=head["seq"])
                self.state.journal = head
            if head is not None or save:
                self.save()
        from rollout.edges import notify  # webhooks, sockets: loaded by the first event, not by status

        notify.dispatch(
            self.dir, self.state, record, self.append_event
        )  # queued for a background sender: never waits for a webhook
        return record

    def append_event(self, record: dict[str, Any]) -> None:
        """Append `record` to the journal without touching the state (a webhook's sender records
        an undelivered notification so, chained after the head when the journal is)."""
        journal.append(self.dir, record, chained=self.state.journal is not None)

    def events(self) -> list[dict[str, Any]]:
        """Return the journal; a torn last line (crash mid-write) is skipped."""
        out = []
        for line in self.journal_bytes().decode(errors="replace").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
        return out

    def journal_bytes(self) -> bytes:
        """Return the journal as its lines' bytes, each ending in a newline (a torn last one may not)."""
        try:
            return (self.dir / journal.JOURNAL).read_bytes()
        except FileNotFoundError:
            return b""

    def journal_where(self) -> str:
        """Say where the journal is kept (for messages)."""
        return str(self.dir / journal.JOURNAL)

    def location(self, name: str = "") -> str:
        """Say where the rollout's `name` (a blob name or a folder of them) is kept (for messages)."""
        return str(self.dir / name) if name else str(self.dir)

    def reloaded(self) -> Rollout:
        """Return this rollout read again from the store (another process may have moved it)."""
        return Rollout(self.dir)

    # -- who drives it (`run --auto`), for `rollout wait` --------------------------------
    def drive(self) -> bool:
        """Mark this process as the rollout's driver until the process lets go (driver.release_all)."""
        return driver.claim(self.dir)

    def is_driven(self) -> bool:
        """Return True while a live process (`run --auto`) drives this rollout."""
        return driver.is_driven(self.dir)

    # -- frozen inputs and backups ----------------------------------------------------
    def backup_path(self, host: str) -> Path:
        """Return the host's backup file (named at start; older rollouts used the bare safe name)."""
        name = self.state.hosts[host].backup or _safe(host)
        return self.dir / "baseline" / name

    def write_backups(self, baselines: dict[str, bytes]) -> None:
        """Keep each host's baseline bytes in `baseline/<host>`, readable only by the owner
        (secrets live here). Hosts holding the same bytes share one file (hard links), so a
        fleet of identical configs costs one write and one fsync, not one per host."""
        self.write_backup_files(
            {self.state.hosts[h].backup or _safe(h): data for h, data in baselines.items()}
        )

    def write_backup_files(self, named: dict[str, bytes]) -> None:
        """Keep baseline bytes under `baseline/<name>` (a name may hold one folder, as a bundle's
        files other than its first do: `.file-2/<host>`), 0600; equal bytes share one file."""
        with self.writing("the baseline backups"):
            self._write_backups(named)

    def read_backup_file(self, name: str) -> bytes:
        """Return the bytes kept under `baseline/<name>`."""
        return (self.dir / "baseline" / name).read_bytes()

    def _write_backups(self, named: dict[str, bytes]) -> None:
        folder = self.dir / "baseline"
        folder.mkdir(mode=0o700, exist_ok=True)
        groups: dict[bytes, list[str]] = {}
        for name, data in named.items():
            groups.setdefault(data, []).append(name)
        for sub in {posixpath.dirname(n) for n in named} - {""}:
            (folder / sub).mkdir(mode=0o700, exist_ok=True)
        # A file has at most so many names (ext4: 65,000; ext3: 32,000): a group of more hosts gets
        # another copy every LINKS_PER_COPY hosts (and one more wherever the filesystem says EMLINK).
        chunks = [
            (data, names[i : i + LINKS_PER_COPY])
            for data, names in groups.items()
            for i in range(0, len(names), LINKS_PER_COPY)
        ]
        for data, names in chunks:
            done = 0
            while done < len(names):
                fd, tmp = tempfile.mkstemp(prefix=".backup.", dir=folder)
                try:
                    with os.fdopen(fd, "wb") as f:
                        os.fchmod(f.fileno(), 0o600)
                        f.write(data)
                        f.flush()
                        os.fsync(f.fileno())
                    while done < len(names):
                        target = folder / names[done]
                        target.unlink(missing_ok=True)
                        try:
                            os.link(tmp, target)
                        except OSError as e:
                            if e.errno != errno.EMLINK:
                                raise
                            break  # this copy has all the names it may: the rest get a new one
                        done += 1
                finally:
                    Path(tmp).unlink(missing_ok=True)
        for sub in {posixpath.dirname(n) for n in named} - {""}:
            fsync_dir(folder / sub)
        fsync_dir(folder)

    def read_backup(self, host: str) -> bytes | None:
        """Return a host's baseline bytes, or None when it had no file."""
        if self.state.hosts[host].baseline_sha256 is None:
            return None
        return self.backup_path(host).read_bytes()

    def candidate(self) -> bytes:
        """Return the frozen candidate bytes."""
        return (self.dir / "candidate" / self.state.candidate_name).read_bytes()

    # -- other named bytes of this rollout ---------------------------------------------
    def read_blob(self, name: str) -> bytes | None:
        """Return the bytes kept under `name` (a relative path such as "metrics/cursor.json"), or
        None when nothing is. New persistent things go through this pair, not `self.dir`, so a
        backend other than the folder can keep them."""
        try:
            return (self.dir / name).read_bytes()
        except FileNotFoundError:
            return None

    def write_blob(self, name: str, data: bytes) -> None:
        """Keep `data` under `name`, atomically and readable only by the owner."""
        path = self.dir / name
        with self.writing(name):
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(path, data, mode=0o600)

    def read_blobs(self, names: list[str]) -> dict[str, bytes]:
        """Return the blobs of `names` that are kept (name -> bytes); a server reads them at once."""
        found = {n: self.read_blob(n) for n in names}
        return {n: d for n, d in found.items() if d is not None}

    def write_blobs(self, named: dict[str, bytes]) -> None:
        """Keep every blob of `named` (each atomically; a server writes them in one transaction)."""
        for name, data in named.items():
            self.write_blob(name, data)

    @property
    def playbook_copy(self) -> Path:
        return self.dir / "playbook.yml"

    def crash_log(self) -> Path:
        return self.dir / "crash.log"


NEW_PREFIX = ".new-"
LINKS_PER_COPY = 30_000  # hard links to one baseline copy (below every common filesystem's limit)


def held_message(where: str, holder: str) -> str:
    """The refusal (exit 5) when another operation holds the lock, the same for every backend."""
    return f"another rollout operation holds the lock on {where} ({holder}); nothing changed, try again when it is done"


class Store:
    """The state folder: holds rollouts and the one-operation-at-a-time lock. The PostgreSQL
    backend (edges/pgstore.py) keeps the same contract on a server."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def where(self) -> str:
        """Say where the state is (for messages; a URL without its password)."""
        return str(self.root)

    def busy(self) -> bool:
        """Return True when a live process holds the lock (an operation is under way)."""
        return driver.lock_holder_alive(self.root)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the state folder's lock for one operation; refuse (exit 5) if another holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        held = False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                raise Refused(held_message(self.where, f"pid {holder}")) from None
            # The holder's pid stays in the file until it lets go: a pid found here now belongs
            # to an operation that was killed, whose checks may still be running.
            if os.pread(fd, 64, 0).strip():
                orphans.reap()
            os.ftruncate(fd, 0)
            with contextlib.suppress(OSError):  # a full disk: the pid is only for messages
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            held = True
            self.sweep()
            yield
        finally:
            if held:
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the flock

    def rollouts(self) -> list[Rollout]:
        """Return every rollout, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for folder in self.root.iterdir():
            if not folder.name.startswith(".") and (folder / "state.json").is_file():
                found.append(Rollout(folder))
        return sorted(found, key=lambda r: (r.state.created, r.id))

    def active(self) -> Rollout | None:
        """Return the rollout still in progress (shadow, live or rollback-failed), if any."""
        live = [r for r in self.rollouts() if r.state.phase in machine.ACTIVE]
        return live[-1] if live else None

    def pick(self, rollout_id: str | None, verb: str, *, fallback_latest: bool = False) -> Rollout:
        """Return the named rollout, else the active one (else the latest when allowed)."""
        if rollout_id:
            folder = self.root / rollout_id
            if not (folder / "state.json").is_file():
                raise BadInput(f"{self.where}: no rollout with id {rollout_id!r}")
            return Rollout(folder)
        found = self.active()
        if found is None and fallback_latest:
            every = self.rollouts()
            found = every[-1] if every else None
        if found is None:
            raise Refused(f"cannot {verb}: no active rollout in {self.where} (start one first)")
        return found

    def create(self, name: str, state: RolloutState, frozen: dict[str, bytes] | None = None) -> Rollout:
        """Make a new rollout folder with its frozen inputs (`frozen`: relative path -> bytes, kept
        0600) and its first state.json. It is built under a hidden name and renamed into place
        whole, so a crash never leaves a rollout without its inputs (the sweep removes the rest)."""
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        base = f"{_safe(name)[:80]}-{stamp}"
        rid, n = base, 1
        while (self.root / rid).exists():
            n += 1
            rid = f"{base}-{n}"
        building = self.root / f"{NEW_PREFIX}{rid}"
        try:
            shutil.rmtree(building, ignore_errors=True)
            for sub in ("", "baseline", "candidate", "diffs"):
                (building / sub).mkdir(mode=0o700 if sub == "baseline" else 0o755, exist_ok=True)
            for rel, data in (frozen or {}).items():
                write_atomic(building / rel, data, 0o600)
            state.id = rid
            if state.journal is None:
                state.journal = journal.new_head()
            write_atomic(building / "state.json", encode(state))
            os.rename(building, self.root / rid)
            fsync_dir(self.root)
        except OSError as e:
            if e.errno not in _STATE_WRITE_ERRORS:
                raise
            shutil.rmtree(building, ignore_errors=True)
            raise StateWriteError(
                f"cannot create a rollout in the state folder {self.root}: {e.strerror}; "
                "nothing was written to any host. Free space and run `rollout start` again"
            ) from None
        return Rollout(self.root / rid)

    def debris(self) -> list[Path]:
        """Return what an operation killed mid-write left here: temp files, half-made rollouts."""
        found = list(self.root.glob(f"{NEW_PREFIX}*"))
        for pattern in (f"*/.*{TEMP_SUFFIX}", f"*/*/.*{TEMP_SUFFIX}", "*/baseline/.backup.*"):
            found.extend(self.root.glob(pattern))
        return found

    def sweep(self) -> list[Path]:
        """Remove the debris. Only called with the lock held, when nobody else writes here."""
        gone = self.debris()
        for path in gone:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return gone

    def tidy(self) -> None:
        """Sweep the debris if there is any and no operation is running (for read-only verbs)."""
        if not self.root.is_dir() or not self.debris():
            return
        with contextlib.suppress(Refused), self.lock():
            pass  # taking the lock sweeps
