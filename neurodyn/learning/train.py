"""Training: online or mini-batch SGD with weight decay, the updates coming from a
credit-assignment rule (supplement Eq. 2, section 7.7).

Each mini-batch is one :meth:`Rule.step`: for the signal rules ``W_l += eta (sum_b
delta_l h_{l-1}^T - lambda W_l)`` and ``b_l += eta sum_b delta_l``, with each sample's
backpropagated ``delta_l`` (hidden layers; the output error too only with
``clip_output``) clipped to ``||delta_l|| <= clip`` (7.7.1); rules with parameters of their
own (learned inverses, plastic circuits) update those in the same step. Updates are
summed over a mini-batch (the paper's learning rate 1e-6 for mini-batches of 100 implies
sums). The samples of one evaluation interval run in a single ``lax.scan``; the order of
an epoch is a permutation drawn from ``(seed, epoch)``, so a run resumed at any interval
repeats and skips nothing.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .losses import loss_value
from .network import Network
from .optimizer import SGD, apply_updates, clip_norm
from .rules import Rule

__all__ = ["SGD", "apply_updates", "clip_norm", "run_steps", "run_steps_seeds", "stack", "unstack", "spread", "gather", "spreadable", "seed_slots", "on_host", "same_structure", "epoch_order", "batches", "evaluate"]


@eqx.filter_jit
def run_steps(rule: Rule, network: Network, loss: str, opt: SGD, xs, ts) -> tuple[Network, Rule]:
    """One ``lax.scan`` over mini-batches ``xs`` (steps, batch, d_0): the network and the
    rule (its own parameters) after them."""

    def body(carry, xt):
        net, r = carry
        return r.step(net, *xt, loss, opt), None

    (network, rule), _ = jax.lax.scan(body, (network, rule), (xs, ts))
    return network, rule


@eqx.filter_jit
def run_steps_seeds(rules: Rule, networks: Network, loss: str, opt: SGD, xs, ts) -> tuple[Network, Rule]:
    """:func:`run_steps` for several seeds in one program: ``rules`` and ``networks`` stacked
    along a leading seed axis (:func:`stack`), ``xs``, ``ts`` of shape (seeds, steps, batch,
    d). The seeds' steps run side by side (``vmap``): one program, wider matrix products."""
    seeds = eqx.if_array(0)  # a module's non-array leaves (a rule's leak) are shared, not mapped
    return eqx.filter_vmap(run_steps, in_axes=(seeds, seeds, None, None, 0, 0))(rules, networks, loss, opt, xs, ts)


def stack(trees: list):
    """Modules of one structure as one, their arrays stacked along a new leading axis."""
    arrays = [eqx.filter(t, eqx.is_array) for t in trees]
    return eqx.combine(jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *arrays), eqx.filter(trees[0], eqx.is_array, inverse=True))


def seed_slots(n: int) -> int:
    """How many stacked entries ``n`` seeds take so that :func:`spread` splits them evenly:
    each device it uses holds as many seeds as the busiest must (``ceil(n / devices)``),
    on as few devices as that needs, so fewer than that many entries are extra (3 seeds on
    2 devices: 4; 20 on 16: 20 on 10). The harness fills the extra entries with copies of
    the last seed and discards them."""
    return _seed_devices(n) * -(-n // _seed_devices(n))


def _seed_devices(n: int) -> int:
    """The devices ``n`` stacked seeds use (:func:`seed_slots`)."""
    per_device = -(-max(n, 1) // jax.device_count())
    return -(-max(n, 1) // per_device)


def spread(tree):
    """A :func:`stack` placed with its leading (seed) axis split evenly over the default
    backend's devices: a program that takes it (:func:`run_steps_seeds`) then runs each
    device's seeds on that device, side by side, with no communication (the seeds are
    independent). The devices are the GPUs, or on a CPU the cores JAX was told to present
    as devices (``jax_num_cpu_devices``; ``neurodyn sweep`` sets it from ``--workers``).
    Unchanged on one device, or where the seeds do not divide evenly (:func:`seed_slots`)."""
    arrays, static = eqx.partition(tree, eqx.is_array)
    leaves = jax.tree_util.tree_leaves(arrays)
    n = leaves[0].shape[0] if leaves else 0
    d = _seed_devices(n)
    if d <= 1 or n % d:
        return tree
    return eqx.combine(jax.device_put(arrays, _seed_sharding(d)), static)


@functools.cache
def _seed_sharding(d: int):
    """A leading (seed) axis split over the first ``d`` devices."""
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:d]), ("seed",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seed"))


def gather(tree, n: int | None = None):
    """The first ``n`` (default all) entries of a :func:`spread` stack, on one device."""
    arrays, static = eqx.partition(tree, eqx.is_array)
    return eqx.combine(jax.device_put(jax.tree_util.tree_map(lambda a: a[:n], arrays), jax.devices()[0]), static)


#: Primitives whose CPU kernels wait on the thread pool they run on: the LAPACK kernels,
#: which jaxlib (0.10.2) splits over the same pool the CPU devices execute on and then
#: blocks until the parts finish (with two devices running such a call at once on two
#: cores every thread waits and the program never ends; seen with the eigenvalues of dynamic
#: inversion's steady-state check), and the FFT, reported to block the same way. Programs
#: that contain one run on a single CPU device.
POOL_BLOCKING_PRIMITIVES = frozenset({
    "cholesky", "cholesky_update", "eig", "eigh", "geqp3", "geqrf", "hessenberg", "householder_product", "lu", "ormqr", "qr",
    "schur", "svd", "symmetric_product", "triangular_solve", "tridiagonal", "tridiagonal_solve", "fft",
})


def spreadable(fn, *args) -> bool:
    """Whether the program ``fn(*args)`` may run its seeds on several devices at once:
    always on GPUs, on CPU devices only if it calls none of the
    :data:`POOL_BLOCKING_PRIMITIVES` (checked on its traced program, nothing is compiled or
    run)."""
    if jax.device_count() <= 1:
        return False
    if jax.default_backend() != "cpu":
        return True
    return not _primitives(eqx.filter_make_jaxpr(fn)(*args)[0].jaxpr) & POOL_BLOCKING_PRIMITIVES


def _primitives(jaxpr) -> set[str]:
    """The names of every primitive of ``jaxpr``, those of nested programs (loop bodies,
    branches, calls) included."""
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr holds its Jaxpr
                if hasattr(inner, "eqns"):
                    names |= _primitives(inner)
    return names


def on_host(tree):
    """A module with its arrays copied to the host (numpy), e.g. to :func:`unstack` every
    seed of a stack with one transfer."""
    arrays, static = eqx.partition(tree, eqx.is_array)
    return eqx.combine(jax.tree_util.tree_map(np.asarray, arrays), static)


def unstack(tree, i: int):
    """Entry ``i`` of a :func:`stack`."""
    arrays, static = eqx.partition(tree, eqx.is_array)
    return eqx.combine(jax.tree_util.tree_map(lambda x: x[i], arrays), static)


def same_structure(trees: list) -> bool:
    """Whether modules can be stacked: the same non-array fields, arrays of the same shapes
    and dtypes."""
    flat = [jax.tree_util.tree_flatten(eqx.filter(t, eqx.is_array)) for t in trees]
    kinds = [(treedef, [(x.shape, x.dtype) for x in leaves]) for leaves, treedef in flat]
    statics = [eqx.filter(t, eqx.is_array, inverse=True) for t in trees]
    return all(k == kinds[0] for k in kinds) and all(eqx.tree_equal(s, statics[0]) is True for s in statics)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of one epoch: a permutation fixed by ``(seed, epoch)``."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def batches(x, t, *, start: int, steps: int, batch_size: int, seed: int):
    """Mini-batches ``start .. start + steps`` of the infinite, epoch-wise shuffled stream:
    ``(steps, batch, d)`` numpy arrays (an epoch's last partial batch is dropped)."""
    epoch, k = np.divmod(np.arange(start, start + steps), len(x) // batch_size)
    first = epoch[0] if steps else 0
    orders = np.stack([epoch_order(len(x), seed, e) for e in range(first, epoch[-1] + 1 if steps else 1)])  # one per epoch
    idx = orders[epoch[:, None] - first, k[:, None] * batch_size + np.arange(batch_size)]
    return np.asarray(x)[idx], np.asarray(t)[idx]


@eqx.filter_jit
def evaluate(network: Network, loss: str, x, t, classification: bool = False) -> dict:
    """Mean loss, and accuracy (argmax of the output against argmax of the one-hot ``t``)
    for cross-entropy or when ``classification`` is set."""
    fwd = network.forward(x)
    out = {"loss": jnp.mean(loss_value(loss, fwd, t))}
    if classification or loss == "cross_entropy":
        out["accuracy"] = jnp.mean(jnp.argmax(fwd.a[-1], axis=-1) == jnp.argmax(t, axis=-1))
    return out
