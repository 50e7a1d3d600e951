"""The credit-assignment rule interface, the rule registry, and the layer-by-layer error
propagation shared by BP, FA, PBP and NDI (supplement Algorithm 5:
``delta_{l-1} = (M_l delta_l) * s'(a_{l-1})``).

A rule is an :class:`equinox.Module` that trains a :class:`~neurodyn.learning.network.Network`.
It declares, as class variables, its registry ``name``, its ``Options`` (a pydantic model
holding only the keys the rule uses), its minimum depth ``min_layers`` and a one-line
``summary``; it builds itself for a network with ``build``. Its array fields are its own
parameters (fixed feedback matrices, learned inverses): ``step`` may change them, and the
harness carries, checkpoints and restores them with the network. A rule registers where
it is defined (``@register_rule``); the experiment loader, ``neurodyn list --rules`` and
the docs read :data:`RULES`.

Two families:

- :class:`SignalRule`: per-layer learning signals ``delta_l`` from the output error; the
  update is ``W_l += eta delta_l h_{l-1}^T`` (Podlaski & Machens 2020, supplement Eq. 2).
  :class:`LayerwiseRule` (a matrix per layer) and :class:`CircuitRule` (the steady state of
  a circuit of the engine) are its two kinds.
- rules that change the weights themselves, such as plastic circuits whose weights are ODE
  state (:mod:`neurodyn.learning.rules.plastic_circuit`): they override ``step`` and
  ``updates``.
"""


import abc
from typing import Any, ClassVar, Literal

import equinox as eqx
from equinox import AbstractClassVar
import jax
import jax.numpy as jnp
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..optimizer import SGD, apply_updates, clip_norm
from ..losses import output_error


#: the largest integer a rule option may take (widths are bounded lower, where they are declared)
MAX_OPTION_COUNT = 10**9


class RuleOptions(BaseModel):
    """Options every rule accepts. Unknown keys, wrong types and non-finite numbers are
    errors; each rule's ``Options`` adds only the keys it uses."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    #: options a rule takes from elsewhere (name -> where): giving them is an error
    derived: ClassVar[dict[str, str]] = {}

    rule: str = Field(description="the registered rule (default: the table's label)")
    lr: float | None = Field(None, gt=0, description="this rule's learning rate (default: [training] lr)")
    frozen_layers: list[int] = Field(
        default_factory=list, description="layers l (1..L) whose W_l and b_l stay fixed, e.g. [1] (BP with a frozen hidden layer: the control)"
    )

    @field_validator("frozen_layers")
    @classmethod
    def _positive(cls, v):
        if any(l < 1 for l in v) or len(set(v)) != len(v):
            raise ValueError("frozen_layers lists distinct layer numbers 1..L")
        return v

    @model_validator(mode="after")
    def _bounded_counts(self):
        """Every integer option (steps, widths, counts) at most :data:`MAX_OPTION_COUNT`:
        beyond that it overflows the integers of a compiled step or asks for arrays no
        machine holds."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OPTION_COUNT:
                raise ValueError(f"{name} = {value} is too large (at most {MAX_OPTION_COUNT:,})")
        return self

    @model_validator(mode="after")
    def _not_derived(self):
        given = sorted(set(self.model_fields_set) & set(self.derived))
        if given:
            raise ValueError(f"{given[0]} comes from {self.derived[given[0]]}; remove it from the rule's table")
        return self

    @classmethod
    def keys(cls) -> list[str]:
        """The keys a rule table may hold."""
        return [k for k in cls.model_fields if k not in cls.derived]

    @classmethod
    def describe(cls) -> dict[str, str]:
        """``{key: "description (default ...)"}`` for the listing and the docs."""
        out = {}
        for key in cls.keys():
            if key == "rule":
                continue
            f = cls.model_fields[key]
            default = f.default_factory() if f.default_factory is not None else f.default
            out[key] = f"{f.description or ''} (default {default!r})".strip()
        return out

    def check_network(self, network_spec) -> None:
        """Raise ValueError if this rule cannot train the network of ``network_spec``
        (an object with ``sizes``, ``nonlinearities``, ``loss`` and ``biases``, such as the
        ``[network]`` table of an experiment file)."""
        L = len(network_spec.sizes) - 1
        if any(l > L for l in self.frozen_layers):
            raise ValueError(f"frozen_layers names a layer beyond L = {L}")

    def for_restore(self) -> "RuleOptions":
        """Options that build the rule's structure cheaply when its arrays will be restored
        from a checkpoint (e.g. no SSA optimisation)."""
        return self


#: the registry: rule name -> rule class
RULES: dict[str, type["Rule"]] = {}


def register_rule(cls: type["Rule"]) -> type["Rule"]:
    """Class decorator: add a rule to :data:`RULES` under ``cls.name``."""
    if cls.name in RULES:
        raise TypeError(f"rule '{cls.name}' registered twice")
    RULES[cls.name] = cls
    return cls


def get_rule(name: str) -> type["Rule"]:
    """The registered rule called ``name``; rules of installed plugins load on the first
    miss (:mod:`neurodyn.plugins`)."""
    if name not in RULES:
        from ... import plugins

        plugins.load(plugins.RULES)
    if name not in RULES:
        import difflib

        close = difflib.get_close_matches(name, RULES, n=1)
        raise KeyError(f"unknown rule '{name}'" + (f"; did you mean '{close[0]}'?" if close else f" (rules: {', '.join(sorted(RULES))})"))
    return RULES[name]


class Rule(eqx.Module):
    """A credit-assignment rule (module docstring)."""
    #: the family of rules a figure groups this one with (one colour map per family)
    family: ClassVar[str] = "other"

    name: AbstractClassVar[str]
    Options: AbstractClassVar[type[RuleOptions]]
    summary: AbstractClassVar[str]
    min_layers: ClassVar[int] = 1
    #: what an unstable steady state means for this rule (summary.json warnings)
    unstable_note: ClassVar[str] = "its learning signal is the Newton fixed point, which the circuit's own dynamics would not reach"

    @classmethod
    @abc.abstractmethod
    def build(cls, network, options: RuleOptions, *, seed: int, lr: float) -> tuple["Rule", dict]:
        """The rule for ``network`` (its initial weights) with ``options``; ``lr`` is the
        experiment's learning rate. Returns ``(rule, info)``, ``info`` a JSON-able record of
        what was drawn (feedback, SSA result, time constants)."""

    @abc.abstractmethod
    def updates(self, network, x, t, loss: str, opt: SGD | None = None) -> tuple[tuple, tuple]:
        """Per-layer ``(dW, db)`` this rule would apply to ``network`` for the mini-batch
        ``x`` (batch, d_0), ``t`` (batch, d_L), summed over the batch, per unit learning
        rate; ``opt`` carries the clipping (None: no clipping, as for angle metrics)."""

    def step(self, network, x, t, loss: str, opt: SGD) -> tuple[Any, "Rule"]:
        """One update of the network (and of the rule's own parameters) on a mini-batch:
        ``(network, rule)``. Default: plain SGD on :meth:`updates`."""
        return apply_updates(network, self.updates(network, x, t, loss, opt), opt), self

    def feedback_matrices(self, network) -> list | None:
        """``[(W_l, B_l), ...]`` of the S24 loops this rule relies on, for stability metrics."""
        return None

    def sample_signals(self, network, x, t, loss: str) -> tuple | None:
        """Where every sample's update of ``W_l`` is ``delta_l h_{l-1}^T`` (before clipping):
        the ``delta_l`` of all samples at once, ``(delta_1, ..., delta_L)`` each (batch,
        d_l); else None (per-sample metrics then build each sample's update)."""
        return None

    def learned_arrays(self) -> dict:
        """The parameters this rule trains itself (``{name: array}``, e.g. learned inverses)."""
        return {}

    def steady_state(self, network, x, t, loss: str) -> dict | None:
        """For rules whose signal is a circuit's steady state or cycle: ``{"residual",
        "converged", "stable"}`` on the samples (scalars), else None."""
        return None

    def target_errors(self, network, x, t, loss: str) -> dict | None:
        """For rules that propagate targets down a feedback path (discrete, or the path a
        circuit approximates): ``{"e_tp", "e_rec", "e_approx"}``, mean norms per hidden layer
        on the batch (:func:`~neurodyn.learning.rules.targets.target_errors`), else None."""
        return None


class SignalRule(Rule):
    """Rules that give per-layer learning signals ``delta_1..delta_L``."""

    @abc.abstractmethod
    def signals(self, network, fwd, delta_L) -> tuple:
        """``(delta_1, ..., delta_L)`` (``delta_L`` as given), each with the batch axes of
        ``delta_L``."""

    def updates(self, network, x, t, loss, opt=None):
        """``(sum_b delta_l h_{l-1}^T, sum_b delta_l)``; the hidden signals clipped to norm
        ``opt.clip``, the output error only if ``opt.clip_output`` (7.7.1)."""
        fwd = network.forward(x)
        return outer_updates(fwd, clipped(self.signals(network, fwd, output_error(loss, network, fwd, t)), opt))

    def sample_signals(self, network, x, t, loss):
        fwd = network.forward(x)
        return self.signals(network, fwd, output_error(loss, network, fwd, t))


def clipped(deltas, opt: SGD | None) -> list:
    """Signals ``delta_1..delta_L`` with each sample's hidden signal clipped to norm
    ``opt.clip`` and the output error only if ``opt.clip_output`` (7.7.1)."""
    clip = None if opt is None else opt.clip
    *hidden, delta_L = deltas
    return [clip_norm(d, clip) for d in hidden] + [clip_norm(delta_L, clip if opt is not None and opt.clip_output else None)]


def outer_updates(fwd, deltas) -> tuple[tuple, tuple]:
    """``(sum_b delta_l h_{l-1}^T, sum_b delta_l)`` for a batch (leading axis)."""
    return tuple(d.T @ h for d, h in zip(deltas, fwd.h[:-1])), tuple(jnp.sum(d, axis=0) for d in deltas)


class LayerwiseRule(SignalRule):
    """Rules of the form ``delta_{l-1} = (M_l delta_l) * s'(a_{l-1})``; subclasses give ``M_l``."""

    @abc.abstractmethod
    def matrix(self, network, l: int):
        """``M_l`` (``d_{l-1} x d_l``) for layer ``l = 2..L``."""

    def propagate(self, network, l: int, delta):
        """``delta_l M_l^T`` for the errors ``delta_l`` (a row per sample). Rules whose
        ``M_l`` is a small inverse times a wide matrix override this to solve for the
        batch's errors instead of forming ``M_l`` (one right-hand side per sample, not
        ``d_{l-1}`` of them)."""
        return delta @ self.matrix(network, l).T

    def signals(self, network, fwd, delta_L):
        deltas = [delta_L]
        for l in range(network.L, 1, -1):
            deltas.append(self.propagate(network, l, deltas[-1]) * network.s[l - 2].deriv(fwd.a[l - 2]))
        return tuple(reversed(deltas))


def ndi_matrix(W, B, alpha):
    """``B (W B - alpha I)^{-1}``, or the push-through ``(B W - alpha I)^{-1} B`` when
    ``d_l > d_{l-1}`` (Algorithm 5 picks the smaller inverse); the same matrix."""
    d_out, d_in = W.shape
    if d_out > d_in:
        return jnp.linalg.solve(B @ W - alpha * jnp.eye(d_in, dtype=W.dtype), B)
    return jnp.linalg.solve((W @ B - alpha * jnp.eye(d_out, dtype=W.dtype)).T, B.T).T


def ndi_apply(W, B, alpha, delta):
    """``delta @ ndi_matrix(W, B, alpha).T`` for errors ``delta`` (rows, any leading axes)
    without forming the matrix: ``B u`` with ``(W B - alpha I) u = delta``, or
    ``(B W - alpha I)^{-1} B delta`` when ``d_l > d_{l-1}``."""
    d_out, d_in = W.shape
    rows = delta.reshape(-1, d_out).T
    if d_out > d_in:
        out = jnp.linalg.solve(B @ W - alpha * jnp.eye(d_in, dtype=W.dtype), B @ rows)
    else:
        out = B @ jnp.linalg.solve(W @ B - alpha * jnp.eye(d_out, dtype=W.dtype), rows)
    return out.T.reshape(*delta.shape[:-1], B.shape[0])


class CircuitRule(SignalRule):
    """Rules whose hidden errors are the steady state of a circuit of the engine, found by
    ``solve_fixed_point`` (``method``: ``equilibrium`` = Newton on the reduced equation,
    ``ode`` = integrate then polish, ``continuation`` = pseudo-transient continuation then
    polish). Subclasses give ``circuit(network)`` and may map a circuit state to a signal in
    ``to_signal``; they hold static fields ``controller`` (``nonlinear | linearized``) and
    ``method`` (``equilibrium | ode | continuation``)."""
    family = "dynamic inversion"

    @abc.abstractmethod
    def circuit(self, network):
        """The circuit whose steady state gives the hidden signals of ``network``."""

    def to_signal(self, i, delta, network, fwd):
        """The learning signal of hidden layer ``i + 1`` from the circuit's ``delta_i``."""
        return delta

    def circuit_inputs(self, network, fwd, delta_L) -> dict:
        inputs = {"delta_out": delta_L}
        if self.controller == "linearized":
            inputs.update({f"a_{i}": fwd.a[i] for i in range(network.L - 1)})
        return inputs

    def solve(self, network, fwd, delta_L):
        """Steady state for a batch (leading axis): ``(state, residual, converged)``."""
        from ...core.equilibrium import solve_fixed_point

        return solve_fixed_point(self.circuit(network), self.circuit_inputs(network, fwd, delta_L), method=self.method)

    def stable_fraction(self, network, fwd, delta_L, state):
        """Fraction of samples whose fixed point has a Jacobian with negative spectral abscissa
        (the equilibrium path finds unstable fixed points too; the dynamics would not)."""
        circuit = self.circuit(network)
        eigs = jax.vmap(circuit.eigenvalues)(state, self.circuit_inputs(network, fwd, delta_L))
        return jnp.mean(jnp.max(jnp.real(eigs), axis=-1) < 0)

    def signals(self, network, fwd, delta_L):
        batched = delta_L.ndim == 2
        if not batched:
            delta_L, fwd = delta_L[None], jax.tree_util.tree_map(lambda x: x[None], fwd)
        state, _, _ = self.solve(network, fwd, delta_L)
        hidden = tuple(self.to_signal(i, state[f"delta_{i}"], network, fwd) for i in range(network.L - 1))
        out = hidden + (delta_L,)
        return out if batched else tuple(x[0] for x in out)

    def steady_state(self, network, x, t, loss):
        fwd = network.forward(x)
        delta_L = output_error(loss, network, fwd, t)
        state, residual, converged = self.solve(network, fwd, delta_L)
        return {"residual": jnp.max(residual), "converged": jnp.mean(converged), "stable": self.stable_fraction(network, fwd, delta_L, state)}


class CircuitRuleOptions(RuleOptions):
    """Options of the rules whose signal is a circuit's steady state (DI, SLDI)."""

    controller: Literal["nonlinear", "linearized"] = Field("nonlinear", description="nonlinear (Algorithm 1) or linearized (Algorithm 2) controller")
    method: Literal["equilibrium", "ode", "continuation"] = Field(
        "equilibrium", description="steady state by Newton on the controllers, by integration then Newton, or by pseudo-transient continuation then Newton"
    )


def make_rule(name: str, network, *, seed: int = 0, lr: float = 1.0, **options) -> tuple[Rule, dict]:
    """Build the registered rule ``name`` for ``network`` with ``options`` (keys of its
    ``Options``): ``(rule, info)``. For scripts and tests; the harness does the same."""
    cls = get_rule(name)
    return cls.build(network, cls.Options(rule=name, **options), seed=seed, lr=lr)
