"""Datasets for the learning experiments (DI supplement, sections 7.7.2-7.7.5).

Everything here is plain numpy; arrays are samples-first (``x`` has shape
``(n, d_in)``) and float64 unless ``dtype`` says otherwise. Every loader returns
a :class:`Dataset`.

Regression (seeded teachers)
----------------------------
* :func:`linear_regression` -- section 7.7.2: ``x ~ N(0, I)``, ``t = T x`` with
  ``T_ij ~ U(-1, 1)``, no biases.
* :func:`nonlinear_regression` -- section 7.7.3: a teacher network 30-20-10-10,
  tanh-tanh-linear, with weights and biases ``~ U(-0.01, 0.01)``.

The teacher, the training inputs and the test inputs are drawn from three
independent streams spawned from ``seed`` (``np.random.SeedSequence(seed).spawn(3)``),
so the teacher does not depend on the set sizes and the test set does not
depend on ``n_train``.

MNIST
-----
:func:`mnist` reads the IDX files of the original MNIST distribution
(http://yann.lecun.com/exdb/mnist/, mirrored e.g. at
https://ossci-datasets.s3.amazonaws.com/mnist/)::

    train-images-idx3-ubyte   train-labels-idx1-ubyte   (60,000 images, optional)
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte    (10,000 images, required)

each either raw or gzip-compressed (``.gz``, as downloaded; gzip is detected
from the content). Put them in a directory and pass it as ``data_dir`` (the
CLI's ``--data-dir``) or set ``NEURODYN_DATA=/path``; a directory whose
``mnist/`` subfolder holds the files works too (``NEURODYN_DATA=DIR`` with the files in ``DIR/mnist``).

Split. In this project only the official *test* set (t10k, 10,000 images) is
shipped, so the experiments use the split ``"test-8k-2k"``: the t10k images are
shuffled with the fixed permutation ``np.random.default_rng(0).permutation(10000)``
(split seed 0, :data:`SPLIT_SEED`, independent of every other seed), the first
8,000 are the training set and the last 2,000 the test set (for a file of ``N``
images: first ``round(0.8 N)`` / the rest). Where the official training files
are present, ``split="official"`` gives the paper's 60,000 / 10,000.

Preprocessing. Classification (section 7.7.4): subtract the per-pixel mean and
divide by one global standard deviation so that the variance across all pixels
is 1; both statistics come from the returned training set only and the same
transform is applied to the test set. Autoencoder (section 7.7.5): pixels / 255
in [0, 1], not centred, targets equal inputs. Images are flattened (784).

Errors in the data (missing, truncated or corrupt files) raise :class:`DataError`,
a one-line ``"<file>: <problem>"`` message (the CLI reports it as invalid input, exit 2).
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


__all__ = [
    "DATA_ENV",
    "MNIST_FILES",
    "SPLIT_SEED",
    "SPLITS",
    "DataError",
    "Dataset",
    "MnistFiles",
    "find_mnist",
    "linear_regression",
    "mnist",
    "nonlinear_regression",
    "principal_components",
    "read_idx",
    "student_teacher",
    "teacher_forward",
]

DATA_ENV = "NEURODYN_DATA"
"""Environment variable naming the data directory (used when no ``data_dir`` is given)."""

SPLIT_SEED = 0
"""Seed of the fixed permutation behind the ``"test-8k-2k"`` split (never varies)."""

SPLITS = ("test-8k-2k", "official")
TASKS = ("regression", "classification", "autoencoder")
N_CLASSES = 10

MNIST_FILES = {
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
}
"""Base names of the MNIST IDX files (each also accepted with ``.gz``)."""

_SOURCE = (
    "the original MNIST distribution (http://yann.lecun.com/exdb/mnist/ "
    "or a mirror such as https://ossci-datasets.s3.amazonaws.com/mnist/; raw or .gz)"
)
_HOW_TO_GET = f"download them from {_SOURCE} and pass their directory with --data-dir DIR (data_dir=) or set {DATA_ENV}=DIR"


class DataError(ValueError):
    """A missing, truncated or corrupt data file: ``str(err)`` is ``"<file>: <problem>"``
    on one line. The CLI reports it as invalid input (exit code 2)."""

    def __init__(self, file, message: str):
        self.file, self.message = str(file), message
        super().__init__(f"{self.file}: " + " ".join(message.split()))

    def __reduce__(self):
        # picklable by its arguments, so that it crosses from a worker process intact
        return type(self), (self.file, self.message)


# --------------------------------------------------------------------------- Dataset


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A train/test pair. ``x_*``: ``(n, d_in)``, ``y_*``: ``(n, d_out)`` targets.

    ``task`` is ``"regression"``, ``"classification"`` (``y`` one-hot, integer
    classes in ``labels_*``) or ``"autoencoder"`` (``y == x``). ``teacher`` holds
    the generating parameters of the regression tasks; ``meta`` records the
    provenance (seed, files, split indices, preprocessing statistics).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str
    name: str
    description: str = ""
    labels_train: np.ndarray | None = None
    labels_test: np.ndarray | None = None
    teacher: Mapping[str, Any] | None = None
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"Dataset.task must be one of {', '.join(TASKS)}, got {self.task!r}")
        for part in ("train", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            labels = getattr(self, f"labels_{part}")
            if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
                raise ValueError(f"Dataset {self.name}: x_{part} {x.shape} and y_{part} {y.shape} must be (n, d) with the same n")
            if labels is not None and labels.shape != (x.shape[0],):
                raise ValueError(f"Dataset {self.name}: labels_{part} has shape {labels.shape}, expected ({x.shape[0]},)")
        if self.x_train.shape[1:] != self.x_test.shape[1:] or self.y_train.shape[1:] != self.y_test.shape[1:]:
            raise ValueError(f"Dataset {self.name}: train and test dimensions differ")

    @property
    def n_train(self) -> int:
        return self.x_train.shape[0]

    @property
    def n_test(self) -> int:
        return self.x_test.shape[0]

    @property
    def d_in(self) -> int:
        return self.x_train.shape[1]

    @property
    def d_out(self) -> int:
        return self.y_train.shape[1]

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, task={self.task!r}, train={self.n_train}, test={self.n_test}, "
            f"d_in={self.d_in}, d_out={self.d_out}, dtype={self.x_train.dtype})"
        )


# --------------------------------------------------------------------------- regression


def _streams(seed: int, n: int):
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def _check_sizes(**sizes: int) -> None:
    for key, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{key} must be a non-negative integer, got {value!r}")


def linear_regression(
    n_train: int,
    n_test: int,
    d_in: int = 30,
    d_out: int = 10,
    *,
    seed: int = 0,
    dtype=np.float64,
) -> Dataset:
    """Section 7.7.2: ``x ~ N(0, I_{d_in})``, ``t = T x``, ``T_ij ~ U(-1, 1)``, no biases.

    ``teacher = {"T": T}`` with ``T`` of shape ``(d_out, d_in)`` (float64); with the
    default float64 the returned targets equal ``x @ T.T`` exactly.
    """
    _check_sizes(n_train=n_train, n_test=n_test, d_in=d_in, d_out=d_out)
    teacher_rng, train_rng, test_rng = _streams(seed, 3)
    T = teacher_rng.uniform(-1.0, 1.0, (d_out, d_in))
    x_train = train_rng.standard_normal((n_train, d_in))
    x_test = test_rng.standard_normal((n_test, d_in))
    return Dataset(
        x_train=x_train.astype(dtype),
        y_train=(x_train @ T.T).astype(dtype),
        x_test=x_test.astype(dtype),
        y_test=(x_test @ T.T).astype(dtype),
        task="regression",
        name="linear_regression",
        description=(
            f"linear regression (DI supplement 7.7.2): x ~ N(0, I_{d_in}), t = T x, "
            f"T ~ U(-1, 1) of shape ({d_out}, {d_in}), no biases; seed {seed}"
        ),
        teacher={"T": T},
        meta={"seed": seed},
    )


def teacher_forward(teacher: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    """Output of a :func:`nonlinear_regression` teacher for inputs ``x`` (``(n, d_in)``), in
    float64 whatever JAX's default precision."""
    import jax
    import jax.numpy as jnp

    from ..core.nonlinearities import parse

    h = np.asarray(x, dtype=np.float64)
    with jax.enable_x64(True):
        for W, b, g in zip(teacher["weights"], teacher["biases"], teacher["nonlinearities"], strict=True):
            h = np.asarray(parse(g)(jnp.asarray(h @ W.T + b)))
    return h


def nonlinear_regression(
    n_train: int,
    n_test: int,
    sizes: Sequence[int] = (30, 20, 10, 10),
    nonlinearities: Sequence[str] = ("tanh", "tanh", "linear"),
    *,
    seed: int = 0,
    weight_scale: float = 0.01,
    dtype=np.float64,
) -> Dataset:
    """Section 7.7.3: targets from a random teacher network of the student's architecture.

    ``h_0 = x ~ N(0, I)``, ``h_l = g_l(W_l h_{l-1} + b_l)``, ``t = h_L``, with every
    ``W_l`` (shape ``(sizes[l], sizes[l-1])``) and ``b_l`` drawn from
    ``U(-weight_scale, weight_scale)``; ``nonlinearities`` use the model-file names
    (``linear``, ``tanh``, ``relu``, ``leaky_relu:<slope>``). ``teacher`` holds
    ``weights``, ``biases`` (float64) and ``nonlinearities``; see :func:`teacher_forward`.

    Target scale. The paper's ``weight_scale = 0.01`` (the default) makes the targets
    tiny and nearly constant: every element has variance ``w^2/3``, so the tanh layers
    are linear and each layer's output is dominated by its bias. With the default
    architecture the targets have a root-mean-square of about 4e-3 to 7e-3 depending on
    the seed (essentially the output bias ``b_3``, rms ``w/sqrt(3)``) and vary across
    inputs by only about 1.3e-5 (std over samples; the input-driven part ``W_3 W_2 W_1 x``
    has std ``w^3 sqrt(30*20*10/27) = 1.5e-5``). ``meta`` records the measured ``target_rms`` and
    ``target_std_over_samples``; pass a larger ``weight_scale`` for a teacher whose
    outputs depend appreciably on the input.
    """
    from ..core.nonlinearities import parse

    sizes = tuple(int(s) for s in sizes)
    nonlinearities = tuple(str(parse(g)) for g in nonlinearities)
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise ValueError(f"sizes must list at least two positive layer widths, got {sizes}")
    if len(nonlinearities) != len(sizes) - 1:
        raise ValueError(f"need one nonlinearity per layer: {len(sizes) - 1} for sizes {sizes}, got {len(nonlinearities)}")
    if not (math.isfinite(weight_scale) and weight_scale >= 0):
        raise ValueError(f"weight_scale must be finite and non-negative, got {weight_scale}")
    _check_sizes(n_train=n_train, n_test=n_test)
    teacher_rng, train_rng, test_rng = _streams(seed, 3)
    w = float(weight_scale)
    weights, biases = [], []
    for l in range(1, len(sizes)):
        weights.append(teacher_rng.uniform(-w, w, (sizes[l], sizes[l - 1])))
        biases.append(teacher_rng.uniform(-w, w, sizes[l]))
    teacher = {"weights": tuple(weights), "biases": tuple(biases), "nonlinearities": nonlinearities}
    x_train = train_rng.standard_normal((n_train, sizes[0]))
    x_test = test_rng.standard_normal((n_test, sizes[0]))
    t_train, t_test = teacher_forward(teacher, x_train), teacher_forward(teacher, x_test)
    rms = float(np.sqrt(np.mean(t_train**2))) if t_train.size else float("nan")
    spread = float(np.mean(np.std(t_train, axis=0))) if n_train > 1 else float("nan")
    arch = "-".join(map(str, sizes))
    return Dataset(
        x_train=x_train.astype(dtype),
        y_train=t_train.astype(dtype),
        x_test=x_test.astype(dtype),
        y_test=t_test.astype(dtype),
        task="regression",
        name="nonlinear_regression",
        description=(
            f"nonlinear regression (DI supplement 7.7.3): teacher {arch} {'-'.join(nonlinearities)}, "
            f"weights and biases ~ U(-{w:g}, {w:g}), x ~ N(0, I); seed {seed}; "
            f"targets rms {rms:.3g}, std over samples {spread:.3g}"
        ),
        teacher=teacher,
        meta={"seed": seed, "weight_scale": w, "target_rms": rms, "target_std_over_samples": spread},
    )


def _conditioned(rng, draw, condition: float, tries: int = 10_000) -> np.ndarray:
    """``draw(rng)`` repeated until ``sigma_min * sigma_max > condition``."""
    for _ in range(tries):
        W = draw(rng)
        sv = np.linalg.svd(W, compute_uv=False)
        if sv[0] * sv[-1] > condition:
            return W
    raise ValueError(f"no draw with sigma_min sigma_max > {condition} in {tries} tries; lower condition")


def student_teacher(
    n_train: int,
    n_test: int,
    sizes: Sequence[int] = (6, 6, 6),
    nonlinearities: Sequence[str] = ("leaky_relu:0.35", "linear"),
    *,
    distance: float = 8.0,
    condition: float = 0.4,
    seed: int = 0,
    dtype=np.float64,
) -> Dataset:
    """The student-teacher regression of the target-propagation thesis (section 5.1.3).

    Teacher weights ``T_l ~ N(0, 1)``, no biases, ``t = h_L`` of the teacher network for
    ``x ~ N(0, I)`` (the thesis says "random inputs"). The student's initial weights lie at
    Frobenius distance ``distance`` from the teacher's, ``W_l = T_l + distance D / ||D||_F``
    with ``D ~ N(0, 1)``. Every layer above the first, of teacher and student, is redrawn
    until ``sigma_min sigma_max > condition`` (the thesis's condition on ``W_2``).
    ``teacher`` holds ``weights``, ``biases`` (zeros), ``nonlinearities`` and ``student``
    (the student's initial weights, used by ``[network] init = "data"``).
    """
    from ..core.nonlinearities import parse

    sizes = tuple(int(v) for v in sizes)
    nonlinearities = tuple(str(parse(g)) for g in nonlinearities)
    if len(sizes) < 2 or len(nonlinearities) != len(sizes) - 1:
        raise ValueError(f"need >= 2 sizes and one nonlinearity per layer, got {sizes} and {nonlinearities}")
    if not (math.isfinite(distance) and distance >= 0 and math.isfinite(condition) and condition >= 0):
        raise ValueError("distance and condition must be finite and non-negative")
    _check_sizes(n_train=n_train, n_test=n_test, **{f"d_{i}": d for i, d in enumerate(sizes)})
    teacher_rng, student_rng, train_rng, test_rng = _streams(seed, 4)
    shapes = [(sizes[l], sizes[l - 1]) for l in range(1, len(sizes))]
    teacher_W, student_W = [], []
    for l, shape in enumerate(shapes, start=1):
        draw = lambda rng, shape=shape: rng.standard_normal(shape)  # noqa: E731
        T = _conditioned(teacher_rng, draw, condition) if l > 1 else draw(teacher_rng)

        def near(rng, T=T, shape=shape):
            D = rng.standard_normal(shape)
            return T + distance * D / np.linalg.norm(D)

        teacher_W.append(T)
        student_W.append(_conditioned(student_rng, near, condition) if l > 1 else near(student_rng))
    teacher = {
        "weights": tuple(teacher_W), "biases": tuple(np.zeros(d) for d in sizes[1:]), "nonlinearities": nonlinearities,
        "student": tuple(student_W),
    }
    x_train, x_test = train_rng.standard_normal((n_train, sizes[0])), test_rng.standard_normal((n_test, sizes[0]))
    arch = "-".join(map(str, sizes))
    return Dataset(
        x_train=x_train.astype(dtype), y_train=teacher_forward(teacher, x_train).astype(dtype),
        x_test=x_test.astype(dtype), y_test=teacher_forward(teacher, x_test).astype(dtype),
        task="regression", name="student_teacher",
        description=(
            f"student-teacher regression (TP thesis 5.1.3): teacher {arch} {'-'.join(nonlinearities)}, weights ~ N(0, 1), "
            f"no biases, x ~ N(0, I); student starts at distance {distance:g}; sigma_min sigma_max > {condition:g} above layer 1; seed {seed}"
        ),
        teacher=teacher, meta={"seed": seed, "distance": distance, "condition": condition},
    )


# --------------------------------------------------------------------------- IDX files

_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a native-endian numpy array.

    Format: two zero bytes, a dtype code (0x08 uint8, 0x09 int8, 0x0B int16,
    0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, then
    each dimension as a big-endian uint32, then the data (big-endian, C order).
    Raises :class:`DataError` naming the file on a bad magic number, an unknown
    dtype code, a short header or a data size that does not match the dimensions.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "no such file") from None
    except OSError as err:
        raise DataError(path, f"cannot read: {err.strerror or err}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(path, f"corrupt or truncated gzip data ({err}); download the file again") from None
    if len(raw) < 4:
        raise DataError(path, f"not an IDX file: only {len(raw)} bytes, shorter than the 4-byte magic number")
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(path, f"not an IDX file: magic number starts with 0x{raw[0]:02x}{raw[1]:02x}, expected 0x0000")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise DataError(path, f"unknown IDX data type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise DataError(path, "IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(path, f"truncated IDX header: {ndim} dimensions need {header} bytes, file has {len(raw)}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        raise DataError(path, f"IDX data {what}: dimensions {dims} of {dtype.name} need {expected} bytes, found {got}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


# --------------------------------------------------------------------------- MNIST files


@dataclasses.dataclass(frozen=True)
class MnistFiles:
    """Resolved MNIST IDX paths; the official training pair is ``None`` when absent."""

    directory: Path
    test_images: Path
    test_labels: Path
    train_images: Path | None = None
    train_labels: Path | None = None

    @property
    def has_train(self) -> bool:
        return self.train_images is not None and self.train_labels is not None


def _candidates(base: str) -> list[str]:
    dotted = base.replace("-idx", ".idx")  # some mirrors write t10k-images.idx3-ubyte
    return [base, base + ".gz", dotted, dotted + ".gz"]


def _locate(directory: Path, base: str) -> Path | None:
    for name in _candidates(base):
        if (directory / name).is_file():
            return directory / name
    return None


def find_mnist(data_dir=None) -> MnistFiles:
    """Locate the MNIST IDX files.

    The directory is ``data_dir`` if given, else ``$NEURODYN_DATA``; the files may lie
    in it or in its ``mnist/`` subfolder. The t10k pair is required, the official
    training pair is picked up when present. Raises :class:`DataError` naming the
    expected files and how to provide them.
    """
    expected = " and ".join(f"{MNIST_FILES[k]}[.gz]" for k in ("test_images", "test_labels"))
    if data_dir is None or str(data_dir) == "":
        env = os.environ.get(DATA_ENV, "")
        if not env:
            raise DataError(
                "MNIST", f"no data directory given: pass --data-dir DIR (data_dir=) or set {DATA_ENV}=DIR "
                f"to a directory holding {expected} from {_SOURCE}"
            )
        data_dir = env
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(
            root, f"MNIST data directory (from --data-dir or {DATA_ENV}) does not exist; it should hold "
            f"{expected}; {_HOW_TO_GET}"
        )
    for directory in (root, root / "mnist"):
        if not directory.is_dir():
            continue
        test_images = _locate(directory, MNIST_FILES["test_images"])
        test_labels = _locate(directory, MNIST_FILES["test_labels"])
        if test_images is None or test_labels is None:
            continue
        train_images = _locate(directory, MNIST_FILES["train_images"])
        train_labels = _locate(directory, MNIST_FILES["train_labels"])
        if train_images is None or train_labels is None:
            train_images = train_labels = None
        return MnistFiles(directory, test_images, test_labels, train_images, train_labels)
    raise DataError(
        root, f"MNIST files not found: expected {expected} (optionally also "
        f"{MNIST_FILES['train_images']}[.gz] and {MNIST_FILES['train_labels']}[.gz]) in this directory "
        f"or its mnist/ subfolder; {_HOW_TO_GET}"
    )


def _load_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(images_path, f"expected uint8 images of shape (n, rows, cols), got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(labels_path, f"expected uint8 labels of shape (n,), got {labels.dtype} {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise DataError(labels_path, f"{labels.shape[0]} labels for {images.shape[0]} images in {images_path.name}")
    if labels.size and labels.max() >= N_CLASSES:
        raise DataError(labels_path, f"label {int(labels.max())} out of range 0..{N_CLASSES - 1}")
    return images.reshape(images.shape[0], -1), labels.astype(np.int64)


def _subset(part: np.ndarray, n: int | None, rng: np.random.Generator, what: str, split: str) -> np.ndarray:
    if n is None:
        return part
    _check_sizes(**{what: n})
    if n > part.size:
        raise ValueError(f"{what}={n} exceeds the {part.size} examples of the split {split!r}")
    if n == part.size:
        return part
    return part[np.sort(rng.choice(part.size, n, replace=False))]


def _one_hot(labels: np.ndarray, dtype) -> np.ndarray:
    out = np.zeros((labels.size, N_CLASSES), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out


def mnist(
    data_dir=None,
    *,
    task: str = "classification",
    split: str = "test-8k-2k",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    dtype=np.float64,
) -> Dataset:
    """MNIST for classification (section 7.7.4) or autoencoding (section 7.7.5).

    ``split="test-8k-2k"`` (default): the official test file only, permuted by
    ``np.random.default_rng(SPLIT_SEED=0).permutation(N)``; the first ``round(0.8 N)``
    images (8,000) train, the rest (2,000) test. ``split="official"``: the 60,000
    training and 10,000 test images (needs the train files). ``n_train`` / ``n_test``
    take a ``seed``-ed random subset of each part (kept in split order; ``seed`` never
    changes the split, so a subset of the test part never overlaps any training part).

    ``task="classification"``: per-pixel mean removed and one global scale so that the
    training pixels have variance 1, statistics from the returned training set only
    and applied unchanged to the test set; ``y`` one-hot (10), ``labels_*`` integers.
    ``task="autoencoder"``: pixels / 255 in [0, 1], ``y`` equal to ``x``.

    ``meta`` records the files, ``split``, ``split_seed``, ``train_indices`` /
    ``test_indices`` (rows of the source files) and, for classification,
    ``pixel_mean`` and ``pixel_scale``.
    """
    if task not in ("classification", "autoencoder"):
        raise ValueError(f"task must be 'classification' or 'autoencoder', got {task!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(repr(s) for s in SPLITS)}, got {split!r}")
    files = find_mnist(data_dir)
    rng = np.random.default_rng(seed)
    test_images, test_labels = _load_pair(files.test_images, files.test_labels)
    if split == "official":
        if not files.has_train:
            raise DataError(
                files.directory, f"split 'official' needs {MNIST_FILES['train_images']}[.gz] and "
                f"{MNIST_FILES['train_labels']}[.gz] next to the t10k files; {_HOW_TO_GET}, or use split='test-8k-2k'"
            )
        train_images, train_labels = _load_pair(files.train_images, files.train_labels)
        if train_images.shape[1] != test_images.shape[1]:
            raise DataError(files.train_images, f"image size {train_images.shape[1]} differs from the t10k images' {test_images.shape[1]}")
        train_idx = _subset(np.arange(train_images.shape[0]), n_train, rng, "n_train", split)
        test_idx = _subset(np.arange(test_images.shape[0]), n_test, rng, "n_test", split)
        x_train, l_train = train_images[train_idx], train_labels[train_idx]
        x_test, l_test = test_images[test_idx], test_labels[test_idx]
        source = {"train": str(files.train_images), "test": str(files.test_images)}
        split_text = "official 60k/10k split"
    else:
        n = test_images.shape[0]
        if n < 2:
            raise DataError(files.test_images, f"only {n} images; the split needs at least 2")
        perm = np.random.default_rng(SPLIT_SEED).permutation(n)
        n_part = int(round(0.8 * n))
        train_idx = _subset(perm[:n_part], n_train, rng, "n_train", split)
        test_idx = _subset(perm[n_part:], n_test, rng, "n_test", split)
        x_train, l_train = test_images[train_idx], test_labels[train_idx]
        x_test, l_test = test_images[test_idx], test_labels[test_idx]
        source = {"train": str(files.test_images), "test": str(files.test_images)}
        split_text = (
            f"split test-8k-2k of the official test set: permutation default_rng({SPLIT_SEED}) of its {n} images, "
            f"first {n_part} train / last {n - n_part} test"
        )
    x_train = x_train.astype(np.float64) / 255.0
    x_test = x_test.astype(np.float64) / 255.0
    meta: dict[str, Any] = {
        "files": source,
        "split": split,
        "split_seed": SPLIT_SEED if split == "test-8k-2k" else None,
        "seed": seed,
        "train_indices": train_idx,
        "test_indices": test_idx,
    }
    if task == "classification":
        if x_train.shape[0] == 0:
            raise ValueError("classification preprocessing needs at least one training image (n_train >= 1)")
        mean = x_train.mean(axis=0)
        centred = x_train - mean
        scale = float(np.sqrt(np.mean(centred**2)))
        if not scale > 0:
            raise DataError(source["train"], "all training images are identical; cannot normalise the pixel variance")
        x_train, x_test = centred / scale, (x_test - mean) / scale
        meta.update(pixel_mean=mean, pixel_scale=scale)
        y_train, y_test = _one_hot(l_train, dtype), _one_hot(l_test, dtype)
        prep = "per-pixel mean removed and global variance scaled to 1 (training statistics)"
    else:
        y_train, y_test = x_train.astype(dtype), x_test.astype(dtype)
        prep = "pixels / 255 in [0, 1], targets = inputs"
    return Dataset(
        x_train=x_train.astype(dtype),
        y_train=y_train,
        x_test=x_test.astype(dtype),
        y_test=y_test,
        task=task,
        name=f"mnist-{task}",
        description=f"MNIST {task} ({split_text}); {len(train_idx)} train / {len(test_idx)} test; {prep}",
        labels_train=l_train,
        labels_test=l_test,
        meta=meta,
    )


# --------------------------------------------------------------------------- preprocessing


def principal_components(ds: Dataset, k: int) -> Dataset:
    """``ds`` with its inputs replaced by their first ``k`` principal components, fitted on
    the (already centred) training inputs only and applied unchanged to the test inputs,
    then scaled by one number so that the training components have mean variance 1.
    Targets are kept (an autoencoder's ``y`` stays the pixels)."""
    if not 0 < k <= min(ds.x_train.shape):
        raise ValueError(f"pca = {k} needs 1 <= k <= min(n_train, d_in) = {min(ds.x_train.shape)}")
    mean = ds.x_train.mean(axis=0)
    _, _, Vt = np.linalg.svd(ds.x_train - mean, full_matrices=False)
    P = Vt[:k].T
    z_train, z_test = (ds.x_train - mean) @ P, (ds.x_test - mean) @ P
    scale = np.sqrt(np.mean(z_train**2))
    meta = {**ds.meta, "pca_components": k, "pca_scale": float(scale)}
    return dataclasses.replace(
        ds, x_train=z_train / scale, x_test=z_test / scale, name=f"{ds.name}_pca{k}",
        description=f"{ds.description}; inputs: first {k} principal components of the training inputs, scaled to mean variance 1",
        meta=meta,
    )
