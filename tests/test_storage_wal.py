"""The sweep's SQLite storage: write-ahead logging and ``synchronous=NORMAL`` on every
connection (also after unpickling, as a restored searcher's storage is), readable by a plain
``RDBStorage`` (optuna-dashboard's) while the sweep still holds the file open, and no change to
journal storages."""

from __future__ import annotations

import pickle
import sqlite3
import threading
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage, RDBStorage

from study.dashboard import open_dashboard_storage
from study.storage import SQLITE_BUSY_TIMEOUT_S, WALSQLiteStorage, open_sweep_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


def connection_pragmas(storage: optuna.storages.RDBStorage) -> tuple[str, int, int]:
    """(journal_mode, synchronous, busy_timeout in ms) of a connection the storage's pool
    hands out (synchronous 1 = NORMAL, 2 = FULL)."""
    with storage.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        return tuple(  # type: ignore[return-value]
            raw.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "synchronous", "busy_timeout")
        )


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'optuna.db'}"


def test_sweep_storage_connections_use_wal(url: str, tmp_path: Path):
    storage = open_sweep_storage(url)
    assert isinstance(storage, WALSQLiteStorage)
    expected = ("wal", 1, int(SQLITE_BUSY_TIMEOUT_S * 1000))
    assert connection_pragmas(storage) == expected
    restored = pickle.loads(pickle.dumps(storage))
    assert connection_pragmas(restored) == expected
    # the mode is the file's: a plain sqlite3 connection finds it too
    with sqlite3.connect(tmp_path / "optuna.db") as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_plain_storage_reads_the_study_while_the_sweep_writes(url: str, tmp_path: Path):
    study = optuna.create_study(storage=open_sweep_storage(url), study_name="s")
    for value in (3.0, 1.0, 2.0):
        trial = study.ask()
        trial.report(value, 1)
        study.tell(trial, value)
    assert (tmp_path / "optuna.db-wal").is_file()  # the sweep's connections are still open
    dashboard = optuna.load_study(study_name="s", storage=open_dashboard_storage(url))
    assert [t.value for t in dashboard.trials] == [3.0, 1.0, 2.0]
    assert dashboard.best_value == 1.0
    # and the sweep goes on writing while the reader's connection is open
    study.tell(study.ask(), 0.5)
    assert optuna.load_study(study_name="s", storage=url).best_value == 0.5


def test_journal_storage_is_left_alone(tmp_path: Path):
    storage = open_sweep_storage(f"journal:{tmp_path / 'journal.log'}")
    assert isinstance(storage, JournalStorage)


def _poll_like_a_dashboard(path: Path, done: threading.Event, errors: list[str]) -> None:
    """Open an ``RDBStorage`` on ``path`` whenever it exists (as optuna-dashboard and the
    tests' readers did), until ``done``; every error goes into ``errors``."""
    url = f"sqlite:///{path}"
    while not done.is_set():
        if not path.exists():
            continue
        try:
            optuna.get_all_study_names(RDBStorage(url, skip_table_creation=True))
        except Exception as exc:  # any error is the finding
            errors.append(f"{type(exc).__name__}: {exc}"[:200])


def test_a_reader_never_meets_a_half_created_file(tmp_path: Path):
    """A reader polling the file while the sweep creates it, 10 times. Created in place (as
    before), the file met reader errors (StorageInternalError: the reader writes Optuna's
    version rows itself) and failed the sweep's own creation (UNIQUE constraint failed:
    alembic_version.version_num) in every one of 6 runs of this test."""
    reader_errors: list[str] = []
    for attempt in range(10):
        path = tmp_path / f"{attempt}" / "optuna.db"
        path.parent.mkdir()
        done = threading.Event()
        reader = threading.Thread(target=_poll_like_a_dashboard, args=(path, done, reader_errors))
        reader.start()
        try:
            optuna.create_study(storage=open_sweep_storage(f"sqlite:///{path}"), study_name="s")
        finally:
            done.set()
            reader.join()
        assert not [p.name for p in path.parent.iterdir() if "partial" in p.name]
    assert reader_errors == []
