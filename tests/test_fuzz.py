"""Fuzzing the file validation: every shipped model file and a small experiment file,
mutated at random by hypothesis (values of the wrong type, huge, negative, non-finite or
hostile; keys deleted, renamed or added), go through the loaders. Every outcome must be a
valid model or experiment, or a ``ModelError`` (one line naming the file and key); any
other exception is a bug. Memory is capped at 256 MiB while fuzzing, so a mutation that
asks for a huge array must be refused by the estimate, not allocated.

A few hundred examples run in the default suite; ``-m slow`` runs thousands more.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurodyn.circuits  # noqa: F401  (registers the kinds)
from helpers import BP_AND_FA, tiny_experiment
from neurodyn.io.errors import ModelError
from neurodyn.io.experiment import experiment_from_table
from neurodyn.io.model import model_from_table

REPO = Path(__file__).resolve().parents[1]
MODELS = sorted((REPO / "models").glob("*.toml"))

EXPERIMENT = tomllib.loads(tiny_experiment(name="fuzz", seed=3, rules=BP_AND_FA + "[rules.dtp]\nsigma = 0.1\nwarmup_steps = 5\n"))

#: values a careless or hostile file could hold where any key expects something else
HOSTILE = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2, 2**31, 2**63, 10**9, 10**12]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-300, 1e300, float("nan"), float("inf"), -1.5]),
    st.booleans(),
    st.text(max_size=10),
    st.sampled_from(["", "../../x", "/etc/passwd", "tanh", "linear", "relu", "normal", "zeros", "square", "a\x00b", "W1", "nan"]),
    st.lists(st.integers(min_value=-3, max_value=10**6), max_size=4),
    st.lists(st.floats(allow_nan=True), max_size=3),
    st.recursive(st.integers(min_value=0, max_value=4), lambda c: st.lists(c, max_size=3), max_leaves=10),
    st.dictionaries(st.sampled_from(["init", "type", "std", "batch", "file", "of", "values", "x"]), st.integers(min_value=-2, max_value=10**10), max_size=3),
)


def _paths(table: dict, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a table, nested tables (inline ones included) and their keys."""
    out = []
    for k, v in table.items():
        out.append(prefix + (k,))
        if isinstance(v, dict):
            out += _paths(v, prefix + (k,))
    return out


@st.composite
def mutated(draw, base: dict):
    """``base`` with one to three mutations: a value replaced, a key deleted, or a key added."""
    table = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(table)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        *parents, key = path
        node = table
        for p in parents:
            node = node[p]
        action = draw(st.sampled_from(["set", "set", "set", "delete", "add"]))
        if action == "delete":
            del node[key]
        elif action == "add":
            node[draw(st.sampled_from(["extra", "seed", "batch", "sizes", "leak", "W9", "gate"]))] = draw(HOSTILE)
        else:
            node[key] = draw(HOSTILE)
    return table


def _validate(load, file: Path, table: dict) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEURODYN_MAX_MEMORY", "256M")
        try:
            load(file, table)
        except ModelError as err:
            assert "\n" not in str(err) and str(file) in str(err)


def _load_model(file, table):
    return model_from_table(file, table, stabilize=False)


def _mutated_model(path, data) -> None:
    """One mutation of the model file ``path`` through the loader."""
    _validate(_load_model, path, data.draw(mutated(tomllib.loads(path.read_text()))))


# the default suite draws the same examples every run (derandomize); -m slow explores anew
FUZZ = settings(max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MORE = settings(FUZZ, max_examples=400, derandomize=False)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
@FUZZ
@given(data=st.data())
def test_mutated_model_files_load_or_are_input_errors(path, data):
    _mutated_model(path, data)


@settings(FUZZ, max_examples=150)
@given(table=mutated(EXPERIMENT))
def test_mutated_experiment_files_load_or_are_input_errors(table):
    _validate(experiment_from_table, REPO / "fuzz.toml", table)


@pytest.mark.slow
@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
@MORE
@given(data=st.data())
def test_many_more_mutated_model_files(path, data):
    _mutated_model(path, data)


@pytest.mark.slow
@settings(MORE, max_examples=3000)
@given(table=mutated(EXPERIMENT))
def test_many_more_mutated_experiment_files(table):
    _validate(experiment_from_table, REPO / "fuzz.toml", table)
