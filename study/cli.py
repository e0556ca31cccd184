"""The ``clipstudy`` command: sweep, confirm, report, dashboard, data synth, demo.

Bad input ends in one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from study.errors import UsageError

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo.toml"
DEMO_DATA = Path("data/synth")
TRAIN_FORMATS = ("json", "csv", "webdataset")  # trainables.config's; spelled out to start fast
CACHE_DIR = ".clipstudy-cache"  # trainables.config.DataPaths.cache_dir's default, likewise


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one ``clipstudy: error:`` line like every other error."""

    def error(self, message: str):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="clipstudy", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    sweep = commands.add_parser("sweep", help="run or resume a hyperparameter sweep")
    sweep.add_argument(
        "config", type=Path, help="study TOML file, or a run directory with --resume"
    )
    sweep.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a study-file value",
    )
    sweep.add_argument("--name", help="run name (default: study.name of the file)")
    sweep.add_argument("--address", help="Ray cluster address (default: a local Ray)")
    sweep.add_argument("--resume", action="store_true", help="continue an interrupted sweep")

    confirm = commands.add_parser(
        "confirm", help="retrain the best config of every cell with common seeds"
    )
    confirm.add_argument("run_dir", type=Path)
    confirm.add_argument("--seeds", type=int, required=True, help="seeds 0..K-1 per cell")
    confirm.add_argument("--cells", help="comma-separated loss:optimizer cells (default: all)")
    confirm.add_argument("--address", help="Ray cluster address (default: a local Ray)")
    confirm.add_argument("--resume", action="store_true", help="continue an interrupted run")

    report = commands.add_parser("report", help="write report.html and report.json")
    report.add_argument("run_dir", type=Path)
    report.add_argument("--baseline", help="loss:optimizer cell the forest plot compares to")

    dash = commands.add_parser("dashboard", help="serve optuna-dashboard for a run directory")
    dash.add_argument("run_dir", type=Path)
    dash.add_argument("--port", type=int, default=8080)
    dash.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind (default 127.0.0.1; 0.0.0.0 exposes it)",
    )

    data = commands.add_parser("data", help="datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    synth = data_commands.add_parser("synth", help="write the built-in synthetic dataset")
    synth.add_argument("dir", type=Path)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--n-train", type=int, default=4096)
    synth.add_argument("--n-retrieval", type=int, default=256)
    synth.add_argument("--zeroshot-per-class", type=int, default=8)
    synth.add_argument("--image-size", type=int, default=32)
    synth.add_argument(
        "--format",
        dest="formats",
        action="append",
        choices=[*TRAIN_FORMATS, "all"],
        help="train formats to write besides train.json (repeatable; all = csv and webdataset)",
    )

    cache = data_commands.add_parser(
        "cache", help="list the decoded-image caches of a data directory, or --clear them"
    )
    cache.add_argument("dir", type=Path, help="the data directory ([data] dir)")
    cache.add_argument(
        "--cache-dir",
        default=CACHE_DIR,
        help=f"[data] cache_dir, relative to DIR unless absolute (default {CACHE_DIR})",
    )
    cache.add_argument("--clear", action="store_true", help="remove the cache directory")

    demo = commands.add_parser(
        "demo", help="synthesise the data if missing; sweep, confirm and report the demo study"
    )
    demo.add_argument("--data", type=Path, default=DEMO_DATA)
    return parser


def _resolve_sweep_config(args: argparse.Namespace):
    from study.config import load_config

    path: Path = args.config
    if args.resume and not path.exists():
        raise UsageError(
            f"run directory {path} does not exist; --resume takes the run directory of an "
            "interrupted sweep (runs/<name>) or the study file it was started from"
        )
    if args.resume and path.is_dir():
        if args.overrides or args.name:
            raise UsageError("--resume of a run directory takes no --set or --name")
        return load_run_dir(path)
    return load_config(path, args.overrides, name=args.name)


def load_run_dir(path: Path):
    """The study config of run directory ``path`` (created by ``clipstudy sweep``)."""
    from study.config import load_config

    if not path.exists():
        raise UsageError(f"run directory {path} does not exist; pass a directory under runs/")
    if not (path / "study.toml").is_file():
        raise UsageError(
            f"{path} is not a clipstudy run directory (no study.toml); "
            "pass a directory created by `clipstudy sweep`"
        )
    return _at_run_dir(load_config(path / "study.toml"), path)


def _at_run_dir(cfg, run_dir: Path):
    """``cfg`` (read from ``run_dir/study.toml``) pointing at ``run_dir`` wherever it is now:
    a relative ``study.runs_dir`` would otherwise be taken from the current directory."""
    run_dir = run_dir.resolve()
    if run_dir.name != cfg.study.name:
        raise UsageError(
            f"{run_dir} holds study {cfg.study.name!r}; rename the directory back to "
            f"{cfg.study.name} to use it"
        )
    study = dataclasses.replace(cfg.study, runs_dir=str(run_dir.parent))
    return dataclasses.replace(cfg, study=study)


def _sweep(cfg, *, resume: bool, address: str | None) -> int:
    from study.runner import run_sweep

    outcome = run_sweep(cfg, resume=resume, address=address)
    print()
    for line in outcome.summary.lines(cfg.study.metric):
        print(line)
    print(f"trials table: {outcome.run_dir / 'trials.parquet'}")
    print(f"dashboard:    clipstudy dashboard {outcome.run_dir}")
    if outcome.interrupted:
        print(f"interrupted:  continue with `clipstudy sweep {outcome.run_dir} --resume`")
        return 130
    return 0


def _confirm(cfg, *, seeds: int, cells=None, address=None, resume=False) -> int:
    """Run (or resume) the confirmation and print its summary; 130 when interrupted."""
    from study.confirm import run_confirmation, summary_lines

    outcome = run_confirmation(cfg, seeds=seeds, cells=cells, address=address, resume=resume)
    print()
    if outcome.interrupted:
        print(
            f"interrupted:  continue with `clipstudy confirm {cfg.run_dir} --seeds {seeds} "
            "--resume`"
        )
        return 130
    for line in summary_lines(outcome, cfg.study.metric, cfg.run_dir / "confirm.parquet"):
        print(line)
    return 0


def _synth(directory: Path, **kwargs) -> None:
    from trainables.synth import write_synthetic_dataset

    if directory.exists() and any(directory.iterdir()):
        raise UsageError(f"{directory} is not empty; choose a new directory for the dataset")
    summary = write_synthetic_dataset(directory, **kwargs)
    print(f"wrote {directory}: {summary}")


def _cache(root: Path, *, clear: bool) -> int:
    """List the image caches under ``root``, or remove ``root`` with them."""
    from trainables.data import DataError
    from trainables.image_cache import cache_entries, clear_image_cache

    try:
        entries = clear_image_cache(root) if clear else cache_entries(root)
    except DataError as exc:
        raise UsageError(str(exc)) from None
    total = sum(size for _, size in entries) / 1e6
    if not clear:
        for directory, size in entries:
            print(f"{directory.name}  {size / 1e6:10.1f} MB")
    verb = "removed" if clear else "holds"
    print(f"{root} {verb} {len(entries)} image cache(s), {total:.1f} MB")
    return 0


def _formats(chosen: list[str] | None) -> tuple[str, ...]:
    """The --format choices as a tuple of train formats (json always; "all" = every one)."""
    chosen = chosen or []
    return TRAIN_FORMATS if "all" in chosen else ("json", *(f for f in chosen if f != "json"))


DEMO_SEEDS = 6  # the fewest seeds at which a single exact Wilcoxon test can give p < 0.05


def _demo(data_dir: Path) -> int:
    """Sweep, confirm the best config of every cell with common seeds, report."""
    from study.config import load_config
    from study.report_command import write_report

    if not (data_dir / "train.json").is_file():
        _synth(data_dir)
    name = time.strftime("demo-%Y%m%d-%H%M%S")
    cfg = load_config(DEMO_CONFIG, [f'data.dir="{data_dir}"'], name=name)
    code = _sweep(cfg, resume=False, address=None)
    if code:
        return code
    print(f"\nconfirming every cell's best config with seeds 0..{DEMO_SEEDS - 1}")
    code = _confirm(cfg, seeds=DEMO_SEEDS)
    if code:
        return code
    print(f"\nreport:       {write_report(cfg)}")
    return 0


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "sweep":
        return _sweep(_resolve_sweep_config(args), resume=args.resume, address=args.address)
    if args.command == "report":
        from study.report_command import write_report

        path = write_report(load_run_dir(args.run_dir), baseline=args.baseline)
        print(f"report: {path} (and report.json; verdict and figures are in the dashboard)")
        return 0
    if args.command == "confirm":
        cells = [c.strip() for c in args.cells.split(",") if c.strip()] if args.cells else None
        return _confirm(
            load_run_dir(args.run_dir),
            seeds=args.seeds,
            cells=cells,
            address=args.address,
            resume=args.resume,
        )
    if args.command == "dashboard":
        from study.dashboard import serve

        serve(args.run_dir, host=args.host, port=args.port)
        return 0
    if args.command == "data" and args.data_command == "cache":
        return _cache(args.dir / args.cache_dir, clear=args.clear)
    if args.command == "data":
        _synth(
            args.dir,
            seed=args.seed,
            n_train=args.n_train,
            n_retrieval=args.n_retrieval,
            zeroshot_per_class=args.zeroshot_per_class,
            image_size=args.image_size,
            formats=_formats(args.formats),
        )
        return 0
    return _demo(args.data)


def main(argv: list[str] | None = None) -> None:
    try:
        code = run(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(f"clipstudy: error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
