"""Plastic circuits as rules: a circuit of the engine whose weights are ODE state learns
the network one mini-batch at a time.

For every sample ``(x, t)`` the circuit starts from rest at the network's current weights
(its ``init_state``, or its analytic rest with ``start = "closed_form"``), runs its own
phase sequence (single phase, free/learning phases, a gamma cycle) over ``[0, t1]`` with
diffrax, and its weights move by their local rule (``core.plasticity.Plastic``). The
samples of a mini-batch each start from the same weights; the network then moves by the
sum of their weight changes, as SGD sums the updates of a batch (batch size 1 is online
learning, weights carried from sample to sample). A solve that stops before ``t1`` or
gives non-finite weights changes nothing (the mini-batch is skipped).

The network is the plain MLP ``h_l = s_l(W_l h_{l-1})`` without biases (``[network]
biases = false``), squared loss ``0.5 ||h_L - t||^2`` (``e_L = h_L - t``). The circuit's
own arrays besides ``W`` (learned inverses ``Q``, CDTP's ``Omega``) are the rule's
parameters: they start at ``pinv(W_{l+1})`` and learn in the same cycles.

Rates. ``[training] lr`` is the rate of an SGD step on the output layer: each kind sets the
weights' time constants ``tau_w`` from it so that one cycle moves ``W_L`` by
``-lr e_L h_{L-1}^T`` to first order (the kind's docstring gives its formula); the
inverse weights learn with about one LMS step of rate ``inverse_lr`` per sample.
"""

import abc
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from pydantic import Field, field_validator

from ...core.circuit import jacobian
from ...core.plasticity import Plastic
from ...core.simulate import ADAPTIVE_SOLVERS, integrate
from .base import Rule, RuleOptions
from .targets import TargetPath, target_errors


#: largest real part of the neural Jacobian at a cycle's end still counted as stable
MARGINAL = 1e-9


class PlasticRuleOptions(RuleOptions):
    """Options shared by the plastic-circuit rules: the inverse weights' rate and the
    integration of one cycle. ``derived`` names circuit options that the rule takes from
    the network or the training set-up (giving them is an error)."""

    derived: ClassVar[dict[str, str]] = {"nonlinearity": "[network] nonlinearities"}
    #: the circuit kind this rule runs
    kind: ClassVar[type]

    inverse_lr: float = Field(0.05, ge=0, description="per-sample LMS rate of the learned inverse weights (Q, Omega)")
    solver: str = Field("tsit5", description="adaptive diffrax solver of one cycle")
    rtol: float = Field(1e-5, gt=0, description="relative tolerance of one cycle's solve")
    atol: float = Field(1e-7, gt=0, description="absolute tolerance of one cycle's solve")
    max_steps: int = Field(4096, gt=0, description="solver steps allowed per cycle (a cycle that needs more is skipped)")

    @field_validator("solver")
    @classmethod
    def _adaptive(cls, v):
        if v not in ADAPTIVE_SOLVERS:
            raise ValueError(f"solver must be an adaptive solver ({', '.join(ADAPTIVE_SOLVERS)}), got '{v}'")
        return v

    @abc.abstractmethod
    def circuit_options(self, nonlinearities: list[str]):
        """The kind's own options (its ``Options``) for a network with these nonlinearities."""

    def check_network(self, network_spec) -> None:
        super().check_network(network_spec)
        self.kind.array_specs(list(network_spec.sizes), self.circuit_options(list(network_spec.nonlinearities)))
        if network_spec.biases:
            raise ValueError(f"rule '{self.rule}' trains networks without biases; set [network] biases = false")
        if network_spec.loss != "squared_error":
            raise ValueError(f"rule '{self.rule}' learns from e_L = h_L - t: use [network] loss = \"squared_error\"")


class PlasticCircuitRule(Rule):
    """A plastic circuit as a rule (module docstring). Subclasses build it in ``build``."""
    family = "circuits with plastic weights"

    plastic: Plastic  # the circuit with W1..WL and its own plastic arrays; its arrays are a template
    own: dict  # the rule's own plastic arrays (Q, Omega): current values
    lr: float = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    encode: Callable | None = eqx.field(static=True, default=None)
    start: str = eqx.field(static=True, default="init_state")
    solver: str = eqx.field(static=True, default="tsit5")
    rtol: float = eqx.field(static=True, default=1e-5)
    atol: float = eqx.field(static=True, default=1e-7)
    max_steps: int = eqx.field(static=True, default=4096)

    min_layers: ClassVar[int] = 2
    unstable_note: ClassVar[str] = "the neural dynamics, frozen at a cycle's end, had an eigenvalue with positive real part"

    @classmethod
    def kind_circuit(cls, network, options, own: dict):
        """The options' circuit kind on the network's weights and the rule's own arrays."""
        arrays = {**{f"W{l}": w for l, w in enumerate(network.W, start=1)}, **own}
        return options.kind.from_arrays(network.sizes, options.circuit_options([str(s) for s in network.s]), arrays)

    @classmethod
    def assemble(cls, circuit, network, options, *, lr, t1, tau_forward, own, t_inverse, **kw):
        """The rule around ``circuit``: forward weights with time constant ``tau_forward``,
        the rule's own arrays ``own`` learning for a time ``t_inverse`` per cycle at
        ``options.inverse_lr`` (``tau_w = t_inverse / inverse_lr``; rate 0 holds them fixed).
        Returns ``(rule, info)``."""
        tau_w = {f"W{l}": tau_forward for l in range(1, network.L + 1)}
        rate = options.inverse_lr
        tau_w.update({n: t_inverse / rate if rate > 0 else 1.0 for n in own})
        gate = {n: None if rate > 0 or n.startswith("W") else 0.0 for n in tau_w}
        plastic = Plastic(circuit, list(tau_w), tau_w=tau_w, gate=gate)
        settings = {k: getattr(options, k) for k in ("solver", "rtol", "atol", "max_steps")}
        rule = cls(plastic=plastic, own=own, lr=lr, t1=t1, **settings, **kw)
        return rule, {"t1": t1, "tau_w": tau_w}

    def weights(self, network) -> dict:
        """The plastic arrays at the network's current values: ``W1..WL``, the biases where
        the circuit learns them, and the rule's own arrays."""
        out = {f"W{l}": w for l, w in enumerate(network.W, start=1)}
        out.update({f"b{l}": b for l, b in enumerate(network.b, start=1) if f"b{l}" in self.plastic.arrays})
        return {**out, **self.own}

    def _per_unit_rate(self, network, total) -> tuple[tuple, tuple]:
        dW = tuple(total[f"W{l}"] / self.lr for l in range(1, network.L + 1))
        db = tuple(total[f"b{l}"] / self.lr if f"b{l}" in total else jnp.zeros_like(b) for l, b in enumerate(network.b, start=1))
        return dW, db

    def learned_arrays(self) -> dict:
        return dict(self.own)

    def cycle_inputs(self, network, x, t, loss: str) -> dict:
        """The circuit's inputs for a batch: the network input (through ``encode``) and the target."""
        return {"x": x if self.encode is None else jax.vmap(self.encode)(x), "target": t}

    def cycle(self, network, x, t, loss: str) -> tuple[dict, dict, dict, dict]:
        """One cycle per sample from the network's weights: ``(initial weights (batched),
        final state, inputs, stats)`` (:func:`run_cycle`)."""
        w = self.weights(network)
        batched = jax.tree_util.tree_map(lambda v: jnp.broadcast_to(v, (x.shape[0], *v.shape)), w)
        inputs = self.cycle_inputs(network, x, t, loss)
        settings = {k: getattr(self, k) for k in ("t1", "start", "solver", "rtol", "atol", "max_steps")}
        final, stats = run_cycle(self.plastic, batched, inputs, **settings)
        return batched, final, inputs, stats

    def changes(self, network, x, t, loss: str) -> tuple[dict, jax.Array]:
        """Summed weight changes of one cycle per sample from the same weights, and whether
        they are usable (solve reached ``t1``, all finite)."""
        w0, final, _, stats = self.cycle(network, x, t, loss)
        total = {n: jnp.sum(final[n] - w0[n], axis=0) for n in w0}
        good = stats["ok"] & jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in total.values()]))
        return {n: jnp.where(good, v, 0.0) for n, v in total.items()}, good

    def updates(self, network, x, t, loss, opt=None):
        total, _ = self.changes(network, x, t, loss)
        return self._per_unit_rate(network, total)

    def step(self, network, x, t, loss, opt):
        from ..optimizer import apply_updates

        total, _ = self.changes(network, x, t, loss)
        network = apply_updates(network, self._per_unit_rate(network, total), opt)
        own = {n: v + total[n] for n, v in self.own.items()}
        return network, eqx.tree_at(lambda r: r.own, self, own)

    def target_path(self, circuit, network, fwd, t) -> TargetPath | None:
        """The discrete target path this circuit approximates, with the feedback arrays of
        ``circuit`` (the rule's current ones), for the batch ``fwd``; None if it has none."""
        return None

    def target_errors(self, network, x, t, loss):
        fwd = network.forward(x)
        path = self.target_path(self.plastic.rebuild(self.weights(network)), network, fwd, t)
        return None if path is None else target_errors(path)

    def steady_state(self, network, x, t, loss):
        """At the end of one cycle from the current weights: the largest ``max|dh/dt|`` of the
        neurons, the fraction of solves that reached ``t1``, and the fraction of samples
        whose neural Jacobian there (weights frozen at their final values) is stable."""
        w0, final, inputs, stats = self.cycle(network, x, t, loss)
        frozen = self.plastic.frozen(self.t1)
        neural = self.plastic.neural_state(final)
        frozen_inputs = {**inputs, **{n: final[n] for n in w0}}

        def per_sample(h, inp):
            dh = frozen.vector_field(self.t1, h, inp)
            residual = jnp.max(jnp.stack([jnp.max(jnp.abs(v)) for v in dh.values()]))
            abscissa = jnp.max(jnp.real(jnp.linalg.eigvals(jacobian(frozen, h, inp, self.t1))))
            return residual, abscissa

        residual, abscissa = jax.vmap(per_sample)(neural, frozen_inputs)
        return {
            "residual": jnp.max(residual),
            "converged": jnp.asarray(stats["ok"], residual.dtype),
            # buffers held in a phase (eigenvalue 0) are memory, not instability
            "stable": jnp.mean(abscissa <= MARGINAL),
        }


def difference_path(down: Callable, o, hidden: tuple) -> Callable:
    """Hidden targets ``h_l + G_l(o_hat) - G_l(o)`` of a circuit with a free and a learning
    phase, ``down(o_hat) = (G_1(o_hat), ..., G_{L-1}(o_hat))`` its feedback path from the
    top: the learning phase's feedback minus the free phase's keeps only the teaching
    signal's share (DTP-like, thesis 6.6 and 6.9), so ``e_rec`` is zero by construction."""
    free = down(o)
    return lambda o_hat: tuple(h + a - b for h, a, b in zip(hidden, down(o_hat), free))


def pinv_inverses(network, first: int) -> dict:
    """Initial inverse weights ``pinv(W_{l+1})`` named ``{prefix}{l}``: ``Q1..Q{L-1}``
    (``first = 1``) or CDTP's ``Omega2..OmegaL`` (``first = 2``, ``Omega_l = pinv(W_l)``)."""
    L = network.L
    if first == 1:
        return {f"Q{l}": jnp.linalg.pinv(network.W[l]) for l in range(1, L)}
    return {f"Omega{l}": jnp.linalg.pinv(network.W[l - 1]) for l in range(2, L + 1)}


def run_cycle(plastic: Plastic, weights: dict, inputs: dict, *, t1, start="init_state", **solve) -> tuple[dict, dict]:
    """One cycle of ``plastic`` for a batch of samples (``inputs`` with a leading axis), each
    with its own copy of ``weights`` (batched likewise): every sample starts at the
    circuit's rest for its weights (``init_state``, or ``closed_form`` with ``start =
    "closed_form"``) and is integrated over ``[0, t1]`` (``solve``: solver, dt0, rtol, atol,
    max_steps of :func:`neurodyn.core.simulate.integrate`). Returns ``(final state, stats)``."""

    def rest(w, inp):
        c = plastic.rebuild(w)
        y = c.closed_form(inp) if start == "closed_form" else c.init_state(inp)
        if y is None:
            raise ValueError(f"start = 'closed_form', but kind {c.kind} has no closed form here; use start = 'init_state'")
        return y

    y0 = dict(jax.vmap(rest)(weights, inputs))
    y0.update(weights)
    return integrate(plastic, inputs, y0, t1=t1, **solve)
