"""Pieces shared by the circuit kinds (options, arrays, per-layer nonlinearities)."""

from __future__ import annotations

from typing import Literal

import jax.numpy as jnp
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..core import nonlinearities, schedules
from ..core.circuit import ArraySpec, Circuit
from ..core.layers import LayerSizes


class StrictOptions(BaseModel):
    """Base of every kind's ``[circuit]`` options: unknown keys, wrong types and non-finite
    numbers are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def check_names(v: str | list[str], *extra: str) -> str | list[str]:
    """Validate a nonlinearity name or list of names (``extra`` names are also allowed)."""
    for name in [v] if isinstance(v, str) else v:
        if name not in extra:
            nonlinearities.parse(name)
    return v


def free_learning_cycles(free: float, learning: float, cycles: int = 1) -> schedules.Piecewise:
    """The learning-phase indicator of the target-propagation kinds: ``cycles`` times a free
    phase (0, length ``free``) then a learning phase (1, length ``learning``) from t = 0,
    and free again after the last cycle, so that a run ends at rest in the free phase."""
    return schedules.phases([free, learning], [0.0, 1.0], cycles, after=0.0)


class PhaseOptions(StrictOptions):
    """Free/learning phase cycles of the target-propagation kinds."""

    free_duration: float = Field(50.0, gt=0.0, description="two phases: length of each free phase")
    learning_duration: float = Field(50.0, gt=0.0, description="two phases: length of each learning phase")
    cycles: int = Field(1, ge=1, description="two phases: number of free/learning cycles")


#: largest controller leak alpha accepted (relative to the unit time constant; the papers
#: use alpha <= 1): beyond it the loop's eigenvalue formulas overflow in float64
MAX_LEAK = 1e6


class LeakyOptions(StrictOptions):
    """Options common to the dynamic-inversion kinds."""

    nonlinearity: str | list[str] = Field("tanh", description="g applied to delta_i: one name, or a list, one per delta_0..delta_{L-1}")
    leak: float = Field(0.0, ge=0.0, le=MAX_LEAK, description="controller leak alpha, 0 to 1e6")

    _names = field_validator("nonlinearity")(classmethod(lambda cls, v: check_names(v)))


class ControllerOptions(LeakyOptions):
    controller: Literal["nonlinear", "linearized"] = Field(
        "nonlinear", description="nonlinear (Algorithm 1) or linearized (Algorithm 2) controller"
    )


def layer_nonlinearities(spec: str | list[str], n: int) -> tuple[nonlinearities.Nonlinearity, ...]:
    """One nonlinearity per ``delta_0..delta_{n-1}`` from a name or a list of n names."""
    names = [spec] * n if isinstance(spec, str) else list(spec)
    if len(names) != n:
        raise ValueError(f"nonlinearity lists one name per delta_0..delta_{n - 1}: expected {n}, got {len(names)}")
    return tuple(nonlinearities.parse(s) for s in names)


def forward_specs(sizes: list[int]) -> dict[str, ArraySpec]:
    """``W_l`` is ``d_l x d_{l-1}`` for l = 1..L."""
    return {f"W{l}": ArraySpec((sizes[l], sizes[l - 1]), doc=f"forward weights W_{l}") for l in range(1, len(sizes))}


def feedback_specs(sizes: list[int]) -> dict[str, ArraySpec]:
    """``B_l`` is ``d_{l-1} x d_l`` for l = 1..L."""
    return {f"B{l}": ArraySpec((sizes[l - 1], sizes[l]), doc=f"feedback weights B_{l}") for l in range(1, len(sizes))}


def preactivation_specs(sizes: list[int]) -> dict[str, ArraySpec]:
    """Inputs ``a_0..a_{L-1}`` (pre-activations for the linearized controller)."""
    return {
        f"a_{i}": ArraySpec((sizes[i],), role="input", default="zeros", doc=f"pre-activation a_{i} (linearized controller)")
        for i in range(len(sizes) - 1)
    }


def error_spec(sizes: list[int]) -> dict[str, ArraySpec]:
    return {"delta_out": ArraySpec((sizes[-1],), role="input", doc="output error delta_L")}


def relative_error(x, ref):
    return jnp.linalg.norm(x - ref) / jnp.linalg.norm(ref)


class LayerStack(LayerSizes, Circuit):
    """Shared shape logic of circuits with forward weights ``W = (W_1..W_L)``, a ``controller``
    option and inputs ``delta_out`` (plus ``a_0..a_{L-1}`` for the linearized controller)."""

    @property
    def linearized(self) -> bool:
        return self.controller == "linearized"

    def input_shapes(self):
        shapes = {"delta_out": (self.sizes[-1],)}
        if self.linearized:
            shapes.update({f"a_{i}": (self.sizes[i],) for i in range(self.L)})
        return shapes


#: ``neurodyn list`` texts shared by the layer-stack kinds
CONTROLLER_OPTION_DOCS = {
    "nonlinearity": "g on delta_i: a name or a list of L names (default tanh)",
    "controller": "nonlinear | linearized (default nonlinear)",
    "leak": "controller leak alpha, 0 to 1e6 (default 0)",
}


#: ``neurodyn list`` texts of the inputs shared by the target-propagation kinds
TARGET_INPUT_DOCS = {
    "x": "input: h_0 (d_0), optional leading batch",
    "target": "input: label t (d_L), optional leading batch; e_L = h_L - t at the forward pass",
}


def stack_array_docs(feedback: dict[str, str]) -> dict[str, str]:
    return {
        "W1..WL": "forward weights, W_l is d_l x d_{l-1}",
        **feedback,
        "delta_out": "input: output error delta_L (d_L), optional leading batch",
        "a_0..a_{L-1}": "input, linearized controller only: pre-activations (default zeros)",
    }
