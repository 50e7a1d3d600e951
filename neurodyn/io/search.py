"""Hyper-parameter searches (``[sweep] mode = "optuna"``): Optuna chooses the settings.

The search trains one rule of the file (``[sweep] rule``). Each setting Optuna asks for is
trained for every seed (``seeds``, vmapped as in any sweep); the setting's value is the
mean over its seeds of the final ``metric``, minimised or maximised. ``samples`` settings
are tried in all, ``workers`` at a time. The space is the file's ``[sweep.grid]`` (choices)
and ``[sweep.random]`` (ranges, log-uniform where ``log = true``); ``sampler`` is "tpe"
(Optuna's default) or "random", seeded by the file's seed.

``pruner = "asha"`` stops settings early by asynchronous successive halving (Optuna's
``SuccessiveHalvingPruner``): after ``min_evaluations`` evaluation intervals, and then
after ``reduction_factor`` times as many at each further rung, a setting whose mean metric
over its seeds is not among the best ``1/reduction_factor`` of those that reached the rung
stops there, its status "pruned".

The study lives in ``study.journal`` (Optuna's journal file) in the output folder, so a
killed search resumes: finished settings are kept, interrupted ones continue from their
checkpoints, and the budget counts every setting asked for.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelError
from .experiment import TrainingSpec
from .results import json_writer, write_outputs
from .sweep import REDO, Sweep, _trial_record, read_record, write_trials
from .training import pruned


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ModelError("[sweep]", "mode", "mode = \"optuna\" needs Optuna: pip install 'neurodyn[optuna]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _storage(out_dir: Path):
    optuna = _optuna()
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(out_dir / "study.journal")))


def study(sweep: Sweep, out_dir: Path):
    """The sweep's Optuna study in ``out_dir/study.journal`` (created, or loaded to resume)."""
    optuna, spec = _optuna(), sweep.spec
    sampler = optuna.samplers.TPESampler(seed=sweep.seed) if spec.sampler == "tpe" else optuna.samplers.RandomSampler(seed=sweep.seed)
    pruner = optuna.pruners.NopPruner()
    if spec.pruner == "asha":
        every = sweep.base.get("training", {}).get("eval_every", TrainingSpec.model_fields["eval_every"].default)
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=every * spec.min_evaluations, reduction_factor=spec.reduction_factor)
    return optuna.create_study(
        storage=_storage(out_dir), sampler=sampler, pruner=pruner, study_name=sweep.name,
        direction="maximize" if spec.maximize else "minimize", load_if_exists=True,
    )


def space(sweep: Sweep) -> dict:
    """Optuna's distributions, one per swept option (named by its dotted path)."""
    d = _optuna().distributions
    out = {}
    for path, choices in sweep.spec.grid.items():
        out[path] = d.CategoricalDistribution(choices)
    for path, r in sweep.spec.random.items():
        if r.integer:
            out[path] = d.IntDistribution(int(round(r.low)), int(round(r.high)), log=r.log)
        else:
            out[path] = d.FloatDistribution(r.low, r.high, log=r.log)
    return out


@dataclass(frozen=True)
class Reporter:
    """Reports a setting's mean ``metric`` over its seeds to its Optuna trial after every
    evaluation of ``rule`` and says whether the pruner stops it (a
    :data:`~neurodyn.io.training.Report`; picklable, so worker processes report too)."""

    journal_dir: str
    study_name: str
    trial_id: int
    rule: str
    metric: str

    def __call__(self, label: str, step: int, rows: list) -> bool:
        values = [r[self.metric] for r in rows if self.metric in r]
        if label != self.rule or not values or not np.all(np.isfinite(values)):
            return False
        st = _loaded_study(self.journal_dir, self.study_name)
        trial = _optuna().trial.Trial(st, self.trial_id)
        # seeds trained one by one report in turn: the first to reach a step decides there
        if step not in st._storage.get_trial(self.trial_id).intermediate_values:
            trial.report(float(np.mean(values)), step)
        return trial.should_prune()


@functools.lru_cache(maxsize=8)
def _loaded_study(journal_dir: str, study_name: str):
    """The study of a journal, opened once per process (a worker reports after every
    evaluation; the journal storage reads what others wrote on every access)."""
    return _optuna().load_study(study_name=study_name, storage=_storage(Path(journal_dir)))


def outcome(folders: list[str], rule: str, metric: str):
    """``(state, value)`` of a setting from its trials' summaries: COMPLETE with the mean
    final metric, PRUNED if the search stopped it, FAIL if a seed diverged."""
    from optuna.trial import TrialState

    summaries = [json.loads((Path(f) / "summary.json").read_text()) for f in folders]
    status = [s["status"][rule] for s in summaries]
    if any(pruned(v) for v in status):
        return TrialState.PRUNED, None
    if any(v != "completed" for v in status):
        return TrialState.FAIL, None
    return TrialState.COMPLETE, float(np.mean([s["final"][rule][metric] for s in summaries]))


def _checked_study(sweep: Sweep, out_dir: Path, record: dict):
    """The study of ``out_dir/study.journal``, which must hold the settings ``sweep.json``
    records with their values, and no finished one it does not (a setting asked for but
    not yet recorded, left running by a kill, is allowed); else an input error naming it."""
    from optuna.trial import TrialState

    path = out_dir / "study.journal"
    _drop_torn_tail(path)
    try:
        st = study(sweep, out_dir)
        trials = {t.number: t for t in st.get_trials(deepcopy=False)}
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as err:  # JSONDecodeError is a ValueError
        raise ModelError(path, None, f"not a readable Optuna journal ({type(err).__name__}: {' '.join(str(err).split())[:120]}); {REDO}") from None
    recorded = {t["setting"]: t["values"] for t in record["trials"]}
    lost = [s for s, values in recorded.items() if s not in trials or trials[s].params != values]
    unrecorded = [n for n, t in trials.items() if n not in recorded and t.state != TrialState.RUNNING]
    if lost or unrecorded:
        what = f"lacks setting {lost[0]} of sweep.json (or has other values for it)" if lost else f"holds setting {unrecorded[0]}, which sweep.json does not"
        raise ModelError(path, None, f"{what}: it is not the journal of this search; {REDO}")
    return st


def _drop_torn_tail(path: Path) -> None:
    """Cut a journal's last line if a kill left it half-written (no newline): Optuna skips
    such a line when it reads, but would append the next record to it and then fail."""
    if not path.is_file():
        return
    with open(path, "rb+") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


def run_search(sweep: Sweep, out_dir: Path, runner, bar) -> None:
    """Ask Optuna for settings until ``samples`` have been asked for, training each (all its
    seeds) as a slot of ``runner`` frees, and tell Optuna each outcome; first finish the
    settings a killed search left running. Each job is a whole setting (its seeds vmapped
    unless the runner says otherwise); ``runner.workers`` settings train at a time."""
    from optuna.trial import TrialState

    spec, dists = sweep.spec, space(sweep)
    record = read_record(out_dir)
    st = _checked_study(sweep, out_dir, record)
    rule = next(iter(sweep.base["rules"]))
    folders_of = {}
    for t in record["trials"]:
        folders_of.setdefault(t["setting"], []).append(str(out_dir / "trials" / t["trial"]))

    def start(trial) -> list[str]:
        """The trial folders of the setting Optuna asked for, recorded in sweep.json."""
        trials, tables = sweep.setting(trial.number, {p: trial.params[p] for p in dists})
        record["trials"] += [_trial_record(t) for t in trials]
        write_outputs(out_dir, {"sweep.json": json_writer(record)})
        write_trials(sweep, trials, tables, out_dir)
        folders_of[trial.number] = [str(out_dir / "trials" / t.name) for t in trials]
        return folders_of[trial.number]

    def jobs():
        for t in st.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            # a search killed between asking and recording the setting: its trials start now
            yield folders_of.get(t.number) or start(t), None
        while len(st.trials) < spec.samples:
            trial = st.ask(dists)
            folders = start(trial)
            reporter = Reporter(str(out_dir), st.study_name, trial._trial_id, rule, sweep.metric) if spec.pruner != "none" else None
            yield folders, reporter

    def done(folders: list[str]) -> None:
        if bar is not None:
            bar.update(len(folders))
        s = next(s for s, fs in folders_of.items() if folders[0] in fs)
        state, value = outcome(folders_of[s], rule, sweep.metric)
        st.tell(s, value, state=state, skip_if_finished=True)

    from .trials import drive

    drive(runner, jobs(), done, limit=runner.workers)
