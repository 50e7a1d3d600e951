"""Options set from the command line: ``--set KEY=VALUE`` (a dotted path into the file's
tables, a TOML value) and ``--seed N``, applied to a model or experiment file's table
before it is validated, so a wrong key or value is the same one-line input error as in the
file. Sweeps set their settings the same way (:func:`apply`)."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

from .errors import ModelError


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"circuit.leak=0.1"`` as ``("circuit.leak", 0.1)``: the value is read as TOML
    (``0.1``, ``"tanh"``, ``[1, 2]``, ``{ init = "zeros" }``, ``true``), and as a plain
    string when it is not TOML (``--set circuit.nonlinearity=tanh``)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ModelError("--set", None, f"'{text}' is not KEY=VALUE with a dotted KEY, e.g. --set circuit.leak=0.1")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        value = raw.strip()
    return key, value


def apply(base: dict, values: dict[str, Any], file=None) -> dict:
    """``base`` with each dotted path set to its value (a deep copy; missing tables are
    created). A path through a value that is not a table is an input error naming it."""
    table = copy.deepcopy(base)
    for path, value in values.items():
        *parents, key = path.split(".")
        node = table
        for i, p in enumerate(parents):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ModelError(file or "--set", ".".join(parents[: i + 1]), f"is a value, not a table, so '{path}' cannot be set")
        node[key] = value
    return table


def command_line(assignments: list[str] | None, seed: int | None) -> dict[str, Any]:
    """The overrides of ``--set`` (in order; a later one wins) and ``--seed``."""
    values = dict(parse_assignment(a) for a in assignments or [])
    if seed is not None:
        values["seed"] = seed
    return values


def describe(file, values: dict[str, Any]) -> str:
    """The header of a resolved file: the file and the options set on the command line."""
    return f"{file} with " + ", ".join(f"{k} = {v!r}" for k, v in values.items())
