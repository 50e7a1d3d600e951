"""Running a sweep's trials: one trial, or the seeds of one setting together, here, in a
bounded pool of processes, or as Ray tasks on a cluster.

A *group* is a list of trial folders, each holding its ``experiment.toml`` (and a
``checkpoint.npz`` if it was interrupted) or its ``model.toml``. A runner (:class:`Inline`, :class:`Pool`,
:class:`RayRunner`) trains groups and leaves every output in the trial folders;
:func:`drive` keeps a bounded number of groups in flight and hands each finished one back.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import socket
import tempfile
import warnings
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import ModelError, NumericalError, WorkerLost
from .interrupt import check as check_interrupt
from .interrupt import deferred
from .results import write_outputs


def trial_done(folder: Path) -> bool:
    """A trial is done once its training wrote ``summary.json`` (completed, diverged or pruned)."""
    return (Path(folder) / "summary.json").is_file()


def _as_the_cli(cores: int = 1) -> None:
    """A worker process trains as ``neurodyn train`` does: float64 available (the
    experiment's ``[training] dtype`` decides); its vmapped seeds spread over the ``cores``
    it holds (:func:`~.resources.present_cores`)."""
    import jax

    from .resources import present_cores

    jax.config.update("jax_enable_x64", True)
    present_cores(cores)


def run_trial(folder: str, data_dir: str | None, report=None) -> dict:
    """Train one trial from ``folder/experiment.toml`` into ``folder`` (continuing from its
    checkpoint if one exists), or simulate ``folder/model.toml``; returns each rule's (or the
    circuit's) status. ``report``: see :data:`~neurodyn.io.training.Report`."""
    _as_the_cli()
    folder = Path(folder)
    if (folder / "model.toml").is_file():
        return simulate_trial(folder)
    from .experiment import load_experiment
    from .training import run_training

    exp = load_experiment(folder / "experiment.toml")
    resume = (folder / "checkpoint.npz").is_file()
    try:
        summary = run_training(exp, folder, data_dir=data_dir, resume=resume, plot=False, report=report)
    except NumericalError:
        summary = json.loads((folder / "summary.json").read_text())
    return summary["status"]


def simulate_trial(folder: Path) -> dict:
    """``neurodyn simulate`` of a model sweep's trial, without figures. A model whose arrays
    cannot be stabilised as its file asks gets a summary saying so (the trial is done)."""
    from .model import load_model
    from .simulation import run_simulation

    try:
        model = load_model(folder / "model.toml")
    except NumericalError as err:
        summary = {"converged": False, "reason": f"stabilisation failed: {err}"}
        write_outputs(folder, {"summary.json": lambda p: p.write_text(json.dumps(summary, indent=2))})
        return {"model": summary["reason"]}
    summary = run_simulation(model, folder, plot=False)
    return {model.kind: "converged" if summary["converged"] else summary["reason"]}


def run_trial_group(folders: list[str], data_dir: str | None, report=None, vmap: bool = True, share: int = 1, cores: int | None = None) -> None:
    """Train the trials of one setting with their steps vmapped over the seeds
    (:func:`~neurodyn.io.training.run_training_seeds`) and spread over ``cores`` (default:
    this machine's cores shared by ``share`` worker processes), as many seeds at a time as
    the memory limit allows (:func:`seeds_at_once`): all from the start, or all from their
    checkpoints where each rule's seeds stopped at the same step (unreported then: a search
    does not prune a setting it resumes). Otherwise, where a rule cannot be vmapped, or
    ``vmap`` is off, one by one (a begun trial from its checkpoint)."""
    checkpoints = [(Path(f) / "checkpoint.npz").is_file() for f in folders]
    begun, resume = any(checkpoints), all(checkpoints)
    models = any((Path(f) / "model.toml").is_file() for f in folders)
    if len(folders) == 1 or (begun and not resume) or not vmap or models:
        for f in folders:
            run_trial(f, data_dir, None if begun else report)
        return
    from .resources import cores as machine_cores

    _as_the_cli(cores or max(1, machine_cores() // max(1, share)))
    from .experiment import load_experiment
    from .training import run_training_seeds

    exps = [load_experiment(Path(f) / "experiment.toml") for f in folders]
    k = seeds_at_once(exps[0], share)
    for i in range(0, len(folders), k):
        part = folders[i : i + k]
        mine = None if resume else report
        if len(part) == 1 or run_training_seeds(exps[i : i + k], [Path(f) for f in part], data_dir=data_dir, plot=False, report=mine, resume=resume) is None:
            for f in part:
                run_trial(f, data_dir, mine)


def seeds_at_once(exp, share: int = 1) -> int:
    """How many seeds of ``exp`` one vmapped run may train within its ``1 / share`` of the
    memory limit (at least one; :mod:`.resources`; ``share`` is the number of worker
    processes training at once on this machine): it holds every seed's data, weights,
    mini-batches and evaluation at once, :func:`seed_bytes` times the seeds."""
    from ..learning.train import seed_slots
    from .resources import memory_limit

    fit = k = max(1, int(memory_limit() / max(1, share) // max(1.0, seed_bytes(exp))))
    while k > 1 and seed_slots(k) > fit:  # spread over the devices, k seeds take seed_slots(k)
        k -= 1
    return k


def seed_bytes(exp) -> float:
    """The estimated memory of one training of ``exp``, as the experiment file's validation
    counts it (:func:`~.experiment.training_parts`)."""
    from .experiment import training_parts

    return sum(b for b, _ in training_parts(exp.network, exp.data, exp.training, len(exp.rules)).values())


def run_group_anywhere(payload: dict[str, tuple[str, str, bytes | None]], data_dir: str | None, vmap: bool = True, cores: int = 1) -> dict[str, dict[str, bytes]]:
    """Train one group in a temporary folder of whichever machine runs it (a Ray task
    holding ``cores`` CPUs): ``payload`` maps each trial's name to its file's name and text
    and its checkpoint (or None). Returns each trial's output files for the sweep's own
    machine to write, so no shared file system is needed."""
    with tempfile.TemporaryDirectory() as tmp:
        folders = []
        for name, (file_name, text, checkpoint) in payload.items():
            folder = Path(tmp) / name
            folder.mkdir()
            (folder / file_name).write_text(text)
            if checkpoint is not None:
                (folder / "checkpoint.npz").write_bytes(checkpoint)
            folders.append(str(folder))
        run_trial_group(folders, data_dir, vmap=vmap, cores=cores)
        return {Path(f).name: {p.name: p.read_bytes() for p in Path(f).iterdir() if p.is_file()} for f in folders}


class Inline:
    """Trains each group in this process when it is submitted."""

    capacity = workers = 1  # groups in flight: in a sweep, and in a search (which learns from each)

    def __init__(self, data_dir: str | None, vmap: bool = True):
        self.data_dir, self.vmap = data_dir, vmap

    def submit(self, folders: list[str], report=None) -> Future:
        future: Future = Future()
        run_trial_group(folders, self.data_dir, report, self.vmap)
        future.set_result(None)
        return future

    def finish(self, future: Future, folders: list[str]) -> None:
        future.result()

    def close(self) -> None:
        pass


def _run_group_deferred(*args) -> None:
    """:func:`run_trial_group` in a worker process, Ctrl-C deferred to its next checkpoint
    (:mod:`.interrupt`): the terminal sends it to the workers too."""
    with deferred():
        run_trial_group(*args)


class Pool(Inline):
    """Trains groups in ``workers`` processes (spawned: a forked JAX process can deadlock)."""

    def __init__(self, data_dir: str | None, workers: int, vmap: bool = True):
        super().__init__(data_dir, vmap)
        self.capacity = self.workers = workers
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, folders: list[str], report=None) -> Future:
        return self.pool.submit(_run_group_deferred, folders, self.data_dir, report, self.vmap, self.workers)

    def finish(self, future: Future, folders: list[str]) -> None:
        try:
            future.result()
        except BrokenProcessPool:  # every trial in flight fails so: none is named
            raise WorkerLost(
                f"{Path(folders[0]).parent.parent}: a worker process ended abruptly (killed from outside, e.g. by the system "
                "when memory ran out); the finished trials are kept and the others continue from their checkpoints with "
                "--resume (with fewer --workers or a lower --max-memory if memory ran out)") from None

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class RayOptions:
    """Where and how trials run on Ray: ``address`` of a running cluster (``"auto"`` finds
    the local one) or ``"local"`` (start an instance on this machine with ``workers`` CPUs),
    and the resources each task (the seeds of one setting) holds."""

    address: str
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0


class RayRunner(Inline):
    """Trains each group as one Ray task holding the resources of :class:`RayOptions`; the
    files it returns are written into the trial folders here."""

    def __init__(self, data_dir: str | None, options: RayOptions, workers: int, vmap: bool = True):
        super().__init__(data_dir, vmap)
        try:
            import ray
        except ImportError:
            raise ModelError("--ray", None, "needs Ray: pip install 'neurodyn[ray]'") from None
        self.ray, self.capacity, self.workers = ray, 1 << 30, workers  # the cluster schedules a sweep's groups
        self.started = not ray.is_initialized()
        if self.started:
            _connect(ray, options.address, workers)
        try:
            _check_fits(ray, options)
        except ModelError:
            self.close()
            raise
        self.task = ray.remote(num_cpus=options.cpus_per_trial, num_gpus=options.gpus_per_trial)(run_group_anywhere)
        self.cores = max(1, int(options.cpus_per_trial))

    def submit(self, folders: list[str], report=None) -> Future:
        payload = {}
        for f in map(Path, folders):
            ckpt, file = f / "checkpoint.npz", next(p for p in (f / "experiment.toml", f / "model.toml") if p.is_file())
            payload[f.name] = (file.name, file.read_text(), ckpt.read_bytes() if ckpt.is_file() else None)
        return self.task.remote(payload, self.data_dir, self.vmap, self.cores).future()

    def finish(self, future: Future, folders: list[str]) -> None:
        lost = tuple(getattr(self.ray.exceptions, n) for n in RAY_LOST if hasattr(self.ray.exceptions, n))
        try:
            files = future.result()
        except lost as err:  # Ray has retried the task already
            raise WorkerLost(
                f"{Path(folders[0]).parent.parent}: the Ray task training {', '.join(Path(f).name for f in folders)} was lost "
                f"({type(err).__name__}: {' '.join(str(err).split())[:160]}); the finished trials are kept and the others continue "
                "from their checkpoints with --resume") from None
        for f in map(Path, folders):
            write_outputs(f, {name: (lambda p, data=data: p.write_bytes(data)) for name, data in files[f.name].items() if name not in ("experiment.toml", "model.toml")})

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


#: Ray's errors for a task lost with its worker or node (out of memory, a node gone): not
#: an error of the trial's input or numerics
RAY_LOST = ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError", "ObjectLostError", "LocalRayletDiedError")

#: how long a cluster's head may take to accept a connection before --ray ADDRESS gives up
#: (Ray itself retries for minutes against an address where nothing listens)
CONNECT_TIMEOUT_S = 10.0


def _connect(ray, address: str, workers: int) -> None:
    """``ray.init``: a new instance here (``local``, ``workers`` CPUs), the cluster this
    machine belongs to (``auto``) or the one at ``address``. A cluster that cannot be
    reached is an input error naming ``--ray``, found before anything is written."""
    if address not in ("local", "auto"):
        _check_reachable(address)
    kw = {"num_cpus": workers} if address == "local" else {"address": address}
    # a private instance lives as long as the sweep: Ray's notice on how to set up its
    # authentication tells its user nothing to do (a cluster's is left as it is)
    notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = notice.level
    try:
        if address == "local":
            notice.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            # Ray starts its processes by fork + exec, which JAX's warning about fork does not concern
            warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
            ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING, **kw)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as err:
        fix = "start one with `ray start --head`, give its address, or use --ray local" if address == "auto" else "check the address, or use --ray local"
        raise ModelError("--ray", None, f"cannot connect to Ray at {address} ({' '.join(str(err).split())[:200]}): {fix}") from None
    finally:
        notice.setLevel(level)


def _check_fits(ray, options: RayOptions) -> None:
    """Some node of the cluster can hold a task (``--trial-cpus`` CPUs and ``--trial-gpus``
    GPUs); else Ray would keep every task waiting. On a private instance (``local``) that
    is an input error; a cluster may still grow (an autoscaler), so there it is a warning."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    need = {"CPU": options.cpus_per_trial, "GPU": options.gpus_per_trial}
    if any(all(r.get(k, 0.0) >= v for k, v in need.items()) for r in nodes):
        return
    most = {k: max((r.get(k, 0.0) for r in nodes), default=0.0) for k in need}
    problem = (f"a task asks for {need['CPU']:g} CPUs and {need['GPU']:g} GPUs, but no node of the Ray cluster has them "
               f"(at most {most['CPU']:g} CPUs and {most['GPU']:g} GPUs)")
    if options.address == "local":
        raise ModelError("--trial-cpus/--trial-gpus", None, f"{problem}: ask for less, or give --ray local more CPUs with --workers")
    warnings.warn(f"{problem}; the tasks wait until such a node joins", stacklevel=2)


def _check_reachable(address: str) -> None:
    """Something accepts connections at ``HOST:PORT`` (``ray://HOST:PORT`` for Ray Client)
    within :data:`CONNECT_TIMEOUT_S`; an address without a port is left to Ray."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, OverflowError) as err:
        why = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise ModelError("--ray", None, (
            f"nothing answers at {address} ({why}): give the address the head node's `ray start --head` printed "
            "(HOST:6379 by default), --ray auto on a node of the cluster, or --ray local")) from None


def drive(runner: Inline, jobs: Iterable[tuple[list[str], object]], done: Callable[[list[str]], None], limit: int | None = None) -> None:
    """Train every ``(folders, report)`` job of ``jobs`` with at most ``limit`` (default
    ``runner.capacity``) in flight, calling ``done(folders)`` as each finishes. ``jobs`` is read lazily: a search
    asks for its next setting only when a slot is free. The first error stops the sweep."""
    pending: dict[Future, list[str]] = {}

    def collect() -> None:
        finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for future in finished:
            folders = pending.pop(future)
            runner.finish(future, folders)
            done(folders)

    try:
        it: Iterator = iter(jobs)
        for folders, report in it:
            check_interrupt()
            pending[runner.submit(folders, report)] = folders
            while len(pending) >= (limit or runner.capacity):
                collect()
        while pending:
            collect()
    finally:
        for future in pending:
            future.cancel()
        runner.close()
