"""Jacobians, spectra and stability verdicts of circuits.

The Jacobian of any circuit comes from ``jax.jacfwd`` on its flattened vector field
(:func:`neurodyn.core.circuit.jacobian`); circuits may supply an analytic block matrix
(e.g. S24 of the dynamic-inversion supplement) and a structured spectrum.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

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
    if m <= n:
        nu, extra, k = jnp.linalg.eigvals(Q @ P), -a, n - m
    else:
        nu, extra, k = jnp.linalg.eigvals(P @ Q), -b, m - n
    disc = jnp.sqrt((a - b) ** 2 + 4.0 * nu.astype(jnp.result_type(nu, 1j)))
    lam = jnp.concatenate([(-(a + b) + disc) / 2.0, (-(a + b) - disc) / 2.0])
    return jnp.concatenate([lam, jnp.full((k,), extra, dtype=lam.dtype)])
