"""The Optuna storage of a study: an SQLAlchemy URL or a journal file.

``study.storage`` in a study file may be empty (an SQLite file ``optuna.db`` in the run
directory), any SQLAlchemy URL (``postgresql://...`` for many writers on a cluster), or
``journal:PATH`` for an Optuna journal file (for example on NFS).
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

JOURNAL_PREFIX = "journal:"


def default_storage_url(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / 'optuna.db').resolve()}"


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """A storage instance for ``url`` (Ray's OptunaSearch needs an instance, not a URL)."""
    if url.startswith(JOURNAL_PREFIX):
        return JournalStorage(JournalFileBackend(url.removeprefix(JOURNAL_PREFIX)))
    return RDBStorage(url)
