"""``clipstudy dashboard RUN``: optuna-dashboard over the run directory's Optuna storage."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest
from cluster_helpers import free_port

from study.cli import main
from study.config import StudyConfig, load_config, to_toml
from study.dashboard import storage_url_of
from study.errors import UsageError

NAME = "dash"
STARTUP_TIMEOUT_S = 60  # the server answers in ~5 s; generous for a loaded CI machine

CONFIG = """\
[study]
name = "dash"
space = "demo"
metric = "r_mean"

[scheduler]
max_epochs = 3
grace_period = 1

[data]
dir = "DATA_DIR"
"""

# (final value or None for a pruned trial, intermediate value per epoch)
TRIALS = [(41.0, [20.0, 35.0, 41.0]), (None, [5.0]), (48.5, [25.0, 40.0, 48.5])]


def make_config(tmp_path: Path, data_dir: Path) -> StudyConfig:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.replace("DATA_DIR", str(data_dir)))
    return load_config(path, [f"study.runs_dir={json.dumps(str(tmp_path / 'runs'))}"])


@pytest.fixture
def run_dir(tmp_path: Path, tiny_dataset: Path) -> Path:
    """A run directory as a sweep leaves it: study.toml and an Optuna SQLite study."""
    cfg = make_config(tmp_path, tiny_dataset)
    cfg.run_dir.mkdir(parents=True)
    (cfg.run_dir / "study.toml").write_text(to_toml(cfg))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=cfg.study.name, storage=cfg.storage_url, direction="maximize"
    )
    for value, curve in TRIALS:
        trial = study.ask()
        trial.suggest_categorical("loss", ["clip", "sogclr"])
        trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        trial.set_user_attr("epochs_completed", len(curve))
        for epoch, r_mean in enumerate(curve, start=1):
            trial.report(r_mean, epoch)
        if value is None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, value)
    return cfg.run_dir


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_dashboard_serves_the_run(run_dir: Path, tmp_path: Path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    script = Path(sys.executable).parent / "clipstudy"
    log = (tmp_path / "dashboard.log").open("w")
    process = subprocess.Popen(
        [str(script), "dashboard", str(run_dir), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            assert process.poll() is None, (tmp_path / "dashboard.log").read_text()
            try:
                listing = get_json(f"{base}/api/studies")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, "the dashboard never answered"
                time.sleep(0.25)
        studies = {s["study_name"]: s for s in listing["study_summaries"]}
        assert list(studies) == [NAME]
        assert studies[NAME]["directions"] == ["maximize"]

        detail = get_json(f"{base}/api/studies/{studies[NAME]['study_id']}")
        assert detail["name"] == NAME
        trials = sorted(detail["trials"], key=lambda t: t["number"])
        assert [t["state"] for t in trials] == ["Complete", "Pruned", "Complete"]
        for trial, (value, curve) in zip(trials, TRIALS, strict=True):
            steps = [(v["step"], v["value"]) for v in trial["intermediate_values"]]
            assert steps == list(enumerate(curve, start=1))
            # Optuna gives a pruned trial its last intermediate value as its value
            assert trial["values"] == [curve[-1] if value is None else value]
            assert {p["name"] for p in trial["params"]} == {"loss", "lr"}
        assert [t["number"] for t in detail["best_trials"]] == [2]
        assert detail["has_intermediate_values"] is True
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    output = (tmp_path / "dashboard.log").read_text()
    assert f"http://127.0.0.1:{port}/dashboard" in output
    assert "Traceback" not in output


def test_storage_url_of_a_run(run_dir: Path):
    assert storage_url_of(run_dir) == f"sqlite:///{(run_dir / 'optuna.db').resolve()}"
    study = optuna.load_study(study_name=NAME, storage=storage_url_of(run_dir))
    assert len(study.trials) == len(TRIALS)


def test_storage_url_of_a_configured_storage(tmp_path: Path, tiny_dataset: Path):
    """A study.toml naming its own storage needs no optuna.db in the run directory."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    text = to_toml(make_config(tmp_path, tiny_dataset)).replace(
        'optuna = ""', f"optuna = {json.dumps(url)}"
    )
    (run_dir / "study.toml").write_text(text)
    assert storage_url_of(run_dir) == url


def test_storage_url_of_bad_dirs(tmp_path: Path, tiny_dataset: Path):
    with pytest.raises(UsageError, match=r"no study\.toml"):
        storage_url_of(tmp_path / "missing")
    with pytest.raises(UsageError, match=r"no study\.toml"):
        storage_url_of(tmp_path)

    (tmp_path / "study.toml").write_text(to_toml(make_config(tmp_path, tiny_dataset)))
    with pytest.raises(UsageError, match=r"no optuna\.db"):
        storage_url_of(tmp_path)

    (tmp_path / "study.toml").write_text("[study]\nname = 'dash'\nnmae = 1\n[data]\ndir = '.'\n")
    with pytest.raises(UsageError, match=r"study\.nmae; did you mean 'name'"):
        storage_url_of(tmp_path)


def test_dashboard_port_in_use(run_dir: Path, capsys: pytest.CaptureFixture[str]):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as exit_info:
            main(["dashboard", str(run_dir), "--port", str(port)])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("clipstudy: error: cannot serve the dashboard")
    assert f"127.0.0.1:{port}" in lines[0]


def _run_dir_with_storage(tmp_path: Path, tiny_dataset: Path, url: str) -> Path:
    run_dir = tmp_path / "runs" / NAME
    run_dir.mkdir(parents=True)
    text = to_toml(make_config(tmp_path, tiny_dataset))
    (run_dir / "study.toml").write_text(text.replace('optuna = ""', f"optuna = {json.dumps(url)}"))
    return run_dir


def test_dashboard_opens_a_journal_storage(tmp_path, tiny_dataset, monkeypatch):
    """``storage = "journal:PATH"`` is opened as a journal, not guessed from the string."""
    import optuna_dashboard

    from study.storage import open_storage

    journal = tmp_path / "journal.log"
    run_dir = _run_dir_with_storage(tmp_path, tiny_dataset, f"journal:{journal}")
    with pytest.raises(UsageError, match=r"journal file .* does not exist"):
        storage_url_of(run_dir)
    assert not journal.exists()

    study = optuna.create_study(study_name=NAME, storage=open_storage(f"journal:{journal}"))
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    served = []
    monkeypatch.setattr(
        optuna_dashboard, "run_server", lambda storage, **kw: served.append((storage, kw))
    )
    from study.dashboard import serve

    port = free_port()
    serve(run_dir, port=port)
    [(storage, kwargs)] = served
    assert kwargs == {"host": "127.0.0.1", "port": port}
    assert len(optuna.load_study(study_name=NAME, storage=storage).trials) == 2


def test_dashboard_bad_storage_url(tmp_path, tiny_dataset, capsys):
    run_dir = _run_dir_with_storage(tmp_path, tiny_dataset, "nosuchdb://host/db")
    with pytest.raises(SystemExit) as exit_info:
        main(["dashboard", str(run_dir), "--port", str(free_port())])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("clipstudy: error: cannot open the Optuna storage nosuchdb://")
