"""Target propagation with exact inverses (thesis section 4.1, Algorithms 4.1 and A.4-A.5):
``hhat_l = f_{l+1}^{-1}(hhat_{l+1}) = W_{l+1}^{-1} (s_{l+1}^{-1}(hhat_{l+1}) - b_{l+1})``
(4.3, 4.16), the inverses kept exact by the robust Sherman-Morrison update.

Each sample's update of a layer is the rank-one ``u v^T`` with ``u = lr delta_l`` (the
local-loss signal, :mod:`.targets`) and ``v = h_{l-1}`` (4.17-4.18). Algorithm 4.1 applies
it to ``W_l`` and ``W_l^{-1}`` together: with ``d = v^T W_l^{-1} u``, if ``|1 + d| >= eps``
the plain Sherman-Morrison formula (4.19), else ``W_l += beta u v^T`` with ``beta = 1 /
(eps - d)`` (4.80) and ``W_l^{-1} -= W_l^{-1} u v^T W_l^{-1} / eps``, which is again the
exact inverse and keeps ``W_l`` away from singular matrices (``beta`` in ``(1/(1+2 eps),
1)``). A mini-batch applies its samples' rank-one updates one after another, each with its
own ``beta`` (the thesis uses batch size 1); weight decay scales ``W_l`` and its inverse
first. The randomised variant (A.5) updates one layer per mini-batch, drawn uniformly.

The layers ``2..L`` must be square and invertible: equal sizes ``d_1 = ... = d_L`` and
nonlinearities with an inverse on the whole real line (linear, leaky ReLU; a softmax
output counts as linear, its targets live on ``a_L``).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field

from .base import register_rule
from .targets import TargetOptions, TargetRule


class TPExactOptions(TargetOptions):
    epsilon: float = Field(0.5, gt=0, description="threshold eps of the robust Sherman-Morrison update (Algorithm 4.1)")
    randomized: bool = Field(False, description="update one random layer per mini-batch (Algorithm A.5)")

    def check_network(self, network_spec):
        super().check_network(network_spec)
        sizes, names = list(network_spec.sizes), list(network_spec.nonlinearities)
        if len(set(sizes[1:])) != 1:
            raise ValueError(f"rule '{self.rule}' needs square layers 2..L (equal sizes after the input), got sizes {sizes}")
        bad = [n for n in names[1:] if n.split(":")[0] not in ("linear", "leaky_relu", "softmax")]
        if bad:
            raise ValueError(f"rule '{self.rule}' inverts layers 2..L: their nonlinearities must be invertible on R (linear, leaky_relu), got '{bad[0]}'")


def robust_sherman_morrison(W, W_inv, u, v, epsilon):
    """One step of Algorithm 4.1: ``(W + beta u v^T, (W + beta u v^T)^{-1}, beta)``."""
    Wu = W_inv @ u
    d = v @ Wu
    plain = jnp.abs(1.0 + d) >= epsilon
    beta = jnp.where(plain, 1.0, 1.0 / (epsilon - d))
    denominator = jnp.where(plain, 1.0 + d, epsilon)
    return W + beta * jnp.outer(u, v), W_inv - jnp.outer(Wu, v @ W_inv) / denominator, beta


@register_rule
class TPExact(TargetRule):
    name = "tp_exact"
    summary = "target propagation with exact inverses W^-1, kept by the robust Sherman-Morrison update (thesis Algorithm 4.1)"
    Options = TPExactOptions
    W_inv: tuple  # W_2^{-1} .. W_L^{-1}
    key: jax.Array
    epsilon: float = eqx.field(static=True)
    randomized: bool = eqx.field(static=True)

    @classmethod
    def build(cls, network, options, *, seed, lr):
        W_inv = tuple(jnp.linalg.inv(W) for W in network.W[1:])
        cond = [float(np.linalg.cond(np.asarray(W))) for W in network.W[1:]]
        rule = cls(
            target_stepsize=options.target_stepsize, W_inv=W_inv, key=jax.random.key_data(jax.random.PRNGKey(seed)),
            epsilon=options.epsilon, randomized=options.randomized,
        )
        return rule, {"condition_numbers": cond}

    def targets(self, network, fwd, o_hat):
        out = [o_hat]
        for l in range(network.L, 1, -1):
            pre = network.target_nonlinearity(l).inverse(out[-1]) - network.b[l - 1]
            out.append(jnp.einsum("...j,ij->...i", pre, self.W_inv[l - 2]))
        return tuple(reversed(out[1:]))

    def step(self, network, x, t, loss, opt):
        key, sub = jax.random.split(jax.random.wrap_key_data(self.key))
        chosen = jax.random.randint(sub, (), 1, network.L + 1)
        fwd, deltas = self.deltas(network, x, t, loss, opt)
        W, b, W_inv = list(network.W), list(network.b), list(self.W_inv)
        keep = 1.0 - opt.lr * opt.weight_decay
        for l in range(1, network.L + 1):
            if l in opt.frozen:
                continue
            on = (chosen == l).astype(W[0].dtype) if self.randomized else 1.0
            u, v = on * opt.lr * deltas[l - 1], fwd.h[l - 1]
            if network.biases:
                b[l - 1] = b[l - 1] + jnp.sum(u, axis=0)
            if l == 1:
                W[0] = keep * W[0] + u.T @ v
                continue

            def one(carry, uv):
                Wl, Wl_inv, _ = robust_sherman_morrison(*carry, *uv, self.epsilon)
                return (Wl, Wl_inv), None

            (W[l - 1], W_inv[l - 2]), _ = jax.lax.scan(one, (keep * W[l - 1], W_inv[l - 2] / keep), (u, v))
        network = eqx.tree_at(lambda n: (n.W, n.b), network, (tuple(W), tuple(b)))
        return network, eqx.tree_at(lambda r: (r.W_inv, r.key), self, (tuple(W_inv), jax.random.key_data(key)))

    def learned_arrays(self):
        return {f"W{l}_inv": w for l, w in enumerate(self.W_inv, start=2)}
