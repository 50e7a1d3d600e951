"""The segregated-dendrite mixture model (thesis 6.1-6.42) as a rule: the network's weights
(and learned inverses ``Q``) are state of the circuit ``dendritic_mixture``, learning by
(6.17)/(6.26) in a single phase or (6.35)/(6.37) in free/learning phases.

Rates (:mod:`plastic_circuit`): over a learning time ``T`` the output rule moves ``W_L`` by
``-(eta_L T / tau_w) r eta_hat e_L h_{L-1}^T`` (``r = mu / (1 - mu)``, (6.12)), so
``tau_w = r eta_hat T / lr``. Hidden layer ``i`` sees a displacement of order
``r^{L+1-i}`` (6.15); the default ``eta_i = r^{-(L-i)}`` undoes that decay, giving each
hidden layer the target-propagation step of rate ``lr``. ``Q`` learns for the whole cycle
(single phase) or the free phases (two phases) with ``tau_w = T_Q / inverse_lr``.
"""

from typing import Literal

import jax
from pydantic import Field

from ...circuits.dendritic_mixture import DendriticMixture, MixtureOptions
from .base import register_rule
from .plastic_circuit import PlasticCircuitRule, PlasticRuleOptions, difference_path, pinv_inverses
from .targets import TargetPath


class MixtureRuleOptions(PlasticRuleOptions, MixtureOptions):
    """The kind's options (``neurodyn list``) with the rule's defaults, plus the cycle length."""

    kind = DendriticMixture

    duration: float = Field(10.0, gt=0, description="single phase: length of one sample's cycle (neural time constants)")
    free_duration: float = Field(10.0, gt=0, description="two phases: length of each free phase")
    learning_duration: float = Field(10.0, gt=0, description="two phases: length of each learning phase")
    eta: float | list[float] | None = Field(None, description="forward rates eta_i (default r^-(L-i), undoing the decay of (6.15))")
    inverses: Literal["exact", "learned"] = Field("learned", description="exact (d_1 = ... = d_L) | learned (Q_i, trained by the rule)")

    def circuit_options(self, nonlinearities: list[str]) -> MixtureOptions:
        L, r = len(nonlinearities), self.mu / (1.0 - self.mu)
        eta = self.eta if self.eta is not None else [r ** -(L - i) for i in range(1, L + 1)]
        keys = set(MixtureOptions.model_fields) - {"nonlinearity", "eta"}
        return MixtureOptions(nonlinearity=list(nonlinearities), eta=eta, **{k: getattr(self, k) for k in keys})


@register_rule
class DendriticMixtureRule(PlasticCircuitRule):
    name = "dendritic_mixture"
    summary = "segregated-dendrite mixture model, weights as ODE state (thesis 6.1-6.42; single or two phases, exact or learned inverses)"
    Options = MixtureRuleOptions

    @classmethod
    def build(cls, network, options, *, seed, lr):
        r = options.mu / (1.0 - options.mu)
        own = pinv_inverses(network, first=1) if options.inverses == "learned" else {}
        circuit = cls.kind_circuit(network, options, own)
        if options.phases == "two":
            t1 = (options.free_duration + options.learning_duration) * options.cycles
            t_learn, t_inverse = options.learning_duration * options.cycles, options.free_duration * options.cycles
        else:
            t1 = t_learn = t_inverse = options.duration
        rule, info = cls.assemble(
            circuit, network, options, lr=lr, t1=t1, tau_forward=r * options.eta_hat * t_learn / lr, own=own, t_inverse=t_inverse
        )
        return rule, {**info, "eta": list(circuit.eta)}

    def target_path(self, circuit, network, fwd, t):
        """The apical rates ``g_i`` carried down from ``o_hat = h_L - eta_hat e_L`` (6.10):
        hidden targets ``g_i(hhat_{i+1})`` (TP, single phase, thesis 6.5), or their change
        from the free phase (two phases, 6.6)."""

        def down(o_hat):
            out = [o_hat]
            for i in range(network.L - 1, 0, -1):
                out.append(jax.vmap(lambda h, i=i: circuit.g(i, h))(out[-1]))
            return tuple(reversed(out[1:]))

        o, hidden = fwd.h[-1], tuple(fwd.h[1:-1])
        targets = difference_path(down, o, hidden) if circuit.two_phase else down
        return TargetPath(targets, o, o - circuit.eta_hat * (o - t), hidden)
