"""Serve optuna-dashboard over a run directory's study storage."""

from __future__ import annotations

import socket
from pathlib import Path

import optuna

from study.config import load_config
from study.errors import UsageError
from study.storage import JOURNAL_PREFIX, existing_storage_url, open_storage, rdb_storage


def storage_url_of(run_dir: Path) -> str:
    """The Optuna storage URL recorded in ``run_dir/study.toml``."""
    if not (run_dir / "study.toml").is_file():
        raise UsageError(
            f"{run_dir} is not a clipstudy run directory (no study.toml); "
            "pass a directory created by `clipstudy sweep`"
        )
    return existing_storage_url(load_config(run_dir / "study.toml").storage.optuna, run_dir)


def open_dashboard_storage(url: str) -> optuna.storages.BaseStorage:
    """The storage at ``url``, opened read-mostly as optuna-dashboard opens it (no tables
    created in a database); UsageError naming the URL if it cannot be opened."""
    try:
        if url.startswith(JOURNAL_PREFIX):
            return open_storage(url)
        return rdb_storage(url, skip_compatibility_check=True, skip_table_creation=True)
    except Exception as exc:  # sqlalchemy, driver and journal errors alike
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"cannot open the Optuna storage {url}: {first_line}") from None


def check_bindable(host: str, port: int) -> None:
    """UsageError unless a server could listen on ``host:port`` now (port taken, bad host)."""
    if not 1 <= port <= 65535:
        raise UsageError(f"--port must be in 1..65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
            sock.bind(address)
    except OSError as exc:
        raise UsageError(
            f"cannot serve the dashboard on {host}:{port} ({exc.strerror or exc}); "
            "pick another --port or --host"
        ) from None


def serve(run_dir: Path, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Block serving the dashboard at http://host:port until interrupted."""
    from optuna_dashboard import run_server

    storage = open_dashboard_storage(storage_url_of(run_dir))
    check_bindable(host, port)
    print(f"optuna-dashboard for {run_dir} at http://{host}:{port}/dashboard (Ctrl-C stops)")
    run_server(storage, host=host, port=port)
