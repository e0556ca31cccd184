"""Study files: TOML plus ``--set section.key=value`` overrides -> frozen, validated config.

Sections: ``[study]`` (name, space, metric, trials per cell, ...), ``[scheduler]`` (ASHA),
``[resources]`` (per trial, concurrency), ``[storage]`` (where checkpoints and the Optuna
study live, for clusters), ``[data]`` (:class:`trainables.config.DataPaths`),
``[model]`` (:class:`trainables.model.ModelConfig`), ``[trial]`` (the non-searched fields of
:class:`trainables.config.TrialConfig`), ``[sampler]`` (each cell study's Optuna sampler,
:mod:`study.samplers`) and ``[search]`` (overrides of the search space: a
scalar fixes a parameter, a list narrows its choices, ``[low, high]`` narrows its range).
Everything is checked here, before a run directory or a Ray trial exists.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search_spaces import SearchSpace
from search_spaces.knobs import OverrideError
from study.errors import UsageError
from study.storage import default_storage_url
from trainables.config import DataPaths, TrialConfig
from trainables.losses import build_loss
from trainables.metric_names import METRIC_MODES
from trainables.model_config import ModelConfig

RENAMED = {("study", "num_samples"): "trials_per_cell"}  # (section, old key) -> new key
MOVED = {("study", "storage"): ("storage", "optuna")}  # still read: old run dirs hold it
SEARCHED_TRIAL_FIELDS = (
    "loss",
    "optimizer",
    "optimizer_params",
    "lr",
    "weight_decay",
    "loss_params",
    "epochs",
)
# set by the harness (from [scheduler], by the driver's image cache); never in [trial]
HARNESS_TRIAL_FIELDS = ("checkpoint_epochs", "image_cache")
MOVED_TO_SEARCH = {"momentum": "optimizer_momentum"}  # old [trial] key -> its searched name


@dataclass(frozen=True)
class StudySection:
    name: str
    space: str = "demo"
    metric: str = "r_mean"
    mode: str = "max"
    trials_per_cell: int = 4  # every (loss, optimizer) cell gets the same tuning budget
    seed: int = 0
    runs_dir: str = "runs"

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\ "):
            raise ValueError(f"study.name must be a non-empty word without '/', got {self.name!r}")
        if self.mode not in ("min", "max"):
            raise ValueError(f"study.mode must be 'min' or 'max', got {self.mode!r}")
        if self.trials_per_cell < 1:
            raise ValueError(f"study.trials_per_cell must be >= 1, got {self.trials_per_cell}")


@dataclass(frozen=True)
class SchedulerSection:
    """ASHA over epochs: rungs at grace_period * reduction_factor**k, up to max_epochs."""

    max_epochs: int = 4
    grace_period: int = 1
    reduction_factor: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.grace_period <= self.max_epochs:
            raise ValueError(
                f"scheduler.grace_period must be in [1, max_epochs={self.max_epochs}], "
                f"got {self.grace_period}"
            )
        if self.reduction_factor < 2:
            raise ValueError(
                f"scheduler.reduction_factor must be >= 2, got {self.reduction_factor}"
            )

    @property
    def rung_epochs(self) -> tuple[int, ...]:
        """The epochs where ASHA may stop a trial: its rungs grace_period * reduction_factor**k
        (as Ray's ASHA counts them) up to max_epochs, and max_epochs, where every trial ends."""
        ratio = np.log(self.max_epochs / self.grace_period) / np.log(self.reduction_factor)
        rungs = (self.grace_period * self.reduction_factor**k for k in range(int(ratio + 1)))
        return tuple(sorted({*(r for r in rungs if r <= self.max_epochs), self.max_epochs}))


@dataclass(frozen=True)
class ResourcesSection:
    """What one trial asks Ray for. With ``workers_per_trial`` W > 1 the trial trains
    data-parallel on W Ray Train workers, each with 1/W of ``cpus_per_trial`` and
    ``gpus_per_trial`` (a whole number of GPUs per worker)."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 2
    reuse_actors: bool = True
    workers_per_trial: int = 1

    def __post_init__(self) -> None:
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0 or self.max_concurrent < 1:
            raise ValueError(
                "resources: cpus_per_trial must be > 0, gpus_per_trial >= 0, max_concurrent >= 1"
            )
        if self.workers_per_trial < 1:
            raise ValueError(
                f"resources.workers_per_trial must be >= 1, got {self.workers_per_trial}"
            )
        per_worker = self.gpus_per_trial / self.workers_per_trial
        if self.workers_per_trial > 1 and per_worker != int(per_worker):
            raise ValueError(
                f"resources.gpus_per_trial {self.gpus_per_trial:g} must give each of the "
                f"{self.workers_per_trial} workers_per_trial a whole number of GPUs "
                "(one process per GPU); use a multiple of workers_per_trial"
            )


@dataclass(frozen=True)
class StorageSection:
    """Where a run keeps what outlives its driver. ``checkpoints``: Ray Tune's storage path,
    "" = ``<run dir>/ray``, else a URI pyarrow opens (``s3://bucket/prefix``, ``gs://...``) or
    an absolute path on a filesystem every node mounts; the run's experiments go under
    ``<checkpoints>/<study name>``. ``optuna``: "" = ``<run dir>/optuna.db``, an SQLAlchemy URL
    (``postgresql://user@host/db`` for a dashboard shared across machines) or
    ``journal:PATH``."""

    checkpoints: str = ""
    optuna: str = ""

    def __post_init__(self) -> None:
        relative = "://" not in self.checkpoints and not Path(self.checkpoints).is_absolute()
        if self.checkpoints and relative:
            raise ValueError(
                f"storage.checkpoints must be a URI such as s3://bucket/prefix or an "
                f"absolute path, got {self.checkpoints!r}"
            )


SAMPLER_KINDS = ("tpe", "gp", "random")


@dataclass(frozen=True)
class SamplerSection:
    """The Optuna sampler of every cell study (:mod:`study.samplers`); ``startup_trials`` = 0
    picks the random start-up from the budget (a quarter of trials_per_cell, at least 2);
    ``warm_start`` seeds each cell with its neighbour cells' best configs (study.per_cell)."""

    kind: str = "random"  # what benchmarks/search_efficiency.py found best (README)
    startup_trials: int = 0
    warm_start: bool = False

    def __post_init__(self) -> None:
        if self.kind not in SAMPLER_KINDS:
            raise ValueError(
                f"sampler.kind must be one of {', '.join(map(repr, SAMPLER_KINDS))}, "
                f"got {self.kind!r}"
            )
        if self.startup_trials < 0:
            raise ValueError(
                f"sampler.startup_trials must be >= 0 (0 = a quarter of trials_per_cell), "
                f"got {self.startup_trials}"
            )


@dataclass(frozen=True)
class StudyConfig:
    """A whole study file, validated."""

    study: StudySection
    scheduler: SchedulerSection
    resources: ResourcesSection
    trial: TrialConfig
    search: Mapping[str, Any] = field(default_factory=dict)
    storage: StorageSection = field(default_factory=StorageSection)
    sampler: SamplerSection = field(default_factory=SamplerSection)

    @property
    def space(self) -> SearchSpace:
        return SearchSpace(self.study.space, self.search)

    @property
    def cells(self) -> list[str]:
        """The "loss:optimizer" cells of the study, each tuned in its own Optuna study."""
        return self.space.cells()

    @property
    def num_trials(self) -> int:
        return self.study.trials_per_cell * len(self.cells)

    @property
    def run_dir(self) -> Path:
        return Path(self.study.runs_dir).resolve() / self.study.name

    @property
    def storage_url(self) -> str:
        return self.storage.optuna or default_storage_url(self.run_dir)


def _check_type(where: str, value: Any, annotation: Any) -> Any:
    """``value`` converted to ``annotation`` (int -> float allowed) or UsageError."""
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    origin = typing.get_origin(annotation)
    expected = origin or annotation
    if expected in (typing.Union, types.UnionType):
        expected = tuple(typing.get_args(annotation))
    if expected is Mapping:
        expected = dict
    ok = isinstance(value, expected) and not (isinstance(value, bool) and annotation is not bool)
    if not ok:
        name = getattr(annotation, "__name__", str(annotation))
        raise UsageError(f"{where} must be of type {name}, got {value!r}")
    return value


def _build(cls: type, section: str, values: Mapping[str, Any], **fixed: Any) -> Any:
    """Instantiate dataclass ``cls`` from a TOML table with typo hints and type checks."""
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in dataclasses.fields(cls) if f.name not in fixed]
    kwargs = dict(fixed)
    for key, value in values.items():
        if key not in allowed:
            hint = [RENAMED[section, key]] if (section, key) in RENAMED else []
            hint = hint or difflib.get_close_matches(key, allowed, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            raise UsageError(
                f"unknown key {section}.{key}{suggestion} (valid: {', '.join(allowed)})"
            )
        kwargs[key] = _check_type(f"{section}.{key}", value, hints[key])
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if required:
        raise UsageError(f"missing key {section}.{required[0]} in the study file")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None


def parse_override(assignment: str) -> tuple[list[str], Any]:
    """``"section.key=value"`` -> (["section", "key"], value parsed as TOML, else a string)."""
    key, sep, raw = assignment.partition("=")
    if not sep or "." not in key:
        raise UsageError(f"--set expects section.key=value, got {assignment!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().split("."), value


SECTIONS = (
    "study",
    "scheduler",
    "resources",
    "storage",
    "data",
    "model",
    "trial",
    "sampler",
    "search",
)


def load_config(
    path: Path, overrides: Sequence[str] = (), *, name: str | None = None
) -> StudyConfig:
    """Read, override and validate a study file; raises UsageError naming the problem."""
    if path.is_dir():
        raise UsageError(
            f"{path} is a directory; pass a study TOML file such as configs/demo.toml, "
            "or add --resume to continue the sweep of a run directory"
        )
    if not path.is_file():
        raise UsageError(
            f"study file {path} does not exist; pass a TOML file such as configs/demo.toml"
        )
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"study file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read study file {path}: {exc.strerror or exc}") from None
    for assignment in overrides:
        keys, value = parse_override(assignment)
        table = raw
        for key in keys[:-1]:
            table = table.setdefault(key, {})
            if not isinstance(table, dict):
                raise UsageError(f"--set {assignment}: {key} is not a table")
        table[keys[-1]] = value
    if name is not None:
        raw.setdefault("study", {})["name"] = name
    return config_from_dict(raw)


def config_from_dict(raw: Mapping[str, Any]) -> StudyConfig:
    """Validate the parsed tables of a study file."""
    for section, table in raw.items():
        if section not in SECTIONS:
            hint = difflib.get_close_matches(section, SECTIONS, n=1)
            suggestion = f"; did you mean [{hint[0]}]?" if hint else ""
            raise UsageError(
                f"unknown section [{section}]{suggestion} (valid: {', '.join(SECTIONS)})"
            )
        if not isinstance(table, dict):
            raise UsageError(f"[{section}] must be a table, got {table!r}")
    if "data" not in raw:
        raise UsageError("the study file needs a [data] table with dir = <dataset directory>")
    raw = _moved_keys(raw)
    study = _build(StudySection, "study", raw.get("study", {"name": ""}))
    scheduler = _build(SchedulerSection, "scheduler", raw.get("scheduler", {}))
    resources = _build(ResourcesSection, "resources", raw.get("resources", {}))
    storage = _build(StorageSection, "storage", raw.get("storage", {}))
    data = _build(DataPaths, "data", raw["data"])
    data = dataclasses.replace(data, dir=str(Path(data.dir).resolve()))  # trials run elsewhere
    model = _build(ModelConfig, "model", raw.get("model", {})).with_absolute_paths()
    # DataLoader workers: one CPU of the trial trains, the others load (unless trial.num_workers)
    trial_values = {
        "num_workers": max(0, int(resources.cpus_per_trial) - 1),
        **raw.get("trial", {}),
    }
    searched = sorted(set(trial_values) & {*SEARCHED_TRIAL_FIELDS, *MOVED_TO_SEARCH})
    if searched:
        raise UsageError(
            f"trial.{searched[0]} is set by the search space; fix it with "
            f"[search] {MOVED_TO_SEARCH.get(searched[0], searched[0])} = ... instead"
        )
    trial = _build(
        TrialConfig,
        "trial",
        trial_values,
        data=data,
        model=model,
        epochs=scheduler.max_epochs,
        checkpoint_epochs=scheduler.rung_epochs,  # a trial needs a checkpoint where it stops
        image_cache="",  # the sweep's driver sets it (study.runner)
    )
    sampler = _build(SamplerSection, "sampler", raw.get("sampler", {}))
    search = dict(raw.get("search", {}))
    cfg = StudyConfig(study, scheduler, resources, trial, search, storage=storage, sampler=sampler)
    if cfg.study.metric not in METRIC_MODES:
        raise UsageError(
            f"study.metric {cfg.study.metric!r} is not a reported metric; "
            f"choose one of {', '.join(METRIC_MODES)}"
        )
    expected = METRIC_MODES[cfg.study.metric]
    if cfg.study.mode != expected:
        raise UsageError(
            f"study.mode {cfg.study.mode!r} does not fit study.metric {cfg.study.metric!r}, "
            f"which is better {'higher' if expected == 'max' else 'lower'}; "
            f"set study.mode = {expected!r}"
        )
    try:
        cfg.space.validate()
    except OverrideError as exc:
        raise UsageError(str(exc)) from None
    workers = cfg.resources.workers_per_trial
    if cfg.trial.batch_size % workers:
        raise UsageError(
            f"trial.batch_size {cfg.trial.batch_size} must be divisible by "
            f"resources.workers_per_trial {workers} (each worker takes an equal share of the "
            "global batch)"
        )
    check_sampled_configs(cfg)
    return cfg


def _moved_keys(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` with every key of :data:`MOVED` put under its new section and name; UsageError
    when a file sets both the old and the new key."""
    moved = {section: dict(table) for section, table in raw.items()}
    for (section, key), (new_section, new_key) in MOVED.items():
        if key not in moved.get(section, {}):
            continue
        value = moved[section].pop(key)
        target = moved.setdefault(new_section, {})
        if new_key in target and value not in ("", target[new_key]):
            raise UsageError(
                f"{section}.{key} and {new_section}.{new_key} are both set; "
                f"keep only [{new_section}] {new_key}"
            )
        if value != "":
            target.setdefault(new_key, value)
    return moved


def check_sampled_configs(cfg: StudyConfig, n_trials: int = 64) -> None:
    """Build the trial config and the loss of configs the space samples, so that a space and
    overrides that can produce an invalid trial (say tau_min >= tau_max) fail here."""
    configs, _ = cfg.space.sample(n_trials, seed=cfg.study.seed)
    for params in configs:
        try:
            trial = cfg.trial.with_params(params)
            build_loss(trial.loss, num_samples=2, **trial.loss_kwargs())
            if trial.batch_size % cfg.resources.workers_per_trial:
                raise ValueError(
                    f"batch_size {trial.batch_size} is not divisible by "
                    f"resources.workers_per_trial {cfg.resources.workers_per_trial}"
                )
        except ValueError as exc:
            raise UsageError(
                f"search space {cfg.study.space!r} with [search] {dict(cfg.search)} can give "
                f"an invalid trial ({exc}); narrow or fix the parameters involved"
            ) from None


def to_toml(cfg: StudyConfig) -> str:
    """The resolved config as TOML (written to ``study.toml`` in the run directory)."""
    trial = cfg.trial.to_dict()
    tables = {
        "study": dataclasses.asdict(cfg.study),
        "scheduler": dataclasses.asdict(cfg.scheduler),
        "resources": dataclasses.asdict(cfg.resources),
        "storage": dataclasses.asdict(cfg.storage),
        "data": trial.pop("data"),
        "model": trial.pop("model"),
        "trial": {
            k: v
            for k, v in trial.items()
            if k not in (*SEARCHED_TRIAL_FIELDS, *HARNESS_TRIAL_FIELDS)
        },
        "sampler": dataclasses.asdict(cfg.sampler),
        "search": dict(cfg.search),
    }
    lines = []
    for section, values in tables.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
