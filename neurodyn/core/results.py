"""Why a simulation or a fixed-point search ended: one enumeration with a message each.

:class:`Reason` members are strings (``Reason.diverged == "diverged"``), so the summaries
written to JSON and the comparisons in user code read as before, and each has a
``message`` for people. :class:`~neurodyn.core.simulate.Trajectory` and
:class:`~neurodyn.core.equilibrium.Equilibrium` carry one in ``reason``.
"""

import enum


class Reason(enum.StrEnum):
    """How a run ended, with a ``message`` saying what it means."""

    def __new__(cls, value: str, message: str):
        member = str.__new__(cls, value)
        member._value_ = value
        member.message = message
        return member

    # how the ODE solve ended (Trajectory)
    steady_state = "steady_state", "every sample came to rest (max|dy/dt| <= atol + rtol max|y|)"
    t1_reached = "t1_reached", "reached t1 (with the steady-state stop on: before every sample came to rest)"
    max_steps = "max_steps", "used up max_steps before t1"
    diverged = "diverged", "the state grew beyond the divergence bound: the dynamics are unstable"
    nonfinite = "nonfinite", "the state became NaN or infinite"
    solver_failed = "solver_failed", "the ODE solver stopped before t1 (step size collapsed or a solve broke down)"
    # how the fixed-point search ended (Equilibrium)
    converged = "converged", "every sample is at a stable fixed point"
    unstable_fixed_point = "unstable_fixed_point", "a fixed point was found but the Jacobian there has an eigenvalue with positive real part"
    newton_failed = "newton_failed", "Newton did not reach the residual tolerance for every sample"

    @property
    def blew_up(self) -> bool:
        """The state diverged or became non-finite: nothing at the end is a result."""
        return self in (Reason.diverged, Reason.nonfinite)

    def describe(self) -> str:
        """``name: message``, for one-line reports."""
        return f"{self.value}: {self.message}"
