"""Stop the local Ray a driver started once the driver is gone, however it ended (kill -9).

``ray.init(address="local")`` starts a GCS, a raylet and agents as the driver's children, and
the raylet starts the workers. Ray ties only some of them to the driver's life: after a kill -9
of the driver its dashboard agent, runtime-env agent and idle workers live on. The guard:

- before ``ray.init`` the driver puts ``CLIPSTUDY_RAY_GUARD=<token>`` into its environment,
  which every process of that Ray inherits (workers inherit the raylet's), and removes it
  right after, so nothing the driver starts later carries it;
- once Ray is up, the driver writes Ray's session directory into the pipe: the dashboard and
  runtime-env agents overwrite their environment with their process title (setproctitle), so
  they are found instead by the log files they hold open there;
- a guard process in its own session blocks reading a pipe whose only writer is the driver;
  end-of-file means the driver exited, however it ended, or is shutting down (the guard then
  waits for it to be gone, and never signals it);
- it then sends SIGTERM, and after :data:`GRACE_S` SIGKILL, to every process whose
  environment holds the marker (``/proc/PID/environ``) or that has a file open under the
  session directory (``/proc/PID/fd``; Linux).

Run as ``python -m study.orphan_guard TOKEN DRIVER_PID`` with the pipe as stdin (see :func:`guard`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

MARKER = "CLIPSTUDY_RAY_GUARD"
GRACE_S = 3.0  # between SIGTERM and SIGKILL
DRIVER_EXIT_S = 30.0  # how long the guard lets a driver that closed its pipe shut Ray down
_GUARDS: list[subprocess.Popen] = []  # their stdin, the pipe's write end, open until exit


def _has_file_under(pid_dir: Path, directory: str) -> bool:
    prefix = directory.rstrip("/") + "/"
    try:
        targets = [os.readlink(fd) for fd in (pid_dir / "fd").iterdir()]
    except OSError:  # gone meanwhile, or another user's
        return False
    return any(target.startswith(prefix) for target in targets)


def processes_with(variable: str, value: str, files_under: str | None = None) -> list[int]:
    """PIDs of the live processes (other than this one) whose environment holds
    ``variable=value``, or that have a file open under the directory ``files_under``; zombies
    are left out (they are gone, only not yet reaped)."""
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
        if state == "Z":
            continue
        if needle in environ.split(b"\0") or (files_under and _has_file_under(entry, files_under)):
            found.append(int(entry.name))
    return found


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signum)


def stop_processes_with(
    variable: str,
    value: str,
    files_under: str | None = None,
    grace_s: float = GRACE_S,
    spare: int | None = None,
) -> None:
    """SIGTERM every process :func:`processes_with` finds but ``spare``, then SIGKILL, until
    none is left (a process forked meanwhile is caught too), for at most ``10 * grace_s``:
    ``ray stop`` for one Ray, where ``ray stop`` itself stops every Ray of the user."""

    def found() -> list[int]:
        return [pid for pid in processes_with(variable, value, files_under) if pid != spare]

    _signal_all(found(), signal.SIGTERM)
    start = time.monotonic()
    while pids := found():
        waited = time.monotonic() - start
        if waited > 10 * grace_s:
            return
        if waited > grace_s:
            _signal_all(pids, signal.SIGKILL)
        time.sleep(0.1)


@contextmanager
def guard() -> Iterator[Callable[[str], None]]:
    """Around the ``ray.init`` that starts a local Ray: mark what it starts, and leave a guard
    process that stops the marked processes once this process has exited. Call the function
    it yields with Ray's session directory once Ray is up."""
    if not Path("/proc/self/environ").exists():  # not Linux: no guard
        yield lambda session_dir: None
        return
    token = uuid.uuid4().hex
    process = subprocess.Popen(
        [sys.executable, "-m", "study.orphan_guard", token, str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives a kill of the driver's process group
    )
    _GUARDS.append(process)

    def tell_session_dir(session_dir: str) -> None:
        assert process.stdin is not None
        process.stdin.write(f"{session_dir}\n".encode())
        process.stdin.flush()

    os.environ[MARKER] = token
    try:
        yield tell_session_dir
    finally:
        os.environ.pop(MARKER, None)


def _wait_gone(pid: int, timeout_s: float) -> None:
    """Wait until process ``pid`` has exited (a zombie counts as exited), at most
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state == "Z":
            return
        time.sleep(0.1)


def main(token: str, driver_pid: int) -> None:
    """Wait for end-of-file on stdin and for the driver to have exited (its pipe also closes
    while it shuts down), then stop the marked processes and those holding files in the
    session directory the driver wrote there, if any."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the driver
    received = b""
    while chunk := sys.stdin.buffer.read(1 << 16):
        received += chunk
    _wait_gone(driver_pid, timeout_s=DRIVER_EXIT_S)
    session_dir = received.decode(errors="replace").strip() or None
    stop_processes_with(MARKER, token, files_under=session_dir, spare=driver_pid)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
