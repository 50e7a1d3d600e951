"""Continuous difference target propagation (Bengio 2020, section 10.2, eqs 46-54) as a
rule: the network's weights and the feedback weights ``Omega`` are state of the circuit
``continuous_dtp``. Each sample runs a feedforward phase (gamma = 1, ``Omega`` learns by
(51)/(52)) and a feedback phase (gamma = 0, ``W`` learns by (50)).

CDTP's layers are ``f_l = W_l sigma(u_{l-1})``: fed ``sigma^{-1}(x)`` it computes the
network ``h_l = sigma(W_l h_{l-1})`` with a linear output, so the network's hidden layers
must share one invertible ``sigma`` (for tanh, inputs must lie in (-1, 1)).

Rates (:mod:`plastic_circuit`): with the frozen normalisation, (50) moves ``W_L`` by
``-(lr_w / tau_w) beta e_L h_{L-1}^T / ||h_{L-1}||^2`` (a normalised LMS step), so
``tau_w = lr_w beta / lr`` makes ``lr`` that step's fraction; ``Omega`` learns in the
feedforward phase with ``tau_w = T_ff / inverse_lr``.
"""

import jax
import jax.numpy as jnp
import optimistix as optx
from pydantic import Field

from ...circuits.continuous_dtp import CDTPOptions, ContinuousDTP
from ...core.nonlinearities import parse
from .base import register_rule
from .plastic_circuit import PlasticCircuitRule, PlasticRuleOptions, pinv_inverses
from .targets import TargetPath


class CDTPRuleOptions(PlasticRuleOptions, CDTPOptions):
    """The kind's options (``neurodyn list``) with the rule's defaults and phase lengths."""

    derived = {
        **PlasticRuleOptions.derived,
        "gamma": "the rule: a feedforward phase (gamma = 1) then a feedback phase (gamma = 0) per sample",
        "t_max": "the rule: the cycle length",
    }
    kind = ContinuousDTP

    feedforward_duration: float = Field(1.0, gt=0, description="length of the feedforward phase (gamma = 1)")
    feedback_duration: float = Field(20.0, gt=0, description="length of the feedback phase (gamma = 0)")
    inverse_lr: float = Field(0.002, ge=0, description="per-sample LMS rate of Omega (0.05 made the student-teacher loop unstable)")
    max_steps: int = Field(2000, gt=0, description="solver steps allowed per cycle")

    def circuit_options(self, nonlinearities: list[str]) -> CDTPOptions:
        keys = set(CDTPOptions.model_fields) - {"nonlinearity", "gamma", "t_max"}
        gamma = {"type": "phases", "durations": [self.feedforward_duration, self.feedback_duration], "values": [1.0, 0.0]}
        t1 = self.feedforward_duration + self.feedback_duration
        return CDTPOptions(nonlinearity=nonlinearities[0], gamma=gamma, t_max=t1, **{k: getattr(self, k) for k in keys})

    def check_network(self, network_spec):
        super().check_network(network_spec)
        hidden, out = network_spec.nonlinearities[:-1], network_spec.nonlinearities[-1]
        if len(set(hidden)) != 1 or out != "linear" or not parse(hidden[0]).invertible:
            raise ValueError(
                "continuous_dtp trains h_l = sigma(W_l h_{l-1}) with one invertible sigma for every hidden layer "
                "and a linear output; set [network] nonlinearities accordingly"
            )


@register_rule
class ContinuousDTPRule(PlasticCircuitRule):
    name = "continuous_dtp"
    summary = "continuous difference target propagation with gating gamma, weights as ODE state (Bengio 2020, eqs 46-54)"
    Options = CDTPRuleOptions

    @classmethod
    def build(cls, network, options, *, seed, lr):
        own = pinv_inverses(network, first=2)
        circuit = cls.kind_circuit(network, options, own)
        t1 = options.feedforward_duration + options.feedback_duration
        return cls.assemble(
            circuit, network, options, lr=lr, t1=t1, tau_forward=options.lr_w * options.beta / lr, own=own,
            t_inverse=options.feedforward_duration, encode=network.s[0].inverse,
        )

    def target_path(self, circuit, network, fwd, t):
        """Targets on the pre-activations ``a_l`` (where (49) puts them) from ``tau_L = a_L -
        beta e_L``: at the end of a feedback phase (gamma = 0) ``u_l`` rests where
        ``f_l(g_l(u_l)) = tau_l`` and layer ``l - 1`` gets ``tau_{l-1} = g_l(u_l)`` (the
        decoder-input correction (27) run to convergence). ``u_l`` is found per sample by
        Newton's method from the phase's start ``u_l = a_l``; a sample with no solution (e.g.
        a layer wider than the one below) has no target (NaN)."""
        tol = float(jnp.finfo(fwd.a[0].dtype).eps) ** 0.6

        def invert(l, tau, start):
            residual = lambda u, tau: circuit.f(l, circuit.g(l, u)) - tau  # noqa: E731
            stop = jax.lax.stop_gradient
            sol = optx.root_find(residual, optx.Newton(rtol=tol, atol=tol), stop(start), stop(tau), max_steps=64, throw=False)
            u = stop(sol.value)
            # one more Newton step: the same root, and its derivative in tau (implicit function theorem)
            u = u - jnp.linalg.solve(stop(jax.jacfwd(residual)(u, tau)), residual(u, tau))
            return jnp.where(sol.result == optx.RESULTS.successful, circuit.g(l, u), jnp.nan)

        def down(o_hat):
            out = [o_hat]
            for l in range(network.L, 1, -1):
                out.append(jax.vmap(lambda tau, start, l=l: invert(l, tau, start))(out[-1], fwd.a[l - 1]))
            return tuple(reversed(out[1:]))

        o = fwd.a[-1]
        return TargetPath(down, o, o - circuit.beta * (o - t), tuple(fwd.a[:-1]))
