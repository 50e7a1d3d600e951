"""Sweeps: many trainings of one experiment file, or simulations of one model file,
gathered into one table.

A file with a ``[sweep]`` table describes a set of *settings* (values of some of its
options) and a number of seeds; every (setting, seed) pair is a *trial*, an ordinary
training run of the experiment file (or simulation of the model file) with those values. ::

    [sweep]
    seeds = 3                          # trials use the seeds seed, seed + 1, seed + 2
    mode = "grid"                      # grid (every combination) | random (samples draws)
    samples = 8                        # random: settings drawn
    [sweep.grid]                       # grid: the values; random: choices drawn from
    "training.lr" = [0.01, 0.003]      # the dotted path of any option of the file
    "rules.dtp.target_stepsize" = [0.1, 0.3]
    [sweep.random]                     # random: a range per option
    "training.weight_decay" = { low = 1e-6, high = 1e-3, log = true }

``mode = "optuna"`` is a hyper-parameter search instead: Optuna picks ``samples`` settings
of one rule's training from the grid's choices and the ranges (:mod:`~neurodyn.io.search`).

Paths name the file's own options: ``seed``, ``network.<key>``, ``data.<key>``,
``training.<key>`` and ``rules.<label>.<option>`` for a rule the file trains; in a model
file ``circuit.<option>``, ``simulation.<key>``, ``arrays.<name>.<key>`` and
``plasticity.<name>.<key>``. A path to an
option that does not exist, or a value the option refuses, is an input error naming the
``[sweep]`` key, found before anything runs.

:func:`~neurodyn.io.sweep_run.run_sweep` writes ``trials/trial_NNNN/`` (the trial's own experiment file and every
output of ``neurodyn train``) and, once all trials are done, ``results.csv`` (one row per
trial, rule and evaluation: ``trial``, ``seed``, one column per swept option, ``status``,
``host``, then the training metrics) and the summary of :func:`summarize`. Trials run in a
bounded pool of processes, or as Ray tasks on a cluster (:mod:`~neurodyn.io.trials`); a killed
sweep continues with ``resume``: finished trials are kept, interrupted ones continue from
their checkpoint, none is repeated. ``sweep.json`` records a :func:`fingerprint` of the file
(and of the array files it reads), so a resume with another file is refused; a damaged
``sweep.json`` or ``results.csv`` is an input error naming it, and a ``results.csv`` that
does not match the trial folders is rebuilt from them (:func:`read_results`).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io as _io
import itertools
import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..learning.rules import RULES
from .errors import ModelError, check_keys, suggest
from .experiment import SPECS, experiment_from_table, read_table
from .model import MAX_SEED, model_from_table, portable
from .model import _pydantic_error  # noqa: E402
from .overrides import apply
from .results import json_writer, write_outputs
from .toml_write import dumps
from .trials import RayOptions, run_trial, run_trial_group, trial_done  # noqa: F401 (re-exported)

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

    def draw_end(self, end: str):
        """The value at one end of the range (``"low"`` or ``"high"``), as a draw gives it."""
        value = getattr(self, end)
        return int(round(value)) if self.integer else float(value)

    def draw(self, rng: np.random.Generator):
        u = rng.uniform(math.log(self.low), math.log(self.high)) if self.log else rng.uniform(self.low, self.high)
        value = math.exp(u) if self.log else u
        return int(round(value)) if self.integer else float(value)


#: the options that only a search (mode = "optuna") reads (metric and direction also choose
#: the summary's best setting in any mode)
SEARCH_KEYS = ("rule", "sampler", "pruner", "reduction_factor", "min_evaluations")


class SweepSpec(BaseModel):
    """The ``[sweep]`` table (module docstring)."""

    model_config = STRICT
    seeds: int = Field(1, ge=1, le=10_000)
    mode: Literal["grid", "random", "optuna"] = "grid"
    samples: int | None = Field(None, ge=1, le=MAX_TRIALS)
    grid: dict[str, list] = {}
    random: dict[str, Range] = {}
    metric: Literal["test_loss", "train_loss", "test_accuracy", "spectral_abscissa", "residual", "t_final", "num_steps", "wall_time_s"] | None = Field(
        None, description="default: test_loss for an experiment file, spectral_abscissa for a model file")
    direction: Literal["minimize", "maximize"] | None = Field(None, description="default: maximize an accuracy, minimize a loss")
    rule: str | None = Field(None, description="the label of the rule searched (needed when the file trains several)")
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["none", "asha"] = "none"
    reduction_factor: int = Field(3, ge=2, le=100, description="ASHA: keep the best 1/reduction_factor at each rung")
    min_evaluations: int = Field(1, ge=1, le=MAX_TRIALS, description="ASHA: evaluation intervals before the first rung")

    @model_validator(mode="after")
    def _mode(self):
        if self.mode == "grid" and (self.random or self.samples is not None):
            raise ValueError("random ranges and samples need mode = \"random\" or \"optuna\"")
        if self.mode != "grid" and self.samples is None:
            raise ValueError(f"mode = \"{self.mode}\" needs samples = N (settings to draw)")
        search = [k for k in SEARCH_KEYS if getattr(self, k) != type(self).model_fields[k].default]
        if self.mode != "optuna" and search:
            raise ValueError(f"{search[0]} is an option of a search: it needs mode = \"optuna\"")
        if self.mode == "optuna" and not self.paths:
            raise ValueError("mode = \"optuna\" needs a search space: choices in [sweep.grid] or ranges in [sweep.random]")
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

    @property
    def maximize(self) -> bool:
        """Whether larger values of ``metric`` are better (a search's direction; the best setting)."""
        return self.direction == "maximize" if self.direction else self.metric == "test_accuracy"

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
class Target:
    """What a sweep's trials run: ``neurodyn train`` of an experiment file, or ``neurodyn
    simulate`` of a model file; the trial's file name, the metrics a summary can use (the
    first is the default), and how a setting's table is validated."""

    kind: str
    file_name: str
    metrics: tuple
    validate: Any = field(repr=False)
    heads: tuple = ()  # the top-level tables a path may start with


def _validate_model(file: Path, table: dict):
    return model_from_table(file, table, stabilize=False)


def _validate_experiment(file: Path, table: dict):
    """The experiment, and its length where the data's size is known before loading it (a
    mini-batch larger than the data is found here, not when the trial starts)."""
    exp = experiment_from_table(file, table)
    exp.known_steps()
    return exp


TARGETS = {
    "experiment": Target("experiment", "experiment.toml", ("test_loss", "train_loss", "test_accuracy"), _validate_experiment),
    "model": Target(
        "model", "model.toml", ("spectral_abscissa", "residual", "t_final", "num_steps", "wall_time_s"), _validate_model,
        ("circuit", "arrays", "simulation", "plasticity"),
    ),
}


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: the file, its table, the spec, and every trial's table."""

    file: Path
    name: str
    spec: SweepSpec
    trials: tuple
    tables: dict = field(hash=False)  # trial name -> the trial's experiment table
    base: dict = field(default_factory=dict, hash=False)  # the file's table without [sweep]
    target: Target = TARGETS["experiment"]

    @property
    def metric(self) -> str:
        return self.spec.metric or self.target.metrics[0]

    @property
    def seed(self) -> int:
        return self.base.get("seed", 0)

    def setting(self, s: int, values: dict) -> tuple[list[Trial], dict]:
        """Setting number ``s`` (``values`` of the swept options): its trials, one per seed,
        and their experiment tables (validated; an input error names the [sweep] key)."""
        table = apply(self.base, values)
        if self.target.kind == "model":
            table = portable(table, self.file.parent)  # a swept array file, as the base's, from any folder
        _validate_setting(self.file, table, values, self.spec, self.target)
        first = table.get("seed", self.seed)
        trials = [Trial(index=s * self.spec.seeds + k, setting=s, seed=first + k, values=values) for k in range(self.spec.seeds)]
        return trials, {t.name: {**table, "seed": t.seed} for t in trials}


def load_sweep(path: str | Path) -> Sweep:
    """The sweep of an experiment or model file, every trial validated (input errors name
    the key)."""
    file, data = read_table(path)
    target = TARGETS["model" if "circuit" in data else "experiment"]
    raw = data.get("sweep")
    if not isinstance(raw, dict):
        run = "train the file with neurodyn train" if target.kind == "experiment" else "simulate the file with neurodyn simulate"
        raise ModelError(file, "[sweep]", f"no [sweep] table: add one (README: Sweeps) or {run}")
    spec = _read_spec(file, raw)
    if spec.metric is not None and spec.metric not in target.metrics:
        raise ModelError(file, "[sweep].metric", f"{spec.metric} is not a result of {target.kind} files; use one of {', '.join(target.metrics)}")
    if target.kind == "model" and spec.mode == "optuna":
        raise ModelError(file, "[sweep].mode", "a model file sweeps by grid or random; searches (optuna) train experiment files")
    for p in spec.paths:
        _check_path(file, data, p, "grid" if p in spec.grid else "random", target)
    n = spec.n_settings() * spec.seeds
    if n > MAX_TRIALS:
        raise ModelError(file, "[sweep]", f"{n} trials (settings x seeds) exceed the limit of {MAX_TRIALS}; sweep fewer values")
    base = {k: v for k, v in data.items() if k != "sweep"}
    if target.kind == "model":
        base = portable(base, file.parent)
    checked = (experiment_from_table if target.kind == "experiment" else target.validate)(file, base)  # the file itself is valid
    sweep = Sweep(file=file, name=str(data.get("name", file.stem)), spec=spec, trials=(), tables={}, base=base, target=target)
    if spec.mode == "optuna":
        return _search(sweep, checked)
    trials, tables = [], {}
    for s, values in enumerate(spec.settings(sweep.seed)):
        mine, more = sweep.setting(s, values)
        trials += mine
        tables |= more
    return dataclasses.replace(sweep, trials=tuple(trials), tables=tables)


def _read_spec(file, raw: dict) -> SweepSpec:
    """The ``[sweep]`` table validated; an unknown key (of the table or of a range) gets
    the closest valid one, as in every other table."""
    check_keys(file, "[sweep]", raw, SweepSpec.model_fields)
    for path, r in (raw.get("random") if isinstance(raw.get("random"), dict) else {}).items():
        if isinstance(r, dict):
            check_keys(file, f'[sweep.random]."{path}"', r, Range.model_fields)
    try:
        return SweepSpec(**raw)
    except ValidationError as err:
        first = err.errors()[0]
        table, path, *rest = first["loc"] + (None, None)
        if table not in ("grid", "random") or not isinstance(path, str):
            raise _pydantic_error(file, "[sweep]", err) from None
        # an entry of [sweep.grid] or [sweep.random]: name the swept path (and the range's end)
        key = f'[sweep.{table}]."{path}"' + "".join(f".{r}" for r in rest if isinstance(r, str))
        raise ModelError(file, key, RANGE_FIXES.get(first["type"], first["msg"].removeprefix("Value error, "))) from None


#: what to write instead, by the kind of error in a [sweep.grid] or [sweep.random] entry
RANGE_FIXES = {
    "list_type": "needs a list of the values to sweep, e.g. [0.01, 0.003]",
    "model_type": "needs a range, e.g. { low = 1e-4, high = 1e-1, log = true }",
    "finite_number": "needs a finite number (no nan or inf)",
}


def _search(sweep: Sweep, exp) -> Sweep:
    """A search's sweep: the file restricted to the rule searched, its search space checked
    at every choice and at both ends of every range (the trials are made as the search
    asks for settings)."""
    file, spec = sweep.file, sweep.spec
    labels = list(exp.rules)
    if spec.rule is None and len(labels) > 1:
        raise ModelError(file, "[sweep].rule", f"the file trains {len(labels)} rules: name the one to search, e.g. rule = \"{labels[0]}\"")
    rule = spec.rule or labels[0]
    if rule not in labels:
        raise ModelError(file, "[sweep].rule", f"the file trains no rule '{rule}'{suggest(rule, labels)}")
    for p in spec.paths:
        if p.startswith("rules.") and p.split(".")[1] != rule:
            raise ModelError(file, f'[sweep]."{p}"', f"the search trains only rule '{rule}': sweep its options")
    base = {**sweep.base, "rules": {rule: sweep.base["rules"][rule]}}
    first = {p: v[0] for p, v in spec.grid.items()} | {p: r.draw_end("low") for p, r in spec.random.items()}
    for p in spec.paths:
        ends = spec.grid[p] if p in spec.grid else [spec.random[p].draw_end(e) for e in ("low", "high")]
        for value in ends:
            values = first | {p: value}
            _validate_setting(file, apply(base, values), values, spec, sweep.target)
    return dataclasses.replace(sweep, base=base)


def _check_path(file, data: dict, path: str, table: str, target: Target) -> None:
    """A swept option must exist in the file's schema (``rules.<label>.<option>`` for a rule
    the file trains). A model file's paths start with one of its tables; the rest is checked
    when each setting is built."""
    where = f'[sweep.{table}]."{path}"'
    parts = path.split(".")
    head = parts[0]
    if parts == ["seed"]:
        return
    if target.kind == "model":
        if head not in target.heads or len(parts) < 2:
            raise ModelError(file, where, "not an option of the file: use seed, circuit.<key>, simulation.<key>, arrays.<name>.<key> or plasticity.<name>.<key>")
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


def _validate_setting(file, table: dict, values: dict, spec: SweepSpec, target: Target) -> None:
    """The setting's table is a valid file whose results hold the sweep's metric, and its
    last seed a valid seed."""
    where = ", ".join(f'[sweep.{"grid" if p in spec.grid else "random"}]."{p}" = {v!r}' for p, v in values.items())
    try:
        checked = target.validate(file, table)
    except ModelError as err:
        raise ModelError(file, where or "[sweep]", f"this setting is not valid: {err.key}: {err.message}") from None
    if spec.metric == "test_accuracy" and not (checked.data.kind == "mnist" and checked.data.task == "classification"):
        setting = f" (the setting {where})" if where else ""
        raise ModelError(file, "[sweep].metric", f"test_accuracy needs a classification task{setting}; use test_loss")
    first = table.get("seed", 0)
    if first + spec.seeds - 1 > MAX_SEED:
        where = f'[sweep.{"grid" if "seed" in spec.grid else "random"}]."seed"' if "seed" in values else "seed"
        raise ModelError(file, "[sweep].seeds", f"{spec.seeds} seeds from {where} = {first} go beyond the largest seed, 2^63 - 1; use a smaller seed or fewer seeds")


# --- running -------------------------------------------------------------------------
#: what the fix of a damaged sweep folder is
REDO = "the folder is damaged: rerun the sweep into a new --out"


def fingerprint(sweep: Sweep) -> str:
    """One hash of what determines the sweep's trials: the swept file's bytes and the
    content of every array file its trials read. ``sweep.json`` records it, so that a
    resume cannot mix the trials of two files."""
    h = hashlib.sha256(sweep.file.read_bytes())
    for path in sorted(_array_files(sweep)):
        with open(path, "rb") as fh:
            h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()


def _array_files(sweep: Sweep) -> set[str]:
    """The array files (``file = ...``, absolute) that the base or a trial of a model sweep reads."""
    entries = [e for t in (sweep.base, *sweep.tables.values()) for e in (t.get("arrays") or {}).values()]
    return {e["file"] for e in entries if isinstance(e, dict) and isinstance(e.get("file"), str) and Path(e["file"]).is_file()}


def open_sweep(sweep: Sweep, out_dir: Path, resume: bool) -> dict:
    """Write ``sweep.json`` (the file, its fingerprint, its spec and the trials made so far:
    all of them for a grid or random sweep, those already asked for by a search) and return
    it. A folder holding another sweep, or any sweep without ``resume``, is an input error."""
    record = {
        "file": sweep.file.name, "fingerprint": fingerprint(sweep), "target": sweep.target.kind, "spec": sweep.spec.model_dump(),
        "trials": [_trial_record(t) for t in sweep.trials],
    }
    if (out_dir / "sweep.json").is_file():
        if not resume:
            raise ModelError(out_dir, None, "holds an earlier sweep: continue it with --resume or choose another --out")
        old = read_record(out_dir)
        if sweep.spec.mode == "optuna":
            record["trials"] = old["trials"]
        _check_same(sweep, out_dir, old, record)
    elif resume:
        raise ModelError(out_dir, None, "no sweep to resume here; run without --resume first")
    write_outputs(out_dir, {"sweep.json": json_writer(record)})
    # what a killed sweep left half-written (results are moved in whole, so these are scraps)
    for scrap in (out_dir / "trials").glob(".trial_*.tmp-*"):
        shutil.rmtree(scrap, ignore_errors=True)
    return record


def _check_same(sweep: Sweep, out_dir: Path, old: dict, record: dict) -> None:
    """A resumed folder must hold this very sweep: the same file content (its fingerprint;
    a renamed or moved copy of the file resumes it), the same ``[sweep]`` and trials. A
    folder of an earlier version, whose ``sweep.json`` has no fingerprint, is resumed only
    if every trial file it wrote is the one this file gives."""
    if "fingerprint" not in old:
        if sweep.spec.mode == "optuna" or not _same_trial_files(sweep, out_dir):
            raise ModelError(out_dir, None, (
                f"holds a sweep of an earlier neurodyn, without the fingerprint of its file, whose trial files differ from those {sweep.file} "
                f"gives: resume with the original file ({old['file']}) or choose a new --out"))
        old = old | {"fingerprint": record["fingerprint"]}
    if old["fingerprint"] != record["fingerprint"]:
        raise ModelError(out_dir, None, (
            f"holds a sweep of another file, or of {old['file']} before it (or an array file it reads) changed: resume with the "
            "file the sweep began with, or choose a new --out"))
    # the same bytes under another name (a renamed or copied file) make the same trials
    if _without_name(old) != _without_name(json.loads(json.dumps(record))):
        raise ModelError(out_dir, None, "holds a different sweep (the file or its [sweep] changed): choose another --out")


def _without_name(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "file"}


def _same_trial_files(sweep: Sweep, out_dir: Path) -> bool:
    for trial in sweep.trials:
        file = out_dir / "trials" / trial.name / sweep.target.file_name
        if file.is_file() and file.read_text() != _trial_text(sweep, trial, sweep.tables[trial.name]):
            return False
    return True


def prepare(sweep: Sweep, out_dir: Path, resume: bool) -> list[Trial]:
    """:func:`open_sweep`, then write each trial's experiment file; the trials still to run."""
    open_sweep(sweep, out_dir, resume)
    return write_trials(sweep, sweep.trials, sweep.tables, out_dir)


def write_trials(sweep: Sweep, trials, tables: dict, out_dir: Path) -> list[Trial]:
    """Each trial's file (``experiment.toml`` or ``model.toml``, where not yet written); the
    trials not yet done."""
    todo = []
    for trial in trials:
        folder = out_dir / "trials" / trial.name
        if trial_done(folder):
            continue
        text = _trial_text(sweep, trial, tables[trial.name])
        name = sweep.target.file_name
        if not (folder / name).is_file():
            write_outputs(folder, {name: lambda p, text=text: p.write_text(text)})
        todo.append(trial)
    return todo


def _trial_text(sweep: Sweep, trial: Trial, table: dict) -> str:
    header = f"trial {trial.index} of the sweep of {sweep.file.name}: setting {trial.setting}, seed {trial.seed}"
    return dumps(table, header=header)


def _trial_record(t: Trial) -> dict:
    return {"trial": t.name, "setting": t.setting, "seed": t.seed, "values": t.values}


def read_record(out_dir: Path) -> dict:
    """The ``sweep.json`` of a sweep's output folder, checked (one input error naming it if
    it is not a sweep's record)."""
    path = Path(out_dir) / "sweep.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelError(path, None, f"not readable as JSON ({err}); {REDO}") from None
    key, problem = _record_problem(record)
    if problem:
        raise ModelError(path, key, f"{problem}; {REDO}")
    return record


def _record_problem(record) -> tuple[str | None, str | None]:
    """``(key, what is wrong)`` with a ``sweep.json``, or ``(None, None)``."""
    if not isinstance(record, dict):
        return None, "not a JSON object"
    if record.get("target", "experiment") not in TARGETS:
        return "target", f"{record['target']!r} is not a target (experiment or model)"
    if not isinstance(record.get("spec"), dict):
        return "spec", "missing: the [sweep] table of the sweep"
    try:
        paths = set(SweepSpec(**record["spec"]).paths)
    except (ValidationError, TypeError) as err:
        return "spec", f"not a valid [sweep] table ({' '.join(str(err).split())[:200]})"
    trials = record.get("trials")
    if not isinstance(trials, list):
        return "trials", "missing or not a list"
    for i, t in enumerate(trials):
        if not (isinstance(t, dict) and isinstance(t.get("trial"), str) and re.fullmatch(r"trial_[0-9]{4,}", t["trial"])
                and _is_int(t.get("setting")) and _is_int(t.get("seed")) and isinstance(t.get("values"), dict) and set(t["values"]) == paths):
            return "trials", f"entry {i} is not a trial of this [sweep] (trial = \"trial_NNNN\", setting, seed, a value per swept path)"
    return None, None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


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
    """Every finished trial's rows, each prefixed with the trial's columns: a training's
    ``metrics.csv`` rows (one per rule and evaluation), a simulation's summary (one row).
    A trial folder whose files cannot be read is an input error naming the file."""
    rows = []
    for t in record["trials"]:
        folder = out_dir / "trials" / t["trial"]
        if not trial_done(folder):
            continue
        file = folder / "summary.json"
        try:
            rows += _trial_rows(folder, t, record.get("target"))
        except ModelError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError, csv.Error) as err:
            raise ModelError(file, None, (
                f"the results of {t['trial']} cannot be read ({type(err).__name__}: {err}): remove the folder "
                f"{folder} and continue the sweep with --resume, which trains it again")) from None
    return rows


def _trial_rows(folder: Path, t: dict, target: str | None) -> list[dict]:
    summary = json.loads((folder / "summary.json").read_text())
    if summary.get("seed", t["seed"]) != t["seed"]:
        raise ModelError(folder.parent.parent / "sweep.json", "trials", f"{t['trial']} has seed {t['seed']} here, but its folder was trained with seed {summary['seed']}; {REDO}")
    head = {"trial": t["trial"], "seed": t["seed"], "setting": t["setting"]}
    if target == "model":
        return [head | _simulation_row(summary, t["values"]) | {"seed": t["seed"]}]  # a swept seed is the setting's first
    rows, host = [], summary.get("host", "")
    with open(folder / "metrics.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            r = {k: _number(v) if k != "rule" else v for k, v in r.items()}
            first = head | {k: r.pop(k) for k in ("rule", "step", "train_loss", "test_loss")}
            first |= t["values"] | {"seed": t["seed"], "status": summary["status"].get(first["rule"], "")}  # a swept seed is the setting's first
            rows.append(first | r | {"host": host})
    return rows


#: the scalars of a simulation's summary that a model sweep's table holds
SIMULATION_COLUMNS = (
    "converged", "reason", "t_final", "num_steps", "num_rejected_steps", "newton_steps", "residual", "ode_residual", "spectral_abscissa",
    "stable", "wall_time_s",
)


def _simulation_row(summary: dict, values: dict) -> dict:
    status = "completed" if summary.get("converged") else f"not converged ({summary.get('reason', 'unknown')})"
    row = {"kind": summary.get("kind", ""), **values, "status": status}
    row |= {k: summary.get(k) for k in SIMULATION_COLUMNS}
    return row | {"host": summary.get("host", "")}


def write_results(out_dir: Path, rows: list[dict] | None = None) -> list[dict]:
    """``results.csv`` from ``rows``, by default every finished trial's of the sweep in
    ``out_dir``; returns the rows."""
    if rows is None:
        rows = read_trial_rows(out_dir, read_record(out_dir))
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    text = buf.getvalue()
    write_outputs(out_dir, {"results.csv": lambda p: p.write_text(text)})
    return rows


#: the columns of results.csv that are text
TEXT_COLUMNS = ("rule", "kind", "trial", "status", "host", "reason")


def read_results(out_dir: Path) -> tuple[dict, list[dict], str | None]:
    """``(sweep record, rows, note)`` of a finished sweep's output folder: the rows of
    ``results.csv``, checked against ``sweep.json`` (every trial it lists has rows) and the
    trial folders' own results. A table that does not match is rebuilt from the trial
    folders if they hold every trial's results (``results.csv`` is written again and
    ``note`` says so); otherwise it is an input error naming it."""
    out_dir = Path(out_dir)
    for name in ("sweep.json", "results.csv"):
        if not (out_dir / name).is_file():
            raise ModelError(out_dir, None, f"no {name}: not the output folder of a finished sweep (run neurodyn sweep FILE --out DIR first)")
    record = read_record(out_dir)
    built = read_trial_rows(out_dir, record)
    complete = bool(built) and {r["trial"] for r in built} == {t["trial"] for t in record["trials"]}  # every trial's folder holds its results
    try:
        rows = _read_csv(out_dir / "results.csv", record)
    except ModelError as err:
        if not complete:
            raise
        problem = err.message.removesuffix(f"; {REDO}")
    else:
        problem = _mismatch(rows, built, record)
        if problem is None:
            return record, rows, None
        if not complete:
            raise ModelError(out_dir / "results.csv", None, f"{problem}, and the trial folders do not hold every trial's results to rebuild it from; {REDO}")
    write_results(out_dir, built)
    return record, built, f"results.csv did not match the trials ({problem}); rebuilt from the trial folders"


def _mismatch(rows: list[dict], built: list[dict], record: dict) -> str | None:
    """What is wrong with the table's ``rows`` of a finished sweep: trials of the record
    without rows, or rows that differ from those the trial folders give (``built``)."""
    listed = {t["trial"] for t in record["trials"]}
    missing = listed - {r["trial"] for r in rows}
    if missing:
        return f"it has no rows of {len(missing)} of the {len(listed)} trials in sweep.json (cut short?)"
    done = {r["trial"] for r in built}
    ours, theirs = _cells([r for r in rows if r["trial"] in done], record), _cells(built, record)
    if ours.keys() != theirs.keys():
        return "its rows differ from the results in the trial folders"
    for key, cells in theirs.items():
        changed = next((k for k in sorted(cells.keys() | ours[key].keys()) if cells.get(k) != ours[key].get(k)), None)
        if changed is not None:
            return f"its {changed} of {key[0]}, {key[1]}, step {key[2]} is {ours[key].get(changed, '')!r}, not the {cells.get(changed, '')!r} of the trial's folder"
    return None


def _who(record: dict) -> str:
    """What a line of the table and the summary is per trial: a rule (experiment sweeps)
    or the circuit kind (model sweeps)."""
    return "rule" if record.get("target", "experiment") == "experiment" else "kind"


def _cells(rows: list[dict], record: dict) -> dict:
    """The rows by (trial, rule, step), each as the text of its cells as ``results.csv``
    reads back (an empty cell and a missing one are the same; "1e-3" and 0.001 too). A
    repeated key is a key of its own, so two copies of a row differ from one."""
    who, out = _who(record), {}
    for r in rows:
        key = (str(r["trial"]), str(r.get(who)), str(r.get("step")))
        while key in out:
            key += ("again",)
        out[key] = {k: str(_number(str(v))) for k, v in r.items() if v is not None and v != ""}
    return out


def _read_csv(path: Path, record: dict) -> list[dict]:
    """The rows of ``results.csv``, each naming a trial of the record with its setting (one
    input error naming the file and line otherwise)."""
    who = _who(record)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            raw, columns = list(reader), reader.fieldnames or []
    except (OSError, ValueError, csv.Error) as err:
        raise ModelError(path, None, f"cannot be read ({err}); {REDO}") from None
    missing = [k for k in ("trial", "seed", "setting", who, "status") if k not in columns]
    if missing:
        raise ModelError(path, None, f"no column {missing[0]}: not the results table of a sweep; {REDO}")
    settings = {t["trial"]: t["setting"] for t in record["trials"]}
    swept = set(SweepSpec(**record["spec"]).paths)  # their values may be text or lists
    rows = []
    for line, r in enumerate(raw, 2):
        if None in r or None in r.values():
            raise ModelError(path, f"line {line}", f"has {'more' if None in r else 'fewer'} cells than the header (cut short?); {REDO}")
        r = {k: _number(v) if k not in TEXT_COLUMNS else v for k, v in r.items()}
        if settings.get(r["trial"], object()) != r["setting"]:
            raise ModelError(path, f"line {line}", f"trial {r['trial']!r}, setting {r['setting']!r} is not a trial of sweep.json; {REDO}")
        odd = next((k for k, v in r.items() if isinstance(v, str) and k not in TEXT_COLUMNS and k not in swept and v not in ("True", "False")), None)
        if odd is not None:
            raise ModelError(path, f"line {line}", f"column {odd} holds {r[odd]!r}, not a number; {REDO}")
        rows.append(r)
    if not rows:
        raise ModelError(path, None, f"holds no results; {REDO}")
    return rows


def summarize(out_dir: Path, metric: str | None = None, figure_format: str = "png", rows: list[dict] | None = None) -> dict:
    """Per setting and rule, over seeds: mean and standard deviation of the final ``metric``
    (default: the sweep's ``metric``, test_loss unless it says otherwise; test accuracy as
    well where there is one) of the trials that completed, how many diverged and how many a
    search pruned; per rule, the best setting whose seeds all completed. ``rows``: the
    table's (default: ``results.csv``, checked by :func:`read_results`). Writes
    ``summary.json`` and ``summary.png`` (or pdf/svg by ``figure_format``: the metric against the first swept option, one
    line per rule, one standard deviation as a band). A note about the table (rebuilt) is
    returned under ``"notes"``, not written."""
    from .plots import sweep_plot

    out_dir = Path(out_dir)
    if rows is None:
        record, rows, note = read_results(out_dir)
    else:
        record, note = read_record(out_dir), None
    summary = summary_of(record, rows, metric)
    writers = {"summary.json": json_writer(summary), "summary.png": lambda p: sweep_plot(p, summary)}
    write_outputs(out_dir, writers, stale=["summary.png"], figure_format=figure_format)
    return summary | {"notes": [note] if note else []}


def summary_of(record: dict, rows: list[dict], metric: str | None = None) -> dict:
    """The summary (:func:`summarize`) of a sweep's ``record`` and table ``rows``."""
    spec, target = SweepSpec(**record["spec"]), TARGETS[record.get("target", "experiment")]
    who = _who(record)
    metric = metric or spec.metric or target.metrics[0]
    settings = _settings_of(rows, record, who, metric)
    maximize = spec.maximize if metric == (spec.metric or target.metrics[0]) else metric == "test_accuracy"
    best = {}
    for e in settings:
        if e.get(metric, {}).get("n") == e["seeds"]:
            b = best.get(e[who])
            if b is None or (e[metric]["mean"] > b[metric]["mean"] if maximize else e[metric]["mean"] < b[metric]["mean"]):
                best[e[who]] = e
    return {
        "file": record.get("file", record.get("experiment_file")), "target": target.kind, "mode": spec.mode, "metric": metric, "maximize": maximize, "swept": spec.paths,
        "settings": settings, "best": {rule: {"setting": e["setting"], "values": e["values"], metric: e[metric]} for rule, e in best.items()},
    }


def partial_summary(out_dir: Path) -> dict:
    """The summary of a sweep that has not finished (no ``results.csv`` yet: it is running,
    or was stopped) over the trials that have: read from their folders, printed only (nothing
    is written, so it may look at a running sweep); a note says how many trials are in."""
    out_dir = Path(out_dir)
    record = read_record(out_dir)
    spec = SweepSpec(**record["spec"])
    total = spec.n_settings() * spec.seeds
    rows = read_trial_rows(out_dir, record)
    done = len({r["trial"] for r in rows})
    if not rows:
        raise ModelError(out_dir, None, f"the sweep has not finished, and none of its {total} trials has yet: ask again later, or continue it with --resume")
    note = f"the sweep has not finished: {done} of {total} trials so far (it is running, or continue it with --resume); nothing written"
    return summary_of(record, rows) | {"notes": [note], "partial": True}


def _settings_of(rows: list[dict], record: dict, who: str, metric: str) -> list[dict]:
    """The summary's entries: per setting and rule (or kind), over the final rows of its
    trials, the seeds, how many failed or were pruned, and the completed trials' ``metric``."""
    final = {}
    for r in rows:
        key = (r["trial"], r[who])
        if key not in final or (r.get("step") or 0) > (final[key].get("step") or 0):
            final[key] = r
    values = {t["setting"]: t["values"] for t in record["trials"]}
    groups: dict = {}
    for r in final.values():
        groups.setdefault((int(r["setting"]), r[who]), []).append(r)
    settings = []
    for (s, rule), members in sorted(groups.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        ok = [m for m in members if m["status"] == "completed"]
        n_pruned = sum(str(m["status"]).startswith("pruned") for m in members)
        entry = {"setting": s, who: rule, "values": values[s], "seeds": len(members), "diverged": len(members) - len(ok) - n_pruned, "pruned": n_pruned}
        for m in (metric, "test_accuracy"):
            vals = np.asarray([v[m] for v in ok if isinstance(v.get(m), (int, float)) and not isinstance(v.get(m), bool)], float)
            if vals.size:
                with np.errstate(invalid="ignore", over="ignore"):  # an infinite value: mean inf, std nan, no warning
                    entry[m] = {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1)) if vals.size > 1 else 0.0, "n": int(vals.size)}
        settings.append(entry)
    return settings


def summary_lines(summary: dict) -> list[str]:
    """The summary as text: one line per setting and rule, then each rule's best setting."""
    metric = summary["metric"]
    lines = [f"  note: {n}" for n in summary.get("notes", [])]
    for e in summary["settings"]:
        values = _values(e["values"])
        stat = e.get(metric)
        text = f"{stat['mean']:.4g} +- {stat['std']:.2g} (n = {stat['n']})" if stat else "no completed trial"
        acc = e.get("test_accuracy") if metric != "test_accuracy" else None
        acc = f", test accuracy {acc['mean']:.4f} +- {acc['std']:.2g}" if acc else ""
        div = f", {e['diverged']} diverged" if e["diverged"] else ""
        div += f", {e['pruned']} pruned" if e.get("pruned") else ""
        if summary.get("target", "experiment") == "model":
            div = div.replace("diverged", "did not converge")
        lines.append(f"  {values} | {_label(e):<14} {metric} {text}{acc}{div}")
    if len(summary["settings"]) > len(summary.get("best", {})):
        word = "highest" if summary.get("maximize") else "lowest"
        for rule, b in summary.get("best", {}).items():
            lines.append(f"  best for {rule} ({word} mean {metric}): {_values(b['values'])}, {b[metric]['mean']:.4g} +- {b[metric]['std']:.2g}")
    return lines


def _label(entry: dict) -> str:
    """The rule of an experiment sweep's entry, the circuit kind of a model sweep's."""
    return entry.get("rule") or entry.get("kind", "")


def _values(values: dict) -> str:
    return ", ".join(f"{p} = {_fmt(v)}" for p, v in values.items()) or "base setting"


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def default_workers() -> int:
    """Half the machine's cores (XLA already uses several threads per process), at least 1."""
    return max(1, (os.cpu_count() or 2) // 2)
