"""MNIST t10k for the benchmarks, split and scaled as ``neurodyn.learning.data.mnist`` does
(split ``"test-8k-2k"``, classification preprocessing), or, without the files, synthetic
data of the same shapes (noisy class prototypes in [0, 1], 10 one-hot classes) split and
scaled the same way. The timings do not depend on the values; ``Data.source`` says which."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from neurodyn.learning.data import DATA_ENV, SPLIT_SEED, DataError, find_mnist, mnist

N_TRAIN, N_TEST, PIXELS = 8000, 2000, 784


def synthetic_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy class prototypes in [0, 1] with MNIST's shapes: ``(n, 784)`` floats, labels."""
    rng = np.random.default_rng(seed)
    prototypes = rng.uniform(0.0, 1.0, (10, PIXELS))
    labels = rng.integers(0, 10, n)
    return np.clip(prototypes[labels] + 0.5 * rng.standard_normal((n, PIXELS)), 0.0, 1.0), labels


@dataclass
class Data:
    x_train: np.ndarray
    t_train: np.ndarray
    x_test: np.ndarray
    t_test: np.ndarray
    source: str


def load_data(data_dir: str | None) -> Data:
    """MNIST t10k through ``neurodyn.learning.data.mnist`` (split ``test-8k-2k``,
    classification preprocessing), or synthetic data split and scaled the same way."""
    base = data_dir or os.environ.get(DATA_ENV)
    try:
        files = find_mnist(base)
    except DataError:
        files = None
    if files is not None:
        ds = mnist(files.directory, task="classification", split="test-8k-2k")
        return Data(ds.x_train, ds.y_train, ds.x_test, ds.y_test, f"MNIST t10k ({files.directory})")
    x, labels = synthetic_images(N_TRAIN + N_TEST, SPLIT_SEED)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    train, test = order[:N_TRAIN], order[-N_TEST:]
    mean = x[train].mean(axis=0)
    scale = float(np.sqrt(np.mean((x[train] - mean) ** 2)))
    onehot = np.eye(10)[labels]
    return Data((x[train] - mean) / scale, onehot[train], (x[test] - mean) / scale, onehot[test], f"synthetic (no MNIST t10k files under {base})")
