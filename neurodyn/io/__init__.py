"""Model files, result writing and plots."""

from .errors import ModelError
from .model import Model, load_model

__all__ = ["Model", "ModelError", "load_model"]
