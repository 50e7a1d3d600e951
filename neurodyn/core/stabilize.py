"""Stability optimisation: descend the smoothed spectral abscissa (SSA) of a circuit's
block system matrix with respect to chosen arrays (supplement section 7.5; Vanbiervliet
et al. 2009; Hennequin et al. 2014), until the spectral abscissa is below a target.

The arrays are chosen equinox-style with ``where`` (e.g. ``lambda c: c.B``). When the
circuit describes its system matrix as two-block pieces (``system_blocks``), each piece's
SSA is computed exactly on a reduced problem of size ``<= 3 d_l``, which makes the
1000 -> 10 MNIST output layer cost a 30 x 30 Lyapunov solve per step instead of 1010 x 1010.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .circuit import Circuit
from .stability import SSA, smoothed_spectral_abscissa, smoothed_spectral_abscissa_two_block

METHODS = ("ssa", "heuristic")
#: iterations over which too little SSA progress triggers the eps continuation
EPS_WINDOW = 10
#: the valid range of the SSA smoothing parameter eps: the continuation tightens eps down
#: to EPS_MIN (below it the Lyapunov solves near the abscissa lose their accuracy); above
#: EPS_MAX the SSA lies far above the spectral abscissa and no longer guides the descent
EPS_MIN, EPS_MAX = 1e-7, 1.0


@dataclass
class StabilizeResult:
    """Outcome of :func:`stabilize`; ``circuit`` carries the optimised arrays."""

    circuit: Circuit
    success: bool
    iterations: int
    target: float
    abscissa_before: float
    abscissa_after: float
    ssa_before: float
    ssa_after: float
    seconds: float
    message: str
    history: list[float] = field(default_factory=list)
    #: ``(iteration, eps)`` each time the continuation tightened eps
    eps_steps: list[tuple[int, float]] = field(default_factory=list)


def target_abscissa(circuit: Circuit, margin: float) -> float:
    """``-margin``, or ``-min(margin, |fixed|/2)`` when the circuit has an eigenvalue no array
    can move (an expanding DI layer always has ``-alpha``): the margin is relative."""
    fixed = circuit.fixed_abscissa()
    if fixed is None:
        return -margin
    return -min(margin, -fixed / 2) if fixed < 0 else 0.0


def _pieces(circuit: Circuit, eps: float) -> tuple[list[SSA], bool]:
    """SSA of every two-block piece, or of the dense system matrix."""
    blocks = circuit.system_blocks()
    if blocks is not None:
        return [smoothed_spectral_abscissa_two_block(*(np.asarray(x) for x in blk[:2]), float(blk[2]), float(blk[3]), eps) for blk in blocks], True
    M = circuit.system_matrix()
    if M is None:
        raise ValueError(f"kind {circuit.kind} has no block system matrix to optimise")
    return [smoothed_spectral_abscissa(np.asarray(M), eps)], False


def _heuristic(circuit: Circuit) -> list[SSA]:
    """The public heuristic, for comparison: the gradient ``QP / tr(QP)`` with the Lyapunov
    equations solved at the plain spectral abscissa of the dense matrix (singular there)."""
    from .stability import _gramians

    M = np.asarray(circuit.system_matrix())
    a = float(np.max(np.linalg.eigvals(M).real))
    with np.errstate(all="ignore"):
        P, Q = _gramians(M - a * np.eye(M.shape[0]))
        G = Q @ P / np.trace(Q @ P)
    return [SSA(a, a, (G,))]


def _system_pieces(circuit: Circuit, blockwise: bool) -> list[tuple]:
    """What the SSA is computed from: the two-block pieces ``(T, B)`` of the system matrix
    (``blockwise``, where the circuit has them), else the dense matrix."""
    blocks = circuit.system_blocks() if blockwise else None
    if blocks is not None:
        return [tuple(blk[:2]) for blk in blocks]
    return [(circuit.system_matrix(),)]


@eqx.filter_jit
def _pullback(circuit: Circuit, cotangent: list[tuple], blockwise: bool) -> Circuit:
    """The SSA gradients ``cotangent`` (one per piece of :func:`_system_pieces`) pulled back
    to every array of the circuit: a circuit-shaped tree of gradients. Compiled once per
    kind and shape, whichever arrays a caller optimises (it picks them with ``where``)."""
    _, vjp = eqx.filter_vjp(lambda c: _system_pieces(c, blockwise), circuit)
    return vjp(cotangent)[0]


def stabilize(
    circuit: Circuit,
    where: Callable[[Circuit], object],
    *,
    margin: float = 0.1,
    eps: float = 1e-3,
    lr: float = 1.0,
    max_iter: int = 500,
    method: str = "ssa",
    progress: bool = False,
    patience: int = 50,
    polyak_tries: int = 6,
    eps_min: float = EPS_MIN,
) -> StabilizeResult:
    """Gradient descent on the SSA of ``circuit``'s block system matrix w.r.t. ``where(circuit)``.

    Stops as soon as the spectral abscissa is below :func:`target_abscissa` (success), at
    ``max_iter``, or when a step produces non-finite arrays (failure, reported). Each piece
    of a block-triangular system matrix that is already below the target is left alone.
    ``method="heuristic"`` reproduces the public approach (dense, plain abscissa in the
    Lyapunov solves) for comparison only. The descent also stops, as a failure, when the
    SSA has not decreased for ``patience`` iterations (a target out of reach; not applied
    to the heuristic), and at once when the target is infeasible (``target >= 0``).

    Each SSA iteration first tries up to ``polyak_tries`` larger steps, starting from the
    Polyak step ``(SSA - target) / ||grad||^2`` and shrinking by 4, and keeps the first
    that lowers the SSA; otherwise it takes the plain step ``lr``. ``polyak_tries=0``
    gives plain gradient descent. When the SSA stops falling while the abscissa is still
    above the target, ``eps`` is tightened tenfold (down to ``eps_min``; set ``eps_min =
    eps`` to keep it fixed), since the SSA's own minimum can sit above the target when
    reaching it needs large, strongly non-normal arrays (a nearly singular ``W``).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}' (choose from {', '.join(METHODS)})")
    if margin < 0 or eps <= 0 or lr <= 0 or max_iter < 0 or not 0 < eps_min <= eps:
        raise ValueError(f"margin must be >= 0; eps, lr positive; 0 < eps_min <= eps (eps_min defaults to EPS_MIN = {EPS_MIN:g}); max_iter >= 0")
    start = time.perf_counter()
    target = target_abscissa(circuit, margin)
    leaves = where(circuit)

    def measure(c):
        pieces = _heuristic(c) if method == "heuristic" else _pieces(c, eps)[0]
        return pieces, max(p.abscissa for p in pieces), max(p.value for p in pieces)

    pieces, abscissa, ssa = measure(circuit)
    before = (abscissa, ssa)
    eps_steps: list[tuple[int, float]] = []
    history, ssa_history = [abscissa], [ssa]
    message, it = "", 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=max_iter, desc="stabilize", leave=False)
    if target >= 0:
        message = "infeasible: an eigenvalue no array can move sits at or above 0 (an expanding layer needs a leak)"
    while abscissa >= target and it < max_iter and not message:
        cot = [tuple(jnp.asarray(g) if p.abscissa >= target else jnp.zeros_like(jnp.asarray(g)) for g in p.grads) for p in pieces]
        grad = where(_pullback(circuit, cot, method == "ssa"))
        it += 1
        # Step sizes to try: the Newton (Polyak) step that would bring the SSA to the
        # target to first order, shrunk by 4 while it does not lower the SSA, and finally
        # the plain step lr. On ill-conditioned layers (a nearly singular W: the critical
        # eigenvalue moves with B only through W's smallest singular value) the gradient
        # is tiny and lr alone would need thousands of iterations.
        steps = [lr]
        if method == "ssa":
            gnorm2 = float(sum(jnp.vdot(g, g).real for g in jax.tree_util.tree_leaves(grad)))
            eta = (ssa - target) / gnorm2 if gnorm2 > 0 else 0.0
            while eta > lr and len(steps) <= polyak_tries:
                steps.insert(-1, eta)
                eta /= 4
        for k, step in enumerate(steps):
            trial = jax.tree_util.tree_map(lambda x, g: x - step * g, leaves, grad)
            last = k == len(steps) - 1
            if not all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(trial)):
                if last:
                    message = f"the arrays became non-finite at iteration {it} (the step blew up)"
                continue
            candidate = eqx.tree_at(where, circuit, trial)
            try:
                measured = measure(candidate)
            except (np.linalg.LinAlgError, ValueError) as err:
                if last:
                    message = f"the Lyapunov solve failed at iteration {it}: {err}"
                continue
            if last or measured[2] < ssa:
                break
        if message:
            break
        leaves, (pieces, abscissa, ssa) = trial, measured
        circuit = candidate
        history.append(abscissa)
        ssa_history.append(ssa)
        # Continuation in eps: the SSA bounds the abscissa from above, more tightly as
        # eps falls. When the SSA at this eps has (nearly) reached its minimum above the
        # target (less than 1% of the remaining gap gained over EPS_WINDOW iterations),
        # tighten eps tenfold and go on from the same arrays.
        window = ssa_history[-EPS_WINDOW - 1 :]
        if (
            method == "ssa" and eps > eps_min * (1 + 1e-9) and len(window) == EPS_WINDOW + 1
            and window[0] - window[-1] < 0.01 * (window[-1] - target)
        ):
            eps = max(eps / 10, eps_min)
            eps_steps.append((it, eps))
            pieces, abscissa, ssa = measure(circuit)
            ssa_history = [ssa]
        if method == "ssa" and len(ssa_history) > patience and min(ssa_history[-patience:]) >= min(ssa_history[:-patience]) - 1e-12:
            message = f"stalled: the SSA has not decreased for {patience} iterations (abscissa {abscissa:.4g}, target {target:.4g})"
            break
        if bar is not None:
            bar.update(1)
            bar.set_postfix(abscissa=f"{abscissa:.4g}")
    if bar is not None:
        bar.close()
    success = abscissa < target and not message
    if not success and not message:
        message = f"spectral abscissa {abscissa:.4g} is still above the target {target:.4g} after {it} iterations"
    return StabilizeResult(
        circuit=circuit,
        success=success,
        iterations=it,
        target=target,
        abscissa_before=before[0],
        abscissa_after=abscissa,
        ssa_before=before[1],
        ssa_after=ssa,
        seconds=time.perf_counter() - start,
        message=message or "stable",
        history=history,
        eps_steps=eps_steps,
    )
