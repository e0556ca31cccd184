"""The orphan guard's finder: a process is Ray's when its environment holds the marker or
when it holds a file open under Ray's session directory (the agents' process titles
overwrite their environment)."""

from __future__ import annotations

import os
import subprocess
import sys

from study.orphan_guard import processes_with, stop_processes_with

HOLD_FILE = (  # a child that holds a file open until killed
    "import sys, time; f = open(sys.argv[1], 'w'); print('ready', flush=True); time.sleep(60)"
)


def _holding(path, env) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_FILE, str(path)], env=env, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    return child


def test_found_by_marker_or_by_a_file_open_under_the_session_dir(tmp_path):
    session = tmp_path / "session_x"
    (session / "logs").mkdir(parents=True)
    plain_env = {k: v for k, v in os.environ.items() if k != "GUARD_TEST"}
    by_file = _holding(session / "logs" / "agent.out", plain_env)
    by_marker = _holding(tmp_path / "elsewhere.out", {**plain_env, "GUARD_TEST": "token"})
    neither = _holding(tmp_path / "other.out", plain_env)
    try:
        assert set(processes_with("GUARD_TEST", "token")) == {by_marker.pid}
        found = set(processes_with("GUARD_TEST", "token", files_under=str(session)))
        assert found == {by_marker.pid, by_file.pid}
        stop_processes_with("GUARD_TEST", "token", files_under=str(session), grace_s=1.0)
        assert by_file.wait(timeout=10) != 0 and by_marker.wait(timeout=10) != 0
        assert neither.poll() is None  # not Ray's: left alone
    finally:
        for child in (by_file, by_marker, neither):
            child.kill()
            child.wait()
