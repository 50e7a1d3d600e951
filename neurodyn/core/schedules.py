"""Time-dependent signals for vector fields: steps, phase sequences, ramps, oscillations
and per-layer travelling waves.

A schedule is an :class:`equinox.Module` called as ``s(t)``; it returns a scalar (or,
for :class:`Wave`, one value per layer) and lists its discontinuities in
:meth:`Schedule.jump_times`, which the engine hands to the step-size controller so that
steps land on them instead of straddling them. Schedules are built in Python or from a
model-file table with :func:`from_spec`; they never execute code.

The simulation's end matters to one schedule only: a square :class:`Periodic` lists its
jumps up to ``t_max``. :func:`from_spec` takes ``t_max`` explicitly or, when not given,
from the enclosing :func:`horizon` context; the model-file loader builds every circuit
inside ``with horizon([simulation].t1):``, so kinds that call ``from_spec(spec)`` in
``from_arrays`` get the right horizon without an extra option.
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax.numpy as jnp

#: most jump times one schedule may list (each one is a stop of the ODE solver)
MAX_JUMPS = 100_000


class Schedule(eqx.Module):
    """Base class: ``__call__(t)`` and ``jump_times()``."""

    @abc.abstractmethod
    def __call__(self, t):
        """The signal at time ``t``."""

    def jump_times(self) -> tuple[float, ...]:
        """Times at which the signal is discontinuous (finite, sorted)."""
        return ()


@dataclass(frozen=True)
class TableType:
    """How a model-file table ``{type = NAME, ...}`` builds a schedule: ``build(args,
    t_max)`` from the table without its ``type``; ``keys`` are the keys it may have."""

    build: Callable[[Mapping[str, Any], float | None], Schedule]
    keys: frozenset[str]


#: model-file type name -> :class:`TableType`, filled by :func:`table_type` beside each schedule
TABLE_TYPES: dict[str, TableType] = {}


def table_type(name: str, *keys: str):
    """Decorator: register ``build(args, t_max)`` as the model-file table ``type = name``."""

    def deco(build):
        TABLE_TYPES[name] = TableType(build, frozenset(keys))
        return build

    return deco


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _number(args: Mapping[str, Any], key: str, default: float | None = None) -> float:
    """``args[key]`` (or ``default`` where given and the key is absent) as a float; a string
    or a boolean is refused, not read as a number."""
    value = args[key] if default is None or key in args else default
    if not _is_number(value):
        raise ValueError(f"{key} must be a number, got {value!r}")
    return float(value)


def _numbers(args: Mapping[str, Any], key: str) -> tuple[float, ...]:
    value = args[key]
    if not isinstance(value, (list, tuple)) or not all(_is_number(x) for x in value):
        raise ValueError(f"{key} must be a list of numbers, got {value!r}")
    return tuple(float(x) for x in value)


def _integer(args: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = args[key] if default is None or key in args else default
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key} must be an integer, got {value!r}")
    return value


class Constant(Schedule):
    """``s(t) = value``."""

    value: float = eqx.field(static=True)

    def __call__(self, t):
        return jnp.asarray(self.value, jnp.result_type(t, float))


@table_type("constant", "value")
def _constant_table(args, t_max):
    return Constant(_number(args, "value"))


class Piecewise(Schedule):
    """Piecewise constant: ``values[k]`` on ``[times[k-1], times[k])``, with
    ``times[-1] = -inf``; so ``len(values) == len(times) + 1``. A :class:`Step` is the
    case of one time; a phase sequence (free, learning, free, ...) is the general one."""

    times: tuple[float, ...] = eqx.field(static=True)
    values: tuple[float, ...] = eqx.field(static=True)

    def __check_init__(self):
        if not all(math.isfinite(t) for t in self.times) or not all(math.isfinite(v) for v in self.values):
            raise ValueError("schedule times and values must be finite numbers")
        if len(self.values) != len(self.times) + 1:
            raise ValueError(f"a piecewise schedule needs one more value than times (got {len(self.values)} values, {len(self.times)} times)")
        if any(b <= a for a, b in zip(self.times, self.times[1:])):
            raise ValueError("schedule times must increase strictly")

    def __call__(self, t):
        dtype = jnp.result_type(t, float)
        if not self.times:
            return jnp.asarray(self.values[0], dtype)
        k = jnp.searchsorted(jnp.asarray(self.times, dtype), t, side="right")
        return jnp.asarray(self.values, dtype)[k]

    def jump_times(self):
        return tuple(float(t) for t, a, b in zip(self.times, self.values, self.values[1:]) if a != b)


@table_type("piecewise", "times", "values")
def _piecewise_table(args, t_max):
    return Piecewise(_numbers(args, "times"), _numbers(args, "values"))


def Step(time: float, before: float = 0.0, after: float = 1.0) -> Piecewise:
    """``before`` until ``time``, ``after`` from then on."""
    return Piecewise((float(time),), (float(before), float(after)))


@table_type("step", "time", "before", "after")
def _step_table(args, t_max):
    return Step(_number(args, "time"), _number(args, "before", 0.0), _number(args, "after", 1.0))


def phases(
    durations: Sequence[float], values: Sequence[float], cycles: int = 1, t0: float = 0.0, after: float | None = None
) -> Piecewise:
    """A repeated phase sequence: phase ``k`` lasts ``durations[k]`` and has ``values[k]``;
    the whole sequence repeats ``cycles`` times from ``t0``; the first value holds before
    ``t0``, and after the final cycle ``after`` (default: the last value holds)."""
    if len(durations) != len(values) or not durations:
        raise ValueError("phases need one value per duration")
    if any(d <= 0 for d in durations) or cycles < 1:
        raise ValueError("phase durations must be positive and cycles >= 1")
    if cycles * len(durations) > MAX_JUMPS:
        raise ValueError(f"{cycles} cycles of {len(durations)} phases are {cycles * len(durations)} jumps, more than {MAX_JUMPS}; use fewer cycles")
    times, vals, t = [], [float(values[0])], float(t0)
    for c in range(cycles):
        for k, d in enumerate(durations):
            if c or k:
                times.append(t)
                vals.append(float(values[k]))
            t += float(d)
    if after is not None:
        times.append(t)
        vals.append(float(after))
    return Piecewise(tuple(times), tuple(vals))


@table_type("phases", "durations", "values", "cycles", "t0")
def _phases_table(args, t_max):
    durations, values = _numbers(args, "durations"), _numbers(args, "values")
    return phases(durations, values, _integer(args, "cycles", 1), _number(args, "t0", 0.0))


class Ramp(Schedule):
    """Smooth (C^1, raised-cosine) move from ``start`` to ``end`` over ``[t_on, t_on + duration]``."""

    t_on: float = eqx.field(static=True)
    duration: float = eqx.field(static=True)
    start: float = eqx.field(static=True, default=0.0)
    end: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        if not all(math.isfinite(x) for x in (self.t_on, self.duration, self.start, self.end)):
            raise ValueError("a ramp's t_on, duration, start and end must be finite numbers")
        if not self.duration > 0:
            raise ValueError("a ramp's duration must be positive")

    def __call__(self, t):
        s = jnp.clip((t - self.t_on) / self.duration, 0.0, 1.0)
        return self.start + (self.end - self.start) * 0.5 * (1.0 - jnp.cos(jnp.pi * s))


@table_type("ramp", "t_on", "duration", "start", "end")
def _ramp_table(args, t_max):
    return Ramp(_number(args, "t_on"), _number(args, "duration"), _number(args, "start", 0.0), _number(args, "end", 1.0))


class Periodic(Schedule):
    """Oscillation between ``low`` and ``high`` with ``period``.

    ``shape = "sine"``: ``low + (high - low) (1 + sin(2 pi (t - phase) / period)) / 2``;
    ``shape = "square"``: ``high`` for the first ``duty`` fraction of each period, then
    ``low`` (its jumps up to ``t_max`` are reported to the solver).
    """

    period: float = eqx.field(static=True)
    low: float = eqx.field(static=True, default=0.0)
    high: float = eqx.field(static=True, default=1.0)
    shape: str = eqx.field(static=True, default="sine")
    duty: float = eqx.field(static=True, default=0.5)
    phase: float = eqx.field(static=True, default=0.0)
    t_max: float = eqx.field(static=True, default=0.0)

    def __check_init__(self):
        if not all(math.isfinite(x) for x in (self.period, self.low, self.high, self.phase, self.t_max)):
            raise ValueError("a periodic schedule's numbers must be finite")
        if not self.period > 0:
            raise ValueError("a periodic schedule's period must be positive")
        if self.shape not in ("sine", "square"):
            raise ValueError(f"unknown periodic shape '{self.shape}' (choose sine or square)")
        if not 0 < self.duty < 1:
            raise ValueError("duty must lie in (0, 1)")
        if self.shape == "square" and 2 * (self.t_max - self.phase) / self.period > MAX_JUMPS:
            n = 2 * (self.t_max - self.phase) / self.period
            raise ValueError(f"a square wave of period {self.period:g} jumps {n:.3g} times before t = {self.t_max:g}, more than {MAX_JUMPS}; use a longer period or a sine")

    def __call__(self, t):
        x = (t - self.phase) / self.period
        if self.shape == "sine":
            return self.low + (self.high - self.low) * 0.5 * (1.0 + jnp.sin(2 * jnp.pi * x))
        return jnp.where(x - jnp.floor(x) < self.duty, self.high, self.low)

    def jump_times(self):
        if self.shape != "square" or self.t_max <= self.phase:
            return ()
        n = math.ceil((self.t_max - self.phase) / self.period)
        out = []
        for k in range(n + 1):
            for off in (0.0, self.duty):
                t = self.phase + (k + off) * self.period
                if 0.0 < t <= self.t_max:
                    out.append(t)
        return tuple(sorted(set(out)))


@table_type("periodic", "period", "low", "high", "shape", "duty", "phase")
def _periodic_table(args, t_max):
    return Periodic(
        _number(args, "period"), _number(args, "low", 0.0), _number(args, "high", 1.0),
        str(args.get("shape", "sine")), _number(args, "duty", 0.5), _number(args, "phase", 0.0),
        float(t_max or 0.0),
    )


class Wave(Schedule):
    """A travelling wave over layers: value ``l`` (l = 0..n-1) is ``base(t - l * delay)``."""

    base: Schedule
    n: int = eqx.field(static=True)
    delay: float = eqx.field(static=True)

    def __check_init__(self):
        if self.n < 1 or not math.isfinite(self.delay):
            raise ValueError("a wave needs layers >= 1 and a finite delay")

    def __call__(self, t):
        return jnp.stack([self.base(t - l * self.delay) for l in range(self.n)])

    def jump_times(self):
        return tuple(sorted({t + l * self.delay for t in self.base.jump_times() for l in range(self.n)}))


@table_type("wave", "base", "layers", "delay")
def _wave_table(args, t_max):
    return Wave(from_spec(args["base"], t_max=t_max), _integer(args, "layers"), _number(args, "delay"))


def jump_times(*schedules: Schedule | None) -> tuple[float, ...]:
    """Sorted union of the jump times of several schedules (None entries ignored)."""
    return tuple(sorted({t for s in schedules if s is not None for t in s.jump_times()}))


_HORIZON: contextvars.ContextVar[float | None] = contextvars.ContextVar("neurodyn_schedule_horizon", default=None)


@contextlib.contextmanager
def horizon(t_max: float | None) -> Iterator[None]:
    """Within this context, :func:`from_spec` without ``t_max`` uses ``t_max`` (the
    simulation's end). The model-file loader wraps circuit construction in it."""
    token = _HORIZON.set(None if t_max is None else float(t_max))
    try:
        yield
    finally:
        _HORIZON.reset(token)


def current_horizon() -> float | None:
    """The ``t_max`` of the enclosing :func:`horizon`, or None."""
    return _HORIZON.get()


def from_spec(spec: float | Mapping[str, Any], *, t_max: float | None = None) -> Schedule:
    """Build a schedule from a number (constant) or a model-file table, e.g.

    ``{type = "step", time = 50, before = 1, after = 0}``,
    ``{type = "phases", durations = [50, 50], values = [0, 1], cycles = 3}``,
    ``{type = "piecewise", times = [10, 20], values = [0, 1, 0]}``,
    ``{type = "ramp", t_on = 50, duration = 5, start = 1, end = 0}``,
    ``{type = "periodic", period = 40, shape = "square", low = 0, high = 1}``,
    ``{type = "wave", base = {...}, layers = 3, delay = 2}``.

    ``t_max`` (the simulation's end) bounds the jump times of square oscillations;
    default: the enclosing :func:`horizon`. Raises ValueError with a one-line message on
    a bad table.
    """
    if t_max is None:
        t_max = current_horizon()
    types = " | ".join(TABLE_TYPES)
    if isinstance(spec, bool):
        raise ValueError("a schedule is a number or a table with a 'type'")
    if isinstance(spec, (int, float)):
        return Constant(float(spec))
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise ValueError(f"a schedule is a number or a table with a 'type' ({types})")
    kind = spec["type"]
    if not isinstance(kind, str):
        raise ValueError(f"a schedule's type must be a string ({types})")
    if kind not in TABLE_TYPES:
        raise ValueError(f"unknown schedule type '{kind}' (choose from {', '.join(TABLE_TYPES)})")
    table = TABLE_TYPES[kind]
    args = {k: v for k, v in spec.items() if k != "type"}
    extra = set(args) - table.keys
    if extra:
        raise ValueError(f"schedule type '{kind}' takes {sorted(table.keys)}, not {sorted(extra)}")
    try:
        return table.build(args, t_max)
    except KeyError as e:
        raise ValueError(f"schedule type '{kind}' needs '{e.args[0]}'") from None
    except (TypeError, ValueError) as e:
        raise ValueError(f"schedule type '{kind}': {e}") from None
