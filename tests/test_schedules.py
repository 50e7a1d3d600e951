"""Schedules (core/schedules.py) and the engine's handling of their jump times.

A scalar ODE forced by a piecewise-constant input, dy/dt = -k y + u(t), has a closed form
(exponential relaxation towards u/k within each phase); the engine must reproduce it to
1e-8 when the jump times are handed to the solver, with fewer rejected steps than when
the solver has to find the jumps itself, must land fixed steps on the jumps, and must not
stop at steady state before the last jump.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
from neurodyn.core import schedules as S
from neurodyn.core.circuit import Circuit
from neurodyn.core.simulate import step_grid


# --- values and jump times --------------------------------------------------------------
def test_constant_and_piecewise_values_are_right_continuous():
    assert float(S.Constant(2.5)(7.0)) == 2.5
    p = S.Piecewise((1.0, 2.0), (0.0, 3.0, -1.0))
    ts = jnp.asarray([0.0, 0.999, 1.0, 1.5, 2.0, 9.0])
    assert np.array_equal(np.asarray(jax.vmap(p)(ts)), [0.0, 0.0, 3.0, 3.0, -1.0, -1.0])
    assert p.jump_times() == (1.0, 2.0)
    # a "jump" between equal values is not a discontinuity
    assert S.Piecewise((1.0, 2.0), (0.0, 0.0, 1.0)).jump_times() == (2.0,)


def test_step_and_phases():
    s = S.Step(5.0, before=1.0, after=0.0)
    assert float(s(4.9)) == 1.0 and float(s(5.0)) == 0.0 and s.jump_times() == (5.0,)
    p = S.phases([2.0, 3.0], [0.0, 1.0], cycles=2, t0=1.0)
    # free [1, 3), learning [3, 6), free [6, 8), learning [8, 11), then learning holds
    assert p.jump_times() == (3.0, 6.0, 8.0)
    values = [float(p(t)) for t in (0.0, 2.0, 3.0, 5.9, 6.0, 8.5, 12.0)]
    assert values == [0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0]


def test_ramp_is_smooth_and_reaches_its_ends():
    r = S.Ramp(t_on=2.0, duration=4.0, start=1.0, end=-1.0)
    assert float(r(0.0)) == 1.0 and float(r(6.0)) == -1.0 and float(r(100.0)) == -1.0
    assert abs(float(r(4.0))) < 1e-15  # raised cosine: half way at the middle
    d = jax.grad(lambda t: r(t))
    assert abs(float(d(2.0))) < 1e-12 and abs(float(d(6.0))) < 1e-12  # C^1 at both ends
    assert abs(float(d(4.0)) - (-2.0 * math.pi / 2 / 4.0)) < 1e-12  # slope (end-start) pi/(2 T)
    assert r.jump_times() == ()


def test_periodic_sine_and_square():
    s = S.Periodic(period=4.0, low=-1.0, high=3.0)
    assert abs(float(s(1.0)) - 3.0) < 1e-12 and abs(float(s(3.0)) + 1.0) < 1e-12 and abs(float(s(0.0)) - 1.0) < 1e-12
    assert s.jump_times() == ()
    q = S.Periodic(period=4.0, shape="square", duty=0.25, t_max=10.0)
    assert [float(q(t)) for t in (0.5, 1.0, 3.9, 4.0, 5.5)] == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert q.jump_times() == (1.0, 4.0, 5.0, 8.0, 9.0)
    assert S.Periodic(period=4.0, shape="square").jump_times() == ()  # no horizon, no list


def test_wave_delays_each_layer():
    w = S.Wave(S.Step(1.0), 3, 0.5)
    assert np.array_equal(np.asarray(w(1.6)), [1.0, 1.0, 0.0])
    assert w.jump_times() == (1.0, 1.5, 2.0)
    assert S.jump_times(S.Step(3.0), None, w) == (1.0, 1.5, 2.0, 3.0)


# --- from_spec -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec, direct",
    [
        (2.0, S.Constant(2.0)),
        ({"type": "constant", "value": 3}, S.Constant(3.0)),
        ({"type": "step", "time": 5, "before": 1, "after": 0}, S.Step(5.0, 1.0, 0.0)),
        ({"type": "phases", "durations": [2, 3], "values": [0, 1], "cycles": 2}, S.phases([2.0, 3.0], [0.0, 1.0], 2)),
        ({"type": "piecewise", "times": [1, 2], "values": [0, 1, 0]}, S.Piecewise((1.0, 2.0), (0.0, 1.0, 0.0))),
        ({"type": "ramp", "t_on": 1, "duration": 2}, S.Ramp(1.0, 2.0)),
        ({"type": "periodic", "period": 3, "shape": "square"}, S.Periodic(3.0, shape="square", t_max=20.0)),
        ({"type": "wave", "base": {"type": "step", "time": 1}, "layers": 2, "delay": 1}, S.Wave(S.Step(1.0), 2, 1.0)),
    ],
)
def test_from_spec_builds_the_schedule(spec, direct):
    s = S.from_spec(spec, t_max=20.0)
    assert type(s) is type(direct) and s.jump_times() == direct.jump_times()
    ts = jnp.linspace(-1.0, 20.0, 43)
    assert np.array_equal(np.asarray(jax.vmap(s)(ts)), np.asarray(jax.vmap(direct)(ts)))


@pytest.mark.parametrize(
    "spec, needle",
    [
        (True, "a number or a table"),
        ("fast", "a number or a table"),
        ({"time": 3}, "a number or a table"),
        ({"type": "stepp", "time": 3}, "unknown schedule type 'stepp'"),
        ({"type": "step"}, "needs 'time'"),
        ({"type": "step", "time": 3, "level": 1}, "not ['level']"),
        ({"type": "phases", "durations": [1, 2], "values": [0]}, "one value per duration"),
        ({"type": "phases", "durations": [1, -2], "values": [0, 1]}, "must be positive"),
        ({"type": "phases", "durations": 5, "values": [0]}, "durations must be a list"),
        ({"type": "phases", "durations": [1], "values": [0], "cycles": 1.5}, "cycles must be an integer"),
        ({"type": "piecewise", "times": [2, 1], "values": [0, 1, 0]}, "increase strictly"),
        ({"type": "piecewise", "times": [1], "values": [0]}, "one more value than times"),
        ({"type": "piecewise", "times": [1, float("inf")], "values": [0, 1, 2]}, "finite"),
        ({"type": "ramp", "t_on": 0, "duration": 0}, "duration must be positive"),
        ({"type": "periodic", "period": 2, "shape": "triangle"}, "unknown periodic shape"),
        ({"type": "periodic", "period": 2, "duty": 1.0}, "duty"),
        ({"type": "wave", "base": 1.0, "layers": 2.5, "delay": 1}, "layers must be an integer"),
        ({"type": "step", "time": "3"}, "time must be a number"),
        ({"type": "ramp", "t_on": 0, "duration": 1, "end": True}, "end must be a number"),
        ({"type": "piecewise", "times": ["1"], "values": [0, 1]}, "times must be a list of numbers"),
    ],
)
def test_from_spec_errors_are_one_line_value_errors(spec, needle):
    with pytest.raises(ValueError, match=None) as err:
        S.from_spec(spec)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg


def test_horizon_supplies_t_max_to_from_spec():
    spec = {"type": "periodic", "period": 10.0, "shape": "square"}
    assert S.from_spec(spec).jump_times() == ()
    with S.horizon(30.0):
        assert S.current_horizon() == 30.0
        assert S.from_spec(spec).jump_times() == (5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
        assert S.from_spec(spec, t_max=12.0).jump_times() == (5.0, 10.0)  # explicit wins
    assert S.current_horizon() is None


# --- the engine with jump times ------------------------------------------------------------
class Forced(Circuit):
    """dy/dt = -k y + u(t) with a schedule u."""

    kind = "test_forced"
    u: S.Schedule

    def state_shapes(self):
        return {"y": (1,)}

    def input_shapes(self):
        return {"k": (1,)}

    def vector_field(self, t, state, inputs):
        return {"y": -inputs["k"] * state["y"] + self.u(t)}

    def jump_times(self):
        return self.u.jump_times()


class ForcedHidden(Forced):
    """The same circuit with its jump times hidden from the engine."""

    kind = "test_forced_hidden"

    def jump_times(self):
        return ()


def forced_closed_form(u: S.Piecewise, k: float, ts: np.ndarray, y0: float = 0.0) -> np.ndarray:
    """Within each constant piece y relaxes exponentially towards u/k."""
    edges = [-np.inf, *u.times, np.inf]
    out = np.empty_like(ts)
    y, t_prev = y0, 0.0
    for i, (a, b) in enumerate(zip(edges, edges[1:])):
        c = u.values[i] / k
        sel = (ts >= max(a, 0.0)) & (ts < b)
        out[sel] = c + (y - c) * np.exp(-k * (ts[sel] - t_prev))
        if b > 0 and np.isfinite(b):
            y = c + (y - c) * np.exp(-k * (b - t_prev))
            t_prev = b
    return out


U = S.phases([1.3, 0.7], [1.0, -2.0], cycles=5)  # 9 jumps in (0, 10)


def test_piecewise_forcing_matches_the_closed_form_with_fewer_rejections():
    k = 1.5
    ts = np.linspace(0.0, 12.0, 61)
    runs = {}
    for name, circuit in (("jumps", Forced(U)), ("hidden", ForcedHidden(U))):
        tr = nd.simulate(circuit, {"k": jnp.asarray([k])}, t1=12.0, saveat=ts, steady_state=False, rtol=1e-10, atol=1e-12)
        runs[name] = tr
    exact = forced_closed_form(U, k, ts)
    err = np.max(np.abs(runs["jumps"].ys["y"][:, 0] - exact))
    assert err < 1e-8, err
    assert runs["jumps"].jump_times == U.jump_times() and runs["hidden"].jump_times == ()
    # measured: 21 rejected steps with the jump times, 271 without
    assert 3 * runs["jumps"].num_rejected_steps < runs["hidden"].num_rejected_steps, (
        runs["jumps"].num_rejected_steps, runs["hidden"].num_rejected_steps,
    )


def test_fixed_steps_land_on_the_jumps():
    """With k = 0, dy/dt = u(t) is integrated exactly by Euler on a grid that contains the
    jumps; without them Euler straddles each jump and errs by O(dt)."""
    dt0 = 0.3  # does not divide the jump times 1.3, 2.0, 3.3, ...
    ts = np.linspace(0.0, 10.0, 11)
    edges = np.asarray([0.0, *U.times, np.inf])
    exact = np.asarray([sum(v * max(0.0, min(t, b) - a) for v, a, b in zip(U.values, edges, edges[1:])) for t in ts])
    on = nd.simulate(Forced(U), {"k": jnp.zeros(1)}, t1=10.0, saveat=ts, steady_state=False, solver="euler", dt0=dt0)
    off = nd.simulate(ForcedHidden(U), {"k": jnp.zeros(1)}, t1=10.0, saveat=ts, steady_state=False, solver="euler", dt0=dt0)
    # a grid of ceil(10 / 0.3) = 34 steps plus the jumps not on it (3.3, 6.0 and 9.3 are): 40
    off_grid = [t for t in U.jump_times() if abs(t / dt0 - round(t / dt0)) > 1e-9]
    assert on.num_steps == math.ceil(10.0 / dt0) + len(off_grid) == 40 and on.reason == "t1_reached"
    # saved values interpolate linearly inside a step, which is exact for a piecewise-linear y
    assert np.max(np.abs(on.ys["y"][:, 0] - exact)) < 1e-9
    assert np.max(np.abs(off.ys["y"][:, 0] - exact)) > 0.1


def test_step_grid_inserts_jumps_and_drops_near_duplicates():
    g = step_grid(0.0, 1.0, 0.25, [0.5 + 1e-9, 0.6])
    assert np.allclose(g, [0.0, 0.25, 0.5 + 1e-9, 0.6, 0.75, 1.0], atol=0, rtol=1e-15)


def test_steady_state_stop_waits_for_the_last_jump():
    """y relaxes to 1 (k = 1) long before the step of u at t = 60; the stop must wait for
    it and then find the new rest y = 3."""
    u = S.Step(60.0, before=1.0, after=3.0)
    rtol, atol = 1e-8, 1e-10
    tr = nd.simulate(Forced(u), {"k": jnp.ones(1)}, t1=500.0, rtol=rtol, atol=atol)
    assert tr.reason == "steady_state" and tr.t_final > 60.0
    assert abs(float(tr.final["y"][0]) - 3.0) < 1e-7
    # the rate 2 exp(-(t - 60)) falls to atol + rtol * 3 at t = 60 + log(2 / (atol + 3 rtol))
    assert tr.t_final >= 60.0 + math.log(2.0 / (atol + 3 * rtol)) - 1e-6
    hidden = nd.simulate(ForcedHidden(u), {"k": jnp.ones(1)}, t1=500.0, rtol=rtol, atol=atol)
    assert hidden.reason == "steady_state" and hidden.t_final < 60.0  # what the rule prevents


def test_autonomous_circuits_keep_the_plain_controller():
    """No jump times: the solve is the autonomous one (same steps as before the change)."""
    c = Forced(S.Constant(1.0))
    assert c.jump_times() == ()
    tr = nd.simulate(c, {"k": jnp.ones(1)}, t1=100.0, rtol=1e-8, atol=1e-10)
    assert tr.reason == "steady_state" and tr.jump_times == () and abs(float(tr.final["y"][0]) - 1.0) < 1e-7
