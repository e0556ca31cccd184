"""Real servers for the cluster tests, each started on loopback by the test and stopped after:
an S3 server (moto), a PostgreSQL server (Debian's binaries) and Ray nodes started with
``ray start``, each Ray with its own ``RAY_TMPDIR`` (so its processes are found by that
variable, and a stale bootstrap file there touches no other Ray).

Imported as ``from cluster_helpers import ...`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from study.orphan_guard import stop_processes_with
from study.ray_env import RAY_ENV

BIN = Path(sys.executable).parent
POSTGRES_BINS = sorted(
    Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
)
POSTGRES_BIN = POSTGRES_BINS[-1].parent if POSTGRES_BINS else Path("/usr/lib/postgresql/15/bin")
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "clipstudy",
    "AWS_SECRET_ACCESS_KEY": "clipstudy",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on 127.0.0.1:{port}"
            time.sleep(0.2)


def short_tmpdir(prefix: str) -> Path:
    """A directory with a short path under /tmp (Ray's Unix sockets allow ~107 characters)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def ray_env(ray_tmpdir: Path, **extra: str) -> dict[str, str]:
    """The environment of a clipstudy or ``ray start`` subprocess with its own Ray temp dir."""
    return {**os.environ, **RAY_ENV, "RAY_TMPDIR": str(ray_tmpdir), **extra}


def clipstudy(*argv: str, env: dict[str, str], **popen) -> subprocess.Popen:
    """``clipstudy argv`` as a subprocess (the console script of this venv)."""
    return subprocess.Popen([str(BIN / "clipstudy"), *argv], env=env, **popen)


@contextmanager
def s3_server() -> Iterator[str]:
    """A moto S3 server on loopback with the bucket ``clipstudy``; yields its endpoint URL and
    sets the AWS variables pyarrow (driver and Ray workers) reads, restoring them after."""
    if not (BIN / "moto_server").exists():
        pytest.skip("moto_server is not installed (pip install -e '.[dev]')")
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    saved = {key: os.environ.get(key) for key in [*S3_ENV, "AWS_ENDPOINT_URL"]}
    try:
        wait_for_port(port, 30, process)
        os.environ.update({**S3_ENV, "AWS_ENDPOINT_URL": endpoint})
        import pyarrow.fs

        s3 = pyarrow.fs.S3FileSystem(endpoint_override=endpoint, allow_bucket_creation=True)
        s3.create_dir("clipstudy")
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        process.terminate()
        process.wait(timeout=10)


def _as_postgres(argv: list[str]) -> list[str]:
    """``argv`` run as the ``postgres`` user when we are root (initdb refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL 15 server on 127.0.0.1 (trust auth, data in a temp dir owned by
    the server's user); yields the SQLAlchemy URL of its database ``clipstudy``."""
    if not (POSTGRES_BIN / "initdb").exists():
        pytest.skip(
            f"PostgreSQL is not installed ({POSTGRES_BIN}/initdb missing); .ci/run "
            "installs Debian's postgresql"
        )
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as postgres")
    root = short_tmpdir("pg")
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    port = free_port()
    try:
        subprocess.run(
            _as_postgres(
                [
                    str(POSTGRES_BIN / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "clipstudy",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            capture_output=True,
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
        subprocess.run(
            _as_postgres(
                [
                    str(POSTGRES_BIN / "pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    options,
                    "-l",
                    str(root / "log"),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={port} user=clipstudy dbname=postgres", autocommit=True
        ) as connection:
            connection.execute("CREATE DATABASE clipstudy")
        yield f"postgresql://clipstudy@127.0.0.1:{port}/clipstudy"
    finally:
        subprocess.run(
            _as_postgres(
                [str(POSTGRES_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
            ),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


SECOND_NODE_IP = "127.0.0.2"  # loopback too, but another node IP than the head's


@contextmanager
def two_node_cluster(head_cpus: int = 1, second_cpus: int = 1) -> Iterator[tuple[str, Path]]:
    """A Ray head and a second node (``ray start --address``, node IP 127.0.0.2, its own
    custom resource ``second_node``) on this machine, sharing one short temp dir; yields the
    head's address and that dir, and stops both nodes afterwards. Multi-node Ray needs
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1`` on the nodes; the head then takes this host's IP."""
    tmpdir = short_tmpdir("rc")
    env = ray_env(tmpdir, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="1")
    port = free_port()
    address = f"127.0.0.1:{port}"
    ray = str(BIN / "ray")
    try:
        subprocess.run(
            [
                ray,
                "start",
                "--head",
                f"--port={port}",
                f"--num-cpus={head_cpus}",
                "--num-gpus=0",
                "--include-dashboard=false",
                "--disable-usage-stats",
                f"--temp-dir={tmpdir}",
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [
                ray,
                "start",
                f"--address={address}",
                f"--num-cpus={second_cpus}",
                "--num-gpus=0",
                f"--node-ip-address={SECOND_NODE_IP}",
                '--resources={"second_node": 1}',
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield address, tmpdir
    finally:
        # `ray stop` would stop every Ray of this user on the machine: stop this one only
        stop_processes_with("RAY_TMPDIR", str(tmpdir), files_under=str(tmpdir))
        shutil.rmtree(tmpdir, ignore_errors=True)
