"""Feedback initialisations (supplement 7.7.2): random ``U(-scale, scale)`` (R-Init: 0.01
for DI/NDI, 0.5 for FA), negative transpose ``-scale W^T`` (FA: scale 50), and random then
stabilised by SSA on the S24 block matrices (supplement 7.5).

Three arrangements, each used by the rules that need it: one ``B_l`` per hidden loop
(:func:`sequential_feedback`: FA, NDI, DI), one ``D_l`` per hidden layer from the output
(:func:`direct_feedback`: DFA), and SLDI's single ``B`` (:func:`single_loop_feedback`),
``-B_2 ... B_L`` of sequential DI's random draws (supplement 7.3, ``B = -B_1 B_2``) or
``-scale (W_L ... W_2)^T``.
"""

from __future__ import annotations

import functools
from typing import Literal

import jax.numpy as jnp
import numpy as np
from pydantic import Field

from ...circuits._common import MAX_LEAK
from ...circuits.dynamic_inversion import DynamicInversion
from ...circuits.single_loop_dynamic_inversion import SingleLoopDynamicInversion
from ...core.nonlinearities import parse
from ...core.stabilize import stabilize
from .base import RuleOptions


class FeedbackOptions(RuleOptions):
    """Options of the rules with fixed feedback matrices."""

    feedback: Literal["random", "neg_transpose", "ssa"] = Field("neg_transpose", description="random U(-s, s) | neg_transpose -s W^T | ssa (random, then SSA-stabilised)")
    feedback_scale: float = Field(1.0, gt=0, description="the scale s of the feedback initialisation")
    ssa_margin: float = Field(0.01, ge=0, description="feedback = 'ssa': target spectral abscissa -margin of the S24 loops")

    def for_restore(self):
        # the arrays come from the checkpoint: draw random ones of the right shapes, skip SSA
        return self.model_copy(update={"feedback": "random"}) if self.feedback == "ssa" else self


class LeakyFeedbackOptions(FeedbackOptions):
    leak: float = Field(0.0, ge=0, le=MAX_LEAK, description="controller leak alpha of the S24 loops, 0 to 1e6")


def _product(Ws):
    """``W_L ... W_2`` of forward matrices given as ``(W_2, ..., W_L)``."""
    return functools.reduce(lambda P, W: W @ P, Ws)


def _random(rng, shape, scale, dtype):
    return jnp.asarray(rng.uniform(-scale, scale, shape), dtype)


def _stabilised(kind, W, B, leak, options, info):
    """``B`` after SSA descent on the linear circuit ``kind`` over the network's ``W_2..W_L``
    (supplement 7.5); the result is recorded in ``info["ssa"]``."""
    circuit = kind(W=tuple(W[1:]), B=B, alpha=leak, g=tuple(parse("linear") for _ in W[1:]))
    res = stabilize(circuit, lambda c: c.B, margin=options.ssa_margin)
    info["ssa"] = {
        "success": res.success,
        "iterations": res.iterations,
        "abscissa_before": res.abscissa_before,
        "abscissa_after": res.abscissa_after,
        "message": res.message,
    }
    return res.circuit.B


def sequential_feedback(network, options: FeedbackOptions, seed: int, leak: float = 0.0) -> tuple[tuple, dict]:
    """``B_2..B_L`` (``B_l`` is ``d_{l-1} x d_l``) and a record of the initialisation."""
    rng = np.random.default_rng(seed)
    W, dtype, sizes = network.W, network.W[0].dtype, network.sizes
    info = {"feedback": options.feedback, "scale": options.feedback_scale}
    if options.feedback == "neg_transpose":
        return tuple(-options.feedback_scale * W[l].T for l in range(1, network.L)), info
    B = tuple(_random(rng, (sizes[l], sizes[l + 1]), options.feedback_scale, dtype) for l in range(1, network.L))
    if options.feedback == "ssa":
        B = _stabilised(DynamicInversion, W, B, leak, options, info)
    return B, info


def direct_feedback(network, options: FeedbackOptions, seed: int) -> tuple[tuple, dict]:
    """``D_1..D_{L-1}`` (``D_l`` is ``d_l x d_L``): random, or ``-s (W_L ... W_{l+1})^T``."""
    rng = np.random.default_rng(seed)
    W, dtype, L = network.W, network.W[0].dtype, network.L
    info = {"feedback": options.feedback, "scale": options.feedback_scale}
    if options.feedback == "neg_transpose":
        return tuple(-options.feedback_scale * _product(W[l + 1 :]).T for l in range(L - 1)), info
    return tuple(_random(rng, (network.sizes[l + 1], network.sizes[-1]), options.feedback_scale, dtype) for l in range(L - 1)), info


def single_loop_feedback(network, options: FeedbackOptions, seed: int, leak: float = 0.0):
    """SLDI's ``B`` (``d_1 x d_L``) and a record of the initialisation."""
    rng = np.random.default_rng(seed)
    W, dtype, sizes = network.W, network.W[0].dtype, network.sizes
    info = {"feedback": options.feedback, "scale": options.feedback_scale}
    if options.feedback == "neg_transpose":
        return -options.feedback_scale * _product(W[1:]).T, info
    # supplement 7.3: B = -B_1 B_2, the product of sequential DI's R-Init draws
    draws = [_random(rng, (sizes[l], sizes[l + 1]), options.feedback_scale, dtype) for l in range(1, network.L)]
    B = -functools.reduce(jnp.matmul, draws)
    if options.feedback == "ssa":
        B = _stabilised(SingleLoopDynamicInversion, W, B, leak, options, info)
    return B, info
