"""``[storage] optuna = "postgresql://..."`` against a real PostgreSQL server the test starts
(Debian's binaries, a temp data dir, 127.0.0.1 on a free port): a sweep interrupted and
resumed keeps every trial once in PostgreSQL (no ``optuna.db`` in the run directory), and
``clipstudy dashboard`` serves those studies; a storage opened while another process creates
the database opens."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error

import optuna
import pandas as pd
import pytest
import sqlalchemy
from cluster_helpers import BIN, free_port, postgres_server
from sqlalchemy.pool import NullPool
from test_dashboard import STARTUP_TIMEOUT_S, get_json
from test_sweep import CELLS, FINISHED_STATES, _interrupt, assert_truthful
from test_sweep import write_config as write_sweep_config

from study.cli import run
from study.dashboard import open_dashboard_storage
from study.storage import open_storage
from study.studies import load_cell_studies

NAME = "pg-resumable"


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        yield url


def _studies(url: str) -> dict[str, optuna.Study]:
    storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
    return load_cell_studies(storage, NAME)


def _finished(url: str) -> int:
    """Finished trials in the database, polled while the sweep may still be creating it: one
    plain query ("not there yet" counts as 0). Not an ``RDBStorage``: opening one stamps
    Optuna's version rows, which races the sweep's own stamping (the sweep's open survives it,
    see the last test, but a poll should not write)."""
    query = sqlalchemy.text(f"SELECT count(*) FROM trials WHERE state IN {FINISHED_STATES}")
    try:
        engine = sqlalchemy.create_engine(url, poolclass=NullPool)
        with engine.connect() as connection:
            return int(connection.execute(query).scalar_one())
    except sqlalchemy.exc.SQLAlchemyError:
        return 0  # the sweep has not created the tables yet


def _serve_dashboard(run_dir, tmp_path):
    port = free_port()
    log = (tmp_path / "dashboard.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "clipstudy"), "dashboard", str(run_dir), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        assert process.poll() is None, (tmp_path / "dashboard.log").read_text()
        try:
            get_json(f"http://127.0.0.1:{port}/api/studies")
            return process, f"http://127.0.0.1:{port}"
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            assert time.monotonic() < deadline, "the dashboard never answered"
            time.sleep(0.25)


def test_interrupted_sweep_resumes_in_postgres_and_the_dashboard_reads_it(
    postgres_url, tiny_dataset, tmp_path
):
    config = write_sweep_config(tmp_path, tiny_dataset, name=NAME, trials_per_cell=2)
    config.write_text(config.read_text() + f'\n[storage]\noptuna = "{postgres_url}"\n')
    run_dir = tmp_path / "runs" / NAME
    _interrupt(
        ["sweep", str(config)],
        ready=lambda: _finished(postgres_url) >= 1,
        log=tmp_path / "sweep.log",
    )
    assert 1 <= _finished(postgres_url) < 4

    assert run(["sweep", str(run_dir), "--resume"]) == 0
    assert not (run_dir / "optuna.db").exists()
    studies = _studies(postgres_url)
    assert {cell: len(s.trials) for cell, s in studies.items()} == dict.fromkeys(CELLS, 2)
    trials = [t for s in studies.values() for t in s.trials]
    assert len({t.user_attrs["ray_trial_id"] for t in trials}) == 4
    assert all(t.state.is_finished() for t in trials)
    assert_truthful(trials)
    table = pd.read_parquet(run_dir / "trials.parquet")
    assert not table.duplicated(["trial_id", "epoch"]).any()

    process, base = _serve_dashboard(run_dir, tmp_path)
    try:
        listing = get_json(f"{base}/api/studies")["study_summaries"]
        served = {s["study_name"]: s["study_id"] for s in listing}
        assert set(served) == {NAME, *(s.study_name for s in studies.values())}
        for study in studies.values():
            detail = get_json(f"{base}/api/studies/{served[study.study_name]}")
            numbers = sorted(t["number"] for t in detail["trials"])
            assert numbers == sorted(t.number for t in study.trials)
            assert json.dumps(detail["trials"])  # the served trials are plain JSON
    finally:
        process.terminate()
        process.wait(timeout=10)


def _new_database(url: str, name: str) -> str:
    """The URL of a new, empty database ``name`` on the server of ``url``."""
    server = sqlalchemy.engine.make_url(url)
    engine = sqlalchemy.create_engine(
        server.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    with engine.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    return server.set(database=name).render_as_string(hide_password=False)


@pytest.mark.parametrize("opener", [open_storage, open_dashboard_storage])
def test_a_storage_opened_while_another_process_creates_it_opens(postgres_url, opener):
    """Opening Optuna's storage on a new database stamps its version; another process
    stamping it at the same moment (here a connection holding the row uncommitted, as a
    sweep creating the database does while the dashboard opens it) makes the open's INSERT
    wait and then fail with UniqueViolation, unless the open tries again (study.storage)."""
    url = _new_database(postgres_url, f"creation_race_{opener.__name__}")
    optuna.storages.RDBStorage(url).engine.dispose()  # the tables, and their version
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    with engine.begin() as connection:
        (revision,) = connection.exec_driver_sql("SELECT version_num FROM alembic_version").one()
        connection.exec_driver_sql("DELETE FROM alembic_version")  # as before the first stamp
    opened: list[object] = []
    with engine.connect() as creator:
        creator.exec_driver_sql("INSERT INTO alembic_version VALUES (%s)", (revision,))
        thread = threading.Thread(
            target=lambda: opened.append(_open_or_error(opener, url)), daemon=True
        )
        thread.start()
        _wait_for_the_stamp_to_wait(engine, thread)
        creator.commit()  # the other process's stamp lands; the waiting INSERT now conflicts
    thread.join(timeout=30)
    assert not thread.is_alive()
    (storage,) = opened
    assert isinstance(storage, optuna.storages.RDBStorage), storage
    try:
        assert storage.get_all_studies() == []
    finally:
        storage.engine.dispose()


def _open_or_error(opener, url: str) -> object:
    try:
        return opener(url)
    except Exception as error:  # the test's assertion shows it
        return error


def _wait_for_the_stamp_to_wait(
    engine: sqlalchemy.Engine, thread: threading.Thread, timeout_s: float = 20.0
) -> None:
    """Until the opener's version stamp (an INSERT into alembic_version) waits for a lock. A
    new connection per look: PostgreSQL keeps a transaction's view of pg_stat_activity."""
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query LIKE 'INSERT INTO alembic_version%%'"
    )
    deadline = time.monotonic() + timeout_s
    while True:
        with engine.connect() as connection:
            if connection.exec_driver_sql(query).scalar_one():
                return
        assert thread.is_alive(), "the opener ended without waiting for the stamp's lock"
        assert time.monotonic() < deadline, "the opener never waited for the stamp's lock"
        time.sleep(0.05)
