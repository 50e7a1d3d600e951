"""Running a sweep: the trials of a grid or random sweep, or the settings a search asks
for (:mod:`.search`), on the runner :mod:`.trials` provides; then the table and the
summary (:mod:`.sweep`)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..learning.data import DataError, find_mnist
from .errors import ModelError
from .search import run_search
from .sweep import Sweep, Trial, open_sweep, prepare, summarize, write_results
from .trials import Inline, Pool, RayOptions, RayRunner, drive, trial_done

#: what a sweep writes into its output folder (removed again if a new sweep fails on bad input)
OUTPUTS = ("sweep.json", "trials", "study.journal", "results.csv", "summary.json", "summary.png", "summary.pdf", "summary.svg")


def run_sweep(
    sweep: Sweep, out_dir: Path, *, workers: int = 1, resume: bool = False, data_dir: str | None = None,
    progress: bool = False, ray: RayOptions | None = None, vmap: bool = True, figure_format: str = "png",
) -> dict:
    """Run every trial not yet done: ``workers`` processes at a time on this machine (1: in
    this process) or as Ray tasks (``ray``), the seeds of a setting as one vmapped run
    (``vmap``, where none of them has begun); a search (mode = "optuna") asks for settings
    until its budget is spent (:mod:`~neurodyn.io.search`). Then write ``results.csv`` and
    the summary (its plot in ``figure_format``), which it returns.

    Input errors found before anything is written (the MNIST files among them) leave the
    folder as it was; one found when a trial starts removes what a new sweep wrote, so that
    the same command can run again once the input is fixed."""
    out_dir = Path(out_dir)
    if ray is not None and sweep.spec.pruner != "none":
        raise ModelError(sweep.file, "[sweep].pruner", "ASHA reports to the study's journal in the output folder, which Ray tasks on other machines cannot reach: drop --ray or set pruner = \"none\"")
    check_data(sweep, data_dir)
    new = not resume and not (out_dir / "sweep.json").exists()
    existed = {p.name for p in out_dir.iterdir()} if out_dir.is_dir() else None
    try:
        return _run(sweep, out_dir, workers, resume, data_dir, progress, ray, vmap, figure_format)
    except (ModelError, DataError):
        if new:
            _remove_new(out_dir, existed)
        raise


def check_data(sweep: Sweep, data_dir: str | None) -> None:
    """The MNIST files of every setting that trains on MNIST are there (as ``neurodyn
    train`` finds them), before any trial is written."""
    tables = list(sweep.tables.values()) or [sweep.base]
    dirs = {data_dir or t["data"].get("data_dir") for t in tables if isinstance(t.get("data"), dict) and t["data"].get("kind") == "mnist"}
    swept = "data.data_dir" in sweep.spec.paths and data_dir is None
    for d in dirs:
        try:
            find_mnist(d)
        except DataError as err:
            if not swept or d == sweep.base.get("data", {}).get("data_dir"):
                raise
            where = "grid" if "data.data_dir" in sweep.spec.grid else "random"
            raise ModelError(sweep.file, f'[sweep.{where}]."data.data_dir" = {d!r}', str(err)) from None


def _remove_new(out_dir: Path, existed: set | None) -> None:
    """Remove what a new sweep wrote into ``out_dir`` (and the folder, if it made it)."""
    for name in OUTPUTS:
        if existed is not None and name in existed:
            continue
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if existed is None and out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()


def _run(sweep: Sweep, out_dir: Path, workers: int, resume: bool, data_dir, progress: bool, ray, vmap: bool, figure_format: str) -> dict:
    runner = _runner(data_dir, ray, workers, vmap)  # a Ray cluster out of reach is refused before anything is written
    bar = None
    try:
        if sweep.spec.mode == "optuna":
            record = open_sweep(sweep, out_dir, resume)
            finished = sum(trial_done(out_dir / "trials" / t["trial"]) for t in record["trials"])
        else:
            todo = prepare(sweep, out_dir, resume)
            finished = len(sweep.trials) - len(todo)
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=sweep.spec.n_settings() * sweep.spec.seeds, initial=finished, desc="sweep", unit="trial")
        if sweep.spec.mode == "optuna":
            run_search(sweep, out_dir, runner, bar)
        else:
            groups = _groups(todo, out_dir) if vmap else [[str(out_dir / "trials" / t.name)] for t in todo]
            drive(runner, ((g, None) for g in groups), lambda g: bar.update(len(g)) if bar is not None else None)
    finally:
        runner.close()  # drive closes it too; here also when preparing the folder failed
        if bar is not None:
            bar.close()
    rows = write_results(out_dir)
    return summarize(out_dir, figure_format=figure_format, rows=rows)


def _runner(data_dir, ray: RayOptions | None, workers: int, vmap: bool) -> Inline:
    if ray is not None:
        return RayRunner(data_dir, ray, workers, vmap)
    return Inline(data_dir, vmap) if workers <= 1 else Pool(data_dir, workers, vmap)


def _groups(todo: list[Trial], out_dir: Path) -> list[list[str]]:
    """The trials' folders, the seeds of a setting together: those that have begun (they
    continue from their checkpoints, together where they stopped at the same step) apart
    from those that have not."""
    by_setting: dict = {}
    for t in todo:
        folder = out_dir / "trials" / t.name
        key = ((folder / "checkpoint.npz").is_file(), t.setting)
        by_setting.setdefault(key, []).append(str(folder))
    return list(by_setting.values())
