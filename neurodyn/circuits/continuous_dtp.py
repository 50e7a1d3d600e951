"""Continuous DTP with a gating signal gamma (Bengio 2020, section 10.2).

Every layer runs the same local circuit all the time; ``gamma_l(t)`` (1 = feedforward
phase, 0 = feedback phase, anything in between) decides what it computes. With
``f_l(x) = W_l sigma(x)`` and ``g_l(y) = Omega_l sigma(y)`` (54), ``a_0 = x``:

    tau_L     = a_L - (1 - gamma_L) beta e_L,      e_L = a_L - t     (output target)
    tau_{l-1} = gamma_l a_{l-1} + (1 - gamma_l) g_l(u_l)             (49)
    h_l       = f_l(gamma_l a_{l-1} + (1 - gamma_l) g_l(u_l)) = f_l(tau_{l-1})   (46)

(``h_1 = f_1(x)``: layer 1 has no decoder.) The discrete updates (47), (48) read in
continuous time (our reading)

    du_l/dt = tau_l - h_l   while gamma_l < 1,   tau_l - u_l   while gamma_l = 1    (48)
    da_l/dt = (h_l - a_l) / tau_a   while gamma_l = 1, held otherwise                (47)
    dn_{l-1}/dt = (sigma(a_{l-1}) / ||sigma(a_{l-1})||^2 - n_{l-1}) / tau_a  while gamma_l = 1

so ``a_l`` buffers the last feedforward pass and ``n_{l-1}`` is the normalisation of (43)
frozen at the end of the feedforward phase. ``h`` and ``tau`` are instantaneous functions
of the state. Local rules (``plasticity``):

    dW_l/dt     = lr_w 1[gamma<1] (d/dt y_l) n_{l-1}^T                             (50)
    dOmega_l/dt = lr_omega (tau_{l-1} - g_l(u_l)) sigma(u_l)^T         (51), or
                  lr_omega (a_{l-1}   - g_l(u_l)) sigma(u_l)^T          (52)

with ``y_l = tau_l - a_l``, or with the layer scale factor of (43)
``y_l = ||tau_L - a_L||^2 / ||tau_l - a_l||^2 (tau_l - a_l)``: because the rule integrates
a time derivative, the total change telescopes (Proposition 5, eqs 58-59) to
``Delta W_l = lr_w y_l(T) n_{l-1}^T``, i.e. the factor is applied once, with its value at
the end of the feedback phase (our reading, not the printed (53)). The gate of ``W_l`` is
the gamma of ``tau_l`` (``gamma_{l+1}``, ``gamma_L`` for the top layer).

Steps in gamma. A step makes ``tau`` jump, and an ODE cannot integrate the jump of
``dtau/dt``. A step *into* ``gamma < 1`` is therefore replaced by a linear ramp of width
``step_width`` (default 1e-6) that starts at the step, so the rule adds tau's jump to W
(error O(step_width)). A step *up to* ``gamma = 1`` is kept: its jump is gated out by
``1[gamma<1]``, exactly as in the discrete iteration. (A smooth rise back to 1 would
let W follow tau back to a and undo the learning; end feedback phases with a step.)

Buffers. With a constant gamma nothing ever refills or freezes the buffers, so they are
not state: ``a`` is the forward pass of ``x`` and ``n`` its normalisation, and the state is
``u_2..u_L`` (a relaxation to the feedback fixed point, Propositions 1-3). With a
time-dependent gamma the state is ``a_1..a_L``, ``u_2..u_L``, ``n_1..n_{L-1}``, starting
from a completed feedforward pass (``a`` the forward pass, ``u_l = a_l``).

:func:`discrete_step` / :func:`discrete_run` are the discrete iteration (46)-(53) itself
(synchronous updates; (51)/(52) use the same ``u_l`` as (49)), the reference for tests.
"""

from __future__ import annotations

from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field, field_validator

from ..core import nonlinearities
from ..core.circuit import ArraySpec, BlockMatrix, Circuit, KindInfo, register
from ..core.layers import LayerSizes
from ..core.nonlinearities import Nonlinearity
from ..core.schedules import Constant, Schedule, current_horizon, from_spec
from ._common import TARGET_INPUT_DOCS, StrictOptions, check_names, forward_specs, relative_error


class CDTPOptions(StrictOptions):
    """``[circuit]`` options of ``continuous_dtp``."""

    nonlinearity: str = Field("tanh", description="sigma of (54): linear, tanh, relu, leaky_relu:<slope>")
    gamma: float | dict[str, Any] = Field(0.0, description="gating signal: a number or a schedule table (global or a wave over the L layers)")
    beta: float = Field(0.1, ge=0.0, description="output step: tau_L = a_L - (1 - gamma) beta e_L")
    feedback_rule: Literal["51", "52"] = Field("51", description="feedback-weight rule (51) or (52)")
    lr_w: float = Field(1.0, ge=0.0, description="learning rate of the forward rule (50)")
    lr_omega: float = Field(1.0, ge=0.0, description="learning rate of the feedback rule (51)/(52)")
    layer_scale: bool = Field(False, description="apply the layer scale factor of (43)")
    tau_a: float = Field(0.1, gt=0.0, description="time constant with which a_l and n_{l-1} follow while gamma = 1")
    step_width: float = Field(1e-6, gt=0.0, description="width of the ramp replacing a step into gamma < 1")
    t_max: float | None = Field(None, gt=0.0, description="end of the run, to list the jumps of a square gamma oscillation (default: [simulation].t1)")

    _name = field_validator("nonlinearity")(classmethod(lambda cls, v: check_names(v)))


def normalised(s: Nonlinearity, a):
    """``n = sigma(a) / ||sigma(a)||^2`` (the input normalisation of (43))."""
    v = s(a)
    return v / jnp.sum(v * v)


def _safe_ratio(num, den):
    """``num / den`` with 0 where ``den == 0`` (differentiable: no NaN in the other branch)."""
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


@register
class ContinuousDTP(LayerSizes, Circuit):
    """CDTP (section 10.2, eqs 46-54); see the module docstring."""

    kind = "continuous_dtp"

    W: tuple  # W_1..W_L, W_l is d_l x d_{l-1}
    Omega: tuple  # Omega_2..Omega_L, Omega_l is d_{l-1} x d_l
    sigma: Nonlinearity
    gamma: Schedule
    beta: float = eqx.field(static=True, default=0.1)
    feedback_rule: str = eqx.field(static=True, default="51")
    lr_w: float = eqx.field(static=True, default=1.0)
    lr_omega: float = eqx.field(static=True, default=1.0)
    layer_scale: bool = eqx.field(static=True, default=False)
    tau_a: float = eqx.field(static=True, default=0.1)
    step_width: float = eqx.field(static=True, default=1e-6)
    # steps into gamma < 1, smoothed: times, gamma before, gamma after, which layers
    ramp_times: tuple = eqx.field(static=True, default=())
    ramp_before: tuple = eqx.field(static=True, default=())
    ramp_after: tuple = eqx.field(static=True, default=())
    ramp_mask: tuple = eqx.field(static=True, default=())

    def __check_init__(self):
        if len(self.Omega) != len(self.W) - 1:
            raise ValueError(f"continuous_dtp needs Omega2..Omega{len(self.W)} (one decoder per layer above the first), got {len(self.Omega)}")
        if len(self.W) < 2:
            raise ValueError("continuous_dtp needs a hidden layer: sizes = [d_0, d_1, d_2, ...]")
        shape = jax.eval_shape(self.gamma, jnp.zeros(())).shape
        if shape not in ((), (len(self.W),)):
            raise ValueError(f"gamma must be global or a wave over the {len(self.W)} layers, got {shape[0]} values")

    # ---- construction ------------------------------------------------------------
    @classmethod
    def build(cls, W, Omega, *, nonlinearity="tanh", gamma=0.0, t_max=None, **kw):
        """From arrays in Python: ``gamma`` a number, a schedule table or a :class:`Schedule`."""
        sched = gamma if isinstance(gamma, Schedule) else from_spec(gamma, t_max=t_max)
        s = nonlinearity if isinstance(nonlinearity, Nonlinearity) else nonlinearities.parse(nonlinearity)
        L = len(W)
        ramps = _step_ramps(sched, L, kw.get("step_width", 1e-6))
        return cls(W=tuple(jnp.asarray(w) for w in W), Omega=tuple(jnp.asarray(o) for o in Omega), sigma=s, gamma=sched, **ramps, **kw)

    @property
    def timed(self) -> bool:
        """True when gamma depends on time (the buffers are then state)."""
        return not isinstance(self.gamma, Constant)

    # ---- gamma ---------------------------------------------------------------------
    def gammas(self, t):
        """``gamma_1..gamma_L`` at time ``t``, steps into gamma < 1 replaced by ramps."""
        t = jnp.asarray(t, float)
        g = jnp.broadcast_to(jnp.asarray(self.gamma(t), t.dtype), (self.L,))
        if not self.ramp_times:
            return g
        T = jnp.asarray(self.ramp_times, t.dtype)
        B, A = jnp.asarray(self.ramp_before, t.dtype), jnp.asarray(self.ramp_after, t.dtype)
        w = (t - T) / self.step_width
        inside = ((w >= 0) & (w < 1))[:, None] & jnp.asarray(self.ramp_mask)
        lerp = B + (A - B) * jnp.clip(w, 0.0, 1.0)[:, None]
        return jnp.where(jnp.any(inside, axis=0), jnp.sum(jnp.where(inside, lerp, 0.0), axis=0), g)

    def jump_times(self):
        return tuple(sorted(set(self.gamma.jump_times()) | {t + self.step_width for t in self.ramp_times}))

    # ---- the equations (one sample) ------------------------------------------------
    def f(self, l, x):
        """Encoder ``f_l(x) = W_l sigma(x)`` (54)."""
        return self.W[l - 1] @ self.sigma(x)

    def g(self, l, y):
        """Decoder ``g_l(y) = Omega_l sigma(y)`` (54), l = 2..L."""
        return self.Omega[l - 2] @ self.sigma(y)

    def forward(self, x):
        """The forward pass ``a_0 = x``, ``a_l = f_l(a_{l-1})``."""
        a = [x]
        for l in range(1, self.L + 1):
            a.append(self.f(l, a[-1]))
        return a

    def buffers(self, state, inputs):
        """``a_0..a_L`` and ``n_0..n_{L-1}`` (state when timed, else the forward pass)."""
        x = inputs["x"]
        if not self.timed:
            a = self.forward(x)
            return a, [normalised(self.sigma, v) for v in a[:-1]]
        a = [x] + [state[f"a_{l}"] for l in range(1, self.L + 1)]
        n = [normalised(self.sigma, x)] + [state[f"n_{l}"] for l in range(1, self.L)]
        return a, n

    def targets(self, gam, a, u, inputs):
        """``tau_1..tau_L`` (index l-1): (49) and the output target ``a_L - (1-gamma) beta e_L``."""
        tau = [gam[l] * a[l] + (1 - gam[l]) * self.g(l + 1, u[l + 1]) for l in range(1, self.L)]
        tau.append(a[self.L] - (1 - gam[self.L - 1]) * self.beta * (a[self.L] - inputs["target"]))
        return tau

    def activities(self, tau, inputs):
        """``h_1..h_L`` (index l-1): ``h_1 = f_1(x)``, ``h_l = f_l(tau_{l-1})`` (46)."""
        return [self.f(1, inputs["x"])] + [self.f(l, tau[l - 2]) for l in range(2, self.L + 1)]

    def _u(self, state):
        return {l: state[f"u_{l}"] for l in range(2, self.L + 1)}

    def neural(self, t, state, inputs):
        """Everything instantaneous at ``t``: gamma, a, n, u, tau, h (lists indexed by layer)."""
        gam = self.gammas(t)
        a, n = self.buffers(state, inputs)
        u = self._u(state)
        tau = self.targets(gam, a, u, inputs)
        h = self.activities(tau, inputs)
        return gam, a, n, u, tau, h

    def vector_field(self, t, state, inputs):
        """(47), (48) in continuous time (our reading); all layers at once."""
        gam, a, n, u, tau, h = self.neural(t, state, inputs)
        out = {}
        for l in range(2, self.L + 1):
            out[f"u_{l}"] = tau[l - 1] - jnp.where(gam[l - 1] < 1, h[l - 1], u[l])
        if self.timed:
            ff = gam >= 1
            for l in range(1, self.L + 1):
                out[f"a_{l}"] = jnp.where(ff[l - 1], (h[l - 1] - a[l]) / self.tau_a, 0.0)
            for l in range(1, self.L):  # n_l normalises the input of W_{l+1}, frozen by gamma_{l+1}
                out[f"n_{l}"] = jnp.where(ff[l], (normalised(self.sigma, a[l]) - n[l]) / self.tau_a, 0.0)
        return {k: out[k] for k in self.state_shapes()}

    def state_shapes(self):
        d = self.sizes
        shapes = {}
        if self.timed:
            shapes.update({f"a_{l}": (d[l],) for l in range(1, self.L + 1)})
        shapes.update({f"u_{l}": (d[l],) for l in range(2, self.L + 1)})
        if self.timed:
            shapes.update({f"n_{l}": (d[l],) for l in range(1, self.L)})
        return shapes

    def input_shapes(self):
        return {"x": (self.sizes[0],), "target": (self.sizes[-1],)}

    def init_state(self, inputs):
        """A completed feedforward pass: ``a`` the forward pass, ``u_l = a_l`` (the gamma = 1
        fixed point of (48)), ``n`` its normalisation."""
        a = self.forward(jnp.asarray(inputs["x"]))
        state = {f"u_{l}": a[l] for l in range(2, self.L + 1)}
        if self.timed:
            state.update({f"a_{l}": a[l] for l in range(1, self.L + 1)})
            state.update({f"n_{l}": normalised(self.sigma, a[l]) for l in range(1, self.L)})
        return {k: state[k] for k in self.state_shapes()}

    # ---- plasticity ------------------------------------------------------------------
    def increments(self, gam, a, tau):
        """``y_l = tau_l - a_l``, times ``||tau_L - a_L||^2 / ||tau_l - a_l||^2`` with the layer
        scale factor of (43); the forward rule (50) integrates ``dy_l/dt``."""
        d = [tau[l - 1] - a[l] for l in range(1, self.L + 1)]
        if not self.layer_scale:
            return d
        top = jnp.sum(d[-1] ** 2)
        return [_safe_ratio(top * v, jnp.sum(v * v)) for v in d]

    def target_gates(self, gam):
        """The gamma of ``tau_l``: ``gamma_{l+1}`` (49), ``gamma_L`` for the output target."""
        return [gam[l] for l in range(1, self.L)] + [gam[self.L - 1]]

    def feedback_update(self, l, a, tau, u):
        """(51) ``(tau_{l-1} - g_l(u_l)) sigma(u_l)^T`` or (52) ``(a_{l-1} - g_l(u_l)) sigma(u_l)^T``."""
        ref = tau[l - 2] if self.feedback_rule == "51" else a[l - 1]
        return jnp.outer(ref - self.g(l, u[l]), self.sigma(u[l]))

    def plasticity(self, t, state, inputs):
        """(50) with the frozen normalisation: ``lr_w 1[gamma<1] (dy_l/dt) n_{l-1}^T``, ``dy/dt``
        by forward-mode differentiation along the flow; (51)/(52) for ``Omega_l``."""
        t = jnp.asarray(t, float)

        def y_of(tt, s):
            gam, a, _, _, tau, _ = self.neural(tt, s, inputs)
            return self.increments(gam, a, tau)

        flow = self.vector_field(t, state, inputs)
        flow = {k: v.astype(state[k].dtype) for k, v in flow.items()}  # gamma(t) is float64: keep float32 state float32
        _, dy = jax.jvp(y_of, (t, dict(state)), (jnp.ones_like(t), flow))
        gam, a, n, u, tau, _ = self.neural(t, state, inputs)
        gates = self.target_gates(gam)
        out = {}
        for l in range(1, self.L + 1):
            out[f"W{l}"] = self.lr_w * jnp.where(gates[l - 1] < 1, 1.0, 0.0) * jnp.outer(dy[l - 1], n[l - 1])
        for l in range(2, self.L + 1):
            out[f"Omega{l}"] = self.lr_omega * self.feedback_update(l, a, tau, u)
        return out

    # ---- analysis --------------------------------------------------------------------
    def _assemble(self, gam, enc, dec, state, inputs):
        """Jacobian of the vector field in the order of ``state_shapes`` from the encoder
        Jacobians ``enc[l] = f'_l`` (at ``tau_{l-1}``) and decoder Jacobians ``dec[l] = g'_l``
        (at ``u_l``); ``state`` only enters through ``n``'s normalisation (timed mode)."""
        J = BlockMatrix(self.state_shapes(), self.W[0].dtype)
        I = lambda d: jnp.eye(d, dtype=J.matrix.dtype)  # noqa: E731
        d, L = self.sizes, self.L
        for l in range(2, L + 1):  # du_l/dt = tau_l - h_l (gamma_l < 1) or tau_l - u_l
            fb = gam[l - 1] < 1
            if l < L:
                J.add(f"u_{l}", f"a_{l}", gam[l] * I(d[l]))
                J.add(f"u_{l}", f"u_{l + 1}", (1 - gam[l]) * dec[l + 1])
            else:
                J.add(f"u_{l}", f"a_{l}", (1 - (1 - gam[l - 1]) * self.beta) * I(d[l]))
            J.add(f"u_{l}", f"u_{l}", jnp.where(fb, -(1 - gam[l - 1]) * enc[l] @ dec[l], -I(d[l])))
            J.add(f"u_{l}", f"a_{l - 1}", jnp.where(fb, -gam[l - 1] * enc[l], 0.0))
        if self.timed:
            for l in range(1, L + 1):  # da_l/dt = (h_l - a_l) / tau_a while gamma_l = 1
                ff = jnp.where(gam[l - 1] >= 1, 1.0 / self.tau_a, 0.0)
                J.add(f"a_{l}", f"a_{l}", -ff * I(d[l]))
                if l >= 2:
                    J.add(f"a_{l}", f"a_{l - 1}", ff * gam[l - 1] * enc[l])
                    J.add(f"a_{l}", f"u_{l}", ff * (1 - gam[l - 1]) * enc[l] @ dec[l])
            for l in range(1, L):  # dn_l/dt = (N(a_l) - n_l) / tau_a while gamma_{l+1} = 1
                ff = jnp.where(gam[l] >= 1, 1.0 / self.tau_a, 0.0)
                s = self.sigma(state[f"a_{l}"])
                q = jnp.sum(s * s)
                dN = (I(d[l]) / q - 2.0 * jnp.outer(s, s) / q**2) * self.sigma.deriv(state[f"a_{l}"])[None, :]
                J.add(f"n_{l}", f"a_{l}", ff * dN)
                J.add(f"n_{l}", f"n_{l}", -ff * I(d[l]))
        return J.matrix

    def _derivatives(self, state, inputs, t=0.0):
        """``f'_l`` at ``tau_{l-1}`` and ``g'_l`` at ``u_l`` (dicts by layer, l = 2..L)."""
        gam, _, _, u, tau, _ = self.neural(t, state, inputs)
        enc = {l: self.W[l - 1] * self.sigma.deriv(tau[l - 2])[None, :] for l in range(2, self.L + 1)}
        dec = {l: self.Omega[l - 2] * self.sigma.deriv(u[l])[None, :] for l in range(2, self.L + 1)}
        return gam, enc, dec

    def loop_jacobians(self, state, inputs, t=0.0):
        """``f'_l g'_l`` (l = 2..L) at ``state``: ``W_l D(sigma'(tau_{l-1})) Omega_l D(sigma'(u_l))``."""
        _, enc, dec = self._derivatives(state, inputs, t)
        return [enc[l] @ dec[l] for l in range(2, self.L + 1)]

    def block_matrix(self, state, inputs):
        """Analytic Jacobian of the vector field at ``state`` (at t = 0)."""
        gam, enc, dec = self._derivatives(state, inputs)
        return self._assemble(gam, enc, dec, state, inputs)

    def system_matrix(self):
        """The u-dynamics' block matrix with unit gains ``sigma' = 1`` at ``gamma(0)``:
        diagonal ``-(1-gamma_l) W_l Omega_l`` (``-I`` at gamma = 1), above it
        ``(1-gamma_{l+1}) Omega_{l+1}``. Block upper triangular over layers."""
        gam = self.gammas(0.0)
        d = self.sizes
        blocks = []
        for l in range(2, self.L + 1):
            row = []
            for k in range(2, self.L + 1):
                if k == l:
                    row.append(jnp.where(gam[l - 1] < 1, -(1 - gam[l - 1]) * self.W[l - 1] @ self.Omega[l - 2], -jnp.eye(d[l])))
                elif k == l + 1:
                    row.append((1 - gam[l]) * self.Omega[l - 1])
                else:
                    row.append(jnp.zeros((d[l], d[k])))
            blocks.append(row)
        return jnp.block(blocks)

    def eigenvalues(self, state, inputs):
        """Block triangular: the union of the spectra of ``-(1-gamma_l) f'_l g'_l`` (Prop. 3 in
        continuous time: stable iff ``Re eig(f'_l g'_l) > 0`` when gamma < 1)."""
        if self.timed:
            return super().eigenvalues(state, inputs)
        gam = self.gammas(0.0)
        loops = self.loop_jacobians(state, inputs)
        blocks = [jnp.where(gam[l - 1] < 1, -(1 - gam[l - 1]) * loops[l - 2], -jnp.eye(self.sizes[l])) for l in range(2, self.L + 1)]
        return jnp.concatenate([jnp.linalg.eigvals(b) for b in blocks])

    def checks(self, state, inputs):
        """Proposition 1 (``tau_l = h_l``) and, for square invertible layers, Proposition 2
        (``tau_{l-1} = f_l^{-1}(tau_l)``), as relative errors at the fixed point."""
        _, _, _, _, tau, h = self.neural(0.0, state, inputs)
        out = {"P1_tau_equals_h": jnp.max(jnp.stack([relative_error(h[l - 1], tau[l - 1]) for l in range(2, self.L + 1)]))}
        if self.sigma.invertible and all(self.W[l - 1].shape[0] == self.W[l - 1].shape[1] for l in range(2, self.L + 1)):
            errs = [relative_error(self.f_inverse(l, tau[l - 1]), tau[l - 2]) for l in range(2, self.L + 1)]
            out["P2_tau_is_inverse"] = jnp.max(jnp.stack(errs))
        return out

    def f_inverse(self, l, y):
        """``f_l^{-1}(y) = sigma^{-1}(W_l^{-1} y)`` for a square ``W_l``."""
        return self.sigma.inverse(jnp.linalg.solve(self.W[l - 1], y))

    # ---- model files -----------------------------------------------------------------
    Options = CDTPOptions

    def where(self, name):
        """``OmegaK`` is ``Omega[K-2]`` (decoders start at layer 2); else as the base class."""
        if name.startswith("Omega") and name[5:].isdigit():
            k = int(name[5:])
            if not 2 <= k <= self.L:
                raise KeyError(f"'{name}' is not an array of kind {self.kind} (valid: Omega2..Omega{self.L})")
            return lambda c: c.Omega[k - 2]
        return super().where(name)

    @classmethod
    def validate_sizes(cls, sizes):
        if len(sizes) < 3:
            raise ValueError("continuous_dtp needs a hidden layer (decoders start at layer 2): sizes = [d_0, d_1, d_2, ...]")

    @classmethod
    def array_specs(cls, sizes, options):
        L = len(sizes) - 1
        specs = forward_specs(sizes)
        specs.update({f"Omega{l}": ArraySpec((sizes[l - 1], sizes[l]), doc=f"decoder weights Omega_{l}, g_{l}(y) = Omega_{l} sigma(y)") for l in range(2, L + 1)})
        specs["x"] = ArraySpec((sizes[0],), role="input", doc="network input h_0 = x")
        specs["target"] = ArraySpec((sizes[-1],), role="input", doc="label t (squared loss, e_L = a_L - t)")
        return specs

    @classmethod
    def from_arrays(cls, sizes, options, arrays):
        L = len(sizes) - 1
        t_max = options.t_max if options.t_max is not None else current_horizon()
        try:
            gamma = from_spec(options.gamma, t_max=t_max)
        except ValueError as err:
            raise ValueError(f"gamma: {err}") from None
        if _has_square(gamma) and t_max is None:
            raise ValueError("gamma: a square oscillation needs t_max (the run's end) to list its steps; add t_max to [circuit]")
        return cls.build(
            [arrays[f"W{l}"] for l in range(1, L + 1)],
            [arrays[f"Omega{l}"] for l in range(2, L + 1)],
            nonlinearity=options.nonlinearity,
            gamma=gamma,
            beta=float(options.beta),
            feedback_rule=options.feedback_rule,
            lr_w=float(options.lr_w),
            lr_omega=float(options.lr_omega),
            layer_scale=options.layer_scale,
            tau_a=float(options.tau_a),
            step_width=float(options.step_width),
        )

    @classmethod
    def info(cls):
        return KindInfo(
            kind=cls.kind,
            summary="continuous DTP with gating gamma (Bengio 2020 section 10.2, eqs 46-54)",
            options={
                "nonlinearity": "sigma of f_l = W_l sigma(.), g_l = Omega_l sigma(.) (default tanh)",
                "gamma": "number or schedule table; a wave over the L layers for per-layer gamma (default 0)",
                "beta": "output step, tau_L = a_L - (1-gamma) beta e_L (default 0.1)",
                "feedback_rule": '"51" or "52" (default "51")',
                "lr_w, lr_omega": "learning rates of (50) and (51)/(52) (default 1)",
                "layer_scale": "apply the layer scale factor of (43) (default false)",
                "tau_a": "time constant of the buffers a_l, n_l while gamma = 1 (default 0.1)",
                "step_width": "ramp width replacing a step into gamma < 1 (default 1e-6)",
                "t_max": "run end for the steps of a square gamma oscillation (default [simulation].t1)",
            },
            arrays={
                "W1..WL": "forward weights, W_l is d_l x d_{l-1}",
                "Omega2..OmegaL": "decoder weights, Omega_l is d_{l-1} x d_l",
                **TARGET_INPUT_DOCS,
            },
            state="u_2..u_L (constant gamma); a_1..a_L, u_2..u_L, n_1..n_{L-1} (time-dependent gamma)",
        )


# ---------------------------------------------------------------------------------
def _has_square(s: Schedule) -> bool:
    from ..core.schedules import Periodic, Wave

    if isinstance(s, Wave):
        return _has_square(s.base)
    return isinstance(s, Periodic) and s.shape == "square"


def _step_ramps(sched: Schedule, L: int, width: float) -> dict:
    """The steps of ``sched`` that land in gamma < 1, per layer, to be smoothed into ramps."""
    times, before, after, mask = [], [], [], []
    for ts in sched.jump_times():
        eps = 1e-9 * max(1.0, abs(ts))
        b = np.broadcast_to(np.asarray(sched(jnp.asarray(ts - eps, float)), float), (L,))
        a = np.broadcast_to(np.asarray(sched(jnp.asarray(ts + eps, float)), float), (L,))
        m = (a < 1) & (a != b)
        if m.any():
            times.append(float(ts))
            before.append(tuple(map(float, b)))
            after.append(tuple(map(float, a)))
            mask.append(tuple(map(bool, m)))
    if any(t2 - t1 <= width for t1, t2 in zip(times, times[1:])):
        raise ValueError(f"gamma steps closer than step_width ({width}); use a smaller step_width")
    return dict(ramp_times=tuple(times), ramp_before=tuple(before), ramp_after=tuple(after), ramp_mask=tuple(mask))


# ---------------------------------------------------------------------------------
# The discrete iteration (46)-(53), the reference of the tests.
def discrete_init(circuit: ContinuousDTP, inputs) -> dict:
    """Carry after a completed feedforward pass: ``a``, ``u_l = a_l``, ``n``, ``y = 0``, weights."""
    a = circuit.forward(jnp.asarray(inputs["x"]))
    carry = {f"a_{l}": a[l] for l in range(1, circuit.L + 1)}
    carry |= {f"u_{l}": a[l] for l in range(2, circuit.L + 1)}
    carry |= {f"n_{l}": normalised(circuit.sigma, a[l]) for l in range(circuit.L)}
    carry |= {f"y_{l}": jnp.zeros_like(a[l]) for l in range(1, circuit.L + 1)}
    carry |= {f"W{l}": circuit.W[l - 1] for l in range(1, circuit.L + 1)}
    carry |= {f"Omega{l}": circuit.Omega[l - 2] for l in range(2, circuit.L + 1)}
    return carry


def discrete_step(circuit: ContinuousDTP, carry: dict, gamma, inputs, *, learn_w=False, learn_omega=False):
    """One synchronous step of (46)-(52) at ``gamma`` (scalar or one per layer); every
    right-hand side uses the previous step's values. Returns ``(carry, tau)``."""
    L = circuit.L
    c = eqx.tree_at(lambda m: (m.W, m.Omega), circuit, (tuple(carry[f"W{l}"] for l in range(1, L + 1)), tuple(carry[f"Omega{l}"] for l in range(2, L + 1))))
    gam = jnp.broadcast_to(jnp.asarray(gamma, carry["a_1"].dtype), (L,))
    a = [jnp.asarray(inputs["x"])] + [carry[f"a_{l}"] for l in range(1, L + 1)]
    n = [carry[f"n_{l}"] for l in range(L)]
    u = {l: carry[f"u_{l}"] for l in range(2, L + 1)}
    tau = c.targets(gam, a, u, inputs)  # (49) and the output target
    h = c.activities(tau, inputs)  # (46)
    y = c.increments(gam, a, tau)
    gates = c.target_gates(gam)
    new = dict(carry)
    for l in range(1, L + 1):
        new[f"a_{l}"] = jnp.where(gam[l - 1] >= 1, h[l - 1], a[l])  # (47)
        new[f"y_{l}"] = y[l - 1]
        if learn_w:  # (50): increment of y (of tau) times the frozen normalisation
            dW = jnp.where(gates[l - 1] < 1, 1.0, 0.0) * jnp.outer(y[l - 1] - carry[f"y_{l}"], n[l - 1])
            new[f"W{l}"] = carry[f"W{l}"] + c.lr_w * dW
    for l in range(2, L + 1):
        new[f"u_{l}"] = tau[l - 1] + jnp.where(gam[l - 1] < 1, u[l] - h[l - 1], 0.0)  # (48)
        if learn_omega:  # (51) / (52), same u_l as (49)
            new[f"Omega{l}"] = carry[f"Omega{l}"] + c.lr_omega * c.feedback_update(l, a, tau, u)
    for l in range(1, L):  # n_l follows sigma(a_l) / ||.||^2 while gamma_{l+1} = 1
        new[f"n_{l}"] = jnp.where(gam[l] >= 1, normalised(c.sigma, new[f"a_{l}"]), n[l])
    return new, tau


def discrete_run(circuit: ContinuousDTP, inputs, gammas, *, learn_w=False, learn_omega=False, carry=None):
    """Iterate (46)-(53) over ``gammas`` (shape ``(K,)`` or ``(K, L)``) with ``lax.scan``, from
    ``carry`` (default :func:`discrete_init`). Returns ``(final carry, history)`` where
    ``history`` holds ``u_l``, ``tau_l`` and ``W_l`` after every step."""
    carry = discrete_init(circuit, inputs) if carry is None else carry

    def body(cr, g):
        new, tau = discrete_step(circuit, cr, g, inputs, learn_w=learn_w, learn_omega=learn_omega)
        hist = {f"tau_{l}": tau[l - 1] for l in range(1, circuit.L + 1)}
        hist |= {k: new[k] for k in new if k.startswith(("u_", "W"))}
        return new, hist

    return jax.lax.scan(body, carry, jnp.asarray(gammas))
