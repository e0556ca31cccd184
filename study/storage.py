"""What a run keeps outside its driver: the Optuna storage and the checkpoint storage.

``[storage] optuna`` in a study file may be empty (an SQLite file ``optuna.db`` in the run
directory), any SQLAlchemy URL (``postgresql://...`` for many writers on a cluster), or
``journal:PATH`` for an Optuna journal file (for example on NFS). ``[storage] checkpoints``
is a pyarrow filesystem URI (``s3://bucket/prefix``) or an absolute path: Ray Tune's
storage path, opened here with the same pyarrow filesystems Ray uses.

A sweep opens its SQLite file with :func:`open_sweep_storage`: write-ahead logging
(``journal_mode=WAL``, persistent in the file, so readers such as optuna-dashboard never block
the sweep's writes) and ``synchronous=NORMAL`` (a commit is an append to ``optuna.db-wal``
without an fsync: safe when the driver is killed, only an OS crash can lose the last commits),
which saves about a third of the time a trial's ask, reports and tell spend in SQLite (the
rest is SQLAlchemy's own work). WAL needs every connection on one machine (no network
filesystem); the sweep's driver is the only writer. While a sweep runs, its last commits may
be in ``optuna.db-wal`` only: copy the ``optuna.db*`` files together, or after the sweep
(its last connection folds them back into ``optuna.db``).

A new SQLite file appears whole: the sweep creates it (tables, version rows, WAL mode) under a
temporary name and links it into place. Opening an ``RDBStorage`` on a file without Optuna's
version rows writes them, so a reader (the dashboard, a test polling the file) that opened a
half-created file would write into it, fail itself (StorageInternalError), or make the sweep's
own creation fail (``UNIQUE constraint failed: alembic_version.version_num``).

A server database (PostgreSQL) has the same race, between any two processes that open it while
it is new: the sweep and ``clipstudy dashboard``, or two sweeps of a team sharing it. The
loser's ``CREATE TABLE`` or version stamp fails on the winner's: an ``IntegrityError``
(``alembic_version_pkc``, or a type created twice) or a ``ProgrammingError`` (a table created
twice). :func:`rdb_storage`, through which clipstudy opens every SQLAlchemy URL, then opens it
again and finds the tables made.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import optuna
import pyarrow.fs
import sqlalchemy
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from study.errors import UsageError

JOURNAL_PREFIX = "journal:"
SQLITE_PREFIX = "sqlite:"
SQLITE_BUSY_TIMEOUT_S = 60.0  # how long a writer waits for another connection's lock
CREATION_ATTEMPTS = 5  # opens of a new server database that another process is creating


def default_storage_url(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / 'optuna.db').resolve()}"


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """A storage instance for ``url`` (Ray's OptunaSearch needs an instance, not a URL)."""
    if url.startswith(JOURNAL_PREFIX):
        return JournalStorage(JournalFileBackend(url.removeprefix(JOURNAL_PREFIX)))
    return rdb_storage(url)


def rdb_storage(url: str, **options: Any) -> RDBStorage:
    """``RDBStorage(url, **options)``, opened again (up to :data:`CREATION_ATTEMPTS` times)
    while another process is creating the database's tables or version stamp (module
    docstring); the last attempt raises whatever the database says."""
    for attempt in range(1, CREATION_ATTEMPTS):
        try:
            return RDBStorage(url, **options)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            time.sleep(0.1 * attempt)
    return RDBStorage(url, **options)


def open_sweep_storage(url: str) -> optuna.storages.BaseStorage:
    """:func:`open_storage` for the sweep's own writes: an SQLite ``url`` opens as
    :class:`WALSQLiteStorage`; other URLs as :func:`open_storage` opens them."""
    return WALSQLiteStorage(url) if url.startswith(SQLITE_PREFIX) else open_storage(url)


class WALSQLiteStorage(RDBStorage):
    """An SQLite ``RDBStorage`` whose connections use write-ahead logging, commit with
    ``synchronous=NORMAL`` and wait up to :data:`SQLITE_BUSY_TIMEOUT_S` for a lock (see the
    module docstring); also once unpickled (a restored searcher's storage)."""

    def __init__(self, url: str) -> None:
        _create_whole(url)
        super().__init__(url, engine_kwargs={"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}})
        self._tune_connections()

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._tune_connections()

    def _tune_connections(self) -> None:
        sqlalchemy.event.listen(self.engine, "connect", _wal_pragmas)
        self.engine.dispose()  # the connections that created the tables lack the pragmas


def _create_whole(url: str) -> None:
    """Unless it exists, create the SQLite file of ``url`` with Optuna's tables and version
    rows in WAL mode under a temporary name, then link it into place (module docstring)."""
    database = sqlalchemy.engine.make_url(url).database
    if not database or database == ":memory:" or Path(database).exists():
        return
    path = Path(database)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        storage = RDBStorage(f"sqlite:///{partial}")
        with storage.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        storage.engine.dispose()  # the last connection folds the log into the file
        os.link(partial, path)  # FileExistsError if another process created it meanwhile
    except FileExistsError:
        pass
    finally:
        partial.unlink(missing_ok=True)


def _wal_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def existing_storage_url(configured: str, run_dir: Path) -> str:
    """The storage URL of run directory ``run_dir`` (``configured``, or its ``optuna.db`` when
    empty); UsageError when the file it names is not there yet (no sweep has run)."""
    if not configured and not (run_dir / "optuna.db").is_file():
        raise UsageError(f"{run_dir} has no optuna.db yet; run the sweep first")
    journal = configured.removeprefix(JOURNAL_PREFIX)
    if configured.startswith(JOURNAL_PREFIX) and not Path(journal).is_file():
        raise UsageError(f"the journal file {journal} of {run_dir} does not exist")
    return configured or default_storage_url(run_dir)


def checkpoint_filesystem(location: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The pyarrow filesystem and the path in it of a checkpoint location (URI or absolute
    path); UsageError naming the location when pyarrow cannot open it."""
    try:
        return pyarrow.fs.FileSystem.from_uri(location)
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"cannot open the checkpoint storage {location}: {first_line}") from None


def location_exists(location: str) -> bool:
    """Whether a file or directory exists at ``location`` (URI or absolute path)."""
    filesystem, path = checkpoint_filesystem(location)
    return filesystem.get_file_info(path).type != pyarrow.fs.FileType.NotFound
