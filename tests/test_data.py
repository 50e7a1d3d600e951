"""Datasets: IDX reader, MNIST location/split/preprocessing, regression teachers."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from neurodyn.learning.data import (
    DATA_ENV,
    DataError,
    Dataset,
    find_mnist,
    linear_regression,
    mnist,
    nonlinear_regression,
    read_idx,
)

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"

CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(array, code=None) -> bytes:
    """Encode ``array`` in the IDX format: 0, 0, dtype code, ndim, big-endian dims, big-endian data."""
    array = np.asarray(array)
    code = CODES[array.dtype.type] if code is None else code
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array, *, gz=False, code=None) -> Path:
    data = idx_bytes(array, code)
    path = Path(path)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def fake_mnist(directory, n=100, *, gz=True, prefix="t10k", seed=0):
    """``n`` random 28x28 uint8 images (with a constant-zero border, like MNIST) and labels."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 4:24, 4:24] = rng.integers(0, 256, (n, 20, 20), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    rng.shuffle(labels)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    write_idx(directory / f"{prefix}-images-idx3-ubyte{ext}", images, gz=gz)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte{ext}", labels, gz=gz)
    return images, labels


# --------------------------------------------------------------------------- read_idx


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(256, dtype=np.uint8),
        np.arange(-5, 5, dtype=np.int8),
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        np.array([[-300, 7], [32000, -1]], dtype=np.int16),
        np.array([-(2**31), 0, 2**31 - 1, 12345], dtype=np.int32),
        np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
        np.array([np.pi, -np.e, 1e-300, 1e300], dtype=np.float64).reshape(1, 2, 2),
    ],
    ids=["u8-1d", "i8", "u8-3d", "i16", "i32", "f32", "f64"],
)
def test_read_idx_round_trip(tmp_path, array, gz):
    path = write_idx(tmp_path / ("a.idx.gz" if gz else "a.idx"), array, gz=gz)
    out = read_idx(path)
    assert out.dtype == array.dtype and out.dtype.isnative
    assert out.shape == array.shape
    np.testing.assert_array_equal(out, array)


def test_read_idx_detects_gzip_by_content(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "plain-name", array, gz=True)), array)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda b: b[:-1], "truncated"),
        (lambda b: b + b"\x00", "trailing"),
        (lambda b: b[:6], "truncated IDX header"),
        (lambda b: b[:2], "magic"),
        (lambda b: b"\x01\x02" + b[2:], "magic"),
        (lambda b: b[:2] + b"\x0a" + b[3:], "data type code 0x0A"),
    ],
    ids=["short-data", "extra-data", "short-header", "tiny", "bad-magic", "bad-dtype"],
)
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_corrupt_files(tmp_path, mutate, match, gz):
    data = mutate(idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4)))
    path = tmp_path / "broken-labels-idx1-ubyte"
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(DataError, match=match) as err:
        read_idx(path)
    message = str(err.value)
    assert "broken-labels-idx1-ubyte" in message and "\n" not in message
    assert isinstance(err.value, ValueError)


def test_read_idx_truncated_gzip_and_missing_file(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32)))[:-20])
    with pytest.raises(DataError, match="x.gz: corrupt or truncated gzip"):
        read_idx(path)
    with pytest.raises(DataError, match="nope: no such file"):
        read_idx(tmp_path / "nope")


# --------------------------------------------------------------------------- find_mnist


def test_find_mnist_explicit_dir_env_and_subfolder(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    fake_mnist(tmp_path / "flat", n=10, gz=False)
    files = find_mnist(tmp_path / "flat")
    assert files.test_images == tmp_path / "flat" / "t10k-images-idx3-ubyte"
    assert files.test_labels == tmp_path / "flat" / "t10k-labels-idx1-ubyte"
    assert not files.has_train and files.train_images is None

    fake_mnist(tmp_path / "data" / "mnist", n=10)
    fake_mnist(tmp_path / "data" / "mnist", n=10, prefix="train")
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "data"))
    files = find_mnist()
    assert files.directory == tmp_path / "data" / "mnist"
    assert files.test_images.name == "t10k-images-idx3-ubyte.gz"
    assert files.has_train and files.train_labels.name == "train-labels-idx1-ubyte.gz"
    # an explicit directory wins over the environment
    assert find_mnist(str(tmp_path / "flat")).directory == tmp_path / "flat"


def test_find_mnist_errors(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    with pytest.raises(DataError) as err:
        find_mnist()
    msg = str(err.value)
    assert DATA_ENV in msg and "--data-dir" in msg and "t10k-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg

    (tmp_path / "empty").mkdir()
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "empty"))
    with pytest.raises(DataError) as err:
        find_mnist()
    msg = str(err.value)
    assert str(tmp_path / "empty") in msg and "\n" not in msg
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte", DATA_ENV):
        assert name in msg

    with pytest.raises(DataError, match="does not exist"):
        find_mnist(tmp_path / "missing")

    # only one of the pair present
    (tmp_path / "half").mkdir()
    write_idx(tmp_path / "half" / "t10k-images-idx3-ubyte", np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        find_mnist(tmp_path / "half")


# --------------------------------------------------------------------------- mnist


@pytest.fixture()
def fake_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    images, labels = fake_mnist(tmp_path / "mnist", n=100)
    return tmp_path, images.reshape(100, -1), labels


def test_mnist_classification_split_and_preprocessing(fake_dir):
    root, images, labels = fake_dir
    d = mnist(root, n_train=80, n_test=20)
    assert isinstance(d, Dataset) and d.task == "classification"
    assert d.x_train.shape == (80, 784) and d.x_test.shape == (20, 784)
    assert d.y_train.shape == (80, 10) and d.y_test.shape == (20, 10)
    assert d.x_train.dtype == np.float64 and d.labels_train.dtype == np.int64
    # one-hot targets match the labels
    for y, lab in ((d.y_train, d.labels_train), (d.y_test, d.labels_test)):
        assert set(np.unique(y)) == {0.0, 1.0}
        np.testing.assert_array_equal(y.sum(axis=1), 1.0)
        np.testing.assert_array_equal(y.argmax(axis=1), lab)

    # the split: a fixed permutation of all 100 images, disjoint, covering everything
    tr, te = d.meta["train_indices"], d.meta["test_indices"]
    assert len(set(tr) & set(te)) == 0 and sorted(np.concatenate([tr, te])) == list(range(100))
    perm = np.random.default_rng(0).permutation(100)
    np.testing.assert_array_equal(tr, perm[:80])
    np.testing.assert_array_equal(te, perm[80:])
    np.testing.assert_array_equal(d.labels_train, labels[tr])
    np.testing.assert_array_equal(d.labels_test, labels[te])
    # defaults give the same 80/20 parts; a second call is identical
    again = mnist(root)
    for name in ("x_train", "y_train", "x_test", "y_test", "labels_train", "labels_test"):
        np.testing.assert_array_equal(getattr(again, name), getattr(d, name))
    # the split seed does not follow the subset seed
    np.testing.assert_array_equal(mnist(root, seed=5).meta["train_indices"], tr)

    # preprocessing: per-pixel train mean 0, global train variance 1
    np.testing.assert_allclose(d.x_train.mean(axis=0), 0.0, atol=1e-12)
    assert abs(d.x_train.var() - 1.0) < 1e-10
    # the test set uses the training statistics, not its own
    raw_train, raw_test = images[tr] / 255.0, images[te] / 255.0
    mean = raw_train.mean(axis=0)
    scale = np.sqrt(((raw_train - mean) ** 2).mean())
    np.testing.assert_allclose(d.x_test, (raw_test - mean) / scale, rtol=0, atol=1e-12)
    assert np.abs(d.x_test.mean(axis=0)).max() > 1e-3
    assert d.meta["pixel_scale"] == pytest.approx(scale, rel=1e-12)


def test_mnist_subsets_stay_inside_their_parts(fake_dir):
    root, _, _ = fake_dir
    full = mnist(root)
    d = mnist(root, n_train=30, n_test=7, seed=3)
    assert d.n_train == 30 and d.n_test == 7
    assert set(d.meta["train_indices"]) <= set(full.meta["train_indices"])
    assert set(d.meta["test_indices"]) <= set(full.meta["test_indices"])
    np.testing.assert_array_equal(mnist(root, n_train=30, n_test=7, seed=3).meta["train_indices"], d.meta["train_indices"])
    assert abs(d.x_train.var() - 1.0) < 1e-10
    with pytest.raises(ValueError, match="n_train=81 exceeds"):
        mnist(root, n_train=81)


def test_mnist_autoencoder(fake_dir):
    root, images, _ = fake_dir
    d = mnist(root, task="autoencoder", n_train=80, n_test=20, dtype=np.float32)
    assert d.task == "autoencoder" and d.x_train.dtype == np.float32
    assert d.x_train.shape == d.y_train.shape == (80, 784) and d.x_test.shape == (20, 784)
    for x in (d.x_train, d.x_test):
        assert x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_array_equal(d.y_train, d.x_train)
    np.testing.assert_array_equal(d.y_test, d.x_test)
    np.testing.assert_allclose(d.x_train, images[d.meta["train_indices"]] / 255.0, rtol=1e-6)


def test_mnist_official_split_and_bad_arguments(fake_dir):
    root, _, _ = fake_dir
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        mnist(root, split="official")
    fake_mnist(root / "mnist", n=30, prefix="train", gz=False, seed=1)
    d = mnist(root, split="official")
    assert d.n_train == 30 and d.n_test == 100
    np.testing.assert_array_equal(d.meta["train_indices"], np.arange(30))
    with pytest.raises(ValueError, match="split"):
        mnist(root, split="test-9k-1k")
    with pytest.raises(ValueError, match="task"):
        mnist(root, task="regression")


def test_mnist_rejects_mismatched_files(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((5, 28, 28), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="4 labels for 5 images"):
        mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(5, np.float32))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: expected uint8 labels"):
        mnist(tmp_path)


@pytest.mark.skipif(not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file(), reason="the real MNIST test set is not available here")
def test_real_mnist_test_set(monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(SHARED_MNIST.parent))
    d = mnist()
    assert d.x_train.shape == (8000, 784) and d.x_test.shape == (2000, 784)
    assert np.bincount(d.labels_train, minlength=10).sum() == 8000
    assert np.bincount(d.labels_test, minlength=10).sum() == 2000
    assert abs(d.x_train.var() - 1.0) < 1e-10
    ae = mnist(SHARED_MNIST, task="autoencoder")
    assert ae.x_train.min() == 0.0 and ae.x_train.max() == 1.0
    np.testing.assert_array_equal(ae.meta["train_indices"], d.meta["train_indices"])


# --------------------------------------------------------------------------- regression


def test_linear_regression():
    d = linear_regression(200, 50, seed=7)
    assert d.task == "regression"
    assert (d.x_train.shape, d.y_train.shape, d.x_test.shape, d.y_test.shape) == ((200, 30), (200, 10), (50, 30), (50, 10))
    T = d.teacher["T"]
    assert T.shape == (10, 30) and np.abs(T).max() <= 1.0
    np.testing.assert_array_equal(d.y_train, d.x_train @ T.T)
    np.testing.assert_array_equal(d.y_test, d.x_test @ T.T)
    # recover T from the data alone (no bias)
    T_fit = np.linalg.lstsq(d.x_train, d.y_train, rcond=None)[0].T
    np.testing.assert_allclose(T_fit, T, rtol=0, atol=1e-10)
    # seeded; teacher and test set independent of n_train
    same = linear_regression(200, 50, seed=7)
    np.testing.assert_array_equal(same.x_train, d.x_train)
    np.testing.assert_array_equal(same.y_test, d.y_test)
    other_size = linear_regression(60, 50, seed=7)
    np.testing.assert_array_equal(other_size.teacher["T"], T)
    np.testing.assert_array_equal(other_size.x_test, d.x_test)
    assert not np.array_equal(linear_regression(200, 50, seed=8).teacher["T"], T)
    small = linear_regression(5, 3, d_in=4, d_out=2, dtype=np.float32)
    assert small.x_train.shape == (5, 4) and small.y_test.shape == (3, 2) and small.y_train.dtype == np.float32


def _forward(teacher, x):
    h = x
    for W, b, g in zip(teacher["weights"], teacher["biases"], teacher["nonlinearities"]):
        z = h @ W.T + b
        h = np.tanh(z) if g == "tanh" else z
    return h


def test_nonlinear_regression():
    d = nonlinear_regression(300, 40, seed=3)
    assert (d.x_train.shape, d.y_train.shape, d.x_test.shape) == ((300, 30), (300, 10), (40, 30))
    t = d.teacher
    assert [W.shape for W in t["weights"]] == [(20, 30), (10, 20), (10, 10)]
    assert [b.shape for b in t["biases"]] == [(20,), (10,), (10,)]
    assert t["nonlinearities"] == ("tanh", "tanh", "linear")
    for p in (*t["weights"], *t["biases"]):
        assert np.abs(p).max() <= 0.01 and np.abs(p).max() > 0.005
    np.testing.assert_allclose(d.y_train, _forward(t, d.x_train), rtol=1e-14, atol=1e-17)
    np.testing.assert_allclose(d.y_test, _forward(t, d.x_test), rtol=1e-14, atol=1e-17)
    # the documented scale of the paper's teacher: tiny, nearly constant targets
    assert 1e-3 < d.meta["target_rms"] < 2e-2
    assert 1e-6 < d.meta["target_std_over_samples"] < 1e-4
    # seeded
    same = nonlinear_regression(300, 40, seed=3)
    np.testing.assert_array_equal(same.y_train, d.y_train)
    np.testing.assert_array_equal(same.x_test, d.x_test)
    assert not np.array_equal(nonlinear_regression(300, 40, seed=4).y_train, d.y_train)
    # the scale is an argument; other architectures
    big = nonlinear_regression(50, 5, sizes=(4, 6, 3), nonlinearities=("tanh", "linear"), weight_scale=1.0, seed=1)
    assert big.y_train.shape == (50, 3) and np.abs(big.teacher["weights"][0]).max() > 0.5
    np.testing.assert_allclose(big.y_train, _forward(big.teacher, big.x_train), rtol=1e-14)
    assert big.meta["target_std_over_samples"] > 0.1
    with pytest.raises(ValueError, match="one nonlinearity per layer"):
        nonlinear_regression(5, 5, sizes=(3, 2), nonlinearities=("tanh", "tanh"))
    with pytest.raises(ValueError, match="unknown nonlinearity"):
        nonlinear_regression(5, 5, nonlinearities=("tahn", "tanh", "linear"))
