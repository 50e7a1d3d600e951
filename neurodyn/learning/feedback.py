"""Feedback initialisations for the rules (supplement 7.7.2): random ``U(-scale, scale)``
(R-Init: 0.01 for DI/NDI, 0.5 for FA), negative transpose ``-scale W^T`` (FA: scale 50),
and random then stabilised by SSA on the S24 block matrices (supplement 7.5). SLDI's single
``B`` is ``-B_2 ... B_L`` of sequential DI's random draws (supplement 7.3, ``B = -B_1 B_2``)
or ``-scale (W_L ... W_2)^T``."""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from ..circuits.dynamic_inversion import DynamicInversion
from ..circuits.single_loop_dynamic_inversion import SingleLoopDynamicInversion
from ..core.nonlinearities import parse
from ..core.stabilize import stabilize
from .network import Network
from .rules import BP, DFA, DI, FA, NDI, PBP, SLDI, Rule

FEEDBACK = ("random", "neg_transpose", "ssa")


def _product(Ws):
    """``W_L ... W_2`` of forward matrices given as ``(W_2, ..., W_L)``."""
    return functools.reduce(lambda P, W: W @ P, Ws)


def _chain(Bs):
    """``B_2 B_3 ... B_L`` (``d_1 x d_L``) of sequential feedback matrices."""
    return functools.reduce(jnp.matmul, Bs)


def _random(rng, shape, scale, dtype):
    return jnp.asarray(rng.uniform(-scale, scale, shape), dtype)


def make_rule(
    rule: str,
    network: Network,
    *,
    feedback: str = "neg_transpose",
    scale: float = 1.0,
    leak: float = 0.0,
    controller: str = "nonlinear",
    method: str = "equilibrium",
    ssa_margin: float = 0.01,
    seed: int = 0,
) -> tuple[Rule, dict]:
    """Build a rule with its feedback matrices for ``network``; returns ``(rule, info)``
    where ``info`` records the feedback (and the SSA optimisation, if any)."""
    if feedback not in FEEDBACK:
        raise ValueError(f"unknown feedback '{feedback}' (choose from {', '.join(FEEDBACK)})")
    rng = np.random.default_rng(seed)
    W, dtype, L = network.W, network.W[0].dtype, network.L
    info = {"feedback": feedback, "scale": scale}
    if rule == "bp":
        return BP(), {}
    if rule == "pbp":
        return PBP(), {}
    if rule == "dfa":
        if feedback == "neg_transpose":
            D = tuple(-scale * _product(W[l + 1 :]).T for l in range(L - 1))
        else:
            D = tuple(_random(rng, (network.sizes[l + 1], network.sizes[-1]), scale, dtype) for l in range(L - 1))
        return DFA(D=D), info
    if rule == "sldi":
        if feedback == "neg_transpose":
            B = -scale * _product(W[1:]).T
        else:
            # supplement 7.3: B = -B_1 B_2, the product of sequential DI's R-Init draws
            B = -_chain([_random(rng, (network.sizes[l], network.sizes[l + 1]), scale, dtype) for l in range(1, L)])
        r = SLDI(B=B, alpha=leak, controller=controller, method=method)
        if feedback == "ssa":
            circuit = SingleLoopDynamicInversion(W=tuple(W[1:]), B=B, alpha=leak, g=tuple(parse("linear") for _ in W[1:]))
            res = stabilize(circuit, lambda c: c.B, margin=ssa_margin)
            info["ssa"] = _ssa_info(res)
            r = SLDI(B=res.circuit.B, alpha=leak, controller=controller, method=method)
        return r, info
    if rule not in ("fa", "ndi", "di"):
        raise ValueError(f"unknown rule '{rule}'")
    if feedback == "neg_transpose":
        B = tuple(-scale * W[l].T for l in range(1, L))
    else:
        B = tuple(_random(rng, (network.sizes[l], network.sizes[l + 1]), scale, dtype) for l in range(1, L))
    if feedback == "ssa":
        circuit = DynamicInversion(W=tuple(W[1:]), B=B, alpha=leak, g=tuple(parse("linear") for _ in W[1:]))
        res = stabilize(circuit, lambda c: c.B, margin=ssa_margin)
        info["ssa"] = _ssa_info(res)
        B = res.circuit.B
    if rule == "fa":
        return FA(B=B), info
    if rule == "ndi":
        return NDI(B=B, alpha=leak), info
    return DI(B=B, alpha=leak, controller=controller, method=method), info


def _ssa_info(res) -> dict:
    return {
        "success": res.success,
        "iterations": res.iterations,
        "abscissa_before": res.abscissa_before,
        "abscissa_after": res.abscissa_after,
        "message": res.message,
    }
