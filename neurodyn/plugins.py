"""Plugins: circuit kinds and training rules from other installed packages.

A package makes its circuits reachable from model files and the CLI by naming, in its
``pyproject.toml``, a module that registers them when imported::

    [project.entry-points."neurodyn.circuits"]
    leaky_integrator = "my_package.circuits"      # the module calls neurodyn.core.register

    [project.entry-points."neurodyn.rules"]
    my_rule = "my_package.rules"                  # ... neurodyn.learning.rules.register_rule

:func:`load` imports every module of a group once, the first time a kind or rule is
looked up that neurodyn does not define, or when ``neurodyn list`` lists them. A plugin
that fails to import is reported as a warning naming it, and the others still load.
"""

from __future__ import annotations

import importlib.metadata
import warnings

CIRCUITS = "neurodyn.circuits"
RULES = "neurodyn.rules"

_loaded: set[str] = set()


def load(group: str) -> list[str]:
    """Import the modules that installed packages name under entry-point ``group`` (once
    per process); returns the names of the entry points loaded now."""
    if group in _loaded:
        return []
    _loaded.add(group)
    names = []
    for ep in importlib.metadata.entry_points(group=group):
        try:
            ep.load()
            names.append(ep.name)
        except Exception as err:  # noqa: BLE001  (a broken plugin must not break neurodyn)
            warnings.warn(f"neurodyn plugin '{ep.name}' ({ep.value}, group {group}) failed to load: {type(err).__name__}: {err}", stacklevel=2)
    return names
