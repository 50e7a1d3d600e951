"""Jacobians, spectra and stability verdicts of circuits.

The Jacobian of any circuit comes from ``jax.jacfwd`` on its flattened vector field
(:func:`neurodyn.core.circuit.jacobian`); circuits may supply an analytic block matrix
(e.g. S24 of the dynamic-inversion supplement) and a structured spectrum.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from .circuit import Circuit, Inputs, State, jacobian

__all__ = ["jacobian", "spectral_abscissa", "batched_jacobian", "batched_eigenvalues", "verdict"]


def spectral_abscissa(eigs: jax.Array) -> jax.Array:
    """Largest real part over the last axis of an array of eigenvalues."""
    return jnp.max(jnp.real(eigs), axis=-1)


def batched_jacobian(circuit: Circuit, state: State, inputs: Inputs) -> jax.Array:
    """Jacobians for a batch: ``state`` and ``inputs`` carry a leading batch axis."""
    return jax.vmap(lambda s, i: jacobian(circuit, s, i))(state, inputs)


def batched_eigenvalues(circuit: Circuit, state: State, inputs: Inputs) -> jax.Array:
    return jax.vmap(circuit.eigenvalues)(state, inputs)


def verdict(abscissa: float, tol: float = 1e-9) -> str:
    """``stable`` (< -tol), ``marginal`` (|.| <= tol) or ``unstable``."""
    if abscissa < -tol:
        return "stable"
    if abscissa <= tol:
        return "marginal"
    return "unstable"


def two_block_eigenvalues(P: jax.Array, Q: jax.Array, a, b) -> jax.Array:
    """Eigenvalues of ``[[-a I_n, P], [Q, -b I_m]]`` (``P`` is n x m, ``Q`` m x n).

    Schur complement: ``det(lambda I - M) = (lambda+a)^(n-m) det((lambda+a)(lambda+b) I - Q P)``,
    so every eigenvalue ``nu`` of the smaller of ``QP`` / ``PQ`` gives the two roots of
    ``lambda^2 + (a+b) lambda + ab - nu = 0``, and the size difference adds ``-a``
    (if n > m) or ``-b`` (if m > n). For the S24 block matrix of dynamic inversion,
    ``a = 1``, ``b = alpha``, ``P = B_l`` and ``Q = W_l diag(g')``.
    """
    n, m = P.shape
    return two_block_eigenvalues_of_product(Q @ P if m <= n else P @ Q, n, m, a, b)


def two_block_eigenvalues_of_product(product: jax.Array, n: int, m: int, a, b) -> jax.Array:
    """:func:`two_block_eigenvalues` from the smaller of the products, ``Q P`` (m x m, when
    ``m <= n``) or ``P Q`` (n x n), for callers that can form it cheaply."""
    nu = jnp.linalg.eigvals(product)
    extra, k = (-a, n - m) if m <= n else (-b, m - n)
    gap = jnp.asarray(a - b, nu.real.dtype)  # squared in floating point: inf, not OverflowError
    disc = jnp.sqrt(gap**2 + 4.0 * nu.astype(jnp.result_type(nu, 1j)))
    lam = jnp.concatenate([(-(a + b) + disc) / 2.0, (-(a + b) - disc) / 2.0])
    return jnp.concatenate([lam, jnp.full((k,), extra, dtype=lam.dtype)])


# ---------------------------------------------------------------------------------
# Smoothed spectral abscissa (Vanbiervliet, Vandereycken, Michiels, Vandewalle & Diehl
# 2009): for s above the spectral abscissa a(M) let P(s) solve
#     (M - sI) P + P (M - sI)^T + I = 0,   f(s) = tr P(s) = int_0^inf ||exp((M - sI)t)||_F^2 dt;
# the SSA is the root of f(s) = 1/eps above a(M). With Q(s) from the adjoint equation
#     (M - sI)^T Q + Q (M - sI) + I = 0,   df/ds = -2 tr(QP),  df/dM = 2 QP,
# so d SSA / dM = QP / tr(QP). The SSA is an upper bound of a(M) that tends to it as
# eps -> 0, and unlike a(M) it is smooth in M.
# These run in numpy/scipy float64 (Bartels-Stewart), outside jit: an optimisation step
# costs two Lyapunov solves of the (reduced) matrix.


@dataclass
class SSA:
    """Value of the smoothed spectral abscissa, the spectral abscissa, and d SSA / d blocks."""

    value: float
    abscissa: float
    grads: tuple


def _gramians(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    eye = np.eye(A.shape[0])
    P = scipy.linalg.solve_continuous_lyapunov(A, -eye)
    Q = scipy.linalg.solve_continuous_lyapunov(A.T, -eye)
    return P, Q


def _ssa_root(M: np.ndarray, eps: float, n_extra: int = 0, rate_extra: float = 1.0):
    """Root of ``f(s) = tr P(M - sI) + n_extra / (2 (s + rate_extra)) = 1/eps`` above the
    abscissa, by safeguarded Newton (bisection when Newton leaves the bracket).

    The extra term is the exact contribution of ``n_extra`` decoupled modes at
    ``-rate_extra`` (the complement in the two-block reduction). Returns ``(s, P, Q, trQP)``.
    """
    abscissa = float(np.max(np.linalg.eigvals(M).real)) if M.size else -np.inf
    if n_extra:
        abscissa = max(abscissa, -rate_extra)
    eye = np.eye(M.shape[0])
    target = 1.0 / eps

    def f(s):
        P, Q = _gramians(M - s * eye)
        val = np.trace(P) + n_extra / (2 * (s + rate_extra))
        dval = -2 * np.sum(Q * P.T) - n_extra / (2 * (s + rate_extra) ** 2)
        return val, dval, P, Q

    lo = abscissa
    gap = max(1.0, abs(abscissa))
    hi = abscissa + gap
    fv, df, P, Q = f(hi)
    while fv > target:  # f decreases from +inf at the abscissa to 0
        lo, gap = hi, 2 * gap
        hi = abscissa + gap
        fv, df, P, Q = f(hi)
    s = hi
    for _ in range(200):
        # Newton on log f (close to linear in log(s - abscissa) near the pole), kept
        # inside the bracket [lo, hi] by bisection
        residual = np.log(fv) - np.log(target)
        s_new = s - residual / (df / fv)
        if not (lo < s_new < hi):
            s_new = 0.5 * (lo + hi)
        moved = abs(s_new - s)
        s = s_new
        fv, df, P, Q = f(s)
        if fv > target:
            lo = s
        else:
            hi = s
        if abs(np.log(fv) - np.log(target)) <= 1e-13 or moved <= 1e-15 * (1 + abs(s)):
            break
    trQP = -0.5 * df
    return s, P, Q, trQP, abscissa


def smoothed_spectral_abscissa(M, eps: float = 1e-3) -> SSA:
    """SSA of a dense matrix; ``grads = (d SSA / d M,)``."""
    M = np.asarray(M, dtype=np.float64)
    s, P, Q, trQP, abscissa = _ssa_root(M, eps)
    return SSA(float(s), abscissa, (Q @ P / trQP,))


def smoothed_spectral_abscissa_two_block(top, bottom, a: float, b: float, eps: float = 1e-3) -> SSA:
    """SSA of ``[[-a I_n, top], [bottom, -b I_m]]`` (``top`` n x m, ``bottom`` m x n), exactly,
    on a matrix of size ``r + m`` with ``r = rank([top, bottom^T]) <= 2m``.

    With an orthonormal basis ``U`` of the span of ``top`` and ``bottom^T``, the matrix is
    ``[[-a I_r, U^T top], [bottom U, -b I_m]]`` plus ``-a I`` on the complement of ``U``,
    which contributes ``(n - r) / (2 (s + a))`` to ``tr P``. ``grads = (d/d top, d/d bottom)``.
    This is the S24 block matrix of dynamic inversion for ``a = 1``, ``b = alpha``.
    """
    top, bottom = np.asarray(top, np.float64), np.asarray(bottom, np.float64)
    n, m = top.shape
    span = np.concatenate([top, bottom.T], axis=1)
    if 2 * m >= n:  # nothing to gain: solve the dense problem
        M = np.block([[-a * np.eye(n), top], [bottom, -b * np.eye(m)]])
        dense = smoothed_spectral_abscissa(M, eps)
        G = dense.grads[0]
        return SSA(dense.value, dense.abscissa, (G[:n, n:], G[n:, :n]))
    U, sv, _ = np.linalg.svd(span, full_matrices=False)
    r = int(np.sum(sv > sv[0] * 1e-12)) if sv.size and sv[0] > 0 else 0
    U = U[:, :r]
    small = np.block([[-a * np.eye(r), U.T @ top], [bottom @ U, -b * np.eye(m)]])
    s, P, Q, trQP, abscissa = _ssa_root(small, eps, n_extra=n - r, rate_extra=a)
    G = Q @ P / trQP
    return SSA(float(s), abscissa, (U @ G[:r, r:], G[r:, :r] @ U.T))


def system_spectrum(circuit: Circuit, dense: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Eigenvalues of the circuit's block system matrix: ``(structured, dense)``.

    ``structured`` is the union of the two-block pieces' spectra (Schur complement, see
    :func:`two_block_eigenvalues`) when the circuit provides ``system_blocks``; ``dense``
    comes from ``eigvals`` of ``system_matrix`` (None where the circuit has none).
    """
    blocks = circuit.system_blocks()
    structured = None
    if blocks is not None:
        structured = np.concatenate([np.asarray(two_block_eigenvalues(top, bottom, a, b)) for top, bottom, a, b in blocks])
    M = circuit.system_matrix() if dense else None
    return structured, (None if M is None else np.linalg.eigvals(np.asarray(M)))


def is_oscillatory(eigs: np.ndarray, tol: float = 1e-9) -> bool:
    """Whether the eigenvalues of largest real part come in a complex pair."""
    eigs = np.asarray(eigs)
    top = eigs[np.real(eigs) >= np.max(np.real(eigs)) - tol]
    return bool(np.any(np.abs(np.imag(top)) > tol))
