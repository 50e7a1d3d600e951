"""Networks, credit-assignment rules, training and datasets."""

from . import data
from .data import *  # noqa: F403  (the dataset API, listed in data.__all__)

__all__ = list(data.__all__)
