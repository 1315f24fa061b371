"""The connection to one state database: opening (integrity check, WAL, migrations), transactions, the lock,
retries of a busy database and the translation of SQLite faults into :class:`~..errors.StoreError`.

Every record module of the store package builds on :class:`StoreConnection`; their methods are transactions
by the decorators :func:`reads` and :func:`writes`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlite_utils import Database
from sqlite_utils.db import NotFoundError as SqliteUtilsNotFound
from sqlite_utils.db import Table
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_random_exponential,
)
from typing_extensions import Self

from jupyter_orchestrate.errors import NotFoundError, StoreBusyError, StoreError
from jupyter_orchestrate.models import split_iteration_key
from jupyter_orchestrate.store.migrations import migrations
from jupyter_orchestrate.workspace import DB_NAME

BUSY_TIMEOUT_SECONDS = 30.0
RETRY_MULTIPLIER_SECONDS = 0.02  # busy retries wait up to 0.02, 0.04, 0.08... s (random), at most 0.5 s
log = logging.getLogger(__name__)
# database files this process found to pass PRAGMA quick_check (heartbeat and run monitor threads open their
# own connections; one check per process keeps a large file's cost to one read)
_checked_files: set[str] = set()

# primary SQLite result codes (https://www.sqlite.org/rescode.html) that are faults of the file, not bugs
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 3, 5, 6, 8, 10, 11, 13, 14, 26
_CODE_OF_MESSAGE = {  # Python < 3.11 has no sqlite_errorcode
    "database is locked": _BUSY,
    "database table is locked": _LOCKED,
    "readonly database": _READONLY,
    "disk I/O error": _IOERR,
    "disk image is malformed": _CORRUPT,
    "database or disk is full": _FULL,
    "unable to open database file": _CANTOPEN,
    "file is not a database": _NOTADB,
}

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C", bound="StoreConnection")


def sqlite_code(exc: sqlite3.Error) -> int | None:
    """The primary SQLite result code of ``exc`` (None when it has none we know)."""
    code: int | None = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF
    return next((c for text, c in _CODE_OF_MESSAGE.items() if text in str(exc)), None)


def dumps(value: Any) -> str:
    """A value as stored in a JSON text column (keys sorted)."""
    return json.dumps(value, sort_keys=True)


def loads(text: str | None, default: Any) -> Any:
    """A JSON text column's value; ``default`` for NULL or empty."""
    return json.loads(text) if text else default


def last_pk(table: Table) -> int:
    """The integer primary key of the row ``table`` just inserted (its ``last_pk`` after ``insert``)."""
    if table.last_pk is None:
        raise RuntimeError(f"no row was inserted into {table.name}")
    return int(table.last_pk)


def update_row(db: Database, table: str, key: dict[str, Any], values: dict[str, Any]) -> None:
    """``UPDATE table SET values WHERE key`` in one statement, for the per-task writes of a run.

    ``Table.update`` of sqlite-utils reads the row and the table's schema (``PRAGMA table_info``) on every call
    to find its primary key: three quarters of the store's cost per task on a 1,000-task run (cProfile). Table
    and column names are the store's own constants, never input.

    Raises:
        sqlite_utils.db.NotFoundError: no row has ``key`` (as ``Table.update`` raises).
    """
    assignments = ", ".join(f"[{column}] = ?" for column in values)
    where = " and ".join(f"[{column}] = ?" for column in key)
    cursor = db.execute(
        f"update [{table}] set {assignments} where {where}", [*values.values(), *key.values()]
    )
    if cursor.rowcount == 0:
        raise SqliteUtilsNotFound(f"no {table} row {tuple(key.values())}")


def get_row(db: Database, table: str, key: dict[str, Any], columns: str = "*") -> dict[str, Any]:
    """The ``columns`` of the row of ``table`` with ``key`` as a dict (``Table.get`` without its schema reads).

    Raises:
        sqlite_utils.db.NotFoundError: no row has ``key`` (as ``Table.get`` raises).
    """
    where = " and ".join(f"[{column}] = ?" for column in key)
    cursor = db.execute(f"select {columns} from [{table}] where {where}", list(key.values()))
    row = cursor.fetchone()
    if row is None:
        raise SqliteUtilsNotFound(f"no {table} row {tuple(key.values())}")
    return dict(zip([d[0] for d in cursor.description], row, strict=True))


def reads(method: Callable[Concatenate[C, P], R]) -> Callable[Concatenate[C, P], R]:
    """Make a store method one read transaction (one snapshot; joins an open transaction)."""

    @functools.wraps(method)
    def wrapper(self: C, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.in_transaction(False, lambda: method(self, *args, **kwargs))

    return wrapper


def writes(method: Callable[Concatenate[C, P], R]) -> Callable[Concatenate[C, P], R]:
    """Make a store method one write transaction (``BEGIN IMMEDIATE``; joins an open write transaction)."""

    @functools.wraps(method)
    def wrapper(self: C, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.in_transaction(True, lambda: method(self, *args, **kwargs))

    return wrapper


class StoreConnection:
    """One SQLite connection to the state database of ``home``, serialised by a lock (thread-safe); see
    :class:`~jupyter_orchestrate.store.Store` for the arguments and the errors every method may raise.

    Busy database: SQLite waits for another process's lock up to the busy timeout, but may also answer
    "locked" at once (a fresh file switching to WAL, a WAL index being rebuilt). A transaction that fails so
    is retried from its start (it was rolled back) with a random exponential wait, until the busy timeout
    has passed since its first try; only then is it a :class:`~..errors.StoreBusyError`. A thread inside
    :meth:`patience` retries longer (a runner: its records must outlast a burst of contention, where a
    request had better answer 503 at once).
    """

    def __init__(self, home: str | os.PathLike[str], *, busy_timeout_seconds: float = BUSY_TIMEOUT_SECONDS):
        self.home = Path(home).expanduser().resolve()
        self.path = self.home / DB_NAME
        self.busy_timeout_seconds = busy_timeout_seconds
        self._lock = threading.RLock()
        self._transaction_kind: str | None = None  # "read" or "write" while this connection has one open
        self._damaged: StoreError | None = None  # set once the file is found damaged: no write after that
        self._patience = threading.local()  # seconds: how long this thread retries a busy database
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the state home {self.home}: {exc.strerror}; "
                "fix its permissions or free space, or choose another --home",
                str(self.path),
            ) from exc
        conn = None
        try:
            # isolation_level=None: no implicit transactions; _transaction opens each one itself
            conn = sqlite3.connect(
                str(self.path), timeout=busy_timeout_seconds, check_same_thread=False, isolation_level=None
            )
            self.db = Database(conn, execute_plugins=False)
            if str(self.path) not in _checked_files:  # later connections of this process skip the full read
                self._retry_busy(self._check_integrity)
                _checked_files.add(str(self.path))
            self._retry_busy(self._use_wal)
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._retrying()(self._migrate)
        except BaseException as exc:
            if conn is not None:
                conn.close()
            error = self._translate(exc) if isinstance(exc, sqlite3.Error) else None
            if error is None:
                raise
            raise error from exc

    def _migrate(self) -> None:
        with self._transaction(write=False):
            pending = migrations.pending(self.db)
        if pending:
            with self._transaction(write=True):  # racing processes: the first applies, the others see it done
                migrations.apply(self.db)

    def _translate(self, exc: sqlite3.Error) -> StoreError | None:
        """The :class:`StoreError` for an SQLite error that is a fault of the file or the disk; None for a bug."""
        code, path = sqlite_code(exc), str(self.path)
        if code in (_BUSY, _LOCKED):
            return StoreBusyError(
                f"the state database {path} stayed locked by another process for more than "
                f"{self.busy_timeout_seconds:g} s ({exc}); nothing was written: retry, or stop the process holding it "
                "(a run, scheduler or server on this state home)",
                path,
            )
        if code == _FULL:
            return StoreError(
                f"cannot write the state database {path}: the disk is full ({exc}); the change was rolled "
                "back: free space on its disk and retry",
                path,
            )
        if code in (_CORRUPT, _NOTADB):
            self._damaged = self._damaged_error(str(exc))
            return self._damaged
        if code in (_READONLY, _PERM, _CANTOPEN, _IOERR):
            return StoreError(
                f"cannot use the state database {path} ({exc}); check that it and its folder are "
                "writable by you and on a working local disk, or choose another --home",
                path,
            )
        return None

    def _damaged_error(self, detail: str) -> StoreError:
        path = str(self.path)
        detail = " ".join(detail.split())  # SQLite's reports span lines; the CLI's error is one line
        return StoreError(
            f"the state database {path} is damaged ({detail}); it was left unchanged: move it (with its "
            "-wal and -shm files) aside to start a new history, or salvage it with "
            f"`sqlite3 {path} .recover`",
            path,
        )

    def _check_integrity(self) -> None:
        """Refuse a damaged file before anything writes to it (recovery of dead runs, migrations, a new run)."""
        rows = self.db.execute("PRAGMA quick_check").fetchall()
        if rows != [("ok",)]:
            more = f" and {len(rows) - 1} more problem(s)" if len(rows) > 1 else ""
            self._damaged = self._damaged_error(f"quick_check: {rows[0][0]}{more}")
            raise self._damaged

    def _use_wal(self) -> None:
        """Switch the file to WAL (persistent; a no-op once done). On a fresh file racing processes contend for
        the exclusive lock this needs, and SQLite may answer SQLITE_BUSY early (retried by the caller)."""
        mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(
                f"the state database {self.path} cannot use write-ahead logging (journal mode stays "
                f"{mode}); put the state home on a local disk",
                str(self.path),
            )

    @contextmanager
    def patience(self, seconds: float) -> Iterator[None]:
        """Inside, this thread's transactions retry a busy database for up to ``seconds`` in total (at least
        the busy timeout) before a :class:`~..errors.StoreBusyError`; each retry after a full busy wait is
        logged. Nests; other threads keep the busy timeout."""
        previous = getattr(self._patience, "seconds", None)
        self._patience.seconds = seconds
        try:
            yield
        finally:
            self._patience.seconds = previous

    def _with_retries(self, once: Callable[[], R]) -> R:
        """``once()``, retried while it raises :class:`StoreBusyError` until the busy timeout (or this thread's
        :meth:`patience`) has passed since its first try; then the last error is raised.

        The first try runs without tenacity: building a ``Retrying`` for every transaction cost a 1,000-task
        run a fifth of its store time (cProfile), and nearly every transaction succeeds at once."""
        started = time.monotonic()
        try:
            return once()
        except StoreBusyError:
            spent = time.monotonic() - started
            if spent >= self._retry_limit():
                raise
        time.sleep(random.uniform(0, RETRY_MULTIPLIER_SECONDS))  # the first wait of the strategy below
        result: R = self._retrying(time.monotonic() - started)(once)
        return result

    def _retry_limit(self) -> float:
        return max(self.busy_timeout_seconds, getattr(self._patience, "seconds", None) or 0.0)

    def _retrying(self, spent: float = 0.0) -> Retrying:
        """Retries of a step that raised :class:`StoreBusyError` after ``spent`` seconds of tries, until the
        limit of :meth:`_with_retries` has passed since the first try."""
        limit = self._retry_limit()

        def note(state: RetryCallState) -> None:
            waited = spent + (state.seconds_since_start or 0.0)
            if waited >= self.busy_timeout_seconds:
                log.warning(
                    "the state database %s is still locked after %.0f s; retrying for up to %g s",
                    self.path,
                    waited,
                    limit,
                )

        return Retrying(
            retry=retry_if_exception_type(StoreBusyError),
            stop=stop_after_delay(max(limit - spent, 0.0)),
            wait=wait_random_exponential(multiplier=RETRY_MULTIPLIER_SECONDS, max=0.5),
            before_sleep=note,
            reraise=True,
        )

    def _retry_busy(self, step: Callable[[], R]) -> R:
        """Run ``step`` (SQL outside a transaction), retrying while SQLite answers "locked"."""

        def once() -> R:
            try:
                return step()
            except sqlite3.OperationalError as exc:
                if sqlite_code(exc) in (_BUSY, _LOCKED):
                    raise self._translate(exc) or exc from exc
                raise

        return self._with_retries(once)

    def in_transaction(self, write: bool, call: Callable[[], R]) -> R:
        """``call()`` inside one transaction (see :meth:`_transaction`). The outermost transaction is retried
        from its start while the database is busy (see the class docstring); a nested one joins it."""
        with self._lock:
            if self._transaction_kind is not None:
                with self._transaction(write=write):
                    return call()

            def once() -> R:
                with self._transaction(write=write):
                    return call()

            return self._with_retries(once)

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[None]:
        """One transaction on this thread's turn of the connection; nested calls join the open one.

        A write takes the write lock at once (``BEGIN IMMEDIATE``, waiting up to the busy timeout), so it never
        fails half-way on a lock another process took after its first read; a read sees one snapshot. SQLite
        faults become :class:`StoreError` and roll the transaction back.
        """
        with self._lock:
            if self._transaction_kind is not None:
                if write and self._transaction_kind == "read":
                    # would upgrade the lock late
                    raise RuntimeError("a store write inside a read transaction")
                yield
                return
            if write and self._damaged is not None:
                raise self._damaged
            conn = self.db.conn
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                self._transaction_kind = "write" if write else "read"
                yield
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):  # the original error says more than a failed rollback
                        conn.execute("ROLLBACK")
                error = self._translate(exc) if isinstance(exc, sqlite3.Error) else None
                if error is None:
                    raise
                raise error from exc
            finally:
                self._transaction_kind = None

    @classmethod
    def open_read_only(cls, home: str | os.PathLike[str]) -> Self | None:
        """The store of an existing state home opened read-only (SQLite ``mode=ro``): no folder, database,
        migration or write is made (read-only commands, the server's store watcher).

        Returns: the store, or None when ``home`` has no database yet. A write through it raises StoreError.

        Raises:
            StoreError: the file cannot be opened or is not a database.
        """
        self = cls.__new__(cls)
        self.home = Path(home).expanduser().resolve()
        self.path = self.home / DB_NAME
        if not self.path.is_file():
            return None
        self.busy_timeout_seconds = BUSY_TIMEOUT_SECONDS
        self._lock = threading.RLock()
        self._transaction_kind = None
        self._damaged = None
        self._patience = threading.local()
        try:
            conn = sqlite3.connect(
                f"{self.path.as_uri()}?mode=ro",
                uri=True,
                timeout=BUSY_TIMEOUT_SECONDS,
                check_same_thread=False,
                isolation_level=None,
            )
            self.db = Database(conn, execute_plugins=False)
            # fails now on a file that is not a database
            self.db.execute("select count(*) from sqlite_master").fetchone()
        except sqlite3.Error as exc:
            raise self._translate(exc) or exc from exc
        return self

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()

    def attempt_dir(self, run_id: int, task_key: str) -> Path:
        """Folder holding the executed notebooks and logs of a task run: ``runs/<run_id>/<task_key>``, and
        ``runs/<run_id>/<task_key>/<map_index>`` for an iteration of a for-each task."""
        split = split_iteration_key(task_key)
        if split is not None:
            return self.home / "runs" / str(run_id) / split[0] / str(split[1])
        return self.home / "runs" / str(run_id) / task_key

    def _not_found(self, run_id: int) -> NotFoundError:
        return NotFoundError(f"run {run_id} not found in state home {self.home}")
