"""One harness for every rule: the registry, per-rule options, plastic circuits trained by
`neurodyn train`, frozen layers, Gauss-Newton angles, PCA inputs."""

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from neurodyn.cli import main
from neurodyn.io import training
from neurodyn.io.errors import ModelError
from neurodyn.io.experiment import load_experiment
from neurodyn.learning.metrics import alignment, gn_target_updates
from neurodyn.learning.network import init_network
from neurodyn.learning.rules import RULES, Rule, make_rule
from neurodyn.learning.rules.listing import rules_markdown

from helpers import interrupted_training

ROOT = Path(__file__).resolve().parents[1]

HEAD = """
name = "harness"
seed = 2
[network]
sizes = {sizes}
nonlinearities = {nl}
init = "normal"
init_scale = 1.0
biases = {biases}
[data]
kind = "nonlinear_regression"
n_train = 100
n_test = 50
teacher_scale = 1.0
[training]
lr = {lr}
steps = {steps}
eval_every = {every}
eval_samples = 50
probe_samples = 8
null_space_samples = 8
"""


def _write(tmp_path, rules, *, sizes="[4, 4, 4]", nl='["leaky_relu:0.35", "linear"]', biases="false", lr=0.01, steps=60, every=30):
    path = tmp_path / "exp.toml"
    path.write_text(HEAD.format(sizes=sizes, nl=nl, biases=biases, lr=lr, steps=steps, every=every) + rules)
    return path


def _rows(path):
    import csv

    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_every_registered_rule_declares_its_contract():
    for name, cls in RULES.items():
        assert issubclass(cls, Rule) and cls.name == name and cls.summary
        assert cls.Options.model_fields["rule"] is not None and cls.min_layers >= 1
    assert {"bp", "fa", "dfa", "pbp", "ndi", "di", "sldi", "dendritic_mixture", "burst_multiplexing", "continuous_dtp"} <= set(RULES)


def test_docs_rule_table_is_the_registry(capsys):
    """docs/rules.md is `neurodyn list --rules --markdown` (regenerate it when a rule changes)."""
    assert main(["list", "--rules", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == rules_markdown().strip()
    assert (ROOT / "docs" / "rules.md").read_text().split("<!-- table -->")[1].strip() == out.strip()
    assert main(["list", "--rules"]) == 0
    listing = capsys.readouterr().out
    for name in RULES:
        assert f"\n{name}: " in "\n" + listing


@pytest.mark.parametrize(
    "table, key, words",
    [
        ('[rules.bp]\nleak = 0.1\n', "[rules.bp].leak", ["rule 'bp' has no option 'leak'"]),
        ('[rules.di]\nleek = 0.1\n', "[rules.di].leek", ["did you mean 'leak'"]),
        ('[rules.dfa]\nfeedback = "ssa"\n', "[rules.dfa].feedback", []),
        ('[rules.x]\nrule = "dendritic_mixtur"\n', "[rules.x].rule", ["did you mean 'dendritic_mixture'"]),
        ('[rules.dendritic_mixture]\nnonlinearity = "tanh"\n', "[rules.dendritic_mixture].nonlinearity", ["[network] nonlinearities"]),
        ('[rules.burst_multiplexing]\nphases = "two"\n', "[rules.burst_multiplexing].phases", ["remove it"]),
        ('[rules.dendritic_mixture]\nsolver = "euler"\n', "[rules.dendritic_mixture].solver", ["adaptive"]),
        ('[rules.bp]\nfrozen_layers = [3]\n', "[rules.bp]", ["beyond L = 2"]),
        ('[rules.bp]\nlr = -1.0\n', "[rules.bp].lr", []),
    ],
)
def test_rule_options_are_validated_per_rule(tmp_path, table, key, words):
    with pytest.raises(ModelError) as err:
        load_experiment(_write(tmp_path, table))
    assert err.value.key == key, str(err.value)
    for w in words:
        assert w in str(err.value)


def test_plastic_rules_check_the_network(tmp_path):
    with pytest.raises(ModelError, match="biases = false"):
        load_experiment(_write(tmp_path, "[rules.dendritic_mixture]\n", biases="true"))
    with pytest.raises(ModelError, match="one invertible sigma"):
        load_experiment(_write(tmp_path, "[rules.continuous_dtp]\n", nl='["tanh", "tanh"]'))
    with pytest.raises(ModelError, match="equal sizes"):
        load_experiment(_write(tmp_path, '[rules.dendritic_mixture]\ninverses = "exact"\n', sizes="[4, 5, 4]"))


def test_cli_names_the_rule_and_option(tmp_path, capsys):
    code = main(["train", str(_write(tmp_path, "[rules.bp]\nleak = 0.1\n")), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "rule 'bp' has no option 'leak'" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


PLASTIC = """
[rules.bp]
[rules.bp_frozen]
rule = "bp"
frozen_layers = [1]
[rules.mixture_exact]
rule = "dendritic_mixture"
inverses = "exact"
"""

MORE_PLASTIC = """
[rules.mixture_two]
rule = "dendritic_mixture"
phases = "two"
[rules.burst_multiplexing]
[rules.continuous_dtp]
"""


@pytest.mark.parametrize("rules", [pytest.param(PLASTIC, id="exact-mixture"), pytest.param(PLASTIC + MORE_PLASTIC, id="all-circuits", marks=pytest.mark.slow)])
def test_plastic_circuits_train_beside_bp(tmp_path, rules):
    """BP and the plastic circuits learn the same teacher task from the same weights and
    samples through one harness; the frozen-layer control keeps W_1 and has no W_1 angle;
    the exact-inverse mixture's hidden update points at the Gauss-Newton target (6.15).
    (The default suite trains the exact mixture; ``-m slow`` adds the other circuits.)"""
    exp = load_experiment(_write(tmp_path, rules))
    summary = training.run_training(exp, tmp_path / "out")
    rows = _rows(tmp_path / "out" / "metrics.csv")
    for label in exp.rules:
        mine = [r for r in rows if r["rule"] == label]
        assert [int(r["step"]) for r in mine] == [0, 30, 60]
        assert float(mine[-1]["train_loss"]) < 0.8 * float(mine[0]["train_loss"]), label
        assert summary["status"][label] == "completed"
    first = {r["rule"]: r for r in rows if r["step"] == "0"}
    assert len({r["train_loss"] for r in first.values()}) == 1  # same initial network for every rule
    circuits = [label for label in exp.rules if not label.startswith("bp")]
    for label in circuits:
        final = summary["final"][label]
        assert final["steady_state_converged"] == 1.0 and final["wall_per_update_s"] > 0
        # reconstruction errors on each circuit's target path: exact inverses (square layers) and phase differences have none
        assert all(0 <= float(r["e_rec_h1"]) < 1e-9 and np.isfinite(float(r["e_approx_h1"])) for r in rows if r["rule"] == label), label
    assert np.isnan(summary["final"]["bp_frozen"]["angle_bp_W1"]) and summary["final"]["bp_frozen"]["angle_bp_W2"] < 1e-6
    assert all(r["e_rec_h1"] == "" for r in rows if r["rule"] == "bp")
    assert float(first["mixture_exact"]["angle_gn_W1"]) < 20.0 < float(first["mixture_exact"]["angle_bp_W1"])
    assert summary["rules"]["mixture_exact"]["tau_w"]["W2"] == pytest.approx(0.25 * 0.1 * 10.0 / 0.01)
    assert "nonlinearity" not in summary["rules"]["mixture_exact"] and "gamma" not in summary["rules"].get("continuous_dtp", {})
    with np.load(tmp_path / "out" / "checkpoint.npz") as z:
        W1_frozen = z["bp_frozen/W1"]
    net0 = init_network([4, 4, 4], ["leaky_relu:0.35", "linear"], seed=2, scale=1.0, init="normal")
    np.testing.assert_array_equal(W1_frozen, np.asarray(net0.W[0]))


@pytest.mark.slow  # two plastic trainings (10 s); .ci/run runs it after the default suite
def test_plastic_rule_resumes_with_its_own_weights(tmp_path, monkeypatch):
    """The learned inverses Q are the rule's own parameters: checkpointed and restored."""
    exp = load_experiment(_write(tmp_path, "[rules.mixture]\nrule = \"dendritic_mixture\"\n", steps=40, every=20))
    training.run_training(exp, tmp_path / "full")
    interrupted_training(monkeypatch, exp, tmp_path / "cut", at=2)
    training.run_training(exp, tmp_path / "cut", resume=True)
    with np.load(tmp_path / "full" / "checkpoint.npz") as a, np.load(tmp_path / "cut" / "checkpoint.npz") as b:
        keys = [k for k in a.files if k.startswith("mixture/") and not k.endswith("/wall")]
        assert any(k.startswith("mixture/feedback") for k in keys)
        for key in keys:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_gauss_newton_target_update_of_a_linear_network():
    """Linear 2-layer network, square invertible W_2: the GN target of the hidden layer is
    W_2^{-1} delta_L, so the update is sum_b (W_2^{-1} delta_L) x^T; BP's is W_2^T delta_L x^T."""
    net = init_network([3, 4, 4], ["linear", "linear"], seed=1, scale=1.0, init="normal")
    rng = np.random.default_rng(3)
    x, t = jnp.asarray(rng.normal(size=(5, 3))), jnp.asarray(rng.normal(size=(5, 4)))
    delta = t - net(x)
    (gn,) = gn_target_updates(net, x, t, "squared_error")
    expected = np.linalg.solve(np.asarray(net.W[1]), np.asarray(delta).T) @ np.asarray(x)
    np.testing.assert_allclose(gn, expected, rtol=1e-10)
    bp_rule, _ = make_rule("bp", net)
    angles = alignment(bp_rule, net, "squared_error", x, t)
    bp_update = np.asarray(net.W[1]).T @ np.asarray(delta).T @ np.asarray(x)
    cos = np.sum(bp_update * expected) / np.linalg.norm(bp_update) / np.linalg.norm(expected)
    assert float(angles["gn"][0]) == pytest.approx(np.degrees(np.arccos(cos)), abs=1e-8)
    assert float(angles["bp"][0]) < 1e-5


def test_pca_inputs_use_training_statistics():
    from neurodyn.learning.data import Dataset, principal_components

    rng = np.random.default_rng(0)
    mix = rng.normal(size=(6, 6))
    x_train, x_test = rng.normal(size=(200, 6)) @ mix, rng.normal(size=(50, 6)) @ mix
    y = np.eye(2)[rng.integers(0, 2, 200)]
    ds = Dataset(x_train, y, x_test, y[:50], task="classification", name="toy")
    p = principal_components(ds, 3)
    assert p.x_train.shape == (200, 3) and p.x_test.shape == (50, 3)
    assert np.mean(p.x_train**2) == pytest.approx(1.0)
    cov = np.cov(p.x_train.T)
    assert np.allclose(cov - np.diag(np.diag(cov)), 0, atol=1e-10)  # uncorrelated components
    assert np.all(np.diff(np.diag(cov)) < 0)  # by decreasing variance
    with pytest.raises(ValueError, match="pca"):
        principal_components(ds, 7)


def test_networks_without_biases_keep_them_zero(tmp_path):
    exp = load_experiment(_write(tmp_path, "[rules.bp]\n", steps=20, every=20))
    training.run_training(exp, tmp_path / "o")
    with np.load(tmp_path / "o" / "checkpoint.npz") as z:
        assert not np.any(z["bp/b1"]) and not np.any(z["bp/b2"])
    rows = _rows(tmp_path / "o" / "metrics.csv")
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])


def test_student_teacher_data_follows_the_thesis_set_up():
    """Thesis 5.1.3: the student starts at Frobenius distance 8 from the teacher, layers
    above the first satisfy sigma_min sigma_max > 0.4, targets are the teacher's outputs."""
    from neurodyn.learning.data import student_teacher, teacher_forward

    ds = student_teacher(50, 20, (6, 6, 6), ("leaky_relu:0.35", "linear"), seed=3)
    T, S = ds.teacher["weights"], ds.teacher["student"]
    for l in range(2):
        assert np.linalg.norm(S[l] - T[l]) == pytest.approx(8.0, rel=1e-12)
    for W in (T[1], S[1]):
        sv = np.linalg.svd(W, compute_uv=False)
        assert sv[0] * sv[-1] > 0.4
    np.testing.assert_array_equal(ds.y_test, teacher_forward(ds.teacher, ds.x_test))
    a = ds.x_train @ T[0].T
    np.testing.assert_allclose(ds.y_train, np.where(a > 0, a, 0.35 * a) @ T[1].T, rtol=1e-12)


def test_student_teacher_experiment_starts_from_the_student(tmp_path, capsys):
    """init = "data" starts every rule at the student's weights; --seed redraws everything
    and a checkpoint refuses to resume under another seed."""
    path = tmp_path / "st.toml"
    path.write_text(
        (ROOT / "experiments" / "student_teacher" / "experiment.toml").read_text()
        .replace("steps = 4000", "steps = 20").replace("eval_every = 200", "eval_every = 10")
        .split("[rules.bp]")[0] + "[rules.bp]\nlr = 0.003\n"
    )
    assert main(["train", str(path), "--out", str(tmp_path / "s0"), "--no-progress"]) == 0
    assert main(["train", str(path), "--out", str(tmp_path / "s5"), "--seed", "5", "--no-progress"]) == 0
    from neurodyn.io.metrics import read_metrics

    s0, s5 = read_metrics(tmp_path / "s0")["bp"], read_metrics(tmp_path / "s5")["bp"]
    assert list(s0["step"]) == [0, 10, 20] and s0["train_loss"][-1] < s0["train_loss"][0]
    assert s0["train_loss"][0] != s5["train_loss"][0]
    from neurodyn.learning.data import student_teacher

    ds = student_teacher(2000, 1000, (6, 6, 6), ("leaky_relu:0.35", "linear"), seed=0)
    W1, W2 = ds.teacher["student"]
    a = ds.x_train @ W1.T
    y = np.where(a > 0, a, 0.35 * a) @ W2.T
    assert s0["train_loss"][0] == pytest.approx(np.mean(0.5 * np.sum((y - ds.y_train) ** 2, axis=1)), rel=1e-12)
    capsys.readouterr()
    assert main(["train", str(path), "--out", str(tmp_path / "s0"), "--seed", "1", "--resume", "--no-progress"]) == 2
    assert "seed 0, not 1" in capsys.readouterr().err


def test_read_metrics_from_npz_and_csv(tmp_path):
    exp = load_experiment(_write(tmp_path, "[rules.bp]\n[rules.fa]\nfeedback = \"random\"\n", biases="true", steps=20, every=10))
    training.run_training(exp, tmp_path / "o")
    from neurodyn.io.metrics import read_metrics

    npz = read_metrics(tmp_path / "o")
    (tmp_path / "o" / "metrics.npz").unlink()
    csv_ = read_metrics(tmp_path / "o" / "metrics.csv")
    assert list(npz) == ["bp", "fa"] and list(npz["fa"]["step"]) == [0, 10, 20]
    for label in npz:
        for key, v in npz[label].items():
            np.testing.assert_allclose(csv_[label][key], v, rtol=1e-12, equal_nan=True, err_msg=key)
    assert np.isnan(npz["bp"]["abscissa_S24_layer2"]).all() and np.isfinite(npz["fa"]["abscissa_S24_layer2"]).all()
    with pytest.raises(ModelError, match="no metrics"):
        read_metrics(tmp_path)


def test_readme_training_example_is_a_valid_experiment(tmp_path):
    """The experiment file shown in the README's Training section loads as written."""
    text = (ROOT / "README.md").read_text().split("## Training\n", 1)[1]
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "readme.toml"
    path.write_text(block)
    exp = load_experiment(path)
    kinds = {label: o.rule for label, o in exp.rules.items()}
    assert kinds == {"bp": "bp", "bp_frozen": "bp", "mixture": "dendritic_mixture", "di_ode": "di"}
    assert exp.rules["di_ode"].plasticity == "ode" and exp.rules["bp_frozen"].frozen_layers == [1]
