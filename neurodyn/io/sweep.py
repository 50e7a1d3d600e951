"""Sweeps: many trainings from one experiment file, gathered into one table.

An experiment file with a ``[sweep]`` table describes a set of *settings* (values of some
of its options) and a number of seeds; every (setting, seed) pair is a *trial*, an
ordinary training run of the file with those values. ::

    [sweep]
    seeds = 3                          # trials use the seeds seed, seed + 1, seed + 2
    mode = "grid"                      # grid (every combination) | random (samples draws)
    samples = 8                        # random: settings drawn
    [sweep.grid]                       # grid: the values; random: choices drawn from
    "training.lr" = [0.01, 0.003]      # the dotted path of any option of the file
    "rules.dtp.target_stepsize" = [0.1, 0.3]
    [sweep.random]                     # random: a range per option
    "training.weight_decay" = { low = 1e-6, high = 1e-3, log = true }

Paths name the file's own options: ``seed``, ``network.<key>``, ``data.<key>``,
``training.<key>`` and ``rules.<label>.<option>`` for a rule the file trains. A path to an
option that does not exist, or a value the option refuses, is an input error naming the
``[sweep]`` key, found before anything runs.

:func:`run_sweep` writes ``trials/trial_NNNN/`` (the trial's own experiment file and every
output of ``neurodyn train``) and, once all trials are done, ``results.csv`` (one row per
trial, rule and evaluation: ``trial``, ``seed``, one column per swept option, ``status``,
``host``, then the training metrics) and the summary of :func:`summarize`. Trials run in a
bounded pool of processes, or as Ray tasks on a cluster (:class:`RayOptions`); a killed
sweep continues with ``resume``: finished trials are kept, interrupted ones continue from
their checkpoint, none is repeated.
"""

from __future__ import annotations

import copy
import csv
import io as _io
import itertools
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..learning.rules import RULES
from .errors import ModelError, NumericalError, suggest
from .experiment import SPECS, experiment_from_table, read_table
from .model import _pydantic_error
from .results import json_writer, write_outputs
from .toml_write import dumps

#: most trials one sweep may hold (checked before any is built)
MAX_TRIALS = 100_000
STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Range(BaseModel):
    """A range an option is drawn from in random mode: uniform, or log-uniform."""

    model_config = STRICT
    low: float
    high: float
    log: bool = False
    integer: bool = Field(False, description="round the draw to an integer")

    @model_validator(mode="after")
    def _order(self):
        if not self.low < self.high:
            raise ValueError(f"needs low < high, got low = {self.low}, high = {self.high}")
        if self.log and self.low <= 0:
            raise ValueError("log = true needs low > 0")
        return self

    def draw(self, rng: np.random.Generator):
        u = rng.uniform(math.log(self.low), math.log(self.high)) if self.log else rng.uniform(self.low, self.high)
        value = math.exp(u) if self.log else u
        return int(round(value)) if self.integer else float(value)


class SweepSpec(BaseModel):
    """The ``[sweep]`` table (module docstring)."""

    model_config = STRICT
    seeds: int = Field(1, ge=1, le=10_000)
    mode: Literal["grid", "random"] = "grid"
    samples: int | None = Field(None, ge=1, le=MAX_TRIALS)
    grid: dict[str, list] = {}
    random: dict[str, Range] = {}

    @model_validator(mode="after")
    def _mode(self):
        if self.mode == "grid" and (self.random or self.samples is not None):
            raise ValueError("random ranges and samples need mode = \"random\"")
        if self.mode == "random" and self.samples is None:
            raise ValueError("mode = \"random\" needs samples = N (settings to draw)")
        for path, values in self.grid.items():
            if not values:
                raise ValueError(f"grid \"{path}\" has no values")
        both = set(self.grid) & set(self.random)
        if both:
            raise ValueError(f"\"{sorted(both)[0]}\" is both in grid and in random; keep one")
        return self

    @property
    def paths(self) -> list[str]:
        return list(self.grid) + list(self.random)

    def n_settings(self) -> int:
        return math.prod(len(v) for v in self.grid.values()) if self.mode == "grid" else self.samples

    def settings(self, seed: int) -> list[dict[str, Any]]:
        """Every setting: the grid's combinations, or ``samples`` draws fixed by ``seed``."""
        if self.mode == "grid":
            return [dict(zip(self.grid, combo)) for combo in itertools.product(*self.grid.values())]
        rng = np.random.default_rng([seed, 0x5EE9])
        out = []
        for _ in range(self.samples):
            setting = {p: v[int(rng.integers(len(v)))] for p, v in self.grid.items()}
            out.append(setting | {p: r.draw(rng) for p, r in self.random.items()})
        return out


@dataclass(frozen=True)
class Trial:
    """One training run of a sweep: setting number ``setting`` with seed ``seed``."""

    index: int
    setting: int
    seed: int
    values: dict = field(hash=False)

    @property
    def name(self) -> str:
        return f"trial_{self.index:04d}"


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: the file, its table, the spec, and every trial's table."""

    file: Path
    name: str
    spec: SweepSpec
    trials: tuple
    tables: dict = field(hash=False)  # trial name -> the trial's experiment table


def load_sweep(path: str | Path) -> Sweep:
    """The sweep of an experiment file, every trial validated (input errors name the key)."""
    file, data = read_table(path)
    raw = data.get("sweep")
    if not isinstance(raw, dict):
        raise ModelError(file, "[sweep]", "no [sweep] table: add one (README: Sweeps) or train the file with neurodyn train")
    try:
        spec = SweepSpec(**raw)
    except ValidationError as err:
        raise _pydantic_error(file, "[sweep]", err) from None
    for p in spec.paths:
        _check_path(file, data, p, "grid" if p in spec.grid else "random")
    n = spec.n_settings() * spec.seeds
    if n > MAX_TRIALS:
        raise ModelError(file, "[sweep]", f"{n} trials (settings x seeds) exceed the limit of {MAX_TRIALS}; sweep fewer values")
    base = {k: v for k, v in data.items() if k != "sweep"}
    experiment_from_table(file, base)  # the file itself is valid
    seed0 = data.get("seed", 0)
    trials, tables = [], {}
    for s, values in enumerate(spec.settings(seed0)):
        table = _apply(base, values)
        _validate_setting(file, table, values, spec)
        first = table.get("seed", seed0)
        for k in range(spec.seeds):
            trial = Trial(index=len(trials), setting=s, seed=first + k, values=values)
            trials.append(trial)
            tables[trial.name] = {**table, "seed": first + k}
    return Sweep(file=file, name=str(data.get("name", file.stem)), spec=spec, trials=tuple(trials), tables=tables)


def _check_path(file, data: dict, path: str, table: str) -> None:
    """A swept option must exist in the file's schema (``rules.<label>.<option>`` for a rule
    the file trains)."""
    where = f'[sweep.{table}]."{path}"'
    parts = path.split(".")
    head = parts[0]
    if parts == ["seed"]:
        return
    if head in SPECS and len(parts) == 2:
        allowed = SPECS[head].model_fields
        if parts[1] not in allowed:
            raise ModelError(file, where, f"[{head}] has no option '{parts[1]}'{suggest(parts[1], allowed)}")
        return
    if head == "rules" and len(parts) == 3:
        rules = data.get("rules") if isinstance(data.get("rules"), dict) else {}
        label, option = parts[1], parts[2]
        if label not in rules:
            raise ModelError(file, where, f"the file trains no rule '{label}'{suggest(label, rules)}")
        name = rules[label].get("rule", label) if isinstance(rules[label], dict) else label
        if name in RULES:
            allowed = RULES[name].Options.keys()
            if option not in allowed:
                raise ModelError(file, where, f"rule '{name}' has no option '{option}'{suggest(option, allowed)}")
        return
    raise ModelError(file, where, "not an option of the file: use seed, network.<key>, data.<key>, training.<key> or rules.<label>.<option>")


def _apply(base: dict, values: dict) -> dict:
    """``base`` with each dotted path set to its value (a deep copy)."""
    table = copy.deepcopy(base)
    for path, value in values.items():
        *parents, key = path.split(".")
        node = table
        for p in parents:
            node = node.setdefault(p, {})
        node[key] = value
    return table


def _validate_setting(file, table: dict, values: dict, spec: SweepSpec) -> None:
    try:
        experiment_from_table(file, table)
    except ModelError as err:
        where = ", ".join(f'[sweep.{"grid" if p in spec.grid else "random"}]."{p}" = {v!r}' for p, v in values.items())
        raise ModelError(file, where or "[sweep]", f"this setting is not valid: {err.key}: {err.message}") from None


# --- running -------------------------------------------------------------------------
def trial_done(folder: Path) -> bool:
    """A trial is done once its training wrote ``summary.json`` (completed or diverged)."""
    return (folder / "summary.json").is_file()


def _as_the_cli() -> None:
    """A worker process trains as ``neurodyn train`` does: float64 available (the
    experiment's ``[training] dtype`` decides)."""
    import jax

    jax.config.update("jax_enable_x64", True)


def run_trial(folder: str, data_dir: str | None) -> dict:
    """Train one trial from ``folder/experiment.toml`` into ``folder`` (continuing from its
    checkpoint if one exists); returns each rule's status. Runs in the sweep's process or
    in a worker process."""
    _as_the_cli()
    from .experiment import load_experiment
    from .training import run_training

    folder = Path(folder)
    exp = load_experiment(folder / "experiment.toml")
    resume = (folder / "checkpoint.npz").is_file()
    try:
        summary = run_training(exp, folder, data_dir=data_dir, resume=resume, plot=False)
    except NumericalError:
        summary = json.loads((folder / "summary.json").read_text())
    return summary["status"]


def run_trial_group(folders: list[str], data_dir: str | None) -> None:
    """Train the trials of one setting (its seeds, none begun) with their steps vmapped over
    the seeds (:func:`~neurodyn.io.training.run_training_seeds`), or one by one where a rule
    cannot be vmapped."""
    if len(folders) == 1:
        run_trial(folders[0], data_dir)
        return
    _as_the_cli()
    from .experiment import load_experiment
    from .training import run_training_seeds

    exps = [load_experiment(Path(f) / "experiment.toml") for f in folders]
    if run_training_seeds(exps, [Path(f) for f in folders], data_dir=data_dir, plot=False) is None:
        for f in folders:
            run_trial(f, data_dir)


def run_trial_anywhere(experiment_text: str, name: str, data_dir: str | None, checkpoint: bytes | None = None) -> dict[str, bytes]:
    """Train one trial in a temporary folder of whichever machine runs it (a Ray task), from
    ``checkpoint`` if the trial was interrupted, and return its output files for the
    sweep's own machine to write: no shared file system is needed."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / name
        folder.mkdir()
        (folder / "experiment.toml").write_text(experiment_text)
        if checkpoint is not None:
            (folder / "checkpoint.npz").write_bytes(checkpoint)
        run_trial(str(folder), data_dir)
        return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def prepare(sweep: Sweep, out_dir: Path, resume: bool) -> list[Trial]:
    """Write ``sweep.json`` and each trial's experiment file; the trials still to run. A
    folder holding another sweep, or any sweep without ``resume``, is an input error."""
    record = {"experiment_file": sweep.file.name, "spec": sweep.spec.model_dump(), "trials": [_trial_record(t) for t in sweep.trials]}
    existing = out_dir / "sweep.json"
    if existing.is_file():
        if not resume:
            raise ModelError(out_dir, None, "holds an earlier sweep: continue it with --resume or choose another --out")
        if json.loads(existing.read_text()) != json.loads(json.dumps(record)):
            raise ModelError(out_dir, None, "holds a different sweep (the file or its [sweep] changed): choose another --out")
    elif resume:
        raise ModelError(out_dir, None, "no sweep to resume here; run without --resume first")
    write_outputs(out_dir, {"sweep.json": json_writer(record)})
    # what a killed sweep left half-written (results are moved in whole, so these are scraps)
    for scrap in (out_dir / "trials").glob(".trial_*.tmp-*"):
        shutil.rmtree(scrap, ignore_errors=True)
    todo = []
    for trial in sweep.trials:
        folder = out_dir / "trials" / trial.name
        if trial_done(folder):
            continue
        header = f"trial {trial.index} of the sweep of {sweep.file.name}: setting {trial.setting}, seed {trial.seed}"
        text = dumps(sweep.tables[trial.name], header=header)
        if not (folder / "experiment.toml").is_file():
            write_outputs(folder, {"experiment.toml": lambda p, text=text: p.write_text(text)})
        todo.append(trial)
    return todo


def _trial_record(t: Trial) -> dict:
    return {"trial": t.name, "setting": t.setting, "seed": t.seed, "values": t.values}


@dataclass(frozen=True)
class RayOptions:
    """Where and how trials run on Ray: ``address`` of a running cluster (``"auto"`` finds
    the local one) or ``"local"`` (start an instance on this machine with ``workers`` CPUs),
    and the resources each trial holds."""

    address: str
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0


def run_sweep(
    sweep: Sweep, out_dir: Path, *, workers: int = 1, resume: bool = False, data_dir: str | None = None,
    progress: bool = False, ray: RayOptions | None = None, vmap: bool = True,
) -> dict:
    """Run every trial not yet done: ``workers`` processes at a time on this machine (1: in
    this process), the seeds of a setting as one vmapped run (``vmap``, where none of them
    has begun), or every trial as a Ray task (``ray``); then write ``results.csv`` and the
    summary. Returns the summary."""
    out_dir = Path(out_dir)
    todo = prepare(sweep, out_dir, resume)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(sweep.trials), initial=len(sweep.trials) - len(todo), desc="sweep", unit="trial")
    folders = [str(out_dir / "trials" / t.name) for t in todo]
    groups = _groups(todo, out_dir) if vmap else [[f] for f in folders]
    try:
        if ray is not None:
            _run_ray(folders, data_dir, ray, workers, bar)
        elif workers <= 1 or len(groups) <= 1:
            for group in groups:
                run_trial_group(group, data_dir)
                if bar is not None:
                    bar.update(len(group))
        else:
            _run_pool(groups, data_dir, workers, bar)
    finally:
        if bar is not None:
            bar.close()
    write_results(out_dir)
    return summarize(out_dir)


def _run_ray(folders: list[str], data_dir, options: RayOptions, workers: int, bar) -> None:
    """Each trial as a Ray task holding ``cpus_per_trial`` CPUs and ``gpus_per_trial`` GPUs;
    the files it returns are written here as each task finishes."""
    try:
        import ray
    except ImportError:
        raise ModelError("--ray", None, "needs Ray: pip install 'neurodyn[ray]'") from None
    import logging
    import warnings

    local = options.address == "local"
    started = not ray.is_initialized()
    if started:
        kw = {"num_cpus": workers} if local else {"address": options.address}
        with warnings.catch_warnings():
            # Ray starts its processes by fork + exec, which JAX's warning about fork does not concern
            warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
            ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING, **kw)
    try:
        task = ray.remote(num_cpus=options.cpus_per_trial, num_gpus=options.gpus_per_trial)(run_trial_anywhere)
        refs = {}
        for f in map(Path, folders):
            ckpt = f / "checkpoint.npz"
            refs[task.remote((f / "experiment.toml").read_text(), f.name, data_dir, ckpt.read_bytes() if ckpt.is_file() else None)] = f
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            folder = refs.pop(done[0])
            files = ray.get(done[0])
            write_outputs(folder, {name: (lambda p, data=data: p.write_bytes(data)) for name, data in files.items() if name != "experiment.toml"})
            if bar is not None:
                bar.update(1)
    finally:
        if started:
            ray.shutdown()


def _groups(todo: list[Trial], out_dir: Path) -> list[list[str]]:
    """The trials' folders, the seeds of a setting together unless one of them has begun
    (it continues alone from its checkpoint)."""
    by_setting: dict = {}
    for t in todo:
        folder = out_dir / "trials" / t.name
        key = ("alone", t.index) if (folder / "checkpoint.npz").is_file() else ("setting", t.setting)
        by_setting.setdefault(key, []).append(str(folder))
    return list(by_setting.values())


def _run_pool(groups: list[list[str]], data_dir, workers: int, bar) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    # spawn: a forked JAX process can deadlock
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_trial_group, g, data_dir): len(g) for g in groups}
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for fut in done:
                    fut.result()  # an input error in a trial stops the sweep
                    if bar is not None:
                        bar.update(futures[fut])
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


# --- the table -----------------------------------------------------------------------
def _number(text: str):
    """A CSV cell as an int or float where it is one (empty: None)."""
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_trial_rows(out_dir: Path, record: dict) -> list[dict]:
    """Every finished trial's ``metrics.csv`` rows, each prefixed with the trial's columns."""
    rows = []
    for t in record["trials"]:
        folder = out_dir / "trials" / t["trial"]
        if not trial_done(folder):
            continue
        summary = json.loads((folder / "summary.json").read_text())
        host = summary.get("host", "")
        with open(folder / "metrics.csv", newline="") as fh:
            for r in csv.DictReader(fh):
                r = {k: _number(v) if k != "rule" else v for k, v in r.items()}
                head = {"trial": t["trial"], "seed": t["seed"], "setting": t["setting"]}
                head |= {k: r.pop(k) for k in ("rule", "step", "train_loss", "test_loss")}
                head |= t["values"] | {"status": summary["status"].get(head["rule"], "")}
                rows.append(head | r | {"host": host})
    return rows


def write_results(out_dir: Path) -> None:
    """``results.csv`` from every finished trial of the sweep in ``out_dir``."""
    record = json.loads((out_dir / "sweep.json").read_text())
    rows = read_trial_rows(out_dir, record)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    text = buf.getvalue()
    write_outputs(out_dir, {"results.csv": lambda p: p.write_text(text)})


def read_results(out_dir: Path) -> tuple[dict, list[dict]]:
    """``(sweep record, rows of results.csv)`` of a sweep's output folder."""
    out_dir = Path(out_dir)
    for name in ("sweep.json", "results.csv"):
        if not (out_dir / name).is_file():
            raise ModelError(out_dir, None, f"no {name}: not the output folder of a finished sweep (run neurodyn sweep FILE --out DIR first)")
    record = json.loads((out_dir / "sweep.json").read_text())
    with open(out_dir / "results.csv", newline="") as fh:
        rows = [{k: _number(v) if k not in ("rule", "trial", "status", "host") else v for k, v in r.items()} for r in csv.DictReader(fh)]

    return record, rows


def summarize(out_dir: Path, metric: str = "test_loss") -> dict:
    """Per setting and rule, over seeds: mean and standard deviation of the final ``metric``
    (and test accuracy where there is one) of the trials that completed, and how many
    diverged. Writes ``summary.json`` and ``summary.png`` (the metric against the first
    swept option, one line per rule, one standard deviation as a band)."""
    from .plots import sweep_plot

    out_dir = Path(out_dir)
    record, rows = read_results(out_dir)
    paths = list(record["spec"]["grid"]) + list(record["spec"]["random"])
    final = {}
    for r in rows:
        key = (r["trial"], r["rule"])
        if key not in final or r["step"] > final[key]["step"]:
            final[key] = r
    values = {t["setting"]: t["values"] for t in record["trials"]}
    groups: dict = {}
    for r in final.values():
        groups.setdefault((int(r["setting"]), r["rule"]), []).append(r)
    settings = []
    for (s, rule), members in sorted(groups.items()):
        ok = [m for m in members if m["status"] == "completed"]
        entry = {"setting": s, "rule": rule, "values": values[s], "seeds": len(members), "diverged": len(members) - len(ok)}
        for m in (metric, "test_accuracy"):
            vals = np.asarray([v[m] for v in ok if isinstance(v.get(m), float)], float)
            if vals.size:
                entry[m] = {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1)) if vals.size > 1 else 0.0, "n": int(vals.size)}
        settings.append(entry)
    summary = {"experiment_file": record["experiment_file"], "metric": metric, "swept": paths, "settings": settings}
    write_outputs(out_dir, {"summary.json": json_writer(summary), "summary.png": lambda p: sweep_plot(p, summary)})
    return summary


def summary_lines(summary: dict) -> list[str]:
    """The summary as text: one line per setting and rule."""
    metric = summary["metric"]
    lines = []
    for e in summary["settings"]:
        values = ", ".join(f"{p} = {_fmt(v)}" for p, v in e["values"].items()) or "base setting"
        stat = e.get(metric)
        text = f"{stat['mean']:.4g} +- {stat['std']:.2g} (n = {stat['n']})" if stat else "no completed trial"
        acc = e.get("test_accuracy")
        acc = f", test accuracy {acc['mean']:.4f} +- {acc['std']:.2g}" if acc else ""
        div = f", {e['diverged']} diverged" if e["diverged"] else ""
        lines.append(f"  {values} | {e['rule']:<14} {metric} {text}{acc}{div}")
    return lines


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def default_workers() -> int:
    """Half the machine's cores (XLA already uses several threads per process), at least 1."""
    return max(1, (os.cpu_count() or 2) // 2)
