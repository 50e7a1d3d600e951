"""Plasticity as coupled weight dynamics (core/plasticity.py), [plasticity] in model files,
and the simulate job's outputs for plastic models.

The toy kind below (defined and registered here, so no package kind is needed) has a
neural state ``h`` that relaxes to ``W x + V`` and the local rule ``dW/dt = (t - h) x^T``
for ``W1`` (none for ``V1``). Its joint dynamics are linear and solvable: with
``d = h - t``, ``v = W x - t`` and ``a = g |x|^2 / tau_w`` (g the gate),

    d' = v - d,    v' = -a d,    W(t) = W(0) + (v(t) - v(0)) x^T / |x|^2,

so ``[d, v](t) = expm(t [[-1, 1], [-a, 0]]) [d, v](0)`` per component, phase by phase.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict
from scipy.linalg import expm

import neurodyn as nd
from neurodyn.cli import main
from neurodyn.core import schedules as S
from neurodyn.core.circuit import REGISTRY, ArraySpec, Circuit, KindInfo, register
from neurodyn.core.plasticity import Frozen, Plastic, rule_shapes
from neurodyn.io import ModelError, load_model


# --- the toy kind ------------------------------------------------------------------------
class ToyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    drive: float | dict = 1.0  # a schedule spec scaling x (exercises the horizon)


class ToyHebb(Circuit):
    """dh/dt = drive(t) W x + V - h;  rule for W1: (target - h) x^T."""

    kind = "test_toy_hebb"
    W: jax.Array
    V: jax.Array
    drive: S.Schedule

    def state_shapes(self):
        return {"h": (self.W.shape[0],)}

    def input_shapes(self):
        return {"x": (self.W.shape[1],), "target": (self.W.shape[0],)}

    def vector_field(self, t, state, inputs):
        return {"h": self.drive(t) * self.W @ inputs["x"] + self.V - state["h"]}

    def plasticity(self, t, state, inputs):
        return {"W1": jnp.outer(inputs["target"] - state["h"], inputs["x"])}

    def jump_times(self):
        return self.drive.jump_times()

    def closed_form(self, inputs):
        return {"h": self.W @ inputs["x"] + self.V}  # at rest, for drive = 1

    Options = ToyOptions

    @classmethod
    def array_specs(cls, sizes, options):
        n_in, n_out = sizes
        return {
            "W1": ArraySpec((n_out, n_in)),
            "V1": ArraySpec((n_out,), default="zeros"),
            "x": ArraySpec((n_in,), role="input"),
            "target": ArraySpec((n_out,), role="input"),
        }

    @classmethod
    def from_arrays(cls, sizes, options, arrays):
        return cls(W=jnp.asarray(arrays["W1"]), V=jnp.asarray(arrays["V1"]), drive=S.from_spec(options.drive))

    @classmethod
    def validate_sizes(cls, sizes):
        if len(sizes) != 2:
            raise ValueError("sizes = [n_in, n_out]")

    @classmethod
    def info(cls):
        return KindInfo(kind=cls.kind, summary="test toy: h relaxes to W x; W learns (t - h) x^T", state="h")


class ToyNoRule(ToyHebb):
    """The same circuit without local rules."""

    kind = "test_toy_norule"

    def plasticity(self, t, state, inputs):
        return {}


@pytest.fixture(autouse=True, scope="module")
def toy_kinds():
    """Register the toy kinds for this module only (other modules may list REGISTRY)."""
    for cls in (ToyHebb, ToyNoRule):
        register(cls)
    yield
    for cls in (ToyHebb, ToyNoRule):
        REGISTRY.pop(cls.kind, None)


def toy(rng, n_in=3, n_out=2, drive=1.0):
    return ToyHebb(W=jnp.asarray(rng.normal(size=(n_out, n_in))), V=jnp.zeros(n_out), drive=S.from_spec(drive))


def closed_form(W0, x, target, tau_w, ts, gate=None):
    """h(t), W(t) of the toy (one sample, h(0) = 0, V = 0), phase by phase for a
    piecewise-constant gate."""
    W0, x, target = (np.asarray(a, float) for a in (W0, x, target))
    a = x @ x / tau_w
    edges = [0.0, *(gate.times if gate is not None else ()), np.inf]
    values = gate.values if gate is not None else (1.0,)
    if gate is not None:  # the value on [0, first time) is values[k] for the first time > 0
        k0 = int(np.searchsorted(np.asarray(gate.times), 0.0, side="right"))
        edges = [0.0, *[t for t in gate.times if t > 0], np.inf]
        values = gate.values[k0:]
    y = np.stack([-target, W0 @ x - target])  # (2, n_out): d, v
    v0 = y[1].copy()
    H, W = [], []
    for t in ts:
        k = np.searchsorted(edges, t, side="right") - 1
        yk = y
        for j in range(k):  # advance through the completed phases
            yk = expm((edges[j + 1] - edges[j]) * np.array([[-1.0, 1.0], [-values[j] * a, 0.0]])) @ yk
        yt = expm((t - edges[k]) * np.array([[-1.0, 1.0], [-values[k] * a, 0.0]])) @ yk
        H.append(yt[0] + target)
        W.append(W0 + np.outer(yt[1] - v0, x) / (x @ x))
    return np.asarray(H), np.asarray(W)


# --- Plastic in Python -------------------------------------------------------------------
def test_state_and_rule_discovery():
    c = toy(np.random.default_rng(0))
    assert rule_shapes(c) == {"W1": (2, 3)}
    p = Plastic(c, ["W1"], tau_w=4.0)
    assert p.state_shapes() == {"h": (2,), "W1": (2, 3)}
    assert p.input_shapes() == c.input_shapes() and p.state_size == 8
    s0 = p.init_state({"x": jnp.ones(3), "target": jnp.ones(2)})
    assert np.array_equal(np.asarray(s0["W1"]), np.asarray(c.W)) and np.array_equal(np.asarray(s0["h"]), np.zeros(2))
    # where() of the wrapper reaches into the circuit
    assert p.where("W1")(p) is c.W


def test_weight_trajectory_matches_the_closed_form_per_sample():
    rng = np.random.default_rng(1)
    c, tau_w = toy(rng), 3.0
    x = rng.normal(size=(3, 3))
    target = rng.normal(size=(3, 2))
    ts = np.linspace(0.0, 20.0, 21)
    tr = nd.simulate(Plastic(c, ["W1"], tau_w=tau_w), {"x": x, "target": target}, t1=20.0, saveat=ts,
                     steady_state=False, rtol=1e-10, atol=1e-12)
    assert tr.reason == "t1_reached" and tr.ys["W1"].shape == (21, 3, 2, 3)
    for b in range(3):  # each sample learns its own copy of W
        H, W = closed_form(c.W, x[b], target[b], tau_w, ts)
        assert np.max(np.abs(tr.ys["W1"][:, b] - W)) < 1e-8
        assert np.max(np.abs(tr.ys["h"][:, b] - H)) < 1e-8
    # the samples end with different weights (independent simulations)
    assert np.max(np.abs(tr.final["W1"][0] - tr.final["W1"][1])) > 0.1


def test_gate_freezes_weights_exactly_and_the_closed_form_holds_per_phase():
    rng = np.random.default_rng(2)
    c, tau_w = toy(rng), 2.0
    gate = S.phases([4.0, 3.0], [0.0, 1.0], cycles=2)  # frozen [0,4), learn [4,7), frozen [7,11), learn
    x, target = rng.normal(size=3), rng.normal(size=2)
    ts = np.linspace(0.0, 16.0, 65)
    p = Plastic(c, ["W1"], tau_w=tau_w, gate=gate)
    assert p.jump_times() == (4.0, 7.0, 11.0)
    tr = nd.simulate(p, {"x": x, "target": target}, t1=16.0, saveat=ts, steady_state=False, rtol=1e-10, atol=1e-12)
    W = tr.ys["W1"]
    frozen1 = ts < 4.0
    frozen2 = (ts >= 7.0) & (ts < 11.0)
    assert np.all(W[frozen1] == np.asarray(c.W))  # bit-for-bit
    assert np.all(W[frozen2] == W[frozen2][0]) and np.linalg.norm(W[frozen2][0] - np.asarray(c.W)) > 0.1
    H_exact, W_exact = closed_form(c.W, x, target, tau_w, ts, gate)
    assert np.max(np.abs(W - W_exact)) < 1e-8 and np.max(np.abs(tr.ys["h"] - H_exact)) < 1e-8


def test_steady_state_stop_waits_for_the_gate():
    """Weights frozen until t = 40: the neurons are at rest long before, but the solve must
    go on through the learning phase and stop only when W x = target."""
    rng = np.random.default_rng(3)
    c = toy(rng)
    x, target = rng.normal(size=3), rng.normal(size=2)
    p = Plastic(c, ["W1"], tau_w=1.0, gate=S.Step(40.0))
    tr = nd.simulate(p, {"x": x, "target": target}, t1=2000.0, rtol=1e-8, atol=1e-10)
    assert tr.reason == "steady_state" and tr.t_final > 40.0 and tr.jump_times == (40.0,)
    assert np.max(np.abs(tr.final["W1"] @ x - target)) < 1e-6
    assert np.max(np.abs(tr.final["h"] - target)) < 1e-6


def test_jump_times_are_the_union_of_circuit_and_gates():
    c = toy(np.random.default_rng(4), drive={"type": "step", "time": 2.0, "before": 1.0, "after": 0.5})
    p = Plastic(c, ["W1"], tau_w=1.0, gate=S.Piecewise((1.0, 2.0), (0.0, 1.0, 0.0)))
    assert p.jump_times() == (1.0, 2.0)


def test_frozen_view_reads_weights_from_the_inputs():
    rng = np.random.default_rng(5)
    c = toy(rng)
    W = jnp.asarray(rng.normal(size=(4, 2, 3)))  # one weight matrix per sample
    x = jnp.asarray(rng.normal(size=(4, 3)))
    f = Frozen(c, ("W1",), 7.0)
    assert f.input_shapes() == {"x": (3,), "target": (2,), "W1": (2, 3)}
    eq = nd.fixed_point(f, {"x": x, "target": jnp.zeros((4, 2)), "W1": W}, method="equilibrium")
    assert eq.all_converged and np.allclose(eq.state["h"], np.einsum("bij,bj->bi", W, x), atol=1e-12)
    assert np.allclose(eq.spectral_abscissa, -1.0)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(arrays=["Z1"]), "'Z1' is not an array of kind test_toy_hebb; arrays with local rules: W1"),
        (dict(arrays=["V1"]), "no local rule for 'V1'; arrays with local rules: W1"),
        (dict(arrays=[]), "non-empty list"),
        (dict(arrays=["W1", "W1"]), "twice"),
        (dict(arrays=["W1"], tau_w=0.0), "tau_w of 'W1' must be a positive number"),
        (dict(arrays=["W1"], tau_w=-2.0), "must be a positive number"),
        (dict(arrays=["W1"], tau_w={"V1": 1.0}), "not plastic"),
        (dict(arrays=["W1"], gate="on"), "must be a schedule"),
        (dict(arrays=["W1"], gate=S.Wave(S.Step(1.0), 2, 1.0)), "scalar schedule"),
    ],
)
def test_plastic_errors(kwargs, needle):
    with pytest.raises(ValueError) as err:
        Plastic(toy(np.random.default_rng(0)), **kwargs)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_kind_without_rules_is_refused():
    c = ToyNoRule(W=jnp.ones((2, 3)), V=jnp.zeros(2), drive=S.Constant(1.0))
    with pytest.raises(ValueError, match="has no local plasticity rules"):
        Plastic(c, ["W1"])
    with pytest.raises(ValueError, match="plastic already"):
        Plastic(Plastic(toy(np.random.default_rng(0)), ["W1"]), ["W1"])


# --- model files -------------------------------------------------------------------------
MODEL = """\
name = "toy_plastic"
seed = 0

[circuit]
kind = "test_toy_hebb"
sizes = [3, 2]

[arrays]
W1 = { init = "normal", std = 0.5 }
x = { values = [0.5, -1.0, 0.8] }
target = { values = [0.3, -0.2] }

[simulation]
t1 = 30.0
saveat = 31
steady_state = false
rtol = 1e-9
atol = 1e-11

[plasticity]
arrays = ["W1"]
tau_w = 4.0
gate = { type = "phases", durations = [5, 5], values = [0, 1], cycles = 2 }
"""


def write(tmp_path: Path, text: str, name: str = "model.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_model_file_round_trip(tmp_path):
    m = load_model(write(tmp_path, MODEL))
    assert isinstance(m.circuit, Plastic) and m.circuit.arrays == ("W1",) and m.circuit.tau_w == (4.0,)
    assert m.circuit.jump_times() == (5.0, 10.0, 15.0)
    assert m.neural_circuit is m.circuit.circuit and isinstance(m.neural_circuit, ToyHebb)
    assert m.plasticity == {"W1": {"tau_w": 4.0, "gate": {"type": "phases", "durations": [5, 5], "values": [0, 1], "cycles": 2}}}
    # a per-array table overrides the shared settings
    text = MODEL + "\n[plasticity.W1]\ntau_w = 0.5\ngate = 1.0\n"
    m2 = load_model(write(tmp_path, text, "m2.toml"))
    assert m2.circuit.tau_w == (0.5,) and m2.circuit.jump_times() == () and m2.plasticity["W1"]["gate"] == 1.0


def test_schedules_in_circuit_options_get_the_simulation_end(tmp_path):
    text = MODEL.replace('sizes = [3, 2]', 'sizes = [3, 2]\ndrive = { type = "periodic", period = 8.0, shape = "square" }')
    m = load_model(write(tmp_path, text))
    # square wave jumps every 4 up to t1 = 30 (from the horizon), plus the gate's 5, 10, 15
    assert m.neural_circuit.jump_times() == (4.0, 8.0, 12.0, 16.0, 20.0, 24.0, 28.0)
    assert m.circuit.jump_times() == (4.0, 5.0, 8.0, 10.0, 12.0, 15.0, 16.0, 20.0, 24.0, 28.0)


GATE = 'gate = { type = "phases", durations = [5, 5], values = [0, 1], cycles = 2 }'


@pytest.mark.parametrize(
    "old, new, key, needle",
    [
        ('arrays = ["W1"]', 'arrays = ["Z1"]', "[plasticity].arrays", "'Z1' is not an array of kind test_toy_hebb; arrays with local rules: W1"),
        ('arrays = ["W1"]', 'arrays = ["V1"]', "[plasticity].arrays", "no local rule for 'V1'; arrays with local rules: W1"),
        ('arrays = ["W1"]', 'arrays = ["x"]', "[plasticity].arrays", "'x' is an input, not a weight"),
        ('arrays = ["W1"]', 'arrays = []', "[plasticity].arrays", "non-empty list"),
        ('arrays = ["W1"]', 'arrays = "W1"', "[plasticity].arrays", "non-empty list"),
        ('arrays = ["W1"]\n', '', "[plasticity].arrays", "missing"),
        ("tau_w = 4.0", "tau_w = 0.0", "[plasticity].tau_w", "must be positive"),
        ("tau_w = 4.0", "tau_w = -1", "[plasticity].tau_w", "must be positive"),
        ("tau_w = 4.0", 'tau_w = "slow"', "[plasticity].tau_w", "must be a number"),
        ("tau_w = 4.0\n", "", "[plasticity].tau_w", "missing for 'W1'"),
        (GATE, 'gate = { type = "sawtooth", period = 3 }', "[plasticity].gate", "unknown schedule type 'sawtooth'"),
        (GATE, 'gate = { type = "step" }', "[plasticity].gate", "needs 'time'"),
        (GATE, 'gate = "on"', "[plasticity].gate", "a number or a table"),
        (GATE, 'gate = { type = "wave", base = 1.0, layers = 2, delay = 1 }', "[plasticity].gate", "not a per-layer wave"),
        (GATE, GATE + "\ntau = 3", "[plasticity].tau", "unknown key; did you mean 'tau_w'?"),
        (GATE, GATE + "\n[plasticity.V1]\ntau_w = 3.0", "[plasticity.V1]", "not in [plasticity].arrays"),
        (GATE, GATE + "\n[plasticity.W1]\ntau_w = -3.0", "[plasticity.W1].tau_w", "must be positive"),
        (GATE, GATE + "\n[plasticity.W1]\ngate = { type = \"ramp\" }", "[plasticity.W1].gate", "needs 't_on'"),
        (GATE, GATE + "\n[plasticity.W1]\nrate = 3.0", "[plasticity.W1].rate", "unknown key"),
        (GATE, GATE + "\nW1 = 2.0", "[plasticity].W1", "must be a table"),
        ('kind = "test_toy_hebb"', 'kind = "test_toy_norule"', "[plasticity]", "kind test_toy_norule has no local plasticity rules"),
        ("[plasticity]\n", "[[plasticity]]\n", "[plasticity]", "must be a table"),
    ],
)
def test_model_file_errors(tmp_path, old, new, key, needle):
    assert old in MODEL, old
    path = write(tmp_path, MODEL.replace(old, new, 1))
    with pytest.raises(ModelError) as err:
        load_model(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: {key}: "), msg
    assert needle in msg and "\n" not in msg


# --- the simulate job and the CLI --------------------------------------------------------
def run_main(argv):
    x64 = jax.config.jax_enable_x64
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([str(a) for a in argv])
    finally:
        jax.config.update("jax_enable_x64", x64)
    return rc, out.getvalue(), err.getvalue()


def test_cli_simulate_writes_weights_png_and_the_plastic_summary(tmp_path):
    model = write(tmp_path, MODEL)
    out = tmp_path / "results"
    rc, stdout, stderr = run_main(["simulate", model, "--out", out, "--no-progress"])
    assert rc == 0, stderr + stdout
    assert {"weights.png", "convergence.png", "summary.json", "trajectory.npz", "fixed_point.npz"} <= {p.name for p in out.iterdir()}
    assert (out / "weights.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    m = load_model(model)
    gate = S.from_spec(m.plasticity["W1"]["gate"])
    x, target = m.arrays["x"].value, m.arrays["target"].value
    W0 = m.arrays["W1"].value
    _, W = closed_form(W0, x, target, 4.0, np.asarray([30.0]), gate)
    expected = float(np.linalg.norm(W[-1] - W0))
    assert summary["plastic"]["W1"]["tau_w"] == 4.0
    assert abs(summary["plastic"]["W1"]["change_frobenius"] - expected) < 1e-6 * expected
    assert summary["time_dependent"] and summary["jump_times"] == [5.0, 10.0, 15.0]
    assert "final weights" in summary["spectral_abscissa_of"]
    # the neural fixed point at the final weights: h* = W(t1) x, eigenvalue -1
    assert summary["converged"] and abs(summary["spectral_abscissa"] + 1.0) < 1e-9
    assert summary["checks"]["closed_form_relative_error"]["passed"]
    fp = np.load(out / "fixed_point.npz")
    assert np.allclose(fp["W1"], W[-1], atol=1e-7) and np.allclose(fp["h"], fp["W1"] @ x, atol=1e-12)
    traj = np.load(out / "trajectory.npz")
    assert traj["W1"].shape == (31, 2, 3) and np.all(traj["W1"][:5] == W0)  # frozen until t = 5
    assert "plastic W1: tau_w = 4" in stdout


def test_cli_check_shows_plasticity(tmp_path):
    rc, stdout, stderr = run_main(["check", write(tmp_path, MODEL)])
    assert rc == 0, stderr
    assert "plastic: W1" in stdout and "tau_w 4" in stdout and "jump times: 5, 10, 15" in stdout
    assert "W1(2, 3)" in stdout  # the weights are state variables
