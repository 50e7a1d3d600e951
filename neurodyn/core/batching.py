"""Batching, in one place for the pipelines (:mod:`.simulate`, :mod:`.continuation` and
:mod:`.equilibrium`): inputs given a leading batch axis, a circuit's one-sample vector field
mapped over it, the per-sample size of a batched state or rate, and a batch function run
in chunks."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from .circuit import Circuit


def batch_inputs(circuit: Circuit, inputs: Mapping[str, jax.Array]) -> tuple[dict, int, bool]:
    """Give every input a leading batch axis of the same size.

    Returns ``(batched_inputs, batch_size, had_batch)``. Raises ValueError on a missing,
    unknown or wrong-shaped input.
    """
    shapes = circuit.input_shapes()
    unknown = set(inputs) - set(shapes)
    if unknown:
        raise ValueError(f"unknown inputs {sorted(unknown)}; this circuit takes {sorted(shapes)}")
    sizes = set()
    arrays = {}
    for name, shape in shapes.items():
        if name not in inputs:
            raise ValueError(f"missing input '{name}' of shape {shape}")
        a = jnp.asarray(inputs[name])
        if a.shape == shape:
            pass
        elif a.ndim == len(shape) + 1 and a.shape[1:] == shape:
            sizes.add(a.shape[0])
        else:
            raise ValueError(f"input '{name}' has shape {a.shape}; expected {shape} or (batch, *{shape})")
        arrays[name] = a
    if len(sizes) > 1:
        raise ValueError(f"inputs carry different batch sizes {sorted(sizes)}")
    had_batch = bool(sizes)
    n = sizes.pop() if sizes else 1
    out = {k: (a if a.ndim == len(shapes[k]) + 1 else jnp.broadcast_to(a, (n, *shapes[k]))) for k, a in arrays.items()}
    return out, n, had_batch


def batched_vector_field(circuit: Circuit):
    """``f(t, y, inputs)`` over a leading batch axis of ``y`` and ``inputs``, in the state's
    precision (a float32 state stays float32 where time-dependent signals are float64)."""

    def f(t, y, inputs):
        dy = jax.vmap(circuit.vector_field, in_axes=(None, 0, 0))(t, y, inputs)
        return {k: v.astype(y[k].dtype) for k, v in dy.items()}

    return f


def sample_max_abs(tree) -> jax.Array:
    """Per-sample ``max |.|`` over every leaf of a batched PyTree."""
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.max(jnp.stack([jnp.max(jnp.abs(x.reshape(x.shape[0], -1)), axis=1) for x in leaves]), axis=0)


def sample_finite(tree):
    """Per sample: whether every entry of every leaf of a batched PyTree is finite (numpy or
    JAX arrays; the answer is a JAX array)."""
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(jnp.reshape(x, (x.shape[0], -1))), axis=1) for x in leaves]), axis=0)


def sample_where(mask, a, b):
    """``a`` where the per-sample ``mask`` holds, else ``b`` (batched PyTrees alike)."""
    return jax.tree_util.tree_map(lambda x, y: jnp.where(jnp.reshape(mask, (-1,) + (1,) * (x.ndim - 1)), x, y), a, b)


def in_chunks(fn, tree, size: int):
    """``fn(tree)`` for a batched ``tree`` whose outputs are per sample (a PyTree of arrays
    with the batch axis first), computed ``size`` samples at a time: the whole chunks by
    ``lax.map`` (each sliced inside the loop, no copy of the batch), the rest in one piece;
    a batch of fewer than two chunks in one piece. Keeps the temporaries of ``fn`` (the
    vector field, every sample's loop products and eigenproblems) a chunk's size."""
    n = jax.tree_util.tree_leaves(tree)[0].shape[0]
    k = n // size
    if k <= 1:
        return fn(tree)
    whole = k * size

    def chunk(i):
        return fn(jax.tree_util.tree_map(lambda x: jax.lax.dynamic_slice_in_dim(x, i * size, size), tree))

    out = jax.tree_util.tree_map(lambda x: x.reshape(whole, *x.shape[2:]), jax.lax.map(chunk, jnp.arange(k)))
    if whole == n:
        return out
    rest = fn(jax.tree_util.tree_map(lambda x: x[whole:], tree))
    return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), out, rest)
