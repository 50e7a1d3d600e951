"""Input errors: one line naming the file, the key and the fix (CLI exit code 2)."""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable
from pathlib import Path

#: largest model or experiment file read (a TOML file of settings is a few kB)
MAX_FILE_BYTES = 16 * 2**20


class ModelError(ValueError):
    """Invalid user input. ``str(err)`` is ``"<file>: <key>: <problem and fix>"``."""

    def __init__(self, file, key: str | None, message: str):
        self.file, self.key, self.message = str(file), key, message
        where = f"{self.file}: {key}: " if key else f"{self.file}: "
        super().__init__(where + " ".join(message.split()))

    def __reduce__(self):
        # rebuilt from the constructor's arguments: an error raised in a worker process
        # reaches the parent as itself (one line, exit 2), not as a broken process pool
        return type(self), (self.file, self.key, self.message)


class NumericalError(RuntimeError):
    """A numerical failure on valid input (could not stabilise, ...): CLI exit code 3."""


class WorkerLost(RuntimeError):
    """A process that trained a sweep's trials ended abruptly, killed from outside (the
    system, out of memory): not a fault of the input or the numerics. One line, CLI exit
    code 1; the finished trials are kept for ``--resume``."""


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


def read_toml(file: Path, what: str) -> dict:
    """The TOML table of a model or experiment file (``what``), or one input error naming
    the file: missing, not a regular file, too large, not UTF-8, not TOML, nested too deeply."""
    file = Path(file)
    if not file.is_file():
        raise ModelError(file, None, f"{what} file not found (or not a regular file); check the path")
    if file.stat().st_size > MAX_FILE_BYTES:
        raise ModelError(file, None, f"{file.stat().st_size} bytes is too large for a {what} file (at most {MAX_FILE_BYTES}); put large arrays in .npy files")
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ModelError(file, None, f"TOML syntax error: {err}") from None
    except UnicodeDecodeError:
        raise ModelError(file, None, f"not a UTF-8 text file; {what} files are TOML") from None
    except RecursionError:
        raise ModelError(file, None, "values nested too deeply; arrays have at most a few dimensions") from None
