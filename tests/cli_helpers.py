"""What the ``clipstudy`` error tests share: the study file, a ``ray.init`` that fails the
test, and the check of a one-line usage error.

Imported as ``from cli_helpers import ...`` (pytest puts ``tests/`` on ``sys.path``). The
autouse fixture :func:`_no_ray` applies only to a test module that imports it by name.
"""

from __future__ import annotations

import os

import pytest

from study.cli import main
from study.ray_env import RAY_ENV

NAME = "cli-errors"

BASE = """\
[study]
name = "cli-errors"
space = "demo"
metric = "r_mean"
mode = "max"
trials_per_cell = 1
seed = 0

[scheduler]
max_epochs = 2
grace_period = 1
reduction_factor = 2

[resources]
cpus_per_trial = 1
gpus_per_trial = 0
max_concurrent = 1

[data]
dir = "DATA_DIR"

[model]
embed_dim = 16

[trial]
batch_size = 16
seed = 0

[search]
weight_decay = [1e-3, 0.1]
"""


class RayStarted(AssertionError):
    """Raised by the stand-in for ``ray.init``: the error was found too late."""


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ray.init`` fails the test; Ray's environment variables are restored afterwards."""
    import ray

    for key, value in RAY_ENV.items():
        monkeypatch.setenv(key, os.environ.get(key, value))  # recorded, so undone at teardown

    def refuse(*args, **kwargs):
        raise RayStarted("ray.init was called before the bad input was reported")

    monkeypatch.setattr(ray, "init", refuse)


def expect_usage_error(capsys: pytest.CaptureFixture[str], argv: list[str], *words: str) -> str:
    """Run ``clipstudy argv``; check exit status 2 and a one-line message containing ``words``
    (only what ``main`` prints counts)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2, (out, err)
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("clipstudy: error: "), line
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"
    return line
