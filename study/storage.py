"""What a run keeps outside its driver: the Optuna storage and the checkpoint storage.

``[storage] optuna`` in a study file may be empty (an SQLite file ``optuna.db`` in the run
directory), any SQLAlchemy URL (``postgresql://...`` for many writers on a cluster), or
``journal:PATH`` for an Optuna journal file (for example on NFS). ``[storage] checkpoints``
is a pyarrow filesystem URI (``s3://bucket/prefix``) or an absolute path: Ray Tune's
storage path, opened here with the same pyarrow filesystems Ray uses.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pyarrow.fs
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from study.errors import UsageError

JOURNAL_PREFIX = "journal:"


def default_storage_url(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / 'optuna.db').resolve()}"


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """A storage instance for ``url`` (Ray's OptunaSearch needs an instance, not a URL)."""
    if url.startswith(JOURNAL_PREFIX):
        return JournalStorage(JournalFileBackend(url.removeprefix(JOURNAL_PREFIX)))
    return RDBStorage(url)


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
