"""Networks, credit-assignment rules and training (see the learning issue)."""

from .data import (
    DataError,
    Dataset,
    MnistFiles,
    find_mnist,
    linear_regression,
    mnist,
    nonlinear_regression,
    read_idx,
    teacher_forward,
)

__all__ = [
    "DataError",
    "Dataset",
    "MnistFiles",
    "find_mnist",
    "linear_regression",
    "mnist",
    "nonlinear_regression",
    "read_idx",
    "teacher_forward",
]
