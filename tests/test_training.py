"""Training harness: every rule lowers the loss, interrupted runs resume exactly, bad
experiment files are rejected, and the CLI writes its outputs."""

import json

import numpy as np
import pytest

from neurodyn.cli import main
from neurodyn.io import training
from neurodyn.io.errors import ModelError, NumericalError
from neurodyn.io.experiment import load_experiment

from helpers import interrupted_training, tiny_experiment

EXPERIMENT = """
name = "small"
seed = 1
[network]
sizes = [6, 5, 4, 3]
nonlinearities = ["tanh", "tanh", "linear"]
init_scale = 0.3
loss = "squared_error"
[data]
kind = "nonlinear_regression"
n_train = 200
n_test = 50
teacher_scale = 1.0
[training]
lr = 2e-2
clip = 10.0
batch_size = {batch}
steps = {steps}
eval_every = {every}
eval_samples = 50
null_space_samples = 0
{rules}
"""
FEW_RULES = """
[rules.bp]
[rules.fa]
feedback = "random"
feedback_scale = 0.5
[rules.di]
leak = 0.01
"""

MORE_RULES = """
[rules.dfa]
feedback = "random"
feedback_scale = 0.5
[rules.pbp]
[rules.ndi]
leak = 0.01
[rules.di_linearized]
rule = "di"
leak = 0.01
controller = "linearized"
[rules.sldi]
leak = 0.05
feedback_scale = 1.0
"""


def _write(tmp_path, **kw):
    kw = {"batch": 1, "steps": 300, "every": 100, "rules": FEW_RULES + MORE_RULES} | kw
    path = tmp_path / "exp.toml"
    path.write_text(EXPERIMENT.format(**kw))
    return path


@pytest.mark.parametrize("rules", [pytest.param(FEW_RULES, id="bp-fa-di"), pytest.param(FEW_RULES + MORE_RULES, id="all", marks=pytest.mark.slow)])
def test_every_rule_lowers_the_loss(tmp_path, rules):
    """(The default suite trains BP, FA and DI; ``-m slow`` adds DFA, PBP, NDI, linearized DI and SLDI.)"""
    exp = load_experiment(_write(tmp_path, rules=rules))
    summary = training.run_training(exp, tmp_path / "out")
    rows = [json.loads(json.dumps(r)) for r in _csv(tmp_path / "out" / "metrics.csv")]
    for label in exp.rules:
        mine = [r for r in rows if r["rule"] == label]
        assert float(mine[-1]["train_loss"]) < 0.7 * float(mine[0]["train_loss"]), label
        assert summary["status"][label] == "completed"
    # BP's update is its own reference: zero angle
    assert float(summary["final"]["bp"]["angle_bp_W1"]) < 1e-5
    # every rule's resolved options are recorded
    assert summary["rules"]["di"]["leak"] == 0.01 and summary["rules"]["di"]["controller"] == "nonlinear"
    if "di_linearized" in exp.rules:
        assert summary["rules"]["di_linearized"]["controller"] == "linearized"
    for name in ("metrics.csv", "metrics.npz", "learning_curves.png", "summary.json", "checkpoint.npz"):
        assert (tmp_path / "out" / name).is_file()


def _csv(path):
    import csv

    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_resumed_training_writes_the_rows_an_uninterrupted_one_writes(tmp_path, monkeypatch):
    """The rows a checkpoint carries come back as they were, NaN included (the first
    row's time per update): a resumed run's metrics.csv is the uninterrupted run's but for
    the wall times."""
    path = tmp_path / "exp.toml"
    path.write_text(tiny_experiment())
    exp = load_experiment(path)
    training.run_training(exp, tmp_path / "full", plot=False)
    interrupted_training(monkeypatch, exp, tmp_path / "cut", at=3)  # BP done, FA's first interval
    training.run_training(exp, tmp_path / "cut", resume=True, plot=False)
    full, cut = _csv(tmp_path / "full" / "metrics.csv"), _csv(tmp_path / "cut" / "metrics.csv")
    assert full[0]["wall_per_update_s"] == "nan"
    for r in full + cut:
        del r["wall_s"]
        r["wall_per_update_s"] = r["wall_per_update_s"] == "nan"
    assert cut == full


@pytest.mark.slow  # three trainings (8 s); .ci/run runs it after the default suite
def test_resume_after_interrupt_gives_the_same_weights(tmp_path, monkeypatch):
    rules = "[rules.di]\nleak = 0.01\nfeedback = \"ssa\"\nfeedback_scale = 0.3\n[rules.fa]\nfeedback = \"random\"\n"
    exp = load_experiment(_write(tmp_path, steps=120, every=40, batch=2, rules=rules))
    training.run_training(exp, tmp_path / "full")
    interrupted_training(monkeypatch, exp, tmp_path / "cut", at=5)  # second rule, second interval

    def no_ssa(*args, **kw):
        raise AssertionError("the resumed run must take its SSA feedback from the checkpoint")

    monkeypatch.setattr("neurodyn.learning.rules.feedback.stabilize", no_ssa)
    summary = training.run_training(exp, tmp_path / "cut", resume=True)
    assert summary["rules"]["di"]["ssa"]["success"] and summary["rules"]["di"]["feedback"] == "ssa"
    with np.load(tmp_path / "full" / "checkpoint.npz") as a, np.load(tmp_path / "cut" / "checkpoint.npz") as b:
        for key in a.files:
            if key.endswith("/wall") or key == "rows":  # wall times differ; metrics compared below
                continue
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    full, cut = _csv(tmp_path / "full" / "metrics.csv"), _csv(tmp_path / "cut" / "metrics.csv")
    assert [(r["rule"], r["step"], r["train_loss"]) for r in full] == [(r["rule"], r["step"], r["train_loss"]) for r in cut]


@pytest.mark.parametrize(
    "old, new, key",
    [
        ("[rules.bp]", "[rules.bpp]", "bpp"),
        ("steps = 300", "steps = 300\nepochs = 2", "[training]"),
        ("lr = 2e-2", "lr = -1.0", "[training].lr"),
        ('loss = "squared_error"', 'loss = "cross_entropy"', "[network]"),
        ('kind = "nonlinear_regression"', 'kind = "cifar"', "[data].kind"),
        ("[rules.sldi]", "[rules.sldi]\nfeedbak = 1", "[rules.sldi].feedbak"),
        ("leak = 0.05", "leak = 1e300", "[rules.sldi].leak"),  # beyond MAX_LEAK: overflowed the loop's eigenvalues
    ],
)
def test_bad_experiment_files(tmp_path, old, new, key):
    text = _write(tmp_path).read_text()
    assert old in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ModelError) as info:
        load_experiment(path)
    assert key in str(info.value) and "\n" not in str(info.value)


def test_weights_whose_norms_overflow_are_reported_as_diverged(tmp_path):
    """FA with feedback of scale 1e200 drives W_1 to finite entries whose norm overflows:
    that is a divergence (exit 3 from the CLI), not a completed run with inf in its metrics."""
    text = EXPERIMENT.format(batch=4, steps=4, every=2, rules='[rules.bp]\n[rules.fa]\nfeedback = "random"\nfeedback_scale = 1e200\n')
    path = tmp_path / "exp.toml"
    path.write_text(text.replace("[6, 5, 4, 3]", "[4, 5, 3]").replace('["tanh", "tanh", "linear"]', '["tanh", "linear"]').replace("clip = 10.0\n", ""))
    with pytest.raises(NumericalError, match="rules fa diverged"):
        training.run_training(load_experiment(path), tmp_path / "o")
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["status"]["bp"] == "completed"
    assert summary["status"]["fa"] == "diverged (weight norms overflow by step 2)"
    rows = [r for r in _csv(tmp_path / "o" / "metrics.csv") if r["rule"] == "fa"]
    assert [r["step"] for r in rows] == ["0"] and all(np.isfinite(float(v)) for k, v in rows[0].items() if k.startswith("norm_"))


def test_sldi_needs_two_hidden_layers(tmp_path):
    text = _write(tmp_path).read_text().replace("[6, 5, 4, 3]", "[6, 5, 3]").replace('["tanh", "tanh", "linear"]', '["tanh", "linear"]')
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ModelError, match="sldi needs"):
        load_experiment(path)


def test_cli_train_and_missing_mnist(tmp_path, capsys, monkeypatch):
    path = _write(tmp_path, steps=40, every=20, rules="[rules.bp]\n")
    assert main(["train", str(path), "--out", str(tmp_path / "o")]) == 0
    assert "bp" in capsys.readouterr().out
    assert main(["train", str(path), "--out", str(tmp_path / "o2"), "--resume"]) == 2
    mnist = path.read_text().replace('kind = "nonlinear_regression"', 'kind = "mnist"')
    path.write_text(mnist)
    monkeypatch.delenv("NEURODYN_DATA", raising=False)
    assert main(["train", str(path), "--out", str(tmp_path / "o3"), "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "t10k" in capsys.readouterr().err and not (tmp_path / "o3").exists()


def test_unstable_fixed_points_are_flagged_in_the_summary(tmp_path):
    """A circuit rule whose Newton fixed point was unstable at some evaluation gets a warning."""
    exp = load_experiment(_write(tmp_path, rules="[rules.bp]\n[rules.di]\nleak = 0.01\n[rules.ndi]\n"))
    rows = [
        {"rule": "bp", "step": 0, "train_loss": 1.0},
        {"rule": "di", "step": 0, "train_loss": 1.0, "steady_state_stable": 1.0},
        {"rule": "di", "step": 100, "train_loss": 0.5, "steady_state_stable": 0.25},
        {"rule": "di", "step": 200, "train_loss": 0.4, "steady_state_stable": 0.0},
        {"rule": "ndi", "step": 0, "train_loss": 1.0, "steady_state_stable": 1.0},
    ]
    data = type("D", (), {"name": "d", "task": "regression", "n_train": 1, "n_test": 1, "description": ""})()
    summary = training._summary(exp, data, rows, {}, {}, 200)
    assert set(summary["warnings"]) == {"di"}
    assert "2 of 3 evaluations" in summary["warnings"]["di"] and "step 100" in summary["warnings"]["di"]


def test_clip_bounds_the_backpropagated_signals_not_the_output_error():
    """Supplement 7.7.1 clips the backpropagated errors: each hidden delta_l of BP is
    rescaled to norm <= clip (direction kept), the output error only with clip_output."""
    import jax.numpy as jnp

    from neurodyn.learning.losses import output_error
    from neurodyn.learning.network import init_network
    from neurodyn.learning.rules import BP
    from neurodyn.learning.optimizer import SGD

    rng = np.random.default_rng(0)
    net = init_network([4, 6, 3], ["tanh", "linear"], scale=2.0)
    x, t = jnp.asarray(rng.normal(size=(5, 4))), jnp.asarray(10 * rng.normal(size=(5, 3)))
    fwd = net.forward(x)
    d1, d2 = BP().signals(net, fwd, output_error("squared_error", net, fwd, t))
    clip = 0.5 * float(np.min(np.linalg.norm(d1, axis=1)))
    assert float(np.min(np.linalg.norm(d2, axis=1))) > clip
    (dW1, dW2), (db1, db2) = BP().updates(net, x, t, "squared_error", SGD(lr=1.0, clip=clip))
    scale = clip / np.linalg.norm(d1, axis=1, keepdims=True)
    assert np.allclose(db1, np.sum(scale * d1, axis=0), rtol=1e-12)
    assert np.allclose(dW1, (scale * d1).T @ x, rtol=1e-12)
    assert np.allclose(db2, np.sum(d2, axis=0), rtol=1e-12)
    _, (_, db2c) = BP().updates(net, x, t, "squared_error", SGD(lr=1.0, clip=clip, clip_output=True))
    assert np.allclose(db2c, np.sum(clip / np.linalg.norm(d2, axis=1, keepdims=True) * d2, axis=0), rtol=1e-12)


@pytest.mark.slow  # six trainings (18 s); .ci/run runs it after the default suite
def test_float32_training_stays_float32_and_agrees_with_float64(tmp_path):
    """[training] dtype = "float32": weights, rules' own arrays and checkpoint in float32, and
    losses within single-precision rounding of the float64 run (1e-4 relative) for BP; the
    mixture's cycle solves have tolerances (atol 1e-7) near float32's resolution (2e-3);
    DTP's reconstruction noise is a different draw in float32 (JAX's normal samples depend
    on the dtype), so it only agrees to 1e-2."""
    rules = '[rules.bp]\n[rules.dtp]\n[rules.mixture]\nrule = "dendritic_mixture"\n'
    text = _write(tmp_path, steps=40, every=40, batch=4, rules=rules).read_text().replace("[network]", "[network]\nbiases = false")
    runs = {}
    for dtype in ("float64", "float32"):
        path = tmp_path / f"{dtype}.toml"
        path.write_text(text.replace("null_space_samples = 0", f"null_space_samples = 0\ndtype = \"{dtype}\""))
        training.run_training(load_experiment(path), tmp_path / dtype, plot=False)
        runs[dtype] = _csv(tmp_path / dtype / "metrics.csv")
    with np.load(tmp_path / "float32" / "checkpoint.npz") as z:
        assert z["bp/W1"].dtype == np.float32 and z["mixture/W2"].dtype == np.float32
        assert all(z[k].dtype == np.float32 for k in z.files if k.startswith("dtp/feedback") and z[k].dtype.kind == "f")
    for a, b in zip(runs["float64"], runs["float32"]):
        assert a["rule"] == b["rule"] and a["step"] == b["step"]
        for col in ("train_loss", "test_loss"):
            rel = {"dtp": 1e-2, "mixture": 2e-3}.get(a["rule"], 1e-4)
            assert float(b[col]) == pytest.approx(float(a[col]), rel=rel), (a["rule"], a["step"], col)
