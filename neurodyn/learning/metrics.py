"""What the harness measures of every rule on the same probe samples: the angle of each
layer's update to BP's and to the update driven by Gauss-Newton targets, the steady
state of circuit rules, and the stability of the S24 loops a rule relies on.

Gauss-Newton targets (Meulemans et al. 2020 eq. 13, TP thesis 5.60): for
hidden layer ``l`` the target step ``Delta h_l = -J_l^+ e_L`` with ``J_l = do/dh_l`` (``o``
the output activity, ``a_L`` under a softmax), and the weight update it drives ``sum_b
(s_l'(a_l) * Delta h_l) h_{l-1}^T`` (:mod:`.rules.gn`). Angles are taken
between updates summed over the probe samples (Frobenius inner product); a layer a rule
leaves fixed has no angle (NaN).

Two diagnostics of Meulemans et al. (2020) and the TP thesis: the fraction of each
sample's update that lies in the null space of the output's Jacobian with respect to the
weights (:func:`null_space_fraction`, any rule), and for target-propagation rules the
reconstruction and approximation errors of their targets (:func:`target_metrics`).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .rules import BP
from .rules.gn import GaussNewtonTargets, output_jacobians


def angle(a, b) -> jax.Array:
    """Angle in degrees between two arrays (Frobenius inner product); 90 if either is 0."""
    na, nb = jnp.linalg.norm(a), jnp.linalg.norm(b)
    tiny = jnp.finfo(jnp.result_type(a, b)).tiny
    cos = jnp.where((na > tiny) & (nb > tiny), jnp.sum(a * b) / jnp.maximum(na * nb, tiny), 0.0)
    return jnp.degrees(jnp.arccos(jnp.clip(cos, -1.0, 1.0)))


def gn_target_updates(network, x, t, loss: str) -> tuple:
    """``sum_b (s_l'(a_l) * J_l^+ (-dL/do)) h_{l-1}^T`` for the hidden layers l = 1..L-1:
    the weight updates that exact Gauss-Newton targets drive (rule ``gn``)."""
    dW, _ = GaussNewtonTargets(target_stepsize=1.0, damping=0.0).updates(network, x, t, loss)
    return dW[:-1]


def null_space_fraction(rule, network, x, t, loss: str) -> jax.Array:
    """Per hidden layer, the mean over samples of the fraction of the norm of a sample's
    update ``Delta W_l`` that lies in the null space of ``do/dW_l`` at that sample, which no
    change of the output can see (Meulemans et al. 2020 Fig. 2; weights only, one sample at
    a time). The row space of ``do/dW_l`` is ``{M^T y h_{l-1}^T}`` with ``M = J_l D_l``, so
    the visible part of ``Delta W`` is ``M^+ M Delta W h h^T / ||h||^2`` and the rest is
    null. Samples whose update is zero are left out (NaN if all are). Frozen layers report
    the update the rule would make, before clipping. A rule that gives its signals
    (:meth:`~.rules.Rule.sample_signals`) is measured from them, without building each
    sample's update."""

    def one(xt):
        xb, tb = xt[0][None], xt[1][None]
        updates, _ = rule.updates(network, xb, tb, loss)
        out = []
        for (M, h), dW in zip(_output_row_spaces(network, xb), updates):
            tiny = jnp.finfo(dW.dtype).tiny
            null = dW - jnp.outer(_seen(M, dW @ h), h) / jnp.maximum(h @ h, tiny)
            total = jnp.linalg.norm(dW)
            out.append(jnp.where(total > 0, jnp.linalg.norm(null) / jnp.maximum(total, tiny), jnp.nan))
        return jnp.stack(out)

    signals = rule.sample_signals(network, x, t, loss)
    if signals is not None:
        return _null_space_of_signals(network, x, signals)
    # a few samples at a time: every sample's update is a full set of weight matrices
    return jnp.nanmean(jax.lax.map(one, (x, t), batch_size=8), axis=0)


def _output_row_spaces(network, xb) -> list:
    """For one sample ``xb`` (batch of 1), per hidden layer ``l``: ``(M, h_{l-1})`` with
    ``M = J_l D_l``, so that ``do/dW_l`` has the row space ``{M^T y h_{l-1}^T}``."""
    fwd = network.forward(xb)
    return [
        ((J * network.s[l - 1].deriv(fwd.a[l - 1])[:, None, :])[0], fwd.h[l - 1][0])
        for l, J in enumerate(output_jacobians(network, fwd), start=1)
    ]


def _seen(M, v):
    """``M^+ M v = M^T (M M^T)^+ M v``: through the pseudo-inverse of the small Gram matrix."""
    return M.T @ (jnp.linalg.pinv(M @ M.T, hermitian=True) @ (M @ v))


def _null_space_of_signals(network, x, signals) -> jax.Array:
    """:func:`null_space_fraction` for updates ``delta_l h_{l-1}^T``: the part of the update
    the output sees is ``(P delta_l) h_{l-1}^T`` with ``P = M^+ M``, so the fraction is
    ``||delta_l - P delta_l|| / ||delta_l||`` (NaN where the update is zero). The signals come
    from one pass over all samples (one steady state for a circuit rule, not one per
    sample); the Jacobians a few samples at a time."""

    def one(sample):
        xs, deltas = sample
        out = []
        for (M, h), delta in zip(_output_row_spaces(network, xs[None]), deltas):
            total = jnp.linalg.norm(delta)
            visible = (total > 0) & (jnp.linalg.norm(h) > 0)
            ratio = jnp.linalg.norm(delta - _seen(M, delta)) / jnp.maximum(total, jnp.finfo(delta.dtype).tiny)
            out.append(jnp.where(visible, ratio, jnp.nan))
        return jnp.stack(out)

    return jnp.nanmean(jax.lax.map(one, (x, tuple(signals[:-1])), batch_size=8), axis=0)


@eqx.filter_jit
def target_metrics(rule, network, loss: str, x, t, null_space: int = 0) -> dict:
    """``null_space`` fractions (on the first ``null_space`` samples; none if 0) and, for
    rules with a target path (:meth:`Rule.target_errors`: target propagation, and the
    circuits with learned inverses), the mean norms of ``e_rec`` and ``e_approx`` per hidden
    layer (thesis 5.40-5.41)."""
    out = {}
    if null_space and network.L > 1:
        out["null_space"] = null_space_fraction(rule, network, x[:null_space], t[:null_space], loss)
    errors = rule.target_errors(network, x, t, loss)
    if errors is not None:
        out.update({k: errors[k] for k in ("e_rec", "e_approx")})
    return out


@eqx.filter_jit
def alignment(rule, network, loss: str, x, t, frozen: tuple = (), gauss_newton: bool = True) -> dict:
    """``{"bp": (L,), "gn": (L-1,)}``: angles in degrees of the rule's update of each
    ``W_l`` on ``x`` to BP's and (hidden layers) to the Gauss-Newton-target update; NaN for
    the layers in ``frozen``."""
    ours, _ = rule.updates(network, x, t, loss)
    bp, _ = BP().updates(network, x, t, loss)
    nan = jnp.asarray(jnp.nan, ours[0].dtype)
    out = {"bp": jnp.stack([nan if l in frozen else angle(a, b) for l, (a, b) in enumerate(zip(ours, bp), start=1)])}
    if gauss_newton and network.L > 1:
        gn = gn_target_updates(network, x, t, loss)
        out["gn"] = jnp.stack([nan if l in frozen else angle(ours[l - 1], g) for l, g in enumerate(gn, start=1)])
    return out


def feedback_abscissa(rule, network, alpha: float = 0.0) -> list[float]:
    """Maximum real eigenvalue of each layer's S24 block matrix ``[[-I, B_l], [W_l, -alpha I]]``
    (supplement 7.7.1: stability measured initially and throughout training)."""
    values = _abscissae(rule, network, alpha)
    return [] if values is None else [float(v) for v in values]


def _abscissae(rule, network, alpha: float = 0.0) -> jax.Array | None:
    from ..core.stability import two_block_eigenvalues

    pairs = rule.feedback_matrices(network)
    if not pairs:
        return None
    alpha = getattr(rule, "alpha", alpha)
    return jnp.stack([jnp.max(jnp.real(two_block_eigenvalues(B, W, 1.0, alpha))) for W, B in pairs])


@eqx.filter_jit
def probe_metrics(rule, network, loss: str, x, t, *, frozen: tuple = (), gauss_newton: bool = True, null_space: int = 0) -> dict:
    """Everything the harness measures of a rule on the probe samples ``x``, ``t``, compiled
    as one program per rule structure (shared forward passes are computed once): the
    angles of :func:`alignment` (``"bp"``, ``"gn"``), :func:`target_metrics`
    (``"null_space"``, ``"e_rec"``, ``"e_approx"``), ``"steady_state"`` (a circuit rule's,
    :meth:`Rule.steady_state`) and ``"abscissa"`` (:func:`feedback_abscissa`), each where
    the rule has it, and the norms of the arrays the rule learns itself (``"norms"``)."""
    out = dict(alignment(rule, network, loss, x, t, frozen=frozen, gauss_newton=gauss_newton))
    out.update(target_metrics(rule, network, loss, x, t, null_space=null_space))
    steady = rule.steady_state(network, x, t, loss)
    if steady is not None:
        out["steady_state"] = steady
    abscissa = _abscissae(rule, network)
    if abscissa is not None:
        out["abscissa"] = abscissa
    out["norms"] = {name: jnp.linalg.norm(v) for name, v in rule.learned_arrays().items()}
    return out
