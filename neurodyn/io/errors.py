"""Input errors: one line naming the file, the key and the fix (CLI exit code 2)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ModelError(ValueError):
    """Invalid user input. ``str(err)`` is ``"<file>: <key>: <problem and fix>"``."""

    def __init__(self, file, key: str | None, message: str):
        self.file, self.key, self.message = str(file), key, message
        where = f"{self.file}: {key}: " if key else f"{self.file}: "
        super().__init__(where + " ".join(message.split()))


class NumericalError(RuntimeError):
    """A numerical failure on valid input (could not stabilise, ...): CLI exit code 3."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest choice, else the list of choices."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; valid keys: {', '.join(choices)}" if choices else ""


def check_keys(file, section: str, given: Iterable[str], allowed: Iterable[str]) -> None:
    allowed = list(allowed)
    for key in given:
        if key not in allowed:
            raise ModelError(file, f"{section}.{key}" if section else key, f"unknown key{suggest(key, allowed)} (remove or rename it)")
