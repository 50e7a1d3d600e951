"""Sweeps (``neurodyn sweep``): every trial is the training run of its setting and seed,
results gather into one table and a summary over seeds, a killed sweep resumes without
repeating a trial, a process pool gives the same numbers, and bad [sweep] tables are
input errors naming the key before anything runs."""

import csv
import json
import shutil

import numpy as np
import pytest

from helpers import tiny_experiment
from neurodyn.cli import main
from neurodyn.io.errors import ModelError
from neurodyn.io.experiment import load_experiment
from neurodyn.io.sweep import load_sweep, open_sweep, prepare, run_trial
from neurodyn.io.training import run_training, run_training_seeds

BASE = tiny_experiment(name="tiny_sweep", seed=4, n_train=60, n_test=30, eval_samples=30, probe_samples=10)

SWEEP = """
[sweep]
seeds = 2
[sweep.grid]
"training.lr" = [0.02, 0.005]
"""


def _file(tmp_path, sweep=SWEEP, base=BASE):
    path = tmp_path / "exp.toml"
    path.write_text(base + sweep)
    return path


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _without_wall(rows):
    return [{k: v for k, v in r.items() if not k.startswith("wall")} for r in rows]


def test_sweep_trials_are_training_runs_gathered_in_one_table(tmp_path, capsys):
    file = _file(tmp_path)
    assert main(["sweep", str(file), "--out", str(tmp_path / "sw"), "--workers", "1"]) == 0
    rows = _rows(tmp_path / "sw" / "results.csv")
    # 2 settings x 2 seeds, 2 rules, evaluations at 0, 10, 20
    assert len(rows) == 4 * 2 * 3
    assert list(rows[0])[:8] == ["trial", "seed", "setting", "rule", "step", "train_loss", "test_loss", "training.lr"]
    assert {(r["training.lr"], r["seed"]) for r in rows} == {(lr, s) for lr in ("0.02", "0.005") for s in ("4", "5")}
    assert all(r["status"] == "completed" and r["host"] for r in rows)

    # a trial is exactly `neurodyn train` of its setting and seed
    single = tmp_path / "single.toml"
    single.write_text(BASE.replace("lr = 0.01", "lr = 0.005"))
    assert main(["train", str(single), "--seed", "5", "--out", str(tmp_path / "single")]) == 0
    trial = [r for r in rows if r["training.lr"] == "0.005" and r["seed"] == "5"][0]["trial"]
    _same_numbers(_rows(tmp_path / "sw" / "trials" / trial / "metrics.csv"), _rows(tmp_path / "single" / "metrics.csv"))
    # ... although the two seeds of a setting trained as one vmapped run
    assert json.loads((tmp_path / "sw" / "trials" / trial / "summary.json").read_text())["vmapped_seeds"] == 2

    # the summary is the mean and spread over seeds of the final test loss
    summary = json.loads((tmp_path / "sw" / "summary.json").read_text())
    entry = next(e for e in summary["settings"] if e["rule"] == "fa" and e["values"] == {"training.lr": 0.02})
    final = [float(r["test_loss"]) for r in rows if r["rule"] == "fa" and r["training.lr"] == "0.02" and r["step"] == "20"]
    assert entry["test_loss"]["mean"] == pytest.approx(np.mean(final)) and entry["test_loss"]["std"] == pytest.approx(np.std(final, ddof=1))
    assert entry["seeds"] == 2 and entry["diverged"] == 0
    assert (tmp_path / "sw" / "summary.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "training.lr = 0.02 | fa" in out

    # --summary DIR prints the same summary again
    assert main(["sweep", "--summary", str(tmp_path / "sw")]) == 0
    assert "training.lr = 0.005 | bp" in capsys.readouterr().out


def test_killed_sweep_resumes_without_repeating_a_trial(tmp_path):
    file = _file(tmp_path, sweep=SWEEP.replace("seeds = 2", "seeds = 1"))
    out = tmp_path / "sw"
    sweep = load_sweep(file)
    todo = prepare(sweep, out, resume=False)
    run_trial(str(out / "trials" / todo[0].name), None)  # the first trial finished, then the sweep was killed
    (out / "trials" / ".trial_0001.tmp-x1").mkdir()  # while writing the second one's results
    first = out / "trials" / todo[0].name / "metrics.csv"
    stamp = first.stat().st_mtime_ns
    assert main(["sweep", str(file), "--out", str(out), "--workers", "1"]) == 2  # needs --resume
    # the same file renamed, in another folder, is the same sweep
    (tmp_path / "moved").mkdir()
    moved = shutil.copy(file, tmp_path / "moved" / "renamed.toml")
    assert main(["sweep", str(moved), "--out", str(out), "--workers", "1", "--resume"]) == 0
    assert first.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["trial_0000", "trial_0001"]
    rows = _rows(out / "results.csv")
    assert {r["trial"] for r in rows} == {"trial_0000", "trial_0001"}
    # a different sweep in the same folder is refused
    changed = _file(tmp_path, sweep=SWEEP.replace("0.005", "0.004"))
    assert main(["sweep", str(changed), "--out", str(out), "--resume"]) == 2


def _same_numbers(a, b):
    """Rows of two results.csv files agree: text exactly, numbers to rounding."""
    a, b = _without_wall(a), _without_wall(b)
    assert [r.keys() for r in a] == [r.keys() for r in b]
    for ra, rb in zip(a, b):
        for k, va in ra.items():
            try:
                x, y = float(va), float(rb[k])
            except ValueError:
                assert va == rb[k], k
                continue
            # an angle near 0 is arccos near 1: rounding noise of 1e-6 degrees
            if k != "host":
                assert np.isclose(x, y, rtol=1e-9, atol=1e-5 if k.startswith("angle") else 1e-12, equal_nan=True), (k, x, y)


@pytest.mark.slow  # starts two worker processes; .ci/run runs it after the default suite
def test_process_pool_gives_the_same_numbers(tmp_path):
    file = _file(tmp_path, sweep=SWEEP.replace("seeds = 2", "seeds = 1"))
    assert main(["sweep", str(file), "--out", str(tmp_path / "one"), "--workers", "1"]) == 0
    assert main(["sweep", str(file), "--out", str(tmp_path / "two"), "--workers", "2"]) == 0
    _same_numbers(_rows(tmp_path / "one" / "results.csv"), _rows(tmp_path / "two" / "results.csv"))


@pytest.mark.slow  # 17-40 s; .ci/run runs it after the default suite
def test_ray_sweep_gives_the_same_numbers_as_the_local_path(tmp_path):
    """A real local Ray instance (no mocks) runs the trials as tasks that return their files."""
    import ray

    file = _file(tmp_path)
    assert main(["sweep", str(file), "--out", str(tmp_path / "local"), "--workers", "1"]) == 0
    assert main(["sweep", str(file), "--out", str(tmp_path / "ray"), "--ray", "local", "--workers", "2"]) == 0
    assert not ray.is_initialized()  # the instance it started is shut down
    _same_numbers(_rows(tmp_path / "local" / "results.csv"), _rows(tmp_path / "ray" / "results.csv"))
    assert sorted(p.name for p in (tmp_path / "ray" / "trials" / "trial_0003").iterdir()) == sorted(
        p.name for p in (tmp_path / "local" / "trials" / "trial_0003").iterdir()
    )


@pytest.mark.slow  # starts a local Ray instance (5 s); .ci/run runs it after the default suite
def test_ray_tasks_that_no_node_can_hold_are_refused(tmp_path, capsys):
    """Ray keeps a task that asks for more than any node has waiting for ever; on the
    private instance of --ray local that is known at the start: exit 2, nothing written."""
    import ray

    file = _file(tmp_path)
    for extra, words in ((["--trial-gpus", "1"], "1 CPUs and 1 GPUs"), (["--workers", "2", "--trial-cpus", "3"], "3 CPUs and 0 GPUs")):
        if "--trial-gpus" in extra and shutil.which("nvidia-smi"):
            continue  # a machine with a GPU holds it
        assert main(["sweep", str(file), "--out", str(tmp_path / "sw"), "--ray", "local", *extra]) == 2
        _one_line(capsys, "--trial-cpus/--trial-gpus: a task asks for " + words, "no node of the Ray cluster has them")
        assert not (tmp_path / "sw").exists() and not ray.is_initialized()


def test_vmapped_seeds_train_as_separate_runs_do(tmp_path):
    """Three seeds trained as one vmapped run write what three separate runs write; seeds
    that diverge are reported per seed, without an exception."""
    file = _file(tmp_path, sweep="")
    exps = [load_experiment(file).model_copy(update={"seed": s}) for s in (4, 5, 6)]
    summaries = run_training_seeds(exps, [tmp_path / f"v{s}" for s in range(3)])
    for s, exp in enumerate(exps):
        run_training(exp, tmp_path / f"s{s}")
        _same_numbers(_rows(tmp_path / f"v{s}" / "metrics.csv"), _rows(tmp_path / f"s{s}" / "metrics.csv"))
        assert summaries[s]["vmapped_seeds"] == 3 and summaries[s]["seed"] == exp.seed
        # three seeds in four slots, two per CPU device (conftest presents two, as the sweep does on 2 cores)
        assert summaries[s]["seed_devices"] == {"bp": 2, "fa": 2}
        assert (tmp_path / f"v{s}" / "checkpoint.npz").is_file() and (tmp_path / f"v{s}" / "learning_curves.png").is_file()
    wild = [e.model_copy(update={"training": e.training.model_copy(update={"lr": 1e200})}) for e in exps[:2]]
    summaries = run_training_seeds(wild, [tmp_path / f"w{s}" for s in range(2)], plot=False)
    for summary in summaries:
        assert all(v.startswith("diverged") for v in summary["status"].values()), summary["status"]


def test_seeds_spread_over_devices_only_where_that_is_safe(monkeypatch):
    """Stacked seeds split evenly over the two CPU devices; a program with a LAPACK kernel
    (which deadlocks when two CPU devices run it at once) is not spread; a rule whose
    module holds a float (DI's leak) vmaps over its seeds as separate runs do."""
    import jax
    import jax.numpy as jnp

    from neurodyn.learning.network import init_network
    from neurodyn.learning.rules import make_rule
    from neurodyn.learning.train import SGD, run_steps, run_steps_seeds, seed_slots, spread, spreadable, stack, unstack

    assert jax.device_count() == 2 and [seed_slots(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 4]
    with monkeypatch.context() as m:  # 16 cores: never more extra slots than seeds per device
        m.setattr(jax, "device_count", lambda: 16)
        assert [seed_slots(n) for n in (3, 16, 17, 20, 33)] == [3, 16, 18, 20, 33]
    with monkeypatch.context() as m:  # memory for 3 seeds: on 2 devices 3 would take 4 slots, so 2
        from neurodyn.io import trials

        m.setattr(trials, "seed_bytes", lambda exp: 100.0)
        m.setenv("NEURODYN_MAX_MEMORY", "300")
        assert trials.seeds_at_once(None) == 2
        m.setenv("NEURODYN_MAX_MEMORY", "400")
        assert trials.seeds_at_once(None) == 4
    assert not spreadable(lambda x: jax.lax.scan(lambda c, r: (c + jnp.fft.fft(r).real, None), x[0], x)[0], jnp.ones((2, 4)))
    nets = [init_network([3, 4, 2], ["tanh", "linear"], seed=s, init="normal", scale=1.0) for s in range(2)]
    opt = SGD(lr=0.05, weight_decay=0.0, clip=None, batch_size=2, clip_output=False, frozen=())
    xs, ts = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 2, 3))), jnp.zeros((2, 3, 2, 2))
    for name, options, safe in (("bp", {}, True), ("di", {"leak": 0.5}, False)):
        rules = [make_rule(name, n, seed=s, **options)[0] for s, n in enumerate(nets)]
        rb, nb = stack(rules), stack(nets)
        assert spreadable(run_steps_seeds, rb, nb, "squared_error", opt, xs, ts) is safe
        if safe:
            rb, nb = spread(rb), spread(nb)
            assert len(nb.W[0].sharding.device_set) == 2
        net_b, _ = run_steps_seeds(rb, nb, "squared_error", opt, spread(xs) if safe else xs, spread(ts) if safe else ts)
        for s in range(2):
            one, _ = run_steps(rules[s], nets[s], "squared_error", opt, xs[s], ts[s])
            assert not np.allclose(one.W[0], nets[s].W[0])  # the steps learned something
            for a, b in zip(unstack(net_b, s).W, one.W):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_random_search_draws_reproducible_settings_in_range(tmp_path):
    sweep = """
[sweep]
mode = "random"
samples = 6
[sweep.grid]
"rules.fa.feedback_scale" = [0.5, 1.0]
[sweep.random]
"training.lr" = { low = 1e-4, high = 1e-1, log = true }
"training.batch_size" = { low = 1, high = 8, integer = true }
"""
    a, b = load_sweep(_file(tmp_path, sweep=sweep)), load_sweep(_file(tmp_path, sweep=sweep))
    assert [t.values for t in a.trials] == [t.values for t in b.trials] and len(a.trials) == 6
    lrs = [t.values["training.lr"] for t in a.trials]
    assert all(1e-4 <= v <= 1e-1 for v in lrs) and len(set(lrs)) == 6
    assert all(isinstance(t.values["training.batch_size"], int) and 1 <= t.values["training.batch_size"] <= 8 for t in a.trials)
    assert {t.values["rules.fa.feedback_scale"] for t in a.trials} <= {0.5, 1.0}
    assert a.tables["trial_0003"]["rules"]["fa"]["feedback_scale"] == a.trials[3].values["rules.fa.feedback_scale"]


@pytest.mark.parametrize(
    "sweep,key,words",
    [
        ('[sweep.grid]\n"training.lrr" = [0.1]\n', '[sweep.grid]."training.lrr"', ["did you mean 'lr'"]),
        ('[sweep.grid]\n"rules.dtp.sigma" = [0.1]\n', '[sweep.grid]."rules.dtp.sigma"', ["no rule 'dtp'"]),
        ('[sweep.grid]\n"rules.fa.sigma" = [0.1]\n', '[sweep.grid]."rules.fa.sigma"', ["rule 'fa' has no option 'sigma'"]),
        ('[sweep.grid]\n"name" = ["x"]\n', '[sweep.grid]."name"', ["not an option"]),
        ('[sweep.grid]\n"training.lr" = [0.1, -1.0]\n', '[sweep.grid]."training.lr" = -1.0', ["[training].lr"]),
        ('[sweep.grid]\n"training.lr" = []\n', "[sweep]", ["no values"]),
        ('[sweep]\nmode = "random"\n', "[sweep]", ["samples"]),
        ('[sweep]\nseeds = 0\n', "[sweep].seeds", ["greater than or equal to 1"]),
        ("[sweep]\nsede = 2\n", "[sweep]", ["sede"]),
        ("[sweep]\nseedz = 2\n", "[sweep].seedz", ["unknown key; did you mean 'seeds'?", "remove or rename it"]),
        ('[sweep]\nmode = "random"\nsamples = 2\n[sweep.random]\n"training.lr" = { low = 0.1, hihg = 1.0 }\n', '[sweep.random]."training.lr".hihg', ["did you mean 'high'?"]),
        ("[sweep]\nseeds = 3\n[sweep.grid]\n\"seed\" = [9223372036854775806]\n", "[sweep].seeds", ['"seed" = 9223372036854775806', "fewer seeds"]),
        ('[sweep.grid]\n"training.batch_size" = [4, 500]\n', '[sweep.grid]."training.batch_size" = 500', ["training samples"]),
        ('[sweep.random]\n"training.lr" = { low = 1.0, high = 0.1 }\n', '[sweep.random]."training.lr"', ["low < high"]),
        ('[sweep]\nmode = "random"\nsamples = 2\n[sweep.random]\n"training.lr" = { low = nan, high = 0.1 }\n', '[sweep.random]."training.lr".low', ["finite"]),
        ('[sweep]\nmode = "random"\nsamples = 2\n[sweep.random]\n"training.lr" = 0.1\n', '[sweep.random]."training.lr"', ["needs a range", "low ="]),
        ('[sweep.grid]\n"training.lr" = 0.1\n', '[sweep.grid]."training.lr"', ["needs a list"]),
        ('[sweep]\nmode = "optuna"\n[sweep.grid]\n"training.lr" = [0.1]\n', "[sweep]", ["samples"]),
        ('[sweep]\nmode = "optuna"\nsamples = 3\n[sweep.grid]\n"training.lr" = [0.1]\n', "[sweep].rule", ["trains 2 rules", 'rule = "bp"']),
        ('[sweep]\nmode = "optuna"\nsamples = 3\nrule = "dfa"\n[sweep.grid]\n"training.lr" = [0.1]\n', "[sweep].rule", ["no rule 'dfa'", "did you mean 'fa'"]),
        ('[sweep]\nmode = "optuna"\nsamples = 3\nrule = "fa"\n[sweep.grid]\n"rules.bp.lr" = [0.1]\n', '[sweep]."rules.bp.lr"', ["only rule 'fa'"]),
        ('[sweep]\nmode = "optuna"\nsamples = 3\nrule = "fa"\nmetric = "test_accuracy"\n[sweep.grid]\n"training.lr" = [0.1]\n', "[sweep].metric", ["classification"]),
        ('[sweep]\nmode = "optuna"\nsamples = 3\nrule = "fa"\n', "[sweep]", ["search space"]),
        ('[sweep]\nmetric = "test_accuracy"\n[sweep.grid]\n"training.lr" = [0.1]\n', "[sweep].metric", ["needs a classification task", "use test_loss"]),
        ('[sweep]\nmode = "optuna"\nsamples = 3\nrule = "fa"\n[sweep.random]\n"training.batch_size" = { low = 0, high = 8, integer = true }\n', '[sweep.random]."training.batch_size" = 0', ["[training].batch_size"]),
        ('[sweep]\npruner = "asha"\n[sweep.grid]\n"training.lr" = [0.1]\n', "[sweep]", ['pruner is an option of a search: it needs mode = "optuna"']),
        ("[sweep.grid]\n" + "".join(f'"training.{k}" = [{", ".join(["1"] * 20)}]\n' for k in ("batch_size", "eval_every", "eval_samples", "steps")), "[sweep]", ["160000 trials", "limit"]),
    ],
)
def test_bad_sweep_tables_are_input_errors_naming_the_key(tmp_path, capsys, sweep, key, words):
    _refused(_file(tmp_path, sweep=sweep), tmp_path / "sw", capsys, key, words)


def _refused(file, out, capsys, key, words):
    """``neurodyn sweep FILE`` is exit 2 with one line naming the file and ``key``, nothing written."""
    assert main(["sweep", str(file), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{file}: {key}" in err, err
    for w in words:
        assert w in err, err
    assert not out.exists()


def test_asha_on_ray_is_refused_before_anything_runs(tmp_path, capsys):
    file = _file(tmp_path, sweep=SEARCH)
    assert main(["sweep", str(file), "--out", str(tmp_path / "sw"), "--ray", "local"]) == 2
    assert "[sweep].pruner" in capsys.readouterr().err and not (tmp_path / "sw").exists()


def test_a_folder_another_command_writes_to_is_refused(tmp_path, capsys):
    """A sweep started twice, resumed while it runs, or a training into its folder: the
    second command is exit 2 and touches nothing. A lock file a killed command left behind
    (the lock itself died with it) does not stop the next one."""
    from neurodyn.io.results import LOCK_NAME, hold

    file, out = _file(tmp_path, sweep=SWEEP.replace("seeds = 2", "seeds = 1")), tmp_path / "sw"
    with hold(out):
        for argv in (["sweep", str(file)], ["sweep", str(file), "--resume"], ["train", str(file)]):
            assert main([*argv, "--out", str(out)]) == 2
            _one_line(capsys, f"{out}: another neurodyn command is writing to this folder now")
        assert main(["sweep", "--summary", str(out)]) == 2
        _one_line(capsys, "another neurodyn command is writing to this folder now")
        assert [p.name for p in out.iterdir()] == [LOCK_NAME]
    assert not out.exists()  # made by the holder, left empty: removed
    out.mkdir()
    (out / LOCK_NAME).mkdir()  # hostile: a folder of that name
    assert main(["sweep", str(file), "--out", str(out), "--workers", "1"]) == 2
    _one_line(capsys, f"{out}: cannot open {LOCK_NAME} here", "remove it")
    (out / LOCK_NAME).rmdir()
    (out / LOCK_NAME).write_text("")
    assert main(["sweep", str(file), "--out", str(out), "--workers", "1"]) == 0
    assert not (out / LOCK_NAME).exists() and (out / "results.csv").is_file()


def test_a_pool_worker_killed_from_outside_is_one_line_not_a_bug_report(tmp_path, capsys, monkeypatch):
    """A worker process that dies (the system's out-of-memory killer) broke the pool, which
    was an internal error with a traceback: now one line naming the folder and --resume."""
    import os

    from neurodyn.io import sweep_run
    from neurodyn.io.errors import WorkerLost
    from neurodyn.io.trials import Pool

    pool = Pool(None, 1)
    try:
        future = pool.pool.submit(os._exit, 9)  # the worker dies as a killed one does
        with pytest.raises(WorkerLost, match="a worker process ended abruptly"):
            pool.finish(future, [str(tmp_path / "sw" / "trials" / "trial_0003")])
    finally:
        pool.close()

    # a Ray task lost with its worker (after Ray's own retries) is the same kind of failure
    import ray
    from concurrent.futures import Future

    from neurodyn.io.trials import RayRunner

    runner, lost = object.__new__(RayRunner), Future()
    runner.ray = ray
    lost.set_exception(ray.exceptions.WorkerCrashedError())
    with pytest.raises(WorkerLost, match="trial_0003 was lost .WorkerCrashedError"):
        runner.finish(lost, [str(tmp_path / "sw" / "trials" / "trial_0003")])

    def killed(*args, **kw):
        raise WorkerLost(f"{tmp_path / 'sw'}: a worker process ended abruptly")

    monkeypatch.setattr(sweep_run, "run_sweep", killed)
    assert main(["sweep", str(_file(tmp_path)), "--out", str(tmp_path / "sw")]) == 1
    err = _one_line(capsys, "a worker process ended abruptly")
    assert "bug" not in err


def test_a_ray_cluster_out_of_reach_is_refused_before_anything_is_written(tmp_path, capsys):
    """Ray itself retries for minutes against an address where nothing listens: the sweep
    refuses it in one line, exit 2, with no output folder."""
    import socket

    with socket.socket() as s:  # a port nothing listens on once it is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    file = _file(tmp_path)
    assert main(["sweep", str(file), "--out", str(tmp_path / "sw"), "--ray", f"127.0.0.1:{port}"]) == 2
    _one_line(capsys, f"--ray: nothing answers at 127.0.0.1:{port}", "--ray local")
    assert main(["sweep", str(file), "--out", str(tmp_path / "sw"), "--ray", " "]) == 2
    _one_line(capsys, "--ray: give a cluster's address")
    assert not (tmp_path / "sw").exists()


def test_sweep_without_a_sweep_table_points_to_train(tmp_path, capsys):
    assert main(["sweep", str(_file(tmp_path, sweep="")), "--out", str(tmp_path / "sw")]) == 2
    assert "neurodyn train" in capsys.readouterr().err
    assert main(["sweep", "--summary", str(tmp_path / "nothing")]) == 2


SEARCH = """
[sweep]
mode = "optuna"
samples = 6
seeds = 2
rule = "fa"
pruner = "asha"
[sweep.random]
"training.lr" = { low = 1e-3, high = 0.3, log = true }
"""


def _search_base():
    return BASE.replace("steps = 20", "steps = 40")


def _means_by_step(rows, setting):
    """{step: mean test loss over the setting's seeds}."""
    steps = {}
    for r in rows:
        if r["setting"] == str(setting):
            steps.setdefault(int(r["step"]), []).append(float(r["test_loss"]))
    return {k: float(np.mean(v)) for k, v in steps.items()}


def test_search_tells_optuna_the_mean_over_seeds_and_prunes_only_behind_the_others(tmp_path, capsys):
    """An Optuna search (TPE, ASHA) over the learning rate of one rule: every setting it asks
    for trains all its seeds; Optuna is told the mean final test loss; a pruned setting was
    behind another setting where it stopped; the best setting is the lowest mean."""
    import optuna

    out = tmp_path / "search"
    assert main(["sweep", str(_file(tmp_path, sweep=SEARCH, base=_search_base())), "--out", str(out), "--workers", "1"]) == 0
    rows = _rows(out / "results.csv")
    assert {r["rule"] for r in rows} == {"fa"}  # the search trains only its rule
    record = json.loads((out / "sweep.json").read_text())
    assert len(record["trials"]) == 12 and {t["seed"] for t in record["trials"]} == {4, 5}
    study = optuna.load_study(study_name="tiny_sweep", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out / "study.journal"))))
    assert len(study.trials) == 6
    pruned = 0
    for t in study.trials:
        lr = t.params["training.lr"]
        assert 1e-3 <= lr <= 0.3 and {r["training.lr"] for r in rows if r["setting"] == str(t.number)} == {repr(lr)}
        means = _means_by_step(rows, t.number)
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.value == pytest.approx(means[40], rel=1e-12)
        else:
            assert t.state == optuna.trial.TrialState.PRUNED
            pruned += 1
            stop = max(means)
            assert stop < 40 and all(r["status"].startswith("pruned") for r in rows if r["setting"] == str(t.number))
            others = [_means_by_step(rows, o.number).get(stop) for o in study.trials if o.number != t.number]
            assert means[stop] > min(v for v in others if v is not None)
    assert pruned >= 1
    summary = json.loads((out / "summary.json").read_text())
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = min(completed, key=lambda t: t.value)
    assert summary["best"]["fa"]["values"] == {"training.lr": best.params["training.lr"]}
    assert summary["best"]["fa"]["test_loss"]["mean"] == pytest.approx(best.value)
    assert "best for fa (lowest mean test_loss)" in capsys.readouterr().out


def test_killed_search_resumes_the_setting_it_left_and_keeps_the_budget(tmp_path, monkeypatch):
    from neurodyn.io import trials

    file = _file(tmp_path, sweep=SEARCH.replace("samples = 6", "samples = 3").replace('pruner = "asha"\n', ""), base=_search_base())
    out = tmp_path / "search"
    real, calls = trials.run_trial_group, []

    def killed_at_the_second(*args, **kw):
        calls.append(args[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(trials, "run_trial_group", killed_at_the_second)
    assert main(["sweep", str(file), "--out", str(out), "--workers", "1"]) == 130
    monkeypatch.setattr(trials, "run_trial_group", real)
    first = out / "trials" / "trial_0000" / "metrics.csv"
    stamp = first.stat().st_mtime_ns
    assert main(["sweep", str(file), "--out", str(out), "--workers", "1", "--resume"]) == 0
    assert first.stat().st_mtime_ns == stamp  # the finished setting is kept
    record = json.loads((out / "sweep.json").read_text())
    assert [t["trial"] for t in record["trials"]] == [f"trial_{i:04d}" for i in range(6)]  # 3 settings x 2 seeds, none asked twice
    assert {r["trial"] for r in _rows(out / "results.csv")} == {t["trial"] for t in record["trials"]}
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["settings"]) == 3 and all(e["test_loss"]["n"] == 2 for e in summary["settings"])


def test_search_killed_between_asking_and_recording_a_setting_trains_it_on_resume(tmp_path, monkeypatch):
    """Optuna's journal holds the setting it was asked for, sweep.json not yet: the resumed
    search trains it (it was an internal error, KeyError)."""
    from neurodyn.io.sweep import Sweep

    file = _file(tmp_path, sweep=SEARCH.replace("samples = 6", "samples = 2").replace('pruner = "asha"\n', ""), base=_search_base())
    out = tmp_path / "search"
    real, calls = Sweep.setting, []

    def killed_at_the_second(self, s, values):
        calls.append(s)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, s, values)

    monkeypatch.setattr(Sweep, "setting", killed_at_the_second)
    assert main(["sweep", str(file), "--out", str(out), "--workers", "1"]) == 130
    monkeypatch.setattr(Sweep, "setting", real)
    assert len(json.loads((out / "sweep.json").read_text())["trials"]) == 2  # the first setting's two seeds
    assert main(["sweep", str(file), "--out", str(out), "--workers", "1", "--resume"]) == 0
    record = json.loads((out / "sweep.json").read_text())
    assert [(t["trial"], t["setting"]) for t in record["trials"]] == [(f"trial_{i:04d}", i // 2) for i in range(4)]
    assert {r["trial"] for r in _rows(out / "results.csv")} == {t["trial"] for t in record["trials"]}


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory):
    """A finished search (2 settings x 2 seeds) that tests copy and damage; its file."""
    tmp = tmp_path_factory.mktemp("search")
    file = _file(tmp, sweep=SEARCH.replace("samples = 6", "samples = 2").replace('pruner = "asha"\n', ""), base=_search_base())
    assert main(["sweep", str(file), "--out", str(tmp / "out"), "--workers", "1"]) == 0
    return file, tmp / "out"


@pytest.mark.parametrize(
    "damage,words",
    [
        (lambda b: b + b"xx{{\n", ["not a readable Optuna journal"]),
        (lambda b: b"", ["lacks setting 0 of sweep.json"]),
        (lambda b: b[: b.index(b"\n") + 1], ["lacks setting 0 of sweep.json"]),  # the study was made, no setting asked for
        (lambda b: b[:-20], None),  # a kill while Optuna appended its last record: resumes
    ],
    ids=["garbage", "empty", "another_study", "torn_last_line"],
)
def test_resume_with_a_damaged_search_journal(finished_search, tmp_path, capsys, damage, words):
    file, finished = finished_search
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    journal = out / "study.journal"
    journal.write_bytes(damage(journal.read_bytes()))
    capsys.readouterr()
    code = main(["sweep", str(file), "--out", str(out), "--workers", "1", "--resume"])
    if words is None:
        assert code == 0 and _rows(out / "results.csv") == _rows(finished / "results.csv")
        return
    assert code == 2
    _one_line(capsys, f"{journal}: ", *words, "rerun the sweep into a new --out")


MODEL = """
name = "di_sweep"
seed = 1
[circuit]
kind = "dynamic_inversion"
sizes = [6, 6]
nonlinearity = "linear"
leak = 0.05
[arrays]
W1 = { file = "arrays/W1.npy" }
B1 = { init = "neg_transpose", of = "W1", scale = 1.0 }
delta_out = { init = "normal", std = 1.0, batch = 4 }
[simulation]
t1 = 300.0
saveat = 11
"""


def _model_file(tmp_path, sweep):
    (tmp_path / "arrays").mkdir(exist_ok=True)
    np.save(tmp_path / "arrays" / "W1.npy", np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))[0])
    path = tmp_path / "di.toml"
    path.write_text(MODEL + sweep)
    return path


def test_model_sweep_simulates_every_setting_and_finds_the_closed_form_abscissa(tmp_path, capsys):
    """Linear DI with orthogonal W and B = -s W^T decouples into 2x2 blocks
    [[-1, -s], [1, -alpha]]: spectral abscissa (-(1 + alpha) + Re sqrt((1 - alpha)^2 - 4 s)) / 2."""
    file = _model_file(tmp_path, '[sweep]\nseeds = 2\n[sweep.grid]\n"arrays.B1.scale" = [0.05, 0.1, 1.0]\n"circuit.leak" = [0.05, 0.2]\n')
    out = tmp_path / "sw"
    assert main(["sweep", str(file), "--out", str(out), "--workers", "1"]) == 0
    rows = _rows(out / "results.csv")
    assert len(rows) == 12 and {r["seed"] for r in rows} == {"1", "2"}
    for r in rows:
        s, alpha = float(r["arrays.B1.scale"]), float(r["circuit.leak"])
        expected = (-(1 + alpha) + np.sqrt(complex((1 - alpha) ** 2 - 4 * s)).real) / 2
        assert r["status"] == "completed" and r["kind"] == "dynamic_inversion"
        assert float(r["spectral_abscissa"]) == pytest.approx(expected, abs=1e-9)
    # each trial is `neurodyn simulate` of its own model file, whose array file is found from the output folder
    trial = out / "trials" / "trial_0005"
    assert main(["simulate", str(trial / "model.toml"), "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert again["spectral_abscissa"] == json.loads((trial / "summary.json").read_text())["spectral_abscissa"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metric"] == "spectral_abscissa" and summary["best"]["dynamic_inversion"]["values"] == {"arrays.B1.scale": 1.0, "circuit.leak": 0.2}
    assert "spectral abscissa" not in capsys.readouterr().err
    # simulate ignores the [sweep] table of the file itself
    assert main(["simulate", str(file), "--out", str(tmp_path / "base")]) == 0


@pytest.mark.parametrize(
    "sweep,key,words",
    [
        ('[sweep.grid]\n"circuit.lek" = [0.1]\n', '[sweep.grid]."circuit.lek" = 0.1', ["did you mean 'leak'"]),
        ('[sweep.grid]\n"circuit.leak" = [-1.0]\n', '[sweep.grid]."circuit.leak" = -1.0', ["leak"]),
        ('[sweep.grid]\n"network.sizes" = [[6, 6]]\n', '[sweep.grid]."network.sizes"', ["circuit.<key>"]),
        ('[sweep]\nmetric = "test_loss"\n[sweep.grid]\n"circuit.leak" = [0.1]\n', "[sweep].metric", ["spectral_abscissa"]),
        ('[sweep]\nmode = "optuna"\nsamples = 2\n[sweep.grid]\n"circuit.leak" = [0.1]\n', "[sweep].mode", ["grid or random"]),
    ],
)
def test_bad_model_sweeps_are_input_errors_naming_the_key(tmp_path, capsys, sweep, key, words):
    _refused(_model_file(tmp_path, sweep), tmp_path / "sw", capsys, key, words)


# --- hostile input: failures, resumes, memory, damaged folders ---------------------------
def _one_line(capsys, *words):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


def test_sweep_where_every_trial_fails_exits_3_and_reports_them_as_failed(tmp_path, capsys):
    file = _file(tmp_path, sweep='[sweep]\nseeds = 2\n[sweep.grid]\n"training.lr" = [1e300]\n')
    out = tmp_path / "sw"
    assert main(["sweep", str(file), "--out", str(out), "--workers", "1"]) == 3
    _one_line(capsys, f"{out}: every trial diverged")
    rows = _rows(out / "results.csv")
    assert rows and all(r["status"].startswith("diverged") for r in rows)  # failed trials are rows of the table, marked
    summary = json.loads((out / "summary.json").read_text())
    assert all(e["diverged"] == 2 and "test_loss" not in e for e in summary["settings"]) and summary["best"] == {}
    assert (out / "summary.png").stat().st_size > 0
    # a model sweep where no simulation converges: the same
    model = _model_file(tmp_path, '[sweep.grid]\n"arrays.B1.scale" = [-10.0]\n')
    assert main(["sweep", str(model), "--out", str(tmp_path / "m"), "--workers", "1"]) == 3
    _one_line(capsys, "every trial did not converge")
    assert all(r["status"].startswith("not converged") for r in _rows(tmp_path / "m" / "results.csv"))


def test_resume_refuses_another_file_with_the_same_name_and_sweep(tmp_path, capsys):
    sweep = SWEEP.replace("seeds = 2", "seeds = 1")
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a = _file(tmp_path / "a", sweep=sweep)
    b = _file(tmp_path / "b", sweep=sweep, base=BASE.replace("sizes = [4, 5, 3]", "sizes = [4, 6, 3]"))
    out = tmp_path / "sw"
    prepare(load_sweep(a), out, resume=False)  # a sweep of a began, then was killed
    assert main(["sweep", str(b), "--out", str(out), "--resume"]) == 2
    _one_line(capsys, f"{out}: holds a sweep of another file", "choose a new --out")
    assert "sizes = [4, 5, 3]" in (out / "trials" / "trial_0000" / "experiment.toml").read_text()
    # a folder of an earlier version (no fingerprint) resumes only with the file that wrote its trials
    record = json.loads((out / "sweep.json").read_text())
    del record["fingerprint"]
    (out / "sweep.json").write_text(json.dumps(record))
    with pytest.raises(ModelError, match="earlier neurodyn"):
        open_sweep(load_sweep(b), out, resume=True)
    assert main(["sweep", str(a), "--out", str(out), "--resume", "--workers", "1"]) == 0
    assert "fingerprint" in json.loads((out / "sweep.json").read_text())
    assert len({r["trial"] for r in _rows(out / "results.csv")}) == 2


def test_seeds_train_together_only_as_many_as_the_memory_limit_allows(tmp_path):
    from neurodyn.io.trials import seed_bytes

    file = _file(tmp_path, sweep=SWEEP.replace("seeds = 2", "seeds = 3").replace(", 0.005", ""))
    limit = int(2.5 * seed_bytes(load_experiment(file)))  # two seeds fit, three do not
    out = tmp_path / "sw"
    assert main(["sweep", str(file), "--out", str(out), "--workers", "1", "--max-memory", str(limit)]) == 0
    vmapped = [json.loads((out / "trials" / f"trial_{i:04d}" / "summary.json").read_text()).get("vmapped_seeds") for i in range(3)]
    assert vmapped == [2, 2, None]
    assert {r["status"] for r in _rows(out / "results.csv")} == {"completed"}


def _mnist_file(tmp_path):
    text = BASE.replace("sizes = [4, 5, 3]", "sizes = [784, 5, 10]").replace('kind = "nonlinear_regression"', 'kind = "mnist"')
    return _file(tmp_path, base=text.replace("teacher_scale = 1.0\n", "").replace("init_scale = 1.0", "init_scale = 0.01"))


def test_missing_data_is_found_before_anything_is_written(tmp_path, capsys):
    file, out = _mnist_file(tmp_path), tmp_path / "sw"
    (tmp_path / "empty").mkdir()
    for _ in range(2):  # the same command again meets the same error, not a folder it left
        assert main(["sweep", str(file), "--out", str(out), "--workers", "1", "--data-dir", str(tmp_path / "empty")]) == 2
        _one_line(capsys, f"{tmp_path / 'empty'}: MNIST files not found")
        assert not out.exists()
    # data found but unreadable when the first trial starts: what the sweep wrote is removed
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (bad / name).write_bytes(b"xx")
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["sweep", str(file), "--out", str(out), "--workers", "1", "--data-dir", str(bad)]) == 2
    _one_line(capsys, "not an IDX file")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    # a swept data folder that holds no MNIST is named by its [sweep] key
    swept = tmp_path / "swept.toml"
    swept.write_text(file.read_text().replace('"training.lr" = [0.02, 0.005]', f'"data.data_dir" = ["{tmp_path / "empty"}"]'))
    assert main(["sweep", str(swept), "--out", str(tmp_path / "sw2"), "--workers", "1"]) == 2
    _one_line(capsys, f'swept.toml: [sweep.grid]."data.data_dir" = \'{tmp_path / "empty"}\': {tmp_path / "empty"}: MNIST files not found')
    assert not (tmp_path / "sw2").exists()


def test_model_sweep_of_array_files_reads_them_from_where_the_swept_file_points(tmp_path, monkeypatch):
    file = _model_file(tmp_path, '[sweep.grid]\n"arrays.delta_out" = [{ file = "arrays/d.npy" }]\n')
    np.save(tmp_path / "arrays" / "d.npy", np.full((4, 6), 0.1))
    monkeypatch.chdir(tmp_path / "arrays")  # neither the file's folder nor the output folder
    out = tmp_path / "sw"
    assert main(["sweep", str(file), "--out", str(out), "--workers", "1"]) == 0
    assert f'file = "{tmp_path / "arrays" / "d.npy"}"' in (out / "trials" / "trial_0000" / "model.toml").read_text()
    assert _rows(out / "results.csv")[0]["status"] == "completed"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished sweep (2 settings x 2 seeds) that tests copy and damage."""
    tmp = tmp_path_factory.mktemp("finished")
    out = tmp / "sw"
    assert main(["sweep", str(_file(tmp, sweep=SWEEP.replace(", 0.005", ", 0.005, 0.001"))), "--out", str(out), "--workers", "1"]) == 0
    return out


def _damaged(finished, tmp_path, name, text, keep_trials=True):
    out = tmp_path / "copy"
    shutil.copytree(finished, out)
    if not keep_trials:
        shutil.rmtree(out / "trials")
    (out / name).write_text(text(finished / name) if callable(text) else text)
    return out


def _edit_record(**change):
    def edit(path):
        record = json.loads(path.read_text())
        record.update(change)
        return json.dumps({k: v for k, v in record.items() if v is not None})
    return edit


def _seed_of_trial_1_changed(path):
    record = json.loads(path.read_text())
    record["trials"][1]["seed"] += 100
    return json.dumps(record)


def _setting_x(path):
    lines = path.read_text().splitlines()
    i = lines[0].split(",").index("setting")
    row = lines[1].split(",")
    row[i] = "x"
    return "\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n"


def _cell(column, value, line=1):
    """An edit of results.csv: ``column`` of data line ``line`` set to ``value``."""
    def edit(path):
        lines = path.read_text().splitlines()
        i = lines[0].split(",").index(column)
        row = lines[line].split(",")
        row[i] = value
        return "\n".join([*lines[:line], ",".join(row), *lines[line + 1:]]) + "\n"
    return edit


@pytest.mark.parametrize(
    "name,text,keep_trials,words",
    [
        ("sweep.json", "{bad", True, ["sweep.json: not readable as JSON"]),
        ("sweep.json", _edit_record(spec=None), True, ["sweep.json: spec: missing"]),
        ("sweep.json", _edit_record(target="bogus"), True, ["sweep.json: target: 'bogus'"]),
        ("sweep.json", _edit_record(trials=[]), True, ["results.csv: line 2: trial 'trial_0000'", "not a trial of sweep.json"]),
        ("sweep.json", _seed_of_trial_1_changed, True, ["sweep.json: trials: trial_0001 has seed 105 here, but its folder was trained with seed 5"]),
        ("sweep.json", _edit_record(trials=[{"trial": "../../x", "setting": 0, "seed": 0, "values": {"training.lr": 0.02}}]), True, ["sweep.json: trials: entry 0"]),
        ("results.csv", "foo,bar\n1,2\n", False, ["results.csv: no column trial"]),
        ("results.csv", "", False, ["results.csv: no column trial"]),
        ("results.csv", _setting_x, False, ["results.csv: line 2: trial 'trial_0000', setting 'x'"]),
        ("results.csv", _cell("test_loss", "abc", line=3), False, ["results.csv: line 4: column test_loss holds 'abc', not a number"]),
        ("results.csv", lambda p: p.read_text()[:300], False, ["results.csv: "]),
        ("results.csv", lambda p: "".join(p.read_text().splitlines(keepends=True)[:3]), False, ["results.csv: it has no rows of 5 of the 6 trials"]),
    ],
)
def test_summary_of_a_damaged_folder_is_one_line_naming_the_file(finished, tmp_path, capsys, name, text, keep_trials, words):
    out = _damaged(finished, tmp_path, name, text, keep_trials)
    capsys.readouterr()
    assert main(["sweep", "--summary", str(out)]) == 2
    _one_line(capsys, *words, "rerun the sweep into a new --out")


def test_resume_of_a_damaged_folder_is_one_line_naming_the_file(finished, tmp_path, capsys):
    out = _damaged(finished, tmp_path, "sweep.json", "{bad")
    capsys.readouterr()
    assert main(["sweep", str(_file(tmp_path)), "--out", str(out), "--resume"]) == 2
    _one_line(capsys, f"{out / 'sweep.json'}: not readable as JSON")


def test_summary_rebuilds_a_table_cut_short_from_the_trial_folders(finished, tmp_path, capsys):
    out = _damaged(finished, tmp_path, "results.csv", lambda p: p.read_text()[:300])
    capsys.readouterr()
    assert main(["sweep", "--summary", str(out)]) == 0
    assert "rebuilt from the trial folders" in capsys.readouterr().out
    assert _rows(out / "results.csv") == _rows(finished / "results.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert all(e["test_loss"]["n"] == 2 for e in summary["settings"])
    # without all the trial folders it cannot be rebuilt: refused
    shutil.rmtree(out / "trials" / "trial_0005")
    (out / "results.csv").write_text((finished / "results.csv").read_text()[:300])
    assert main(["sweep", "--summary", str(out)]) == 2
    _one_line(capsys, "results.csv: ", "do not hold every trial's results")


@pytest.mark.parametrize("value", ["abc", "inf", "", "0.5"])
def test_summary_rebuilds_a_table_whose_numbers_differ_from_the_trial_folders(finished, tmp_path, capsys, value):
    """An edited cell of the final test loss, which the summary averages, is found by
    comparing every cell with the trial folders: the table is rebuilt from them, or where
    they are incomplete, refused naming the cell."""
    out = _damaged(finished, tmp_path, "results.csv", _cell("test_loss", value, line=3))
    capsys.readouterr()
    assert main(["sweep", "--summary", str(out)]) == 0
    assert "rebuilt from the trial folders" in capsys.readouterr().out
    assert _rows(out / "results.csv") == _rows(finished / "results.csv")
    assert json.loads((out / "summary.json").read_text())["settings"] == json.loads((finished / "summary.json").read_text())["settings"]
    shutil.rmtree(out / "trials" / "trial_0005")
    (out / "results.csv").write_text(_cell("test_loss", value, line=3)(finished / "results.csv"))
    assert main(["sweep", "--summary", str(out)]) == 2
    words = ["line 4: column test_loss holds 'abc'"] if value == "abc" else [f"test_loss of trial_0000, bp, step 20 is {value!r}", "do not hold every trial's results"]
    _one_line(capsys, "results.csv: ", *words)


@pytest.mark.slow  # starts two worker processes; .ci/run runs it after the default suite
def test_input_error_in_a_pool_worker_is_one_line_and_leaves_nothing(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (bad / name).write_bytes(b"xx")
    out = tmp_path / "sw"
    assert main(["sweep", str(_mnist_file(tmp_path)), "--out", str(out), "--workers", "2", "--data-dir", str(bad)]) == 2
    _one_line(capsys, "not an IDX file")
    assert not out.exists()


def test_summary_plot_of_an_option_that_is_not_a_number_labels_each_value(tmp_path, monkeypatch):
    """Swept layer sizes (or names) are one tick per value, named by it, with the best
    setting starred at its value (they were drawn at the setting's number, 0.0, 0.2, ...)."""
    from neurodyn.io import plots

    figures = []
    monkeypatch.setattr(plots.plt, "close", figures.append)
    sizes = [[4, 5, 3], [4, 7, 3]]
    settings = [{"setting": s, "rule": "bp", "values": {"network.sizes": v}, "test_loss": {"mean": m, "std": 0.1, "n": 2}} for s, (v, m) in enumerate(zip(sizes, (1.0, 0.5)))]
    summary = {"file": "x.toml", "mode": "grid", "metric": "test_loss", "swept": ["network.sizes"], "settings": settings,
               "best": {"bp": {"setting": 1, "values": {"network.sizes": sizes[1]}, "test_loss": {"mean": 0.5, "std": 0.1}}}}
    plots.sweep_plot(tmp_path / "summary.png", summary)
    ax = figures[0].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["[4, 5, 3]", "[4, 7, 3]"] and ax.get_xlabel() == "network.sizes"
    star = next(line for line in ax.get_lines() if line.get_marker() == "*")
    assert list(star.get_xdata()) == [1] and list(star.get_ydata()) == [0.5]
    # settings drawn at random differ in every option: one legend entry per rule, not per draw
    drawn = [{"setting": s, "rule": "bp", "values": {"training.lr": 0.01 * (s + 1), "training.batch_size": s + 1}, "test_loss": {"mean": 1.0, "std": 0.1, "n": 2}} for s in range(5)]
    plots.sweep_plot(tmp_path / "summary.png", summary | {"mode": "random", "swept": ["training.lr", "training.batch_size"], "settings": drawn, "best": {}})
    assert [t.get_text() for t in figures[1].axes[0].get_legend().get_texts()] == ["bp"]


def test_check_validates_an_experiment_file_and_the_sweep_of_either_kind(tmp_path, capsys):
    """`neurodyn check` takes experiment files too (it refused them), and validates a
    [sweep] table setting by setting before it prints anything."""
    assert main(["check", str(_file(tmp_path))]) == 0
    out = capsys.readouterr().out
    for words in ("valid experiment file", "sizes [4, 5, 3], tanh, linear", "20 updates, mini-batches of 4", "rules: bp, fa",
                  "[sweep]: valid; grid: 2 settings x 2 seeds = 4 trials, over training.lr"):
        assert words in out, out
    assert main(["check", str(_file(tmp_path, sweep=SWEEP.replace("0.005", "-1.0")))]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and '[sweep.grid]."training.lr" = -1.0' in captured.err, captured
    assert main(["check", str(_model_file(tmp_path, '[sweep]\nseeds = 3\n[sweep.grid]\n"circuit.leak" = [0.0, 0.1]\n'))]) == 0
    out = capsys.readouterr().out
    assert "kind: dynamic_inversion" in out and "[sweep]: valid; grid: 2 settings x 3 seeds = 6 trials, over circuit.leak" in out


def test_a_swept_seed_is_each_settings_first_and_the_table_has_every_trials_own(tmp_path):
    """Sweeping `seed` itself: setting k's trials use seed_k, seed_k + 1, ...; the `seed`
    column is the trial's own (it showed the setting's first seed for all its trials)."""
    out = tmp_path / "sw"
    assert main(["sweep", str(_file(tmp_path, sweep='[sweep]\nseeds = 2\n[sweep.grid]\n"seed" = [4, 50]\n')), "--out", str(out), "--workers", "1"]) == 0
    rows = _rows(out / "results.csv")
    assert sorted({(r["trial"], r["seed"]) for r in rows}) == [("trial_0000", "4"), ("trial_0001", "5"), ("trial_0002", "50"), ("trial_0003", "51")]
    for r in rows:
        summary = json.loads((out / "trials" / r["trial"] / "summary.json").read_text())
        assert summary["seed"] == int(r["seed"])
    settings = json.loads((out / "summary.json").read_text())["settings"]
    assert [(e["values"], e["seeds"]) for e in settings if e["rule"] == "bp"] == [({"seed": 4}, 2), ({"seed": 50}, 2)]


def test_train_and_simulate_say_that_they_leave_a_sweep_table_alone(tmp_path, capsys):
    file = _file(tmp_path)
    assert main(["train", str(file), "--out", str(tmp_path / "t")]) == 0
    assert f"note: {file} has a [sweep] table, which this command does not run: neurodyn sweep {file} runs it" in capsys.readouterr().out
    model = _model_file(tmp_path, '[sweep]\n[sweep.grid]\n"circuit.leak" = [0.0, 0.1]\n')
    assert main(["simulate", str(model), "--out", str(tmp_path / "s"), "--no-plot"]) == 0
    assert "has a [sweep] table" in capsys.readouterr().out
    assert main(["train", str(_file(tmp_path, sweep="")), "--out", str(tmp_path / "t2")]) == 0
    assert "[sweep]" not in capsys.readouterr().out


def test_summary_of_a_sweep_that_has_not_finished_reads_the_trials_that_have(tmp_path, capsys):
    """A stopped (or running) sweep has no results.csv yet: --summary prints the finished
    trials' summary with a note, writes nothing, and takes no lock (a running sweep holds
    the folder)."""
    from neurodyn.io.results import hold

    file = _file(tmp_path, sweep=SWEEP.replace("seeds = 2", "seeds = 1"))
    out = tmp_path / "sw"
    todo = prepare(load_sweep(file), out, resume=False)
    assert main(["sweep", "--summary", str(out)]) == 2
    _one_line(capsys, "none of its 2 trials has yet")
    run_trial(str(out / "trials" / todo[0].name), None)  # one of the two trials finished
    before = sorted(p.name for p in out.iterdir())
    with hold(out):  # as while the sweep runs
        assert main(["sweep", "--summary", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "note: the sweep has not finished: 1 of 2 trials so far" in printed and "training.lr = 0.02 | fa" in printed
    assert "training.lr = 0.005" not in printed and "results in" not in printed
    assert sorted(p.name for p in out.iterdir()) == before  # nothing written


def test_a_stopped_vmapped_group_resumes_together_with_the_same_numbers(tmp_path, monkeypatch):
    """Ctrl-C stops a vmapped group after a checkpoint of every seed: --resume continues
    the seeds together (vmapped_seeds 2; they went on one by one before) to the numbers of
    a sweep that was never stopped. Seeds stopped at different steps go on one by one."""
    from helpers import interrupted_training
    from neurodyn.io import training

    file = _file(tmp_path, sweep=SWEEP.replace(", 0.005", ""))  # one setting, 2 seeds
    assert main(["sweep", str(file), "--out", str(tmp_path / "ref"), "--workers", "1"]) == 0
    calls = []

    def stop_at_the_third():  # BP's two intervals, then FA's first
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "check_interrupt", stop_at_the_third)
    out = tmp_path / "sw"
    assert main(["sweep", str(file), "--out", str(out), "--workers", "1"]) == 130
    monkeypatch.undo()
    for trial in ("trial_0000", "trial_0001"):
        with np.load(out / "trials" / trial / "checkpoint.npz") as z:
            assert (int(z["bp/step"]), int(z["fa/step"])) == (20, 10)
    assert main(["sweep", str(file), "--out", str(out), "--workers", "1", "--resume"]) == 0
    _same_numbers(_rows(tmp_path / "ref" / "results.csv"), _rows(out / "results.csv"))
    assert [json.loads((out / "trials" / t / "summary.json").read_text())["vmapped_seeds"] for t in ("trial_0000", "trial_0001")] == [2, 2]

    exps = [load_experiment(file).model_copy(update={"seed": s}) for s in (4, 5)]
    outs = [tmp_path / "a", tmp_path / "b"]
    for exp, o, at in zip(exps, outs, (2, 3)):  # one seed stopped after BP's first interval, one after its second
        interrupted_training(monkeypatch, exp, o, at=at)
    assert run_training_seeds(exps, outs, plot=False, resume=True) is None  # nothing run: they go on one by one
