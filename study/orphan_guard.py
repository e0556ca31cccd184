"""Stop the local Ray a driver started once the driver is gone, however it ended (kill -9).

``ray.init(address="local")`` starts a GCS, a raylet and agents as the driver's children, and
the raylet starts the workers. Ray ties only some of them to the driver's life: after a kill -9
of the driver its dashboard agent, runtime-env agent and idle workers live on. The guard:

- before ``ray.init`` the driver puts ``CLIPSTUDY_RAY_GUARD=<token>`` into its environment,
  which every process of that Ray inherits (workers inherit the raylet's), and removes it
  right after, so nothing the driver starts later carries it;
- a guard process in its own session blocks reading a pipe whose only writer is the driver;
  end-of-file means the driver exited, however it ended;
- it then sends SIGTERM, and after :data:`GRACE_S` SIGKILL, to every process whose
  environment holds the marker (``/proc/PID/environ``; Linux).

Run as ``python -m study.orphan_guard TOKEN`` with the pipe as stdin (see :func:`guard`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

MARKER = "CLIPSTUDY_RAY_GUARD"
GRACE_S = 3.0  # between SIGTERM and SIGKILL
_GUARDS: list[subprocess.Popen] = []  # their stdin, the pipe's write end, open until exit


def processes_with(variable: str, value: str) -> list[int]:
    """PIDs of the live processes (other than this one) whose environment holds
    ``variable=value``; zombies are left out (they are gone, only not yet reaped)."""
    needle = f"{variable}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            environ = (entry / "environ").read_bytes()
        except (OSError, IndexError):  # gone meanwhile, or another user's
            continue
        if state != "Z" and needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signum)


def stop_processes_with(variable: str, value: str, grace_s: float = GRACE_S) -> None:
    """SIGTERM every process whose environment holds ``variable=value``, then SIGKILL, until
    none is left (a process forked meanwhile is caught too), for at most ``10 * grace_s``:
    ``ray stop`` for one Ray, where ``ray stop`` itself stops every Ray of the user."""
    _signal_all(processes_with(variable, value), signal.SIGTERM)
    start = time.monotonic()
    while pids := processes_with(variable, value):
        waited = time.monotonic() - start
        if waited > 10 * grace_s:
            return
        if waited > grace_s:
            _signal_all(pids, signal.SIGKILL)
        time.sleep(0.1)


@contextmanager
def guard() -> Iterator[None]:
    """Around the ``ray.init`` that starts a local Ray: mark what it starts, and leave a guard
    process that stops the marked processes once this process has exited."""
    if not Path("/proc/self/environ").exists():  # not Linux: no guard
        yield
        return
    token = uuid.uuid4().hex
    process = subprocess.Popen(
        [sys.executable, "-m", "study.orphan_guard", token],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives a kill of the driver's process group
    )
    _GUARDS.append(process)
    os.environ[MARKER] = token
    try:
        yield
    finally:
        os.environ.pop(MARKER, None)


def main(token: str) -> None:
    """Wait for end-of-file on stdin (the driver is gone), then stop the marked processes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the driver
    while sys.stdin.buffer.read(1 << 16):
        pass
    stop_processes_with(MARKER, token)


if __name__ == "__main__":
    main(sys.argv[1])
