"""Burst-multiplexing network (Meulemans 2019 thesis, section 6.9, eqs 6.43-6.59).

Each pyramidal neuron of layer ``i`` has a basal voltage ``a^b_i`` (feed-forward input)
and an apical voltage ``a^a_i`` (feedback input) and multiplexes two signals on its axon:
the event rate ``h_i = s_i(a^b_i)`` (6.45) and the burst probability
``hhat_i = t_i(a^a_i)`` (6.46). The two paths are decoupled (6.43)-(6.44):

    da^b_i/dt = -a^b_i + W_i h_{i-1}          i = 1..L,   h_0 = x
    da^a_i/dt = -a^a_i + Q_i hhat_{i+1}       i = 1..L-1

so at rest ``h_i^* = f_i(h_{i-1}^*)`` (6.49, the forward pass) and
``hhat_i^* = g_i(hhat_{i+1}^*)`` with ``g_i = t_i(Q_i .)`` (6.50). The output burst
probability is the teaching signal (6.51), read as follows:

    hhat_L = h_L^trgt = h_L^* - lambda(t) eta_hat e_L                    (6.54)

with ``e_L = h_L^fwd - target`` (6.55, squared loss) from the plain forward pass of the
current weights, and ``lambda(t)`` the learning-phase indicator: 0 in the free phase
(``hhat_L`` short-circuited to the live event rate ``h_L``), 1 in the learning phase.
``lambda`` is a schedule (``core.schedules``); its switches are the circuit's jump times.

When the schedule has a free phase, buffers ``hhatf_i`` (i = 1..L) hold the free-phase
burst probabilities ``hhat^{*f}_i`` (``hhatf_L = h_L^*``) for the forward rule:
``dhhatf_i/dt = (1 - lambda(t)) (hhat_i - hhatf_i)`` (track while free, hold while
learning), and in the learning phase the ``h_L^*`` of (6.54) is the held ``hhatf_L``:
``hhat_L = (1 - lambda) h_L + lambda (hhatf_L - eta_hat e_L)``. With fixed weights this is
the same target (``hhatf_L = h_L^*``); with plastic weights it keeps the target from
following the output it teaches (with the live ``h_L`` in its place the phase difference
at the top, ``h_L^* - h_L(t) + eta_hat e_L``, grows as ``h_L`` moves, and the weights run
away; measured in tests/test_burst_multiplexing.py). Without a schedule (a constant
phase) ``hhat_L = h_L - lambda eta_hat e_L``.

The forward rule (6.58, with the index read as ``i`` and (6.56) with a minus sign), gated to the learning phase, is

    dW_i/dt = -eta lambda(t) D_{s_i} (hhatf_i - hhat_i) h_{i-1}^T            (6.58)
           ~= -eta D_{s_i} (eta_hat J_{g_i} ... J_{g_{L-1}} e_L) h_{i-1}^T   (6.59)

with the Jacobians taken at the free-phase ``hhat^f``; it is exact for a linear apical
transfer. The optional apical rule, the analogue of (6.26)/(6.37) for ``g_i = t_i(Q_i .)``
(gradient of ``0.5 ||g_i(hhat_{i+1}) - h_i||^2``), runs in the free phase:

    dQ_i/dt = -eta_inv (1 - lambda(t)) [D_{t_i} (hhat_i - h_i) hhat_{i+1}^T + decay Q_i]

State order: ``ab_1..ab_L``, ``hhatf_L``, ``aa_{L-1}..aa_1`` (top down),
``hhatf_1..hhatf_{L-1}``. In this order the Jacobian is lower triangular with ``-1`` (and
``-(1 - lambda)`` for the buffers) on its diagonal: every fixed point is stable, in every
phase, whatever the weights.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from pydantic import Field, field_validator

from ..core import schedules
from ..core.circuit import ArraySpec, BlockMatrix, Circuit, KindInfo, flatten, register, unflatten
from ..core.layers import LayerSizes
from ..core.nonlinearities import Linear, Nonlinearity
from ._common import TARGET_INPUT_DOCS, PhaseOptions, check_names, free_learning_cycles, forward_specs, layer_nonlinearities, relative_error

PHASE_NAMES = {"free": 0.0, "learning": 1.0}


def settled_phase(s: schedules.Schedule) -> tuple[float, float] | None:
    """``(t_end, lambda_end)``: a time after which ``lambda`` no longer changes, and its
    value there; None for schedules that never settle (periodic, waves)."""
    if isinstance(s, schedules.Constant):
        return 0.0, float(s.value)
    if isinstance(s, schedules.Piecewise):
        return (s.times[-1] + 1.0 if s.times else 0.0), float(s.values[-1])
    if isinstance(s, schedules.Ramp):
        return s.t_on + s.duration + 1.0, float(s.end)
    return None


#: ``lambda(t)`` for ``phases = "two"``: free, learning, ..., then free (weights of (6.58) frozen)
two_phases = free_learning_cycles


def phase_schedule(spec: str | dict, free: float = 50.0, learning: float = 50.0, cycles: int = 1) -> schedules.Schedule:
    """The learning-phase indicator ``lambda(t)``: ``"free"`` (0), ``"learning"`` (1),
    ``"two"`` (:func:`two_phases`) or a schedule table of ``core.schedules.from_spec``
    with values in [0, 1]."""
    if isinstance(spec, str):
        if spec == "two":
            return two_phases(free, learning, cycles)
        if spec not in PHASE_NAMES:
            raise ValueError(f"phases must be 'free', 'learning', 'two' or a schedule table, got '{spec}'")
        return schedules.Constant(PHASE_NAMES[spec])
    s = schedules.from_spec(spec)
    values = (s.value,) if isinstance(s, schedules.Constant) else getattr(s, "values", None)
    if isinstance(s, schedules.Ramp):
        values = (s.start, s.end)
    if values is not None and any(not 0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"phases values are the learning indicator and must lie in [0, 1] (0 free, 1 learning), got {list(values)}")
    return s


class BurstOptions(PhaseOptions):
    """Options of ``burst_multiplexing``."""


    nonlinearity: str | list[str] = Field("tanh", description="basal transfer s_i: one name or a list of L names")
    apical: str | list[str] = Field("linear", description="apical transfer t_i: one name or a list of L-1 names")
    eta_hat: float = Field(0.1, ge=0.0, description="output target step eta_hat (6.54)")
    eta: float = Field(1.0, ge=0.0, description="forward learning rate eta_i (6.58)")
    eta_inv: float = Field(1.0, ge=0.0, description="apical learning rate of the optional Q rule")
    decay: float = Field(0.0, ge=0.0, description="weight decay lambda of the Q rule")
    phases: str | dict[str, Any] = Field("learning", description="'free', 'learning', 'two' or a schedule table of lambda(t)")

    _names = field_validator("nonlinearity", "apical")(classmethod(lambda cls, v: check_names(v)))

    @field_validator("phases")
    @classmethod
    def _phases(cls, v):
        phase_schedule(v)
        return v


@register
class BurstMultiplexing(LayerSizes, Circuit):
    """Burst-multiplexing network, eqs 6.43-6.46 with the teaching signal 6.51/6.54."""

    kind = "burst_multiplexing"

    W: tuple  # W_1..W_L, W_i is d_i x d_{i-1} (basal synapses)
    Q: tuple  # Q_1..Q_{L-1}, Q_i is d_i x d_{i+1} (apical synapses)
    s: tuple[Nonlinearity, ...]  # s_1..s_L, basal voltage -> event rate (6.45)
    apical: tuple[Nonlinearity, ...]  # t_1..t_{L-1}, apical voltage -> burst probability (6.46)
    phase: schedules.Schedule  # lambda(t): 0 free phase, 1 learning phase
    eta_hat: float = 0.1
    eta: float = 1.0
    eta_inv: float = 1.0
    decay: float = 0.0

    def __check_init__(self):
        L, d = len(self.W), self.sizes
        for i in range(1, L):
            if self.W[i].shape[1] != self.W[i - 1].shape[0]:
                raise ValueError(f"W{i + 1} has shape {tuple(self.W[i].shape)}; expected ({self.W[i].shape[0]}, {self.W[i - 1].shape[0]})")
        if len(self.Q) != L - 1 or len(self.apical) != L - 1 or len(self.s) != L:
            raise ValueError(f"burst_multiplexing with L = {L} needs s_1..s_L, Q_1..Q_{L - 1} and t_1..t_{L - 1}")
        for i in range(1, L):
            if tuple(self.Q[i - 1].shape) != (d[i], d[i + 1]):
                raise ValueError(f"Q{i} has shape {tuple(self.Q[i - 1].shape)}; expected ({d[i]}, {d[i + 1]})")
        if not isinstance(self.phase, schedules.Schedule):
            raise ValueError("phase must be a core.schedules.Schedule (the learning indicator lambda(t))")

    # ---- structure -----------------------------------------------------------------
    @property
    def buffered(self) -> bool:
        """Whether the free-phase buffers ``hhatf_i`` exist (the phase is a schedule)."""
        return not isinstance(self.phase, schedules.Constant)

    def state_shapes(self):
        d, L = self.sizes, self.L
        shapes = {f"ab_{i}": (d[i],) for i in range(1, L + 1)}
        if self.buffered:
            shapes[f"hhatf_{L}"] = (d[L],)
        shapes.update({f"aa_{i}": (d[i],) for i in range(L - 1, 0, -1)})
        if self.buffered:
            shapes.update({f"hhatf_{i}": (d[i],) for i in range(1, L)})
        return shapes

    def input_shapes(self):
        return {"x": (self.sizes[0],), "target": (self.sizes[-1],)}

    def jump_times(self):
        """The phase switches of ``lambda(t)``."""
        return self.phase.jump_times()

    @property
    def final_phase(self) -> float | None:
        """``lambda`` after the schedule's last change (the phase a run ends in); None for
        schedules that never settle (periodic, waves)."""
        end = settled_phase(self.phase)
        return None if end is None else end[1]

    # ---- the equations -----------------------------------------------------------
    def forward(self, x):
        """The plain forward pass ``h_0 = x``, ``h_i = s_i(W_i h_{i-1})`` (6.49)."""
        h = [x]
        for i in range(1, self.L + 1):
            h.append(self.s[i - 1](self.W[i - 1] @ h[-1]))
        return h

    def output_error(self, inputs):
        """``e_L = dL/dh_L = h_L - target`` at the plain forward pass (6.55)."""
        return self.forward(inputs["x"])[-1] - inputs["target"]

    def rates(self, state, inputs):
        """Event rates ``h_0..h_L`` (6.45)."""
        return [inputs["x"]] + [self.s[i - 1](state[f"ab_{i}"]) for i in range(1, self.L + 1)]

    def bursts(self, lam, state, inputs, h_L=None):
        """Burst probabilities ``hhat_1..hhat_L`` as a dict ``{i: hhat_i}``: (6.46) for
        i < L and the teaching signal ``h_L^* - lambda eta_hat e_L`` (6.51, 6.54) for i = L,
        with ``h_L^*`` the live ``h_L`` (free phase, or no schedule) or the held ``hhatf_L``
        (learning phase of a schedule)."""
        h_L = self.s[-1](state[f"ab_{self.L}"]) if h_L is None else h_L
        anchor = (1.0 - lam) * h_L + lam * state[f"hhatf_{self.L}"] if self.buffered else h_L
        hhat = {self.L: anchor - lam * self.eta_hat * self.output_error(inputs)}
        for i in range(1, self.L):
            hhat[i] = self.apical[i - 1](state[f"aa_{i}"])
        return hhat

    def vector_field(self, t, state, inputs):
        """(6.43)-(6.44) with the teaching signal (6.54); free-phase buffers track ``hhat``."""
        lam = self.phase(t)
        h = self.rates(state, inputs)
        hhat = self.bursts(lam, state, inputs, h[-1])
        out = {}
        for i in range(1, self.L + 1):
            out[f"ab_{i}"] = -state[f"ab_{i}"] + self.W[i - 1] @ h[i - 1]  # (6.43)
        for i in range(1, self.L):
            out[f"aa_{i}"] = -state[f"aa_{i}"] + self.Q[i - 1] @ hhat[i + 1]  # (6.44)
        if self.buffered:
            for i in range(1, self.L + 1):
                out[f"hhatf_{i}"] = (1.0 - lam) * (hhat[i] - state[f"hhatf_{i}"])
        return {k: out[k] for k in self.state_shapes()}

    # ---- fixed points and the paper's predictions ------------------------------------
    def apical_pass(self, hhat_L):
        """``hhat_i = g_i(hhat_{i+1}) = t_i(Q_i hhat_{i+1})`` from the top (6.50); returns
        ``({i: a^a_i}, {i: hhat_i})``."""
        aa, hhat = {}, {self.L: hhat_L}
        for i in range(self.L - 1, 0, -1):
            aa[i] = self.Q[i - 1] @ hhat[i + 1]
            hhat[i] = self.apical[i - 1](aa[i])
        return aa, hhat

    def free_bursts(self, inputs):
        """Free-phase burst probabilities ``hhat^{*f}_i`` (``h_L^trgt = h_L^*``), i = 1..L."""
        return self.apical_pass(self.forward(inputs["x"])[-1])[1]

    def closed_form(self, inputs):
        """The fixed point (6.47)-(6.50) in the phase ``lambda`` the run ends in; the buffers
        hold the free-phase ``hhat^{*f}`` of the current weights."""
        h = self.forward(inputs["x"])
        lam = self.final_phase
        if lam is None:
            return None
        aa, _ = self.apical_pass(h[-1] - lam * self.eta_hat * (h[-1] - inputs["target"]))
        state = {f"ab_{i}": self.W[i - 1] @ h[i - 1] for i in range(1, self.L + 1)}
        state.update({f"aa_{i}": aa[i] for i in range(1, self.L)})
        if self.buffered:
            hf = self.free_bursts(inputs)
            state.update({f"hhatf_{i}": hf[i] for i in range(1, self.L + 1)})
        return {k: state[k] for k in self.state_shapes()}

    def predicted_signal(self, hhat_f, e_L, lam=1.0):
        """(6.59): ``lambda eta_hat J_{g_i} ... J_{g_{L-1}} e_L`` for i = 1..L, with
        ``J_{g_k} = D_{t_k}(Q_k hhat^f_{k+1}) Q_k`` taken at the free-phase ``hhat^f``."""
        v = {self.L: lam * self.eta_hat * e_L}
        for k in range(self.L - 1, 0, -1):
            Q = self.Q[k - 1]
            v[k] = self.apical[k - 1].deriv(Q @ hhat_f[k + 1]) * (Q @ v[k + 1])
        return v

    def learning_signal(self, hhat_f, hhat_l):
        """The phase difference ``hhat^{*f}_i - hhat^{*l}_i`` that drives (6.58)."""
        return {i: hhat_f[i] - hhat_l[i] for i in range(1, self.L + 1)}

    def checks(self, state, inputs):
        """Event rates equal the forward pass (6.49), in every phase; with a linear apical
        transfer and a learning phase, the phase difference equals (6.59) exactly. The free
        reference is the buffer (phase schedules) or the closed form (a constant phase)."""
        h = self.rates(state, inputs)
        fwd = self.forward(inputs["x"])
        out = {"event_rate_relative_error": relative_error(jnp.concatenate(h[1:]), jnp.concatenate(fwd[1:]))}
        lam = self.final_phase
        if lam is not None and lam > 0 and self.eta_hat > 0 and all(isinstance(t, Linear) for t in self.apical):
            hhat_l = self.bursts(lam, state, inputs)
            if self.buffered:
                hhat_f = {i: state[f"hhatf_{i}"] for i in range(1, self.L + 1)}
            else:
                hhat_f = self.free_bursts(inputs)
            sig = self.learning_signal(hhat_f, hhat_l)
            pred = self.predicted_signal(hhat_f, fwd[-1] - inputs["target"], lam)
            cat = lambda d: jnp.concatenate([d[i] for i in range(1, self.L + 1)])  # noqa: E731
            out["signal_6_59_relative_error"] = relative_error(cat(sig), cat(pred))
        return out

    # ---- plasticity --------------------------------------------------------------
    def plasticity(self, t, state, inputs):
        """Forward rule (6.58) gated to the learning phase (needs the buffers, i.e. a phase
        schedule) and the apical rule (analogue of (6.26)/(6.37)) gated to the free phase."""
        lam = self.phase(t)
        h = self.rates(state, inputs)
        hhat = self.bursts(lam, state, inputs, h[-1])
        out = {}
        if self.buffered:
            for i in range(1, self.L + 1):
                D = self.s[i - 1].deriv(state[f"ab_{i}"])
                delta = D * (state[f"hhatf_{i}"] - hhat[i])
                out[f"W{i}"] = -self.eta * lam * jnp.outer(delta, h[i - 1])
        for i in range(1, self.L):
            D = self.apical[i - 1].deriv(state[f"aa_{i}"])
            rec = D * (hhat[i] - h[i])
            out[f"Q{i}"] = -self.eta_inv * (1.0 - lam) * (jnp.outer(rec, hhat[i + 1]) + self.decay * self.Q[i - 1])
        return out

    # ---- linearisation -----------------------------------------------------------
    def _assemble(self, ds, dt, lam):
        """Jacobian layout given the derivative vectors ``ds[i] = s_i'(a^b_i)`` (i = 1..L)
        and ``dt[i] = t_i'(a^a_i)`` (i = 1..L-1)."""
        J = BlockMatrix(self.state_shapes(), self.W[0].dtype)
        for i in range(1, self.L + 1):
            J.add(f"ab_{i}", f"ab_{i}", -jnp.eye(self.sizes[i]))
            if i > 1:
                J.add(f"ab_{i}", f"ab_{i - 1}", self.W[i - 1] * ds[i - 1][None, :])
        L = self.L
        # the teaching signal hhat_L (6.54): slope (1 - lambda) on h_L, lambda on hhatf_L
        top_gain = (1.0 - lam) * ds[L] if self.buffered else ds[L]
        for i in range(1, L):
            J.add(f"aa_{i}", f"aa_{i}", -jnp.eye(self.sizes[i]))
            if i == L - 1:
                J.add(f"aa_{i}", f"ab_{L}", self.Q[i - 1] * top_gain[None, :])
                if self.buffered:
                    J.add(f"aa_{i}", f"hhatf_{L}", lam * self.Q[i - 1])
            else:
                J.add(f"aa_{i}", f"aa_{i + 1}", self.Q[i - 1] * dt[i + 1][None, :])
        if self.buffered:
            J.add(f"hhatf_{L}", f"hhatf_{L}", -((1.0 - lam) ** 2) * jnp.eye(self.sizes[L]))
            J.add(f"hhatf_{L}", f"ab_{L}", (1.0 - lam) * jnp.diag(top_gain))
            for i in range(1, L):
                J.add(f"hhatf_{i}", f"hhatf_{i}", -(1.0 - lam) * jnp.eye(self.sizes[i]))
                J.add(f"hhatf_{i}", f"aa_{i}", (1.0 - lam) * jnp.diag(dt[i]))
        return J.matrix

    def block_matrix(self, state, inputs, t=0.0):
        """Analytic Jacobian at ``state`` and time ``t``: ``-I`` on the voltages' diagonal,
        ``W_i D_{s_{i-1}}`` from ``a^b_{i-1}`` into ``a^b_i`` (6.43), ``Q_i D_{t_{i+1}}`` from
        ``a^a_{i+1}`` into ``a^a_i`` (6.44), and into ``a^a_{L-1}`` through the teaching signal
        (6.54) ``Q_{L-1} (1 - lambda) D_{s_L}`` from ``a^b_L`` and ``lambda Q_{L-1}`` from
        ``hhatf_L`` (``Q_{L-1} D_{s_L}`` without a schedule); buffer rows
        ``(1 - lambda) [D_{t_i}, -I]`` (``(1 - lambda) [(1 - lambda) D_{s_L}, -(1 - lambda) I]``
        at the top). Lower triangular in the state order."""
        ds = {i: self.s[i - 1].deriv(state[f"ab_{i}"]) for i in range(1, self.L + 1)}
        dt = {i: self.apical[i - 1].deriv(state[f"aa_{i}"]) for i in range(1, self.L)}
        return self._assemble(ds, dt, self.phase(t))

    def system_matrix(self):
        """The block matrix with unit transfer slopes (the linear circuit), in the free phase
        of ``lambda(0)``; lower triangular with ``-1`` (and ``-(1 - lambda)``) on the diagonal."""
        ds = {i: jnp.ones(self.sizes[i]) for i in range(1, self.L + 1)}
        dt = {i: jnp.ones(self.sizes[i]) for i in range(1, self.L)}
        return self._assemble(ds, dt, self.phase(0.0))

    def eigenvalues(self, state, inputs, t=0.0):
        """The Jacobian is lower triangular: its spectrum is its diagonal, ``-1`` for every
        voltage, ``-(1 - lambda(t))`` for the buffers ``hhatf_1..hhatf_{L-1}`` and
        ``-(1 - lambda(t))^2`` for ``hhatf_L``, whatever the weights."""
        return jnp.diagonal(self.block_matrix(state, inputs, t)).astype(jnp.result_type(self.W[0].dtype, jnp.complex64))

    # ---- reduced equilibrium: the voltages, buffers at the free-phase fixed point -----
    def _voltages(self):
        return {k: v for k, v in self.state_shapes().items() if not k.startswith("hhatf_")}

    def reduce(self, state):
        return flatten(state, self._voltages())

    def expand(self, z, inputs):
        """Voltages from ``z``; the buffers (if any) at ``hhat^{*f}`` of the current weights,
        where the free phase leaves them."""
        state = unflatten(z, self._voltages())
        if self.buffered:
            hf = self.free_bursts(inputs)
            state.update({f"hhatf_{i}": hf[i] for i in range(1, self.L + 1)})
        return {k: state[k] for k in self.state_shapes()}

    def reduced_residual(self, z, inputs):
        """(6.43)-(6.44) in the phase the run ends in (Newton polishes that fixed point)."""
        end = settled_phase(self.phase)
        f = self.vector_field(0.0 if end is None else end[0], self.expand(z, inputs), inputs)
        return flatten(f, self._voltages())

    # ---- model files -------------------------------------------------------------
    Options = BurstOptions

    @classmethod
    def validate_sizes(cls, sizes):
        if len(sizes) < 2:
            raise ValueError("sizes needs at least two layers [d_0, d_1, ...], e.g. [6, 6, 6]")

    @classmethod
    def array_specs(cls, sizes, options):
        L = len(sizes) - 1
        specs = forward_specs(sizes)
        specs.update({f"Q{i}": ArraySpec((sizes[i], sizes[i + 1]), doc=f"apical weights Q_{i}") for i in range(1, L)})
        specs["x"] = ArraySpec((sizes[0],), role="input", doc="input h_0")
        specs["target"] = ArraySpec((sizes[-1],), role="input", doc="label t (squared loss)")
        return specs

    @classmethod
    def from_arrays(cls, sizes, options, arrays):
        L = len(sizes) - 1
        apical = options.apical
        if isinstance(apical, list) and len(apical) != L - 1:
            raise ValueError(f"apical lists one name per t_1..t_{L - 1}: expected {L - 1}, got {len(apical)}")
        return cls(
            W=tuple(jnp.asarray(arrays[f"W{i}"]) for i in range(1, L + 1)),
            Q=tuple(jnp.asarray(arrays[f"Q{i}"]) for i in range(1, L)),
            s=layer_nonlinearities(options.nonlinearity, L),
            apical=layer_nonlinearities(apical, L - 1) if L > 1 else (),
            phase=phase_schedule(options.phases, options.free_duration, options.learning_duration, options.cycles),
            eta_hat=float(options.eta_hat),
            eta=float(options.eta),
            eta_inv=float(options.eta_inv),
            decay=float(options.decay),
        )

    @classmethod
    def info(cls):
        return KindInfo(
            kind=cls.kind,
            summary="burst multiplexing: event rates (basal) and burst probabilities (apical) in separate paths, free/learning phases (thesis 6.43-6.59)",
            options={
                "nonlinearity": "basal transfer s_i: a name or a list of L names (default tanh)",
                "apical": "apical transfer t_i: a name or a list of L-1 names (default linear)",
                "eta_hat": "output target step, h_L^trgt = h_L^* - eta_hat e_L in the learning phase (6.54) (default 0.1)",
                "eta": "forward learning rate of (6.58) (default 1)",
                "eta_inv": "learning rate of the optional apical rule for Q (default 1)",
                "decay": "weight decay of the Q rule (default 0)",
                "phases": "'free', 'learning' (default), 'two' (cycles x (free, learning), then free) or a schedule table of lambda(t) in [0, 1]",
                "free_duration, learning_duration, cycles": "phases = 'two': the phase schedule (default 50, 50, 1)",
            },
            arrays={
                "W1..WL": "forward (basal) weights, W_i is d_i x d_{i-1}",
                "Q1..Q{L-1}": "apical weights, Q_i is d_i x d_{i+1}",
                **TARGET_INPUT_DOCS,
            },
            state="ab_1..ab_L (basal), [hhatf_L], aa_{L-1}..aa_1 (apical), [hhatf_1..hhatf_{L-1}]; hhatf_i: free-phase buffers, phase schedules only",
        )
