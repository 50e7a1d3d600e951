"""Segregated-dendrite mixture model of target propagation (thesis Meulemans 2019,
sections 6.3-6.8, eqs 6.1-6.42).

Each layer's rate is a convex mixture of its basal (forward) and apical (feedback)
dendritic rates (eq. 6.1):

    tau dh_i/dt = -h_i + (1 - mu) f_i(h_{i-1}) + mu g_i(h_{i+1}),   i = 1..L,

with ``f_i(h) = s_i(W_i h)`` (6.2), ``h_0 = x`` and the virtual teaching layer
``g_L = h_L - eta_hat e_L`` (settled reading of (6.3)/(6.10)): ``e_L = h_L - t`` is the
output error of the plain forward pass (squared loss, (6.11)), held fixed, so that
(6.12) ``h_L^* = f_L(h_{L-1}^*) - r eta_hat e_L`` (``r = mu/(1-mu)``) holds exactly and
``eta_hat = 0`` makes the forward pass the fixed point.

``g_i`` (i < L) is the exact inverse ``f_{i+1}^{-1}(h) = W_{i+1}^{-1} s_{i+1}^{-1}(h)``
(6.4; needs ``d_1 = ... = d_L`` and invertible ``s_2..s_L``) or the learned
``g_i(h) = Q_i t_i(h)`` (6.23).

Phases: ``"single"`` (the target is always on; W by (6.17), Q by (6.26)) or ``"two"``
(6.29-6.37): a piecewise-constant phase signal ``p(t)`` (0 free, 1 learning;
:func:`phase_schedule`: ``cycles`` x (free, learning), then free again) scales the
target, ``eta_hat p(t)``. In the two-phase circuit the free-phase displacement
``d_i^f = h_i - f_i(h_{i-1})`` is held in buffer state variables ``d_free_i``, which
track the live ``d_i`` during the free phase and are frozen during the learning phase:

    tau d(d_free_i)/dt = (1 - p(t)) (h_i - f_i(h_{i-1}) - d_free_i).

The learning phase then reads the DTP-like signal ``d_i^f - d_i^l`` (6.35 as we read it). The buffers start at 0, ``h_i`` at the forward pass. ``closed_form``, ``checks``
and ``block_matrix`` (by default) describe the circuit at t = 0, i.e. in the free phase,
which is also the phase after the last cycle: analyse a two-phase run that ends there.

The first-order predictions (6.15) and our first-order recursion for ``d_i`` are not
exact, so they are reported by :meth:`DendriticMixture.first_order_errors`, not among the
pass/fail ``checks`` (which hold to round-off: (6.12)).
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field, field_validator

from ..core import nonlinearities, schedules
from ..core.circuit import ArraySpec, Circuit, KindInfo, register
from ..core.layers import LayerSizes
from ..core.nonlinearities import Nonlinearity
from ._common import TARGET_INPUT_DOCS, PhaseOptions, check_names, forward_specs, free_learning_cycles


class InverseOf(eqx.Module):
    """``t = s^{-1}`` as a transfer function (the choice ``t_i = s_{i+1}^{-1}`` of section 6.5)."""

    s: Nonlinearity

    def __call__(self, y):
        return self.s.inverse(y)

    def deriv(self, y):
        return 1.0 / self.s.deriv(self.s.inverse(y))

    def __str__(self) -> str:
        return f"inverse of {self.s}"


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _norm_ratio(x, ref, fallback):
    """``||x - ref|| / ||ref||``, or ``/ ||fallback||`` where ``ref`` is zero."""
    n = jnp.linalg.norm(ref)
    return jnp.linalg.norm(x - ref) / jnp.where(n > 0, n, jnp.linalg.norm(fallback))


class MixtureOptions(PhaseOptions):
    """``[circuit]`` options of ``dendritic_mixture``."""

    nonlinearity: str | list[str] = Field("tanh", description="s_1..s_L: a name or a list of L names")
    inverse_nonlinearity: str | list[str] = Field("linear", description="t_1..t_{L-1} of learned inverses: a name, 'inverse' (s_{i+1}^{-1}), or a list")
    mu: float = Field(0.2, gt=0.0, lt=0.5, description="mixing coefficient in (0, 0.5)")
    tau: float = Field(1.0, gt=0.0, description="neural time constant")
    eta_hat: float = Field(0.1, ge=0.0, description="output target step (6.10)")
    inverses: Literal["exact", "learned"] = "exact"
    phases: Literal["single", "two"] = "single"
    eta: float | list[float] = Field(1.0, description="forward learning rates eta_i (one, or a list of L)")
    eta_inv: float | list[float] = Field(1.0, description="inverse learning rates eta_i^inv (one, or a list of L-1)")
    weight_decay: float = Field(0.0, ge=0.0, description="lambda of (6.24)-(6.26)")

    _names = field_validator("nonlinearity")(classmethod(lambda cls, v: check_names(v)))
    _inverse_names = field_validator("inverse_nonlinearity")(classmethod(lambda cls, v: check_names(v, "inverse")))


@register
class DendriticMixture(LayerSizes, Circuit):
    """Mixture model (6.1); state ``h_1..h_L`` (plus ``d_free_1..d_free_L`` with two phases)."""

    kind = "dendritic_mixture"

    W: tuple  # W_1..W_L, W_i is d_i x d_{i-1}
    Q: tuple  # Q_1..Q_{L-1}, Q_i is d_i x d_{i+1} (learned inverses; () for exact)
    s: tuple  # s_1..s_L (Nonlinearity)
    t: tuple  # t_1..t_{L-1} (learned inverses)
    # mu, tau, eta_hat are arrays (not static), so that sweeps over them compile once
    mu: jax.Array
    tau: jax.Array
    eta_hat: jax.Array
    #: whether eta_hat != 0 at construction (decides, statically, whether a closed form exists)
    teaching: bool = eqx.field(static=True)
    inverses: str = eqx.field(static=True)
    schedule: schedules.Schedule | None  # phase p(t): 0 free, 1 learning; None = single phase
    eta: tuple = eqx.field(static=True)  # eta_1..eta_L (forward rates)
    eta_inv: tuple = eqx.field(static=True)  # eta_1^inv..eta_{L-1}^inv
    decay: float = eqx.field(static=True)  # lambda of (6.24)-(6.26)

    def __init__(self, W, Q=(), s=(), t=(), mu=0.2, tau=1.0, eta_hat=0.0, inverses="exact", schedule=None, eta=None, eta_inv=None, decay=0.0):
        """``W``, ``Q``: tuples of arrays; ``s``, ``t``: tuples of transfer functions (``s``
        defaults to tanh); ``schedule``: the phase signal ``p(t)`` of the two-phase circuit
        (:func:`phase_schedule`), None for one phase; ``eta`` (L), ``eta_inv`` (L-1): rates
        (default 1); ``decay``: lambda."""
        self.W = tuple(W)
        L = len(self.W)
        self.Q = tuple(Q)
        self.s = tuple(s) if s else tuple(nonlinearities.parse("tanh") for _ in range(L))
        self.t = tuple(t)
        for name, v, low, high in (("mu", mu, 0.0, 0.5), ("tau", tau, 0.0, None), ("eta_hat", eta_hat, None, None)):
            if _is_concrete(v):
                v = float(v)
                if (low is not None and not v > low) or (high is not None and not v < high) or (name == "eta_hat" and not v >= 0):
                    rule = {"mu": "lie in (0, 0.5) (eq. 6.1)", "tau": "be positive", "eta_hat": "be >= 0"}[name]
                    raise ValueError(f"{name} must {rule}, got {v}")
        # in the weights' precision, so that a float32 circuit stays float32
        dtype = jnp.result_type(*self.W) if self.W else jnp.result_type(float)
        self.mu, self.tau, self.eta_hat = (jnp.asarray(v, dtype=dtype) for v in (mu, tau, eta_hat))
        self.teaching = not (_is_concrete(eta_hat) and float(eta_hat) == 0.0)
        self.inverses = inverses
        self.schedule = schedule
        self.eta = tuple(float(e) for e in eta) if eta is not None else (1.0,) * L
        self.eta_inv = tuple(float(e) for e in eta_inv) if eta_inv is not None else (1.0,) * (L - 1)
        self.decay = float(decay)

    def __check_init__(self):
        L, d = len(self.W), self.sizes
        if len(self.s) != L:
            raise ValueError(f"nonlinearity: one s_i per layer 1..{L} expected, got {len(self.s)}")
        for i in range(1, L):
            if self.W[i].shape[1] != self.W[i - 1].shape[0]:
                raise ValueError(f"W{i + 1} has shape {self.W[i].shape}; expected ({self.W[i].shape[0]}, {self.W[i - 1].shape[0]})")
        if self.inverses == "exact":
            if self.Q:
                raise ValueError("Q arrays are only used with inverses = \"learned\"")
            _check_exact(d, self.s)
        elif self.inverses == "learned":
            if len(self.Q) != L - 1 or len(self.t) != L - 1:
                raise ValueError(f"inverses = \"learned\" needs Q1..Q{L - 1} and t_1..t_{L - 1}")
            for i in range(1, L):
                if tuple(self.Q[i - 1].shape) != (d[i], d[i + 1]):
                    raise ValueError(f"Q{i} has shape {tuple(self.Q[i - 1].shape)}; expected ({d[i]}, {d[i + 1]})")
        else:
            raise ValueError(f"inverses must be \"exact\" or \"learned\", got '{self.inverses}'")
        if len(self.eta) != L:
            raise ValueError(f"eta: one rate per layer 1..{L} expected, got {len(self.eta)}")
        if len(self.eta_inv) != L - 1:
            raise ValueError(f"eta_inv: one rate per Q_1..Q_{L - 1} expected, got {len(self.eta_inv)}")

    # ---- the equations -----------------------------------------------------------
    @property
    def r(self) -> jax.Array:
        """``mu / (1 - mu)``, the scale of every step down the hierarchy (6.12-6.16)."""
        return self.mu / (1.0 - self.mu)

    @property
    def two_phase(self) -> bool:
        return self.schedule is not None

    def phase(self, t):
        """``p(t)``: 1 in the learning phase (target on), 0 in the free phase (6.29)."""
        return 1.0 if self.schedule is None else self.schedule(t)

    def f(self, i, h_prev):
        """``f_i(h_{i-1}) = s_i(W_i h_{i-1})`` (6.2)."""
        return self.s[i - 1](self.W[i - 1] @ h_prev)

    def J_f(self, i, h_prev):
        """``J_{f_i} = D_{s_i} W_i`` at ``h_{i-1}`` (6.41)."""
        return self.s[i - 1].deriv(self.W[i - 1] @ h_prev)[:, None] * self.W[i - 1]

    def g(self, i, h_next):
        """Apical rate ``g_i(h_{i+1})``, i < L: ``W_{i+1}^{-1} s_{i+1}^{-1}(h)`` (6.4) or ``Q_i t_i(h)`` (6.23)."""
        if self.inverses == "exact":
            return jnp.linalg.solve(self.W[i], self.s[i].inverse(h_next))
        return self.Q[i - 1] @ self.t[i - 1](h_next)

    def J_g(self, i, h_next):
        """Jacobian of ``g_i`` at ``h_{i+1}``: ``J_{f_{i+1}}^{-1}`` at the preimage ``g_i(h_{i+1})``
        (6.42, inverse function theorem) or ``Q_i diag(t_i'(h_{i+1}))``."""
        if self.inverses == "exact":
            inv_deriv = 1.0 / self.s[i].deriv(self.s[i].inverse(h_next))
            return jnp.linalg.solve(self.W[i], jnp.diag(inv_deriv))
        return self.Q[i - 1] * self.t[i - 1].deriv(h_next)[None, :]

    def forward(self, x):
        """The plain forward pass ``[h_0, h_1, ..., h_L]`` (6.2)."""
        hs = [x]
        for i in range(1, self.L + 1):
            hs.append(self.f(i, hs[-1]))
        return hs

    def output_error(self, inputs):
        """``e_L = dL/dh_L = h_L - t`` at the plain forward pass (6.11, squared loss), held fixed."""
        return self.forward(inputs["x"])[-1] - inputs["target"]

    def _layers(self, state, inputs):
        return [inputs["x"]] + [state[f"h_{i}"] for i in range(1, self.L + 1)]

    def displacements(self, state, inputs):
        """``d_i = h_i - f_i(h_{i-1})``, i = 1..L, as a list."""
        h = self._layers(state, inputs)
        return [h[i] - self.f(i, h[i - 1]) for i in range(1, self.L + 1)]

    def vector_field(self, t, state, inputs):
        """Eq. 6.1 with ``g_L = h_L - eta_hat p(t) e_L`` (6.10, settled reading), over tau;
        with two phases also the free-phase buffers ``d_free_i``."""
        h = self._layers(state, inputs)
        p = self.phase(t)
        e = self.output_error(inputs)
        out = {}
        for i in range(1, self.L + 1):
            apical = h[i] - self.eta_hat * p * e if i == self.L else self.g(i, h[i + 1])
            out[f"h_{i}"] = (-h[i] + (1.0 - self.mu) * self.f(i, h[i - 1]) + self.mu * apical) / self.tau
        if self.two_phase:
            for i in range(1, self.L + 1):
                d = h[i] - self.f(i, h[i - 1])
                out[f"d_free_{i}"] = (1.0 - p) * (d - state[f"d_free_{i}"]) / self.tau
        return out

    def state_shapes(self):
        shapes = {f"h_{i}": (self.sizes[i],) for i in range(1, self.L + 1)}
        if self.two_phase:
            shapes.update({f"d_free_{i}": (self.sizes[i],) for i in range(1, self.L + 1)})
        return shapes

    def input_shapes(self):
        return {"x": (self.sizes[0],), "target": (self.sizes[-1],)}

    def init_state(self, inputs):
        """Start at the forward pass (the free-phase rest of exact inverses), buffers at 0."""
        hs = self.forward(inputs["x"])
        state = {f"h_{i}": hs[i] for i in range(1, self.L + 1)}
        if self.two_phase:
            state.update({f"d_free_{i}": jnp.zeros_like(hs[i]) for i in range(1, self.L + 1)})
        return state

    def jump_times(self):
        return schedules.jump_times(self.schedule)

    def closed_form(self, inputs):
        """Without a target at t = 0 (``eta_hat = 0``, or the free phase of the two-phase
        circuit) and with exact inverses, the fixed point is the forward pass (6.9 and
        below): every ``d_i = 0``."""
        if self.inverses != "exact" or (self.teaching and not self.two_phase):
            return None
        hs = self.forward(inputs["x"])
        state = {f"h_{i}": hs[i] for i in range(1, self.L + 1)}
        if self.two_phase:
            with jax.ensure_compile_time_eval():
                p0 = float(self.phase(0.0))
            if self.teaching and p0 != 0.0:
                return None
            state.update({f"d_free_{i}": jnp.zeros_like(hs[i]) for i in range(1, self.L + 1)})
        return state

    # ---- theory checks -----------------------------------------------------------
    def _eta_hat_at(self, t):
        return self.eta_hat * self.phase(t)

    def checks(self, state, inputs):
        """(6.12), exact: ``||d_L + r eta_hat e_L|| / ||r eta_hat e_L||`` (over ``||h_L||``
        when there is no target at t = 0)."""
        d_L = self.displacements(state, inputs)[-1]
        pred = -self.r * self._eta_hat_at(0.0) * self.output_error(inputs)
        return {"eq_6_12_relative_error": _norm_ratio(d_L, pred, state[f"h_{self.L}"])}

    def predicted_displacements(self, state, inputs, t=0.0):
        """(6.15)/(6.16), exact inverses: ``d_i ~ -eta_hat r^{L+1-i} J_{f_{i+1}}^{-1} ... J_{f_L}^{-1} e_L``
        with the Jacobians at the fixed point ``state``; a list over i = 1..L."""
        h = self._layers(state, inputs)
        v = -self._eta_hat_at(t) * self.r * self.output_error(inputs)
        out = [v]
        for k in range(self.L, 1, -1):
            v = self.r * jnp.linalg.solve(self.J_f(k, h[k - 1]), v)
            out.append(v)
        return out[::-1]

    def recursion_predictions(self, state, inputs, t=0.0):
        """Our first-order recursion (replacing 6.20-6.22):
        ``d_i ~ r rho_i + r J_{g_i} d_{i+1}`` with ``rho_i = g_i(f_{i+1}(h_i)) - h_i`` and
        ``J_{g_i}`` at ``f_{i+1}(h_i)`` (6.7), from the measured ``d_{i+1}``;
        ``d_L = -r eta_hat e_L``. A list over i = 1..L."""
        h = self._layers(state, inputs)
        d = self.displacements(state, inputs)
        out = []
        for i in range(1, self.L):
            fwd = self.f(i + 1, h[i])
            rho = self.g(i, fwd) - h[i]
            out.append(self.r * rho + self.r * self.J_g(i, fwd) @ d[i])
        out.append(-self.r * self._eta_hat_at(t) * self.output_error(inputs))
        return out

    def first_order_errors(self, state, inputs):
        """Relative errors of the first-order predictions at a fixed point (not exact, so
        not among ``checks``): ``eq_6_15_relative_error_h{i}`` (exact inverses) and
        ``recursion_relative_error_h{i}``, i = 1..L-1. They vanish like ``eta_hat`` (6.15)
        or like the squared displacement (recursion)."""
        d = self.displacements(state, inputs)
        h = self._layers(state, inputs)
        out = {}
        if self.inverses == "exact":
            for i, p in enumerate(self.predicted_displacements(state, inputs)[:-1], start=1):
                out[f"eq_6_15_relative_error_h{i}"] = _norm_ratio(d[i - 1], p, h[i])
        for i, p in enumerate(self.recursion_predictions(state, inputs)[:-1], start=1):
            out[f"recursion_relative_error_h{i}"] = _norm_ratio(d[i - 1], p, h[i])
        return out

    #: reported by ``neurodyn simulate`` under ``approximations`` (not pass/fail)
    approximations = first_order_errors

    # ---- linearisation -----------------------------------------------------------
    def block_matrix(self, state, inputs, t=0.0):
        """The block-tridiagonal Jacobian (6.40), over tau: ``-I`` on the diagonal,
        ``(1-mu) J_{f_i}`` below, ``mu J_{g_i}`` above (``J_{f_{i+1}}^{-1}`` for exact
        inverses, 6.42). The teaching layer ``g_L = h_L - eta_hat e_L`` depends on ``h_L``,
        so the last diagonal block is ``-(1-mu) I``. With two phases the buffers add the
        rows ``(1-p)/tau [ -J_{f_i} | I | -I ]`` (columns ``h_{i-1}``, ``h_i``, ``d_free_i``)."""
        h = self._layers(state, inputs)
        d = self.sizes[1:]
        off = np.concatenate([[0], np.cumsum(d)])
        n = int(off[-1])
        N = 2 * n if self.two_phase else n
        dtype = jnp.result_type(self.W[0].dtype, h[1].dtype)
        J = jnp.zeros((N, N), dtype)

        def put(r0, c0, block):
            nonlocal J
            J = J.at[r0 : r0 + block.shape[0], c0 : c0 + block.shape[1]].set(block)

        for i in range(1, self.L + 1):
            a = off[i - 1]
            put(a, a, -(1.0 - self.mu if i == self.L else 1.0) * jnp.eye(d[i - 1], dtype=dtype) / self.tau)
            if i >= 2:
                put(a, off[i - 2], (1.0 - self.mu) * self.J_f(i, h[i - 1]) / self.tau)
            if i < self.L:
                put(a, off[i], self.mu * self.J_g(i, h[i + 1]) / self.tau)
        if self.two_phase:
            c = (1.0 - self.phase(t)) / self.tau
            for i in range(1, self.L + 1):
                a, eye = n + off[i - 1], jnp.eye(d[i - 1], dtype=dtype)
                put(a, off[i - 1], c * eye)
                put(a, a, -c * eye)
                if i >= 2:
                    put(a, off[i - 2], -c * self.J_f(i, h[i - 1]))
        return J

    # ---- plasticity ----------------------------------------------------------------
    def plasticity(self, t, state, inputs):
        """Local weight dynamics (before ``1/tau_w`` and the plasticity gate).

        Single phase: ``dW_i/dt = -eta_i D_{s_i} (f_i(h_{i-1}) - h_i) h_{i-1}^T`` (6.17);
        ``dQ_i/dt = -eta_i^inv (g_i(h_{i+1}) - h_i) t_i(h_{i+1})^T - eta_i^inv lambda Q_i`` (6.26).
        Two phases: ``dW_i/dt = -p(t) eta_i D_{s_i} (d_free_i - d_i) h_{i-1}^T`` (6.35 read
        with ``d_i``; learning phase only) and ``dQ_i/dt`` as (6.26)
        times ``1 - p(t)`` (6.37 with ``eta_inv`` in the decay; free phase only). ``D_{s_i}``
        is taken at ``W_i h_{i-1}`` with the live (learning-phase) rates.
        """
        h = self._layers(state, inputs)
        d = self.displacements(state, inputs)
        p = self.phase(t)
        eta, eta_inv = self.eta, self.eta_inv
        out = {}
        for i in range(1, self.L + 1):
            D = self.s[i - 1].deriv(self.W[i - 1] @ h[i - 1])
            if self.two_phase:
                signal = p * (state[f"d_free_{i}"] - d[i - 1])  # d_i^f - d_i^l
            else:
                signal = -d[i - 1]  # f_i(h_{i-1}) - h_i
            out[f"W{i}"] = -eta[i - 1] * jnp.outer(D * signal, h[i - 1])
        if self.inverses == "learned":
            gate = (1.0 - p) if self.two_phase else 1.0
            for i in range(1, self.L):
                rec = self.g(i, h[i + 1]) - h[i]
                dQ = -eta_inv[i - 1] * (jnp.outer(rec, self.t[i - 1](h[i + 1])) + self.decay * self.Q[i - 1])
                out[f"Q{i}"] = gate * dQ
        return out

    # ---- model files -------------------------------------------------------------
    Options = MixtureOptions

    @classmethod
    def array_specs(cls, sizes, options):
        L = len(sizes) - 1
        s = _layer_list(options.nonlinearity, L, "nonlinearity", nonlinearities.parse)
        if options.inverses == "exact":
            _check_exact(sizes, s)
        specs = forward_specs(sizes)
        if options.inverses == "learned":
            specs.update({f"Q{i}": ArraySpec((sizes[i], sizes[i + 1]), doc=f"apical weights Q_{i} of g_{i} = Q_{i} t_{i}(h_{i + 1})") for i in range(1, L)})
        specs["x"] = ArraySpec((sizes[0],), role="input", doc="input h_0")
        specs["target"] = ArraySpec((sizes[-1],), role="input", doc="label t (squared loss)")
        return specs

    @classmethod
    def from_arrays(cls, sizes, options, arrays):
        L = len(sizes) - 1
        s = _layer_list(options.nonlinearity, L, "nonlinearity", nonlinearities.parse)
        W = tuple(jnp.asarray(arrays[f"W{l}"]) for l in range(1, L + 1))
        Q, t = (), ()
        if options.inverses == "exact":
            for l in range(2, L + 1):
                if np.linalg.cond(np.asarray(W[l - 1])) > 1e12:
                    raise ValueError(f"W{l} is singular, but inverses = \"exact\" uses W{l}^-1; give an invertible W{l} (e.g. init = \"orthogonal\") or use inverses = \"learned\"")
        else:
            Q = tuple(jnp.asarray(arrays[f"Q{i}"]) for i in range(1, L))
            t = tuple(_inverse_nonlinearity(n, s[i]) for i, n in enumerate(_layer_list(options.inverse_nonlinearity, L - 1, "inverse_nonlinearity", str), start=1))
        schedule = None
        if options.phases == "two":
            schedule = phase_schedule(options.free_duration, options.learning_duration, options.cycles)
        eta = tuple(float(e) for e in _layer_list(options.eta, L, "eta", float))
        eta_inv = tuple(float(e) for e in _layer_list(options.eta_inv, L - 1, "eta_inv", float))
        return cls(
            W=W, Q=Q, s=s, t=t, mu=float(options.mu), tau=float(options.tau), eta_hat=float(options.eta_hat),
            inverses=options.inverses, schedule=schedule, eta=eta, eta_inv=eta_inv, decay=float(options.weight_decay),
        )

    @classmethod
    def info(cls):
        return KindInfo(
            kind=cls.kind,
            summary="segregated-dendrite mixture model of target propagation (thesis eqs 6.1-6.42)",
            options={
                "nonlinearity": "s_i: a name or a list of L names (default tanh)",
                "inverse_nonlinearity": "t_i of learned inverses: a name, 'inverse' (= s_{i+1}^-1) or a list of L-1 (default linear)",
                "mu": "mixing coefficient in (0, 0.5) (default 0.2)",
                "tau": "time constant (default 1)",
                "eta_hat": "output target step, g_L = h_L - eta_hat e_L (default 0.1)",
                "inverses": "exact (W_{i+1}^-1 s_{i+1}^-1; d_1 = ... = d_L) | learned (Q_i t_i) (default exact)",
                "phases": "single | two (free then learning phases; default single)",
                "free_duration, learning_duration, cycles": "two phases: the phase schedule (default 50, 50, 1)",
                "eta, eta_inv, weight_decay": "plasticity rates eta_i, eta_i^inv and lambda (defaults 1, 1, 0)",
            },
            arrays={
                "W1..WL": "forward (basal) weights, W_i is d_i x d_{i-1}",
                "Q1..Q{L-1}": "learned inverses only: apical weights, Q_i is d_i x d_{i+1}",
                **TARGET_INPUT_DOCS,
            },
            state="h_1..h_L (two phases: also d_free_1..d_free_L)",
        )


#: ``p(t)`` of the two-phase model (6.29-6.37): free, learning, ..., then free again
phase_schedule = free_learning_cycles


def _layer_list(spec, n, key, conv):
    items = [spec] * n if not isinstance(spec, list) else list(spec)
    if len(items) != n:
        raise ValueError(f"{key} lists one entry per layer: expected {n}, got {len(items)}")
    return tuple(conv(x) for x in items)


def _inverse_nonlinearity(name, s_next):
    if name == "inverse":
        if not s_next.invertible:
            raise ValueError(f"inverse_nonlinearity = 'inverse' needs an invertible s ({s_next} has no inverse)")
        return InverseOf(s_next)
    return nonlinearities.parse(name)


def _check_exact(sizes, s):
    """Exact inverses (6.4) need square W_2..W_L and invertible s_2..s_L."""
    if len(set(sizes[1:])) > 1:
        raise ValueError(f"inverses = \"exact\" needs equal sizes d_1 = ... = d_L (got {list(sizes)}); use inverses = \"learned\"")
    for i, si in enumerate(s[1:], start=2):
        if not si.invertible:
            raise ValueError(f"inverses = \"exact\" needs an invertible s_{i} ({si} has none); use tanh, linear or leaky_relu:<slope>")
