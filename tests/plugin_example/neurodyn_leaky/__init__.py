"""A leaky integrator, written as a neurodyn user would write their own circuit:

    tau dh/dt = -h + W x

with state ``h`` (d_1), input ``x`` (d_0, per sample) and weights ``W`` (d_1 x d_0). Its
fixed point is ``h* = W x`` for any ``tau > 0``, and its Jacobian ``-I / tau`` has
spectral abscissa ``-1 / tau``: both are what ``neurodyn simulate`` must find.
"""

import equinox as eqx
import jax.numpy as jnp
from pydantic import BaseModel, ConfigDict, Field

from neurodyn.core.circuit import ArraySpec, Circuit, KindInfo, register


class LeakyOptions(BaseModel):
    """The ``[circuit]`` options of the kind (validated like neurodyn's own)."""

    model_config = ConfigDict(extra="forbid")
    tau: float = Field(1.0, gt=0, description="time constant, in units of the neural time constant")


@register
class LeakyIntegrator(Circuit):
    kind = "leaky_integrator"
    Options = LeakyOptions

    W: object
    tau: float = eqx.field(static=True)

    def state_shapes(self):
        return {"h": (self.W.shape[0],)}

    def input_shapes(self):
        return {"x": (self.W.shape[1],)}

    def vector_field(self, t, state, inputs):
        return {"h": (-state["h"] + self.W @ inputs["x"]) / self.tau}

    def closed_form(self, inputs):
        return {"h": self.W @ inputs["x"]}

    @classmethod
    def validate_sizes(cls, sizes):
        if len(sizes) != 2:
            raise ValueError("a leaky integrator has one layer: sizes = [d_0, d_1]")

    @classmethod
    def array_specs(cls, sizes, options):
        return {"W": ArraySpec((sizes[1], sizes[0]), doc="weights"), "x": ArraySpec((sizes[0],), role="input", doc="input")}

    @classmethod
    def from_arrays(cls, sizes, options, arrays):
        return cls(W=jnp.asarray(arrays["W"]), tau=float(options.tau))

    @classmethod
    def info(cls):
        return KindInfo(
            kind=cls.kind, summary="leaky integrator tau dh/dt = -h + W x (example plugin)",
            options={"tau": "time constant (default 1)"}, arrays={"W": "weights, d_1 x d_0", "x": "input (d_0), optional leading batch"},
            state="h",
        )
