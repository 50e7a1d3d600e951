"""Burst multiplexing (thesis 6.43-6.59) as a rule: the network's weights and the apical
weights ``Q`` are state of the circuit ``burst_multiplexing``. Each sample starts at the
free-phase rest (the forward pass), runs ``cycles`` x (free, learning) phases, and ``W``
learns by (6.58) in the learning phases.

Rates (:mod:`plastic_circuit`): over a learning time ``T`` the output rule moves ``W_L``
by ``-(eta T / tau_w) eta_hat e_L h_{L-1}^T``, so ``tau_w = eta eta_hat T / lr``; ``Q``
learns in the free phases with ``tau_w = T_free / inverse_lr``.
"""

import jax
from pydantic import Field

from ...circuits.burst_multiplexing import BurstMultiplexing, BurstOptions
from .base import register_rule
from .plastic_circuit import PlasticCircuitRule, PlasticRuleOptions, difference_path, pinv_inverses
from .targets import TargetPath


class BurstRuleOptions(PlasticRuleOptions, BurstOptions):
    """The kind's options (``neurodyn list``) with the rule's defaults."""

    derived = {**PlasticRuleOptions.derived, "phases": "the rule: cycles x (free, learning) per sample"}
    kind = BurstMultiplexing

    free_duration: float = Field(5.0, gt=0, description="length of each free phase")
    learning_duration: float = Field(10.0, gt=0, description="length of each learning phase")

    def circuit_options(self, nonlinearities: list[str]) -> BurstOptions:
        keys = set(BurstOptions.model_fields) - {"nonlinearity", "phases"}
        return BurstOptions(nonlinearity=list(nonlinearities), phases="two", **{k: getattr(self, k) for k in keys})


@register_rule
class BurstMultiplexingRule(PlasticCircuitRule):
    name = "burst_multiplexing"
    summary = "burst multiplexing, weights as ODE state (thesis 6.43-6.59; free then learning phase per sample)"
    Options = BurstRuleOptions

    @classmethod
    def build(cls, network, options, *, seed, lr):
        own = pinv_inverses(network, first=1)
        circuit = cls.kind_circuit(network, options, own)
        t1 = (options.free_duration + options.learning_duration) * options.cycles
        t_learn, t_free = options.learning_duration * options.cycles, options.free_duration * options.cycles
        tau = options.eta * options.eta_hat * t_learn / lr
        return cls.assemble(circuit, network, options, lr=lr, t1=t1, tau_forward=tau, own=own, t_inverse=t_free, start="closed_form")

    def target_path(self, circuit, network, fwd, t):
        """The burst probabilities' path ``g_i = t_i(Q_i .)`` (6.50) from ``o_hat = h_L -
        eta_hat e_L`` (6.54), as the difference of learning and free phases that (6.58) reads."""

        def down(o_hat):
            _, hhat = jax.vmap(circuit.apical_pass)(o_hat)
            return tuple(hhat[i] for i in range(1, network.L))

        o, hidden = fwd.h[-1], tuple(fwd.h[1:-1])
        return TargetPath(difference_path(down, o, hidden), o, o - circuit.eta_hat * (o - t), hidden)
